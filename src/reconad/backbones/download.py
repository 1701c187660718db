"""Optional download of torchvision's ImageNet ResNet weights into a user cache.

``reconad weights download NAME`` (only when a user asks: nothing here runs on its own)
fetches the official torchvision checkpoint, checks its SHA-256 against the digest
pinned in ``TORCHVISION_WEIGHTS``, reads it with ``torch.load(weights_only=True)``
(``load_state_dict_file``), checks that it fits the in-house ``ResNet`` and keeps
``NAME.safetensors`` with ``NAME.json`` (where it came from, both digests, torch
version, date) in the cache.  The downloaded .pth is deleted: the cache holds only
safetensors and JSON.  ``build_backbone(NAME)`` then finds the file (``cached_weights``).

The cache is ``$RECONAD_CACHE/weights``, else ``$XDG_CACHE_HOME/reconad/weights``,
else ``~/.cache/reconad/weights``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import platform
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

import torch

from reconad.atomic import atomic_path, temp_sibling
from reconad.backbones.checkpoint import load_into, load_state_dict_file
from reconad.backbones.resnet import ResNet
from reconad.errors import ConfigError, ReconadError

__all__ = [
    "TORCHVISION_WEIGHTS",
    "PinnedWeights",
    "WeightsDownloadError",
    "cached_weights",
    "download_weights",
    "file_sha256",
    "list_cached_weights",
    "pinned_weights",
    "weights_cache",
]


class WeightsDownloadError(ReconadError):
    """A download that could not be completed or verified; nothing was cached."""


@dataclass(frozen=True)
class PinnedWeights:
    """One official checkpoint: where it is and the SHA-256 its bytes must have."""

    name: str
    url: str
    sha256: str
    release: str  # torchvision's name for these weights

    @property
    def file_name(self) -> str:
        return Path(urlparse(self.url).path).name


_ZOO = "https://download.pytorch.org/models/"

# torchvision's IMAGENET1K_V1 weights: the ones ``pretrained=True`` gave before
# torchvision 0.13, which PatchCore, PaDiM and the other anomaly-detection papers use
# (the V2 files, e.g. resnet50-11ad3fa6.pth, come from a newer training recipe).
# torchvision names each file after the first 8 hex digits of its SHA-256; the full
# digests below were read from several independent public projects that pin these files,
# each one starting with its file name's 8 digits (tests check that).  Pinning is
# exact: a digest here is the one place to change if torchvision ever replaces a file.
TORCHVISION_WEIGHTS: dict[str, PinnedWeights] = {
    "resnet18": PinnedWeights(
        "resnet18",
        _ZOO + "resnet18-f37072fd.pth",
        "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec",
        "ResNet18_Weights.IMAGENET1K_V1",
    ),
    "resnet50": PinnedWeights(
        "resnet50",
        _ZOO + "resnet50-0676ba61.pth",
        "0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a",
        "ResNet50_Weights.IMAGENET1K_V1",
    ),
    "wide_resnet50_2": PinnedWeights(
        "wide_resnet50_2",
        _ZOO + "wide_resnet50_2-95faca4d.pth",
        "95faca4d11227dddf8633dbb5ff6c8a9003c1aa5b8945c73834b8007b10950b8",
        "Wide_ResNet50_2_Weights.IMAGENET1K_V1",
    ),
}

_CHUNK = 1 << 20
_OPTIONAL = (
    "the download is optional: without it, use the bundled efficientnet_lite0..2 encoders, "
    "or give a checkpoint file with --backbone-weights PATH"
)


def weights_cache() -> Path:
    """The folder downloaded encoder weights are kept in (not created here)."""
    root = os.environ.get("RECONAD_CACHE")
    if root:
        return Path(root).expanduser() / "weights"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "reconad" / "weights"


def pinned_weights(name: str) -> PinnedWeights:
    """The pinned checkpoint of ``name``; ConfigError listing the known names otherwise."""
    key = name.strip().lower().replace("-", "_") if isinstance(name, str) else ""
    if key not in TORCHVISION_WEIGHTS:
        known = ", ".join(TORCHVISION_WEIGHTS)
        raise ConfigError(f"no downloadable weights for {name!r}; known: {known}")
    return TORCHVISION_WEIGHTS[key]


def cached_weights(name: str) -> Path | None:
    """``NAME.safetensors`` in the cache when a download put it there, else None."""
    path = weights_cache() / f"{name}.safetensors"
    return path if path.is_file() else None


def list_cached_weights() -> list[dict[str, Any]]:
    """One entry per cached file: name, path, bytes and its JSON record (None if unreadable)."""
    import json

    folder = weights_cache()
    entries: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        try:
            record = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = None
        entries.append({"name": path.stem, "path": path, "bytes": path.stat().st_size, "record": record})
    return entries


def download_weights(
    name: str, url: str | None = None, *, force: bool = False, quiet: bool = False, timeout: float = 60.0
) -> Path:
    """Fetch, verify and convert ``name``'s pinned checkpoint; returns the cached file.

    An already cached file is returned as is unless ``force``.  ``url`` replaces the
    official address (a mirror); the bytes must still have the pinned SHA-256.  Raises
    WeightsDownloadError (network, truncated file, wrong digest, unwritable cache) or
    ConfigError (unknown name, unsupported URL); a failure leaves the cache as it was.
    """
    pinned = pinned_weights(name)
    folder = weights_cache()
    target = folder / f"{pinned.name}.safetensors"
    if target.is_file() and not force:
        return target
    source = url or pinned.url
    if urlparse(source).scheme not in ("http", "https", "file"):
        raise ConfigError(f"--url {source!r}: give an http://, https:// or file:// address")
    _prepare_cache(folder)
    part = temp_sibling(folder / pinned.file_name, ".part")
    try:
        digest, size = _fetch(pinned.name, source, part, quiet, timeout)
        if digest != pinned.sha256:
            raise WeightsDownloadError(
                f"{pinned.name}: the file from {source} has SHA-256 {digest}, expected {pinned.sha256}; "
                "it was deleted and nothing was cached (another file, or a damaged transfer)"
            )
        _convert(pinned, source, part, target, digest, size)
    finally:
        part.unlink(missing_ok=True)
    return target


def _prepare_cache(folder: Path) -> None:
    """Create the cache folder and prove it writable before a long download."""
    probe = temp_sibling(folder / "probe")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise WeightsDownloadError(
            f"cannot write the weights cache {folder}: {reason} (set RECONAD_CACHE to a writable folder)"
        ) from exc
    finally:
        with contextlib.suppress(OSError):  # e.g. the cache's parent is a file
            probe.unlink(missing_ok=True)


def _reason(exc: BaseException) -> str:
    """A short phrase for a network failure ('Connection refused', 'HTTP 404 Not Found')."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        if not isinstance(exc.reason, BaseException):
            return str(exc.reason)
        exc = exc.reason
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _open(name: str, url: str, timeout: float) -> Any:
    from reconad.version import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"reconad/{__version__}"})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError is an OSError
        raise WeightsDownloadError(f"cannot download {name} from {url}: {_reason(exc)}; {_OPTIONAL}") from exc


def _fetch(name: str, url: str, dest: Path, quiet: bool, timeout: float) -> tuple[str, int]:
    """Stream ``url`` into ``dest``; returns (SHA-256 hex, bytes).  Checks Content-Length."""
    with _open(name, url, timeout) as response:
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        try:
            fh = open(dest, "xb")
        except OSError as exc:
            raise WeightsDownloadError(f"cannot write {dest}: {exc.strerror or exc}") from exc
        with fh, _Progress(name, expected, quiet) as advance:
            digest, received = _copy(name, url, response, fh, advance)
    if expected is not None and received != expected:
        raise WeightsDownloadError(
            f"the download of {name} from {url} is truncated: {received} of {expected} bytes "
            "(Content-Length); nothing was cached, run the command again"
        )
    return digest, received


def _copy(name: str, url: str, response: Any, fh: IO[bytes], advance: Callable[[int], Any]) -> tuple[str, int]:
    hasher = hashlib.sha256()
    received = 0
    while True:
        try:
            chunk = response.read(_CHUNK)
        except (OSError, http.client.HTTPException) as exc:  # reset, timeout, IncompleteRead
            raise WeightsDownloadError(
                f"the download of {name} from {url} broke off after {received} bytes: {_reason(exc)}; "
                "nothing was cached, run the command again"
            ) from exc
        if not chunk:
            return hasher.hexdigest(), received
        try:
            fh.write(chunk)
        except OSError as exc:
            raise WeightsDownloadError(f"cannot write {fh.name}: {exc.strerror or exc}") from exc
        hasher.update(chunk)
        received += len(chunk)
        advance(len(chunk))


class _Progress:
    """A byte-counting tqdm bar on a terminal; a no-op when quiet or not a terminal."""

    def __init__(self, name: str, total: int | None, quiet: bool) -> None:
        from tqdm.auto import tqdm

        disable = quiet or not sys.stderr.isatty()  # a bar only on a terminal, as elsewhere
        self.bar = tqdm(total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024, disable=disable)

    def __enter__(self) -> Callable[[int], Any]:
        return self.bar.update

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


def file_sha256(path: str | os.PathLike[str]) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def _convert(pinned: PinnedWeights, source: str, part: Path, target: Path, digest: str, size: int) -> None:
    """The verified .pth -> ``target`` (safetensors) + its JSON record, each written atomically.

    The JSON is written first, so a reader never finds a cached file without its record.
    """
    from safetensors.torch import save_file

    from reconad.jsonfile import write_json
    from reconad.version import __version__

    state = load_state_dict_file(part)  # torch.load(weights_only=True): tensors, never code
    load_into(ResNet(pinned.name), state, source=f"{pinned.name} from {source}")
    tensors = {key: value.detach().contiguous() for key, value in state.items()}
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata={"source_url": source, "source_sha256": digest})
        write_json(
            target.with_suffix(".json"),
            {
                "name": pinned.name,
                "weights": f"torchvision {pinned.release}",
                "source_url": source,
                "official_url": pinned.url,
                "source_sha256": digest,
                "source_bytes": size,
                "sha256": file_sha256(tmp),
                "bytes": tmp.stat().st_size,
                "tensors": len(tensors),
                "torch": torch.__version__,
                "reconad": __version__,
                "python": platform.python_version(),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "licence": "torchvision code: BSD-3-Clause; for the weights' terms see torchvision's documentation",
            },
        )
