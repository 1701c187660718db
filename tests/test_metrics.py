"""Metrics against hand-computed cases and a brute-force PRO reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.metrics import f1_score

from reconad.metrics import (
    evaluate,
    f1_max,
    image_aupr,
    image_auroc,
    pixel_auroc,
    pro_score,
)

LABELS = [0, 0, 1, 1]
SCORES = [0.1, 0.4, 0.35, 0.8]


# --------------------------------------------------------------------------- helpers


def _blob_masks(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """(n, size, size) bool masks with 0-3 random rectangles each (some images normal)."""
    masks = np.zeros((n, size, size), dtype=bool)
    for mask in masks:
        for _ in range(rng.integers(0, 4)):
            h, w = rng.integers(1, size // 3, size=2)
            r, c = rng.integers(0, size - h), rng.integers(0, size - w)
            mask[r : r + h, c : c + w] = True
    return masks


def _reference_pro(masks: np.ndarray, maps: np.ndarray, fpr_limit: float) -> float:
    """PRO by its definition: loop over every distinct threshold, integrate segment by segment."""
    regions = []
    for i, mask in enumerate(masks):
        labelled, count = ndimage.label(mask, structure=np.ones((3, 3)))
        regions += [(i, labelled == k) for k in range(1, count + 1)]
    points = [(0.0, 0.0)]
    for t in np.unique(maps)[::-1]:
        detected = maps >= t
        fpr = detected[~masks].mean()
        pro = np.mean([detected[i][region].mean() for i, region in regions])
        points.append((fpr, pro))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 >= fpr_limit:
            break
        if x1 > fpr_limit:
            y1 = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
            x1 = fpr_limit
        area += (x1 - x0) * (y0 + y1) / 2
    return area / fpr_limit


# --------------------------------------------------------------------------- image level


def test_image_auroc_hand_case():
    # Positive 0.35 beats negative 0.1 only; 0.8 beats both: 3 of 4 pairs.
    assert image_auroc(LABELS, SCORES) == pytest.approx(0.75)


def test_image_aupr_hand_case():
    # Ranked: 0.8(+) P=1 R=.5, 0.4(-), 0.35(+) P=2/3 R=1 -> AP = .5*1 + .5*2/3.
    assert image_aupr(LABELS, SCORES) == pytest.approx(0.5 + 1 / 3)


def test_f1_max_hand_case_and_threshold_reaches_it():
    # Thresholds 0.8/0.4/0.35/0.1 give F1 2/3, 1/2, 4/5, 2/3.
    best, threshold = f1_max(LABELS, SCORES)
    assert best == pytest.approx(0.8)
    assert threshold == pytest.approx(0.35)
    predicted = (np.asarray(SCORES) >= threshold).astype(int)
    assert f1_score(LABELS, predicted) == pytest.approx(best)


def test_image_metrics_accept_numpy_and_torch():
    expected = image_auroc(LABELS, SCORES)
    assert image_auroc(np.array(LABELS), np.array(SCORES, dtype=np.float32)) == expected
    assert image_auroc(torch.tensor(LABELS), torch.tensor(SCORES, dtype=torch.float16)) == (pytest.approx(expected))
    assert f1_max(torch.tensor(LABELS, dtype=torch.bool), torch.tensor(SCORES)) == pytest.approx((0.8, 0.35))


@pytest.mark.parametrize("labels", [[0, 0, 0], [1, 1, 1], []])
def test_one_class_gives_nan(labels):
    scores = [0.2, 0.5, 0.9][: len(labels)]
    assert math.isnan(image_auroc(labels, scores))
    assert math.isnan(image_aupr(labels, scores))
    assert all(math.isnan(v) for v in f1_max(labels, scores))


def test_image_inputs_are_validated():
    with pytest.raises(ValueError, match="0 \\(normal\\) or 1"):
        image_auroc([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="length"):
        image_auroc([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="NaN"):
        image_auroc([0, 1], [0.1, float("nan")])


# --------------------------------------------------------------------------- pixel AUROC


def _tiny_pixel_case() -> tuple[np.ndarray, np.ndarray]:
    """2x4x4: positives 0.9, 0.5, 0.3; negatives 28 x 0.4 and one 0.9."""
    masks = np.zeros((2, 4, 4))
    maps = np.full((2, 4, 4), 0.4)
    masks[0, 0, 0], maps[0, 0, 0] = 1, 0.9
    masks[0, 3, 3], maps[0, 3, 3] = 1, 0.5
    masks[1, 1, 2], maps[1, 1, 2] = 1, 0.3
    maps[1, 2, 2] = 0.9  # a normal pixel tying the best positive
    return masks, maps


def test_pixel_auroc_hand_case():
    masks, maps = _tiny_pixel_case()
    # 0.9 beats 28 negatives and ties one (28.5), 0.5 beats 28, 0.3 beats none; 3 x 29 pairs.
    expected = (28.5 + 28) / 87
    assert pixel_auroc(masks, maps) == pytest.approx(expected)
    # (N, 1, H, W) torch input gives the same.
    assert pixel_auroc(torch.tensor(masks)[:, None], torch.tensor(maps)[:, None]) == (pytest.approx(expected))


def test_pixel_auroc_subsample_is_close_and_seeded():
    rng = np.random.default_rng(1)
    masks = _blob_masks(rng, 20, 64)
    maps = masks + rng.normal(0, 0.8, masks.shape)
    full = pixel_auroc(masks, maps, max_pixels=None)
    sub = pixel_auroc(masks, maps, max_pixels=30_000, seed=3)
    assert sub != full  # really subsampled (81,920 pixels)
    assert sub == pytest.approx(full, abs=0.025)  # sampling s.d. is about 0.006 here
    assert pixel_auroc(masks, maps, max_pixels=30_000, seed=3) == sub


def test_pixel_auroc_one_class_gives_nan_and_shapes_are_checked():
    maps = np.random.default_rng(0).random((2, 4, 4))
    assert math.isnan(pixel_auroc(np.zeros((2, 4, 4)), maps))
    assert math.isnan(pixel_auroc(np.ones((2, 4, 4)), maps))
    with pytest.raises(ValueError, match="shape"):
        pixel_auroc(np.zeros((2, 4, 4)), np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="shape"):
        pixel_auroc(np.zeros((2, 3, 4, 4)), np.zeros((2, 3, 4, 4)))


# --------------------------------------------------------------------------- PRO

EXACT_AND_GRID = pytest.mark.parametrize("num_thresholds", [None, 200])


@EXACT_AND_GRID
def test_pro_perfect_map_is_one(num_thresholds):
    masks = _blob_masks(np.random.default_rng(2), 6, 32)
    assert pro_score(masks, masks.astype(np.float32), num_thresholds=num_thresholds) == (pytest.approx(1.0))


@EXACT_AND_GRID
def test_pro_constant_and_inverted_maps(num_thresholds):
    masks = _blob_masks(np.random.default_rng(3), 6, 32)
    # A constant map jumps from (0, 0) to (1, 1): chance level, area = fpr_limit / 2.
    constant = np.full(masks.shape, 0.7)
    assert pro_score(masks, constant, num_thresholds=num_thresholds) == pytest.approx(0.15)
    # Every anomalous pixel below every normal one: PRO stays 0 until FPR = 1.
    inverted = 1.0 - masks
    assert pro_score(masks, inverted, num_thresholds=num_thresholds) == pytest.approx(0.0)


def _two_regions(detect_small: bool) -> tuple[np.ndarray, np.ndarray]:
    """8x8: a 2x2 region and a 4x4 region; one is scored above all normals, one below."""
    mask = np.zeros((8, 8), dtype=bool)
    mask[0:2, 0:2] = True  # small, 4 pixels
    mask[4:8, 4:8] = True  # large, 16 pixels
    amap = np.random.default_rng(4).uniform(0.2, 0.8, size=(8, 8))
    amap[0:2, 0:2] = 1.0 if detect_small else 0.0
    amap[4:8, 4:8] = 0.0 if detect_small else 1.0
    return mask[None], amap[None]


@EXACT_AND_GRID
def test_pro_weights_regions_not_pixels(num_thresholds):
    small_mask, small_map = _two_regions(detect_small=True)
    large_mask, large_map = _two_regions(detect_small=False)
    # One of two regions fully found before any false positive, the other never: 0.5,
    # whichever region it is, although it is 4 of 20 or 16 of 20 anomalous pixels.
    assert pro_score(small_mask, small_map, num_thresholds=num_thresholds) == pytest.approx(0.5)
    assert pro_score(large_mask, large_map, num_thresholds=num_thresholds) == pytest.approx(0.5)
    # Pixel-weighted metrics do see the size difference.
    assert pixel_auroc(small_mask, small_map) == pytest.approx(4 / 20)
    assert pixel_auroc(large_mask, large_map) == pytest.approx(16 / 20)


@EXACT_AND_GRID
def test_pro_regions_are_8_connected_and_per_image(num_thresholds):
    mask = np.zeros((2, 5, 5), dtype=bool)
    amap = np.full((2, 5, 5), 0.5)
    mask[0, 0, 0] = mask[0, 1, 1] = True  # diagonal neighbours: one region
    amap[0, 0, 0], amap[0, 1, 1] = 1.0, 0.0  # half detected
    mask[0, 3, 3] = True
    amap[0, 3, 3] = 1.0  # detected
    mask[1, 2, 2] = True
    amap[1, 2, 2] = 0.0  # missed, in another image
    # Regions {0.5, 1, 0}: 0.5. With 4-connectivity it would be {1, 0, 1, 0}: also 0.5, so
    # also check the first image alone: {0.5, 1} = 0.75 (4-connected: {1, 0, 1} = 2/3).
    assert pro_score(mask, amap, num_thresholds=num_thresholds) == pytest.approx(0.5)
    assert pro_score(mask[:1], amap[:1], num_thresholds=num_thresholds) == pytest.approx(0.75)


def _tie_case() -> tuple[np.ndarray, np.ndarray]:
    """3x4, ten normals scored 0.1..1.0; region A = 0.8 (ties a normal), region B = 0.05.

    Curve: (0,0) (0.1,0) (0.2,0) -> (0.3,0.5) [tie: a sloped segment] ... (1.0,0.5) (1,1).
    """
    amap = np.array([[0.8, 0.1, 0.2, 0.3], [0.4, 0.5, 0.6, 0.7], [0.8, 0.9, 1.0, 0.05]])
    mask = np.zeros((3, 4), dtype=bool)
    mask[0, 0] = mask[2, 3] = True
    return mask, amap


@EXACT_AND_GRID
@pytest.mark.parametrize(
    ("fpr_limit", "expected"),
    [
        (0.2, 0.0),
        (0.25, (0.5 * 0.05 * 0.25) / 0.25),  # interpolated at 0.25 on the tie segment
        (0.3, (0.5 * 0.1 * 0.5) / 0.3),
        (0.5, (0.025 + 0.2 * 0.5) / 0.5),
        (1.0, 0.025 + 0.7 * 0.5),  # the final jump to (1, 1) is vertical: no area
    ],
)
def test_pro_fpr_limit_normalisation_by_hand(num_thresholds, fpr_limit, expected):
    mask, amap = _tie_case()
    score = pro_score(mask, amap, fpr_limit=fpr_limit, num_thresholds=num_thresholds)
    assert score == pytest.approx(expected)


def test_pro_matches_brute_force_reference():
    rng = np.random.default_rng(5)
    masks = _blob_masks(rng, 6, 24)
    masks[0, 5, 5] = True  # at least one region
    maps = ndimage.gaussian_filter(masks.astype(float), (0, 1.5, 1.5)) + rng.normal(0, 0.15, masks.shape)
    maps = np.round(maps, 2)  # plenty of ties
    for limit in (0.05, 0.3, 1.0):
        expected = _reference_pro(masks, maps, limit)
        assert pro_score(masks, maps, fpr_limit=limit, num_thresholds=None) == (pytest.approx(expected, abs=1e-12))
        assert pro_score(masks, maps, fpr_limit=limit) == pytest.approx(expected, abs=5e-3)


def test_pro_accepts_torch_and_channel_axis():
    masks = _blob_masks(np.random.default_rng(6), 3, 16)
    masks[0, 2, 2] = True
    maps = np.random.default_rng(7).random(masks.shape).astype(np.float32) + masks
    expected = pro_score(masks, maps)
    got = pro_score(torch.from_numpy(masks)[:, None].float(), torch.from_numpy(maps)[:, None])
    assert got == pytest.approx(expected)


def test_pro_undefined_and_invalid():
    maps = np.random.default_rng(8).random((2, 8, 8))
    assert math.isnan(pro_score(np.zeros((2, 8, 8)), maps))  # no region
    assert math.isnan(pro_score(np.ones((2, 8, 8)), maps))  # no normal pixel
    mask = np.zeros((2, 8, 8))
    mask[0, 1, 1] = 1
    with pytest.raises(ValueError, match="fpr_limit"):
        pro_score(mask, maps, fpr_limit=0.0)
    with pytest.raises(ValueError, match="NaN"):
        pro_score(mask, np.full((2, 8, 8), np.nan))


# --------------------------------------------------------------------------- evaluate


def test_evaluate_keys_and_plain_floats():
    masks, maps = _tiny_pixel_case()
    result = evaluate(torch.tensor([0, 1]), torch.tensor([0.2, 0.9]), torch.tensor(masks), maps)
    assert list(result) == [
        "image_auroc",
        "image_aupr",
        "image_f1_max",
        "image_f1_threshold",
        "pixel_auroc",
        "pro",
    ]
    assert all(type(value) is float for value in result.values())
    assert result["image_auroc"] == 1.0
    assert result["pixel_auroc"] == pytest.approx(56.5 / 87)
    assert result["pro"] == pytest.approx(pro_score(masks, maps))


def test_evaluate_without_masks_and_with_one_class():
    assert set(evaluate(LABELS, SCORES)) == {
        "image_auroc",
        "image_aupr",
        "image_f1_max",
        "image_f1_threshold",
    }
    masks, maps = _tiny_pixel_case()
    assert "pro" not in evaluate(LABELS[:2], SCORES[:2], masks, maps, has_masks=False)
    # Only anomalies: image metrics are nan, pixel metrics are still computed.
    result = evaluate([1, 1], [0.3, 0.7], masks, maps)
    assert math.isnan(result["image_auroc"]) and math.isnan(result["image_f1_threshold"])
    assert result["pixel_auroc"] == pytest.approx(56.5 / 87)
    with pytest.raises(ValueError, match="both"):
        evaluate(LABELS, SCORES, masks=masks)
