import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers.toy import ToyAE, ToyGAN, ToyRows
from reconad.data.records import RowBatch
from reconad.engine import TrainConfig, Trainer
from reconad.engine.checkpoint import load_checkpoint
from reconad.errors import ConfigError, DataError, TrainingError


def cfg(**kw) -> TrainConfig:
    base = dict(epochs=6, batch_size=16, lr=1e-2, patience=None, progress=False, device="cpu", seed=0)
    base.update(kw)
    return TrainConfig(**base)


def train(config: TrainConfig, model_cls=ToyAE, **kw):
    torch.manual_seed(0)
    model = model_cls(**kw.pop("model_kw", {}))
    hist = Trainer(config, **kw).fit(model, ToyRows(64), ToyRows(16, seed=1))
    return model, hist


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), k


def test_training_reduces_loss_and_is_seeded():
    m1, h1 = train(cfg())
    m2, h2 = train(cfg())
    assert h1.train_loss[-1] < h1.train_loss[0]
    assert h1.train_loss == h2.train_loss
    same_weights(m1, m2)


def test_model_learns_what_normal_looks_like():
    model, _ = train(cfg(epochs=30))
    model.eval()
    normal = model.predict_step(RowBatch(ToyRows(32, seed=5).x)).scores.mean()
    shifted = model.predict_step(RowBatch(ToyRows(32, seed=5, shift=2.0).x)).scores.mean()
    assert shifted > 3 * normal


def test_early_stopping_stops_and_restores_best():
    _, h = train(cfg(epochs=200, lr=5e-2, patience=2, min_delta=0.5))
    assert h.stopped_early and h.monitor == "val_loss"
    assert h.epochs_run < 200
    assert h.best_epoch == h.epochs_run - 3


def test_monitor_none_keeps_the_last_epoch_and_never_stops():
    model, h = train(cfg(epochs=5, lr=5e-2, patience=1, min_delta=0.5, monitor="none"))
    assert h.epochs_run == 5 and not h.stopped_early and h.best_epoch == 4 and h.monitor == "none"
    # the weights are the last epoch's: continuing training from them is what a 6th epoch would see
    model2, _ = train(cfg(epochs=5, lr=5e-2, patience=1, min_delta=0.5, monitor="loss"))
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))


def test_monitor_naming_an_unlogged_value_lists_the_logged_ones():
    with pytest.raises(ConfigError, match=r"monitor 'val_auroc' .* it logs: loss, val_loss"):
        train(cfg(epochs=2, monitor="val_auroc"))


def test_every_logged_value_is_averaged_per_epoch_and_kept():
    _, h = train(cfg(epochs=4), model_cls=ToyGAN)
    assert h.monitor == "none"  # the model's own default
    assert set(h.logs) == {"loss", "loss_d", "loss_g", "val_d_real"}
    assert all(len(v) == 4 for v in h.logs.values())
    assert h.logs["loss"] == h.logs["loss_d"] == h.train_loss
    # loss_g is averaged over the batches where the generator stepped only (every 2nd)
    assert all(0.1 < v < 10 for v in h.logs["loss_g"])
    assert h.global_step == 4 * 4


def test_optimizers_take_their_own_lr_betas_and_schedule():
    model = ToyGAN()
    trainer = Trainer(cfg(epochs=4, lr=1e-3))
    run = trainer._start(model, ToyRows(64), None)
    g, d = run.optimizers["g"], run.optimizers["d"]
    assert g.param_groups[0]["lr"] == 1e-3 and d.param_groups[0]["lr"] == 2e-3
    assert g.param_groups[0]["betas"] == (0.5, 0.999)
    assert set(run.schedulers) == {"g"}  # cosine for g only; the engine default is none


def test_checkpoint_every_epoch_and_resume_matches_uninterrupted(tmp_path):
    ck = tmp_path / "ck"
    train(cfg(epochs=3), checkpoint_dir=ck)
    saved = load_checkpoint(ck)
    assert saved.info["epoch"] == 2 and "main" in saved.optimizer_states and saved.model_state
    resumed, h_resumed = train(cfg(epochs=6), checkpoint_dir=ck, resume=True)
    straight, h_straight = train(cfg(epochs=6))
    assert len(h_resumed.train_loss) == 6
    assert h_resumed.train_loss == pytest.approx(h_straight.train_loss, rel=1e-5)
    for (k, a), b in zip(resumed.state_dict().items(), straight.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), k


def test_two_optimizer_gan_resumed_after_a_kill_equals_an_uninterrupted_run(tmp_path):
    ck = tmp_path / "ck"
    # 4 batches per epoch: global step 13 is the second batch of the 4th epoch
    with pytest.raises(KeyboardInterrupt):
        train(cfg(epochs=6), ToyGAN, checkpoint_dir=ck, model_kw={"fail_at_step": 13})
    saved = load_checkpoint(ck)
    assert saved.info["epoch"] == 2 and saved.counters == {"d_steps": 12}
    assert set(saved.scheduler_states) == {"g"} and "rng.cpu" in saved.rng
    resumed, h_resumed = train(cfg(epochs=6), ToyGAN, checkpoint_dir=ck, resume=True)
    straight, h_straight = train(cfg(epochs=6), ToyGAN)
    same_weights(resumed, straight)
    assert h_resumed.logs == h_straight.logs and h_resumed.global_step == h_straight.global_step == 24


class NaNDiscriminator(ToyGAN):
    def training_step(self, batch, ctx):
        loss = self.d(batch.x).mean() * float("nan")
        ctx.step("d", loss)


def test_a_non_finite_loss_names_its_optimiser():
    with pytest.raises(TrainingError, match=r"optimiser 'd' became nan at epoch 1, step 1"):
        train(cfg(epochs=2), NaNDiscriminator)


def test_bad_settings_and_empty_data():
    with pytest.raises(ConfigError):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError):
        TrainConfig(optimizer="nope")
    with pytest.raises(ConfigError, match="scheduler"):
        TrainConfig(scheduler="sometimes")
    with pytest.raises(ConfigError, match="betas"):
        TrainConfig(betas=[0.9])
    with pytest.raises(ConfigError):
        Trainer(TrainConfig(device="tpu9"))
    with pytest.raises(DataError):
        Trainer(cfg()).fit(ToyAE(), ToyRows(0))


@pytest.mark.parametrize("native", [False, True])
def test_bfloat16_is_used_only_where_native_and_falls_back_with_a_warning(monkeypatch, caplog, native):
    from reconad.engine import precision

    monkeypatch.setattr(precision, "bf16_native", lambda device: native)
    _, h32 = train(cfg())
    with caplog.at_level("WARNING", logger="reconad"):
        _, h16 = train(cfg(precision="bfloat16"))
    _, hauto = train(cfg(precision="auto"))
    assert h32.precision == "float32"
    expected = "bfloat16" if native else "float32"
    assert h16.precision == hauto.precision == expected
    assert ("no native bfloat16" in caplog.text) == (not native)
    if native:  # autocast really ran: same seed, different rounding, still learning
        assert h16.train_loss != h32.train_loss
        assert h16.train_loss[-1] < h16.train_loss[0]
    else:  # the fallback is exactly float32 training
        assert h16.train_loss == h32.train_loss
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="float16")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("model", ["ae", "gan"])
def test_two_process_gloo_training_ends_with_identical_weights(tmp_path, model):
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
        model,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=280, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = load_file(str(tmp_path / "rank0.safetensors"))
    r1 = load_file(str(tmp_path / "rank1.safetensors"))
    assert r0.keys() == r1.keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
    world, epochs, _ = (tmp_path / "rank0.txt").read_text().split()
    assert world == "2" and epochs == "3"
    torch.manual_seed(100)
    fresh = (ToyAE() if model == "ae" else ToyGAN()).state_dict()
    assert any(not torch.equal(fresh[k], r0[k]) for k in r0 if r0[k].is_floating_point())
