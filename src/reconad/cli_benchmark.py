"""``reconad benchmark <protocol>``: one sub-command per protocol, generated from its settings class.

Each field of a protocol's settings dataclass made with ``reconad.protocols.settings.setting``
is one flag: ``n_train`` -> ``--n-train``, its type (int, float, str, bool, a comma-separated
list, a JSON object), default, choices and help (the field's ``doc``).  Flags not given are
left out of the namespace (``argparse.SUPPRESS``), so the dataclass holds the only defaults
and its ``__post_init__`` checks every value before any data is read.  The model options
(``--set``, ``--epochs``, ``--seed``, ``--preset``) go to ``options``, for the models only.

The old spelling ``reconad benchmark --protocol X ...`` is rewritten onto ``reconad benchmark
X ...`` (:func:`legacy_argv`) for one release, with a deprecation warning.
"""

from __future__ import annotations

import argparse
import json
import math
import types
import warnings
from collections.abc import Callable
from dataclasses import MISSING, Field
from typing import Any, Union, get_args, get_origin, get_type_hints

from reconad.errors import ConfigError
from reconad.protocols import PROTOCOLS
from reconad.protocols.settings import ProtocolSettings, flag_name

#: the model-option flags every protocol that runs models takes (values go to ``options``)
MODEL_OPTION_FLAGS = ("--epochs", "--seed", "--preset", "--set")


# ------------------------------------------------------------------ value parsers


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _list_of(item: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        return [item(t.strip()) for t in text.split(",") if t.strip()]

    return parse


_SCALARS: dict[Any, Callable[[str], Any]] = {int: _int, float: _float, str: str}


def _parts(tp: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed) of an annotation."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0], len(args) < len(get_args(tp))
    return tp, False


def _default(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


# ------------------------------------------------------------------ the sub-commands


def _add_field(p: argparse.ArgumentParser, f: Field[Any], tp: Any) -> None:
    """One flag from one settings field."""
    base, _ = _parts(tp)
    default = _default(f)
    doc, choices, metavar = f.metadata["doc"], f.metadata["choices"], f.metadata["metavar"]
    if base is bool:
        name, action = (
            ("--no-" + f.name.replace("_", "-"), "store_false") if default else (flag_name(f.name), "store_true")
        )
        p.add_argument(name, dest=f.name, action=action, default=argparse.SUPPRESS, help=doc)
        return
    kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "metavar": metavar}
    if get_origin(base) is list:
        item = get_args(base)[0]
        kw["type"] = _list_of(_SCALARS[item])
        kw["metavar"] = metavar or ("A,B,..." if item is str else "N,N,...")
    elif get_origin(base) is dict:
        kw["type"] = _json_object
        kw["metavar"] = metavar or "JSON"
    else:
        kw["type"] = _SCALARS[base]
        if choices:
            kw["choices"], kw["metavar"] = choices, None
    if default is MISSING:
        kw["required"] = True
    elif default not in (None, "", [], {}):
        doc = f"{doc} (default {_shown(default)})"
    if choices and get_origin(base) is list:
        doc = f"{doc}; from {', '.join(choices)}"
    p.add_argument(flag_name(f.name), help=doc, **kw)


def _add_model_options(p: argparse.ArgumentParser, cls: type[ProtocolSettings]) -> None:
    g = p.add_argument_group("model options (for the models only; go to their configuration)")
    g.add_argument("--epochs", type=_int, default=None, help="training epochs (default: each model's own)")
    if "seed" not in {f.name for f in cls.flag_fields()}:
        g.add_argument("--seed", type=_int, default=0, help="seed of the models and the draws (default 0)")
    add_model_choice_options(g, "; memae: paper, in the video protocol its whole recipe")


def add_model_choice_options(p: Any, more_presets: str = "") -> None:
    """``--preset`` and ``--set``, as ``reconad train`` and every benchmark take them."""
    p.add_argument(
        "--preset",
        default=None,
        help=f"a named set of model options (hfr: paper, ensemble; patchcore: ensemble{more_presets})",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any model/engine option, values read as JSON, e.g. --set score=topk --set 'layers=[3,4,5]'",
    )


def add_benchmark_parser(sub: Any) -> None:
    """``reconad benchmark`` with one sub-command per protocol of ``reconad.protocols.PROTOCOLS``."""
    b = sub.add_parser(
        "benchmark",
        help="run a benchmark protocol; write results.md/json",
        description="Run a benchmark protocol: `reconad benchmark PROTOCOL --help` lists its options.",
    )
    protocols = b.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)
    for name, (_, cls) in PROTOCOLS.items():
        doc = " ".join((cls.__doc__ or "").split()).replace("``", "")
        p = protocols.add_parser(name, help=cls.summary, description=doc)
        hints = get_type_hints(cls)
        for f in cls.flag_fields():
            _add_field(p, f, hints[f.name])
        if cls.takes_model_options:
            _add_model_options(p, cls)
        p.add_argument("--quiet", action="store_true", help="no progress bars, no tables on the console")


def option_strings(cls: type[ProtocolSettings]) -> set[str]:
    """The flags of ``cls``'s sub-command (as :func:`add_benchmark_parser` makes them)."""
    out = {"--quiet", "-h", "--help"}
    for f in cls.flag_fields():
        bool_true = f.default is True
        out.add("--no-" + f.name.replace("_", "-") if bool_true else flag_name(f.name))
    if cls.takes_model_options:
        out.update(MODEL_OPTION_FLAGS)
    return out


# ------------------------------------------------------------------ settings from the command line


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def model_options(args: argparse.Namespace, cls: type[ProtocolSettings]) -> dict[str, Any]:
    """The model options of the model-option flags and every ``--set key=value`` (a key that
    is one of the protocol's own settings is refused: it has its flag)."""
    if not cls.takes_model_options:
        return {}
    own = {f.name: flag_name(f.name) for f in cls.flag_fields()}
    opts: dict[str, Any] = {"progress": not args.quiet}
    if "seed" not in own:
        opts["seed"] = args.seed
    for key in ("epochs", "preset"):
        if getattr(args, key) is not None:
            opts[key] = getattr(args, key)
    for item in args.set:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        key = k.strip().replace("-", "_")
        if key in own:
            raise ConfigError(
                f"--set {key}: a setting of the {cls.protocol} protocol, not a model option: give {own[key]}"
            )
        opts[key] = _parse_value(v)
    return opts


def settings_from_args(args: argparse.Namespace, command: str) -> ProtocolSettings:
    """The protocol's settings from its sub-command's namespace (checked as they are made)."""
    cls = PROTOCOLS[args.protocol][1]
    given = {f.name: getattr(args, f.name) for f in cls.flag_fields() if hasattr(args, f.name)}
    return cls(**given, options=model_options(args, cls), echo=not args.quiet, command=command)


# ------------------------------------------------------------------ the old spelling


def is_legacy(argv: list[str]) -> bool:
    """``benchmark`` followed by flags and no protocol name: the old ``--protocol X`` spelling."""
    return len(argv) > 1 and argv[0] == "benchmark" and argv[1].startswith("-") and argv[1] not in ("-h", "--help")


def _pop_protocol(words: list[str]) -> tuple[str, list[str]]:
    """The ``--protocol`` value (default localization, as before) and the other words."""
    rest, protocol, i = [], "localization", 0
    while i < len(words):
        w = words[i]
        if w == "--protocol" and i + 1 < len(words):
            protocol, i = words[i + 1], i + 2
            continue
        if w.startswith("--protocol="):
            protocol = w.split("=", 1)[1]
        else:
            rest.append(w)
        i += 1
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    return protocol, rest


def _set_as_flag(cls: type[ProtocolSettings], item: str) -> list[str] | None:
    """``--set key=value`` for one of the protocol's own settings, as that setting's flag."""
    key, _, text = item.partition("=")
    key = key.strip().replace("-", "_")
    f = next((f for f in cls.flag_fields() if f.name == key), None)
    if f is None:
        return None
    value = _parse_value(text)
    if isinstance(value, bool):
        return (
            ([] if value else ["--no-" + f.name.replace("_", "-")]) if f.default is True else [flag_name(key)] * value
        )
    return [flag_name(key), _shown(value)]


def _rewrite(protocol: str, words: list[str]) -> list[str]:
    """The old words as the sub-command's: protocol settings given by ``--set`` become their
    flags, tabular's ``--root`` is ``--data-root``, another protocol's ``--fpr`` a model option."""
    cls = PROTOCOLS[protocol][1]
    out, i = [], 0
    while i < len(words):
        w, nxt = words[i], words[i + 1] if i + 1 < len(words) else None
        if w == "--set" and nxt is not None and (flag := _set_as_flag(cls, nxt)) is not None:
            out += flag
            i += 2
            continue
        if w == "--root" and cls.protocol in ("tabular", "kddcup99"):
            w = "--data-root"
        elif w == "--fpr" and cls.protocol != "calibration" and nxt is not None:
            out += ["--set", f"fpr={nxt}"]
            i += 2
            continue
        out.append(w)
        i += 1
    return out


def _refuse_foreign_flags(protocol: str, words: list[str]) -> None:
    """ConfigError for a flag of another protocol's sub-command (the old parser took every
    protocol's flags), naming the protocols that read it."""
    mine = option_strings(PROTOCOLS[protocol][1])
    for w in words:
        name = w.split("=", 1)[0]
        if not name.startswith("--") or name in mine:
            continue
        readers = [p for p, (_, cls) in PROTOCOLS.items() if name in option_strings(cls)]
        if readers:
            hint = f"; give {name}s" if f"{name}s" in mine else ""
            raise ConfigError(
                f"{name} does not apply to the {protocol} protocol (it is read by: {', '.join(readers)}){hint}"
            )


def legacy_argv(argv: list[str]) -> list[str]:
    """``benchmark --protocol X ...`` (the old spelling) as ``benchmark X ...``, with a
    deprecation warning; ConfigError for an unknown protocol or another protocol's flag."""
    protocol, words = _pop_protocol(argv[1:])
    words = _rewrite(protocol, words)
    _refuse_foreign_flags(protocol, words)
    new = ["benchmark", protocol, *words]
    warnings.warn(
        f"`reconad benchmark --protocol {protocol}` is deprecated and goes in the next release; "
        f"the same run is `reconad benchmark {protocol} ...` (see reconad benchmark {protocol} --help)",
        FutureWarning,
        stacklevel=2,
    )
    return new
