"""Reports, paper figures, run comparison and merging: everything that reads the results store.

Nothing here runs a method; the store under ``results/<run_id>/`` (docs/architecture.md) is the
only input, so a report can always be regenerated from an archived run.
"""
