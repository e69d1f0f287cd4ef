"""Video data: clip sampling and the datamodule over the procedural set (`procedural.py`) or folders of video files
(`folders.py` finds and splits them, `decoding.py` decodes and caches them)."""

import random
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from common.distributed import evaluation_loader
from common.errors import UserInputError, require_at_least
from common.resume import ResumableLoader
from projects.video_classifier.decoding import FileFrames, FrameCache, VideoDecodeError
from projects.video_classifier.folders import (
    VIDEO_EXTENSIONS,
    find_videos,
    read_split_file,
    scan_class_folders,
    split_by_lists,
    stratified_split,
)
from projects.video_classifier.procedural import PROCEDURAL_CLASSES, ProceduralFrames

# Kinetics-400 statistics, the ones torchvision's video models were trained with.
MEAN = (0.43216, 0.394666, 0.37645)
STD = (0.22803, 0.22145, 0.216989)


def clip_span(clip_len: int, frame_stride: int) -> int:
    """Frames a clip covers from its first to its last sampled frame."""
    return (clip_len - 1) * frame_stride + 1


def train_clip_starts(num_frames: int, clip_len: int, frame_stride: int, rng: random.Random) -> list[int]:
    """One uniformly random start, so every epoch sees a different clip of each video."""
    return [rng.randint(0, max(num_frames - clip_span(clip_len, frame_stride), 0))]


def eval_clip_starts(num_frames: int, clip_len: int, frame_stride: int, clips: int) -> list[int]:
    """`clips` evenly spaced starts from the first possible to the last possible, for a repeatable score."""
    last = max(num_frames - clip_span(clip_len, frame_stride), 0)
    if clips == 1:
        return [last // 2]
    return [round(i * last / (clips - 1)) for i in range(clips)]


def clip_frame_indices(start: int, num_frames: int, clip_len: int, frame_stride: int) -> np.ndarray:
    """Frame indices of one clip; a video shorter than the clip repeats its last frame."""
    return np.minimum(start + frame_stride * np.arange(clip_len), num_frames - 1)


class ClipDataset(Dataset):
    """Clips of videos: one random clip per video for training, `clips_per_video` evenly spaced otherwise.

    An item is `{"clips": (K, 3, T, H, W) float, "label": int, "video": str}`, or `{"skipped": str}` when
    the video cannot be decoded (the collate function drops it and counts it).

    Args:
        load_frames: index -> uint8 frames `(N, H, W, 3)`; may raise `VideoDecodeError`.
        labels: class index per video (-1 when unknown, for predict).
        names: a name per video (the file path, or `procedural/<seed>/<index>`).
        clip_len: frames per clip.
        frame_stride: take every `frame_stride`-th frame.
        clips_per_video: evenly spaced clips per video when not training.
        crop_size: side of the square crop (random when training, centred otherwise).
        train: random clip, random crop and optional flip.
        horizontal_flip: flip half the training clips (never for the procedural set: flips swap classes).
        seed: with the epoch (`set_epoch`) and the index, seeds each training item's clip, crop and flip, so an
            item is the same whichever process or worker loads it, and a resumed run draws what it would have.
    """

    def __init__(
        self,
        load_frames: Callable[[int], np.ndarray],
        labels: Sequence[int],
        names: Sequence[str],
        clip_len: int,
        frame_stride: int,
        clips_per_video: int,
        crop_size: int,
        train: bool,
        horizontal_flip: bool = False,
        seed: int | None = None,
    ) -> None:
        self.load_frames, self.labels, self.names = load_frames, list(labels), list(names)
        self.clip_len, self.frame_stride, self.clips_per_video = clip_len, frame_stride, clips_per_video
        self.crop_size, self.train, self.horizontal_flip = crop_size, train, horizontal_flip
        self.seed = torch.initial_seed() if seed is None else seed  # the run's seed, set by seed_everything
        self.epoch = 0
        self.mean = torch.tensor(MEAN).view(3, 1, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def set_epoch(self, epoch: int) -> None:
        """Called by `ResumableLoader` before each epoch: training items draw anew every epoch."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            frames = self.load_frames(index)  # (N, H, W, 3) uint8
        except VideoDecodeError as error:
            warnings.warn(f"skipping unreadable video {error}", stacklevel=2)
            return {"skipped": self.names[index]}
        rng = random.Random(f"{self.seed}/{self.epoch}/{index}")
        if self.train:
            starts = train_clip_starts(len(frames), self.clip_len, self.frame_stride, rng)
        else:
            starts = eval_clip_starts(len(frames), self.clip_len, self.frame_stride, self.clips_per_video)
        clips = torch.stack([self.transform(frames, start, rng) for start in starts])
        return {"clips": clips, "label": self.labels[index], "video": self.names[index]}

    def transform(self, frames: np.ndarray, start: int, rng: random.Random) -> torch.Tensor:
        """One clip as normalised floats `(3, T, crop, crop)`."""
        clip = torch.from_numpy(
            np.asarray(frames[clip_frame_indices(start, len(frames), self.clip_len, self.frame_stride)])
        )
        height, width = clip.shape[1:3]
        crop = min(self.crop_size, height, width)
        if self.train:
            top, left = rng.randint(0, height - crop), rng.randint(0, width - crop)
        else:
            top, left = (height - crop) // 2, (width - crop) // 2
        clip = clip[:, top : top + crop, left : left + crop].permute(3, 0, 1, 2).float() / 255  # (3, T, H, W)
        if self.train and self.horizontal_flip and rng.random() < 0.5:
            clip = clip.flip(-1)
        return (clip - self.mean) / self.std


def collate_videos(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack readable videos; unreadable ones are dropped and their names kept under `skipped`."""
    videos = [item for item in items if "skipped" not in item]
    return {
        "clips": torch.stack([item["clips"] for item in videos])
        if videos
        else torch.empty(0),  # (B, K, 3, T, H, W)
        "labels": torch.tensor([item["label"] for item in videos], dtype=torch.long),
        "videos": [item["video"] for item in videos],
        "skipped": [item["skipped"] for item in items if "skipped" in item],
    }


def require_a_readable_video(dataset: ClipDataset, folder: Path, stage: str) -> None:
    """Stop when no video of a split decodes: a run would otherwise skip them all and "succeed" on nothing.

    Decoding stops at the first readable video, so a good folder costs one decode (which the frame cache
    keeps). A few unreadable files among readable ones stay warnings: `ClipDataset` skips and counts them.
    """
    if len(dataset) == 0:
        raise UserInputError(
            f"the {stage} split of {folder} has no videos; give every class folder two or more videos "
            "(or list some in the split file)"
        )
    first_error = None
    for index in range(len(dataset)):
        try:
            dataset.load_frames(index)
            return
        except VideoDecodeError as error:
            first_error = first_error or error
    raise UserInputError(
        f"none of the {len(dataset)} {stage} videos under {folder} can be decoded (first: {first_error}); "
        "check that they are real video files"
    )


class VideoDataModule(LightningDataModule):
    """Clips from a folder of videos (UCF101/HMDB51 layout), or from the procedural action set by default.

    Args:
        data_dir: folder of `<class>/<video>.{mp4,avi,mkv,webm}`; `None` generates the procedural set on the fly.
        split_dir: UCF101's `ucfTrainTestlist` folder: train on `trainlist0N.txt`, validate and test on
            `testlist0N.txt`. Without it a fixed stratified split of `data_dir` is used (test = validation).
        split: which official split, 1-3.
        val_fraction: share of each class held out for validation when there are no split files.
        predict_dir: folder of videos (searched recursively) that `predict` classifies.
        frame_size: (height, width) frames are decoded to, and cached at.
        crop_size: side of the square crop the model sees.
        clip_len: frames per clip.
        frame_stride: take every `frame_stride`-th frame.
        clips_per_video: evenly spaced clips per video when evaluating; their mean logits score the video.
        horizontal_flip: flip half the training clips (leave off for the procedural set: a flip swaps classes).
        cache_dir: where decoded frames are cached as uint8 `.npy` files; `None` decodes every epoch.
        procedural_videos: training videos in the procedural set; validation and test get a quarter as many.
        procedural_frames: frames per procedural video.
        procedural_classes: how many of the 10 procedural classes to use (the first ones: left, right, ...).
        batch_size: videos per batch.
        num_workers: DataLoader worker processes (decoding and rendering run there).
        split_seed: seeds the procedural videos and the stratified split (the run's seed draws clips and crops).
    """

    def __init__(
        self,
        data_dir: str | None = None,
        split_dir: str | None = None,
        split: int = 1,
        val_fraction: float = 0.2,
        predict_dir: str | None = None,
        frame_size: tuple[int, int] = (32, 32),
        crop_size: int = 32,
        clip_len: int = 8,
        frame_stride: int = 1,
        clips_per_video: int = 3,
        horizontal_flip: bool = False,
        cache_dir: str | None = "runs/video_classifier/frame_cache",
        procedural_videos: int = 1000,
        procedural_frames: int = 24,
        procedural_classes: int = 10,
        batch_size: int = 32,
        num_workers: int = 2,
        split_seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if not 2 <= procedural_classes <= len(PROCEDURAL_CLASSES):
            raise UserInputError(
                f"procedural_classes={procedural_classes} must be between 2 and {len(PROCEDURAL_CLASSES)}"
            )
        if split not in (1, 2, 3):
            raise UserInputError(f"split={split} is not a UCF101 split; use 1, 2 or 3")
        require_at_least(1, batch_size=batch_size, clip_len=clip_len, frame_stride=frame_stride,
                         clips_per_video=clips_per_video, crop_size=crop_size,
                         procedural_videos=procedural_videos, procedural_frames=procedural_frames)  # fmt: skip
        require_at_least(0, num_workers=num_workers)
        # Scanned now, not in setup: the model's head size is linked to `class_names` before training starts.
        self.classes = scan_class_folders(Path(data_dir)) if data_dir else None
        self.datasets: dict[str, ClipDataset] = {}

    @property
    def class_names(self) -> list[str]:
        if self.classes is None:
            return PROCEDURAL_CLASSES[: self.hparams.procedural_classes]
        return list(self.classes)

    def setup(self, stage: str) -> None:
        if stage == "predict":
            self.datasets["predict"] = self._predict_dataset()
        elif self.classes is None:
            count = self.hparams.procedural_videos
            self.datasets["train"] = self._procedural_dataset(count, self.hparams.split_seed, train=True)
            self.datasets["val"] = self._procedural_dataset(
                max(count // 4, 1), self.hparams.split_seed + 1, train=False
            )
            self.datasets["test"] = self._procedural_dataset(
                max(count // 4, 1), self.hparams.split_seed + 2, train=False
            )
        else:
            train, val = self._folder_split()
            self.datasets["train"] = self._file_dataset(train, train=True)
            self.datasets["val"] = self.datasets["test"] = self._file_dataset(val, train=False)
            for split in ("train", "val"):
                require_a_readable_video(self.datasets[split], Path(self.hparams.data_dir), split)

    def _folder_split(self) -> tuple[list[Path], list[Path]]:
        root = Path(self.hparams.data_dir)
        if self.hparams.split_dir is None:
            return stratified_split(self.classes, self.hparams.val_fraction, self.hparams.split_seed)
        lists = [
            Path(self.hparams.split_dir) / f"{kind}list{self.hparams.split:02d}.txt"
            for kind in ("train", "test")
        ]
        return tuple(split_by_lists(root, read_split_file(path), path) for path in lists)

    def _clip_dataset(
        self, load_frames: Callable, labels: list[int], names: list[str], train: bool
    ) -> ClipDataset:
        hp = self.hparams
        return ClipDataset(
            load_frames, labels, names, hp.clip_len, hp.frame_stride, hp.clips_per_video, hp.crop_size, train,
            hp.horizontal_flip,
        )  # fmt: skip

    def _procedural_dataset(self, count: int, seed: int, train: bool) -> ClipDataset:
        hp = self.hparams
        frames = ProceduralFrames(hp.procedural_frames, hp.frame_size[0], seed, hp.procedural_classes)
        labels = [index % hp.procedural_classes for index in range(count)]
        return self._clip_dataset(
            frames, labels, [f"procedural/{seed}/{index}" for index in range(count)], train
        )

    def _file_dataset(self, paths: list[Path], train: bool) -> ClipDataset:
        index_of = {name: index for index, name in enumerate(self.classes)}
        labels = [index_of[path.parent.name] for path in paths]
        frames = FileFrames(paths, tuple(self.hparams.frame_size), FrameCache(self.hparams.cache_dir))
        return self._clip_dataset(frames, labels, [str(path) for path in paths], train)

    def _predict_dataset(self) -> ClipDataset:
        if self.hparams.predict_dir is None:
            raise UserInputError("predict needs a folder of videos: set --data.predict_dir")
        folder = Path(self.hparams.predict_dir)
        paths = find_videos(folder) if folder.is_dir() else []
        if not paths:
            raise UserInputError(
                f"no videos ({', '.join(VIDEO_EXTENSIONS)}) found under --data.predict_dir {folder}"
            )
        frames = FileFrames(paths, tuple(self.hparams.frame_size), FrameCache(self.hparams.cache_dir))
        dataset = self._clip_dataset(frames, [-1] * len(paths), [str(path) for path in paths], train=False)
        require_a_readable_video(dataset, folder, "predict")
        return dataset

    def _loader(self, stage: str) -> DataLoader:
        workers = self.hparams.num_workers
        return ResumableLoader(  # resumes mid-epoch in the same order
            self.datasets[stage],
            batch_size=self.hparams.batch_size,
            shuffle=stage == "train",
            drop_last=stage == "train" and len(self.datasets[stage]) > self.hparams.batch_size,
            num_workers=workers,
            # Not persistent: each epoch's workers get the dataset with its new epoch (`ClipDataset.set_epoch`).
            persistent_workers=False,
            collate_fn=collate_videos,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return evaluation_loader(self._loader("val"), self.trainer)  # under DDP: each video once

    def test_dataloader(self) -> DataLoader:
        return evaluation_loader(self._loader("test"), self.trainer)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")
