"""Shared pieces on their own: run directories, W&B mode, media fallbacks, metrics, callbacks."""

import csv
import json
import multiprocessing
import platform
import time
import warnings
from pathlib import Path

import pytest
import torch
from jsonargparse import Namespace
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger

from common import media
from common.callbacks import (
    ConfusionMatrixLogger,
    MisclassifiedImagesLogger,
    PredictionWriter,
    ThroughputLogger,
    batch_size_of,
)
from common.checkpointing import BestAndLastCheckpoint
from common.data import expand_config_paths, resolve_path, tensor_loader
from common.errors import UserInputError
from common.files import atomic_path
from common.metrics import StageMetrics, classification_metrics
from common.precision import cpu_has_native_bf16, fast_precision
from common.runs import RunCSVLogger, configure_wandb_mode, run_directory


def csv_trainer(tmp_path) -> Trainer:
    return Trainer(logger=CSVLogger(tmp_path, name="demo"), accelerator="cpu", enable_progress_bar=False)


def test_run_directory_follows_the_logger(tmp_path):
    assert run_directory(csv_trainer(tmp_path)) == tmp_path / "demo" / "version_0"
    assert run_directory(Trainer(logger=False, default_root_dir=tmp_path)) == tmp_path


@pytest.mark.parametrize(
    ("environment", "netrc", "expected"),
    [({}, None, "offline"), ({"WANDB_API_KEY": "k"}, None, "online"), ({}, "machine api.wandb.ai login user password k\n", "online"),
     ({"WANDB_MODE": "disabled", "WANDB_API_KEY": "k"}, None, "disabled")],
)  # fmt: skip
def test_wandb_mode_offline_without_credentials(environment, netrc, expected, monkeypatch, tmp_path):
    for name in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOME", str(tmp_path))
    if netrc:
        (tmp_path / ".netrc").write_text(netrc)
        (tmp_path / ".netrc").chmod(0o600)
    assert configure_wandb_mode() == expected


def test_media_falls_back_to_files_without_wandb(tmp_path):
    trainer = csv_trainer(tmp_path)
    media.log_image_grid(trainer, "val/samples", torch.rand(4, 3, 8, 8), nrow=2)
    media.log_table(trainer, "val/errors", ["text", "label"], [["bad movie", "pos"]])
    media.log_figure(
        trainer, "val/curve", media.confusion_matrix_figure(torch.eye(3, dtype=torch.long), list("abc"))
    )
    folder = run_directory(trainer) / "media"
    assert sorted(p.name for p in folder.iterdir()) == ["val_curve_step000000.png", "val_errors_step000000.csv",
                                                        "val_samples_step000000.png"]  # fmt: skip
    assert list(csv.reader((folder / "val_errors_step000000.csv").open())) == [
        ["text", "label"],
        ["bad movie", "pos"],
    ]


def test_media_goes_to_wandb_when_its_logger_is_active(tmp_path, monkeypatch):
    from lightning.pytorch.loggers import WandbLogger
    from wandb_records import config_and_summary

    monkeypatch.setenv("WANDB_MODE", "offline")
    trainer = Trainer(logger=WandbLogger(save_dir=str(tmp_path), project="demo"), accelerator="cpu")
    media.log_image_grid(trainer, "val/plain", torch.rand(4, 3, 8, 8))
    media.log_image_grid(trainer, "val/captioned", torch.rand(4, 3, 8, 8), caption="a->b")
    media.log_table(trainer, "val/errors", ["text", "label"], [["bad movie", "pos"]])
    trainer.logger.experiment.finish()
    [run_file] = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    summary = config_and_summary(run_file)[1]  # nested values arrive flattened: `key/field`
    assert summary["val/plain/_type"] == "images/separated"
    assert summary["val/captioned/captions"] == ["a->b"]
    assert summary["val/errors/_type"] == "table-file"
    assert not (tmp_path / "demo").exists()  # nothing fell back to files


def test_stage_metrics_keys_and_independence():
    metrics = classification_metrics(num_classes=3)
    metrics["train"].update(torch.tensor([[9.0, 0, 0], [9.0, 0, 0]]), torch.tensor([0, 0]))
    metrics["val"].update(torch.tensor([[9.0, 0, 0], [9.0, 0, 0]]), torch.tensor([1, 1]))
    assert metrics["train"].compute()["train/acc"] == 1.0
    assert metrics["val"].compute()["val/acc"] == 0.0
    assert isinstance(StageMetrics({}, stages=("test",))["test"].prefix, str)


def test_confusion_matrix_counts_by_hand(tmp_path):
    class Module(torch.nn.Module):
        class_names = ["a", "b"]
        device = torch.device("cpu")

    callback, module = ConfusionMatrixLogger(), Module()
    callback._reset(module)
    callback._update({"target": torch.tensor([0, 0, 1, 1, 1]), "preds": torch.tensor([0, 1, 1, 1, 0])})
    assert callback.matrix.tolist() == [[1, 1], [1, 2]]


def test_batch_size_of_nested_batches():
    assert batch_size_of((torch.zeros(5, 2), ["a"] * 5)) == 5
    assert batch_size_of({"text": ["x"], "ids": torch.zeros(3, 7)}) == 3


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_prediction_writer_formats(suffix, tmp_path):
    output = tmp_path / f"out{suffix}"
    writer = PredictionWriter(str(output))
    rows = [
        [{"file": "a.png", "class": "cat", "probability": 0.9}],
        [{"file": "b.png", "class": "dog", "probability": 0.6}],
    ]
    writer.write_on_epoch_end(csv_trainer(tmp_path), None, rows, [])
    if suffix == ".csv":
        assert list(csv.DictReader(output.open())) == [{"file": "a.png", "class": "cat", "probability": "0.9"},
                                                       {"file": "b.png", "class": "dog", "probability": "0.6"}]  # fmt: skip
    else:
        assert [json.loads(line) for line in Path(output).read_text().splitlines()] == [
            rows[0][0],
            rows[1][0],
        ]


def test_tensor_loader_gathers_whole_rows_in_batches():
    images = torch.arange(10 * 3).view(10, 3)  # row i holds 3i, 3i + 1, 3i + 2
    labels = torch.arange(10)
    ordered = list(tensor_loader(images, labels, batch_size=4, shuffle=False))
    assert [len(batch[1]) for batch in ordered] == [4, 4, 2]  # an unshuffled loader keeps the last rows
    assert torch.equal(torch.cat([batch[0] for batch in ordered]), images)
    torch.manual_seed(0)
    shuffled = list(tensor_loader(images, labels, batch_size=4, shuffle=True))
    assert [len(batch[1]) for batch in shuffled] == [4, 4]  # equal batches: the incomplete one is dropped
    seen = torch.cat([batch[1] for batch in shuffled])
    assert len(set(seen.tolist())) == 8 and not torch.equal(seen, torch.arange(8))
    for batch_images, batch_labels in shuffled:  # rows stay whole: each image beside its own label
        assert torch.equal(batch_images[:, 0], 3 * batch_labels)
    assert (
        len(list(tensor_loader(images[:3], labels[:3], batch_size=4, shuffle=True))) == 1
    )  # one short batch


class OneWeight(LightningModule):
    """A one-weight module on 2 training batches of 2 rows and 1 validation row; tests override validation_step."""

    def __init__(self, train_value: float = 0.0):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.train_value = train_value

    def training_step(self, batch, batch_idx):
        return self.layer(batch).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.full((4, 1), self.train_value), batch_size=2)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(torch.zeros(1, 1), batch_size=1)


def test_throughput_logger_leaves_validation_out_of_the_training_time(tmp_path):
    class SlowValidation(OneWeight):
        def validation_step(self, batch, batch_idx):
            time.sleep(1.0)

    throughput = ThroughputLogger()
    trainer = Trainer(max_epochs=2, callbacks=[throughput], logger=CSVLogger(tmp_path, name="demo"),
                      num_sanity_val_steps=0, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, accelerator="cpu")  # fmt: skip
    start = time.perf_counter()
    trainer.fit(SlowValidation())
    assert time.perf_counter() - start > 2.0  # two validations of 1 s each ran
    assert 0 < throughput.train_seconds < 1.0 and len(throughput.epoch_seconds) == 2
    assert all(0 < seconds < 1.0 for seconds in throughput.epoch_seconds)
    logged = list(csv.DictReader((tmp_path / "demo" / "version_0" / "metrics.csv").read_text().splitlines()))
    assert [float(row["perf/train_seconds"]) for row in logged if row.get("perf/train_seconds")] == [
        pytest.approx(throughput.train_seconds)
    ]
    samples_per_sec = [
        float(row["perf/samples_per_sec"]) for row in logged if row.get("perf/samples_per_sec")
    ]
    assert len(samples_per_sec) == 2 and min(samples_per_sec) > 4 / 1.0


def test_last_checkpoint_is_the_latest_state_after_the_metric_stops_improving(tmp_path):
    class WorseEachEpoch(OneWeight):
        def validation_step(self, batch, batch_idx):
            self.log("val/loss", float(self.current_epoch))  # best at epoch 0

    checkpoint = BestAndLastCheckpoint(monitor="val/loss", mode="min", dirpath=tmp_path)
    module = WorseEachEpoch(train_value=1.0)
    trainer = Trainer(max_epochs=3, callbacks=[checkpoint], logger=False, enable_progress_bar=False,
                      enable_model_summary=False, accelerator="cpu")  # fmt: skip
    trainer.fit(module)
    best, last = (torch.load(tmp_path / name, weights_only=True) for name in ("best.ckpt", "last.ckpt"))
    assert (best["epoch"], best["global_step"]) == (0, 2)
    assert (last["epoch"], last["global_step"]) == (2, 6)
    torch.testing.assert_close(last["state_dict"]["layer.weight"], module.layer.weight.detach())
    # Resuming from it continues where the run stopped.
    resumed = Trainer(max_epochs=4, callbacks=[BestAndLastCheckpoint(monitor="val/loss", mode="min", dirpath=tmp_path)],
                      logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")  # fmt: skip
    resumed.fit(WorseEachEpoch(train_value=1.0), ckpt_path=tmp_path / "last.ckpt")
    assert resumed.global_step == 8


def write_repeatedly(path: Path, payload: bytes, times: int) -> None:
    for _ in range(times):
        with atomic_path(path) as partial:
            partial.write_bytes(payload)


def test_atomic_path_with_concurrent_writers(tmp_path):
    # Two processes (DDP ranks, say) writing the same cache file at once must both succeed.
    target = tmp_path / "cache" / "data.pt"
    payload = b"x" * 1_000_000
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=write_repeatedly, args=(target, payload, 30)) for _ in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
    assert [writer.exitcode for writer in writers] == [0, 0]
    assert target.read_bytes() == payload
    assert [path.name for path in target.parent.iterdir()] == ["data.pt"]  # no partial file left behind


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "data.pt"
    with pytest.raises(RuntimeError), atomic_path(target) as partial:
        partial.write_bytes(b"half")
        raise RuntimeError("killed while writing")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(
    not (Path("/proc/cpuinfo").exists() and platform.machine() == "x86_64"),
    reason="reads x86 Linux CPU flags",
)
def test_bf16_probe_agrees_with_the_cpu_flags():
    flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    flags = set(flags.split(":", 1)[1].split())
    assert cpu_has_native_bf16() == ({"avx512bw", "avx512vl", "avx512dq"} <= flags or "amx_bf16" in flags)


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])  # Lightning runs 16-mixed on a CPU as bf16
def test_cli_trains_in_bf16_only_on_a_cpu_with_bf16_instructions(precision, native, monkeypatch):
    from projects.image_classifier.train import main

    monkeypatch.setattr("common.precision.cpu_has_native_bf16", lambda: native)
    quickstart = Path(__file__).parents[1] / "configs" / "image_classifier" / "digits.yaml"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli = main(["--config", str(quickstart), "--trainer.precision", precision], run=False)
    assert cli.trainer.precision == ("bf16-mixed" if native else "32-true")
    assert any("32-true instead" in str(warning.message) for warning in caught) is not native
    # Other precisions, and bf16 on an accelerator, are left as they are.
    assert fast_precision("32-true", "cpu") == "32-true"
    assert fast_precision("bf16-mixed", "gpu") == "bf16-mixed"


def test_misclassified_images_refuses_inputs_that_are_not_images():
    logger = MisclassifiedImagesLogger()
    logger.on_test_epoch_start(None, None)
    outputs = {"preds": torch.tensor([0, 1]), "target": torch.tensor([1, 1])}
    with pytest.raises(UserInputError, match=r"draws images .* inputs are \(2, 16\); remove it"):
        logger.on_test_batch_end(None, None, outputs, (torch.randn(2, 16), outputs["target"]), 0)
    logger.on_test_batch_end(None, None, outputs, (torch.rand(2, 1, 8, 8), outputs["target"]), 0)
    assert logger.labels == [(1, 0)]  # images: the wrong one is kept


def test_user_paths_expand_variables_and_name_what_is_wrong(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_ROOT", str(tmp_path))
    (tmp_path / "table.csv").write_text("a\n1\n")
    assert resolve_path("$DATA_ROOT/table.csv", "data.data_file") == tmp_path / "table.csv"
    assert resolve_path("${DATA_ROOT}", "data.data_dir", kind="folder") == tmp_path
    assert resolve_path(None, "data.data_file") is None
    with pytest.raises(
        UserInputError, match=r"data.data_file=.*missing.csv does not exist; check --data.data_file"
    ):
        resolve_path("$DATA_ROOT/missing.csv", "data.data_file")
    with pytest.raises(UserInputError, match="is not a folder"):
        resolve_path("$DATA_ROOT/table.csv", "data.data_dir", kind="folder")
    monkeypatch.delenv("DATA_ROOT")
    with pytest.raises(UserInputError, match=r"names \$DATA_ROOT, which is not set; export DATA_ROOT="):
        resolve_path("$DATA_ROOT/table.csv", "data.data_file")
    config = Namespace(data_dir="~/x", files=["$HOME/y"], size=3, unset="$NOT_SET_ANYWHERE/z")
    expand_config_paths(config)
    assert config == Namespace(data_dir=str(Path.home() / "x"), files=[f"{Path.home()}/y"], size=3,
                               unset="$NOT_SET_ANYWHERE/z")  # fmt: skip


def test_a_reopened_csv_run_keeps_its_rows(tmp_path):
    first = RunCSVLogger(tmp_path, name="demo", version="run")
    first.log_hyperparams({"lr": 0.1})
    first.log_metrics({"train/loss": 1.0}, step=0)
    first.save()
    again = RunCSVLogger(tmp_path, name="demo", version="run")
    again.log_hyperparams({"stage": "test"})
    again.log_metrics({"test/acc": 0.5}, step=1)
    again.save()
    with (tmp_path / "demo/run/metrics.csv").open() as file:
        rows = [{key: value for key, value in row.items() if value} for row in csv.DictReader(file)]
    assert rows == [{"train/loss": "1.0", "step": "0"}, {"test/acc": "0.5", "step": "1"}]
    assert "lr: 0.1" in (tmp_path / "demo/run/hparams.yaml").read_text()
