"""Suite + command-line overrides -> the sorted list of grid cells.

A profile is one grid block or a list of blocks (their union). Each block crosses datasets x
images x degradations x methods x repetitions; every selector is validated against its spec here,
before anything runs, so a typo fails in one line with the closest name. A cell's key is the
SHA-256 of its identity (see :func:`Cell.identity`), so the same cell gets the same key in any
order, from any command line.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from difflib import get_close_matches
from itertools import product
from pathlib import Path

from evobench.errors import EvobenchError
from evobench.harness.seeds import canonical_json, digest, method_seed, noise_seed
from evobench.harness.selectors import format_label, parse_selector
from evobench.specs import (
    DatasetSpec,
    DegradationSpec,
    MethodSpec,
    Param,
    SuiteSpec,
    load_object,
    resolve_params,
)
from evobench.validate import duration, noise_sigma

BLOCK_KEYS = ("datasets", "degradations", "methods", "metrics", "repetitions", "timeout",
              "budget", "labels")
DEFAULT_CELL_METRICS = ("psnr", "ssim")  # what a block's cells score when it names no metrics
# Options every dataset selector accepts (the harness applies them, not the loader).
DATASET_OPTIONS = (
    Param("images", "", str, help="comma-separated image ids or aliases; default: all"),
    Param("limit", 0, int, low=0, help="keep the first N images (0: all)"),
    Param("crop", 0, int, low=0, help="centre crop to N x N pixels (0: whole image)"),
)


@dataclass(frozen=True)
class Cell:
    """One unit of work: one method on one corrupted image."""

    suite: str
    profile: str
    dataset: str
    dataset_params: dict
    image: str
    image_name: str
    color: str
    degradation: str
    deg_params: dict
    task: str
    method: str
    method_label: str
    method_params: dict
    method_version: str
    rep: int
    base_seed: int
    device: str
    metrics: tuple[str, ...]
    skip_reason: str = ""
    budget_s: float | None = None  # the fit's wall-clock budget (methods that honour one)
    noise_seed: int = field(init=False)
    method_seed: int = field(init=False)
    key: str = field(init=False)

    def __post_init__(self):
        ns = noise_seed(self.base_seed, self.dataset, self.dataset_params, self.image,
                        self.degradation, self.deg_params, self.rep)
        object.__setattr__(self, "noise_seed", ns)
        object.__setattr__(self, "method_seed",
                           method_seed(ns, self.method, self.method_params))
        object.__setattr__(self, "key", digest(self.identity()))

    def identity(self) -> dict:
        """What makes a result: not the suite, the order or the label, but everything that
        changes the numbers (including the method's version, the device and a fit budget;
        without a budget the key is what it was before budgets existed)."""
        ident = {
            "dataset": self.dataset, "dataset_params": self.dataset_params, "image": self.image,
            "degradation": self.degradation, "deg_params": self.deg_params,
            "method": self.method, "method_params": self.method_params,
            "method_version": self.method_version, "rep": self.rep, "base_seed": self.base_seed,
            "device": self.device, "metrics": sorted(self.metrics),
        }
        if self.budget_s is not None:
            ident["budget_s"] = self.budget_s
        return ident

    @property
    def input_key(self) -> tuple:
        """Cells with equal input keys share the same corrupted image."""
        return (self.dataset, canonical_json(self.dataset_params), self.image)

    @property
    def deg_label(self) -> str:
        return format_label(self.degradation, self.deg_params)


@dataclass
class Grid:
    cells: list[Cell]
    notes: list[str]
    config: dict  # the resolved grid (written to config.toml)
    timeout: float | None
    suite: str
    profile: str


@dataclass
class Overrides:
    methods: list[str] | None = None
    datasets: list[str] | None = None
    sigmas: list[float] | None = None
    missing: list[float] | None = None
    repetitions: int | None = None
    seed: int = 0
    device: str = "cpu"
    budget_s: float | None = None  # every budgeted method's fit budget (``--budget``)
    with_baselines: bool = False  # ``-m`` adds to the suite's methods instead of replacing them


# -- suites ------------------------------------------------------------------------------------
def load_suite(name_or_file: str, registry) -> SuiteSpec:
    """A registered suite, or a TOML file with the same structure."""
    path = Path(name_or_file).expanduser()
    if name_or_file.endswith(".toml") or path.is_file():
        return suite_from_toml(path)
    return registry.suite(name_or_file)


def suite_from_toml(path: Path) -> SuiteSpec:
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise EvobenchError(f"suite file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvobenchError(f"cannot read suite file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise EvobenchError(f"suite file {path} is not valid TOML: {exc}") from None
    return suite_from_data(data, path)


def suite_from_data(data: dict, path: Path | str) -> SuiteSpec:
    """Check a parsed suite file against its schema (one line naming the key) -> SuiteSpec."""
    where = f"suite file {path}"
    unknown = set(data) - {"name", "summary", "default_profile", "profiles"}
    if unknown:
        raise EvobenchError(f"{where}: unknown key(s) {sorted(unknown)}; expected name, "
                            "summary, default_profile and [profiles.NAME] tables")
    for key in ("name", "summary", "default_profile"):
        if key in data and not isinstance(data[key], str):
            raise EvobenchError(f"{where}: {key} must be a string, got {data[key]!r}")
    profiles = data.get("profiles")
    if not isinstance(profiles, dict) or not profiles:
        raise EvobenchError(f"{where} defines no [profiles.NAME] table")
    for name, blocks in profiles.items():
        if not (isinstance(blocks, dict) or (isinstance(blocks, list) and blocks)):
            raise EvobenchError(f"{where}: profiles.{name} must be a table or an array of tables "
                                "([profiles.NAME] or [[profiles.NAME]])")
    default = data.get("default_profile", "quick" if "quick" in profiles else next(iter(profiles)))
    if default not in profiles:
        raise EvobenchError(f"{where}: default_profile {default!r} is not one of its profiles "
                            f"({', '.join(profiles)})")
    try:
        suite = SuiteSpec(name=data.get("name", Path(path).stem.lower()), profiles=profiles,
                          summary=data.get("summary", ""), default_profile=default,
                          source=str(path))
    except ValueError as exc:
        raise EvobenchError(f"{where}: {exc}") from None
    for name in profiles:  # every block of every profile, not only the one that runs
        profile_blocks(suite, name)
    return suite


def profile_blocks(suite: SuiteSpec, profile: str) -> list[dict]:
    if profile not in suite.profiles:
        hint = get_close_matches(profile, list(suite.profiles), n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise EvobenchError(f"suite {suite.name!r} has no profile {profile!r}{extra} "
                            f"(profiles: {', '.join(suite.profiles)})")
    blocks = suite.profiles[profile]
    blocks = [blocks] if isinstance(blocks, dict) else list(blocks)
    for block in blocks:
        if not isinstance(block, dict):
            raise EvobenchError(f"suite {suite.name!r} profile {profile!r}: a block must be a table")
        for key in block:
            if key not in BLOCK_KEYS:
                hint = get_close_matches(key, BLOCK_KEYS, n=1)
                extra = f"; did you mean {hint[0]!r}?" if hint else ""
                raise EvobenchError(f"suite {suite.name!r} profile {profile!r}: unknown key "
                                    f"{key!r}{extra}")
        for key in ("datasets", "degradations", "methods", "metrics"):
            value = block.get(key, [])
            if isinstance(value, str) or not isinstance(value, list):
                raise EvobenchError(f"suite {suite.name!r} profile {profile!r}: {key} must be a "
                                    f"list of selector strings")
            for item in value:
                if not isinstance(item, str):
                    raise EvobenchError(f"suite {suite.name!r} profile {profile!r}: {key} must be "
                                        f"a list of selector strings, got {item!r}")
        reps = block.get("repetitions", 1)
        if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
            raise EvobenchError(f"suite {suite.name!r} profile {profile!r}: repetitions must be "
                                f"an integer >= 1, got {reps!r}")
        duration(block.get("timeout"), f"suite {suite.name!r} profile {profile!r}: timeout")
        if "budget" in block and not duration(block["budget"], f"suite {suite.name!r} profile "
                                                               f"{profile!r}: budget"):
            raise EvobenchError(f"suite {suite.name!r} profile {profile!r}: budget must be a "
                                f"positive duration such as \"60s\" or \"10m\"")
        labels = block.get("labels", {})
        if not isinstance(labels, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and v.strip()
                for k, v in labels.items()):
            raise EvobenchError(f"suite {suite.name!r} profile {profile!r}: labels must map "
                                f"method selectors to non-empty display names")
        unused = sorted(set(labels) - set(block.get("methods", [])))
        if unused:
            raise EvobenchError(f"suite {suite.name!r} profile {profile!r}: labels name "
                                f"{unused[0]!r}, which is not one of the block's methods")
    return blocks


# -- resolution --------------------------------------------------------------------------------
@dataclass
class _Dataset:
    spec: DatasetSpec
    params: dict  # dataset params + harness options (images/limit/crop)
    images: list[tuple[str, str]]  # (id, display name)
    color: str


def resolve_dataset(text: str, registry, notes: list[str] | None = None) -> _Dataset:
    """A dataset selector -> its chosen images. ``images`` and ``limit`` only choose images, so
    they stay out of the cell identity; ``crop`` changes the pixels, so it enters it. A
    lister's warnings (a file it leaves out, and why) become ``notes``."""
    sel = parse_selector(text, "dataset")
    spec: DatasetSpec = registry.dataset(sel.name)
    owner = f"dataset {sel.name!r}"
    options = {p.name for p in DATASET_OPTIONS}
    given_opts = {k: v for k, v in sel.params.items() if k in options}
    given_own = {k: v for k, v in sel.params.items() if k not in options}
    own = resolve_params(owner, tuple(spec.params) + DATASET_OPTIONS, given_own)
    for name in options:
        own.pop(name, None)
    opts = resolve_params(owner, DATASET_OPTIONS, given_opts)
    if 0 < opts["crop"] < 8:
        raise EvobenchError(f"{owner}: crop={opts['crop']} is too small; use 0 (no crop) or >= 8")
    if spec.lister:
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ids = tuple(load_object(spec.lister)(**own))
        if notes is not None:
            notes += [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    else:
        ids = tuple(spec.images)
    names = {i: next((a for a, t in spec.aliases.items() if t == i), i) for i in ids}
    chosen: list[str] = []
    if opts["images"]:
        for item in (s.strip() for s in opts["images"].split(",")):
            if not item:
                continue
            image = spec.aliases.get(item, item)
            if image not in ids:
                known = list(ids) + list(spec.aliases)
                hint = get_close_matches(item, known, n=1)
                extra = f"; did you mean {hint[0]!r}?" if hint else f" (known: {', '.join(ids)})"
                raise EvobenchError(f"{owner} has no image {item!r}{extra}")
            if image not in chosen:
                chosen.append(image)
    else:
        chosen = list(ids)
    if opts["limit"]:
        chosen = chosen[: opts["limit"]]
    params = dict(own)
    if opts["crop"]:
        params["crop"] = opts["crop"]
    color = own.get("color", spec.color)
    if color not in ("gray", "rgb"):
        color = spec.color
    return _Dataset(spec, params, [(i, names.get(i, i)) for i in chosen], color)


def resolve_degradations(texts, registry, overrides: Overrides, used: dict) -> list[tuple]:
    out = []
    for text in texts:
        sel = parse_selector(text, "degradation")
        spec: DegradationSpec = registry.degradation(sel.name)
        declared = {p.name for p in spec.params}
        variants = [dict(sel.params)]
        for key, values in (("sigma", overrides.sigmas), ("missing", overrides.missing)):
            if values is not None and key in declared:
                used[key] = True
                variants = [{**v, key: val} for v in variants for val in values]
        for given in variants:
            params = resolve_params(f"degradation {sel.name!r}", spec.params, given)
            try:  # the sigma rule of a method's input (validate.noise_sigma), on the 0-255 scale
                noise_sigma(params.get("sigma"), spec.task, unit_scale=False)
            except EvobenchError:
                raise EvobenchError(f"degradation {sel.name!r}: sigma={params['sigma']:g} adds no "
                                    "noise, so there is nothing to denoise; use a sigma > 0 "
                                    "(0-255 scale, e.g. 25)") from None
            out.append((spec, params))
    return out


def _skip_reason(spec: MethodSpec, task: str, color: str, device: str) -> str:
    """Why a cell of ``spec`` cannot run (it is stored as ``skipped``), or ""."""
    from evobench.validate import device_kind

    if task not in spec.tasks:
        return f"{spec.name} does not do {task} (it does {', '.join(sorted(spec.tasks))})"
    if color not in spec.colors:
        return f"{spec.name} does not support {color} images"
    if device_kind(device) not in spec.devices:
        return f"{spec.name} does not run on {device} (it runs on {', '.join(sorted(spec.devices))})"
    missing = spec.missing_requirements()
    if missing:
        return f"{spec.name} needs {', '.join(missing)} (pip install 'evobench[{spec.name}]')"
    return ""


@dataclass
class _Block:
    """One grid block with every selector resolved against its spec."""

    datasets: list[_Dataset]
    degradations: list[tuple[DegradationSpec, dict]]
    methods: list[tuple[MethodSpec, str, dict]]  # (spec, label, full parameters)
    metrics: tuple[str, ...]
    reps: int
    timeout: float | None
    budget_s: float | None

    def described(self) -> dict:
        """The block as ``config.toml`` records it."""
        return {"datasets": [format_label(d.spec.name, d.params) + f" ({len(d.images)} images)"
                             for d in self.datasets],
                "degradations": [format_label(s.name, p) for s, p in self.degradations],
                "methods": [label for _, label, _ in self.methods],
                "metrics": list(self.metrics), "repetitions": self.reps,
                **({} if self.budget_s is None else {"budget_s": self.budget_s})}


def _resolve_methods(block: dict, suite: SuiteSpec, overrides: Overrides, registry,
                     notes: list[str]) -> list[tuple[MethodSpec, str, dict]]:
    """The block's method selectors (or ``-m``'s) -> (spec, label, parameters); a suite method
    whose plugin is not installed is left out with a note (in a user's file: an error)."""
    methods = []
    suite_methods = list(block.get("methods", []))
    if overrides.methods is None:
        texts = [(t, True) for t in suite_methods]
    elif overrides.with_baselines:  # the suite's methods, then -m's (a repeat is one cell)
        texts = [(t, True) for t in suite_methods] + [(t, False) for t in overrides.methods]
    else:
        texts = [(t, False) for t in overrides.methods]
    for text, from_suite in texts:
        sel = parse_selector(text, "method")
        if from_suite and sel.name not in registry.names("methods"):
            known = registry.names("methods")
            hint = get_close_matches(sel.name, known, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            if suite.source:  # the user's own file: a typo, not a disabled plugin
                raise EvobenchError(f"suite file {suite.source}: unknown method "
                                    f"{sel.name!r}{extra} (known: {', '.join(known)})")
            notes.append(f"suite method {sel.name!r} is not installed; left out{extra}")
            continue
        spec: MethodSpec = registry.method(sel.name)
        given = resolve_params(f"method {sel.name!r}", spec.params, sel.params,
                               fill_defaults=False)
        full = resolve_params(f"method {sel.name!r}", spec.params, sel.params)
        # a block may name a method for reports (labels); the label is not part of a
        # cell's identity, so relabelling never reruns a cell
        label = block.get("labels", {}).get(text) if from_suite else None
        methods.append((spec, label or format_label(sel.name, given), full))
    return methods


def _resolve_block(block: dict, suite: SuiteSpec, overrides: Overrides, registry,
                   used: dict, notes: list[str]) -> _Block:
    metrics = tuple(block.get("metrics", DEFAULT_CELL_METRICS)) or DEFAULT_CELL_METRICS
    for metric in metrics:
        registry.metric(metric)
    reps = overrides.repetitions or int(block.get("repetitions", 1))
    if reps < 1:
        raise EvobenchError("repetitions must be >= 1")
    timeout = duration(block.get("timeout"), "timeout")  # checked by profile_blocks
    budget = overrides.budget_s if overrides.budget_s is not None else \
        duration(block.get("budget"), "budget")
    datasets = [resolve_dataset(t, registry, notes) for t in overrides.datasets or
                block.get("datasets", [])]
    degradations = resolve_degradations(block.get("degradations", []), registry, overrides, used)
    methods = _resolve_methods(block, suite, overrides, registry, notes)
    return _Block(datasets, degradations, methods, metrics, reps, timeout, budget)


def _cells(block: _Block, suite: SuiteSpec, profile: str, overrides: Overrides):
    """The block's cells: datasets x images x degradations x methods x repetitions."""
    images = [(ds, image) for ds in block.datasets for image in ds.images]
    for (ds, (image, name)), (deg, deg_params), (mspec, label, mparams), rep in product(
            images, block.degradations, block.methods, range(block.reps)):
        yield Cell(suite=suite.name, profile=profile, dataset=ds.spec.name,
                   dataset_params=ds.params, image=image, image_name=name, color=ds.color,
                   degradation=deg.name, deg_params=deg_params, task=deg.task,
                   method=mspec.name, method_label=label, method_params=mparams,
                   method_version=str(mspec.version), rep=rep, base_seed=int(overrides.seed),
                   device=overrides.device, metrics=block.metrics,
                   skip_reason=_skip_reason(mspec, deg.task, ds.color, overrides.device),
                   budget_s=block.budget_s if mspec.budgeted else None)


def build_grid(suite: SuiteSpec, profile: str | None, overrides: Overrides, registry) -> Grid:
    """Expand a suite profile (plus overrides) into sorted, de-duplicated cells."""
    from evobench import validate

    validate.seed(overrides.seed, "seed")
    validate.device(overrides.device, need_available=False)
    profile = profile or suite.default_profile
    notes: list[str] = []
    used: dict[str, bool] = {}
    blocks = [_resolve_block(block, suite, overrides, registry, used, notes)
              for block in profile_blocks(suite, profile)]
    for key, values in (("sigma", overrides.sigmas), ("missing", overrides.missing)):
        if values is not None and not used.get(key):
            raise EvobenchError(f"--{key} was given but no degradation in suite {suite.name!r} "
                                f"profile {profile!r} has a {key!r} parameter")
    cells: dict[str, Cell] = {}
    for block in blocks:
        for cell in _cells(block, suite, profile, overrides):
            cells.setdefault(cell.key, cell)
    if not cells:
        why = f": {'; '.join(notes)}" if notes else \
            " (check its datasets, degradations and methods)"
        raise EvobenchError(f"suite {suite.name!r} profile {profile!r} expands to no cells{why}")
    ordered = sorted(cells.values(), key=lambda c: (
        c.dataset, canonical_json(c.dataset_params), c.image, c.degradation,
        canonical_json(c.deg_params), c.method, canonical_json(c.method_params), c.rep))
    config = {"suite": suite.name, "profile": profile, "seed": int(overrides.seed),
              "device": overrides.device, "blocks": [b.described() for b in blocks]}
    timeouts = [b.timeout for b in blocks if b.timeout is not None]
    return Grid(ordered, list(dict.fromkeys(notes)), config, max(timeouts) if timeouts else None, suite.name, profile)


def image_label(cell: Cell) -> str:
    """``set12/02`` or, with a conventional name, ``set12/02(house)``."""
    name = f"({cell.image_name})" if cell.image_name != cell.image else ""
    return f"{cell.dataset}/{cell.image}{name}"


def describe(cell: Cell) -> str:
    return f"{cell.method_label} {image_label(cell)} {cell.deg_label} rep{cell.rep}"

