"""Data pieces every project shares: user paths (`$DATA_ROOT/...` expanded, one-line errors), a record of where
a run's data came from, and loaders over tensors held in memory (each batch is one gather per tensor)."""

import os
import re
from pathlib import Path
from typing import Any

import torch
from jsonargparse import Namespace
from torch.utils.data import TensorDataset

from common.errors import UserInputError
from common.resume import ResumableLoader

VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def expand_path(path: str, option: str = "data.data_dir") -> str:
    """`path` with `~` and `$VARIABLES` (`$DATA_ROOT/mnist`) expanded; a variable that is not set is a one-line
    error naming it, never a folder literally called `$DATA_ROOT`."""
    for match in VARIABLE.finditer(path):
        name = match.group(1) or match.group(2)
        if name not in os.environ:
            raise UserInputError(
                f"{option}={path} names ${name}, which is not set; export {name}=/path/to/data or give the full path"
            )
    return os.path.expanduser(os.path.expandvars(path))


def resolve_path(path: str | None, option: str, kind: str = "file") -> Path | None:
    """The existing file (`kind="file"`) or folder (`kind="folder"`) a user named with `--<option>`, expanded as
    `expand_path` does; `None` when none was named (the caller's offline fallback). A wrong path is one line."""
    if path is None:
        return None
    resolved = Path(expand_path(str(path), option))
    if not resolved.exists():
        raise UserInputError(f"{option}={resolved} does not exist; check --{option}")
    if kind == "file" and not resolved.is_file():
        raise UserInputError(f"{option}={resolved} is a folder, not a file; check --{option}")
    if kind == "folder" and not resolved.is_dir():
        raise UserInputError(f"{option}={resolved} is not a folder; check --{option}")
    return resolved


def expand_config_paths(config: Any) -> Any:
    """Every string in a parsed config section that holds `$VARIABLES` or starts with `~`, expanded in place, so
    the run's saved `config.yaml` names the files it actually read. A variable that is not set stays as written:
    the datamodule decides whether that is an error (`resolve_path`) or its cue for an offline fallback."""
    if isinstance(config, Namespace):
        for key, value in vars(config).items():
            setattr(config, key, expand_config_paths(value))
        return config
    if isinstance(config, list):
        return [expand_config_paths(value) for value in config]
    if isinstance(config, str) and ("$" in config or config.startswith("~")):
        return os.path.expanduser(os.path.expandvars(config))
    return config


def data_source(datamodule: Any) -> str | None:
    """What a datamodule trained on, as it says itself (`data_source`): a file or folder, or `synthetic: ...`."""
    source = getattr(datamodule, "data_source", None)
    return str(source) if source else None


class TensorBatches(TensorDataset):
    """A `TensorDataset` that the `DataLoader` reads a whole batch at a time (its `__getitems__` hook).

    One indexing operation per tensor replaces `batch_size` item reads and a stack: about 3x faster for
    1024 CIFAR-10 images on a 2-core CPU (2.4 against 7.0 ms), which matters when a GPU step takes a few ms.
    """

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        index = torch.as_tensor(indices)
        return tuple(tensor[index] for tensor in self.tensors)


def _as_is(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return batch  # already a batch: `TensorBatches.__getitems__` gathered it


def tensor_loader(
    *tensors: torch.Tensor, batch_size: int, shuffle: bool, num_workers: int = 0
) -> ResumableLoader:
    """Batches of rows of `tensors` (equal first dimensions), as a tuple of tensors in the same order; a run that
    stops mid-epoch resumes at the next batch in the same order (`common.resume`).

    Shuffled loaders drop a last incomplete batch (equal batches keep batch-norm statistics steady) unless
    the data holds no more than one batch.
    """
    return ResumableLoader(
        TensorBatches(*tensors),
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=shuffle and len(tensors[0]) > batch_size,
        collate_fn=_as_is,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )
