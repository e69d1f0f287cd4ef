"""The sentiment LightningModule: cross-entropy, accuracy/F1/AUROC, a misclassified-examples table, and
predictions with per-class probabilities, around any network from `model.py`."""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassAUROC, MulticlassF1Score

from common import media
from common.errors import UserInputError
from common.metrics import StageMetrics
from common.optim import Schedule, parameter_groups, warmup_schedule
from common.pretrained import require_same_hparams
from projects.sentiment.model import EmbeddingClassifier, RecurrentClassifier


class SentimentClassifier(LightningModule):
    """Classifies padded token ids `(B, T)` with their attention mask into `class_names`.

    Args:
        network: builds the network from `(vocab_size, num_classes)`; pick one in YAML by `class_path`.
        vocab_size: embedding rows (linked from the datamodule's tokenizer settings).
        class_names: class names in label order (linked from the datamodule).
        lr: peak AdamW learning rate.
        weight_decay: AdamW decoupled weight decay (not applied to biases and norms).
        label_smoothing: cross-entropy label smoothing.
        schedule: learning-rate shape over the run's steps after the warm-up (`cosine`: decay to 0).
        warmup_fraction: share of the steps spent warming up linearly before `schedule`.
        adversarial_epsilon: adversarial training (Miyato et al., 2017, fast gradient method): every training
            batch is seen twice, the second time with each token's embedding moved this far (L2) along its
            loss gradient, and both losses are minimised. 0 turns it off. Needs an `EmbeddingClassifier`.
        max_misclassified: rows of the misclassified-examples table logged after each validation and test.
    """

    def __init__(
        self,
        network: Callable[[int, int], nn.Module] = RecurrentClassifier,
        vocab_size: int = 8000,
        class_names: list[str] | None = None,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        label_smoothing: float = 0.0,
        schedule: Schedule = "cosine",
        warmup_fraction: float = 0.1,
        adversarial_epsilon: float = 0.0,
        max_misclassified: int = 50,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["network"])
        self.class_names = list(class_names or ["negative", "positive"])
        self.network = network(vocab_size, len(self.class_names))
        if adversarial_epsilon and not isinstance(self.network, EmbeddingClassifier):
            raise UserInputError(
                f"--model.adversarial_epsilon needs a network with token embeddings (an EmbeddingClassifier), "
                f"not {type(self.network).__name__}: set it to 0 or pick another --model.network"
            )
        classes = len(self.class_names)
        self.metrics = StageMetrics(
            {
                "acc": MulticlassAccuracy(classes, average="micro"),
                "f1": MulticlassF1Score(classes, average="macro"),
                "auroc": MulticlassAUROC(classes, average="macro"),
            }
        )
        # val/test losses as a metric weighted by batch size: the exact mean over the split across DDP processes,
        # which `self.log(..., sync_dist=True)` is not when a split does not divide evenly (common/distributed.py).
        self.eval_losses = StageMetrics({"loss": MeanMetric()}, stages=("val", "test"))
        self.misclassified: list[tuple[str, str, str, float]] = []

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits `(B, num_classes)`."""
        return self.network(input_ids, attention_mask)

    def example_inputs(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and their mask for `common.export` (16 tokens; the length is fixed in the export)."""
        input_ids = torch.randint(2, self.hparams.vocab_size, (batch_size, 16))
        return input_ids, torch.ones_like(input_ids, dtype=torch.bool)

    def export_metadata(self) -> dict:
        return {
            "inputs": [{"name": "input_ids", "shape": ["batch", 16], "dtype": "int64",
                        "preprocessing": "tokenizer.json's ids, cut or padded with [PAD] (id 0) to 16"},
                       {"name": "attention_mask", "shape": ["batch", 16], "dtype": "bool",
                        "preprocessing": "True where input_ids is a token, False on padding"}],
            "outputs": [{"name": "output", "shape": ["batch", len(self.class_names)], "meaning": "logits"}],
            "class_names": self.class_names,
        }  # fmt: skip

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, label_smoothing=self.hparams.label_smoothing)

    def _shared_step(self, batch: dict, stage: str, logits: torch.Tensor | None = None) -> dict:
        if logits is None:
            logits = self(batch["input_ids"], batch["attention_mask"])
        target = batch["labels"]
        loss = self._loss(logits, target)
        probabilities = logits.detach().float().softmax(dim=-1)
        metrics = self.metrics[stage]
        metrics.update(probabilities, target)
        size, train = len(target), stage == "train"
        if train:  # per step, local to each process (no sync per step)
            self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        else:
            self.eval_losses[stage].update(loss.detach(), weight=size)
            self.log_dict(self.eval_losses[stage], on_step=False, on_epoch=True, prog_bar=True)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=not train)
        preds = probabilities.argmax(dim=-1)
        if train:
            # Share of the batch's token slots that are padding: what bucketing keeps small.
            pad_fraction = 1 - batch["attention_mask"].float().mean()
            self.log("train/pad_fraction", pad_fraction, on_step=False, on_epoch=True, batch_size=size)
        else:
            self._collect_misclassified(batch["texts"], target, preds, probabilities)
        return {"loss": loss, "preds": preds, "target": target}

    def _collect_misclassified(self, texts: list[str], target, preds, probabilities) -> None:
        for index in (preds != target).nonzero().flatten().tolist():
            if len(self.misclassified) >= self.hparams.max_misclassified:
                return
            predicted = int(preds[index])
            self.misclassified.append(
                (texts[index], self.class_names[int(target[index])], self.class_names[predicted],
                 round(float(probabilities[index, predicted]), 4))
            )  # fmt: skip

    def _log_misclassified(self, stage: str) -> None:
        if self.misclassified and not self.trainer.sanity_checking:
            columns = ["text", "true", "predicted", "confidence"]
            media.log_table(self.trainer, f"{stage}/misclassified", columns, self.misclassified)
        self.misclassified = []

    def training_step(self, batch: dict, batch_idx: int):
        epsilon = self.hparams.adversarial_epsilon
        if not epsilon:
            return self._shared_step(batch, "train")
        mask, target = batch["attention_mask"], batch["labels"]
        embedded = self.network.embed(batch["input_ids"])
        logits = self.network.classify(embedded, mask)
        step = self._shared_step(batch, "train", logits)  # logs the clean loss and the metrics
        # The gradient with respect to the embeddings only: parameters' .grad (and DDP's hooks) stay untouched
        # until the one backward of the summed loss.
        (gradient,) = torch.autograd.grad(step["loss"], embedded, retain_graph=True)
        perturbation = epsilon * F.normalize(gradient, dim=-1)  # (B, T, E), length epsilon per token
        adversarial_loss = self._loss(self.network.classify(embedded + perturbation, mask), target)
        self.log("train/adversarial_loss", adversarial_loss, on_epoch=True, batch_size=len(target))
        return {**step, "loss": step["loss"] + adversarial_loss}

    def validation_step(self, batch: dict, batch_idx: int):
        return self._shared_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int):
        return self._shared_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self._log_misclassified("val")

    def on_test_epoch_end(self) -> None:
        self._log_misclassified("test")

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        probabilities = self(batch["input_ids"], batch["attention_mask"]).float().softmax(dim=-1)
        rows = []
        for line, text, row in zip(batch["lines"], batch["texts"], probabilities.tolist(), strict=True):
            best = max(range(len(row)), key=row.__getitem__)
            probability_columns = {
                f"prob_{name}": round(p, 6) for name, p in zip(self.class_names, row, strict=True)
            }
            rows.append({"line": line, "text": text, "label": self.class_names[best], **probability_columns})
        return rows

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # A checkpoint restores only into a run whose data settings shaped the same weights.
        require_same_hparams(checkpoint, self.hparams, ("class_names", "vocab_size"))

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(
            parameter_groups(self.network, self.hparams.weight_decay), lr=self.hparams.lr
        )
        total = self.trainer.estimated_stepping_batches
        return warmup_schedule(optimizer, total, self.hparams.warmup_fraction, self.hparams.schedule)
