"""The one LightningCLI every project's `train.py` uses.

    python projects/<name>/train.py fit --config configs/<name>/<preset>.yaml [--config configs/trainer/gpu.yaml]

The project's name is the package its LightningModule lives in (`projects.<project>.module.<Class>` -> `<project>`):
it names the run folder, the W&B project and the tag each checkpoint carries, so a new project needs no setting.
It adds to LightningCLI: a run directory per run (`runs/<project>/<run id>/`), W&B logging by default
(offline without credentials), the resolved config saved to the run directory and to every logger,
bf16 precision only where the CPU runs it natively (`common.precision`),
best-and-last checkpointing on the project's monitored metric (checkpoints keep the network's config, so
`Module.load_from_checkpoint` needs nothing else), a throughput monitor, and a prediction writer (`predict`
writes `<run dir>/predictions.csv`, or `--prediction_writer.output`). `--ckpt_path last | auto | <run dir>` resumes
a run in its own folder and W&B run, exactly (`common.resume`); SIGTERM saves `last.ckpt` and exits 143; a NaN loss
stops the run (`common.guards`); every checkpoint is loaded weights-only (`common.checkpointing`).
"""

import hashlib
import os
import secrets
import signal
import string
import sys
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import Namespace
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from common.callbacks import PredictionWriter, ThroughputLogger, drop_weight_averaging
from common.checkpointing import BestAndLastCheckpoint, checkpoint_to_restore
from common.data import data_source, expand_config_paths
from common.errors import UserInputError
from common.guards import FiniteLossGuard
from common.precision import fast_precision
from common.resume import ExactResume
from common.runs import RUNS_ROOT, configure_wandb_mode, finish_wandb_run, project_of, run_directory
from common.tracking import WandbRunSummary, run_identity

WANDB_LOGGER = "lightning.pytorch.loggers.WandbLogger"
CSV_LOGGERS = ("lightning.pytorch.loggers.CSVLogger", "lightning.pytorch.loggers.csv_logs.CSVLogger")
CSV_LOGGER = "common.runs.RunCSVLogger"  # appends to a run folder it reopens, as W&B does
RUN_ID_CHARACTERS = string.ascii_lowercase + string.digits


class SaveConfigToRun(SaveConfigCallback):
    """Writes the fully resolved config to `<run dir>/config.yaml` and into every logger's config.

    `validate`, `test` and `predict` from a run's checkpoint work in that run's folder: their config goes to
    `<subcommand>_config.yaml` beside it, and the loggers keep the training run's config.
    """

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        if trainer.is_global_zero:
            directory = run_directory(trainer)
            directory.mkdir(parents=True, exist_ok=True)
            stage = str(getattr(stage, "value", stage))  # Lightning passes a `TrainerFn`
            trained_here = stage != "fit" and (directory / self.config_filename).is_file()
            filename = f"{stage}_{self.config_filename}" if trained_here else self.config_filename
            self.parser.save(self.config, directory / filename, skip_none=False, overwrite=True)
            # Plain data (paths as strings), as `config.yaml` holds it, so every logger can store and reload it.
            config = yaml.safe_load(
                self.parser.dump(self.config, skip_validation=True, skip_link_targets=False)
            )
            # The datamodule has set up by now, so it can say what it read: a file, a folder or a synthetic set.
            if source := data_source(trainer.datamodule):
                config["data_source"] = source
                rank_zero_info(f"Data: {source}")
            for logger in trainer.loggers if not trained_here else ():
                logger.log_hyperparams(config)
            self.already_saved = True
        self.already_saved = trainer.strategy.broadcast(self.already_saved)


def shared_run_id() -> str:
    """A new run id (eight lowercase letters and digits, as W&B's own), the same in every process of one run.

    The DDP processes Lightning starts inherit rank 0's id through `TEMPLATE_RUN_ID`; processes a launcher starts
    side by side (torchrun, srun) derive it from their launch's id. Never from `random`, which the seed set.
    """
    rank = int(os.environ.get("LOCAL_RANK") or os.environ.get("RANK") or 0)
    if rank > 0 and os.environ.get("TEMPLATE_RUN_ID"):
        return os.environ["TEMPLATE_RUN_ID"]
    launch = os.environ.get("TORCHELASTIC_RUN_ID") or (
        f"slurm-{os.environ['SLURM_JOB_ID']}-{os.environ.get('SLURM_STEP_ID', '')}"
        if int(os.environ.get("SLURM_NTASKS") or 1) > 1 and "SLURM_JOB_ID" in os.environ
        else None
    )
    if launch:
        digest = int(hashlib.sha1(launch.encode()).hexdigest(), 16)
        run_id = "".join(RUN_ID_CHARACTERS[(digest >> (6 * i)) % len(RUN_ID_CHARACTERS)] for i in range(8))
    else:
        run_id = "".join(secrets.choice(RUN_ID_CHARACTERS) for _ in range(8))
    os.environ["TEMPLATE_RUN_ID"] = run_id  # for the processes this one starts
    return run_id


class TemplateCLI(LightningCLI):
    """LightningCLI with this repo's defaults; each project passes its module, datamodule and monitor.

    Args:
        model_class: the project's LightningModule.
        datamodule_class: the project's LightningDataModule.
        monitor: metric that picks the best checkpoint, e.g. `val/acc`.
        mode: `max` or `min` for `monitor`.
        links: `(source, target)` pairs resolved after the datamodule is built, e.g.
            `("data.class_names", "model.class_names")`.
    """

    def __init__(
        self,
        model_class: type[LightningModule],
        datamodule_class: type[LightningDataModule],
        monitor: str,
        mode: str = "max",
        links: tuple[tuple[str, str], ...] = (),
        **kwargs: Any,
    ) -> None:
        self.project = project_of(model_class)
        self.monitor, self.mode, self.links = monitor, mode, links
        configure_wandb_mode()
        trainer_defaults = {
            "default_root_dir": RUNS_ROOT,
            "logger": {
                "class_path": WANDB_LOGGER,
                "init_args": {"save_dir": RUNS_ROOT, "project": self.project},
            },
        }
        kwargs.setdefault("trainer_defaults", trainer_defaults)
        kwargs.setdefault("seed_everything_default", 42)
        kwargs.setdefault("save_config_callback", SaveConfigToRun)
        try:
            super().__init__(model_class, datamodule_class, **kwargs)
        except UserInputError as error:
            # A mistake the user can fix gets one line, not a traceback from deep inside a library.
            sys.exit(f"error: {error}")
        except SIGTERMException:
            # Preempted (a scheduler's SIGTERM): last.ckpt is saved; a non-zero status tells the scheduler so.
            print(f"stopped by SIGTERM; resume with --ckpt_path {self._run_hint()}", file=sys.stderr)
            sys.exit(128 + signal.SIGTERM)
        finally:
            if kwargs.get("run", True):
                finish_wandb_run()

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(BestAndLastCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.monitor": self.monitor, "checkpoint.mode": self.mode})
        parser.add_lightning_class_args(ThroughputLogger, "throughput")
        parser.add_lightning_class_args(PredictionWriter, "prediction_writer")
        parser.add_argument(
            "--test_after_fit", type=bool, default=True, help="After `fit`, test the best checkpoint."
        )
        for source, target in self.links:
            parser.link_arguments(source, target, apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        for section in (
            "data",
            "model",
        ):  # `$DATA_ROOT/...` and `~/...`: the saved config names the real paths
            if config.get(section) is not None:
                expand_config_paths(config[section])
        config.trainer.logger = self._complete_logger_config(config.trainer.logger)
        self._name_wandb_runs(config)
        if self.subcommand and config.get("weights_only") is None:
            config.weights_only = True  # checkpoints are data: loading one never runs code
        # The CPU presets train in bf16, which only CPUs with bf16 instructions run fast.
        config.trainer.precision = fast_precision(config.trainer.precision, config.trainer.accelerator)

    def _parse_ckpt_path(self) -> None:
        """Check `--ckpt_path` (and resolve `last`, `best` or a run folder) before LightningCLI reads the file."""
        config = self.config.get(self.config.get("subcommand") or "")
        if config is not None and config.get("ckpt_path"):
            checkpoint = checkpoint_to_restore(config.ckpt_path, self._runs_root(config), self.project)
            config.ckpt_path = str(checkpoint) if checkpoint else None
            if checkpoint:
                self._into_run(config, checkpoint)
        super()._parse_ckpt_path()

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        self._save_component_configs(self.model)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        # First in the list, so the guard stops a broken step before any checkpoint callback saves it.
        trainer.callbacks[0:0] = [FiniteLossGuard(), ExactResume()]
        if self.subcommand == "fit" and trainer.loggers:
            trainer.callbacks.append(WandbRunSummary(*self._monitored(trainer)))
            if not any(isinstance(callback, LearningRateMonitor) for callback in trainer.callbacks):
                # Unless the config has one already.
                trainer.callbacks.append(LearningRateMonitor(logging_interval="step"))
        return trainer

    def _monitored(self, trainer: Trainer) -> tuple[str | None, str]:
        """The metric and mode that pick the best checkpoint, as the command set them."""
        checkpoint = trainer.checkpoint_callback
        return getattr(checkpoint, "monitor", self.monitor), getattr(checkpoint, "mode", self.mode)

    def _runs_root(self, config: Namespace) -> Path:
        """The folder that holds `<project>/<run id>/` folders: the logger's `save_dir`."""
        logger = config.trainer.logger
        logger = logger[0] if isinstance(logger, list) and logger else logger
        init_args = logger.get("init_args") if isinstance(logger, Namespace) else None
        return Path((init_args or {}).get("save_dir") or config.trainer.default_root_dir or RUNS_ROOT)

    def _into_run(self, config: Namespace, checkpoint: Path) -> None:
        """Work in the checkpoint's own run: the same folder and, with W&B, the same run id. `fit` resumes there
        (checkpoints, best-checkpoint tracking); `validate`, `test` and `predict` add their metrics, predictions and
        `<subcommand>_config.yaml` to the run that trained the model."""
        if checkpoint.parent.name != "checkpoints":
            return  # a loose .ckpt file: its training state resumes, in a new run folder
        run = checkpoint.parent.parent
        loggers = (
            config.trainer.logger if isinstance(config.trainer.logger, list) else [config.trainer.logger]
        )
        for logger in loggers:
            if not isinstance(logger, Namespace) or "class_path" not in logger:
                continue
            init_args = logger.init_args
            init_args.save_dir = str(run.parent.parent)
            init_args.version = run.name
            if logger.class_path == WANDB_LOGGER:
                init_args.id, init_args.resume = run.name, "allow"

    def _run_hint(self) -> str:
        trainer = getattr(self, "trainer", None)
        return str(run_directory(trainer)) if trainer is not None else "last"

    def _save_component_configs(self, model: LightningModule) -> None:
        """Add the model's component configs (`class_path` + `init_args`) to its saved hyperparameters.

        Modules leave their `network` out of `save_hyperparameters`: outside the CLI it may be any callable, a
        lambda included, which a checkpoint cannot hold. From the CLI it is plain data. With it in the checkpoint,
        `Module.load_from_checkpoint(path)` rebuilds the network that was trained, not the default one.
        """
        config = self.config[self.subcommand] if self.subcommand else self.config
        for name, value in config.model.as_dict().items():
            if name not in model.hparams and isinstance(value, dict) and "class_path" in value:
                model.hparams[name] = value

    def _name_wandb_runs(self, config: Namespace) -> None:
        """Name, group, tag and type each W&B run (`common.tracking.run_identity`) unless the config does; the run id,
        chosen here when not resumed, is also the run folder's name."""
        loggers = (
            config.trainer.logger if isinstance(config.trainer.logger, list) else [config.trainer.logger]
        )
        for logger in loggers:
            if not isinstance(logger, Namespace) or logger.get("class_path") != WANDB_LOGGER:
                continue
            init_args = logger.init_args
            if not init_args.get("id") and not init_args.get("version"):
                init_args.id = init_args.version = shared_run_id()
            run_id = init_args.get("id") or init_args.get("version")
            identity = run_identity(config, self.subcommand or "fit", self.project, run_id)
            for key, value in identity.items():
                if init_args.get(key) in (None, [], ""):
                    init_args[key] = value

    def _complete_logger_config(self, logger: Any) -> Any:
        """Give shared logger presets this project's name, and swap W&B for CSV when W&B is disabled."""
        if isinstance(logger, list):
            return [self._complete_logger_config(each) for each in logger]
        if not isinstance(logger, Namespace) or "class_path" not in logger:
            return logger
        if logger.class_path == WANDB_LOGGER and os.environ.get("WANDB_MODE") == "disabled":
            wandb_args = logger.get("init_args") or Namespace()  # a resumed run keeps its folder
            csv_args = Namespace(
                save_dir=wandb_args.get("save_dir") or RUNS_ROOT, version=wandb_args.get("version")
            )
            logger = Namespace(class_path=CSV_LOGGER, init_args=csv_args)
        if logger.class_path in CSV_LOGGERS:
            logger.class_path = CSV_LOGGER
        init_args = logger.get("init_args") or Namespace()
        if logger.class_path == WANDB_LOGGER:
            # W&B's background service resolves relative paths against its own working directory, which is
            # the one of the first run in this process; an absolute path keeps later runs where they belong.
            init_args.save_dir = os.path.abspath(init_args.get("save_dir") or RUNS_ROOT)
            # W&B looks for the git repository from this folder; on a fresh clone it does not exist yet.
            os.makedirs(init_args.save_dir, exist_ok=True)
        name_key = "project" if logger.class_path == WANDB_LOGGER else "name"
        if init_args.get(name_key) in (None, "lightning_logs"):
            init_args[name_key] = self.project
        logger.init_args = init_args
        return logger

    def after_fit(self) -> None:
        if not self.config.fit.test_after_fit or self.trainer.interrupted:
            return
        best = self.trainer.checkpoint_callback.best_model_path if self.trainer.checkpoint_callback else ""
        drop_weight_averaging(self.trainer)  # test the averaged weights, not the raw ones
        self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)
