"""Optimiser pieces only the image classifier uses: airbench's fast-learning normalisation group and Muon."""

import torch
from torch import nn

from common.optim import parameter_groups

NORMALIZATION = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


def norm_lr_groups(network: nn.Module, weight_decay: float, norm_lr: float | None = None) -> list[dict]:
    """`common.optim.parameter_groups`, with the normalisation layers' parameters as a third group at `norm_lr`
    when given (airbench trains BatchNorm shifts 64x faster than the convolutions)."""
    if norm_lr is None:
        return parameter_groups(network, weight_decay)
    norm = {id(p) for m in network.modules() if isinstance(m, NORMALIZATION) for p in m.parameters()}
    rest = [p for p in network.parameters() if id(p) not in norm and p.requires_grad]
    norms = [p for p in network.parameters() if id(p) in norm and p.requires_grad]
    groups = parameter_groups(nn.ParameterList(rest), weight_decay)
    return [*groups, {"params": norms, "weight_decay": 0.0, "lr": norm_lr}]


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
