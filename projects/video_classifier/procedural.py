"""The procedural action set: videos in which only the motion tells the class (no single frame does), generated
on the fly from (seed, index), and written out as real video files when asked:

    uv run python -m projects.video_classifier.procedural data/procedural_videos --videos_per_class 20
"""

import math
from pathlib import Path

import numpy as np
import torch

from projects.video_classifier.decoding import write_video

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


class ProceduralFrames:
    """index -> frames of the procedural set (picklable, so DataLoader workers render in parallel)."""

    def __init__(self, frames: int, size: int, seed: int, num_classes: int) -> None:
        self.frames, self.size, self.seed, self.num_classes = frames, size, seed, num_classes

    def __call__(self, index: int) -> np.ndarray:
        return render_procedural_video(index, self.frames, self.size, self.seed, self.num_classes)


if __name__ == "__main__":
    from jsonargparse import CLI

    print(f"wrote {len(CLI(write_procedural_videos))} videos")
