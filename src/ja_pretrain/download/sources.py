"""Where the publishers keep the Japanese corpora, and how each is verified.

Japanese Wikipedia (https://dumps.wikimedia.org):
- XML: `jawiki/DATE/jawiki-DATE-pages-articles.xml.bz2`, verified against the
  `jawiki-DATE-sha1sums.txt` (else `-md5sums.txt`) list that Wikimedia publishes in the same
  directory. `jawiki/latest/jawiki-latest-sha1sums.txt` names the newest finished run's files with
  their dated names, which is how `--date latest` is resolved to a date.
- CirrusSearch (plain text already extracted): since January 2026 Wikimedia publishes these weekly
  under `other/cirrus_search_index/DATE/index_name=jawiki_content/` as numbered
  `jawiki_content-DATE-NNNNN.json.bz2` shards plus an empty `_SUCCESS` marker once the run is
  complete; the old single file `other/cirrussearch/DATE/jawiki-DATE-cirrussearch-content.json.gz`
  (the second seed's input) is no longer produced there and older dates survive only on mirrors
  and archives. Neither layout comes with a checksum list that we know of, so CirrusSearch files
  are checked for completeness (the announced size) and their sha256 is recorded, not verified.

CC-100 Japanese (https://data.statmt.org/cc-100/ja.txt.xz): one file, no published checksum.

`base_url` replaces the publisher's scheme, host and base path (`https://dumps.wikimedia.org`,
`https://data.statmt.org/cc-100`) in every URL, dumps and checksum lists alike, for mirrors.
"""

from __future__ import annotations

import datetime
import logging
import re
import urllib.parse
from pathlib import Path

from ja_pretrain.download.checksums import parse_sums_file
from ja_pretrain.download.http import HTTPStatusError, fetch, fetch_text
from ja_pretrain.errors import UserError

log = logging.getLogger(__name__)

WIKIMEDIA_BASE = "https://dumps.wikimedia.org"
CC100_BASE = "https://data.statmt.org/cc-100"
CC100_JA_FILE = "ja.txt.xz"
DUMP_KINDS = ("cirrus", "xml")
_MAX_DATES_TRIED = 6  # for `latest`: how many newest listed runs to look at for a finished one


def rebase(path: str, publisher_base: str, base_url: str | None) -> str:
    """The URL of `path` (relative to the publisher's root) on the publisher or the mirror."""
    root = (base_url or publisher_base).rstrip("/")
    return f"{root}/{path.lstrip('/')}"


def check_date(date: str) -> str:
    if date == "latest":
        return date
    try:
        datetime.datetime.strptime(date, "%Y%m%d")
    except ValueError:
        raise UserError(f"--date {date!r}: expected YYYYMMDD (a dump date such as 20240701) or 'latest'") from None
    if len(date) != 8:
        raise UserError(f"--date {date!r}: expected 8 digits YYYYMMDD")
    return date


def _hrefs(listing: str) -> list[str]:
    """Link targets of an HTML directory listing (nginx/Apache autoindex), percent-decoded."""
    return [urllib.parse.unquote(h) for h in re.findall(r'href="([^"?#]+)"', listing)]


# --- XML dumps ---------------------------------------------------------------------------------

def xml_dump_name(date: str) -> str:
    return f"jawiki-{date}-pages-articles.xml.bz2"


def _resolve_latest_xml(base_url: str | None) -> str:
    for algorithm in ("sha1", "md5"):
        url = rebase(f"jawiki/latest/jawiki-latest-{algorithm}sums.txt", WIKIMEDIA_BASE, base_url)
        text = fetch_text(url)
        if text is None:
            continue
        for name in parse_sums_file(text, url):
            match = re.fullmatch(r"jawiki-(\d{8})-pages-articles\.xml\.bz2", name)
            if match:
                return match.group(1)
        raise UserError(f"{url} lists no jawiki-YYYYMMDD-pages-articles.xml.bz2; pass --date YYYYMMDD")
    raise UserError(f"no checksum list under {rebase('jawiki/latest/', WIKIMEDIA_BASE, base_url)}; pass --date YYYYMMDD")


def published_xml_checksum(date: str, base_url: str | None) -> tuple[str, str]:
    """(algorithm, hex) for the dump's pages-articles file from Wikimedia's sums list."""
    name = xml_dump_name(date)
    tried = []
    for algorithm in ("sha1", "md5"):
        url = rebase(f"jawiki/{date}/jawiki-{date}-{algorithm}sums.txt", WIKIMEDIA_BASE, base_url)
        text = fetch_text(url)
        tried.append(url)
        if text is None:
            continue
        sums = parse_sums_file(text, url)
        if name not in sums:
            raise UserError(f"{url} has no entry for {name}: the {date} dump may still be running; try an earlier --date")
        return algorithm, sums[name]
    raise UserError(
        f"no checksum list for the {date} jawiki dump (HTTP 404 for {' and '.join(tried)}): "
        "the date is wrong or the mirror lacks it (runs usually start on the 1st and the 20th of a month)"
    )


def download_xml(date: str, out_dir: Path, *, base_url: str | None = None, **fetch_options) -> list[Path]:
    if date == "latest":
        date = _resolve_latest_xml(base_url)
        log.info("latest finished jawiki XML dump: %s", date)
    algorithm, hexdigest = published_xml_checksum(date, base_url)
    name = xml_dump_name(date)
    url = rebase(f"jawiki/{date}/{name}", WIKIMEDIA_BASE, base_url)
    return [fetch(url, out_dir / name, **{algorithm: hexdigest}, **fetch_options)]


# --- CirrusSearch dumps ------------------------------------------------------------------------

def _cirrus_dir(date: str, base_url: str | None) -> str:
    return rebase(f"other/cirrus_search_index/{date}/index_name=jawiki_content/", WIKIMEDIA_BASE, base_url)


def cirrus_shards(date: str, base_url: str | None) -> list[str] | None:
    """URLs of the finished run's shards, None if the run does not exist; raises if unfinished."""
    directory = _cirrus_dir(date, base_url)
    listing = fetch_text(directory)
    if listing is None:
        return None
    hrefs = {h.rsplit("/", 1)[-1] for h in _hrefs(listing)}
    if "_SUCCESS" not in hrefs:
        raise UserError(f"{directory} has no _SUCCESS marker: the {date} CirrusSearch dump is unfinished; try an earlier --date")
    names = sorted(h for h in hrefs if re.fullmatch(rf"jawiki_content-{date}-\d+\.json\.bz2", h))
    if not names:
        raise UserError(f"{directory} lists no jawiki_content-{date}-NNNNN.json.bz2 shards")
    return [directory + name for name in names]


def _resolve_latest_cirrus(base_url: str | None) -> tuple[str, list[str]]:
    root = rebase("other/cirrus_search_index/", WIKIMEDIA_BASE, base_url)
    listing = fetch_text(root)
    if listing is None:
        raise UserError(f"HTTP 404 for {root}; pass --date YYYYMMDD")
    dates = sorted({m for h in _hrefs(listing) for m in re.findall(r"(?:^|/)(\d{8})/?$", h)}, reverse=True)
    for date in dates[:_MAX_DATES_TRIED]:
        try:
            shards = cirrus_shards(date, base_url)
        except UserError as err:
            log.info("skipping %s: %s", date, err)
            continue
        if shards:
            return date, shards
    raise UserError(f"no finished jawiki CirrusSearch dump among the newest runs listed at {root}; pass --date YYYYMMDD")


def legacy_cirrus_url(date: str, base_url: str | None) -> str:
    return rebase(f"other/cirrussearch/{date}/jawiki-{date}-cirrussearch-content.json.gz", WIKIMEDIA_BASE, base_url)


def download_cirrus(
    date: str, out_dir: Path, *, base_url: str | None = None, max_shards: int | None = None, **fetch_options
) -> list[Path]:
    if date == "latest":
        date, shards = _resolve_latest_cirrus(base_url)
        log.info("latest finished jawiki CirrusSearch dump: %s (%d shards)", date, len(shards))
    else:
        shards = cirrus_shards(date, base_url)
    if shards is not None:
        if max_shards is not None and max_shards < len(shards):
            log.info("taking the first %d of %d shards (--shards)", max_shards, len(shards))
            shards = shards[:max_shards]
        return [fetch(url, out_dir / url.rsplit("/", 1)[-1], **fetch_options) for url in shards]
    # Before 2026 the dump was one .json.gz in other/cirrussearch/ (kept by mirrors and archives).
    legacy = legacy_cirrus_url(date, base_url)
    try:
        return [fetch(legacy, out_dir / legacy.rsplit("/", 1)[-1], **fetch_options)]
    except HTTPStatusError as err:
        if err.code != 404:
            raise
        raise UserError(
            f"no jawiki CirrusSearch dump for {date}: HTTP 404 for {_cirrus_dir(date, base_url)} and for {legacy}. "
            "Wikimedia keeps only the last few weekly runs; use --date latest, an older date on a mirror "
            "(--base-url), or --dump xml"
        ) from None


# --- public entry points -----------------------------------------------------------------------

def download_jawiki(
    date: str,
    out_dir: str | Path,
    *,
    dump: str = "cirrus",
    base_url: str | None = None,
    max_shards: int | None = None,
    **fetch_options,
) -> list[Path]:
    """Download a Japanese Wikipedia dump into `out_dir`; returns the files (several for sharded dumps).

    `max_shards` keeps only the first shards of a sharded CirrusSearch dump, for a smaller sample.
    """
    date = check_date(date)
    if dump not in DUMP_KINDS:
        raise UserError(f"--dump {dump!r}: choose one of {', '.join(DUMP_KINDS)}")
    if max_shards is not None and (max_shards < 1 or dump != "cirrus"):
        raise UserError(f"--shards {max_shards}: must be 1 or more, and applies to --dump cirrus only")
    out_dir = Path(out_dir)
    if dump == "xml":
        return download_xml(date, out_dir, base_url=base_url, **fetch_options)
    return download_cirrus(date, out_dir, base_url=base_url, max_shards=max_shards, **fetch_options)


def download_cc100(out_dir: str | Path, *, base_url: str | None = None, **fetch_options) -> Path:
    """Download CC-100 Japanese (ja.txt.xz) into `out_dir`. No checksum is published for it."""
    url = rebase(CC100_JA_FILE, CC100_BASE, base_url)
    return fetch(url, Path(out_dir) / CC100_JA_FILE, **fetch_options)
