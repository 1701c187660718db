import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers.toy import ToyAE, ToyRows
from reconad.engine import TrainConfig, Trainer
from reconad.engine.checkpoint import load_checkpoint
from reconad.errors import ConfigError, DataError


def cfg(**kw) -> TrainConfig:
    base = dict(epochs=6, batch_size=16, lr=1e-2, patience=None, progress=False, device="cpu", seed=0)
    base.update(kw)
    return TrainConfig(**base)


def train(config: TrainConfig, **kw):
    torch.manual_seed(0)
    model = ToyAE()
    hist = Trainer(config, **kw).fit(model, ToyRows(64), ToyRows(16, seed=1))
    return model, hist


def test_training_reduces_loss_and_is_seeded():
    m1, h1 = train(cfg())
    m2, h2 = train(cfg())
    assert h1.train_loss[-1] < h1.train_loss[0]
    assert h1.train_loss == h2.train_loss
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k


def test_model_learns_what_normal_looks_like():
    model, _ = train(cfg(epochs=30))
    normal = model(ToyRows(32, seed=5).x).mean()
    shifted = model(ToyRows(32, seed=5, shift=2.0).x).mean()
    assert shifted > 3 * normal


def test_early_stopping_stops_and_restores_best():
    _, h = train(cfg(epochs=200, lr=5e-2, patience=2, min_delta=0.5))
    assert h.stopped_early
    assert h.epochs_run < 200
    assert h.best_epoch == h.epochs_run - 3


def test_checkpoint_every_epoch_and_resume_matches_uninterrupted(tmp_path):
    ck = tmp_path / "ck"
    train(cfg(epochs=3), checkpoint_dir=ck)
    state, optim, info = load_checkpoint(ck)
    assert info["epoch"] == 2 and "main" in optim and state
    resumed, h_resumed = train(cfg(epochs=6), checkpoint_dir=ck, resume=True)
    straight, h_straight = train(cfg(epochs=6))
    assert len(h_resumed.train_loss) == 6
    assert h_resumed.train_loss == pytest.approx(h_straight.train_loss, rel=1e-5)
    for (k, a), b in zip(resumed.state_dict().items(), straight.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), k


def test_bad_settings_and_empty_data():
    with pytest.raises(ConfigError):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError):
        TrainConfig(optimizer="nope")
    with pytest.raises(ConfigError):
        Trainer(TrainConfig(device="tpu9"))
    with pytest.raises(DataError):
        Trainer(cfg()).fit(ToyAE(), ToyRows(0))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(300)
def test_two_process_gloo_training_ends_with_identical_weights(tmp_path):
    script = Path(__file__).parent / "helpers" / "ddp_train.py"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--nnodes=1",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        str(script),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = load_file(str(tmp_path / "rank0.safetensors"))
    r1 = load_file(str(tmp_path / "rank1.safetensors"))
    assert r0.keys() == r1.keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
    world, epochs, _ = (tmp_path / "rank0.txt").read_text().split()
    assert world == "2" and epochs == "3"
    torch.manual_seed(100)
    fresh = ToyAE().state_dict()
    assert any(not torch.equal(fresh[k], r0[k]) for k in r0 if r0[k].is_floating_point())
