"""The adversarial losses of the paper (binary cross-entropy, non-saturating generator) and two extras: the hinge
loss and the R1 gradient penalty."""

import torch
import torch.nn.functional as F


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    # Binary cross-entropy: real -> 1, fake -> 0.
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "hinge":
        return -fake_logits.mean()
    # Non-saturating: maximise log D(G(z)) rather than minimise log(1 - D(G(z))), which has no gradient early on.
    return F.softplus(-fake_logits).mean()


def r1_penalty(real: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al., 2018): the mean squared norm of D's gradient at real images `real` (which must
    require grad), kept differentiable so that D learns to be flat around the data."""
    (gradients,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return gradients.float().pow(2).flatten(1).sum(dim=1).mean()
