"""What a W&B user expects of a run: a name, a group per config (seeds group together), tags for the trainer preset
and the dataset, a job type per subcommand, the monitored metric's best value as its summary, the learning-rate
curve, and the best checkpoint with its config (and tokenizer) as a versioned model artifact.

Load a model back from an artifact (online, or after `wandb sync`):

    path = wandb.Api().artifact("<entity>/<project>/model-<run id>:best").download()
    module = common.pretrained.load_trained_module(f"{path}/best.ckpt", "<projects.<name>.module.Class>")
"""

from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger

from common.runs import run_directory

RUN_FILES = ("config.yaml", "tokenizer.json")  # beside the checkpoint in the artifact, when the run has them


def config_files(config: Namespace) -> list[Path]:
    """The `--config` files of a parsed command, in the order given."""
    return [Path(str(path)) for path in (config.get("config") or [])]


def run_identity(config: Namespace, subcommand: str, project: str, run_id: str) -> dict[str, Any]:
    """`name`, `group`, `tags` and `job_type` for `wandb.init`, from the command's configs.

    The group is the project's own config (`configs/<project>/<name>.yaml`, its file name) or `default`; the tags are
    the trainer presets (`configs/trainer/<preset>.yaml`) and the dataset, when the datamodule names one.
    """
    files = config_files(config)
    own = [path.stem for path in files if path.parent.name == project]
    group = own[-1] if own else "default"
    tags = [f"trainer:{path.stem}" for path in files if path.parent.name == "trainer"]
    dataset = (config.get("data") or Namespace()).get("dataset")
    if isinstance(dataset, str):
        tags.append(f"dataset:{dataset}")
    return {"name": f"{project}-{group}-{run_id}", "group": group, "tags": tags, "job_type": subcommand}


class WandbRunSummary(Callback):
    """With a W&B logger: the best value of `monitor` as the run summary, and a model artifact at the end of `fit`
    (`model-<run id>`, aliases `best` and `latest`: the best checkpoint, or the last one when nothing is
    monitored, with the run's `config.yaml` and `tokenizer.json`). Offline, the artifact waits in the offline run
    and uploads with `wandb sync`."""

    def __init__(self, monitor: str | None, mode: str) -> None:
        self.monitor, self.mode = monitor, mode

    @staticmethod
    def wandb_logger(trainer: Trainer) -> WandbLogger | None:
        return next((logger for logger in trainer.loggers if isinstance(logger, WandbLogger)), None)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        logger = self.wandb_logger(trainer)
        if logger is not None and trainer.is_global_zero and self.monitor:
            logger.experiment.define_metric(self.monitor, summary=self.mode)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        logger = self.wandb_logger(trainer)
        checkpoint = trainer.checkpoint_callback
        if logger is None or not trainer.is_global_zero or checkpoint is None or trainer.interrupted:
            return
        best = checkpoint.best_model_path or getattr(checkpoint, "last_model_path", "")
        if not best or not Path(best).is_file():
            return
        import wandb

        run = logger.experiment
        score = checkpoint.best_model_score
        artifact = wandb.Artifact(
            f"model-{run.id}",
            type="model",
            metadata={"monitor": self.monitor, "score": None if score is None else float(score),
                      "global_step": trainer.global_step},
        )  # fmt: skip
        artifact.add_file(best, name="best.ckpt")
        for name in RUN_FILES:
            path = run_directory(trainer) / name
            if path.is_file():
                artifact.add_file(str(path), name=name)
        run.log_artifact(artifact, aliases=["best", "latest"])
