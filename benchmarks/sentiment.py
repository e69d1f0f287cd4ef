"""SST-2 benchmark: train from scratch on train_full.tsv, evaluate on dev.tsv, several seeds; prints a table.

    DATA_ROOT=/path/to/data uv run python benchmarks/sentiment.py [--seeds 0 1 2] [--threads 2]

The recipe stops after its epochs (configs/sentiment/sst2.yaml); the training time is reported, not a limit.

Extra arguments after `--` go to the training CLI, e.g. `-- --trainer.max_epochs=1`.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from common.benchmarking import hardware

REPO = Path(__file__).resolve().parents[1]
ANCHORS = "CNN-rand (Kim 2014) 82.7%, BERT-Tiny (pretrained) 83.2%, BiLSTM + GloVe ~87%; target >= 86%"


def run_seed(seed: int, config: str, extra: list[str], workdir: Path) -> dict:
    from projects.sentiment.train import main

    os.chdir(workdir)  # runs/ and the caches of the benchmark stay out of the repository
    args = ["--config", config, f"--seed_everything={seed}", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false", "--data.cache_dir=cache", *extra]  # fmt: skip
    # Tokenizer training and tokenizing are cached across seeds; the clock measures `fit` (training + validation).
    cli = main(args, run=False)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    train_seconds = time.perf_counter() - start
    last = cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)[0]
    best = cli.trainer.checkpoint_callback.best_model_score
    return {"seed": seed, "last": last["val/acc"], "f1": last["val/f1"], "auroc": last["val/auroc"],
            "best": float(best) if best is not None else float("nan"), "seconds": train_seconds,
            "epochs": cli.trainer.current_epoch}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--config", default=str(REPO / "configs/sentiment/sst2.yaml"))
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="torch intra-op threads (default: torch's, one per physical core; 2 train 1.6x faster than 1 here)",
    )
    parser.add_argument("extra", nargs="*", help="arguments passed on to the training CLI (after --)")
    options = parser.parse_args()
    # The training CLI gets its arguments from run_seed, not from this script's command line.
    sys.argv[1:] = []
    if not os.environ.get("DATA_ROOT") or not Path(os.environ["DATA_ROOT"], "sst-2", "dev.tsv").is_file():
        sys.exit("error: set DATA_ROOT to the folder holding sst-2/train_full.tsv and sst-2/dev.tsv")
    os.environ.setdefault("WANDB_MODE", "disabled")
    torch.set_num_threads(options.threads)
    workdir = Path(tempfile.mkdtemp(prefix="sentiment-bench-"))
    results = [run_seed(seed, options.config, options.extra, workdir) for seed in options.seeds]

    def spread(key: str, scale: float = 100) -> str:
        values = [result[key] * scale for result in results]
        deviation = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.2f} ± {deviation:.2f}"

    hardware_used = f"{hardware()}, {options.threads} torch thread(s)"
    print(
        f"\nSST-2 dev (872 sentences), trained from scratch on train_full.tsv; seeds {options.seeds}; {hardware_used}\n"
    )
    print("| metric | value (mean ± std over seeds) | per seed | train time per seed |")
    print("|---|---|---|---|")
    per_seed = lambda key: ", ".join(f"{result[key] * 100:.2f}" for result in results)  # noqa: E731
    minutes = ", ".join(f"{result['seconds'] / 60:.1f} min" for result in results)
    print(f"| dev accuracy, final weights (%) | {spread('last')} | {per_seed('last')} | {minutes} |")
    print(f"| dev accuracy, best epoch (%) | {spread('best')} | {per_seed('best')} | |")
    print(f"| dev macro F1 (%) | {spread('f1')} | {per_seed('f1')} | |")
    print(f"| dev AUROC (%) | {spread('auroc')} | {per_seed('auroc')} | |")
    print(f"\nAnchors: {ANCHORS}. Epochs run: {[result['epochs'] for result in results]}.")


if __name__ == "__main__":
    main()
