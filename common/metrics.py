"""torchmetrics collections cloned per stage, so logged keys read `train/acc`, `val/acc`, `test/acc`."""

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

STAGES = ("train", "val", "test")


class StageMetrics(torch.nn.Module):
    """One clone of `metrics` per stage; `stage_metrics["val"]` logs keys prefixed `val/`."""

    def __init__(self, metrics: MetricCollection | dict, stages: tuple[str, ...] = STAGES) -> None:
        super().__init__()
        metrics = metrics if isinstance(metrics, MetricCollection) else MetricCollection(metrics)
        # ModuleDict keys may not shadow nn.Module attributes such as `train`, hence the suffix.
        self.collections = torch.nn.ModuleDict(
            {f"{stage}_metrics": metrics.clone(prefix=f"{stage}/") for stage in stages}
        )

    def __getitem__(self, stage: str) -> MetricCollection:
        return self.collections[f"{stage}_metrics"]


def classification_metrics(num_classes: int, top_k: int = 1) -> StageMetrics:
    """Accuracy and macro F1 per stage, plus top-k accuracy when `top_k > 1`."""
    metrics = {
        "acc": MulticlassAccuracy(num_classes, average="micro"),
        "f1": MulticlassF1Score(num_classes, average="macro"),
    }
    if top_k > 1 and num_classes > top_k:
        metrics[f"top{top_k}_acc"] = MulticlassAccuracy(num_classes, top_k=top_k, average="micro")
    return StageMetrics(metrics)
