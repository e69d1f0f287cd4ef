"""Benchmark the speech project on FSDD: the keyword spotter on the official split over seeds, leave-one-speaker-out
over the six speakers and white noise at 0 dB SNR on the official test set, and connected digits (CTC) on strings
built from the official test clips. Every run goes through the real CLI (fit, then the test of the
best-validation checkpoint).

    DATA_ROOT=/path/to/data flock /tmp/bench.lock uv run python benchmarks/speech.py [--seeds 0 1 2] \
        [--tasks official speaker noise connected] [--threads 1]

Prints a markdown table: config, seeds, mean +- std test accuracy, wall time per run, hardware, anchor; for
connected digits, the digit error rate (greedy and beam) and string accuracy instead.
"""

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import torch

from common.benchmarking import fit_and_test, hardware, mean_std
from projects.speech.train import main

SPEAKERS = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
ANCHORS = {
    "official": ">= 99.5% target; 99.3% log-spectrogram CNN (2025), ~97% MFCC CNNs",
    "speaker": ">= 95% target (mean over the six held-out speakers)",
    "noise": ">= 91% target; anchor 90.5%",
    "connected": "target: digit error rate <= 2% in <= 10 min on a 2-core CPU",
}


def accuracy_run(args: list[str], workdir: str) -> tuple[float, float]:
    """Test accuracy of the best checkpoint and the wall-clock seconds of the whole `fit` command."""
    metrics, seconds = fit_and_test(main, args, Path(workdir))
    print(f"  {' '.join(args)}: test/acc {metrics['test/acc']:.4f} in {seconds:.0f} s", flush=True)
    return metrics["test/acc"], seconds


def run_task(task: str, seeds: list[int], workdir: str) -> tuple[str, str, str, list[float], list[float]]:
    """(config, what varies, seeds, accuracies, seconds) of one benchmark row."""
    results = []
    if task == "official":
        config, varies = "configs/speech/fsdd.yaml", "seeds"
        for seed in seeds:
            results.append(
                accuracy_run([f"--config={config}", f"--seed_everything={seed}"], f"{workdir}/{seed}")
            )
    elif task == "speaker":
        config, varies = "configs/speech/fsdd_speaker.yaml", "held-out speaker (6 runs)"
        for speaker in SPEAKERS:
            args = [f"--config={config}", f"--data.test_speaker={speaker}", f"--seed_everything={seeds[0]}"]
            results.append(accuracy_run(args, f"{workdir}/{speaker}"))
        seeds = seeds[:1]
    else:
        config, varies = "configs/speech/fsdd_noise.yaml", "seeds"
        for seed in seeds:
            results.append(
                accuracy_run([f"--config={config}", f"--seed_everything={seed}"], f"{workdir}/{seed}")
            )
    accuracies, seconds = [a for a, _ in results], [s for _, s in results]
    return config, varies, ",".join(map(str, seeds)), accuracies, seconds


def connected_rows(seeds: list[int], workdir: str) -> list[tuple[str, ...]]:
    """Connected digits over `seeds`: one table row each for DER (greedy), DER (beam) and string accuracy."""
    config, runs = "configs/speech/fsdd_connected.yaml", []
    for seed in seeds:
        args = [f"--config={config}", f"--seed_everything={seed}"]
        metrics, seconds = fit_and_test(main, args, Path(f"{workdir}/{seed}"))
        print(f"  seed {seed}: test/der {metrics['test/der']:.4f}, test/der_beam {metrics['test/der_beam']:.4f}, "
              f"test/string_acc {metrics['test/string_acc']:.4f} in {seconds:.0f} s", flush=True)  # fmt: skip
        runs.append((metrics, seconds))
    per_run = f"{statistics.mean(seconds for _, seconds in runs):.0f} s per run"
    rows = []
    for name, label in (
        ("test/der", "DER greedy"),
        ("test/der_beam", "DER beam 8"),
        ("test/string_acc", "string acc"),
    ):
        values = [metrics[name] for metrics, _ in runs]
        rows.append((f"connected ({label})", config, f"seeds: {','.join(map(str, seeds))}",
                     mean_std(values, scale=100, digits=2) + "%", " / ".join(f"{100 * v:.2f}" for v in values),
                     per_run, ANCHORS["connected"]))  # fmt: skip
    return rows


def main_benchmark() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tasks", nargs="+", default=list(ANCHORS), choices=list(ANCHORS))
    parser.add_argument("--threads", type=int, help="torch threads; default torch's (one per core)")
    args = parser.parse_args()
    if args.threads:  # on a shared machine one thread per run is steadier than two fighting another job
        torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_MODE", "disabled")
    if not os.environ.get("DATA_ROOT"):
        raise SystemExit("error: set DATA_ROOT to the folder holding free-spoken-digit-dataset/recordings")
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for task in args.tasks:
            if task == "connected":
                rows += connected_rows(args.seeds, f"{workdir}/{task}")
                continue
            config, varies, seeds, accuracies, seconds = run_task(task, args.seeds, f"{workdir}/{task}")
            rows.append((task, config, f"{varies}: {seeds}", mean_std(accuracies, scale=100, digits=2) + "%",
                         " / ".join(f"{100 * a:.2f}" for a in accuracies),
                         f"{statistics.mean(seconds):.0f} s per run", ANCHORS[task]))  # fmt: skip
    print(f"\nhardware: {hardware()}; torch {torch.__version__}; {torch.get_num_threads()} threads; "
          f"load average at end {os.getloadavg()[0]:.1f}\n")  # fmt: skip
    print("| task | config | runs | test metric (mean +- std) | per run | wall time | anchor |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    Path("runs").mkdir(exist_ok=True)
    main_benchmark()
