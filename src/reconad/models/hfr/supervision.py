"""HFR's losses when some training images are labelled anomalies (``fit(images, y)``).

Normal pixels keep the reconstruction loss, so the decoder keeps rebuilding normal
texture; anomalous pixels get a deviation loss (after DevNet, Pang et al. 2019) so it
learns to *fail* on what defects look like.  Their residual must stand ``a`` standard
deviations above the normal residual:

    t = mean_normal + a * std_normal          (per level; this batch's normal pixels, no gradient)
    L_dev = mean over anomalous pixels of max(0, t - r)

With a mask, the pixels inside it are the anomalous ones and the rest of that image
counts as normal; without one (an image-level label), the image's top ``topk_ratio``
share of residuals stands for it.

Why this form: a margin (hinge) stops once a defect stands ``a`` standard deviations
out, so unlike an unbounded push it cannot inflate the residual scale that the map
normalisation, the threshold and the other images rely on.  The target carries no
gradient and the hinge is on the raw residual, not on (r - mean) / std: dividing by the
small normal spread scales the deviation gradient up some twenty-fold and wrecks the
reconstruction of everything (measured on the test fixture: the normal residual rose
from 0.39 to 1.0 with that form).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["deviation_losses"]


def _level_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Share of each cell of a level's grid inside a defect (mask given on the first level's grid)."""
    if tuple(mask.shape[-2:]) == size:
        return mask
    return F.interpolate(mask.unsqueeze(1), size=size, mode="area").squeeze(1)


def deviation_losses(
    res: list[torch.Tensor], labels: torch.Tensor, mask: torch.Tensor | None, margin: float, topk_ratio: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstruction loss on normal pixels, deviation loss on anomalous ones), averaged over levels."""
    anomalous = labels == 1
    recs, devs = [], []
    for r in res:
        size = (int(r.shape[-2]), int(r.shape[-1]))
        bad = torch.zeros_like(r, dtype=torch.bool)
        has_mask = torch.zeros_like(anomalous)
        if mask is not None:
            m = _level_mask(mask.float(), size) > 0.5
            has_mask = m.flatten(1).any(dim=1) & anomalous
            bad = m & anomalous[:, None, None]
        normal = ~bad & ~(anomalous & ~has_mask)[:, None, None]
        recs.append(r[normal].mean() if normal.any() else r.new_zeros(()))
        ref = r[normal].detach() if normal.sum() > 1 else r.detach().flatten()
        target = ref.mean() + margin * ref.std()
        terms = []
        if bad.any():
            terms.append(F.relu(target - r[bad]))
        whole = anomalous & ~has_mask
        if whole.any():
            flat = r[whole].flatten(1)
            k = max(1, int(round(topk_ratio * int(flat.shape[1]))))
            terms.append(F.relu(target - flat.topk(k, dim=1).values.mean(dim=1)))
        devs.append(torch.cat(terms).mean() if terms else r.new_zeros(()))
    return torch.stack(recs).mean(), torch.stack(devs).mean()
