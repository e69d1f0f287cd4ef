"""Spoken-word data: clips decoded once into fixed-length waveforms (cached as a `.pt` file), log-mel features
computed once per split in memory, and training augmentation on batched tensors on the training device.

Sources: the procedural word set (offline, synthetic), FSDD's official split, FSDD leave-one-speaker-out, and any
folder of `<label>/<clip>.wav`.
"""

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset

from common.data import tensor_loader
from common.distributed import evaluation_loader
from common.errors import UserInputError, require_at_least
from common.images import cached
from projects.speech.audio import LogMel, add_white_noise, loudest_window, read_wav, seconds_to_samples
from projects.speech.augment import random_noise, random_time_shift, spec_augment
from projects.speech.procedural import PROCEDURAL_CLASSES, render_procedural_word
from projects.speech.sources import (
    FSDD_CLASSES,
    Files,
    folder_splits,
    fsdd_folder,
    fsdd_splits,
    scan_label_folders,
)

Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # waveforms (N, L) float, lengths (N,), labels (N,)
PROCEDURAL_SEEDS = {"train": 0, "val": 1, "test": 2}  # other seeds, other "speakers" and timings


class PredictFolder(Dataset):
    """Every `.wav` below a folder, as log-mel features; yields `(features (M, T), path)`."""

    def __init__(self, datamodule: "SpeechDataModule", root: Path) -> None:
        self.files = sorted(root.rglob("*.wav")) if root.is_dir() else []
        if not self.files:
            raise UserInputError(
                f"no .wav files found under predict_dir {root}; point it at a folder of clips"
            )
        self.datamodule = datamodule

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        waveforms, lengths, _ = self.datamodule.decode([(self.files[index], -1)])
        return self.datamodule.features(waveforms)[0], str(self.files[index])


class PredictRecordings(Dataset):
    """Every `.wav` below a folder at its full length, as log-mel features `(M, T)` for the connected-digit reader;
    batched by `pad_recordings` into `(features (B, M, T_max), frames (B,), paths)`."""

    def __init__(self, root: Path, log_mel: LogMel, sample_rate: int) -> None:
        self.files = sorted(root.rglob("*.wav")) if root.is_dir() else []
        if not self.files:
            raise UserInputError(
                f"no .wav files found under predict_dir {root}; point it at a folder of recordings"
            )
        self.log_mel, self.sample_rate = log_mel, sample_rate

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        samples = torch.from_numpy(read_wav(self.files[index], self.sample_rate))
        with torch.no_grad():
            return self.log_mel(samples[None])[0], str(self.files[index])


def pad_features(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Features `(M, T_i)` of different lengths as one zero-padded `(B, M, T_max)` and their frame counts `(B,)`."""
    frames = torch.tensor([item.shape[1] for item in features])
    padded = torch.zeros(len(features), features[0].shape[0], int(frames.max()))
    for row, item in enumerate(features):
        padded[row, :, : item.shape[1]] = item
    return padded, frames


def pad_recordings(items: list[tuple[torch.Tensor, str]]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    features, paths = zip(*items, strict=True)
    return *pad_features(features), list(paths)


class SpeechDataModule(LightningDataModule):
    """Fixed-length clips as log-mel features `(B, n_mels, frames)` with labels; batches of training clips are
    shifted, noised, featurised and masked on the device they train on.

    Args:
        dataset: `procedural` (synthetic words, offline), `fsdd` (official split: index 0-4 test), `fsdd_speaker`
            (leave `test_speaker` out) or `folder` (`<data_dir>/<label>/<clip>.wav`, test = validation).
        data_dir: FSDD's `recordings/` folder (default `$DATA_ROOT/free-spoken-digit-dataset/recordings`), or
            the label-folder root.
        download: fetch FSDD (not built in: says where to put the files).
        test_speaker: the held-out speaker of `fsdd_speaker`.
        sample_rate: clips must have it (or be resampled with `resample`).
        downmix: average stereo files to mono instead of refusing them.
        resample: resample files at other rates instead of refusing them.
        clip_seconds: every clip is padded (centred) or cut (its loudest window) to this length.
        n_fft: FFT size of the log-mel features.
        hop_length: samples between feature frames.
        n_mels: mel bands.
        val_fraction: share of each label's training clips held out for validation.
        split_seed: seed of the validation draw.
        procedural_clips: training clips of the procedural set; validation and test get a quarter each.
        procedural_classes: how many of its 10 words to use.
        batch_size: training batch size.
        eval_batch_size: validation/test/predict batch size.
        time_shift_seconds: largest random shift of a training clip, either way.
        noise_probability: share of training clips given white noise.
        noise_snr_db: range of those clips' signal-to-noise ratios, in dB.
        time_masks: SpecAugment time masks per training clip.
        time_mask_frames: widest time mask.
        freq_masks: SpecAugment frequency masks per training clip.
        freq_mask_bands: widest frequency mask.
        test_noise_snr_db: add white noise at this SNR to the test clips (fixed seed), to measure robustness.
        cache_dir: where decoded waveforms are cached, so later runs never read the WAVs again; `None` turns it off.
        num_workers: DataLoader workers (batches are slices of in-memory tensors, so 0 is fine).
        predict_dir: folder of `.wav` clips to classify with `predict`.
    """

    def __init__(
        self,
        dataset: Literal["procedural", "fsdd", "fsdd_speaker", "folder"] = "procedural",
        data_dir: str | None = None,
        download: bool = False,
        test_speaker: str = "george",
        sample_rate: int = 8000,
        downmix: bool = False,
        resample: bool = False,
        clip_seconds: float = 1.0,
        n_fft: int = 256,
        hop_length: int = 80,
        n_mels: int = 40,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        procedural_clips: int = 1000,
        procedural_classes: int = 10,
        batch_size: int = 64,
        eval_batch_size: int = 500,
        time_shift_seconds: float = 0.1,
        noise_probability: float = 0.0,
        noise_snr_db: tuple[float, float] = (0.0, 20.0),
        time_masks: int = 2,
        time_mask_frames: int = 10,
        freq_masks: int = 2,
        freq_mask_bands: int = 5,
        test_noise_snr_db: float | None = None,
        cache_dir: str | None = ".cache/speech",
        num_workers: int = 0,
        predict_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        require_at_least(1, batch_size=batch_size, eval_batch_size=eval_batch_size, n_mels=n_mels)
        require_at_least(1, sample_rate=sample_rate, hop_length=hop_length, n_fft=n_fft)
        require_at_least(0, num_workers=num_workers, time_masks=time_masks, freq_masks=freq_masks)
        if not 2 <= procedural_classes <= len(PROCEDURAL_CLASSES):
            raise UserInputError(f"procedural_classes={procedural_classes} must be between 2 and 10")
        if dataset == "folder" and data_dir is None:
            raise UserInputError(
                "dataset 'folder' needs --data.data_dir pointing at <label>/<clip>.wav folders"
            )
        if dataset == "folder":  # a bad layout stops here, before anything is decoded
            scan_label_folders(Path(data_dir).expanduser())
        self.clip_samples = seconds_to_samples(clip_seconds, sample_rate)
        self.n_mels, self.frames = n_mels, self.clip_samples // hop_length + 1  # the features' shape
        self.log_mel = LogMel(sample_rate, n_fft, hop_length, n_mels)
        self.splits: dict[str, Split] = {}
        self.data_source: str | None = None  # what `setup` read, for the run's config and logs
        self.features_of: dict[str, torch.Tensor] = {}  # (N, n_mels, frames) per split, computed once

    @property
    def class_names(self) -> list[str]:
        if self.hparams.dataset == "procedural":
            return PROCEDURAL_CLASSES[: self.hparams.procedural_classes]
        if self.hparams.dataset == "folder":
            return list(scan_label_folders(Path(self.hparams.data_dir).expanduser()))
        return FSDD_CLASSES

    def setup(self, stage: str) -> None:
        if stage == "predict" or self.splits:
            return
        self.splits = self._procedural() if self.hparams.dataset == "procedural" else self._load_cached()
        for name, (waveforms, lengths, _) in self.splits.items():
            if name == "test" and self.hparams.test_noise_snr_db is not None:
                noise = torch.Generator().manual_seed(1234)  # the same noisy test set in every run
                waveforms = add_white_noise(waveforms, lengths, self.hparams.test_noise_snr_db, noise)
            self.features_of[name] = self.features(waveforms)
        sizes = ", ".join(f"{name} {len(split[2])}" for name, split in self.splits.items())
        rank_zero_info(
            f"speech data: {self.hparams.dataset} ({sizes} clips), features ({self.n_mels} mels, {self.frames} frames)"
        )

    @torch.no_grad()
    def features(self, waveforms: torch.Tensor, chunk: int = 500) -> torch.Tensor:
        """Log-mel features `(N, n_mels, frames)` of waveforms `(N, L)`, in chunks to bound the memory."""
        log_mel = self.log_mel.to(waveforms.device)
        return torch.cat([log_mel(part) for part in waveforms.split(chunk)]) if len(waveforms) else waveforms

    def feature_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-band mean and std of the clean training features, `(n_mels,)` each."""
        features = self.features_of["train"]
        return features.mean(dim=(0, 2)), features.std(dim=(0, 2))

    # ---- decoding and the waveform cache ----

    def decode(self, files: Files) -> Split:
        """Read, check and cut `files` to `clip_samples` each."""
        settings = self.hparams.sample_rate, self.hparams.downmix, self.hparams.resample
        waveforms, lengths = np.zeros((len(files), self.clip_samples), np.float32), []
        for row, (path, _) in enumerate(files):
            samples = read_wav(path, *settings)
            waveforms[row] = loudest_window(samples, self.clip_samples)
            lengths.append(min(len(samples), self.clip_samples))
        labels = torch.tensor([label for _, label in files], dtype=torch.long)
        return torch.from_numpy(waveforms), torch.tensor(lengths, dtype=torch.long), labels

    def _file_splits(self) -> tuple[Path, dict[str, Files]]:
        hparams = self.hparams
        if hparams.dataset == "folder":
            root = Path(hparams.data_dir).expanduser()
            self.data_source = f"folder: {root}"
            return root, folder_splits(root, hparams.val_fraction, hparams.split_seed)[0]
        root = fsdd_folder(hparams.data_dir, hparams.download)
        self.data_source = f"{hparams.dataset}: {root}"
        speaker = hparams.test_speaker if hparams.dataset == "fsdd_speaker" else None
        return root, fsdd_splits(root, speaker, hparams.val_fraction, hparams.split_seed)

    def _load_cached(self) -> dict[str, Split]:
        root, files = self._file_splits()

        # A folder has no test split of its own: its validation clips are decoded once and serve both.
        def decode() -> dict[str, Split]:
            return {
                name: self.decode(split)
                for name, split in files.items()
                if name != "test" or split is not files["val"]
            }

        if self.hparams.cache_dir is None:
            return self._test_is_val(decode())
        hparams = self.hparams
        settings = (hparams.dataset, hparams.test_speaker, hparams.sample_rate, hparams.downmix, hparams.resample,
                    self.clip_samples, hparams.val_fraction, hparams.split_seed)  # fmt: skip
        return self._test_is_val(cached(Path(hparams.cache_dir), hparams.dataset, root, settings, decode))

    @staticmethod
    def _test_is_val(splits: dict[str, Split]) -> dict[str, Split]:
        return splits if "test" in splits else splits | {"test": splits["val"]}

    def _procedural(self) -> dict[str, Split]:
        classes, splits = self.hparams.procedural_classes, {}
        self.data_source = (
            "synthetic: procedural formant/chirp words (projects/speech/procedural.py), not speech"
        )
        rank_zero_info(
            f"procedural word set: SYNTHETIC formant/chirp 'words' ({classes} classes), not real speech"
        )
        for name, seed in PROCEDURAL_SEEDS.items():
            count = (
                self.hparams.procedural_clips
                if name == "train"
                else max(classes, self.hparams.procedural_clips // 4)
            )
            clips = [render_procedural_word(i, self.hparams.sample_rate, seed, classes) for i in range(count)]
            waveforms = torch.from_numpy(
                np.stack([loudest_window(clip, self.clip_samples) for clip in clips])
            )
            lengths = torch.tensor([min(len(clip), self.clip_samples) for clip in clips])
            splits[name] = waveforms, lengths, torch.arange(count) % classes
        return splits

    # ---- loaders and the on-device training transform ----

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        waveforms, lengths, labels = self.splits[split]
        if not len(labels):
            raise UserInputError(f"the {split} split has no clips; add clips or change --data.val_fraction")
        batch_size = self.hparams.batch_size if split == "train" else self.hparams.eval_batch_size
        tensors = (self.features_of[split], labels) + ((waveforms, lengths) if split == "train" else ())
        loader = tensor_loader(
            *tensors, batch_size=batch_size, shuffle=shuffle, num_workers=self.hparams.num_workers
        )
        return loader if shuffle else evaluation_loader(loader, self.trainer)  # under DDP: each clip once

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        if self.hparams.predict_dir is None:
            raise UserInputError("predict needs --data.predict_dir pointing at a folder of .wav clips")
        dataset = PredictFolder(self, Path(self.hparams.predict_dir).expanduser())
        return DataLoader(
            dataset, batch_size=self.hparams.eval_batch_size, num_workers=self.hparams.num_workers
        )

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self.trainer is None or not self.trainer.training or len(batch) < 4:
            return batch[0], batch[1]
        features, labels, waveforms, lengths = batch
        hparams = self.hparams
        shift = round(hparams.time_shift_seconds * hparams.sample_rate)
        if shift > 0 or hparams.noise_probability > 0:  # the waveform changed: featurise it again
            waveforms = random_time_shift(waveforms, shift)
            waveforms = random_noise(
                waveforms, lengths, hparams.noise_probability, tuple(hparams.noise_snr_db)
            )
            features = self.features(waveforms)
        features = spec_augment(features, hparams.time_masks, hparams.time_mask_frames, hparams.freq_masks,
                                hparams.freq_mask_bands)  # fmt: skip
        return features, labels
