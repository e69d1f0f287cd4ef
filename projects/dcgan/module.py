"""The DCGAN LightningModule: adversarial training with two optimisers, sample-quality metrics, sample media."""

import copy
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_info
from sklearn.cluster import KMeans
from torchvision.utils import save_image

from common import media
from common.errors import UserInputError
from common.pretrained import load_image_classifier, require_same_hparams
from common.runs import run_directory
from projects.dcgan.metrics import ClassifierSampleQuality, inception_metrics_or_none
from projects.dcgan.model import Discriminator, Generator


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    # Binary cross-entropy: real -> 1, fake -> 0.
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "hinge":
        return -fake_logits.mean()
    # Non-saturating: maximise log D(G(z)) rather than minimise log(1 - D(G(z))), which has no gradient early on.
    return F.softplus(-fake_logits).mean()


def r1_penalty(real: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al., 2018): the mean squared norm of D's gradient at real images `real` (which must
    require grad), kept differentiable so that D learns to be flat around the data."""
    (gradients,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return gradients.float().pow(2).flatten(1).sum(dim=1).mean()


def slerp(start: torch.Tensor, end: torch.Tensor, steps: int) -> torch.Tensor:
    """Spherical interpolation `(steps, D)` between latents `(D,)`: stays at the radius Gaussian latents live on."""
    weights = torch.linspace(0, 1, steps, device=start.device)[:, None]
    angle = torch.arccos(F.cosine_similarity(start, end, dim=0).clamp(-1 + 1e-6, 1 - 1e-6))
    return (torch.sin((1 - weights) * angle) * start + torch.sin(weights * angle) * end) / torch.sin(angle)


def kmeans(points: torch.Tensor, k: int, seed: int, sample: int = 20_000) -> torch.Tensor:
    """Centroids `(k, D)` of `points` `(N, D)`: scikit-learn's k-means (k-means++ seeding) on a seeded sample."""
    noise = torch.Generator().manual_seed(seed)
    points = points[torch.randperm(len(points), generator=noise)[:sample]]
    fitted = KMeans(n_clusters=k, n_init=4, max_iter=20, random_state=seed).fit(points.double().numpy())
    return torch.from_numpy(fitted.cluster_centers_).to(points.dtype)


class DCGAN(LightningModule):
    """A DCGAN trained with manual optimisation: one discriminator step, then one generator step per batch.

    Args:
        image_channels: image channels (linked from the datamodule).
        image_size: 28, 32 or 64 (linked from the datamodule).
        latent_dim: size of the Gaussian latent vector.
        generator_width: channels of the generator's last hidden layer (doubling towards the latent).
        discriminator_width: channels of the discriminator's first layer (doubling towards the logit).
        loss: `non_saturating` (the paper's binary cross-entropy) or `hinge`.
        discriminator_norm: `batch` (the paper's), `spectral` (Miyato et al., 2018) or `none`.
        minibatch_std: give the discriminator's last layer the features' spread across groups of 4 images
            (Karras et al., 2018), so that a generator short of variety is easier to catch.
        generator_extra_convs: 3x3 convolutions (with batch norm and ReLU) at the generator's smallest resolution,
            after the latent's projection, where each feature is otherwise one ReLU of a linear function of the
            latent.
        discriminator_extra_convs: 3x3 convolutions (with LeakyReLU) at the discriminator's smallest resolution,
            before its logit. With none, as in the paper at 28 pixels, the logit is a linear function of features
            that each see a 10x10 patch; these let it judge how the strokes fit together.
        clusters: condition both networks on one of this many k-means clusters of the training images' pixels
            (found when fitting starts; 0 = unconditional). Each fake takes the cluster of a real image of its
            batch, as its one-hot code beside the latent; the discriminator adds a learned per-cluster projection
            of its pooled features to the logit (Miyato and Koyama, 2018). Sampling draws clusters as often as
            they hold training images. No labels are used: the clusters stand in for the classes (as in
            self-conditioned GANs, Liu et al., 2020), so the generator no longer has to bend one Gaussian around
            ten separate digits, which leaves samples between them.
        r1_gamma: weight gamma of the R1 gradient penalty on real images, gamma / 2 * E|grad D(x)|^2; 0 turns it
            off. Use it with `discriminator_norm: none`.
        r1_every: apply R1 on every this many discriminator steps, weighted by as much (lazy regularisation,
            Karras et al., 2020): the double backward costs a fraction of the time at about the same effect.
        generator_lr: Adam learning rate of the generator.
        discriminator_lr: Adam learning rate of the discriminator.
        betas: Adam betas for both optimisers (beta1 = 0.5 as in the paper).
        decay_after: share of the planned training batches (`trainer.estimated_stepping_batches`) after which
            both learning rates decay linearly, per batch, to 0 after the last one; None keeps them constant (the
            paper's).
        ema_decay: keep an exponential moving average of the generator weights with this decay and sample
            from it; None (the paper's) samples from the trained generator. The decay is min(ema_decay, (1 + n) / (10 + n))
            after n batches, so 0.999 takes effect only after 8,990 batches.
        classifier_checkpoint: checkpoint of a classifier trained by `projects/image_classifier` on the same
            data; enables `val/classifier_fd` (the monitored metric), its real floor and class coverage.
        confidence_threshold: classifier probability at which a sample counts as confidently classified.
        inception_weights: local FID Inception weights (torch-fidelity's `pt_inception-2015-12-05-6726825d.pth`)
            or `download`; enables `val/fid` and `val/kid`. None skips them.
        grid_rows: rows of 8 fixed-latent samples in the per-epoch grid.
        interpolation_steps: images per row of the latent interpolation grid.
        sample_seed: seed of the fixed latents and of the validation samples, so epochs compare (the test draws
            others: `evaluation_latents`).
        sample_dir: where `predict` writes PNG files; default: `<run dir>/samples`.
    """

    def __init__(
        self,
        image_channels: int = 1,
        image_size: int = 32,
        latent_dim: int = 100,
        generator_width: int = 64,
        discriminator_width: int = 64,
        loss: Literal["non_saturating", "hinge"] = "non_saturating",
        discriminator_norm: Literal["batch", "spectral", "none"] = "batch",
        minibatch_std: bool = False,
        generator_extra_convs: int = 0,
        discriminator_extra_convs: int = 0,
        clusters: int = 0,
        r1_gamma: float = 0.0,
        r1_every: int = 4,
        generator_lr: float = 2e-4,
        discriminator_lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        decay_after: float | None = None,
        ema_decay: float | None = None,
        classifier_checkpoint: str | None = None,
        confidence_threshold: float = 0.9,
        inception_weights: str | None = None,
        grid_rows: int = 8,
        interpolation_steps: int = 10,
        sample_seed: int = 1234,
        sample_dir: str | None = None,
    ) -> None:
        super().__init__()
        # Paths stay out of the checkpoint: LightningCLI would let a checkpoint's values override the command line.
        self.save_hyperparameters(ignore=["classifier_checkpoint", "inception_weights", "sample_dir"])
        self.automatic_optimization = False
        for name, count in [
            ("generator", generator_extra_convs),
            ("discriminator", discriminator_extra_convs),
        ]:
            if count < 0:
                raise UserInputError(
                    f"model.{name}_extra_convs is {count}; it counts convolutions, so use 0 or more"
                )
        self.generator = Generator(
            latent_dim,
            image_channels,
            image_size,
            generator_width,
            extra_convs=generator_extra_convs,
            clusters=clusters,
        )
        if r1_gamma > 0 and discriminator_norm == "batch":
            raise UserInputError(
                "model.r1_gamma needs a discriminator without batch norm (it would mix the per-image gradients "
                "across the batch); set --model.discriminator_norm none (or spectral)"
            )
        if decay_after is not None and not 0 <= decay_after < 1:
            raise UserInputError(
                f"model.decay_after is {decay_after}; it is a share of the training batches, so use 0 <= x < 1 "
                "(or null for constant learning rates)"
            )
        if clusters < 0:
            raise UserInputError(
                f"model.clusters is {clusters}; use 0 (unconditional) or a number of clusters"
            )
        if r1_every < 1:
            raise UserInputError(
                f"model.r1_every is {r1_every}; it counts discriminator steps, so use 1 or more"
            )
        self.discriminator = Discriminator(
            image_channels,
            image_size,
            discriminator_width,
            norm=discriminator_norm,
            minibatch_std=minibatch_std,
            extra_convs=discriminator_extra_convs,
            clusters=clusters,
        )
        if clusters:
            # Filled by k-means on the training images when fitting starts; kept in the checkpoint for sampling.
            pixels = image_channels * image_size * image_size
            self.register_buffer("centroids", torch.zeros(clusters, pixels))
            self.register_buffer("cluster_shares", torch.zeros(clusters))
        # The EMA copy is only ever written by `update_ema`, never by an optimiser.
        self.generator_ema = (
            copy.deepcopy(self.generator).requires_grad_(False) if ema_decay is not None else None
        )
        noise = torch.Generator().manual_seed(sample_seed)
        self.register_buffer("fixed_latents", torch.randn(8 * grid_rows, latent_dim, generator=noise))
        self.classifier_checkpoint = classifier_checkpoint
        self.inception_weights = inception_weights
        self.sample_dir = sample_dir
        # Plain attributes (not submodules): the classifier is not part of the GAN and stays out of its checkpoint.
        self.frozen: dict[str, torch.nn.Module] = {}  # a dict hides the classifier from state_dict and .to()
        self.quality_metrics: list = []
        self.quality_metrics_stage: str | None = None
        self.predicted_images: list[torch.Tensor] = []

    @property
    def sampler(self) -> Generator:
        return self.generator_ema if self.generator_ema is not None else self.generator

    @torch.no_grad()
    def sample(self, latents: torch.Tensor) -> torch.Tensor:
        """Images `(N, C, S, S)` in [-1, 1] from latents `(N, latent_dim + clusters)`, in eval mode (running BN
        statistics)."""
        sampler, was_training = self.sampler, self.sampler.training
        sampler.eval()
        images = sampler(latents)
        sampler.train(was_training)
        return images

    def seeded_latents(self, count: int, seed: int) -> torch.Tensor:
        """`count` Gaussian latents, each followed by a drawn cluster code when the model has clusters."""
        noise = torch.Generator().manual_seed(seed)
        latents = torch.randn(count, self.hparams.latent_dim, generator=noise)
        return torch.cat([latents, self.draw_codes(count, noise)], dim=1).to(self.device)

    def draw_codes(self, count: int, noise: torch.Generator) -> torch.Tensor:
        """One-hot cluster codes `(count, clusters)`, drawn as often as the clusters hold training images."""
        if not self.hparams.clusters:
            return torch.zeros(count, 0)
        ids = torch.multinomial(self.cluster_shares.cpu(), count, replacement=True, generator=noise)
        return F.one_hot(ids, self.hparams.clusters).float()

    def cluster_codes(self, images: torch.Tensor) -> torch.Tensor:
        """One-hot codes `(B, clusters)` of the nearest centroid of each image `(B, C, S, S)` in [-1, 1]."""
        pixels = (images.detach().float().flatten(1) + 1) / 2
        nearest = torch.cdist(pixels, self.centroids).argmin(dim=1)
        return F.one_hot(nearest, self.hparams.clusters).float()

    def on_fit_start(self) -> None:
        if self.hparams.clusters and not self.cluster_shares.any():  # a resumed run keeps its clusters
            splits = getattr(self.trainer.datamodule, "splits", {})
            if "train" not in splits:
                raise UserInputError(
                    "model.clusters needs the training images of projects/dcgan's GanImageDataModule; "
                    "use that datamodule or set --model.clusters 0"
                )
            self.fit_clusters(splits["train"][0])

    @torch.no_grad()
    def fit_clusters(self, images: torch.Tensor) -> None:
        """k-means on the pixels of the training images `(N, C, S, S)` (uint8): the centroids, and the share of
        the images nearest to each, which is how often sampling draws that cluster."""
        k = self.hparams.clusters
        if len(images) < k:
            raise UserInputError(
                f"model.clusters is {k} but there are only {len(images)} training images; use fewer clusters"
            )
        pixels = images.flatten(1).float() / 255
        centroids = kmeans(pixels, k, seed=self.hparams.sample_seed)
        nearest = torch.cat([torch.cdist(part, centroids).argmin(dim=1) for part in pixels.split(8192)])
        counts = torch.bincount(nearest, minlength=k).float()
        self.centroids.copy_(centroids)
        self.cluster_shares.copy_(counts / counts.sum())

    # ---- training ----

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real, _ = batch  # (B, C, S, S) in [-1, 1]
        generator_optimizer, discriminator_optimizer = self.optimizers()
        latents = torch.randn(len(real), self.hparams.latent_dim, device=self.device)
        codes = self.cluster_codes(real) if self.hparams.clusters else None
        if codes is not None:
            latents = torch.cat([latents, codes], dim=1)  # each fake takes the cluster of a real image
        fake = self.generator(latents)

        self.toggle_optimizer(discriminator_optimizer)
        every = self.hparams.r1_every
        batches_so_far = self.global_step // 2  # manual optimisation counts both optimisers' steps
        regularize = self.hparams.r1_gamma > 0 and batches_so_far % every == 0
        real.requires_grad_(regularize)
        real_logits, fake_logits = self.discriminator(real, codes), self.discriminator(fake.detach(), codes)
        d_loss = discriminator_loss(real_logits, fake_logits, self.hparams.loss)
        total = d_loss
        if regularize:
            penalty = r1_penalty(real, real_logits)
            total = d_loss + self.hparams.r1_gamma / 2 * every * penalty
            self.log("train/r1_penalty", penalty, batch_size=len(real))
        discriminator_optimizer.zero_grad(set_to_none=True)
        self.manual_backward(total)
        discriminator_optimizer.step()
        self.untoggle_optimizer(discriminator_optimizer)

        self.toggle_optimizer(generator_optimizer)  # freezes the discriminator: no wasted gradients
        g_loss = generator_loss(self.discriminator(fake, codes), self.hparams.loss)
        generator_optimizer.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        generator_optimizer.step()
        self.untoggle_optimizer(generator_optimizer)
        self.update_ema()
        for scheduler in self.lr_schedulers() or []:
            scheduler.step()

        self.log_dict(
            {
                "train/d_loss": d_loss,
                "train/g_loss": g_loss,
                # D's mean belief that real (fake) images are real.
                "train/d_real": real_logits.detach().sigmoid().mean(),
                "train/d_fake": fake_logits.detach().sigmoid().mean(),
            },
            prog_bar=True,
            batch_size=len(real),
        )

    @torch.no_grad()
    def update_ema(self) -> None:
        if self.generator_ema is None:
            return
        # Warm-up (as TensorFlow's ExponentialMovingAverage): early on the average must not cling to the random init.
        updates = self.global_step // 2  # manual optimisation counts both optimisers' steps
        decay = min(self.hparams.ema_decay, (1 + updates) / (10 + updates))
        for average, current in zip(
            self.generator_ema.parameters(), self.generator.parameters(), strict=True
        ):
            average.lerp_(current, 1 - decay)

    @torch.no_grad()
    def refresh_sampler_statistics(self, batches: int = 8, batch_size: int = 256) -> None:
        """Measure the EMA generator's batch-norm statistics on its own outputs (BigGAN's "standing statistics"):
        the training generator's running statistics do not fit the averaged weights."""
        if self.generator_ema is None:
            return
        norms = [
            module for module in self.generator_ema.modules() if isinstance(module, torch.nn.BatchNorm2d)
        ]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a plain average over the batches below
        self.generator_ema.train()
        for index in range(batches):
            self.generator_ema(self.seeded_latents(batch_size, self.hparams.sample_seed - 1 - index))
        for norm in norms:
            norm.momentum = 0.1
        self.generator_ema.eval()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # A checkpoint restores only into a run whose data settings shaped the same weights.
        require_same_hparams(checkpoint, self.hparams, ("image_channels", "image_size"))

    def configure_optimizers(self):
        generator = torch.optim.Adam(
            self.generator.parameters(), lr=self.hparams.generator_lr, betas=self.hparams.betas
        )
        discriminator = torch.optim.Adam(
            self.discriminator.parameters(), lr=self.hparams.discriminator_lr, betas=self.hparams.betas
        )
        if self.hparams.decay_after is None:
            return [generator, discriminator]
        total = self.trainer.estimated_stepping_batches  # batches: manual optimisation steps once per batch
        if total == float("inf"):
            raise UserInputError(
                "model.decay_after needs a known number of training batches; set trainer.max_epochs"
            )
        hold = self.hparams.decay_after * total

        def factor(batch: int) -> float:  # the peak until `hold` batches, then linearly to 0 after the last
            return max(0.0, min(1.0, (total - batch) / max(1.0, total - hold)))

        schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, factor) for opt in (generator, discriminator)]
        return [generator, discriminator], schedulers

    # ---- sample quality (validation and test) ----

    def setup(self, stage: str) -> None:
        monitor = getattr(self.trainer.checkpoint_callback, "monitor", None) or ""
        if stage == "fit" and monitor.startswith("val/classifier") and not self.classifier_checkpoint:
            raise UserInputError(
                f"checkpoint.monitor is {monitor} but model.classifier_checkpoint is not set; pass a classifier "
                "checkpoint, or --checkpoint.monitor null to keep only the last checkpoint"
            )
        strategy = self.trainer.strategy
        if stage == "fit" and isinstance(strategy, DDPStrategy):
            # Each backward pass trains one network: the other is detached or frozen, so it gets no gradient,
            # which DDP must be told (else "parameters that were not used"; Lightning issue #20328). Set here,
            # before the strategy wraps the module, so that `--trainer.strategy ddp` works as it does elsewhere.
            strategy._ddp_kwargs["find_unused_parameters"] = True
        # Loaded here, before any training, so a bad path fails at once.
        wanted = stage in ("fit", "validate", "test") and self.classifier_checkpoint
        if wanted and "classifier" not in self.frozen:
            self.frozen["classifier"] = load_image_classifier(self.classifier_checkpoint)

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
                "No sample-quality metric: set model.classifier_checkpoint (offline) or model.inception_weights"
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

    # ---- media ----

    def on_train_epoch_end(self) -> None:
        """The fixed-latent grid (compare it across epochs) and a latent interpolation grid."""
        self.refresh_sampler_statistics()
        fixed = self.fixed_latents
        codes = self.draw_codes(len(fixed), torch.Generator().manual_seed(self.hparams.sample_seed)).to(
            self.device
        )
        grid = self.sample(torch.cat([fixed, codes], dim=1))
        media.log_image_grid(self.trainer, "samples/fixed_latents", grid, nrow=8)
        rows = min(4, len(fixed) // 2)
        steps = self.hparams.interpolation_steps
        paths = [
            torch.cat(
                [slerp(fixed[2 * row], fixed[2 * row + 1], steps), codes[2 * row].expand(steps, -1)], dim=1
            )
            for row in range(rows)
        ]
        media.log_image_grid(self.trainer, "samples/interpolation", self.sample(torch.cat(paths)), nrow=steps)

    # ---- predict: PNG files and a grid ----

    def on_predict_epoch_start(self) -> None:
        self.predicted_images = []

    def predict_step(self, batch: torch.Tensor, batch_idx: int) -> list[dict]:
        """`batch`: indices of the samples to generate; sample i always comes from the same latent."""
        latents = torch.cat(
            [self.seeded_latents(1, self.hparams.sample_seed + 10_000 + int(i)) for i in batch]
        )
        images = self.sample(latents).float().cpu()
        folder = self._sample_dir()
        rows = []
        for index, image in zip(batch.tolist(), images, strict=True):
            path = folder / f"sample_{index:05d}.png"
            save_image(image, path, normalize=True, value_range=(-1, 1))
            rows.append({"index": index, "file": str(path)})
        self.predicted_images.append(images)
        return rows

    def on_predict_epoch_end(self) -> None:
        images = torch.cat(self.predicted_images)[:64]
        path = self._sample_dir() / "grid.png"
        save_image(images, path, nrow=8, normalize=True, value_range=(-1, 1), padding=2, pad_value=1.0)
        rank_zero_info(f"Wrote {len(torch.cat(self.predicted_images))} samples and {path}")

    def _sample_dir(self) -> Path:
        folder = Path(self.sample_dir) if self.sample_dir else run_directory(self.trainer) / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
