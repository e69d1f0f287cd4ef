"""Resuming exactly: a run stopped mid-epoch and resumed from `last.ckpt` ends with the weights of a run never stopped.

Two things make that so. `ResumableLoader` shuffles with a permutation drawn from (seed, epoch) alone, as
`DistributedSampler` does, and is stateful: Lightning saves how many of the epoch's batches were trained on and,
resuming (`ExactResume` puts that back), the loader skips those indices without loading them. `ExactResume` also
saves the random number generators (torch CPU and CUDA, numpy, Python) in every checkpoint and puts them back as training
resumes, so dropout and augmentation draw what they would have drawn. Under DDP each rank's generators are saved
and each rank gets its own back, so the resumed run is exact there too when it resumes on as many processes.
"""

import itertools
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, RandomSampler


class SeededShuffle(RandomSampler):
    """A random order that depends on `seed` and the epoch (`set_epoch`, called by Lightning) and nothing else."""

    def __init__(self, data_source: Any, seed: int | None = None) -> None:
        super().__init__(data_source)
        self.seed = torch.initial_seed() if seed is None else seed  # the run's seed, set by seed_everything
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()


class _SkipFirst:
    """The loader's index sampler, whose next pass leaves out the batches a resumed epoch has already trained on."""

    def __init__(self, loader: "ResumableLoader", sampler: Any) -> None:
        self.loader, self.sampler = loader, sampler

    def __iter__(self) -> Iterator[Any]:
        # Read, not consumed: a worker-backed iterator asks for the index iterator twice as it starts.
        return itertools.islice(iter(self.sampler), self.loader.skipping, None)

    def __len__(self) -> int:
        return len(self.sampler)


class ResumableLoader(DataLoader):
    """A `DataLoader` that resumes mid-epoch at the next batch, in the same order (`shuffle=True` uses `SeededShuffle`).

    Lightning reads its `state_dict()` into each checkpoint and calls `load_state_dict()` when it resumes one taken
    mid-epoch. Lightning fetches a sized loader's batches one at a time, so the batches it has handed out are the
    batches trained on. A dataset with a `set_epoch(epoch)` method gets the epoch before each epoch starts, so its
    augmentation can draw from (seed, epoch, index) alone; its workers must not be persistent, or they would keep
    the first epoch's copy.
    """

    def __init__(self, dataset: Any, *args: Any, shuffle: bool | None = None, **kwargs: Any) -> None:
        if hasattr(dataset, "set_epoch") and kwargs.get("persistent_workers"):
            raise ValueError(
                "a dataset with set_epoch needs persistent_workers=False, or its workers miss the epoch"
            )
        if shuffle and kwargs.get("sampler") is None and kwargs.get("batch_sampler") is None:
            kwargs["sampler"], shuffle = SeededShuffle(dataset), None
        # Worker seeds come from the loader's own generator, so that no epoch start draws from the global one.
        kwargs.setdefault("generator", torch.Generator())
        super().__init__(dataset, *args, shuffle=shuffle, **kwargs)
        self.skip_batches = 0  # set by `load_state_dict`, used by the next pass
        self.skipping = 0
        self.batches_done = 0

    @property
    def _index_sampler(self) -> Any:
        return _SkipFirst(self, super()._index_sampler)

    def __iter__(self) -> Iterator[Any]:
        # `SeededShuffle`, or Lightning's `DistributedSampler` under DDP: both have a seed and an epoch.
        sampler = self.sampler
        epoch = getattr(sampler, "epoch", 0)
        self.generator.manual_seed(getattr(sampler, "seed", 0) + epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        self.skipping, self.skip_batches = self.skip_batches, 0
        self.batches_done = self.skipping
        # The index iterator starts here, skipping what the resumed epoch trained on.
        batches = super().__iter__()
        self.skipping = 0
        for batch in batches:
            self.batches_done += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"batches_done": self.batches_done}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.skip_batches = state_dict["batches_done"] % max(len(self), 1)  # a finished epoch skips nothing


def loaders_of(iterables: Any) -> list[Any]:
    """The loaders in what `trainer.train_dataloader` holds: one loader, or a list or dict of them."""
    if isinstance(iterables, dict):
        iterables = list(iterables.values())
    return (
        [item for each in iterables for item in loaders_of(each)]
        if isinstance(iterables, list | tuple)
        else [iterables]
    )


def random_states() -> dict[str, Any]:
    """This process's torch (CPU, and CUDA where there is one), numpy and Python generator states, as types a
    weights-only load accepts. Dropout on a GPU draws from the CUDA generators."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    numpy_state = (name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached)
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda, "numpy": numpy_state, "python": random.getstate()}


def set_random_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    cuda = states.get("cuda", [])
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(states["python"])


class ExactResume(Callback):
    """Saves the torch, numpy and Python random states of every process in each checkpoint and restores them, with
    the training loaders' positions, as training resumes.

    Lightning restores a stateful loader itself only if it first builds the loader after loading the checkpoint;
    a learning-rate schedule that asks for `trainer.estimated_stepping_batches` builds it earlier.
    """

    def __init__(self) -> None:
        self.to_restore: list[dict[str, Any]] | None = None
        self.loader_states: list[dict[str, Any]] = []

    def state_dict(self) -> dict[str, Any]:
        # Every rank builds the checkpoint (only rank 0 writes it), and all at once, a preemption's SIGTERM
        # included (Lightning agrees on it across ranks first): gathering here cannot leave one rank waiting.
        ranks = [random_states()]
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            ranks = [None] * dist.get_world_size()
            dist.all_gather_object(ranks, random_states())
        return {"ranks": ranks}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.to_restore = state_dict.get("ranks", [state_dict])  # or the one-process format of before

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        fit_loop = checkpoint.get("loops", {}).get("fit_loop", {})
        self.loader_states = fit_loop.get("state_dict", {}).get("combined_loader", [])

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # After the sanity check, before the first batch is fetched and augmented (`on_after_batch_transfer`):
        # a `ResumableLoader`'s iterator reads its position only when asked for its first batch.
        resumable = [
            loader for loader in loaders_of(trainer.train_dataloader) if isinstance(loader, ResumableLoader)
        ]
        if self.loader_states and len(resumable) == len(self.loader_states):
            for loader, state in zip(resumable, self.loader_states, strict=True):
                loader.load_state_dict(state)
        self.loader_states = []
        if self.to_restore is not None:
            if len(self.to_restore) == trainer.world_size:
                set_random_states(self.to_restore[trainer.global_rank])
            else:
                rank_zero_warn(
                    f"the checkpoint holds the random states of {len(self.to_restore)} processes, this run has "
                    f"{trainer.world_size}: they stay as seeded, so the resumed run is not bit-exact"
                )
            self.to_restore = None
