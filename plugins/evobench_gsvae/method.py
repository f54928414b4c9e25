"""Zero-shot GSVAE restoration of one image: train on its overlapping patches, estimate each
clean patch, merge the estimates exactly as TVAE does (``evobench.patches``).

Clean-patch estimate (``estimate``): ``"mean"`` (default) decodes q's mean (the probabilities)
in one pass; ``"samples"`` averages the decoder output over ``n_samples`` hard Bernoulli draws
s ~ q(s|y), a Monte-Carlo version of TVAE's posterior mean sum_s q(s) mu(s). The decoder is
trained on relaxed (non-binary) inputs, and on House crops ``mean`` was 0.3-1.2 dB better.
Pixel values are standardised (mean 0, std 1 over the observed pixels) for training;
``data_scale="none"`` keeps the [0, 1] scale.

The input arrives checked against the spec by ``evobench.api.run_spec`` (mask shaped like the
image, patch size within the image, device available); the parameters are the spec's, whose
defaults fill in what a direct call leaves out.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch

from evobench.api import (
    EvobenchError,
    MethodContext,
    MethodOutput,
    extract_patches,
    input_digest,
    merge_patches,
    reference_image,
    reference_psnr,
)
from evobench_gsvae import SPEC
from evobench_gsvae.model import GSVAE, poisson_binomial_hist

_INFER_CHUNK = 4096
DEFAULT_EPOCHS = {"denoise": 12, "inpaint": 25}


def _generators(seed: int, dev: torch.device) -> tuple[torch.Generator, torch.Generator]:
    """One CPU generator (weights, shuffling) and one on ``dev`` (relaxation noise, samples),
    both derived from ``seed`` so a run is reproducible on a given device."""
    g_cpu = torch.Generator().manual_seed(int(seed))
    g_dev = torch.Generator(device=dev).manual_seed(int(seed) + 1)
    return g_cpu, g_dev


@torch.no_grad()
def _infer(model: GSVAE, y: torch.Tensor, obs: torch.Tensor | None, estimate: str,
           n_samples: int, g_dev: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean-patch estimates (N, D) and q(s_h = 1 | y) (N, H), in chunks of patches."""
    est, qs = [], []
    for start in range(0, y.shape[0], _INFER_CHUNK):
        yc = y[start:start + _INFER_CHUNK]
        oc = None if obs is None else obs[start:start + _INFER_CHUNK]
        q = torch.sigmoid(model.encode(yc, oc))
        if estimate == "mean":
            mu = model.decode(q)
        else:
            s = torch.rand((n_samples, *q.shape), generator=g_dev, device=q.device,
                           dtype=q.dtype) < q
            mu = model.decode(s.to(q.dtype)).mean(dim=0)
        est.append(mu)
        qs.append(q)
    return torch.cat(est), torch.cat(qs)


def _state(model: GSVAE, opt: torch.optim.Optimizer, gens: dict, step: int) -> dict:
    """The fit's state between epochs as numpy arrays and ints (evobench.checkpoint)."""
    state = {f"model.{k}": v.detach().cpu().numpy().copy()
             for k, v in model.state_dict().items()}
    for i, p in enumerate(model.parameters()):
        for k, v in opt.state.get(p, {}).items():
            state[f"opt.{i}.{k}"] = v.detach().cpu().numpy().copy()
    state |= {f"gen.{k}": g.get_state().numpy().copy() for k, g in gens.items()}
    state["step"] = int(step)
    return state


def _load_state(model: GSVAE, opt: torch.optim.Optimizer, gens: dict, state: dict) -> int:
    """Restore :func:`_state`'s output; checks every entry before changing any."""
    own = model.state_dict()
    params = list(model.parameters())
    want = {f"model.{k}": v for k, v in own.items()}
    want |= {f"opt.{i}.{k}": p for i, p in enumerate(params) for k in ("step", "exp_avg",
                                                                          "exp_avg_sq")}
    for key in want:
        if key not in state:
            raise ValueError(f"state entry {key!r} is missing")
    for key, ref in want.items():
        a = state[key]
        shape = () if key.endswith(".step") else tuple(ref.shape)
        if not hasattr(a, "shape") or tuple(a.shape) != shape:
            raise ValueError(f"state entry {key!r} does not fit this model")
    for k in gens:
        g = state.get(f"gen.{k}")
        if not hasattr(g, "dtype") or g.dtype != np.uint8:
            raise ValueError(f"state entry 'gen.{k}' is not a generator state")
    step = state.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError("state entry 'step' is not a step count")
    model.load_state_dict({k: torch.from_numpy(state[f"model.{k}"].copy()) for k in own})
    opt_state = opt.state_dict()
    opt_state["state"] = {i: {k: torch.from_numpy(np.array(state[f"opt.{i}.{k}"]))
                              for k in ("step", "exp_avg", "exp_avg_sq")}
                          for i in range(len(params))}
    opt.load_state_dict(opt_state)
    for k, g in gens.items():
        g.set_state(torch.from_numpy(state[f"gen.{k}"].copy()))
    return step


@dataclass
class _Data:
    """The image as training data: standardised patches (zero at missing entries) on the
    device, and how to map estimates back to the image."""

    img: np.ndarray
    observed: np.ndarray | None  # bool, True where observed; None when denoising
    shift: float
    scale: float
    y: torch.Tensor  # (N, D)
    obs: torch.Tensor | None  # (N, D) 1.0 where observed
    patch_size: int

    def to_image(self, est: torch.Tensor) -> np.ndarray:
        merged = merge_patches(est.double().cpu().numpy() * self.scale + self.shift,
                               self.img.shape, self.patch_size)
        return merged if self.observed is None else np.where(self.observed, self.img, merged)


def _settings(params: dict) -> SimpleNamespace:
    """The spec's parameters (its defaults for those a direct call leaves out), with
    ``epochs=None`` resolved per task later and ``hidden`` as a tuple of widths."""
    s = SimpleNamespace(**({p.name: p.default for p in SPEC.params} | params))
    if s.tau_min <= 0 or s.tau0 < s.tau_min:
        raise EvobenchError(f"gsvae needs 0 < tau_min <= tau0, got tau0={s.tau0}, "
                            f"tau_min={s.tau_min}")
    s.hidden = tuple(int(h) for h in s.hidden)
    if any(h < 1 for h in s.hidden):
        raise EvobenchError(f"gsvae: hidden layer widths must be >= 1, got {s.hidden}")
    return s


def _data(image: np.ndarray, mask, s: SimpleNamespace, dev: torch.device) -> _Data:
    img = np.asarray(image, dtype=np.float64)
    observed = None if mask is None else ~np.asarray(mask, dtype=bool)
    vals = img if observed is None else img[observed]
    shift, scale = (float(vals.mean()), float(vals.std()) or 1.0) \
        if s.data_scale == "standardize" else (0.0, 1.0)
    filled = img if observed is None else np.where(observed, img, 0.0)
    patches = extract_patches((filled - shift) / scale, s.patch_size)
    y = torch.as_tensor(patches, dtype=torch.float32, device=dev)
    obs = None
    if observed is not None:
        obs_np = extract_patches(observed.astype(np.float64), s.patch_size)
        obs = torch.as_tensor(obs_np, dtype=torch.float32, device=dev)
        y = y * obs
    return _Data(img, observed, shift, scale, y, obs, s.patch_size)


def _model(data: _Data, s: SimpleNamespace, sigma, g_cpu, dev) -> GSVAE:
    vals = data.img if data.observed is None else data.img[data.observed]
    sigma2_init = (sigma / data.scale) ** 2 if sigma else \
        float(vals.var() / data.scale**2) + 1e-3
    return GSVAE(data.y.shape[1], s.H, s.hidden, activation=s.activation,
                 masked=data.obs is not None, sigma2_init=max(sigma2_init, 1e-6),
                 pi_init=s.pi_init, generator=g_cpu).to(dev)


class _Training:
    """The fit's moving parts: model, optimiser, generators, the step count and schedules."""

    def __init__(self, data: _Data, s: SimpleNamespace, model: GSVAE, gens: dict):
        self.data, self.s, self.model, self.gens = data, s, model, gens
        self.opt = torch.optim.Adam(model.parameters(), lr=s.lr)
        self.steps_per_epoch = math.ceil(data.y.shape[0] / s.batch_size)
        self.total_steps = self.steps_per_epoch * s.epochs
        self.step = 0
        self.tau = s.tau0

    def state(self) -> dict:
        return _state(self.model, self.opt, self.gens, self.step)

    def load(self, state: dict) -> int:
        return _load_state(self.model, self.opt, self.gens, state)

    def epoch(self, deadline: float | None) -> tuple[float, int, bool]:
        """One pass over the patches in a fresh random order: (loss sum, patches seen, whether
        the ``deadline`` (``time.perf_counter()``) stopped it after a batch)."""
        s, data, model, opt = self.s, self.data, self.model, self.opt
        n = data.y.shape[0]
        perm = torch.randperm(n, generator=self.gens["cpu"]).to(data.y.device)
        loss_sum = 0.0
        for b in range(self.steps_per_epoch):
            idx = perm[b * s.batch_size:(b + 1) * s.batch_size]
            self.tau = max(s.tau_min, s.tau0 * math.exp(-s.anneal_rate * self.step
                                                        / self.steps_per_epoch))
            for group in opt.param_groups:
                group["lr"] = s.lr_final + 0.5 * (s.lr - s.lr_final) * (
                    1 + math.cos(math.pi * self.step / max(self.total_steps, 1)))
            loss = model.neg_elbo(data.y[idx], None if data.obs is None else data.obs[idx],
                                  self.tau, self.gens["dev"]).sum()
            opt.zero_grad(set_to_none=True)
            (loss / len(idx)).backward()
            opt.step()
            loss_sum += float(loss.detach())
            self.step += 1
            if deadline is not None and time.perf_counter() > deadline:
                return loss_sum, min(n, (b + 1) * s.batch_size), True
        return loss_sum, min(n, self.steps_per_epoch * s.batch_size), False


def fit(call, ctx: MethodContext | None = None, *, clean=None, checkpoint=None,
        checkpoint_every=None, **params):
    """Train a GSVAE on the patches of one image and return the restoration and its statistics.

    ``anneal_rate`` is per epoch: tau_t = max(tau_min, tau0 * exp(-anneal_rate * t)) with t the
    (fractional) number of epochs done, so the schedule does not depend on the batch size. The
    learning rate decays from ``lr`` to ``lr_final`` on a cosine over the planned epochs.
    ``epochs=None`` means 12 for denoising and 25 for inpainting: on House, denoising peaked
    near 12 epochs (30.7 dB; 25 epochs fit the noise, 30.5 dB) while inpainting kept improving
    (33.5 dB at 12, 34.3 dB at 25).

    ``checkpoint``: a folder for checkpoints, written every ``checkpoint_every`` seconds (default
    600; 0 = off) at epoch boundaries; a matching checkpoint there is continued from (bit for
    bit on the same device and threads); they override the context's (``ctx``, which under
    ``evobench run`` carries the cell's checkpoint folder, the budget, progress and stops).
    """
    ctx = MethodContext() if ctx is None else ctx
    image, mask, sigma, seed = call.image, call.mask, call.sigma, call.seed
    s = _settings(params)
    if s.epochs is None:
        s.epochs = DEFAULT_EPOCHS["denoise" if mask is None else "inpaint"]
    dev = torch.device(call.device)
    g_cpu, g_dev = _generators(seed, dev)
    g_eval = torch.Generator(device=dev).manual_seed(int(seed) + 2)  # diagnostics only
    data = _data(image, mask, s, dev)
    gens = {"cpu": g_cpu, "dev": g_dev, "eval": g_eval}
    run = _Training(data, s, _model(data, s, sigma, g_cpu, dev), gens)
    saver = _saver(ctx, checkpoint, checkpoint_every, s, sigma, seed, dev, clean, data.img, mask)
    trace, done, stopped, time_fit = _train(run, saver, ctx, clean)
    t_inf = time.perf_counter()
    est, q = _infer(run.model, data.y, data.obs, s.estimate, s.n_samples, g_dev)
    restored = data.to_image(est)
    artifacts = _artifacts(run.model, q, s, data)
    time_infer = time.perf_counter() - t_inf
    extras = {
        "active_mean": float(q.double().sum(dim=1).mean()),
        "pi_sum": float(run.model.pi.detach().double().cpu().numpy().sum()),
        "epochs": done,
        "stopped_by_budget": stopped,
        "final_loss": trace[-1]["loss"] if trace else float("nan"),
        "sigma_learned": float(run.model.log_sigma2.detach().exp().sqrt()) * data.scale,
        "tau_final": trace[-1]["tau"] if trace else s.tau0,
        "n_patches": data.y.shape[0],
    }
    return MethodOutput(restored, extras=extras, time_fit_s=time_fit, time_infer_s=time_infer,
                        trace=trace, artifacts=artifacts)


def _saver(ctx, checkpoint, every, s: SimpleNamespace, sigma, seed, dev, clean, img, mask):
    """The fit's checkpointer (``ctx.checkpointer``). (Ten parameters: the context, the two
    caller overrides and everything that identifies the fit, which a checkpoint must match.)"""
    settings = {p.name: getattr(s, p.name) for p in SPEC.params} | {"hidden": list(s.hidden)}
    ident = {"params": settings | {"sigma": sigma}, "seed": int(seed), "device": str(dev),
             "clean": clean is not None, "input": input_digest(img, mask)}
    return ctx.checkpointer(ident, "gsvae", path=checkpoint, every_s=every)


def _train(run: _Training, saver, ctx, clean) -> tuple[list[dict], int, bool, float]:
    """The epochs (continuing from a checkpoint if there is one): (trace, epochs done, whether
    the context's budget stopped training, fit seconds). Diagnostics (``clean``) are not
    training time."""
    budget_s = ctx.budget_s
    s, data, model = run.s, run.data, run.model
    trace: list[dict] = []
    first, fit0 = 0, 0.0
    restored = saver.restore(run.load)
    if restored is not None:
        first, fit0, trace, _ = restored
        run.step = run.steps_per_epoch * first
    start = time.perf_counter() - fit0  # fit time continues over resumed segments
    done, eval_s, stopped = first, 0.0, False
    for epoch in range(first + 1, s.epochs + 1):
        t_epoch = time.perf_counter()
        deadline = None if budget_s is None else start + eval_s + budget_s
        loss_sum, seen, stopped = run.epoch(deadline)
        done = epoch
        row = {"epoch": epoch, "loss": loss_sum / seen, "tau": run.tau,
               "lr": run.opt.param_groups[0]["lr"],
               "sigma2": float(model.log_sigma2.detach().exp()) * data.scale**2,
               "seconds": time.perf_counter() - start - eval_s,
               "epoch_seconds": time.perf_counter() - t_epoch}
        if clean is not None:
            t_eval = time.perf_counter()
            est, _ = _infer(model, data.y, data.obs, s.estimate, s.n_samples, run.gens["eval"])
            row["psnr"] = reference_psnr(clean, data.to_image(est))
            eval_s += time.perf_counter() - t_eval
        trace.append(row)
        ctx.progress(epoch=epoch, epochs=s.epochs, loss=row["loss"], psnr=row.get("psnr"))
        if stopped:
            break
        saver.after_epoch(epoch, s.epochs, row["seconds"],
                          lambda n=run.step: _state(model, run.opt, run.gens, n), trace)
    return trace, done, stopped, time.perf_counter() - start - eval_s


@torch.no_grad()
def _artifacts(model: GSVAE, q: torch.Tensor, s: SimpleNamespace, data: _Data) -> dict:
    """Generative fields (decoder output of each singleton state minus the all-zero one, TVAE's
    definition), the active-unit histogram and the prior, as float32 arrays."""
    dev = q.device
    hist = poisson_binomial_hist(q).cpu().numpy()
    eye = torch.eye(s.H, device=dev)
    fields = (model.decode(eye) - model.decode(torch.zeros(1, s.H, device=dev))).double()
    pi = model.pi.double().cpu().numpy()
    c = 1 if data.img.ndim == 2 else data.img.shape[2]
    fields = fields.cpu().numpy().reshape(s.H, c, s.patch_size, s.patch_size) * data.scale
    fields = fields[:, 0] if data.img.ndim == 2 else np.moveaxis(fields, 1, -1)
    return {"fields": fields.astype(np.float32), "active_hist": hist.astype(np.float32),
            "pi": pi.astype(np.float32)}


def run(call, ctx, *, clean=None, **params):
    """The evobench method contract; ``clean`` (not passed by the harness) adds PSNR to the
    per-epoch trace for diagnostics."""
    return fit(call, ctx, clean=reference_image(clean, call.image.shape), **params)
