"""Several processes as on several GPUs, on the CPU (gloo): every project's `train.py` under 2-process DDP, with
evaluation metrics equal to one process's on splits of odd size (so padding would show), the weights of one
process with twice the batch, logging, media and checkpoints once, and two `torchrun` "nodes" on localhost.

Each 2-process run costs 25-55 s on 2 cores, most of it the second process importing torch and Lightning after the
first: the forecaster and image-classifier tests run by default, the other projects' and torchrun's with `-m slow`.
"""

import csv
import importlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO
from torch.utils.data import DataLoader, DistributedSampler
from wandb_records import config_and_summary

DDP = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp"]
ONE_PROCESS = ["--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.logger=false"]
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
SHORT = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=3", *QUIET]
# SegRNN without dropout (each process would draw its own masks): 181 validation and 411 test windows.
FORECAST = ["--config", str(REPO / "configs/time_series/quickstart.yaml"), "--model.network.init_args.dropout=0",
            "--model.network.init_args.hidden_size=16", *SHORT]  # fmt: skip


def launch(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "WANDB_MODE": "disabled", **env}
    result = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, "\n".join(result.stderr.splitlines()[-40:])
    return result


def fit_on_two_processes(project: str, args: list[str], cwd: Path, **env: str) -> None:
    result = launch(
        [sys.executable, str(REPO / "projects" / project / "train.py"), "fit", *args, *DDP], cwd, **env
    )
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr + result.stdout


def only_run(project: str) -> Path:
    """The one run folder the 2-process run made: rank 1 writes none of its own."""
    [run] = Path("runs", project).iterdir()
    assert sorted(path.name for path in (run / "checkpoints").glob("*.ckpt")) == ["best.ckpt", "last.ckpt"]
    return run


def logged(run: Path) -> dict[str, float]:
    """The last value of every key in a run's metrics.csv."""
    values = {}
    with (run / "metrics.csv").open() as file:
        for row in csv.DictReader(file):
            values.update({key: float(value) for key, value in row.items() if value != ""})
    return values


def one_process(project: str, args: list[str], checkpoint: Path) -> dict[str, float]:
    """What one process logs when it validates and tests `checkpoint` on the same data."""
    main = importlib.import_module(f"projects.{project}.train").main
    cli = main(["validate", *args, *ONE_PROCESS, "--ckpt_path", str(checkpoint)])
    values = {key: float(value) for key, value in cli.trainer.callback_metrics.items()}
    sizes = [len(loader.dataset) for loader in flat(cli.trainer.val_dataloaders)]
    cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=str(checkpoint))
    values.update({key: float(value) for key, value in cli.trainer.callback_metrics.items()})
    sizes += [len(loader.dataset) for loader in flat(cli.trainer.test_dataloaders)]
    assert all(size % 2 == 1 for size in sizes), f"splits of {sizes}: an even one would hide padding"
    return values


def flat(loaders: DataLoader | list[DataLoader]) -> list[DataLoader]:
    return loaders if isinstance(loaders, list) else [loaders]


def assert_same_evaluation(two_processes: dict, project: str, args: list[str], checkpoint: Path) -> None:
    """Every val/ and test/ value, losses included, is the one a single process logs for the same weights."""
    single = one_process(project, args, checkpoint)
    keys = sorted(key for key in single if key.startswith(("val/", "test/")))
    assert {"val/loss", "test/loss"} <= set(keys) or project == "dcgan", keys
    assert {key: two_processes[key] for key in keys} == pytest.approx(
        {key: single[key] for key in keys}, rel=1e-5, abs=1e-6
    )


@pytest.mark.slow
def test_image_classifier_logs_once_to_one_wandb_run(tmp_path):
    args = ["--config", str(REPO / "configs/image_classifier/digits.yaml"), *SHORT]
    fit_on_two_processes("image_classifier", args, tmp_path, WANDB_MODE="offline")
    [wandb_run] = Path("runs/wandb").glob("offline-run-*")
    run = only_run("image_classifier")
    assert run.name == wandb_run.name.split("-")[-1]  # the W&B run's id names the run folder
    # Media once: one confusion matrix per evaluation (the sanity check logs none), one grid of test mistakes.
    media = sorted(path.name.rsplit("_", 2)[0] for path in wandb_run.glob("files/media/images/*/*.png"))
    assert media == ["confusion_matrix", "confusion_matrix", "misclassified"], media
    _, summary = config_and_summary(next(wandb_run.glob("run-*.wandb")))
    assert_same_evaluation(summary, "image_classifier", args, run / "checkpoints/best.ckpt")


def one_process_with_twice_the_batch(batch_size: int) -> dict[str, torch.Tensor]:
    """The forecaster after `FORECAST` on one process with batches of `batch_size`, read in DDP's order.

    DDP shuffles with one permutation of the whole set (seeded with the run's seed) and deals it to the processes in
    turn, so that step k of two processes with batch B together sees items 2Bk..2Bk+2B-1 of it: the batch of one
    process reading that permutation 2B at a time. Each process averages its own batch; DDP averages the gradients.
    """
    from projects.time_series.train import main

    cli = main([*FORECAST, f"--data.batch_size={batch_size}", *ONE_PROCESS], run=False)
    cli.datamodule.setup("fit")
    dataset = cli.datamodule.train_dataset
    order = DistributedSampler(dataset, num_replicas=1, rank=0, seed=int(os.environ["PL_GLOBAL_SEED"]))
    loader = DataLoader(dataset, batch_size=batch_size, sampler=order)
    cli.trainer.fit(cli.model, train_dataloaders=loader, val_dataloaders=cli.datamodule.val_dataloader())
    return cli.model.state_dict()


@pytest.fixture(scope="module")
def forecaster_with_batch_16(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:  # as `isolated_run` does, for a fixture shared by the module
        patch.chdir(tmp_path_factory.mktemp("one_process"))
        patch.setenv("WANDB_MODE", "disabled")
        yield one_process_with_twice_the_batch(16)


def assert_same_weights(path: Path, expected: dict[str, torch.Tensor]) -> None:
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["global_step"] == 3  # `SHORT`'s three steps, on each process
    assert checkpoint["state_dict"].keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(checkpoint["state_dict"][name], value, rtol=1e-5, atol=1e-6, msg=name)


def test_forecaster_on_two_processes_matches_one_process_with_twice_the_batch(
    tmp_path, forecaster_with_batch_16
):
    args = [*FORECAST, "--data.batch_size=8"]
    fit_on_two_processes("time_series", args, tmp_path)
    run = only_run("time_series")
    assert_same_weights(run / "checkpoints/last.ckpt", forecaster_with_batch_16)
    # Media once: the forecast plots and error curves of the one validation and the one test.
    media = sorted(path.name.rsplit("_step", 1)[0] for path in (run / "media").iterdir())
    assert media == ["test_error_by_step", "val_error_by_step", "val_forecasts"], media
    assert_same_evaluation(logged(run), "time_series", args, run / "checkpoints/best.ckpt")


@pytest.mark.slow
def test_two_torchrun_nodes_on_localhost_match_one_process(tmp_path, forecaster_with_batch_16):
    # Two launches as on two machines, one process each, with static rendezvous at node 0's address. They share the
    # run folder, as cluster nodes share a filesystem: every process reads best.ckpt to test it. 32-true: the
    # preset's bf16 would not compare with the float32 reference.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [*FORECAST, "--data.batch_size=8", "--config", str(REPO / "configs/trainer/ddp_multinode.yaml"),
            "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.num_nodes=2", "--trainer.precision=32-true"]  # fmt: skip

    def node(rank: int) -> list[str]:
        return [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1", f"--node_rank={rank}",
                "--master_addr=127.0.0.1", f"--master_port={port}", str(REPO / "projects/time_series/train.py"), "fit",
                *args]  # fmt: skip

    environment = {**os.environ, "WANDB_MODE": "disabled"}
    output = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    launches = [subprocess.Popen(node(rank), cwd=tmp_path, env=environment, **output) for rank in (0, 1)]
    outputs = [launch.communicate(timeout=600)[0] for launch in launches]
    failed = [output for launch, output in zip(launches, outputs, strict=True) if launch.returncode != 0]
    assert not failed, "\n".join(failed[-1].splitlines()[-40:])
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in outputs[1]
    assert_same_weights(only_run("time_series") / "checkpoints/last.ckpt", forecaster_with_batch_16)


@pytest.mark.slow
def test_dcgan_with_r1_counts_every_image_once(tmp_path):
    # Two backward passes per batch, one through R1's double backward: DDP must sync both networks. The sample-quality
    # metrics need a classifier; 63 held-out and reference images in batches of 16, and as many generated ones, each
    # from the latent one process gives it (`DCGAN.held_out_latents`), so the generated-sample metrics match too.
    from projects.image_classifier.train import main as classifier_main

    classifier_main(["fit", "--config", str(REPO / "configs/image_classifier/digits.yaml"), *QUIET,
                     "--trainer.max_steps=3", "--trainer.limit_val_batches=1", "--trainer.callbacks=[]",
                     "--test_after_fit=false"])  # fmt: skip
    [classifier] = Path("runs/image_classifier").glob("*/checkpoints/last.ckpt")
    args = ["--model.generator_width=8", "--model.discriminator_width=8", "--model.grid_rows=1", "--data.image_size=28",
            "--data.batch_size=16", "--data.quality_samples=63", "--data.test_samples=63", "--data.eval_batch_size=16",
            f"--model.classifier_checkpoint={classifier}", "--checkpoint.monitor=val/classifier_fd",
            "--checkpoint.mode=min", "--model.discriminator_norm=none", "--model.r1_gamma=10", "--model.r1_every=2",
            "--model.decay_after=0.5", "--trainer.log_every_n_steps=1",
            "--trainer.max_epochs=1", "--trainer.limit_train_batches=4", *QUIET]  # fmt: skip
    fit_on_two_processes("dcgan", args, tmp_path)
    run = only_run("dcgan")
    values = logged(run)
    assert {"val/classifier_fd", "val/confident_share", "test/classifier_fd_real_floor"} <= set(values)
    assert_same_evaluation(values, "dcgan", args, run / "checkpoints/best.ckpt")
    with (run / "metrics.csv").open() as file:
        penalties = [row["train/r1_penalty"] for row in csv.DictReader(file) if row.get("train/r1_penalty")]
    # Measured on batches 0 and 2 of 4 (every 2nd D step); the logger repeats a value until it is logged again.
    assert all(float(value) > 0 for value in penalties) and len(set(penalties)) == 2


@pytest.mark.slow
def test_sentiment_with_adversarial_training(tmp_path):
    # Two forward passes, one backward: DDP's gradient hooks must fire once per parameter and step. The synthetic
    # corpus has 41 validation and 41 test rows; evaluation batches of 8 are cut from the length-sorted split. Every
    # process uses rank 0's tokenizer: one trained on each would give some words other ids (tokenizers' training is
    # not deterministic across processes), and the validation metrics would differ.
    args = ["--data.vocab_size=300", "--data.synthetic_size=205", "--data.cache_dir=cache", "--data.batch_size=16",
            "--data.eval_batch_size=8", "--model.network=projects.sentiment.model.RecurrentClassifier",
            "--model.network.embedding_dim=16", "--model.network.hidden_dim=8", "--model.adversarial_epsilon=1",
            *SHORT]  # fmt: skip
    fit_on_two_processes("sentiment", args, tmp_path)
    run = only_run("sentiment")
    assert_same_evaluation(logged(run), "sentiment", args, run / "checkpoints/best.ckpt")


@pytest.mark.slow
def test_video_classifier(tmp_path):
    # 11 validation and 11 test videos of the procedural set, 3 clips each, in batches of 4.
    args = ["--model.network=projects.video_classifier.model.SmallR2Plus1D", "--model.network.init_args.width=4",
            "--data.procedural_videos=44", "--data.batch_size=4", "--data.num_workers=0", "--data.cache_dir=null",
            *SHORT]  # fmt: skip
    fit_on_two_processes("video_classifier", args, tmp_path)
    run = only_run("video_classifier")
    assert_same_evaluation(logged(run), "video_classifier", args, run / "checkpoints/best.ckpt")
