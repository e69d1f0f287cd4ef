"""Shared fixtures: every test runs in its own folder, on the CPU, with W&B off unless it asks for it."""

import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated_run(tmp_path, monkeypatch):
    """Runs, caches and W&B files land in the test's own folder; W&B is off unless a test turns it on."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(sys, "argv", sys.argv[:1])  # the CLI gets its `args`; pytest's argv is not theirs
    return tmp_path


@pytest.fixture
def single_thread():
    """One intra-op thread, for tests of tiny models: on a busy 2-core machine a second spinning thread
    only adds synchronisation and can make them ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def data_root() -> Path | None:
    """The shared real-data folder (`DATA_ROOT`), or None when it is not set."""
    root = os.environ.get("DATA_ROOT")
    return Path(root) if root else None


def require_data(relative: str) -> Path:
    """Path of a file under DATA_ROOT; skips the test with a reason when it is missing."""
    root = data_root()
    if root is None:
        pytest.skip("DATA_ROOT is not set")
    path = root / relative
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path
