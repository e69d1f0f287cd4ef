"""The project_name LightningModule: a forecaster trained on scaled series, MSE and MAE per stage (scaled, as
forecasting papers report them) beside a persistence baseline, AdamW with a warm-up schedule."""

from collections.abc import Callable
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError

from common.metrics import StageMetrics
from common.optim import Schedule, parameter_groups, warmup_schedule
from common.pretrained import require_same_hparams
from projects.project_name.model import GRUForecaster


class ProjectNameForecaster(LightningModule):
    """Forecasts the next `horizon` steps of the target channels from `lookback` steps of history, in the series'
    own units; each channel is scaled inside with the training rows' statistics (so an exported model takes the
    raw history).

    Args:
        network: builds the network from `(input_channels, output_channels, lookback, horizon)`.
        input_channels: channels of the history, targets first (linked from the datamodule).
        output_channels: target channels (linked from the datamodule).
        lookback: time steps of history (linked from the datamodule).
        horizon: time steps forecast (linked from the datamodule).
        target_names: the target columns (linked from the datamodule).
        loss: `mse` or `mae` on the scaled values.
        lr: peak learning rate (AdamW).
        weight_decay: AdamW's decoupled weight decay.
        schedule: `cosine` or `onecycle` decay after a linear warm-up, or `constant`.
        warmup_fraction: share of the steps spent warming up.
    """

    def __init__(
        self,
        network: Callable[[int, int, int, int], nn.Module] = GRUForecaster,
        input_channels: int = 1,
        output_channels: int = 1,
        lookback: int = 96,
        horizon: int = 24,
        target_names: list[str] | None = None,
        loss: Literal["mse", "mae"] = "mse",
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        schedule: Schedule = "cosine",
        warmup_fraction: float = 0.05,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["network"])
        self.network = network(input_channels, output_channels, lookback, horizon)
        self.target_names = list(target_names or [f"target_{index}" for index in range(output_channels)])
        self.metrics = StageMetrics({"mse": MeanSquaredError(), "mae": MeanAbsoluteError(),
                                     "naive_mse": MeanSquaredError()})  # fmt: skip
        self.register_buffer("mean", torch.zeros(input_channels))
        self.register_buffer("std", torch.ones(input_channels))

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage == "fit" and datamodule is not None:
            mean, std = datamodule.channel_stats()
            self.mean.copy_(mean)
            self.std.copy_(std)

    def scale(self, values: torch.Tensor, channels: int | None = None) -> torch.Tensor:
        channels = channels or values.shape[-1]
        return (values - self.mean[:channels]) / self.std[:channels]

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        """Forecast `(B, horizon, output_channels)` in the series' units from raw history `(B, lookback, C)`."""
        out = self.hparams.output_channels
        return self.network(self.scale(history)) * self.std[:out] + self.mean[:out]

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        history, future = batch
        scaled_history, scaled_future = self.scale(history), self.scale(future)
        forecast = self.network(scaled_history)
        error = forecast - scaled_future
        loss = error.square().mean() if self.hparams.loss == "mse" else error.abs().mean()
        metrics, truth = self.metrics[stage], scaled_future.reshape(-1)
        metrics["mse"].update(forecast.reshape(-1), truth)
        metrics["mae"].update(forecast.reshape(-1), truth)
        # Persistence: the last observed value, repeated. A forecaster that cannot beat it has learned nothing.
        persistence = scaled_history[:, -1:, : future.shape[-1]].expand_as(scaled_future)
        metrics["naive_mse"].update(persistence.reshape(-1), truth)
        self.log(
            f"{stage}/loss",
            loss,
            on_step=stage == "train",
            on_epoch=True,
            prog_bar=True,
            batch_size=len(history),
        )
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage != "train")
        return loss

    def training_step(self, batch, batch_idx: int):
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx: int):
        return self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int):
        return self._shared_step(batch, "test")

    def predict_step(self, batch, batch_idx: int) -> list[dict[str, Any]]:
        history, starts = batch
        forecasts = self(history)
        return [{"start": start, "step": step + 1, **dict(zip(self.target_names, values, strict=True))}
                for start, forecast in zip(starts.tolist(), forecasts.tolist(), strict=True)
                for step, values in enumerate(forecast)]  # fmt: skip

    def example_inputs(self, batch_size: int) -> tuple[torch.Tensor]:
        """Raw histories for `common.export`."""
        hp = self.hparams
        return (torch.randn(batch_size, hp.lookback, hp.input_channels) * self.std + self.mean,)

    def export_metadata(self) -> dict[str, Any]:
        hp = self.hparams
        return {
            "inputs": [{"name": "history", "shape": ["batch", hp.lookback, hp.input_channels], "dtype": "float32",
                        "preprocessing": "the last `lookback` rows, targets first, in the series' units"}],
            "outputs": [{"name": "output", "shape": ["batch", hp.horizon, hp.output_channels],
                         "meaning": "forecast of the next `horizon` rows, in the series' units"}],
            "target_names": self.target_names,
        }  # fmt: skip

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # A checkpoint restores only into a module whose data settings shaped the same weights.
        require_same_hparams(
            checkpoint, self.hparams, ("input_channels", "output_channels", "lookback", "horizon")
        )

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(
            parameter_groups(self.network, self.hparams.weight_decay), lr=self.hparams.lr
        )
        total = self.trainer.estimated_stepping_batches
        return warmup_schedule(optimizer, total, self.hparams.warmup_fraction, self.hparams.schedule)
