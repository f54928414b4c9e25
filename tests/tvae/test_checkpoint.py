"""Checkpoint and resume of a TVAE fit: bit-identical continuation, bad checkpoints ignored."""

import json

import numpy as np
import pytest
import torch
from skimage import data
from stopping import stop_at_epoch

from evobench import checkpoint as ckpt
from evobench.tvae import denoise, inpaint

FAST = dict(H=12, hidden=(12,), S=8, P=3, C=2, patch_size=4, epochs=6, chunk_size=128,
            eval_every=2)


@pytest.fixture(scope="module")
def crop():
    return data.camera()[100:124, 200:224] / 255.0


@pytest.fixture(scope="module")
def noisy(crop):
    return crop + (25 / 255) * np.random.default_rng(0).standard_normal(crop.shape)


@pytest.fixture
def stop_after():
    """Make the fit stop (after checkpointing) once ``n`` epochs are done."""
    with stop_at_epoch({"n": None}) as state:
        yield state


def _strip(trace):
    return [{k: v for k, v in r.items() if k not in ("seconds", "epoch_seconds")} for r in trace]


def _same(a, b):
    assert np.array_equal(a.image, b.image)
    assert _strip(a.trace) == _strip(b.trace)
    assert sorted(a.snapshots) == sorted(b.snapshots)
    for e in a.snapshots:
        assert np.array_equal(a.snapshots[e], b.snapshots[e])
    assert np.array_equal(a.pi, b.pi) and a.sigma2 == b.sigma2
    assert np.array_equal(a.fields, b.fields)


@pytest.mark.parametrize("threads", [1, 2])
def test_resume_is_bit_identical(tmp_path, crop, noisy, stop_after, threads):
    torch.set_num_threads(threads)  # 2 threads: the E-step/M-step overlap path
    full = denoise(noisy, sigma=25 / 255, clean=crop, seed=3, **FAST)
    stop_after["n"] = 3
    with pytest.raises(ckpt.Stopped):
        denoise(noisy, sigma=25 / 255, clean=crop, seed=3, checkpoint=tmp_path, **FAST)
    header = json.loads((tmp_path / "checkpoint.json").read_text())
    assert header["epoch"] == 3 and len(header["sha256"]) == 64
    stop_after["n"] = None
    resumed = denoise(noisy, sigma=25 / 255, clean=crop, seed=3, checkpoint=tmp_path, **FAST)
    _same(full, resumed)
    assert resumed.resumes == 1 and resumed.resumed_at == 3 and full.resumes == 0
    assert abs(resumed.trace[-1]["psnr"] - full.trace[-1]["psnr"]) <= 1e-6
    # fit time is summed over the segments: the trace's clock continues
    secs = [r["seconds"] for r in resumed.trace]
    assert secs == sorted(secs) and resumed.time_fit_s == secs[-1]


def test_periodic_checkpoints_and_second_resume(tmp_path, crop, noisy, stop_after):
    full = inpaint(np.where(crop > 0.5, np.nan, noisy), mask=crop > 0.5, seed=1, **FAST)
    args = dict(mask=crop > 0.5, seed=1, checkpoint=tmp_path, checkpoint_every=1e-9, **FAST)
    stop_after["n"] = 2
    with pytest.raises(ckpt.Stopped):
        inpaint(np.where(crop > 0.5, np.nan, noisy), **args)
    stop_after["n"] = 4
    with pytest.raises(ckpt.Stopped):
        inpaint(np.where(crop > 0.5, np.nan, noisy), **args)
    assert json.loads((tmp_path / "checkpoint.json").read_text())["epoch"] == 4
    assert len(list(tmp_path.glob("state-*.npz"))) == 1  # older states are removed
    stop_after["n"] = None
    resumed = inpaint(np.where(crop > 0.5, np.nan, noisy), **args)
    _same(full, resumed)
    assert resumed.resumes == 2 and resumed.resumed_at == 4


def _checkpoint_at(tmp_path, noisy, stop_after, n=2, **kw):
    stop_after["n"] = n
    with pytest.raises(ckpt.Stopped):
        denoise(noisy, seed=5, checkpoint=tmp_path, **(FAST | kw))
    stop_after["n"] = None


@pytest.mark.parametrize("damage", ["tamper", "truncate", "header", "missing", "config",
                                    "cell", "version"])
def test_bad_checkpoints_are_ignored(tmp_path, noisy, stop_after, capsys, damage):
    _checkpoint_at(tmp_path, noisy, stop_after)
    header_path = tmp_path / "checkpoint.json"
    header = json.loads(header_path.read_text())
    state = tmp_path / header["file"]
    kw = {}
    if damage == "tamper":
        blob = bytearray(state.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        state.write_bytes(bytes(blob))
    elif damage == "truncate":
        state.write_bytes(state.read_bytes()[:100])
    elif damage == "header":
        header_path.write_text("{not json")
    elif damage == "missing":
        state.unlink()
    elif damage == "config":
        kw = {"lr_max": 0.02}
    elif damage == "cell":
        header["cell_key"] = "0" * 64
        header_path.write_text(json.dumps(header))
    else:
        header["evobench_version"] = "99.0.0"
        header_path.write_text(json.dumps(header))
    capsys.readouterr()
    res = denoise(noisy, seed=5, checkpoint=tmp_path, **(FAST | kw))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ignoring the checkpoint" in err[0] and "from scratch" in err[0]
    assert "Traceback" not in err[0]
    assert res.resumes == 0 and len(res.trace) == FAST["epochs"]
    assert np.array_equal(res.image, denoise(noisy, seed=5, **(FAST | kw)).image)


def test_checkpoint_files_are_not_pickles(tmp_path, noisy, stop_after):
    _checkpoint_at(tmp_path, noisy, stop_after)
    header = json.loads((tmp_path / "checkpoint.json").read_text())
    with np.load(tmp_path / header["file"], allow_pickle=False) as npz:
        assert {"state_flat", "state_keys", "state_generator", "state_pi"} <= set(npz.files)
        assert npz["state_keys"].dtype == np.int64
    assert header["meta"]["scalars"]["step"] > 0 and len(header["meta"]["trace"]) == 2


def test_checkpoint_every_is_checked(noisy, tmp_path):
    from evobench.errors import EvobenchError

    with pytest.raises(EvobenchError, match="checkpoint_every"):
        denoise(noisy, checkpoint=tmp_path, checkpoint_every=-1, **FAST)
