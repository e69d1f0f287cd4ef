"""Connected-digit recognition with CTC: greedy and prefix-beam-search decoding as plain functions, a string
accuracy metric, and `DigitStringRecognizer`, the LightningModule (CTC loss, digit error rate, string accuracy).

uv run projects/speech/train.py fit --config configs/speech/connected_quickstart.yaml
"""

import math
from collections.abc import Callable
from typing import Literal

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics import MeanMetric, Metric
from torchmetrics.text import CharErrorRate

from common import media
from common.metrics import StageMetrics
from common.optim import parameter_groups, warmup_schedule
from common.pretrained import require_same_hparams
from projects.speech.connected import DIGITS
from projects.speech.model import DigitCRNN

BLANK = 0


def greedy_decode(log_probs: torch.Tensor, blank: int = BLANK) -> list[int]:
    """Best path of one emission `(T, C)`: each frame's most likely class, repeats merged, blanks dropped."""
    best = log_probs.argmax(dim=-1).tolist()
    return [
        label
        for index, label in enumerate(best)
        if label != blank and (index == 0 or label != best[index - 1])
    ]


def log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b)), exact when either is -inf."""
    if a < b:
        a, b = b, a
    return a if b == -math.inf else a + math.log1p(math.exp(b - a))


def prefix_beam_search(
    log_probs: torch.Tensor, beam_width: int = 8, blank: int = BLANK, prune: float = -12.0
) -> list[int]:
    """Most probable label string of one emission `(T, C)` (log-probabilities), summed over all its alignments.

    Each prefix keeps two scores, ending in blank or not, because "1 - 1" and "1 1" decode differently. Classes
    below `prune` (log-probability) at a frame are not tried: they could not lift a beam into the top `beam_width`.
    """
    beams = {(): (0.0, -math.inf)}  # prefix -> (log p ending in blank, log p ending in a label)
    for frame in log_probs.tolist():
        candidates = [label for label, score in enumerate(frame) if score > prune] or [
            max(range(len(frame)), key=frame.__getitem__)
        ]
        grown: dict[tuple[int, ...], tuple[float, float]] = {}
        for prefix, (ends_blank, ends_label) in beams.items():
            total = log_add(ends_blank, ends_label)
            for label in candidates:
                score = frame[label]
                if label == blank:
                    old_blank, old_label = grown.get(prefix, (-math.inf, -math.inf))
                    grown[prefix] = (log_add(old_blank, total + score), old_label)
                    continue
                extended = prefix + (label,)
                old_blank, old_label = grown.get(extended, (-math.inf, -math.inf))
                if prefix and label == prefix[-1]:
                    # Repeating the last label starts a new one only after a blank; without it, it merges.
                    grown[extended] = (old_blank, log_add(old_label, ends_blank + score))
                    same_blank, same_label = grown.get(prefix, (-math.inf, -math.inf))
                    grown[prefix] = (same_blank, log_add(same_label, ends_label + score))
                else:
                    grown[extended] = (old_blank, log_add(old_label, total + score))
        beams = dict(sorted(grown.items(), key=lambda item: -log_add(*item[1]))[:beam_width])
    return list(max(beams.items(), key=lambda item: log_add(*item[1]))[0])


def decode_batch(
    log_probs: torch.Tensor, lengths: torch.Tensor, beam_width: int = 1, vocabulary: list[str] = DIGITS
) -> list[str]:
    """Strings of a batch of emissions `(B, T, C)` with `lengths` frames: greedy for `beam_width` 1, else beams."""
    strings = []
    for emission, length in zip(log_probs.detach().float().cpu(), lengths.tolist(), strict=True):
        labels = (
            greedy_decode(emission[:length])
            if beam_width <= 1
            else prefix_beam_search(emission[:length], beam_width)
        )
        strings.append("".join(vocabulary[label - 1] for label in labels))
    return strings


class StringAccuracy(Metric):
    """Share of predicted strings equal to their targets (whole-string accuracy)."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, preds: list[str], target: list[str]) -> None:
        self.correct += sum(p == t for p, t in zip(preds, target, strict=True))
        self.total += len(target)

    def compute(self) -> torch.Tensor:
        return self.correct / self.total.clamp(min=1)


def string_metrics() -> dict[str, Metric]:
    # On strings without separators the character error rate is the digit error rate.
    return {"der": CharErrorRate(), "string_acc": StringAccuracy()}


class DigitStringRecognizer(LightningModule):
    """Reads a digit string from log-mel features `(B, n_mels, frames)`: per-frame logits over blank + digits,
    trained with CTC. Features are normalised inside per mel band with the training set's statistics.

    Args:
        network: builds the network from `(num_outputs, n_mels)`; it maps `(features, lengths)` to
            `(logits (B, T', num_outputs), lengths (B,))`.
        class_names: the vocabulary, in label order after the blank (linked from the datamodule).
        n_mels: mel bands of the features (linked from the datamodule).
        lr: peak learning rate (AdamW).
        weight_decay: AdamW's decoupled weight decay (not applied to BatchNorm and bias parameters).
        schedule: `onecycle` (linear warm-up then linear decay), `cosine` or `constant`.
        warmup_fraction: share of the steps spent warming up.
        beam_width: test strings are also decoded with a prefix beam search this wide (`test/der_beam`); 1 skips it.
        alignment_examples: test strings whose CTC posteriors are drawn (`test/ctc_alignments` media).
    """

    def __init__(
        self,
        network: Callable[[int, int], nn.Module] = DigitCRNN,
        class_names: list[str] | None = None,
        n_mels: int = 40,
        lr: float = 3e-3,
        weight_decay: float = 0.01,
        schedule: Literal["onecycle", "cosine", "constant"] = "onecycle",
        warmup_fraction: float = 0.1,
        beam_width: int = 8,
        alignment_examples: int = 4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["network"])
        self.class_names = list(class_names or DIGITS)
        self.network = network(len(self.class_names) + 1, n_mels)
        self.metrics = StageMetrics(string_metrics(), stages=("val", "test"))
        self.beam_metrics = StageMetrics(string_metrics(), stages=("test",))
        self.eval_losses = StageMetrics({"loss": MeanMetric()}, stages=("val", "test"))
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("std", torch.ones(n_mels))
        self.examples: list[tuple[torch.Tensor, str, str]] = []  # (posteriors (T', C), target, greedy)

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage == "fit" and datamodule is not None and hasattr(datamodule, "feature_stats"):
            mean, std = datamodule.feature_stats()
            self.mean.copy_(mean)
            self.std.copy_(std.clamp(min=1e-3))

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities `(B, T', 1 + len(class_names))` and their lengths for features `(B, n_mels, T)`."""
        normalised = (features - self.mean[:, None]) / self.std[:, None]
        inside = torch.arange(features.shape[2], device=features.device) < lengths[:, None]  # (B, T)
        logits, out_lengths = self.network(normalised * inside[:, None], lengths)  # padding is 0 = the mean
        return logits.log_softmax(dim=-1), out_lengths

    def _shared_step(self, batch: tuple[torch.Tensor, ...], stage: str) -> dict[str, torch.Tensor]:
        features, frames, targets, target_lengths = batch
        log_probs, lengths = self(features, frames)
        # zero_infinity: a recording too short for its string gives no gradient rather than an infinite loss.
        loss = F.ctc_loss(
            log_probs.transpose(0, 1), targets, lengths, target_lengths, blank=BLANK, zero_infinity=True
        )
        if stage == "train":
            self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(targets))
            return {"loss": loss}
        truth = ["".join(self.class_names[label - 1] for label in row[:length].tolist())
                 for row, length in zip(targets, target_lengths, strict=True)]  # fmt: skip
        greedy = decode_batch(log_probs, lengths, 1, self.class_names)
        self.metrics[stage].update(greedy, truth)
        self.eval_losses[stage].update(loss.detach(), weight=len(targets))
        self.log_dict(self.eval_losses[stage], on_step=False, on_epoch=True, prog_bar=True)
        self.log_dict(self.metrics[stage], on_step=False, on_epoch=True, prog_bar=True)
        if stage == "test" and self.hparams.beam_width > 1:
            self.beam_metrics["test"].update(
                decode_batch(log_probs, lengths, self.hparams.beam_width, self.class_names), truth
            )
            self.log_dict({f"{name}_beam": metric for name, metric in self.beam_metrics["test"].items()},
                          on_step=False, on_epoch=True)  # fmt: skip
        if stage == "test":
            self._keep_examples(log_probs, lengths, truth, greedy)
        return {"loss": loss}

    def _keep_examples(
        self, log_probs: torch.Tensor, lengths: torch.Tensor, truth: list[str], greedy: list[str]
    ) -> None:
        """The first `alignment_examples` test strings' posteriors, for the figure drawn at the end of the test."""
        for index in range(min(len(truth), self.hparams.alignment_examples - len(self.examples))):
            self.examples.append(
                (log_probs[index, : lengths[index]].exp().cpu(), truth[index], greedy[index])
            )

    def training_step(self, batch, batch_idx: int):
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx: int):
        return self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int):
        return self._shared_step(batch, "test")

    def predict_step(self, batch, batch_idx: int) -> list[dict]:
        features, frames, paths = batch
        log_probs, lengths = self(features, frames)
        strings = decode_batch(log_probs, lengths, self.hparams.beam_width, self.class_names)
        # Confidence: the geometric mean over output frames of the most likely class's probability.
        confidences = [float(row[:length].max(dim=-1).values.mean().exp())
                       for row, length in zip(log_probs, lengths.tolist(), strict=True)]  # fmt: skip
        return [
            {"file": path, "transcript": string, "confidence": round(confidence, 6)}
            for path, string, confidence in zip(paths, strings, confidences, strict=True)
        ]

    def on_test_epoch_end(self) -> None:
        if self.examples:
            media.log_figure(
                self.trainer, "test/ctc_alignments", alignment_figure(self.examples, self.class_names)
            )
        self.examples = []

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        require_same_hparams(checkpoint, self.hparams, ("class_names", "n_mels"))

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(
            parameter_groups(self.network, self.hparams.weight_decay), lr=self.hparams.lr
        )
        total = self.trainer.estimated_stepping_batches
        return warmup_schedule(optimizer, total, self.hparams.warmup_fraction, self.hparams.schedule)


def alignment_figure(examples: list[tuple[torch.Tensor, str, str]], class_names: list[str]) -> plt.Figure:
    """Per-frame CTC posteriors of a few strings: one row per class (blank on top), frames left to right."""
    figure, axes = plt.subplots(len(examples), 1, figsize=(10, 1.6 * len(examples)), squeeze=False)
    for axis, (posteriors, truth, predicted) in zip(axes[:, 0], examples, strict=True):
        axis.imshow(posteriors.T, aspect="auto", cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        axis.set_yticks(range(len(class_names) + 1), ["-", *class_names], fontsize=6)
        axis.set_title(f"target {truth}, greedy {predicted}", fontsize=8)
    axes[-1, 0].set_xlabel("output frame (40 ms)")
    figure.tight_layout()
    return figure
