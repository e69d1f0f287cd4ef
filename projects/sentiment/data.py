"""Labelled text through Hugging Face `datasets`, a `tokenizers` tokenizer trained on the training split,
and length-bucketed, dynamically padded batches.

Sources: local CSV/TSV/JSON Lines/Parquet files, a Hub dataset by name (`download: true`), or a synthetic
corpus the datamodule writes itself (the offline fallback for the quickstart and tests).
"""

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from tokenizers import Tokenizer
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler

from common.errors import UserInputError
from common.files import atomic_path
from common.runs import run_directory
from projects.sentiment.batching import BucketBatchSampler, pad_batch
from projects.sentiment.synthetic import write_synthetic_corpus
from projects.sentiment.tokenizer import load_tokenizer, train_tokenizer

FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
SPLITS = ("train", "val", "test")


def fingerprint(*parts: Any) -> str:
    """A short stable hash of `parts` (used as a `datasets` fingerprint and cache-file name)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


# ---- reading and checking rows ----


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


def rows_with_text(texts: list[Any]) -> list[int]:
    """Indices of the rows whose text is a non-blank string: the rows a split keeps."""
    return [index for index, text in enumerate(texts) if isinstance(text, str) and text.strip()]


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


class SentimentDataModule(LightningDataModule):
    """Labelled texts from files, the Hub or a synthetic generator, tokenized by a tokenizer trained on the
    training split (or loaded), cached with the `datasets` map cache, served in length-bucketed batches.

    Rows with empty text are skipped and counted; a missing column, a file that is not UTF-8 or a label outside
    the label set stops the run with a one-line error.

    Args:
        train_file: training file (.csv, .tsv, .json/.jsonl or .parquet); `$VARS` and `~` are expanded.
        val_file: validation file; without one (and without a Hub validation split) `val_fraction` of train is held out.
        test_file: test file; without one, `test` evaluates the validation split.
        dataset: Hugging Face Hub dataset name (e.g. `stanfordnlp/sst2`), used when `train_file` is not given.
        dataset_config: the Hub dataset's configuration name, if it has several.
        train_split: Hub split to train on.
        val_split: Hub split to validate on; `null` carves one from train.
        test_split: Hub split to test on (SST-2's Hub test split is unlabelled: leave it `null`).
        download: allow downloading Hub datasets (needs network); otherwise only the local Hub cache is read.
        synthetic_when_missing: train on the synthetic corpus when `train_file` does not exist (quickstart fallback).
        synthetic_size: training rows of the synthetic corpus (used when no file or Hub dataset is given).
        text_column: column holding the text.
        label_column: column holding the label (an id `0..K-1` or a name from `label_names`).
        label_names: class names in label-id order.
        val_fraction: share of train held out for validation when there is no validation split.
        split_seed: seed of that hold-out split.
        tokenizer: subword model trained on the training split: `wordpiece`, `bpe` or `unigram`.
        tokenizer_file: load this `tokenizer.json` instead of training one.
        vocab_size: vocabulary size of the trained tokenizer (and the embedding rows of the model).
        lowercase: lowercase after NFKC normalisation.
        max_length: truncate texts to this many tokens.
        batch_size: training batch size.
        eval_batch_size: validation/test/predict batch size.
        bucket_pool_batches: sort by length within pools of this many batches; 0 turns bucketing off.
        num_workers: DataLoader worker processes (padding is cheap, so 0 is usually fastest).
        cache_dir: `datasets` cache (raw and tokenized splits) and the synthetic corpus.
        predict_file: text file to classify with `predict`, one text per line; `-` reads standard input.
    """

    def __init__(
        self,
        train_file: str | None = None,
        val_file: str | None = None,
        test_file: str | None = None,
        dataset: str | None = None,
        dataset_config: str | None = None,
        train_split: str = "train",
        val_split: str | None = "validation",
        test_split: str | None = None,
        download: bool = False,
        synthetic_when_missing: bool = False,
        synthetic_size: int = 4000,
        text_column: str = "sentence",
        label_column: str = "label",
        label_names: list[str] | None = None,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        tokenizer: Literal["wordpiece", "bpe", "unigram"] = "wordpiece",
        tokenizer_file: str | None = None,
        vocab_size: int = 8000,
        lowercase: bool = True,
        max_length: int = 128,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        bucket_pool_batches: int = 50,
        num_workers: int = 0,
        cache_dir: str = ".cache/sentiment",
        predict_file: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.label_names = list(label_names or ["negative", "positive"])
        self.tokenizer = load_tokenizer(self._expand(tokenizer_file)) if tokenizer_file else None
        self.raw: dict[str, Any] = {}
        self.texts: dict[str, tuple[list[str], list[int], list[int]]] = {}
        self.splits: dict[str, Any] = {}
        self.skipped_rows: dict[str, int] = {}
        self.loaded_from_cache: dict[str, bool] = {}

    @property
    def class_names(self) -> list[str]:
        return self.label_names

    @property
    def num_embeddings(self) -> int:
        """Embedding rows the model needs: the configured `vocab_size`, or a loaded tokenizer's size if larger.

        A tokenizer trained on a small corpus has fewer tokens than `vocab_size`, but its run's model has
        `vocab_size` rows; loading that tokenizer again must build the same model, so its checkpoint fits.
        """
        loaded = self.tokenizer.get_vocab_size() if self.tokenizer else 0
        return max(self.hparams.vocab_size, loaded)

    @staticmethod
    def _expand(path: str | None) -> str | None:
        return os.path.expanduser(os.path.expandvars(path)) if path else None

    # ---- loading ----

    def setup(self, stage: str) -> None:
        # Only raw texts here: tokenizing waits for the dataloader hooks, which run after a checkpoint
        # (`--ckpt_path`) has restored the tokenizer the model was trained with.
        if stage != "predict" and not self.texts:
            self.raw = self._load_raw()
            self.texts = {split: self._clean(dataset) for split, dataset in self.raw.items()}

    def tokenized(self, split: str):
        """The split as a `datasets.Dataset` of `input_ids`, `length`, `label`, `text`; tokenized once, then cached."""
        if self.tokenizer is None:
            self.tokenizer = self._train_or_load_cached_tokenizer()
            self._save_tokenizer()
        if split == "test" and "test" not in self.raw:
            split = "val"
        if split not in self.splits:
            self.splits[split] = self._tokenize(split)
        return self.splits[split]

    def _load_raw(self) -> dict[str, Any]:
        """The train/val(/test) splits as `datasets.Dataset`s, straight from their source."""
        import datasets

        hp = self.hparams
        cache_dir = str(Path(hp.cache_dir).expanduser() / "datasets")
        files = {
            "train": self._expand(hp.train_file),
            "val": self._expand(hp.val_file),
            "test": self._expand(hp.test_file),
        }
        if files["train"] and not Path(files["train"]).is_file() and hp.synthetic_when_missing:
            rank_zero_warn(f"train_file {files['train']} not found: training on the synthetic corpus instead")
            files = {"train": None, "val": None, "test": None}
        if not files["train"] and not hp.dataset:
            written = write_synthetic_corpus(Path(hp.cache_dir).expanduser() / "synthetic", hp.synthetic_size)
            files = {split: str(path) for split, path in written.items()}
        if files["train"]:
            # Local files never need the network; offline mode keeps `datasets` from probing the Hub.
            datasets.config.HF_HUB_OFFLINE = True
            raw = {split: self._load_file(path, split, cache_dir) for split, path in files.items() if path}
        else:
            raw = self._load_hub(cache_dir)
        for split, dataset in raw.items():
            self._check(split, dataset)  # before carving validation, so error rows match the source's rows
        if "val" not in raw:
            if int(len(raw["train"]) * hp.val_fraction) < 1:
                raise UserInputError(
                    f"train data has {len(raw['train'])} rows, too few to hold out val_fraction {hp.val_fraction}; "
                    "pass --data.val_file or raise --data.val_fraction"
                )
            held_out = raw["train"].train_test_split(test_size=hp.val_fraction, seed=hp.split_seed)
            raw["train"], raw["val"] = held_out["train"], held_out["test"]
        return raw

    def _load_file(self, path: str, split: str, cache_dir: str):
        import datasets

        file = Path(path)
        if not file.is_file():
            raise UserInputError(
                f"{split}_file {path} does not exist; check --data.{split}_file (and DATA_ROOT)"
            )
        builder = FILE_BUILDERS.get(file.suffix.lower())
        if builder is None:
            raise UserInputError(
                f"{split}_file {path}: unknown format; use .csv, .tsv, .json, .jsonl or .parquet"
            )
        options: dict[str, Any] = {}
        if builder == "csv":
            check_utf8(file)
            tsv = file.suffix.lower() == ".tsv"
            # TSV: no quoting (review text is full of quote characters); keep_default_na: the text "null" stays text.
            options = {
                "delimiter": "\t" if tsv else ",",
                "quoting": 3 if tsv else 0,
                "keep_default_na": False,
            }
        elif builder == "json":
            check_utf8(file)
        try:
            return datasets.load_dataset(
                builder, data_files={"data": str(file)}, split="data", cache_dir=cache_dir, **options
            )
        except Exception as error:  # pandas/arrow parse errors: name the file instead of a deep traceback
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise UserInputError(
                f"cannot parse {split}_file {path} as {file.suffix} ({message}); check the file format"
            ) from None

    def _load_hub(self, cache_dir: str) -> dict[str, Any]:
        import datasets

        hp = self.hparams
        datasets.config.HF_HUB_OFFLINE = not hp.download
        names = {"train": hp.train_split, "val": hp.val_split, "test": hp.test_split}
        try:
            loaded = datasets.load_dataset(hp.dataset, hp.dataset_config, cache_dir=cache_dir)
        except Exception as error:
            hint = (
                "check the name and network" if hp.download else "pass --data.download true (needs network)"
            )
            raise UserInputError(
                f"cannot load Hub dataset {hp.dataset} ({type(error).__name__}); {hint}"
            ) from None
        for split, name in names.items():
            # A missing default "validation" split is carved from train; any other missing split is a mistake.
            if name and name not in loaded and (split == "train" or name != "validation"):
                raise UserInputError(
                    f"Hub dataset {hp.dataset} has no split '{name}' (it has {list(loaded)}); set --data.{split}_split"
                )
        return {split: loaded[name] for split, name in names.items() if name and name in loaded}

    def _check(self, split: str, dataset) -> None:
        """One-line errors for a missing column or a bad label (numbered as rows of the source); counts empty texts."""
        hp = self.hparams
        for column in (hp.text_column, hp.label_column):
            if column not in dataset.column_names:
                raise UserInputError(
                    f"{split} data has no column '{column}' (columns: {', '.join(dataset.column_names)}); "
                    "set --data.text_column and --data.label_column"
                )
        texts, labels = (
            dataset[hp.text_column][:],
            dataset[hp.label_column][:],
        )  # [:]: a list, not a lazy Column
        keep = rows_with_text(texts)
        self.skipped_rows[split] = len(texts) - len(keep)
        if self.skipped_rows[split]:
            rank_zero_warn(f"skipped {self.skipped_rows[split]} {split} rows with empty text")
        if not keep:
            raise UserInputError(f"{split} data has no rows with text in column '{hp.text_column}'")
        label_ids([labels[index] for index in keep], self.label_names, f"{split} data", rows=keep)

    def _clean(self, dataset) -> tuple[list[str], list[int], list[int]]:
        """Texts, label ids and kept row indices of a checked split (rows with empty text dropped)."""
        texts, labels = dataset[self.hparams.text_column][:], dataset[self.hparams.label_column][:]
        keep = rows_with_text(texts)
        ids = label_ids([labels[index] for index in keep], self.label_names, "data")
        return [texts[index].strip() for index in keep], ids, keep

    # ---- tokenizer and the tokenized cache ----

    def _train_or_load_cached_tokenizer(self) -> Tokenizer:
        """Train on the training texts only; a tokenizer trained on the same split and settings is reused."""
        hp = self.hparams
        if not self.texts:
            raise UserInputError(
                "no tokenizer: pass --ckpt_path (a checkpoint from a run) or --data.tokenizer_file"
            )
        key = fingerprint(
            self.raw["train"]._fingerprint, hp.text_column, hp.tokenizer, hp.vocab_size, hp.lowercase
        )
        path = Path(hp.cache_dir).expanduser() / "tokenizers" / f"{key}.json"
        if path.is_file():
            return Tokenizer.from_file(str(path))
        tokenizer = train_tokenizer(self.texts["train"][0], hp.tokenizer, hp.vocab_size, hp.lowercase)
        if tokenizer.get_vocab_size() > hp.vocab_size:
            raise UserInputError(
                f"trained tokenizer has {tokenizer.get_vocab_size()} tokens, over vocab_size {hp.vocab_size}"
            )
        with atomic_path(path) as partial:
            tokenizer.save(str(partial))
        return tokenizer

    def _save_tokenizer(self) -> None:
        """`tokenizer.json` in the run directory and beside the checkpoints (it is inside every checkpoint too)."""
        trainer = self.trainer
        if trainer is None or not trainer.is_global_zero or trainer.fast_dev_run:
            return
        for folder in (run_directory(trainer), run_directory(trainer) / "checkpoints"):
            folder.mkdir(parents=True, exist_ok=True)
            self.tokenizer.save(str(folder / "tokenizer.json"))

    def _tokenize(self, split: str):
        """Token ids of the kept rows, through the `datasets` map cache keyed on the tokenizer and settings."""
        hp = self.hparams
        raw, (texts, labels, keep) = self.raw[split], self.texts[split]
        position = {row: index for index, row in enumerate(keep)}
        unknown_id = self.tokenizer.token_to_id("[UNK]")

        def encode(_, indices: list[int]) -> dict[str, list]:
            kept = [position[row] for row in indices if row in position]
            encodings = self.tokenizer.encode_batch([texts[index] for index in kept])
            # A text whose every character normalises away still gets one token, so no row is all padding.
            ids = [encoding.ids[: hp.max_length] or [unknown_id] for encoding in encodings]
            return {"input_ids": ids, "length": [len(row) for row in ids], "label": [labels[i] for i in kept],
                    "text": [texts[i] for i in kept]}  # fmt: skip

        key = fingerprint(raw._fingerprint, self.tokenizer.to_str(), hp.max_length, hp.text_column, hp.label_column,
                          self.label_names)  # fmt: skip
        cache_file = Path(hp.cache_dir).expanduser() / "tokenized" / f"{split}-{key}.arrow"
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        self.loaded_from_cache[split] = cache_file.is_file()
        return raw.map(
            encode, with_indices=True, batched=True, batch_size=10_000, remove_columns=raw.column_names,
            new_fingerprint=key, cache_file_name=str(cache_file), desc=f"tokenizing {split}",
        )  # fmt: skip

    # ---- loaders ----

    def _loader(self, split: str) -> DataLoader:
        hp, dataset, train = self.hparams, self.tokenized(split), split == "train"
        batch_size = hp.batch_size if train else hp.eval_batch_size
        # Evaluation sorts the whole split by length (one pool); training mixes within pools so batches vary.
        pool_batches = (
            hp.bucket_pool_batches if train or hp.bucket_pool_batches <= 0 else len(dataset) // batch_size + 1
        )
        sampler = RandomSampler(dataset) if train else SequentialSampler(dataset)
        batch_sampler = BucketBatchSampler(
            sampler, batch_size, drop_last=False, lengths=dataset["length"][:], pool_batches=pool_batches,
            shuffle=train, seed=torch.initial_seed() % 2**31,
        )  # fmt: skip
        return DataLoader(
            dataset, batch_sampler=batch_sampler, collate_fn=pad_batch, num_workers=hp.num_workers
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        hp = self.hparams
        if hp.predict_file is None:
            raise UserInputError(
                "predict needs --data.predict_file: a text file with one text per line, or - for stdin"
            )
        if self.tokenizer is None:
            raise UserInputError(
                "predict needs the trained tokenizer: pass --ckpt_path (a checkpoint) or --data.tokenizer_file"
            )
        texts, lines, empty = read_lines(self._expand(hp.predict_file) if hp.predict_file != "-" else "-")
        if empty:
            rank_zero_info(f"predict: skipped {empty} empty lines of {hp.predict_file}")
        if not texts:
            raise UserInputError(f"predict_file {hp.predict_file} has no non-empty lines")
        unknown_id = self.tokenizer.token_to_id("[UNK]")
        rows = [
            {"input_ids": encoding.ids[: hp.max_length] or [unknown_id], "text": text, "line": line}
            for encoding, text, line in zip(self.tokenizer.encode_batch(texts), texts, lines, strict=True)
        ]
        return DataLoader(
            rows, batch_size=hp.eval_batch_size, collate_fn=pad_batch, num_workers=hp.num_workers
        )

    # ---- checkpoint state: the exact tokenizer and label names travel inside every checkpoint ----

    def state_dict(self) -> dict[str, Any]:
        return {
            "tokenizer": self.tokenizer.to_str() if self.tokenizer else None,
            "label_names": self.label_names,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("tokenizer"):
            self.tokenizer = Tokenizer.from_str(state_dict["tokenizer"])
            self.splits = {}  # anything tokenized before the restore used another tokenizer
        self.label_names = list(state_dict.get("label_names", self.label_names))
