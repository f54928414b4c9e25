"""The training loop: evolutionary E-steps, Adam on -F/B with a triangular cyclic LR, and
closed-form pi and sigma2 once per epoch.

Per epoch the patches are shuffled and processed in chunks of ``chunk_size``: one vectorised
E-step on the whole chunk (parameters fixed during it, so its monotonicity holds exactly), then
Adam mini-batches of ``batch_size`` over the chunk (the M-step). Compared with the reference (an
E-step per mini-batch of 32), an E-step sees older parameters; the gradient itself is recomputed
with the current parameters for every mini-batch.

The parameter lag is part of the algorithm, not of the scheduling: the E-step of chunk i always
uses the parameters as they were before the M-step of chunk i-1 (chunks 0 and 1: the epoch's
start), held in a snapshot decoder. How the E-steps are run on threads (in line, or beside the
M-step), with the same numbers either way, is ``evobench.tvae.schedule``'s business.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import torch

from evobench.tvae.adam import FlatAdam, flatten_params
from evobench.tvae.codes import Codes, sparse_pays
from evobench.tvae.config import TVAEConfig
from evobench.tvae.evolution import evaluate, select
from evobench.tvae.model import (
    LogJoint,
    TVAEModel,
    backward_distinct,
    chunked_log_joint,
    forward_distinct,
)
from evobench.tvae.schedule import EStepStream, map_chunks, worker_threads
from evobench.tvae.states import popcount, unique_keys

PI_CLAMP = 1e-5
ACT_BUDGET = 2**24  # entries per (chunk, S, layer width) activation tensor (64 MB in float32)


def _block_distinct(vals: torch.Tensor, per: int, U: int
                    ) -> tuple[torch.Tensor, list[int], torch.Tensor]:
    """For consecutive blocks of ``per`` entries of ``vals`` (ints < U): each block's distinct
    values, increasing (blocks concatenated), how many each block has, and each entry's index
    among its block's values. One sort of (block, value) for all blocks."""
    R = vals.numel()
    n_blocks = -(-R // per)
    block = torch.arange(R, device=vals.device) // per
    uniq, inv = torch.unique(block * U + vals, return_inverse=True)
    counts = torch.bincount(uniq // U, minlength=n_blocks)
    starts = torch.cumsum(counts, 0).sub_(counts)
    return uniq % U, counts.tolist(), inv.sub_(starts.index_select(0, block))


@dataclass
class _ChunkPlan:
    """A chunk's M-step bookkeeping. It depends on the chunk's new sets and the epoch's terms
    only, not on the parameters, so it may be built beside the M-step (same numbers)."""
    codes: Codes  # the chunk's distinct states
    inv: torch.Tensor  # (n S,) each (patch, state) pair's row in codes
    base: torch.Tensor  # (n, S) the log-joints' terms fixed in the epoch (prior, normaliser)
    states: list[Codes]  # per mini-batch: its distinct states (rows of codes, increasing)
    invs: list[torch.Tensor]  # per mini-batch: each pair's row in its states


@dataclass
class _EpochSums:
    """The epoch's running sums (0-d or (H,) tensors, added to in place)."""
    F: torch.Tensor
    n_new: torch.Tensor
    A_pi: torch.Tensor
    A_sig: torch.Tensor


def _select(cands, a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The new sets of patches a..b-1 of an E-step's candidates and their new-state counts."""
    keys, _, new = select(cands, a, b)
    return keys, new


def triangular_lr(step: int, lr_min: float, lr_max: float, half: int) -> float:
    """torch's CyclicLR 'triangular' value after ``step`` scheduler steps."""
    cycle = math.floor(1 + step / (2 * half))
    x = abs(step / half - 2 * cycle + 1)
    return lr_min + (lr_max - lr_min) * max(0.0, 1.0 - x)


class Trainer:
    """Holds the data, the sets K_n (bit-packed) and the optimiser for one fit."""

    def __init__(self, model: TVAEModel, Y: torch.Tensor, obs: torch.Tensor | None,
                 keys: torch.Tensor, cfg: TVAEConfig, gen: torch.Generator):
        self.model, self.Y, self.obs, self.keys, self.cfg, self.gen = model, Y, obs, keys, cfg, gen
        self.N, self.D = Y.shape
        self.dobs = None if obs is None else obs.sum(1)
        self.impute = obs is not None and cfg.inpaint_mstep == "impute"
        # the E-step's parameters (see the module doc): a snapshot decoder, always; with >= 2
        # threads on CPU the E-step of the next chunk runs beside the M-step (overlap)
        self.workers = worker_threads() if Y.device.type == "cpu" else 1
        self.overlap = self.workers >= 2
        self.shadow = TVAEModel(copy.deepcopy(model.decoder), model.pi, model.sigma2)
        self.shadow_flat = flatten_params(list(self.shadow.decoder.parameters()),
                                          self.shadow.decoder.stored_transposed())
        self.opt = FlatAdam(list(model.decoder.parameters()),
                            transposed=model.decoder.stored_transposed())
        steps_per_epoch = math.ceil(self.N / cfg.batch_size)
        self.half = max(1, round(steps_per_epoch * cfg.half_cycle))
        self.step = 0
        self.p_bf = cfg.bitflip_frequency or 1.0 / cfg.H
        # chunk = a multiple of the batch size so every epoch has ceil(N / B) Adam steps, and
        # small enough that a chunk's (n, S, width) activations stay within ~2^24 entries
        width = max(cfg.H, *cfg.hidden, self.D)
        chunk = min(cfg.chunk_size, max(cfg.batch_size, ACT_BUDGET // (cfg.S * width)))
        self.chunk = max(1, chunk // cfg.batch_size) * cfg.batch_size

    @torch.no_grad()
    def epoch(self) -> dict:
        """One pass over all patches; returns F/N, sigma2 (internal units), sum(pi), #new states.

        Gradients are written by hand (Decoder.backward_from_output), so no autograd graph.
        """
        model, dev, dtype = self.model, self.Y.device, self.Y.dtype
        chunks = torch.randperm(self.N, generator=self.gen, device=dev).split(self.chunk)
        terms = LogJoint(model.pi, model.sigma2)  # fixed during the epoch
        sums = _EpochSums(F=torch.zeros((), dtype=torch.float64, device=dev),
                          n_new=torch.zeros((), dtype=torch.int64, device=dev),
                          A_pi=torch.zeros(self.cfg.H, dtype=dtype, device=dev),
                          A_sig=torch.zeros((), dtype=dtype, device=dev))
        self.shadow_flat.copy_(self.opt.flat)  # the E-steps' snapshot of the parameters
        with EStepStream(chunks, self._search, _select,
                         lambda idx, new: self._mstep_plan(idx, new[0], terms),
                         lambda: self.shadow_flat.copy_(self.opt.flat), self.overlap) as esteps:
            for i, idx in enumerate(chunks):
                (keys, new), plan = esteps.take(i)  # E-step: the chunk's new sets
                self.keys[idx] = keys
                sums.n_new += new.sum()
                self._mstep(idx, plan or self._mstep_plan(idx, keys, terms), sums, terms)
        # closed-form pi and sigma2 from the epoch's posterior statistics
        model.pi.copy_((sums.A_pi / self.N).clamp(PI_CLAMP, 1 - PI_CLAMP))
        denom = self.N * self.D if (self.obs is None or self.impute) else self.dobs.sum()
        model.sigma2.copy_((sums.A_sig / denom).clamp_min(1e-12))
        return {"F": sums.F.item() / self.N, "sigma2": model.sigma2.item(),
                "pi_sum": model.pi.sum().item(), "new_states": sums.n_new.item() / self.N}

    def _search(self, idx):
        """The evolutionary search of the chunk ``idx``'s E-step, on the snapshot decoder."""
        cfg = self.cfg
        return evaluate(self.shadow, self.Y[idx], None if self.obs is None else self.obs[idx],
                        None if self.dobs is None else self.dobs[idx], self.keys[idx],
                        P=cfg.P, C=cfg.C, G=cfg.G, selection=cfg.selection,
                        mutation=cfg.mutation, cross=cfg.crossover, p_bf=self.p_bf,
                        gen=self.gen, max_rows=cfg.max_rows, block=cfg.batch_size)

    def _distinct(self, keys: torch.Tensor) -> tuple[Codes, torch.Tensor]:
        """The distinct states of a chunk's sets ``keys`` (n, S, nw) as Codes, and each
        (patch, state) pair's index among them. Per mini-batch the decoder then runs once per
        distinct state (exact: gradients of repeated states are summed before backprop); the
        first layer is sparse if the density of the states held (with repeats) makes it pay."""
        uk, inv = unique_keys(keys.reshape(-1, keys.shape[-1]))
        density = float(popcount(uk).index_select(0, inv).double().mean())
        return Codes.from_keys(uk, self.cfg.H, sparse_pays(density, self.cfg.H, uk.device)), inv

    def _mstep_plan(self, idx, keys, terms: LogJoint) -> _ChunkPlan:
        """The M-step plan of the chunk ``idx`` with new sets ``keys`` (n, S, nw)."""
        S, per = self.cfg.S, self.cfg.batch_size * self.cfg.S
        codes, inv_c = self._distinct(keys)
        impute_or_full = self.dobs is None or self.impute  # imputed patches count all D
        base = terms.fixed(codes.matvec(terms.logit)[inv_c].view(len(idx), S),
                           self.D if impute_or_full else self.dobs[idx])
        uidx, sizes, inv = _block_distinct(inv_c, per, codes.R)
        return _ChunkPlan(codes=codes, inv=inv_c, base=base,
                          states=codes.select(uidx).split(sizes), invs=list(inv.split(per)))

    def _mstep(self, idx, plan: _ChunkPlan, sums: _EpochSums, terms: LogJoint) -> None:
        """Adam mini-batches over the chunk ``idx`` with its plan; adds the chunk's F and the
        pi, sigma2 statistics to ``sums``."""
        cfg, model = self.cfg, self.model
        dtype, dev, S, D = self.Y.dtype, self.Y.device, cfg.S, self.D
        n = len(idx)
        Yc = self.Y[idx]
        oc = None if self.obs is None else self.obs[idx]
        if self.impute:  # reference: fill missing entries with the current estimate
            dc = self.dobs[idx]
            keys = self.keys[idx]
            _, _, est = chunked_log_joint(model, Yc, None, oc, dc, cfg.max_rows,
                                          want_mean=True, keys=keys)
            Yc = torch.where(oc.bool(), Yc, est)
            oc = None
        q_all = torch.empty(n, S, dtype=dtype, device=dev)
        err_all = torch.empty(n, S, dtype=dtype, device=dev)
        lse_all = torch.empty(n, 1, dtype=dtype, device=dev)
        for k, a in enumerate(range(0, n, cfg.batch_size)):  # M-step (no autograd: see model)
            b = min(n, a + cfg.batch_size)
            lr = triangular_lr(self.step, cfg.lr_min, cfg.lr_max, self.half)
            states, inv = plan.states[k], plan.invs[k]
            o, acts = forward_distinct(model.decoder, states, inv)
            o = o.view(b - a, S, D)
            o.sub_(Yc[a:b].unsqueeze(1))
            if oc is not None:
                o.mul_(oc[a:b].unsqueeze(1))
            err, q, lse = err_all[a:b], q_all[a:b], lse_all[a:b]  # written in place
            torch.sum(o.square(), -1, out=err)
            torch.add(plan.base[a:b], err, alpha=-terms.inv2s2, out=q)  # log-joints
            torch.logsumexp(q, 1, keepdim=True, out=lse)
            q.sub_(lse).exp_()  # truncated posteriors
            # d(-F_batch/B)/d mu = q (mu - y) / (sigma2 B), masked like o
            g = o.mul_(torch.mul(q, 2.0 * terms.inv2s2 / (b - a)).unsqueeze(-1))
            backward_distinct(model.decoder, g.view(-1, D), inv, acts, states)
            self.opt.step(lr)
            self.step += 1
        sums.F += lse_all.sum()
        qu = torch.zeros(plan.codes.R, dtype=dtype, device=dev)
        qu.index_add_(0, plan.inv, q_all.view(-1))
        sums.A_pi += plan.codes.rmatvec(qu)
        sums.A_sig += (q_all * err_all).sum()

    def _map_chunks(self, fn) -> list:
        """``fn(idx)`` for consecutive chunks of all patches, in order (schedule.map_chunks)."""
        return map_chunks(fn, torch.arange(self.N, device=self.Y.device).split(self.chunk),
                          self.workers)

    def estimate(self, want_stats: bool = False) -> tuple[torch.Tensor, dict | None]:
        """Posterior means sum_s q_n(s) mu(s) (N, D) with the current parameters and K_n.

        With ``want_stats`` also the sparsity statistics of the truncated posteriors.
        """
        cfg, model = self.cfg, self.model
        H = cfg.H

        def one(idx):
            oc = None if self.obs is None else self.obs[idx]
            dc = None if self.dobs is None else self.dobs[idx]
            lpj, _, est = chunked_log_joint(model, self.Y[idx], None, oc, dc, cfg.max_rows,
                                            want_mean=True, keys=self.keys[idx])
            if not want_stats:
                return est, None, None
            q = torch.softmax(lpj, 1).double()
            k = popcount(self.keys[idx])
            hist = torch.zeros(H + 1, dtype=torch.float64, device=self.Y.device)
            hist.scatter_add_(0, k.flatten(), q.flatten())
            return est, (q * k).sum(), hist

        parts = self._map_chunks(one)
        stats = None
        if want_stats:  # summed in chunk order: the same numbers for any number of workers
            active = sum(p[1].item() for p in parts)
            hist = torch.stack([p[2] for p in parts]).sum(0)
            stats = {"active_mean": active / self.N, "active_hist": hist.cpu().numpy()}
        return torch.cat([p[0] for p in parts]), stats

    def free_energy(self) -> float:
        """F/N of the current sets and parameters (internal units)."""

        def one(idx):
            oc = None if self.obs is None else self.obs[idx]
            dc = None if self.dobs is None else self.dobs[idx]
            lpj, _, _ = chunked_log_joint(self.model, self.Y[idx], None, oc, dc,
                                          self.cfg.max_rows, keys=self.keys[idx])
            return torch.logsumexp(lpj, 1).sum().item()

        return sum(self._map_chunks(one)) / self.N

    # -- checkpoints (pipeline._checkpointer): the whole state at an epoch boundary -----------
    def state_dict(self) -> dict:
        """Everything an epoch depends on, as numpy arrays and ints: decoder parameters and the
        Adam moments (flat buffers), Adam's step count, the LR-schedule step, pi, sigma2, the
        bit-packed K_n and the generator state. Valid between epochs only."""
        def arr(t: torch.Tensor):
            return t.detach().cpu().numpy().copy()

        opt = self.opt  # parameters in their own shapes' order, whatever the memory layout
        return {"flat": arr(opt.canonical(opt.flat)), "adam_m": arr(opt.canonical(opt.m)),
                "adam_v": arr(opt.canonical(opt.v)),
                "pi": arr(self.model.pi), "sigma2": arr(self.model.sigma2),
                "keys": arr(self.keys), "generator": arr(self.gen.get_state()),
                "adam_t": int(self.opt.t), "step": int(self.step)}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output in place; checks every entry before changing any
        (ValueError says which one does not fit), so a bad state never loads half-way."""
        tensors = {"flat": self.opt.flat, "adam_m": self.opt.m, "adam_v": self.opt.v,
                   "pi": self.model.pi, "sigma2": self.model.sigma2, "keys": self.keys}
        for name, t in tensors.items():
            a = state.get(name)
            if (not hasattr(a, "shape") or tuple(a.shape) != tuple(t.shape)
                    or str(a.dtype) != str(t.dtype).replace("torch.", "")):
                raise ValueError(f"state entry {name!r} does not fit this model")
        gen = state.get("generator")
        if not hasattr(gen, "dtype") or gen.dtype != "uint8" or gen.ndim != 1:
            raise ValueError("state entry 'generator' is not a generator state")
        for name in ("adam_t", "step"):
            if isinstance(state.get(name), bool) or not isinstance(state.get(name), int) \
                    or state[name] < 0:
                raise ValueError(f"state entry {name!r} is not a step count")
        gen_before = self.gen.get_state()
        try:
            self.gen.set_state(torch.from_numpy(gen.copy()))
        except RuntimeError:
            self.gen.set_state(gen_before)
            raise ValueError("state entry 'generator' is not a generator state") from None
        with torch.no_grad():
            for name, t in tensors.items():  # in place: parameters are views of opt.flat
                value = torch.from_numpy(state[name].copy())
                if name in ("flat", "adam_m", "adam_v"):  # stored in the canonical order
                    self.opt.load_canonical(t, value)
                else:
                    t.copy_(value)
        self.opt.t = state["adam_t"]
        self.step = state["step"]


def run_epochs(trainer: Trainer, epochs: int, budget_s: float | None, on_epoch, *,
               start: int = 0, fit: float = 0.0) -> int:
    """Train for ``epochs`` (or until the epoch that crosses ``budget_s``); returns epochs run.

    ``on_epoch(epoch, stats, fit_seconds, epoch_seconds)`` is called after each epoch; time it
    spends (evaluation, checkpoints) is not counted as fit time. ``start`` epochs are already
    done (a resumed fit) and took ``fit`` seconds.
    """
    if budget_s is not None and start and fit >= budget_s:
        return start
    for e in range(start + 1, epochs + 1):
        t0 = time.perf_counter()
        # tiny gradients and Adam moments go subnormal early on; on x86 CPUs subnormal
        # arithmetic is ~100x slower, so flush them to zero during the epoch. torch has no getter
        # for this mode (set_flush_denormal returns whether the CPU supports it), so it goes back
        # to torch's default, off, for the caller's code.
        torch.set_flush_denormal(True)
        try:
            stats = trainer.epoch()
        finally:
            torch.set_flush_denormal(False)
        dt = time.perf_counter() - t0
        fit += dt
        on_epoch(e, stats, fit, dt)
        if budget_s is not None and fit >= budget_s:
            return e
    return max(epochs, start)
