"""Pieces of the benchmark scripts: the hardware a figure was measured on, seeded runs of a project's CLI, and
mean +- std over seeds for the tables they print."""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def hardware() -> str:
    """The GPU's name, or the CPU's core count and model, for the `hardware` column of a results table."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        lscpu = ""
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")),
                 platform.processor() or platform.machine())  # fmt: skip
    return f"{os.cpu_count()}-core CPU, {model}"


def mean_std(values: list[float], scale: float = 1.0, digits: int = 4) -> str:
    """`mean +- std` of `values` times `scale` (the std of one value is omitted)."""
    scaled = [value * scale for value in values]
    if len(scaled) == 1:
        return f"{scaled[0]:.{digits}f}"
    return f"{statistics.mean(scaled):.{digits}f} +- {statistics.stdev(scaled):.{digits}f}"


def fit_and_test(main: Callable[..., Any], args: list[str], workdir: Path) -> tuple[dict[str, float], float]:
    """One `fit` (which tests the best checkpoint after it) through a project's `train.main`, with its runs and CSV
    logs under `workdir` and W&B off; returns the final metrics and the wall-clock seconds of the whole command."""
    os.environ.setdefault("WANDB_MODE", "disabled")
    logs = ["--trainer.logger=lightning.pytorch.loggers.CSVLogger", f"--trainer.logger.init_args.save_dir={workdir}",
            f"--trainer.default_root_dir={workdir}", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false"]  # fmt: skip
    start = time.perf_counter()
    cli = main(["fit", *args, *logs])
    seconds = time.perf_counter() - start
    return {name: float(value) for name, value in cli.trainer.callback_metrics.items()}, seconds


def seeds_table(
    train: Callable[..., Any], default_config: Path, metrics: tuple[str, ...], doc: str | None
) -> str:
    """The command line of a project's seeds benchmark: `fit` `--config` (default `default_config`) once per
    `--seeds` value, then print a markdown table of `metrics` as mean +- std over the seeds, with time and hardware."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(default_config))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("extra", nargs="*", help="arguments passed on to the training CLI (after --)")
    options = parser.parse_args()
    sys.argv[1:] = []  # the training CLI gets its arguments from here, not from this script's command line
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        runs = [fit_and_test(train, ["--config", options.config, f"--seed_everything={seed}", *options.extra],
                             Path(workdir)) for seed in options.seeds]  # fmt: skip
    figures = [mean_std([run[name] for run, _ in runs]) for name in metrics]
    table = "\n".join([
        f"| config | seeds | {' | '.join(metrics)} | seconds per run | hardware |",
        "|---|---|" + "---|" * len(metrics) + "---|---|",
        f"| {Path(options.config).name} | {len(runs)} | {' | '.join(figures)} | "
        f"{mean_std([seconds for _, seconds in runs], digits=1)} | {hardware()} |",
    ])  # fmt: skip
    print(f"\n{table}")
    return table
