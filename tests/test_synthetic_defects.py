"""The two synthetic defect generators: seeded, masks non-empty and in bounds, distinct."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reconad.data.records import ImageItem
from reconad.data.synthetic_defects import SyntheticDefectSet, perlin_noise, training_defect, validation_defect


def _image(seed: int = 0, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).random((3, size, size)).astype(np.float32) * 0.6 + 0.2


@pytest.mark.parametrize("make", [training_defect, validation_defect])
def test_same_seed_same_defect_other_seed_other_defect(make):
    img = _image()
    a, ma = make(img, np.random.default_rng(7))
    b, mb = make(img, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ma, mb)
    others = [make(img, np.random.default_rng(s))[1] for s in range(8, 12)]
    assert any(not np.array_equal(ma, m) for m in others)


@pytest.mark.parametrize("make", [training_defect, validation_defect])
@pytest.mark.parametrize("size", [32, 64, 97])
def test_masks_are_binary_non_empty_and_the_image_stays_in_range(make, size):
    img = _image(size=size)
    for seed in range(20):
        out, mask = make(img, np.random.default_rng(seed))
        assert out.shape == img.shape and mask.shape == img.shape[1:]
        assert set(np.unique(mask)) <= {0.0, 1.0} and mask.sum() >= 1
        assert mask.mean() < 0.6
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert np.abs(out - img).max() > 0  # something changed


def test_tensors_in_tensors_out_and_the_fill_comes_from_the_other_image():
    img, other = torch.zeros(3, 48, 48), torch.ones(3, 48, 48)
    filled = 0
    for seed in range(30):
        out, mask = training_defect(img, np.random.default_rng(seed), other)
        assert isinstance(out, torch.Tensor) and isinstance(mask, torch.Tensor)
        assert float(out[:, mask == 0].abs().max()) == 0.0  # outside the mask nothing moves
        filled += float(out[:, mask == 1].mean()) >= 0.5  # blended at >= 0.5 from the white image
    assert filled >= 5


def test_the_two_generators_differ():
    """The same seeds give different masks, and the validation generator's shading blobs are
    larger and smoother than any training defect (mean mask area over many seeds)."""
    img = _image()
    t_masks = [training_defect(img, np.random.default_rng(s))[1] for s in range(40)]
    v_masks = [validation_defect(img, np.random.default_rng(s))[1] for s in range(40)]
    assert all(not np.array_equal(t, v) for t, v in zip(t_masks, v_masks))
    assert max(float(m.mean()) for m in v_masks) > max(float(m.mean()) for m in t_masks)


def test_perlin_noise_is_smooth_and_bounded():
    n = perlin_noise((64, 64), (4, 4), np.random.default_rng(0))
    assert n.shape == (64, 64) and np.abs(n).max() <= 1.5 and n.std() > 0.05
    assert np.abs(np.diff(n, axis=1)).max() < 0.3  # neighbouring pixels are close


def test_synthetic_defect_set_holds_normals_then_labelled_copies():
    base = [ImageItem(torch.from_numpy(_image(i)), 0) for i in range(3)]
    ds = SyntheticDefectSet(base, copies=2, seed=1)
    assert len(ds) == 9
    assert [ds[i].label for i in range(9)] == [0, 0, 0] + [1] * 6
    assert all(float(ds[i].mask.sum()) == 0 for i in range(3))
    assert all(float(ds[i].mask.sum()) >= 1 for i in range(3, 9))
    torch.testing.assert_close(ds[4].image, SyntheticDefectSet(base, copies=2, seed=1)[4].image)
    assert not torch.equal(ds[4].image, ds[7].image)  # two copies of image 1 differ
