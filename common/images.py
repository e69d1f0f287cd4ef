"""Image sources decoded once to uint8 tensors `(N, C, H, W)` + int64 labels, shared by the image projects.

Sources: scikit-learn's bundled 8x8 digits, MNIST (IDX files, gzipped or not), CIFAR-10 (torchvision's pickle
batches) and ImageFolder trees (`<root>/<class>/<image>`, e.g. the CIFAR-10 JPEG copy). Bad input is one
`UserInputError` naming the path and the fix; `cached` keeps decoded splits in a `.pt` file keyed by source.
"""

import gzip
import hashlib
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from common.errors import UserInputError
from common.files import atomic_path, load_tensors

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
DIGIT_CLASSES = [str(digit) for digit in range(10)]
PROGRESS_FROM = 500  # files: below this, decoding is quick and a progress bar only adds noise

Split = tuple[torch.Tensor, torch.Tensor]  # images (N, C, H, W) uint8, labels (N,) int64


def require_folder(root: Path, what: str = "data_dir", fix: str = "check --data.data_dir") -> Path:
    """`root` when it is a folder; else a one-line error naming it."""
    if not root.exists():
        raise UserInputError(f"{what} {root} does not exist; {fix}")
    if not root.is_dir():
        raise UserInputError(f"{what} {root} is not a folder; {fix}")
    return root


def load_image(
    path: Path, channels: int, size: int | None, resample: Image.Resampling = Image.Resampling.BILINEAR
) -> torch.Tensor:
    """Decode one image file to uint8 `(C, H, W)`, resized to `size` x `size` when given."""
    try:
        with Image.open(path) as image:
            # Through RGB first (as torchvision's ImageFolder loader does), so palette and alpha images agree.
            image = image.convert("RGB")
            image = image.convert("L") if channels == 1 else image
            if size is not None and image.size != (size, size):
                image = image.resize((size, size), resample)
            array = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as error:
        raise UserInputError(f"cannot read image {path} ({error}); delete or replace the file") from None
    return torch.from_numpy(array.reshape(array.shape[0], array.shape[1], channels).copy()).permute(2, 0, 1)


def list_images(root: Path) -> list[Path]:
    """Every image file below `root`, sorted by path."""
    return sorted(path for path in root.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES)


def list_image_folder(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """Files and labels of a `<root>/<class>/<image>` tree, classes sorted by name."""
    require_folder(root, "image folder", f"expected {root}/<class>/<image>.png|.jpg")
    classes = sorted(path.name for path in root.iterdir() if path.is_dir())
    files, labels = [], []
    for label, name in enumerate(classes):
        class_files = list_images(root / name)
        files += class_files
        labels += [label] * len(class_files)
    if not files:
        raise UserInputError(f"no images found under {root}; expected {root}/<class>/<image>.png|.jpg")
    return files, labels, classes


def show_progress() -> bool:
    """A progress bar only where a person watches: stderr is a terminal, and on rank 0 under DDP."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return sys.stderr.isatty() and getattr(rank_zero_only, "rank", 0) == 0


def load_images(
    files: list[Path],
    channels: int,
    size: int | None,
    resample: Image.Resampling = Image.Resampling.BILINEAR,
    description: str = "decoding images",
    loader: Callable[..., torch.Tensor] = load_image,
) -> torch.Tensor:
    """Decode `files` with `loader` (`load_image`'s signature) to one uint8 `(N, C, S, S)` tensor; `size` None:
    the first file's width."""
    size = size or loader(files[0], channels, None, resample).shape[-1]
    quiet = len(files) < PROGRESS_FROM or not show_progress()
    progress = tqdm(files, desc=description, unit="image", disable=quiet, leave=False)
    return torch.stack([loader(path, channels, size, resample) for path in progress])


def load_image_folder(
    root: Path,
    channels: int = 3,
    size: int | None = None,
    resample: Image.Resampling = Image.Resampling.BILINEAR,
    loader: Callable[..., torch.Tensor] = load_image,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """A `<root>/<class>/<image>` tree as uint8 images `(N, C, S, S)`, int64 labels and the class names."""
    files, labels, classes = list_image_folder(root)
    images = load_images(files, channels, size, resample, f"decoding {root.name}", loader)
    return images, torch.tensor(labels, dtype=torch.int64), classes


def read_idx(path: Path) -> np.ndarray:
    """Read an MNIST IDX file (optionally gzipped) into an array; a one-line error for an empty, truncated
    or foreign file (otherwise an IndexError or a reshape error from deep inside)."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError
        raise UserInputError(f"cannot read MNIST file {path} ({error}); download it again") from None
    # Header: two zero bytes, type 0x08 (uint8), the number of dimensions, then each size as 4 bytes.
    dims = data[3] if len(data) >= 4 and data[:3] == b"\0\0\x08" else 0
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    if not dims or len(data) != 4 + 4 * dims + int(np.prod(shape)):
        raise UserInputError(
            f"{path} is not a complete MNIST IDX file ({len(data)} bytes); download it again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_mnist(root: Path) -> dict[str, Split]:
    """The MNIST train and test splits from the four IDX files anywhere below `root` (.gz or not)."""
    require_folder(root, "MNIST folder", "point --data.data_dir at the folder holding the four IDX files")

    def split(prefix: str) -> Split:
        found = {kind: sorted(root.rglob(f"{prefix}-{kind}-idx*")) for kind in ("images", "labels")}
        if not found["images"] or not found["labels"]:
            raise UserInputError(
                f"MNIST file {prefix}-images-idx3-ubyte[.gz] or its labels not found under {root}; "
                "point --data.data_dir at the folder holding the four IDX files"
            )
        images = torch.from_numpy(read_idx(found["images"][0]).copy())[:, None]  # (N, 1, 28, 28)
        return images, torch.from_numpy(read_idx(found["labels"][0]).astype(np.int64))

    return {"train": split("train"), "test": split("t10k")}


def load_cifar10(root: Path, download: bool = False) -> dict[str, Split]:
    """CIFAR-10's train and test splits from torchvision's pickle batches under `root` (downloaded if asked)."""
    from torchvision.datasets import CIFAR10

    def split(train: bool) -> Split:
        try:
            data = CIFAR10(str(root), train=train, download=download)
        except RuntimeError:
            raise UserInputError(
                f"CIFAR-10 not found under {root}; pass --data.download true when online, or use "
                "--data.dataset folder with --data.data_dir pointing at a train/<class>/ image tree"
            ) from None
        return torch.from_numpy(data.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(data.targets)

    return {"train": split(True), "test": split(False)}


def load_digits() -> Split:
    """scikit-learn's 1797 bundled 8x8 digits, scaled from 0..16 to 0..255: `(1797, 1, 8, 8)` uint8."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = torch.from_numpy(digits.images * (255 / 16)).round().to(torch.uint8)[:, None]
    return images, torch.from_numpy(digits.target).long()


def source_fingerprint(root: Path | None, *settings: object) -> str:
    """Changes when the files below `root` (names, sizes, mtimes) or the decoding `settings` change."""
    parts = [str(setting) for setting in settings]
    if root is not None:
        require_folder(root)
        for path in sorted(root.rglob("*")):
            if path.is_file():
                stat = path.stat()
                parts.append(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]


def cached(
    cache_dir: Path, name: str, root: Path | None, settings: tuple, decode: Callable[[], dict]
) -> dict:
    """`decode()` once: later calls with the same source and settings load `<cache_dir>/<name>-<key>.pt`."""
    path = Path(cache_dir) / f"{name}-{source_fingerprint(root, *settings)}.pt"
    if path.exists():
        return load_tensors(path, "cache", f"delete it to decode {name} again")
    data = decode()
    with atomic_path(path) as partial:  # DDP ranks may decode and write it at the same time
        torch.save(data, partial)
    return data
