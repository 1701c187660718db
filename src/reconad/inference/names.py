"""The engines a pipeline can be asked for, by name (no imports: the command line reads
these to build its help without loading numpy or any engine)."""

from __future__ import annotations

from reconad.errors import DataError

__all__ = ["DEFAULT_ENGINE", "ENGINES", "FILE_ENGINES", "check_engine_name"]

#: every engine a pipeline can be asked for; ``auto`` is resolved when the pipeline is built
ENGINES = ("auto", "onnx", "onnx-int8", "openvino", "torch")
DEFAULT_ENGINE = "auto"
#: the engines that run an exported file
FILE_ENGINES = ("onnx", "onnx-int8", "openvino")


def check_engine_name(engine: str, option: str = "--engine") -> str:
    """``engine`` when it names an engine; a one-line DataError naming the option otherwise."""
    if engine not in ENGINES:
        raise DataError(f"{option} {engine}: unknown engine; choose one of {', '.join(ENGINES)}")
    return engine
