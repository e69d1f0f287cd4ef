"""Where a run's files go, and which mode W&B runs in."""

import csv
import netrc
import os
import sys
from pathlib import Path

import yaml
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

RUNS_ROOT = "runs"


def project_of(module_class: type) -> str:
    """The project a LightningModule class belongs to: `projects.<project>.module.<Class>` -> `<project>`.

    It names the run folder (`runs/<project>/`), the W&B project and the tag every checkpoint carries.
    """
    parts = module_class.__module__.split(".")
    return parts[-2] if len(parts) > 1 else parts[0]


def run_directory(trainer: Trainer) -> Path:
    """The folder that holds this run's checkpoints, config, media and predictions."""
    logger = trainer.logger
    if logger is None:
        return Path(trainer.default_root_dir)
    if isinstance(logger, CSVLogger | TensorBoardLogger):
        return Path(logger.log_dir)
    # W&B (and most other loggers): the folder ModelCheckpoint picks too, `save_dir/name/version`.
    return Path(logger.save_dir or trainer.default_root_dir) / str(logger.name) / str(logger.version)


def configure_wandb_mode() -> str:
    """Choose W&B's mode before any run starts: online with credentials, offline without.

    Offline runs are written under `runs/wandb/` and can be uploaded later with `wandb sync`.
    An explicit `WANDB_MODE` (`online`, `offline`, `disabled`) always wins.
    """
    if "WANDB_MODE" not in os.environ:
        os.environ["WANDB_MODE"] = "online" if _has_wandb_credentials() else "offline"
    return os.environ["WANDB_MODE"]


def _has_wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def finish_wandb_run() -> None:
    """Close the active W&B run, if any, so its files are complete and the next CLI call starts a new run."""
    wandb = sys.modules.get("wandb")  # never imported: no run to close (and no cost of importing it)
    if wandb is not None and wandb.run is not None:
        wandb.finish()


class _KeepingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that a run folder it reopens keeps its rows: `metrics.csv` grows (Lightning's
    writer deletes it) and `hparams.yaml` gains keys, so a resumed fit or a test of the trained model loses nothing."""

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as file:
                self.metrics_keys = next(csv.reader(file), [])
        saved = Path(log_dir, self.NAME_HPARAMS_FILE)
        if saved.is_file():
            try:
                self.hparams = yaml.safe_load(saved.read_text()) or {}
            except yaml.YAMLError:
                self.hparams = {}

    def _check_log_dir_exists(self) -> None:
        pass  # a reopened run folder is this run's own


class RunCSVLogger(CSVLogger):
    """`CSVLogger` that appends to the run folder it reopens (`--ckpt_path` resumes a run, or evaluates its model in
    its own folder) instead of deleting the rows logged there before."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(log_dir=self.log_dir)
        return self._experiment
