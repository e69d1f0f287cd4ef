"""Sample quality at validation and test, as a mixin of the DCGAN module: held-out real images, as many generated
ones drawn from seeded latents, and the metrics of `metrics.py` (a classifier's features, optionally Inception's)."""

from typing import Literal

import torch
from lightning.pytorch.utilities import rank_zero_info

from common import media
from common.errors import UserInputError
from common.pretrained import load_image_classifier
from projects.dcgan.judge import Judge, accuracy, cached_judge
from projects.dcgan.metrics import ClassifierSampleQuality, inception_metrics_or_none


class SampleQualityEvaluation:
    """The validation and test hooks of `DCGAN`; they use its `sample`, `seeded_latents`, `hparams` and
    `refresh_sampler_statistics`."""

    def setup(self, stage: str) -> None:
        monitor = getattr(self.trainer.checkpoint_callback, "monitor", None) or ""
        judged = self.classifier_checkpoint or self.hparams.judge_steps
        if stage == "fit" and monitor.startswith("val/classifier") and not judged:
            raise UserInputError(
                f"checkpoint.monitor is {monitor} but there is no classifier (model.classifier_checkpoint unset, "
                "model.judge_steps 0); pass one, or --checkpoint.monitor null to keep only the last checkpoint"
            )
        if stage not in ("fit", "validate", "test") or "classifier" in self.frozen:
            return
        # Loaded here, before any training, so a bad path fails at once.
        if self.classifier_checkpoint:
            self.frozen["classifier"] = load_image_classifier(self.classifier_checkpoint)
        elif self.hparams.judge_steps:
            self.frozen["classifier"] = self._judge()

    def _judge(self) -> Judge | None:
        """The judge CNN of `judge.py`, trained on (or loaded for) the datamodule's labelled training images."""
        data = self.trainer.datamodule
        if not getattr(data, "class_names", None):
            return None  # a datamodule of the user's own without labels: no classifier metric
        (images, labels), (heldout, heldout_labels) = data.splits["train"], data.splits["heldout"]
        judge = cached_judge(
            images, labels, data.class_names, self.hparams.judge_steps, data.hparams.cache_dir
        )
        rank_zero_info(
            f"Judge classifier ({self.hparams.judge_steps} steps on the training images): "
            f"{accuracy(judge, heldout, heldout_labels):.2%} held-out accuracy"
        )
        return judge

    def _build_quality_metrics(self) -> None:
        """Fresh metrics (and reference statistics) for a stage: validation and test use different sample counts."""
        self.quality_metrics = []
        if "classifier" in self.frozen:
            shape = (self.hparams.image_channels, self.hparams.image_size, self.hparams.image_size)
            metric = ClassifierSampleQuality(
                self.frozen["classifier"], shape, self.hparams.confidence_threshold
            )
            self.quality_metrics.append(metric)
        inception = inception_metrics_or_none(self.inception_weights)
        if inception is not None:
            self.quality_metrics.append(inception)
        if not self.quality_metrics:
            rank_zero_info(
                "No sample-quality metric: set model.judge_steps or model.classifier_checkpoint (offline), or "
                "model.inception_weights"
            )
        for metric in self.quality_metrics:
            metric.to(self.device)

    def on_validation_start(self) -> None:
        if self.quality_metrics_stage != "val":
            self._build_quality_metrics()
            self.quality_metrics_stage = "val"

    def on_test_start(self) -> None:
        self._build_quality_metrics()
        self.quality_metrics_stage = "test"

    def on_validation_epoch_start(self) -> None:
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            self.refresh_sampler_statistics()  # the checkpoint saved after this validation keeps them
        for metric in self.quality_metrics:
            metric.reset()

    def evaluation_latents(self, count: int, batch_idx: int, stage: Literal["val", "test"]) -> torch.Tensor:
        """The latents of one batch of generated samples: the same at every validation, so epochs compare, and
        disjoint from them at test, so the tested samples are not the ones the best checkpoint was chosen on."""
        first_seed = self.hparams.sample_seed + (1 if stage == "val" else 500_001)
        return self.seeded_latents(count, first_seed + batch_idx)

    def held_out_latents(self, count: int, batch_idx: int, stage: Literal["val", "test"]) -> torch.Tensor:
        """One latent per held-out image of this batch: the one a single process draws for that image, so the
        metrics do not depend on the number of processes. A DDP process holds every `world_size`-th image, as
        `DistributedSampler` deals them, and picks their latents out of the single-process batches."""
        processes = self.trainer.world_size
        if processes == 1:
            return self.evaluation_latents(count, batch_idx, stage)
        loader = (self.trainer.val_dataloaders if stage == "val" else self.trainer.test_dataloaders)[0]
        size, total = loader.batch_size, len(loader.dataset)
        # `% total`: a padding sampler repeats the first images.
        positions = [
            (self.global_rank + processes * (batch_idx * size + row)) % total for row in range(count)
        ]
        batches = {position // size for position in positions}
        drawn = {b: self.evaluation_latents(min(size, total - b * size), b, stage) for b in batches}
        return torch.stack([drawn[position // size][position % size] for position in positions])

    def _shared_step(
        self,
        batch: tuple[torch.Tensor, torch.Tensor],
        batch_idx: int,
        dataloader_idx: int,
        stage: Literal["val", "test"],
    ) -> None:
        """Dataloader 0: held-out real images, each batch matched by as many generated ones; 1: the reference."""
        if self.trainer.sanity_checking or not self.quality_metrics:
            return  # a partial sanity pass must not become the cached reference statistics
        real = (batch[0] + 1) / 2  # (B, C, S, S) in [0, 1]
        sets = {"reference": real} if dataloader_idx == 1 else {"heldout": real}
        if dataloader_idx == 0:
            latents = self.held_out_latents(len(real), batch_idx, stage)
            sets["generated"] = (self.sample(latents).float() + 1) / 2
        for metric in self.quality_metrics:
            for kind, images in sets.items():
                metric.update(images, kind)

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._shared_step(batch, batch_idx, dataloader_idx, "val")

    def test_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._shared_step(batch, batch_idx, dataloader_idx, "test")

    def _log_quality(self, stage: str) -> None:
        if self.trainer.sanity_checking:
            return
        for metric in self.quality_metrics:
            values = metric.compute()
            self.log_dict(
                {f"{stage}/{name}": value for name, value in values.items()}, add_dataloader_idx=False
            )
            if isinstance(metric, ClassifierSampleQuality):
                shares = metric.class_shares()
                self.log_dict(
                    {f"{stage}/class_share/{name}": share for name, share in shares.items()},
                    add_dataloader_idx=False,
                )
                rows = [(name, round(share, 4)) for name, share in shares.items()]
                media.log_table(self.trainer, f"{stage}/class_histogram", ["class", "share"], rows)

    def on_validation_epoch_end(self) -> None:
        self._log_quality("val")

    def on_test_epoch_end(self) -> None:
        self._log_quality("test")
