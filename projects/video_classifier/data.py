"""Video data: a procedural action set (no single frame tells the class), folders of video files, clip sampling.

Write the procedural set out as real videos (`<out>/<class>/<index>.mp4`), then train on the folder:
    uv run python -m projects.video_classifier.data data/procedural_videos --videos_per_class 20
"""

import hashlib
import math
import random
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from common.distributed import evaluation_loader
from common.errors import UserInputError, require_at_least
from common.files import atomic_path
from common.resume import ResumableLoader
from projects.video_classifier.folders import (
    VIDEO_EXTENSIONS,
    find_videos,
    read_split_file,
    scan_class_folders,
    split_by_lists,
    stratified_split,
)

# Kinetics-400 statistics, the ones torchvision's video models were trained with.
MEAN = (0.43216, 0.394666, 0.37645)
STD = (0.22803, 0.22145, 0.216989)
# (dx, dy) per frame in units of `speed` for the translations; the last two classes rotate in place.
MOTIONS = {
    "left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1),
    "up_left": (-1, -1), "up_right": (1, -1), "down_left": (-1, 1), "down_right": (1, 1),
    "rotate_clockwise": None, "rotate_counterclockwise": None,
}  # fmt: skip
PROCEDURAL_CLASSES = list(MOTIONS)


def render_procedural_video(
    index: int, frames: int = 24, size: int = 32, seed: int = 0, num_classes: int = 10
) -> np.ndarray:
    """Video `index` of the procedural set, uint8 `(T, H, W, 3)`; its class is `index % num_classes`.

    A triangle or half-disc of random size and colours either translates (8 directions) or rotates in place
    (2 senses). The picture wraps around like a torus and the start position and angle are uniform, so
    every frame, on its own, has the same distribution whatever the class: only the motion tells it.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + index)

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * torch.rand((), generator=generator).item()

    motion = MOTIONS[PROCEDURAL_CLASSES[index % num_classes]]
    time = torch.arange(frames, dtype=torch.float32)
    start_x, start_y, start_angle = uniform(0, size), uniform(0, size), uniform(0, 2 * math.pi)
    if motion is None:  # rotation: fixed position, angle changes by 12-24 degrees a frame
        sense = 1.0 if PROCEDURAL_CLASSES[index % num_classes] == "rotate_clockwise" else -1.0
        centre_x, centre_y = torch.full_like(time, start_x), torch.full_like(time, start_y)
        angle = start_angle + sense * math.radians(uniform(12, 24)) * time
    else:  # translation: fixed angle, moves 1.2-2 pixels a frame (at size 32) along `motion`
        speed = uniform(0.04, 0.0625) * size / math.hypot(*motion)
        centre_x, centre_y = start_x + motion[0] * speed * time, start_y + motion[1] * speed * time
        angle = torch.full_like(time, start_angle)
    radius = uniform(0.16, 0.26) * size
    pixels = torch.arange(size, dtype=torch.float32) + 0.5
    # Offsets from the centre on the torus, (T, H, W), then rotated into the shape's own frame (u, v).
    dx = torch.remainder(pixels[None, None, :] - centre_x[:, None, None] + size / 2, size) - size / 2
    dy = torch.remainder(pixels[None, :, None] - centre_y[:, None, None] + size / 2, size) - size / 2
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    if uniform(0, 1) < 0.5:  # isosceles triangle pointing along +u: apex (r, 0), base at u = -0.6 r
        normal_u, normal_v = 0.7 / math.hypot(0.7, 1.6), 1.6 / math.hypot(0.7, 1.6)
        signed_distance = torch.maximum(-0.6 * radius - u, normal_u * (u - radius) + normal_v * v.abs())
    else:  # half-disc whose flat side faces -u
        signed_distance = torch.maximum(torch.sqrt(u**2 + v**2) - radius, -u)
    coverage = (0.5 - signed_distance).clamp(0, 1)[..., None]  # (T, H, W, 1), one pixel of anti-aliasing
    background = torch.rand(3, generator=generator) * 0.35
    foreground = 0.6 + torch.rand(3, generator=generator) * 0.4
    video = background * (1 - coverage) + foreground * coverage
    video = video + 0.03 * torch.randn(video.shape, generator=generator)
    return (video.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def write_video(path: str | Path, frames: np.ndarray, fps: int = 12, codec: str = "libx264") -> None:
    """Encode uint8 frames `(T, H, W, 3)` to a video file (H.264 in yuv420p, playable everywhere)."""
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:  # yuv420p needs even sides: pad with the last row/column
        frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "12"}  # near-lossless: small frames, sharp edges
        for frame in frames:
            container.mux(
                stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24"))
            )
        container.mux(stream.encode())


def write_procedural_videos(
    out: str,
    videos_per_class: int = 20,
    frames: int = 24,
    size: int = 32,
    seed: int = 0,
    num_classes: int = 10,
) -> list[Path]:
    """Write the procedural set as `<out>/<class>/<index>.mp4`, the folder layout UCF101 and HMDB51 use."""
    paths = []
    for index in range(videos_per_class * num_classes):
        path = Path(out) / PROCEDURAL_CLASSES[index % num_classes] / f"{index:05d}.mp4"
        write_video(path, render_procedural_video(index, frames, size, seed, num_classes))
        paths.append(path)
    return paths


class VideoDecodeError(Exception):
    """A video file that cannot be decoded (corrupt, truncated, not a video, or without frames)."""


def decode_video(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """Every frame of a video file, resized by the decoder to `size` (H, W), as uint8 `(T, H, W, 3)`."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = [
                frame.to_ndarray(format="rgb24", width=size[1], height=size[0])
                for frame in container.decode(stream)
            ]
    except (av.FFmpegError, OSError, IndexError, ValueError) as error:
        raise VideoDecodeError(f"{path}: {error}") from error
    if not frames:
        raise VideoDecodeError(f"{path}: no video frames")
    return np.stack(frames)


class FrameCache:
    """Decoded frames as uint8 `.npy` files, keyed on the video's path, mtime and size and the frame size.

    Later epochs memory-map the file and read only the frames a clip needs instead of decoding again.
    A changed video gets a new key, so the cache never serves stale frames.

    Args:
        directory: where the `.npy` files go; `None` disables the cache.
    """

    def __init__(self, directory: str | None) -> None:
        self.directory = Path(directory) if directory else None
        self.hits = self.misses = 0  # per process: each DataLoader worker counts its own

    def path_for(self, video: Path, size: tuple[int, int]) -> Path:
        stat = video.stat()
        key = f"{video.resolve()}|{stat.st_mtime_ns}|{stat.st_size}|{size[0]}x{size[1]}"
        digest = hashlib.sha1(key.encode()).hexdigest()
        return self.directory / digest[:2] / f"{digest}.npy"

    def load(self, video: Path, size: tuple[int, int]) -> np.ndarray:
        if self.directory is None:
            self.misses += 1
            return decode_video(video, size)
        try:
            cached = self.path_for(video, size)
        except OSError as error:  # deleted or unreadable since the folder was scanned
            raise VideoDecodeError(f"{video}: {error}") from error
        if cached.exists():
            self.hits += 1
            try:
                return np.load(
                    cached, mmap_mode="r"
                )  # allow_pickle stays off: a cache file is data, never code
            except ValueError as error:
                raise UserInputError(
                    f"frame cache {cached} is not a plain array file ({error}); delete {self.directory} to rebuild it"
                ) from None
        self.misses += 1
        frames = decode_video(video, size)
        with atomic_path(cached) as partial:  # no worker memory-maps a half-written file from another
            np.save(partial, frames)
        return frames


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


class ProceduralFrames:
    """index -> frames of the procedural set (picklable, so DataLoader workers render in parallel)."""

    def __init__(self, frames: int, size: int, seed: int, num_classes: int) -> None:
        self.frames, self.size, self.seed, self.num_classes = frames, size, seed, num_classes

    def __call__(self, index: int) -> np.ndarray:
        return render_procedural_video(index, self.frames, self.size, self.seed, self.num_classes)


class FileFrames:
    """index -> decoded (or cached) frames of `paths[index]` at `size` (H, W)."""

    def __init__(self, paths: Sequence[Path], size: tuple[int, int], cache: FrameCache) -> None:
        self.paths, self.size, self.cache = list(paths), size, cache

    def __call__(self, index: int) -> np.ndarray:
        return self.cache.load(self.paths[index], self.size)


class VideoDataModule(LightningDataModule):
    """Clips from a folder of videos (UCF101/HMDB51 layout), or from the procedural action set by default.

    Args:
        root: folder of `<class>/<video>.{mp4,avi,mkv,webm}`; `None` generates the procedural set on the fly.
        split_dir: UCF101's `ucfTrainTestlist` folder: train on `trainlist0N.txt`, validate and test on
            `testlist0N.txt`. Without it a fixed stratified split of `root` is used (test = validation).
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
        seed: seeds the procedural videos and the stratified split.
    """

    def __init__(
        self,
        root: str | None = None,
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
        seed: int = 0,
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
        self.classes = scan_class_folders(Path(root)) if root else None
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
            self.datasets["train"] = self._procedural_dataset(count, self.hparams.seed, train=True)
            self.datasets["val"] = self._procedural_dataset(
                max(count // 4, 1), self.hparams.seed + 1, train=False
            )
            self.datasets["test"] = self._procedural_dataset(
                max(count // 4, 1), self.hparams.seed + 2, train=False
            )
        else:
            train, val = self._folder_split()
            self.datasets["train"] = self._file_dataset(train, train=True)
            self.datasets["val"] = self.datasets["test"] = self._file_dataset(val, train=False)
            for split in ("train", "val"):
                require_a_readable_video(self.datasets[split], Path(self.hparams.root), split)

    def _folder_split(self) -> tuple[list[Path], list[Path]]:
        root = Path(self.hparams.root)
        if self.hparams.split_dir is None:
            return stratified_split(self.classes, self.hparams.val_fraction, self.hparams.seed)
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


if __name__ == "__main__":
    from jsonargparse import CLI

    print(f"wrote {len(CLI(write_procedural_videos))} videos")
