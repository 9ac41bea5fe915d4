"""Which device and precision a model runs on, decided once for training and inference.

A device torch cannot use here is refused with a message before any model is loaded,
instead of a traceback deep inside torch or a silent fall-back to the CPU. Training
(mixed precision), ``veille evaluate``, ``veille predict`` and ``veille serve`` all take
their default precision from :func:`half_precision`, so a model is scored at the
precision it is served at.
"""

from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str) -> torch.device:
    """``auto`` (the GPU when there is one), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; ValueError otherwise."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        target = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r} (auto, cpu, cuda, cuda:N, mps)") from None
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: no CUDA GPU is usable here (torch {torch.__version__}); use cpu or auto")
    if target.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: MPS is not available here; use cpu or auto")
    return target


def half_precision(device: torch.device) -> str | None:
    """bfloat16 on GPUs that support it, else float16; None (float32) off GPU, where half precision is slower."""
    if device.type != "cuda":
        return None
    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


def inference_dtype(device: torch.device, requested: str | None = None) -> str:
    """The precision inference runs at: ``requested`` if given, else the policy of :func:`half_precision`."""
    if requested is not None and requested not in DTYPES:
        raise ValueError(f"unknown dtype {requested!r} (choose from {', '.join(DTYPES)})")
    return requested or half_precision(device) or "float32"
