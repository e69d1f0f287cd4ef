"""project_name: windows against hand-made ones, the data paths, bad input, learning, and the documented commands
through the real CLI."""

import csv
from pathlib import Path

import pytest
import torch
import yaml

from common.errors import UserInputError
from projects.project_name.data import ProjectNameDataModule, windows
from projects.project_name.model import GRUForecaster
from projects.project_name.module import ProjectNameForecaster
from projects.project_name.train import main

REPO = Path(__file__).resolve().parents[1]
QUICK = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def write_csv(path: Path, rows: int = 300) -> Path:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["hour", "load", "temperature"])
        for hour in range(rows):
            writer.writerow([hour, (hour % 24) / 24, 10 + hour % 7])
    return path


def test_windows_are_the_rows_that_follow_each_other():
    series = torch.arange(10.0).unsqueeze(1)  # (T=10, C=1)
    history, future = windows(series, lookback=3, horizon=2)
    assert history.shape == (6, 3, 1) and future.shape == (6, 2, 1)
    assert history[0, :, 0].tolist() == [0, 1, 2] and future[0, :, 0].tolist() == [3, 4]
    assert history[-1, :, 0].tolist() == [5, 6, 7] and future[-1, :, 0].tolist() == [8, 9]


def test_the_splits_follow_in_time_and_never_look_past_their_end():
    data = ProjectNameDataModule(synthetic_length=1000, lookback=48, horizon=12)
    data.setup("fit")
    series = data.read_series()
    train_future, val_history = data.splits["train"][1], data.splits["val"][0]
    assert torch.equal(train_future[-1], series[688:700])  # the last training target ends at row 700 = 70%
    assert torch.equal(val_history[0], series[700 - 48 : 700])  # validation forecasts start at row 700
    assert len(data.splits["test"][0]) == 1000 - 800 - 12 + 1
    assert data.data_source.startswith("synthetic")


def test_a_csv_with_a_feature_column_through_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_ROOT", str(tmp_path))
    write_csv(tmp_path / "load.csv")
    data = ProjectNameDataModule(data_file="$DATA_ROOT/load.csv", target_columns=["load"],
                                 feature_columns=["temperature"], lookback=24, horizon=6)  # fmt: skip
    data.setup("fit")
    history, future = data.splits["train"]
    assert (data.input_channels, data.output_channels) == (2, 1) and data.target_names == ["load"]
    assert history.shape[1:] == (24, 2) and future.shape[1:] == (6, 1)
    assert history[0, :, 1].tolist() == [10 + hour % 7 for hour in range(24)]


@pytest.mark.parametrize(
    "content, options, message",
    [
        ("a,b\n1,2\n", {"target_columns": ["load"]}, "has no column 'load'"),
        ("load\n1\nx\n", {"target_columns": ["load"]}, "column 'load' .* is not numeric"),
        ("load\n1\n\n2\ninf\n", {"target_columns": ["load"]}, "missing or infinite values"),
        ("load\n" + "1\n" * 20, {"target_columns": ["load"]}, "fewer than lookback \\+ horizon"),
        ("load\n1\n", {}, "name the column"),
    ],
    ids=["no column", "text", "infinite", "too short", "no target"],
)
def test_bad_csvs_are_one_line_errors(tmp_path, content, options, message):
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(UserInputError, match=message):
        ProjectNameDataModule(data_file=str(tmp_path / "bad.csv"), **options).setup("fit")


def test_the_model_overfits_a_batch(single_thread):
    torch.manual_seed(0)
    history, future = torch.randn(16, 24, 1), torch.randn(16, 6, 1)
    model = ProjectNameForecaster(network=GRUForecaster, lookback=24, horizon=6)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        loss = (model(history) - future).square().mean()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05  # from about 2 (unit-variance targets plus the persistence offset)


def test_the_quickstart_beats_persistence_then_forecasts_from_its_checkpoint(single_thread):
    cli = main(["fit", "--config", str(REPO / "configs/project_name/quickstart.yaml"), *QUICK])
    metrics = cli.trainer.callback_metrics
    assert metrics["test/mse"] < 0.7 * metrics["test/naive_mse"]
    [run] = Path("runs", "project_name").iterdir()
    assert yaml.safe_load((run / "hparams.yaml").read_text())["data_source"].startswith("synthetic")
    main(
        [
            "predict",
            "--config",
            str(run / "config.yaml"),
            "--ckpt_path",
            str(run / "checkpoints/best.ckpt"),
            *QUICK,
        ]
    )
    with (run / "predictions.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [int(row["step"]) for row in rows] == list(range(1, 25)) and {row["start"] for row in rows} == {
        "3000"
    }
    assert all(-3 < float(row["value"]) < 4 for row in rows)  # the synthetic series' own range
