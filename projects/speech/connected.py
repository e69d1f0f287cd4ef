"""Connected digits: recordings built by joining 2-7 single-digit clips of one split with random pauses and gains
(deterministic per seed), or a CSV of `path,transcript` recordings; `ConnectedDigitsDataModule` serves their
log-mel features `(B, n_mels, frames)`, padded per batch, with the digit strings as CTC targets.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset

from common.distributed import evaluation_loader
from common.errors import UserInputError, require_at_least
from common.resume import ResumableLoader
from projects.speech.audio import LogMel, read_wav, resample_fft
from projects.speech.augment import spec_augment
from projects.speech.data import PROCEDURAL_SEEDS, PredictRecordings, pad_features, pad_recordings
from projects.speech.procedural import render_procedural_word
from projects.speech.sources import FSDD_CLASSES, fsdd_folder, fsdd_splits, read_transcripts, stratified_split

DIGITS = FSDD_CLASSES  # the vocabulary; CTC label of digit d is d + 1, 0 is the blank


@dataclass
class ConnectedRecording:
    """One recording: its samples `(N,)`, its digit string and which clips of the split it joins."""

    samples: np.ndarray
    digits: str
    clips: tuple[int, ...] = ()


def trim_silence(samples: np.ndarray, sample_rate: int, floor_db: float = -35.0) -> np.ndarray:
    """The clip from the first to the last 10 ms frame within `floor_db` of its loudest, plus 30 ms either side.

    FSDD clips carry up to a second of room noise around the word; trimmed, the pauses between digits are the
    ones this module draws, not whatever the recording session left.
    """
    hop = sample_rate // 100
    frames = samples[: len(samples) // hop * hop].reshape(-1, hop)
    if len(frames) == 0:
        return samples
    energy_db = 10 * np.log10(np.square(frames).mean(axis=1) + 1e-10)
    loud = np.flatnonzero(energy_db > energy_db.max() + floor_db)
    margin = 3 * hop
    return samples[max(0, loud[0] * hop - margin) : min(len(samples), (loud[-1] + 1) * hop + margin)]


def build_recordings(
    clips: list[np.ndarray],
    digits: list[int],
    count: int,
    seed: int,
    sample_rate: int = 8000,
    lengths: tuple[int, int] = (2, 7),
    pause_seconds: tuple[float, float] = (0.05, 0.4),
    gain_db: tuple[float, float] = (-6.0, 6.0),
    speed: tuple[float, float] = (1.0, 1.0),
    epoch: int = 0,
) -> list[ConnectedRecording]:
    """`count` recordings, each 2-7 (`lengths`) of `clips` (trimmed) in random order, with a uniform pause
    before, between and after them, a uniform gain and a uniform speed factor (tempo and pitch together, as a
    tape played faster) per clip; recording `i` depends on `(seed, epoch, i)` alone."""
    recordings = []
    for index in range(count):
        rng = np.random.default_rng([seed, epoch, index])
        chosen = rng.integers(0, len(clips), rng.integers(lengths[0], lengths[1] + 1))
        pauses = rng.uniform(*pause_seconds, len(chosen) + 1)
        gains = 10 ** (rng.uniform(*gain_db, len(chosen)) / 20)
        speeds = rng.uniform(*speed, len(chosen))
        parts = [np.zeros(round(pauses[0] * sample_rate), np.float32)]
        for clip, gain, factor, pause in zip(chosen, gains, speeds, pauses[1:], strict=True):
            samples = clips[clip]
            if factor != 1.0:
                samples = resample_fft(samples, len(samples), round(len(samples) / factor))
            parts += [samples * gain, np.zeros(round(pause * sample_rate), np.float32)]
        samples = np.concatenate(parts)
        # A faint noise floor, so that the pauses are not digital silence no microphone records.
        samples = samples + rng.normal(0, 10 ** (rng.uniform(-60, -45) / 20), len(samples))
        text = "".join(str(digits[clip]) for clip in chosen)
        recordings.append(ConnectedRecording(np.clip(samples, -1, 1).astype(np.float32), text, tuple(chosen)))
    return recordings


class FeatureStrings(Dataset):
    """Features `(n_mels, frames)` and CTC targets (digit + 1) of one split's recordings, held in memory.

    With `rebuild`, the loader's `set_epoch(epoch)` replaces the recordings by `rebuild(epoch)`'s: fresh strings,
    pauses, gains and speeds every epoch from the same clips, deterministic per (seed, epoch).
    """

    def __init__(
        self,
        recordings: list[ConnectedRecording],
        log_mel: LogMel,
        rebuild: Callable[[int], list[ConnectedRecording]] | None = None,
    ) -> None:
        self.log_mel, self.rebuild, self.epoch = log_mel, rebuild, 0
        self._featurise(recordings)

    def _featurise(self, recordings: list[ConnectedRecording]) -> None:
        with torch.no_grad():
            self.features = [self.log_mel(torch.from_numpy(item.samples)[None])[0] for item in recordings]
        self.texts = [item.digits for item in recordings]

    def set_epoch(self, epoch: int) -> None:
        if self.rebuild is not None and epoch != self.epoch:
            self._featurise(self.rebuild(epoch))
            self.epoch = epoch

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features[index], torch.tensor([int(digit) + 1 for digit in self.texts[index]])


def pad_batch(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
    """Features `(B, M, T_max)` (zero-padded), their frame counts `(B,)`, targets `(B, S_max)`, target lengths."""
    features, targets = zip(*items, strict=True)
    labels = torch.tensor([len(item) for item in targets])
    return *pad_features(features), torch.nn.utils.rnn.pad_sequence(list(targets), batch_first=True), labels


class ConnectedDigitsDataModule(LightningDataModule):
    """Connected-digit recordings as log-mel features, built once per split and held in memory.

    Args:
        dataset: `procedural` (SYNTHETIC words standing in for the digits, offline), `fsdd` (official split: strings
            of index 0-4 clips are test, validation clips are carved from the training clips) or `csv`
            (`transcripts`; test = validation).
        data_dir: FSDD's `recordings/` folder (default `$DATA_ROOT/free-spoken-digit-dataset/recordings`).
        transcripts: a `path,transcript` CSV of your own recordings (`dataset: csv`).
        sample_rate: clips must have it.
        n_fft: FFT size of the log-mel features.
        hop_length: samples between feature frames.
        n_mels: mel bands.
        val_fraction: share of each digit's training clips (or of the CSV rows) held out for validation.
        split_seed: seed of the validation draw and of the recordings (train, val and test use seed + 0, 1, 2).
        train_recordings: connected recordings built from the training clips.
        eval_recordings: recordings built for validation and for test, each.
        min_digits: fewest digits per recording.
        max_digits: most digits per recording.
        pause_seconds: range of the pause before, between and after the digits.
        gain_db: range of each clip's gain.
        speed: range of each training clip's speed factor (tempo and pitch, as a tape played faster).
        fresh_strings: build new training strings (digits, pauses, gains, speeds) from the same clips every epoch.
        procedural_clips: single-word training clips of the procedural set; validation and test get a quarter.
        batch_size: training batch size.
        eval_batch_size: validation/test batch size.
        time_masks: SpecAugment time masks per training recording.
        time_mask_frames: widest time mask.
        freq_masks: SpecAugment frequency masks per training recording.
        freq_mask_bands: widest frequency mask.
        num_workers: DataLoader workers (items are in memory, so 0 is fine).
        predict_dir: folder of `.wav` recordings to transcribe with `predict`.
    """

    def __init__(
        self,
        dataset: Literal["procedural", "fsdd", "csv"] = "procedural",
        data_dir: str | None = None,
        transcripts: str | None = None,
        sample_rate: int = 8000,
        n_fft: int = 256,
        hop_length: int = 80,
        n_mels: int = 40,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        train_recordings: int = 3000,
        eval_recordings: int = 500,
        min_digits: int = 2,
        max_digits: int = 7,
        pause_seconds: tuple[float, float] = (0.05, 0.4),
        gain_db: tuple[float, float] = (-6.0, 6.0),
        speed: tuple[float, float] = (0.9, 1.1),
        fresh_strings: bool = True,
        procedural_clips: int = 400,
        batch_size: int = 16,
        eval_batch_size: int = 100,
        time_masks: int = 2,
        time_mask_frames: int = 10,
        freq_masks: int = 2,
        freq_mask_bands: int = 5,
        num_workers: int = 0,
        predict_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        require_at_least(1, batch_size=batch_size, eval_batch_size=eval_batch_size, n_mels=n_mels)
        require_at_least(
            1, train_recordings=train_recordings, eval_recordings=eval_recordings, min_digits=min_digits
        )
        if max_digits < min_digits:
            raise UserInputError(
                f"max_digits={max_digits} is below min_digits={min_digits}; raise --data.max_digits"
            )
        if dataset == "csv" and transcripts is None:
            raise UserInputError("dataset 'csv' needs --data.transcripts pointing at a path,transcript CSV")
        self.class_names, self.n_mels = list(DIGITS), n_mels
        self.log_mel = LogMel(sample_rate, n_fft, hop_length, n_mels)
        self.recordings: dict[str, list[ConnectedRecording]] = {}
        # Per split, the clip each `ConnectedRecording.clips` index points at (FSDD file names).
        self.clip_names: dict[str, list[str]] = {}
        self.datasets: dict[str, FeatureStrings] = {}
        self.data_source: str | None = None

    def setup(self, stage: str) -> None:
        if self.datasets or stage == "predict":  # predict reads only its folder
            return
        rebuild = None
        if self.hparams.dataset == "csv":
            self.recordings = self._csv()
        else:
            self.recordings, rebuild = self._joined()
        for name, recordings in self.recordings.items():
            self.datasets[name] = FeatureStrings(
                recordings, self.log_mel, rebuild if name == "train" else None
            )
        seconds = sum(len(item.samples) for item in self.recordings["train"]) / self.hparams.sample_rate
        sizes = ", ".join(f"{name} {len(items)}" for name, items in self.recordings.items())
        rank_zero_info(
            f"connected digits: {self.data_source} ({sizes} recordings, {seconds / 3600:.1f} h of training audio)"
        )

    def feature_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-band mean and std of the training features, `(n_mels,)` each."""
        frames = torch.cat(self.datasets["train"].features, dim=1)  # (M, all frames)
        return frames.mean(dim=1), frames.std(dim=1)

    def _clips(self) -> dict[str, tuple[list[np.ndarray], list[int]]]:
        """Trimmed single-digit clips and their digits per split."""
        hparams = self.hparams
        if hparams.dataset == "procedural":
            self.data_source = (
                "synthetic: procedural formant/chirp words standing in for digits 0-9, not speech"
            )
            rank_zero_info(
                "connected digits: SYNTHETIC procedural words (word i plays digit i), not real speech"
            )
            clips = {}
            for name, seed in PROCEDURAL_SEEDS.items():
                count = (
                    hparams.procedural_clips if name == "train" else max(10, hparams.procedural_clips // 4)
                )
                words = [render_procedural_word(i, hparams.sample_rate, seed) for i in range(count)]
                clips[name] = (
                    [trim_silence(word, hparams.sample_rate) for word in words],
                    [i % 10 for i in range(count)],
                )
                self.clip_names[name] = [f"procedural seed {seed} #{i}" for i in range(count)]
            return clips
        root = fsdd_folder(hparams.data_dir, download=False)
        self.data_source = f"fsdd (connected): {root}"
        files = fsdd_splits(root, None, hparams.val_fraction, hparams.split_seed)
        self.clip_names = {name: [path.name for path, _ in split] for name, split in files.items()}
        return {
            name: ([trim_silence(read_wav(path, hparams.sample_rate), hparams.sample_rate) for path, _ in split],
                   [digit for _, digit in split])
            for name, split in files.items()
        }  # fmt: skip

    def _joined(self) -> tuple[dict[str, list[ConnectedRecording]], Callable | None]:
        """Recordings per split, and what rebuilds the training ones each epoch (`None`: they stay)."""
        hparams, clips = self.hparams, self._clips()
        counts = {
            "train": hparams.train_recordings,
            "val": hparams.eval_recordings,
            "test": hparams.eval_recordings,
        }
        settings = {"sample_rate": hparams.sample_rate, "lengths": (hparams.min_digits, hparams.max_digits),
                    "pause_seconds": tuple(hparams.pause_seconds), "gain_db": tuple(hparams.gain_db)}  # fmt: skip

        def train_strings(epoch: int) -> list[ConnectedRecording]:
            digits = clips["train"]
            return build_recordings(*digits, counts["train"], hparams.split_seed, speed=tuple(hparams.speed),
                                    epoch=epoch, **settings)  # fmt: skip

        # Each split joins only its own clips: no test clip is ever part of a training or validation string.
        recordings = {"train": train_strings(0)} | {
            name: build_recordings(*clips[name], counts[name], hparams.split_seed + offset, **settings)
            for offset, name in ((1, "val"), (2, "test"))
        }
        return recordings, train_strings if hparams.fresh_strings else None

    def _csv(self) -> dict[str, list[ConnectedRecording]]:
        path = Path(self.hparams.transcripts).expanduser()
        rows = read_transcripts(path)
        self.data_source = f"csv: {path}"
        # Stratified by the first digit: a fixed draw that keeps every starting digit in both splits.
        indexed = [(index, int(text[0])) for index, (_, text) in enumerate(rows)]
        train, val = stratified_split(indexed, self.hparams.val_fraction, self.hparams.split_seed)
        split = {
            name: [ConnectedRecording(read_wav(rows[index][0], self.hparams.sample_rate), rows[index][1])
                   for index, _ in part]
            for name, part in (("train", train), ("val", val))
        }  # fmt: skip
        return split | {"test": split["val"]}

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.datasets[split]
        if not len(dataset):
            raise UserInputError(
                f"the {split} split has no recordings; add some or change --data.val_fraction"
            )
        batch_size = self.hparams.batch_size if shuffle else self.hparams.eval_batch_size
        drop_last = shuffle and len(dataset) > batch_size  # equal batches keep batch-norm statistics steady
        loader = ResumableLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                                 collate_fn=pad_batch, num_workers=self.hparams.num_workers)  # fmt: skip
        return loader if shuffle else evaluation_loader(loader, self.trainer)  # under DDP: each string once

    def train_dataloader(self) -> ResumableLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        if self.hparams.predict_dir is None:
            raise UserInputError("predict needs --data.predict_dir pointing at a folder of .wav recordings")
        dataset = PredictRecordings(
            Path(self.hparams.predict_dir).expanduser(), self.log_mel, self.hparams.sample_rate
        )
        return DataLoader(dataset, batch_size=self.hparams.eval_batch_size, collate_fn=pad_recordings,
                          num_workers=self.hparams.num_workers)  # fmt: skip

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self.trainer is None or not self.trainer.training:
            return batch
        features, frames, targets, target_lengths = batch
        hparams = self.hparams
        features = spec_augment(features, hparams.time_masks, hparams.time_mask_frames, hparams.freq_masks,
                                hparams.freq_mask_bands)  # fmt: skip
        return features, frames, targets, target_lengths
