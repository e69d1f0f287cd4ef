"""A hyperparameter search that runs offline on one machine, over a project's W&B sweep file.

    uv run python -m common.search configs/<project>/sweep.yaml --trials 8 [--seed 0] [-- --trainer.max_epochs=5]

Each trial draws the sweep's `parameters` at random (`values`: a choice; `min`/`max`: uniform, `int_uniform`,
`log_uniform_values`; a `bayes` or `grid` method is searched at random too), fits the sweep's `--config` with them
through the project's CLI (one run each: with W&B, all in the group `search-<id>`), and stops a trial early when
its monitored metric is worse than the median of the earlier trials at the same epoch. The winner is chosen on the
sweep's validation metric, never on test; `runs/<project>/search-<id>.json` keeps every trial.
"""

import argparse
import importlib
import json
import math
import os
import random
import secrets
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch import Callback, LightningModule, Trainer

from common.errors import UserInputError
from common.runs import RUNS_ROOT, finish_wandb_run


def draw(distribution: dict[str, Any], rng: random.Random) -> Any:
    """One value of a W&B sweep parameter."""
    if "values" in distribution:
        return rng.choice(distribution["values"])
    if "value" in distribution:
        return distribution["value"]
    low, high = distribution["min"], distribution["max"]
    kind = distribution.get(
        "distribution", "int_uniform" if isinstance(low, int) and isinstance(high, int) else ""
    )
    if kind == "int_uniform":
        return rng.randint(low, high)
    if kind == "log_uniform_values":
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    return rng.uniform(low, high)


class MedianStop(Callback):
    """Stops a trial after a validation epoch on which its metric is worse than the median of the earlier trials'
    values at that epoch (the median-stopping rule), from `after_epochs` on.

    Args:
        curves: the monitored metric per epoch of each earlier trial.
        monitor: the metric.
        mode: `min` or `max`.
        after_epochs: epochs every trial runs before it may be stopped.
    """

    def __init__(self, curves: list[list[float]], monitor: str, mode: str, after_epochs: int = 1) -> None:
        self.curves, self.monitor, self.mode, self.after_epochs = curves, monitor, mode, after_epochs
        self.curve: list[float] = []
        self.stopped_at: int | None = None

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        self.curve.append(float(trainer.callback_metrics[self.monitor]))
        epoch = len(self.curve) - 1
        earlier = [curve[epoch] for curve in self.curves if len(curve) > epoch]
        if epoch + 1 < self.after_epochs or not earlier:
            return
        median, value = statistics.median(earlier), self.curve[-1]
        if (value > median) if self.mode == "min" else (value < median):
            trainer.should_stop = True
            self.stopped_at = epoch


def search(sweep_file: Path, trials: int, seed: int, extra: list[str]) -> dict[str, Any]:
    spec = yaml.safe_load(sweep_file.read_text())
    program, command = spec.get("program", ""), spec.get("command", [])
    project = Path(program).parent.name
    if not program.startswith("projects/") or "--config" not in command:
        raise UserInputError(
            f"{sweep_file} is not a project sweep (program projects/<name>/train.py, --config)"
        )
    config = command[command.index("--config") + 1]
    # A relative --config is relative to the repository the sweep file is in, where `wandb agent` runs it.
    if not Path(config).is_file():
        config = str(sweep_file.resolve().parents[2] / config)
    train = importlib.import_module(f"projects.{project}.train")
    rng, search_id = random.Random(seed), secrets.token_hex(3)
    metric, goal = spec["metric"]["name"], spec["metric"]["goal"]
    mode = "min" if goal == "minimize" else "max"
    curves: list[list[float]] = []
    results = []
    for trial in range(trials):
        chosen = {name: draw(distribution, rng) for name, distribution in spec["parameters"].items()}
        wandb_on = os.environ.get("WANDB_MODE") != "disabled"
        grouping = [f"--trainer.logger.init_args.group=search-{search_id}"] if wandb_on else []
        args = [
            "--config",
            config,
            *(f"--{name}={value}" for name, value in chosen.items()),
            *grouping,
            *extra,
        ]
        cli = train.main(args, run=False)
        stop = MedianStop(curves, metric, mode)
        cli.trainer.callbacks.append(stop)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        finish_wandb_run()  # one W&B run per trial
        best = cli.trainer.checkpoint_callback.best_model_score
        curves.append(stop.curve)
        results.append({"trial": trial, "parameters": chosen, metric: float(best) if best is not None else None,
                        "stopped_at_epoch": stop.stopped_at, "checkpoint": cli.trainer.checkpoint_callback.best_model_path})  # fmt: skip
        print(
            f"trial {trial}: {metric}={results[-1][metric]} {chosen}"
            + (" (stopped early)" if stop.stopped_at is not None else "")
        )
    scored = [result for result in results if result[metric] is not None]
    best = (min if mode == "min" else max)(scored, key=lambda result: result[metric]) if scored else None
    summary = {
        "sweep": str(sweep_file),
        "metric": metric,
        "goal": goal,
        "seed": seed,
        "best": best,
        "trials": results,
    }
    path = Path(RUNS_ROOT, project, f"search-{search_id}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2))
    print(f"best of {trials} trials on {metric}: {best and best['parameters']}; all trials in {path}")
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sweep", type=Path, help="a W&B sweep file: configs/<project>/sweep.yaml")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="seed of the parameter draws")
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []  # every trial's training CLI gets these
    options = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if not options.sweep.is_file():
        sys.exit(f"error: sweep file {options.sweep} not found")
    sys.argv[1:] = []  # each trial's CLI gets its arguments from here
    try:
        return search(options.sweep, options.trials, options.seed, extra)
    except UserInputError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
