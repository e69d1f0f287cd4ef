"""Evaluation under DDP that counts every validation and test sample exactly once.

Lightning gives each process a `DistributedSampler`, which pads a split by repeating samples until every
process has as many. That is harmless in training; in evaluation the repeated samples count twice.
Losses are logged as torchmetrics `MeanMetric`s weighted by batch size, for the same reason: with
`self.log(..., sync_dist=True)` Lightning averages the per-process sample counts in an integer tensor, which
drops the half when a split does not divide evenly (a loss over 181 samples on 2 processes came out 0.6% high).
"""

from lightning.pytorch import Trainer
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import BatchSampler, DataLoader


def evaluation_loader(loader: DataLoader, trainer: Trainer | None) -> DataLoader:
    """`loader` unchanged on one process; under DDP, the same loader over this process's share of the split.

    The shares differ by at most one sample, so processes may run one batch more or fewer: fine in evaluation,
    where DDP synchronises buffers only on the first batch and metrics synchronise once, when computed.
    Lightning keeps a sampler that already is a `DistributedSampler` instead of putting its padding one in.
    """
    kwargs = trainer.distributed_sampler_kwargs if trainer is not None else None
    processes = kwargs["num_replicas"] if kwargs else 1
    # A split smaller than the number of processes would leave one with no batch, which DDP cannot run:
    # keep Lightning's padding then (its metrics count a few samples twice, but the run goes on).
    if processes == 1 or len(loader.dataset) < processes:
        return loader
    if type(loader.batch_sampler) is not BatchSampler:
        raise TypeError("evaluation_loader needs a DataLoader built with batch_size, not a batch_sampler")
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=UnrepeatedDistributedSampler(loader.dataset, shuffle=False, **kwargs),
        collate_fn=loader.collate_fn,
        num_workers=loader.num_workers,
        pin_memory=loader.pin_memory,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        prefetch_factor=loader.prefetch_factor,
        persistent_workers=loader.persistent_workers,
    )
