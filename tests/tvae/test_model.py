"""Log-joints against the formula, and the truncated posterior against full enumeration."""

import copy
import itertools
import math

import numpy as np
import pytest
import torch

from evobench.tvae.adam import FlatAdam
from evobench.tvae.codes import Codes
from evobench.tvae.model import (
    Decoder,
    TVAEModel,
    backward_distinct,
    chunked_log_joint,
    forward_distinct,
)
from evobench.tvae.states import initial_states, pack, unique_keys, unpack


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


def _model(H=5, D=6, hidden=(7,), seed=0, activation="relu"):
    g = torch.Generator().manual_seed(seed)
    dec = Decoder(H, hidden, D, activation, "xavier", g, torch.float64)
    pi = torch.rand(H, generator=g, dtype=torch.float64) * 0.8 + 0.1
    return TVAEModel(dec, pi, torch.tensor(0.37, dtype=torch.float64)), g


def _distinct(states):
    """The distinct rows of binary states (R, H) and each row's index among them."""
    uk, inv = unique_keys(pack(states))
    return unpack(uk, states.shape[1], torch.uint8), inv


def _direct(model, y, s, obs=None):
    """log p(s, y) written out with numpy from the published formula."""
    pi = model.pi.numpy()
    s2 = float(model.sigma2)
    mu = model.decoder(torch.as_tensor(s, dtype=torch.float64)[None]).detach().numpy()[0]
    obs = np.ones_like(y, dtype=bool) if obs is None else obs
    prior = np.sum(s * np.log(pi) + (1 - s) * np.log(1 - pi))
    d = obs.sum()
    lik = -0.5 * d * math.log(2 * math.pi * s2) - np.sum((y - mu)[obs] ** 2) / (2 * s2)
    return prior + lik


def test_log_joint_matches_formula_with_missing_entries():
    model, g = _model()
    rng = np.random.default_rng(1)
    B, S, H, D = 4, 3, 5, 6
    Y = rng.normal(size=(B, D))
    obs = rng.random((B, D)) > 0.3
    obs[0] = True
    states = rng.integers(0, 2, size=(B, S, H))
    Yt = torch.as_tensor(np.where(obs, Y, 0.0))
    lpj, err = model.log_joint(Yt, torch.as_tensor(states, dtype=torch.float64),
                               torch.as_tensor(obs, dtype=torch.float64),
                               torch.as_tensor(obs.sum(1), dtype=torch.float64))
    for b in range(B):
        for k in range(S):
            assert abs(float(lpj[b, k]) - _direct(model, Y[b], states[b, k], obs[b])) < 1e-9
    full, _ = model.log_joint(torch.as_tensor(Y), torch.as_tensor(states, dtype=torch.float64))
    assert abs(float(full[1, 2]) - _direct(model, Y[1], states[1, 2])) < 1e-9
    # the chunked pass (memory-bounded) gives the same numbers
    clpj, cerr, _ = chunked_log_joint(model, Yt, torch.as_tensor(states, dtype=torch.float64),
                                      torch.as_tensor(obs, dtype=torch.float64),
                                      torch.as_tensor(obs.sum(1), dtype=torch.float64),
                                      max_rows=4)
    torch.testing.assert_close(clpj, lpj)
    torch.testing.assert_close(cerr, err)


def test_full_enumeration_gives_exact_posterior():
    H, D = 4, 6
    model, g = _model(H=H, D=D, activation="leaky_relu")
    states = initial_states(2**H, H, g)
    assert len({tuple(r) for r in states.tolist()}) == 2**H
    rng = np.random.default_rng(2)
    y = rng.normal(size=D)
    lpj, _, mean = chunked_log_joint(model, torch.as_tensor(y)[None],
                                     states.double()[None], None, None, 1024, want_mean=True)
    q = torch.softmax(lpj[0], 0).numpy()
    # exact posterior by enumerating {0,1}^H independently of the engine's state generator
    allst = np.array(list(itertools.product([0, 1], repeat=H)))
    logp = np.array([_direct(model, y, s) for s in allst])
    exact = np.exp(logp - logp.max())
    exact /= exact.sum()
    order = {tuple(s): i for i, s in enumerate(allst)}
    mine = np.zeros(2**H)
    for s, qs in zip(states.tolist(), q):
        mine[order[tuple(s)]] = qs
    np.testing.assert_allclose(mine, exact, atol=1e-12)
    # the free energy over all states is the exact log-likelihood
    exact_ll = logp.max() + np.log(np.exp(logp - logp.max()).sum())
    assert abs(float(torch.logsumexp(lpj[0], 0)) - exact_ll) < 1e-9
    mus = model.decoder(torch.as_tensor(allst, dtype=torch.float64)).detach().numpy()
    np.testing.assert_allclose(mean[0].numpy(), exact @ mus, atol=1e-10)


@pytest.mark.parametrize("activation,hidden", [("relu", (7,)), ("leaky_relu", (6, 5))])
@pytest.mark.parametrize("flat", [False, True])
def test_hand_written_gradient_equals_autograd(activation, hidden, flat):
    """The M-step's manual backprop gives the gradient of -F_batch/B that autograd gives, to
    rounding in float64 (a leaky-relu slope rounded to float32 is ~1e-9 off); also with the
    parameters in the trainer's flat buffer (W1 laid out transposed)."""
    model, g = _model(H=5, D=6, hidden=hidden, activation=activation)
    dec = model.decoder
    if flat:
        FlatAdam(list(dec.parameters()), transposed=dec.stored_transposed())
    rng = np.random.default_rng(3)
    B, S = 4, 6
    Y = torch.as_tensor(rng.normal(size=(B, 6)))
    obs = torch.as_tensor(rng.random((B, 6)) > 0.3, dtype=torch.float64)
    states = torch.as_tensor(rng.integers(0, 2, size=(B, S, 5)), dtype=torch.float64)
    with torch.enable_grad():
        lpj, _ = model.log_joint(Y * obs, states, obs, obs.sum(1))
        loss = -torch.logsumexp(lpj, 1).sum() / B
        auto = torch.autograd.grad(loss, list(dec.parameters()))
    o, acts = dec.residual(states, Y * obs, obs)
    q = torch.softmax(lpj.detach(), 1)
    dec.backward_from_output((o * (q / (model.sigma2 * B)).unsqueeze(-1)).view(-1, 6), acts)
    for p, a in zip(dec.parameters(), auto):
        torch.testing.assert_close(p.grad, a, rtol=1e-12, atol=1e-14)


def _sparse_states(rng, R, H, k):
    """R states with about k active units each, many repeated (as in real K_n)."""
    base = (rng.random((max(R // 4, 1), H)) < k / H).astype(np.uint8)
    base[0] = 0  # the all-zero state is always among them
    return torch.as_tensor(base[rng.integers(0, len(base), R)])


@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("H,hidden", [(40, (9,)), (40, ()), (12, (6, 5))])
def test_sparse_first_layer_and_its_gradient_equal_the_dense_ones(H, hidden, flat):
    """Gather-sum over active units == b1 + W1 s; scatter-add gradient == g^T s; also with
    the parameters in the trainer's flat buffer (W1 laid out transposed)."""
    model, _ = _model(H=H, D=6, hidden=hidden, activation="leaky_relu" if len(hidden) > 1
                      else "relu")
    dec = model.decoder
    if flat:
        FlatAdam(list(dec.parameters()), transposed=dec.stored_transposed())
        assert dec.linears[0].weight.t().is_contiguous()
    rng = np.random.default_rng(5)
    s = _sparse_states(rng, 50, H, 2.0)
    sparse, dense = Codes(s, sparse=True), Codes(s, sparse=False)
    assert sparse.sparse and not dense.sparse and sparse.cols.numel() == int(s.sum())
    ref = dec(s.double())
    out_s = dec.output(dec.hidden(sparse))
    torch.testing.assert_close(out_s, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dec.output(dec.hidden(dense)), ref, rtol=0, atol=0)
    g = torch.as_tensor(rng.normal(size=(50, 6)))
    grads = []
    for c in (sparse, dense):
        dec.backward_from_output(g, dec.hidden(c))
        grads.append([p.grad.clone() for p in dec.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # matvec (the prior term s . logit) both ways
    v = torch.as_tensor(rng.normal(size=H))
    torch.testing.assert_close(sparse.matvec(v), s.double() @ v, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("H", [40, 64, 130])
def test_codes_from_packed_keys_and_row_selection_equal_those_of_the_states(H):
    """Codes built from bit-packed keys (no unpacking) and a selection of their rows hold the
    same active-unit lists as Codes of the unpacked states; rmatvec is sum_r w_r s_r."""
    from evobench.tvae.states import popcount

    rng = np.random.default_rng(H)
    s = _sparse_states(rng, 70, H, 2.5)
    s[3] = 1  # a dense row, and the all-zero row is among them
    keys = pack(s)
    assert torch.equal(popcount(keys), s.sum(1, dtype=torch.int64))
    ref = Codes(s, sparse=True)
    c = Codes.from_keys(keys, H, sparse=True)
    for name in ("rows", "cols", "offsets"):
        assert torch.equal(getattr(c, name), getattr(ref, name)), name
    idx = torch.as_tensor(rng.permutation(70)[:33])
    sel, ref_sel = c.select(idx), Codes(s[idx], sparse=True)
    for name in ("rows", "cols", "offsets"):
        assert torch.equal(getattr(sel, name), getattr(ref_sel, name)), name
    for dt in (torch.float64, torch.uint8):  # sparse codes' dense form, in the dtype asked
        d = c.dense(dt)
        assert d.dtype == dt and torch.equal(d, s.to(dt))
    dense = Codes.from_keys(keys, H, sparse=False)
    assert not dense.sparse and torch.equal(dense.dense(torch.uint8), s)
    assert torch.equal(dense.select(idx).dense(torch.uint8), s[idx])
    w = torch.as_tensor(rng.random(70))
    for codes in (c, dense):
        torch.testing.assert_close(codes.rmatvec(w), w @ s.double(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sparse", [True, False])
def test_codes_split_into_blocks_equals_codes_of_each_block(sparse):
    """split gives consecutive row blocks (empty ones too) whose lists, first layers and
    dense forms are those of Codes built from each block's states."""
    rng = np.random.default_rng(7)
    s = _sparse_states(rng, 50, 40, 2.0)
    s[10] = 1  # a dense row
    s[20] = 0
    sizes = [7, 0, 13, 1, 29]
    blocks = Codes(s, sparse=sparse).split(sizes)
    dec = _model(H=40, D=3, hidden=(5,))[0].decoder
    for block, rows in zip(blocks, torch.arange(50).split(sizes)):
        ref = Codes(s[rows], sparse=sparse)
        assert block.sparse is sparse and block.R == len(rows)
        assert torch.equal(block.dense(torch.uint8), s[rows])
        if sparse:
            for name in ("rows", "cols", "offsets"):
                assert torch.equal(getattr(block, name), getattr(ref, name)), name
        assert torch.equal(dec.first_layer(block), dec.first_layer(ref))


def test_sparse_path_is_chosen_from_the_measured_density():
    rng = np.random.default_rng(0)
    assert Codes(_sparse_states(rng, 64, 512, 2.0)).sparse  # 2 of 512: gather-sum
    assert not Codes(_sparse_states(rng, 64, 64, 20.0)).sparse  # 20 of 64: dense product
    assert not Codes(_sparse_states(rng, 64, 8, 1.0)).sparse  # tiny H: dense


def test_sparse_path_threshold_is_one_plus_the_mean_active_units_times_the_cost():
    """Sparse exactly when (1 + mean active units per row) * SPARSE_COST < H, the mean over
    the rows given (one row: its own count), for Codes of states and of packed keys alike."""
    import evobench.tvae.codes as codes_mod

    cost = codes_mod.SPARSE_COST["cpu"]
    for R, k in ((1, 2), (6, 1)):
        edge = (1 + k) * cost
        assert edge == int(edge)
        for H, want in ((int(edge), False), (int(edge) + 1, True)):
            s = torch.zeros(R, H, dtype=torch.uint8)
            s[:, :k] = 1
            assert Codes(s).sparse is want, (R, k, H)
            assert Codes.from_keys(pack(s), H).sparse is want, (R, k, H)


@pytest.mark.parametrize("want_mean", [False, True])
def test_log_joints_of_shared_states_equal_the_per_row_pass(want_mean):
    """chunked_log_joint runs each distinct state once and gathers: same numbers as running
    every (patch, state) row through the decoder, for any max_rows and with missing data."""
    model, _ = _model(H=70, D=6, hidden=(8,))  # 2 key words
    rng = np.random.default_rng(2)
    B, S = 9, 7
    states = _sparse_states(rng, B * S, 70, 1.5).view(B, S, 70)
    Y = torch.as_tensor(rng.normal(size=(B, 6)))
    obs = torch.as_tensor(rng.random((B, 6)) > 0.3, dtype=torch.float64)
    lpj, err = model.log_joint(Y * obs, states.double(), obs, obs.sum(1))
    for max_rows in (5, 1000):
        c_lpj, c_err, mean = chunked_log_joint(model, Y * obs, states, obs, obs.sum(1),
                                               max_rows, want_mean=want_mean,
                                               keys=pack(states) if max_rows == 5 else None)
        torch.testing.assert_close(c_lpj, lpj, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(c_err, err, rtol=1e-12, atol=1e-12)
        if want_mean:
            mu = model.decoder(states.double())
            ref = (torch.softmax(lpj, 1).unsqueeze(-1) * mu).sum(1)
            torch.testing.assert_close(mean, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sparse", [True, False])
def test_gradient_through_distinct_states_equals_autograd(sparse):
    """The M-step runs each distinct state of a mini-batch once and sums the gradients of
    repeated states before backprop: exactly the gradient of -F_batch/B over all rows."""
    model, _ = _model(H=30, D=6, hidden=(7,))
    dec = model.decoder
    rng = np.random.default_rng(4)
    B, S = 5, 8
    states = _sparse_states(rng, B * S, 30, 1.5)
    Y = torch.as_tensor(rng.normal(size=(B, 6)))
    with torch.enable_grad():
        lpj, _ = model.log_joint(Y, states.double().view(B, S, 30))
        loss = -torch.logsumexp(lpj, 1).sum() / B
        auto = torch.autograd.grad(loss, list(dec.parameters()))
    ust, inv = _distinct(states)
    assert ust.shape[0] < B * S  # there are repeats to share
    mu, acts = forward_distinct(dec, ust, inv, sparse)
    torch.testing.assert_close(mu, dec(states.double()), rtol=1e-12, atol=1e-12)
    o = (mu.view(B, S, 6) - Y.unsqueeze(1))
    q = torch.softmax(lpj.detach(), 1)
    backward_distinct(dec, (o * (q / (model.sigma2 * B)).unsqueeze(-1)).view(-1, 6), inv, acts)
    for p, a in zip(dec.parameters(), auto):
        torch.testing.assert_close(p.grad, a, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sparse", [True, False])
def test_backprop_leaves_out_only_states_of_negligible_gradient(sparse, monkeypatch):
    """Given the distinct states, backward_distinct drops those whose summed output gradient is
    below TINY_GRAD in every entry: the rows it backpropagates are exactly the others, and the
    parameter gradients equal the full backprop's to within what the dropped rows add."""
    import evobench.tvae.model as model_mod

    model, _ = _model(H=30, D=6, hidden=(7,))
    dec = model.decoder
    rng = np.random.default_rng(5)
    states = _sparse_states(rng, 80, 30, 1.5)
    ust, inv = _distinct(states)
    u = ust.shape[0]
    g_rows = torch.as_tensor(rng.normal(size=(80, 6)))
    tiny = inv % 3 == 0  # rows of every third distinct state get gradients ~1e-16
    g_rows[tiny] *= 1e-16
    _, acts = forward_distinct(dec, ust, inv, sparse)
    backward_distinct(dec, g_rows, inv, acts)
    full = [p.grad.clone() for p in dec.parameters()]
    seen = []
    real = Decoder.backward_from_output
    monkeypatch.setattr(Decoder, "backward_from_output",
                        lambda self, g, a: (seen.append(g.shape[0]), real(self, g, a)))
    _, acts = forward_distinct(dec, ust, inv, sparse)
    backward_distinct(dec, g_rows, inv, acts, ust)
    assert seen == [u - int((torch.arange(u) % 3 == 0).sum())]
    for p, f in zip(dec.parameters(), full):
        torch.testing.assert_close(p.grad, f, rtol=0, atol=100 * model_mod.TINY_GRAD)
        assert p.grad.abs().max() > 1e-3  # the kept states' gradient is there


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sparse_and_shared_paths_on_cuda_match_cpu():
    model, _ = _model(H=40, D=6, hidden=(9,))
    rng = np.random.default_rng(6)
    states = _sparse_states(rng, 60, 40, 2.0).view(6, 10, 40)
    Y = torch.as_tensor(rng.normal(size=(6, 6)))
    ref, _, mref = chunked_log_joint(model, Y, states, None, None, 17, want_mean=True)
    gpu = TVAEModel(copy.deepcopy(model.decoder).cuda(), model.pi.cuda(), model.sigma2.cuda())
    ref_mu = model.decoder(states.view(-1, 40).double())
    for sp in (True, False):
        out = gpu.decoder.output(gpu.decoder.hidden(Codes(states.view(-1, 40).cuda(), sp)))
        torch.testing.assert_close(out.cpu(), ref_mu, rtol=1e-12, atol=1e-12)
    lpj, _, mean = chunked_log_joint(gpu, Y.cuda(), states.cuda(), None, None, 17,
                                     want_mean=True)
    torch.testing.assert_close(lpj.cpu(), ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mean.cpu(), mref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("H", [64, 200])
def test_unique_keys_is_exact(H):
    """Distinct rows of multi-word keys equal torch.unique(dim=0)'s (as sets, with a valid
    inverse), including rows that differ only in a later word."""
    rng = np.random.default_rng(H)
    s = _sparse_states(rng, 400, H, 2.0)
    s[1] = s[0]
    s[1, H - 1] ^= 1  # same first word(s), different last word
    keys = pack(s)
    uk, inv = unique_keys(keys)
    assert torch.equal(uk[inv], keys)
    assert uk.shape[0] == torch.unique(keys, dim=0).shape[0]


def test_unique_keys_survives_hash_collisions(monkeypatch):
    """Rows are grouped by a hash first; when different keys share a hash (forced here: with
    no mixing steps the hash is the xor of the words), the exact ranking takes over, and only
    then (it is the slow path)."""
    import evobench.tvae.states as states_mod

    rng = np.random.default_rng(7)
    keys = pack(_sparse_states(rng, 300, 128, 2.0))
    assert (keys[:, 1] == 0).sum() > 1 and torch.unique(keys, dim=0).shape[0] > 2
    calls = []
    ranked = states_mod._unique_keys_ranked
    monkeypatch.setattr(states_mod, "_unique_keys_ranked",
                        lambda k: (calls.append(1), ranked(k))[1])
    uk, inv = states_mod.unique_keys(keys)
    assert calls == []  # no collision among these keys under the real hash
    assert torch.equal(uk[inv], keys)
    assert uk.shape[0] == torch.unique(keys, dim=0).shape[0]
    monkeypatch.setattr("evobench.tvae.states._SPLITMIX", ())
    uk, inv = states_mod.unique_keys(keys)
    assert calls == [1]
    assert torch.equal(uk[inv], keys)
    assert uk.shape[0] == torch.unique(keys, dim=0).shape[0]


def test_default_init_draws_pytorch_default_ranges_from_the_generator():
    """init="default" (PyTorch's nn.Linear default): each layer's weights and biases are
    uniform on [-1/sqrt(fan_in), 1/sqrt(fan_in)], drawn from the generator passed in."""
    from scipy import stats

    def make(global_seed):
        torch.manual_seed(global_seed)  # must not matter
        return Decoder(64, (100,), 30, "relu", "default", torch.Generator().manual_seed(0),
                       torch.float64)

    dec = make(1)
    for lin in dec.linears:
        bound = 1.0 / math.sqrt(lin.in_features)
        for t in (lin.weight, lin.bias):
            x = t.detach().flatten().numpy() / bound
            assert np.abs(x).max() <= 1.0
            assert stats.kstest(x, "uniform", args=(-1.0, 2.0)).pvalue > 1e-3, t.shape
    assert all(torch.equal(a, b) for a, b in zip(dec.parameters(), make(2).parameters()))


def test_decoder_defaults_are_the_reference_relu_mlp_in_float32_on_cpu():
    """Decoder(H, hidden, D) alone: relu hidden layers, Xavier-normal weights with zero
    biases, float32 parameters on the CPU."""
    dec = Decoder(5, (4,), 3, generator=torch.Generator().manual_seed(0))
    assert dec.slope == 0.0 and isinstance(dec.net[1], torch.nn.ReLU)
    for lin in dec.linears:
        assert lin.weight.dtype == torch.float32 and lin.weight.device.type == "cpu"
        assert (lin.bias == 0).all() and lin.weight.abs().sum() > 0
    h = torch.full((1, 4), -1.0)
    assert torch.equal(dec._act(h), torch.zeros(1, 4))  # relu, not leaky
