"""Every project's W&B sweep names options its CLI has, the metric its checkpoints monitor, and a real program."""

import importlib
from pathlib import Path

import pytest
import yaml
from conftest import REPO

SWEEPS = sorted((REPO / "configs").glob("*/sweep.yaml"))
GOALS = {"max": "maximize", "min": "minimize"}


def first_value(distribution: dict):
    return distribution["values"][0] if "values" in distribution else distribution["min"]


def build(project: str, config: str, *overrides: str):
    train = importlib.import_module(f"projects.{project}.train")
    return train.main(["--config", str(REPO / config), *overrides], run=False)


def test_every_project_has_a_sweep():
    assert {path.parent.name for path in SWEEPS} == {path.name for path in (REPO / "projects").iterdir()
                                                     if (path / "train.py").is_file()}  # fmt: skip


@pytest.mark.parametrize("sweep", SWEEPS, ids=lambda path: path.parent.name)
def test_a_sweep_runs_its_project_on_options_the_cli_knows(sweep: Path, monkeypatch):
    monkeypatch.delenv("DATA_ROOT", raising=False)
    spec = yaml.safe_load(sweep.read_text())
    project = sweep.parent.name
    assert spec["program"] == f"projects/{project}/train.py" and (REPO / spec["program"]).is_file()
    command = spec["command"]
    assert command[:4] == ["${env}", "${interpreter}", "${program}", "fit"] and command[-1] == "${args}"
    config = command[command.index("--config") + 1]

    overrides = {name: first_value(distribution) for name, distribution in spec["parameters"].items()}
    cli = build(project, config, *(f"--{name}={value}" for name, value in overrides.items()))
    for name, value in overrides.items():
        assert cli.config[name] == value, name  # the option exists and took the sweep's value
    assert spec["metric"]["name"] == cli.config.checkpoint.monitor
    assert spec["metric"]["goal"] == GOALS[cli.config.checkpoint.mode]


def test_an_option_the_cli_does_not_know_is_refused():
    with pytest.raises(SystemExit):
        build("image_classifier", "configs/image_classifier/digits.yaml", "--model.learning_rat=0.1")
