"""The DCGAN LightningModule: adversarial training with two optimisers, sample-quality metrics, sample media."""

from typing import Literal

import torch
from lightning.pytorch import LightningModule

from common.errors import UserInputError
from common.pretrained import require_same_hparams
from projects.dcgan.clusters import cluster_codes, draw_codes, fit_clusters
from projects.dcgan.ema import GeneratorEMA
from projects.dcgan.evaluation import SampleQualityEvaluation
from projects.dcgan.losses import discriminator_loss, generator_loss, r1_penalty
from projects.dcgan.model import Discriminator, Generator
from projects.dcgan.outputs import SampleOutputs


def check_options(options) -> None:
    """A one-line error for each option out of its range, before anything is built."""
    for network in ("generator", "discriminator"):
        if options[f"{network}_extra_convs"] < 0:
            raise UserInputError(
                f"model.{network}_extra_convs is {options[f'{network}_extra_convs']}; it counts convolutions, so "
                "use 0 or more"
            )
    if options.r1_gamma > 0 and options.discriminator_norm == "batch":
        raise UserInputError(
            "model.r1_gamma needs a discriminator without batch norm (it would mix the per-image gradients "
            "across the batch); set --model.discriminator_norm none (or spectral)"
        )
    if options.decay_after is not None and not 0 <= options.decay_after < 1:
        raise UserInputError(
            f"model.decay_after is {options.decay_after}; it is a share of the training batches, so use "
            "0 <= x < 1 (or null for constant learning rates)"
        )
    if options.judge_steps < 0:
        raise UserInputError(
            f"model.judge_steps is {options.judge_steps}; use 0 (no judge) or a number of steps"
        )
    if options.clusters < 0:
        raise UserInputError(
            f"model.clusters is {options.clusters}; use 0 (unconditional) or a number of clusters"
        )
    if options.r1_every < 1:
        raise UserInputError(
            f"model.r1_every is {options.r1_every}; it counts discriminator steps, so use 1 or more"
        )


class DCGAN(SampleQualityEvaluation, SampleOutputs, LightningModule):
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
        generator_extra_convs: 3x3 convolutions at the generator's smallest resolution (see `model.py`).
        discriminator_extra_convs: 3x3 convolutions at the discriminator's smallest resolution, before its logit.
        clusters: condition both networks on one of this many k-means clusters of the training pixels (labels are
            not used; `clusters.py`); the discriminator adds a per-cluster projection of its features to the logit
            (Miyato and Koyama, 2018). 0 (the paper's): unconditional.
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
        ema_decay: sample from an exponential moving average of the generator weights with this decay (`ema.py`);
            None (the paper's) samples from the trained generator.
        classifier_checkpoint: checkpoint of a classifier trained by `projects/image_classifier` on the same
            data, for `val/classifier_fd` (the monitored metric), its real floor and class coverage.
        judge_steps: without `classifier_checkpoint`, those metrics use a small CNN trained for this many steps on
            the labelled training images (`judge.py`, cached beside the data); 0: no classifier metrics.
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
        judge_steps: int = 300,
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
        check_options(self.hparams)
        self.generator = Generator(
            latent_dim,
            image_channels,
            image_size,
            generator_width,
            extra_convs=generator_extra_convs,
            clusters=clusters,
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
        self.generator_ema = GeneratorEMA(self.generator, ema_decay) if ema_decay is not None else None
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

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from latents: the inference function that `common.export` exports."""
        return self.sample(latents)

    def example_inputs(self, batch_size: int) -> tuple[torch.Tensor]:
        return (self.seeded_latents(batch_size, self.hparams.sample_seed).cpu(),)

    def export_metadata(self) -> dict:
        hp = self.hparams
        codes = f", then a one-hot code of {hp.clusters} clusters" if hp.clusters else ""
        return {
            "inputs": [{"name": "latents", "shape": ["batch", hp.latent_dim + hp.clusters], "dtype": "float32",
                        "preprocessing": f"{hp.latent_dim} standard normal values{codes}"}],
            "outputs": [{"name": "output", "shape": ["batch", hp.image_channels, hp.image_size, hp.image_size],
                         "meaning": "images in [-1, 1]; pixels = (output + 1) * 127.5"}],
        }  # fmt: skip

    def seeded_latents(self, count: int, seed: int) -> torch.Tensor:
        """`count` Gaussian latents, each followed by a drawn cluster code when the model has clusters."""
        noise = torch.Generator().manual_seed(seed)
        latents = torch.randn(count, self.hparams.latent_dim, generator=noise)
        return torch.cat([latents, self.draw_codes(count, noise)], dim=1).to(self.device)

    def draw_codes(self, count: int, noise: torch.Generator) -> torch.Tensor:
        """One-hot cluster codes `(count, clusters)`, drawn as often as the clusters hold training images."""
        return draw_codes(self.cluster_shares if self.hparams.clusters else torch.zeros(0), count, noise)

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
        """k-means on the pixels of the training images `(N, C, S, S)` (uint8)."""
        if len(images) < self.hparams.clusters:
            raise UserInputError(
                f"model.clusters is {self.hparams.clusters} but there are only {len(images)} training images; "
                "use fewer clusters"
            )
        centroids, shares = fit_clusters(images, self.hparams.clusters, seed=self.hparams.sample_seed)
        self.centroids.copy_(centroids)
        self.cluster_shares.copy_(shares)

    # ---- training ----

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real, _ = batch  # (B, C, S, S) in [-1, 1]
        generator_optimizer, discriminator_optimizer = self.optimizers()
        latents = torch.randn(len(real), self.hparams.latent_dim, device=self.device)
        codes = cluster_codes(real, self.centroids) if self.hparams.clusters else None
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
        if self.generator_ema is not None:
            self.generator_ema.update_parameters(self.generator)
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

    def refresh_sampler_statistics(self, batches: int = 8, batch_size: int = 256) -> None:
        """The EMA generator's batch-norm statistics, measured on its own samples (seeds apart from all others)."""
        if self.generator_ema is not None:
            seeds = [self.hparams.sample_seed - 1 - index for index in range(batches)]
            self.generator_ema.refresh_statistics([self.seeded_latents(batch_size, seed) for seed in seeds])

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
