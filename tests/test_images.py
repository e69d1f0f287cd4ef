"""The shared image loader: folders, IDX files, the cache, and one error per kind of bad input."""

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from common.errors import UserInputError
from common.images import cached, load_image_folder, load_mnist, read_idx


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file: zero, zero, type 0x08 (uint8), the number of dimensions, each size (4 bytes), the bytes."""
    header = b"\0\0\x08" + bytes([array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Two classes: a PNG with known pixels, and a JPEG of another size (resized on load)."""
    root = tmp_path / "pets"
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    pixels = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3) * 5
    Image.fromarray(pixels).save(root / "cat" / "a.png")
    Image.new("RGB", (6, 6), (200, 10, 10)).save(root / "dog" / "b.jpg")
    return root


def test_folder_decodes_png_exactly_and_resizes_others(image_folder: Path) -> None:
    images, labels, classes = load_image_folder(image_folder)
    assert classes == ["cat", "dog"]
    assert images.dtype == torch.uint8 and images.shape == (2, 3, 4, 4)  # the first image sets the size
    assert labels.dtype == torch.int64 and labels.tolist() == [0, 1]
    expected = torch.from_numpy(np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5).permute(2, 0, 1)
    assert torch.equal(images[0], expected)  # PNG is lossless: bit-exact
    assert (images[1, 0].float().mean() - 200).abs() < 8  # JPEG red stays red after the resize
    grey, _, _ = load_image_folder(image_folder, channels=1, size=8)
    assert grey.shape == (2, 1, 8, 8)


def test_folder_errors_name_the_path(tmp_path: Path, image_folder: Path) -> None:
    with pytest.raises(UserInputError, match=f"image folder {tmp_path / 'missing'} does not exist"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(UserInputError, match=f"no images found under {tmp_path / 'empty'}; expected"):
        load_image_folder(tmp_path / "empty")
    (image_folder / "cat" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(UserInputError, match=r"cannot read image .*broken\.png .*delete or replace the file"):
        load_image_folder(image_folder)


def test_idx_round_trip_plain_and_gzipped(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (5, 28, 28)), rng.integers(0, 10, 5)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images[:2])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[:2])
    splits = load_mnist(tmp_path)
    assert splits["train"][0].shape == (5, 1, 28, 28) and splits["train"][0].dtype == torch.uint8
    assert torch.equal(splits["train"][0][:, 0], torch.from_numpy(images.astype(np.uint8)))
    assert splits["test"][1].dtype == torch.int64 and splits["test"][1].tolist() == labels[:2].tolist()


def test_bad_idx_files_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "train-images-idx3-ubyte"
    write_idx(bad, np.zeros((2, 3, 3)))
    bad.write_bytes(b"\0\0\x09" + bad.read_bytes()[3:])  # wrong magic: type 0x09 is not uint8
    with pytest.raises(UserInputError, match=f"^{bad} is not a complete MNIST IDX file .*download it again$"):
        read_idx(bad)
    write_idx(bad, np.zeros((2, 3, 3)))
    bad.write_bytes(bad.read_bytes()[:-1])  # truncated
    with pytest.raises(UserInputError, match=r"not a complete MNIST IDX file \(33 bytes\)"):
        read_idx(bad)
    (tmp_path / "x.gz").write_bytes(b"not gzip")
    with pytest.raises(UserInputError, match=r"cannot read MNIST file .*x\.gz"):
        read_idx(tmp_path / "x.gz")
    with pytest.raises(
        UserInputError, match=r"train-images-idx3-ubyte\[\.gz\] or its labels not found under"
    ):
        load_mnist(tmp_path)


def test_cache_decodes_once_and_again_when_the_source_changes(tmp_path: Path, image_folder: Path) -> None:
    calls = []

    def decode() -> dict:
        calls.append(1)
        return {"train": load_image_folder(image_folder)[:2]}

    first = cached(tmp_path / "cache", "folder", image_folder, (None,), decode)
    second = cached(tmp_path / "cache", "folder", image_folder, (None,), decode)
    assert len(calls) == 1 and torch.equal(first["train"][0], second["train"][0])
    cached(tmp_path / "cache", "folder", image_folder, (8,), decode)  # other settings: another key
    os.utime(image_folder / "cat" / "a.png", ns=(0, 0))  # the file changed
    cached(tmp_path / "cache", "folder", image_folder, (None,), decode)
    assert len(calls) == 3 and len(list((tmp_path / "cache").glob("folder-*.pt"))) == 3


def data_root() -> Path:
    root = os.environ.get("DATA_ROOT")
    if not root:
        pytest.skip("DATA_ROOT is not set")
    return Path(root)


def test_real_mnist() -> None:
    root = data_root() / "mnist"
    if not (root / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"no MNIST under {root}")
    splits = load_mnist(root)
    assert splits["train"][0].shape == (60000, 1, 28, 28) and splits["test"][0].shape == (10000, 1, 28, 28)
    assert torch.bincount(splits["test"][1]).tolist()[:2] == [980, 1135]  # the known test class counts


def test_real_cifar10_jpeg_subset(tmp_path: Path) -> None:
    import tarfile

    archive = data_root() / "cifar10" / "cifar10-jpeg.tar.gz"
    if not archive.exists():
        pytest.skip(f"no {archive}")
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("test/") and m.isfile()][:200]
        tar.extractall(tmp_path, members=members, filter="data")
    images, labels, classes = load_image_folder(tmp_path / "test")
    assert images.shape == (len(members), 3, 32, 32) and len(classes) == labels.max() + 1
