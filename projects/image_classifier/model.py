"""Image classification networks: a CIFAR-style ResNet-18 and a compact speed-run CNN.

Both take `(in_channels, num_classes)` first, expose `features(x) -> (B, D)` and `head`, and expect
normalised float images `(B, C, H, W)`.
"""

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for small images (He et al., 2016): a 3x3 stem without max-pool, four stages of two blocks.

    Args:
        in_channels: image channels.
        num_classes: output classes.
        width: channels of the first stage; the later stages double it.
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        stages, channels = [], width
        for index, out_channels in enumerate([width, 2 * width, 4 * width, 8 * width]):
            stride = 1 if index == 0 else 2
            stages += [BasicBlock(channels, out_channels, stride), BasicBlock(out_channels, out_channels, 1)]
            channels = out_channels
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(channels, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x)).mean(dim=(2, 3))  # (B, 8 * width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def conv_bn_gelu(
    in_channels: int, out_channels: int, momentum: float, identity_init: bool, learn_norm_scale: bool
) -> list[nn.Module]:
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
    if identity_init:  # the first in_channels filters pass their input through (airbench's dirac init)
        with torch.no_grad():
            nn.init.dirac_(conv.weight[: min(in_channels, out_channels)])
    norm = nn.BatchNorm2d(out_channels, momentum=momentum)
    norm.weight.requires_grad_(learn_norm_scale)
    return [conv, norm, nn.GELU()]


class CompactConvNet(nn.Module):
    """A small fast CNN in the style of the CIFAR-10 speed runs (Jordan's airbench).

    A frozen 2x2 patch-whitening convolution (initialised from training images by `init_whitening`),
    then three blocks of conv -> max-pool -> BN-GELU -> conv-BN-GELU, a global max-pool and a linear head
    whose logits are scaled down (`logit_scale`), which trains faster with large learning rates.

    Args:
        in_channels: image channels.
        num_classes: output classes.
        widths: output channels of the three blocks.
        logit_scale: multiplier on the head's output.
        batchnorm_momentum: weight of each batch in the BatchNorm running statistics (PyTorch's convention;
            airbench's 0.6 is 0.4 here: short runs must track fast-moving weights).
        identity_init: start each convolution as the identity where its shape allows (airbench).
        learn_norm_scale: train BatchNorm scales; airbench fixes them at 1 and trains only the shifts, with
            a large learning rate (`ImageClassifier.norm_lr_scale`).
        pool_ceil_mode: round odd feature-map sizes up when pooling, so the 7x7 whitened digits keep a pixel
            to the end. False is airbench's choice (31 -> 15 -> 7 -> 3 for CIFAR-10), with about 18% fewer
            multiply-adds.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: tuple[int, int, int] = (64, 256, 256),
        logit_scale: float = 1 / 9,
        batchnorm_momentum: float = 0.1,
        identity_init: bool = False,
        learn_norm_scale: bool = True,
        pool_ceil_mode: bool = True,
    ) -> None:
        super().__init__()
        whiten_channels = 2 * in_channels * 2 * 2  # every whitened 2x2 patch direction, with both signs
        self.whiten = nn.Conv2d(in_channels, whiten_channels, kernel_size=2, bias=True)
        self.whiten.weight.requires_grad_(False)
        blocks, channels = [], whiten_channels
        for width in widths:
            first, second = (
                conv_bn_gelu(n, width, batchnorm_momentum, identity_init, learn_norm_scale)
                for n in (channels, width)
            )
            blocks.append(
                nn.Sequential(first[0], nn.MaxPool2d(2, ceil_mode=pool_ceil_mode), *first[1:], *second)
            )
            channels = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, num_classes, bias=False)
        self.logit_scale = logit_scale

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the first layer to whiten 2x2 patches of `images` `(N, C, H, W)` (normalised training images)."""
        patches = images.unfold(2, 2, 1).unfold(3, 2, 1)  # (N, C, H-1, W-1, 2, 2)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, images.shape[1] * 4).double()
        patches = patches - patches.mean(dim=0)
        eigenvalues, eigenvectors = torch.linalg.eigh(patches.T @ patches / len(patches))
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).view(-1, images.shape[1], 2, 2)
        self.whiten.weight.copy_(torch.cat([filters, -filters]).to(self.whiten.weight))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.whiten(x)).amax(dim=(2, 3))  # (B, widths[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit_scale * self.head(self.features(x))
