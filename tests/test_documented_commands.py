"""Every project's documented commands, in order: `fit` a quickstart, then `validate`, `test` and `predict` from the
run's saved `config.yaml` and checkpoint, through the project's `train.main`, as the READMEs give them."""

import csv
import importlib
from pathlib import Path

import pytest
from PIL import Image

from noxfile import QUICKSTARTS  # every project's offline quickstart, a new one's too

REPO = Path(__file__).resolve().parents[1]
FEW_STEPS = ["--trainer.max_steps=4", "--trainer.limit_val_batches=2", "--trainer.limit_test_batches=2",
             "--trainer.limit_predict_batches=2", "--trainer.enable_progress_bar=false"]  # fmt: skip


def predict_inputs(project: str, folder: Path) -> list[str]:
    """What each project's README passes to `predict`, written here."""
    if project == "image_classifier":
        images = folder / "my_images"
        images.mkdir()
        for index in range(3):
            Image.new("L", (8, 8), color=40 * index).save(images / f"{index}.png")
        return ["--data.predict_dir", str(images)]
    if project == "sentiment":
        (folder / "reviews.txt").write_text("a gorgeous , witty film\na dull , lifeless mess\n")
        return ["--data.predict_file", str(folder / "reviews.txt")]
    if project == "video_classifier":
        from projects.video_classifier.procedural import write_procedural_videos

        write_procedural_videos(
            str(folder / "new_videos"), videos_per_class=1, frames=12, size=32, num_classes=2
        )
        return ["--data.predict_dir", str(folder / "new_videos")]
    if project == "speech":
        from projects.speech.procedural import write_procedural_words

        write_procedural_words(str(folder / "clips"), clips_per_class=1)
        return ["--data.predict_dir", str(folder / "clips")]
    if project == "dcgan":
        return ["--data.predict_samples", "4"]
    return []  # time_series forecasts the horizon after the training series


def logged_rows(run: Path) -> list[dict[str, str]]:
    """The rows of a run's metrics.csv, each without its empty cells."""
    with (run / "metrics.csv").open(newline="") as file:
        return [{key: value for key, value in row.items() if value} for row in csv.DictReader(file)]


def run_folders(project: str) -> list[Path]:
    return sorted(Path("runs", project).iterdir(), key=lambda path: path.stat().st_mtime)


@pytest.mark.parametrize("project", list(QUICKSTARTS))
def test_fit_then_validate_test_predict_from_the_saved_run(project, tmp_path, single_thread):
    main = importlib.import_module(f"projects.{project}.train").main
    main(["fit", "--config", str(REPO / QUICKSTARTS[project]), *FEW_STEPS])
    [run] = run_folders(project)
    checkpoints = run / "checkpoints"
    checkpoint = (
        checkpoints / "best.ckpt" if (checkpoints / "best.ckpt").exists() else checkpoints / "last.ckpt"
    )
    saved = ["--config", str(run / "config.yaml"), "--ckpt_path", str(checkpoint), *FEW_STEPS]
    trained_config, fit_rows = (run / "config.yaml").read_text(), logged_rows(run)

    for subcommand in ("validate", "test"):
        cli = main([subcommand, *saved])
        assert cli.trainer.state.status == "finished", subcommand
        if project != "dcgan":  # the digits GAN logs sample quality only with a judge classifier checkpoint
            stage = "val" if subcommand == "validate" else "test"
            assert any(name.startswith(f"{stage}/") for name in cli.trainer.callback_metrics), subcommand

    main(["predict", *saved, *predict_inputs(project, tmp_path)])
    # Everything went into the run that trained the model, and nothing of the training record was lost.
    assert [folder for folder in run_folders(project) if (folder / "config.yaml").exists()] == [run]
    written = [path for path in run.rglob("*") if path.is_file()]
    assert any(path.name.startswith("predictions") or path.suffix == ".png" for path in written), written
    assert {"validate_config.yaml", "test_config.yaml", "predict_config.yaml"} <= {
        path.name for path in written
    }
    assert (run / "config.yaml").read_text() == trained_config
    rows = logged_rows(run)
    assert len(rows) > len(fit_rows) and all(row in rows for row in fit_rows)
