"""Audio in and features out: WAV reading with the standard `wave` module, resampling, fixed-length windows,
log-mel features with `torch.stft` and a mel filterbank, and white noise at a given SNR."""

import functools
import math
import wave
from pathlib import Path

import numpy as np
import torch

from common.errors import UserInputError


def read_wav(path: Path, sample_rate: int, downmix: bool = False, resample: bool = False) -> np.ndarray:
    """Samples of a PCM WAV file as float32 in [-1, 1], `(N,)`, at `sample_rate`.

    Stereo files and other rates are refused unless `downmix` / `resample` allow them: a silent conversion
    would hide that a folder mixes recording set-ups. Every problem is a one-line error naming the file.
    """
    try:
        with wave.open(str(path), "rb") as file:
            channels, width, rate = file.getnchannels(), file.getsampwidth(), file.getframerate()
            raw = file.readframes(file.getnframes())
    except EOFError:
        raise UserInputError(f"{path} is empty or truncated; replace it with a PCM WAV file") from None
    except (wave.Error, OSError) as error:  # "unknown format: 3" for float WAVs, "not start with RIFF" ...
        raise UserInputError(
            f"{path} is not a PCM WAV file ({error}); convert it, e.g. `ffmpeg -i in -acodec pcm_s16le out.wav`"
        ) from None
    if not raw:
        raise UserInputError(f"{path} has no samples; remove it or record it again")
    samples = pcm_to_float(raw, width, path).reshape(-1, channels)
    if channels > 1 and not downmix:
        raise UserInputError(
            f"{path} has {channels} channels, not 1; convert it to mono or set --data.downmix true"
        )
    samples = samples.mean(axis=1)
    if rate != sample_rate:
        if not resample:
            raise UserInputError(
                f"{path} is sampled at {rate} Hz, not {sample_rate} Hz; convert it, set --data.resample true, "
                f"or set --data.sample_rate {rate}"
            )
        samples = resample_fft(samples, rate, sample_rate)
    return samples.astype(np.float32)


def pcm_to_float(raw: bytes, width: int, path: Path) -> np.ndarray:
    """Interleaved PCM bytes (8-bit unsigned, 16/24/32-bit signed little-endian) to floats in [-1, 1]."""
    if width == 1:
        return (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
    if width == 3:  # no numpy dtype: put each 3-byte sample in the top of an int32
        padded = np.zeros((len(raw) // 3, 4), np.uint8)
        padded[:, 1:] = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        return padded.view("<i4")[:, 0].astype(np.float32) / 2**31
    if width in (2, 4):
        return np.frombuffer(raw, f"<i{width}").astype(np.float32) / 2 ** (8 * width - 1)
    raise UserInputError(f"{path} has {8 * width}-bit samples; convert it to 16-bit PCM")


def resample_fft(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling by truncating or zero-padding the spectrum (exact for short clips)."""
    length = max(1, round(len(samples) * target_rate / source_rate))
    spectrum = np.fft.rfft(samples)
    spectrum = spectrum[: length // 2 + 1] if length < len(samples) else spectrum
    return np.fft.irfft(spectrum, n=length) * (length / len(samples))


def loudest_window(samples: np.ndarray, length: int) -> np.ndarray:
    """`length` samples: the clip zero-padded at both ends, or its window of most energy when longer.

    FSDD clips are 0.14-2.28 s; the long ones are mostly silence around the word, which this window drops.
    """
    if len(samples) <= length:
        before = (length - len(samples)) // 2
        return np.pad(samples, (before, length - len(samples) - before))
    energy = np.concatenate([[0.0], np.cumsum(samples.astype(np.float64) ** 2)])
    start = int(np.argmax(energy[length:] - energy[:-length]))
    return samples[start : start + length]


@functools.cache
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 20.0) -> torch.Tensor:
    """Triangular HTK-mel filters `(n_fft // 2 + 1, n_mels)`, each normalised to unit area (Slaney-style)."""

    def to_mel(hertz: np.ndarray) -> np.ndarray:
        return 2595 * np.log10(1 + hertz / 700)

    edges_mel = np.linspace(to_mel(np.array(f_min)), to_mel(np.array(sample_rate / 2)), n_mels + 2)
    edges = 700 * (10 ** (edges_mel / 2595) - 1)  # (n_mels + 2,) Hz
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)[:, None]  # (F, 1)
    lower, centre, upper = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    rising, falling = (bins - lower) / (centre - lower), (upper - bins) / (upper - centre)
    filters = np.clip(np.minimum(rising, falling), 0, None) * (2 / (upper - lower))
    return torch.from_numpy(filters).float()


class LogMel(torch.nn.Module):
    """Log-mel spectrogram of waveforms `(B, N)` -> `(B, n_mels, frames)`, frames = N // hop + 1.

    Args:
        sample_rate: of the waveforms.
        n_fft: FFT size (and Hann window length): 256 at 8 kHz is 32 ms.
        hop_length: samples between frames: 80 at 8 kHz is 10 ms.
        n_mels: mel bands.
    """

    def __init__(self, sample_rate: int = 8000, n_fft: int = 256, hop_length: int = 80, n_mels: int = 40):
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("filters", mel_filterbank(sample_rate, n_fft, n_mels), persistent=False)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        spectrum = torch.stft(
            waveforms, self.n_fft, self.hop_length, window=self.window, center=True, return_complex=True
        )  # (B, F, frames)
        power = spectrum.real.square() + spectrum.imag.square()
        mel = torch.einsum("bft,fm->bmt", power, self.filters)
        return torch.log(mel + 1e-6)  # the floor keeps silence finite


def add_white_noise(
    waveforms: torch.Tensor, lengths: torch.Tensor, snr_db: torch.Tensor | float, generator=None
) -> torch.Tensor:
    """`waveforms` `(B, N)` plus Gaussian white noise at `snr_db` (scalar or `(B,)`), over the whole window.

    The signal power is measured over each clip's own `lengths` samples (not the zero padding), so 0 dB means
    noise as loud as the speech; the noise fills the whole window, as a noisy room would.
    """
    power = waveforms.square().sum(dim=1) / lengths.clamp(min=1)  # (B,)
    snr = torch.as_tensor(snr_db, dtype=waveforms.dtype, device=waveforms.device)
    noise_std = torch.sqrt(power / 10 ** (snr / 10))  # (B,)
    noise = torch.randn(waveforms.shape, generator=generator, device=waveforms.device, dtype=waveforms.dtype)
    return waveforms + noise * noise_std[:, None]


def frames_for(samples: int, hop_length: int) -> int:
    """Frames `LogMel` gives for `samples` (centred STFT)."""
    return samples // hop_length + 1


def seconds_to_samples(seconds: float, sample_rate: int) -> int:
    return int(math.ceil(seconds * sample_rate))
