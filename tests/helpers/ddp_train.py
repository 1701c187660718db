"""Run under torchrun: train ToyAE or ToyGAN with the engine and save this rank's weights."""

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers.toy import ToyAE, ToyGAN, ToyRows
from reconad.engine import TrainConfig, Trainer

out = Path(sys.argv[1])
kind = sys.argv[2] if len(sys.argv) > 2 else "ae"
torch.set_num_threads(1)
# Different local seeds: the engine must still start every rank from rank 0's weights.
torch.manual_seed(100 + int(os.environ["RANK"]))
model = ToyAE() if kind == "ae" else ToyGAN()
cfg = TrainConfig(epochs=3, batch_size=8, lr=1e-2, patience=None, progress=False, device="cpu", seed=0)
history = Trainer(cfg).fit(model, ToyRows(64), ToyRows(16, seed=1))
rank = dist.get_rank()
world = dist.get_world_size()
save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / f"rank{rank}.safetensors"))
(out / f"rank{rank}.txt").write_text(f"{world} {history.epochs_run} {history.train_loss[-1]}")
dist.destroy_process_group()
