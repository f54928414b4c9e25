"""One TVAE run's settings as a frozen dataclass, checked up front with one-line errors.

Torch-free on purpose: the ``tvae`` plugin reads the presets and the choices below without
loading torch. The modules that need torch (``evolution``, ``model``) import from here, never
the other way round (``model.ACTIVATIONS`` builds the activations named here).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from evobench.errors import EvobenchError

# parent selection: "tvo" the published code's batched operator, "fitness" the paper's
# per-patch fitness-proportional draw, "uniform" distinct uniform parents, "best" P copies of
# the best state (docs/tvae-method.md section 3.2)
SELECTIONS = ("tvo", "fitness", "uniform", "best")
MUTATIONS = ("randflip", "sparseflip")
# the decoder's hidden-layer activations
ACTIVATIONS = ("relu", "leaky_relu")
INITS = ("xavier", "default")
INPAINT_MSTEPS = ("marginalise", "impute")
MERGES = ("mean", "gaussian")
DTYPES = ("float32", "float64")
OUTPUT_INITS = ("data", "published")
# "known": start at the harness's noise level when it is given (else the data rule);
# "data": the published rule, mean over entries of the data variance + 0.001 (0..255 units);
# "data-twice-scaled": the published barbara-25 run's value, the data rule on [0, 1] data
# divided by 255^2 once more (that run normalises twice)
SIGMA2_STARTS = ("known", "data", "data-twice-scaled")


@dataclass(frozen=True)
class TVAEConfig:
    """Every knob of the engine. ``scale`` is the internal data scale (255 reproduces the paper's
    house/castle runs on 0..255, whose learning rates were tuned for it; 1 keeps [0, 1])."""

    patch_size: int = 8
    stride: int = 1
    H: int = 64
    hidden: tuple[int, ...] = (64,)
    activation: str = "relu"
    init: str = "xavier"
    output_init: str = "data"  # "data": output layer at the data's mean/std; "published": as
    # the init rule made it (Xavier weights and zero bias; or PyTorch defaults for init="default")
    S: int = 32
    P: int = 5
    C: int = 4
    G: int = 1
    selection: str = "best"
    mutation: str = "randflip"
    crossover: bool = False
    bitflip_frequency: float | None = None  # sparseflip only; None = 1/H
    batch_size: int = 32
    epochs: int = 50
    lr_min: float = 1e-4
    lr_max: float = 1e-2
    half_cycle: float = 10.0  # epochs per half LR cycle (may be fractional)
    scale: float = 255.0
    sigma2_init: float | None = None  # internal units; None = the sigma2_start rule
    sigma2_start: str = "known"
    inpaint_mstep: str = "marginalise"
    merge: str = "mean"
    dtype: str = "float32"
    eval_every: int = 20  # estimates at epochs 1, 1+k, 1+2k, ... (the published schedule) + last
    chunk_size: int = 1024  # patches per vectorised E-step call (1024: fastest measured)
    max_rows: int = 65536  # states per decoder pass (memory bound)
    budget_s: float | None = None
    description: str = field(default="", compare=False)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d


FIELDS = {f.name for f in dataclasses.fields(TVAEConfig)} - {"description"}


def _choice(name: str, value: object, allowed: tuple) -> None:
    if value not in allowed:
        raise EvobenchError(f"unknown {name} {value!r}; use one of {list(allowed)}")


def make_config(base: TVAEConfig, overrides: dict) -> TVAEConfig:
    """Apply keyword overrides to a preset and validate the result."""
    unknown = sorted(set(overrides) - FIELDS)
    if unknown:
        raise EvobenchError(
            f"unknown TVAE parameter(s) {unknown}; valid names: {sorted(FIELDS)}"
        )
    ov = {k: v for k, v in overrides.items() if v is not None or k in
          ("bitflip_frequency", "sigma2_init", "budget_s")}
    if "hidden" in ov:
        h = ov["hidden"]
        if isinstance(h, int):
            h = (h,)
        elif isinstance(h, str):
            h = tuple(int(v) for v in h.replace("-", ",").split(",") if v.strip())
        ov["hidden"] = tuple(int(v) for v in h)
    cfg = dataclasses.replace(base, **ov)
    validate(cfg)
    return cfg


def validate(cfg: TVAEConfig) -> None:
    """Reject impossible combinations with a message that says what to change."""
    for name in ("patch_size", "stride", "H", "S", "P", "C", "G", "batch_size", "epochs",
                 "eval_every", "chunk_size", "max_rows"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise EvobenchError(f"{name} must be a positive integer, got {v!r}")
    if any((not isinstance(h, int)) or h < 1 for h in cfg.hidden):
        raise EvobenchError(f"hidden must be positive layer widths, got {cfg.hidden!r}")
    _choice("selection", cfg.selection, SELECTIONS)
    _choice("mutation", cfg.mutation, MUTATIONS)
    _choice("activation", cfg.activation, ACTIVATIONS)
    _choice("init", cfg.init, INITS)
    _choice("output_init", cfg.output_init, OUTPUT_INITS)
    _choice("sigma2_start", cfg.sigma2_start, SIGMA2_STARTS)
    _choice("inpaint_mstep", cfg.inpaint_mstep, INPAINT_MSTEPS)
    _choice("merge", cfg.merge, MERGES)
    _choice("dtype", cfg.dtype, DTYPES)
    if cfg.H < 63 and cfg.S > 2**cfg.H:
        raise EvobenchError(f"S={cfg.S} exceeds the 2^H={2**cfg.H} possible states; use S <= 2^H")
    if cfg.P > cfg.S:
        raise EvobenchError(f"P={cfg.P} parents cannot be drawn from S={cfg.S} states; use P <= S")
    if cfg.crossover and cfg.P < 2:
        raise EvobenchError("crossover needs P >= 2 parents")
    if cfg.crossover and cfg.H < 2:
        raise EvobenchError("crossover needs H >= 2 latents")
    if cfg.mutation == "randflip":
        c = 1 if cfg.crossover else cfg.C
        if c > cfg.H:
            raise EvobenchError(f"randflip flips C={c} distinct bits of H={cfg.H}; use C <= H")
    if cfg.G > 1 and not cfg.crossover and cfg.P > cfg.P * cfg.C:
        raise EvobenchError("later generations need P <= P*C children to select from")
    if cfg.bitflip_frequency is not None and not 0 < cfg.bitflip_frequency <= 1:
        raise EvobenchError("bitflip_frequency must be in (0, 1]")
    if not (0 < cfg.lr_min <= cfg.lr_max):
        raise EvobenchError(f"need 0 < lr_min <= lr_max, got {cfg.lr_min}, {cfg.lr_max}")
    if not cfg.half_cycle > 0:
        raise EvobenchError(f"half_cycle must be > 0 epochs, got {cfg.half_cycle}")
    if not cfg.scale > 0:
        raise EvobenchError(f"scale must be > 0, got {cfg.scale}")
    if cfg.sigma2_init is not None and not cfg.sigma2_init > 0:
        raise EvobenchError(f"sigma2_init must be > 0, got {cfg.sigma2_init}")
    if cfg.budget_s is not None and not cfg.budget_s > 0:
        raise EvobenchError(f"budget_s must be > 0 seconds, got {cfg.budget_s}")
