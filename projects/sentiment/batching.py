"""Length-bucketed batches and dynamic padding."""

import random
from typing import Any

import torch
from torch.utils.data import BatchSampler, Sampler

from projects.sentiment.tokenizer import PAD_ID


class BucketBatchSampler(BatchSampler):
    """Batches of similar length: indices from `sampler` are cut into pools of `pool_batches` batches, each pool
    is sorted by length and cut into batches, and (when `shuffle`) the batch order is shuffled.

    Subclassing `BatchSampler` with a `sampler` argument lets Lightning swap in a `DistributedSampler` under DDP.
    `pool_batches=0` turns bucketing off (plain batches, for comparison).
    """

    def __init__(
        self, sampler: Sampler[int], batch_size: int, drop_last: bool, lengths: list[int], pool_batches: int = 50,
        shuffle: bool = False, seed: int = 0,
    ) -> None:  # fmt: skip
        super().__init__(sampler, batch_size, drop_last)
        self.lengths, self.pool_batches, self.shuffle, self.seed = lengths, pool_batches, shuffle, seed
        self.iteration = 0

    def __iter__(self):
        if self.pool_batches <= 0:
            yield from super().__iter__()
            return
        indices, pool_size = list(self.sampler), self.batch_size * self.pool_batches
        batches = []
        for start in range(0, len(indices), pool_size):
            pool = sorted(indices[start : start + pool_size], key=self.lengths.__getitem__)
            batches += [pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)]
        if self.drop_last:
            batches = [batch for batch in batches if len(batch) == self.batch_size]
        if self.shuffle:
            # The epoch that Lightning sets on the sampler seeds the order, so a resumed run draws the same batches.
            random.Random(self.seed + getattr(self.sampler, "epoch", self.iteration)).shuffle(batches)
            self.iteration += 1
        yield from batches


def pad_batch(rows: list[dict]) -> dict[str, Any]:
    """Pad token ids to the longest row of this batch: `input_ids` and `attention_mask` `(B, T)`, `labels` `(B,)`."""
    longest = max(1, max(len(row["input_ids"]) for row in rows))
    input_ids = torch.full((len(rows), longest), PAD_ID, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), longest), dtype=torch.bool)
    for index, row in enumerate(rows):
        input_ids[index, : len(row["input_ids"])] = torch.tensor(row["input_ids"], dtype=torch.long)
        attention_mask[index, : len(row["input_ids"])] = True
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "texts": [row["text"] for row in rows]}
    if "label" in rows[0]:
        batch["labels"] = torch.tensor([row["label"] for row in rows], dtype=torch.long)
    if "line" in rows[0]:
        batch["lines"] = [row["line"] for row in rows]
    return batch
