"""Forecasting data: ETT benchmark files, any CSV with a timestamp column, or statsmodels' bundled CO2 series.

Rows are split chronologically; the scaler is fit on the training rows only; validation and test windows
start `lookback` rows before their split so that every forecast target lies inside its own split.
"""

import os
import urllib.request
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from common.distributed import evaluation_loader
from common.errors import UserInputError, require_at_least
from common.resume import ResumableLoader
from projects.time_series.reading import MissingValues, Series, co2_series, read_csv, read_csv_series

ETT_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/{name}.csv"
HOURS_PER_MONTH = 30 * 24  # the ETT papers' "month"
# Season lengths by sampling interval (seconds), for MASE's seasonal naive denominator.
SEASON_BY_INTERVAL = {900: 96, 3600: 24, 86400: 7, 7 * 86400: 52}
Setting = Literal["M", "MS", "S"]


class WindowDataset(Dataset):
    """Sliding windows over rows `[start, end)`: inputs `(lookback, C)` and the next `horizon` rows of the
    last `targets` channels `(horizon, targets)`."""

    def __init__(
        self, values: torch.Tensor, targets: int, lookback: int, horizon: int, start: int, end: int
    ) -> None:
        self.values, self.targets, self.lookback, self.horizon = values, targets, lookback, horizon
        self.start, self.count = start, end - start - lookback - horizon + 1

    def __len__(self) -> int:
        return max(self.count, 0)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        first = self.start + index
        inputs = self.values[first : first + self.lookback]
        target = self.values[first + self.lookback : first + self.lookback + self.horizon, -self.targets :]
        return inputs, target


def season_length(timestamps: pd.DatetimeIndex) -> int:
    """A season length guessed from the median sampling interval; 1 (no season) when it is unusual."""
    if len(timestamps) < 2:
        return 1
    seconds = int(pd.Series(timestamps).diff().median().total_seconds())
    if 28 * 86400 <= seconds <= 31 * 86400:
        return 12
    return SEASON_BY_INTERVAL.get(seconds, 1)


def future_timestamps(timestamps: pd.DatetimeIndex, steps: int) -> pd.DatetimeIndex:
    """The `steps` timestamps after the last one, at the series' inferred frequency (or median interval)."""
    frequency = pd.infer_freq(timestamps[-50:]) if len(timestamps) >= 3 else None
    if frequency is not None:
        return pd.date_range(timestamps[-1], periods=steps + 1, freq=frequency)[1:]
    interval = pd.Series(timestamps).diff().median()
    return pd.DatetimeIndex([timestamps[-1] + interval * (step + 1) for step in range(steps)])


class ForecastDataModule(LightningDataModule):
    """Windows of a real series for forecasting.

    Args:
        dataset: `co2` (statsmodels' weekly CO2, offline), `ETTh1`/`ETTh2`/`ETTm1`/`ETTm2`, or `csv` (your file).
        data_file: the CSV file for `csv`; for ETT it replaces `<data_dir>/<dataset>.csv`.
        data_dir: for ETT, the folder holding `<dataset>.csv` (default `$DATA_ROOT/ett-small`).
        download: fetch a missing ETT file from the ETDataset GitHub repository into `data_dir`.
        timestamp_column: the column holding timestamps (ETT and co2: `date`).
        target: the column to forecast (ETT: `OT`; co2: `co2`).
        features: input columns besides the target for M/MS (default: every other column).
        setting: `M` all columns to all columns, `MS` all columns to the target, `S` target to target.
        lookback: input steps L.
        horizon: forecast steps H.
        split_fractions: train and validation fractions of the rows for `co2`/`csv` (test gets the rest);
            ETT uses its standard 12/4/4-month borders.
        missing_values: blank, NaN or +-inf cells in the used columns: `error` stops with the file, column
            and first bad row; `interpolate` fills them linearly in row order (edges take the nearest value);
            `ffill` carries the last value forward (a leading gap takes the first value).
        seasonal_period: season length of MASE's denominator (default: from the interval); the SeasonalNaive
            baseline takes its own `--model.network.init_args.period`.
        batch_size: windows per batch.
        num_workers: DataLoader worker processes.
        predict_file: CSV whose next H steps `predict` forecasts (default: the training series itself).
    """

    def __init__(
        self,
        dataset: Literal["co2", "ETTh1", "ETTh2", "ETTm1", "ETTm2", "csv"] = "co2",
        data_file: str | None = None,
        data_dir: str | None = None,
        download: bool = False,
        timestamp_column: str = "date",
        target: str | None = None,
        features: list[str] | None = None,
        setting: Setting = "M",
        lookback: int = 96,
        horizon: int = 48,
        split_fractions: tuple[float, float] = (0.7, 0.1),
        missing_values: MissingValues = "error",
        seasonal_period: int | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        predict_file: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.dataset, self.data_file, self.data_dir, self.download = dataset, data_file, data_dir, download
        self.timestamp_column, self.setting = timestamp_column, setting
        self.lookback, self.horizon = lookback, horizon
        self.split_fractions, self.missing_values = split_fractions, missing_values
        self.batch_size, self.num_workers, self.predict_file = batch_size, num_workers, predict_file
        self.target = target or {"co2": "co2", "csv": None}.get(dataset, "OT")
        if self.target is None:
            raise UserInputError(
                "--data.target is required with --data.dataset csv; name the column to forecast"
            )
        self.features = features
        self._seasonal_period = seasonal_period
        if lookback < 1 or horizon < 1:
            raise UserInputError(f"lookback ({lookback}) and horizon ({horizon}) must be positive")
        require_at_least(1, batch_size=batch_size)
        require_at_least(0, num_workers=num_workers)

    # ----- loading -----
    def _columns(self, available: list[str]) -> list[str]:
        """Input columns with the target last, as the models expect."""
        if self.setting == "S":
            return [self.target]
        features = (
            self.features
            if self.features is not None
            else [c for c in available if c not in (self.timestamp_column, self.target)]
        )
        return [c for c in features if c != self.target] + [self.target]

    def _ett_file(self) -> Path:
        folder = Path(self.data_dir or Path(os.environ.get("DATA_ROOT", "data")) / "ett-small")
        file = Path(self.data_file) if self.data_file else folder / f"{self.dataset}.csv"
        if file.is_file():
            return file
        if not self.download:
            raise UserInputError(
                f"{file} not found; pass --data.data_dir to the folder holding {self.dataset}.csv or set --data.download true"
            )
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            urllib.request.urlretrieve(ETT_URL.format(name=self.dataset), file)
        except OSError as error:
            raise UserInputError(
                f"downloading {self.dataset} failed ({error}); download {ETT_URL.format(name=self.dataset)} by hand into {file.parent}"
            ) from error
        return file

    def _load(self) -> Series:
        if self.dataset == "co2":
            return co2_series()
        path = self._ett_file() if self.dataset.startswith("ETT") else self.data_file
        if path is None:
            raise UserInputError(
                "--data.data_file is required with --data.dataset csv; point it at your CSV file"
            )
        header = read_csv(path, rows=0).columns.tolist()
        return read_csv_series(path, self.timestamp_column, self._columns(header), self.missing_values)

    @cached_property
    def series(self) -> Series:
        series = self._load()
        if len(series.values) < self.lookback + self.horizon:
            raise UserInputError(
                f"{series.name} has {len(series.values)} rows, fewer than lookback + horizon = {self.lookback + self.horizon}; "
                "lower --data.lookback or --data.horizon"
            )
        return series

    @cached_property
    def borders(self) -> dict[str, tuple[int, int]]:
        """Row ranges `[start, end)` of each split's windows; val/test start `lookback` rows early."""
        rows, lookback = len(self.series.values), self.lookback
        if self.dataset.startswith("ETT"):
            month = HOURS_PER_MONTH * (4 if self.dataset.startswith("ETTm") else 1)
            train_end, val_end, test_end = 12 * month, 16 * month, 20 * month
        else:
            train_end = int(rows * self.split_fractions[0])
            test_rows = rows - train_end - int(rows * self.split_fractions[1])
            val_end, test_end = rows - test_rows, rows
        borders = {
            "train": (0, train_end),
            "val": (train_end - lookback, val_end),
            "test": (val_end - lookback, min(test_end, rows)),
        }
        for split, (start, end) in borders.items():
            if end - start < lookback + self.horizon:
                raise UserInputError(
                    f"the {split} split of {self.series.name} has {end - start} rows, fewer than lookback + horizon = "
                    f"{lookback + self.horizon}; lower --data.lookback/--data.horizon or change --data.split_fractions"
                )
        return borders

    @cached_property
    def scaler(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-column mean and std `(C,)` of the training rows only."""
        train = self.series.values[: self.borders["train"][1]].astype(np.float64)
        std = train.std(axis=0)
        return train.mean(axis=0), np.where(std > 0, std, 1.0)

    def scale(self, values: np.ndarray) -> torch.Tensor:
        mean, std = self.scaler
        return torch.as_tensor((values - mean) / std, dtype=torch.float32)

    # ----- what the model needs to know (linked into the module) -----
    @property
    def input_channels(self) -> int:
        return len(self.series.columns)

    @property
    def output_channels(self) -> int:
        return len(self.series.columns) if self.setting == "M" else 1

    @property
    def target_names(self) -> list[str]:
        return self.series.columns[-self.output_channels :]

    @property
    def target_mean(self) -> list[float]:
        return self.scaler[0][-self.output_channels :].tolist()

    @property
    def target_std(self) -> list[float]:
        return self.scaler[1][-self.output_channels :].tolist()

    @property
    def seasonal_period(self) -> int:
        return self._seasonal_period or season_length(self.series.timestamps)

    @property
    def mase_scale(self) -> list[float]:
        """Per target, the mean absolute error of the seasonal naive forecast in-sample on the (scaled)
        training rows: MASE divides the forecast MAE by it."""
        train = self.scale(self.series.values[: self.borders["train"][1]])[:, -self.output_channels :]
        period = self.seasonal_period if self.seasonal_period < len(train) else 1
        return (train[period:] - train[:-period]).abs().mean(dim=0).clamp(min=1e-8).tolist()

    # ----- datasets -----
    def setup(self, stage: str) -> None:
        values = self.scale(self.series.values)
        windows = {
            split: WindowDataset(values, self.output_channels, self.lookback, self.horizon, *border)
            for split, border in self.borders.items()
        }
        self.train_dataset, self.val_dataset, self.test_dataset = (
            windows["train"],
            windows["val"],
            windows["test"],
        )

    def _loader(self, dataset: Dataset, shuffle: bool = False) -> DataLoader:
        return ResumableLoader(  # resumes mid-epoch in the same order
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return evaluation_loader(self._loader(self.val_dataset), self.trainer)  # under DDP: each window once

    def test_dataloader(self) -> DataLoader:
        return evaluation_loader(self._loader(self.test_dataset), self.trainer)

    def predict_dataloader(self) -> DataLoader:
        """The last `lookback` rows of `predict_file` (default: the training series) and the next `horizon`
        timestamps. Built here, not in `setup`, so that the scaler is the one restored from the checkpoint."""
        series = self.series
        if self.predict_file is not None:  # the columns the model was trained on
            series = read_csv_series(
                self.predict_file,
                self.timestamp_column,
                self.series.columns,
                self.missing_values,
                option="--data.predict_file",
            )
        if len(series.values) < self.lookback:
            raise UserInputError(
                f"{series.name} has {len(series.values)} rows, fewer than lookback {self.lookback}; give a longer series"
            )
        inputs = self.scale(series.values[-self.lookback :])  # (L, C)
        stamps = future_timestamps(series.timestamps, self.horizon)
        return self._loader([(inputs, torch.as_tensor(stamps.as_unit("ns").asi8))])

    # ----- checkpoint -----
    def state_dict(self) -> dict:
        """The training rows' scaler: `predict` from a checkpoint scales its inputs as training did, even if
        the CSV has grown since (its training split is a fraction of the rows, so it would move)."""
        mean, std = self.scaler
        return {"scaler_mean": mean.tolist(), "scaler_std": std.tolist()}

    def load_state_dict(self, state_dict: dict) -> None:
        if "scaler_mean" in state_dict:
            self.__dict__["scaler"] = (
                np.asarray(state_dict["scaler_mean"]),
                np.asarray(state_dict["scaler_std"]),
            )
