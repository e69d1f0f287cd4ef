"""`ProjectNameDataModule`: sliding windows over a series from a CSV file, or over a synthetic series offline.

Swap `read_series` for your own reader and the rest keeps working: it only needs a float tensor `(T, C)` with the
target columns first.
"""

from pathlib import Path

import pandas as pd
import torch
from lightning.pytorch import LightningDataModule

from common.data import resolve_path, tensor_loader
from common.errors import UserInputError, require_at_least


def synthetic_series(length: int, seed: int) -> torch.Tensor:
    """`(length, 1)`: a daily and a weekly cycle of hourly data, a slow trend and noise."""
    generator = torch.Generator().manual_seed(seed)
    hours = torch.arange(length, dtype=torch.float32)
    cycles = torch.sin(2 * torch.pi * hours / 24) + 0.5 * torch.sin(2 * torch.pi * hours / (24 * 7))
    return (cycles + hours / length + 0.2 * torch.randn(length, generator=generator)).unsqueeze(1)


def read_csv_series(path: Path, targets: list[str], features: list[str]) -> torch.Tensor:
    """The `targets` then `features` columns of a CSV, as float32 `(T, C)`, or a one-line error."""
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserInputError(f"cannot read data.data_file={path} as CSV ({error}); check the file") from None
    missing = [column for column in targets + features if column not in table.columns]
    if missing:
        raise UserInputError(f"{path} has no column {missing[0]!r} (it has {', '.join(map(str, table.columns))}); "
                             "set --data.target_columns / --data.feature_columns")  # fmt: skip
    columns = table[targets + features]
    for column in columns.columns:
        if not pd.api.types.is_numeric_dtype(columns[column]):
            raise UserInputError(f"column '{column}' of {path} is not numeric; pick numeric columns")
    values = torch.tensor(columns.to_numpy(dtype="float32"))
    bad = (~torch.isfinite(values)).nonzero()
    if len(bad):
        row, column = bad[0].tolist()
        raise UserInputError(f"{path} has {len(bad)} missing or infinite values (first: row {row + 2}, column "
                             f"'{columns.columns[column]}'); fill or drop them")  # fmt: skip
    return values


def windows(series: torch.Tensor, lookback: int, horizon: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (history, future) pair of a `(T, C)` series, one step apart: `(N, lookback, C)`, `(N, horizon, C)`."""
    pairs = series.unfold(0, lookback + horizon, 1).transpose(1, 2)  # (N, lookback + horizon, C)
    return pairs[:, :lookback], pairs[:, lookback:]


class ProjectNameDataModule(LightningDataModule):
    """Windows of `lookback` rows of history and the `horizon` rows after them, split in time: the first
    `train_fraction` of the rows train, the next `val_fraction` validate, the rest test (each split's windows
    start `lookback` rows before it, so no window sees past its own split's end).

    Args:
        data_file: CSV with one row per time step; `$DATA_ROOT/...` is expanded. `None`: a synthetic series.
        target_columns: the columns to forecast.
        feature_columns: more columns the history shows (not forecast).
        lookback: rows of history each forecast sees.
        horizon: rows forecast.
        train_fraction: share of the rows (from the start) that train.
        val_fraction: share of the rows after those that validate.
        synthetic_length: rows of the synthetic series.
        batch_size: training batch size.
        eval_batch_size: validation, test and predict batch size.
        num_workers: DataLoader worker processes (windows are slices of in-memory tensors, so 0 is fine).
        seed: seed of the synthetic series' noise.
    """

    def __init__(
        self,
        data_file: str | None = None,
        target_columns: list[str] | None = None,
        feature_columns: list[str] | None = None,
        lookback: int = 96,
        horizon: int = 24,
        train_fraction: float = 0.7,
        val_fraction: float = 0.1,
        synthetic_length: int = 3000,
        batch_size: int = 64,
        eval_batch_size: int = 512,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        require_at_least(
            1, lookback=lookback, horizon=horizon, batch_size=batch_size, eval_batch_size=eval_batch_size
        )
        require_at_least(0, num_workers=num_workers)
        if not (0 < train_fraction < 1 and 0 < val_fraction < 1 and train_fraction + val_fraction < 1):
            raise UserInputError("train_fraction and val_fraction must be in (0, 1) and sum to less than 1")
        self.data_file = resolve_path(data_file, "data.data_file")
        if self.data_file is not None and not target_columns:
            raise UserInputError(
                f"name the column(s) of {self.data_file} to forecast: --data.target_columns [OT]"
            )
        self.data_source = (
            str(self.data_file) if self.data_file else f"synthetic: {synthetic_length} hourly steps"
        )
        self.series: torch.Tensor | None = None
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def target_names(self) -> list[str]:
        return list(self.hparams.target_columns or ["value"]) if self.data_file else ["value"]

    @property
    def output_channels(self) -> int:
        return len(self.target_names)

    @property
    def input_channels(self) -> int:
        return self.output_channels + len(self.hparams.feature_columns or [])

    @property
    def lookback(self) -> int:
        return self.hparams.lookback

    @property
    def horizon(self) -> int:
        return self.hparams.horizon

    def read_series(self) -> torch.Tensor:
        """The whole series `(T, input_channels)`, targets first."""
        if self.series is None:
            hp = self.hparams
            if self.data_file is None:
                self.series = synthetic_series(hp.synthetic_length, hp.seed)
            else:
                self.series = read_csv_series(
                    self.data_file, self.target_names, list(hp.feature_columns or [])
                )
        return self.series

    def setup(self, stage: str) -> None:
        if self.splits:
            return
        series, hp = self.read_series(), self.hparams
        train_end = round(len(series) * hp.train_fraction)
        val_end = train_end + round(len(series) * hp.val_fraction)
        bounds = {"train": (0, train_end), "val": (train_end - hp.lookback, val_end),
                  "test": (val_end - hp.lookback, len(series))}  # fmt: skip
        for name, (start, end) in bounds.items():
            if end - max(start, 0) < hp.lookback + hp.horizon:
                raise UserInputError(f"the {name} split has {end - max(start, 0)} rows, fewer than lookback + horizon "
                                     f"= {hp.lookback + hp.horizon}; use a longer series or a shorter window")  # fmt: skip
            history, future = windows(series[max(start, 0) : end], hp.lookback, hp.horizon)
            self.splits[name] = history, future[..., : self.output_channels]

    def channel_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of each channel over the training rows, which the model scales with."""
        self.setup("fit")
        series = self.read_series()
        rows = series[: round(len(series) * self.hparams.train_fraction)]
        return rows.mean(dim=0), rows.std(dim=0).clamp_min(1e-6)

    def train_dataloader(self):
        return tensor_loader(*self.splits["train"], batch_size=self.hparams.batch_size, shuffle=True,
                             num_workers=self.hparams.num_workers)  # fmt: skip

    def val_dataloader(self):
        return tensor_loader(*self.splits["val"], batch_size=self.hparams.eval_batch_size, shuffle=False)

    def test_dataloader(self):
        return tensor_loader(*self.splits["test"], batch_size=self.hparams.eval_batch_size, shuffle=False)

    def predict_dataloader(self):
        """The forecast after the series' last row (its `start` is the row index it begins at)."""
        series = self.read_series()
        history = series[-self.hparams.lookback :].unsqueeze(0)
        return tensor_loader(history, torch.tensor([len(series)]), batch_size=1, shuffle=False)
