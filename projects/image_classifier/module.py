"""The image-classification LightningModule: loss, metrics, optimiser and schedule around any network."""

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics import MeanMetric

from common.metrics import StageMetrics, classification_metrics
from common.optim import warmup_schedule
from common.pretrained import require_same_hparams
from projects.image_classifier.model import CompactConvNet
from projects.image_classifier.optim import Muon, norm_lr_groups


class ImageClassifier(LightningModule):
    """Classifies float images in [0, 1] `(B, C, H, W)`; normalisation happens inside, with training-set statistics.

    Args:
        network: builds the network from `(in_channels, num_classes)`; pick one in YAML by `class_path`.
        class_names: class names in label order (linked from the datamodule).
        in_channels: image channels (linked from the datamodule).
        optimizer: `sgd` (Nesterov momentum), `adamw`, or `muon`: Muon for the convolution filters
            (`muon_lr`, `muon_momentum`) and Nesterov SGD (`lr`, `momentum`, `weight_decay`) for the rest.
        lr: peak learning rate.
        weight_decay: decoupled for AdamW; L2 for SGD (not applied to BatchNorm and bias parameters).
        momentum: SGD momentum.
        muon_lr: peak learning rate of the filters with `optimizer: muon`.
        muon_momentum: momentum of the filters with `optimizer: muon`.
        label_smoothing: cross-entropy label smoothing.
        schedule: `onecycle` (linear warm-up then linear decay), `cosine` or `constant`.
        warmup_fraction: share of the steps spent warming up (`onecycle` and `cosine`).
        norm_lr_scale: learning-rate multiplier for normalisation-layer parameters (airbench: 64).
        tta_flip: average the logits of each image and its mirror image when evaluating.
        tta_translate: when evaluating, give half the weight to the image and half to its two diagonal
            1-pixel shifts (airbench's translation test-time augmentation; mirrored too with `tta_flip`).
        channels_last: run convolutions in channels-last memory format (faster on GPUs with tensor cores).
        compile: compile the network with `torch.compile`.
    """

    def __init__(
        self,
        network: Callable[[int, int], nn.Module] = CompactConvNet,
        class_names: list[str] | None = None,
        in_channels: int = 3,
        optimizer: Literal["sgd", "adamw", "muon"] = "sgd",
        lr: float = 0.05,
        weight_decay: float = 5e-4,
        momentum: float = 0.9,
        muon_lr: float = 0.24,
        muon_momentum: float = 0.6,
        label_smoothing: float = 0.0,
        schedule: Literal["onecycle", "cosine", "constant"] = "onecycle",
        warmup_fraction: float = 0.2,
        norm_lr_scale: float = 1.0,
        tta_flip: bool = False,
        tta_translate: bool = False,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["network"])
        self.class_names = list(class_names or [str(index) for index in range(10)])
        self.network = network(in_channels, len(self.class_names))
        self.metrics = classification_metrics(len(self.class_names), top_k=5)
        # val/test losses as a metric weighted by batch size: the exact mean over the split across DDP processes,
        # which `self.log(..., sync_dist=True)` is not when a split does not divide evenly (common/distributed.py).
        self.eval_losses = StageMetrics({"loss": MeanMetric()}, stages=("val", "test"))
        self.register_buffer("mean", torch.full((in_channels,), 0.5))
        self.register_buffer("std", torch.full((in_channels,), 0.25))

    def configure_model(self) -> None:
        if self.hparams.channels_last:
            self.network.to(memory_format=torch.channels_last)
        if self.hparams.compile:
            self.network.compile()

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage != "fit" or datamodule is None:
            return
        mean, std = datamodule.channel_stats()
        self.mean.copy_(mean)
        self.std.copy_(std)
        if hasattr(self.network, "init_whitening"):
            sample = datamodule.splits["train"][0][:5000].float().div(255)
            self.network.init_whitening(self.normalize(sample.to(self.mean.device)))

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        images = (images - self.mean[:, None, None]) / self.std[:, None, None]
        return images.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits `(B, num_classes)` for images in [0, 1]."""
        images = self.normalize(images)
        if self.training:
            return self.network(images)
        logits = self._mirror_average(images)
        if self.hparams.tta_translate:
            padded = F.pad(images, (1, 1, 1, 1), mode="reflect")
            height, width = images.shape[-2:]
            shifted = (padded[..., :height, :width], padded[..., 2:, 2:])  # up-left and down-right
            logits = (logits + sum(map(self._mirror_average, shifted)) / 2) / 2
        return logits

    def example_inputs(self, batch_size: int) -> tuple[torch.Tensor]:
        """Images for `common.export`: the size the model was trained at (`input_size`, set when loaded)."""
        size = getattr(self, "input_size", None) or 32
        return (torch.rand(batch_size, self.hparams.in_channels, size, size),)

    def export_metadata(self) -> dict:
        shape = list(self.example_inputs(1)[0].shape[1:])
        return {
            "inputs": [{"name": "images", "shape": ["batch", *shape], "dtype": "float32",
                        "preprocessing": "RGB (or grey) pixels / 255, resized to the shape; normalised inside"}],
            "outputs": [{"name": "output", "shape": ["batch", len(self.class_names)], "meaning": "logits"}],
            "class_names": self.class_names,
        }  # fmt: skip

    def _mirror_average(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.network(images)
        if self.hparams.tta_flip:
            logits = (logits + self.network(images.flip(-1))) / 2
        return logits

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate features `(B, D)` for images in [0, 1] (used by sample-quality metrics)."""
        return self.network.features(self.normalize(images))

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> dict[str, torch.Tensor]:
        images, target = batch
        logits = self(images)
        loss = F.cross_entropy(logits, target, label_smoothing=self.hparams.label_smoothing)
        metrics = self.metrics[stage]
        metrics.update(logits, target)
        train = stage == "train"
        if train:  # per step, local to each process (no sync per step)
            self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(target))
        else:
            self.eval_losses[stage].update(loss.detach(), weight=len(target))
            self.log_dict(self.eval_losses[stage], on_step=False, on_epoch=True, prog_bar=True)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=not train)
        return {"loss": loss, "preds": logits.argmax(dim=-1), "target": target}

    def training_step(self, batch, batch_idx: int):
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx: int):
        return self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int):
        return self._shared_step(batch, "test")

    def predict_step(self, batch, batch_idx: int) -> list[dict]:
        images, paths = batch
        probabilities = self(images).softmax(dim=-1)
        confidence, predicted = probabilities.max(dim=-1)
        return [
            {"file": path, "class": self.class_names[index], "probability": round(float(p), 6)}
            for path, index, p in zip(paths, predicted.tolist(), confidence.tolist(), strict=True)
        ]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # A checkpoint restores only into a run whose data settings shaped the same weights.
        require_same_hparams(checkpoint, self.hparams, ("class_names", "in_channels"))

    def configure_optimizers(self):
        scale = self.hparams.norm_lr_scale
        norm_lr = self.hparams.lr * scale if scale != 1 else None
        groups = norm_lr_groups(self.network, self.hparams.weight_decay, norm_lr)
        if self.hparams.optimizer == "sgd":
            optimizer = torch.optim.SGD(
                groups, lr=self.hparams.lr, momentum=self.hparams.momentum, nesterov=True
            )
        elif self.hparams.optimizer == "muon":
            filters = [p for p in groups[0]["params"] if p.ndim == 4]
            groups[0]["params"] = [p for p in groups[0]["params"] if p.ndim != 4]
            groups.append({"params": filters, "muon": True, "lr": self.hparams.muon_lr,
                           "momentum": self.hparams.muon_momentum})  # fmt: skip
            optimizer = Muon(groups, lr=self.hparams.lr, momentum=self.hparams.momentum)
        else:
            optimizer = torch.optim.AdamW(groups, lr=self.hparams.lr)
        total = self.trainer.estimated_stepping_batches
        return warmup_schedule(optimizer, total, self.hparams.warmup_fraction, self.hparams.schedule)
