"""The procedural word set: SYNTHETIC "words" (not speech), one per class, each a short sequence of vowel-like
formant targets or pitch chirps, rendered at 8 kHz with random speaker-like variation; deterministic per (seed,
index). Offline data for the quickstart and the tests. Write it out as WAV folders with

    uv run python -m projects.speech.procedural data/procedural_words --clips_per_class 20
"""

import wave
from pathlib import Path

import numpy as np

# Vowel formants (F1, F2) in Hz, roughly those of an adult voice (Peterson and Barney, 1952).
VOWELS = {"a": (730, 1090), "i": (270, 2290), "u": (300, 870), "e": (530, 1840), "o": (570, 840)}
# Each word: syllables of (vowel, pitch movement): "rise"/"fall" glide the pitch an octave, "flat" keeps it.
WORDS = {
    "a_i": [("a", "flat"), ("i", "flat")],
    "i_a": [("i", "flat"), ("a", "flat")],
    "u_e": [("u", "flat"), ("e", "flat")],
    "o_o": [("o", "flat"), ("o", "flat")],
    "e_rise": [("e", "rise")],
    "e_fall": [("e", "fall")],
    "a_u_i": [("a", "flat"), ("u", "flat"), ("i", "flat")],
    "i_rise_u": [("i", "rise"), ("u", "flat")],
    "o_fall_a": [("o", "fall"), ("a", "flat")],
    "u_i_u": [("u", "flat"), ("i", "flat"), ("u", "flat")],
}
PROCEDURAL_CLASSES = list(WORDS)


def render_procedural_word(
    index: int, sample_rate: int = 8000, seed: int = 0, num_classes: int = 10
) -> np.ndarray:
    """Clip `index` of the procedural set, float32 `(N,)` in [-1, 1]; its class is `index % num_classes`.

    A harmonic source (pitch 90-250 Hz, the "speaker") is shaped by two formant resonances that glide between
    the word's vowel targets. Formants shift by up to +-12% (vocal-tract length), syllables last 0.12-0.25 s,
    the word starts after 0-0.15 s of silence, and low background noise is added, so no two clips are alike.
    """
    rng = np.random.default_rng([seed, index])
    syllables = WORDS[PROCEDURAL_CLASSES[index % num_classes]]
    durations = rng.uniform(0.12, 0.25, len(syllables))
    length = int(sample_rate * durations.sum())
    time = np.arange(length) / sample_rate
    boundaries = np.concatenate([[0.0], np.cumsum(durations)])
    # Piecewise targets per syllable, smoothed by interpolating between syllable centres.
    centres = (boundaries[:-1] + boundaries[1:]) / 2
    scale = rng.uniform(0.88, 1.12)
    f1 = np.interp(time, centres, [VOWELS[vowel][0] * scale for vowel, _ in syllables])
    f2 = np.interp(time, centres, [VOWELS[vowel][1] * scale for vowel, _ in syllables])
    base_pitch = rng.uniform(90, 250)
    pitch = np.full(length, base_pitch)
    for (start, end), (_, movement) in zip(
        zip(boundaries[:-1], boundaries[1:], strict=True), syllables, strict=True
    ):
        inside = (time >= start) & (time < end)
        progress = (time[inside] - start) / (end - start)
        if movement != "flat":
            pitch[inside] = base_pitch * 2 ** (progress if movement == "rise" else 1 - progress)
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    harmonics = np.arange(1, int(sample_rate / 2 / pitch.min()))[:, None]  # (H, 1)
    frequency = harmonics * pitch  # (H, N)
    gain = sum(1 / (1 + ((frequency - formant) / 90) ** 2) for formant in (f1, f2))
    gain = np.where(frequency < sample_rate / 2, gain, 0)  # no aliased harmonics
    voice = (gain * np.sin(harmonics * phase)).sum(axis=0)
    envelope = np.minimum(1, np.minimum(time, time[-1] - time) / 0.02)  # 20 ms fade in and out
    voice = voice * envelope / (np.abs(voice).max() + 1e-9) * rng.uniform(0.3, 0.9)
    silence = np.zeros(int(rng.uniform(0, 0.15) * sample_rate))
    clip = np.concatenate([silence, voice, silence[: len(silence) // 2]])
    clip = clip + rng.normal(0, 0.005, len(clip))
    return np.clip(clip, -1, 1).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, sample_rate: int = 8000, channels: int = 1) -> None:
    """16-bit PCM WAV of float samples in [-1, 1] (`(N,)`, or `(N, channels)` interleaved)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as file:
        file.setnchannels(channels)
        file.setsampwidth(2)
        file.setframerate(sample_rate)
        file.writeframes((np.clip(samples, -1, 1) * 32767).round().astype("<i2").tobytes())


def write_procedural_words(
    out: str, clips_per_class: int = 20, sample_rate: int = 8000, seed: int = 0, num_classes: int = 10
) -> list[Path]:
    """Write the procedural set as `<out>/<class>/<index>.wav`, the folder layout `--data.dataset folder` reads."""
    paths = []
    for index in range(clips_per_class * num_classes):
        path = Path(out) / PROCEDURAL_CLASSES[index % num_classes] / f"{index:05d}.wav"
        write_wav(path, render_procedural_word(index, sample_rate, seed, num_classes), sample_rate)
        paths.append(path)
    return paths


if __name__ == "__main__":
    from jsonargparse import CLI

    print(f"wrote {len(CLI(write_procedural_words))} SYNTHETIC word clips (not speech)")
