"""The results schema: every column of ``results.parquet`` with its dtype, the schema version
and the one Parquet writer. The harness's store, the reports' loader, ``merge`` and the tests'
synthetic runs all use it (docs/architecture.md lists the columns by group).

A row holds the fixed :data:`COLUMNS` in this order, then, sorted by name, the families
``p_deg_<param>``, ``p_method_<param>`` and ``x_<extra>`` (a method's scalars) and the
:data:`OPTIONAL` columns a run writes when they apply. Measurement columns also carry how reports
show them (label, better direction, decimals); a metric's own facts live on its
``MetricSpec``, and :func:`facts` answers for both.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass

SCHEMA_VERSION = 1
SCHEMA_KEY = b"evobench_schema"  # Parquet key-value metadata holding the version
FAMILIES = ("p_deg_", "p_method_", "x_")  # open column families (degradation/method params, extras)
TRACE_KEYS = ("cell_key", "method", "epoch")  # traces.parquet: these, then the trace's keys


@dataclass(frozen=True)
class Column:
    """One column: its name, dtype (``str``, ``int`` or ``float``; an ``int`` column that some
    rows lack, such as ``resumes`` of a killed cell, is stored as float) and group;
    measurement columns also say how reports show them."""

    name: str
    dtype: str
    group: str
    label: str = ""
    higher_is_better: bool | None = None
    decimals: int = 2


def _group(group: str, dtype: str, *names: str) -> tuple[Column, ...]:
    return tuple(Column(n, dtype, group) for n in names)


COLUMNS: tuple[Column, ...] = (
    *_group("identity", "str", "run_id", "cell_key", "suite", "profile", "dataset",
            "dataset_params", "image", "image_name", "color", "task", "degradation"),
    *_group("identity", "float", "p_deg_sigma", "sigma01", "p_deg_missing", "budget_s"),
    *_group("identity", "str", "p_deg_per", "deg_params", "method", "method_label",
            "method_version", "method_params"),
    *_group("identity", "int", "rep", "base_seed", "noise_seed", "method_seed"),
    *_group("outcome", "str", "status", "error"),
    *_group("metrics", "float", "psnr", "ssim", "psnr_input", "ssim_input", "psnr_last_eval",
            "ssim_last_eval", "last_eval_epoch", "data_range"),
    Column("metric_variant", "str", "metrics"),
    Column("time_fit_s", "float", "timing", "fit time (s)", False),
    Column("time_infer_s", "float", "timing", "inference time (s)", False),
    Column("time_total_s", "float", "timing", "wall time (s)", False),
    Column("cpu_s", "float", "timing", "CPU time (s)", False),
    Column("peak_rss_mb", "float", "memory", "peak RSS (MB)", False, 0),
    Column("rss_start_mb", "float", "memory", "RSS at the cell's start (MB)", False, 0),
    Column("peak_gpu_mb", "float", "memory", "peak GPU memory (MB)", False, 0),
    Column("device", "str", "environment"),
    *_group("environment", "int", "threads", "jobs"),
    Column("loadavg_1m", "float", "environment"),
    *_group("environment", "str", "host", "started_at", "finished_at", "evobench_version"),
    Column("artifact", "str", "files"),
)
OPTIONAL: tuple[Column, ...] = (  # written when they apply, sorted in among the families
    Column("executor", "str", "environment"),
    Column("resumes", "int", "resume"),
    Column("resumed_at_epoch", "float", "resume"),
)
BY_NAME = {c.name: c for c in COLUMNS + OPTIONAL}
ROW_ORDER = tuple(c.name for c in COLUMNS)
STRING_COLUMNS = frozenset(c.name for c in COLUMNS if c.dtype == "str")
INT_COLUMNS = tuple(c.name for c in COLUMNS + OPTIONAL if c.dtype == "int")
FLOAT_COLUMNS = tuple(c.name for c in COLUMNS if c.dtype == "float")
# what reports cannot do without; a loader fills every other column with NaN / "" when absent
REQUIRED_COLUMNS = ("cell_key", "dataset", "image", "task", "method", "status", "psnr")

# a metric's derived columns: (suffix, how a report names it, given the metric's heading)
DERIVED = (("_input", "input {}"),
           ("_last_eval", "{} at the last scheduled evaluation (paper presets: epoch 481, as "
                          "published)"))


@dataclass(frozen=True)
class Facts:
    """How reports show a column: its label, which way is better (None: unknown), decimals."""

    label: str
    higher_is_better: bool | None
    decimals: int


def facts(column: str, metrics: Mapping) -> Facts | None:
    """The facts of a result column: a metric's (``metrics``: name -> ``MetricSpec``) for the
    metric and its ``_input`` / ``_last_eval`` columns, the schema's for measurements, else
    None."""
    spec = metrics.get(column)
    if spec is not None:
        return Facts(spec.heading, spec.higher_is_better, spec.decimals)
    for suffix, label in DERIVED:
        spec = metrics.get(column.removesuffix(suffix)) if column.endswith(suffix) else None
        if spec is not None:
            return Facts(label.format(spec.heading), spec.higher_is_better, spec.decimals)
    col = BY_NAME.get(column)
    if col is not None and col.label:
        return Facts(col.label, col.higher_is_better, col.decimals)
    return None


def parquet_bytes(frame) -> bytes:
    """A results or traces table as zstd Parquet with the schema version in its metadata: the
    one writer of the results store (the harness's tables and ``evobench merge``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[SCHEMA_KEY] = str(SCHEMA_VERSION).encode()
    sink = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(meta), sink, compression="zstd")
    return sink.getvalue()
