"""``nearest_sq_distances``: the nearest rows and their squared distances, as the full matrix gives them."""

from __future__ import annotations

import pytest
import torch

from reconad.models.feature_maps import nearest_sq_distances


@pytest.mark.parametrize("k", [1, 3])
def test_nearest_rows_and_distances_match_the_full_matrix(k):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, 16, generator=g) * 3 + 1, torch.randn(200, 16, generator=g)
    full = torch.cdist(a.double(), b.double()) ** 2
    want, want_idx = full.topk(k, dim=1, largest=False)
    got, idx = nearest_sq_distances(a, b, k)
    assert got.shape == idx.shape == (50, k)
    assert torch.equal(idx, want_idx)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-4)


def test_a_row_of_the_bank_is_at_distance_zero_never_below():
    b = torch.randn(30, 8, generator=torch.Generator().manual_seed(1)) * 100
    got, idx = nearest_sq_distances(b[5:9], b)
    assert torch.equal(idx[:, 0], torch.arange(5, 9)) and (got >= 0).all() and got.max() < 1e-1
