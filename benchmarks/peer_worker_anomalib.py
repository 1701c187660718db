"""Time one anomalib model (random weights) in PyTorch or ONNX Runtime; print one JSON line.

Runs inside the peer environment (``make peer-venv``: anomalib with its own torch and
torchvision), started by ``benchmarks/peer_anomalib.py`` with ``PYTHONPATH=src``; of reconad it imports
``reconad.protocols.measure`` alone (numpy and torch: the timing rule shared with ours).
Random weights do not change the speed of a forward pass; the fitted state each model
needs at inference (PaDiM's Gaussian, PatchCore's memory bank, EfficientAD's
normalisation) is filled with random values of the trained shapes.

    PYTHONPATH=src .peer-venv/bin/python benchmarks/peer_worker_anomalib.py '{"model": "padim", "engine": "onnx",
        "size": 256, "batches": [1, 16], "threads": 2, "seconds": 4, "work": "/tmp/peer"}'
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from reconad.protocols.measure import timed_rate  # numpy and torch only (PYTHONPATH=src: see peer_anomalib)

PATCHCORE_BANK = 16384


def _reverse_distillation(size: int) -> torch.nn.Module:
    from anomalib.models.image.reverse_distillation.anomaly_map import AnomalyMapGenerationMode
    from anomalib.models.image.reverse_distillation.torch_model import ReverseDistillationModel

    return ReverseDistillationModel(
        backbone="resnet18",
        input_size=(size, size),
        layers=["layer1", "layer2", "layer3"],
        anomaly_map_mode=AnomalyMapGenerationMode.ADD,
        pre_trained=False,
    )


def _padim(size: int) -> torch.nn.Module:
    from anomalib.models.image.padim.torch_model import PadimModel

    model = PadimModel(backbone="resnet18", pre_trained=False)
    with torch.no_grad():
        emb = model.generate_embedding(model.feature_extractor(torch.rand(1, 3, size, size)))
    c, patches = int(emb.shape[1]), int(emb.shape[2] * emb.shape[3])
    model.gaussian.mean = torch.randn(c, patches)
    eye = torch.eye(c).expand(patches, c, c).clone()
    model.gaussian.inv_covariance = eye
    return model


def _patchcore(size: int) -> torch.nn.Module:
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    model = PatchcoreModel(layers=["layer2", "layer3"], backbone="resnet18", pre_trained=False)
    dims = sum(model.feature_extractor.out_dims)
    model.memory_bank = torch.randn(PATCHCORE_BANK, dims)
    return model


def _efficient_ad(size: int) -> torch.nn.Module:
    from anomalib.models.image.efficient_ad.torch_model import EfficientAdModel, EfficientAdModelSize

    model = EfficientAdModel(teacher_out_channels=384, model_size=EfficientAdModelSize.S)
    with torch.no_grad():
        model.mean_std["mean"].copy_(torch.rand(1, 384, 1, 1))
        model.mean_std["std"].copy_(torch.rand(1, 384, 1, 1) + 0.5)
        for key, value in zip(("qa_st", "qb_st", "qa_ae", "qb_ae"), (0.1, 0.9, 0.1, 0.9)):
            model.quantiles[key].fill_(value)
    return model


MODELS = {
    "reverse_distillation": _reverse_distillation,
    "padim": _padim,
    "patchcore": _patchcore,
    "efficient_ad": _efficient_ad,
}


class Outputs(torch.nn.Module):
    """(score, map) of an anomalib inference model, so ONNX export sees plain tensors."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(x)
        return out.pred_score, out.anomaly_map


def _onnx(model: torch.nn.Module, size: int, work: Path, name: str, threads: int) -> Any:
    import onnxruntime as ort

    path = work / f"{name}-{size}.onnx"
    if not path.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Outputs(model), (torch.rand(1, 3, size, size),), str(path), input_names=["images"],
                output_names=["scores", "maps"], dynamic_axes={"images": {0: "batch"}}, opset_version=17,
                dynamo=False,
            )  # fmt: skip
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"images": x})


def main(spec: dict[str, Any]) -> dict[str, Any]:
    threads, size = int(spec["threads"]), int(spec["size"])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = MODELS[spec["model"]](size).eval()
    batches = [int(b) for b in spec["batches"]]
    x = torch.rand(max(batches), 3, size, size)
    if spec["engine"] == "onnx":
        work = Path(spec["work"])
        work.mkdir(parents=True, exist_ok=True)
        fn = _onnx(model, size, work, spec["model"], threads)
        data: Any = x.numpy()
    else:

        def fn(batch: torch.Tensor) -> Any:
            with torch.inference_mode():
                return model(batch)

        data = x
    rates = {str(b): timed_rate(fn, data, b, float(spec["seconds"])) for b in batches}
    return {"model": spec["model"], "engine": spec["engine"], "images_per_second": rates, "pid": os.getpid()}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    ap.add_argument("spec", type=json.loads, help="settings, a JSON object (see the docstring)")
    return ap


if __name__ == "__main__":
    print(json.dumps(main(parser().parse_args().spec)))
