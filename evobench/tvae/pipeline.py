"""Zero-shot pipelines: image -> overlapping patches -> TVAE fit -> posterior means -> image.

``denoise`` and ``inpaint`` are the engine's public API (used by the ``tvae`` plugin). Images
are float arrays on the [0, 1] scale; internally the data are multiplied by the preset's
``scale`` (255 for the paper's house/castle runs), and everything reported (image, sigma2,
free energy, fields) is converted back to the [0, 1] scale.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from evobench import inputs
from evobench.context import MethodContext
from evobench.errors import EvobenchError
from evobench.inputs import MethodInput, reference_psnr
from evobench.patches import extract_patches, merge_patches
from evobench.tvae.config import TVAEConfig, make_config
from evobench.tvae.model import Decoder, TVAEModel
from evobench.tvae.presets import get_preset
from evobench.tvae.schedule import one_thread_math
from evobench.tvae.states import initial_states, pack
from evobench.tvae.training import Trainer, run_epochs


@dataclass
class TVAEResult:
    """What one fit returns.

    ``fields``: decoder output for each singleton state e_h, shape (H, p, p) or (H, p, p, 3), on
    the [0, 1] scale, raw (not background-subtracted); ``background`` is the output for the
    all-zero state, so ``fields - background`` shows what each latent adds.
    ``sparsity``: ``active_mean`` (mean_n sum_s q_n(s)|s|), ``pi_sum`` (sum_h pi_h) and
    ``active_hist`` (length H+1, entry k = sum_n sum_s q_n(s)[|s| = k]).
    ``snapshots``: the estimated image at each scheduled evaluation epoch (1, 1+k, 1+2k, ...
    for ``eval_every`` k, as the published scripts merge them), epoch -> image on [0, 1];
    ``last_eval_epoch`` is the latest of them (481 for the 500-epoch paper presets), whose
    image the published code reports, while ``image`` is the estimate after the last epoch.
    ``resumes``: how many times this fit continued from a checkpoint; ``resumed_at``: the epoch
    the latest continuation started after (None if it ran in one go).
    """

    image: np.ndarray
    trace: list[dict]
    sparsity: dict
    fields: np.ndarray
    background: np.ndarray
    pi: np.ndarray
    sigma2: float
    time_fit_s: float
    time_infer_s: float
    epochs_run: int
    config: dict = field(default_factory=dict)
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)
    last_eval_epoch: int | None = None
    resumes: int = 0
    resumed_at: int | None = None


def _check_fit(cfg: TVAEConfig, shape: tuple[int, ...]) -> None:
    if cfg.patch_size > min(shape[:2]):
        raise EvobenchError(
            f"patch_size={cfg.patch_size} is larger than the image ({shape[0]} x {shape[1]}); "
            "use a smaller patch_size"
        )


def check_memory(cfg: TVAEConfig, n: int, d: int, device: str) -> None:
    """Refuse a fit whose largest tensors cannot fit, before they are allocated: the K_n states
    (N x S x ceil(H/64) int64 words, held for the whole fit), the data (Y and its mask) and one
    chunk's log-joint (chunk x 2S x width activations, about 3 alive at once; the chunk as
    :class:`~evobench.tvae.training.Trainer` sizes it)."""
    from evobench import validate
    from evobench.tvae.training import ACT_BUDGET

    item = 4 if cfg.dtype == "float32" else 8
    states = n * cfg.S * math.ceil(cfg.H / 64) * 8
    width = max(cfg.H, *cfg.hidden, d)
    chunk = min(cfg.chunk_size, max(cfg.batch_size, ACT_BUDGET // (cfg.S * width)))
    chunk = min(n, max(1, chunk // cfg.batch_size) * cfg.batch_size)
    log_joint = chunk * 2 * cfg.S * width * item * 3
    need = states + 2 * n * d * item + log_joint
    validate.memory(need, f"tvae with S={cfg.S} on {n} patches (the K_n states, N x S x H bits: "
                          f"{states / 2**30:.1f} GiB; the chunked log-joint: "
                          f"{log_joint / 2**30:.1f} GiB)",
                    "lower S (or crop the image; a smaller hidden width shrinks the log-joint)",
                    device)


FIELD_INIT = 0.2  # initial generative-field scale, as a fraction of the data's std


@one_thread_math()  # full sums depend on the intra-op thread count otherwise
def init_output_layer(decoder: Decoder, Y: torch.Tensor, obs: torch.Tensor | None) -> None:
    """Put the decoder's output layer on the data's scale: bias = per-entry mean of the observed
    data, weights (Xavier, made for unit-scale data) times FIELD_INIT * data std.

    Why: with the reference init (zero bias, unit-scale weights) on 0..255 data, mu(s) starts
    near 0 and every state predicts nearly the same patch. The first closed-form sigma2 is then
    ~E[y^2] (tens of thousands), states are indistinguishable under the likelihood, the prior
    drives pi towards 0 (latents die), and Adam needs ~mean/lr steps to move the bias. Short or
    low-LR runs then end 10 dB or more below the noisy input (or the mean fill). Starting at the
    mean patch with fields of a fraction of the data's contrast makes every run start at the
    mean-fill floor with latents that the likelihood can tell apart.
    """
    o = torch.ones_like(Y[:1]).expand_as(Y) if obs is None else obs
    cnt = o.sum(0)
    total = (Y * o).sum(0)
    overall = total.sum() / cnt.sum()
    mean = torch.where(cnt > 0, total / cnt.clamp_min(1), overall)
    std = ((((Y - mean) * o) ** 2).sum() / cnt.sum()).sqrt()
    last = decoder.linears[-1]
    with torch.no_grad():
        last.bias.copy_(mean)
        last.weight.mul_(FIELD_INIT * std)


def is_eval_epoch(epoch: int, every: int) -> bool:
    """The published evaluation schedule: epochs 1, 1+every, 1+2*every, ... (1, 21, ..., 481)."""
    return (epoch - 1) % every == 0


def initial_sigma2(cfg: TVAEConfig, Y: np.ndarray, sigma: float | None) -> float:
    """sigma2's start in internal units (``cfg.sigma2_init``, else the ``sigma2_start`` rule).

    The data rule is the published one: mean over entries of the per-entry variance of the
    (noisy, NaN-aware) patches, plus 0.001 on the 0..255 scale.
    """
    if cfg.sigma2_init is not None:
        return float(cfg.sigma2_init)
    if cfg.sigma2_start == "known" and sigma is not None:
        return float((sigma * cfg.scale) ** 2)
    var = float(np.nanmean(np.nanvar(Y, axis=0)))
    if cfg.sigma2_start == "data-twice-scaled":  # the rule on the data as given, then /255^2
        return (var + 0.001) / 255.0**2
    return var + 0.001 * (cfg.scale / 255.0) ** 2


def build_trainer(Ynp: np.ndarray, obs_np: np.ndarray | None, cfg: TVAEConfig,
                  gen: torch.Generator, sigma2_init: float) -> Trainer:
    """A ready-to-train model for a data matrix (N, D) in internal units (NaN = missing).

    Initial state: Xavier/default decoder from ``gen`` with the output layer on the data's
    scale (``output_init="data"``, see init_output_layer), pi_h = 1/H, sigma2 = ``sigma2_init``,
    and the same S distinct sparse states in every K_n (as in the reference).
    """
    dev = gen.device
    dtype = torch.float32 if cfg.dtype == "float32" else torch.float64
    Y = torch.as_tensor(np.nan_to_num(Ynp), dtype=dtype, device=dev)
    obs = None if obs_np is None else torch.as_tensor(obs_np, dtype=dtype, device=dev)
    decoder = Decoder(cfg.H, cfg.hidden, Y.shape[1], cfg.activation, cfg.init, gen, dtype, dev)
    if cfg.output_init == "data":
        init_output_layer(decoder, Y, obs)
    model = TVAEModel(decoder, torch.full((cfg.H,), 1.0 / cfg.H, dtype=dtype, device=dev),
                      torch.tensor(sigma2_init, dtype=dtype, device=dev))
    keys0 = pack(initial_states(cfg.S, cfg.H, gen))
    keys = keys0.unsqueeze(0).expand(Y.shape[0], -1, -1).contiguous()
    return Trainer(model, Y, obs, keys, cfg, gen)


@dataclass
class _Patches:
    """A corrupted image as the fit's data: patches in internal units (NaN = missing), which of
    them train (``keep``: a patch with nothing observed neither trains nor votes)."""

    Y: np.ndarray  # (N, D)
    obs: np.ndarray | None  # (N, D) bool, observed entries; None when denoising
    keep: np.ndarray  # (N,) bool


def _patches(call: MethodInput, cfg: TVAEConfig) -> _Patches:
    data = call.image.copy()
    if call.mask is not None:
        data[call.mask] = np.nan
    Y = extract_patches(data, cfg.patch_size, cfg.stride) * cfg.scale
    obs = None if call.mask is None else ~np.isnan(Y)
    keep = np.ones(Y.shape[0], dtype=bool) if obs is None else obs.any(1)
    return _Patches(Y, obs, keep)


def _to_image(est: torch.Tensor, data: _Patches, call: MethodInput, cfg: TVAEConfig) -> np.ndarray:
    """Posterior-mean patches (rows of ``data.keep``, internal units) -> the image on [0, 1];
    observed pixels keep their values and pixels no patch votes for get the observed mean."""
    full = np.full(data.Y.shape, np.nan)
    full[data.keep] = est.double().cpu().numpy() / cfg.scale
    img = merge_patches(full, call.image.shape, cfg.patch_size, cfg.stride, cfg.merge)
    if call.mask is not None:
        img = np.where(call.mask, img, call.image)
        img = np.where(np.isnan(img), np.nanmean(call.image[~call.mask]), img)
    return img


class _EpochLog:
    """``run_epochs``' per-epoch callback: the trace row, the snapshots of the scheduled
    evaluation epochs (and the ``clean`` PSNR), the checkpoint and the live progress."""

    def __init__(self, trainer: Trainer, cfg: TVAEConfig, to_image, clean, saver, log_scale,
                 ctx: MethodContext):
        self.trainer, self.cfg, self.to_image, self.clean = trainer, cfg, to_image, clean
        self.saver, self.log_scale, self.ctx = saver, log_scale, ctx
        self.trace: list[dict] = []
        self.snapshots: dict[int, np.ndarray] = {}
        # the last planned epoch's estimate, with statistics and its seconds: the final result
        # reuses it instead of estimating the same parameters and sets twice
        self.final: tuple[int, torch.Tensor, dict, float] | None = None

    def __call__(self, e, stats, fit_s, dt) -> None:
        cfg, scale = self.cfg, self.cfg.scale
        row = {"epoch": e, "free_energy": stats["F"] + self.log_scale,
               "sigma2": stats["sigma2"] / scale**2, "pi_sum": stats["pi_sum"],
               "new_states": stats["new_states"], "seconds": fit_s, "epoch_seconds": dt}
        scheduled = is_eval_epoch(e, cfg.eval_every)
        if e == cfg.epochs:
            t0 = time.perf_counter()
            est, stats_n = self.trainer.estimate(want_stats=True)
            self.final = (e, est, stats_n, time.perf_counter() - t0)
        elif scheduled:
            est, _ = self.trainer.estimate()
        if scheduled or (self.clean is not None and e == cfg.epochs):
            img = self.to_image(est)
            if scheduled:
                self.snapshots[e] = img.astype(np.float32)
            if self.clean is not None:
                row["psnr"] = reference_psnr(self.clean, img)
        self.trace.append(row)
        self.saver.after_epoch(e, cfg.epochs, fit_s, self.trainer.state_dict, self.trace,
                               self.snapshots)
        # to the harness's live display, if any (which scores the estimate of evaluation epochs)
        self.ctx.progress(epoch=e, epochs=cfg.epochs, free_energy=row["free_energy"],
                          psnr=row.get("psnr"), estimate=self.snapshots.get(e))


def _fields(trainer: Trainer, cfg: TVAEConfig, image_shape: tuple) -> np.ndarray:
    """Decoder outputs of the all-zero state and each singleton state, (H + 1, p, p[, 3]) on
    the [0, 1] scale."""
    dtype = torch.float32 if cfg.dtype == "float32" else torch.float64
    dev = trainer.model.pi.device
    with torch.no_grad():
        eye = torch.cat([torch.zeros(1, cfg.H), torch.eye(cfg.H)]).to(dtype=dtype, device=dev)
        out = trainer.model.decoder(eye).double().cpu().numpy() / cfg.scale
    c = 3 if len(image_shape) == 3 else 1
    out = out.reshape(cfg.H + 1, c, cfg.patch_size, cfg.patch_size)
    return out[:, 0] if c == 1 else np.moveaxis(out, 1, -1)


def fit(call: MethodInput, ctx: MethodContext | None = None, *, preset="quick", clean=None,
        overrides=None, checkpoint=None, checkpoint_every=None) -> TVAEResult:
    """Fit TVAE to one checked input (``evobench.inputs.check``: :func:`denoise`,
    :func:`inpaint`, or the ``tvae`` method behind ``evobench.api.run_spec``) and estimate the
    clean image. Checks only what the engine alone knows (patch size vs image, the preset's
    constraints such as S <= 2^H); ``clean`` must already match the image (diagnostics).
    ``ctx`` (:mod:`evobench.context`) carries progress, the budget, checkpoints and stop
    requests; ``checkpoint``/``checkpoint_every`` override its checkpoint folder and interval.
    (Seven parameters: the input, its context, the preset, overrides and three diagnostics.)"""
    ctx = MethodContext() if ctx is None else ctx
    overrides = dict(overrides or {})
    if ctx.budget_s is not None:
        overrides["budget_s"] = ctx.budget_s
    cfg = make_config(get_preset(preset), overrides)
    _check_fit(cfg, call.image.shape)
    dev = torch.device(call.device)
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(call.seed))
    data = _patches(call, cfg)
    keep = data.keep
    check_memory(cfg, int(keep.sum()), data.Y.shape[1], call.device)
    s2 = initial_sigma2(cfg, data.Y[keep], call.sigma)
    trainer = build_trainer(data.Y[keep], None if data.obs is None else data.obs[keep], cfg, gen,
                            s2)
    saver = _checkpointer(ctx, checkpoint, checkpoint_every, cfg, preset, call)
    obs = trainer.obs
    log_scale = math.log(cfg.scale) * (data.Y.shape[1] if obs is None
                                       else float(obs.sum(1).mean()))
    log = _EpochLog(trainer, cfg, lambda est: _to_image(est, data, call, cfg), clean, saver,
                    log_scale, ctx)
    start, fit0 = 0, 0.0
    if (restored := saver.restore(trainer.load_state_dict)) is not None:
        start, fit0, log.trace, log.snapshots = restored
    epochs_run = run_epochs(trainer, cfg.epochs, cfg.budget_s, log, start=start, fit=fit0)
    return _result(call, cfg, trainer, log, epochs_run, preset, clean, saver)


def _result(call, cfg, trainer, log, epochs_run, preset, clean, saver) -> TVAEResult:
    """The final estimate, fields and statistics of a finished (or stopped) fit. (Eight
    parameters: the pieces :func:`fit` assembled, handed over as they are.)"""
    trace = log.trace
    t0 = time.perf_counter()
    if log.final is not None and log.final[0] == epochs_run:
        _, est, stats, time_infer = log.final
    else:
        est, stats = trainer.estimate(want_stats=True)
        time_infer = time.perf_counter() - t0
    t1 = time.perf_counter()
    image = log.to_image(est)
    time_infer += time.perf_counter() - t1
    if clean is not None and trace and "psnr" not in trace[-1]:  # stopped early by budget_s
        trace[-1]["psnr"] = reference_psnr(clean, image)
    out = _fields(trainer, cfg, call.image.shape)
    model = trainer.model
    pi = model.pi.double().cpu().numpy()
    sparsity = {"active_mean": stats["active_mean"], "pi_sum": float(pi.sum()),
                "active_hist": stats["active_hist"]}
    return TVAEResult(image=image, trace=trace, sparsity=sparsity, fields=out[1:],
                      background=out[0], pi=pi, sigma2=float(model.sigma2) / cfg.scale**2,
                      time_fit_s=trace[-1]["seconds"] if trace else 0.0,
                      time_infer_s=time_infer, epochs_run=epochs_run,
                      config=cfg.as_dict() | {"preset": preset, "seed": int(call.seed),
                                              "device": str(torch.device(call.device))},
                      snapshots=log.snapshots,
                      last_eval_epoch=max(log.snapshots, default=None),
                      resumes=saver.resumes, resumed_at=saver.resumed_at)


CHECKPOINT_KIND = "tvae"


def _checkpointer(ctx: MethodContext, path, every, cfg: TVAEConfig, preset, call: MethodInput):
    """The fit's :class:`evobench.checkpoint.Checkpointer`. A checkpoint is taken at an epoch
    boundary (after its trace row and evaluation) when ``every`` seconds of wall time have
    passed, and always on a stop request. It holds the trainer's state (decoder parameters,
    Adam moments and step, LR-schedule step, pi, sigma2, the bit-packed K_n, the generator
    state), the trace, the evaluation snapshots and the fit time; continuing from it gives the
    uninterrupted fit's result bit for bit (same device, same threads). Its identity: the
    configuration without ``budget_s``, the preset, seed, device and the input's SHA-256.
    (Six parameters: the context, two caller overrides, and what identifies the fit.)"""
    from evobench.checkpoint import input_digest

    ident = {"config": {k: v for k, v in cfg.as_dict().items() if k != "budget_s"},
             "preset": str(preset), "seed": int(call.seed),
             "device": str(torch.device(call.device)),
             "input": input_digest(call.image, call.mask)}
    return ctx.checkpointer(ident, CHECKPOINT_KIND, path=path, every_s=every)


def denoise(noisy, *, sigma=None, preset="quick", seed=0, device="cpu", clean=None,
            checkpoint=None, checkpoint_every=None, **overrides) -> TVAEResult:
    """Denoise ``noisy`` (H x W or H x W x 3 on [0, 1]) zero-shot with TVAE.

    ``sigma`` (noise std on [0, 1]) only initialises sigma2, which is learned either way.
    ``overrides`` replace preset fields (patch_size, H, hidden, S, P, C, G, batch_size, epochs,
    selection, mutation, crossover, lr_min, lr_max, half_cycle, stride, budget_s, ...).
    ``checkpoint``: a folder for checkpoints of the fit, written every ``checkpoint_every``
    seconds of wall time (default 600; 0 = off); if it holds a checkpoint of this very fit
    (same input, configuration, seed and device), the fit continues from it (see
    see ``_checkpointer``); a checkpoint that does not match is reported and ignored.
    A boundary of its own: the input is checked here (:func:`evobench.inputs.check`), once.
    """
    call = inputs.check(noisy, task="denoise", sigma=sigma, seed=seed, device=device)
    return fit(call, preset=preset, clean=inputs.reference(clean, call.image.shape),
               overrides=overrides, checkpoint=checkpoint, checkpoint_every=checkpoint_every)


def inpaint(corrupted, *, mask, preset="quick", seed=0, device="cpu", clean=None,
            checkpoint=None, checkpoint_every=None, **overrides) -> TVAEResult:
    """Fill the pixels where ``mask`` (bool) is True (H x W, or per entry H x W x 3); observed
    pixels are kept as given. Values under the mask are ignored (they may be NaN).
    ``checkpoint``, ``checkpoint_every``: as for :func:`denoise`, and so is the input check."""
    call = inputs.check(corrupted, task="inpaint", mask=mask, seed=seed, device=device)
    return fit(call, preset=preset, clean=inputs.reference(clean, call.image.shape),
               overrides=overrides, checkpoint=checkpoint, checkpoint_every=checkpoint_every)
