"""Shared fixtures: every test runs in its own folder, on the CPU, with W&B off unless it asks for it."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated_run(tmp_path, monkeypatch):
    """Runs, caches and W&B files land in the test's own folder; W&B is off unless a test turns it on."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    return tmp_path


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
