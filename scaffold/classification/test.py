"""project_name: the data paths, bad input, learning, and the documented commands through the real CLI."""

import csv
from pathlib import Path

import pytest
import torch
import yaml

from common.errors import UserInputError
from projects.project_name.data import ProjectNameDataModule
from projects.project_name.model import MLP
from projects.project_name.module import ProjectNameClassifier
from projects.project_name.train import main

REPO = Path(__file__).resolve().parents[1]
QUICK = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def write_csv(path: Path, rows: int = 60) -> Path:
    """Two separable classes named by strings, two numeric features."""
    generator = torch.Generator().manual_seed(0)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["width", "height", "label"])
        for row in range(rows):
            label = "dog" if row % 2 else "cat"
            width, height = (torch.randn(2, generator=generator) + (3.0 if label == "dog" else 0.0)).tolist()
            writer.writerow([width, height, label])
    return path


def test_the_synthetic_splits_are_disjoint_complete_and_seeded():
    data = ProjectNameDataModule(synthetic_size=200, synthetic_classes=3, synthetic_features=5)
    data.setup("fit")
    sizes = {stage: len(labels) for stage, (_, labels) in data.splits.items()}
    assert sizes == {"val": 30, "test": 30, "train": 140}
    rows = torch.cat([features for features, _ in data.splits.values()])
    assert len(torch.unique(rows, dim=0)) == 200  # every point in exactly one split
    assert data.input_size == 5 and data.class_names == ["class_0", "class_1", "class_2"]
    assert data.data_source.startswith("synthetic")
    again = ProjectNameDataModule(synthetic_size=200, synthetic_classes=3, synthetic_features=5)
    again.setup("fit")
    assert torch.equal(again.splits["train"][0], data.splits["train"][0])


def test_a_csv_with_named_classes_through_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_ROOT", str(tmp_path))
    write_csv(tmp_path / "pets.csv")
    data = ProjectNameDataModule(data_file="$DATA_ROOT/pets.csv")
    data.setup("fit")
    assert data.class_names == ["cat", "dog"] and data.input_size == 2
    assert data.data_source == str(tmp_path / "pets.csv")
    features, labels = data.splits["train"]
    assert features.dtype == torch.float32 and set(labels.tolist()) == {0, 1}
    mean, std = data.feature_stats()
    assert torch.allclose(mean, features.mean(0)) and torch.allclose(std, features.std(0))


@pytest.mark.parametrize(
    "content, message",
    [
        ("width,height\n1,2\n3,4\n", "has no column 'label'"),
        ("width,colour,label\n1,red,cat\n2,blue,dog\n", "column 'colour' .* is not numeric"),
        ("width,label\n1,cat\n,dog\n", "missing or infinite values \\(first: row 3, column 'width'\\)"),
        ("", "cannot read .* as CSV"),
    ],
    ids=["no label column", "text feature", "missing value", "empty file"],
)
def test_bad_csvs_are_one_line_errors(tmp_path, content, message):
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(UserInputError, match=message):
        ProjectNameDataModule(data_file=str(tmp_path / "bad.csv")).setup("fit")


def test_a_missing_file_or_unset_variable_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(UserInputError, match="does not exist"):
        ProjectNameDataModule(data_file=str(tmp_path / "nothing.csv"))
    monkeypatch.delenv("DATA_ROOT", raising=False)
    with pytest.raises(UserInputError, match=r"names \$DATA_ROOT, which is not set"):
        ProjectNameDataModule(data_file="$DATA_ROOT/pets.csv")


def test_the_model_overfits_a_batch(single_thread):
    torch.manual_seed(0)
    features, labels = torch.randn(32, 6), torch.randint(0, 3, (32,))
    model = ProjectNameClassifier(network=MLP, input_size=6, class_names=["a", "b", "c"])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(features), labels)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05 and (model(features).argmax(-1) == labels).all()


def test_the_quickstart_learns_then_predicts_from_its_checkpoint(single_thread):
    cli = main(["fit", "--config", str(REPO / "configs/project_name/quickstart.yaml"), *QUICK])
    assert cli.trainer.callback_metrics["test/acc"] > 0.9  # 4 classes: chance is 0.25
    [run] = Path("runs", "project_name").iterdir()
    config = yaml.safe_load((run / "config.yaml").read_text())
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
    assert len(rows) == int(config["data"]["synthetic_size"] * config["data"]["test_fraction"])
    assert {row["class"] for row in rows} <= {f"class_{index}" for index in range(4)}


def test_a_csv_run_saves_the_expanded_path_and_says_what_it_read(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_ROOT", str(tmp_path))
    write_csv(tmp_path / "pets.csv", rows=80)
    (tmp_path / "new.csv").write_text("width,height\n0.1,0.2\n3.2,2.9\n")
    main(["fit", "--data.data_file=$DATA_ROOT/pets.csv", "--trainer.max_epochs=2", *QUICK])
    [run] = Path("runs", "project_name").iterdir()
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["data_file"] == str(
        tmp_path / "pets.csv"
    )
    assert yaml.safe_load((run / "hparams.yaml").read_text())["data_source"] == str(tmp_path / "pets.csv")
    main(["predict", "--config", str(run / "config.yaml"), "--ckpt_path", str(run / "checkpoints/last.ckpt"),
          "--data.predict_file=$DATA_ROOT/new.csv", *QUICK])  # fmt: skip
    assert (run / "predictions.csv").read_text().splitlines()[0] == "row,class,probability"
    assert len((run / "predictions.csv").read_text().splitlines()) == 3
