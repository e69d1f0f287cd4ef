"""The project_name LightningModule: cross-entropy, accuracy and F1 per stage, AdamW with a warm-up schedule."""

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics import MeanMetric

from common.metrics import StageMetrics, classification_metrics
from common.optim import Schedule, parameter_groups, warmup_schedule
from common.pretrained import require_same_hparams
from projects.project_name.model import MLP


class ProjectNameClassifier(LightningModule):
    """Classifies feature vectors `(B, input_size)`, standardised inside with the training set's statistics (so an
    exported model takes the raw features).

    Args:
        network: builds the network from `(input_size, num_classes)`; pick one in YAML by `class_path`.
        input_size: features per example (linked from the datamodule).
        class_names: class names in label order (linked from the datamodule).
        lr: peak learning rate (AdamW).
        weight_decay: AdamW's decoupled weight decay (not applied to biases and normalisation weights).
        schedule: `cosine` or `onecycle` decay after a linear warm-up, or `constant`.
        warmup_fraction: share of the steps spent warming up.
        label_smoothing: cross-entropy label smoothing.
    """

    def __init__(
        self,
        network: Callable[[int, int], nn.Module] = MLP,
        input_size: int = 16,
        class_names: list[str] | None = None,
        lr: float = 3e-3,
        weight_decay: float = 0.01,
        schedule: Schedule = "cosine",
        warmup_fraction: float = 0.1,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["network"])
        self.class_names = list(class_names or ["0", "1"])
        self.network = network(input_size, len(self.class_names))
        self.metrics = classification_metrics(len(self.class_names))
        # val/test loss as a metric weighted by batch size: the exact mean over a split, across DDP processes too.
        self.eval_losses = StageMetrics({"loss": MeanMetric()}, stages=("val", "test"))
        self.register_buffer("mean", torch.zeros(input_size))
        self.register_buffer("std", torch.ones(input_size))

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage == "fit" and datamodule is not None:
            mean, std = datamodule.feature_stats()
            self.mean.copy_(mean)
            self.std.copy_(std)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits `(B, num_classes)` for raw features `(B, input_size)`."""
        return self.network((features - self.mean) / self.std)

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> dict[str, torch.Tensor]:
        features, target = batch
        logits = self(features)
        loss = F.cross_entropy(logits, target, label_smoothing=self.hparams.label_smoothing)
        self.metrics[stage].update(logits, target)
        if stage == "train":
            self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(target))
        else:
            self.eval_losses[stage].update(loss.detach(), weight=len(target))
            self.log_dict(self.eval_losses[stage], on_step=False, on_epoch=True, prog_bar=True)
        self.log_dict(self.metrics[stage], on_step=False, on_epoch=True, prog_bar=stage != "train")
        return {"loss": loss, "preds": logits.argmax(dim=-1), "target": target}

    def training_step(self, batch, batch_idx: int):
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx: int):
        return self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int):
        return self._shared_step(batch, "test")

    def predict_step(self, batch, batch_idx: int) -> list[dict[str, Any]]:
        features, rows = batch
        confidence, predicted = self(features).softmax(dim=-1).max(dim=-1)
        return [{"row": row, "class": self.class_names[index], "probability": round(p, 6)}
                for row, index, p in zip(rows.tolist(), predicted.tolist(), confidence.tolist(), strict=True)]  # fmt: skip

    def example_inputs(self, batch_size: int) -> tuple[torch.Tensor]:
        """Raw feature rows for `common.export`."""
        return (torch.randn(batch_size, self.hparams.input_size) * self.std + self.mean,)

    def export_metadata(self) -> dict[str, Any]:
        return {
            "inputs": [{"name": "features", "shape": ["batch", self.hparams.input_size], "dtype": "float32",
                        "preprocessing": "the feature columns in the training file's order; standardised inside"}],
            "outputs": [{"name": "output", "shape": ["batch", len(self.class_names)], "meaning": "logits"}],
            "class_names": self.class_names,
        }  # fmt: skip

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # A checkpoint restores only into a module whose data settings shaped the same weights.
        require_same_hparams(checkpoint, self.hparams, ("class_names", "input_size"))

    def configure_optimizers(self):
        groups = parameter_groups(self.network, self.hparams.weight_decay)
        optimizer = torch.optim.AdamW(groups, lr=self.hparams.lr)
        total = self.trainer.estimated_stepping_batches
        return warmup_schedule(optimizer, total, self.hparams.warmup_fraction, self.hparams.schedule)
