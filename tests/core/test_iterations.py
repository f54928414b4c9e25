"""``evobench.iterations.run_iterations``: the loop the learned zero-shot baselines share."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stopping import stop_at_epoch

from evobench.api import EvobenchError, MethodContext, Stopped, run_iterations
from evobench.iterations import snapshot_steps


class _Blur:
    """A toy fit: a 3x3 kernel learned by Adam to map a noisy image onto itself shifted."""

    def __init__(self, image, seed=0, lr=0.05):
        self.gen = torch.Generator().manual_seed(seed)
        self.x = torch.as_tensor(image, dtype=torch.float32)[None, None]
        self.w = torch.nn.Parameter(torch.randn(1, 1, 3, 3, generator=self.gen) * 0.1)
        self.opt = torch.optim.Adam([self.w], lr=lr)
        self.steps = 0

    def step(self):
        noise = 0.01 * torch.randn(self.x.shape, generator=self.gen)
        out = torch.nn.functional.conv2d(self.x + noise, self.w, padding=1)
        loss = ((out - self.x) ** 2).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.steps += 1
        return float(loss.detach())

    def estimate(self, final=False):
        with torch.no_grad():
            return torch.nn.functional.conv2d(self.x, self.w, padding=1)[0, 0].double().numpy()

    def state(self):
        st = self.opt.state[self.w]
        return {"w": self.w.detach().numpy().copy(), "m": st["exp_avg"].numpy().copy(),
                "v": st["exp_avg_sq"].numpy().copy(), "t": int(st["step"]),
                "gen": self.gen.get_state().numpy(), "steps": self.steps}

    def load_state(self, state):
        if state["w"].shape != (1, 1, 3, 3):
            raise ValueError("w does not fit")
        with torch.no_grad():
            self.w.copy_(torch.from_numpy(state["w"]))
        self.opt.state[self.w] = {"step": torch.tensor(float(state["t"])),
                                  "exp_avg": torch.from_numpy(state["m"].copy()),
                                  "exp_avg_sq": torch.from_numpy(state["v"].copy())}
        self.gen.set_state(torch.from_numpy(state["gen"].copy()))
        self.steps = state["steps"]


IMAGE = np.random.default_rng(0).random((12, 12))
IDENT = {"toy": 1}


def _run(ctx=None, n=40, **kw):
    return run_iterations(_Blur(IMAGE), ctx or MethodContext(), iterations=n, kind="toy",
                          ident=IDENT, **kw)


def test_snapshots_trace_and_progress():
    events = []
    res = _run(MethodContext(sink=events.append, scorer=lambda img: {"psnr": 1.0}), n=40,
               log_every=10)
    assert res.iterations == 40 and not res.stopped_by_budget
    assert sorted(res.snapshots) == snapshot_steps(40) == [1, 2, 5, 10, 20, 40]
    assert np.array_equal(res.snapshots[40], res.image.astype(np.float32))
    assert [r["epoch"] for r in res.trace] == [1, 2, 5, 10, 20, 30, 40]
    assert all(np.isfinite(r["loss"]) and r["seconds"] >= 0 for r in res.trace)
    assert events[-1]["epoch"] == 40 and events[-1]["unit"] == "iteration"
    assert any("psnr" in e for e in events)  # snapshots are scored by the context


def test_budget_stops_after_the_crossing_step_with_a_snapshot():
    res = _run(MethodContext(budget_s=1e-9), n=40)
    assert res.iterations == 1 and res.stopped_by_budget
    assert sorted(res.snapshots) == [1] and res.trace[-1]["epoch"] == 1


def test_resume_is_bit_identical(tmp_path):
    full = _run(n=30, log_every=4)
    with stop_at_epoch({"n": 13}), pytest.raises(Stopped):
        _run(MethodContext(checkpoint_dir=tmp_path), n=30, log_every=4)
    ctx = MethodContext(checkpoint_dir=tmp_path)
    resumed = _run(ctx, n=30, log_every=4)
    assert ctx.resumes == 1 and ctx.resumed_at == 13
    assert np.array_equal(full.image, resumed.image)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in full.trace]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.trace]
    assert sorted(full.snapshots) == sorted(resumed.snapshots)


def test_same_result_at_any_thread_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = _run(n=10)
        torch.set_num_threads(2)
        b = _run(n=10)
        assert torch.get_num_threads() == 2  # restored after the fit
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(a.image, b.image)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_iteration_counts_are_refused(bad):
    with pytest.raises(EvobenchError, match="iterations must be a whole number"):
        _run(n=bad)


def test_a_diverging_loss_is_one_line():
    fit = _Blur(IMAGE)
    fit.step = lambda: float("nan")
    with pytest.raises(EvobenchError, match="loss became nan at iteration 1"):
        run_iterations(fit, MethodContext(), iterations=5, kind="toy", ident=IDENT)


def test_torch_state_round_trip_and_refusals():
    from evobench.api import load_torch_state, torch_state

    gen = torch.Generator().manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    net(torch.randn(2, 1, 5, 5, generator=gen)).sum().backward()
    opt.step()
    saved = torch_state(net, opt, {"g": gen})
    assert {"net.0.weight", "net.1.running_mean", "opt.0.exp_avg", "opt.0.step", "gen.g"} <= set(saved)
    other_gen = torch.Generator().manual_seed(9)
    twin = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    twin_opt = torch.optim.Adam(twin.parameters(), lr=0.1)
    load_torch_state(twin, twin_opt, {"g": other_gen}, saved)
    again = torch_state(twin, twin_opt, {"g": other_gen})
    assert saved.keys() == again.keys()
    assert all(np.array_equal(saved[k], again[k]) for k in saved)
    for key, bad, why in (("net.0.weight", np.zeros((3, 1, 3, 3)), "net.0.weight"),
                          ("opt.0.exp_avg", np.zeros(7), "opt.0.exp_avg"),
                          ("gen.g", np.zeros(3), "gen.g")):
        with pytest.raises(ValueError, match=why):
            load_torch_state(twin, twin_opt, {"g": other_gen}, saved | {key: bad})
    before = twin[0].weight.detach().clone()
    with pytest.raises(ValueError):  # nothing changes when an entry does not fit
        load_torch_state(twin, twin_opt, {"g": other_gen},
                         {**saved, "net.0.weight": saved["net.0.weight"] + 1, "gen.g": None})
    assert torch.equal(twin[0].weight, before)
