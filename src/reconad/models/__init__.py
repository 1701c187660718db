"""Model registry: ``build_model("hfr", **config)``.

Entries are imported on first use, so importing one model never pulls in another's
dependencies (e.g. a pretrained backbone).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from reconad.errors import ConfigError
from reconad.models.base import AnomalyModel, ModelConfig

#: name -> (module, model class, config dataclass)
MODELS: dict[str, tuple[str, str, str]] = {
    "hfr": ("reconad.models.hfr", "HFR", "HFRConfig"),
    "ae": ("reconad.models.ae", "AE", "AEConfig"),
    "vae": ("reconad.models.vae", "VAE", "VAEConfig"),
    "memae": ("reconad.models.memae", "MemAE", "MemAEConfig"),
    "esad": ("reconad.models.esad", "ESAD", "ESADConfig"),
    "hadgan": ("reconad.models.hadgan", "HADGAN", "HADGANConfig"),
    "rx": ("reconad.models.rx", "RX", "RXConfig"),
    "patchcore": ("reconad.models.patchcore", "PatchCore", "PatchCoreConfig"),
    "advae": ("reconad.models.advae", "AdVAE", "AdVAEConfig"),
    "cavga": ("reconad.models.cavga", "CAVGA", "CAVGAConfig"),
    "anogan": ("reconad.models.anogan", "AnoGAN", "AnoGANConfig"),
    "fanogan": ("reconad.models.fanogan", "FAnoGAN", "FAnoGANConfig"),
    "egbad": ("reconad.models.egbad", "EGBAD", "EGBADConfig"),
    "alad": ("reconad.models.alad", "ALAD", "ALADConfig"),
    "ganomaly": ("reconad.models.ganomaly", "GANomaly", "GANomalyConfig"),
    "skip_ganomaly": ("reconad.models.skip_ganomaly", "SkipGANomaly", "SkipGANomalyConfig"),
    "alocc": ("reconad.models.alocc", "ALOCC", "ALOCCConfig"),
    "aae": ("reconad.models.aae", "AAE", "AAEConfig"),
    "adae": ("reconad.models.adae", "ADAE", "ADAEConfig"),
    "rsrae": ("reconad.models.rsrae", "RSRAE", "RSRAEConfig"),
    "motion_knn": ("reconad.models.motion_knn", "MotionKNN", "MotionKNNConfig"),
}


def model_entry(name: str) -> tuple[type[AnomalyModel], type[ModelConfig]]:
    key = str(name).lower()
    if key not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}")
    module, cls, cfg = MODELS[key]
    mod = importlib.import_module(module)
    return getattr(mod, cls), getattr(mod, cfg)


def model_uses_labels(name: str, options: Mapping[str, Any] | None = None) -> bool:
    """Whether model ``name`` (built with ``options``) trains on labelled anomalies."""
    return model_entry(name)[0].uses_labels_for(options or {})


def label_learners() -> list[str]:
    """The models that train on labelled anomalies, as messages and docs name them: ``esad``,
    or ``cavga (variant='w')`` for one that does so with some options only (``labels_with``)."""
    out = []
    for name in MODELS:
        cls = model_entry(name)[0]
        if cls.uses_labels:
            out.append(name)
        elif cls.labels_with:
            out.append(f"{name} ({', '.join(f'{k}={v!r}' for k, v in cls.labels_with.items())})")
    return out


def models_taking(kind: str) -> list[str]:
    """The models that take ``kind`` data: "image", "table" or "video" (their ``input_kinds``)."""
    return [name for name in MODELS if kind in model_entry(name)[0].input_kinds]


def model_config_fields(name: str) -> set[str]:
    return model_entry(name)[1].field_names()


def build_model(name: str, **config: Any) -> AnomalyModel:
    cls, cfg_cls = model_entry(name)
    return cls(cfg_cls(**config))


__all__ = [
    "MODELS",
    "AnomalyModel",
    "build_model",
    "label_learners",
    "model_config_fields",
    "model_entry",
    "model_uses_labels",
    "models_taking",
]
