"""The E-step's parameter lag, as training.py's module docstring defines it: the E-step of chunk
i uses the parameters as they were before the M-step of chunk i-1 (chunks 0 and 1: the epoch's
start), held in the snapshot decoder; in line and with the E-step beside the M-step (overlap)
alike. Tested directly on the decoder the search runs on, so a snapshot that is never refreshed
(or refreshed a chunk late or early) fails here, not only through an end-to-end PSNR."""

import numpy as np
import pytest
import torch

from evobench.tvae import training
from evobench.tvae.config import make_config
from evobench.tvae.pipeline import build_trainer
from evobench.tvae.presets import get_preset
from evobench.tvae.training import Trainer


def _params(decoder) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).clone() for p in decoder.parameters()])


@pytest.mark.parametrize("overlap", [False, True])
def test_estep_of_chunk_i_uses_the_parameters_before_the_mstep_of_chunk_i_minus_1(
        monkeypatch, overlap):
    cfg = make_config(get_preset("quick"), dict(H=8, hidden=(8,), S=8, P=2, C=2, patch_size=3,
                                                batch_size=16, chunk_size=32, epochs=2,
                                                dtype="float64"))
    rng = np.random.default_rng(0)
    Y = rng.normal(128, 30, size=(32 * 5 + 7, 9))  # 6 chunks, the last one short
    gen = torch.Generator().manual_seed(0)
    trainer = build_trainer(Y, None, cfg, gen, 900.0)
    trainer.overlap = overlap
    searched, before_mstep = [], []
    evaluate, mstep = training.evaluate, Trainer._mstep

    def spy_evaluate(model, *args, **kwargs):  # the decoder the search really runs on
        searched.append(_params(model.decoder))
        return evaluate(model, *args, **kwargs)

    def spy_mstep(self, idx, plan, sums, terms):
        before_mstep.append(_params(self.model.decoder))
        return mstep(self, idx, plan, sums, terms)

    monkeypatch.setattr(training, "evaluate", spy_evaluate)
    monkeypatch.setattr(Trainer, "_mstep", spy_mstep)
    for _epoch in range(2):
        searched.clear()
        before_mstep.clear()
        start = _params(trainer.model.decoder)
        trainer.epoch()
        n = len(before_mstep)
        assert n == len(searched) == 6
        assert torch.equal(before_mstep[0], start)
        assert torch.equal(searched[0], start) and torch.equal(searched[1], start)
        for i in range(2, n):
            assert torch.equal(searched[i], before_mstep[i - 1]), i
            # a real lag: the parameters moved during the M-step of chunk i-1
            assert not torch.equal(searched[i], before_mstep[i]), i
