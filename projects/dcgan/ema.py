"""An exponential moving average of the generator's weights, an extra of the MNIST recipe: samples come from the
average, which wanders less than the trained generator between batches."""

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


class GeneratorEMA(AveragedModel):
    """`torch.optim.swa_utils.AveragedModel` of `generator` with TensorFlow's warm-up: after n updates the decay
    is min(`decay`, (1 + n) / (10 + n)), so early on the average does not cling to the random init (0.999 takes
    full effect after 8,990 updates). The first update copies the weights."""

    def __init__(self, generator: nn.Module, decay: float) -> None:
        def average(averaged: list, current: list, updates: torch.Tensor) -> None:
            n = int(updates)
            rate = 1 - min(decay, (1 + n) / (10 + n))
            for average_weight, weight in zip(averaged, current, strict=True):
                average_weight.lerp_(weight, rate)

        super().__init__(generator, multi_avg_fn=average, use_buffers=False)
        self.requires_grad_(False)

    @torch.no_grad()
    def refresh_statistics(self, latent_batches: list[torch.Tensor]) -> None:
        """Measure the batch-norm statistics of the averaged generator on its own outputs for `latent_batches`
        (BigGAN's "standing statistics"): the trained generator's running statistics do not fit its average."""
        norms = [module for module in self.modules() if isinstance(module, nn.BatchNorm2d)]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a plain average over the batches
        self.train()
        for latents in latent_batches:
            self(latents)
        for norm in norms:
            norm.momentum = 0.1
        self.eval()
