"""FlatAdam: torch.optim.Adam's update on one flat buffer, whatever the parameters' layout."""

import numpy as np
import pytest
import torch

from evobench.tvae.adam import FlatAdam
from evobench.tvae.model import Decoder


def _decoder(seed=0):
    return Decoder(7, (5,), 3, generator=torch.Generator().manual_seed(seed),
                   dtype=torch.float64)


@pytest.mark.parametrize("transposed", [False, True])
def test_flat_adam_follows_torch_adam(transposed):
    """Same trajectory as torch.optim.Adam (no weight decay, no amsgrad) for changing LRs,
    with W1 laid out as itself or transposed in the flat buffer."""
    ours, ref = _decoder(), _decoder()
    opt = FlatAdam(list(ours.parameters()),
                   transposed=ours.stored_transposed() if transposed else ())
    assert ours.linears[0].weight.t().is_contiguous() is transposed
    torch_opt = torch.optim.Adam(ref.parameters(), lr=1.0, betas=(0.9, 0.999), eps=1e-8)
    rng = np.random.default_rng(0)
    for step, lr in enumerate([1e-2, 3e-2, 5e-3, 2e-2]):
        x = torch.as_tensor(rng.random((6, 7)))
        for dec in (ours, ref):
            dec.zero_grad(set_to_none=dec is ref)
            loss = (dec(x) ** 2).sum()
            grads = torch.autograd.grad(loss, list(dec.parameters()))
            for p, g in zip(dec.parameters(), grads):
                if dec is ours:
                    p.grad.copy_(g)  # .grad is a view of the flat gradient buffer
                else:
                    p.grad = g
        opt.step(lr)
        torch_opt.param_groups[0]["lr"] = lr
        torch_opt.step()
        for a, b in zip(ours.parameters(), ref.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14, msg=f"step {step}")


def test_canonical_order_is_each_parameter_row_major_and_round_trips():
    """Checkpoints hold the flat buffers in the parameters' own row-major order, so a file
    reads the same whatever layout the trainer keeps in memory."""
    dec = _decoder(1)
    before = [p.detach().clone() for p in dec.parameters()]
    opt = FlatAdam(list(dec.parameters()), transposed=dec.stored_transposed())
    for p, b in zip(dec.parameters(), before):  # values and shapes kept
        assert torch.equal(p, b)
    row_major = torch.cat([b.reshape(-1) for b in before])
    assert not torch.equal(opt.flat, row_major)  # W1 is laid out transposed in memory
    assert torch.equal(opt.canonical(opt.flat), row_major)
    opt.load_canonical(opt.m, row_major * 2)
    assert torch.equal(opt.canonical(opt.m), row_major * 2)
    other = _decoder(2)
    opt2 = FlatAdam(list(other.parameters()), transposed=other.stored_transposed())
    opt2.load_canonical(opt2.flat, opt.canonical(opt.flat))
    for a, b in zip(other.parameters(), before):
        assert torch.equal(a, b)


def test_trainer_state_holds_parameters_in_row_major_order():
    """A trainer's state (what checkpoints store) lists the decoder's parameters row-major,
    as before W1 was laid out transposed, so older checkpoints load into the same values."""
    from evobench.tvae.config import make_config
    from evobench.tvae.pipeline import build_trainer
    from evobench.tvae.presets import get_preset

    Y = np.random.default_rng(0).random((64, 16))
    cfg = make_config(get_preset("quick"), dict(patch_size=4, H=8, hidden=(6,), S=4, P=2, C=2,
                                                scale=1.0, chunk_size=32))
    tr = build_trainer(Y, None, cfg, torch.Generator().manual_seed(0), 0.1)
    tr.epoch()
    state = tr.state_dict()
    params = list(tr.model.decoder.parameters())
    want = np.concatenate([p.detach().numpy().ravel() for p in params])
    assert np.array_equal(state["flat"], want)
    fresh = build_trainer(Y, None, cfg, torch.Generator().manual_seed(5), 0.1)
    fresh.load_state_dict(state)
    for a, b in zip(fresh.model.decoder.parameters(), params):
        assert torch.equal(a, b)
    assert torch.equal(fresh.opt.m, tr.opt.m) and torch.equal(fresh.opt.v, tr.opt.v)
