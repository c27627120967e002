"""Expected checksums: validating the ones a user passes, reading the ones a publisher posts,
and hashing a file (or a growing download) with several algorithms in one pass."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from ja_pretrain.errors import UserError

# Hex lengths double as the check that a digest was pasted whole.
HEX_LENGTHS = {"sha256": 64, "sha1": 40, "md5": 32}

# `sha1sum`/`md5sum` output: "<hex>  <name>" (text mode) or "<hex> *<name>" (binary mode).
_SUMS_LINE = re.compile(r"^([0-9a-fA-F]+)\s+\*?(\S.*?)\s*$")


def expected_digests(*, sha256: str | None = None, sha1: str | None = None, md5: str | None = None) -> dict[str, str]:
    """The given digests as {algorithm: lowercase hex}, each checked for length and hex digits."""
    given = {"sha256": sha256, "sha1": sha1, "md5": md5}
    expected = {}
    for algorithm, value in given.items():
        if value is None:
            continue
        hexdigest = value.strip().lower()
        if len(hexdigest) != HEX_LENGTHS[algorithm] or not re.fullmatch(r"[0-9a-f]+", hexdigest):
            raise UserError(
                f"--{algorithm} {value!r} is not a {algorithm} digest "
                f"({HEX_LENGTHS[algorithm]} hexadecimal digits); copy it again from the publisher"
            )
        expected[algorithm] = hexdigest
    return expected


def parse_sums_file(text: str, source: str) -> dict[str, str]:
    """{file name: lowercase hex} from a sha1sums/md5sums listing; `source` names it in errors."""
    sums = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _SUMS_LINE.match(line)
        if not match:
            raise UserError(f"{source}, line {lineno}: expected '<hex digest>  <file name>', got {line[:80]!r}")
        sums[match.group(2)] = match.group(1).lower()
    return sums


class MultiHasher:
    """Running digests for several algorithms over the same bytes."""

    def __init__(self, algorithms: set[str] | frozenset[str]):
        self.algorithms = frozenset(algorithms)
        self._hashes = {name: hashlib.new(name) for name in sorted(self.algorithms)}
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        for h in self._hashes.values():
            h.update(data)
        self.size += len(data)

    def hexdigests(self) -> dict[str, str]:
        return {name: h.hexdigest() for name, h in self._hashes.items()}

    @classmethod
    def of_file(cls, path: str | os.PathLike, algorithms: set[str] | frozenset[str], chunk_size: int = 1 << 20) -> MultiHasher:
        hasher = cls(algorithms)
        with open(path, "rb") as f:
            while block := f.read(chunk_size):
                hasher.update(block)
        return hasher


def mismatches(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """Human-readable lines for each expected digest that `actual` does not match."""
    return [
        f"{algorithm} expected {hexdigest}, got {actual.get(algorithm)}"
        for algorithm, hexdigest in expected.items()
        if actual.get(algorithm) != hexdigest
    ]


def file_digests(path: Path, algorithms: set[str]) -> dict[str, str]:
    return MultiHasher.of_file(path, algorithms).hexdigests()
