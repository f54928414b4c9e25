"""What plugins register: light, import-free descriptions of methods, datasets, degradations,
metrics, suites and figure kinds, plus the one output type every method returns.

Specs hold only cheap data and a ``"module:callable"`` factory string, so listing plugins never
imports torch or bm3d; the implementation is imported when a cell actually runs.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from evobench.errors import EvobenchError

TASKS = frozenset({"denoise", "inpaint"})
COLORS = frozenset({"gray", "rgb"})
DEVICES = frozenset({"cpu", "cuda"})

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class SpecError(EvobenchError):
    """A spec or a parameter value is invalid; the message says what to change."""


def check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(
            f"{kind} name {name!r} is invalid: use lowercase letters, digits, '_', '-' or '.'"
        )
    return name


def load_object(ref: str) -> Any:
    """Import ``"package.module:attr"`` lazily (the point of string factories)."""
    module, _, attr = ref.partition(":")
    if not module or not attr:
        raise SpecError(f"factory {ref!r} must look like 'package.module:callable'")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Param:
    """One tunable parameter: its default, type and allowed values (checked before a run)."""

    name: str
    default: Any
    type: type = float
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    help: str = ""

    def coerce(self, value: Any, owner: str = "") -> Any:
        """Turn a CLI/TOML value into the declared type, or raise a one-line SpecError."""
        where = f"{owner}: " if owner else ""
        if value is None:
            return None
        try:
            if self.type is bool and isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in {"true", "false", "1", "0", "yes", "no"}:
                    raise ValueError(value)
                value = lowered in {"true", "1", "yes"}
            elif self.type is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            elif self.type is tuple and isinstance(value, str):
                parts = value.replace("-", ",").split(",")
                if not all(v.strip() for v in parts):  # "-5" (a negative width), "5-", "5--6"
                    raise ValueError(value)
                value = tuple(int(v) for v in parts)
            elif self.type is tuple:
                value = tuple(value)
            else:
                value = self.type(value)
        except (TypeError, ValueError, OverflowError):
            if self.type is tuple:
                raise SpecError(f"{where}parameter {self.name}={value!r} is not a list of "
                                "positive integers joined by '-' (e.g. 64 or 512-512)") from None
            raise SpecError(
                f"{where}parameter {self.name}={value!r} is not a valid {self.type.__name__}"
            ) from None
        if isinstance(value, float) and not math.isfinite(value):  # would reach seeds and JSON
            raise SpecError(f"{where}parameter {self.name}={value!r} is not a finite number")
        if self.choices is not None and value not in self.choices:
            raise SpecError(
                f"{where}parameter {self.name}={value!r} is not one of {list(self.choices)}"
            )
        if isinstance(value, tuple):
            self._check_items(value, where)
        elif self.low is not None and value < self.low:
            raise SpecError(f"{where}parameter {self.name}={value!r} must be >= {self.low}")
        elif self.high is not None and value > self.high:
            raise SpecError(f"{where}parameter {self.name}={value!r} must be <= {self.high}")
        return value

    def _check_items(self, value: tuple, where: str) -> None:
        """A tuple parameter (layer widths): integers, each within ``low``/``high`` (>= 1
        unless ``low`` says otherwise)."""
        low = 1 if self.low is None else self.low
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int):
                raise SpecError(f"{where}parameter {self.name}={value!r} must hold integers "
                                "(e.g. 64 or 512-512)")
            if item < low or (self.high is not None and item > self.high):
                bound = f">= {low}" if item < low else f"<= {self.high}"
                raise SpecError(f"{where}parameter {self.name}={value!r}: every entry must be "
                                f"{bound}")


def resolve_params(
    owner: str, declared: tuple[Param, ...], given: Mapping[str, Any], *, fill_defaults: bool = True
) -> dict[str, Any]:
    """Validate ``given`` against ``declared``; unknown names get a closest-name suggestion."""
    from difflib import get_close_matches

    by_name = {p.name: p for p in declared}
    out: dict[str, Any] = {p.name: p.default for p in declared} if fill_defaults else {}
    for key, value in given.items():
        if key not in by_name:
            hint = get_close_matches(key, list(by_name), n=1)
            known = ", ".join(by_name) or "none"
            suggestion = f"; did you mean {hint[0]!r}?" if hint else f" (known: {known})"
            raise SpecError(f"{owner} has no parameter {key!r}{suggestion}")
        out[key] = by_name[key].coerce(value, owner)
    return out


@dataclass(frozen=True)
class MethodSpec:
    """A restoration method.

    ``factory`` names a callable with the method contract::

        run(call, ctx, **params) -> MethodOutput

    ``call`` is the checked input (``evobench.inputs.MethodInput``: ``image`` float on the
    [0, 1] scale, H x W or H x W x 3; ``task``; ``mask`` True where a pixel or channel entry is
    missing, inpainting only; ``sigma``, the noise std on the [0, 1] scale or None when
    unknown; ``seed``; ``device``). ``ctx`` is the call's ``evobench.context.MethodContext``:
    progress, the fit budget, checkpoints and stop requests.
    """

    name: str
    factory: str
    tasks: frozenset[str]
    summary: str = ""
    colors: frozenset[str] = COLORS
    devices: frozenset[str] = frozenset({"cpu"})
    params: tuple[Param, ...] = ()
    needs_sigma: bool = False
    licence: str | None = None
    requires: tuple[str, ...] = ()
    amortized: bool = False
    version: str = "0"
    min_size: int = 1  # smallest image side (pixels) it accepts; a patch_size param adds to it
    budgeted: bool = False  # it fits under ``ctx.budget_s`` (``evobench run --budget``)
    # how reports show it: a reference is a floor every method must beat (e.g. the corrupted
    # input), never marked best and drawn gray; ranked methods take the first, strongest figure
    # styles, lower rank first, the unranked ones follow in the order they appear
    reference: bool = False
    rank: int | None = None
    # ``"module:callable"``: ``cost(shape, params) -> seconds`` of one cell on one CPU core
    # (image shape H x W [x 3], the cell's full parameters; a model with a ``task`` parameter
    # also gets the cell's task), or None when it cannot say; ``evobench run --dry-run`` sums them (docs/harness.md, "Cost estimate")
    cost: str | None = None

    def __post_init__(self):
        check_name("method", self.name)
        if not self.tasks or not set(self.tasks) <= TASKS:
            raise SpecError(f"method {self.name!r}: tasks must be a subset of {sorted(TASKS)}")
        if not set(self.colors) <= COLORS or not set(self.devices) <= DEVICES:
            raise SpecError(f"method {self.name!r}: unknown colour mode or device")

    def load(self) -> Callable[..., MethodOutput]:
        return load_object(self.factory)

    def missing_requirements(self) -> list[str]:
        """The modules of ``requires`` that cannot be imported here."""
        from importlib.util import find_spec

        def importable(module: str) -> bool:
            try:
                return find_spec(module) is not None
            except (ImportError, ValueError):
                return False

        return [m for m in self.requires if not importable(m)]


@dataclass(frozen=True)
class DatasetSpec:
    """A named set of clean test images.

    ``loader(image_id) -> ndarray`` returns float64 in [0, 1], H x W (gray) or H x W x 3 (rgb).
    ``files`` (optional, for downloaded sets) names ``files(dataset_name)``, which returns the
    dataset's ``evobench.data.RemoteFile`` entries: ``evobench data fetch`` downloads and
    verifies them, ``evobench data list`` shows their cache state. ``aliases`` maps extra image names
    (e.g. ``house``) to ids. A dataset whose images depend on parameters (a user folder) declares
    ``params``; then ``loader(image_id, **params)`` and ``lister(**params) -> tuple of ids``
    (``lister`` is a ``"module:callable"`` string, used instead of ``images``).
    """

    name: str
    loader: str
    images: tuple[str, ...]
    color: str = "gray"
    summary: str = ""
    files: str | None = None
    source: str = ""
    licence: str | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)
    params: tuple[Param, ...] = ()
    lister: str | None = None

    def __post_init__(self):
        check_name("dataset", self.name)
        if self.color not in COLORS:
            raise SpecError(f"dataset {self.name!r}: color must be one of {sorted(COLORS)}")

    def remote_files(self) -> tuple:
        """The dataset's downloadable files (``files``); () for embedded or user images."""
        return tuple(load_object(self.files)(self.name)) if self.files else ()


@dataclass(frozen=True)
class DegradationSpec:
    """A corruption applied by the harness with the cell's noise seed.

    ``factory(clean, *, rng, **params) -> Degraded``; the result must depend only on the clean
    image, the parameters and ``rng`` so every method sees the same input.
    """

    name: str
    factory: str
    task: str
    params: tuple[Param, ...] = ()
    summary: str = ""

    def __post_init__(self):
        check_name("degradation", self.name)
        if self.task not in TASKS:
            raise SpecError(f"degradation {self.name!r}: task must be one of {sorted(TASKS)}")


@dataclass(frozen=True)
class MetricSpec:
    """A quality metric ``factory(clean, restored, *, data_range) -> float`` and every fact about
    it: the harness scores the returned image (``<name>``), the input (``<name>_input``) and a
    method's latest snapshot (``<name>_last_eval``) with ``data_range``, on images at least
    ``min_size`` pixels a side, and stores ``variant`` (the convention) in each row; tables,
    ``compare`` and figures show it as ``heading`` (``label`` and ``unit``) with ``decimals``
    and mark or gate it by ``higher_is_better``.
    """

    name: str
    factory: str
    higher_is_better: bool = True
    summary: str = ""
    label: str = ""  # how reports name it, e.g. "PSNR"; default: the name
    unit: str = ""  # e.g. "dB"
    decimals: int = 3
    data_range: float = 1.0
    variant: str = ""  # the convention (whole image, float, clipping ...), kept in every row
    min_size: int = 1  # smallest image side it can score (ssim: its 7 x 7 window)

    def __post_init__(self):
        check_name("metric", self.name)

    @property
    def heading(self) -> str:
        """``PSNR (dB)``: the label with its unit."""
        label = self.label or self.name
        return f"{label} ({self.unit})" if self.unit else label


@dataclass(frozen=True)
class SuiteSpec:
    """A named grid, one mapping per profile (``smoke``, ``quick``, ``paper`` ...).

    Each profile maps to ``{"datasets": [...], "degradations": [...], "methods": [...],
    "metrics": [...], "repetitions": int}`` where list items are selector strings such as
    ``"tvae[S=64]"`` or ``"set12[images=01,02]"``. A profile may also be a list of such
    mappings (grid blocks); its grid is the union of the blocks' grids, which is how the paper
    profile pairs each TVAE preset with its own noise level. A block's optional ``labels`` map
    a method selector to the name reports show (``"TVAE (published settings)"``), so one method
    spanning several presets reads as one row.
    """

    name: str
    profiles: Mapping[str, Mapping[str, Any]]
    summary: str = ""
    default_profile: str = "quick"
    source: str = ""  # the TOML file of a user's suite; "" for a registered one

    def __post_init__(self):
        check_name("suite", self.name)
        from evobench.validate import path_component

        for profile in self.profiles:  # "<suite>-<profile>" names the run folder
            path_component("profile", profile)
        if self.default_profile not in self.profiles:
            raise SpecError(f"suite {self.name!r} lacks its default profile {self.default_profile!r}")


@dataclass(frozen=True)
class FigureSpec:
    """A kind of figure drawn from stored results (``evobench figures``, ``evobench report``).

    ``factory`` names ``draw(data, *, image=None)``: ``data`` is the runs'
    ``evobench.reports.load.RunData`` (results, traces, manifests, artifacts), ``image`` the
    image id asked for with ``--image`` (None: the figure's choice). It returns either a list of
    ``(name, matplotlib.figure.Figure)`` pairs, each saved as ``<name>.<format>``, or a string:
    the one-line reason it has nothing to draw (reported as ``skipped <title>: <reason>``). A
    kind whose ``tasks`` the runs lack is left out without a note; kinds are drawn by ``order``.
    ``caption`` is what the HTML report prints under each of the kind's figures: what is
    plotted, over which images and repetitions, what error bars mean; ``{images}``, ``{reps}``
    and ``{spread}`` in it become the runs' own (``2 images (01, 02)``, ``2 repetitions``,
    ``error bars are ± one standard deviation over the 2 repetitions`` or ``one repetition, so
    no error bars``). Without one the ``summary`` is shown.
    """

    name: str
    factory: str
    title: str
    summary: str = ""
    caption: str = ""
    tasks: frozenset[str] = frozenset()  # empty: for any task
    order: int = 100

    def __post_init__(self):
        check_name("figure", self.name)
        if not set(self.tasks) <= TASKS:
            raise SpecError(f"figure {self.name!r}: tasks must be a subset of {sorted(TASKS)}")


@dataclass
class Degraded:
    """What a degradation hands to a method."""

    image: Any  # ndarray, float, [0, 1] scale (may leave [0, 1] because noise is not clipped)
    mask: Any = None  # bool ndarray, True where missing; None for denoising
    sigma: float | None = None  # noise std on the [0, 1] scale, None when there is no noise


@dataclass
class MethodOutput:
    """What every method returns.

    ``extras`` hold scalar, method-specific numbers (they become ``x_*`` result columns, e.g.
    ``x_active_mean``); ``trace`` is one dict per epoch/iteration; ``artifacts`` hold arrays worth
    keeping beside the results (generative fields, active-unit histogram). ``snapshots`` map an
    epoch to the image estimated then (a learned method's scheduled evaluations): the harness
    scores each into that epoch's trace row, and the latest into ``<metric>_last_eval``
    columns, so a method never sees the clean image.
    """

    image: Any
    extras: dict[str, Any] = field(default_factory=dict)
    time_fit_s: float | None = None
    time_infer_s: float | None = None
    trace: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[str, Any] = field(default_factory=dict)
    snapshots: dict[int, Any] = field(default_factory=dict)


SPEC_KINDS: dict[str, type] = {
    "methods": MethodSpec,
    "datasets": DatasetSpec,
    "degradations": DegradationSpec,
    "metrics": MetricSpec,
    "suites": SuiteSpec,
    "figures": FigureSpec,
}
