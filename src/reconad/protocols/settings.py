"""Typed settings of every benchmark protocol: what ``reconad benchmark <protocol>`` fills from its options.

Each protocol takes one of these frozen dataclasses and nothing else.  A field made with
:func:`setting` is one command-line flag of that protocol's sub-command: its name
(``n_train`` -> ``--n-train``), type, default, choices and help (``doc``) are read from the
field by ``reconad.cli_benchmark``, so the flags and these classes cannot drift apart.
Fields without a doc are not flags: ``options`` holds the model and engine options
(``--set key=value``, ``--epochs``, ``--seed``, ``--preset``), ``echo`` is ``not --quiet``,
``command`` the command line recorded beside the results (None when called from Python).

Every value is checked in ``__post_init__``, before any data is read: a bad one is a
``ConfigError`` naming its flag.  So are the model options, as each model's Detector will
get them (``detector_options``: ``Detector(name, **options).check_params()``), a bad one
named with its model.  Runners never change a settings object; where they need
a derived one they build it with ``dataclasses.replace``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

from reconad.errors import ConfigError

LOCALIZATION_DATASETS = ("mvtec", "folder", "magnetic-tile", "textures")
CALIBRATION_DATASETS = ("textures", "magnetic-tile")
CALIBRATION_METHODS = ("split", "holdout", "cross-fit")
#: the image sets of ``reconad.data.class_datasets.ONE_CLASS_SETS`` (a test keeps them equal)
ONE_CLASS_DATASETS = ("fashion-mnist", "mnist", "mnist-10k", "cifar10", "digits")
VIDEO_DATASETS = ("ucsd-ped2", "ucsd")
VIDEO_LABELS = ("m", "mat", "csv")
VIDEO_NORMALISATIONS = ("clip", "global")
RESIZE_MODES = ("resize", "pad", "crop", "letterbox")
SERVE_ENGINES = ("auto", "onnx", "onnx-int8", "openvino", "torch")
#: the model the hyperspectral protocol always runs beside the others
HYPERSPECTRAL_BASELINE = "rx"


def setting(
    default: Any = MISSING,
    doc: str = "",
    *,
    factory: Callable[[], Any] | None = None,
    choices: tuple[str, ...] = (),
    metavar: str | None = None,
) -> Any:
    """A settings field that is also a flag: ``doc`` is its help, ``choices`` the values it
    takes (for a list field: each item).  No default (and no ``factory``): a required flag."""
    meta = {"doc": doc, "choices": choices, "metavar": metavar}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def flag_name(name: str) -> str:
    """The flag of field ``name``: ``n_train`` -> ``--n-train``."""
    return "--" + name.replace("_", "-")


def _fail(name: str, rule: str, value: Any) -> ConfigError:
    return ConfigError(f"{flag_name(name)} {rule}, got {value!r}")


def _whole(name: str, value: Any, minimum: int = 1, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(name, f"must be a whole number >= {minimum}", value)


def _wholes(name: str, values: Iterable[Any] | None, minimum: int = 1) -> None:
    for v in values or ():
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise _fail(name, f"takes whole numbers >= {minimum}", v)


def _share(name: str, value: Any, low: float, high: float, closed: str = "[)") -> None:
    """``value`` in the interval ``low``..``high``; ``closed`` says which ends belong to it."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (value >= low if closed[0] == "[" else value > low) and (
            value <= high if closed[1] == "]" else value < high
        )
    if not ok:
        raise _fail(name, f"must be in {closed[0]}{low:g}, {high:g}{closed[1]}", value)


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise _fail(name, "must be > 0", value)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{flag_name(name)} {value!r}: choose one of {', '.join(choices)}")


def split_names(text: str) -> list[str]:
    """The model names of a comma-separated ``text``, lower-cased."""
    return [m.strip().lower() for m in text.split(",") if m.strip()]


def check_models(names: list[str], kind: str, what: str, protocol: str) -> None:
    """ConfigError naming ``--model`` and the models the protocol can run, for a name that
    is not registered or takes no ``kind`` input: a protocol never swaps the model it was
    given for another."""
    from reconad.models import MODELS, model_entry

    takes = [n for n in sorted(MODELS) if kind in model_entry(n)[0].input_kinds]
    if not names:
        raise ConfigError(f"--model names no model; the {protocol} protocol runs: {', '.join(takes)}")
    for name in names:
        if name not in takes:
            raise ConfigError(
                f"--model {name}: the {protocol} protocol needs models that take {what}: {', '.join(takes)}"
            )


def split_options(
    options: dict[str, Any], models: list[str], own_only: Iterable[str] = ()
) -> dict[str, dict[str, Any]]:
    """Per-model options: ``key`` for every model (but those in ``own_only``, e.g. PyOD's),
    ``model.key`` for that model only."""
    common = {k: v for k, v in options.items() if "." not in k}
    per: dict[str, dict[str, Any]] = {m: {} for m in models}
    for k, v in options.items():
        if "." in k:
            prefix, key = k.split(".", 1)
            target = prefix.replace("_", "-").lower()
            if target not in per:
                raise ConfigError(f"--set {k}: {target!r} is not one of the models run ({', '.join(models)})")
            per[target][key] = v
    skip = set(own_only)
    return {m: {**({} if m in skip else common), **per[m]} for m in models}


def options_known_to(models: list[str], options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each model's options when several run: ``--set key=value`` goes to every model that
    knows the key (a key none of them knows is an error), ``--set model.key=value`` to that
    model only."""
    from reconad.detector import DETECTOR_DEFAULTS
    from reconad.engine import TrainConfig
    from reconad.models import model_config_fields

    per = split_options(options, models)
    common = {k: v for k, v in options.items() if "." not in k}
    known = {m: model_config_fields(m) | TrainConfig.field_names() | set(DETECTOR_DEFAULTS) for m in models}
    unknown = [k for k in common if not any(k in known[m] for m in models)]
    if unknown:
        raise ConfigError(f"unknown option(s) for {', '.join(models)}: {', '.join(sorted(unknown))}")
    return {m: {k: v for k, v in per[m].items() if k in known[m] or k not in common} for m in models}


def check_detector_options(per_model: dict[str, dict[str, Any]]) -> None:
    """ConfigError naming the model and the first bad option of any model about to run
    (``Detector.check_params``), so that a bad ``--set`` value fails before any data is read."""
    from reconad.detector import Detector

    for name, options in per_model.items():
        try:
            Detector(name, **options).check_params()
        except ConfigError as exc:
            raise ConfigError(f"model {name}: {exc}") from None


@dataclass(frozen=True, kw_only=True)
class ProtocolSettings:
    """What every protocol has: where results go, the model options, echo and the command."""

    #: the protocol's name (``reconad benchmark <name>``) and what it measures, in a line
    protocol: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: whether the sub-command takes the model-option flags (--set, --epochs, --seed, --preset)
    takes_model_options: ClassVar[bool] = True

    out: str = setting("", "output folder (default: runs/benchmark, or one named after the dataset and model)")
    options: dict[str, Any] = field(default_factory=dict)
    echo: bool = True
    command: str | None = None

    def __post_init__(self) -> None:
        if not self.out:
            object.__setattr__(self, "out", self.default_out())
        self.check()
        check_detector_options(self.detector_options())

    def detector_options(self) -> dict[str, dict[str, Any]]:
        """Model name -> the Detector options its runs start from (the model options merged
        with the settings the protocol gives its Detector), checked at construction; the runner
        adds only what a run decides (its seed, a calibration method).  None here."""
        return {}

    def default_out(self) -> str:
        """The output folder when none is given."""
        return "runs/benchmark"

    def check(self) -> None:
        """ConfigError naming the flag of the first bad value (run at construction)."""

    @classmethod
    def flag_fields(cls) -> list[Any]:
        """The fields that are flags (those made with :func:`setting`), in order."""
        return [f for f in fields(cls) if "doc" in f.metadata]


@dataclass(frozen=True, kw_only=True)
class ModelSettings(ProtocolSettings):
    """A protocol that runs the models named in ``model`` on one kind of input."""

    #: the input kind the models must take, and how the refusal names it
    input_kind: ClassVar[tuple[str, str]] = ("image", "images")
    #: whether ``model`` may name several (comma-separated), run on the same data
    several_models: ClassVar[bool] = False

    model: str = setting("hfr", "the model to run")

    def model_names(self) -> list[str]:
        """The model names ``model`` holds (comma-separated), lower-cased."""
        return split_names(self.model)

    def detector_options(self) -> dict[str, dict[str, Any]]:
        return {name: {**self.options, **self.detector_settings()} for name in self.model_names()}

    def detector_settings(self) -> dict[str, Any]:
        """The protocol's settings its Detector takes as options (e.g. ``image_size``)."""
        return {}

    @property
    def model_name(self) -> str:
        """The one model of a protocol that runs one."""
        return self.model_names()[0]

    def check(self) -> None:
        kind, what = self.input_kind
        names = self.model_names()
        check_models(names, kind, what, self.protocol)
        if len(names) > 1 and not self.several_models:
            raise _fail("model", f"takes one model in the {self.protocol} protocol", self.model)


@dataclass(frozen=True, kw_only=True)
class LocalizationSettings(ModelSettings):
    """Train + test one model per category of an MVTec-style dataset; ``model`` may name
    several, comma-separated (e.g. ``hfr,patchcore``), run on the same splits."""

    protocol: ClassVar[str] = "localization"
    summary: ClassVar[str] = "image / pixel AUROC and PRO per category (MVTec layout, textures, magnetic tiles)"
    several_models: ClassVar[bool] = True

    model: str = setting("hfr", "model to run; comma-separated: several, on the same splits")
    dataset: str = setting("textures", "dataset layout", choices=LOCALIZATION_DATASETS)
    root: str | None = setting(None, "dataset root folder (textures: generated there when missing)")
    categories: list[str] | None = setting(None, "comma-separated categories (default: all)")
    image_size: int = setting(256, "working image size in pixels")
    resize_mode: str = setting("resize", "how images are brought to the working size", choices=RESIZE_MODES)
    heatmaps: int = setting(0, "heat-map overlays written per category (the most anomalous test images)")
    labelled_fraction: float = setting(
        0.0,
        "magnetic-tile: a seeded share of each defect class moved into training as labelled anomalies "
        "(and out of the test split); 0: none",
    )

    def check(self) -> None:
        super().check()
        _choice("dataset", self.dataset, LOCALIZATION_DATASETS)
        _choice("resize_mode", self.resize_mode, RESIZE_MODES)
        _whole("image_size", self.image_size)
        _whole("heatmaps", self.heatmaps, 0)
        if self.labelled_fraction != 0:
            _share("labelled_fraction", self.labelled_fraction, 0, 1, "()")

    def detector_settings(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "resize_mode": self.resize_mode}


@dataclass(frozen=True, kw_only=True)
class SpeedSettings(ModelSettings):
    """Training time, inference images/s per engine and batch size, peak memory."""

    protocol: ClassVar[str] = "speed"
    summary: ClassVar[str] = "training time, images/s per engine and batch size, peak memory, FLOP floor"

    image_size: int = setting(256, "image size in pixels")
    n_train: int = setting(300, "generated training images (small for a quick check)")
    n_images: int = setting(64, "images timed per round")
    rounds: int = setting(3, "timing rounds (the median is reported)")
    onnx: bool = setting(True, "also time the ONNX Runtime export (--no-onnx: PyTorch only)")

    def check(self) -> None:
        super().check()
        for name in ("image_size", "n_train", "n_images", "rounds"):
            _whole(name, getattr(self, name))

    def detector_settings(self) -> dict[str, Any]:
        return {"image_size": self.image_size}


@dataclass(frozen=True, kw_only=True)
class CalibrationSettings(ModelSettings):
    """Realised against expected false-alarm rates at target rates, per training-set size
    and calibration method (``split``, ``holdout``, ``cross-fit``), on textures or magnetic tiles."""

    protocol: ClassVar[str] = "calibration"
    summary: ClassVar[str] = "realised false-alarm rate at target rates on fresh normal images"

    dataset: str = setting("textures", "generated textures or magnetic tiles", choices=CALIBRATION_DATASETS)
    root: str | None = setting(None, "dataset root (required for magnetic-tile)")
    categories: list[str] | None = setting(None, "textures: comma-separated categories (default: all)")
    fpr: list[float] = setting(doc="comma-separated target false-alarm rates", factory=lambda: [0.05, 0.01])
    n_train: list[int] | None = setting(
        None, "comma-separated training-set sizes (default 30,60,120 and all: 240 textures, 762 tiles)"
    )
    methods: list[str] = setting(
        doc="comma-separated calibration methods",
        factory=lambda: list(CALIBRATION_METHODS),
        choices=CALIBRATION_METHODS,
    )
    n_fresh: int = setting(500, "textures: fresh normal images per region the realised rate is measured on")
    n_defects: int = setting(10, "textures: generated defects of each kind among the fresh test images (for the AUROC)")
    image_size: int = setting(256, "image size in pixels")

    def check(self) -> None:
        super().check()
        _choice("dataset", self.dataset, CALIBRATION_DATASETS)
        if self.dataset == "magnetic-tile" and not self.root:
            raise ConfigError("--root is required for --dataset magnetic-tile")
        if not self.fpr:
            raise _fail("fpr", "needs at least one rate", self.fpr)
        for v in self.fpr:
            _share("fpr", v, 0, 1, "()")
        _wholes("n_train", self.n_train)
        for m in self.methods:
            _choice("methods", m, CALIBRATION_METHODS)
        _whole("n_fresh", self.n_fresh)
        _whole("n_defects", self.n_defects, 0)
        _whole("image_size", self.image_size)

    def detector_settings(self) -> dict[str, Any]:
        return {"image_size": self.image_size}

    def sizes(self) -> list[int]:
        """Training-set sizes: as given, else 30, 60, 120 and all (240 generated textures, 762 tiles)."""
        if self.n_train:
            return list(self.n_train)
        return [30, 60, 120, 762] if self.dataset == "magnetic-tile" else [30, 60, 120, 240]


@dataclass(frozen=True, kw_only=True)
class OneClassSettings(ModelSettings):
    """Each class in turn normal, the rest anomalous (image sets); with ``anomalous_class``
    the inverse (GANomaly's and EGBAD's protocol): each class in turn anomalous, the other
    classes normal.  ``train_per_class`` keeps a seeded draw of that many normal training
    images (all when None): the same test split, a smaller training set.  ``seeds``: runs
    per class, with seeds ``seed``, ``seed + 1``, ...; the table gives the mean over the
    seeds and its spread."""

    protocol: ClassVar[str] = "one-class"
    summary: ClassVar[str] = "one class normal, the rest anomalous (Fashion-MNIST, MNIST, CIFAR-10, digits)"

    dataset: str = setting("", "the image set (required)", choices=ONE_CLASS_DATASETS)
    root: str | None = setting(None, "folder holding the set's files (default: where the system keeps them)")
    classes: list[int] | None = setting(None, "comma-separated class numbers taken in turn as normal (default: all)")
    image_size: int | None = setting(None, "image size in pixels (default: 64 for hfr, the data's own for others)")
    labelled_ratio: float = setting(
        0.0, "semi-supervised models: labelled anomalies a/(n+a) drawn from the other classes into training"
    )
    train_per_class: int | None = setting(
        None, "keep a seeded draw of this many normal training images per class (a control for the training-set size)"
    )
    download: bool = setting(False, "fetch the official Fashion-MNIST files into --root when missing")
    val_fraction: float = setting(0.1, "hfr: share of each class's training images held out for validation")
    anomalous_class: bool = setting(
        False, "the inverse protocol (GANomaly's): each class in turn anomalous, the others normal"
    )
    seeds: int = setting(1, "runs per class, with seeds --seed, --seed+1, ...; the table gives their mean")

    def default_out(self) -> str:
        inverse = "-anomalous-class" if self.anomalous_class else ""
        return f"runs/one-class-{self.dataset}-{self.model.strip().lower()}{inverse}"

    def check(self) -> None:
        super().check()
        if not self.dataset:
            raise ConfigError(f"--dataset is required for the one-class protocol ({', '.join(ONE_CLASS_DATASETS)})")
        _choice("dataset", self.dataset, ONE_CLASS_DATASETS)
        _wholes("classes", self.classes, 0)
        _whole("image_size", self.image_size, optional=True)
        _share("labelled_ratio", self.labelled_ratio, 0, 1)
        _share("val_fraction", self.val_fraction, 0, 1)
        _whole("seeds", self.seeds)
        hfr = self.model_names() == ["hfr"]
        if self.train_per_class is not None and (self.anomalous_class or hfr):
            raise ConfigError("--train-per-class goes with the standard protocol and a model other than hfr")
        _whole("train_per_class", self.train_per_class, optional=True)
        if hfr and self.anomalous_class:
            raise ConfigError("hfr's one-class runner has the standard protocol only; drop --anomalous-class")
        if self.labelled_ratio > 0:
            self._check_labels(hfr)

    def detector_settings(self) -> dict[str, Any]:
        return {} if self.image_size is None else {"image_size": self.image_size}

    def _check_labels(self, hfr: bool) -> None:
        from reconad.models import model_uses_labels

        if hfr:
            raise ConfigError("hfr trains on normal data only; drop --labelled-ratio")
        if self.anomalous_class:
            raise ConfigError("--labelled-ratio goes with the standard protocol only; drop it or --anomalous-class")
        for name in self.model_names():
            if not model_uses_labels(name, self.options):
                raise ConfigError(f"model {name} does not use labelled anomalies; drop --labelled-ratio")


@dataclass(frozen=True, kw_only=True)
class TabularSettings(ProtocolSettings):
    """ADBench sets: our models beside PyOD's on the same splits (``kddcup99``: the subclass)."""

    protocol: ClassVar[str] = "tabular"
    summary: ClassVar[str] = "ADBench sets beside PyOD's baselines"
    #: where --data-root points by default in the refusal when none is given
    data_hint: ClassVar[str] = "../shared/data/adbench-classical"

    data_root: str | None = setting(None, "folder of ADBench .npz files")
    datasets: list[str] | None = setting(
        None, "comma-separated ADBench names (default cardio,satellite,satimage-2,shuttle,thyroid,WBC)"
    )
    models: list[str] | None = setting(None, "comma-separated models (default ae,vae,memae,esad,pyod-ae,iforest)")
    seed: int = setting(0, "the first seed")
    seeds: int = setting(5, "runs per dataset and model, with seeds --seed, --seed+1, ...")
    label_fraction: float = setting(0.1, "share of the train part's anomalies given labelled to semi-supervised models")
    threads: int = setting(1, "torch intra-op threads while it runs (one is fastest for these small models)")

    def check(self) -> None:
        self.root()
        _whole("seed", self.seed, 0)
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise _fail("seeds", "must be >= 1 (a count of runs)", self.seeds)
        _share("label_fraction", self.label_fraction, 0, 1, "[]")
        _whole("threads", self.threads)

    def root(self) -> str:
        """``data_root``, refused in one line when not given."""
        if self.data_root is None:
            raise ConfigError(f"give --data-root (e.g. {self.data_hint})")
        return self.data_root

    def seed_list(self) -> list[int]:
        """The seeds run: ``seed``, ``seed + 1``, ... (``seeds`` of them)."""
        return [self.seed + i for i in range(self.seeds)]


@dataclass(frozen=True, kw_only=True)
class Kddcup99Settings(TabularSettings):
    """KDDCUP99 with the DAGMM / MemAE protocol: our models beside PyOD's."""

    protocol: ClassVar[str] = "kddcup99"
    summary: ClassVar[str] = "the DAGMM / MemAE protocol on KDDCUP99"
    data_hint: ClassVar[str] = "../shared/data/kddcup99"

    data_root: str | None = setting(None, "folder holding kddcup.data_10_percent.gz (or the file itself)")
    datasets: list[str] | None = None  # one set: not a flag here
    models: list[str] | None = setting(None, "comma-separated models (default ae,vae,memae,esad,iforest)")


#: the video protocol's clip settings for 2 CPU cores (a preset's recipe replaces them)
VIDEO_CLIP_DEFAULTS: dict[str, Any] = {
    "frame_size": [64, 96],
    "channels": 1,
    "clip_length": 16,
    "train_stride": 4,
    "test_stride": 8,
}


def video_clip_defaults(models: list[str]) -> dict[str, Any]:
    """The clip settings not given: ``VIDEO_CLIP_DEFAULTS``, or the models' own
    (``video_clip_defaults`` of their class, e.g. motion_knn's frames at their own size)
    where every model named has the same."""
    from reconad.models import model_entry

    own: list[dict[str, Any] | None] = [getattr(model_entry(n)[0], "video_clip_defaults", None) for n in models]
    first = own[0] if own else None
    if first is not None and all(o == first for o in own):
        return {**VIDEO_CLIP_DEFAULTS, **first}
    return dict(VIDEO_CLIP_DEFAULTS)


def video_recipe(models: list[str], preset: Any) -> Any:
    """The video recipe (``reconad.models.memae.paper.VideoRecipe``) of ``preset`` for every
    model named, None without a preset; ConfigError for a model without that preset."""
    if preset is None:
        return None
    from reconad.models import model_entry

    recipes = []
    for name in models:
        cls = model_entry(name)[0]
        if preset not in cls.presets:
            have = ", ".join(sorted(cls.presets)) or "none"
            raise ConfigError(f"--preset {preset}: model {name} has no such preset (its presets: {have})")
        recipes.append(getattr(cls, "video_recipes", {}).get(preset))
    found = [r for r in recipes if r is not None]
    return found[0] if found else None


@dataclass(frozen=True, kw_only=True)
class VideoSettings(ModelSettings):
    """Video anomaly detection on clip folders in the UCSD layout (``ucsd-ped2``, or any set
    laid out like it): train on the training clips, per-frame scores on the test clips.
    Both normalisations are always in results.json; ``normalisation`` picks the one reported first.

    ``--preset paper`` (or ``--set preset=paper``; memae) applies MemAE's whole video recipe
    (``reconad.models.memae.paper``): its model and engine options and its clip settings
    (256x256 grey frames, 16-frame clips, strides 1).  Precedence: what the user gives
    wins, as for every preset, and is recorded: a clip-setting flag or a model/engine
    option that differs from the recipe is listed in ``preset_departures`` (results.json,
    results.md and one console line), so a run is never called the paper's without
    saying where it is not.
    """

    protocol: ClassVar[str] = "video"
    summary: ClassVar[str] = "frame-level AUROC on test clips in the UCSD layout (UCSD Ped2), frames/s"
    several_models: ClassVar[bool] = True
    input_kind: ClassVar[tuple[str, str]] = ("video", "video clips")

    model: str = setting("memae", "model to run; comma-separated: several, on the same clips")
    dataset: str = setting("ucsd-ped2", "the clip set's layout", choices=VIDEO_DATASETS)
    root: str | None = setting(None, "folder of the clip set (e.g. ../shared/data/ucsd-ped2)")
    frame_size: list[int] | None = setting(
        None, "working resolution H,W (default 64,96; motion_knn: 256,384; --preset paper: 256,256)", metavar="H,W"
    )
    channels: int | None = setting(None, "1: grey, 3: RGB (default 1)")
    clip_length: int | None = setting(None, "frames per clip (default 16)")
    train_stride: int | None = setting(None, "frames between training clip starts (default 4; --preset paper: 1)")
    test_stride: int | None = setting(
        None, "frames between test clip starts (default 8; --preset paper: 1; motion_knn scores each clip as a stream)"
    )
    labels: str = setting("m", "where the test-frame labels come from", choices=VIDEO_LABELS)
    normalisation: str = setting(
        "clip",
        "the score reported first: clip (min-max per test clip, the papers' regularity score) or global",
        choices=VIDEO_NORMALISATIONS,
    )
    threads: int | None = setting(None, "torch intra-op threads while it runs (default: as they are)")
    #: what the user gave that differs from the preset's recipe: {name: {"given", "preset"}}
    preset_departures: dict[str, dict[str, Any]] = field(init=False, default_factory=dict)

    def default_out(self) -> str:
        return f"runs/video-{self.dataset}-{self.model.replace(',', '-')}"

    def recipe(self) -> Any:
        """The preset's video recipe (None without ``--preset`` or when it has none)."""
        return video_recipe(self.model_names(), self.options.get("preset"))

    def _apply_recipe(self) -> None:
        """Fill the clip settings not given from the recipe (else the CPU defaults) and record
        what was given against the recipe (construction only: the object is frozen after)."""
        recipe = self.recipe()
        clips = {**video_clip_defaults(self.model_names()), **(recipe.clips if recipe else {})}
        for name, value in clips.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if recipe is None:
            return
        departures = {}
        for name, value in clips.items():
            if getattr(self, name) != value:
                departures[flag_name(name)] = {"given": getattr(self, name), "preset": value}
        for key, value in recipe.options().items():
            if key in self.options and self.options[key] != value:
                departures[key] = {"given": self.options[key], "preset": value}
        object.__setattr__(self, "preset_departures", departures)

    def check(self) -> None:
        super().check()
        _choice("dataset", self.dataset, VIDEO_DATASETS)
        if self.root is None:
            raise ConfigError("give --root (e.g. ../shared/data/ucsd-ped2)")
        self._apply_recipe()
        assert self.frame_size is not None
        if len(self.frame_size) != 2:
            raise _fail("frame_size", "takes two numbers H,W", self.frame_size)
        _wholes("frame_size", self.frame_size, 16)
        if self.channels not in (1, 3):
            raise _fail("channels", "must be 1 (grey) or 3 (RGB)", self.channels)
        _whole("clip_length", self.clip_length, 2)
        _whole("train_stride", self.train_stride)
        _whole("test_stride", self.test_stride)
        _choice("labels", self.labels, VIDEO_LABELS)
        _choice("normalisation", self.normalisation, VIDEO_NORMALISATIONS)
        _whole("threads", self.threads, optional=True)


@dataclass(frozen=True, kw_only=True)
class HyperspectralSettings(ModelSettings):
    """Per-scene unsupervised detection on hyperspectral scenes (``.mat`` / ENVI files in
    ``root``; ``scenes`` picks some by file name).  Each model trains on the scene's own
    pixels without labels; the global RX detector always runs beside as the baseline."""

    protocol: ClassVar[str] = "hyperspectral"
    summary: ClassVar[str] = "per-scene pixel AUROC on hyperspectral scenes, beside global RX"
    several_models: ClassVar[bool] = True
    input_kind: ClassVar[tuple[str, str]] = ("table", "pixel spectra (table rows)")

    model: str = setting("hadgan", "model to run; comma-separated: several (rx always runs beside)")
    root: str | None = setting(None, "folder of .mat / ENVI scenes (e.g. ../shared/data/hyperspectral)")
    scenes: list[str] | None = setting(None, "comma-separated scene file names (default: all in --root)")
    maps: bool = setting(True, "write a map PNG per scene (--no-maps: none)")
    threads: int | None = setting(None, "torch intra-op threads while it runs (default: as they are)")

    def default_out(self) -> str:
        return f"runs/hyperspectral-{self.model.replace(',', '-')}"

    def run_models(self) -> list[str]:
        """The models run on every scene: those of ``model``, then the RX baseline."""
        return [m for m in self.model_names() if m != HYPERSPECTRAL_BASELINE] + [HYPERSPECTRAL_BASELINE]

    def detector_options(self) -> dict[str, dict[str, Any]]:
        """Each model's share of the options (``--set model.key=value`` for one model only); every
        pixel of a scene trains (``val_fraction`` 0) unless an option says otherwise."""
        per = options_known_to(self.run_models(), self.options)
        return {m: {"val_fraction": 0.0, **opts} for m, opts in per.items()}

    def check(self) -> None:
        super().check()
        if self.root is None:
            raise ConfigError("give --root (a folder of .mat / ENVI scenes, e.g. ../shared/data/hyperspectral)")
        _whole("threads", self.threads, optional=True)


@dataclass(frozen=True, kw_only=True)
class ServeLoadSettings(ProtocolSettings):
    """Load test of ``reconad serve`` on loopback: ``run`` served in a subprocess, closed-loop
    phases of ``clients`` concurrent clients for ``seconds`` each posting real test images,
    then an open-loop flood at ``flood_factor`` times the rate the largest phase sustained
    for ``flood_seconds`` (at most ``flood_clients`` requests outstanding).  Every phase
    stops after ``max_requests``.  The offline ``reconad predict --engine onnx`` rate over
    ``offline_images`` images is measured in the same run."""

    protocol: ClassVar[str] = "serve"
    summary: ClassVar[str] = "`reconad serve` under load: latency, images/s, errors, memory, a flood past the queue"
    takes_model_options: ClassVar[bool] = False

    out: str = setting("runs/bench-serve", "output folder")
    run: str = setting("", "the run directory served (required; train one with `reconad train`)")
    clients: list[int] = setting(doc="comma-separated concurrent clients, one phase each", factory=lambda: [1, 4, 16])
    seconds: float = setting(30.0, "seconds per closed-loop phase")
    flood_seconds: float = setting(60.0, "seconds of the open-loop flood")
    flood_factor: float = setting(4.0, "flood rate as a multiple of the largest phase's rate")
    # between the server's default queue (64 images) and its connection limit (128)
    flood_clients: int = setting(96, "requests outstanding at most during the flood")
    engine: str = setting("onnx", "the server's and the offline reference's engine", choices=SERVE_ENGINES)
    workers: int = setting(1, "server worker processes")
    n_images: int = setting(64, "distinct test images posted")
    offline_images: int = setting(256, "images of the offline `reconad predict` reference")
    max_requests: int = setting(100_000, "requests per phase at most")
    server: dict[str, Any] = setting(
        doc="extra ServeConfig fields as JSON, e.g. '{\"max_batch\": 8}'", factory=dict, metavar="JSON"
    )

    def check(self) -> None:
        if not self.run:
            raise ConfigError("--run RUN is required for the serve protocol (train one with `reconad train`)")
        if not self.clients:
            raise _fail("clients", "needs at least one phase", self.clients)
        _wholes("clients", self.clients)
        for name in ("seconds", "flood_seconds", "flood_factor"):
            _positive(name, getattr(self, name))
        _choice("engine", self.engine, SERVE_ENGINES)
        for name in ("flood_clients", "workers", "n_images", "offline_images", "max_requests"):
            _whole(name, getattr(self, name))
        if not isinstance(self.server, dict):
            raise _fail("server", "takes a JSON object", self.server)
