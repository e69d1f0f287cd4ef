"""Surviving interruption through the real CLI: SIGKILL mid-epoch and resume, SIGTERM, `--ckpt_path last`, a full disk,
a NaN loss. Each run is a `train.py` process, as a user (or a scheduler) starts and stops it."""

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from wandb_records import config_and_summary

from common.checkpointing import BestAndLastCheckpoint
from common.resume import ResumableLoader

REPO = Path(__file__).resolve().parents[1]
TRAIN = str(REPO / "projects" / "image_classifier" / "train.py")
# Digits with 64 images a batch: 20 batches an epoch; a checkpoint every 3 steps is mid-epoch until step 60.
RUN = ["fit", "--config", str(REPO / "configs" / "image_classifier" / "digits.yaml"), "--trainer.max_epochs=2",
       "--data.batch_size=64", "--trainer.deterministic=true", "--checkpoint.last_every_n_steps=3",
       "--trainer.enable_progress_bar=false", "--test_after_fit=false"]  # fmt: skip
STEPS_PER_EPOCH = 20


def train(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, TRAIN, *RUN, *args], cwd=cwd, env=environment, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def start(*args: str, cwd: Path) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, TRAIN, *RUN, *args], cwd=cwd, env=environment,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for_checkpoint(process: subprocess.Popen, folder: Path) -> Path:
    """The first `last.ckpt` the running process writes (written atomically, so complete when it appears)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        found = list(folder.glob("runs/image_classifier/*/checkpoints/last.ckpt"))
        if found:
            return found[0]
        time.sleep(0.01)
    raise AssertionError(f"no checkpoint appeared (exit status {process.poll()})")


def final_weights(folder: Path) -> dict[str, torch.Tensor]:
    [last] = folder.glob("runs/image_classifier/*/checkpoints/last.ckpt")
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["global_step"] == 2 * STEPS_PER_EPOCH
    return checkpoint["state_dict"]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_resumed_loader_starts_at_the_next_batch_in_the_same_order(num_workers):
    torch.manual_seed(5)
    loader = ResumableLoader(torch.arange(12), batch_size=2, shuffle=True, num_workers=num_workers)
    loader.sampler.set_epoch(1)
    epoch = [batch.tolist() for batch in loader]
    loader.load_state_dict({"batches_done": 2})  # the checkpoint of a run killed after two batches
    assert [batch.tolist() for batch in loader] == epoch[2:]
    assert loader.state_dict() == {"batches_done": 6}
    assert [batch.tolist() for batch in loader] == epoch  # the next pass is whole again


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, torch.Tensor]:
    folder = tmp_path_factory.mktemp("uninterrupted")
    train(cwd=folder)
    return final_weights(folder)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_ends_with_the_uninterrupted_weights(uninterrupted, tmp_path):
    process = start(cwd=tmp_path)
    checkpoint = wait_for_checkpoint(process, tmp_path)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    step = torch.load(checkpoint, weights_only=True)["global_step"]
    assert 0 < step < 2 * STEPS_PER_EPOCH and step % STEPS_PER_EPOCH != 0  # killed mid-epoch

    train("--ckpt_path=last", cwd=tmp_path)
    assert len(list(tmp_path.glob("runs/image_classifier/*"))) == 1  # resumed in the same run folder
    resumed = final_weights(tmp_path)
    assert resumed.keys() == uninterrupted.keys()
    for name, value in uninterrupted.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=0, msg=name)


@pytest.mark.slow
def test_sigterm_saves_last_checkpoint_and_exits_non_zero(tmp_path):
    process = start(cwd=tmp_path)
    wait_for_checkpoint(process, tmp_path)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "stopped by SIGTERM; resume with --ckpt_path" in stderr
    [last] = tmp_path.glob("runs/image_classifier/*/checkpoints/last.ckpt")
    saved_step = torch.load(last, weights_only=True)["global_step"]
    assert saved_step % 3 != 0 or saved_step > 3  # saved at the stop, not only at the every-3-steps points
    train("--ckpt_path", str(last.parent.parent), cwd=tmp_path)  # a run folder resumes its last.ckpt
    assert torch.load(last, weights_only=True)["global_step"] == 2 * STEPS_PER_EPOCH


@pytest.mark.slow
def test_resume_keeps_the_run_folder_wandb_run_and_best_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    train("--trainer.max_epochs=1", cwd=tmp_path)
    [run] = tmp_path.glob("runs/image_classifier/*")
    first_best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    train("--ckpt_path=last", cwd=tmp_path)
    assert list(tmp_path.glob("runs/image_classifier/*")) == [run]
    wandb_runs = sorted(tmp_path.glob("runs/wandb/offline-run-*"))
    assert len(wandb_runs) == 2 and all(folder.name.endswith(f"-{run.name}") for folder in wandb_runs)
    [record] = wandb_runs[-1].glob("run-*.wandb")
    summary = config_and_summary(record)[1]
    assert (
        summary["trainer/global_step"] >= 2 * STEPS_PER_EPOCH - 1
    )  # the resumed run logs on from the old steps
    first, resumed = (
        checkpoint_state(checkpoint) for checkpoint in (first_best, run / "checkpoints" / "last.ckpt")
    )
    # Best-checkpoint tracking went on from the first run's best score instead of starting over.
    assert resumed["best_model_score"] >= first["best_model_score"]
    assert Path(resumed["best_model_path"]) == (run / "checkpoints" / "best.ckpt").absolute()


def checkpoint_state(checkpoint: dict | Path) -> dict:
    """What `BestAndLastCheckpoint` saved in a checkpoint."""
    if isinstance(checkpoint, Path):
        checkpoint = torch.load(checkpoint, weights_only=True)
    [state] = [
        value for key, value in checkpoint["callbacks"].items() if key.startswith("BestAndLastCheckpoint")
    ]
    return state


@pytest.mark.parametrize(
    ("ckpt_path", "expected"),
    [("last", "no run of image_classifier under"), ("missing.ckpt", "missing.ckpt not found"),
     ("empty.ckpt", "empty.ckpt is empty"), ("truncated.ckpt", "truncated or not a checkpoint file"),
     ("notes.ckpt", "truncated or not a checkpoint file"), ("weights.ckpt", "is not a Lightning checkpoint (no state_dict)"),
     ("dcgan.ckpt", "is a checkpoint of the dcgan project; use projects/dcgan/train.py")],
)  # fmt: skip
def test_bad_ckpt_path_is_one_line(ckpt_path, expected, tmp_path):
    from projects.image_classifier.train import main

    (tmp_path / "empty.ckpt").touch()
    (tmp_path / "notes.ckpt").write_text("not a checkpoint\n")
    torch.save({"weight": torch.zeros(3)}, tmp_path / "weights.ckpt")
    torch.save({"state_dict": {}, "project": "dcgan"}, tmp_path / "dcgan.ckpt")
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "epoch": 3}, tmp_path / "whole.ckpt")
    (tmp_path / "truncated.ckpt").write_bytes((tmp_path / "whole.ckpt").read_bytes()[:1500])
    with pytest.raises(SystemExit) as stopped:
        main([*RUN, f"--ckpt_path={ckpt_path}"])
    message = str(stopped.value.code)
    assert message.startswith("error: ") and expected in message and "\n" not in message


def test_nan_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path):
    from projects.image_classifier.train import main

    # lr 1e6 breaks the loss within a few steps of the second epoch's start; the first epoch's checkpoints stay.
    with pytest.raises(SystemExit) as stopped:
        main([*RUN, "--trainer.max_epochs=3", "--model.lr=1e6", "--model.schedule=constant"])
    message = str(stopped.value.code)
    assert message.startswith("error: the training loss became nan at step ") or "became inf" in message
    [run] = tmp_path.glob("runs/image_classifier/*")
    saved = [torch.load(path, weights_only=True) for path in run.glob("checkpoints/*.ckpt")]
    for checkpoint in saved:  # what was saved before the loss broke holds finite weights
        weights = checkpoint["state_dict"].values()
        assert all(torch.isfinite(value).all() for value in weights if value.is_floating_point())
    if saved:
        assert "the last good checkpoint" in message and "last.ckpt" in message


class OneWeight(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.ones(4, 1), batch_size=2)


def fit_with_a_file_size_limit(folder: Path, limit: int | None) -> None:
    if limit is not None:  # a full disk, for this process: writes past `limit` bytes fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    checkpoint = BestAndLastCheckpoint(monitor=None, dirpath=folder)
    trainer = Trainer(max_epochs=2 if limit is None else 3, callbacks=[checkpoint], logger=False,
                      enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")  # fmt: skip
    trainer.fit(OneWeight(), ckpt_path=folder / "last.ckpt" if limit is not None else None)


def test_a_failed_checkpoint_write_keeps_the_good_last_checkpoint(tmp_path):
    import multiprocessing

    fit_with_a_file_size_limit(tmp_path, None)
    good = (tmp_path / "last.ckpt").read_bytes()
    process = multiprocessing.get_context("fork").Process(
        target=fit_with_a_file_size_limit, args=(tmp_path, 1024)
    )
    process.start()
    process.join(120)
    assert process.exitcode != 0  # the write failed
    assert (tmp_path / "last.ckpt").read_bytes() == good
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 4
    assert not list(tmp_path.glob("*.partial"))


def test_ckpt_path_auto_starts_a_new_run_then_resumes_it(tmp_path):
    from projects.image_classifier.train import main

    main([*RUN, "--trainer.max_epochs=1", "--ckpt_path=auto"])  # nothing to resume: a new run
    main([*RUN, "--ckpt_path=auto"])  # the scheduler restarts the same job script
    [run] = tmp_path.glob("runs/image_classifier/*")
    assert (
        torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2 * STEPS_PER_EPOCH
    )


# Two gloo processes train a dropout layer; each draws a rank-dependent amount of randomness a step (as a random
# crop that retries does), so the two ranks' generators part ways. Resuming mid-epoch at step 3 of 8 from the
# checkpoint the uninterrupted run wrote must give each rank its own generators back.
DDP_RESUME_SCRIPT = """
import sys
import torch
from lightning.pytorch import LightningModule, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import TensorDataset
from common.resume import ExactResume, ResumableLoader


class Dropped(LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Linear(4, 1))

    def training_step(self, batch, batch_idx):
        torch.rand(self.global_rank + 1)
        return self.layer(batch[0]).square().mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):  # 32 rows: 4 batches of 4 on each of the two ranks an epoch
        return ResumableLoader(TensorDataset(torch.linspace(-1, 1, 128).view(32, 4)), batch_size=4)


def fit(folder, ckpt_path=None):
    seed_everything(0)
    model = Dropped()
    checkpoint = ModelCheckpoint(folder, "{step}", every_n_train_steps=3, save_top_k=-1)
    trainer = Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=8, callbacks=[ExactResume(), checkpoint],
                      logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, ckpt_path=ckpt_path)
    return trainer, model


folder = sys.argv[1]
_, uninterrupted = fit(folder)
trainer, resumed = fit(f"{folder}/resumed", f"{folder}/step=3.ckpt")
if trainer.global_rank == 0:
    torch.save({"uninterrupted": uninterrupted.state_dict(), "resumed": resumed.state_dict()}, f"{folder}/weights.pt")
"""


@pytest.mark.slow
def test_ddp_resume_gives_each_rank_its_own_random_state_back(tmp_path):
    script = tmp_path / "ddp_resume.py"
    script.write_text(DDP_RESUME_SCRIPT)
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=tmp_path, env=environment,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    [rank_0, rank_1] = torch.load(tmp_path / "step=3.ckpt", weights_only=True)["callbacks"]["ExactResume"][
        "ranks"
    ]
    assert not torch.equal(rank_0["torch"], rank_1["torch"])  # what a rank-0-only save would lose
    weights = torch.load(tmp_path / "weights.pt", weights_only=True)
    for name, value in weights["uninterrupted"].items():
        torch.testing.assert_close(weights["resumed"][name], value, rtol=0, atol=0, msg=name)


@pytest.mark.slow
def test_sigterm_under_ddp_saves_last_checkpoint_on_every_rank_and_resumes(tmp_path):
    ddp = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp"]
    process = start(*ddp, cwd=tmp_path)
    wait_for_checkpoint(process, tmp_path)
    process.send_signal(signal.SIGTERM)  # to rank 0, as a scheduler does: Lightning passes it on to rank 1
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    [last] = tmp_path.glob("runs/image_classifier/*/checkpoints/last.ckpt")
    checkpoint = torch.load(last, weights_only=True)
    assert 0 < checkpoint["global_step"] < STEPS_PER_EPOCH  # 10 steps an epoch on each of the two ranks
    assert len(checkpoint["callbacks"]["ExactResume"]["ranks"]) == 2
    train("--ckpt_path=last", *ddp, cwd=tmp_path)
    assert torch.load(last, weights_only=True)["global_step"] == STEPS_PER_EPOCH  # 2 epochs of 10 steps
