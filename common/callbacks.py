"""Callbacks every project shares: checkpoints, throughput, confusion matrix, misclassified examples, predictions.

The classification callbacks read what a module's `validation_step`/`test_step` returns:
a dict with `preds` (predicted class indices, shape `(B,)`) and `target` (true indices, `(B,)`).
"""

import csv
import json
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter, WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info

from common import media
from common.errors import UserInputError
from common.runs import run_directory


def drop_weight_averaging(trainer: Trainer) -> None:
    """Detach any weight-averaging (EMA/SWA) callback before testing a checkpoint of the same fit.

    The callback saves the averaged weights as a checkpoint's state_dict, but while attached it swaps the raw
    weights it keeps for resuming back in on loading, so `trainer.test(ckpt_path=...)` would test those.
    """
    trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, WeightAveraging)]


def batch_size_of(batch: Any) -> int:
    """The leading dimension of the first tensor found in a (possibly nested) batch."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, dict):
        batch = list(batch.values())
    if isinstance(batch, list | tuple):
        for item in batch:
            size = batch_size_of(item)
            if size:
                return size
    return 0


def synchronized_clock(device: torch.device) -> float:
    """Wall-clock seconds once `device` has finished the work queued so far."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class ThroughputLogger(Callback):
    """Logs `perf/samples_per_sec` (whole epoch, data loading included) and `perf/step_time_ms` (compute) each
    epoch, and `perf/train_seconds` (the whole fit) at its end, all without the time spent validating;
    `train_seconds` and `epoch_seconds` stay readable on the callback.

    On a GPU, steps are timed with CUDA events read once per epoch, so timing never stalls the kernel queue.
    Lightning's `ThroughputMonitor` measures the same training time (2.03 s against 2.04 s for one 3-epoch CPU fit
    with both attached) but reports rates over a window of batches, not per epoch, and calls
    `torch.cuda.synchronize()` after every training batch; the benchmarks need the per-epoch figures.
    """

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.train_start, self.validation_seconds, self.epoch_seconds = (
            synchronized_clock(pl_module.device),
            0.0,
            [],
        )
        self.on_train_epoch_start(trainer, pl_module)  # a run resumed mid-epoch starts with no epoch start

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.samples, self.steps = 0, []
        self.epoch_start, self.validation_seconds_before = (
            synchronized_clock(pl_module.device),
            self.validation_seconds,
        )

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.step_start = self._mark(pl_module)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.steps.append((self.step_start, self._mark(pl_module)))
        self.samples += batch_size_of(batch)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.validation_start = synchronized_clock(pl_module.device)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # `validate` on its own runs these hooks too, with no training to leave its time out of.
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self.validation_seconds += synchronized_clock(pl_module.device) - self.validation_start

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.steps:
            return
        validation_seconds = self.validation_seconds - self.validation_seconds_before
        elapsed = synchronized_clock(pl_module.device) - self.epoch_start - validation_seconds
        self.epoch_seconds.append(elapsed)
        step_seconds = [self._seconds(start, end) for start, end in self.steps]
        pl_module.log("perf/samples_per_sec", self.samples * trainer.world_size / elapsed)
        pl_module.log("perf/step_time_ms", 1000 * sum(step_seconds) / len(step_seconds))

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.train_seconds = synchronized_clock(pl_module.device) - self.train_start - self.validation_seconds
        for logger in trainer.loggers:
            logger.log_metrics({"perf/train_seconds": self.train_seconds}, step=trainer.global_step)

    @staticmethod
    def _mark(pl_module: LightningModule) -> float | torch.cuda.Event:
        if pl_module.device.type != "cuda":
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    @staticmethod
    def _seconds(start: float | torch.cuda.Event, end: float | torch.cuda.Event) -> float:
        return start.elapsed_time(end) / 1000 if isinstance(start, torch.cuda.Event) else end - start


class ConfusionMatrixLogger(Callback):
    """Accumulates a confusion matrix over each validation/test epoch and logs it as a figure.

    Class names come from the module's `class_names` attribute.
    """

    def __init__(self, stages: tuple[str, ...] = ("val", "test")) -> None:
        self.stages = stages
        self.matrix: torch.Tensor | None = None

    def _reset(self, pl_module: LightningModule) -> None:
        classes = len(pl_module.class_names)
        self.matrix = torch.zeros(classes, classes, dtype=torch.long, device=pl_module.device)

    def _update(self, outputs: Any) -> None:
        classes = self.matrix.shape[0]
        flat = outputs["target"].long() * classes + outputs["preds"].long()
        self.matrix += torch.bincount(flat, minlength=classes * classes).view(classes, classes)

    def _log(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if trainer.sanity_checking:
            return
        matrix = trainer.strategy.reduce(self.matrix, reduce_op="sum")
        figure = media.confusion_matrix_figure(matrix, pl_module.class_names)
        media.log_figure(trainer, f"{stage}/confusion_matrix", figure)

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._reset(pl_module)

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._reset(pl_module)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if "val" in self.stages:
            self._update(outputs)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if "test" in self.stages:
            self._update(outputs)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if "val" in self.stages:
            self._log(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if "test" in self.stages:
            self._log(trainer, pl_module, "test")


class MisclassifiedImagesLogger(Callback):
    """Logs a grid of up to `max_images` misclassified test images, captioned `true->predicted`.

    Reads images from the batch's first element `(B, C, H, W)`.
    """

    def __init__(self, max_images: int = 32) -> None:
        self.max_images = max_images

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.images, self.labels = [], []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        missing = self.max_images - sum(len(images) for images in self.images)
        if missing <= 0:
            return
        inputs = batch[0]
        if not (isinstance(inputs, torch.Tensor) and inputs.ndim == 4 and inputs.shape[1] in (1, 3)):
            shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
            raise UserInputError(
                f"MisclassifiedImagesLogger draws images (B, 1 or 3, H, W), but this project's inputs are {shape}; "
                "remove it from the config's trainer.callbacks"
            )
        wrong = (outputs["preds"] != outputs["target"]).nonzero().flatten()[:missing]
        self.images.append(inputs[wrong].detach().cpu())
        self.labels += [(int(outputs["target"][i]), int(outputs["preds"][i])) for i in wrong]

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.labels:
            return
        names = pl_module.class_names
        caption = ", ".join(f"{names[true]}->{names[predicted]}" for true, predicted in self.labels)
        media.log_image_grid(trainer, "test/misclassified", torch.cat(self.images), caption=caption)


class PredictionWriter(BasePredictionWriter):
    """Writes the rows (dicts) that `predict_step` returns to a CSV or JSON Lines file.

    Args:
        output: the file to write; `.jsonl` selects JSON Lines. Default: `<run dir>/predictions.csv`.
    """

    def __init__(self, output: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.output = output

    def write_on_epoch_end(
        self, trainer: Trainer, pl_module: LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        rows = [row for batch_rows in predictions for row in batch_rows]
        path = Path(self.output) if self.output else run_directory(trainer) / "predictions.csv"
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}-rank{trainer.global_rank}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as file:
            if path.suffix == ".jsonl":
                file.writelines(json.dumps(row) + "\n" for row in rows)
            elif rows:
                writer = csv.DictWriter(file, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        rank_zero_info(f"Wrote {len(rows)} predictions to {path}")
