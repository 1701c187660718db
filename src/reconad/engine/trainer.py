"""The one training loop every model goes through."""

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

from reconad.engine import distributed as dist_utils
from reconad.engine.checkpoint import load_checkpoint, save_checkpoint
from reconad.engine.config import TrainConfig
from reconad.engine.device import seed_everything, select_device
from reconad.engine.progress import progress, progress_enabled
from reconad.errors import DataError

if TYPE_CHECKING:
    from reconad.models.base import AnomalyModel

log = logging.getLogger("reconad")


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
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_val: float = math.inf
    epochs_run: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    prepare_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Trainer:
    """Train an :class:`AnomalyModel`.

    Seeds, picks the device, joins a torchrun process group when launched by one
    (gradients averaged across ranks), shows a progress bar, evaluates the held-out
    normal split each epoch for early stopping (restoring the best weights), and
    writes a checkpoint every epoch that ``resume=True`` continues from.
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

    def _loader(self, data: Dataset, model: "AnomalyModel", shuffle: bool) -> DataLoader:
        cfg = self.config
        if shuffle and dist_utils.is_distributed():
            sampler = DistributedSampler(data, shuffle=True, seed=cfg.seed)
        elif shuffle:
            gen = torch.Generator().manual_seed(cfg.seed)
            sampler = RandomSampler(data, generator=gen)
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

    def fit(self, model: "AnomalyModel", train_data: Dataset, val_data: Dataset | None = None) -> TrainHistory:
        cfg = self.config
        if len(train_data) == 0:
            raise DataError("the training set is empty")
        dist_utils.init_distributed(self.device)
        main = dist_utils.is_main_process()
        show = cfg.progress and main
        seed_everything(cfg.seed)
        model.to(self.device)
        dist_utils.broadcast_parameters(model)

        t0 = time.perf_counter()
        train_ds = model.prepare_data(train_data, self.device, progress=show)
        val_ds = (
            model.prepare_data(val_data, self.device, progress=show) if val_data is not None and len(val_data) else None
        )
        history = TrainHistory(prepare_seconds=time.perf_counter() - t0)

        optimizers = model.configure_optimizers(cfg)
        start_epoch = 0
        best_state: dict[str, torch.Tensor] | None = None
        if self.resume and self.checkpoint_dir is not None:
            restored = load_checkpoint(self.checkpoint_dir)
            if restored is not None:
                state, optim_states, info = restored
                model.load_trainable_state_dict(state)
                for name, opt in optimizers.items():
                    if name in optim_states:
                        opt.load_state_dict(optim_states[name])
                hist = info.get("history", {})
                history = TrainHistory(**{k: v for k, v in hist.items() if k in TrainHistory.__dataclass_fields__})
                start_epoch = int(info["epoch"]) + 1
                best_path = self.checkpoint_dir / "best.safetensors"
                if best_path.exists():
                    from safetensors.torch import load_file

                    best_state = load_file(str(best_path))
                log.info("resumed from %s at epoch %d", self.checkpoint_dir, start_epoch)
                if history.stopped_early:
                    start_epoch = cfg.epochs

        train_loader = self._loader(train_ds, model, shuffle=True)
        val_loader = self._loader(val_ds, model, shuffle=False) if val_ds is not None else None
        stale = 0
        if history.best_epoch >= 0:
            stale = len(history.train_loss) - 1 - history.best_epoch
        t_train = time.perf_counter()
        epochs = progress(
            range(start_epoch, cfg.epochs),
            enabled=show,
            desc=f"train {model.name}",
            unit="epoch",
            initial=start_epoch,
            total=cfg.epochs,
        )
        for epoch in epochs:
            if isinstance(train_loader.sampler, DistributedSampler):
                train_loader.sampler.set_epoch(epoch)
            else:
                train_loader.sampler.generator.manual_seed(cfg.seed + epoch)  # type: ignore[union-attr]
            model.train()
            total, count = 0.0, 0
            for batch in train_loader:
                batch = move_to(batch, self.device)
                out = model.fit_batch(batch, optimizers, dist_utils.average_gradients, cfg.grad_clip)
                n = len(batch) if hasattr(batch, "__len__") else 1
                total += out["loss"] * n
                count += n
            dist_utils.average_buffers(model)
            train_loss = dist_utils.mean_across_ranks(total / max(count, 1), self.device)
            if not math.isfinite(train_loss):
                raise FloatingPointError(f"training loss became {train_loss} at epoch {epoch}; try a lower lr")
            history.train_loss.append(train_loss)
            monitored = train_loss
            if val_loader is not None:
                model.eval()
                vt, vc = 0.0, 0
                with torch.no_grad():
                    for batch in val_loader:
                        batch = move_to(batch, self.device)
                        n = len(batch) if hasattr(batch, "__len__") else 1
                        vt += model.validation_loss(batch) * n
                        vc += n
                monitored = dist_utils.mean_across_ranks(vt / max(vc, 1), self.device)
                history.val_loss.append(monitored)
            history.epochs_run = epoch + 1
            if (
                monitored < history.best_val - cfg.min_delta * max(abs(history.best_val), 1e-12)
                or history.best_epoch < 0
            ):
                history.best_val = monitored
                history.best_epoch = epoch
                best_state = {k: v.clone() for k, v in model.trainable_state_dict().items()}
                stale = 0
                if main and self.checkpoint_dir is not None:
                    from safetensors.torch import save_file

                    self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
                    save_file(best_state, str(self.checkpoint_dir / "best.safetensors"))
            else:
                stale += 1
            if hasattr(epochs, "set_postfix"):
                epochs.set_postfix(loss=f"{train_loss:.4f}", val=f"{monitored:.4f}")
            stop = bool(cfg.patience) and stale >= int(cfg.patience or 0)
            history.stopped_early = stop
            if main and self.checkpoint_dir is not None:
                save_checkpoint(
                    self.checkpoint_dir,
                    model.trainable_state_dict(),
                    optimizers,
                    {"epoch": epoch, "history": history.to_dict(), "config": cfg.to_dict()},
                )
            if stop:
                break
        history.seconds = time.perf_counter() - t_train + history.prepare_seconds
        if best_state is not None:
            model.load_trainable_state_dict({k: v.to(self.device) for k, v in best_state.items()})
        model.eval()
        model.on_fit_end(train_ds, val_ds, self.device)
        dist_utils.barrier()
        return history


__all__ = ["Trainer", "TrainHistory", "TrainConfig", "move_to", "progress_enabled"]
