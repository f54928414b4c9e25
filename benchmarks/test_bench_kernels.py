"""Micro-benchmarks of the TVAE hot paths on a fixed 64 x 64 crop (issue #5).

One E-step (EA generation with scoring, duplicate removal and top-S update) on a chunk of 2,048
patches, the log-joint evaluation of (2,048 x 32) states, and a whole training epoch on the crop.
Run with ``tox -e bench`` or ``pytest benchmarks/test_bench_kernels.py --benchmark-enable``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evobench.patches import extract_patches
from evobench.tvae.config import make_config
from evobench.tvae.evolution import estep
from evobench.tvae.model import chunked_log_joint
from evobench.tvae.pipeline import build_trainer
from evobench.tvae.presets import get_preset
from evobench.tvae.states import unpack

CONFIG = dict(patch_size=8, stride=1, H=64, hidden=(64,), S=32, P=5, C=4, G=1, batch_size=32)
CHUNK = 2048


@pytest.fixture(autouse=True)
def single_thread():
    """Kernels are timed on one torch thread: at these sizes two intra-op threads were ~3x
    slower on a 2-vCPU machine (137 vs 45 ms per log-joint call), which would measure the
    thread pool rather than the kernel. test_bench_tvae.py times whole epochs at 1 and 2 threads.
    As during training, subnormal floats are flushed (x86 is ~100x slower on them)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)
    torch.set_num_threads(threads)


@pytest.fixture
def trainer(image256):
    rng = np.random.default_rng(0)
    crop = image256[96:160, 96:160]
    noisy = crop + (25 / 255) * rng.standard_normal(crop.shape)
    cfg = make_config(get_preset("quick"), CONFIG)
    Y = extract_patches(noisy, cfg.patch_size, cfg.stride) * cfg.scale
    tr = build_trainer(Y, None, cfg, torch.Generator().manual_seed(0), (25.0 * cfg.scale / 255) ** 2)
    tr.epoch()  # past the all-equal initial sets: realistic, diverse K_n
    return tr


def test_ea_generation(benchmark, trainer):
    cfg, n = trainer.cfg, min(CHUNK, trainer.N)
    Y, keys = trainer.Y[:n], trainer.keys[:n]

    def run():
        with torch.no_grad():
            return estep(trainer.model, Y, None, None, keys, P=cfg.P, C=cfg.C, G=cfg.G,
                         selection=cfg.selection, mutation=cfg.mutation, cross=cfg.crossover,
                         p_bf=1.0 / cfg.H, gen=torch.Generator().manual_seed(1),
                         max_rows=cfg.max_rows)

    new_keys, lpj, *_ = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    assert new_keys.shape == keys.shape and torch.isfinite(lpj).all()
    benchmark.extra_info.update(patches=n, children_per_patch=cfg.P * cfg.C * cfg.G)


def test_log_joint(benchmark, trainer):
    n = min(CHUNK, trainer.N)
    states = unpack(trainer.keys[:n], trainer.model.H, torch.float32)

    def run():
        with torch.no_grad():
            return chunked_log_joint(trainer.model, trainer.Y[:n], states, None, None,
                                     trainer.cfg.max_rows)

    lpj, err, _ = benchmark.pedantic(run, rounds=10, iterations=1, warmup_rounds=1)
    assert lpj.shape == states.shape[:2] and torch.isfinite(lpj).all() and (err >= 0).all()
    benchmark.extra_info.update(states=int(states.shape[0] * states.shape[1]))


def test_epoch_on_crop(benchmark, trainer):
    stats = benchmark.pedantic(trainer.epoch, rounds=3, iterations=1)
    assert np.isfinite(stats["F"])
    benchmark.extra_info.update(patches=trainer.N)


@pytest.mark.parametrize("sparse", [True, False], ids=["gather-sum", "dense"])
@pytest.mark.parametrize("H,width,k", [(64, 64, 1.6), (512, 512, 1.6)])
def test_first_layer(benchmark, sparse, H, width, k):
    """First decoder layer of 8,192 binary states with k active units on average (plus W1's
    gradient): gather-sum over active units vs the dense product. The engine picks by measured
    density (evobench.tvae.codes.sparse_pays)."""
    from evobench.tvae.codes import Codes
    from evobench.tvae.model import Decoder

    g = torch.Generator().manual_seed(0)
    dec = Decoder(H, (width,), 64, generator=g)
    for p in dec.parameters():
        p.requires_grad_(False)
        p.grad = torch.zeros_like(p)
    s = (torch.rand(8192, H, generator=g) < k / H).to(torch.uint8)
    grad_out = torch.randn(8192, 64, generator=g)

    def run():
        acts = dec.hidden(Codes(s, sparse))
        dec.backward_from_output(grad_out, acts)
        return acts

    benchmark.pedantic(run, rounds=10, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(H=H, width=width, mean_active=k, chosen=Codes(s).sparse)
