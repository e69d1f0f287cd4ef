"""The judge: a small CNN trained on the GAN's own labelled training images when no classifier checkpoint is given,
so that every run, the offline quickstart included, ends with the classifier sample-quality figures.

It is trained for a fixed number of steps from a fixed seed, off the global random state (a resumed run draws what
it would have), and kept in the data cache keyed by the training images, so later runs and `test` load it.
"""

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from common.files import atomic_path, load_tensors


class Judge(nn.Module):
    """Three conv-BN-ReLU-pool stages and a linear head; `embed` gives the pooled features the Frechet distance uses.

    The interface `ClassifierSampleQuality` needs: float images in [0, 1] `(N, C, S, S)`, `input_size`,
    `class_names`."""

    def __init__(self, channels: int, input_size: int, class_names: list[str], width: int = 16) -> None:
        super().__init__()
        self.input_size, self.class_names = input_size, list(class_names)
        layers, widths = [], [channels, width, 2 * width, 4 * width]
        for inputs, outputs in zip(widths, widths[1:], strict=False):
            layers += [nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU(),
                       nn.MaxPool2d(2, ceil_mode=True)]  # fmt: skip
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(widths[-1], len(class_names))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images * 2 - 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(images))


def fit_judge(
    images: torch.Tensor, labels: torch.Tensor, class_names: list[str], steps: int, seed: int = 0
) -> Judge:
    """A `Judge` trained on uint8 `images` `(N, C, S, S)` for `steps` Adam steps of 64 images, frozen, in eval mode."""
    with torch.random.fork_rng(devices=[]):  # the run's own random state is left as it was
        torch.manual_seed(seed)
        judge = Judge(images.shape[1], images.shape[-1], class_names)
        optimizer = torch.optim.Adam(judge.parameters(), lr=3e-3)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
        for _ in range(steps):
            batch = torch.randint(len(labels), (min(64, len(labels)),))
            loss = F.cross_entropy(judge(images[batch].float() / 255), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return judge.eval().requires_grad_(False)


@torch.no_grad()
def accuracy(judge: Judge, images: torch.Tensor, labels: torch.Tensor) -> float:
    predictions = torch.cat([judge(chunk.float() / 255).argmax(1) for chunk in images.split(1000)])
    return (predictions == labels).float().mean().item()


def cached_judge(
    images: torch.Tensor, labels: torch.Tensor, class_names: list[str], steps: int, cache_dir: Path
) -> Judge:
    """`fit_judge` once per training set: later calls with the same images, labels and steps load it."""
    key = hashlib.sha1(images.numpy().tobytes() + labels.numpy().tobytes() + f"{class_names}{steps}".encode())
    path = Path(cache_dir) / f"judge-{key.hexdigest()[:16]}.pt"
    if path.exists():
        with torch.random.fork_rng(devices=[]):  # building it draws initial weights
            judge = Judge(images.shape[1], images.shape[-1], class_names)
        judge.load_state_dict(load_tensors(path, "judge", "delete it to train the judge again"))
        return judge.eval().requires_grad_(False)
    judge = fit_judge(images, labels, class_names, steps)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as partial:  # DDP ranks may write it at the same time
        torch.save(judge.state_dict(), partial)
    return judge
