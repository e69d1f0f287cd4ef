"""VAE: the bounds against closed forms, binarisation, every data path, bad input, learning, and the documented
commands through the real CLI."""

import csv
import math
from pathlib import Path

import pytest
import torch
from conftest import require_data
from PIL import Image

from common.errors import UserInputError
from projects.vae.bounds import (
    bernoulli_log_likelihood,
    elbo_terms,
    gaussian_kl,
    importance_weighted_bound,
    log_weights,
    logistic_log_likelihood,
)
from projects.vae.data import VaeDataModule
from projects.vae.model import MLPVAE, ConvVAE
from projects.vae.module import VariationalAutoencoder
from projects.vae.train import main

REPO = Path(__file__).resolve().parents[1]
QUICK = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


class LinearGaussian(torch.nn.Module):
    """x | z ~ Bernoulli(sigmoid(w z + b)) with q(z | x) fixed: every term has a closed form to check against."""

    latent_dim = 1

    def __init__(self, mean: float, log_var: float) -> None:
        super().__init__()
        self.mean, self.log_var = mean, log_var

    def encode(self, images):
        shape = (len(images), 1)
        return torch.full(shape, self.mean), torch.full(shape, self.log_var)

    def decode(self, latents):
        return torch.zeros(len(latents), 1, 2, 2)  # p = 0.5 for every pixel, whatever z is


def test_the_kl_term_is_the_closed_form_of_torch_distributions():
    mean, log_var = torch.randn(5, 3), torch.randn(5, 3)
    posterior = torch.distributions.Normal(mean, (0.5 * log_var).exp())
    expected = torch.distributions.kl_divergence(posterior, torch.distributions.Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(gaussian_kl(mean, log_var), expected, atol=1e-5)


def test_bounds_of_a_model_whose_likelihood_ignores_z_are_exact():
    # log p(x) = 4 log 0.5 for every image; the ELBO falls short of it by exactly KL(q || p).
    # q wider than the prior, so the weights p(z) / q(z) are bounded and their mean converges fast.
    network, images = LinearGaussian(mean=0.3, log_var=0.4), torch.ones(3, 1, 2, 2)
    log_likelihood, kl = elbo_terms(network, images, "bernoulli")
    assert torch.allclose(log_likelihood, torch.full((3,), 4 * math.log(0.5)))
    assert torch.allclose(kl, gaussian_kl(torch.tensor([0.3]), torch.tensor([0.4])).expand(3))
    # With many samples the importance-weighted bound reaches log p(x) itself (each weight is p(x) p(z) / q(z)).
    torch.manual_seed(0)
    bound = importance_weighted_bound(network, images, samples=20000, likelihood="bernoulli")
    assert torch.allclose(bound, torch.full((3,), 4 * math.log(0.5)), atol=0.02)


def test_the_iw_bound_is_the_elbo_at_k_1_and_rises_with_k():
    torch.manual_seed(0)
    network, images = MLPVAE(1, 8, latent_dim=4), torch.rand(64, 1, 8, 8).round()
    torch.manual_seed(1)
    single = log_weights(network, images, 1, "bernoulli")[0]
    torch.manual_seed(1)
    assert torch.allclose(importance_weighted_bound(network, images, 1, "bernoulli"), single)
    # The one-sample weight is the Monte Carlo ELBO; its mean over many draws is the analytic-KL ELBO.
    log_likelihood, kl = elbo_terms(network, images.repeat(200, 1, 1, 1), "bernoulli")
    monte_carlo = log_weights(network, images, 200, "bernoulli").mean()
    assert abs(float((log_likelihood - kl).mean() - monte_carlo)) < 0.1
    means = [
        importance_weighted_bound(network, images, k, "bernoulli").mean().item() for k in (1, 10, 100, 1000)
    ]
    rises = [later - earlier for earlier, later in zip(means, means[1:], strict=False)]
    assert min(rises) > -0.01 and means[-1] > means[0] + 0.1, means  # up to Monte Carlo noise at large k


def test_the_bernoulli_likelihood_is_the_log_probability_of_torch_distributions():
    torch.manual_seed(0)
    logits, images = (
        torch.randn(5, 3, 1, 4, 4) * 4,
        torch.rand(3, 1, 4, 4).round(),
    )  # (K, B, C, S, S), (B, C, S, S)
    expected = (
        torch.distributions.Bernoulli(logits=logits).log_prob(images.expand_as(logits)).flatten(-3).sum(-1)
    )
    assert torch.allclose(bernoulli_log_likelihood(logits, images), expected, atol=1e-4)


def test_the_discretised_logistic_sums_to_one_over_the_256_values():
    values = torch.arange(256, dtype=torch.float32).div(255).view(256, 1, 1, 1)
    parameters = torch.tensor([0.1, -2.0]).view(1, 2, 1, 1).expand(256, 2, 1, 1)  # mean 0.1, scale e^-2
    total = logistic_log_likelihood(parameters, values).exp().sum()
    assert torch.isclose(total, torch.tensor(1.0), atol=1e-4)


def test_dynamic_binarisation_draws_anew_and_the_test_draw_is_fixed():
    data = VaeDataModule(binarize=True)
    data.setup("fit")
    assert set(data.splits["test"][0].unique().tolist()) == {0, 255}
    again = VaeDataModule(binarize=True)
    again.setup("fit")
    assert torch.equal(again.splits["test"][0], data.splits["test"][0])  # the same draw in every run

    class Training:
        training, predicting = True, False

    data.trainer = Training()
    batch = data.splits["train"][0][:64], data.splits["train"][1][:64]
    first, second = data.on_after_batch_transfer(batch, 0)[0], data.on_after_batch_transfer(batch, 0)[0]
    assert set(first.unique().tolist()) == {0.0, 1.0} and not torch.equal(first, second)
    gray = batch[0].float() / 255
    assert abs(first.mean() - gray.mean()) < 0.02  # each pixel is on with its intensity's probability


def test_the_digits_splits_and_an_image_folder_through_data_root(tmp_path, monkeypatch):
    data = VaeDataModule()
    data.setup("fit")
    sizes = {name: len(labels) for name, (_, labels) in data.splits.items()}
    assert sizes == {"test": 179, "val": 161, "train": 1457} and (data.channels, data.image_size) == (1, 8)
    monkeypatch.setenv("DATA_ROOT", str(tmp_path))
    for label in ("circle", "square"):
        (tmp_path / "shapes" / label).mkdir(parents=True)
        for index in range(10):
            Image.new("RGB", (12, 12), color=(20 * index, 0, 0)).save(
                tmp_path / "shapes" / label / f"{index}.png"
            )
    folder = VaeDataModule(dataset="folder", data_dir="$DATA_ROOT/shapes", channels=3, resize_to=8,
                           cache_dir=str(tmp_path / "cache"))  # fmt: skip
    folder.setup("fit")
    assert (folder.channels, folder.image_size, folder.class_names) == (3, 8, ["circle", "square"])


def test_mnist_from_the_data_root():
    root = require_data("mnist")
    data = VaeDataModule(dataset="mnist", data_dir=str(root), binarize=True)
    data.setup("fit")
    assert (
        len(data.splits["test"][1]) == 10000
        and len(data.splits["train"][1]) + len(data.splits["val"][1]) == 60000
    )
    assert (data.channels, data.image_size) == (1, 28)


def test_bad_input_is_one_line(tmp_path):
    (tmp_path / "empty" / "class").mkdir(parents=True)
    with pytest.raises(UserInputError, match="no images found under"):
        VaeDataModule(dataset="folder", data_dir=str(tmp_path / "empty")).setup("fit")
    with pytest.raises(UserInputError, match="needs --data.data_dir"):
        VaeDataModule(dataset="mnist")
    # A checkpoint trained on 8x8 digits refuses 28x28 images instead of failing inside a matmul.
    model = VariationalAutoencoder(network=MLPVAE, channels=1, image_size=8)
    checkpoint = {"hyper_parameters": dict(model.hparams)}
    with pytest.raises(UserInputError, match="trained with image_size=8 but this run has 28"):
        VariationalAutoencoder(network=MLPVAE, channels=1, image_size=28).on_load_checkpoint(checkpoint)


@pytest.mark.parametrize("network", [MLPVAE, ConvVAE], ids=["mlp", "conv"])
@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_the_model_overfits_a_batch(network, objective, single_thread):
    torch.manual_seed(0)
    images = (torch.rand(16, 1, 8, 8) > 0.5).float()
    model = VariationalAutoencoder(network=network, channels=1, image_size=8, objective=objective)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        optimizer.zero_grad()
        loss = model.training_step((images, None), 0)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * 64 * math.log(2)  # random bits cost 44 nats to a model that has not seen them


def test_the_quickstart_learns_then_encodes_and_samples_from_its_checkpoint(tmp_path, single_thread):
    cli = main(
        ["fit", "--config", str(REPO / "configs/vae/quickstart.yaml"), "--trainer.max_epochs=10", *QUICK]
    )
    metrics = cli.trainer.callback_metrics
    assert (
        metrics["test/nll"] < 32 and metrics["test/nll"] <= metrics["test/nelbo"] + 0.05
    )  # 64 ln 2 = 44 knowing nothing
    [run] = Path("runs", "vae").iterdir()
    assert {"val_samples", "val_reconstructions", "val_interpolation"} <= {
        path.name.rsplit("_step", 1)[0] for path in (run / "media").glob("*.png")
    }
    saved = ["--config", str(run / "config.yaml"), "--ckpt_path", str(run / "checkpoints/best.ckpt"), *QUICK]
    main(["predict", *saved, "--data.predict_samples=5"])
    assert sorted(path.name for path in (run / "samples").glob("*.png")) == [f"{i:05d}.png" for i in range(5)]
    (tmp_path / "mine").mkdir()
    for index in range(3):
        Image.new("L", (8, 8), color=80 * index).save(tmp_path / "mine" / f"{index}.png")
    main(["predict", *saved, f"--data.predict_dir={tmp_path / 'mine'}"])
    with (run / "predictions.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 3 and len(rows[0]) == 1 + 16  # the file and its 16 latent means


def test_a_2d_latent_draws_the_latent_space_and_the_manifold(single_thread):
    main(["fit", "--config", str(REPO / "configs/vae/quickstart.yaml"), "--model.network.init_args.latent_dim=2",
          "--trainer.max_epochs=1", "--model.test_samples=10", *QUICK])  # fmt: skip
    [run] = Path("runs", "vae").iterdir()
    names = {path.name.rsplit("_step", 1)[0] for path in (run / "media").glob("*.png")}
    assert {"test_latent_space", "test_manifold"} <= names
