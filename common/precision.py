"""bf16 only where it is fast: on a CPU without bf16 kernels, bf16 autocast is 10-40x slower than float32."""

import torch
from lightning.pytorch.utilities import rank_zero_warn


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 on this CPU (x86 with AVX-512 BW/VL/DQ or AMX, or Arm with BF16 instructions).

    Without it (x86 with AVX2 only, as most laptops and AMD CPUs before Zen 4), bf16 ops fall back to slow
    reference kernels: a training step of the SegRNN recipe took 105 s instead of 2.7 s in float32 on a Zen 3 EPYC.
    """
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def runs_on_cpu(accelerator: object) -> bool:
    """Whether a Trainer with this `accelerator` setting ("auto", "cpu", "gpu", ...) will run on the CPU."""
    if accelerator == "cpu":
        return True
    return accelerator == "auto" and not torch.cuda.is_available() and not torch.backends.mps.is_available()


def fast_precision(precision: object, accelerator: object = "auto") -> object:
    """`precision`, or "32-true" for a bf16 precision on a CPU without native bf16 (with a warning saying so).

    float16 counts as bf16 there: Lightning runs `16-mixed` on a CPU as bf16 autocast.
    """
    half = str(precision).startswith(("bf16", "16"))
    if half and runs_on_cpu(accelerator) and not cpu_has_native_bf16():
        rank_zero_warn(
            f"precision {precision} runs 10-40x slower than float32 on this CPU (PyTorch has no fast bf16 kernels "
            "for it: on x86 they need AVX-512 or AMX), so this run trains in 32-true instead."
        )
        return "32-true"
    return precision
