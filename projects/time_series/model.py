"""Forecasting networks: RNN encoder-decoder, direct multi-horizon RNN, SegRNN, and the baselines.

Every network takes `(input_channels, output_channels, lookback, horizon)` first and maps a normalised window
`(B, lookback, input_channels)` to a forecast `(B, horizon, output_channels)`. The targets are always the
*last* `output_channels` input channels (the data module orders columns that way), so the naive baselines
and the channel-independent models can forecast every channel and keep the targets.
"""

from typing import Literal

import torch
from torch import nn

from common.errors import UserInputError

Cell = Literal["gru", "lstm"]


def recurrent_layer(
    cell: Cell, input_size: int, hidden_size: int, num_layers: int, dropout: float
) -> nn.RNNBase:
    recurrent = nn.GRU if cell == "gru" else nn.LSTM
    dropout = dropout if num_layers > 1 else 0.0  # PyTorch warns about dropout on a single layer
    return recurrent(input_size, hidden_size, num_layers, batch_first=True, dropout=dropout)


class LastValueNaive(nn.Module):
    """Repeats the last observed value of each target over the whole horizon (no parameters)."""

    def __init__(self, input_channels: int, output_channels: int, lookback: int, horizon: int) -> None:
        super().__init__()
        self.output_channels, self.horizon = output_channels, horizon

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1:, -self.output_channels :].repeat(1, self.horizon, 1)  # (B, H, C_out)


class SeasonalNaive(nn.Module):
    """Repeats the last observed season: the forecast for step h is the value `period` steps before it.

    Args:
        period: season length in steps (24 for hourly data with a daily cycle); must not exceed `lookback`.
    """

    def __init__(
        self, input_channels: int, output_channels: int, lookback: int, horizon: int, period: int = 24
    ) -> None:
        super().__init__()
        if not 1 <= period <= lookback:
            raise UserInputError(
                f"SeasonalNaive period {period} must be between 1 and lookback {lookback}; set network.init_args.period"
            )
        self.output_channels, self.period = output_channels, period
        # Step h (0-based) copies lookback position L - period + (h mod period).
        self.register_buffer(
            "source_steps", lookback - period + torch.arange(horizon) % period, persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.source_steps, -self.output_channels :]  # (B, H, C_out)


class DLinear(nn.Module):
    """DLinear (Zeng et al., 2023): a moving-average trend plus the remainder, each mapped by one linear layer.

    Args:
        kernel_size: moving-average window (odd) that extracts the trend.
    """

    def __init__(
        self, input_channels: int, output_channels: int, lookback: int, horizon: int, kernel_size: int = 25
    ) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise UserInputError(
                f"DLinear kernel_size {kernel_size} must be odd (a centred moving average); set network.init_args.kernel_size"
            )
        self.output_channels, self.kernel_size = output_channels, kernel_size
        self.trend = nn.Linear(lookback, horizon)  # shared by all channels, as in the paper's default
        self.seasonal = nn.Linear(lookback, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Replicate both ends so the moving average keeps length L, as the paper's code does.
        pad = (self.kernel_size - 1) // 2
        padded = torch.cat([x[:, :1].expand(-1, pad, -1), x, x[:, -1:].expand(-1, pad, -1)], dim=1)
        trend = nn.functional.avg_pool1d(padded.transpose(1, 2), self.kernel_size, stride=1)  # (B, C, L)
        seasonal = x.transpose(1, 2) - trend
        out = self.trend(trend) + self.seasonal(seasonal)  # (B, C, H)
        return out.transpose(1, 2)[..., -self.output_channels :]


class RNNEncoderDecoder(nn.Module):
    """Sequence-to-sequence RNN: encodes the window, then decodes one step at a time from its own forecasts.

    Args:
        cell: `gru` or `lstm`.
        hidden_size: recurrent state size.
        num_layers: stacked recurrent layers in encoder and decoder.
        dropout: dropout between stacked layers.
    """

    def __init__(
        self,
        input_channels: int,
        output_channels: int,
        lookback: int,
        horizon: int,
        cell: Cell = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.output_channels, self.horizon = output_channels, horizon
        self.encoder = recurrent_layer(cell, input_channels, hidden_size, num_layers, dropout)
        self.decoder = recurrent_layer(cell, output_channels, hidden_size, num_layers, dropout)
        self.head = nn.Linear(hidden_size, output_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, state = self.encoder(x)
        step_input = x[:, -1:, -self.output_channels :]  # (B, 1, C_out): the last observed targets
        outputs = []
        for _ in range(self.horizon):
            hidden, state = self.decoder(step_input, state)
            # Predict the change from the previous value: the residual is easier to learn than the level.
            step_input = step_input + self.head(hidden)
            outputs.append(step_input)
        return torch.cat(outputs, dim=1)  # (B, H, C_out)


class DirectRNN(nn.Module):
    """Direct multi-horizon RNN: one linear head maps the final encoder state to all H steps at once.

    Args:
        cell: `gru` or `lstm`.
        hidden_size: recurrent state size.
        num_layers: stacked recurrent layers.
        dropout: dropout between stacked layers.
    """

    def __init__(
        self,
        input_channels: int,
        output_channels: int,
        lookback: int,
        horizon: int,
        cell: Cell = "gru",
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.output_channels, self.horizon = output_channels, horizon
        self.encoder = recurrent_layer(cell, input_channels, hidden_size, num_layers, dropout)
        self.head = nn.Linear(hidden_size, horizon * output_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.encoder(x)  # (B, L, D)
        change = self.head(hidden[:, -1]).view(-1, self.horizon, self.output_channels)
        return x[:, -1:, -self.output_channels :] + change  # (B, H, C_out)


class RevIN(nn.Module):
    """Reversible instance normalisation (Kim et al., 2022): each window is standardised by its own
    mean and std, and the forecast is mapped back with the same statistics (plus a learned affine)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        self.mean = x.mean(dim=1, keepdim=True).detach()  # (B, 1, C)
        self.std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + self.eps).detach()
        return (x - self.mean) / self.std * self.weight + self.bias

    def denormalize(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.bias) / (self.weight + self.eps * self.eps) * self.std + self.mean


class SegRNN(nn.Module):
    """Segment-recurrent RNN (Lin et al., 2023), channel independent, with RevIN and parallel decoding.

    Each channel's window is cut into segments of `segment_length` steps; a GRU reads the segment
    embeddings, and the final state decodes every output segment in parallel, told apart by a position
    embedding and a channel embedding (the paper's PMF decoding).

    Args:
        segment_length: steps per segment; `lookback` and `horizon` must be multiples of it.
        hidden_size: GRU state size (the paper uses 512).
        dropout: dropout on the decoder state before the output projection.
        revin: normalise each window by its own statistics (True), or only subtract its last value.
        cell: `gru` (the paper's choice) or `lstm`.
        num_layers: stacked recurrent layers, shared by the encoder and the decoder (the paper uses 1).
    """

    def __init__(
        self,
        input_channels: int,
        output_channels: int,
        lookback: int,
        horizon: int,
        segment_length: int = 48,
        hidden_size: int = 512,
        dropout: float = 0.5,
        revin: bool = True,
        cell: Cell = "gru",
        num_layers: int = 1,
    ) -> None:
        super().__init__()
        if lookback % segment_length or horizon % segment_length:
            raise UserInputError(
                f"SegRNN needs lookback ({lookback}) and horizon ({horizon}) to be multiples of segment_length "
                f"({segment_length}); set network.init_args.segment_length to a common divisor"
            )
        self.channels, self.output_channels = input_channels, output_channels
        self.segment_length, self.output_segments = segment_length, horizon // segment_length
        self.revin = RevIN(input_channels) if revin else None
        self.embed = nn.Sequential(nn.Linear(segment_length, hidden_size), nn.ReLU())
        self.rnn = recurrent_layer(cell, hidden_size, hidden_size, num_layers, 0.0)
        self.position = nn.Parameter(torch.randn(self.output_segments, hidden_size // 2))
        self.channel = nn.Parameter(torch.randn(input_channels, hidden_size - hidden_size // 2))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, segment_length))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, lookback, channels = x.shape
        if self.revin is not None:
            x = self.revin.normalize(x)
        else:
            last = x[:, -1:].detach()
            x = x - last
        # Channel independence: every channel is its own sequence of segments.
        segments = x.transpose(1, 2).reshape(
            batch * channels, lookback // self.segment_length, self.segment_length
        )
        _, state = self.rnn(self.embed(segments))  # state (layers, B*C, D), or (h, c) for an LSTM
        outputs = self.output_segments
        queries = torch.cat(
            [
                self.position.unsqueeze(0).expand(channels, -1, -1),  # (C, S_out, D/2)
                self.channel.unsqueeze(1).expand(-1, outputs, -1),  # (C, S_out, D/2)
            ],
            dim=-1,
        ).flatten(0, 1)  # (C*S_out, D)
        queries = queries.repeat(batch, 1).unsqueeze(1)  # (B*C*S_out, 1, D), batch-major like `segments`

        def repeat_state(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.repeat_interleave(outputs, dim=1)  # (layers, B*C*S_out, D)

        state = tuple(map(repeat_state, state)) if isinstance(state, tuple) else repeat_state(state)
        decoded, _ = self.rnn(queries, state)  # (B*C*S_out, 1, D)
        # (B, H, C)
        y = self.head(decoded).view(batch, channels, outputs * self.segment_length).transpose(1, 2)
        y = self.revin.denormalize(y) if self.revin is not None else y + last
        return y[..., -self.output_channels :]
