"""Training augmentations on batched tensors, on the device that trains: random time shift and white background
noise on waveforms `(B, N)`, SpecAugment time and frequency masks on log-mel features `(B, M, T)`."""

import torch

from projects.speech.audio import add_white_noise


def random_time_shift(waveforms: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Shift each waveform by its own uniform offset in [-max_shift, max_shift] samples, padding with zeros."""
    if max_shift <= 0:
        return waveforms
    batch, length = waveforms.shape
    shift = torch.randint(-max_shift, max_shift + 1, (batch, 1), device=waveforms.device)
    source = torch.arange(length, device=waveforms.device) - shift  # (B, N): where each sample comes from
    inside = (source >= 0) & (source < length)
    return torch.where(inside, waveforms.gather(1, source.clamp(0, length - 1)), 0.0)


def random_noise(
    waveforms: torch.Tensor, lengths: torch.Tensor, probability: float, snr_range: tuple[float, float]
) -> torch.Tensor:
    """White noise on a random `probability` share of the clips, each at a uniform SNR (dB) from `snr_range`."""
    if probability <= 0:
        return waveforms
    batch = len(waveforms)
    low, high = snr_range
    snr = low + (high - low) * torch.rand(batch, device=waveforms.device)
    noisy = add_white_noise(waveforms, lengths, snr)
    chosen = torch.rand(batch, device=waveforms.device) < probability
    return torch.where(chosen[:, None], noisy, waveforms)


def mask_axis(features: torch.Tensor, axis: int, masks: int, max_width: int) -> torch.Tensor:
    """`masks` bands of uniform width in [0, max_width] along `axis` (1: mel, 2: time), set to each clip's mean."""
    if masks <= 0 or max_width <= 0:
        return features
    batch, size = features.shape[0], features.shape[axis]
    positions = torch.arange(size, device=features.device)  # (S,)
    width = torch.randint(0, max_width + 1, (batch, masks, 1), device=features.device)
    start = (torch.rand(batch, masks, 1, device=features.device) * (size - width + 1)).long()
    masked = ((positions >= start) & (positions < start + width)).any(dim=1)  # (B, S)
    masked = masked[:, :, None] if axis == 1 else masked[:, None, :]
    # The clip's mean, not 0: a log-mel of 0 would be a loud band, not an absent one.
    return torch.where(masked, features.mean(dim=(1, 2), keepdim=True), features)


def spec_augment(
    features: torch.Tensor, time_masks: int, time_width: int, freq_masks: int, freq_width: int
) -> torch.Tensor:
    """SpecAugment's masking (Park et al., 2019) without time warping, on `(B, M, T)` log-mel features."""
    features = mask_axis(features, 2, time_masks, time_width)
    return mask_axis(features, 1, freq_masks, freq_width)
