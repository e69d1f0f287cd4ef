"""A guard that stops training when the loss stops being a number, before any checkpoint saves the broken weights."""

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from common.errors import UserInputError


def training_losses(outputs: Any, trainer: Trainer) -> dict[str, torch.Tensor]:
    """The losses of the step just taken: the `loss` that `training_step` returned, else (manual optimisation, as in
    the GAN) every logged `train/...loss...` value."""
    if isinstance(outputs, dict) and isinstance(outputs.get("loss"), torch.Tensor):
        return {"loss": outputs["loss"]}
    if isinstance(outputs, torch.Tensor):
        return {"loss": outputs}
    return {
        name: value
        for name, value in trainer.callback_metrics.items()
        if name.startswith("train/") and "loss" in name and isinstance(value, torch.Tensor)
    }


class FiniteLossGuard(Callback):
    """Stops the run with a one-line error at the first step whose loss is NaN or infinite.

    Checkpoint callbacks run after every other callback, so the last checkpoint written is one from before the
    loss broke; it is kept, and the error names it.
    """

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        for name, loss in training_losses(outputs, trainer).items():
            if not torch.isfinite(loss.detach()).all():
                raise UserInputError(self._message(trainer, name, loss))

    @staticmethod
    def _message(trainer: Trainer, name: str, loss: torch.Tensor) -> str:
        value = "nan" if torch.isnan(loss).any() else "inf"
        checkpoint = trainer.checkpoint_callback
        saved = getattr(checkpoint, "last_model_path", "") or getattr(checkpoint, "best_model_path", "")
        kept = (
            f"the last good checkpoint, {saved}, is kept" if saved else "no checkpoint had been written yet"
        )
        return (
            f"the training {name} became {value} at step {trainer.global_step} (epoch {trainer.current_epoch}), "
            f"so the run stopped; {kept}. Lower the learning rate (--model.lr) or check the data for extreme values"
        )
