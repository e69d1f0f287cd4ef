"""A `tokenizers` tokenizer trained on a training split (cached by its settings), loading a saved one with a
one-line error, and a split's token ids through the `datasets` map cache."""

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from common.errors import UserInputError
from common.files import atomic_path

SPECIAL_TOKENS = ["[PAD]", "[UNK]"]  # [PAD] first, so padding is always id 0
PAD_ID = 0


def fingerprint(*parts: Any) -> str:
    """A short stable hash of `parts` (used as a `datasets` fingerprint and cache-file name)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def train_tokenizer(
    texts: list[str], kind: Literal["wordpiece", "bpe", "unigram"], vocab_size: int, lowercase: bool
) -> Tokenizer:
    """A tokenizer trained on `texts`: NFKC (+ lowercase), split on whitespace and punctuation, then subwords."""
    if kind == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS)
        tokenizer.decoder = decoders.WordPiece()
    elif kind == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS)
    else:
        tokenizer = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, unk_token="[UNK]"
        )
    steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(texts, trainer, length=len(texts))
    return tokenizer


def load_tokenizer(path: str) -> Tokenizer:
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as error:  # tokenizers raises a bare Exception for missing and malformed files alike
        raise UserInputError(
            f"cannot load tokenizer {path} ({error}); pass a tokenizer.json saved by a run"
        ) from None
    if tokenizer.token_to_id("[PAD]") != PAD_ID:
        raise UserInputError(
            f"tokenizer {path} has no [PAD] token at id 0; use a tokenizer.json saved by a run"
        )
    return tokenizer


def cached_tokenizer(
    texts: list[str], source_key: str, folder: Path, kind: Literal["wordpiece", "bpe", "unigram"], vocab_size: int,
    lowercase: bool,
) -> Tokenizer:  # fmt: skip
    """`train_tokenizer(texts, ...)`, saved under `folder` and reused by a later run with the same training
    split (`source_key`, e.g. its `datasets` fingerprint) and settings."""
    path = folder / f"{fingerprint(source_key, kind, vocab_size, lowercase)}.json"
    if path.is_file():
        return Tokenizer.from_file(str(path))
    tokenizer = train_tokenizer(texts, kind, vocab_size, lowercase)
    if tokenizer.get_vocab_size() > vocab_size:
        raise UserInputError(
            f"trained tokenizer has {tokenizer.get_vocab_size()} tokens, over vocab_size {vocab_size}"
        )
    with atomic_path(path) as partial:
        tokenizer.save(str(partial))
    return tokenizer


def tokenize_split(
    raw, texts: list[str], labels: list[int], keep: list[int], tokenizer: Tokenizer, max_length: int,
    cache_file: Path, key: str, split: str,
):  # fmt: skip
    """`raw`'s kept rows (`keep`: their indices; `texts`, `labels`: theirs) as a `datasets.Dataset` of `input_ids`,
    `length`, `label` and `text`, through the map cache `cache_file` (a run with the same `key` reads it back)."""
    import datasets

    position = {row: index for index, row in enumerate(keep)}
    unknown_id = tokenizer.token_to_id("[UNK]")

    def encode(_, indices: list[int]) -> dict[str, list]:
        kept = [position[row] for row in indices if row in position]
        encodings = tokenizer.encode_batch([texts[index] for index in kept])
        # A text whose every character normalises away still gets one token, so no row is all padding.
        ids = [encoding.ids[:max_length] or [unknown_id] for encoding in encodings]
        return {"input_ids": ids, "length": [len(row) for row in ids], "label": [labels[i] for i in kept],
                "text": [texts[i] for i in kept]}  # fmt: skip

    # Explicit: `map` would otherwise keep the source's type for `label`, strings for "pos"/"neg" files.
    features = datasets.Features({"input_ids": datasets.List(datasets.Value("int32")),
                                  "length": datasets.Value("int64"), "label": datasets.Value("int64"),
                                  "text": datasets.Value("string")})  # fmt: skip
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    return raw.map(
        encode, with_indices=True, batched=True, batch_size=10_000, remove_columns=raw.column_names,
        new_fingerprint=key, cache_file_name=str(cache_file), desc=f"tokenizing {split}", features=features,
    )  # fmt: skip
