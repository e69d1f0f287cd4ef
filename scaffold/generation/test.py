"""project_name: the bound against closed forms, the data paths, bad input, learning, and the documented commands
through the real CLI."""

import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from common.errors import UserInputError
from projects.project_name.data import ProjectNameDataModule
from projects.project_name.model import VAE
from projects.project_name.module import ProjectNameVAE, gaussian_kl
from projects.project_name.train import main

REPO = Path(__file__).resolve().parents[1]
QUICK = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def test_the_kl_term_is_the_closed_form_of_torch_distributions():
    mean, log_var = torch.randn(5, 3), torch.randn(5, 3)
    posterior = torch.distributions.Normal(mean, (0.5 * log_var).exp())
    prior = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    expected = torch.distributions.kl_divergence(posterior, prior).sum(-1)
    assert torch.allclose(gaussian_kl(mean, log_var), expected, atol=1e-5)
    assert torch.equal(gaussian_kl(torch.zeros(2, 4), torch.zeros(2, 4)), torch.zeros(2))  # the prior itself


def test_a_decoder_that_knows_nothing_costs_log_2_nats_per_pixel():
    model = ProjectNameVAE(network=VAE, channels=1, image_size=8)
    for layer in (model.network.decoder[-1], model.network.encoder[-1]):
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)  # logits 0 (p = 0.5 everywhere), posterior = prior
    reconstruction, kl = model.negative_elbo(torch.randint(0, 2, (4, 1, 8, 8)).float())
    assert torch.allclose(reconstruction, torch.full((4,), 64 * math.log(2))) and torch.equal(
        kl, torch.zeros(4)
    )


def test_the_digits_splits_and_image_shapes():
    data = ProjectNameDataModule()
    data.setup("fit")
    sizes = {name: len(labels) for name, (_, labels) in data.splits.items()}
    assert sizes == {"test": 179, "val": 161, "train": 1457} and sum(sizes.values()) == 1797
    assert (data.channels, data.image_size) == (1, 8) and data.data_source.startswith("digits")
    images, _ = data.on_after_batch_transfer(next(iter(data.train_dataloader())), 0)
    assert (
        images.dtype == torch.float32
        and images.shape == (64, 1, 8, 8)
        and 0 <= images.min() < images.max() <= 1
    )


def test_an_image_folder_through_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_ROOT", str(tmp_path))
    for label in ("circle", "square"):
        (tmp_path / "shapes" / label).mkdir(parents=True)
        for index in range(10):
            Image.new("RGB", (12, 12), color=(20 * index, 0, 0)).save(
                tmp_path / "shapes" / label / f"{index}.png"
            )
    data = ProjectNameDataModule(dataset="folder", data_dir="$DATA_ROOT/shapes", channels=3, resize_to=6,
                                 cache_dir=str(tmp_path / "cache"))  # fmt: skip
    data.setup("fit")
    assert (data.channels, data.image_size) == (3, 6)
    assert sum(len(labels) for _, labels in data.splits.values()) == 20


def test_bad_sources_are_one_line_errors(tmp_path):
    (tmp_path / "empty" / "class").mkdir(parents=True)
    with pytest.raises(UserInputError, match="no images found under"):
        ProjectNameDataModule(dataset="folder", data_dir=str(tmp_path / "empty")).setup("fit")
    with pytest.raises(UserInputError, match="needs --data.data_dir"):
        ProjectNameDataModule(dataset="mnist")
    with pytest.raises(UserInputError, match="MNIST file .* not found"):
        ProjectNameDataModule(dataset="mnist", data_dir=str(tmp_path)).setup("fit")


def test_the_model_overfits_a_batch(single_thread):
    torch.manual_seed(0)
    images = (torch.rand(16, 1, 8, 8) > 0.5).float()
    model = ProjectNameVAE(network=VAE, channels=1, image_size=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        optimizer.zero_grad()
        reconstruction, kl = model.negative_elbo(images)
        loss = (reconstruction + kl).mean()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * 64 * math.log(2)  # random bits cost 44 nats to a model that has not seen them


def test_the_quickstart_learns_then_samples_from_its_checkpoint(single_thread):
    cli = main(["fit", "--config", str(REPO / "configs/project_name/quickstart.yaml"), *QUICK])
    assert cli.trainer.callback_metrics["test/nelbo"] < 30  # nats per 8x8 digit; 64 ln 2 = 44 knowing nothing
    [run] = Path("runs", "project_name").iterdir()
    assert list((run / "media").glob("val_samples_*.png"))
    main(["predict", "--config", str(run / "config.yaml"), "--ckpt_path", str(run / "checkpoints/best.ckpt"),
          "--data.predict_samples=5", *QUICK])  # fmt: skip
    samples = sorted((run / "samples").glob("*.png"))
    assert [path.name for path in samples] == [f"{index:05d}.png" for index in range(5)]
    assert Image.open(samples[0]).size == (8, 8)
