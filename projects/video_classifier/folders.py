"""Finding videos on disk: `<root>/<class>/<video>` trees, UCF101 split files, and a stratified split."""

import random
from pathlib import Path

from common.errors import UserInputError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm")


def find_videos(folder: Path) -> list[Path]:
    return sorted(
        path for path in folder.rglob("*") if path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file()
    )


def scan_class_folders(root: Path) -> dict[str, list[Path]]:
    """`{class name: sorted video paths}` from `<root>/<class>/<video>`; a one-line error for bad layouts."""
    if not root.is_dir():
        raise UserInputError(
            f"video folder {root} does not exist; set --data.data_dir to a folder of <class>/<video> files"
        )
    classes = {folder.name: find_videos(folder) for folder in sorted(root.iterdir()) if folder.is_dir()}
    classes = {name: videos for name, videos in classes.items() if not name.startswith(".")}
    if not any(classes.values()):
        raise UserInputError(
            f"no videos ({', '.join(VIDEO_EXTENSIONS)}) found in class folders under {root}; expected <root>/<class>/<video>"
        )
    empty = [name for name, videos in classes.items() if not videos]
    if empty:
        raise UserInputError(f"class folder {root / empty[0]} has no videos; add videos to it or remove it")
    return classes


def read_split_file(path: Path) -> list[str]:
    """Relative video paths listed in a UCF101 split file (`Class/v_Class_g08_c01.avi [label]` per line)."""
    if not path.is_file():
        raise UserInputError(
            f"split file {path} does not exist; set --data.split_dir to UCF101's ucfTrainTestlist folder"
        )
    listed = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not listed:  # an empty split would train (or validate) on nothing and still exit 0
        raise UserInputError(f"split file {path} lists no videos; restore it from UCF101's ucfTrainTestlist")
    return listed


def split_by_lists(root: Path, listed: list[str], split_file: Path) -> list[Path]:
    """The files a split file names, matched case-insensitively (UCF101's lists spell some folders differently)."""
    by_lower = {str(path.relative_to(root)).lower(): path for path in find_videos(root)}
    missing = [name for name in listed if name.lower() not in by_lower]
    if missing:
        raise UserInputError(
            f"{len(missing)} videos listed in {split_file} are missing under {root} (first: {missing[0]}); check --data.data_dir"
        )
    return [by_lower[name.lower()] for name in listed]


def stratified_split(
    classes: dict[str, list[Path]], val_fraction: float, seed: int
) -> tuple[list[Path], list[Path]]:
    """A fixed per-class random split (at least one validation video per class with two or more videos)."""
    rng, train, val = random.Random(seed), [], []
    for videos in classes.values():
        shuffled = rng.sample(videos, len(videos))
        count = min(max(round(val_fraction * len(videos)), 1), len(videos) - 1)
        val += shuffled[:count]
        train += shuffled[count:]
    return sorted(train), sorted(val)
