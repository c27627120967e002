"""A resumable, verifying HTTP(S) download with the standard library.

Bytes go to `NAME.part` beside the target. A cut connection is retried with backoff and resumed
with an HTTP Range request; Ctrl-C keeps the `.part` so the next run resumes too. Only a file
that is complete (the size the server announced) and matches every expected checksum is renamed
to NAME, and a small record `.NAME.download.json` beside it lets a rerun skip it without
hashing gigabytes again.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ja_pretrain import __version__
from ja_pretrain.download.checksums import MultiHasher, expected_digests, file_digests, mismatches
from ja_pretrain.errors import UserError
from ja_pretrain.utils.atomic import atomic_write_json
from ja_pretrain.utils.locks import exclusive

log = logging.getLogger(__name__)

# Wikimedia asks clients to identify themselves; a bare urllib agent may be refused.
USER_AGENT = f"ja-pretrain/{__version__} (Japanese BERT/ELECTRA pretraining; Python urllib)"
CHUNK_SIZE = 1 << 20
# Statuses worth waiting for: rate limiting and server-side trouble usually pass.
_RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")


class HTTPStatusError(UserError):
    """The server answered with an error status; `code` and `url` say which and where."""

    def __init__(self, code: int, reason: str, url: str):
        super().__init__(f"HTTP {code} {reason} for {url}")
        self.code = code
        self.url = url


class _Transient(Exception):
    """A failure that another attempt (resuming from the .part file) may get past."""


def part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def record_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.download.json")


def _validator_path(part: Path) -> Path:
    """Where the ETag/Last-Modified of the file being fetched into `part` is kept for If-Range."""
    return part.with_name(f".{part.name}.json")


def _exclusive(target: Path):
    """One download of a file at a time: two runs must never append to the same .part file."""
    return exclusive(target, f"{target} (a download)")


def _request(url: str, offset: int = 0, if_range: str | None = None) -> urllib.request.Request:
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if if_range:
            # The server sends the whole (new) file instead of a range if it changed meanwhile.
            headers["If-Range"] = if_range
    return urllib.request.Request(url, headers=headers)


def with_query(url: str, params: dict[str, str] | None) -> str:
    if not params:
        return url
    return url + ("&" if urllib.parse.urlsplit(url).query else "?") + urllib.parse.urlencode(params)


def _open(
    url: str, offset: int, timeout: float, if_range: str | None = None, secret_query: dict[str, str] | None = None
) -> http.client.HTTPResponse | urllib.error.HTTPError:
    """The response, or the HTTPError of a 416 (its headers tell us the full size).

    `secret_query` (an API key) is added to the URL here only, on its way to the server: every
    message, log line and record names `url` without it."""
    try:
        return urllib.request.urlopen(_request(with_query(url, secret_query), offset, if_range), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416:
            return err
        if err.code in _RETRY_STATUSES:
            raise _Transient(f"HTTP {err.code} {err.reason}") from err
        raise HTTPStatusError(err.code, str(err.reason), url) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise _Transient(str(getattr(err, "reason", err))) from err


def fetch_text(url: str, *, timeout: float = 60.0, retries: int = 3, backoff: float = 1.0,
               secret_query: dict[str, str] | None = None) -> str | None:
    """A small text resource (a checksum list, a directory listing), or None if it is 404."""
    for attempt in range(retries + 1):
        try:
            response = _open(url, 0, timeout, secret_query=secret_query)
            with response:
                return response.read().decode("utf-8", errors="replace")
        except HTTPStatusError as err:
            if err.code == 404:
                return None
            raise
        except (_Transient, OSError, http.client.HTTPException) as err:
            if attempt == retries:
                raise UserError(f"could not read {url}: {err}") from None
            time.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) from a Content-Range header; None where the server left it open."""
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(3)) if match.group(3) != "*" else None
    return start, total


def _read_record(target: Path) -> dict | None:
    try:
        return json.loads(record_path(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _already_complete(target: Path, expected: dict[str, str]) -> bool:
    """True if `target` is a finished download that matches `expected`; raise if it contradicts it."""
    if not target.is_file():
        return False
    size = target.stat().st_size
    record = _read_record(target)
    if record and record.get("bytes") != size:
        raise UserError(
            f"{target} has changed since it was downloaded ({size} bytes, {record.get('bytes')} recorded in "
            f"{record_path(target).name}); delete it and rerun"
        )
    if record and all(record.get(a) == h for a, h in expected.items()):
        state = f"verified ({_describe(expected, record)})" if expected else "complete; no checksum to verify"
        log.info("%s: already downloaded, %s; not downloading again", target, state)
        return True
    if not expected:
        # Only complete files are ever renamed to the final name, so one found there is whole,
        # but with no record and no checksum we can vouch for nothing more.
        log.info("%s: already present; no checksum known to verify it against; not downloading again", target)
        return True
    actual = file_digests(target, set(expected) | {"sha256"})
    bad = mismatches(expected, actual)
    if bad:
        raise UserError(
            f"{target} already exists but does not match the expected checksum ({'; '.join(bad)}); "
            "delete it (the publisher may have replaced the file) and rerun"
        )
    _write_record(target, url=(record or {}).get("url"), digests=actual, verified=sorted(expected))
    log.info("%s: already downloaded, checksum verified (%s); not downloading again", target, _describe(expected, actual))
    return True


def _describe(expected: dict[str, str], digests: dict) -> str:
    if expected:
        return ", ".join(f"{a} {expected[a][:12]}…" for a in sorted(expected))
    return f"sha256 {str(digests.get('sha256'))[:12]}…"


def _write_record(target: Path, *, url: str | None, digests: dict[str, str], verified: list[str]) -> None:
    atomic_write_json(
        record_path(target),
        {
            "url": url,
            "file": target.name,
            "bytes": target.stat().st_size,
            **digests,
            "verified": verified,  # algorithms checked against an expected digest
            "completed": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )


class _Transfer:
    """One download's state across attempts: the .part file and the digests of its bytes."""

    def __init__(self, url: str, part: Path, algorithms: set[str], *, timeout: float, chunk_size: int, progress: bool,
                 secret_query: dict[str, str] | None = None):
        self.url, self.part, self.algorithms = url, part, algorithms
        self.secret_query = secret_query
        self.timeout, self.chunk_size, self.progress = timeout, chunk_size, progress
        self.hasher: MultiHasher | None = None
        self.total: int | None = None

    def _hasher_for(self, offset: int) -> MultiHasher:
        if self.hasher is None or self.hasher.size != offset:
            # First attempt of a resumed download: the bytes already on disk must be hashed too.
            self.hasher = MultiHasher.of_file(self.part, self.algorithms) if offset else MultiHasher(self.algorithms)
        return self.hasher

    def _restart(self, why: str) -> None:
        log.warning("%s: %s; starting again from byte 0", self.url, why)
        self.part.unlink(missing_ok=True)
        _validator_path(self.part).unlink(missing_ok=True)
        self.hasher = None

    def _if_range(self) -> str | None:
        """The validator saved when this .part was started, if it was started from this URL."""
        try:
            saved = json.loads(_validator_path(self.part).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if saved.get("url") != self.url:
            return None
        etag = saved.get("etag")
        # If-Range takes a strong ETag or a date; weak ETags (W/"...") are not allowed there.
        return etag if etag and not etag.startswith("W/") else saved.get("last_modified")

    def _save_validator(self, response) -> None:
        etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
        if etag or modified:
            atomic_write_json(_validator_path(self.part), {"url": self.url, "etag": etag, "last_modified": modified})

    def attempt(self) -> bool:
        """Transfer what is missing; True once the .part holds the whole file."""
        offset = self.part.stat().st_size if self.part.exists() else 0
        response = _open(self.url, offset, self.timeout, self._if_range() if offset else None, self.secret_query)
        with response:
            if response.status == 416:
                _, total = _parse_content_range(response.headers.get("Content-Range"))
                if total is not None and total == offset:
                    self.total = total
                    return True
                self._restart(f"server refused to resume at byte {offset} (HTTP 416)")
                return False
            if response.status == 206:
                start, total = _parse_content_range(response.headers.get("Content-Range"))
                if start != offset:
                    self._restart(f"server answered the resume request with a range starting at {start}")
                    return False
            else:
                if offset:
                    self._restart("the server sent the whole file (HTTP 200): it ignores Range requests "
                                  "or the file changed since the partial download")
                    offset = 0
                self._save_validator(response)
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            self.total = total
            return self._stream(response, offset)

    def _stream(self, response, offset: int) -> bool:
        hasher = self._hasher_for(offset)
        bar = tqdm(
            total=self.total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=self.part.name[: -len(".part")], file=sys.stderr, disable=not self.progress, leave=False,
        )
        try:
            with open(self.part, "ab" if offset else "wb") as f:
                while True:
                    try:
                        chunk = response.read(self.chunk_size)
                    except (OSError, http.client.HTTPException) as err:
                        raise _Transient(f"connection lost after {hasher.size} bytes ({err})") from err
                    if not chunk:
                        break
                    f.write(chunk)
                    hasher.update(chunk)
                    bar.update(len(chunk))
        finally:
            bar.close()
        if self.total is not None and hasher.size < self.total:
            raise _Transient(f"connection closed after {hasher.size} of {self.total} bytes")
        if self.total is not None and hasher.size > self.total:
            self._restart(f"received {hasher.size} bytes, more than the announced {self.total}")
            return False
        return True


def fetch(
    url: str,
    out_path: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    sha1: str | None = None,
    retries: int = 5,
    backoff: float = 2.0,
    timeout: float = 60.0,
    chunk_size: int = CHUNK_SIZE,
    progress: bool = True,
    secret_query: dict[str, str] | None = None,
) -> Path:
    """Download `url` to `out_path` (resuming, retrying, verifying) and return the path.

    `secret_query`: query parameters (an API key) sent to the server but never shown or recorded.

    A file already at `out_path` that matches the expected checksums is kept as is. A download
    that does not match is deleted and raises UserError. HTTP errors raise HTTPStatusError (a
    UserError) naming the URL. Ctrl-C leaves `out_path.part` for the next call to resume.
    """
    target = Path(out_path)
    expected = expected_digests(sha256=sha256, sha1=sha1, md5=md5)
    if urllib.parse.urlsplit(url).scheme not in ("http", "https") or not urllib.parse.urlsplit(url).netloc:
        raise UserError(f"{url!r} is not an http:// or https:// URL")
    if _already_complete(target, expected):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target):
        # A run that held the lock until a moment ago may have finished the file.
        if _already_complete(target, expected):
            return target
        _download(url, target, expected, retries=retries, backoff=backoff, timeout=timeout,
                  chunk_size=chunk_size, progress=progress, secret_query=secret_query)
    return target


def _download(url: str, target: Path, expected: dict[str, str], *, retries: int, backoff: float,
              timeout: float, chunk_size: int, progress: bool, secret_query: dict[str, str] | None = None) -> None:
    part = part_path(target)
    transfer = _Transfer(url, part, set(expected) | {"sha256"}, timeout=timeout, chunk_size=chunk_size, progress=progress,
                         secret_query=secret_query)
    if part.exists():
        log.info("%s: resuming from byte %d", target.name, part.stat().st_size)
    failures = 0
    started = time.monotonic()
    while True:
        try:
            if transfer.attempt():
                break
        except _Transient as err:
            if failures >= retries:
                kept = (f"{part} is kept ({part.stat().st_size:,} bytes): rerun the same command to resume"
                        if part.exists() and part.stat().st_size else "nothing was written")
                raise UserError(f"{url}: gave up after {failures + 1} attempts ({err}); {kept}") from None
            delay = backoff * 2**failures
            failures += 1
            log.warning("%s: %s; retry %d of %d in %.0f s", target.name, err, failures, retries, delay)
            time.sleep(delay)
            continue
        failures += 1  # a restart from byte 0 also counts, so a misbehaving server cannot loop us
        if failures > retries:
            raise UserError(f"{url}: the server kept sending inconsistent ranges; giving up after {failures} attempts")
    digests = _finish(url, target, part, transfer, expected)
    checked = "verified" if expected else "no checksum to verify against"
    log.info(
        "%s: %s in %.1f s (%s, %s)", target.name, _human(target.stat().st_size),
        time.monotonic() - started, _describe(expected, digests), checked,
    )


def _finish(url: str, target: Path, part: Path, transfer: _Transfer, expected: dict[str, str]) -> dict[str, str]:
    hasher = transfer.hasher if transfer.hasher and transfer.hasher.size == part.stat().st_size else None
    digests = (hasher or MultiHasher.of_file(part, transfer.algorithms)).hexdigests()
    bad = mismatches(expected, digests)
    if bad:
        part.unlink(missing_ok=True)
        _validator_path(part).unlink(missing_ok=True)
        raise UserError(
            f"checksum mismatch for {url}: {'; '.join(bad)}. The download was deleted; rerun to fetch it "
            "again, and if it fails again check the expected checksum and the mirror"
        )
    os.replace(part, target)
    _validator_path(part).unlink(missing_ok=True)
    _write_record(target, url=url, digests=digests, verified=sorted(expected))
    return digests


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TiB"
