"""Command line: thin wrappers over reconad.runs and the Detector."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from reconad.errors import ReconadError

DATASET_CHOICES = ("mvtec", "folder", "magnetic-tile", "textures")
PROTOCOLS = ("localization", "speed", "one-class", "tabular", "kddcup99")


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _data_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--dataset", choices=DATASET_CHOICES, required=required and False, default=None,
                   help="dataset layout (default: mvtec for train)")
    p.add_argument("--root", default=None, help="dataset root folder")
    p.add_argument("--category", default=None, help="category (MVTec / textures)")


def build_parser() -> argparse.ArgumentParser:
    from reconad import __version__

    parser = argparse.ArgumentParser(prog="reconad", description="Reconstruction-based anomaly detection.")
    parser.add_argument("--version", action="version", version=f"reconad {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model on normal images")
    t.add_argument("--model", default="hfr")
    _data_args(t, required=True)
    t.add_argument("--out", required=True, help="run directory to create")
    t.add_argument("--image-size", type=int, default=256)
    t.add_argument("--resize-mode", choices=("resize", "pad", "crop"), default="resize")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--backbone", default=None, help="efficientnet_lite0 (default), efficientnet_lite1/2, resnet18, resnet50, wide_resnet50_2")
    t.add_argument("--backbone-weights", default=None, help="checkpoint file for ResNet backbones")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto")
    t.add_argument("--resume", action="store_true", help="continue from RUN/checkpoints")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any model/engine option, e.g. --set score=topk --set feature_noise=0.1")
    t.add_argument("--quiet", action="store_true")

    e = sub.add_parser("test", help="evaluate a run on its test split")
    e.add_argument("run")
    _data_args(e, required=False)
    e.add_argument("--heatmaps", type=int, default=8, help="write this many most-anomalous overlays (0: none)")
    e.add_argument("--quiet", action="store_true")

    pr = sub.add_parser("predict", help="score images and write heat maps")
    pr.add_argument("run")
    pr.add_argument("paths", nargs="+", help="image files or folders")
    pr.add_argument("--out", required=True)
    pr.add_argument("--engine", choices=("torch",), default="torch")
    pr.add_argument("--quiet", action="store_true")

    b = sub.add_parser("benchmark", help="train and test over categories; write results.md/json")
    b.add_argument("--protocol", choices=PROTOCOLS, default="localization",
                   help="localization (MVTec-style), speed, one-class (class-vs-rest on image sets), "
                        "tabular (ADBench sets vs PyOD), kddcup99 (MemAE/DAGMM protocol)")
    b.add_argument("--model", default="hfr")
    b.add_argument("--dataset", default=None,
                   help="localization: mvtec|folder|magnetic-tile|textures (default textures); "
                        "one-class: fashion-mnist|mnist|mnist-10k|cifar10|digits")
    b.add_argument("--root", default=None)
    b.add_argument("--categories", default=None, help="comma-separated (default: all)")
    b.add_argument("--image-size", type=int, default=256)
    b.add_argument("--resize-mode", choices=("resize", "pad", "crop"), default="resize")
    b.add_argument("--epochs", type=int, default=None)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    b.add_argument("--out", default="runs/benchmark")
    b.add_argument("--quiet", action="store_true")
    return parser


def _options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {"seed": args.seed, "progress": not args.quiet}
    for key in ("epochs", "batch_size", "lr", "backbone", "backbone_weights", "device"):
        val = getattr(args, key, None)
        if val is not None and not (key == "device" and val == "auto"):
            opts[key] = val
    for item in args.set:
        if "=" not in item:
            raise ReconadError(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        opts[k.strip().replace("-", "_")] = _parse_value(v)
    return opts


def _spec(args: argparse.Namespace, default_dataset: str | None = None):
    from reconad.runs import DataSpec, resolve_root

    dataset = args.dataset or default_dataset
    if dataset is None:
        return None
    return DataSpec(dataset=dataset, root=resolve_root(dataset, args.root), category=args.category,
                    image_size=getattr(args, "image_size", 256), resize_mode=getattr(args, "resize_mode", "resize"))


def cmd_train(args: argparse.Namespace) -> int:
    from reconad.runs import train_run

    spec = _spec(args, default_dataset="mvtec")
    det = train_run(spec, args.out, model=args.model, resume=args.resume, **_options(args))
    h = det.history
    print(f"trained {args.model} in {h.seconds:.1f}s ({h.epochs_run} epochs, best {h.best_epoch + 1}); "
          f"threshold {det.threshold:.4f}; saved to {args.out}")
    return 0


METRIC_KEYS = ["image_auroc", "image_aupr", "image_f1_max", "pixel_auroc", "pro"]


def cmd_test(args: argparse.Namespace) -> int:
    from reconad.runs import format_table, test_run

    if args.root is not None and args.dataset is None:
        raise ReconadError("give --dataset with --root")
    spec = _spec(args) if args.dataset else None
    m = test_run(args.run, spec, heatmaps=args.heatmaps)
    print(format_table([m], ["category"] + [k for k in METRIC_KEYS if k in m]))
    print(f"metrics written to {Path(args.run) / 'metrics.json'}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from reconad.runs import predict_run

    path = predict_run(args.run, args.paths, args.out, engine=args.engine)
    print(f"scores written to {path}")
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from reconad.benchmark import run_localization, speed

    if args.protocol == "speed":
        speed(args.model, image_size=args.image_size, out=args.out, options=_options(args))
    elif args.protocol == "one-class":
        from reconad.protocols.oneclass import run_one_class

        run_one_class(args, _options(args))
    elif args.protocol in ("tabular", "kddcup99"):
        from reconad.protocols.tabular import run_tabular

        run_tabular(args, _options(args))
    else:
        args.dataset = args.dataset or "textures"
        if args.dataset not in DATASET_CHOICES:
            raise ReconadError(f"--dataset {args.dataset!r} is not a localization dataset; choose one of "
                               f"{', '.join(DATASET_CHOICES)}")
        run_localization(args, _options(args))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    handlers = {"train": cmd_train, "test": cmd_test, "predict": cmd_predict, "benchmark": cmd_benchmark}
    try:
        return handlers[args.command](args)
    except ReconadError as exc:
        print(f"reconad: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        print(f"reconad: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reconad: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
