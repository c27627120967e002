"""Is it text? A look at the first bytes of a file before a stage reads it as UTF-8 text.

Decoding with errors="replace" (as every reader must, for the odd bad byte of a real dump)
would otherwise turn a gzip file, an executable or UTF-16 into thousands of replacement
characters and a stage that reports success.
"""

from __future__ import annotations

import os
from pathlib import Path

from ja_pretrain.corpus.compression import detect_compression
from ja_pretrain.corpus.encodings import MIN_CONFIDENCE, detect, display_name
from ja_pretrain.errors import UserError
from ja_pretrain.utils.paths import require_file

SNIFF_BYTES = 1 << 16
# A real dump may hold a few bad bytes (the corpus stage counts and replaces them); more than
# this share of the first 64 KiB (and more than a handful) is no longer text with flaws.
MAX_INVALID_SHARE = 0.01
MIN_INVALID = 8
_ARCHIVES = ((b"PK\x03\x04", "a zip archive"), (b"7z\xbc\xaf\x27\x1c", "a 7z archive"),
             (b"\x7fELF", "an executable (ELF)"), (b"%PDF", "a PDF document"))


def binary_reason(head: bytes) -> str | None:
    """Why `head` is binary data (an archive, an executable, UTF-16), or None."""
    for magic, what in _ARCHIVES:
        if head.startswith(magic):
            return f"is {what}, not text"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
        return "holds NUL bytes: binary data or UTF-16 text, not UTF-8 text"
    return None


def _invalid_utf8(head: bytes) -> tuple[int, int]:
    """(characters that do not decode, characters) of `head` read as UTF-8."""
    body = head[:-3] if len(head) == SNIFF_BYTES else head  # a character may be cut at the end
    text = body.decode("utf-8", errors="replace")
    return text.count("\ufffd") - body.count("\ufffd".encode()), len(text)


def is_utf8_text(head: bytes) -> bool:
    """UTF-8 text, perhaps with the odd bad byte of a real dump (which the readers replace and count)."""
    invalid, length = _invalid_utf8(head)
    return invalid <= max(MIN_INVALID, MAX_INVALID_SHARE * length)


def not_text_reason(head: bytes) -> str | None:
    """Why the decompressed bytes `head` (the start of a file) are not UTF-8 text, or None."""
    reason = binary_reason(head)
    if reason or is_utf8_text(head):
        return reason
    invalid, length = _invalid_utf8(head)
    found = detect(head)
    if found.encoding != "utf-8" and found.confidence >= MIN_CONFIDENCE:
        name = display_name(found.encoding)
        return (f"is not UTF-8 text ({invalid:,} of its first {length:,} characters do not decode); it reads as "
                f"{found.describe()}: give it to `ja-pretrain corpus` (which reads it with --encoding "
                f"{found.encoding.replace('_', '-')}), or convert it first with iconv -f {name} -t UTF-8")
    return (f"is not UTF-8 text ({invalid:,} of its first {length:,} characters do not decode) and no Japanese "
            "encoding reads it with confidence; convert it to UTF-8 first")


def check_text_file(path: str | os.PathLike, label: str = "") -> Path:
    """Refuse a file that a text-reading stage would misread: compressed, an archive, binary."""
    file = require_file(path, label)
    with open(file, "rb") as f:
        head = f.read(SNIFF_BYTES)
    where = f"{label} {file}" if label else str(file)
    kind = detect_compression(head)
    if kind:
        raise UserError(f"{where}: is {kind}-compressed; this stage reads plain UTF-8 text. Give it to "
                        "`ja-pretrain corpus` (which decompresses, cleans and splits it) and use its output, "
                        "or decompress it first")
    reason = not_text_reason(head)
    if reason:
        raise UserError(f"{where}: {reason}")
    return file
