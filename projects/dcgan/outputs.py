"""What a DCGAN shows and writes, as a mixin of its module: per-epoch sample grids (fixed latents and a latent
interpolation) and, for `predict`, one PNG per sample plus a grid."""

from pathlib import Path

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torchvision.utils import save_image

from common import media
from common.runs import run_directory


def slerp(start: torch.Tensor, end: torch.Tensor, steps: int) -> torch.Tensor:
    """Spherical interpolation `(steps, D)` between latents `(D,)`: stays at the radius Gaussian latents live on."""
    weights = torch.linspace(0, 1, steps, device=start.device)[:, None]
    angle = torch.arccos(F.cosine_similarity(start, end, dim=0).clamp(-1 + 1e-6, 1 - 1e-6))
    return (torch.sin((1 - weights) * angle) * start + torch.sin(weights * angle) * end) / torch.sin(angle)


class SampleOutputs:
    """The media and predict hooks of `DCGAN`; they use its `sample`, `seeded_latents`, `draw_codes`, `hparams`,
    `fixed_latents` and `refresh_sampler_statistics`."""

    def on_train_epoch_end(self) -> None:
        """The fixed-latent grid (compare it across epochs) and a latent interpolation grid."""
        self.refresh_sampler_statistics()
        fixed = self.fixed_latents
        codes = self.draw_codes(len(fixed), torch.Generator().manual_seed(self.hparams.sample_seed)).to(
            self.device
        )
        grid = self.sample(torch.cat([fixed, codes], dim=1))
        media.log_image_grid(self.trainer, "samples/fixed_latents", grid, nrow=8)
        rows = min(4, len(fixed) // 2)
        steps = self.hparams.interpolation_steps
        paths = [
            torch.cat(
                [slerp(fixed[2 * row], fixed[2 * row + 1], steps), codes[2 * row].expand(steps, -1)], dim=1
            )
            for row in range(rows)
        ]
        media.log_image_grid(self.trainer, "samples/interpolation", self.sample(torch.cat(paths)), nrow=steps)

    def on_predict_epoch_start(self) -> None:
        self.predicted_images = []

    def predict_step(self, batch: torch.Tensor, batch_idx: int) -> list[dict]:
        """`batch`: indices of the samples to generate; sample i always comes from the same latent."""
        latents = torch.cat(
            [self.seeded_latents(1, self.hparams.sample_seed + 10_000 + int(i)) for i in batch]
        )
        images = self.sample(latents).float().cpu()
        folder = self._sample_dir()
        rows = []
        for index, image in zip(batch.tolist(), images, strict=True):
            path = folder / f"sample_{index:05d}.png"
            save_image(image, path, normalize=True, value_range=(-1, 1))
            rows.append({"index": index, "file": str(path)})
        self.predicted_images.append(images)
        return rows

    def on_predict_epoch_end(self) -> None:
        images = torch.cat(self.predicted_images)[:64]
        path = self._sample_dir() / "grid.png"
        save_image(images, path, nrow=8, normalize=True, value_range=(-1, 1), padding=2, pad_value=1.0)
        rank_zero_info(f"Wrote {len(torch.cat(self.predicted_images))} samples and {path}")

    def _sample_dir(self) -> Path:
        folder = Path(self.sample_dir) if self.sample_dir else run_directory(self.trainer) / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
