"""Tests for the speech project: WAV reading and its errors, log-mel features, augmentations, every data source,
the networks, learning on a batch, the CLI, and (when DATA_ROOT has it) the real FSDD folder."""

import csv
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, require_data
from lightning.pytorch import Trainer

from common.errors import UserInputError
from projects.speech.audio import LogMel, add_white_noise, loudest_window, mel_filterbank, read_wav
from projects.speech.augment import random_time_shift, spec_augment
from projects.speech.data import SpeechDataModule
from projects.speech.model import KeywordCNN, KeywordCRNN, TemporalCNN
from projects.speech.module import KeywordSpotter
from projects.speech.procedural import PROCEDURAL_CLASSES, render_procedural_word, write_wav
from projects.speech.train import main

TINY = {"procedural_clips": 40, "procedural_classes": 4, "clip_seconds": 0.5, "batch_size": 8}


@pytest.fixture(autouse=True)
def one_thread(single_thread):
    """Tiny models run faster on one thread, and the machine is shared."""


def tone(digit: int, seconds: float = 0.2, rate: int = 8000) -> np.ndarray:
    time = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * (300 + 200 * digit) * time)).astype(np.float32)


@pytest.fixture
def fake_fsdd(tmp_path) -> Path:
    """An FSDD look-alike: 10 digits x 2 speakers x 7 takes `{digit}_{speaker}_{index}.wav`, tones per digit."""
    folder = tmp_path / "recordings"
    for digit in range(10):
        for speaker in ("ann", "bob"):
            for index in range(7):
                write_wav(folder / f"{digit}_{speaker}_{index}.wav", tone(digit, 0.1 + 0.02 * index))
    return folder


def write_pcm(path: Path, raw: bytes, width: int, channels: int = 1, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as file:
        file.setnchannels(channels)
        file.setsampwidth(width)
        file.setframerate(rate)
        file.writeframes(raw)
    return path


def test_read_wav_decodes_every_pcm_width_and_converts_when_asked(tmp_path):
    values = np.array([0.0, 0.5, -0.5, 0.25], dtype=np.float32)
    as_int16 = (values * 32767).round().astype("<i2")
    write_pcm(tmp_path / "16.wav", as_int16.tobytes(), 2)
    write_pcm(tmp_path / "8.wav", (values * 127 + 128).round().astype(np.uint8).tobytes(), 1)
    write_pcm(tmp_path / "32.wav", (values * 2**31 * 0.999).astype("<i4").tobytes(), 4)
    int24 = (values * 2**23 * 0.999).astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
    write_pcm(tmp_path / "24.wav", int24.tobytes(), 3)
    for name in ("8", "16", "24", "32"):
        np.testing.assert_allclose(read_wav(tmp_path / f"{name}.wav", 8000), values, atol=1e-2, err_msg=name)
    stereo = np.stack([as_int16, np.zeros_like(as_int16)], axis=1)
    write_pcm(tmp_path / "stereo.wav", stereo.tobytes(), 2, channels=2)
    np.testing.assert_allclose(read_wav(tmp_path / "stereo.wav", 8000, downmix=True), values / 2, atol=1e-3)
    write_wav(tmp_path / "16k.wav", tone(2, 0.5, 16000), 16000)  # a 700 Hz tone, half a second
    resampled = read_wav(tmp_path / "16k.wav", 8000, resample=True)
    assert resampled.shape == (4000,)
    np.testing.assert_allclose(resampled[100:-100], tone(2, 0.5)[100:-100], atol=0.02)


@pytest.mark.parametrize(
    ("name", "message"),
    [("notes.wav", "is not a PCM WAV file"), ("empty.wav", "is empty or truncated"),
     ("silent.wav", "has no samples"), ("stereo.wav", "has 2 channels, not 1; .*--data.downmix true"),
     ("fast.wav", "is sampled at 16000 Hz, not 8000 Hz; .*--data.resample true"),
     ("float.wav", "is not a PCM WAV file \\(unknown format: 3\\)")],
)  # fmt: skip
def test_bad_wav_files_give_one_line_errors_naming_the_file(tmp_path, name, message):
    path = tmp_path / name
    if name == "notes.wav":
        path.write_text("not audio at all\n" * 10)
    elif name == "empty.wav":
        path.write_bytes(b"")
    elif name == "silent.wav":
        write_pcm(path, b"", 2)
    elif name == "stereo.wav":
        write_pcm(path, b"\x00\x01" * 8, 2, channels=2)
    elif name == "fast.wav":
        write_wav(path, tone(1), 16000)
    else:  # IEEE float samples: format tag 3 in the header
        write_wav(path, tone(1))
        header = bytearray(path.read_bytes())
        header[20:22] = (3).to_bytes(2, "little")
        path.write_bytes(bytes(header))
    with pytest.raises(UserInputError, match=message) as error:
        read_wav(path, 8000)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_log_mel_puts_a_tone_in_its_band_and_has_the_documented_shape():
    filters = mel_filterbank(8000, 256, 40)
    assert filters.shape == (129, 40) and (filters >= 0).all()
    features = LogMel()(torch.from_numpy(np.stack([tone(0, 1.0), tone(9, 1.0)])))  # 300 Hz and 2100 Hz
    assert features.shape == (2, 40, 101) and torch.isfinite(features).all()
    band_centres = filters.argmax(dim=0).float() * 8000 / 256  # Hz of each band's peak
    loudest = features.mean(dim=2).argmax(dim=1)
    assert abs(band_centres[loudest[0]] - 300) < 80 and abs(band_centres[loudest[1]] - 2100) < 200
    assert loudest_window(np.ones(3, np.float32), 7).tolist() == [0, 0, 1, 1, 1, 0, 0]
    burst = np.zeros(100, np.float32)
    burst[60:70] = 1
    assert loudest_window(burst, 10).sum() == 10  # a long clip keeps its loudest window


def test_noise_has_the_asked_snr_and_augmentations_change_what_they_should():
    torch.manual_seed(0)
    waveforms = torch.from_numpy(np.stack([tone(3, 1.0), 0.1 * tone(5, 1.0)]))
    lengths = torch.tensor([8000, 8000])
    noisy = add_white_noise(waveforms, lengths, torch.tensor([0.0, 10.0]))
    snr = 10 * torch.log10(waveforms.square().mean(1) / (noisy - waveforms).square().mean(1))
    assert torch.allclose(snr, torch.tensor([0.0, 10.0]), atol=0.2)
    pulse = torch.zeros(4, 100)
    pulse[:, 50] = 1
    shifted = random_time_shift(pulse, 10)
    positions = shifted.argmax(dim=1)
    assert shifted.sum() == 4 and ((positions - 50).abs() <= 10).all()
    features = torch.randn(8, 40, 101)
    masked = spec_augment(features, time_masks=2, time_width=10, freq_masks=2, freq_width=5)
    changed = masked != features
    assert changed.any() and changed.float().mean() < 0.5
    assert torch.equal(spec_augment(features, 0, 10, 0, 5), features)


def test_procedural_words_are_deterministic_distinct_and_named_synthetic(caplog):
    assert np.array_equal(render_procedural_word(3), render_procedural_word(3))
    assert not np.array_equal(render_procedural_word(3, seed=0), render_procedural_word(3, seed=1))
    assert len(PROCEDURAL_CLASSES) == 10 and len(set(PROCEDURAL_CLASSES)) == 10
    datamodule = SpeechDataModule(**TINY)
    with caplog.at_level("INFO"):
        datamodule.setup("fit")
    assert "SYNTHETIC" in caplog.text
    assert datamodule.class_names == PROCEDURAL_CLASSES[:4]
    assert datamodule.features_of["train"].shape == (40, 40, 51)  # (N, n_mels, 0.5 s / 10 ms + 1)
    assert datamodule.splits["val"][2].tolist() == [0, 1, 2, 3] * 2 + [0, 1]


def test_fsdd_official_and_speaker_splits_and_the_waveform_cache(fake_fsdd, tmp_path, monkeypatch):
    settings = {"data_dir": str(fake_fsdd), "cache_dir": str(tmp_path / "cache"), "clip_seconds": 0.25}
    official = SpeechDataModule(dataset="fsdd", **settings)
    official.setup("fit")
    sizes = {name: len(split[2]) for name, split in official.splits.items()}
    assert sizes == {"test": 100, "train": 30, "val": 10}  # index 0-4 test; one take of each digit validates
    assert official.features_of["test"].shape == (100, 40, 26)
    assert len(list((tmp_path / "cache").glob("fsdd-*.pt"))) == 1
    monkeypatch.setattr("projects.speech.data.read_wav", lambda *args: pytest.fail("read again, not cached"))
    again = SpeechDataModule(dataset="fsdd", **settings)
    again.setup("fit")
    assert torch.equal(again.splits["train"][0], official.splits["train"][0])  # the same validation draw
    monkeypatch.undo()
    speaker = SpeechDataModule(dataset="fsdd_speaker", test_speaker="bob", **settings)
    speaker.setup("fit")
    assert len(speaker.splits["test"][2]) == 70 and len(speaker.splits["train"][2]) == 60
    with pytest.raises(UserInputError, match="speaker 'carl' has no recordings .* one of ann, bob"):
        SpeechDataModule(dataset="fsdd_speaker", test_speaker="carl", **settings).setup("fit")
    with pytest.raises(UserInputError, match="downloading FSDD is not built in .*--data.data_dir"):
        SpeechDataModule(dataset="fsdd", download=True).setup("fit")
    monkeypatch.delenv("DATA_ROOT", raising=False)
    with pytest.raises(UserInputError, match="FSDD needs --data.data_dir"):
        SpeechDataModule(dataset="fsdd").setup("fit")
    (fake_fsdd / "notes.wav").write_text("x")
    with pytest.raises(UserInputError, match="notes.wav is not named"):
        SpeechDataModule(dataset="fsdd", **settings).setup("fit")


def test_label_folders_and_their_errors(tmp_path):
    root = tmp_path / "words"
    for label in ("no", "yes"):
        for index in range(5):
            write_wav(root / label / f"{index}.wav", tone(index + (5 if label == "yes" else 0)))
    datamodule = SpeechDataModule(dataset="folder", data_dir=str(root), val_fraction=0.2, cache_dir=None)
    assert datamodule.class_names == ["no", "yes"]
    datamodule.setup("fit")
    assert len(datamodule.splits["train"][2]) == 8 and datamodule.splits["test"] is datamodule.splits["val"]
    (root / "yes" / "readme.txt").write_text("not audio")
    with pytest.raises(UserInputError, match="readme.txt is not a PCM WAV file"):
        SpeechDataModule(dataset="folder", data_dir=str(root), cache_dir=None).setup("fit")
    (root / "maybe").mkdir()
    with pytest.raises(UserInputError, match="label folder .*maybe has no clips"):
        SpeechDataModule(dataset="folder", data_dir=str(root))
    with pytest.raises(UserInputError, match="folder .*missing does not exist"):
        SpeechDataModule(dataset="folder", data_dir=str(tmp_path / "missing"))
    with pytest.raises(SystemExit) as exit_info:  # through the CLI: the message alone, no traceback
        main(["fit", "--data.dataset=folder", f"--data.data_dir={root}"])
    assert str(exit_info.value).startswith("error: label folder") and "\n" not in str(exit_info.value)


@pytest.mark.parametrize("network", [TemporalCNN, KeywordCNN, KeywordCRNN], ids=lambda n: n.__name__)
def test_networks_give_logits_and_every_parameter_a_gradient(network):
    torch.manual_seed(0)
    model = network(7)
    logits = model(torch.randn(3, 40, 51))
    assert logits.shape == (3, 7) and torch.isfinite(logits).all()
    logits.square().mean().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_a_batch_is_overfit():
    torch.manual_seed(0)
    features, labels = torch.randn(16, 40, 51), torch.arange(16) % 4
    module = KeywordSpotter(TemporalCNN, ["a", "b", "c", "d"], n_mels=40, frames=51, label_smoothing=0.0)
    optimizer = torch.optim.AdamW(module.parameters(), lr=3e-3)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(module(features), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    module.eval()
    assert loss < 0.05 and (module(features).argmax(1) == labels).all()


def test_model_learns_the_procedural_words():
    torch.manual_seed(0)
    datamodule = SpeechDataModule(**(TINY | {"procedural_clips": 160, "batch_size": 16}))
    module = KeywordSpotter(TemporalCNN, datamodule.class_names, n_mels=40, frames=51, lr=3e-3)
    trainer = Trainer(max_epochs=4, accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    assert trainer.callback_metrics["val/acc"] >= 0.9  # chance: 25%


def test_fit_then_predict_through_the_cli(tmp_path):
    args = [f"--data.{key}={value}" for key, value in TINY.items()] + ["--trainer.enable_progress_bar=false"]
    quickstart = str(REPO / "configs/speech/quickstart.yaml")
    cli = main(
        ["fit", "--config", quickstart, "--trainer.fast_dev_run=true", "--test_after_fit=false", *args]
    )
    assert {"train/loss", "train/acc", "val/acc", "val/loss"} <= set(cli.trainer.callback_metrics)
    assert cli.model.class_names == PROCEDURAL_CLASSES[:4] and cli.model.hparams.frames == 51
    assert not torch.equal(cli.model.std, torch.ones(40))  # normalised with the training statistics

    clips = tmp_path / "clips"
    for index in range(3):
        write_wav(clips / f"{index}.wav", render_procedural_word(index, num_classes=4))
    output = tmp_path / "predictions.csv"
    main(["predict", "--config", quickstart, *args, f"--data.predict_dir={clips}",
          f"--prediction_writer.output={output}"])  # fmt: skip
    rows = list(csv.DictReader(output.open()))
    assert len(rows) == 3 and all(row["class"] in PROCEDURAL_CLASSES[:4] for row in rows)


@pytest.mark.parametrize(
    "config",
    sorted(set((REPO / "configs/speech").glob("*.yaml")) - {REPO / "configs/speech/sweep.yaml"}),
    ids=lambda p: p.name,
)  # sweep.yaml is a W&B sweep spec, checked by test_sweeps.py
def test_shipped_configs_instantiate(config, fake_fsdd):
    cli = main(["--config", str(config), f"--data.data_dir={fake_fsdd}"], run=False)
    assert cli.model.class_names == cli.datamodule.class_names


def test_real_fsdd_folder_reads_as_documented():
    folder = require_data("free-spoken-digit-dataset/recordings")
    paths = sorted(folder.glob("*.wav"))
    assert len(paths) == 3000
    for path in paths[::600]:
        samples = read_wav(path, 8000)
        assert samples.ndim == 1 and 0.1 < len(samples) / 8000 < 2.5 and np.abs(samples).max() <= 1


def test_export_takes_the_features_and_matches_the_model(tmp_path):
    from common.export import export

    module = KeywordSpotter(TemporalCNN, ["a", "b", "c"], n_mels=40, frames=51)
    metadata = export(module, tmp_path / "export")
    assert metadata["inputs"][0]["shape"] == ["batch", 40, 51] and metadata["class_names"] == ["a", "b", "c"]
    assert metadata["parity"]["onnx_max_abs_diff"] <= 1e-4
