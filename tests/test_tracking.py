"""W&B as its users expect it, read back from the offline run file: name, group, tags, job type, the best-value
summary, the learning-rate curve and the model artifact."""

from pathlib import Path

import pytest
from conftest import REPO
from jsonargparse import Namespace
from wandb_records import run_records

from common.tracking import run_identity
from projects.image_classifier.train import main

DIGITS = str(REPO / "configs" / "image_classifier" / "digits.yaml")
CPU = str(REPO / "configs" / "trainer" / "cpu.yaml")


def test_a_fit_is_one_named_grouped_tagged_run_with_an_lr_curve_and_a_model_artifact(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    main(["fit", "--config", DIGITS, "--config", CPU, "--trainer.max_epochs=2", "--trainer.log_every_n_steps=1",
          "--trainer.enable_progress_bar=false", "--trainer.precision=32-true"])  # fmt: skip
    [run_folder] = Path("runs/image_classifier").iterdir()
    [run_file] = Path("runs/wandb").glob(f"offline-run-*-{run_folder.name}/run-*.wandb")
    run = run_records(run_file)
    assert run["id"] == run_folder.name  # the run folder and the W&B run share the id
    assert run["name"] == f"image_classifier-digits-{run_folder.name}"
    assert (run["group"], run["job_type"]) == ("digits", "fit")
    assert run["tags"] == ["trainer:cpu", "dataset:digits"]
    assert run["metrics"]["val/acc"] == {
        "max"
    }  # the summary keeps the best validation accuracy, not the last
    assert any(key.startswith("lr-") for key in run["history_keys"]), sorted(run["history_keys"])
    artifact = run["artifacts"][f"model-{run_folder.name}"]
    assert artifact["type"] == "model" and sorted(artifact["aliases"]) == ["best", "latest"]
    assert artifact["files"] == ["best.ckpt", "config.yaml"]


def test_a_test_of_a_trained_run_resumes_that_run_instead_of_opening_a_new_one(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    quiet = ["--trainer.enable_progress_bar=false", "--trainer.precision=32-true"]
    main(["fit", "--config", DIGITS, "--trainer.max_epochs=1", "--test_after_fit=false", *quiet])
    [run_folder] = Path("runs/image_classifier").iterdir()
    main(["test", "--config", str(run_folder / "config.yaml"), "--ckpt_path", str(run_folder / "checkpoints/best.ckpt"),
          *quiet])  # fmt: skip
    assert list(Path("runs/image_classifier").iterdir()) == [run_folder]  # no second run folder
    fit_file, test_file = sorted(Path("runs/wandb").glob(f"offline-run-*-{run_folder.name}/run-*.wandb"))
    tested = run_records(test_file)
    assert tested["id"] == run_records(fit_file)["id"] == run_folder.name  # the same W&B run, resumed
    assert (
        tested["name"] == f"image_classifier-digits-{run_folder.name}"
        and "test/acc" in tested["history_keys"]
    )


@pytest.mark.parametrize(
    ("files", "data", "expected_group", "expected_tags"),
    [
        (["configs/sentiment/sst2.yaml", "configs/trainer/gpu.yaml"], {}, "sst2", ["trainer:gpu"]),
        ([], {"dataset": "mnist"}, "default", ["dataset:mnist"]),
    ],
)
def test_run_identity_from_the_command(files, data, expected_group, expected_tags):
    config = Namespace(config=[REPO / path for path in files], data=Namespace(**data))
    identity = run_identity(config, "test", "sentiment", "abc123")
    assert identity == {"name": f"sentiment-{expected_group}-abc123", "group": expected_group,
                        "tags": expected_tags, "job_type": "test"}  # fmt: skip


def test_every_process_of_one_run_gets_the_same_run_id(monkeypatch):
    from common.cli import shared_run_id

    for name in (
        "LOCAL_RANK",
        "RANK",
        "TORCHELASTIC_RUN_ID",
        "SLURM_JOB_ID",
        "SLURM_NTASKS",
        "TEMPLATE_RUN_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    first, second = shared_run_id(), shared_run_id()
    assert first != second and len(first) == 8  # each new run its own id
    monkeypatch.setenv("LOCAL_RANK", "1")  # a DDP process that rank 0 started, with rank 0's environment
    assert shared_run_id() == second
    monkeypatch.delenv("LOCAL_RANK")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-7")  # torchrun: processes that share only the launch id
    assert shared_run_id() == shared_run_id()
