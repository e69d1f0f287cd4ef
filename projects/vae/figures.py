"""What the VAE shows of itself: reconstructions beside their inputs, prior samples, a latent interpolation, and
for a 2-d latent the test set's latent means by class and the decoded manifold."""

import matplotlib.pyplot as plt
import torch
from lightning.pytorch import LightningModule

from common import media


@torch.no_grad()
def log_epoch_figures(module: LightningModule, images: torch.Tensor, count: int) -> None:
    """Prior samples (seeded, so epochs compare), reconstructions (rows of inputs over their reconstructions) and
    the interpolation between the first two `images`' latent means."""
    trainer, network = module.trainer, module.network
    generator = torch.Generator(module.device).manual_seed(0)
    prior = torch.randn(count, network.latent_dim, device=module.device, generator=generator)
    media.log_image_grid(trainer, "val/samples", module(prior))
    shown = images[:8]
    mean, _ = network.encode(shown)
    media.log_image_grid(trainer, "val/reconstructions", torch.cat([shown, module(mean)]), nrow=len(shown))
    if len(images) >= 2:
        weights = torch.linspace(0, 1, 8, device=module.device)[:, None]
        media.log_image_grid(
            trainer, "val/interpolation", module((1 - weights) * mean[0] + weights * mean[1])
        )


@torch.no_grad()
def log_latent_space(
    module: LightningModule, means: torch.Tensor, labels: torch.Tensor, names: list[str]
) -> None:
    """For `latent_dim == 2`: the latent means coloured by class, and images decoded on a grid over [-2.5, 2.5]^2."""
    figure, axis = plt.subplots(figsize=(6, 6))
    points = axis.scatter(means[:, 0], means[:, 1], c=labels, cmap="tab10", s=4)
    axis.legend(points.legend_elements()[0], names, fontsize=7, markerscale=0.8, loc="upper right")
    axis.set(xlabel="z[0]", ylabel="z[1]", title="test latent means by class")
    media.log_figure(module.trainer, "test/latent_space", figure)
    steps = torch.linspace(-2.5, 2.5, 12, device=module.device)
    grid = torch.stack(torch.meshgrid(steps, steps.flip(0), indexing="xy"), dim=-1).view(-1, 2)
    media.log_image_grid(module.trainer, "test/manifold", module(grid), nrow=12)
