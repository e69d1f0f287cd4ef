"""Where the clips come from: the Free Spoken Digit Dataset (official and leave-one-speaker-out splits) and
folders of `<label>/<clip>.wav`, and `path,transcript` CSVs of connected digits. Each source returns file lists per
split; `data.py` decodes them."""

import csv
import os
import random
import re
from pathlib import Path

from common.errors import UserInputError

FSDD_FOLDER = "free-spoken-digit-dataset/recordings"
FSDD_CLASSES = [str(digit) for digit in range(10)]
FSDD_NAME = re.compile(r"(\d)_([A-Za-z]+)_(\d+)\.wav")
FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset"

Files = list[tuple[Path, int]]  # (path, label)


def fsdd_folder(data_dir: str | None, download: bool) -> Path:
    """The FSDD `recordings/` folder: `data_dir`, else `$DATA_ROOT/free-spoken-digit-dataset/recordings`."""
    if download:
        raise UserInputError(
            f"downloading FSDD is not built in (this template trains offline); clone {FSDD_URL} and set "
            "--data.data_dir to its recordings/ folder (or DATA_ROOT to the folder above it)"
        )
    if data_dir is None:
        if not os.environ.get("DATA_ROOT"):
            raise UserInputError(
                f"FSDD needs --data.data_dir (its recordings/ folder) or DATA_ROOT holding {FSDD_FOLDER}/"
            )
        data_dir = str(Path(os.environ["DATA_ROOT"]) / FSDD_FOLDER)
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        raise UserInputError(
            f"FSDD folder {folder} does not exist; get the recordings from {FSDD_URL} and point --data.data_dir at them"
        )
    return folder


def fsdd_recordings(folder: Path) -> list[tuple[Path, int, str, int]]:
    """`(path, digit, speaker, index)` for every `{digit}_{speaker}_{index}.wav` in `folder`, sorted."""
    recordings = []
    for path in sorted(folder.glob("*.wav")):
        match = FSDD_NAME.fullmatch(path.name)
        if match is None:
            raise UserInputError(
                f"{path} is not named {{digit}}_{{speaker}}_{{index}}.wav as FSDD files are; move it out of {folder}"
            )
        recordings.append((path, int(match[1]), match[2], int(match[3])))
    if not recordings:
        raise UserInputError(
            f"no FSDD .wav files in {folder}; point --data.data_dir at FSDD's recordings/ folder"
        )
    return recordings


def stratified_split(files: Files, fraction: float, seed: int) -> tuple[Files, Files]:
    """A fixed per-label random split: `fraction` of each label (at least one clip) goes to the second list."""
    rng, kept, held_out = random.Random(seed), [], []
    for label in sorted({label for _, label in files}):
        group = [item for item in files if item[1] == label]
        shuffled = rng.sample(group, len(group))
        count = min(max(round(fraction * len(group)), 1), len(group) - 1) if fraction > 0 else 0
        held_out += shuffled[:count]
        kept += shuffled[count:]
    return sorted(kept), sorted(held_out)


def fsdd_splits(folder: Path, test_speaker: str | None, val_fraction: float, seed: int) -> dict[str, Files]:
    """Official split (index 0-4 test, 5-49 train) or, with `test_speaker`, that speaker's 500 clips as test.

    Validation is carved from the training clips by a fixed stratified draw, so test is never used to choose.
    """
    recordings = fsdd_recordings(folder)
    if test_speaker is None:
        train = [(path, digit) for path, digit, _, index in recordings if index >= 5]
        test = [(path, digit) for path, digit, _, index in recordings if index < 5]
    else:
        speakers = sorted({speaker for _, _, speaker, _ in recordings})
        if test_speaker not in speakers:
            raise UserInputError(
                f"speaker {test_speaker!r} has no recordings in {folder}; set --data.test_speaker to one of {', '.join(speakers)}"
            )
        train = [(path, digit) for path, digit, speaker, _ in recordings if speaker != test_speaker]
        test = [(path, digit) for path, digit, speaker, _ in recordings if speaker == test_speaker]
    train, val = stratified_split(train, val_fraction, seed)
    return {"train": train, "val": val, "test": test}


def scan_label_folders(root: Path) -> dict[str, list[Path]]:
    """`{label: sorted .wav paths}` from `<root>/<label>/<clip>.wav`; a one-line error for bad layouts."""
    if not root.is_dir():
        raise UserInputError(
            f"folder {root} does not exist; set --data.data_dir to a folder of <label>/<clip>.wav"
        )
    labels = {
        folder.name: sorted(
            path for path in folder.rglob("*") if path.is_file() and not path.name.startswith(".")
        )
        for folder in sorted(root.iterdir())
        if folder.is_dir() and not folder.name.startswith(".")
    }
    if not labels:
        raise UserInputError(f"no label folders under {root}; expected <root>/<label>/<clip>.wav")
    for label, paths in labels.items():
        if not paths:
            raise UserInputError(
                f"label folder {root / label} has no clips; add .wav files to it or remove it"
            )
    return labels


def folder_splits(root: Path, val_fraction: float, seed: int) -> tuple[dict[str, Files], list[str]]:
    """A fixed stratified split of a label-folder tree; test is the validation split (no separate test set)."""
    labels = scan_label_folders(root)
    names = list(labels)
    files = [(path, names.index(label)) for label, paths in labels.items() for path in paths]
    train, val = stratified_split(files, val_fraction, seed)
    return {"train": train, "val": val, "test": val}, names


class TranscriptError(UserInputError, ValueError):
    """A transcript the vocabulary cannot spell: one line naming the file, the line and the character."""


def read_transcripts(path: Path) -> list[tuple[Path, str]]:
    """`(audio path, digit string)` rows of a `path,transcript` CSV (header optional, paths relative to the CSV;
    spaces in transcripts are ignored); a character outside 0-9 is a one-line `TranscriptError`."""
    if not path.is_file():
        raise UserInputError(
            f"transcripts file {path} does not exist; set --data.transcripts to a path,transcript CSV"
        )
    rows = []
    with path.open(newline="") as file:
        for line, row in enumerate(csv.reader(file), start=1):
            if not row or (line == 1 and row[0].strip().lower() == "path"):
                continue
            if len(row) != 2:
                raise UserInputError(f"{path}:{line} has {len(row)} columns, not 2 (path,transcript)")
            audio, text = row[0].strip(), row[1].replace(" ", "")
            outside = next((character for character in text if character not in FSDD_CLASSES), None)
            if outside is not None or not text:
                what = f"character {outside!r}" if outside else "no digits"
                raise TranscriptError(
                    f"{path}:{line}: the transcript of {audio} has {what}; transcripts may hold only the digits 0-9"
                )
            rows.append((path.parent / audio, text))
    if not rows:
        raise UserInputError(f"{path} has no rows; write one path,transcript row per recording")
    return rows
