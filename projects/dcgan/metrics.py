"""Sample-quality metrics: Frechet distance and class coverage in a trained classifier's feature space
(offline, with the real-data floor beside it), and FID/KID in Inception space when its weights are present.

Every set is compared with the same reference: a fixed subset of the training images. The floor is the
held-out real images against that reference; the generated set has as many images as the held-out one.
Features are extracted once per batch and fed to torchmetrics' FID/KID through an identity "network".
"""

from pathlib import Path

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torchmetrics.aggregation import CatMetric
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance
from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

from common.errors import UserInputError


class Features(nn.Identity):
    """Stands in for the feature network inside torchmetrics' FID/KID, which then receive features `(N, D)`."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features


def frechet_distance(num_features: int, keep_reference: bool) -> FrechetInceptionDistance:
    """torchmetrics' FID on precomputed features; `keep_reference` keeps the real statistics across `reset()`."""
    return FrechetInceptionDistance(Features(num_features), reset_real_features=not keep_reference)


class ClassifierSampleQuality:
    """Frechet distance of generated vs reference classifier features, its real floor, and class coverage.

    Args:
        classifier: frozen; `classifier(images)` -> logits, `classifier.embed(images)` -> features,
            `classifier.class_names`; optional `input_size` and `hparams.in_channels` say what it expects.
        image_shape: `(C, S, S)` of the images this metric will be given.
        confidence_threshold: a sample counts as confident when its top class probability reaches this.
    """

    def __init__(
        self, classifier: nn.Module, image_shape: tuple[int, int, int], confidence_threshold: float = 0.9
    ) -> None:
        self.classifier = classifier
        self.input_size = getattr(classifier, "input_size", None)
        self.input_channels = getattr(getattr(classifier, "hparams", {}), "in_channels", None)
        self.class_names = list(classifier.class_names)
        self.confidence_threshold = confidence_threshold
        device = next(classifier.parameters(), torch.empty(0)).device  # where the classifier lives
        num_features = self.embed(torch.zeros(2, *image_shape, device=device))[0].shape[-1]
        # "real" is always the reference; "fake" is the generated set, or the held-out set for the floor.
        self.generated = frechet_distance(num_features, keep_reference=True)
        self.floor = frechet_distance(num_features, keep_reference=False)
        self.floor_value: float | None = None
        # Per-image top probabilities and classes; torchmetrics gathers them from every DDP process.
        self.real_confidence, self.sample_confidence, self.sample_class = (
            CatMetric(),
            CatMetric(),
            CatMetric(),
        )
        self.real_confident_share: float | None = None
        self.shares: dict[str, float] = {}

    def to(self, device: torch.device) -> "ClassifierSampleQuality":
        parts = (self.classifier, self.generated, self.floor, self.real_confidence, self.sample_confidence,
                 self.sample_class)  # fmt: skip
        for part in parts:
            part.to(device)
        return self

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features `(N, D)` and class probabilities `(N, K)` of images in [0, 1] `(N, C, S, S)`, in float32
        even inside a mixed-precision step, so that the metric does not depend on the training precision."""
        with torch.autocast(images.device.type, enabled=False):
            images = images.float()
            if self.input_channels == 3 and images.shape[1] == 1:
                images = images.expand(-1, 3, -1, -1)
            elif self.input_channels == 1 and images.shape[1] == 3:
                images = images.mean(dim=1, keepdim=True)
            if self.input_size is not None and images.shape[-1] != self.input_size:
                images = F.interpolate(
                    images, size=(self.input_size, self.input_size), mode="bilinear", antialias=True
                )
            return self.classifier.embed(images).float(), self.classifier(images).float().softmax(dim=-1)

    def update(self, images: torch.Tensor, kind: str) -> None:
        """Add images in [0, 1] of one `kind`: `generated`, `heldout` or `reference`."""
        if kind in ("heldout", "reference") and self.floor_value is not None:
            return  # real statistics are complete after the first compute() and kept from then on
        features, probabilities = self.embed(images)
        if kind == "generated":
            self.generated.update(features, real=False)
            confidence, predicted = probabilities.max(dim=-1)
            self.sample_confidence.update(confidence)
            self.sample_class.update(predicted)
        elif kind == "heldout":
            self.floor.update(features, real=False)
            # Real images set the bar for confidence too (label smoothing, for one, keeps them below 0.9).
            self.real_confidence.update(probabilities.max(dim=-1).values)
        else:
            self.generated.update(features, real=True)
            self.floor.update(features, real=True)

    def compute(self) -> dict[str, float]:
        if self.floor_value is None:
            self.floor_value = float(self.floor.compute())
            self.floor.reset()
            self.real_confident_share = self._confident_share(self.real_confidence.compute())
        counts = torch.bincount(self.sample_class.compute().long(), minlength=len(self.class_names))
        total = max(int(counts.sum()), 1)
        self.shares = {name: int(count) / total for name, count in zip(self.class_names, counts, strict=True)}
        return {
            "classifier_fd": float(self.generated.compute()),
            "classifier_fd_real_floor": self.floor_value,
            "confident_share": self._confident_share(self.sample_confidence.compute()),
            "confident_share_real": self.real_confident_share,
            "class_share_min": min(self.shares.values()),
            "class_share_max": max(self.shares.values()),
        }

    def _confident_share(self, confidence: torch.Tensor) -> float:
        return float((confidence >= self.confidence_threshold).sum()) / max(len(confidence), 1)

    def class_shares(self) -> dict[str, float]:
        """Share of the generated samples the classifier assigns to each class, as of the last `compute()`."""
        return self.shares

    def reset(self) -> None:
        for part in (self.generated, self.sample_confidence, self.sample_class):
            part.reset()


class InceptionSampleQuality:
    """FID and KID in Inception-v3 space (torch-fidelity's FID network, through torchmetrics).

    Args:
        weights: a local `pt_inception-2015-12-05-6726825d.pth` file, or `download` to let torch-fidelity fetch it.
        kid_subset_size: images per KID subset (capped by the sample count).
        kid_subsets: random subsets KID averages over.
        feature_size: Inception layer: 2048 (the standard FID), or 64, 192, 768 (lower variance at few samples).
    """

    def __init__(
        self, weights: str, kid_subset_size: int = 1000, kid_subsets: int = 100, feature_size: int = 2048
    ) -> None:
        if not _TORCH_FIDELITY_AVAILABLE:
            raise UserInputError(
                "FID/KID need the torch-fidelity package (uv pip install torch-fidelity), or unset model.inception_weights"
            )
        if weights != "download" and not Path(weights).is_file():
            raise UserInputError(
                f"Inception weights {weights} not found; point model.inception_weights at the .pth file, or 'download'"
            )
        from torchmetrics.image.fid import NoTrainInceptionV3

        path = None if weights == "download" else weights
        self.inception = NoTrainInceptionV3(
            name="inception-v3-compat", features_list=[str(feature_size)], feature_extractor_weights_path=path
        )
        self.fid = frechet_distance(feature_size, keep_reference=True)
        self.kid = KernelInceptionDistance(
            Features(feature_size),
            subsets=kid_subsets,
            subset_size=kid_subset_size,
            reset_real_features=False,
        )
        self.kid_subset_size = kid_subset_size
        self.reference_complete = False

    def to(self, device: torch.device) -> "InceptionSampleQuality":
        for part in (self.inception, self.fid, self.kid):
            part.to(device)
        return self

    @torch.no_grad()
    def update(self, images: torch.Tensor, kind: str) -> None:
        """Add images in [0, 1] of one `kind`: `generated` or `reference` (held-out images are not used)."""
        if kind == "heldout" or (kind == "reference" and self.reference_complete):
            return  # the reference statistics are complete after the first compute() and kept from then on
        # The FID network takes uint8 RGB images of any size and resizes them to 299 itself.
        images = (images.float().expand(-1, 3, -1, -1) * 255).round().to(torch.uint8)
        with torch.autocast(images.device.type, enabled=False):  # float32 whatever the training precision
            features = self.inception(images).double()  # (N, feature_size)
        self.fid.update(features, real=kind == "reference")
        self.kid.update(features, real=kind == "reference")

    def compute(self) -> dict[str, float]:
        counts = (int(self.fid.real_features_num_samples), int(self.fid.fake_features_num_samples))
        self.kid.subset_size = min(self.kid_subset_size, *counts)
        kid_mean, kid_std = self.kid.compute()
        self.reference_complete = True
        return {"fid": float(self.fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std)}

    def reset(self) -> None:
        self.fid.reset()
        self.kid.reset()


def inception_metrics_or_none(weights: str | None) -> InceptionSampleQuality | None:
    """The FID/KID metric, or None with a one-line note saying why it is skipped."""
    if weights is None:
        rank_zero_info(
            "FID/KID skipped: no Inception weights (set model.inception_weights to the .pth file, or to download when online)"
        )
        return None
    return InceptionSampleQuality(weights)
