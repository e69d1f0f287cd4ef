"""The video-classification LightningModule: clip loss, clip and video accuracy, example clips, predictions."""

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from common.media import log_video
from common.metrics import StageMetrics
from common.optim import parameter_groups, warmup_schedule
from common.pretrained import require_same_hparams
from projects.video_classifier.data import MEAN, STD
from projects.video_classifier.model import SmallR2Plus1D
from projects.video_classifier.procedural import PROCEDURAL_CLASSES


class VideoClassifier(LightningModule):
    """Classifies videos from clips `(B, K, 3, T, H, W)`: K clips per video, whose mean logits score the video.

    Training sees one random clip per video (K = 1); evaluation sees K evenly spaced clips, and logs both
    clip accuracy (each clip alone) and video accuracy (mean of a video's clip logits).

    Args:
        network: builds the network from `num_classes`; pick one in YAML by `class_path`.
        class_names: class names in label order (linked from the datamodule).
        lr: peak learning rate (AdamW).
        weight_decay: AdamW's decoupled weight decay (not applied to BatchNorm and bias parameters).
        label_smoothing: cross-entropy label smoothing.
        schedule: `onecycle` (linear warm-up then linear decay), `cosine` or `constant`.
        warmup_fraction: share of the steps spent warming up.
        example_clips: validation clips logged as one video each epoch (true->predicted); 0 turns it off.
    """

    def __init__(
        self,
        network: Callable[[int], nn.Module] = SmallR2Plus1D,
        class_names: list[str] | None = None,
        lr: float = 3e-3,
        weight_decay: float = 0.05,
        label_smoothing: float = 0.0,
        schedule: Literal["onecycle", "cosine", "constant"] = "onecycle",
        warmup_fraction: float = 0.1,
        example_clips: int = 4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["network"])
        self.class_names = list(class_names or PROCEDURAL_CLASSES)
        classes = len(self.class_names)
        self.network = network(classes)
        self.clip_metrics = StageMetrics({"clip_acc": MulticlassAccuracy(classes, average="micro")})
        video_metrics = {"video_acc": MulticlassAccuracy(classes, average="micro")}
        if classes > 5:  # with 5 classes or fewer, top-5 accuracy is always 100%
            video_metrics["video_top5_acc"] = MulticlassAccuracy(classes, top_k=5, average="micro")
        self.video_metrics = StageMetrics(video_metrics)
        # val/test losses as a metric weighted by batch size: the exact mean over the split across DDP processes,
        # which `self.log(..., sync_dist=True)` is not when a split does not divide evenly (common/distributed.py).
        self.eval_losses = StageMetrics({"loss": MeanMetric()}, stages=("val", "test"))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Clip logits `(B, K, num_classes)` for clips `(B, K, 3, T, H, W)`."""
        videos, clips_per_video = clips.shape[:2]
        return self.network(clips.flatten(0, 1)).view(videos, clips_per_video, -1)

    def example_inputs(self, batch_size: int) -> tuple[torch.Tensor]:
        """Clips for `common.export`, `(B, K, 3, T, H, W)`, shaped as the run's data settings say."""
        data = getattr(self, "data_hparams", {})
        clips, frames, side = (
            data.get("clips_per_video", 1),
            data.get("clip_len", 8),
            data.get("crop_size", 32),
        )
        return (torch.randn(batch_size, clips, 3, frames, side, side),)

    def export_metadata(self) -> dict:
        shape = list(self.example_inputs(1)[0].shape[1:])
        return {
            "inputs": [{"name": "clips", "shape": ["batch", *shape], "dtype": "float32",
                        "preprocessing": f"K clips of T RGB frames / 255, centre-cropped, minus mean {list(MEAN)}, "
                                         f"over std {list(STD)} per channel"}],
            "outputs": [{"name": "output", "shape": ["batch", shape[0], len(self.class_names)],
                         "meaning": "clip logits; a video's score is their mean over K"}],
            "class_names": self.class_names,
        }  # fmt: skip

    def _shared_step(self, batch: dict[str, Any], stage: str) -> dict[str, torch.Tensor] | None:
        # Unreadable videos were dropped by the collate function; count them so a bad dataset shows in the logs.
        # Evaluation counts sum over every DDP process; train's stay local (no sync per step).
        train = stage == "train"
        self.log(
            f"{stage}/skipped_videos",
            float(len(batch["skipped"])),
            on_step=False,
            on_epoch=True,
            reduce_fx="sum",
            batch_size=1,
            sync_dist=not train,
        )
        target = batch["labels"]  # (B,)
        if len(target) == 0:  # the whole batch was unreadable
            return None if train else {"preds": target, "target": target}
        clip_logits = self(batch["clips"])  # (B, K, classes)
        video_logits = clip_logits.mean(dim=1)  # (B, classes)
        clip_target = target[:, None].expand(clip_logits.shape[:2]).flatten()  # (B*K,)
        loss = F.cross_entropy(
            clip_logits.flatten(0, 1), clip_target, label_smoothing=self.hparams.label_smoothing
        )
        self.clip_metrics[stage].update(clip_logits.flatten(0, 1), clip_target)
        self.video_metrics[stage].update(video_logits, target)
        if train:  # per step, local to each process (no sync per step)
            self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(target))
        else:
            self.eval_losses[stage].update(loss.detach(), weight=len(target))
            self.log_dict(self.eval_losses[stage], on_step=False, on_epoch=True, prog_bar=True)
        self.log_dict(self.clip_metrics[stage], on_step=False, on_epoch=True)
        self.log_dict(self.video_metrics[stage], on_step=False, on_epoch=True, prog_bar=not train)
        return {"loss": loss, "preds": video_logits.argmax(dim=-1), "target": target}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor] | None:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        outputs = self._shared_step(batch, "val")
        if (
            batch_idx == 0
            and len(outputs["preds"])
            and self.hparams.example_clips
            and not self.trainer.sanity_checking
        ):
            self.log_example_clips(batch["clips"], outputs["target"], outputs["preds"])
        return outputs

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        return self._shared_step(batch, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        rows = []
        if len(batch["videos"]):
            probabilities = self(batch["clips"]).mean(dim=1).softmax(dim=-1)  # (B, classes)
            confidence, predicted = probabilities.max(dim=-1)
            rows = [
                {"video": video, "class": self.class_names[index], "probability": round(float(p), 6)}
                for video, index, p in zip(
                    batch["videos"], predicted.tolist(), confidence.tolist(), strict=True
                )
            ]
        # An unreadable file still gets a row, so every input video is accounted for in the CSV.
        return rows + [{"video": video, "class": "", "probability": ""} for video in batch["skipped"]]

    def log_example_clips(self, clips: torch.Tensor, target: torch.Tensor, preds: torch.Tensor) -> None:
        """Log the first clip of the first `example_clips` videos side by side as one video."""
        count = self.hparams.example_clips
        shown = clips[:count, 0].float()  # (N, 3, T, H, W)
        mean, std = (torch.tensor(stats, device=shown.device).view(1, 3, 1, 1, 1) for stats in (MEAN, STD))
        pixels = ((shown * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)
        frames = pixels.permute(2, 1, 3, 0, 4).flatten(3, 4)  # (T, 3, H, N*W): the clips side by side
        names = self.class_names
        caption = ", ".join(
            f"{names[true]}->{names[guess]}"
            for true, guess in zip(target[:count].tolist(), preds[:count].tolist(), strict=True)
        )
        log_video(self.trainer, "val/example_clips", frames, fps=4, caption=caption)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # A checkpoint restores only into a run whose data settings shaped the same weights.
        require_same_hparams(checkpoint, self.hparams, ("class_names",))

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(
            parameter_groups(self.network, self.hparams.weight_decay), lr=self.hparams.lr
        )
        total = self.trainer.estimated_stepping_batches
        return warmup_schedule(optimizer, total, self.hparams.warmup_fraction, self.hparams.schedule)
