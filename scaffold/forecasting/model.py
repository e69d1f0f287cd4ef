"""Networks for project_name: plain `nn.Module`s, no Lightning. A config picks one by `class_path`."""

import torch
from torch import nn


class GRUForecaster(nn.Module):
    """A GRU reads the history; a linear head maps its last state to the whole horizon at once.

    history `(B, lookback, input_channels)` -> forecast `(B, horizon, output_channels)`, in scaled units.

    Args:
        input_channels: channels of the history (targets first; linked from the datamodule).
        output_channels: target channels forecast (linked from the datamodule).
        lookback: time steps of history (linked from the datamodule).
        horizon: time steps forecast (linked from the datamodule).
        hidden_size: GRU state size.
        num_layers: stacked GRU layers.
        dropout: dropout between GRU layers and before the head.
    """

    def __init__(
        self,
        input_channels: int,
        output_channels: int,
        lookback: int,
        horizon: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.horizon, self.output_channels = horizon, output_channels
        self.gru = nn.GRU(input_channels, hidden_size, num_layers, batch_first=True,
                          dropout=dropout if num_layers > 1 else 0.0)  # fmt: skip
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, horizon * output_channels))

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        _, state = self.gru(history)  # state: (num_layers, B, hidden_size)
        # The head predicts the change from the last observed target value: a persistence forecast plus a correction.
        last = history[:, -1:, : self.output_channels]  # (B, 1, output_channels)
        return last + self.head(state[-1]).reshape(-1, self.horizon, self.output_channels)


class LinearForecaster(nn.Module):
    """One linear map from each channel's history to its horizon (the strong baseline of Zeng et al., 2023).

    Args:
        input_channels: channels of the history (targets first; linked from the datamodule).
        output_channels: target channels forecast (linked from the datamodule).
        lookback: time steps of history (linked from the datamodule).
        horizon: time steps forecast (linked from the datamodule).
    """

    def __init__(self, input_channels: int, output_channels: int, lookback: int, horizon: int) -> None:
        super().__init__()
        self.output_channels = output_channels
        self.linear = nn.Linear(lookback, horizon)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        targets = history[..., : self.output_channels].transpose(1, 2)  # (B, output_channels, lookback)
        return self.linear(targets).transpose(1, 2)  # (B, horizon, output_channels)
