"""The keyword-spotting LightningModule: normalisation, loss, accuracy per stage, optimiser and schedule."""

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics import MeanMetric

from common.metrics import StageMetrics, classification_metrics
from common.optim import parameter_groups, warmup_schedule
from common.pretrained import require_same_hparams
from projects.speech.model import TemporalCNN
from projects.speech.procedural import PROCEDURAL_CLASSES


class KeywordSpotter(LightningModule):
    """Classifies clips from log-mel features `(B, n_mels, frames)`; they are normalised inside, per mel band, with
    the training set's statistics, so an exported model takes the features as `SpeechDataModule` computes them.

    Args:
        network: builds the network from `(num_classes, n_mels)`; pick one in YAML by `class_path`.
        class_names: class names in label order (linked from the datamodule).
        n_mels: mel bands of the features (linked from the datamodule).
        frames: frames per clip (linked from the datamodule; used for export).
        lr: peak learning rate (AdamW).
        weight_decay: AdamW's decoupled weight decay (not applied to BatchNorm and bias parameters).
        label_smoothing: cross-entropy label smoothing.
        schedule: `onecycle` (linear warm-up then linear decay), `cosine` or `constant`.
        warmup_fraction: share of the steps spent warming up.
    """

    def __init__(
        self,
        network: Callable[[int, int], nn.Module] = TemporalCNN,
        class_names: list[str] | None = None,
        n_mels: int = 40,
        frames: int = 101,
        lr: float = 3e-3,
        weight_decay: float = 0.05,
        label_smoothing: float = 0.1,
        schedule: Literal["onecycle", "cosine", "constant"] = "onecycle",
        warmup_fraction: float = 0.1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["network"])
        self.class_names = list(class_names or PROCEDURAL_CLASSES)
        self.network = network(len(self.class_names), n_mels)
        self.metrics = classification_metrics(len(self.class_names))
        # val/test losses as a metric weighted by batch size: the exact mean over the split across DDP processes.
        self.eval_losses = StageMetrics({"loss": MeanMetric()}, stages=("val", "test"))
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("std", torch.ones(n_mels))

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage == "fit" and datamodule is not None and hasattr(datamodule, "feature_stats"):
            mean, std = datamodule.feature_stats()
            self.mean.copy_(mean)
            self.std.copy_(std.clamp(min=1e-3))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits `(B, num_classes)` for log-mel features `(B, n_mels, frames)`."""
        return self.network((features - self.mean[:, None]) / self.std[:, None])

    def example_inputs(self, batch_size: int) -> tuple[torch.Tensor]:
        """Features for `common.export`, `(B, n_mels, frames)`, at the run's clip length."""
        return (torch.randn(batch_size, self.hparams.n_mels, self.hparams.frames) + self.mean[:, None],)

    def export_metadata(self) -> dict:
        data = {"sample_rate": 8000, "clip_seconds": 1.0, "n_fft": 256, "hop_length": 80}
        data |= {key: value for key, value in getattr(self, "data_hparams", {}).items() if key in data}
        preprocessing = (
            f"mono PCM at {data['sample_rate']} Hz, zero-padded (centred) or cut to {data['clip_seconds']} s; "
            f"natural log of (power STFT, n_fft {data['n_fft']}, hop {data['hop_length']}, Hann, centred, "
            "times the mel filterbank of projects/speech/audio.py) + 1e-6; normalised inside"
        )
        return {
            "inputs": [{"name": "features", "shape": ["batch", self.hparams.n_mels, self.hparams.frames],
                        "dtype": "float32", "preprocessing": preprocessing}],
            "outputs": [{"name": "output", "shape": ["batch", len(self.class_names)], "meaning": "logits"}],
            "class_names": self.class_names,
        }  # fmt: skip

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> dict[str, torch.Tensor]:
        features, target = batch
        logits = self(features)
        loss = F.cross_entropy(logits, target, label_smoothing=self.hparams.label_smoothing)
        self.metrics[stage].update(logits, target)
        train = stage == "train"
        if train:  # per step, local to each process (no sync per step)
            self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(target))
        else:
            self.eval_losses[stage].update(loss.detach(), weight=len(target))
            self.log_dict(self.eval_losses[stage], on_step=False, on_epoch=True, prog_bar=True)
        self.log_dict(self.metrics[stage], on_step=False, on_epoch=True, prog_bar=not train)
        return {"loss": loss, "preds": logits.argmax(dim=-1), "target": target}

    def training_step(self, batch, batch_idx: int):
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx: int):
        return self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int):
        return self._shared_step(batch, "test")

    def predict_step(self, batch, batch_idx: int) -> list[dict]:
        features, paths = batch
        confidence, predicted = self(features).softmax(dim=-1).max(dim=-1)
        return [
            {"file": path, "class": self.class_names[index], "probability": round(float(p), 6)}
            for path, index, p in zip(paths, predicted.tolist(), confidence.tolist(), strict=True)
        ]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # A checkpoint restores only into a run whose data settings shaped the same weights.
        require_same_hparams(checkpoint, self.hparams, ("class_names", "n_mels"))

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(
            parameter_groups(self.network, self.hparams.weight_decay), lr=self.hparams.lr
        )
        total = self.trainer.estimated_stepping_batches
        return warmup_schedule(optimizer, total, self.hparams.warmup_fraction, self.hparams.schedule)
