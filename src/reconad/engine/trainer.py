"""The one training loop every model goes through (see ``reconad.models.base`` for the contract)."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler
from torch.utils.data.distributed import DistributedSampler

from reconad.data.records import num_samples
from reconad.data.sizes import dataset_size
from reconad.engine import distributed as dist_utils
from reconad.engine.checkpoint import load_checkpoint, load_tensors, restore_rng, save_checkpoint, save_tensors
from reconad.engine.config import TrainConfig
from reconad.engine.device import seed_everything, select_device
from reconad.engine.precision import autocast, resolve_precision
from reconad.engine.progress import progress, progress_enabled
from reconad.engine.resume import check_resumable, fitting_state, model_options
from reconad.engine.step import StepContext, build_optimizer, build_scheduler
from reconad.errors import ConfigError, DataError, TrainingError

if TYPE_CHECKING:
    from reconad.models.base import AnomalyModel

log = logging.getLogger("reconad")

BEST_FILE = "best.safetensors"


def move_to(batch: Any, device: torch.device) -> Any:
    """Move a batch record (tensor, list/tuple/dict of them, or object with ``.to``)."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if hasattr(batch, "to"):
        return batch.to(device)
    return batch


@dataclass
class TrainHistory:
    """Per-epoch averages of every logged value, and how training ended.

    ``logs`` maps each key (``loss``, the model's own, and ``val_*`` for held-out data)
    to one value per epoch; ``train_loss`` / ``val_loss`` are ``logs["loss"]`` /
    ``logs["val_loss"]``.  ``monitor`` is the key that picked ``best_epoch`` (``none``:
    the last epoch was kept).
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    logs: dict[str, list[float]] = field(default_factory=dict)
    monitor: str = "val_loss"
    best_epoch: int = -1
    best_val: float = math.inf
    epochs_run: int = 0
    global_step: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    prepare_seconds: float = 0.0
    precision: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainHistory:
        """The history ``to_dict`` gave, read back from strict JSON (where an infinite ``best_val`` is null)."""
        kept = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        if kept.get("best_val", 0.0) is None:
            kept["best_val"] = math.inf
        return cls(**kept)


class _Means:
    """Sample-weighted means of logged values; a key counts only the batches that logged it."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, values: dict[str, float], n: int) -> None:
        for k, v in values.items():
            self.totals[k] = self.totals.get(k, 0.0) + float(v) * n
            self.counts[k] = self.counts.get(k, 0) + n

    def result(self) -> dict[str, float]:
        return {k: self.totals[k] / max(self.counts[k], 1) for k in self.totals}


@dataclass
class _Run:
    """The state of one ``Trainer.fit`` call."""

    model: AnomalyModel
    train_ds: Dataset
    val_ds: Dataset | None
    train_loader: DataLoader
    val_loader: DataLoader | None
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]
    ctx: StepContext
    history: TrainHistory
    monitor: str
    main: bool
    show: bool
    start_epoch: int = 0
    stale: int = 0
    best_state: dict[str, torch.Tensor] | None = None


class Trainer:
    """Train an :class:`AnomalyModel`.

    Seeds, picks the device, joins a torchrun process group when launched by one
    (gradients averaged across ranks), shows a progress bar with every logged value,
    evaluates the held-out normal split each epoch, keeps the best epoch by ``monitor``
    (or the last one with ``monitor="none"``), stops early after ``patience`` epochs
    without improvement, and writes a checkpoint every epoch that ``resume=True``
    continues from exactly (weights, optimisers, schedulers, counters, random state).
    """

    def __init__(
        self,
        config: TrainConfig | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        resume: bool = False,
    ) -> None:
        self.config = config or TrainConfig()
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.resume = resume
        self.device = select_device(self.config.device)

    # ------------------------------------------------------------------ public
    def fit(
        self,
        model: AnomalyModel,
        train_data: Dataset,
        val_data: Dataset | None = None,
        weights_from: AnomalyModel | None = None,
    ) -> TrainHistory:
        """Train ``model``, then its end step (``on_fit_end``).  ``weights_from``: a model
        of the same training already fitted on the same data (e.g. one that differs only in
        how it scores): its weights are taken and no epoch runs; the end step does."""
        run = self._start(model, train_data, val_data)
        if weights_from is not None:
            copy_matching_state(model, weights_from)
            self._finish(run)
            return run.history
        self._restore(run)
        cfg = self.config
        t_train = time.perf_counter()
        # A model with no optimiser (e.g. a memory bank) learns in on_fit_end alone: no epochs.
        last = cfg.epochs if run.optimizers else run.start_epoch
        epochs = progress(
            range(run.start_epoch, last),
            enabled=run.show,
            desc=f"train {model.name}",
            unit="epoch",
            initial=run.start_epoch,
            total=cfg.epochs,
        )
        for epoch in epochs:
            logs = self._train_epoch(run, epoch)
            logs.update(self._validate(run))
            self._record(run, epoch, logs)
            epochs.set_postfix({k: f"{v:.4g}" for k, v in logs.items()})
            self._checkpoint(run, epoch)
            if run.history.stopped_early:
                break
        self._finish(run)  # the end step (a memory bank, a coreset) is part of training's time
        run.history.seconds = time.perf_counter() - t_train + run.history.prepare_seconds
        return run.history

    # ------------------------------------------------------------------- steps
    def _loader(self, data: Dataset, model: AnomalyModel, shuffle: bool) -> DataLoader:
        cfg = self.config
        sampler: Any
        if shuffle and dist_utils.is_distributed():
            sampler = DistributedSampler(data, shuffle=True, seed=cfg.seed)
        elif shuffle:
            # a random order of the indices (the sampler reads nothing of the dataset but its size)
            sampler = RandomSampler(range(dataset_size(data)), generator=torch.Generator().manual_seed(cfg.seed))
        else:
            sampler = None
        return DataLoader(
            data,
            batch_size=cfg.batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=cfg.num_workers,
            collate_fn=model.collate_fn(),
            drop_last=False,
        )

    def _start(self, model: AnomalyModel, train_data: Dataset, val_data: Dataset | None) -> _Run:
        """Seed, join the process group, prepare the data, build optimisers and schedulers."""
        cfg = self.config
        if dataset_size(train_data) == 0:
            raise DataError("the training set is empty")
        dist_utils.init_distributed(self.device)
        main = dist_utils.is_main_process()
        show = cfg.progress and main
        seed_everything(cfg.seed)
        model.to(self.device)
        dist_utils.broadcast_parameters(model)
        t0 = time.perf_counter()
        train_ds = model.prepare_data(train_data, self.device, progress=show)
        val_ds = None
        if val_data is not None and dataset_size(val_data) > 0:
            val_ds = model.prepare_data(val_data, self.device, progress=show)
        specs = model.optimizer_specs()
        optimizers = {name: build_optimizer(spec, cfg) for name, spec in specs.items()}
        schedulers = {}
        for name, spec in specs.items():
            sched = build_scheduler(spec.scheduler or cfg.scheduler, optimizers[name], cfg.epochs)
            if sched is not None:
                schedulers[name] = sched
        clips = {name: (cfg.grad_clip if spec.grad_clip is None else spec.grad_clip) for name, spec in specs.items()}
        ctx = StepContext(optimizers, dist_utils.average_gradients, clips, counters={})
        ctx.epochs = cfg.epochs
        monitor = cfg.monitor if cfg.monitor != "auto" else model.default_monitor
        if monitor == "auto":
            monitor = "val_loss" if val_ds is not None else "loss"
        history = TrainHistory(
            prepare_seconds=time.perf_counter() - t0,
            monitor=monitor,
            precision=resolve_precision(cfg.precision, self.device),
        )
        return _Run(
            model=model,
            train_ds=train_ds,
            val_ds=val_ds,
            train_loader=self._loader(train_ds, model, shuffle=True),
            val_loader=self._loader(val_ds, model, shuffle=False) if val_ds is not None else None,
            optimizers=optimizers,
            schedulers=schedulers,
            ctx=ctx,
            history=history,
            monitor=monitor,
            main=main,
            show=show,
        )

    def _restore(self, run: _Run) -> None:
        """Continue from the last checkpoint when asked to (and one exists)."""
        if not (self.resume and self.checkpoint_dir is not None):
            return
        ck = load_checkpoint(self.checkpoint_dir)
        if ck is None:
            return
        check_resumable(ck, run.model, run.optimizers, run.schedulers, self.checkpoint_dir)
        with fitting_state(self.checkpoint_dir, run.model.name):  # a mismatch is one line, not a traceback
            run.model.load_trainable_state_dict(ck.model_state)
            for name, opt in run.optimizers.items():
                opt.load_state_dict(ck.optimizer_states[name])
            for name, sched in run.schedulers.items():
                sched.load_state_dict(ck.scheduler_states[name])
            run.ctx.counters.update(ck.counters)
            restore_rng(ck.rng)
            prepare_seconds, precision = run.history.prepare_seconds, run.history.precision
            run.history = TrainHistory.from_dict(ck.info.get("history", {}))
        run.history.prepare_seconds, run.history.precision = prepare_seconds, precision
        run.ctx.global_step = run.history.global_step
        run.start_epoch = int(ck.info["epoch"]) + 1
        if run.history.best_epoch >= 0:
            run.stale = len(run.history.train_loss) - 1 - run.history.best_epoch
        best_path = self.checkpoint_dir / BEST_FILE
        if best_path.exists() and run.monitor != "none":
            run.best_state = load_tensors(best_path)
        log.info("resumed from %s at epoch %d", self.checkpoint_dir, run.start_epoch)
        if run.history.stopped_early:
            run.start_epoch = self.config.epochs

    def _train_epoch(self, run: _Run, epoch: int) -> dict[str, float]:
        """One pass over the training data; the sample-weighted mean of every logged value."""
        loader = run.train_loader
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        elif isinstance(loader.sampler, RandomSampler) and loader.sampler.generator is not None:
            loader.sampler.generator.manual_seed(self.config.seed + epoch)
        run.model.train()
        run.ctx.epoch = epoch
        means = _Means()
        for batch in loader:
            batch = move_to(batch, self.device)
            with autocast(run.history.precision, self.device):
                out = run.model.training_step(batch, run.ctx)
            means.add({"loss": float(out.loss), **out.logs}, num_samples(batch))
            run.ctx.global_step += 1
        dist_utils.average_buffers(run.model)
        for sched in run.schedulers.values():
            sched.step()
        logs = {k: dist_utils.mean_across_ranks(v, self.device) for k, v in means.result().items()}
        for k, v in logs.items():
            if not math.isfinite(v):
                raise TrainingError(f"training value {k} became {v} at epoch {epoch + 1}; try a lower lr")
        return logs

    def _validate(self, run: _Run) -> dict[str, float]:
        """Held-out losses (``val_*``), sample-weighted over the held-out data."""
        if run.val_loader is None:
            return {}
        run.model.eval()
        means = _Means()
        with torch.no_grad(), autocast(run.history.precision, self.device):
            for batch in run.val_loader:
                batch = move_to(batch, self.device)
                means.add(run.model.validation_step(batch), num_samples(batch))
        return {f"val_{k}": dist_utils.mean_across_ranks(v, self.device) for k, v in means.result().items()}

    def _record(self, run: _Run, epoch: int, logs: dict[str, float]) -> None:
        """Append the epoch's logs; track the best epoch and early stopping."""
        h, cfg = run.history, self.config
        for k, v in logs.items():
            h.logs.setdefault(k, []).append(v)
        h.train_loss.append(logs["loss"])
        if "val_loss" in logs:
            h.val_loss.append(logs["val_loss"])
        h.epochs_run = epoch + 1
        h.global_step = run.ctx.global_step
        if run.monitor == "none":
            h.best_epoch = epoch
            return
        if run.monitor not in logs:
            raise ConfigError(
                f"monitor {run.monitor!r} is not a value {run.model.name} logs; it logs: "
                + ", ".join(sorted(logs))
                + " (or use monitor=none)"
            )
        value = logs[run.monitor]
        if value < h.best_val - cfg.min_delta * max(abs(h.best_val), 1e-12) or h.best_epoch < 0:
            h.best_val = value
            h.best_epoch = epoch
            run.best_state = {k: v.clone() for k, v in run.model.trainable_state_dict().items()}
            run.stale = 0
            if run.main and self.checkpoint_dir is not None:
                self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
                save_tensors(self.checkpoint_dir / BEST_FILE, run.best_state)
        else:
            run.stale += 1
        h.stopped_early = bool(cfg.patience) and run.stale >= int(cfg.patience or 0)

    def _checkpoint(self, run: _Run, epoch: int) -> None:
        if not (run.main and self.checkpoint_dir is not None):
            return
        save_checkpoint(
            self.checkpoint_dir,
            run.model.trainable_state_dict(),
            run.optimizers,
            {
                "epoch": epoch,
                "model": run.model.name,
                "model_config": model_options(run.model),  # what a resume must agree on (engine.resume)
                "history": run.history.to_dict(),
                "config": self.config.to_dict(),
            },
            schedulers=run.schedulers,
            counters=run.ctx.counters,
        )

    def _finish(self, run: _Run) -> None:
        """Restore the best epoch (unless ``monitor`` is none), then the model's own end step."""
        if run.best_state is not None:
            run.model.load_trainable_state_dict({k: v.to(self.device) for k, v in run.best_state.items()})
        run.model.eval()
        run.model.on_fit_end(run.train_ds, run.val_ds, self.device)
        dist_utils.barrier()


def copy_matching_state(target: torch.nn.Module, source: torch.nn.Module) -> int:
    """Copy each parameter and buffer of ``source`` whose name and shape ``target`` has
    too; the number copied."""
    own = target.state_dict()
    shared = {k: v for k, v in source.state_dict().items() if k in own and own[k].shape == v.shape}
    target.load_state_dict(shared, strict=False)
    return len(shared)


__all__ = ["Trainer", "copy_matching_state", "TrainHistory", "TrainConfig", "move_to", "progress_enabled"]
