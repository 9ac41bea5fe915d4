"""The request limits and batching settings of ``veille serve``, in a module light enough for the CLI's defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeLimits:
    max_request_bytes: int = 2_000_000  # larger bodies get 413
    max_texts: int = 256  # texts per /v1/extract request (422 above)
    max_text_chars: int = 100_000  # characters per text (422 above)
    max_batch_sentences: int = 256  # sentences of concurrent requests run in one model call
    max_wait_ms: float = 5.0  # how long a request waits for others to share its batch


DEFAULT_LIMITS = ServeLimits()
