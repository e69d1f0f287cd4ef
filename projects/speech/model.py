"""Keyword-spotting networks on normalised log-mel features `(B, n_mels, frames)` -> logits `(B, num_classes)`.
Every one takes `(num_classes, n_mels)` first.

`TemporalCNN`: 1D residual convolutions over time with the mel bands as channels (TC-ResNet style), the fastest
on a CPU. `KeywordCNN`: a small VGG-style 2D CNN with global pooling. `KeywordCRNN`: convolutions that pool
frequency, then a bidirectional GRU over time. Pick one in YAML by `class_path`.

`DigitCRNN` (connected digits, CTC): strided 1D convolutions, then a bidirectional GRU, giving per-frame logits
`(B, frames / 4, 11)` over the CTC blank and the ten digits.
"""

import torch
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    ]


class TemporalBlock(nn.Module):
    """Two kernel-`k` 1D conv-BN layers with a residual connection (1x1 projection when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 9, stride: int = 1) -> None:
        super().__init__()
        padding = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv1d(in_channels, out_channels, kernel_size, stride, padding, bias=False),
            nn.BatchNorm1d(out_channels),
            nn.ReLU(),
            nn.Conv1d(out_channels, out_channels, kernel_size, 1, padding, bias=False),
            nn.BatchNorm1d(out_channels),
        )
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv1d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm1d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class TemporalCNN(nn.Module):
    """A kernel-3 stem over the mel bands as channels, then residual blocks that halve time each (TC-ResNet,
    Choi et al., 2019), mean + max pooling over time, dropout and a linear head.

    A 1D convolution sees every band at once, so it needs a fraction of a 2D CNN's multiply-adds for the same
    receptive field in time: what makes it the CPU default.

    Args:
        num_classes: output classes.
        n_mels: mel bands of the input.
        widths: channels of the stem and of each residual block.
        kernel_size: temporal kernel of the blocks.
        dropout: before the head.
    """

    def __init__(
        self,
        num_classes: int,
        n_mels: int = 40,
        widths: tuple[int, ...] = (64, 96, 128, 160),
        kernel_size: int = 9,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        layers = [
            nn.Conv1d(n_mels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm1d(widths[0]),
            nn.ReLU(),
        ]
        for channels, out_channels in zip(widths[:-1], widths[1:], strict=True):
            layers.append(TemporalBlock(channels, out_channels, kernel_size, stride=2))
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * widths[-1], num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        maps = self.features(features)  # (B, C, T / 2^blocks)
        pooled = torch.cat([maps.mean(dim=2), maps.amax(dim=2)], dim=1)  # (B, 2C)
        return self.head(self.dropout(pooled))


class KeywordCNN(nn.Module):
    """A stem convolution, a 2x2 max-pool, then stages of two 3x3 conv-BN-ReLU each followed by a 2x2 max-pool
    (the last one excepted); global mean + max pooling over (mel, time), dropout and a linear head.

    Args:
        num_classes: output classes.
        n_mels: mel bands of the input (any number works: the pooling is global).
        widths: channels of the stem and of each stage.
        dropout: before the head.
    """

    def __init__(
        self,
        num_classes: int,
        n_mels: int = 40,
        widths: tuple[int, ...] = (16, 32, 64, 128),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        layers = [*conv_bn_relu(1, widths[0]), nn.MaxPool2d(2)]  # (B, w0, M/2, T/2)
        for index, (channels, out_channels) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers += conv_bn_relu(channels, out_channels) + conv_bn_relu(out_channels, out_channels)
            if index < len(widths) - 2:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * widths[-1], num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        maps = self.features(features[:, None])  # (B, C, M', T')
        pooled = torch.cat([maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))], dim=1)  # (B, 2C)
        return self.head(self.dropout(pooled))


class KeywordCRNN(nn.Module):
    """Conv-BN-ReLU stages that pool frequency by 2 each (time by 2 in the first two), a bidirectional GRU over
    the frames, the mean of its outputs over time, and a linear head.

    Args:
        num_classes: output classes.
        n_mels: mel bands of the input (any number works: frequency is averaged before the GRU).
        widths: channels of the convolution stages.
        hidden_size: GRU state size per direction.
        dropout: before the head.
    """

    def __init__(
        self,
        num_classes: int,
        n_mels: int = 40,
        widths: tuple[int, ...] = (32, 64, 64),
        hidden_size: int = 96,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        layers, channels = [], 1
        for index, out_channels in enumerate(widths):
            layers += [*conv_bn_relu(channels, out_channels), nn.MaxPool2d((2, 2) if index < 2 else (2, 1))]
            channels = out_channels
        self.convolutions = nn.Sequential(*layers)
        self.gru = nn.GRU(channels, hidden_size, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden_size, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        maps = self.convolutions(features[:, None])  # (B, C, M', T')
        # Frequency averaged away, so any n_mels works; time stays a sequence for the GRU.
        sequence = maps.mean(dim=2).transpose(1, 2)  # (B, T', C)
        outputs, _ = self.gru(sequence)  # (B, T', 2H)
        return self.head(self.dropout(outputs.mean(dim=1)))


class DigitCRNN(nn.Module):
    """Connected-digit acoustic model: 1D conv-BN-ReLU layers over time (mel bands as channels) whose strides
    shorten time, a bidirectional GRU over the remaining frames, and a linear layer to per-frame logits over
    blank + the digits. Takes `(num_outputs, n_mels)` first, as the keyword networks do.

    Args:
        num_outputs: per-frame classes, the CTC blank included (11 for the digits).
        n_mels: mel bands of the input.
        widths: channels of each convolution.
        strides: time stride of each convolution; their product shortens the frames (4: 10 ms -> 40 ms).
        kernel_size: temporal kernel of the convolutions.
        hidden_size: GRU state size per direction.
        layers: stacked GRU layers.
        dropout: before the GRU layers and the output layer.
    """

    def __init__(
        self,
        num_outputs: int = 11,
        n_mels: int = 40,
        widths: tuple[int, ...] = (128, 128, 128),
        strides: tuple[int, ...] = (1, 2, 2),
        kernel_size: int = 5,
        hidden_size: int = 128,
        layers: int = 2,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if len(widths) != len(strides):
            raise ValueError(f"widths {widths} and strides {strides} need one entry per convolution each")
        blocks, channels = [], n_mels
        for out_channels, stride in zip(widths, strides, strict=True):
            blocks.append(nn.Sequential(
                nn.Conv1d(channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False),
                nn.BatchNorm1d(out_channels), nn.ReLU()))  # fmt: skip
            channels = out_channels
        self.convolutions = nn.ModuleList(blocks)
        self.strides, self.kernel_size = strides, kernel_size
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(channels, hidden_size, layers, batch_first=True, bidirectional=True,
                          dropout=dropout if layers > 1 else 0.0)  # fmt: skip
        self.head = nn.Linear(2 * hidden_size, num_outputs)

    def output_lengths(self, lengths: torch.Tensor, stride: int) -> torch.Tensor:
        """Frames after one convolution of `stride` for `lengths` input frames (padding `kernel_size // 2`)."""
        return (lengths + 2 * (self.kernel_size // 2) - self.kernel_size) // stride + 1

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits `(B, T', num_outputs)` and their lengths `(B,)` for features `(B, n_mels, T)` of `lengths` frames."""
        maps = features
        for block, stride in zip(self.convolutions, self.strides, strict=True):
            maps, lengths = block(maps), self.output_lengths(lengths, stride).clamp(min=1)
            # Zero past each recording's end, as the convolution's own padding is: the output of a recording
            # then does not depend on how long the others in its batch are.
            maps = maps * (torch.arange(maps.shape[2], device=maps.device) < lengths[:, None])[:, None]
        sequence = self.dropout(maps.transpose(1, 2))  # (B, T', C)
        # Packed, so the backward direction starts at each recording's own last frame, not in the padding.
        packed = nn.utils.rnn.pack_padded_sequence(
            sequence, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, _ = self.gru(packed)
        outputs, _ = nn.utils.rnn.pad_packed_sequence(
            outputs, batch_first=True, total_length=sequence.shape[1]
        )
        return self.head(self.dropout(outputs)), lengths  # (B, T', 2H) -> (B, T', num_outputs)
