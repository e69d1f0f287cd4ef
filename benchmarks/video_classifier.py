"""Benchmark the video classifier: temporal models vs the single-frame baseline, decode throughput.

    flock /tmp/bench.lock uv run python benchmarks/video_classifier.py [--epochs 10] [--videos 1000]

Prints a markdown table. The procedural set is designed so no single frame tells the class: a temporal
model should reach >= 99% video accuracy, the single-frame baseline chance (1 / 10 classes).
"""

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

import torch

from common.benchmarking import hardware
from projects.video_classifier.data import ClipDataset
from projects.video_classifier.decoding import FileFrames, FrameCache, decode_video
from projects.video_classifier.procedural import write_procedural_videos
from projects.video_classifier.train import main

NETWORKS = {
    "small_r2plus1d": "projects.video_classifier.model.SmallR2Plus1D",
    "frame_gru": "projects.video_classifier.model.FrameGRU",
    "single_frame": "projects.video_classifier.model.SingleFrame",
}


def train_procedural(network: str, epochs: int, videos: int, workdir: str) -> tuple[float, float, float, str]:
    """Fit on the procedural set through the real CLI.

    Returns the best validation video accuracy, the best checkpoint's test video accuracy, the seconds
    taken (fit and test), and the first epoch (from 0) with validation video accuracy >= 99%.
    """
    start = time.perf_counter()
    cli = main(
        [
            "fit",
            "--config=configs/video_classifier/procedural.yaml",
            "--config=configs/trainer/cpu.yaml",
            f"--model.network={NETWORKS[network]}",
            f"--trainer.max_epochs={epochs}",
            f"--data.procedural_videos={videos}",
            f"--trainer.default_root_dir={workdir}",
            "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
            f"--trainer.logger.init_args.save_dir={workdir}",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
        ]
    )
    seconds = time.perf_counter() - start  # fit and the test of the best checkpoint
    best = float(cli.trainer.checkpoint_callback.best_model_score)
    reached = first_epoch_reaching(Path(cli.trainer.logger.log_dir) / "metrics.csv", 0.99)
    # The CLI tests the best checkpoint after fit.
    test = float(cli.trainer.callback_metrics["test/video_acc"])
    return best, test, seconds, reached


def decode_throughput(
    workdir: str, videos: int = 100, source_size: int = 224, size: int = 112
) -> dict[str, float]:
    """Clips per second (one 16-frame clip per 48-frame video, one process), decoding vs reading the cache.

    The files are 224x224 H.264 and are decoded to 112x112, so the decoder's resize is part of the cost.
    """
    paths = write_procedural_videos(
        f"{workdir}/videos", videos_per_class=videos // 10, frames=48, size=source_size
    )
    decode_video(paths[0], (size, size))  # warm up the codec libraries and the file-system cache
    rates = {}
    passes = {
        "decode every epoch (no cache)": None,
        "first epoch with cache (decode + write)": f"{workdir}/cache",
        "later epochs (read cache)": f"{workdir}/cache",
    }
    for label, cache_dir in passes.items():
        loader = FileFrames(paths, (size, size), FrameCache(cache_dir))
        dataset = ClipDataset(loader, [0] * len(paths), [str(p) for p in paths], 16, 2, 1, size, train=False)
        start = time.perf_counter()
        for index in range(len(dataset)):
            dataset[index]
        rates[label] = len(dataset) / (time.perf_counter() - start)
    return rates


def first_epoch_reaching(metrics_csv: Path, threshold: float) -> str:
    """The first epoch whose `val/video_acc` reaches `threshold`, or `-`."""
    for row in csv.DictReader(metrics_csv.open()):
        if row.get("val/video_acc") and float(row["val/video_acc"]) >= threshold:
            return row["epoch"]
    return "-"


def main_benchmark() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--videos", type=int, default=1000, help="procedural training videos")
    parser.add_argument(
        "--networks", nargs="+", default=["small_r2plus1d", "single_frame"], choices=list(NETWORKS)
    )
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "disabled")
    torch.set_num_threads(os.cpu_count())
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for network in args.networks:
            best, test, seconds, reached = train_procedural(
                network, args.epochs, args.videos, f"{workdir}/{network}"
            )
            anchor = "chance = 10%" if network == "single_frame" else ">= 99% (target)"
            rows.append(
                (
                    f"{network}: val video acc (best epoch) / test video acc",
                    f"{best:.1%} / {test:.1%}",
                    f"{seconds:.0f} s for {args.epochs} epochs (>= 99% from epoch {reached})",
                    anchor,
                )
            )
        for label, rate in decode_throughput(workdir).items():
            rows.append(
                (
                    f"decoding, 16-frame clips: {label}",
                    f"{rate:.1f} clips/s",
                    "100 videos 224->112 px, 1 process",
                    "-",
                )
            )
    rows.append(
        (
            "UCF101 split 1, R(2+1)D-18 video acc",
            "not measured (no GPU, no UCF101 here)",
            "-",
            "~87% MC3-18 Kinetics-init (Tran et al. 2018)",
        )
    )
    print(
        f"\nhardware: {hardware()}; torch {torch.__version__}; load average at end {os.getloadavg()[0]:.1f}\n"
    )
    print("| metric | value | time | anchor |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    Path("runs").mkdir(exist_ok=True)
    main_benchmark()
