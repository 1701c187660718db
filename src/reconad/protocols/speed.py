"""``speed``: training time on generated texture images, inference speed and memory per engine.

Inference runs each engine in a fresh process (so its peak RSS is its own), measured
two ways:

* **engine**: images/s at batch 1, 4 and 16 (median of ``rounds`` rounds of
  ``n_images`` images) on an array already pre-processed, so only the engine is timed:
  PyTorch, ONNX Runtime on the float export, and on the int8 export (calibrated on the
  training images);
* **end to end**: what ``reconad predict`` does per image (PNG decode, resize, scoring,
  the p-value, ``scores.csv`` and the overlay PNG), over ``n_images`` PNG files, once
  warm (start-up excluded).

The floor: the model's
convolution/matmul FLOPs per image over this machine's float32 matrix-multiply rate,
measured in the same run; ``fraction_of_flop_floor`` = achieved / that limit.  A
torch.profiler op table per batch size goes to the output folder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from reconad.atomic import write_text
from reconad.jsonfile import write_json
from reconad.protocols.measure import forward_gflops, matmul_gflops, peak_rss_mib, rate, vm_hwm_mib
from reconad.protocols.results import Results, markdown_table, write_results
from reconad.protocols.settings import SpeedSettings

if TYPE_CHECKING:
    from reconad.detector import Detector

BATCHES = (1, 4, 16)


def _inference_worker(
    model_dir: str,
    onnx_path: str | None,
    engine: str,
    image_size: int,
    threads: int,
    batches: tuple[int, ...],
    n_images: int,
    rounds: int,
    queue: Any,
) -> None:
    """Run in a fresh process so that its peak RSS is inference's alone."""
    torch.set_num_threads(threads)
    from reconad.detector import Detector

    g = torch.Generator().manual_seed(0)
    images = torch.rand(max(batches), 3, image_size, image_size, generator=g)
    if engine.startswith("onnx"):
        from reconad.inference import OnnxScorer

        fn: Any = OnnxScorer(Path(str(onnx_path)), threads=threads, name=engine)
    else:
        fn = Detector.load(model_dir, device="cpu").pipeline().scorer

    rates = {str(b): rate(fn, images, b, n_images, rounds) for b in batches}
    queue.put({"images_per_second": rates, "peak_rss_mib": vm_hwm_mib()})


def _end_to_end_worker(run_dir: str, onnx_path: str | None, engine: str, threads: int, pngs: str, queue: Any) -> None:
    """images/s of the predict path (the run's pipeline) over the PNG files in ``pngs`` (second pass: warm)."""
    torch.set_num_threads(threads)
    from reconad.runs import load_run
    from reconad.streaming import stream_predict

    det, _ = load_run(run_dir)
    pipe = det.pipeline()
    if engine != "torch":
        pipe = pipe.with_engine_file(engine, Path(str(onnx_path)), threads)
    files = sorted(Path(pngs).glob("*.png"))
    seconds = []
    for i in range(2):
        out = Path(run_dir) / f"e2e-{engine}-{i}"
        t0 = time.perf_counter()
        stream_predict(pipe, files, out, batch_size=1, show_progress=False)
        seconds.append(time.perf_counter() - t0)
    queue.put({"images_per_second": len(files) / seconds[-1], "peak_rss_mib": vm_hwm_mib()})


def _in_subprocess(*args: Any, target: Any = _inference_worker) -> dict[str, Any]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get(timeout=1800)
    proc.join()
    return result


def _stage_split(net: Any, x: torch.Tensor, reps: int) -> dict[str, float]:
    """ms per image in HFR's encoder, decoder and the scoring/map path."""
    from reconad.models.hfr import HFR

    if not isinstance(net, HFR):
        return {}
    chunk = net.micro_batch(x)
    xs = x.split(chunk) if chunk else [x]
    batch = int(x.shape[0])
    with torch.inference_mode():
        feats = [net.encoder(c) for c in xs]

        def per_image(fn: Any) -> float:
            t = time.perf_counter()
            for _ in range(reps):
                for c, f in zip(xs, feats):
                    fn(c, f)
            return (time.perf_counter() - t) * 1000.0 / (reps * batch)

        split = {
            "encoder": per_image(lambda c, f: net.encoder(c)),
            "decoder": per_image(lambda c, f: net.decode(f)),
            "whole forward": per_image(lambda c, f: net.score_images(c)),
        }
    split["scoring and maps"] = split["whole forward"] - split["encoder"] - split["decoder"]
    return split


def profile_inference(net: Any, image_size: int, batch: int, out: Path, reps: int = 4) -> dict[str, Any]:
    """torch.profiler over ``reps`` forwards; writes the op table; returns the top ops and
    the split between encoder, decoder and the scoring/map path (ms per image)."""
    from torch.profiler import ProfilerActivity, profile

    x = torch.rand(batch, 3, image_size, image_size)
    with torch.inference_mode():
        net.score_images(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(reps):
                net.score_images(x)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
    write_text(out / f"profile_batch{batch}.txt", table)
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    top = [
        {
            "op": e.key,
            "share": e.self_cpu_time_total / total,
            "ms_per_image": e.self_cpu_time_total / 1000.0 / (reps * batch),
        }
        for e in events[:8]
    ]
    return {"top_ops": top, "ms_per_image": _stage_split(net, x, reps)}


def _train(s: SpeedSettings, pngs: Path) -> tuple[Any, float]:
    """Fit the model on ``n_train`` generated brick images; (detector, seconds).  The first
    ``n_images`` of them are copied to ``pngs`` (the end-to-end timing's files)."""
    import shutil
    import tempfile

    from reconad.data import build_image_dataset
    from reconad.data.textures import generate_textures
    from reconad.detector import Detector

    options = {"progress": False, **s.options}
    with tempfile.TemporaryDirectory() as tmp:
        root = generate_textures(
            tmp,
            categories=("brick",),
            image_size=s.image_size,
            n_train=s.n_train,
            n_test_good=0,
            n_test_defect_per_type=0,
        )
        pngs.mkdir(parents=True, exist_ok=True)
        for f in sorted((Path(root) / "brick" / "train" / "good").glob("*.png"))[: max(s.n_images, 2)]:
            shutil.copy(f, pngs / f.name)
        train = build_image_dataset("mvtec", str(root), category="brick", split="train", image_size=s.image_size)
        det = Detector(s.model_name, image_size=s.image_size, **options)
        t0 = time.perf_counter()
        det.fit(train)
        return det, time.perf_counter() - t0


def _one_block_rate(net: Any, s: SpeedSettings) -> tuple[int | None, float | None]:
    """Batch 16 as one block (no CPU micro-batches), to show what the micro-batching buys."""
    images = torch.rand(16, 3, s.image_size, s.image_size)
    chunk = net.micro_batch(images)
    if not chunk:
        return None, None
    budget = net.cpu_micro_batch_pixels
    net.cpu_micro_batch_pixels = None
    try:
        with torch.inference_mode():
            return chunk, rate(net.score_images, images, 16, s.n_images, s.rounds)
    finally:
        net.cpu_micro_batch_pixels = budget


def _exports(det: Detector, s: SpeedSettings, run: Path, pngs: Path) -> dict[str, Path | None]:
    """The model file of each engine: the float export, and int8 calibrated on the training images."""
    from reconad.export import export_onnx
    from reconad.inference import EXPORT_FILE, INT8_FILE
    from reconad.quantize import CALIBRATION_IMAGES, quantize_file

    paths: dict[str, Path | None] = {"torch": None}
    if not s.onnx:
        return paths
    paths["onnx"] = export_onnx(det, run / EXPORT_FILE)
    from reconad.data import load_image

    files = sorted(pngs.glob("*.png"))[:CALIBRATION_IMAGES]
    inputs = [load_image(f, s.image_size)[None].numpy() for f in files]
    quantize_file(run / EXPORT_FILE, run / INT8_FILE, inputs)
    paths["onnx-int8"] = run / INT8_FILE
    return paths


def _engine_rates(det: Detector, s: SpeedSettings, out: Path, threads: int, pngs: Path) -> dict[str, Any]:
    run = out / "run"
    det.save(run / "model")
    engines: dict[str, Any] = {}
    for engine, path in _exports(det, s, run, pngs).items():
        engines[engine] = _in_subprocess(
            str(run / "model"), str(path), engine, s.image_size, threads, BATCHES, s.n_images, s.rounds
        )
        e2e = _in_subprocess(str(run), str(path), engine, threads, str(pngs), target=_end_to_end_worker)
        engines[engine]["end_to_end_images_per_second"] = e2e["images_per_second"]
        engines[engine]["end_to_end_peak_rss_mib"] = e2e["peak_rss_mib"]
    return engines


def _flatten(engines: dict[str, Any], gflop: float, peak: float) -> dict[str, Any]:
    """Per-engine, per-batch figures under the key names earlier results used."""
    result: dict[str, Any] = {}
    for name, r in engines.items():
        engine = name.replace("-", "_")
        for b, value in r["images_per_second"].items():
            key = f"{engine}_batch{b.replace(', one block', '_one_block')}"
            result[f"images_per_second_{key}"] = value
            result[f"ms_per_image_{key}"] = 1000.0 / value
            result[f"fraction_of_flop_floor_{key}"] = value * gflop / peak if gflop else None
        result[f"peak_rss_mib_inference_{engine}"] = r["peak_rss_mib"]
        result[f"end_to_end_images_per_second_{engine}"] = r.get("end_to_end_images_per_second")
        result[f"end_to_end_peak_rss_mib_{engine}"] = r.get("end_to_end_peak_rss_mib")
        b1, b16 = result[f"images_per_second_{engine}_batch1"], result[f"images_per_second_{engine}_batch16"]
        result[f"{engine}_batch16_not_slower_per_image"] = bool(b16 >= 0.97 * b1)  # 3 %: timing noise
    result["images_per_second_batch1"] = result["images_per_second_torch_batch1"]
    result["images_per_second_batch16"] = result["images_per_second_torch_batch16"]
    return result


def _write(
    s: SpeedSettings, payload: dict[str, Any], engines: dict[str, Any], train_s: float, threads: int
) -> tuple[str, dict[str, Any]]:
    """results.{md,json} and speed.json; (the table, the results document)."""
    gflop, peak = payload["gflop_per_image"], payload["matmul_gflops_per_second"]
    rows = [
        {
            "engine": e,
            "batch": b,
            "images/s": v,
            "ms/image": 1000.0 / v,
            "fraction of FLOP floor": v * gflop / peak if gflop else float("nan"),
            "peak RSS MiB": r["peak_rss_mib"],
        }
        for e, r in engines.items()
        for b, v in r["images_per_second"].items()
    ]
    table = markdown_table(rows, ["engine", "batch", "images/s", "ms/image", "fraction of FLOP floor", "peak RSS MiB"])
    e2e = [
        {"engine": e, "images/s": r["end_to_end_images_per_second"], "peak RSS MiB": r["end_to_end_peak_rss_mib"]}
        for e, r in engines.items()
        if r.get("end_to_end_images_per_second")
    ]
    if e2e:
        table += "\n\nEnd to end (`reconad predict`'s path, batch 1, PNG files, warm):\n\n"
        table += markdown_table(e2e, ["engine", "images/s", "peak RSS MiB"])
    body = (
        f"{table}\n\nTraining: {train_s:.1f} s on {s.n_train} images. {gflop:.3f} GFLOP/image (conv + matmul), "
        f"matmul rate {peak:.1f} GFLOP/s: floor {peak / gflop:.1f} images/s.\n"
    )
    data = f"{s.n_train} generated brick texture images at {s.image_size} px (training); random images (timing)"
    doc = write_results(
        s.out,
        Results(
            "speed",
            f"speed: {s.model_name} at {s.image_size} px, {threads} threads",
            data,
            s.command,
            dict(s.options),
            payload,
            body,
        ),
    )
    write_json(Path(s.out) / "speed.json", {**payload, "protocol": "speed", "date": doc["date"]}, default=str)
    return table, doc


def run(settings: SpeedSettings) -> dict[str, Any]:
    """Train, then time inference per engine and batch; write speed.json and results.{md,json}."""
    s = settings
    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    det, train_s = _train(s, out / "pngs")
    rss_after_train = peak_rss_mib()
    net = det.model_.cpu().eval()
    engines = _engine_rates(det, s, out, threads, out / "pngs")
    chunk, one_block = _one_block_rate(net, s)
    if one_block is not None:
        engines["torch"]["images_per_second"]["16, one block"] = one_block
    gflop, peak = forward_gflops(net.score_images, s.image_size), matmul_gflops()
    profiles = {str(b): profile_inference(net, s.image_size, b, out) for b in (1, 16)}
    h = det.history_
    payload: dict[str, Any] = {
        "model": s.model_name,
        "image_size": s.image_size,
        "train_images": s.n_train,
        "train_seconds": train_s,
        "epochs_run": h.epochs_run if h else None,
        "prepare_seconds": h.prepare_seconds if h else None,
        "peak_rss_mib_training": rss_after_train,
        "torch_threads": threads,
        "cpu_micro_batch_at_16": chunk,
        "gflop_per_image": gflop,
        "matmul_gflops_per_second": peak,
        "floor_images_per_second": peak / gflop if gflop else None,
        **_flatten(engines, gflop, peak),
        "profile": profiles,
    }
    table, doc = _write(s, payload, engines, train_s, threads)
    if s.echo:
        print(table)
        print(
            f"training {train_s:.1f}s on {s.n_train} images; {gflop:.3f} GFLOP/image; matmul {peak:.1f} GFLOP/s; "
            f"results in {out}"
        )
        for b, p in profiles.items():
            print(f"batch {b}: ms/image " + ", ".join(f"{k} {v:.2f}" for k, v in p["ms_per_image"].items()))
    return doc
