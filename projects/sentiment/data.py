"""`SentimentDataModule`: labelled text from files, the Hub or the synthetic corpus (`reading.py`,
`synthetic.py`), a tokenizer trained on the training split (`tokenizer.py`), length-bucketed batches
(`batching.py`). This file only wires those pieces into the Lightning hooks.
"""

import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from tokenizers import Tokenizer
from torch.utils.data import DataLoader, Subset

from common.distributed import evaluation_loader
from common.errors import UserInputError, require_at_least
from common.resume import ResumableLoader, SeededShuffle
from common.runs import run_directory
from projects.sentiment.batching import BucketBatchSampler, pad_batch
from projects.sentiment.reading import (
    check_split,
    label_ids,
    load_file,
    load_hub,
    names_in_labels,
    read_lines,
    rows_with_text,
)
from projects.sentiment.synthetic import write_synthetic_corpus
from projects.sentiment.tokenizer import cached_tokenizer, fingerprint, load_tokenizer, tokenize_split


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
        label_names: class names in label-id order; default: the sorted names found in a `train_file` whose
            labels are names (e.g. `neg`/`pos`), else `[negative, positive]` for ids.
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
        require_at_least(1, batch_size=batch_size, eval_batch_size=eval_batch_size, vocab_size=vocab_size,
                         max_length=max_length, synthetic_size=synthetic_size)  # fmt: skip
        require_at_least(0, num_workers=num_workers)
        self.tokenizer = load_tokenizer(self._expand(tokenizer_file)) if tokenizer_file else None
        self.raw: dict[str, Any] = {}
        self.texts: dict[str, tuple[list[str], list[int], list[int]]] = {}
        self.splits: dict[str, Any] = {}
        self.skipped_rows: dict[str, int] = {}
        self.loaded_from_cache: dict[str, bool] = {}

    @property
    def class_names(self) -> list[str]:
        return self.label_names

    @cached_property
    def label_names(self) -> list[str]:
        """The configured `label_names`; else the sorted names of a local `train_file` that labels its rows by
        name ("neg"/"pos"); else `[negative, positive]`. Known before `setup`: the model's head is sized by it."""
        if self.hparams.label_names:
            return list(self.hparams.label_names)
        return self._names_in_train_file() or ["negative", "positive"]

    def _names_in_train_file(self) -> list[str] | None:
        import datasets

        hp, path = self.hparams, self._expand(self.hparams.train_file)
        if not path or not Path(path).is_file():
            return None  # the synthetic corpus and Hub sets label by id
        datasets.config.HF_HUB_OFFLINE = True
        train = load_file(path, "train", str(Path(hp.cache_dir).expanduser() / "datasets"))
        if hp.text_column not in train.column_names or hp.label_column not in train.column_names:
            return None  # `_check` names the missing column
        texts, labels = train[hp.text_column][:], train[hp.label_column][:]
        return names_in_labels([labels[index] for index in rows_with_text(texts)])

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
            self.tokenizer = self._shared_tokenizer()
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
            raw = {split: load_file(path, split, cache_dir) for split, path in files.items() if path}
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

    def _load_hub(self, cache_dir: str) -> dict[str, Any]:
        hp = self.hparams
        splits = {"train": hp.train_split, "val": hp.val_split, "test": hp.test_split}
        return load_hub(hp.dataset, hp.dataset_config, splits, hp.download, cache_dir)

    def _check(self, split: str, dataset) -> None:
        hp = self.hparams
        self.skipped_rows[split] = check_split(
            split, dataset, hp.text_column, hp.label_column, self.label_names
        )
        if self.skipped_rows[split]:
            rank_zero_warn(f"skipped {self.skipped_rows[split]} {split} rows with empty text")

    def _clean(self, dataset) -> tuple[list[str], list[int], list[int]]:
        """Texts, label ids and kept row indices of a checked split (rows with empty text dropped)."""
        texts, labels = dataset[self.hparams.text_column][:], dataset[self.hparams.label_column][:]
        keep = rows_with_text(texts)
        ids = label_ids([labels[index] for index in keep], self.label_names, "data")
        return [texts[index].strip() for index in keep], ids, keep

    # ---- tokenizer and the tokenized cache ----

    def _shared_tokenizer(self) -> Tokenizer:
        """Under DDP, rank 0's tokenizer on every process: training one is not deterministic across processes (the
        `tokenizers` trainer breaks ties in its own hash order), and a token id must mean the same everywhere."""
        trainer = self.trainer
        if trainer is None or trainer.world_size == 1:
            return self._train_or_load_cached_tokenizer()
        tokenizer = self._train_or_load_cached_tokenizer().to_str() if trainer.is_global_zero else None
        return Tokenizer.from_str(trainer.strategy.broadcast(tokenizer))

    def _train_or_load_cached_tokenizer(self) -> Tokenizer:
        """Train on the training texts only; a tokenizer trained on the same split and settings is reused."""
        hp = self.hparams
        if not self.texts:
            raise UserInputError(
                "no tokenizer: pass --ckpt_path (a checkpoint from a run) or --data.tokenizer_file"
            )
        source = fingerprint(self.raw["train"]._fingerprint, hp.text_column)
        folder = Path(hp.cache_dir).expanduser() / "tokenizers"
        return cached_tokenizer(
            self.texts["train"][0], source, folder, hp.tokenizer, hp.vocab_size, hp.lowercase
        )

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
        key = fingerprint(raw._fingerprint, self.tokenizer.to_str(), hp.max_length, hp.text_column, hp.label_column,
                          self.label_names, "int64 labels")  # fmt: skip
        cache_file = Path(hp.cache_dir).expanduser() / "tokenized" / f"{split}-{key}.arrow"
        self.loaded_from_cache[split] = cache_file.is_file()
        return tokenize_split(raw, texts, labels, keep, self.tokenizer, hp.max_length, cache_file, key, split)

    # ---- loaders ----

    def _loader(self, split: str) -> DataLoader:
        hp, dataset = self.hparams, self.tokenized(split)
        lengths = dataset["length"][:]
        if split != "train":
            # Evaluation sorts the whole split by length (one pool) and cuts plain batches from that order, so
            # that under DDP each process can take every other row of it (`evaluation_loader`).
            if hp.bucket_pool_batches > 0:
                dataset = Subset(dataset, sorted(range(len(dataset)), key=lengths.__getitem__))
            loader = DataLoader(
                dataset, batch_size=hp.eval_batch_size, collate_fn=pad_batch, num_workers=hp.num_workers
            )
            return evaluation_loader(loader, self.trainer)
        # Training mixes within pools so batches vary.
        batch_sampler = BucketBatchSampler(
            SeededShuffle(dataset), hp.batch_size, drop_last=False, lengths=lengths,
            pool_batches=hp.bucket_pool_batches, shuffle=True, seed=torch.initial_seed() % 2**31,
        )  # fmt: skip
        return ResumableLoader(  # resumes mid-epoch at the next batch, in the same order
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
