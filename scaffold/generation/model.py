"""Networks for project_name: plain `nn.Module`s, no Lightning. A config picks one by `class_path`."""

import torch
from torch import nn


class VAE(nn.Module):
    """A variational autoencoder with fully connected encoder and decoder (Kingma and Welling, 2014).

    `encode`: images `(B, C, S, S)` in [0, 1] -> the posterior's mean and log-variance `(B, latent_dim)` each;
    `decode`: latents `(B, latent_dim)` -> pixel logits `(B, C, S, S)` (a Bernoulli per pixel);
    `forward`: images -> logits of their reconstruction through one posterior sample.

    Args:
        channels: image channels (linked from the datamodule).
        image_size: image height and width (linked from the datamodule).
        latent_dim: size of the latent code.
        hidden_size: width of the hidden layer of encoder and decoder.
    """

    def __init__(self, channels: int, image_size: int, latent_dim: int = 16, hidden_size: int = 256) -> None:
        super().__init__()
        self.shape = (channels, image_size, image_size)
        pixels = channels * image_size * image_size
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(pixels, hidden_size), nn.GELU(),
                                     nn.Linear(hidden_size, 2 * latent_dim))  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_size), nn.GELU(), nn.Linear(hidden_size, pixels)
        )
        self.latent_dim = latent_dim

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.encoder(images).chunk(2, dim=-1)
        return mean, log_var

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents).view(-1, *self.shape)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        mean, log_var = self.encode(images)
        latents = mean + torch.randn_like(mean) * (0.5 * log_var).exp()  # the reparameterisation trick
        return self.decode(latents)
