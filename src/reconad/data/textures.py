"""The embedded demo data: real textures with painted defects, in MVTec AD layout.

Normal images are random crops of scikit-image's texture photographs
``skimage.data.brick()``, ``grass()`` and ``gravel()`` (512 x 512 grayscale each,
CC0-licensed, shipped inside scikit-image).  Each crop is 160-224 px square, turned by
a random multiple of 90 degrees, randomly mirrored, resized to ``image_size`` and given
a slight brightness/contrast jitter (gain 0.94-1.06, offset +-0.03).

Hold-out: one 256 x 256 quadrant of each source texture is reserved for the test set
(test normals and the backgrounds of defect images); training crops never touch it, so
no test pixel is a copy of a training pixel.  The quadrant is the one whose mean,
contrast and edge density are closest to those of the rest of the photograph
(brick and gravel: bottom-right; grass: bottom-left).

Defects (``test/<type>``, masks in ``ground_truth/<type>/<name>_mask.png``) are painted
on held-out crops with soft edges; the mask is exactly where the blending weight
exceeds 0.5.  Types:

* ``scratch``: 1-3 thin bright or dark curved strokes (2.5-5 px wide at 256 px);
* ``hole``: a dark, softly shaded, slightly irregular ellipse with a lit inner rim;
* ``stain``: a low-contrast grey or tinted blotch with an irregular boundary;
* ``foreign``: a patch of one of the other two textures, matched in brightness, pasted
  with an irregular outline.

Blob-like defects cover 1-8 % of the image (log-uniform), scratches about 0.5-3 %.
Every defect is re-drawn until it is clearly visible: inside the mask, the mean shift
of brightness or colour (holes, stains) or the mean per-pixel change (scratches,
foreign patches) must reach both 0.05 on the [0, 1] scale and 0.75 times the image's
standard deviation (busy textures such as grass need a larger change to be seen).

Since generator version 2, scratches and holes must also pass a **local-contrast
rule** (written down before any model was scored on data made with it): the mean
colour inside the mask must differ from the mean colour of the ring around it (the
mask dilated by 6 px, minus the mask) by at least 1.5 times the ring's standard
deviation (pooled over the channels).  Version 1 let a bright stroke among bright
grass blades, or a dark hole among the shadows between them, pass the change rule
although it blends into its surroundings and a person cannot find it; those two
types are the ones texture elements can camouflage.  Stains and foreign patches
change a region's tone or structure, which the change rule already measures.
Images are written as 8-bit RGB PNG (normal ones are grey, R = G = B; stains may be
tinted), masks as 8-bit L PNG of {0, 255}.

Generation is deterministic: each image has its own random stream derived from
(seed, category, split, defect type, index), so the same settings give byte-identical
files.  ``settings.json`` records the settings and ``README.txt`` the provenance.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import types
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from reconad.errors import ConfigError, DataError
from reconad.jsonfile import write_json

__all__ = [
    "TEXTURE_CATEGORIES",
    "DEFAULT_CATEGORIES",
    "DEFECT_TYPES",
    "DEFAULT_N_TRAIN",
    "DEFAULT_N_TEST_GOOD",
    "DEFAULT_N_TEST_DEFECT_PER_TYPE",
    "generate_textures",
    "ensure_textures",
    "paint_defect",
    "local_contrast",
    "texture_settings",
]

GENERATOR_VERSION = 2
TEXTURE_CATEGORIES: tuple[str, ...] = ("brick", "grass", "gravel")
DEFAULT_CATEGORIES = TEXTURE_CATEGORIES  # alias
DEFECT_TYPES: tuple[str, ...] = ("scratch", "hole", "stain", "foreign")
DEFAULT_N_TRAIN = 120
DEFAULT_N_TEST_GOOD = 30
DEFAULT_N_TEST_DEFECT_PER_TYPE = 10

SETTINGS_FILE = "settings.json"
README_FILE = "README.txt"
SOURCE_SIZE = 512
HOLDOUT = 256  # side of the held-out quadrant
CROP_RANGE = (160, 224)
# Top-left corner of the held-out quadrant in each source texture.
HOLDOUT_CORNER: dict[str, tuple[int, int]] = {
    "brick": (256, 256),
    "grass": (256, 0),
    "gravel": (256, 256),
}
MIN_VISIBLE_CHANGE = 0.05
VISIBLE_FRACTION_OF_STD = 0.75  # busy textures need a larger change to be seen
#: the local-contrast rule (generator version 2): defects texture elements can camouflage
CAMOUFLAGE_TYPES = ("scratch", "hole")
LOCAL_CONTRAST = 1.5
RING_PX = 6
_SPLIT_IDS = {"train": 0, "test": 1}


# ----------------------------------------------------------------------------- sources


def _ndimage() -> types.ModuleType:
    """scipy.ndimage, imported on first use: it is slow to load, and most imports of this
    package (every ``reconad`` command) never generate a texture."""
    from scipy import ndimage

    return ndimage


def _source(name: str) -> np.ndarray:
    """The 512 x 512 source texture as float32 in [0, 1]."""
    import skimage.data

    arr = getattr(skimage.data, name)()
    if arr.shape != (SOURCE_SIZE, SOURCE_SIZE):
        raise DataError(f"unexpected shape {arr.shape} for skimage.data.{name}()")
    return arr.astype(np.float32) / 255.0


def _resize(arr: np.ndarray, size: int) -> np.ndarray:
    """Resize a square float (H, W) array to (size, size) with PIL (antialiased)."""
    if arr.shape == (size, size):
        return arr.astype(np.float32)
    resample = Image.Resampling.BICUBIC if size > arr.shape[0] else Image.Resampling.BILINEAR
    out = Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32), mode="F").resize((size, size), resample=resample)
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)


def _crop_position(rng: np.random.Generator, c: int, corner: tuple[int, int], held_out: bool) -> tuple[int, int]:
    r0, c0 = corner
    if held_out:
        return int(rng.integers(r0, r0 + HOLDOUT - c + 1)), int(rng.integers(c0, c0 + HOLDOUT - c + 1))
    while True:  # rejection: the crop must not overlap the held-out quadrant
        y = int(rng.integers(0, SOURCE_SIZE - c + 1))
        x = int(rng.integers(0, SOURCE_SIZE - c + 1))
        if y + c <= r0 or y >= r0 + HOLDOUT or x + c <= c0 or x >= c0 + HOLDOUT:
            return y, x


def _normal_crop(
    src: np.ndarray, corner: tuple[int, int], held_out: bool, size: int, rng: np.random.Generator
) -> np.ndarray:
    """A jittered crop of ``src`` as (size, size) float32 grey."""
    c = int(rng.integers(CROP_RANGE[0], CROP_RANGE[1] + 1))
    y, x = _crop_position(rng, c, corner, held_out)
    crop = np.rot90(src[y : y + c, x : x + c], k=int(rng.integers(4)))
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    crop = _resize(crop, size)
    gain, offset = rng.uniform(0.94, 1.06), rng.uniform(-0.03, 0.03)
    return np.clip(crop * gain + offset, 0.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- shapes


def _smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    n = _ndimage().gaussian_filter(rng.standard_normal((size, size)), sigma=max(sigma, 0.5), mode="wrap")
    return (n - n.mean()) / (n.std() + 1e-8)


def _ellipse_distance(rng: np.random.Generator, size: int, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised elliptic radius (1 on the border) of a random ellipse of mean radius
    ``radius``; also returns the rotated coordinates (u, v) in units of the semi-axes."""
    margin = min(1.3 * radius, 0.4 * size)  # keep most of the defect inside the image
    cy, cx = rng.uniform(margin, size - margin, size=2)
    aspect = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
    ry, rx = radius * math.sqrt(aspect), radius / math.sqrt(aspect)
    theta = rng.uniform(0, math.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    dy, dx = yy - cy, xx - cx
    u = (dx * math.cos(theta) + dy * math.sin(theta)) / rx
    v = (-dx * math.sin(theta) + dy * math.cos(theta)) / ry
    return np.sqrt(u * u + v * v), u, v


def _blob_alpha(rng: np.random.Generator, size: int, area_frac: float, roughness: float, edge_px: float) -> np.ndarray:
    """A soft irregular blob whose alpha > 0.5 covers ``area_frac`` of the image."""
    radius = math.sqrt(area_frac * size * size / math.pi)
    d, _, _ = _ellipse_distance(rng, size, radius)
    field = -d + roughness * _smooth_noise(rng, size, 0.35 * radius)
    n_target = max(1, int(round(area_frac * size * size)))
    thr = np.partition(field.ravel(), field.size - n_target)[field.size - n_target]
    # Soften the hard shape by blurring it: the blend weight then falls to ~0 within a
    # few pixels of the shape, and sub-threshold bumps of ``field`` leave no trace.
    hard = (field >= thr).astype(np.float64)
    return np.clip(_ndimage().gaussian_filter(hard, sigma=0.6 * edge_px), 0.0, 1.0).astype(np.float32)


def _area_frac(rng: np.random.Generator, lo: float = 0.01, hi: float = 0.08) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


# ----------------------------------------------------------------------------- defects


def _scratch(img: np.ndarray, rng: np.random.Generator, foreign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    size = img.shape[0]
    ss = 4  # supersampling for smooth strokes
    canvas = Image.new("L", (size * ss, size * ss), 0)
    draw = ImageDraw.Draw(canvas)
    cy, cx = rng.uniform(0.2 * size, 0.8 * size, size=2)
    base_angle = rng.uniform(0, 2 * math.pi)
    for _ in range(int(rng.integers(1, 4))):
        width = max(1.5, rng.uniform(2.5, 5.0) * size / 256)
        length = rng.uniform(0.3, 0.65) * size
        angle = base_angle + rng.normal(0, 0.25)
        curvature = rng.normal(0, 2.0) / size
        y, x = cy + rng.normal(0, 0.08 * size), cx + rng.normal(0, 0.08 * size)
        y, x = y - 0.5 * length * math.sin(angle), x - 0.5 * length * math.cos(angle)
        pts = [(x * ss, y * ss)]
        n_seg = 24
        for _ in range(n_seg):
            step = length / n_seg
            angle += curvature * step + rng.normal(0, 0.03)
            x, y = x + step * math.cos(angle), y + step * math.sin(angle)
            pts.append((x * ss, y * ss))
        draw.line(pts, fill=255, width=max(1, int(round(width * ss))), joint="curve")
    alpha = np.asarray(canvas.resize((size, size), Image.Resampling.BOX), dtype=np.float32) / 255.0
    contrast = rng.uniform(0.25, 0.5)
    if rng.random() < 0.5:
        layer = img + contrast * (1.0 - img) + 0.1 * contrast  # bright (exposed material)
    else:
        layer = img * (1.0 - contrast) - 0.1 * contrast  # dark groove
    return np.clip(layer, 0.0, 1.0), alpha


def _hole(img: np.ndarray, rng: np.random.Generator, foreign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    size = img.shape[0]
    area = _area_frac(rng, 0.01, 0.06)
    radius = math.sqrt(area * size * size / math.pi)
    d, u, v = _ellipse_distance(rng, size, radius)
    d = d * (1.0 + 0.08 * _smooth_noise(rng, size, 0.3 * radius))  # slightly irregular rim
    edge = 1.5 / radius
    alpha = np.clip((1.0 - d) / edge + 0.5, 0.0, 1.0).astype(np.float32)
    depth = rng.uniform(0.35, 0.7)  # how much darker the floor is
    floor = 1.0 - depth * (1.0 - 0.5 * np.clip(d, 0, 1) ** 2)  # darkest in the middle
    light = rng.uniform(0, 2 * math.pi)
    # The inner wall that faces the light is lit, the opposite one is in shadow.
    wall = np.clip(d, 0, 1) ** 3 * (np.cos(light) * u + np.sin(light) * v) / np.maximum(d, 1e-6)
    layer = img * floor * (1.0 + 0.35 * wall) + 0.04 * wall
    return np.clip(layer, 0.0, 1.0), alpha


_STAIN_TINTS = (
    (0.55, 0.40, 0.25),  # brown (coffee, rust)
    (0.60, 0.35, 0.20),  # rust
    (0.40, 0.50, 0.30),  # olive (moss)
    (0.35, 0.35, 0.35),  # dark grey (oil)
    (0.70, 0.70, 0.68),  # pale grey (dust, chalk)
)


def _stain(img: np.ndarray, rng: np.random.Generator, foreign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    size = img.shape[0]
    area = _area_frac(rng)
    alpha = _blob_alpha(rng, size, area, roughness=rng.uniform(0.4, 0.8), edge_px=rng.uniform(1.5, 4.0))
    tint = np.array(_STAIN_TINTS[int(rng.integers(len(_STAIN_TINTS)))], dtype=np.float32)
    strength = rng.uniform(0.35, 0.7)
    radius = math.sqrt(area * size * size / math.pi)
    # Uneven soaking: the strength varies smoothly inside the stain.
    local = strength * (0.8 + 0.2 * _smooth_noise(rng, size, 0.25 * radius))[..., None]
    grey = img[..., None]
    # Mix towards the tint; the tint is modulated by the texture so it still shows through.
    layer = grey * (1.0 - local) + tint * (0.6 + 0.8 * grey) * local
    return np.clip(layer, 0.0, 1.0), alpha


def _foreign(img: np.ndarray, rng: np.random.Generator, foreign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    size = img.shape[0]
    area = _area_frac(rng, 0.02, 0.08)
    alpha = _blob_alpha(rng, size, area, roughness=rng.uniform(0.3, 0.6), edge_px=1.0)
    inside = alpha > 0.5
    mean_in = float(img[inside].mean()) if inside.any() else float(img.mean())
    shift = rng.uniform(0.05, 0.12) * (1 if rng.random() < 0.5 else -1)
    patch = foreign - foreign.mean() + mean_in + shift
    return np.clip(patch, 0.0, 1.0), alpha


_PAINTERS = {"scratch": _scratch, "hole": _hole, "stain": _stain, "foreign": _foreign}
_SHIFT_VISIBILITY = ("hole", "stain")


def local_contrast(rgb: np.ndarray, mask: np.ndarray, ring_px: int = RING_PX) -> float:
    """The shift of the mean colour inside ``mask`` from the mean colour of the ring around
    it, in units of the ring's standard deviation (for grey images: |mean_in - mean_ring| / std_ring).

    ``rgb`` (H, W, 3) in [0, 1]; the ring is the mask dilated by ``ring_px`` pixels minus
    the mask; the shift is the root mean square over the channels, the std is pooled over
    the ring's pixels and channels.
    """
    ring = _ndimage().binary_dilation(mask, iterations=ring_px) & ~mask
    if not mask.any() or not ring.any():
        return 0.0
    inside, around = rgb[mask], rgb[ring]
    spread = float(np.sqrt(around.var(axis=0).mean())) + 1e-6
    shift = float(np.sqrt(((inside.mean(axis=0) - around.mean(axis=0)) ** 2).mean()))  # RMS over channels
    return shift / spread


def paint_defect(
    img: np.ndarray, kind: str, rng: np.random.Generator, foreign: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Paint one defect of ``kind`` on a grey (H, W) float image in [0, 1].

    Returns ``(rgb, mask)``: an (H, W, 3) float32 image and the (H, W) bool mask where
    the blending weight exceeds 0.5.  ``foreign`` (H, W) is the texture pasted by the
    "foreign" type.  Re-draws (same stream) until the change is visible.
    """
    if kind not in _PAINTERS:
        raise ConfigError(f"unknown defect type {kind!r}; choose one of {', '.join(DEFECT_TYPES)}")
    if foreign is None:
        foreign = np.rot90(img).copy()
    rgb = np.repeat(img[..., None], 3, axis=2).astype(np.float32)
    for _ in range(50):
        layer, alpha = _PAINTERS[kind](img, rng, foreign)
        if layer.ndim == 2:
            layer = np.repeat(layer[..., None], 3, axis=2)
        out = rgb * (1.0 - alpha[..., None]) + layer * alpha[..., None]
        mask = alpha > 0.5
        if mask.sum() >= 0.002 * mask.size:
            if kind in _SHIFT_VISIBILITY:  # a blotch must shift brightness or colour on average
                change = float(np.abs((out - rgb)[mask].mean(axis=0)).max())
            else:  # a line or a texture change: per-pixel change
                change = float(np.abs(out - rgb).max(axis=2)[mask].mean())
            visible = change >= max(MIN_VISIBLE_CHANGE, VISIBLE_FRACTION_OF_STD * float(img.std()))
            if visible and kind in CAMOUFLAGE_TYPES:
                visible = local_contrast(np.clip(out, 0.0, 1.0), mask) >= LOCAL_CONTRAST
            if visible:
                return np.clip(out, 0.0, 1.0).astype(np.float32), mask
    raise DataError(f"could not paint a visible {kind} defect")  # not reached in practice


# ----------------------------------------------------------------------------- writing


def texture_settings(
    categories: Sequence[str] = TEXTURE_CATEGORIES,
    image_size: int = 256,
    n_train: int = DEFAULT_N_TRAIN,
    n_test_good: int = DEFAULT_N_TEST_GOOD,
    n_test_defect_per_type: int = DEFAULT_N_TEST_DEFECT_PER_TYPE,
    seed: int = 0,
) -> dict:
    """The settings record stored in ``settings.json`` (validated)."""
    cats = [str(c) for c in categories]
    unknown = [c for c in cats if c not in TEXTURE_CATEGORIES]
    if unknown or not cats:
        raise ConfigError(
            f"unknown texture categories {unknown or cats!r}; choose from {', '.join(TEXTURE_CATEGORIES)}"
        )
    for name, value, low in (
        ("image_size", image_size, 16),
        ("n_train", n_train, 1),
        ("n_test_good", n_test_good, 0),
        ("n_test_defect_per_type", n_test_defect_per_type, 0),
    ):
        if int(value) != value or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return {
        "generator": "reconad.data.textures",
        "version": GENERATOR_VERSION,
        "categories": sorted(set(cats)),
        "image_size": int(image_size),
        "n_train": int(n_train),
        "n_test_good": int(n_test_good),
        "n_test_defect_per_type": int(n_test_defect_per_type),
        "defect_types": list(DEFECT_TYPES),
        "seed": int(seed),
    }


def _rng(seed: int, category: str, split: str, kind: int, index: int) -> np.random.Generator:
    key = [int(seed) & 0xFFFFFFFF, TEXTURE_CATEGORIES.index(category), _SPLIT_IDS[split], kind, index]
    return np.random.default_rng(np.random.SeedSequence(key))


def _save_rgb(arr: np.ndarray, path: Path) -> None:
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    img = Image.fromarray(np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8), mode="RGB")
    img.save(path, compress_level=1)  # fast; still lossless and deterministic


def _write_category(out: Path, category: str, s: dict) -> None:
    size, seed = s["image_size"], s["seed"]
    src = _source(category)
    corner = HOLDOUT_CORNER[category]
    others = [c for c in TEXTURE_CATEGORIES if c != category]
    cat_dir = out / category
    if cat_dir.exists():
        shutil.rmtree(cat_dir)
    train_dir, good_dir = cat_dir / "train" / "good", cat_dir / "test" / "good"
    train_dir.mkdir(parents=True)
    good_dir.mkdir(parents=True)
    for i in range(s["n_train"]):
        crop = _normal_crop(src, corner, False, size, _rng(seed, category, "train", 0, i))
        _save_rgb(crop, train_dir / f"{i:03d}.png")
    for i in range(s["n_test_good"]):
        crop = _normal_crop(src, corner, True, size, _rng(seed, category, "test", 0, i))
        _save_rgb(crop, good_dir / f"{i:03d}.png")
    if s["n_test_defect_per_type"] == 0:
        return
    foreign_src = {c: _source(c) for c in others}
    for k, kind in enumerate(DEFECT_TYPES, start=1):
        img_dir, gt_dir = cat_dir / "test" / kind, cat_dir / "ground_truth" / kind
        img_dir.mkdir(parents=True)
        gt_dir.mkdir(parents=True)
        for i in range(s["n_test_defect_per_type"]):
            rng = _rng(seed, category, "test", k, i)
            base = _normal_crop(src, corner, True, size, rng)
            other = foreign_src[others[int(rng.integers(len(others)))]]
            # The foreign texture is shown at a larger scale than the base (crop 96-160 px).
            c = int(rng.integers(96, 161))
            y, x = (int(v) for v in rng.integers(0, SOURCE_SIZE - c + 1, size=2))
            patch = _resize(np.rot90(other[y : y + c, x : x + c], k=int(rng.integers(4))), size)
            rgb, mask = paint_defect(base, kind, rng, patch)
            _save_rgb(rgb, img_dir / f"{i:03d}.png")
            mask_img = Image.fromarray(mask.astype(np.uint8) * 255, mode="L")
            mask_img.save(gt_dir / f"{i:03d}_mask.png", compress_level=1)


def _readme(s: dict) -> str:
    import skimage

    return (
        "Texture anomaly-detection data generated by reconad.data.textures "
        f"(generator version {s['version']}).\n\n"
        "Source: scikit-image sample textures skimage.data.brick(), grass(), gravel() "
        f"(scikit-image {getattr(skimage, '__version__', '?')}; photographs from CC0Textures, CC0 licence).\n"
        "Normal images are random crops (160-224 px, rotated by multiples of 90 degrees, "
        "mirrored, brightness-jittered) resized to the image size; one 256x256 quadrant of "
        "each source is held out for the test images.\n"
        "Defects are painted (scratch, hole, stain, foreign texture); each mask is exactly the "
        "area whose blending weight exceeds 0.5.\n\n"
        f"categories: {', '.join(s['categories'])}\n"
        f"image size: {s['image_size']}\n"
        f"per category: train/good {s['n_train']}, test/good {s['n_test_good']}, "
        f"test/<defect> {s['n_test_defect_per_type']} for each of {', '.join(s['defect_types'])}\n"
        f"seed: {s['seed']}\n"
        "Layout: MVTec AD (<category>/train/good, <category>/test/<type>, "
        "<category>/ground_truth/<type>/<name>_mask.png).\n"
    )


def _read_settings(out: Path) -> dict | None:
    try:
        data = json.loads((out / SETTINGS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _check_writable(out: Path) -> None:
    """Refuse to write into a non-empty folder that was not made by this generator."""
    if not out.exists():
        return
    if not out.is_dir():
        raise DataError(f"texture data path is not a folder: {out}")
    if _read_settings(out) is not None:
        return
    ours = set(TEXTURE_CATEGORIES) | {SETTINGS_FILE, README_FILE}
    strangers = [p.name for p in out.iterdir() if p.name not in ours]
    if strangers:
        raise DataError(
            f"refusing to write texture data into {out}: it holds other files ({', '.join(sorted(strangers)[:5])})"
        )


def _write(out: Path, s: dict, categories: Sequence[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / SETTINGS_FILE).unlink(missing_ok=True)  # marks the folder incomplete meanwhile
    for cat in categories:
        _write_category(out, cat, s)
    for cat in TEXTURE_CATEGORIES:  # drop categories that the new settings do not list
        if cat not in s["categories"] and (out / cat).is_dir():
            shutil.rmtree(out / cat)
    (out / README_FILE).write_text(_readme(s))
    write_json(out / SETTINGS_FILE, s, sort_keys=True)


def generate_textures(
    out_root: str | os.PathLike[str],
    categories: Sequence[str] = TEXTURE_CATEGORIES,
    image_size: int = 256,
    n_train: int = DEFAULT_N_TRAIN,
    n_test_good: int = DEFAULT_N_TEST_GOOD,
    n_test_defect_per_type: int = DEFAULT_N_TEST_DEFECT_PER_TYPE,
    seed: int = 0,
) -> Path:
    """(Re)write the texture data set under ``out_root`` in MVTec layout; return the path.

    Existing category folders of this generator are replaced; a non-empty folder that
    this generator did not write is refused (``DataError``).
    """
    out = Path(out_root)
    s = texture_settings(categories, image_size, n_train, n_test_good, n_test_defect_per_type, seed)
    _check_writable(out)
    _write(out, s, s["categories"])
    return out


def ensure_textures(
    out_root: str | os.PathLike[str],
    categories: Sequence[str] = TEXTURE_CATEGORIES,
    image_size: int = 256,
    n_train: int = DEFAULT_N_TRAIN,
    n_test_good: int = DEFAULT_N_TEST_GOOD,
    n_test_defect_per_type: int = DEFAULT_N_TEST_DEFECT_PER_TYPE,
    seed: int = 0,
) -> Path:
    """Generate the texture data under ``out_root`` unless it is already there.

    Nothing is written when ``settings.json`` matches the requested settings (a stored
    superset of ``categories`` is fine).  When only categories are missing, just those
    are added; when other settings differ, everything is regenerated.
    """
    out = Path(out_root)
    want = texture_settings(categories, image_size, n_train, n_test_good, n_test_defect_per_type, seed)
    stored = _read_settings(out)
    if stored is not None:
        same_rest = {k: v for k, v in stored.items() if k != "categories"} == {
            k: v for k, v in want.items() if k != "categories"
        }
        have = [c for c in stored.get("categories", []) if (out / c / "train" / "good").is_dir()]
        if same_rest:
            missing = [c for c in want["categories"] if c not in have]
            if not missing:
                return out
            merged = dict(want, categories=sorted(set(have) | set(want["categories"])))
            _write(out, merged, missing)
            return out
    return generate_textures(out, categories, image_size, n_train, n_test_good, n_test_defect_per_type, seed)
