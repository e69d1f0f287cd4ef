"""Optimiser pieces the projects share: weight-decay parameter groups and a per-step warm-up schedule."""

import math
from functools import partial
from typing import Literal

import torch
from torch import nn

Schedule = Literal["onecycle", "cosine", "constant"]
NORMALIZATION = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


def parameter_groups(network: nn.Module, weight_decay: float, norm_lr: float | None = None) -> list[dict]:
    """Trainable parameters split so that weight decay skips biases and normalisation weights (ndim <= 1).

    With `norm_lr`, the normalisation layers' parameters form a third group with that learning rate (airbench
    trains BatchNorm shifts 64x faster than the convolutions).
    """
    norm = {id(p) for m in network.modules() if isinstance(m, NORMALIZATION) for p in m.parameters()}
    decay, no_decay, norms = [], [], []
    for parameter in network.parameters():
        if not parameter.requires_grad:
            continue
        if norm_lr is not None and id(parameter) in norm:
            norms.append(parameter)
        else:
            (decay if parameter.ndim > 1 else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if norm_lr is not None:
        groups.append({"params": norms, "weight_decay": 0.0, "lr": norm_lr})
    return groups


def learning_rate_factor(step: int, total: int, warmup: int, decay: Schedule) -> float:
    """Multiplier on the peak learning rate: linear warm-up, then a linear (`onecycle`) or cosine decay to 0."""
    if decay == "constant":
        return 1.0
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 1 - progress if decay == "onecycle" else 0.5 * (1 + math.cos(math.pi * progress))


def warmup_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float, decay: Schedule
):
    """The `configure_optimizers` return value for `optimizer` under a per-step warm-up-then-decay schedule."""
    warmup = max(1, int(total_steps * warmup_fraction))
    shape = partial(learning_rate_factor, total=total_steps, warmup=warmup, decay=decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, shape)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
