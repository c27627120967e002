"""Open an input file as a stream of decompressed bytes, whatever its compression.

The compression is recognised from the file's first bytes (not its name), so `dump.json` that
is really gzip still works. While the raw file is read, its SHA-256 and the number of raw bytes
consumed are tracked: the manifest records the hash without a second pass over the file, and the
progress bar shows how far into the (compressed) file we are.

A compressed stream that stops before its end marker (an interrupted download) is reported as
`TruncatedInput`, so callers can say which file is broken instead of silently using part of it.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import lzma
import os
import zlib

import zstandard

from ja_pretrain.utils.paths import require_file

READ_BUFFER = 1 << 20

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bz2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


class TruncatedInput(Exception):
    """The compressed stream ended early or is corrupt."""


def detect_compression(head: bytes) -> str | None:
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


class HashingReader(io.RawIOBase):
    """A raw file that hashes what passes through it and counts the bytes."""

    def __init__(self, f: io.BufferedReader):
        self._f = f
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._f.readinto(buffer)
        if n:
            self.sha256.update(memoryview(buffer)[:n])
            self.bytes_read += n
        return n

    def hexdigest(self) -> str:
        """The file's SHA-256; reads (and hashes) whatever the consumer left unread."""
        while block := self._f.read(READ_BUFFER):
            self.sha256.update(block)
            self.bytes_read += len(block)
        return self.sha256.hexdigest()

    def close(self) -> None:
        self._f.close()
        super().close()


def _new_decompressor(kind: str):
    if kind == "gzip":
        return zlib.decompressobj(wbits=31)  # gzip header and CRC-checked trailer
    if kind == "xz":
        return lzma.LZMADecompressor()
    if kind == "bz2":
        return bz2.BZ2Decompressor()
    return zstandard.ZstdDecompressor().decompressobj()


class Decompressor(io.RawIOBase):
    """Decompress a gzip/xz/bz2/zstd stream (also several concatenated members or frames).

    Written over the one-shot decompressor objects rather than gzip.GzipFile & co. for two
    reasons: data is handed on as soon as it is decompressed, so a cut file yields everything
    before the cut (GzipFile loses the whole read that hits the end); and zstandard's stream
    reader returns a cut stream's prefix without any error, so completion is checked here, the
    same way for all four formats.
    """

    def __init__(self, raw: io.RawIOBase, kind: str):
        self._raw = raw
        self._kind = kind
        self._obj = _new_decompressor(kind)
        self._pending = b""
        self._member_open = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            chunk = self._raw.read(READ_BUFFER)
            if not chunk:
                if self._member_open:
                    raise TruncatedInput(f"the {self._kind} stream ends before its end marker")
                return 0
            out = []
            while chunk:
                self._member_open = True
                try:
                    out.append(self._obj.decompress(chunk))
                except (zlib.error, lzma.LZMAError, OSError, EOFError, zstandard.ZstdError) as err:
                    raise TruncatedInput(f"corrupt {self._kind} data ({err})") from err
                if self._obj.eof:
                    self._member_open = False
                    chunk = self._obj.unused_data
                    self._obj = _new_decompressor(self._kind)
                else:
                    chunk = b""
            self._pending = b"".join(out)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class InputStream:
    """An opened input: `.stream` yields decompressed bytes; `.position` is raw bytes consumed."""

    def __init__(self, path: str | os.PathLike):
        self.path = require_file(path)
        self.size = self.path.stat().st_size
        f = open(self.path, "rb")
        self.compression = detect_compression(f.read(6))
        f.seek(0)
        self._hashing = HashingReader(f)
        raw = io.BufferedReader(self._hashing, READ_BUFFER)
        if self.compression:
            self.stream = io.BufferedReader(Decompressor(raw, self.compression), READ_BUFFER)
        else:
            self.stream = raw

    @property
    def position(self) -> int:
        return self._hashing.bytes_read

    def sha256(self) -> str:
        return self._hashing.hexdigest()

    def close(self) -> None:
        self.stream.close()
        self._hashing.close()

    def __enter__(self) -> "InputStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


