"""The VAE LightningModule: trained on the ELBO (beta weighting, KL warm-up) or the importance-weighted bound, and
measured by the importance-weighted estimate of the negative log-likelihood, in nats per image."""

from collections.abc import Callable
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics import MeanMetric
from torchvision.utils import save_image

from common.metrics import StageMetrics
from common.optim import Schedule, parameter_groups, warmup_schedule
from common.pretrained import require_same_hparams
from common.runs import run_directory
from projects.vae.bounds import PARAMETERS_PER_PIXEL, Likelihood, elbo_terms, importance_weighted_bound
from projects.vae.figures import log_epoch_figures, log_latent_space
from projects.vae.model import MLPVAE


class VariationalAutoencoder(LightningModule):
    """A latent-variable model of images in [0, 1]; `forward(latents)` decodes latents to images.

    Args:
        network: builds the encoder-decoder from `(channels, image_size, parameters_per_pixel)` (`model.py`).
        channels: image channels (linked from the datamodule).
        image_size: image height and width (linked from the datamodule).
        class_names: label names, for the latent-space figure (linked from the datamodule).
        likelihood: `bernoulli` per pixel (binarised images) or a discretised `logistic` (8-bit colour images).
        objective: `elbo` (with the analytic KL) or `iwae`, the importance-weighted bound with `train_samples`.
        train_samples: posterior samples per image of the `iwae` objective.
        beta: weight of the KL term of the `elbo` objective (a beta-VAE; the logged bounds are always beta = 1).
        kl_warmup_steps: raise the KL weight linearly from 0 to `beta` over this many steps (0: no warm-up).
        eval_samples: samples per image of the validation estimate `val/nll`.
        test_samples: samples per image of the test estimate `test/nll` (5,000 in the papers).
        decode_chunk: (sample, image) pairs decoded at once when estimating (bounds memory and speed).
        lr: peak learning rate (AdamW).
        weight_decay: AdamW's decoupled weight decay.
        schedule: `cosine` or `onecycle` decay after a linear warm-up, or `constant`.
        warmup_fraction: share of the steps spent warming up the learning rate.
        sample_count: prior samples logged at the end of each validation epoch (0: no figures).
    """

    def __init__(
        self,
        network: Callable[[int, int, int], nn.Module] = MLPVAE,
        channels: int = 1,
        image_size: int = 28,
        class_names: list[str] | None = None,
        likelihood: Likelihood = "bernoulli",
        objective: Literal["elbo", "iwae"] = "elbo",
        train_samples: int = 5,
        beta: float = 1.0,
        kl_warmup_steps: int = 0,
        eval_samples: int = 100,
        test_samples: int = 5000,
        decode_chunk: int = 4096,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        schedule: Schedule = "cosine",
        warmup_fraction: float = 0.02,
        sample_count: int = 64,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["network"])
        self.network = network(channels, image_size, PARAMETERS_PER_PIXEL[likelihood])
        self.class_names = list(class_names or [str(index) for index in range(10)])
        self.bound = StageMetrics({"nelbo": MeanMetric(), "reconstruction": MeanMetric(), "kl": MeanMetric(),
                                   "nll": MeanMetric()}, stages=("val", "test"))  # fmt: skip
        self.latents: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """Images `(B, C, S, S)` in [0, 1] (the likelihood's mean per pixel) decoded from latents `(B, latent_dim)`."""
        parameters = self.network.decode(latents)
        if self.hparams.likelihood == "bernoulli":
            return parameters.sigmoid()
        return ((parameters[:, : self.hparams.channels] + 1) / 2).clamp(0, 1)

    def kl_weight(self) -> float:
        warmup = self.hparams.kl_warmup_steps
        return self.hparams.beta * (min(1.0, self.global_step / warmup) if warmup else 1.0)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, _ = batch
        hp = self.hparams
        if hp.objective == "iwae":
            loss = -importance_weighted_bound(self.network, images, hp.train_samples, hp.likelihood).mean()
        else:
            log_likelihood, kl = elbo_terms(self.network, images, hp.likelihood)
            loss = (self.kl_weight() * kl - log_likelihood).mean()
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(images))
        return loss

    def _evaluate(self, images: torch.Tensor, stage: str, samples: int) -> None:
        log_likelihood, kl = elbo_terms(self.network, images, self.hparams.likelihood)
        metrics = self.bound[stage]
        for name, value in (("nelbo", kl - log_likelihood), ("reconstruction", -log_likelihood), ("kl", kl)):
            metrics[name].update(value)
        if samples:
            bound = importance_weighted_bound(self.network, images, samples, self.hparams.likelihood,
                                              self.hparams.decode_chunk)  # fmt: skip
            metrics["nll"].update(-bound)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=True)

    def validation_step(self, batch, batch_idx: int) -> None:
        images, _ = batch
        self._evaluate(images, "val", self.hparams.eval_samples)
        if batch_idx == 0 and self.hparams.sample_count and not self.trainer.sanity_checking:
            log_epoch_figures(self, images, self.hparams.sample_count)

    def test_step(self, batch, batch_idx: int) -> None:
        images, labels = batch
        self._evaluate(images, "test", self.hparams.test_samples)
        if self.network.latent_dim == 2:
            self.latents.append((self.network.encode(images)[0].cpu(), labels.cpu()))

    def on_test_epoch_end(self) -> None:
        if self.latents and self.trainer.is_global_zero:
            means, labels = (torch.cat(parts) for parts in zip(*self.latents, strict=True))
            log_latent_space(self, means, labels, self.class_names)
        self.latents = []

    def predict_step(self, batch, batch_idx: int) -> list[dict[str, Any]]:
        """Images and their indices in `predict_dir`: their latent means. Sample indices alone: PNGs decoded from
        latents seeded with each index (so any one can be redrawn)."""
        if len(batch) == 2:
            images, indices = batch
            files = self.trainer.datamodule.predict_files
            means = self.network.encode(images)[0].tolist()
            return [{"file": str(files[index]), **{f"z{d}": round(v, 6) for d, v in enumerate(mean)}}
                    for index, mean in zip(indices.tolist(), means, strict=True)]  # fmt: skip
        (indices,) = batch
        latents = torch.stack([torch.randn(self.network.latent_dim, generator=torch.Generator().manual_seed(index))
                               for index in indices.tolist()])  # fmt: skip
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
                         "meaning": f"images in [0, 1], each pixel's mean under the {hp.likelihood} likelihood"}],
        }  # fmt: skip

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # A checkpoint restores only into a module whose data settings shaped the same weights.
        require_same_hparams(checkpoint, self.hparams, ("channels", "image_size", "likelihood"))

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(
            parameter_groups(self.network, self.hparams.weight_decay), lr=self.hparams.lr
        )
        total = self.trainer.estimated_stepping_batches
        return warmup_schedule(optimizer, total, self.hparams.warmup_fraction, self.hparams.schedule)
