"""Connected digits with CTC: decoding on hand-made emissions, the recording builder, the data module's splits and
errors, the network, overfitting a batch, and a `fast_dev_run` through the CLI. All offline, tiny, one thread."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO

from projects.speech.connected import (
    ConnectedDigitsDataModule,
    build_recordings,
    pad_batch,
)
from projects.speech.ctc import DigitStringRecognizer, decode_batch, greedy_decode, prefix_beam_search
from projects.speech.model import DigitCRNN
from projects.speech.procedural import render_procedural_word, write_wav
from projects.speech.sources import TranscriptError, read_transcripts
from projects.speech.train import main

TINY_NETWORK = {"widths": (16, 16), "strides": (2, 2), "hidden_size": 16, "layers": 1, "dropout": 0.0}


@pytest.fixture(autouse=True)
def one_thread(single_thread):
    """Tiny models run faster on one thread, and the machine is shared."""


def emission(probabilities: list[list[float]]) -> torch.Tensor:
    """Log-probabilities `(T, 11)` from per-frame probabilities of the first classes; the rest share 1e-6."""
    frames = torch.full((len(probabilities), 11), 1e-6)
    for row, values in enumerate(probabilities):
        frames[row, : len(values)] = torch.tensor(values)
    return (frames / frames.sum(dim=1, keepdim=True)).log()


def peaked(labels: list[int]) -> torch.Tensor:
    return emission([[0.9 if label == index else 0.01 for index in range(11)] for label in labels])


def test_greedy_decode_merges_repeats_and_drops_blanks():
    frames = peaked([1, 1, 0, 1, 2, 2, 0, 0, 3])  # blank 0; label d + 1 is digit d
    assert greedy_decode(frames) == [1, 1, 2, 3]
    assert decode_batch(frames[None], torch.tensor([9])) == ["0012"]
    assert decode_batch(frames[None], torch.tensor([2])) == ["0"]  # frames past the length are ignored


def test_beam_search_agrees_on_a_peaked_emission_and_beats_greedy_where_it_should():
    frames = peaked([4, 4, 0, 4, 0, 10, 10])
    assert prefix_beam_search(frames) == greedy_decode(frames) == [4, 4, 10]
    # Two frames, blank 0.6 and label 1 ("0") 0.4 each: the best path is blank-blank (0.36), but "0" has three
    # paths (0.4*0.4 + 0.4*0.6 + 0.6*0.4 = 0.64), so the beam, which sums them, must prefer it.
    ambiguous = emission([[0.6, 0.4], [0.6, 0.4]])
    assert greedy_decode(ambiguous) == []
    assert prefix_beam_search(ambiguous, beam_width=4) == [1]
    # "1 1" needs a blank between its two ones; without it the ones merge into a single "1".
    assert prefix_beam_search(peaked([2, 0, 2])) == [2, 2] and prefix_beam_search(peaked([2, 2])) == [2]


def test_recordings_are_deterministic_per_seed_and_have_two_to_seven_digits():
    clips = [np.full(400, 0.1 * (digit + 1), np.float32) for digit in range(10)]
    first = build_recordings(clips, list(range(10)), 40, seed=3)
    again = build_recordings(clips, list(range(10)), 40, seed=3)
    other = build_recordings(clips, list(range(10)), 40, seed=4)
    assert all(
        np.array_equal(a.samples, b.samples) and a.digits == b.digits
        for a, b in zip(first, again, strict=True)
    )
    assert [item.digits for item in first] != [item.digits for item in other]
    assert {len(item.digits) for item in first} <= set(range(2, 8)) and len(
        {len(item.digits) for item in first}
    ) >= 4
    for item in first:  # each recording: its clips, pauses of 0.05-0.4 s between, nothing else
        assert item.digits == "".join(str(clip) for clip in item.clips)
        assert (
            400 * len(item.clips) + 400 * (len(item.clips) + 1)
            <= len(item.samples)
            <= 400 * len(item.clips) + 3200 * (len(item.clips) + 1)
        )


@pytest.fixture
def fake_fsdd(tmp_path) -> Path:
    """An FSDD look-alike: 10 digits x 2 speakers x 7 takes, a tone per digit between short silences."""
    folder = tmp_path / "recordings"
    time = np.arange(800) / 8000
    for digit in range(10):
        for speaker in ("ann", "bob"):
            for index in range(7):
                tone = 0.5 * np.sin(2 * np.pi * (300 + 200 * digit + 10 * index) * time)
                write_wav(
                    folder / f"{digit}_{speaker}_{index}.wav",
                    np.concatenate([np.zeros(400), tone, np.zeros(400)]),
                )
    return folder


def test_fsdd_strings_join_clips_of_their_own_split_only(fake_fsdd):
    settings = {"dataset": "fsdd", "data_dir": str(fake_fsdd), "train_recordings": 30, "eval_recordings": 20}
    datamodule = ConnectedDigitsDataModule(**settings)
    datamodule.setup("fit")
    names = datamodule.clip_names
    assert len(names["test"]) == 100 and not set(names["val"]) & set(names["train"])

    def takes(split: str) -> set[int]:
        return {
            int(names[split][clip].split("_")[2][:-4])
            for item in datamodule.recordings[split]
            for clip in item.clips
        }

    assert takes("test") <= {0, 1, 2, 3, 4} and min(takes("train") | takes("val")) >= 5  # index 0-4 is test
    for split in ("train", "val", "test"):
        for item in datamodule.recordings[split]:
            assert item.digits == "".join(names[split][clip][0] for clip in item.clips)
    again = ConnectedDigitsDataModule(**settings)
    again.setup("fit")
    assert [item.digits for item in again.recordings["test"]] == [
        item.digits for item in datamodule.recordings["test"]
    ]
    features, frames, targets, target_lengths = next(iter(datamodule.val_dataloader()))
    assert features.shape[:2] == (20, 40) and features.shape[2] == frames.max() and targets.shape[0] == 20
    assert (targets[0, : target_lengths[0]] - 1).tolist() == [
        int(d) for d in datamodule.recordings["val"][0].digits
    ]


def test_a_transcript_outside_the_vocabulary_is_a_one_line_error_naming_the_file(tmp_path):
    write_wav(tmp_path / "a.wav", np.zeros(800))
    transcripts = tmp_path / "transcripts.csv"
    transcripts.write_text("path,transcript\na.wav,1 2 3\na.wav,12x3\n")
    with pytest.raises(
        ValueError, match=r"transcripts.csv:3: the transcript of a.wav has character 'x'"
    ) as error:
        read_transcripts(transcripts)
    assert isinstance(error.value, TranscriptError) and "\n" not in str(error.value)
    with pytest.raises(SystemExit) as exit_info:  # through the CLI: the message alone, no traceback
        main(["fit", "--task=connected", "--data.dataset=csv", f"--data.transcripts={transcripts}"])
    assert str(exit_info.value).startswith("error: ") and "'x'" in str(exit_info.value)
    transcripts.write_text("a.wav,1 2 3\n")
    assert read_transcripts(transcripts) == [(tmp_path / "a.wav", "123")]


def test_network_gives_per_frame_logits_independent_of_padding_and_every_parameter_a_gradient():
    torch.manual_seed(0)
    network = DigitCRNN(11, 40, **TINY_NETWORK)
    features, lengths = torch.randn(2, 40, 101), torch.tensor([101, 60])
    logits, out_lengths = network(features, lengths)
    assert logits.shape == (2, 26, 11) and out_lengths.tolist() == [26, 15]
    logits.square().mean().backward()
    for name, parameter in network.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    module = DigitStringRecognizer(lambda outputs, mels: DigitCRNN(outputs, mels, **TINY_NETWORK)).eval()
    padded = features.clone()
    padded[1, :, 60:] = 100.0  # whatever is in the padding must not change the recording's output
    alone, _ = module(features[1:, :, :60], lengths[1:])
    together, _ = module(padded, lengths)
    assert torch.allclose(alone[0], together[1, :15], atol=1e-5)


def test_a_batch_of_strings_is_overfit():
    torch.manual_seed(0)
    datamodule = ConnectedDigitsDataModule(
        train_recordings=8, eval_recordings=10, procedural_clips=20, max_digits=3
    )
    datamodule.setup("fit")
    batch = pad_batch([datamodule.datasets["train"][index] for index in range(8)])
    module = DigitStringRecognizer(lambda outputs, mels: DigitCRNN(outputs, mels, widths=(32, 32), strides=(2, 2),
                                                                   hidden_size=32, layers=1, dropout=0.0))  # fmt: skip
    module.mean.copy_(datamodule.feature_stats()[0])
    module.std.copy_(datamodule.feature_stats()[1])
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-2)
    losses = []
    for _ in range(300):
        log_probs, lengths = module(batch[0], batch[1])
        loss = torch.nn.functional.ctc_loss(log_probs.transpose(0, 1), batch[2], lengths, batch[3])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    module.eval()
    log_probs, lengths = module(batch[0], batch[1])
    assert losses[-1] < 0.1 * losses[0]
    assert decode_batch(log_probs, lengths) == datamodule.datasets["train"].texts[:8]


def test_fit_through_the_cli_on_the_procedural_set_then_test_from_the_saved_run(tmp_path, caplog):
    quickstart = str(REPO / "configs/speech/connected_quickstart.yaml")
    tiny = [f"--model.network.init_args.{key}={list(value) if isinstance(value, tuple) else value}"
            for key, value in TINY_NETWORK.items()]  # fmt: skip
    few = [
        "--trainer.limit_val_batches=1",
        "--trainer.limit_test_batches=1",
        "--trainer.enable_progress_bar=false",
    ]
    with caplog.at_level("INFO"):
        cli = main(["fit", "--config", quickstart, "--trainer.max_steps=2", "--data.train_recordings=16",
                    "--data.eval_recordings=4", "--data.procedural_clips=20", "--data.batch_size=8", *few, *tiny])  # fmt: skip
    assert "SYNTHETIC" in caplog.text and "procedural" in cli.datamodule.data_source
    assert {"test/der", "test/der_beam", "test/string_acc"} <= set(cli.trainer.callback_metrics)
    assert cli.model.class_names == cli.datamodule.class_names == [str(digit) for digit in range(10)]
    assert not torch.equal(cli.model.std, torch.ones(40))  # normalised with the training statistics
    [run] = [path.parent for path in Path("runs/speech").glob("*/config.yaml")]
    logged = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss_epoch", "val/der", "val/string_acc", "val/loss"} <= set(logged)
    assert list((run / "media").glob("test_ctc_alignments*.png"))
    # The saved config names its task, so the plain entry point rebuilds the connected-digit model from it.
    again = main(
        [
            "test",
            "--config",
            str(run / "config.yaml"),
            "--ckpt_path",
            str(run / "checkpoints/best.ckpt"),
            *few,
        ]
    )
    assert isinstance(again.model, DigitStringRecognizer) and "test/der" in again.trainer.callback_metrics

    # predict on a folder of recordings of any length: one CSV row per file, a digit string and a confidence.
    recordings = tmp_path / "recordings"
    for index, digits in enumerate(("31", "4159")):
        words = [render_procedural_word(int(digit), 8000, seed=2) for digit in digits]
        write_wav(recordings / f"{index}.wav", np.concatenate(words))
    output = tmp_path / "transcripts.csv"
    main(["predict", "--config", str(run / "config.yaml"), "--ckpt_path", str(run / "checkpoints/best.ckpt"),
          f"--data.predict_dir={recordings}", f"--prediction_writer.output={output}"])  # fmt: skip
    rows = list(csv.DictReader(output.open()))
    assert [Path(row["file"]).name for row in rows] == ["0.wav", "1.wav"]
    assert all(
        set(row["transcript"]) <= set("0123456789") and 0 < float(row["confidence"]) <= 1 for row in rows
    )


def test_fresh_training_strings_every_epoch_from_the_same_clips():
    datamodule = ConnectedDigitsDataModule(train_recordings=12, eval_recordings=10, procedural_clips=20)
    datamodule.setup("fit")
    train, val = datamodule.datasets["train"], datamodule.datasets["val"]
    first, validation = list(train.texts), list(val.texts)
    train.set_epoch(1)
    assert train.texts != first and val.texts == validation
    train.set_epoch(0)
    assert train.texts == first  # deterministic per (seed, epoch)
