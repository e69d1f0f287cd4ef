"""The image classifier through its real CLI: every data path, learning, media, W&B and bad input (DDP: test_ddp.py)."""

import csv
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import REPO
from lightning.pytorch import LightningModule, Trainer
from PIL import Image
from wandb_records import config_and_summary

from common.errors import UserInputError
from common.optim import warmup_schedule
from projects.image_classifier import data as image_data
from projects.image_classifier.callbacks import Lookahead
from projects.image_classifier.data import ImageDataModule, random_crop
from projects.image_classifier.model import CompactConvNet, ResNet18
from projects.image_classifier.module import ImageClassifier
from projects.image_classifier.optim import Muon, orthogonalize
from projects.image_classifier.train import main

DIGITS = str(REPO / "configs/image_classifier/digits.yaml")
SHORT = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
         "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]  # fmt: skip
TINY_RESNET = ["--model.network=projects.image_classifier.model.ResNet18", "--model.network.width=4"]


def write_image_folder(root, classes=("cat", "dog"), per_class=6, size=12, test=True):
    """A tiny ImageFolder tree: class 0 dark PNGs, class 1 bright JPEGs, so the classes are learnable."""
    rng = np.random.default_rng(0)
    for split in ("train", "test") if test else ("train",):
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for index in range(per_class):
                pixels = rng.integers(0, 100, (size, size, 3)) + 150 * label
                suffix = ".jpg" if label % 2 else ".png"
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{index}{suffix}")
    return root


def run_dirs(project="image_classifier"):
    from pathlib import Path

    return sorted(Path("runs", project).iterdir())


@pytest.mark.parametrize("network", [[], TINY_RESNET], ids=["compact", "resnet18"])
def test_fast_dev_run_each_model(network):
    cli = main(["fit", "--config", DIGITS, "--trainer.fast_dev_run=true", *network])
    assert "test/acc" in cli.trainer.callback_metrics  # fit, then test through the same CLI run


@pytest.mark.parametrize(
    "network", [CompactConvNet, lambda c, k: ResNet18(c, k, width=4)], ids=["compact", "resnet18"]
)
def test_every_parameter_receives_a_gradient(network):
    model = network(3, 10)
    logits = model(torch.randn(4, 3, 16, 16))
    assert logits.shape == (4, 10) and torch.isfinite(logits).all()
    logits.logsumexp(dim=-1).sum().backward()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("optimizer", ["sgd", "muon"])
def test_overfits_a_small_batch(optimizer):
    cli = main(["fit", "--config", DIGITS, "--trainer.overfit_batches=1", "--trainer.max_epochs=30", f"--model.optimizer={optimizer}",
                "--data.batch_size=32", "--data.crop_padding=0", "--model.label_smoothing=0", "--test_after_fit=false",
                "--trainer.enable_progress_bar=false", "--trainer.limit_val_batches=0"])  # fmt: skip
    assert cli.trainer.callback_metrics["train/acc"] == 1.0
    assert (
        cli.trainer.callback_metrics["train/loss_epoch"] < 1.0
    )  # chance: ln(10) = 2.3; logits are scaled by 1/9


def test_weight_ema_is_what_gets_tested():
    ema = [
        "--trainer.callbacks+=lightning.pytorch.callbacks.EMAWeightAveraging",
        "--trainer.callbacks.decay=0.5",
    ]
    cli = main(["fit", "--config", DIGITS, "--config", str(REPO / "configs/logger/csv.yaml"), *SHORT, *ema])
    checkpoint = torch.load(run_dirs()[-1] / "checkpoints" / "best.ckpt", weights_only=True)
    tested = cli.model.state_dict()
    averaged, raw = checkpoint["state_dict"], checkpoint["current_model_state"]
    name = "network.head.weight"
    assert torch.equal(tested[name], averaged[name]) and not torch.equal(averaged[name], raw[name])


def test_load_from_checkpoint_rebuilds_the_trained_network():
    # The network's config reaches the checkpoint, so plain Lightning loading needs no config file.
    cli = main(["fit", "--config", DIGITS, "--model.network.widths=[8,16,12]", *SHORT])
    loaded = ImageClassifier.load_from_checkpoint(run_dirs()[-1] / "checkpoints" / "best.ckpt").eval()
    assert loaded.network.head.in_features == 12
    images = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(loaded(images), cli.model.eval()(images))


def test_whitening_layer_whitens_patches():
    images = torch.randn(64, 3, 8, 8) * torch.tensor([1.0, 3.0, 0.5])[:, None, None] + 2
    model = CompactConvNet(3, 10)
    model.init_whitening(images)
    model.whiten.bias.data.zero_()
    outputs = model.whiten(images)[:, :12].permute(0, 2, 3, 1).reshape(-1, 12)  # the positive half
    covariance = torch.cov((outputs - outputs.mean(0)).T)
    assert torch.allclose(covariance, torch.eye(12), atol=0.05)


@pytest.mark.parametrize(("ceil_mode", "sizes"), [(True, [16, 8, 4]), (False, [15, 7, 3])])
def test_pooling_rounds_odd_sizes_as_configured(ceil_mode, sizes):
    # A 32-pixel image is 31 pixels after the 2x2 whitening; each block halves it, rounding up or down.
    network = CompactConvNet(3, 10, widths=(8, 8, 8), pool_ceil_mode=ceil_mode)
    features = network.whiten(torch.randn(2, 3, 32, 32))
    for block, size in zip(network.blocks, sizes, strict=True):
        features = block(features)
        assert features.shape[-2:] == (size, size)


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    images = torch.arange(2 * 1 * 5 * 5, dtype=torch.float).view(2, 1, 5, 5)
    assert torch.equal(random_crop(images, 0), images)
    crops = random_crop(images, 2)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2), mode="reflect")
    for crop, source in zip(crops, padded, strict=True):
        windows = [source[:, i : i + 5, j : j + 5] for i in range(5) for j in range(5)]
        assert any(torch.equal(crop, window) for window in windows)


def test_alternating_flip_mirrors_each_image_on_every_other_epoch(tmp_path):
    root = write_image_folder(tmp_path / "images", per_class=8)
    datamodule = ImageDataModule(dataset="folder", data_dir=str(root), cache_dir=str(tmp_path / "cache"),
                                 val_fraction=0, batch_size=16, crop_padding=0, alternating_flip=True)  # fmt: skip
    torch.manual_seed(0)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    originals = batch[0].float() / 255
    mirrored = []
    for epoch in range(3):
        datamodule.trainer = SimpleNamespace(training=True, current_epoch=epoch)
        images, labels = datamodule.on_after_batch_transfer(batch, 0)
        assert torch.equal(labels, batch[1])
        pairs = list(zip(images, originals, strict=True))
        flipped = torch.tensor([torch.equal(image, original.flip(-1)) for image, original in pairs])
        kept = torch.tensor([torch.equal(image, original) for image, original in pairs])
        assert (flipped ^ kept).all()  # every image is shown as it is or mirrored, nothing else
        mirrored.append(flipped)
    assert torch.equal(mirrored[0], batch[2]) and 0 < int(mirrored[0].sum()) < 16  # a random part, not all
    assert torch.equal(mirrored[1], ~mirrored[0]) and torch.equal(mirrored[2], mirrored[0])
    cli = main(["fit", "--data.dataset=folder", f"--data.data_dir={root}", "--data.alternating_flip=true",
                f"--data.cache_dir={tmp_path / 'cache'}", *SHORT, "--trainer.max_epochs=2"])  # fmt: skip
    assert cli.trainer.current_epoch == 2 and "test/acc" in cli.trainer.callback_metrics


def schedule_factors(schedule: str, total: int = 10, warmup_fraction: float = 0.2) -> list[float]:
    """The learning-rate multiplier of every step under `warmup_schedule`, as the optimizer sees it."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    scheduler = warmup_schedule(optimizer, total, warmup_fraction, schedule)["lr_scheduler"]["scheduler"]
    factors = []
    for _ in range(total):
        factors.append(optimizer.param_groups[0]["lr"] / 2.0)
        optimizer.step()
        scheduler.step()
    return factors


def test_learning_rate_schedules_by_hand():
    # 10 steps, 2 of warm-up (1/2, then the peak), then a decay to 0 over the remaining 8 steps.
    assert schedule_factors("onecycle") == pytest.approx(
        [0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125]
    )
    cosine = [0.5, 1.0] + [0.5 * (1 + math.cos(math.pi * step / 8)) for step in range(8)]
    assert schedule_factors("cosine") == pytest.approx(cosine)
    assert schedule_factors("cosine")[6] == pytest.approx(0.5)  # half-way through the decay
    assert schedule_factors("constant") == [1.0] * 10
    # Warm-up lasts at least one step: with no warm-up fraction the peak holds one step, then decays.
    assert schedule_factors("onecycle", total=4, warmup_fraction=0.0) == pytest.approx(
        [1.0, 1.0, 2 / 3, 1 / 3]
    )


def test_airbench_options_identity_init_frozen_norm_scale_and_bias_learning_rate():
    network = CompactConvNet(3, 10, identity_init=True, learn_norm_scale=False)
    first = network.blocks[0][0].weight  # (32-ish, 24, 3, 3): its first 24 filters copy the whitened channels
    image = torch.randn(1, 24, 5, 5)
    assert torch.equal(torch.nn.functional.conv2d(image, first[:24], padding=1), image)
    module = ImageClassifier(
        network=lambda c, k: CompactConvNet(c, k, identity_init=True, learn_norm_scale=False),
        lr=0.5,
        norm_lr_scale=64,
    )
    module.trainer = type("Stub", (), {"estimated_stepping_batches": 10})()
    optimizer = module.configure_optimizers()["optimizer"]
    norm_group = optimizer.param_groups[-1]
    norm_biases = [m.bias for m in module.network.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert {id(p) for p in norm_group["params"]} == {id(p) for p in norm_biases}
    assert norm_group["initial_lr"] == 32.0 and norm_group["weight_decay"] == 0.0
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not any(
        id(m.weight) in trained for m in module.network.modules() if isinstance(m, torch.nn.BatchNorm2d)
    )


def test_translate_tta_weights_the_image_and_its_two_diagonal_shifts():
    class CentrePixel(torch.nn.Module):  # logits = the pixel at (1, 1) of each channel
        def forward(self, x):
            return x[:, :, 1, 1]

    module = ImageClassifier(network=lambda c, k: CentrePixel(), tta_translate=True).eval()
    module.mean.zero_(), module.std.fill_(1.0)
    images = torch.rand(2, 3, 4, 4)
    # Reflect padding by 1: the up-left shift puts pixel (0, 0) at (1, 1), the down-right shift pixel (2, 2).
    expected = 0.5 * images[:, :, 1, 1] + 0.25 * images[:, :, 0, 0] + 0.25 * images[:, :, 2, 2]
    assert torch.allclose(module(images), expected)


def test_image_folder_png_and_jpeg_train_and_cache(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "pets")
    args = ["fit", "--data.dataset=folder", f"--data.data_dir={root}", "--data.batch_size=4", "--data.flip=false",
            "--config", str(REPO / "configs/logger/csv.yaml"), *SHORT]  # fmt: skip
    cli = main(args)
    assert cli.model.class_names == ["cat", "dog"] and cli.model.hparams.in_channels == 3
    assert cli.datamodule.splits["train"][0].shape[1:] == (3, 12, 12)
    run = run_dirs()[-1]
    assert (run / "checkpoints" / "last.ckpt").exists() and (run / "config.yaml").exists()
    assert "test/acc" in cli.trainer.callback_metrics

    # The second run reads the uint8 cache: decoding any file again would fail.
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded an image although the cache was valid")

    monkeypatch.setattr(image_data, "load_image", no_decoding)
    cached = ImageDataModule(dataset="folder", data_dir=str(root))
    cached.setup("fit")
    assert torch.equal(cached.splits["test"][0], cli.datamodule.splits["test"][0])

    # Changing a source file invalidates the cache.
    Image.new("RGB", (12, 12)).save(root / "train" / "cat" / "extra.png")
    with pytest.raises(AssertionError, match="decoded"):
        ImageDataModule(dataset="folder", data_dir=str(root)).setup("fit")


def test_folder_test_images_are_decoded_at_the_training_size(tmp_path):
    root = write_image_folder(tmp_path / "pets", size=12)
    for path in (root / "test").rglob("*.*"):  # test photos of another size
        Image.open(path).resize((20, 20)).save(path)
    datamodule = ImageDataModule(dataset="folder", data_dir=str(root), cache_dir=str(tmp_path / "cache"))
    datamodule.setup("fit")
    assert datamodule.splits["test"][0].shape[-2:] == datamodule.splits["train"][0].shape[-2:] == (12, 12)


def test_folder_without_test_tree_uses_validation_fraction(tmp_path):
    root = write_image_folder(tmp_path / "pets", per_class=10, test=False)
    datamodule = ImageDataModule(dataset="folder", data_dir=str(root), val_fraction=0.25)
    datamodule.setup("fit")
    assert len(datamodule.splits["train"][1]) == 15 and len(datamodule.splits["val"][1]) == 5
    assert datamodule.splits["test"][1] is datamodule.splits["val"][1]


def test_media_files_under_csv_logger():
    main(["fit", "--config", DIGITS, "--config", str(REPO / "configs/logger/csv.yaml"), *SHORT])
    media = run_dirs()[-1] / "media"
    names = [path.name for path in media.iterdir()]
    assert any(name.startswith("val_confusion_matrix") for name in names)
    assert any(name.startswith("test_confusion_matrix") for name in names)
    assert any(name.startswith("test_misclassified") for name in names)  # one epoch on two batches errs
    metrics = (run_dirs()[-1] / "metrics.csv").read_text()
    assert "perf/samples_per_sec" in metrics and "test/acc" in metrics


def test_predict_writes_csv(tmp_path):
    root = write_image_folder(tmp_path / "pets")
    common = [
        f"--data.data_dir={root}",
        "--data.dataset=folder",
        "--config",
        str(REPO / "configs/logger/csv.yaml"),
    ]
    main(["fit", *common, "--data.batch_size=4", *SHORT])
    checkpoint = run_dirs()[-1] / "checkpoints" / "last.ckpt"
    output = tmp_path / "predictions.csv"
    main(["predict", *common, f"--ckpt_path={checkpoint}", f"--data.predict_dir={root / 'test'}",
          f"--prediction_writer.output={output}", "--trainer.enable_progress_bar=false"])  # fmt: skip
    rows = list(csv.DictReader(output.open()))
    assert len(rows) == 12 and set(rows[0]) == {"file", "class", "probability"}
    assert {row["class"] for row in rows} <= {"cat", "dog"}
    assert all(0.5 <= float(row["probability"]) <= 1 for row in rows)  # the top class of two
    assert sorted(row["file"] for row in rows) == sorted(str(p) for p in (root / "test").rglob("*.*"))

    # Without the training run's data settings, the two-class checkpoint meets the digits' ten classes.
    with pytest.raises(SystemExit, match=r"trained with class_names=\['cat', 'dog'\] but this run has \['0'"):
        main(["predict", f"--ckpt_path={checkpoint}", f"--data.predict_dir={root / 'test'}"])


def test_wandb_offline_run_records_config_and_final_metrics(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    main(["fit", "--config", DIGITS, "--model.lr=0.123", *SHORT])
    [run_file] = list(__import__("pathlib").Path("runs/wandb").glob("offline-run-*/run-*.wandb"))
    config, summary = config_and_summary(run_file)
    assert "model" in config, sorted(config)
    assert config["model"]["lr"] == 0.123  # the whole resolved config, not only the module hparams
    assert config["data"]["dataset"] == "digits"
    assert config["trainer"]["max_epochs"] == 1
    assert 0 <= summary["test/acc"] <= 1 and "val/acc" in summary and "perf/step_time_ms" in summary


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data.dataset=folder", "--data.data_dir=missing"], "data_dir missing is not a folder"),
        (["--data.dataset=folder"], "needs --data.data_dir"),
        (["--data.dataset=cifar10", "--data.data_dir=empty"], "CIFAR-10 not found under empty"),
    ],
)
def test_bad_data_locations_give_one_line_errors(args, message):
    (__import__("pathlib").Path("empty")).mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, *SHORT])
    assert message in str(exit_info.value) and "\n" not in str(exit_info.value)


def test_empty_folder_and_unreadable_image(tmp_path):
    (tmp_path / "empty" / "train" / "cat").mkdir(parents=True)
    with pytest.raises(SystemExit, match="no images found under"):
        main(["fit", "--data.dataset=folder", f"--data.data_dir={tmp_path / 'empty'}", *SHORT])
    root = write_image_folder(tmp_path / "pets", test=False)
    (root / "train" / "cat" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(SystemExit, match=r"cannot read image .*broken.png"):
        main(["fit", "--data.dataset=folder", f"--data.data_dir={root}", *SHORT])


def write_idx(path, array: np.ndarray) -> None:
    """An MNIST IDX file: zero, zero, type 0x08 (uint8), the number of dimensions, each size, the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(size.to_bytes(4, "big") for size in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_empty_or_truncated_mnist_files_give_one_line_errors(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 20), ("t10k", 10)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (count, 28, 28)))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, count))
    data = ImageDataModule(
        "mnist", data_dir=str(tmp_path), cache_dir=str(tmp_path / "cache"), val_fraction=0.5
    )
    data.setup("fit")  # the hand-written files are read: the checks below do not reject good files
    assert data.splits["train"][0].shape == (10, 1, 28, 28) and len(data.splits["test"][1]) == 10
    images = tmp_path / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])  # truncated
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--data.dataset=mnist", f"--data.data_dir={tmp_path}", "--data.cache_dir=other", *SHORT])
    assert (
        exit_info.value.code
        == f"error: {images} is not a complete MNIST IDX file (7756 bytes); download it again"
    )
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"")
    with pytest.raises(
        UserInputError, match="train-labels-idx1-ubyte is not a complete MNIST IDX file \\(0 bytes"
    ):
        ImageDataModule("mnist", data_dir=str(tmp_path), cache_dir=str(tmp_path / "third")).setup("fit")


@pytest.mark.parametrize(
    ("option", "message"),
    [("batch_size=0", "batch_size=0 must be at least 1; set --data.batch_size"),
     ("eval_batch_size=-8", "eval_batch_size=-8 must be at least 1; set --data.eval_batch_size"),
     ("num_workers=-1", "num_workers=-1 must be at least 0; set --data.num_workers")],
)  # fmt: skip
def test_bad_loader_sizes_give_one_line_errors(option, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", f"--data.{option}", *SHORT])
    assert exit_info.value.code == f"error: {message}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model.network=projects.image_classifier.model.NoSuchNet"], "NoSuchNet"),
        (["--model.no_such_option=1"], "no_such_option"),
        (["--data.dataset=imagenet"], "imagenet"),
    ],
)
def test_bad_config_values_are_reported(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", DIGITS, *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_module_interface_for_other_projects():
    """What common/pretrained.py relies on: logits and features from [0, 1] images, and class names."""
    module = ImageClassifier(class_names=list("abc"), in_channels=1)
    images = torch.rand(5, 1, 8, 8)
    assert module(images).shape == (5, 3) and module.embed(images).shape == (5, 256)
    assert module.class_names == ["a", "b", "c"]


def test_lookahead_by_hand():
    class Descend(LightningModule):  # loss = w, so plain SGD with lr 1 moves w by -1 per step
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def training_step(self, batch, batch_idx):
            return self.w * 1.0

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=1.0)

        def train_dataloader(self):
            return torch.utils.data.DataLoader(torch.zeros(4, 1), batch_size=1)

    module = Descend()
    lookahead = Lookahead(interval=2, final_decay=0.5)
    trainer = Trainer(max_epochs=1, callbacks=[lookahead], logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(module)
    # Step 2: decay 0.5 * (2/4)**3 = 1/16, slow = 0 + 15/16 * (-2) = -1.875 and w is reset to it; step 3: w = -2.875;
    # step 4 (the last): w becomes the slow copy, -1.875 (plain SGD would end at -4).
    assert module.w.item() == pytest.approx(-1.875)
    assert lookahead.slow["w"].item() == pytest.approx(-1.875)


@pytest.mark.parametrize("shape", [(16, 144), (144, 16)], ids=["wide", "tall"])
def test_orthogonalize_brings_every_singular_value_near_one(shape):
    torch.manual_seed(0)
    matrix = torch.randn(*shape) * torch.logspace(-1, 1, shape[1])  # column scales over two decades
    result = orthogonalize(matrix, steps=5)
    assert result.shape == matrix.shape and result.dtype == matrix.dtype
    singular_values = torch.linalg.svdvals(result)
    assert singular_values.min() > 0.5 and singular_values.max() < 1.3  # the quintic's band, not exactly 1
    left, _, right = torch.linalg.svd(matrix, full_matrices=False)
    polar = left @ right  # the exact U V^T: the result points the same way
    assert torch.nn.functional.cosine_similarity(result.flatten(), polar.flatten(), dim=0) > 0.95


def test_muon_steps_sgd_groups_like_torch_and_filters_at_fixed_norm():
    torch.manual_seed(0)
    filters, bias = torch.nn.Parameter(torch.randn(8, 4, 3, 3)), torch.nn.Parameter(torch.randn(8))
    reference = torch.nn.Parameter(bias.detach().clone())
    muon = Muon([{"params": [filters], "muon": True, "lr": 0.1}, {"params": [bias], "weight_decay": 0.01}],
                lr=0.5, momentum=0.9)  # fmt: skip
    sgd = torch.optim.SGD([reference], lr=0.5, momentum=0.9, nesterov=True, weight_decay=0.01)
    for _ in range(3):
        gradient = torch.randn(8)
        bias.grad, reference.grad = gradient.clone(), gradient.clone()
        before = filters.detach().clone()
        filters.grad = torch.randn(8, 4, 3, 3)
        muon.step()
        sgd.step()
        # The weight was rescaled to norm sqrt(8), then moved by lr times a near-orthogonal update.
        update = (filters.detach() - before * 8**0.5 / before.norm()).reshape(8, -1) / -0.1
        singular_values = torch.linalg.svdvals(update)
        assert singular_values.min() > 0.5 and singular_values.max() < 1.3
    torch.testing.assert_close(bias, reference)
    tall = torch.nn.Parameter(torch.randn(16, 4))  # more rows than columns: orthogonalised transposed
    tall.grad = torch.randn(16, 4)
    Muon([{"params": [tall], "muon": True}], lr=0.1).step()
    assert tall.shape == (16, 4) and torch.isfinite(tall).all()
