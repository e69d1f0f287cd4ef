"""The forecasting LightningModule: any network from `model.py`, one shared step, MSE/MAE/MASE metrics,
a per-horizon-step error curve and forecast-versus-actual plots of fixed validation windows."""

from collections.abc import Callable
from typing import Literal

import matplotlib.pyplot as plt
import pandas as pd
import torch
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError

from common import media
from common.errors import UserInputError
from common.metrics import StageMetrics
from common.optim import warmup_schedule
from common.pretrained import require_same_hparams
from projects.time_series.model import SegRNN

# network(input_channels, output_channels, lookback, horizon) -> nn.Module mapping (B, L, C_in) to (B, H, C_out)
NetworkFactory = Callable[[int, int, int, int], nn.Module]


class Forecaster(LightningModule):
    """Trains and evaluates one forecasting network; the data module supplies the shapes and scales.

    Args:
        network: the model (`class_path` in `model.py` plus its own `init_args`).
        input_channels: channels in each input window (linked from the data).
        output_channels: channels forecast (linked from the data).
        lookback: input steps L (linked from the data).
        horizon: forecast steps H (linked from the data).
        target_names: names of the forecast columns, for predictions (linked from the data).
        target_mean: training-row mean of each target, to undo the scaling (linked from the data).
        target_std: training-row std of each target (linked from the data).
        mase_scale: in-sample seasonal-naive MAE of each scaled target, the MASE denominator (linked).
        loss: `mse` or `mae` on the scaled series.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        schedule: `constant`; `exponential`, x `lr_decay` after each epoch; or `cosine`, annealed to 0 over the
            whole run (`max_epochs`) per step.
        lr_decay: the learning-rate factor per epoch of the `exponential` schedule.
        plot_windows: fixed validation windows drawn as forecast-versus-actual each epoch (0 turns off).
    """

    def __init__(
        self,
        network: NetworkFactory = SegRNN,
        input_channels: int = 1,
        output_channels: int = 1,
        lookback: int = 96,
        horizon: int = 48,
        target_names: list[str] | None = None,
        target_mean: list[float] | None = None,
        target_std: list[float] | None = None,
        mase_scale: list[float] | None = None,
        loss: Literal["mse", "mae"] = "mse",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        schedule: Literal["constant", "exponential", "cosine"] = "constant",
        lr_decay: float = 0.9,
        plot_windows: int = 4,
    ) -> None:
        super().__init__()
        if not 0 < lr_decay <= 1:
            raise UserInputError(f"lr_decay={lr_decay} must be in (0, 1]; set --model.lr_decay")
        self.save_hyperparameters(ignore=["network"])
        self.network = network(input_channels, output_channels, lookback, horizon)
        self.target_names = target_names or [f"target_{index}" for index in range(output_channels)]
        self.register_buffer("target_mean", torch.tensor(target_mean or [0.0] * output_channels))
        self.register_buffer("target_std", torch.tensor(target_std or [1.0] * output_channels))
        self.register_buffer("mase_scale", torch.tensor(mase_scale or [1.0] * output_channels))
        self.loss = nn.MSELoss() if loss == "mse" else nn.L1Loss()
        self.metrics = StageMetrics(
            {
                "mse": MeanSquaredError(),
                "mae": MeanAbsoluteError(),
                "mse_original": MeanSquaredError(),
                "mae_original": MeanAbsoluteError(),
                "mase": MeanMetric(),
            }
        )
        # val/test losses as a metric weighted by batch size: the exact mean over the split across DDP processes,
        # which `self.log(..., sync_dist=True)` is not when a split does not divide evenly (common/distributed.py).
        self.eval_losses = StageMetrics({"loss": MeanMetric()}, stages=("val", "test"))
        # Mean squared error of each forecast step 1..H, averaged over windows and channels.
        self.step_errors = StageMetrics(
            {"error_by_step": MeanSquaredError(num_outputs=horizon)}, stages=("val", "test")
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.network(inputs)  # (B, L, C_in) -> (B, H, C_out), scaled

    def example_inputs(self, batch_size: int) -> tuple[torch.Tensor]:
        """Windows for `common.export`: `(B, lookback, input_channels)` scaled series."""
        return (torch.randn(batch_size, self.hparams.lookback, self.hparams.input_channels),)

    def export_metadata(self) -> dict:
        hp = self.hparams
        return {
            "inputs": [{"name": "inputs", "shape": ["batch", hp.lookback, hp.input_channels], "dtype": "float32",
                        "preprocessing": "the last `lookback` rows, each channel scaled as the datamodule scaled "
                                         "the training rows (its mean and standard deviation)"}],
            "outputs": [{"name": "output", "shape": ["batch", hp.horizon, hp.output_channels],
                         "meaning": "scaled forecast; original scale = output * target_std + target_mean"}],
            "target_mean": self.target_mean.tolist(),
            "target_std": self.target_std.tolist(),
        }  # fmt: skip

    def original_scale(self, values: torch.Tensor) -> torch.Tensor:
        return values * self.target_std + self.target_mean

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        inputs, target = batch  # (B, L, C_in), (B, H, C_out)
        forecast = self(inputs)
        loss = self.loss(forecast, target)
        if stage == "train":  # per step, local to each process (no sync per step)
            self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(inputs))
        else:
            self.eval_losses[stage].update(loss.detach(), weight=len(inputs))
            self.log_dict(self.eval_losses[stage], on_step=False, on_epoch=True)
        forecast, target = forecast.detach().float().contiguous(), target.float()
        metrics = self.metrics[stage]
        metrics["mse"].update(forecast, target)
        metrics["mae"].update(forecast, target)
        metrics["mse_original"].update(self.original_scale(forecast), self.original_scale(target))
        metrics["mae_original"].update(self.original_scale(forecast), self.original_scale(target))
        metrics["mase"].update((forecast - target).abs() / self.mase_scale)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage == "val", batch_size=len(inputs))
        if stage in ("val", "test"):
            horizon = forecast.shape[1]
            by_step = [
                values.transpose(1, 2).reshape(-1, horizon).contiguous() for values in (forecast, target)
            ]  # (B*C, H)
            self.step_errors[stage]["error_by_step"].update(*by_step)
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        loss = self._shared_step(batch, "train")
        # Parameter-free baselines (naive, seasonal naive) have nothing to fit: fit only evaluates them.
        return loss if loss.requires_grad else None

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> list[dict]:
        inputs, timestamps = batch  # (B, L, C_in), (B, H) nanoseconds since the epoch
        forecast = self.original_scale(self(inputs).float()).cpu()  # (B, H, C_out)
        return [
            {
                "timestamp": str(pd.Timestamp(int(stamp), unit="ns")),
                **{name: float(value) for name, value in zip(self.target_names, step, strict=True)},
            }
            for window, stamps in zip(forecast, timestamps.cpu(), strict=True)
            for step, stamp in zip(window, stamps, strict=True)
        ]

    # ----- media -----
    def _log_error_by_step(self, stage: str) -> None:
        metric = self.step_errors[stage]["error_by_step"]
        if not metric.update_called:
            return
        errors = metric.compute().cpu()
        metric.reset()  # also after the sanity check, so its batches do not leak into epoch 0
        if self.trainer.sanity_checking:
            return
        figure, axes = plt.subplots(figsize=(6, 3))
        axes.plot(range(1, len(errors) + 1), errors.numpy())
        axes.set(xlabel="forecast step", ylabel="MSE (scaled)", title=f"{stage} error by horizon step")
        figure.tight_layout()
        media.log_figure(self.trainer, f"{stage}/error_by_step", figure)

    def _log_forecast_plots(self) -> None:
        dataset = getattr(self.trainer.datamodule, "val_dataset", None)
        if (
            self.trainer.sanity_checking
            or not self.hparams.plot_windows
            or dataset is None
            or len(dataset) == 0
        ):
            return
        count = min(self.hparams.plot_windows, len(dataset))
        # The same evenly spaced windows every epoch, so the plots can be compared across epochs.
        indices = torch.linspace(0, len(dataset) - 1, count).long().tolist()
        inputs, target = map(torch.stack, zip(*(dataset[index] for index in indices), strict=True))
        with torch.no_grad():
            forecast = self(inputs.to(self.device)).float().cpu()
        mean, std = self.target_mean[-1].item(), self.target_std[-1].item()
        history = inputs[:, :, -1] * std + mean  # the main target is the last channel
        target, forecast = target[:, :, -1] * std + mean, forecast[:, :, -1] * std + mean
        lookback, horizon = history.shape[1], target.shape[1]
        figure, axes = plt.subplots(count, 1, figsize=(8, 2.2 * count), squeeze=False)
        for row, axis in enumerate(axes[:, 0]):
            axis.plot(range(lookback), history[row], color="grey", label="history")
            axis.plot(range(lookback, lookback + horizon), target[row], color="black", label="actual")
            axis.plot(
                range(lookback, lookback + horizon), forecast[row], color="tab:orange", label="forecast"
            )
            axis.set_title(f"validation window {indices[row]} ({self.target_names[-1]})", fontsize=9)
        axes[0, 0].legend(loc="upper left", fontsize=8)
        figure.tight_layout()
        media.log_figure(self.trainer, "val/forecasts", figure)

    def on_validation_epoch_end(self) -> None:
        self._log_error_by_step("val")
        self._log_forecast_plots()

    def on_test_epoch_end(self) -> None:
        self._log_error_by_step("test")

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # A checkpoint restores only into a run whose data settings shaped the same weights.
        require_same_hparams(
            checkpoint,
            self.hparams,
            ("input_channels", "output_channels", "lookback", "horizon", "target_names"),
        )

    def configure_optimizers(self):
        parameters = [parameter for parameter in self.parameters() if parameter.requires_grad]
        if not parameters:
            return None
        optimizer = torch.optim.Adam(parameters, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        if self.hparams.schedule == "cosine":  # per step, no warm-up
            return warmup_schedule(optimizer, self.trainer.estimated_stepping_batches, 0.0, "cosine")
        if self.hparams.schedule == "constant":
            return optimizer
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=self.hparams.lr_decay)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
