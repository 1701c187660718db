"""Uploaded bytes to the model's input tensor: the same pre-processing as ``reconad predict``.

The pixel count is read from the header before anything is decoded, so a small file
that would expand to gigabytes (a decompression bomb) is refused without being
expanded.  Decoding itself is ``reconad.data.image_io.load_image`` on the bytes.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field

import torch
from PIL import Image, UnidentifiedImageError

from reconad.data.image_io import load_image
from reconad.errors import DataError

__all__ = ["BadImage", "Upload", "decode_upload"]


class BadImage(DataError):
    """An upload that is not an image we can score (answered 400, never recorded)."""


@dataclass
class Upload:
    """One decoded upload: the model input and what the results database records about it."""

    name: str
    tensor: torch.Tensor  # (3, H, W) float32 in [0, 1] at the model's image size
    sha256: str
    n_bytes: int
    width: int
    height: int
    #: the uploaded bytes (kept in the database for review when the image is audited or flagged)
    data: bytes = field(default=b"", repr=False)


def _header_size(data: bytes, name: str, max_pixels: int) -> tuple[int, int]:
    """(width, height) from the image header; BadImage for non-images and oversized ones."""
    if not data:
        raise BadImage(f"{name}: empty upload")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:  # reads the header only
                width, height = im.size
    except Image.DecompressionBombError as exc:
        raise BadImage(f"{name}: image too large to decode ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise BadImage(f"{name}: not an image (or a format Pillow cannot read)") from None
    if width * height > max_pixels:
        raise BadImage(
            f"{name}: {width}x{height} = {width * height} pixels is over the limit of {max_pixels} "
            "(a decompression bomb, or raise --max-pixels)"
        )
    return width, height


def decode_upload(data: bytes, name: str, image_size: int | None, resize_mode: str, max_pixels: int) -> Upload:
    """Check, hash and decode one upload to a (3, image_size, image_size) tensor (its own
    size when ``image_size`` is None: a tiled model)."""
    width, height = _header_size(data, name, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            tensor = load_image(name, image_size, resize_mode, fp=io.BytesIO(data))
    except DataError as exc:  # truncated or corrupt data: the decoder's own words
        raise BadImage(str(exc).removeprefix("cannot read image: ")) from None
    return Upload(name, tensor, hashlib.sha256(data).hexdigest(), len(data), width, height, data)
