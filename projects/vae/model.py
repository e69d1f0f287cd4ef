"""Encoder-decoder pairs for the VAE: plain `nn.Module`s, no Lightning. A config picks one by `class_path`.

Each has `encode(images) -> (mean, log_var)` of the Gaussian posterior `(B, latent_dim)` each, `decode(latents)`
-> the likelihood's parameters per pixel `(B, C * parameters_per_pixel, S, S)` (1: Bernoulli logits; 2: mean and
log-scale of a discretised logistic), `latent_dim`, and `forward(images)`: decoding one posterior sample.
"""

from typing import Literal

import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}


class _Gaussian(nn.Module):
    """The shared part: the reparameterised sample that `forward` decodes."""

    latent_dim: int

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        mean, log_var = self.encode(images)
        # The reparameterisation trick: the sample is a differentiable function of the mean and variance.
        return self.decode(mean + torch.randn_like(mean) * (0.5 * log_var).exp())


class MLPVAE(_Gaussian):
    """Fully connected encoder and decoder (Kingma and Welling, 2014; Burda et al., 2016 for one stochastic layer:
    784-200-200-50, tanh).

    Args:
        channels: image channels (linked from the datamodule).
        image_size: image height and width (linked from the datamodule).
        parameters_per_pixel: likelihood parameters each pixel's decoder output holds (set by the module).
        latent_dim: size of the latent code.
        hidden_size: width of each hidden layer.
        depth: hidden layers in the encoder, and in the decoder.
        activation: nonlinearity after each hidden layer.
    """

    def __init__(
        self,
        channels: int,
        image_size: int,
        parameters_per_pixel: int = 1,
        latent_dim: int = 50,
        hidden_size: int = 200,
        depth: int = 2,
        activation: Literal["tanh", "relu", "gelu"] = "tanh",
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.output_shape = (channels * parameters_per_pixel, image_size, image_size)
        pixels = channels * image_size * image_size

        def stack(inputs: int, outputs: int) -> nn.Sequential:
            layers: list[nn.Module] = []
            for index in range(depth):
                layers += [
                    nn.Linear(inputs if index == 0 else hidden_size, hidden_size),
                    ACTIVATIONS[activation](),
                ]
            return nn.Sequential(*layers, nn.Linear(hidden_size if depth else inputs, outputs))

        self.encoder = nn.Sequential(nn.Flatten(), stack(pixels, 2 * latent_dim))
        self.decoder = stack(latent_dim, pixels * parameters_per_pixel)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.encoder(images).chunk(2, dim=-1)
        return mean, log_var

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents).view(-1, *self.output_shape)


class ConvVAE(_Gaussian):
    """Convolutional encoder (two stride-2 convolutions) and a mirrored transposed-convolution decoder; the image
    size must be a multiple of 4 (8, 28, 32).

    Args:
        channels: image channels (linked from the datamodule).
        image_size: image height and width (linked from the datamodule).
        parameters_per_pixel: likelihood parameters each pixel's decoder output holds (set by the module).
        latent_dim: size of the latent code.
        width: channels of the first convolution (the second has twice as many).
    """

    def __init__(
        self,
        channels: int,
        image_size: int,
        parameters_per_pixel: int = 1,
        latent_dim: int = 32,
        width: int = 32,
    ) -> None:
        super().__init__()
        if image_size % 4:
            raise ValueError(f"ConvVAE needs an image size divisible by 4, not {image_size}")
        self.latent_dim, self.side, self.width = latent_dim, image_size // 4, width
        features = 2 * width * self.side**2
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.GELU(),
            nn.Flatten(), nn.Linear(features, 2 * latent_dim),
        )  # fmt: skip
        self.project = nn.Sequential(nn.Linear(latent_dim, features), nn.GELU())
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.GELU(),
            nn.ConvTranspose2d(width, channels * parameters_per_pixel, 4, stride=2, padding=1),
        )  # fmt: skip

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.encoder(images).chunk(2, dim=-1)
        return mean, log_var

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        features = self.project(latents).view(-1, 2 * self.width, self.side, self.side)
        return self.decoder(features)
