"""Tests for projects/dcgan: networks, adversarial steps, sample-quality metrics, media, CLI errors."""

import json
import math
import multiprocessing
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import require_data
from lightning.pytorch import Callback, Trainer
from torch import nn

from common.errors import UserInputError
from common.pretrained import load_image_classifier
from projects.dcgan.clusters import cluster_codes, kmeans
from projects.dcgan.data import GanImageDataModule
from projects.dcgan.ema import GeneratorEMA
from projects.dcgan.judge import accuracy as judge_accuracy
from projects.dcgan.judge import cached_judge
from projects.dcgan.losses import discriminator_loss, generator_loss, r1_penalty
from projects.dcgan.metrics import ClassifierSampleQuality, InceptionSampleQuality, inception_metrics_or_none
from projects.dcgan.model import Discriminator, Generator, MinibatchStd
from projects.dcgan.module import DCGAN
from projects.dcgan.outputs import slerp
from projects.dcgan.train import main

# A judge of a few steps: the metrics' plumbing without the 300 steps of the default.
TINY = ["--model.generator_width", "8", "--model.discriminator_width", "8", "--model.grid_rows", "1",
        "--model.judge_steps", "20"]  # fmt: skip
TINY_DATA = [
    "--data.image_size",
    "28",
    "--data.batch_size",
    "16",
    "--data.quality_samples",
    "64",
    "--data.eval_batch_size",
    "32",
    "--data.test_samples",
    "64",
]
QUIET = [
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.enable_model_summary",
    "false",
    "--trainer.accelerator",
    "cpu",
]


def fit(*extra: str) -> None:
    main(
        [
            "fit",
            *TINY,
            *TINY_DATA,
            *QUIET,
            "--trainer.max_epochs",
            "1",
            "--trainer.limit_train_batches",
            "2",
            *extra,
        ]
    )


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("norm", ["batch", "spectral", "none"])
def test_shapes_for_every_architecture(size, norm):
    generator = Generator(latent_dim=16, channels=3, image_size=size, width=8)
    images = generator(torch.randn(4, 16))
    assert images.shape == (4, 3, size, size)
    assert images.abs().max() <= 1  # tanh output
    assert Discriminator(3, size, width=8, norm=norm)(images).shape == (4,)
    # Extra 3x3 convolutions keep the smallest resolution, so the last layer still sees its base_size square.
    deeper = Discriminator(3, size, width=8, norm=norm, extra_convs=2)
    assert deeper(images).shape == (4,)
    assert sum(isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) for m in deeper.modules()) == 2
    deeper_generator = Generator(latent_dim=16, channels=3, image_size=size, width=8, extra_convs=2)
    assert deeper_generator(torch.randn(4, 16)).shape == (4, 3, size, size)
    assert sum(isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) for m in deeper_generator.modules()) == 2


def test_minibatch_std_appends_the_spread_within_each_group():
    # Batch 8 in groups of 4: images k, k + 2, k + 4, k + 6 form group k. Group 0 holds 0, 1, 2, 3 (population
    # standard deviation sqrt(1.25)), group 1 four 10s (none).
    features = torch.tensor([0.0, 10, 1, 10, 2, 10, 3, 10]).view(8, 1, 1, 1).expand(8, 1, 2, 2)
    out = MinibatchStd(group_size=4)(features)
    assert out.shape == (8, 2, 2, 2) and torch.equal(out[:, :1], features)
    expected = torch.tensor([math.sqrt(1.25), 1e-4] * 4).view(8, 1, 1, 1).expand(8, 1, 2, 2)
    torch.testing.assert_close(out[:, 1:], expected)
    # A batch that 4 does not divide falls back to the largest group size that does: 6 -> groups of 2.
    assert MinibatchStd(group_size=4)(torch.randn(6, 3, 2, 2)).shape == (6, 4, 2, 2)
    assert Discriminator(1, 28, width=8, norm="none", minibatch_std=True)(
        torch.randn(5, 1, 28, 28)
    ).shape == (5,)


def test_unsupported_image_size_is_a_clear_error():
    with pytest.raises(
        UserInputError, match="image_size 48 is not supported by DCGAN; choose one of \\[28, 32, 64\\]"
    ):
        Generator(16, 1, 48)
    with pytest.raises(SystemExit, match="error: image_size 48 is not supported"):
        main(["fit", "--data.image_size", "48", *QUIET])


def test_unreadable_data_files_are_one_line_errors(tmp_path):
    from PIL import Image

    (tmp_path / "faces" / "smiling").mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(tmp_path / "faces" / "smiling" / "good.png")
    (tmp_path / "faces" / "smiling" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--data.dataset=folder", f"--data.data_dir={tmp_path / 'faces'}", *QUIET])
    assert str(exit_info.value.code).startswith(
        f"error: cannot read image {tmp_path / 'faces' / 'smiling' / 'broken.png'}"
    )
    # MNIST files that exist but are empty (a failed copy): the shared loader names the first one it reads.
    (tmp_path / "mnist").mkdir()
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (tmp_path / "mnist" / name).write_bytes(b"")
    data = GanImageDataModule("mnist", data_dir=str(tmp_path / "mnist"), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(
        UserInputError, match=r"mnist/train-images-idx3-ubyte is not a complete MNIST IDX file"
    ):
        data.setup("fit")


@pytest.mark.parametrize(
    ("option", "message"),
    [("batch_size=0", "batch_size=0 must be at least 1; set --data.batch_size"),
     ("train_subset=0", "train_subset=0 must be at least 1; set --data.train_subset"),
     ("num_workers=-1", "num_workers=-1 must be at least 0; set --data.num_workers")],
)  # fmt: skip
def test_bad_loader_sizes_are_one_line_errors(option, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", f"--data.{option}", *QUIET])
    assert exit_info.value.code == f"error: {message}"


def test_losses_match_hand_computed_values():
    zeros = torch.zeros(5)
    # D(x) = 0.5 everywhere: -log 0.5 for real plus -log 0.5 for fake.
    assert discriminator_loss(zeros, zeros, "non_saturating").item() == pytest.approx(2 * math.log(2))
    assert generator_loss(zeros, "non_saturating").item() == pytest.approx(math.log(2))
    # Hinge: margins met exactly give 0; logits 0 give 1 + 1.
    assert discriminator_loss(torch.ones(3), -torch.ones(3), "hinge").item() == 0
    assert discriminator_loss(zeros, zeros, "hinge").item() == 2
    assert generator_loss(torch.full((3,), 2.0), "hinge").item() == -2


def test_every_parameter_gets_a_gradient():
    module = DCGAN(image_channels=1, image_size=28, latent_dim=8, generator_width=8, discriminator_width=8)
    fake = module.generator(torch.randn(6, 8))
    discriminator_loss(
        module.discriminator(torch.rand(6, 1, 28, 28) * 2 - 1), module.discriminator(fake), "hinge"
    ).backward()
    for name, parameter in [*module.generator.named_parameters(), *module.discriminator.named_parameters()]:
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_r1_penalty_matches_hand_computed_gradients():
    images = torch.randn(3, 1, 2, 2, requires_grad=True)
    weights = torch.tensor([1.0, 2.0, -2.0, 4.0]).view(1, 1, 2, 2)
    # A linear critic has the same gradient, its weights, at every image: squared norm 1 + 4 + 4 + 16.
    assert r1_penalty(images, (images * weights).sum(dim=(1, 2, 3))).item() == pytest.approx(25)
    # x -> |x|^2 has gradient 2x: the penalty is the mean of 4 |x|^2.
    expected = (4 * images.detach().pow(2).sum(dim=(1, 2, 3))).mean().item()
    assert r1_penalty(images, images.pow(2).sum(dim=(1, 2, 3))).item() == pytest.approx(expected)


def test_bad_r1_settings_are_clear_errors():
    with pytest.raises(UserInputError, match="r1_gamma needs a discriminator without batch norm.*none"):
        DCGAN(image_size=28, r1_gamma=1.0, discriminator_norm="batch")
    with pytest.raises(UserInputError, match="model.r1_every is 0; it counts discriminator steps"):
        DCGAN(image_size=28, r1_gamma=1.0, discriminator_norm="none", r1_every=0)


def test_negative_extra_convolutions_are_a_clear_error():
    for network in ("generator", "discriminator"):
        with pytest.raises(
            UserInputError, match=f"model.{network}_extra_convs is -1; it counts convolutions"
        ):
            DCGAN(image_size=28, **{f"{network}_extra_convs": -1})


def test_decay_after_holds_then_decays_both_learning_rates_linearly_to_zero():
    class RecordRates(Callback):
        def __init__(self) -> None:
            self.rates = []

        def on_train_batch_end(self, trainer, module, *args) -> None:
            self.rates.append([optimizer.param_groups[0]["lr"] for optimizer in trainer.optimizers])

    module = DCGAN(image_size=28, latent_dim=8, generator_width=8, discriminator_width=8, grid_rows=1,
                   generator_lr=1e-3, discriminator_lr=2e-3, decay_after=0.5)  # fmt: skip
    record = RecordRates()
    trainer = Trainer(max_epochs=2, limit_train_batches=4, limit_val_batches=0, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", callbacks=[record])  # fmt: skip
    trainer.fit(module, GanImageDataModule(image_size=28, batch_size=16, quality_samples=32))
    # 8 batches, decay from the 4th: the rate after batch b is lr * min(1, (8 - b) / 4).
    expected = [1, 1, 1, 1, 0.75, 0.5, 0.25, 0]
    assert record.rates == [[pytest.approx(1e-3 * f), pytest.approx(2e-3 * f)] for f in expected]
    with pytest.raises(
        UserInputError, match="model.decay_after is 1.0; it is a share of the training batches"
    ):
        DCGAN(image_size=28, decay_after=1.0)


def test_defaults_are_the_papers_recipe():
    module = DCGAN(image_size=28)
    hp = module.hparams
    assert (hp.latent_dim, hp.loss, hp.discriminator_norm, tuple(hp.betas)) == (
        100,
        "non_saturating",
        "batch",
        (0.5, 0.999),
    )
    assert (hp.generator_lr, hp.discriminator_lr, hp.decay_after, hp.ema_decay) == (2e-4, 2e-4, None, None)
    assert (hp.clusters, hp.r1_gamma, hp.minibatch_std, hp.generator_extra_convs, hp.discriminator_extra_convs) == (
        0, 0.0, False, 0, 0)  # fmt: skip
    assert module.generator_ema is None


# Not hinge with spectral norm here: the logit's bias then gets exactly zero gradient (-1 + 1) while
# every logit sits inside the margin, so it would rightly stay put.
@pytest.mark.parametrize(
    ("loss", "norm", "r1_gamma", "minibatch_std", "extra_convs"),
    [
        ("non_saturating", "spectral", 0, False, 0),
        ("hinge", "batch", 0, False, 1),
        ("non_saturating", "none", 10, True, 1),  # the MNIST recipe's networks
    ],
)
def test_manual_optimization_steps_update_both_networks(loss, norm, r1_gamma, minibatch_std, extra_convs):
    module = DCGAN(image_channels=1, image_size=28, latent_dim=8, generator_width=8, discriminator_width=8, loss=loss,
                   discriminator_norm=norm, minibatch_std=minibatch_std, generator_extra_convs=extra_convs,
                   discriminator_extra_convs=extra_convs,
                   r1_gamma=r1_gamma, r1_every=2, ema_decay=0.5, grid_rows=1)  # fmt: skip
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    data = GanImageDataModule(image_size=28, batch_size=16, quality_samples=32)
    trainer = Trainer(max_steps=6, limit_val_batches=0, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")  # fmt: skip
    trainer.fit(module, data)
    changed = {name: not torch.equal(before[name], p) for name, p in module.named_parameters()}
    for prefix in ("generator.", "discriminator.", "generator_ema."):
        assert all(flag for name, flag in changed.items() if name.startswith(prefix)), [
            n for n, f in changed.items() if not f
        ]
    for key in ("train/d_loss", "train/g_loss") + (("train/r1_penalty",) if r1_gamma else ()):
        assert torch.isfinite(trainer.callback_metrics[key])
    assert trainer.fit_loop.epoch_loop.batch_progress.current.completed == 3  # two optimiser steps per batch


def test_generator_ema_warms_up_then_averages_with_its_decay():
    """The first update copies; after n updates the rate is 1 - min(decay, (1 + n) / (10 + n)), by hand."""
    weight = torch.nn.Linear(1, 1, bias=False)
    ema = GeneratorEMA(weight, decay=0.5)
    expected = None
    for value, n in zip([2.0, 4.0, 8.0, 16.0], range(4), strict=True):
        weight.weight.data.fill_(value)
        ema.update_parameters(weight)
        rate = 1 - min(0.5, (1 + n) / (10 + n))  # n = 0, 1: warm-up 1/10, 2/11; then 0.5
        expected = value if expected is None else expected + rate * (value - expected)
        assert ema.module.weight.item() == pytest.approx(expected)
    assert not any(p.requires_grad for p in ema.parameters())  # no optimiser ever writes the average


def test_test_samples_come_from_other_latents_than_the_validation_samples():
    """The best checkpoint is chosen on the validation samples; testing the same ones would flatter it."""
    module = DCGAN(image_size=28, latent_dim=8, generator_width=8, discriminator_width=8, grid_rows=1)
    val = [module.evaluation_latents(500, batch, "val") for batch in range(20)]
    test = [module.evaluation_latents(500, batch, "test") for batch in range(20)]
    torch.testing.assert_close(val[3], module.evaluation_latents(500, 3, "val"))  # the same at every epoch
    pairs = [(a, b) for a in val for b in test] + [(a, b) for i, a in enumerate(val) for b in val[i + 1 :]]
    assert not any(torch.isclose(a, b).all(dim=1).any() for a, b in pairs)


def test_kmeans_finds_the_centres_of_separate_groups():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    offsets = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # mean 0
    points = (centres[:, None] + offsets[None]).flatten(0, 1)  # 12 points, 4 around each centre
    found = kmeans(points, 3, seed=0)
    # k-means numbers the groups in any order (and -4e-16 is not below 0 for this purpose).
    order = sorted(range(3), key=lambda i: found[i].round().tolist())
    torch.testing.assert_close(found[order], centres[[0, 2, 1]])  # (0, 0), (0, 10), (10, 0)
    # Fewer distinct points than clusters: k centroids all the same, not an error.
    torch.testing.assert_close(kmeans(torch.ones(5, 2), 3, seed=0), torch.ones(3, 2))


def test_clusters_condition_both_networks_and_sampling_follows_their_sizes(tmp_path):
    """k-means runs when fitting starts; fakes take their batch's clusters, sampling draws them by size."""
    module = DCGAN(image_size=28, latent_dim=8, generator_width=8, discriminator_width=8, grid_rows=1, clusters=4,
                   discriminator_norm="none", r1_gamma=1.0, r1_every=2)  # fmt: skip
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    data = GanImageDataModule(image_size=28, batch_size=16, quality_samples=32)
    trainer = Trainer(max_steps=6, limit_val_batches=0, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, accelerator="cpu", default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(module, data)
    # The centroids are k-means of the training pixels (same seed), and the shares count their nearest images.
    pixels = data.splits["train"][0].flatten(1).float() / 255
    torch.testing.assert_close(module.centroids, kmeans(pixels, 4, seed=module.hparams.sample_seed))
    nearest = torch.cdist(pixels, module.centroids).argmin(dim=1)
    torch.testing.assert_close(module.cluster_shares, torch.bincount(nearest, minlength=4) / len(pixels))
    assert module.cluster_shares.min() > 0.05  # the digits are not all one cluster
    # A real image's code is its nearest centroid.
    images = data.splits["train"][0][:10].float() / 255 * 2 - 1
    assert cluster_codes(images, module.centroids).argmax(dim=1).tolist() == nearest[:10].tolist()
    # Sampled latents carry one-hot codes, drawn as often as each cluster holds training images.
    latents = module.seeded_latents(20_000, 7)
    assert latents.shape == (20_000, 8 + 4)
    codes = latents[:, 8:]
    assert codes.sum(dim=1).eq(1).all()
    torch.testing.assert_close(codes.mean(dim=0), module.cluster_shares, atol=0.015, rtol=0)
    # Both networks use the code: changing it alone changes the image, and the discriminator's verdict.
    other = latents[:4].clone()
    other[:, 8:] = other[:, 8:].roll(1, dims=1)
    assert not torch.allclose(module.sample(latents[:4]), module.sample(other))
    image = module.sample(latents[:4])
    assert not torch.allclose(
        module.discriminator(image, latents[:4, 8:]), module.discriminator(image, other[:, 8:])
    )
    # Every weight trained, the discriminator's projection included.
    unchanged = [name for name, p in module.named_parameters() if name.startswith(("generator.", "discriminator."))
                 and torch.equal(before[name], p)]  # fmt: skip
    assert not unchanged
    # The checkpoint keeps the clusters: a loaded model samples the same images, and does not cluster again.
    checkpoint = tmp_path / "clusters.ckpt"
    trainer.save_checkpoint(checkpoint)
    loaded = DCGAN.load_from_checkpoint(checkpoint)
    torch.testing.assert_close(loaded.cluster_shares, module.cluster_shares)
    torch.testing.assert_close(
        loaded.sample(loaded.seeded_latents(6, 3)), module.sample(module.seeded_latents(6, 3))
    )


def test_bad_cluster_settings_are_clear_errors():
    with pytest.raises(UserInputError, match="model.clusters is -1; use 0"):
        DCGAN(image_size=28, clusters=-1)
    module = DCGAN(image_size=28, latent_dim=8, generator_width=8, discriminator_width=8, clusters=5)
    with pytest.raises(UserInputError, match="model.clusters is 5 but there are only 3 training images"):
        module.fit_clusters(torch.zeros(3, 1, 28, 28, dtype=torch.uint8))


def test_slerp_ends_on_both_latents():
    start, end = torch.randn(8), torch.randn(8)
    path = slerp(start, end, 5)
    assert path.shape == (5, 8)
    torch.testing.assert_close(path[0], start)
    torch.testing.assert_close(path[-1], end)


class PixelClassifier(nn.Module):
    """Toy classifier: features are the raw pixels; class 0 when the mean pixel exceeds 0.5, else class 1."""

    class_names = ["bright", "dark"]

    def embed(self, images):
        return images.flatten(1)

    def forward(self, images):
        brightness = images.mean(dim=(1, 2, 3))
        return torch.stack([brightness - 0.5, 0.5 - brightness], dim=1) * 100


def test_classifier_metrics_are_zero_for_identical_sets_and_grow_with_a_shift():
    images = torch.rand(400, 1, 2, 2) * 0.5  # dark images, 4 features
    metric = ClassifierSampleQuality(PixelClassifier(), (1, 2, 2))
    for kind in ("reference", "heldout", "generated"):
        metric.update(images, kind)
    values = metric.compute()
    assert values["classifier_fd"] == pytest.approx(0, abs=1e-3)
    assert values["classifier_fd_real_floor"] == pytest.approx(0, abs=1e-3)
    assert values["confident_share"] == values["confident_share_real"] == 1.0
    assert metric.class_shares() == {"bright": 0.0, "dark": 1.0}

    metric.reset()  # keeps the reference and the floor; a shift of 0.3 in each of 4 features: 4 * 0.3^2
    metric.update(images[:200] + 0.3, "generated")
    metric.update(images[200:], "generated")
    values = metric.compute()
    assert values["classifier_fd"] > 0.05
    metric.reset()
    metric.update(images + 0.3, "generated")
    assert metric.compute()["classifier_fd"] == pytest.approx(4 * 0.3**2, abs=1e-3)


def test_reference_statistics_use_every_reference_batch_and_are_then_kept():
    torch.manual_seed(0)
    reference, generated = torch.rand(400, 1, 2, 2), torch.rand(400, 1, 2, 2) * 0.8
    whole, batched = (ClassifierSampleQuality(PixelClassifier(), (1, 2, 2)) for _ in range(2))
    whole.update(reference, "reference")
    for part in reference.split(150):  # as the reference dataloader delivers it
        batched.update(part, "reference")
    for metric in (whole, batched):
        metric.update(reference, "heldout")
        metric.update(generated, "generated")
    expected = whole.compute()
    assert batched.compute() == pytest.approx(expected)
    batched.reset()  # the next validation: its reference batches no longer change the statistics
    batched.update(reference + 5, "reference")
    batched.update(generated, "generated")
    assert batched.compute() == pytest.approx(expected)


BRIGHT, DARK = torch.full((4, 1, 2, 2), 0.9), torch.full((4, 1, 2, 2), 0.1)
REAL = torch.linspace(0, 1, 64).view(16, 1, 2, 2)


def quality_in_one_of_two_processes(rank: int, folder: Path) -> None:
    """Half of every set in each of two gloo processes, as DDP's samplers split them; writes what it computes."""
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{folder / 'rendezvous'}", rank=rank, world_size=2
    )
    metric = ClassifierSampleQuality(PixelClassifier(), (1, 2, 2))
    metric.update(REAL[rank::2], "reference")
    metric.update(REAL[rank::2], "heldout")
    metric.update(BRIGHT if rank == 0 else DARK, "generated")  # all bright samples on one process
    (folder / f"rank{rank}.json").write_text(
        json.dumps({**metric.compute(), "shares": metric.class_shares()})
    )
    torch.distributed.destroy_process_group()


def test_sample_quality_over_two_processes_matches_one_process(tmp_path):
    context = multiprocessing.get_context("spawn")  # a fork after torch's thread pools start can hang
    processes = [
        context.Process(target=quality_in_one_of_two_processes, args=(rank, tmp_path)) for rank in (0, 1)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
        assert process.exitcode == 0
    single = ClassifierSampleQuality(PixelClassifier(), (1, 2, 2))
    for kind, images in (("reference", REAL), ("heldout", REAL), ("generated", torch.cat([BRIGHT, DARK]))):
        single.update(images, kind)
    expected = single.compute()
    for rank in (0, 1):  # both processes log the figures of the whole sets
        computed = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert computed.pop("shares") == {"bright": 0.5, "dark": 0.5}
        assert computed == pytest.approx(expected, abs=1e-6)


class ProjectedPixelClassifier(PixelClassifier):
    """PixelClassifier whose features go through a linear layer, which autocast would run in bf16."""

    def __init__(self):
        super().__init__()
        self.projection = nn.Linear(4, 4)

    def embed(self, images):
        return self.projection(images.flatten(1))


def test_classifier_metrics_ignore_the_training_precision():
    # A bf16-mixed validation step runs the metric inside autocast; its features must stay float32.
    torch.manual_seed(0)
    classifier = ProjectedPixelClassifier()
    reference, generated = torch.rand(300, 1, 2, 2), torch.rand(300, 1, 2, 2) * 0.9
    results = []
    for autocast in (False, True):
        metric = ClassifierSampleQuality(classifier, (1, 2, 2))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            for kind, images in (("reference", reference), ("heldout", reference), ("generated", generated)):
                metric.update(images, kind)
        results.append(metric.compute()["classifier_fd"])
    assert results[0] > 1e-3
    assert results[1] == pytest.approx(results[0], rel=1e-6)


def test_class_coverage_counts_confident_samples_per_class():
    metric = ClassifierSampleQuality(PixelClassifier(), (1, 2, 2))
    metric.update(torch.rand(10, 1, 2, 2), "reference")
    metric.update(torch.rand(10, 1, 2, 2), "heldout")
    # 3 bright, 1 dark, and 1 ambiguous (mean 0.5 exactly: probabilities 0.5/0.5, not confident).
    generated = torch.tensor([0.9, 0.8, 0.7, 0.1, 0.5]).view(5, 1, 1, 1).expand(5, 1, 2, 2)
    metric.update(generated, "generated")
    values = metric.compute()
    assert values["confident_share"] == pytest.approx(4 / 5)
    assert metric.class_shares() == {"bright": pytest.approx(4 / 5), "dark": pytest.approx(1 / 5)}
    assert (values["class_share_min"], values["class_share_max"]) == (pytest.approx(0.2), pytest.approx(0.8))


def test_inception_metrics_are_skipped_without_weights_and_checked_with_them(tmp_path, capsys):
    assert inception_metrics_or_none(None) is None
    with pytest.raises(UserInputError, match="torch-fidelity|Inception weights .* not found"):
        InceptionSampleQuality(str(tmp_path / "missing.pth"))


def untrained_inception_weights(path: Path) -> Path:
    """Write torch-fidelity's FID Inception-v3 with random weights, in the .pth form of the real ones.

    The real weights cannot be downloaded here; the network, its weight loading and its input handling are
    torch-fidelity's own. Convolutions get He initialisation so that features neither vanish nor explode
    through the network's depth.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Untrained(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, *args, **kwargs):  # keep the random initialisation
            return super().load_state_dict(self.state_dict())

    empty = path.with_suffix(".empty")
    torch.save({}, empty)
    torch.manual_seed(0)
    network = Untrained("inception-v3-compat", ["2048"], str(empty))
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(network.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory) -> Path:
    return untrained_inception_weights(tmp_path_factory.mktemp("inception") / "pt_inception.pth")


def test_inception_metrics_on_torch_fidelity_network(inception_weights):
    metric = InceptionSampleQuality(
        str(inception_weights), kid_subset_size=1000, kid_subsets=5, feature_size=64
    )
    images = torch.rand(100, 1, 8, 8)
    for part in images.split(40):
        metric.update(part, "reference")
    metric.update(images, "heldout")  # not used by FID/KID
    metric.update(images, "generated")
    same = metric.compute()
    assert metric.kid.subset_size == 100  # capped by the sample counts: every reference batch counted
    metric.reset()
    metric.update(images.flip(0), "reference")  # ignored: the reference is complete
    metric.update((images + 0.3).clamp(max=1), "generated")
    shifted = metric.compute()
    assert abs(same["fid"]) < 1e-3 and shifted["fid"] > 1 and shifted["kid"] > same["kid"]


def test_classifier_checkpoint_errors_are_one_line(tmp_path):
    with pytest.raises(UserInputError, match="checkpoint .*missing.ckpt not found"):
        load_image_classifier(tmp_path / "missing.ckpt")
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(UserInputError, match="cannot read checkpoint"):
        load_image_classifier(corrupt)
    with pytest.raises(SystemExit, match="error: checkpoint .*missing.ckpt not found"):
        fit("--model.classifier_checkpoint", str(tmp_path / "missing.ckpt"), "--checkpoint.monitor", "null")


def test_monitoring_the_classifier_metric_without_a_classifier_is_a_clear_error():
    with pytest.raises(
        SystemExit, match="error: checkpoint.monitor is val/classifier_fd but there is no classifier"
    ):
        fit("--model.judge_steps", "0")


def test_the_judge_learns_the_digits_and_leaves_the_run_random_state_alone(tmp_path):
    data = GanImageDataModule("digits", image_size=28, cache_dir=str(tmp_path))
    data.setup("fit")
    (images, labels), (heldout, heldout_labels) = data.splits["train"], data.splits["heldout"]
    torch.manual_seed(3)
    before = torch.get_rng_state()
    judge = cached_judge(images, labels, data.class_names, 300, tmp_path)
    assert torch.equal(torch.get_rng_state(), before)  # a resumed run draws what it would have
    assert judge.class_names == [str(digit) for digit in range(10)] and judge.input_size == 28
    assert judge_accuracy(judge, heldout, heldout_labels) >= 0.95  # chance is 0.1
    [cached] = tmp_path.glob("judge-*.pt")
    again = cached_judge(images, labels, data.class_names, 300, tmp_path)  # loaded, not trained again
    assert torch.equal(torch.get_rng_state(), before)
    assert cached.stat().st_mtime_ns == next(tmp_path.glob("judge-*.pt")).stat().st_mtime_ns
    assert all(
        torch.equal(a, b)
        for a, b in zip(judge.state_dict().values(), again.state_dict().values(), strict=True)
    )


def test_a_fit_without_a_classifier_checkpoint_is_judged_and_keeps_its_best_checkpoint(tmp_path):
    fit("--trainer.max_epochs", "2")
    metrics = pd.read_csv(next((tmp_path / "runs" / "dcgan").glob("*/metrics.csv")))
    quality = metrics.dropna(subset=["val/classifier_fd"])
    assert (
        len(quality) == 2 and (quality["val/classifier_fd"] > quality["val/classifier_fd_real_floor"]).all()
    )
    assert list((tmp_path / "runs" / "dcgan").glob("*/checkpoints/best.ckpt"))


def test_fit_writes_sample_grids_and_predict_writes_pngs(tmp_path):
    fit("--checkpoint.monitor", "null", "--trainer.max_epochs", "2")
    run = tmp_path / "runs" / "dcgan" / "version_0"
    assert len(list((run / "media").glob("samples_fixed_latents_step*.png"))) == 2  # one per epoch
    assert list((run / "media").glob("samples_interpolation_step*.png"))
    checkpoint = run / "checkpoints" / "last.ckpt"
    main(["predict", *TINY, *TINY_DATA, *QUIET, "--ckpt_path", str(checkpoint), "--data.predict_samples", "5",
          "--model.sample_dir", str(tmp_path / "samples")])  # fmt: skip
    assert sorted(path.name for path in (tmp_path / "samples").iterdir()) == [
        "grid.png",
        *[f"sample_{index:05d}.png" for index in range(5)],
    ]
    rows = pd.read_csv(next((tmp_path / "runs" / "dcgan").glob("version_0/predictions.csv")))  # into the run
    assert list(rows["index"]) == [0, 1, 2, 3, 4]


@pytest.fixture
def digits_classifier(tmp_path) -> Path:
    """A classifier trained for a few steps by the image-classifier project's own CLI."""
    from projects.image_classifier.train import main as classifier_main

    classifier_main(["fit", "--config", str(Path(__file__).parents[1] / "configs/image_classifier/digits.yaml"), *QUIET,
                     "--trainer.max_steps", "3", "--trainer.limit_val_batches", "1", "--trainer.callbacks", "[]"])  # fmt: skip
    return next((tmp_path / "runs" / "image_classifier").glob("*/checkpoints/last.ckpt"))


def test_fit_with_a_trained_classifier_logs_sample_quality(tmp_path, digits_classifier):
    classifier = load_image_classifier(digits_classifier)
    assert classifier.input_size == 8 and len(classifier.class_names) == 10
    fit("--model.classifier_checkpoint", str(digits_classifier), "--trainer.max_epochs", "2")
    metrics = pd.read_csv(next((tmp_path / "runs" / "dcgan").glob("*/metrics.csv")))
    quality = metrics.dropna(subset=["val/classifier_fd"])
    assert len(quality) == 2  # one row per epoch; the sanity check is not measured
    assert (quality["val/classifier_fd"] > quality["val/classifier_fd_real_floor"]).all()
    assert quality["val/classifier_fd_real_floor"].nunique() == 1  # computed once, from fixed real sets
    assert quality["val/confident_share"].between(0, 1).all()
    assert list((tmp_path / "runs" / "dcgan").glob("*/checkpoints/best.ckpt"))  # monitored val/classifier_fd
    tested = metrics.dropna(subset=["test/classifier_fd"])  # test after fit, on the test-sized sets
    assert len(tested) == 1 and tested["test/class_share/0"].between(0, 1).all()


def test_fit_with_inception_weights_logs_fid_and_kid(tmp_path, inception_weights):
    # The module's FID/KID path end to end: torch-fidelity's network built from a weights file, 2048 features.
    fit("--model.inception_weights", str(inception_weights), "--checkpoint.monitor", "val/fid",
        "--data.quality_samples", "32", "--data.test_samples", "32")  # fmt: skip
    metrics = pd.read_csv(next((tmp_path / "runs" / "dcgan").glob("*/metrics.csv")))
    for stage in ("val", "test"):
        row = metrics.dropna(subset=[f"{stage}/fid"])
        assert len(row) == 1 and row[f"{stage}/fid"].gt(0).all() and row[f"{stage}/kid"].notna().all()
    assert list((tmp_path / "runs" / "dcgan").glob("*/checkpoints/best.ckpt"))  # chosen by val/fid


@pytest.mark.slow
def test_mnist_from_data_root(tmp_path):
    mnist = require_data("mnist/train-images-idx3-ubyte.gz").parent
    data = GanImageDataModule(
        dataset="mnist", data_dir=str(mnist), image_size=32, cache_dir=str(tmp_path / "cache")
    )
    data.setup("fit")
    assert data.splits["train"][0].shape == (60000, 1, 32, 32)
    assert data.splits["heldout"][0].shape == (10000, 1, 32, 32)
    images, labels = next(iter(data.val_dataloader()[0]))
    images, labels = data.on_after_batch_transfer((images, labels), 0)
    assert images.min() >= -1 and images.max() <= 1 and labels.max() == 9
