"""Video classification networks. Every one takes `num_classes` first and maps normalised clips
`(B, 3, T, H, W)` to logits `(B, num_classes)`; pick one in YAML by `class_path`.

Temporal: torchvision's R(2+1)D-18, R3D-18 and MC3-18, a small (2+1)D CNN for the CPU, a frame-CNN + GRU.
Not temporal: a single-frame 2D CNN, the baseline that shows how much of the accuracy needs motion.
"""

from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torchvision.models import video as torchvision_video

from common.errors import UserInputError
from common.files import load_tensors

TORCHVISION_NETWORKS = {
    "r2plus1d_18": torchvision_video.r2plus1d_18,
    "r3d_18": torchvision_video.r3d_18,
    "mc3_18": torchvision_video.mc3_18,
}


class Conv2Plus1D(nn.Sequential):
    """A 3D convolution factorised into a spatial (1x3x3) and a temporal (3x1x1) one, each with BN-ReLU."""

    def __init__(
        self, in_channels: int, out_channels: int, spatial_stride: int = 1, temporal_stride: int = 1
    ) -> None:
        super().__init__(
            nn.Conv3d(
                in_channels,
                out_channels,
                (1, 3, 3),
                (1, spatial_stride, spatial_stride),
                (0, 1, 1),
                bias=False,
            ),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(out_channels, out_channels, (3, 1, 1), (temporal_stride, 1, 1), (1, 0, 0), bias=False),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )


class SmallR2Plus1D(nn.Module):
    """Three (2+1)D stages that halve the picture each time, then global average pooling; trains in minutes on a CPU.

    Args:
        num_classes: output classes.
        width: channels of the first stage; the next two double it.
    """

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.stages = nn.Sequential(
            Conv2Plus1D(3, width, spatial_stride=2),  # (B, w, T, H/2, W/2)
            Conv2Plus1D(width, 2 * width, spatial_stride=2),  # (B, 2w, T, H/4, W/4)
            Conv2Plus1D(2 * width, 4 * width, spatial_stride=2, temporal_stride=2),  # (B, 4w, T/2, H/8, W/8)
        )
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(clips).mean(dim=(2, 3, 4)))


def frame_encoder(width: int) -> nn.Sequential:
    """A 2D CNN for single frames `(N, 3, H, W)` -> `(N, 2w, H/8, W/8)`."""
    layers, channels = [], 3
    for out_channels in (width, 2 * width, 2 * width):
        layers += [
            nn.Conv2d(channels, out_channels, 3, 2, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
        channels = out_channels
    return nn.Sequential(*layers)


class FrameGRU(nn.Module):
    """A 2D CNN encodes each frame, a GRU reads the sequence of encodings, its last state is classified.

    Each frame keeps a coarse 4x4 layout (not a global pool), so the GRU can see where things moved.

    Args:
        num_classes: output classes.
        width: channels of the frame encoder's first layer.
        hidden_size: GRU state size.
    """

    def __init__(self, num_classes: int, width: int = 32, hidden_size: int = 128) -> None:
        super().__init__()
        self.encoder = nn.Sequential(frame_encoder(width), nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.gru = nn.GRU(2 * width * 16, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        batch, _, time = clips.shape[:3]
        frames = clips.transpose(1, 2).flatten(0, 1)  # (B*T, 3, H, W)
        encodings = self.encoder(frames).view(batch, time, -1)  # (B, T, 2w*16)
        _, last_state = self.gru(encodings)  # (1, B, hidden)
        return self.head(last_state[0])


class SingleFrame(nn.Module):
    """Classifies the clip's middle frame alone: the accuracy reachable without any motion.

    Args:
        num_classes: output classes.
        width: channels of the encoder's first layer.
    """

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.encoder = frame_encoder(width)
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        middle = clips[:, :, clips.shape[2] // 2]  # (B, 3, H, W)
        return self.head(self.encoder(middle).mean(dim=(2, 3)))


class TorchvisionVideoNetwork(nn.Module):
    """torchvision's R(2+1)D-18, R3D-18 or MC3-18, from scratch or from a local weights file with a new head.

    Args:
        num_classes: output classes.
        name: which torchvision network.
        pretrained_weights: a local `.pth` state dict (e.g. the Kinetics-400 weights); its classifier `fc` is
            dropped and a fresh `num_classes` head is trained.
    """

    def __init__(
        self,
        num_classes: int,
        name: Literal["r2plus1d_18", "r3d_18", "mc3_18"] = "r2plus1d_18",
        pretrained_weights: str | None = None,
    ) -> None:
        super().__init__()
        if name not in TORCHVISION_NETWORKS:
            raise UserInputError(
                f"unknown torchvision network {name!r}; choose one of {', '.join(TORCHVISION_NETWORKS)}"
            )
        self.network = TORCHVISION_NETWORKS[name](num_classes=num_classes)
        if pretrained_weights is not None:
            self.load_backbone(pretrained_weights, name)

    def load_backbone(self, weights_path: str, name: str) -> None:
        if not Path(weights_path).is_file():
            raise UserInputError(
                f"weights file {weights_path} does not exist; fix --model.network.init_args.pretrained_weights"
            )
        state = load_tensors(Path(weights_path), "weights file", "pass a torchvision state_dict file")
        state = state.get("state_dict", state)
        backbone = {key: value for key, value in state.items() if not key.startswith("fc.")}
        try:
            missing, unexpected = self.network.load_state_dict(backbone, strict=False)
        except RuntimeError as error:  # shape mismatches raise even when not strict
            raise UserInputError(
                f"weights file {weights_path} does not fit {name}: {str(error).splitlines()[1].strip()}"
            ) from error
        missing = [key for key in missing if not key.startswith("fc.")]
        if missing or unexpected:
            first = (missing or unexpected)[0]
            raise UserInputError(
                f"weights file {weights_path} does not fit {name}: {len(missing)} missing, {len(unexpected)} unexpected keys (first: {first})"
            )

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.network(clips)
