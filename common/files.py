"""Writing files that other runs, processes or loader workers may read or write at the same time."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
