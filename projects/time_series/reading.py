"""Reading a series from a CSV file (or statsmodels' bundled CO2), with one-line errors for every bad input."""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from common.errors import UserInputError

MissingValues = Literal["error", "interpolate", "ffill"]


@dataclass
class Series:
    """A loaded series: timestamps `(T,)`, raw values `(T, C)` with the targets as the last columns."""

    timestamps: pd.DatetimeIndex
    values: np.ndarray
    columns: list[str]
    name: str


def read_csv(path: str | Path, rows: int | None = None, option: str = "--data.data_file") -> pd.DataFrame:
    """The CSV as a frame; `option` is the flag that named the file, for the error message."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"CSV file {path} not found; pass {option} to an existing file")
    try:
        return pd.read_csv(path, nrows=rows)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UserInputError(
            f"{path} is not a readable CSV file ({str(error).splitlines()[0]}); check its format"
        ) from error


def read_csv_series(
    path: str | Path,
    timestamp_column: str,
    columns: list[str],
    missing_values: MissingValues,
    option: str = "--data.data_file",
) -> Series:
    """Read `columns` (targets last) and the timestamps from a CSV, with one-line errors for bad input."""
    frame = read_csv(path, option=option)
    return frame_to_series(frame, timestamp_column, columns, missing_values, name=str(path))


def fill_non_finite(values: pd.DataFrame, missing_values: MissingValues, name: str) -> pd.DataFrame:
    """Blank, NaN and +-inf cells: an error naming the first one, or filled as `missing_values` says.

    Rejected by default: one inf makes the scaler's mean and std NaN, and then every loss is NaN.
    """
    finite = np.isfinite(values.to_numpy(np.float64))  # (T, C)
    if finite.all():
        return values
    if missing_values == "error":
        rows, columns = np.nonzero(~finite)  # row-major: the first bad row comes first
        row, column = int(rows[0]), values.columns[columns[0]]
        value = values[column].iloc[row]
        shown = "an empty cell" if np.isnan(value) else f"{value}"
        raise UserInputError(
            f"column '{column}' of {name} has {shown} in row {row}, not a finite number; fix the file or "
            "set --data.missing_values interpolate (or ffill)"
        )
    gaps = values.mask(~finite)  # infinities become gaps and are filled like blanks
    if missing_values == "interpolate":  # linear in row order; leading/trailing gaps take the nearest value
        filled = gaps.interpolate(method="linear", limit_direction="both")
    else:  # ffill: the last value carries forward; a leading gap takes the first value
        filled = gaps.ffill().bfill()
    if filled.isna().any().any():
        empty = next(column for column in filled.columns if filled[column].isna().any())
        raise UserInputError(
            f"column '{empty}' of {name} has no finite values at all; drop it from --data.features"
        )
    return filled


def frame_to_series(
    frame: pd.DataFrame, timestamp_column: str, columns: list[str], missing_values: MissingValues, name: str
) -> Series:
    for column in [timestamp_column, *columns]:
        if column not in frame.columns:
            available = ", ".join(map(str, frame.columns))
            raise UserInputError(
                f"column '{column}' not in {name} (columns: {available}); fix --data.target/--data.features/--data.timestamp_column"
            )
    timestamps = pd.to_datetime(frame[timestamp_column], errors="coerce")
    if timestamps.isna().any():
        row = int(timestamps.isna().to_numpy().argmax())
        raise UserInputError(
            f"timestamp '{frame[timestamp_column].iloc[row]}' in row {row} of {name} is not a date; fix or drop that row"
        )
    steps = timestamps.diff().iloc[1:]
    if (steps <= pd.Timedelta(0)).any():
        row = int((steps <= pd.Timedelta(0)).to_numpy().argmax()) + 1
        raise UserInputError(
            f"timestamps in {name} are not strictly increasing (row {row}: {timestamps.iloc[row]} after "
            f"{timestamps.iloc[row - 1]}); sort the file by time and remove duplicate rows"
        )
    values = frame[columns].apply(pd.to_numeric, errors="coerce")
    for column in columns:
        bad = values[column].isna() & frame[column].notna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise UserInputError(
                f"column '{column}' in {name} is not numeric ('{frame[column].iloc[row]}' in row {row}); choose numeric columns with --data.features/--data.target"
            )
    values = fill_non_finite(values, missing_values, name)
    return Series(pd.DatetimeIndex(timestamps), values.to_numpy(np.float32), list(columns), name)


def co2_series() -> Series:
    """Weekly atmospheric CO2 at Mauna Loa, 1958-2001 (2,284 rows), bundled with statsmodels."""
    from statsmodels.datasets import co2

    frame = co2.load_pandas().data.rename_axis("date").reset_index()
    return frame_to_series(frame, "date", ["co2"], "interpolate", name="statsmodels co2")
