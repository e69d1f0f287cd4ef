"""A templated synthetic review corpus: the offline fallback for the quickstart and the tests."""

import random
from pathlib import Path

from common.files import atomic_path

POSITIVE = [
    "good",
    "great",
    "wonderful",
    "charming",
    "moving",
    "funny",
    "brilliant",
    "delightful",
    "smart",
    "touching",
]
NEGATIVE = [
    "bad",
    "awful",
    "boring",
    "dull",
    "tedious",
    "clumsy",
    "lifeless",
    "predictable",
    "silly",
    "painful",
]
SUBJECTS = [
    "the film",
    "this movie",
    "the plot",
    "the acting",
    "the script",
    "the ending",
    "the cast",
    "the story",
]
VERBS = ["is", "was", "feels", "seems", "remains"]
INTENSIFIERS = ["", "very ", "really ", "rather ", "truly "]


def synthetic_review(rng: random.Random, label_noise: float = 0.05) -> tuple[str, int]:
    """One templated review and its label; `not` flips the polarity, so word counts alone do not solve it,
    and `label_noise` of the labels are flipped, so no model is perfect and there is always something to inspect."""
    label = rng.randrange(2)
    negated = rng.random() < 0.3
    word = rng.choice(POSITIVE if label != negated else NEGATIVE)
    text = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {'not ' if negated else ''}{rng.choice(INTENSIFIERS)}{word}"
    if rng.random() < 0.5:
        text += (
            f" , and {rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(POSITIVE if label else NEGATIVE)}"
        )
    return text + " .", label if rng.random() >= label_noise else 1 - label


def write_synthetic_corpus(folder: Path, size: int, seed: int = 0) -> dict[str, Path]:
    """Write `train.tsv` (`size` rows), `val.tsv` and `test.tsv` (`size // 5` each) of synthetic reviews."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, rows in (("train", size), ("val", max(size // 5, 1)), ("test", max(size // 5, 1))):
        path = folder / f"{split}.tsv"
        lines = ["sentence\tlabel"] + [
            f"{text}\t{label}" for text, label in (synthetic_review(rng) for _ in range(rows))
        ]
        text = "\n".join(lines) + "\n"
        # Rewritten only when it changed: a new modification time would change the `datasets` fingerprint that keys
        # the tokenizer cache, and `tokenizers` does not train the same WordPiece vocabulary twice (#1794).
        if not path.is_file() or path.read_text() != text:
            with atomic_path(
                path
            ) as partial:  # DDP ranks write it at once, and may read another's copy meanwhile
                partial.write_text(text)
        files[split] = path
    return files
