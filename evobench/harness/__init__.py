"""The benchmark harness: selectors and grids, seeds, isolated cell execution, executors
(local processes, Dask), the results store and ``evobench run``."""
