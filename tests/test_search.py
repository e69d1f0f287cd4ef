"""The offline search (`python -m common.search`): draws from a sweep file's distributions, the median-stopping
rule, and a 2-trial search on the digits quickstart whose trials are W&B runs of one group."""

import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import REPO
from wandb_records import run_records

from common.search import MedianStop, draw, main


def test_draws_follow_each_w_and_b_distribution():
    rng = random.Random(0)
    log_values = [
        draw({"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1}, rng) for _ in range(2000)
    ]
    assert min(log_values) >= 1e-4 and max(log_values) <= 1e-1
    assert (
        0.4 < sum(value < 3.16e-3 for value in log_values) / 2000 < 0.6
    )  # half below the geometric midpoint
    assert {draw({"values": [32, 64]}, rng) for _ in range(50)} == {32, 64}
    assert {type(draw({"min": 1, "max": 3}, rng)) for _ in range(20)} == {int}
    assert 0.0 <= draw({"min": 0.0, "max": 0.5}, rng) <= 0.5


def test_median_stopping_stops_a_trial_worse_than_the_earlier_median():
    def epoch(stop: MedianStop, value: float) -> bool:
        trainer = SimpleNamespace(sanity_checking=False, callback_metrics={"val/mse": torch.tensor(value)},
                                  should_stop=False)  # fmt: skip
        stop.on_validation_epoch_end(trainer, None)
        return trainer.should_stop

    earlier = [[1.0, 0.5], [2.0, 0.7], [3.0, 0.9]]  # medians 2.0, then 0.7
    stop = MedianStop(earlier, "val/mse", "min", after_epochs=1)
    assert not epoch(stop, 1.5) and epoch(stop, 0.8) and stop.stopped_at == 1
    assert epoch(MedianStop(earlier, "val/mse", "min"), 2.5)  # worse than the median at once
    assert not epoch(MedianStop([], "val/mse", "min"), 9.0)  # the first trial runs in full


def test_a_two_trial_search_on_the_digits_quickstart(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    summary = main([str(REPO / "configs/image_classifier/sweep.yaml"), "--trials", "2", "--",
                    "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false"])  # fmt: skip
    trials = summary["trials"]
    assert len(trials) == 2 and trials[0]["parameters"] != trials[1]["parameters"]
    assert summary["best"] == max(trials, key=lambda trial: trial["val/acc"])  # chosen on validation
    [saved] = Path("runs/image_classifier").glob("search-*.json")
    assert json.loads(saved.read_text()) == summary
    groups = {run_records(path)["group"] for path in Path("runs/wandb").glob("offline-run-*/run-*.wandb")}
    assert groups == {f"search-{saved.stem.removeprefix('search-')}"}  # both trials in the search's group


def test_a_file_that_is_not_a_project_sweep_is_one_line(tmp_path):
    (tmp_path / "sweep.yaml").write_text(
        "program: train.py\nmetric: {name: loss, goal: minimize}\nparameters: {}\n"
    )
    with pytest.raises(SystemExit, match="is not a project sweep"):
        main([str(tmp_path / "sweep.yaml")])
