"""Japanese text in the encodings it is found in: UTF-8, CP932 (Windows Shift_JIS), Shift_JIS,
EUC-JP and ISO-2022-JP; detecting which one a file is in, with a stated confidence; and reading
such a file as UTF-8, so that every reader downstream sees one encoding.

Detection decodes the first 64 KiB strictly with each candidate and scores how Japanese the
result is: the share of its non-ASCII characters that are hiragana, full-width katakana, CJK
ideographs or CJK punctuation. A wrong guess fails to decode or decodes to something else:
EUC-JP read as CP932 gives half-width katakana and unassigned pairs, CP932 read as EUC-JP fails
on its lead bytes 0x81-0x9F. The confidence is the winner's score less the runner-up's (a
sample that two encodings read equally well says nothing), so plain ASCII text, which every
candidate reads, is UTF-8 with full confidence by the rule that ASCII is UTF-8 (ISO-2022-JP is
7-bit too, and told apart by its escape sequences).

CP932 is always preferred to Shift_JIS proper when both fit: it is a superset that also holds the
Windows characters (①, ㈱, ～, Ⅲ, ¬...) on which Python's and iconv's SHIFT_JIS stop.
"""

from __future__ import annotations

import codecs
import io
import re
from dataclasses import dataclass

# Candidates in order of preference when two read a sample equally well.
CANDIDATES = ("utf-8", "cp932", "euc_jp", "iso2022_jp")
# An automatic choice below this confidence is not trusted; the user names the encoding.
MIN_CONFIDENCE = 0.5
# Kana, CJK ideographs and punctuation, full-width forms, and the symbols of Japanese documents
# (①, ㈱, ㎡, Ⅲ, ※, ■): what a correct decoding of Japanese text is made of.
_JAPANESE = re.compile(
    r"[\u2150-\u218f\u2460-\u24ff\u2500-\u25ff\u3000-\u30ff\u3200-\u33ff\u3400-\u4dbf\u4e00-\u9fff\uff01-\uff5e\u203b]"
)
_ALIASES = {"sjis": "shift_jis", "shift-jis": "shift_jis", "s-jis": "shift_jis", "windows-31j": "cp932",
            "ms932": "cp932", "eucjp": "euc_jp", "euc-jp": "euc_jp", "utf8": "utf-8", "jis": "iso2022_jp",
            "iso-2022-jp": "iso2022_jp"}


class EncodingMismatch(Exception):
    """The bytes are not valid in the encoding they are read with."""


@dataclass(frozen=True)
class Detection:
    encoding: str
    confidence: float  # 0..1, see the module docstring
    runner_up: str | None = None

    def describe(self) -> str:
        return f"{display_name(self.encoding)} (confidence {self.confidence:.2f})"


def canonical(name: str) -> str:
    """The codec name for a user's spelling (`SJIS`, `Windows-31J`, `EUC-JP`), or a UserError-ready
    ValueError naming the ones we know."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    try:
        codec = codecs.lookup(key).name
    except LookupError:
        raise ValueError(f"unknown encoding {name!r}; Japanese text is usually utf-8, cp932, euc-jp or iso-2022-jp") from None
    return {"utf_8": "utf-8", "euc-jp": "euc_jp", "iso2022-jp": "iso2022_jp"}.get(codec.replace("-", "_"), codec)


def display_name(encoding: str) -> str:
    return {"utf-8": "UTF-8", "cp932": "CP932", "euc_jp": "EUC-JP", "iso2022_jp": "ISO-2022-JP",
            "shift_jis": "Shift_JIS"}.get(encoding, encoding)


def _decoded(sample: bytes, encoding: str) -> str | None:
    """`sample` decoded strictly; a character cut at the end of the sample is not an error."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        return decoder.decode(sample, final=False)
    except UnicodeDecodeError:
        return None


def japanese_score(text: str) -> float:
    """Share of the non-ASCII characters of `text` that are common Japanese characters."""
    non_ascii = sum(1 for ch in text if ord(ch) > 0x7F)
    if not non_ascii:
        return 1.0
    return len(_JAPANESE.findall(text)) / non_ascii


def detect(sample: bytes) -> Detection:
    """The encoding of `sample` (the first bytes of a file) and how sure that is."""
    if sample.startswith(codecs.BOM_UTF8):
        return Detection("utf-8", 1.0)
    if sample.isascii():
        # 7-bit: UTF-8 (ASCII) unless ISO-2022-JP's escape sequences switch to kanji.
        text = _decoded(sample, "iso2022_jp") if b"\x1b$" in sample else None
        return Detection("iso2022_jp", round(japanese_score(text), 4)) if text else Detection("utf-8", 1.0)
    scores = []
    for encoding in CANDIDATES[:3]:
        text = _decoded(sample, encoding)
        if text is not None:
            scores.append((japanese_score(text), encoding))
    if not scores:
        return Detection("utf-8", 0.0)
    scores.sort(key=lambda s: -s[0])  # stable: CANDIDATES order breaks ties
    best_score, best = scores[0]
    runner_score, runner = scores[1] if len(scores) > 1 else (0.0, None)
    return Detection(best, round(max(0.0, best_score - runner_score), 4), runner)


def check_encoding(stream: io.BufferedIOBase, encoding: str, block: int = 1 << 20) -> None:
    """Decode the whole stream strictly; raise EncodingMismatch at the first invalid byte."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    while True:
        data = stream.read(block)
        try:
            decoder.decode(data, final=not data)
        except UnicodeDecodeError as err:
            where = offset + err.start
            raise EncodingMismatch(_mismatch_message(encoding, where, data[err.start : err.start + 2])) from None
        if not data:
            return
        offset += len(data)


def _mismatch_message(encoding: str, offset: int, found: bytes) -> str:
    message = f"byte {offset:,} (0x{found.hex()}) is not valid {display_name(encoding)}"
    if encoding == "shift_jis":
        message += ("; Windows files are CP932, which Shift_JIS proper rejects (①, ㈱, ～ and friends): "
                    "try --encoding cp932")
    return message


class Utf8Transcoder(io.RawIOBase):
    """A byte stream in `encoding` read as UTF-8 bytes (check_encoding has vouched for it)."""

    def __init__(self, raw: io.BufferedIOBase, encoding: str):
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._pending = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending and not self._done:
            data = self._raw.read(1 << 20)
            self._done = not data
            self._pending = self._decoder.decode(data, final=self._done).encode("utf-8")
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()
