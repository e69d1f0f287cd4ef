"""Optimiser pieces the projects share: weight-decay parameter groups, a per-step warm-up schedule, and Muon."""

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


def learning_rate_factor(step: int, total: int, warmup: int, decay: Schedule, hold: float = 0) -> float:
    """Multiplier on the peak learning rate: linear warm-up, the peak until step `hold` (if later), then a linear
    (`onecycle`) or cosine decay to 0 at `total`."""
    if decay == "constant":
        return 1.0
    if step < warmup:
        return (step + 1) / warmup
    start = max(warmup, hold)
    if step < start:
        return 1.0
    progress = min(1.0, (step - start) / max(1, total - start))
    return 1 - progress if decay == "onecycle" else 0.5 * (1 + math.cos(math.pi * progress))


def warmup_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float, decay: Schedule
):
    """The `configure_optimizers` return value for `optimizer` under a per-step warm-up-then-decay schedule."""
    warmup = max(1, int(total_steps * warmup_fraction))
    shape = partial(learning_rate_factor, total=total_steps, warmup=warmup, decay=decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, shape)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def orthogonalize(matrix: torch.Tensor, steps: int = 3, eps: float = 1e-7) -> torch.Tensor:
    """Approximately `U V^T` of `matrix = U S V^T` (2-D), by Jordan's quintic Newton-Schulz iteration in bf16.

    The coefficients trade exactness for speed: the singular values land near 1 (roughly 0.5-1.5), not on it.
    """
    a, b, c = 3.4445, -4.7750, 2.0315
    x = matrix.bfloat16()
    x = x / (x.norm() + eps)  # every singular value <= 1
    wide = x.shape[0] <= x.shape[1]
    if not wide:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x if wide else x.T).to(matrix.dtype)


class Muon(torch.optim.Optimizer):
    """Muon (Jordan et al., 2024) for the groups marked `muon: True`, Nesterov SGD for the others.

    A Muon group's update is its momentum buffer orthogonalised (each parameter viewed as a matrix with one row
    per output unit, so convolution filters qualify), and each weight is rescaled to Frobenius norm
    sqrt(rows) before the step, as airbench94_muon does for filters followed by BatchNorm, where the scale is
    free. Muon groups therefore take no weight decay. The other groups (biases, norms, the head) follow
    `torch.optim.SGD` with `nesterov=True`, so one optimiser, and one learning-rate schedule, serves a whole
    network.

    Args:
        params: parameter groups; `muon: True` marks the ones to orthogonalise.
        lr: default learning rate of every group.
        momentum: default momentum of every group.
        weight_decay: default (coupled, SGD-style) weight decay of the SGD groups.
        ns_steps: Newton-Schulz iterations per Muon update.
    """

    def __init__(
        self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, ns_steps: int = 3
    ) -> None:
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "muon": False}
        super().__init__(params, defaults)
        self.ns_steps = ns_steps

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            momentum = group["momentum"]
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                gradient = parameter.grad
                if not group["muon"] and group["weight_decay"]:
                    gradient = gradient.add(parameter, alpha=group["weight_decay"])
                state = self.state[parameter]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(parameter)
                buffer = state["momentum_buffer"].mul_(momentum).add_(gradient)
                update = gradient.add(buffer, alpha=momentum)  # Nesterov
                if group["muon"]:
                    rows = len(parameter)
                    parameter.mul_(rows**0.5 / parameter.norm())
                    update = orthogonalize(update.reshape(rows, -1), self.ns_steps).reshape_as(parameter)
                parameter.add_(update, alpha=-group["lr"])
        return loss
