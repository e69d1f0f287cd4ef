"""Video files: decoding with PyAV (resized, as uint8 frames), a frame cache keyed on each file, and writing."""

import hashlib
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np

from common.errors import UserInputError
from common.files import atomic_path


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
                # allow_pickle stays off: a cache file is data, never code.
                return np.load(cached, mmap_mode="r")
            except ValueError as error:
                raise UserInputError(
                    f"frame cache {cached} is not a plain array file ({error}); delete {self.directory} to rebuild it"
                ) from None
        self.misses += 1
        frames = decode_video(video, size)
        with atomic_path(cached) as partial:  # no worker memory-maps a half-written file from another
            np.save(partial, frames)
        return frames


class FileFrames:
    """index -> decoded (or cached) frames of `paths[index]` at `size` (H, W)."""

    def __init__(self, paths: Sequence[Path], size: tuple[int, int], cache: FrameCache) -> None:
        self.paths, self.size, self.cache = list(paths), size, cache

    def __call__(self, index: int) -> np.ndarray:
        return self.cache.load(self.paths[index], self.size)
