"""Benchmark protocols.  ``localization``: train + test one model per category."""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reconad.runs import DataSpec, format_table, test_run, train_run

KEYS = ["category", "image_auroc", "pixel_auroc", "pro", "image_f1_max", "train_seconds", "test_images_per_second"]


def categories_of(dataset: str, root: str, requested: str | None) -> list[str | None]:
    if requested:
        return [c.strip() for c in requested.split(",") if c.strip()]
    if dataset == "textures":
        from reconad.data.textures import DEFAULT_CATEGORIES

        return list(DEFAULT_CATEGORIES)
    if dataset == "mvtec":
        from reconad.data.mvtec import list_categories

        return list(list_categories(root))
    return [None]


def localization(
    dataset: str,
    root: str,
    out: str | Path,
    model: str = "hfr",
    categories: str | None = None,
    image_size: int = 256,
    resize_mode: str = "resize",
    heatmaps: int = 0,
    options: dict[str, Any] | None = None,
    echo: bool = True,
) -> dict[str, Any]:
    """Train and test ``model`` on every category; write ``results.json`` and ``results.md``."""
    options = dict(options or {})
    out = Path(out)
    rows = []
    for cat in categories_of(dataset, root, categories):
        spec = DataSpec(dataset=dataset, root=root, category=cat, image_size=image_size, resize_mode=resize_mode)
        run = out / (cat or dataset)
        t0 = time.perf_counter()
        train_run(spec, run, model=model, **options)
        train_s = time.perf_counter() - t0
        m = test_run(run, heatmaps=heatmaps)
        row = {
            **m,
            "category": cat or dataset,
            "train_seconds": train_s,
            "test_images_per_second": m["images_per_second"],
        }
        rows.append(row)
        if echo:
            print(
                f"{row['category']}: image AUROC {m['image_auroc']:.4f}  pixel AUROC "
                f"{m.get('pixel_auroc', float('nan')):.4f}  PRO {m.get('pro', float('nan')):.4f}  "
                f"(train {train_s:.0f}s)",
                flush=True,
            )
    mean = {k: float(np.nanmean([r[k] for r in rows if k in r])) for k in KEYS[1:] if any(k in r for r in rows)}
    mean["category"] = "mean"
    table = format_table(rows + [mean], [k for k in KEYS if k in mean])
    result = {
        "protocol": "localization",
        "dataset": dataset,
        "root": root,
        "model": model,
        "date": date.today().isoformat(),
        "image_size": image_size,
        "resize_mode": resize_mode,
        "settings": options,
        "per_category": rows,
        "mean": mean,
        "machine": {"cpus": torch.get_num_threads(), "platform": platform.platform(), "torch": torch.__version__},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "results.md").write_text(f"# {model} on {dataset} ({date.today().isoformat()})\n\n{table}\n")
    if echo:
        print(table)
    return result


def run_localization(args: argparse.Namespace, options: dict[str, Any]) -> dict[str, Any]:
    from reconad.runs import resolve_root

    return localization(
        args.dataset,
        resolve_root(args.dataset, args.root),
        args.out,
        model=args.model,
        categories=args.categories,
        image_size=args.image_size,
        resize_mode=args.resize_mode,
        options=options,
    )


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def matmul_gflops(n: int = 1024, seconds: float = 1.0) -> float:
    """This machine's float32 matrix-multiply rate (GFLOP/s) with the current torch threads.

    Best of repeated ``n x n`` products over about ``seconds``: the practical limit a
    convolutional network's FLOPs can run at here.
    """
    a, b = torch.rand(n, n), torch.rand(n, n)
    torch.mm(a, b)
    best, t_end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best / 1e9


def forward_gflops(net: torch.nn.Module, image_size: int) -> float:
    """Convolution / matmul FLOPs (2 x multiply-adds) of one image's forward, in GFLOP."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        net(torch.rand(1, 3, image_size, image_size))
    return counter.get_total_flops() / 1e9


def _rate(fn, images: torch.Tensor, batch: int, n_images: int, rounds: int) -> float:
    """Median images/s over ``rounds`` rounds of ``n_images`` images in batches of ``batch``."""
    x = images[:batch]
    fn(x)  # warm-up
    rates = []
    for _ in range(rounds):
        reps = max(1, n_images // batch)
        t = time.perf_counter()
        for _ in range(reps):
            fn(x)
        rates.append(reps * batch / (time.perf_counter() - t))
    return float(np.median(rates))


def _inference_worker(
    model_dir: str,
    onnx_path: str | None,
    engine: str,
    image_size: int,
    threads: int,
    batches: tuple[int, ...],
    n_images: int,
    rounds: int,
    queue,
) -> None:
    """Run in a fresh process so that its peak RSS is inference's alone."""
    torch.set_num_threads(threads)
    from reconad.detector import Detector

    g = torch.Generator().manual_seed(0)
    images = torch.rand(max(batches), 3, image_size, image_size, generator=g)
    if engine == "onnx":
        from reconad.export import OnnxDetector

        session = OnnxDetector(onnx_path, threads=threads)  # type: ignore[arg-type]
        fn = session
    else:
        net = Detector.load(model_dir, device="cpu").model
        assert net is not None

        def fn(x):
            with torch.inference_mode():
                return net(x)

    rates = {str(b): _rate(fn, images, b, n_images, rounds) for b in batches}
    queue.put({"images_per_second": rates, "peak_rss_mib": _vm_hwm_mib()})


def _vm_hwm_mib() -> float:
    """Peak RSS of this process's own memory map (``VmHWM``).  Unlike ``ru_maxrss`` it
    is not inherited from the parent that forked this process."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return peak_rss_mib()


def _in_subprocess(*args: Any) -> dict[str, Any]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_inference_worker, args=(*args, queue))
    proc.start()
    result = queue.get(timeout=1800)
    proc.join()
    return result


def profile_inference(net: torch.nn.Module, image_size: int, batch: int, out: Path, reps: int = 4) -> dict[str, Any]:
    """torch.profiler over ``reps`` forwards; writes the op table; returns the top ops and
    the split between encoder, decoder and the scoring/map path (ms per image)."""
    from torch.profiler import ProfilerActivity, profile

    x = torch.rand(batch, 3, image_size, image_size)
    with torch.inference_mode():
        net(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(reps):
                net(x)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
    (out / f"profile_batch{batch}.txt").write_text(table)
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
    split: dict[str, float] = {}
    encoder, decode = getattr(net, "encoder", None), getattr(net, "decode", None)
    if encoder is not None and decode is not None:
        chunk = net.micro_batch(x) if hasattr(net, "micro_batch") else None
        xs = x.split(chunk) if chunk else [x]

        def per_image(fn) -> float:
            t = time.perf_counter()
            for _ in range(reps):
                for c, f in zip(xs, feats):
                    fn(c, f)
            return (time.perf_counter() - t) * 1000.0 / (reps * batch)

        with torch.inference_mode():
            feats = [encoder(c) for c in xs]
            split["encoder"] = per_image(lambda c, f: encoder(c))
            split["decoder"] = per_image(lambda c, f: decode(f))
            split["whole forward"] = per_image(lambda c, f: net(c))
        split["scoring and maps"] = split["whole forward"] - split["encoder"] - split["decoder"]
    return {"top_ops": top, "ms_per_image": split}


def speed(
    model: str = "hfr",
    image_size: int = 256,
    n_train: int = 300,
    out: str | Path = "runs/speed",
    options: dict[str, Any] | None = None,
    echo: bool = True,
    n_images: int = 64,
    rounds: int = 3,
    onnx: bool = True,
) -> dict[str, Any]:
    """Training time on ``n_train`` texture images; inference speed and memory.

    Inference (each engine in a fresh process, so its peak RSS is its own): images/s
    at batch 1, 4 and 16 (median of ``rounds`` rounds of ``n_images`` images) with
    PyTorch and with onnxruntime on the exported model.  The floor: the model's
    convolution/matmul FLOPs per image over this machine's float32 matrix-multiply rate,
    measured in the same run; ``fraction_of_flop_floor`` = achieved / that limit.
    A torch.profiler op table per batch size goes to ``out``.
    """
    import tempfile

    from reconad.data import build_image_dataset
    from reconad.data.textures import generate_textures
    from reconad.detector import Detector
    from reconad.export import export_onnx

    options = dict(options or {})
    options.setdefault("progress", False)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        root = generate_textures(
            tmp, categories=("brick",), image_size=image_size, n_train=n_train, n_test_good=0, n_test_defect_per_type=0
        )
        train = build_image_dataset("mvtec", str(root), category="brick", split="train", image_size=image_size)
        det = Detector(model, image_size=image_size, **options)
        t0 = time.perf_counter()
        det.fit(train)
        train_s = time.perf_counter() - t0
    rss_after_train = peak_rss_mib()
    net = det.model
    assert net is not None
    net.cpu().eval()
    det.save(out / "model")
    onnx_path = export_onnx(det, out / "model.onnx") if onnx else None
    batches = (1, 4, 16)
    engines: dict[str, Any] = {}
    for engine in ("torch", "onnx") if onnx else ("torch",):
        engines[engine] = _in_subprocess(
            str(out / "model"), str(onnx_path), engine, image_size, threads, batches, n_images, rounds
        )
    # Batch 16 as one block (no CPU micro-batches), to show what the micro-batching buys.
    images = torch.rand(16, 3, image_size, image_size)
    budget = getattr(net, "cpu_micro_batch_pixels", None)
    chunk = net.micro_batch(images) if hasattr(net, "micro_batch") else None
    with torch.inference_mode():
        if chunk:
            net.cpu_micro_batch_pixels = None  # type: ignore[assignment]
            engines["torch"]["images_per_second"]["16, one block"] = _rate(net, images, 16, n_images, rounds)
            net.cpu_micro_batch_pixels = budget  # type: ignore[assignment]
    gflop = forward_gflops(net, image_size)
    peak = matmul_gflops()
    profiles = {str(b): profile_inference(net, image_size, b, out) for b in (1, 16)}
    result: dict[str, Any] = {
        "protocol": "speed",
        "model": model,
        "image_size": image_size,
        "date": date.today().isoformat(),
        "train_images": n_train,
        "train_seconds": train_s,
        "epochs_run": det.history.epochs_run if det.history else None,
        "prepare_seconds": det.history.prepare_seconds if det.history else None,
        "peak_rss_mib_training": rss_after_train,
        "torch_threads": threads,
        "cpu_micro_batch_at_16": chunk,
        "gflop_per_image": gflop,
        "matmul_gflops_per_second": peak,
        "floor_images_per_second": peak / gflop if gflop else None,
    }
    for engine, r in engines.items():
        for b, rate in r["images_per_second"].items():
            key = f"{engine}_batch{b.replace(', one block', '_one_block')}"
            result[f"images_per_second_{key}"] = rate
            result[f"ms_per_image_{key}"] = 1000.0 / rate
            result[f"fraction_of_flop_floor_{key}"] = rate * gflop / peak if gflop else None
        result[f"peak_rss_mib_inference_{engine}"] = r["peak_rss_mib"]
    for engine in engines:
        b1, b16 = result[f"images_per_second_{engine}_batch1"], result[f"images_per_second_{engine}_batch16"]
        result[f"{engine}_batch16_not_slower_per_image"] = bool(b16 >= 0.97 * b1)  # 3 %: timing noise
    # the names earlier results used
    result["images_per_second_batch1"] = result["images_per_second_torch_batch1"]
    result["images_per_second_batch16"] = result["images_per_second_torch_batch16"]
    result["profile"] = profiles
    result["settings"] = options
    (out / "speed.json").write_text(json.dumps(result, indent=2, default=str))
    rows = [
        {
            "engine": e,
            "batch": b,
            "images/s": rate,
            "ms/image": 1000.0 / rate,
            "fraction of FLOP floor": rate * gflop / peak if gflop else float("nan"),
            "peak RSS MiB": r["peak_rss_mib"],
        }
        for e, r in engines.items()
        for b, rate in r["images_per_second"].items()
    ]
    table = format_table(rows, ["engine", "batch", "images/s", "ms/image", "fraction of FLOP floor", "peak RSS MiB"])
    (out / "results.md").write_text(
        f"# speed: {model} at {image_size} px, {threads} threads ({date.today().isoformat()})\n\n{table}\n\n"
        f"{gflop:.3f} GFLOP/image (conv + matmul), matmul rate {peak:.1f} GFLOP/s: floor "
        f"{peak / gflop:.1f} images/s\n"
    )
    if echo:
        print(table)
        print(
            f"training {train_s:.1f}s on {n_train} images; {gflop:.3f} GFLOP/image; matmul {peak:.1f} GFLOP/s; "
            f"results in {out}"
        )
        for b, p in profiles.items():
            print(f"batch {b}: ms/image " + ", ".join(f"{k} {v:.2f}" for k, v in p["ms_per_image"].items()))
    return result


def false_alarms(
    categories: str | None = None,
    fpr: float = 0.05,
    n_train: int = 120,
    n_calibration: int = 120,
    n_fresh: int = 500,
    image_size: int = 256,
    out: str | Path = "runs/bench-calibration",
    options: dict[str, Any] | None = None,
    echo: bool = True,
) -> dict[str, Any]:
    """Realised false-alarm rate on fresh normal texture images at a target ``fpr``.

    Per texture: ``n_train + n_calibration`` normal crops (seed 0) are handed to
    ``Detector.fit`` with ``val_fraction`` set so that ``n_calibration`` are held out
    (early stopping, normalisation, threshold).  Fresh normals come from seed 1:
    ``n_fresh`` crops of the training region (the calibration's distribution) and
    ``n_fresh`` crops of the held-out quadrant (the test split's, a mild shift).
    """
    import tempfile

    from reconad.data import build_image_dataset
    from reconad.data.textures import DEFAULT_CATEGORIES, generate_textures
    from reconad.detector import Detector

    options = dict(options or {})
    options.setdefault("progress", False)
    options["fpr"] = float(options.get("fpr", fpr))
    options["val_fraction"] = n_calibration / float(n_train + n_calibration)
    cats = [c.strip() for c in categories.split(",")] if categories else list(DEFAULT_CATEGORIES)
    rows = []
    for cat in cats:
        with tempfile.TemporaryDirectory() as tmp:
            data = generate_textures(
                Path(tmp) / "fit",
                categories=(cat,),
                image_size=image_size,
                n_train=n_train + n_calibration,
                n_test_good=0,
                n_test_defect_per_type=0,
                seed=0,
            )
            fresh = generate_textures(
                Path(tmp) / "fresh",
                categories=(cat,),
                image_size=image_size,
                n_train=n_fresh,
                n_test_good=n_fresh,
                n_test_defect_per_type=0,
                seed=1,
            )
            t0 = time.perf_counter()
            det = Detector("hfr", image_size=image_size, **options).fit(
                build_image_dataset("mvtec", str(data), category=cat, split="train", image_size=image_size)
            )
            train_s = time.perf_counter() - t0
            same = det.predict(
                build_image_dataset("mvtec", str(fresh), category=cat, split="train", image_size=image_size)
            )
            shifted = det.predict(
                build_image_dataset("mvtec", str(fresh), category=cat, split="test", image_size=image_size)
            )
        cal = det.calibration
        assert cal is not None
        row = {
            "category": cat,
            "target_fpr": options["fpr"],
            "n_calibration": cal.n,
            "expected_fpr": cal.expected_fpr,
            "fpr_fresh_training_region": float(same.mean()),
            "fpr_fresh_held_out_quadrant": float(shifted.mean()),
            "n_fresh": n_fresh,
            "threshold": cal.threshold,
            "train_seconds": train_s,
        }
        rows.append(row)
        if echo:
            print(
                f"{cat}: target {row['target_fpr']:.3f}, realised {row['fpr_fresh_training_region']:.3f} "
                f"(fresh training-region crops) / {row['fpr_fresh_held_out_quadrant']:.3f} (held-out quadrant), "
                f"{n_fresh} each; {cal.n} calibration normals",
                flush=True,
            )
    keys = [
        "category",
        "target_fpr",
        "n_calibration",
        "expected_fpr",
        "fpr_fresh_training_region",
        "fpr_fresh_held_out_quadrant",
        "train_seconds",
    ]
    result = {
        "protocol": "calibration",
        "date": date.today().isoformat(),
        "image_size": image_size,
        "n_train": n_train,
        "n_calibration": n_calibration,
        "n_fresh": n_fresh,
        "settings": options,
        "per_category": rows,
        "machine": {"cpus": torch.get_num_threads(), "torch": torch.__version__},
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "results.md").write_text(
        f"# false alarms at a target rate ({date.today().isoformat()})\n\n{format_table(rows, keys)}\n"
    )
    if echo:
        print(format_table(rows, keys))
    return result
