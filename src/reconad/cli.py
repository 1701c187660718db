"""Command line: parses arguments and calls the Python API; nothing below this module sees argparse."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from reconad.cli_benchmark import add_benchmark_parser, add_model_choice_options
from reconad.errors import ReconadError

if TYPE_CHECKING:
    from reconad.data.spec import DataSpec

DATASET_CHOICES = ("mvtec", "folder", "magnetic-tile", "textures")


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _whole(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum`` (``--heatmaps -1`` is a typo, not "all")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _finite(text: str) -> float:
    """An argparse type: a finite number (``nan`` and ``inf`` parse as floats)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


COUNT, POSITIVE = _whole(0), _whole(1)


# ------------------------------------------------------------------ parsers


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=DATASET_CHOICES, default=None, help="dataset layout (default: mvtec for train)")
    p.add_argument("--root", default=None, help="dataset root folder")
    p.add_argument("--category", default=None, help="category (MVTec / textures)")


def _tiling_args(p: argparse.ArgumentParser, scoring: bool = False) -> None:
    after = " (default: the run's own)" if scoring else ""
    p.add_argument(
        "--tile-size",
        type=POSITIVE,
        default=None,
        help="score large images by overlapping tiles of this many pixels at their own resolution "
        "(the model trains on tiles of this size)" + after,
    )
    p.add_argument(
        "--tile-overlap", type=COUNT, default=None, help="pixels shared by neighbouring tiles (default tile/8)" + after
    )


def _train_parser(sub: Any) -> None:
    t = sub.add_parser("train", help="train a model on normal images")
    t.add_argument("--model", default="hfr")
    _data_args(t)
    t.add_argument("--out", required=True, help="run directory to create")
    t.add_argument("--image-size", type=POSITIVE, default=256)
    t.add_argument("--resize-mode", choices=("resize", "pad", "crop", "letterbox"), default="resize")
    _tiling_args(t)
    t.add_argument("--epochs", type=POSITIVE, default=None)
    t.add_argument("--batch-size", type=POSITIVE, default=None)
    t.add_argument("--lr", type=_finite, default=None)
    t.add_argument(
        "--backbone",
        default=None,
        help="efficientnet_lite0 (default), efficientnet_lite1/2, efficientnet_lite_ensemble, resnet18, resnet50, wide_resnet50_2",
    )
    t.add_argument(
        "--backbone-weights",
        default=None,
        help="checkpoint file for ResNet backbones (or cache torchvision's: reconad weights download NAME)",
    )
    t.add_argument("--seed", type=COUNT, default=0)
    t.add_argument(
        "--fpr",
        type=_finite,
        default=None,
        help="target false-alarm rate on normal images: the threshold is chosen from the scores of "
        "normal images set aside before training so that at most this share of new normal images is "
        "flagged (default: 0.05, or 0.01 where the set-aside images resolve it)",
    )
    t.add_argument("--device", default="auto")
    t.add_argument(
        "--labelled-anomalies",
        default=None,
        metavar="DIR",
        help="a folder of anomalous images added to training, labelled (masks from DIR/masks when there); "
        "for models that learn from a few labelled defects (hfr, esad)",
    )
    t.add_argument(
        "--labelled-fraction",
        type=_finite,
        default=None,
        help="magnetic-tile: move this seeded share of each defect class into training as labelled "
        "anomalies (and out of the test split)",
    )
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue RUN's training from RUN/checkpoints, with the data and options it was trained with "
        "(another model, model option, lr, optimiser or schedule is refused; --epochs may grow)",
    )
    t.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out: the new run is built beside it and replaces it only once it "
        "has succeeded (without --overwrite or --resume an existing run is refused)",
    )
    add_model_choice_options(t)
    t.add_argument("--quiet", action="store_true")


def _test_parsers(sub: Any) -> None:
    e = sub.add_parser("test", help="evaluate a run on its test split")
    e.add_argument("run")
    _data_args(e)
    e.add_argument("--heatmaps", type=COUNT, default=8, help="write this many most-anomalous overlays (0: none)")
    _tiling_args(e, scoring=True)
    _engine_arg(e)
    e.add_argument(
        "--no-report", dest="report", action="store_false", help="do not write the HTML report (RUN/report/report.html)"
    )
    e.add_argument("--quiet", action="store_true")
    rp = sub.add_parser("report", help="test a run and write its HTML report (RUN/report/report.html)")
    rp.add_argument("run")
    _data_args(rp)
    _engine_arg(rp)
    rp.add_argument("--quiet", action="store_true")


def _engine_arg(p: Any) -> None:
    from reconad.inference.names import DEFAULT_ENGINE, ENGINES

    p.add_argument(
        "--engine",
        choices=ENGINES,
        default=DEFAULT_ENGINE,
        help="auto (default): ONNX Runtime where the run has a valid export (RUN/export/model.onnx, written by "
        "`reconad export RUN`), PyTorch otherwise; auto never writes an export.  onnx / openvino: the export, "
        "written first when missing (asked for by name); onnx-int8: the export of "
        "`reconad export RUN --quantize int8`; openvino needs `pip install 'reconad[openvino]'`",
    )


def _predict_export_parsers(sub: Any) -> None:
    pr = sub.add_parser("predict", help="score images and write heat maps")
    pr.add_argument("run")
    pr.add_argument("paths", nargs="+", help="image files or folders")
    pr.add_argument("--out", required=True)
    _engine_arg(pr)
    pr.add_argument("--resume", action="store_true", help="keep the rows already in OUT/scores.csv, score the rest")
    pr.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first unreadable image (default: list it in OUT/errors.csv and go on)",
    )
    _tiling_args(pr, scoring=True)
    pr.add_argument(
        "--overlays",
        choices=("all", "flagged", "none"),
        default="all",
        help="which images get a heat-map overlay PNG: all (default), flagged (above the threshold) or none",
    )
    pr.add_argument("--quiet", action="store_true")
    x = sub.add_parser(
        "export",
        help="export a run's model (ONNX) with its pre-processing in JSON: the explicit step after which "
        "--engine auto scores with ONNX Runtime (predict, test and serve never write an export themselves)",
    )
    x.add_argument("run")
    x.add_argument("--format", choices=("onnx",), default="onnx")
    x.add_argument("--out", default=None, help="output file (default RUN/export/model.onnx)")
    x.add_argument(
        "--quantize",
        choices=("int8",),
        default=None,
        help="also write RUN/export/model.int8.onnx: static int8 (QDQ) calibrated on the run's held-out "
        "normal images, offered to --engine onnx-int8 only where its accuracy check passes",
    )


def _watch_parser(sub: Any) -> None:
    wa = sub.add_parser(
        "watch",
        help="score video frames as they arrive (a folder that grows, or a video file) with a frame model "
        "(motion_knn): one verdict per frame",
    )
    wa.add_argument(
        "run", help="a run folder of a frame model (e.g. from `reconad benchmark video --model motion_knn`)"
    )
    wa.add_argument("source", help="a folder of frames (polled for new ones) or a video file")
    wa.add_argument("--out", required=True, help="OUT/scores.csv, OUT/errors.csv, OUT/stream.json (a new folder)")
    wa.add_argument("--poll", type=_finite, default=0.2, help="seconds between looks at the folder (default 0.2)")
    wa.add_argument(
        "--idle-exit",
        type=_finite,
        default=None,
        help="stop after this many seconds without a new frame (default: never)",
    )
    wa.add_argument("--max-frames", type=POSITIVE, default=None, help="stop after this many frames")
    wa.add_argument(
        "--overlays",
        choices=("none", "flagged", "all"),
        default="none",
        help="heat-map PNGs in OUT/overlays (default none)",
    )
    wa.add_argument("--quiet", action="store_true", help="no line per frame")


def _serve_parser(sub: Any) -> None:
    s = sub.add_parser("serve", help="serve runs over HTTP: REST API, results database, web page")
    s.add_argument("runs", nargs="+", metavar="RUN", help="run directories, each RUN or NAME=RUN")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=COUNT, default=8000)
    _engine_arg(s)
    s.add_argument(
        "--db",
        default=None,
        help="sqlite:///FILE or postgresql://HOST/DB (default sqlite:///RUN/results.db, first RUN)",
    )
    s.add_argument("--api-key-file", default=None, help="file holding the key clients send as 'Bearer KEY'")
    s.add_argument("--workers", type=POSITIVE, default=1, help="worker processes, each with its own model copy")
    s.add_argument(
        "--threads", type=POSITIVE, default=None, help="inference threads per worker (default cores/workers)"
    )
    s.add_argument("--max-body-mb", type=_finite, default=20.0, help="request body limit (413 beyond)")
    s.add_argument("--max-pixels", type=POSITIVE, default=None, help="pixels per image (400 beyond; default 4096x4096)")
    s.add_argument("--max-images", type=POSITIVE, default=None, help="images per request (default 32)")
    s.add_argument(
        "--max-tiles", type=POSITIVE, default=None, help="tiles per request to a tiled model (413 beyond; default 256)"
    )
    s.add_argument(
        "--body-timeout-s",
        type=_finite,
        default=None,
        help="seconds for a request's headers, then its body, to arrive (408; default 30)",
    )
    s.add_argument("--max-batch", type=POSITIVE, default=None, help="images per forward pass (default 4)")
    s.add_argument("--batch-wait-ms", type=_finite, default=None, help="wait for a fuller batch (default 2)")
    s.add_argument("--queue-size", type=POSITIVE, default=None, help="images queued per model before 503 (default 64)")
    s.add_argument("--keep-overlays", choices=("none", "flagged", "all"), default="flagged")
    s.add_argument("--overlay-cap-kb", type=COUNT, default=512, help="largest overlay PNG kept in the database")
    s.add_argument("--log-level", choices=("critical", "error", "warning", "info", "debug"), default="info")
    s.add_argument(
        "--audit-share",
        type=_finite,
        default=0.0,
        help="chance in [0, 1) that a scored image, flagged or passed, is drawn into the audit sample a person "
        "reviews on the page; reviewed audit normals recalibrate the threshold (default 0: off)",
    )
    s.add_argument("--audit-seed", type=COUNT, default=None, help="seed of the audit draw (default: from the system)")
    s.add_argument(
        "--defects-dir",
        default=None,
        metavar="DIR",
        help="save reviewed defects in DIR/NAME for `reconad train --labelled-anomalies DIR/NAME` "
        "(default RUN/reviewed-defects)",
    )
    _tiling_args(s, scoring=True)


def _weights_parser(sub: Any) -> None:
    w = sub.add_parser("weights", help="download optional encoder weights (torchvision ResNets) into the cache")
    actions = w.add_subparsers(dest="weights_command", metavar="{download,list}", required=True)
    d = actions.add_parser("download", help="fetch, verify (SHA-256) and convert one checkpoint")
    d.add_argument("name", metavar="NAME", help="resnet18, resnet50 or wide_resnet50_2")
    d.add_argument("--url", default=None, help="fetch from this address (a mirror) instead of download.pytorch.org")
    d.add_argument("--force", action="store_true", help="download again even when the file is cached")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    actions.add_parser("list", help="show the cached weights")


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, like every other bad input (argparse prints the whole usage
    first), under the command's name: ``reconad benchmark: error: one-class: ...``."""

    def error(self, message: str) -> NoReturn:
        words = self.prog.split()
        where = " ".join(words[2:])
        required = "the following arguments are required: "
        if message.startswith(required):
            message = f"{message[len(required) :]} is required"
        text = f"{where}: {message}" if where else message
        self.exit(2, f"{' '.join(words[:2])}: error: {text} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from reconad.version import __version__

    parser = _Parser(prog="reconad", description="Reconstruction-based anomaly detection.")
    parser.add_argument("--version", action="version", version=f"reconad {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _test_parsers(sub)
    _predict_export_parsers(sub)
    _watch_parser(sub)
    add_benchmark_parser(sub)
    _serve_parser(sub)
    _weights_parser(sub)
    return parser


# ------------------------------------------------------------------ options


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """Model and engine options from the named flags and every ``--set key=value``."""
    opts: dict[str, Any] = {"seed": args.seed, "progress": not args.quiet}
    for key in ("epochs", "batch_size", "lr", "backbone", "backbone_weights", "device", "fpr", "preset", "tile_size",
                "tile_overlap"):  # fmt: skip
        val = getattr(args, key, None)
        if val is not None and not (key == "device" and val == "auto"):
            opts[key] = val
    for item in args.set:
        if "=" not in item:
            raise ReconadError(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        opts[k.strip().replace("-", "_")] = _parse_value(v)
    return opts


def _spec(args: argparse.Namespace, default_dataset: str | None = None) -> DataSpec | None:
    from reconad.data.spec import DataSpec, resolve_root

    dataset = args.dataset or default_dataset
    if dataset is None:
        return None
    fraction = getattr(args, "labelled_fraction", None)
    if fraction is not None and not 0 < fraction < 1:
        raise ReconadError(f"--labelled-fraction must be in (0, 1), got {fraction}")
    return DataSpec(
        dataset=dataset,
        root=resolve_root(dataset, args.root),
        category=args.category,
        image_size=getattr(args, "image_size", 256),
        resize_mode=getattr(args, "resize_mode", "resize"),
        labelled_fraction=fraction or 0.0,
        labelled_anomalies=getattr(args, "labelled_anomalies", None),
        tile_size=getattr(args, "tile_size", None),
    )


def _command_line(args: argparse.Namespace) -> str:
    """The command as the user typed it (``main``'s argv when called from Python)."""
    words = getattr(args, "argv", None)
    words = sys.argv[1:] if words is None else words
    return "reconad " + " ".join(words) if words else "reconad"


# ----------------------------------------------------------------- commands


def cmd_train(args: argparse.Namespace) -> int:
    from reconad.runs import train_run

    spec = _spec(args, default_dataset="mvtec")
    assert spec is not None
    det = train_run(spec, args.out, model=args.model, resume=args.resume, overwrite=args.overwrite, **_options(args))
    h = det.history_
    assert h is not None
    cal = det.calibration_.describe() if det.calibration_ is not None else f"threshold {det.threshold_:.4f}"
    print(
        f"trained {args.model} in {h.seconds:.1f}s ({h.epochs_run} epochs, best {h.best_epoch + 1}); "
        f"{cal}; saved to {args.out}"
    )
    if det.calibration_ is not None:
        from reconad.calibration import default_target_note

        note = default_target_note(det.calibration_)
        if note:
            print(note)
        print(f"expected: {det.calibration_.expectation_note()}")
    return 0


METRIC_KEYS = ["image_auroc", "image_aupr", "image_f1_max", "pixel_auroc", "pro"]


def cmd_test(args: argparse.Namespace) -> int:
    from reconad.protocols.results import markdown_table
    from reconad.runs import evaluate_run

    if args.root is not None and args.dataset is None:
        raise ReconadError("give --dataset with --root")
    spec = _spec(args) if args.dataset else None
    report = getattr(args, "report", True)  # `reconad report` is `test` without heat maps
    m = evaluate_run(
        args.run, spec, heatmaps=getattr(args, "heatmaps", 0), report=report,
        tile_size=getattr(args, "tile_size", None), tile_overlap=getattr(args, "tile_overlap", None),
        engine=args.engine,
    )  # fmt: skip
    print(markdown_table([m], ["category"] + [k for k in METRIC_KEYS if k in m]))
    if m.get("threshold") is not None:
        print(
            f"threshold {m['threshold']:.4g} ({m.get('threshold_basis')}): false-alarm rate "
            f"{m.get('false_alarm_rate', float('nan')):.3f}, detection rate {m.get('detection_rate', float('nan')):.3f}"
        )
        note = (m.get("calibration") or {}).get("expected_fpr_note")
        if note:  # what calibration promised, beside what the test split measured
            print(f"calibration: {note}")
        expected = m.get("expected_vs_measured")
        if expected:
            print(expected)
    print(f"metrics written to {Path(args.run) / 'metrics.json'}")
    if report:
        from reconad.report import report_path

        print(f"report written to {report_path(args.run)}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from reconad.quick_predict import predict  # PyTorch loads only where the engine or tiling needs it

    result = predict(
        args.run, args.paths, args.out, engine=args.engine, resume=args.resume, strict=args.strict,
        progress=not args.quiet, tile_size=args.tile_size, tile_overlap=args.tile_overlap,
        overlays=args.overlays,
    )  # fmt: skip
    if not result.main_process:
        return 0  # rank 0 speaks for every rank
    if result.failed and not result.scored and not result.skipped:  # nothing scored is not a success
        raise ReconadError(f"none of the {result.failed} image(s) could be read ({_first_error(result.errors_csv)})")
    kept = f", {result.skipped} kept from before" if result.skipped else ""
    print(f"scored {result.scored} image(s) in {result.seconds:.1f}s{kept}; scores written to {result.scores_csv}")
    if result.failed:
        print(f"{result.failed} image(s) could not be read: listed in {result.errors_csv}", file=sys.stderr)
    return 0


def _first_error(errors_csv: Path) -> str:
    """The first reason listed in a predict's ``errors.csv`` (path, reason), and where the rest are."""
    import csv

    with open(errors_csv, newline="", encoding="utf-8") as fh:
        rows = [row for row in csv.reader(fh) if len(row) >= 2][1:]
    first = f"{rows[0][1]}; " if rows else ""
    return f"{first}all listed in {errors_csv}"


def cmd_watch(args: argparse.Namespace) -> int:
    from reconad.frame_stream import watch

    def say(n: int, path: str, score: float, flagged: bool) -> None:
        print(f"{n}\t{path}\t{score:.4f}\t{'ANOMALOUS' if flagged else 'normal'}", flush=True)

    if args.poll <= 0 or (args.idle_exit is not None and args.idle_exit < 0):
        raise ReconadError("--poll must be > 0 and --idle-exit >= 0")
    try:
        result = watch(
            args.run, args.source, args.out, poll=args.poll, idle_exit=args.idle_exit,
            max_frames=args.max_frames, overlays=args.overlays, on_frame=None if args.quiet else say,
        )  # fmt: skip
    except KeyboardInterrupt:
        print(f"reconad: stopped; the rows so far are in {Path(args.out) / 'scores.csv'}", file=sys.stderr)
        return 130
    rate = result.frames / max(result.seconds, 1e-9)
    print(
        f"scored {result.frames} frame(s) ({result.flagged} above the threshold) at {rate:.1f} frames/s; "
        f"scores written to {result.scores_csv}"
    )
    if result.failed:
        print(f"{result.failed} frame(s) could not be read: listed in {Path(args.out) / 'errors.csv'}", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from reconad.runs import export_run

    if args.quantize and args.out is not None:
        raise ReconadError(
            "--quantize writes RUN/export/model.int8.onnx beside the run's export: give it without --out"
        )
    path = export_run(args.run, args.format, args.out)
    print(f"exported to {path} (pre-processing and threshold in {path.with_suffix('.json')})")
    if args.quantize == "int8":
        from reconad.quantize import quantize_run

        q = quantize_run(args.run)
        verdict = "offered to --engine onnx-int8" if q.offered else "NOT offered (--engine onnx-int8 refuses it)"
        print(f"int8 export written to {q.path}: {verdict}; {q.reason}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from reconad.serve.config import ServeConfig, parse_runs
    from reconad.serve.server import serve

    given = {
        "max_pixels": args.max_pixels,
        "max_images": args.max_images,
        "max_tiles": args.max_tiles,
        "body_timeout_s": args.body_timeout_s,
        "max_batch": args.max_batch,
        "batch_wait_ms": args.batch_wait_ms,
        "queue_size": args.queue_size,
        "tile_size": args.tile_size,
        "tile_overlap": args.tile_overlap,
    }
    if args.max_body_mb * 1024 * 1024 < 1:
        raise ReconadError(f"--max-body-mb must be > 0, got {args.max_body_mb:g}")
    config = ServeConfig(
        runs=parse_runs(args.runs),
        host=args.host,
        port=args.port,
        engine=args.engine,
        db=args.db,
        api_key_file=args.api_key_file,
        workers=args.workers,
        threads=args.threads,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        keep_overlays=args.keep_overlays,
        overlay_cap_bytes=args.overlay_cap_kb * 1024,
        log_level=args.log_level,
        audit_share=args.audit_share,
        audit_seed=args.audit_seed,
        defects_dir=args.defects_dir,
        **{k: v for k, v in given.items() if v is not None},
    )
    serve(config)
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from reconad.cli_benchmark import settings_from_args
    from reconad.protocols import run_protocol

    run_protocol(args.protocol, settings_from_args(args, _command_line(args)))
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from reconad.backbones import download

    if args.weights_command == "list":
        entries = download.list_cached_weights()
        print(f"weights cache: {download.weights_cache()}" + ("" if entries else " (empty)"))
        for e in entries:
            record = e["record"] or {}
            origin = f"sha256 {record.get('sha256', '?')[:16]}, from {record.get('source_url', '?')}"
            print(f"  {e['name']:<16} {e['bytes'] / 2**20:7.1f} MiB  {origin}, {record.get('created', '?')}")
        return 0
    cached = download.cached_weights(download.pinned_weights(args.name).name)
    if cached is not None and not args.force:
        print(f"{args.name}: already cached at {cached} (--force downloads it again)")
        return 0
    path = download.download_weights(args.name, url=args.url, force=args.force, quiet=args.quiet)
    print(f"{args.name}: verified and saved to {path}; use it with --backbone {path.stem}")
    return 0


HANDLERS = {
    "train": cmd_train,
    "test": cmd_test,
    "report": cmd_test,
    "predict": cmd_predict,
    "watch": cmd_watch,
    "export": cmd_export,
    "benchmark": cmd_benchmark,
    "serve": cmd_serve,
    "weights": cmd_weights,
}


def _rank_label() -> str:
    """Under torchrun every rank prints its own failure: " (rank N)" says which one."""
    from reconad.engine.distributed import launched_by_torchrun

    return f" (rank {os.environ.get('RANK', '?')})" if launched_by_torchrun() else ""


def format_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
) -> str:
    """A warning as the CLI prints it: one line saying what is wrong (the message names the
    files), not Python's file:line and the source line that raised it."""
    kind = "" if category in (UserWarning, FutureWarning) else f"{category.__name__}: "
    return f"reconad: warning: {kind}{message}\n"


def main(argv: list[str] | None = None) -> int:
    typed = list(argv) if argv is not None else None
    words = sys.argv[1:] if typed is None else typed
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    before, warnings.formatwarning = warnings.formatwarning, format_warning
    try:
        from reconad.cli_benchmark import is_legacy, legacy_argv

        if is_legacy(words):  # `benchmark --protocol X ...`, the old spelling (one more release)
            words = legacy_argv(words)
        args = build_parser().parse_args(words)
        args.argv = typed
        return HANDLERS[args.command](args)
    except ReconadError as exc:
        print(f"reconad: error{_rank_label()}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a missing, read-only or full file system: the path and the reason, one line
        print(f"reconad: error{_rank_label()}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reconad: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = before


if __name__ == "__main__":
    sys.exit(main())
