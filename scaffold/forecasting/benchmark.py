"""Benchmark project_name: the quickstart (or `--config`) over seeds, mean +- std of its test metrics.

uv run python benchmarks/project_name.py [--config configs/project_name/quickstart.yaml] [--seeds 0 1 2]
"""

from pathlib import Path

from common.benchmarking import seeds_table
from projects.project_name.train import main as train

REPO = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    seeds_table(
        train,
        REPO / "configs/project_name/quickstart.yaml",
        ("test/mse", "test/mae", "test/naive_mse"),
        __doc__,
    )
