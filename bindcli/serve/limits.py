"""What one request may ask of the server: sizes, counts and lengths past which it is refused
before any work is done (a body or a file too large is 413; a text too long fails itself)."""

from __future__ import annotations

import dataclasses

MIB = 1 << 20


@dataclasses.dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 256 * MIB
    max_file_bytes: int = 64 * MIB
    max_inputs: int = 2048  # OpenAI's limit, so that its clients' batches fit
    max_text_chars: int = 4096  # CLIP reads 77 tokens; more is only work for the tokenizer
