"""Loaders for datasets held in memory as tensors: each batch is one gather per tensor."""

import torch
from torch.utils.data import TensorDataset

from common.resume import ResumableLoader


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
