"""Logger-agnostic media: images, figures and tables go to W&B when its logger is active, to files otherwise.

Files land in `<run dir>/media/`, named `<key>_step<global step>.<ext>` (slashes in keys become `_`).
Every function is a no-op on ranks other than zero.
"""

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: media is written during training, never shown
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch import Trainer  # noqa: E402
from lightning.pytorch.loggers import WandbLogger  # noqa: E402
from torchvision.utils import make_grid, save_image  # noqa: E402

from common.runs import run_directory  # noqa: E402


def wandb_logger(trainer: Trainer) -> WandbLogger | None:
    return next((logger for logger in trainer.loggers if isinstance(logger, WandbLogger)), None)


def media_path(trainer: Trainer, key: str, suffix: str) -> Path:
    folder = run_directory(trainer) / "media"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{key.replace('/', '_')}_step{trainer.global_step:06d}{suffix}"


def log_image_grid(
    trainer: Trainer, key: str, images: torch.Tensor, nrow: int = 8, caption: str | None = None
) -> None:
    """Log a batch of images `(N, C, H, W)` (floats, each image rescaled to [0, 1]) as one grid."""
    if not trainer.is_global_zero:
        return
    grid = make_grid(images.detach().float().cpu(), nrow=nrow, normalize=True, scale_each=True, pad_value=1.0)
    logger = wandb_logger(trainer)
    if logger is not None:
        captions = {"caption": [caption]} if caption else {}
        logger.log_image(key, [grid], step=trainer.global_step, **captions)
    else:
        save_image(grid, media_path(trainer, key, ".png"))


def log_figure(trainer: Trainer, key: str, figure: plt.Figure) -> None:
    """Log a matplotlib figure, then close it."""
    if trainer.is_global_zero:
        logger = wandb_logger(trainer)
        if logger is not None:
            import wandb

            logger.experiment.log({key: wandb.Image(figure), "trainer/global_step": trainer.global_step})
        else:
            figure.savefig(media_path(trainer, key, ".png"), dpi=100, bbox_inches="tight")
    plt.close(figure)


def log_table(trainer: Trainer, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Log a table: a W&B Table, or a CSV file."""
    if not trainer.is_global_zero:
        return
    logger = wandb_logger(trainer)
    if logger is not None:
        logger.log_table(
            key, columns=list(columns), data=[list(row) for row in rows], step=trainer.global_step
        )
        return
    with media_path(trainer, key, ".csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        writer.writerows(rows)


def confusion_matrix_figure(matrix: torch.Tensor, class_names: Sequence[str]) -> plt.Figure:
    """A heatmap of `matrix[true, predicted]` counts with row-normalised colours."""
    matrix = matrix.cpu()
    rates = matrix.float() / matrix.sum(dim=1, keepdim=True).clamp(min=1)
    size = max(4.0, 0.45 * len(class_names) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(class_names))
    axes.set(xticks=ticks, yticks=ticks, xlabel="predicted", ylabel="true")
    axes.set_xticklabels(class_names, rotation=90)
    axes.set_yticklabels(class_names)
    if len(class_names) <= 20:
        for true in ticks:
            for predicted in ticks:
                count = int(matrix[true, predicted])
                colour = "white" if rates[true, predicted] > 0.5 else "black"
                axes.text(predicted, true, count, ha="center", va="center", fontsize=8, color=colour)
    figure.tight_layout()
    return figure


def log_video(
    trainer: Trainer, key: str, frames: torch.Tensor, fps: int = 4, caption: str | None = None
) -> None:
    """Log a clip of uint8 frames `(T, C, H, W)`: an MP4 video in W&B, a one-row frame-strip PNG otherwise."""
    if not trainer.is_global_zero:
        return
    frames = frames.detach().cpu()
    frames = frames.expand(-1, 3, -1, -1) if frames.shape[1] == 1 else frames
    logger = wandb_logger(trainer)
    if logger is None:
        strip = make_grid(frames.float() / 255, nrow=len(frames), padding=1, pad_value=1.0)
        save_image(strip, media_path(trainer, key, ".png"))
        return
    import av
    import wandb

    # wandb.Video needs moviepy to encode arrays; PyAV (a dependency) writes the H.264 MP4 instead.
    path = media_path(trainer, key, ".mp4")
    pixels = frames.permute(0, 2, 3, 1).contiguous().numpy()  # (T, H, W, 3)
    pixels = pixels[:, : pixels.shape[1] // 2 * 2, : pixels.shape[2] // 2 * 2]  # yuv420p needs even sides
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = pixels.shape[2], pixels.shape[1], "yuv420p"
        for frame in pixels:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame.copy(), format="rgb24")))
        container.mux(stream.encode())
    logger.experiment.log(
        {key: wandb.Video(str(path), caption=caption), "trainer/global_step": trainer.global_step}
    )
