"""Real images for the GAN: held in memory as uint8 `(N, C, S, S)`, scaled to [-1, 1] on the training device.

Sources: scikit-learn's bundled 8x8 digits upsampled (offline default), MNIST (the four IDX files),
CIFAR-10 (torchvision's files, or a download when asked) and any ImageFolder tree.
Validation yields two real sets for the sample-quality metrics: held-out images (dataloader 0) and a
fixed subset of training images as the reference (dataloader 1).
"""

import gzip
import shutil
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from PIL import UnidentifiedImageError
from torch.utils.data import DataLoader

from common.data import tensor_loader
from common.distributed import evaluation_loader
from common.errors import UserInputError, require_at_least
from common.files import atomic_path
from projects.dcgan.model import architecture

Split = tuple[torch.Tensor, torch.Tensor]  # images (N, C, S, S) uint8, labels (N,) int64
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


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


def read_image(loader, path: str, mode: str, size: int) -> np.ndarray:
    """One image file through `loader` (ImageFolder's) as uint8 `(size, size[, C])`; a one-line error
    naming a file that is not an image, where PIL would raise from deep inside the list comprehension."""
    try:
        return np.asarray(loader(path).convert(mode).resize((size, size)))
    except (UnidentifiedImageError, OSError) as error:
        raise UserInputError(f"cannot read image {path} ({error}); delete or replace the file") from None


class GanImageDataModule(LightningDataModule):
    """Image sets for training and evaluating a GAN.

    Args:
        dataset: `digits` (bundled with scikit-learn, offline), `mnist`, `cifar10` or `folder`.
        data_dir: folder with the MNIST IDX files (.gz or not), CIFAR-10 root (torchvision layout), or an
            ImageFolder root (`<class>/<image>`, or `train/<class>/` with an optional `test/<class>/`).
        download: download MNIST or CIFAR-10 into `cache_dir` when the files are missing (needs network).
        image_size: square size the images are resized to: 28, 32 or 64 (the DCGAN architectures).
        channels: image channels; default: 1 for digits and MNIST, 3 otherwise.
        cache_dir: where unpacked MNIST files and downloads go.
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
        from sklearn.datasets import load_digits

        digits = load_digits()  # 1797 images, 8x8, values 0..16
        images = torch.from_numpy(digits.images * (255 / 16)).round().to(torch.uint8)[:, None]
        return self._hold_out(images, torch.from_numpy(digits.target).long())

    def _mnist(self) -> tuple[Split, Split]:
        from torchvision.datasets import MNIST

        cache = Path(self.hparams.cache_dir)
        raw = cache / "MNIST" / "raw"
        if self.root is not None:
            self._unpack_mnist(raw)
        try:
            train = MNIST(str(cache), train=True, download=self.hparams.download)
            test = MNIST(str(cache), train=False, download=self.hparams.download)
        except RuntimeError:
            raise UserInputError(
                f"MNIST files not found under {self.root or raw}; point --data.data_dir at the four IDX files "
                "or pass --data.download true when online"
            ) from None
        except (ValueError, IndexError, EOFError, OSError) as error:  # empty or truncated IDX files
            raise UserInputError(
                f"the MNIST files in {raw} are not complete IDX files ({error}); delete {raw} and point "
                "--data.data_dir at good copies (or pass --data.download true)"
            ) from None
        return (train.data[:, None], train.targets), (test.data[:, None], test.targets)

    def _unpack_mnist(self, raw: Path) -> None:
        """Copy the four IDX files from `data_dir` (gunzipping .gz ones) to where torchvision looks."""
        raw.mkdir(parents=True, exist_ok=True)
        for name in MNIST_FILES:
            if (raw / name).exists():
                continue
            if (self.root / name).exists():
                shutil.copyfile(self.root / name, raw / name)
            elif (self.root / f"{name}.gz").exists():
                with (
                    gzip.open(self.root / f"{name}.gz", "rb") as source,
                    atomic_path(raw / name) as partial,
                    open(partial, "wb") as target,
                ):
                    shutil.copyfileobj(source, target)

    def _cifar10(self) -> tuple[Split, Split]:
        from torchvision.datasets import CIFAR10

        root = str(self.root or Path(self.hparams.cache_dir))
        try:
            train = CIFAR10(root, train=True, download=self.hparams.download)
            test = CIFAR10(root, train=False, download=self.hparams.download)
        except RuntimeError:
            raise UserInputError(
                f"CIFAR-10 not found under {root}; pass --data.download true when online, or use "
                "--data.dataset folder with --data.data_dir pointing at a train/<class>/ image tree"
            ) from None
        to_tensor = lambda data: torch.from_numpy(data.data).permute(0, 3, 1, 2).contiguous()  # noqa: E731
        return (to_tensor(train), torch.tensor(train.targets)), (to_tensor(test), torch.tensor(test.targets))

    def _folder(self) -> tuple[Split, Split]:
        from torchvision.datasets import ImageFolder

        if not self.root.is_dir():
            raise UserInputError(f"data_dir {self.root} is not a folder; expected <data_dir>/<class>/<image>")
        train_root = self.root / "train" if (self.root / "train").is_dir() else self.root

        def read(root: Path) -> Split:
            try:
                folder = ImageFolder(str(root))
            except (FileNotFoundError, RuntimeError) as error:
                raise UserInputError(f"cannot read image folder {root}: {error}") from None
            mode = "L" if self.image_channels == 1 else "RGB"
            size = self.image_size
            images = [read_image(folder.loader, path, mode, size) for path, _ in folder.samples]
            images = (
                torch.from_numpy(np.stack(images)).reshape(len(images), size, size, -1).permute(0, 3, 1, 2)
            )
            return images.contiguous(), torch.tensor(folder.targets)

        train = read(train_root)
        if (self.root / "test").is_dir():
            return train, read(self.root / "test")
        return self._hold_out(*train)

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
