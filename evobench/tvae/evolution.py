"""The evolutionary E-step: parent selection, mutation, crossover and the top-S set update.

Everything works on whole batches of patches at once ((B, P, H) tensors); no operator loops over
patches. Draws come only from the generator passed in, so a seed fixes the whole search.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from evobench.tvae.config import MUTATIONS, SELECTIONS  # noqa: F401 (the choices, torch-free)
from evobench.tvae.model import TVAEModel, chunked_log_joint
from evobench.tvae.states import first_occurrence, pack, unpack


def _uniform(shape: tuple[int, ...], like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=gen, device=like.device, dtype=torch.float32)


def select_parents(lpj: torch.Tensor, P: int, method: str, gen: torch.Generator, *,
                   block: int = 32, stored_best_first: bool = False) -> torch.Tensor:
    """Indices (B, P) of parents among the M candidates of each row of ``lpj`` (B, M).

    tvo: the published code's batched operator (see tvo_parents). fitness: P distinct
    candidates drawn without replacement with probability proportional to the shifted log-joint
    f = lpj - 2 min(min lpj, 0) (the paper's description and the reference NumPy code), done
    exactly with the Gumbel-top-k trick. uniform: P distinct candidates uniformly. best: P
    copies of the argmax (evobench's greedy climb).
    """
    B, M = lpj.shape
    if method == "tvo":
        return tvo_parents(lpj, P, gen, block=block, reverse=stored_best_first)
    if method == "best":
        return lpj.argmax(1, keepdim=True).expand(B, P)
    u = _uniform((B, M), lpj, gen).clamp_(1e-12, 1.0 - 1e-7)
    if method == "uniform":
        return torch.topk(u, P, dim=1).indices
    lp = lpj.float()
    low = torch.clamp(lp.min(1, keepdim=True).values, max=0.0)
    f = (lp - 2 * low).clamp_min(1e-30)
    gumbel = -torch.log(-torch.log(u))
    return torch.topk(torch.log(f) + gumbel, P, dim=1).indices


def tvo_parents(lpj: torch.Tensor, P: int, gen: torch.Generator, *, block: int = 32,
                reverse: bool = False) -> torch.Tensor:
    """The published code's batched "fitness" parent selection, re-derived from its behaviour
    (docs/tvae-method.md section 3.2), vectorised over groups of ``block`` rows.

    The reference runs it on one mini-batch of ``block`` patches at a time: the fitness
    f = lpj - 2 min(min lpj, 0) takes its minimum and its normalisation over the whole
    (block x M) tensor, so each row's probabilities sum to about 1/block. Each of the P draws
    (with replacement) takes u ~ U(0, 1) and returns M-1 minus the number of cumulative row
    sums above u: a draw in [c_{j-1}, c_j) gives j-1, a draw past the row's total (probability
    ~1 - 1/block) or below c_0 gives the last candidate. So the last candidate wins ~97 % of
    draws for block 32, the others share the rest shifted by one index.

    "Last" is in the reference's storage order: K_n ascending by log-joint (the best state of
    the previous E-step last), or the previous generation's children in generation order.
    evobench stores K_n best first, so generation 1 passes ``reverse=True`` and the candidate
    order is flipped before, and the indices mapped back after.
    """
    B, M = lpj.shape
    lp = (lpj.flip(1) if reverse else lpj).double()
    grp = torch.arange(B, device=lp.device) // block
    n_grp = int(grp[-1]) + 1 if B else 0
    row_min = lp.min(1).values
    gmin = torch.full((n_grp,), torch.inf, dtype=lp.dtype, device=lp.device)
    gmin = gmin.scatter_reduce(0, grp, row_min, reduce="amin")
    f = lp - 2 * gmin.clamp(max=0.0)[grp].unsqueeze(1)
    total = torch.zeros(n_grp, dtype=lp.dtype, device=lp.device).index_add_(0, grp, f.sum(1))
    cum = torch.cumsum(f / total[grp].unsqueeze(1), 1)  # (B, M), last entry ~ 1/block
    u = _uniform((B, P), lpj, gen).double()
    above = M - torch.searchsorted(cum, u, right=True)  # how many c_j > u
    idx = (M - 1 - above) % M  # -1 (u below c_0) wraps to the last candidate
    return (M - 1 - idx) if reverse else idx


def distinct_bits(B: int, P: int, H: int, C: int, device: torch.device,
                  gen: torch.Generator) -> torch.Tensor:
    """(B, P, C) int64: for each (b, p) a uniformly random set of C distinct positions in 0..H-1.

    Floyd's algorithm, vectorised over (b, p): C draws of shape (B, P) instead of H uniforms and
    a top-k per parent (which cost more than the rest of the mutation).
    """
    bits = torch.empty(B, P, C, dtype=torch.int64, device=device)
    for k, j in enumerate(range(H - C, H)):
        t = torch.randint(0, j + 1, (B, P), generator=gen, device=device)
        if k:
            t = torch.where((bits[..., :k] == t.unsqueeze(-1)).any(-1), j, t)
        bits[..., k] = t
    return bits


def randflip(parents: torch.Tensor, C: int, gen: torch.Generator) -> torch.Tensor:
    """(B, P, H) -> (B, P*C, H): each child flips exactly one bit, C different bits per parent."""
    B, P, H = parents.shape
    bits = distinct_bits(B, P, H, C, parents.device, gen)
    flips = torch.zeros(B, P, C, H, dtype=parents.dtype, device=parents.device)
    flips.scatter_(3, bits.unsqueeze(-1), 1)
    return (parents.unsqueeze(2) ^ flips).reshape(B, P * C, H)


def randflip_keys(keys: torch.Tensor, H: int, C: int, gen: torch.Generator) -> torch.Tensor:
    """``pack(randflip(unpack(keys), C, gen))`` without the states: (B, P, nw) -> (B, P*C, nw).

    Same draws as randflip; a child's key is its parent's with one bit toggled (XOR), bit h
    being bit h % 64 of word h // 64 (the layout of states.pack).
    """
    B, P, nw = keys.shape
    bits = distinct_bits(B, P, H, C, keys.device, gen)  # (B, P, C)
    one = torch.ones((), dtype=torch.int64, device=keys.device)
    mask = torch.zeros(B, P, C, nw, dtype=torch.int64, device=keys.device)
    mask.scatter_(3, (bits // 64).unsqueeze(-1), torch.bitwise_left_shift(one, bits % 64)
                  .unsqueeze(-1))
    return (keys.unsqueeze(2) ^ mask).reshape(B, P * C, nw)


def sparseflip(parents: torch.Tensor, C: int, pi: torch.Tensor, p_bf: float,
               gen: torch.Generator) -> torch.Tensor:
    """(B, P, H) -> (B, P*C, H): independent flips that keep about H*mean(pi) ones.

    For a parent with m ones: p(0->1) = (c - m + H p_bf) / (2 (H - m)) and
    p(1->0) = (H p_bf - (c - m)) / (2 m), c = H mean(pi), so H p_bf bits flip on average.
    """
    B, P, H = parents.shape
    m = parents.sum(-1, dtype=torch.float32)  # (B, P)
    c = H * pi.float().mean()
    hp = H * p_bf
    p0 = ((c - m + hp) / (2 * (H - m)).clamp_min(1.0)).clamp(0.0, 1.0)
    p1 = ((hp - (c - m)) / (2 * m).clamp_min(1.0)).clamp(0.0, 1.0)
    par = parents.unsqueeze(2).expand(B, P, C, H)
    prob = torch.where(par.bool(), p1[:, :, None, None], p0[:, :, None, None])
    flips = (_uniform((B, P, C, H), parents, gen) < prob).to(parents.dtype)
    return (par ^ flips).reshape(B, P * C, H)


def crossover(parents: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """(B, P, H) -> (B, P(P-1), H): one-point crossover of every unordered pair, both ways."""
    B, P, H = parents.shape
    i, j = torch.triu_indices(P, P, 1, device=parents.device)
    u = 1 + torch.floor(_uniform((B, i.numel()), parents, gen) * (H - 1)).long()  # cut in 1..H-1
    head = torch.arange(H, device=parents.device) < u.unsqueeze(-1)  # (B, pairs, H)
    a, b = parents[:, i], parents[:, j]
    return torch.cat([torch.where(head, a, b), torch.where(head, b, a)], dim=1)


def take_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x[b, idx[b, j]] for x (B, M, K) and idx (B, J) -> (B, J, K).

    Same as gather with an index expanded over K, but as one row lookup on the flattened
    (B*M, K) view: whole contiguous rows are copied instead of K scattered reads per row.
    """
    B, M, K = x.shape
    rows = idx + torch.arange(B, device=idx.device).unsqueeze(1) * M
    return x.reshape(B * M, K).index_select(0, rows.reshape(-1)).view(B, idx.shape[1], K)


def _children(model: TVAEModel, pkeys: torch.Tensor, C: int, mutation: str, cross: bool,
              p_bf: float, gen: torch.Generator) -> torch.Tensor:
    """The children's keys (B, n_children, nw) of parents' keys ``pkeys`` (B, P, nw)."""
    H = model.H
    if mutation == "randflip" and not cross:
        return randflip_keys(pkeys, H, C, gen)
    parents = unpack(pkeys, H, torch.uint8)
    n_per = C
    if cross:
        parents = crossover(parents, gen)
        n_per = 1
    if mutation == "randflip":
        return pack(randflip(parents, n_per, gen))
    return pack(sparseflip(parents, n_per, model.pi, p_bf, gen))


@dataclass
class Candidates:
    """An E-step's candidates per patch: the old set K_n (its S states first, best first),
    then the children of every generation, with their log-joints."""
    keys: torch.Tensor  # (B, S + n_children, n_words)
    lpj: torch.Tensor  # (B, S + n_children)
    S: int


def evaluate(model: TVAEModel, Y: torch.Tensor, obs: torch.Tensor | None,
             dobs: torch.Tensor | None, keys: torch.Tensor, *, P: int, C: int, G: int,
             selection: str, mutation: str, cross: bool, p_bf: float, gen: torch.Generator,
             max_rows: int, block: int = 32) -> Candidates:
    """The evolutionary search of an E-step (see ``estep``): log-joints of the sets ``keys``
    and G generations of children, each bred from the previous one's best. All the E-step's
    draws and decoder passes are here; ``select`` only compares."""
    lpj, _, _ = chunked_log_joint(model, Y, None, obs, dobs, max_rows, keys=keys)
    pool, pool_lpj = keys, lpj
    new_keys, new_lpj = [], []
    for g in range(G):
        # generation 1 selects from K_n (stored best first), later ones from the previous
        # generation's children, in generation order
        idx = select_parents(pool_lpj, P, selection, gen, block=block,
                             stored_best_first=g == 0)
        ckeys = _children(model, take_rows(pool, idx), C, mutation, cross, p_bf, gen)
        clpj, _, _ = chunked_log_joint(model, Y, None, obs, dobs, max_rows, keys=ckeys)
        new_keys.append(ckeys)
        new_lpj.append(clpj)
        pool, pool_lpj = ckeys, clpj
    return Candidates(keys=torch.cat([keys, *new_keys], 1), lpj=torch.cat([lpj, *new_lpj], 1),
                      S=keys.shape[1])


def select(cands: Candidates, a: int = 0, b: int | None = None
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The new sets of patches a..b-1 of ``cands``: their S best distinct candidates (keys
    (b-a, S, n_words), best first), those log-joints and how many are new per patch.

    Row by row, so the rows may be split among threads in any way: the same numbers.
    """
    keys, lpj, S = cands.keys[a:b], cands.lpj[a:b], cands.S
    lpj = torch.where(first_occurrence(keys), lpj, torch.full_like(lpj, -torch.inf))
    top = torch.topk(lpj, S, dim=1)
    return take_rows(keys, top.indices), top.values, (top.indices >= S).sum(1)


def estep(model: TVAEModel, Y: torch.Tensor, obs: torch.Tensor | None,
          dobs: torch.Tensor | None, keys: torch.Tensor, *, P: int, C: int, G: int,
          selection: str, mutation: str, cross: bool, p_bf: float, gen: torch.Generator,
          max_rows: int, want_states: bool = True, block: int = 32
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One evolutionary update of the sets ``keys`` (B, S, n_words) for fixed parameters:
    ``evaluate`` then ``select``.

    The sets are stored best first (descending log-joint). ``block`` is the mini-batch size the
    ``tvo`` selection normalises over (rows 0..block-1, block..2 block-1, ... of this batch).

    Returns the new keys, their log-joints (B, S), the number of new states per patch and (with
    ``want_states``) the new states themselves (B, S, H) uint8, else None.
    Children that repeat each other or a state already in K_n are discarded before the top-S
    choice, and the old states compete too, so no patch's truncated free energy decreases.

    Works on packed keys: each distinct state of the chunk is unpacked and run through the
    decoder once (chunked_log_joint); randflip children are their parents' keys with one bit
    toggled, so only the P parents per patch are ever unpacked (for the other operators).

    The many keyword-only parameters are the EA's hyperparameters, one per published knob
    (P, C, G, selection, mutation, crossover, bit-flip probability) plus the generator, the
    memory bound and the tvo block; callers name each.
    """
    cands = evaluate(model, Y, obs, dobs, keys, P=P, C=C, G=G, selection=selection,
                     mutation=mutation, cross=cross, p_bf=p_bf, gen=gen, max_rows=max_rows,
                     block=block)
    kept_keys, kept_lpj, n_new = select(cands)
    kept = unpack(kept_keys, model.H, torch.uint8) if want_states else None
    return kept_keys, kept_lpj, n_new, kept
