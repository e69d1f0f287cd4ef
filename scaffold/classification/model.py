"""Networks for project_name: plain `nn.Module`s, no Lightning. A config picks one by `class_path`."""

import torch
from torch import nn


class MLP(nn.Module):
    """A multilayer perceptron: features `(B, input_size)` -> logits `(B, num_classes)`.

    Args:
        input_size: features per example (linked from the datamodule).
        num_classes: classes (linked from the datamodule).
        hidden_size: width of each hidden layer.
        depth: hidden layers.
        dropout: dropout after each hidden layer.
    """

    def __init__(
        self, input_size: int, num_classes: int, hidden_size: int = 128, depth: int = 2, dropout: float = 0.1
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = input_size
        for _ in range(depth):
            layers += [nn.Linear(width, hidden_size), nn.GELU(), nn.Dropout(dropout)]
            width = hidden_size
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)  # (B, input_size) -> (B, num_classes)
