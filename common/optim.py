"""Optimiser pieces the projects share: weight-decay parameter groups and a per-step warm-up schedule."""

from typing import Literal

import torch
from torch import nn

Schedule = Literal["onecycle", "cosine", "constant"]


def parameter_groups(network: nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters split so that weight decay skips biases and normalisation weights (ndim <= 1)."""
    decay, no_decay = [], []
    for parameter in network.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim > 1 else no_decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float, schedule: Schedule
):
    """The `configure_optimizers` return value for `optimizer` under a per-step schedule: a linear warm-up over
    `warmup_fraction` of `total_steps` (from 1/warmup of the peak to the peak), then a linear (`onecycle`) or
    cosine decay to 0 at `total_steps`; `constant` keeps the peak throughout, without warm-up."""
    lr_scheduler = torch.optim.lr_scheduler
    if schedule == "constant":
        scheduler = lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    else:
        warmup = max(1, int(total_steps * warmup_fraction))
        decay_steps = max(1, total_steps - warmup)
        warm = lr_scheduler.LinearLR(optimizer, start_factor=1 / warmup, total_iters=max(1, warmup - 1))
        if schedule == "onecycle":
            decay = lr_scheduler.LinearLR(
                optimizer, start_factor=1.0, end_factor=0.0, total_iters=decay_steps
            )
        else:
            decay = lr_scheduler.CosineAnnealingLR(optimizer, T_max=decay_steps)
        scheduler = lr_scheduler.SequentialLR(optimizer, [warm, decay], milestones=[warmup])
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
