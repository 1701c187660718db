"""ESAD: end-to-end deep semi-supervised anomaly detection (Huang et al., arXiv 2012.04905).

encoder E1 -> z -> decoder -> x_hat -> second encoder E2 -> z_hat (E2 has its own
weights and E1's architecture).  Labels: 1 = labelled anomaly, 0 = unlabelled.

The paper's KL objective splits into the mutual information between data and code
(kept high by reconstruction, E1's job) and the entropy of the code (kept low for
normal data, high for anomalies, E2's job: with a Gaussian bound it is the spread
of z_hat around a centre c), tied by a consistency constraint between the codes.
Per sample, with the squared norm ||.||^2 summed over code dimensions:

    L_rec = mean_j (x_j - x_hat_j)^2                  unlabelled samples only
    L_ent = ||z_hat - c||^2                           unlabelled
          = 1 / (||z_hat - c||^2 + 1e-6)              labelled anomalies (pushed away)
    L_con = mean_k (z_k - z_hat_k)^2                  all samples
    loss  = mean over the batch of L_rec + lambda_1 L_ent + lambda_2 L_con

Choices where the paper leaves room (its text was not at hand; checked against a
public re-implementation, OutlierDetection.jl): the entropy term is the *squared*
norm and its inverse for anomalies (Deep SAD's form, on which the paper builds; the
re-implementation uses the plain norm); labelled anomalies are *not* reconstructed
(``recon_anomalies=False``: reconstructing them would teach the decoder the very
samples whose reconstruction should fail; the re-implementation reconstructs them);
gradients flow through all three networks; lambda_1 = lambda_2 = 1.

Deviations chosen by measurement (BENCHMARKS.md section 16), against the literal
c = 0 with biased encoders and the score L_rec + ||z_hat||^2 (still available as
``center="origin", bias_free="none", score="latent+recon"``; model files saved
before these options load that way):

* **Collapse.** With c = 0 nothing anchors the codes' scale: the decoder absorbs
  any shrinkage, so ||z_hat||^2 falls to about 1e-5 of the reconstruction error and
  the paper's sum is the reconstruction error alone.  Deep SAD's remedy is used:
  c is the untrained E2's mean code of the first batch (``center="initial"``) and
  both encoders have no bias terms (``bias_free="both"``), so no constant code
  reaches c.
* **Score.** ``score="balanced"``: reconstruction error, ||z_hat - c||^2 and the
  consistency ||z - z_hat||^2 (large when x_hat no longer encodes like x), each
  divided by its mean over the normal training samples after training, then summed.
  The latent term keeps what labelled anomalies taught E2.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader, Dataset

from reconad.models.esad.config import ESADConfig
from reconad.models.networks import VectorDecoder, VectorEncoder
from reconad.models.reconstruction import ReconstructionModel


class ESAD(ReconstructionModel):
    name = "esad"
    uses_labels: ClassVar[bool] = True
    center: torch.Tensor  # buffers, present only with the options that use them
    term_means: torch.Tensor

    def __init__(self, config: ESADConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config or ESADConfig(**kwargs))
        latent = self.config.resolved_latent()
        # No BatchNorm in E2: it makes E2 blind to the scale of x_hat and the train-mode
        # norm of z_hat unrelated to the eval-mode one that scores.
        free, bn = self.config.bias_free, self.config.autoencoder_batchnorm
        self.encoder = VectorEncoder(self.config, latent, batchnorm=bn, bias=free != "both")
        self.decoder = VectorDecoder(self.config, latent, batchnorm=bn)
        self.encoder2 = VectorEncoder(self.config, latent, batchnorm=False, bias=free == "none")
        # Only the options that use them add buffers, so default models keep their keys.
        if self.config.center == "initial":
            self.register_buffer("center", torch.zeros(latent))  # all zero until fitted
        if self.config.score in ("balanced", "recon+consistency"):
            self.register_buffer("term_means", torch.ones(3))

    def codes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z, x_hat, z_hat)."""
        z = self.encoder(x)
        x_hat = self.decoder(z)
        return z, x_hat, self.encoder2(x_hat)

    def _fit_center(self, z_hat: torch.Tensor, labels: torch.Tensor) -> None:
        """Deep SAD's centre from the untrained network's codes of unlabelled samples."""
        normal = z_hat[labels != 1] if bool((labels != 1).any()) else z_hat
        c = normal.detach().mean(0)
        eps = 0.1
        c = torch.where(c.abs() < eps, torch.where(c < 0, -eps, eps), c)
        self.center.copy_(c)  # every entry now at least eps from 0: fitted

    def latent_term(self, z_hat: torch.Tensor) -> torch.Tensor:
        """||z_hat - c||^2 per sample (c = 0 unless ``center="initial"``)."""
        if self.config.center == "initial":
            z_hat = z_hat - self.center
        return (z_hat**2).sum(1)

    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z, x_hat, z_hat = self.codes(x)
        if self.config.center == "initial" and not bool(self.center.any()):
            self._fit_center(z_hat, labels)
        anomaly = labels == 1
        rec = ((x - x_hat) ** 2).flatten(1).mean(1)
        if not self.config.recon_anomalies:
            rec = torch.where(anomaly, torch.zeros_like(rec), rec)
        norm2 = self.latent_term(z_hat)
        ent = torch.where(anomaly, 1.0 / (norm2 + 1e-6), norm2)
        con = ((z - z_hat) ** 2).mean(1)
        cfg = self.config
        return (rec + cfg.entropy_weight * ent + cfg.consistency_weight * con).mean()

    def score_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """((B, 3) per-sample reconstruction error, latent term and consistency; element-wise error)."""
        z, x_hat, z_hat = self.codes(x)
        err = (x - x_hat) ** 2
        terms = [err.flatten(1).mean(1), self.latent_term(z_hat), ((z - z_hat) ** 2).mean(1)]
        return torch.stack(terms, 1), err

    @torch.no_grad()
    def on_fit_end(self, train_data: Dataset, val_data: Dataset | None, device: torch.device) -> None:
        """Balanced scores: the mean of each score term over the normal training samples."""
        if not hasattr(self, "term_means"):
            return
        self.eval()
        sums, count = torch.zeros(3, dtype=torch.float64), 0
        for batch in DataLoader(train_data, batch_size=256, shuffle=False, collate_fn=self.collate_fn()):
            x, labels = self.batch_inputs(batch.to(device))
            terms, _ = self.score_terms(x)
            keep = labels != 1
            sums += terms[keep].sum(0).double().cpu()
            count += int(keep.sum())
        means = sums / max(count, 1)
        self.term_means.copy_(torch.where(means > 0, means, torch.ones_like(means)).float())

    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        terms, err = self.score_terms(x)
        score = self.config.score
        if score == "latent":
            return terms[:, 1], err
        if score == "latent+recon":
            return terms[:, 0] + terms[:, 1], err
        scaled = terms / self.term_means
        used = scaled if score == "balanced" else scaled[:, [0, 2]]
        return used.sum(1), err
