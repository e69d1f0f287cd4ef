"""Real images for the GAN: held in memory as uint8 `(N, C, S, S)`, scaled to [-1, 1] on the training device.

Sources: scikit-learn's bundled 8x8 digits upsampled (offline default), MNIST (the four IDX files),
CIFAR-10 (torchvision's files, or a download when asked) and any ImageFolder tree.
Validation yields two real sets for the sample-quality metrics: held-out images (dataloader 0) and a
fixed subset of training images as the reference (dataloader 1).
"""

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from PIL import Image
from torch.utils.data import DataLoader

from common.data import tensor_loader
from common.distributed import evaluation_loader
from common.errors import UserInputError, require_at_least
from common.images import (
    CIFAR10_CLASSES,
    DIGIT_CLASSES,
    cached,
    load_cifar10,
    load_digits,
    load_image_folder,
    load_mnist,
    require_folder,
)
from projects.dcgan.model import architecture

Split = tuple[torch.Tensor, torch.Tensor]  # images (N, C, S, S) uint8, labels (N,) int64


def resize_uint8(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Resize uint8 images `(N, C, H, W)` to `(N, C, size, size)` (bilinear, antialiased when shrinking)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    resized = [
        F.interpolate(part.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        for part in images.split(chunk)
    ]
    return torch.cat(resized).round_().clamp_(0, 255).to(torch.uint8)


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey to RGB by repetition, RGB to grey by luminance."""
    if images.shape[1] == channels:
        return images
    if channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images.float() * weights).sum(dim=1, keepdim=True).round_().to(torch.uint8)


class GanImageDataModule(LightningDataModule):
    """Image sets for training and evaluating a GAN.

    Args:
        dataset: `digits` (bundled with scikit-learn, offline), `mnist`, `cifar10` or `folder`.
        data_dir: folder with the MNIST IDX files (.gz or not), CIFAR-10 root (torchvision layout), or an
            ImageFolder root (`<class>/<image>`, or `train/<class>/` with an optional `test/<class>/`).
        download: download MNIST or CIFAR-10 into `cache_dir` when the files are missing (needs network).
        image_size: square size the images are resized to: 28, 32 or 64 (the DCGAN architectures).
        channels: image channels; default: 1 for digits and MNIST, 3 otherwise.
        cache_dir: where downloads and the decoded-image cache go.
        batch_size: training batch size.
        eval_batch_size: batch size of the validation sets.
        quality_samples: images in each validation set (held-out and training reference); the generated
            set matches the held-out one in size. Kept small: validation runs every epoch.
        test_samples: the same for `test` (10,000 is the usual count for FID).
        train_subset: train on only this many images (fast experiments); default: all.
        heldout_fraction: share of the images held out when the source has no test split.
        num_workers: DataLoader worker processes (batches are slices of an in-memory tensor, so 0 is fine).
        predict_samples: how many images `predict` generates.
        split_seed: seed of the held-out split and the reference subset.
    """

    def __init__(
        self,
        dataset: Literal["digits", "mnist", "cifar10", "folder"] = "digits",
        data_dir: str | None = None,
        download: bool = False,
        image_size: int = 32,
        channels: int | None = None,
        cache_dir: str = ".cache/dcgan",
        batch_size: int = 64,
        eval_batch_size: int = 500,
        quality_samples: int = 2000,
        test_samples: int = 10000,
        train_subset: int | None = None,
        heldout_fraction: float = 0.2,
        num_workers: int = 0,
        predict_samples: int = 64,
        split_seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        architecture(image_size)  # fail now, with the supported sizes, rather than after loading the data
        require_at_least(1, batch_size=batch_size, eval_batch_size=eval_batch_size, quality_samples=quality_samples,
                         test_samples=test_samples, train_subset=train_subset, predict_samples=predict_samples)  # fmt: skip
        require_at_least(0, num_workers=num_workers)
        if dataset == "folder" and data_dir is None:
            raise UserInputError("dataset 'folder' needs --data.data_dir pointing at an ImageFolder tree")
        self.root = Path(data_dir).expanduser() if data_dir else None
        self.splits: dict[str, Split] = {}
        self.class_names: list[str] = []  # the labels' names, for the judge classifier (`judge.py`)

    @property
    def image_size(self) -> int:
        return self.hparams.image_size

    @property
    def image_channels(self) -> int:
        if self.hparams.channels is not None:
            return self.hparams.channels
        return 1 if self.hparams.dataset in ("digits", "mnist") else 3

    def setup(self, stage: str) -> None:
        if stage == "predict" or self.splits:
            return
        train, heldout = self._load()
        prepare = lambda images: resize_uint8(match_channels(images, self.image_channels), self.image_size)  # noqa: E731
        train, heldout = (prepare(train[0]), train[1]), (prepare(heldout[0]), heldout[1])
        generator = torch.Generator().manual_seed(self.hparams.split_seed)
        order = torch.randperm(len(train[1]), generator=generator)
        # A random subset (folder images come sorted by class), and only as many reference images as are used.
        subset = order[: self.hparams.train_subset] if self.hparams.train_subset else slice(None)
        reference = order[: max(self.hparams.quality_samples, self.hparams.test_samples)]
        self.splits = {
            "train": (train[0][subset], train[1][subset]),
            "heldout": heldout,
            "reference": (train[0][reference], train[1][reference]),
        }

    # ---- sources: each returns (train, held-out) uint8 splits at their native size ----

    def _load(self) -> tuple[Split, Split]:
        return {
            "digits": self._digits,
            "mnist": self._mnist,
            "cifar10": self._cifar10,
            "folder": self._folder,
        }[self.hparams.dataset]()

    def _hold_out(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[Split, Split]:
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.hparams.split_seed))
        cut = int(len(order) * self.hparams.heldout_fraction)
        if cut < 2:
            raise UserInputError(
                f"only {len(labels)} images: too few to hold out a validation set; add images"
            )
        return (images[order[cut:]], labels[order[cut:]]), (images[order[:cut]], labels[order[:cut]])

    def _digits(self) -> tuple[Split, Split]:
        self.class_names = DIGIT_CLASSES
        return self._hold_out(*load_digits())  # 1797 images, 8x8

    def _mnist(self) -> tuple[Split, Split]:
        self.class_names = DIGIT_CLASSES
        cache = Path(self.hparams.cache_dir)
        if self.root is None and self.hparams.download:
            from torchvision.datasets import MNIST

            for train in (True, False):  # the IDX files land in <cache_dir>/MNIST/raw
                MNIST(str(cache), train=train, download=True)
        root = self.root or cache / "MNIST" / "raw"
        splits = cached(cache, "mnist", root, (), lambda: load_mnist(root))
        return splits["train"], splits["test"]

    def _cifar10(self) -> tuple[Split, Split]:
        self.class_names = CIFAR10_CLASSES
        splits = load_cifar10(self.root or Path(self.hparams.cache_dir), self.hparams.download)
        return splits["train"], splits["test"]

    def _folder(self) -> tuple[Split, Split]:
        require_folder(self.root, fix="expected <data_dir>/<class>/<image>")
        test_root = self.root / "test"
        train_root = self.root / "train" if (self.root / "train").is_dir() else self.root
        # Sorted folder names, as ImageFolder orders its classes.
        self.class_names = sorted(path.name for path in train_root.iterdir() if path.is_dir())

        def decode() -> dict[str, Split]:
            roots = {"train": train_root}
            if test_root.is_dir():
                roots["test"] = test_root
            # PIL's default bicubic resize, as this project decoded folders before the shared loader.
            resample = Image.Resampling.BICUBIC
            return {
                name: load_image_folder(root, self.image_channels, self.image_size, resample)[:2]
                for name, root in roots.items()
            }

        settings = (self.image_channels, self.image_size)
        splits = cached(Path(self.hparams.cache_dir), "folder", self.root, settings, decode)
        return (splits["train"], splits["test"]) if "test" in splits else self._hold_out(*splits["train"])

    # ---- loaders and the on-device transform ----

    def _loader(self, split: str, shuffle: bool, count: int | None = None) -> DataLoader:
        images, labels = self.splits[split]
        images, labels = images[:count], labels[:count]
        batch_size = self.hparams.batch_size if split == "train" else self.hparams.eval_batch_size
        loader = tensor_loader(
            images, labels, batch_size=batch_size, shuffle=shuffle, num_workers=self.hparams.num_workers
        )
        return loader if shuffle else evaluation_loader(loader, self.trainer)  # under DDP: each image once

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> list[DataLoader]:
        count = self.hparams.quality_samples
        return [self._loader("heldout", False, count), self._loader("reference", False, count)]

    def test_dataloader(self) -> list[DataLoader]:
        count = self.hparams.test_samples
        return [self._loader("heldout", False, count), self._loader("reference", False, count)]

    def predict_dataloader(self) -> DataLoader:
        # Generation needs no data: each batch is the indices of the samples to generate.
        return DataLoader(torch.arange(self.hparams.predict_samples), batch_size=self.hparams.eval_batch_size)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if isinstance(batch, torch.Tensor):  # predict: sample indices
            return batch
        images, labels = batch
        return images.float().div_(127.5).sub_(1), labels  # (B, C, S, S) in [-1, 1]
