"""ESAD: end-to-end deep semi-supervised anomaly detection (Huang et al., arXiv 2012.04905).

encoder E1 -> z -> decoder -> x_hat -> second encoder E2 -> z_hat (E2 has its own
weights and E1's architecture).  Labels: 1 = labelled anomaly, 0 = unlabelled.

The paper's KL objective splits into the mutual information between data and code
(kept high by reconstruction, E1's job) and the entropy of the code (kept low for
normal data, high for anomalies, E2's job: with a Gaussian bound it is the spread
of z_hat around the origin), tied by a consistency constraint between the codes.
Per sample, with the squared norm ||.||^2 summed over code dimensions:

    L_rec = mean_j (x_j - x_hat_j)^2                  unlabelled samples only
    L_ent = ||z_hat||^2                               unlabelled
          = 1 / (||z_hat||^2 + 1e-6)                  labelled anomalies (pushed away)
    L_con = mean_k (z_k - z_hat_k)^2                  all samples
    loss  = mean over the batch of L_rec + lambda_1 L_ent + lambda_2 L_con

Score: L_rec + ||z_hat||^2 (``score="latent+recon"``) or ||z_hat||^2 (``"latent"``).

Choices where the paper leaves room (its text was not at hand; checked against a
public re-implementation, OutlierDetection.jl): the entropy term is the *squared*
norm and its inverse for anomalies (Deep SAD's form, on which the paper builds; the
re-implementation uses the plain norm); labelled anomalies are *not* reconstructed
(``recon_anomalies=False``: reconstructing them would teach the decoder the very
samples whose reconstruction should fail; the re-implementation reconstructs them);
gradients flow through all three networks; lambda_1 = lambda_2 = 1.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from reconad.models.esad.config import ESADConfig
from reconad.models.networks import VectorDecoder, VectorEncoder
from reconad.models.reconstruction import ReconstructionModel


class ESAD(ReconstructionModel):
    name = "esad"
    uses_labels: ClassVar[bool] = True

    def __init__(self, config: ESADConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config or ESADConfig(**kwargs))
        latent = self.config.resolved_latent()
        # No BatchNorm: it makes E2 blind to the scale of x_hat and the train-mode
        # norm of z_hat unrelated to the eval-mode one that scores.
        self.encoder = VectorEncoder(self.config, latent, batchnorm=False)
        self.decoder = VectorDecoder(self.config, latent, batchnorm=False)
        self.encoder2 = VectorEncoder(self.config, latent, batchnorm=False)

    def codes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z, x_hat, z_hat)."""
        z = self.encoder(x)
        x_hat = self.decoder(z)
        return z, x_hat, self.encoder2(x_hat)

    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z, x_hat, z_hat = self.codes(x)
        anomaly = labels == 1
        rec = ((x - x_hat) ** 2).flatten(1).mean(1)
        if not self.config.recon_anomalies:
            rec = torch.where(anomaly, torch.zeros_like(rec), rec)
        norm2 = (z_hat**2).sum(1)
        ent = torch.where(anomaly, 1.0 / (norm2 + 1e-6), norm2)
        con = ((z - z_hat) ** 2).mean(1)
        cfg = self.config
        return (rec + cfg.entropy_weight * ent + cfg.consistency_weight * con).mean()

    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, x_hat, z_hat = self.codes(x)
        err = (x - x_hat) ** 2
        s = (z_hat**2).sum(1)
        if self.config.score == "latent+recon":
            s = s + err.flatten(1).mean(1)
        return s, err
