"""Every shipped YAML parses and instantiates, so none rots: project configs with their own train.py,
trainer and logger presets composed with the image-classifier quickstart."""

import importlib
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, require_data

from common.precision import cpu_has_native_bf16

CONFIGS = REPO / "configs"
QUICKSTART = CONFIGS / "image_classifier" / "digits.yaml"
# Training configs; `sweep.yaml` files are W&B sweep specs, checked by test_sweeps.py.
PROJECT_CONFIGS = sorted(
    p
    for p in CONFIGS.glob("*/*.yaml")
    if p.parent.name not in ("trainer", "logger") and p.name != "sweep.yaml"
)
TRAINER_PRESETS = sorted(CONFIGS.glob("trainer/*.yaml"))
PRECISION_ON_GPU = [
    [CONFIGS / "trainer/gpu.yaml", CONFIGS / f"trainer/{name}.yaml"] for name in ("16-mixed", "bf16-mixed")
]
# Configs that only change a few keys of another project config, which comes first on the command line.
BASES = {"etth1_segrnn_h336.yaml": "etth1_segrnn.yaml", "etth1_segrnn_h720.yaml": "etth1_segrnn.yaml"}


def preset_ids(presets: list[Path]) -> str:
    return "+".join(preset.stem for preset in presets)


def config_chain(config: Path) -> list[Path]:
    """The config with the one it builds on, in command-line order."""
    return [config.parent / BASES[config.name], config] if config.name in BASES else [config]


def folder_fixture(root: Path) -> Path:
    from test_image_classifier import write_image_folder

    return write_image_folder(root / "images", size=32)


def extra_args(config: Path, tmp_path: Path) -> list[str]:
    """What a config leaves to the user: where the data is."""
    text = "".join(path.read_text() for path in config_chain(config))
    if config.parent.name == "time_series" and "dataset: ETT" in text:
        require_data("ett-small/ETTh1.csv")  # the linked channels and scaler need the real file
    if config.parent.name == "vae" and "dataset: mnist" in text:
        require_data("mnist")  # the linked image size needs the real files
    if config.parent.name == "video_classifier":
        from test_video_classifier import extra_config_args

        return extra_config_args(config, tmp_path)
    if config.parent.name == "image_classifier" and ("dataset: folder" in text or "cifar10" in config.name):
        return ["--data.dataset=folder", f"--data.data_dir={folder_fixture(tmp_path)}"]
    return []


def cpu_if_no_gpu(config: Path) -> list[str]:
    """On a machine without a GPU, GPU presets are instantiated for two CPU processes instead."""
    if torch.cuda.is_available() or "gpu" not in config.read_text():
        return []
    return ["--trainer.accelerator=cpu", "--trainer.devices=2"]


def needs_a_gpu(preset: Path) -> bool:
    """Lightning refuses FSDP on the CPU: without a GPU such a preset is parsed, not instantiated."""
    return "fsdp" in preset.read_text() and not torch.cuda.is_available()


@pytest.mark.parametrize("config", PROJECT_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_project_config_instantiates(config, tmp_path):
    train = importlib.import_module(f"projects.{config.parent.name}.train")
    configs = [argument for path in config_chain(config) for argument in ("--config", str(path))]
    cli = train.main([*configs, *extra_args(config, tmp_path)], run=False)
    assert cli.model is not None and cli.datamodule is not None and cli.trainer is not None


@pytest.mark.parametrize("preset", TRAINER_PRESETS, ids=lambda p: p.name)
def test_trainer_preset_builds_that_trainer(preset):
    from projects.image_classifier.train import main

    if needs_a_gpu(preset):
        pytest.skip("FSDP needs a GPU; test_trainer_preset_values_reach_the_config parses it")
    values = yaml.safe_load(preset.read_text())["trainer"]
    trainer = main(
        ["--config", str(QUICKSTART), "--config", str(preset), *cpu_if_no_gpu(preset)], run=False
    ).trainer
    on_cpu_instead = bool(cpu_if_no_gpu(preset))
    if "precision" in values and not on_cpu_instead:
        # On a CPU Lightning runs float16 autocast as bf16, and the CLI trains bf16 in float32 where it is slow.
        expected = "bf16-mixed" if values["precision"] in ("16-mixed", "bf16-mixed") else values["precision"]
        assert trainer.precision == (expected if cpu_has_native_bf16() else "32-true")
    if "strategy" in values:
        assert (
            type(trainer.strategy).__name__
            == {"ddp": "DDPStrategy", "fsdp": "FSDPStrategy"}[values["strategy"]]
        )
    if "num_nodes" in values:
        assert trainer.num_nodes == values["num_nodes"]
    if on_cpu_instead:
        assert trainer.num_devices == 2 and type(trainer.accelerator).__name__ == "CPUAccelerator"
    elif values.get("accelerator") == "cpu":
        assert type(trainer.accelerator).__name__ == "CPUAccelerator"
    if values.get("fast_dev_run"):
        assert trainer.fast_dev_run and trainer.limit_train_batches == 1 and trainer.max_epochs == 1


@pytest.mark.parametrize(
    ("preset", "wandb_mode", "logger"),
    [
        ("csv", "disabled", "RunCSVLogger"),  # Lightning's, appending to a run folder it reopens
        ("tensorboard", "disabled", "TensorBoardLogger"),
        ("wandb", "offline", "WandbLogger"),
        ("wandb", "disabled", "RunCSVLogger"),  # WANDB_MODE=disabled: metrics still land somewhere
    ],
)
def test_logger_preset_builds_that_logger(preset, wandb_mode, logger, tmp_path, monkeypatch):
    from projects.image_classifier.train import main

    monkeypatch.setenv("WANDB_MODE", wandb_mode)
    monkeypatch.chdir(tmp_path)
    built = main(["--config", str(QUICKSTART), "--config", str(CONFIGS / f"logger/{preset}.yaml")], run=False)
    assert type(built.trainer.logger).__name__ == logger
    assert Path(built.trainer.logger.save_dir).name == "runs"
    if logger == "WandbLogger":
        assert built.trainer.logger.experiment.settings.mode == "offline"


@pytest.mark.parametrize("presets", [*([p] for p in TRAINER_PRESETS), *PRECISION_ON_GPU], ids=preset_ids)
def test_trainer_preset_values_reach_the_config(presets):
    # Later presets override earlier ones key by key: `--config gpu.yaml --config 16-mixed.yaml` is fp16 on a GPU.
    from projects.image_classifier.train import main

    parser = main(["--config", str(QUICKSTART)], run=False).parser
    config = parser.parse_args(
        [argument for preset in [QUICKSTART, *presets] for argument in ("--config", str(preset))]
    )
    expected = {}
    for preset in presets:
        expected.update(yaml.safe_load(preset.read_text())["trainer"])
    assert {key: config.trainer[key] for key in expected} == expected
