"""Image datasets decoded once into a uint8 tensor cache, with augmentation on batched tensors.

Sources: scikit-learn's bundled 8x8 digits (offline default), CIFAR-10 (torchvision's files), MNIST (IDX
files) and any ImageFolder tree `train/<class>/*`, optional `test/<class>/*`.
"""

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from common.data import tensor_loader
from common.distributed import evaluation_loader
from common.errors import UserInputError, require_at_least
from common.images import (
    CIFAR10_CLASSES,
    DIGIT_CLASSES,
    cached,
    list_image_folder,
    list_images,
    load_cifar10,
    load_digits,
    load_image,
    load_image_folder,
    load_mnist,
)

Split = tuple[torch.Tensor, torch.Tensor]  # images (N, C, H, W) uint8, labels (N,) int64


def random_crop(images: torch.Tensor, padding: int) -> torch.Tensor:
    """Pad each image by `padding` (reflect) and crop back at an independent random offset, all at once."""
    batch, channels, height, width = images.shape
    padded = F.pad(images, (padding,) * 4, mode="reflect")
    device = images.device
    top = torch.randint(0, 2 * padding + 1, (batch, 1), device=device) + torch.arange(height, device=device)
    left = torch.randint(0, 2 * padding + 1, (batch, 1), device=device) + torch.arange(width, device=device)
    return padded[
        torch.arange(batch, device=device)[:, None, None, None],
        torch.arange(channels, device=device)[None, :, None, None],
        top[:, None, :, None],
        left[:, None, None, :],
    ]


def random_flip(images: torch.Tensor) -> torch.Tensor:
    flip = torch.rand(images.shape[0], device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


class PredictFolder(Dataset):
    """Every image file below a folder, decoded like the training images; yields `(image, path)`."""

    def __init__(self, root: Path, channels: int, size: int) -> None:
        self.files = list_images(root) if root.is_dir() else []
        if not self.files:
            raise UserInputError(
                f"no images found under predict_dir {root}; point it at a folder of .png/.jpg files"
            )
        self.channels, self.size = channels, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        return load_image(self.files[index], self.channels, self.size), str(self.files[index])


class ImageDataModule(LightningDataModule):
    """Image classification data as uint8 tensors; batches leave the loader as uint8 and are converted,
    augmented (random crop + flip, training only) and scaled to [0, 1] on the device they train on.

    Args:
        dataset: `digits` (bundled with scikit-learn, offline), `cifar10`, `mnist` or `folder`.
        data_dir: CIFAR-10 root (torchvision layout), folder of MNIST IDX files, or ImageFolder root.
        download: download CIFAR-10 into `data_dir` when it is missing (needs network).
        image_size: resize folder images to this square size; default: the first image's size.
        cache_dir: where decoded uint8 tensors are cached, so later runs never decode again.
        val_fraction: share of the training images held out for validation; 0 validates on the test split.
        batch_size: training batch size.
        eval_batch_size: validation/test/predict batch size.
        crop_padding: pixels of reflect padding for random-crop augmentation; 0 disables it.
        flip: random horizontal flips when training (turn off for digits and other non-symmetric images).
        alternating_flip: with `flip`, mirror each training image on every other epoch instead of at random,
            starting from a random half of the images (airbench's alternating flip): every two consecutive
            epochs show each image both ways.
        num_workers: DataLoader worker processes (batches are slices of an in-memory tensor, so 0 is fine).
        predict_dir: folder of images to classify with `predict`.
        split_seed: seed of the train/validation split.
    """

    def __init__(
        self,
        dataset: Literal["digits", "cifar10", "mnist", "folder"] = "digits",
        data_dir: str | None = None,
        download: bool = False,
        image_size: int | None = None,
        cache_dir: str = ".cache/images",
        val_fraction: float = 0.1,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        crop_padding: int = 4,
        flip: bool = True,
        alternating_flip: bool = False,
        num_workers: int = 0,
        predict_dir: str | None = None,
        split_seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if dataset in ("cifar10", "mnist", "folder") and data_dir is None:
            raise UserInputError(f"dataset '{dataset}' needs --data.data_dir pointing at its files")
        require_at_least(1, batch_size=batch_size, eval_batch_size=eval_batch_size, image_size=image_size)
        require_at_least(0, num_workers=num_workers, crop_padding=crop_padding)
        self.root = Path(data_dir).expanduser() if data_dir else None
        self.image_size = image_size
        self.splits: dict[str, Split] = {}
        self.flip_first: torch.Tensor | None = None  # (N,) bool: which training images epoch 0 mirrors

    @property
    def class_names(self) -> list[str]:
        if self.hparams.dataset == "cifar10":
            return CIFAR10_CLASSES
        if self.hparams.dataset == "folder":
            return list_image_folder(self._folder_split("train"))[2]
        return DIGIT_CLASSES

    @property
    def alternating_flip(self) -> bool:
        return self.hparams.flip and self.hparams.alternating_flip

    @property
    def in_channels(self) -> int:
        return 3 if self.hparams.dataset in ("cifar10", "folder") else 1

    def setup(self, stage: str) -> None:
        if stage == "predict" or self.splits:
            return
        data = self._load_cached()
        self.image_size = data["train"][0].shape[-1]
        train, test = data["train"], data.get("test")
        if self.hparams.val_fraction > 0:
            generator = torch.Generator().manual_seed(self.hparams.split_seed)
            order = torch.randperm(len(train[1]), generator=generator)
            cut = int(len(order) * self.hparams.val_fraction)
            val, train = (
                (train[0][order[:cut]], train[1][order[:cut]]),
                (train[0][order[cut:]], train[1][order[cut:]]),
            )
        elif test is None:
            raise UserInputError(
                f"{self.root} has no test/ folder to validate on; set --data.val_fraction above 0"
            )
        else:
            val = test  # speed-run convention: train on every training image, validate on the test split
        # A folder without a test tree is evaluated on its held-out validation split.
        self.splits = {"train": train, "val": val, "test": val if test is None else test}
        if self.alternating_flip:
            self.flip_first = torch.rand(len(train[1])) < 0.5  # seeded by the run's seed, like every draw

    def channel_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std of the training images, in [0, 1] units."""
        images = self.splits["train"][0].float().div_(255)
        return images.mean(dim=(0, 2, 3)), images.std(dim=(0, 2, 3))

    # ---- decoding and the tensor cache ----

    def _load_cached(self) -> dict[str, Split]:
        """Decoded splits from the cache, decoding the source only when it changed or was never cached."""
        settings = (self.image_size,)
        return cached(Path(self.hparams.cache_dir), self.hparams.dataset, self.root, settings, self._decode)

    def _decode(self) -> dict[str, Split]:
        if self.hparams.dataset == "cifar10":
            return load_cifar10(self.root, self.hparams.download)
        if self.hparams.dataset == "mnist":
            return load_mnist(self.root)
        if self.hparams.dataset == "folder":
            return self._decode_folder()
        images, labels = load_digits()  # (1797, 1, 8, 8)
        # A fixed 20% test split; the validation split is carved from the rest in `setup`.
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
        cut = len(order) // 5
        return {
            "test": (images[order[:cut]], labels[order[:cut]]),
            "train": (images[order[cut:]], labels[order[cut:]]),
        }

    def _folder_split(self, name: str) -> Path:
        """`<root>/<name>` when it exists; a root without `train/` is itself the training tree."""
        if not self.root.is_dir():
            raise UserInputError(
                f"data_dir {self.root} is not a folder; expected <data_dir>/train/<class>/<image>"
            )
        split = self.root / name
        return split if split.is_dir() else (self.root if name == "train" else None)

    def _decode_folder(self) -> dict[str, Split]:
        splits, size = {}, self.image_size
        for name in ("train", "test"):  # train first: its first image sets the size when none is configured
            root = self._folder_split(name)
            if root is None:
                continue
            # `loader` looked up here, so a test can replace this module's `load_image` to catch decoding.
            images, labels, classes = load_image_folder(root, 3, size, loader=load_image)
            if name == "test" and classes != self.class_names:
                raise UserInputError(f"class folders of {root} differ from the training ones: {classes}")
            size = images.shape[-1]
            splits[name] = (images, labels)
        return splits

    # ---- loaders and the on-device transform ----

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        images, labels = self.splits[split]
        batch_size = self.hparams.batch_size if split == "train" else self.hparams.eval_batch_size
        tensors = (images, labels)
        if split == "train" and self.alternating_flip:
            tensors += (self.flip_first,)  # each batch carries its images' flip pattern
        loader = tensor_loader(
            *tensors, batch_size=batch_size, shuffle=shuffle, num_workers=self.hparams.num_workers
        )
        return loader if shuffle else evaluation_loader(loader, self.trainer)  # under DDP: each image once

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        if self.hparams.predict_dir is None:
            raise UserInputError("predict needs --data.predict_dir pointing at a folder of images")
        # Built here, not in `setup`, so `image_size` is the one restored from the checkpoint.
        dataset = PredictFolder(Path(self.hparams.predict_dir), self.in_channels, self.image_size)
        return DataLoader(
            dataset, batch_size=self.hparams.eval_batch_size, num_workers=self.hparams.num_workers
        )

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, rest = batch[0], batch[1]
        images = images.float().div_(255)  # (B, C, H, W) in [0, 1]
        if self.trainer is not None and self.trainer.training:
            if self.hparams.crop_padding > 0:
                images = random_crop(images, self.hparams.crop_padding)
            if self.alternating_flip:
                flip = batch[2] ^ bool(self.trainer.current_epoch % 2)
                images = torch.where(flip[:, None, None, None], images.flip(-1), images)
            elif self.hparams.flip:
                images = random_flip(images)
        return images, rest

    def state_dict(self) -> dict:
        return {"image_size": self.image_size}

    def load_state_dict(self, state_dict: dict) -> None:
        self.image_size = state_dict["image_size"]
