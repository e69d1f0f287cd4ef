"""`VaeDataModule`: images in [0, 1] from the shared image loader (`common.images`): scikit-learn's 8x8
digits offline, MNIST from its IDX files, CIFAR-10, or any folder of images; binarised for a Bernoulli likelihood
(dynamically: a new draw of every training pixel each time it is seen, a fixed draw for validation and test).

Swap `read_images` for your own source and the rest keeps working: it only needs uint8 images `(N, C, S, S)` and
int64 labels `(N,)` (labels are carried along, not used by the loss) for a train and a test split.
"""

from pathlib import Path
from typing import Literal

import torch
from lightning.pytorch import LightningDataModule

from common.data import resolve_path, tensor_loader
from common.errors import UserInputError, require_at_least
from common.images import (
    DIGIT_CLASSES,
    Split,
    cached,
    list_image_folder,
    list_images,
    load_cifar10,
    load_digits,
    load_image_folder,
    load_images,
    load_mnist,
)

BINARISATION_SEED = 0  # the one draw of the validation and test pixels, the same for every run


class VaeDataModule(LightningDataModule):
    """Images as float tensors in [0, 1] `(B, C, S, S)` with their labels.

    Args:
        dataset: `digits` (bundled with scikit-learn, offline), `mnist`, `cifar10` or `folder`.
        data_dir: folder of the MNIST IDX files, CIFAR-10's root (torchvision layout), or an image tree
            `<data_dir>/<class>/<image>` (`$DATA_ROOT/...` is expanded).
        binarize: each pixel a Bernoulli draw of its intensity, for the `bernoulli` likelihood (binarised MNIST):
            drawn anew for every training batch, once (a fixed seed) for validation and test.
        channels: channels to decode folder images to (1 grey, 3 colour).
        resize_to: size to resize folder images to; default: the first image's width.
        cache_dir: where decoded folder images are cached, so later runs never decode again.
        val_fraction: share of the training images held out for validation.
        test_fraction: share of the images held out for testing where the source has no test split.
        predict_samples: how many images `predict` samples from the model (without `predict_dir`).
        predict_dir: a folder of images whose latent means `predict` writes (resized to the training size).
        batch_size: training batch size.
        eval_batch_size: validation and test batch size.
        num_workers: DataLoader worker processes (batches are slices of in-memory tensors, so 0 is fine).
        split_seed: seed of the splits.
    """

    def __init__(
        self,
        dataset: Literal["digits", "mnist", "cifar10", "folder"] = "digits",
        data_dir: str | None = None,
        binarize: bool = False,
        channels: int = 1,
        resize_to: int | None = None,
        cache_dir: str = ".cache/images",
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        predict_samples: int = 64,
        predict_dir: str | None = None,
        batch_size: int = 64,
        eval_batch_size: int = 512,
        num_workers: int = 0,
        split_seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        require_at_least(1, batch_size=batch_size, eval_batch_size=eval_batch_size, predict_samples=predict_samples,
                         resize_to=resize_to)  # fmt: skip
        require_at_least(0, num_workers=num_workers)
        if dataset != "digits" and data_dir is None:
            raise UserInputError(f"dataset '{dataset}' needs --data.data_dir pointing at its files")
        self.root = resolve_path(data_dir, "data.data_dir", kind="folder")
        self.predict_root = resolve_path(predict_dir, "data.predict_dir", kind="folder")
        self.predict_files: list[Path] = []
        self.data_source = (
            f"{dataset}: {self.root}" if self.root else "digits: scikit-learn's bundled 8x8 digits"
        )
        self.splits: dict[str, Split] = {}
        self._images: dict[str, Split] | None = None

    def read_images(self) -> dict[str, Split]:
        """uint8 images and labels of a `train` and a `test` split."""
        if self._images is None:
            hp = self.hparams
            if hp.dataset == "mnist":
                self._images = load_mnist(self.root)
            elif hp.dataset == "cifar10":
                self._images = load_cifar10(self.root)
            elif hp.dataset == "folder":

                def decode() -> dict[str, torch.Tensor]:
                    images, labels, _ = load_image_folder(self.root, hp.channels, hp.resize_to)
                    return {"images": images, "labels": labels}

                folder = cached(Path(hp.cache_dir), "folder", self.root, (hp.channels, hp.resize_to), decode)
                self._images = self.hold_out(
                    {"all": (folder["images"], folder["labels"])}, "all", hp.test_fraction
                )
            else:
                self._images = self.hold_out({"all": load_digits()}, "all", hp.test_fraction)
        return self._images

    def hold_out(
        self, splits: dict[str, Split], source: str, fraction: float, names=("train", "test")
    ) -> dict:
        """`splits[source]` divided at random (`split_seed`) into `names[0]` and a `fraction` share `names[1]`."""
        images, labels = splits.pop(source)
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.hparams.split_seed))
        held = max(1, int(len(order) * fraction))
        if len(order) - held < 1:
            raise UserInputError(
                f"{len(order)} images are too few to split; add images or lower the fractions"
            )
        kept, out = order[held:], order[:held]
        return {**splits, names[0]: (images[kept], labels[kept]), names[1]: (images[out], labels[out])}

    @property
    def class_names(self) -> list[str]:
        if self.hparams.dataset == "folder":
            return list_image_folder(self.root)[2]
        if self.hparams.dataset == "cifar10":
            from common.images import CIFAR10_CLASSES

            return CIFAR10_CLASSES
        return DIGIT_CLASSES

    @property
    def channels(self) -> int:
        return self.read_images()["train"][0].shape[1]

    @property
    def image_size(self) -> int:
        return self.read_images()["train"][0].shape[-1]

    def setup(self, stage: str) -> None:
        if self.splits:
            return
        self.splits = self.hold_out(
            dict(self.read_images()), "train", self.hparams.val_fraction, ("train", "val")
        )
        if self.hparams.binarize:  # one fixed draw: every run and epoch evaluates on the same binary pixels
            generator = torch.Generator().manual_seed(BINARISATION_SEED)
            for name in ("val", "test"):
                images, labels = self.splits[name]
                binary = torch.bernoulli(images.float().div(255), generator=generator)
                self.splits[name] = binary.mul(255).to(torch.uint8), labels

    def _loader(self, split: str, shuffle: bool):
        images, labels = self.splits[split]
        batch_size = self.hparams.batch_size if shuffle else self.hparams.eval_batch_size
        return tensor_loader(images, labels, batch_size=batch_size, shuffle=shuffle,
                             num_workers=self.hparams.num_workers if shuffle else 0)  # fmt: skip

    def train_dataloader(self):
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        return self._loader("val", shuffle=False)

    def test_dataloader(self):
        return self._loader("test", shuffle=False)

    def predict_dataloader(self):
        """`predict_dir`'s images and their indices; without it, sample indices (sample `i` is decoded from latents
        seeded with `i`)."""
        if self.predict_root is None:
            return tensor_loader(torch.arange(self.hparams.predict_samples), batch_size=self.hparams.eval_batch_size,
                                 shuffle=False)  # fmt: skip
        self.predict_files = list_images(self.predict_root)
        if not self.predict_files:
            raise UserInputError(
                f"no images found in data.predict_dir={self.predict_root}; add .png or .jpg files"
            )
        images = load_images(self.predict_files, self.channels, self.image_size)
        return tensor_loader(
            images, torch.arange(len(images)), batch_size=self.hparams.eval_batch_size, shuffle=False
        )

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self.trainer is not None and self.trainer.predicting:
            if len(batch) == 2:
                return batch[0].float().div(255), batch[1]
            return batch
        images, labels = batch
        images = images.float().div(255)  # uint8 leaves the loader (4x less to copy), floats train
        if self.hparams.binarize and self.trainer is not None and self.trainer.training:
            images = torch.bernoulli(images)  # dynamic binarisation: a new draw each time an image is seen
        return images, labels
