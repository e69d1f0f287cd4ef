"""DCGAN on MNIST, judged by an MNIST classifier from projects/image_classifier; prints a markdown table.

    DATA_ROOT=../shared/data flock /tmp/bench.lock uv run python benchmarks/dcgan.py

Steps: (1) train the classifier with the image classifier's own CLI (cached in the work folder),
(2) train the GAN with configs/dcgan/mnist.yaml (13 epochs of 300 batches; the time is reported, never what
stops training), validating on 2,000 images per epoch,
(3) test its best checkpoint: 10,000 generated vs 10,000 training images, beside the real-data floor
(the 10,000 MNIST test images vs the same training images).
Targets: >= 90% confident samples, every class within 7-13% of samples, Frechet distance <= 3x the floor.
"""

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

from common.benchmarking import hardware

REPO = Path(__file__).resolve().parents[1]


def run(project: str, args: list[str], work: Path) -> float:
    """Run `projects/<project>/train.py` in `work` (its runs land in `work/runs/`); returns seconds taken."""
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    command = [
        sys.executable,
        str(REPO / "projects" / project / "train.py"),
        *args,
        "--trainer.enable_progress_bar",
        "false",
    ]
    subprocess.run(command, cwd=work, env=env, check=True)
    return time.perf_counter() - start


def latest_run(work: Path, project: str) -> Path:
    return max((work / "runs" / project).glob("version_*"), key=lambda path: int(path.name.split("_")[1]))


def last_metrics(run_dir: Path) -> dict[str, float]:
    """The last non-empty value of every column of a CSVLogger's metrics.csv."""
    values = {}
    with open(run_dir / "metrics.csv") as file:
        for row in csv.DictReader(file):
            values.update({key: float(value) for key, value in row.items() if value not in ("", None)})
    return values


def batches_trained(run_dir: Path) -> tuple[int, int | None]:
    """The batches a GAN run trained (from its last checkpoint) and the batches its config planned, when whole."""
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    trained = checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["completed"]
    trainer = yaml.safe_load((run_dir / "config.yaml").read_text())["trainer"]
    per_epoch = trainer.get("limit_train_batches") or 1.0  # above 1: batches; at most 1: a share of the data
    return trained, trainer["max_epochs"] * int(per_epoch) if per_epoch > 1 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("DATA_ROOT"), help="folder holding mnist/*.gz")
    parser.add_argument(
        "--work", default=str(REPO / ".cache" / "dcgan-benchmark"), help="runs and caches go here"
    )
    parser.add_argument("--classifier-epochs", type=int, default=2)
    parser.add_argument(
        "--gan-args", nargs=argparse.REMAINDER, default=[], help="extra arguments for the GAN's fit"
    )
    options = parser.parse_args()
    if options.data_root is None or not (Path(options.data_root) / "mnist").is_dir():
        sys.exit("error: set DATA_ROOT (or --data-root) to the folder holding mnist/*.gz")
    mnist = str(Path(options.data_root).resolve() / "mnist")
    work = Path(options.work)
    work.mkdir(parents=True, exist_ok=True)

    # The classifier stays in its run folder: the loader reads what the checkpoint lacks from config.yaml there.
    # "<checkpoint path> <test accuracy>", so later runs reuse the classifier:
    record = work / "classifier-no-smoothing.txt"
    classifier_seconds = 0.0
    if not record.exists() or not Path(record.read_text().split()[0]).exists():
        classifier_seconds = run("image_classifier", [
            "fit", "--config", str(REPO / "configs/image_classifier/digits.yaml"), "--data.dataset", "mnist",
            "--data.data_dir", mnist, "--data.crop_padding", "2", "--trainer.max_epochs", str(options.classifier_epochs),
            # No label smoothing: it caps the top probability near 0.91, which makes ">= 0.9 confident" meaningless.
            "--model.label_smoothing", "0",
            "--trainer.callbacks", "[]", "--checkpoint.monitor", "null", "--checkpoint.save_top_k", "0",
        ], work)  # fmt: skip
        run_dir = latest_run(work, "image_classifier")
        record.write_text(
            f"{run_dir / 'checkpoints' / 'last.ckpt'} {last_metrics(run_dir).get('test/acc', float('nan'))}\n"
        )
    classifier, classifier_accuracy = record.read_text().split()
    classifier_accuracy = float(classifier_accuracy)

    gan_seconds = run("dcgan", [
        "fit", "--config", str(REPO / "configs/dcgan/mnist.yaml"), "--data.data_dir", mnist,
        "--data.cache_dir", str(work / "data"), "--model.classifier_checkpoint", classifier,
        *options.gan_args,
    ], work)  # fmt: skip
    gan_run = latest_run(work, "dcgan")
    # test/* come from the best checkpoint (by val/classifier_fd), tested after fit on the 10k sets.
    result = last_metrics(gan_run)
    # 64 samples of the tested checkpoint as PNG files and a grid (fixed value range, unlike the media grids).
    checkpoint = next((gan_run / "checkpoints").glob("best*.ckpt"), gan_run / "checkpoints" / "last.ckpt")
    samples = gan_run / "samples"
    run("dcgan", ["predict", "--config", str(REPO / "configs/dcgan/mnist.yaml"), "--ckpt_path", str(checkpoint),
                  "--data.data_dir", mnist, "--model.sample_dir", str(samples)], work)  # fmt: skip

    trained, planned = batches_trained(gan_run)
    shares_min, shares_max = result["test/class_share_min"], result["test/class_share_max"]
    distance, floor = result["test/classifier_fd"], result["test/classifier_fd_real_floor"]
    rows = [
        ("confident samples (p >= 0.9)", f"{result['test/confident_share']:.1%}", ">= 90%"),
        ("confident real test images (p >= 0.9)", f"{result['test/confident_share_real']:.1%}", "-"),
        ("class shares of samples (min / max)", f"{shares_min:.1%} / {shares_max:.1%}", "every class 7-13%"),
        ("classifier-feature Frechet distance", f"{distance:.3f}", f"<= 3x floor = {3 * floor:.3f}"),
        ("real floor (10k test vs 10k train)", f"{floor:.3f}", "-"),
        ("distance / floor", f"{distance / floor:.2f}x", "<= 3x"),
        ("MNIST classifier test accuracy", f"{classifier_accuracy:.2%}", "-"),
        ("GAN batches trained", f"{trained:,} of {planned:,}" if planned else f"{trained:,}", "all planned"),
        ("CIFAR-10 FID (10k/10k, GPU)", "not measured (no GPU lent)", "<= 28 (DCGAN 28.1, Mimicry)"),
    ]
    print(f"\nhardware: {hardware()}; torch threads default; machine shared with other jobs")
    print(
        f"time: classifier {classifier_seconds / 60:.1f} min (0 = cached), GAN fit + test {gan_seconds / 60:.1f} min"
    )
    print(f"samples of {checkpoint.name}: {samples / 'grid.png'}\n")
    print("| metric | value | target / anchor |\n|---|---|---|")
    for metric, value, target in rows:
        print(f"| {metric} | {value} | {target} |")
    shares = {
        key.split("/")[-1]: value for key, value in result.items() if key.startswith("test/class_share/")
    }
    if shares:
        print(
            "\nclass histogram: "
            + ", ".join(f"{name}: {value:.1%}" for name, value in sorted(shares.items()))
        )


if __name__ == "__main__":
    main()
