"""EDINET (https://disclosure2.edinet-fsa.go.jp), the Financial Services Agency's filing system:
securities reports and other disclosure documents through its API, version 2.

The API (specification: EDINET API 仕様書 Version 2, on the EDINET site):
- `GET {base}/documents.json?date=YYYY-MM-DD&type=2&Subscription-Key=KEY`: the documents filed that
  day, `{"metadata": {"status": "200", ...}, "results": [{"docID", "docTypeCode", "filerName",
  "docDescription", "xbrlFlag", "pdfFlag", "withdrawalStatus", ...}, ...]}`;
- `GET {base}/documents/{docID}?type=1&Subscription-Key=KEY`: the document's ZIP (inline XBRL and
  the audit report); `type=2`: its PDF. An error comes back as JSON instead of the file.

The key comes from `--api-key` or the EDINET_API_KEY environment variable and travels only in the
requests' query (download.http's `secret_query`): it is never logged, printed or written down.

Layout of OUT: `DOCID.zip` (or `DOCID.pdf`) per document, ready for `ja-pretrain corpus OUT`;
`edinet-documents.tsv`, what each file is (docID, date, type, filer, description, file); and
`.edinet-lists/DATE.json`, each day's list as the API gave it. A rerun is resumable like the
other sources: lists of past days are reused, finished documents are kept, a cut one resumes.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from pathlib import Path

from ja_pretrain.download.http import HTTPStatusError, fetch, fetch_text
from ja_pretrain.download.sources import rebase
from ja_pretrain.errors import UserError
from ja_pretrain.utils.atomic import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

EDINET_BASE = "https://api.edinet-fsa.go.jp/api/v2"
API_KEY_VARIABLE = "EDINET_API_KEY"
# docTypeCode of the documents a pretraining corpus wants (the API's code list has ~40 more)
DOC_TYPES = {"120": "有価証券報告書", "130": "訂正有価証券報告書", "140": "四半期報告書", "160": "半期報告書"}
FILE_TYPES = {"xbrl": ("1", ".zip", "xbrlFlag", b"PK\x03\x04"), "pdf": ("2", ".pdf", "pdfFlag", b"%PDF")}
INDEX_NAME = "edinet-documents.tsv"
LISTS_DIR = ".edinet-lists"
MAX_DAYS = 3660


def api_key(given: str | None) -> str:
    key = given or os.environ.get(API_KEY_VARIABLE, "")
    if not key.strip():
        raise UserError(f"EDINET needs an API key: pass --api-key KEY or set {API_KEY_VARIABLE} "
                        "(register for one on the EDINET site, API 利用登録)")
    return key.strip()


def parse_day(value: str, option: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise UserError(f"{option} {value!r}: expected a date YYYY-MM-DD") from None


def days(start: datetime.date, end: datetime.date) -> list[datetime.date]:
    if end < start:
        raise UserError(f"--end-date {end} is before --start-date {start}")
    count = (end - start).days + 1
    if count > MAX_DAYS:
        raise UserError(f"--start-date {start} --end-date {end}: {count} days; ask for at most {MAX_DAYS} at a time")
    return [start + datetime.timedelta(days=k) for k in range(count)]


def _day_list(day: datetime.date, out_dir: Path, base_url: str | None, key: dict[str, str], retries: int) -> list[dict]:
    """The day's documents, from the API or from an earlier run (days before today do not change)."""
    cached = out_dir / LISTS_DIR / f"{day.isoformat()}.json"
    if cached.is_file() and day < datetime.date.today():
        return json.loads(cached.read_text(encoding="utf-8")).get("results") or []
    url = rebase(f"documents.json?date={day.isoformat()}&type=2", EDINET_BASE, base_url)
    try:
        text = fetch_text(url, retries=retries, secret_query=key)
    except HTTPStatusError as err:
        if err.code in (401, 403):
            raise UserError(f"EDINET refused the API key (HTTP {err.code}) for {url}; check --api-key or "
                            f"{API_KEY_VARIABLE}") from None
        raise
    if text is None:
        raise UserError(f"{url}: not found (HTTP 404); is --base-url the API's v2 root?")
    try:
        listing = json.loads(text)
        status = str(listing.get("metadata", {}).get("status", listing.get("StatusCode", "")))
    except (ValueError, AttributeError):
        raise UserError(f"{url}: the answer is not the JSON of a document list ({text[:80]!r})") from None
    if status != "200":
        message = listing.get("metadata", {}).get("message") or listing.get("message") or "no message"
        raise UserError(f"{url}: EDINET answered status {status} ({message})")
    atomic_write_text(cached, text)
    return listing.get("results") or []


def _wanted(doc: dict, doc_types: set[str], flag: str) -> bool:
    return (doc.get("docTypeCode") in doc_types and str(doc.get(flag)) == "1"
            and str(doc.get("withdrawalStatus", "0")) == "0" and bool(doc.get("docID")))


def _fetch_document(doc_id: str, out_dir: Path, file_type: str, base_url: str | None, key: dict[str, str],
                    fetch_options: dict) -> Path:
    api_type, suffix, _, magic = FILE_TYPES[file_type]
    target = out_dir / f"{doc_id}{suffix}"
    url = rebase(f"documents/{doc_id}?type={api_type}", EDINET_BASE, base_url)
    fetch(url, target, secret_query=key, **fetch_options)
    with open(target, "rb") as f:
        head = f.read(4096)
    if not head.startswith(magic):
        # The API answers an error with JSON in place of the file.
        target.unlink()
        raise UserError(f"{url}: EDINET sent no {file_type} file but {head[:200].decode('utf-8', 'replace')!r}")
    return target


def download_edinet(
    out_dir: str | Path, *, start_date: str, end_date: str | None = None, doc_types: list[str] | None = None,
    file_type: str = "xbrl", api_key_value: str | None = None, base_url: str | None = None, **fetch_options,
) -> list[Path]:
    """Fetch the documents of `doc_types` (default: securities reports, 120) filed from `start_date`
    to `end_date` (inclusive, YYYY-MM-DD) into `out_dir`; returns their paths."""
    types = set(doc_types or ["120"])
    if file_type not in FILE_TYPES:
        raise UserError(f"--file-type {file_type!r}: choose {' or '.join(FILE_TYPES)}")
    for code in types:
        if not (code.isdigit() and len(code) == 3):
            raise UserError(f"--doc-types {code!r}: a three-digit docTypeCode, e.g. 120 (有価証券報告書)")
    span = days(parse_day(start_date, "--start-date"), parse_day(end_date or start_date, "--end-date"))
    key = {"Subscription-Key": api_key(api_key_value)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    retries = fetch_options.get("retries", 3)
    flag = FILE_TYPES[file_type][2]
    paths, rows = [], []
    for day in span:
        chosen = [d for d in _day_list(day, out_dir, base_url, key, retries) if _wanted(d, types, flag)]
        log.info("EDINET %s: %d document(s) of type %s", day, len(chosen), ", ".join(sorted(types)))
        for doc in chosen:
            path = _fetch_document(doc["docID"], out_dir, file_type, base_url, key, fetch_options)
            paths.append(path)
            rows.append([doc["docID"], day.isoformat(), doc.get("docTypeCode", ""), doc.get("filerName") or "",
                         doc.get("docDescription") or "", path.name])
    _write_index(out_dir, rows)
    return paths


def _write_index(out_dir: Path, rows: list[list[str]]) -> None:
    """Add this run's documents to the index (earlier runs' rows stay), one row per docID."""
    index = out_dir / INDEX_NAME
    known: dict[str, list[str]] = {}
    if index.is_file():
        for line in index.read_text(encoding="utf-8").splitlines()[1:]:
            fields = line.split("\t")
            known[fields[0]] = fields
    for row in rows:
        known[row[0]] = [field.replace("\t", " ").replace("\n", " ") for field in row]
    header = "docID\tdate\tdocTypeCode\tfilerName\tdocDescription\tfile"
    with atomic_path(index) as tmp:
        tmp.write_text("\n".join([header, *("\t".join(r) for r in sorted(known.values(), key=lambda r: (r[1], r[0])))])
                       + "\n", encoding="utf-8")
