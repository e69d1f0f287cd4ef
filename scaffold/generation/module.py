"""The project_name LightningModule: a VAE trained on the negative ELBO (nats per image), with samples from the
prior logged each validation epoch and written as PNG files by `predict`."""

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics import MeanMetric
from torchvision.utils import save_image

from common import media
from common.metrics import StageMetrics
from common.optim import Schedule, parameter_groups, warmup_schedule
from common.pretrained import require_same_hparams
from common.runs import run_directory
from projects.project_name.model import VAE


def gaussian_kl(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, 1)) per example, summed over the latent dimensions: `(B,)`."""
    return 0.5 * (mean.square() + log_var.exp() - 1 - log_var).sum(dim=-1)


class ProjectNameVAE(LightningModule):
    """Learns a latent-variable model of images in [0, 1]: `forward(latents)` decodes latents to images.

    Args:
        network: builds the VAE from `(channels, image_size)`; it has `encode`, `decode` and `latent_dim`.
        channels: image channels (linked from the datamodule).
        image_size: image height and width (linked from the datamodule).
        beta: weight of the KL term (1: the ELBO; other values train a beta-VAE, and the logged bound is still
            the ELBO).
        lr: peak learning rate (AdamW).
        weight_decay: AdamW's decoupled weight decay.
        schedule: `cosine` or `onecycle` decay after a linear warm-up, or `constant`.
        warmup_fraction: share of the steps spent warming up.
        sample_count: prior samples logged at the end of each validation epoch (0: none).
    """

    def __init__(
        self,
        network: Callable[[int, int], nn.Module] = VAE,
        channels: int = 1,
        image_size: int = 8,
        beta: float = 1.0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        schedule: Schedule = "cosine",
        warmup_fraction: float = 0.05,
        sample_count: int = 64,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["network"])
        self.network = network(channels, image_size)
        # The bound as metrics weighted by batch size: the exact mean over a split, across DDP processes too.
        self.bound = StageMetrics({"nelbo": MeanMetric(), "reconstruction": MeanMetric(), "kl": MeanMetric()})

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """Images `(B, C, S, S)` in [0, 1] (each pixel's mean) decoded from latents `(B, latent_dim)`."""
        return self.network.decode(latents).sigmoid()

    def negative_elbo(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction nats `-log p(x|z)` (one posterior sample) and KL nats, per image: `(B,)` each."""
        mean, log_var = self.network.encode(images)
        latents = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        logits = self.network.decode(latents)
        reconstruction = (
            F.binary_cross_entropy_with_logits(logits, images, reduction="none").flatten(1).sum(1)
        )
        return reconstruction, gaussian_kl(mean, log_var)

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        images, _ = batch
        reconstruction, kl = self.negative_elbo(images)
        loss = (reconstruction + self.hparams.beta * kl).mean()
        metrics = self.bound[stage]
        for name, value in (("nelbo", reconstruction + kl), ("reconstruction", reconstruction), ("kl", kl)):
            metrics[name].update(value.detach())
        if stage == "train":
            self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(images))
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage != "train")
        return loss

    def training_step(self, batch, batch_idx: int):
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx: int):
        return self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int):
        return self._shared_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        if self.hparams.sample_count and not self.trainer.sanity_checking:
            latents = torch.randn(self.hparams.sample_count, self.network.latent_dim, device=self.device,
                                  generator=torch.Generator(self.device).manual_seed(0))  # fmt: skip
            media.log_image_grid(self.trainer, "val/samples", self(latents))

    def predict_step(self, batch, batch_idx: int) -> list[dict[str, Any]]:
        """Writes one PNG per sample (sample `i` decodes latents seeded with `i`, so any one can be redrawn)."""
        (indices,) = batch
        generators = [torch.Generator().manual_seed(index) for index in indices.tolist()]
        latents = torch.stack([torch.randn(self.network.latent_dim, generator=g) for g in generators])
        folder = run_directory(self.trainer) / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for index, image in zip(indices.tolist(), self(latents.to(self.device)), strict=True):
            save_image(image, folder / f"{index:05d}.png")
            rows.append({"sample": index, "file": str(folder / f"{index:05d}.png")})
        return rows

    def example_inputs(self, batch_size: int) -> tuple[torch.Tensor]:
        """Latents for `common.export`."""
        return (torch.randn(batch_size, self.network.latent_dim),)

    def export_metadata(self) -> dict[str, Any]:
        hp = self.hparams
        return {
            "inputs": [{"name": "latents", "shape": ["batch", self.network.latent_dim], "dtype": "float32",
                        "preprocessing": "standard normal draws (the prior)"}],
            "outputs": [{"name": "output", "shape": ["batch", hp.channels, hp.image_size, hp.image_size],
                         "meaning": "images in [0, 1] (each pixel's Bernoulli mean)"}],
        }  # fmt: skip

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # A checkpoint restores only into a module whose data settings shaped the same weights.
        require_same_hparams(checkpoint, self.hparams, ("channels", "image_size"))

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(
            parameter_groups(self.network, self.hparams.weight_decay), lr=self.hparams.lr
        )
        total = self.trainer.estimated_stepping_batches
        return warmup_schedule(optimizer, total, self.hparams.warmup_fraction, self.hparams.schedule)
