"""Lookahead weight averaging, the training callback only the image classifier's airbench recipes use."""

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class Lookahead(Callback):
    """Lookahead weight averaging as airbench uses it (after Zhang et al., 2019).

    Every `interval` optimizer steps a slow copy of the weights (and float buffers) moves toward the
    current ones by `1 - decay`, and the weights are reset to it; `decay` rises as
    `final_decay * progress**3`, so the averaging matters near the end. At the last scheduled step the
    weights become the slow copy, so the final validation and checkpoint use it (a run stopped early by
    `max_time` or early stopping keeps its latest reset weights instead).
    """

    def __init__(self, interval: int = 5, final_decay: float = 0.95**5) -> None:
        self.interval = interval
        self.final_decay = final_decay
        self.slow: dict[str, torch.Tensor] = {}
        self.last_step = 0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.slow:
            self.slow = {
                k: v.detach().clone() for k, v in pl_module.state_dict().items() if v.is_floating_point()
            }

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        step, total = trainer.global_step, trainer.estimated_stepping_batches
        if step == self.last_step:  # gradient accumulation: several batches, one optimizer step
            return
        self.last_step = step
        if step >= total:
            self._update(pl_module, decay=1.0)
        elif step % self.interval == 0:
            self._update(pl_module, decay=self.final_decay * (step / total) ** 3)

    @torch.no_grad()
    def _update(self, pl_module: LightningModule, decay: float) -> None:
        state = pl_module.state_dict()
        for name, slow in self.slow.items():
            slow.lerp_(state[name], 1 - decay)
            state[name].copy_(slow)

    def state_dict(self) -> dict[str, Any]:
        return {"slow": self.slow}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.slow = state_dict["slow"]
