"""Reading labelled text from local files or the Hugging Face Hub, and the predict file, with a one-line error
for every bad input.

CSV and TSV are read as pandas reads them (`"`-quoted fields may hold the delimiter, newlines and doubled
quotes), so a frame saved with `to_csv(path, sep="\t")` loads back with the same texts.
"""

import sys
from pathlib import Path
from typing import Any

from common.errors import UserInputError

FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


def check_utf8(path: Path) -> None:
    """Raise a one-line error naming the first line that is not UTF-8 (pandas/arrow would give a traceback)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        byte = data[error.start]
        raise UserInputError(
            f"{path} line {line} is not valid UTF-8 (byte 0x{byte:02x}); re-save the file as UTF-8"
        ) from None


def innermost_cause(error: BaseException) -> BaseException:
    """The parser's own error under `datasets`' generic "An error occurred while generating the dataset"."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def load_file(path: str, split: str, cache_dir: str):
    """One local file as a `datasets.Dataset` (the caller sets offline mode)."""
    import datasets

    file = Path(path)
    if not file.is_file():
        raise UserInputError(f"{split}_file {path} does not exist; check --data.{split}_file (and DATA_ROOT)")
    builder = FILE_BUILDERS.get(file.suffix.lower())
    if builder is None:
        raise UserInputError(
            f"{split}_file {path}: unknown format; use .csv, .tsv, .json, .jsonl or .parquet"
        )
    options: dict[str, Any] = {}
    if builder in ("csv", "json"):
        check_utf8(file)
    if builder == "csv":
        # keep_default_na: the text "null" stays text. Quoting stays pandas' default (see the module docstring).
        options = {"delimiter": "\t" if file.suffix.lower() == ".tsv" else ",", "keep_default_na": False}
    try:
        return datasets.load_dataset(
            builder, data_files={"data": str(file)}, split="data", cache_dir=cache_dir, **options
        )
    except Exception as error:  # pandas/arrow parse errors: name the file instead of a deep traceback
        cause = innermost_cause(error)
        reason = str(cause).splitlines()[0] if str(cause).strip() else type(cause).__name__
        if file.stat().st_size == 0 or type(cause).__name__ == "EmptyDataError":
            raise UserInputError(f"{split}_file {path} is empty; check --data.{split}_file") from None
        if "corresponds to no data" in reason:  # `datasets`' words for a file with a header and no rows
            raise UserInputError(f"{split}_file {path} has no data rows; add one row per text") from None
        hint = "fix that line"
        if builder == "csv":
            hint += ' (a field holding the delimiter, a newline or a leading " must be quoted, as pandas writes it)'
        reason = reason.removeprefix("Error tokenizing data. C error: ")
        raise UserInputError(f"cannot parse {split}_file {path} as {file.suffix}: {reason}; {hint}") from None


def load_hub(name: str, config: str | None, splits: dict[str, str | None], download: bool, cache_dir: str):
    """`{split: datasets.Dataset}` of a Hub dataset for the wanted `splits` (`{"train": "train", "val": ...}`).

    Without `download` only the local Hub cache is read. A missing default "validation" split is left out (the
    caller carves one from train); any other missing split is a mistake and a one-line error.
    """
    import datasets

    datasets.config.HF_HUB_OFFLINE = not download
    try:
        loaded = datasets.load_dataset(name, config, cache_dir=cache_dir)
    except Exception as error:
        hint = "check the name and network" if download else "pass --data.download true (needs network)"
        raise UserInputError(f"cannot load Hub dataset {name} ({type(error).__name__}); {hint}") from None
    for split, wanted in splits.items():
        if wanted and wanted not in loaded and (split == "train" or wanted != "validation"):
            raise UserInputError(
                f"Hub dataset {name} has no split '{wanted}' (it has {list(loaded)}); set --data.{split}_split"
            )
    return {split: loaded[wanted] for split, wanted in splits.items() if wanted and wanted in loaded}


def check_split(split: str, dataset, text_column: str, label_column: str, label_names: list[str]) -> int:
    """One-line errors for a missing column or a bad label (numbered as rows of the source); returns the count of
    rows with empty text, which the split skips."""
    for column in (text_column, label_column):
        if column not in dataset.column_names:
            raise UserInputError(
                f"{split} data has no column '{column}' (columns: {', '.join(dataset.column_names)}); "
                "set --data.text_column and --data.label_column"
            )
    texts, labels = dataset[text_column][:], dataset[label_column][:]  # [:]: a list, not a lazy Column
    keep = rows_with_text(texts)
    if not keep:
        raise UserInputError(f"{split} data has no rows with text in column '{text_column}'")
    label_ids([labels[index] for index in keep], label_names, f"{split} data", rows=keep)
    return len(texts) - len(keep)


def rows_with_text(texts: list[Any]) -> list[int]:
    """Indices of the rows whose text is a non-blank string: the rows a split keeps."""
    return [index for index, text in enumerate(texts) if isinstance(text, str) and text.strip()]


def names_in_labels(labels: list[Any]) -> list[str] | None:
    """The sorted label names when every row is labelled by name ("neg"/"pos"); `None` when any row has an
    id or a number (then the label check names the first row outside the default label set)."""
    if not labels or not all(isinstance(label, str) for label in labels):
        return None
    names = {label.strip() for label in labels}
    if any(not name or name.lstrip("-").isdigit() for name in names):  # a blank label is a mistake too
        return None
    return sorted(names)


def label_ids(
    values: list[Any], label_names: list[str], source: str, rows: list[int] | None = None
) -> list[int]:
    """Map labels (ids `0..K-1`, their string forms, or names from `label_names`) to ids; one-line error otherwise.

    `rows` are the 0-based data-row indices of `values` (for the error message).
    """
    lookup = {name: index for index, name in enumerate(label_names)}
    lookup.update({str(index): index for index in range(len(label_names))})
    ids = []
    for position, value in enumerate(values):
        row = (rows[position] if rows else position) + 1
        key = str(value).strip() if not isinstance(value, bool) else None
        if key not in lookup:
            raise UserInputError(
                f"{source} row {row}: label {value!r} is not in the label set {label_names} (or ids 0..{len(label_names) - 1}); "
                "fix the row or set --data.label_names"
            )
        ids.append(lookup[key])
    return ids


def read_lines(path: str) -> tuple[list[str], list[int], int]:
    """Non-empty lines of a text file (`-` reads standard input), their 1-based line numbers, and the empty-line count."""
    if path == "-":
        data, name = sys.stdin.buffer.read(), "standard input"
    else:
        file = Path(path).expanduser()
        if not file.is_file():
            raise UserInputError(
                f"predict_file {path} does not exist; pass a text file with one text per line, or -"
            )
        data, name = file.read_bytes(), str(file)
    texts, numbers, empty = [], [], 0
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise UserInputError(f"{name} line {number} is not valid UTF-8; re-save it as UTF-8") from None
        if line:
            texts.append(line)
            numbers.append(number)
        else:
            empty += 1
    return texts, numbers, empty
