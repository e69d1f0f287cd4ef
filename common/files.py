"""Reading files of tensors safely, and writing files that other runs, processes or loader workers may read or
write at the same time."""

import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from common.errors import UserInputError


def load_tensors(path: Path, kind: str, fix: str, mmap: bool = False) -> Any:
    """`torch.load` of a file of tensors and plain data, weights-only: a file from elsewhere is data, never code.

    A crafted pickle (one that would call a function when loaded) is refused without running it; that, and a
    truncated or foreign file, is a one-line `UserInputError` naming the file and `fix`. `kind` names what the
    file should be (`checkpoint`, `cache`); `mmap` maps tensors instead of reading them.
    """
    if path.stat().st_size == 0:
        raise UserInputError(f"{kind} {path} is empty; {fix}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        if "Unsupported global" in str(error):  # a reference to a function or class: what runs code
            raise UserInputError(
                f"{path} is not a trusted {kind}: it holds Python objects beyond tensors and plain data, which "
                f"could run code when loaded; {fix}"
            ) from None
        raise UserInputError(f"cannot read {kind} {path} (truncated or not a {kind} file); {fix}") from None
    except Exception:  # torch raises many types for a truncated or foreign file
        raise UserInputError(f"cannot read {kind} {path} (truncated or not a {kind} file); {fix}") from None


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to, renamed onto `path` when the block ends without an error.

    A killed run never leaves a half-written file, and processes that write the same file at once (DDP ranks,
    data-loader workers) each write their own temporary file and each end with a whole one in place.

        with atomic_path(cache) as partial:
            torch.save(data, partial)
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
