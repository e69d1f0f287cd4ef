"""A `tokenizers` tokenizer trained on a training split, and loading a saved one with a one-line error."""

from typing import Literal

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from common.errors import UserInputError
from projects.sentiment.model import PAD_ID

SPECIAL_TOKENS = ["[PAD]", "[UNK]"]  # [PAD] first: padding is id 0 (model.PAD_ID)


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
