"""Checkpoints a user can trust: best and last, written atomically, saved on SIGTERM, tagged with their project;
and `checkpoint_to_restore`, which turns `--ckpt_path last | <run dir> | <file>` into a checked checkpoint file.
"""

import os
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from common.errors import UserInputError
from common.files import load_tensors
from common.runs import project_of


class BestAndLastCheckpoint(ModelCheckpoint):
    """`best.ckpt` by the monitored metric and `last.ckpt`, in `<run dir>/checkpoints/`.

    `last.ckpt` is the latest state, written at every checkpointing point (and every `last_every_n_steps`
    steps when set), so that resuming loses nothing. Since Lightning 2.6 `ModelCheckpoint(save_last=True)`
    writes it only when a best checkpoint is written at the same step, which made it a copy of `best.ckpt`
    once the metric stopped improving. Every write goes to a temporary file that is renamed into place, so a
    full disk or a kill mid-write never replaces a good checkpoint with a truncated one. SIGTERM (a scheduler
    preempting the job) saves `last.ckpt` before the run exits.

    Args:
        last_every_n_steps: also write `last.ckpt` every this many training steps (0: only where validation
            runs), so that a run killed mid-epoch resumes from at most that many steps back.
        (the other arguments are `ModelCheckpoint`'s)
    """

    def __init__(
        self,
        monitor: str | None = None,
        mode: str = "max",
        filename: str = "best",
        save_last: bool = True,
        auto_insert_metric_name: bool = False,
        enable_version_counter: bool = False,
        last_every_n_steps: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            monitor=monitor,
            mode=mode,
            filename=filename,
            save_last=save_last,
            auto_insert_metric_name=auto_insert_metric_name,
            enable_version_counter=enable_version_counter,  # one run, one folder: best.ckpt, never best-v1.ckpt
            **kwargs,
        )
        self.last_every_n_steps = last_every_n_steps

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # The same run folder, reached by a relative or an absolute path, keeps its best-checkpoint tracking.
        saved = state_dict.get("dirpath")
        if saved and self.dirpath and Path(saved).resolve() == Path(self.dirpath).resolve():
            state_dict = {**state_dict, "dirpath": self.dirpath}
        super().load_state_dict(state_dict)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.last_every_n_steps and trainer.global_step % self.last_every_n_steps == 0:
            self._save_last_if_not_saved(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_not_saved(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_not_saved(trainer)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        # Only a preemption saves: the weights after any other exception (a NaN loss, say) are not worth keeping.
        if isinstance(exception, SIGTERMException) and not trainer.sanity_checking and self.dirpath:
            self._save_last_if_not_saved(trainer)

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        checkpoint["project"] = project_of(type(pl_module))

    def _save_last_if_not_saved(self, trainer: Trainer) -> None:
        # Skipped in sanity checks and when this step was saved already (by the best checkpoint, with last.ckpt).
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        partial = f"{filepath}.partial"
        try:
            super()._save_checkpoint(trainer, partial)  # every rank takes part; only rank 0 writes
        except BaseException:
            Path(partial).unlink(missing_ok=True)  # a full disk, say: the good checkpoint stays in place
            raise
        if trainer.is_global_zero:
            os.replace(partial, filepath)
        self._last_checkpoint_saved = filepath


def checkpoint_to_restore(ckpt_path: str, runs: Path, project: str) -> Path | None:
    """The checkpoint file that `--ckpt_path` names, checked: it exists, it is a trusted Lightning checkpoint and it
    belongs to `project`. `last` (or `best`) means that file of the newest run under `runs/<project>/`; `auto` is
    `last` when there is one and None (a new run) when not, for job scripts that a scheduler restarts; a run folder
    means its `checkpoints/last.ckpt`. Each mistake is a one-line `UserInputError`.
    """
    path = Path(os.path.expandvars(ckpt_path)).expanduser()
    if ckpt_path in ("last", "best", "auto"):
        name = "best" if ckpt_path == "best" else "last"
        candidates = sorted((runs / project).glob(f"*/checkpoints/{name}.ckpt"), key=os.path.getmtime)
        if not candidates and ckpt_path == "auto":
            return None
        if not candidates:
            raise UserInputError(
                f"--ckpt_path {ckpt_path}: no run of {project} under {runs / project} has a {ckpt_path}.ckpt "
                "to resume; drop --ckpt_path to start a new run, or pass a run folder or .ckpt file"
            )
        path = candidates[-1]
    elif path.is_dir():
        path = path / "checkpoints" / "last.ckpt" if (path / "checkpoints").is_dir() else path / "last.ckpt"
    if not path.is_file():
        raise UserInputError(f"--ckpt_path: checkpoint {path} not found; pass a run folder or a .ckpt file")
    checkpoint_project = project_in(read_checkpoint(path, mmap=True))
    if checkpoint_project not in (None, project):
        raise UserInputError(
            f"--ckpt_path: {path} is a checkpoint of the {checkpoint_project} project; "
            f"use projects/{checkpoint_project}/train.py for it"
        )
    return path


def project_in(checkpoint: dict[str, Any]) -> str | None:
    """The project a checkpoint belongs to: its tag, else (older checkpoints) a `projects.<name>.` class path in
    its hyperparameters."""
    if checkpoint.get("project"):
        return checkpoint["project"]
    for value in checkpoint.get("hyper_parameters", {}).values():
        class_path = value.get("class_path", "") if isinstance(value, dict) else value
        if isinstance(class_path, str) and class_path.startswith("projects."):
            return class_path.split(".")[1]
    return None


def read_checkpoint(path: Path, mmap: bool = False) -> dict[str, Any]:
    """A Lightning checkpoint loaded weights-only: tensors and plain data, never code (a crafted pickle is refused).

    `mmap` maps the tensors instead of reading them, for a cheap look at a large checkpoint's metadata.
    """
    checkpoint = load_tensors(
        path, "checkpoint", "pass a .ckpt file that this template's train.py wrote", mmap
    )
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserInputError(
            f"{path} is not a Lightning checkpoint (no state_dict); pass a .ckpt from a run's checkpoints/"
        )
    return checkpoint
