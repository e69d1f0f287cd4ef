"""DCGAN generator and discriminator (Radford et al., 2016) for 28, 32 or 64-pixel images.

Both networks are stacks of stride-2 (transposed) convolutions between the image and a small square:
7x7 for 28-pixel images, 4x4 for 32 and 64. The width doubles at every halving of the resolution.
"""

import math
from typing import Literal

import torch
from torch import nn
from torch.nn.utils import spectral_norm as with_spectral_norm

from common.errors import UserInputError

# image size -> (size of the smallest feature map, number of stride-2 stages between it and the image)
ARCHITECTURES = {28: (7, 2), 32: (4, 3), 64: (4, 4)}


def architecture(image_size: int) -> tuple[int, int]:
    if image_size not in ARCHITECTURES:
        raise UserInputError(
            f"image_size {image_size} is not supported by DCGAN; choose one of {sorted(ARCHITECTURES)} "
            "(--data.image_size resizes the images)"
        )
    return ARCHITECTURES[image_size]


class Generator(nn.Module):
    """Maps latent vectors `(B, latent_dim)` to images `(B, channels, image_size, image_size)` in [-1, 1].

    Args:
        latent_dim: size of the latent vector.
        channels: image channels.
        image_size: 28, 32 or 64.
        width: channels of the last hidden feature map; earlier ones double per stage.
        extra_convs: 3x3 convolutions at the smallest resolution, after the latent's projection. Without them each
            feature there is one ReLU of a linear function of the latent, and only the upsampling layers mix
            neighbouring positions.
        clusters: length of a one-hot cluster code that follows the latent in the input, `(B, latent_dim +
            clusters)`; 0 for none.
    """

    def __init__(
        self,
        latent_dim: int,
        channels: int,
        image_size: int,
        width: int = 64,
        extra_convs: int = 0,
        clusters: int = 0,
    ) -> None:
        super().__init__()
        base_size, stages = architecture(image_size)
        hidden = width * 2 ** (stages - 1)
        # A transposed convolution with kernel base_size turns the 1x1 latent into a base_size square.
        layers = [
            nn.ConvTranspose2d(latent_dim + clusters, hidden, base_size, 1, 0, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(True),
        ]
        for _ in range(extra_convs):
            layers += [nn.Conv2d(hidden, hidden, 3, 1, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(True)]
        for _ in range(stages - 1):
            layers += [
                nn.ConvTranspose2d(hidden, hidden // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(hidden // 2),
                nn.ReLU(True),
            ]
            hidden //= 2
        layers += [nn.ConvTranspose2d(hidden, channels, 4, 2, 1), nn.Tanh()]
        self.layers = nn.Sequential(*layers)
        self.latent_dim = latent_dim
        self.clusters = clusters
        self.apply(dcgan_init)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.layers(latents[:, :, None, None])  # (B, latent_dim, 1, 1) -> (B, C, S, S)


class Discriminator(nn.Module):
    """Maps images `(B, channels, image_size, image_size)` to one real-vs-fake logit each, `(B,)`.

    Args:
        channels: image channels.
        image_size: 28, 32 or 64.
        width: channels of the first feature map; later ones double per stage.
        norm: `batch` (the paper's batch norm after every hidden convolution), `spectral` (every convolution
            spectrally normalised, Miyato et al., 2018) or `none` (for a gradient penalty, which batch norm would
            mix across the batch).
        minibatch_std: give the last layer one more feature map, the spread of the features across groups of 4
            images (`MinibatchStd`).
        extra_convs: 3x3 convolutions at the smallest resolution, before the last layer. Without them the logit is
            a linear function of features that each see a 10x10 patch (at 28 pixels); with them it can weigh how
            distant parts of the image fit together.
        clusters: with more than 0, `forward` also takes each image's one-hot cluster code `(B, clusters)` and adds
            a projection term to the logit (Miyato and Koyama, 2018): a learned embedding of the cluster dotted
            with the last features averaged over positions.
    """

    def __init__(
        self,
        channels: int,
        image_size: int,
        width: int = 64,
        norm: Literal["batch", "spectral", "none"] = "batch",
        minibatch_std: bool = False,
        extra_convs: int = 0,
        clusters: int = 0,
    ) -> None:
        super().__init__()
        base_size, stages = architecture(image_size)

        def conv(in_channels: int, out_channels: int, kernel: int, stride: int, padding: int) -> nn.Module:
            layer = nn.Conv2d(in_channels, out_channels, kernel, stride, padding, bias=norm != "batch")
            return with_spectral_norm(layer) if norm == "spectral" else layer

        def block(layer: nn.Module, out_channels: int) -> list[nn.Module]:
            return [
                layer,
                *([nn.BatchNorm2d(out_channels)] if norm == "batch" else []),
                nn.LeakyReLU(0.2, True),
            ]

        # No normalisation on the first layer (as in the paper): it sees raw pixels.
        layers, hidden = [conv(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)], width
        for _ in range(stages - 1):
            layers += block(conv(hidden, hidden * 2, 4, 2, 1), hidden * 2)
            hidden *= 2
        for _ in range(extra_convs):
            layers += block(conv(hidden, hidden, 3, 1, 1), hidden)
        if minibatch_std:
            layers.append(MinibatchStd())
            hidden += 1  # its extra feature map
        layers.append(conv(hidden, 1, base_size, 1, 0))  # (B, hidden, base, base) -> (B, 1, 1, 1)
        self.layers = nn.Sequential(*layers)
        # Projection (Miyato and Koyama, 2018): one embedding per cluster, dotted with the pooled features.
        self.projection = None
        if clusters:
            projection = nn.Linear(clusters, hidden, bias=False)
            self.projection = with_spectral_norm(projection) if norm == "spectral" else projection
        if norm != "spectral":
            self.apply(dcgan_init)

    def forward(self, images: torch.Tensor, codes: torch.Tensor | None = None) -> torch.Tensor:
        features = self.layers[:-1](images)  # (B, hidden, base, base)
        logits = self.layers[-1](features).flatten()  # (B,)
        if self.projection is None:
            return logits
        # How well the image's features, averaged over positions, fit its cluster's embedding.
        embeddings = self.projection(codes.to(features.dtype))  # (B, hidden)
        return logits + (embeddings * features.mean(dim=(2, 3))).sum(dim=1)


class MinibatchStd(nn.Module):
    """Appends one feature map: the spread of the features across groups of images (Karras et al., 2018).

    A generator that makes too little variety gives batches whose spread the discriminator can tell from real ones.
    """

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = features.shape
        group = math.gcd(self.group_size, batch)  # a group size that divides the batch
        grouped = features.float().reshape(group, batch // group, channels, height, width)
        # The variance written out: torch.var's backward is 5x slower on a CPU.
        variance = (grouped - grouped.mean(dim=0)).square().mean(dim=0)
        spread = (variance + 1e-8).sqrt().mean(dim=(1, 2, 3)).repeat(group)  # (B,)
        spread = spread.to(features.dtype)[:, None, None, None].expand(batch, 1, height, width)
        return torch.cat([features, spread], dim=1)  # (B, C + 1, H, W)


def dcgan_init(module: nn.Module) -> None:
    """The paper's initialisation: N(0, 0.02) convolutions, N(1, 0.02) batch-norm scales."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
