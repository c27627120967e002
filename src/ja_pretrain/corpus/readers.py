"""Input readers: each turns one opened input into a stream of raw documents.

A raw document is `(kind, text)`: kind "text" is plain text with one paragraph per line; kind
"wikitext" is MediaWiki markup that the workers convert to plain text first (the conversion is
the expensive part, so it is not done here in the reading process).

Formats (`--format`):
  cirrus   jawiki CirrusSearch content dump: an index-action line, then a document line whose
           `text` field holds the article as plain text; repeated.
  xml      MediaWiki XML export (`pages-articles*.xml.bz2`): main-namespace, non-redirect pages.
  text     plain text, a blank line between documents (each line a paragraph or a sentence).
  cc100    CC-100: a sentence per line, a blank line between documents. Same reader as text.
  jsonl    one JSON object per line, its text in `--text-field`.
  aozora   an Aozora Bunko text file (one work; ruby, notes, header and footer removed: aozora.py).
  pdf      a PDF file (one document; text extracted in the workers: pdf.py).
  edinet   an EDINET document ZIP (one securities report; its inline-XBRL PublicDoc: edinet.py).
  auto     chosen from the first bytes of the (decompressed) content.

Text in another encoding than UTF-8 (CP932, EUC-JP, ...) is read as UTF-8 through a transcoder,
so the readers see one encoding; `--encoding auto` detects it (encodings.py).
"""

from __future__ import annotations

import io
import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field

from ja_pretrain.corpus import encodings
from ja_pretrain.corpus.bad_input import BadInput
from ja_pretrain.corpus.compression import InputStream, TruncatedInput
from ja_pretrain.corpus.sniff import SNIFF_BYTES, binary_reason, is_utf8_text
from ja_pretrain.errors import UserError

log = logging.getLogger(__name__)

FORMATS = ("auto", "cirrus", "xml", "text", "cc100", "jsonl", "aozora", "pdf", "edinet")
# Formats read whole as bytes and converted to text in the workers (the expensive part).
BINARY_FORMATS = {"pdf": b"%PDF", "edinet": b"PK\x03\x04"}
# Formats web crawls come in (CC-100; mC4, OSCAR and the like as JSONL), where near-duplicate
# documents are common: --near-dedup auto turns it on for them.
WEB_FORMATS = ("cc100", "jsonl")

# A document is held in memory whole; a text file with no blank lines at all would otherwise be
# one document the size of the file. Past this many characters the document is cut.
MAX_DOCUMENT_CHARS = 4_000_000

# (kind, text) or, for wikitext, (kind, text, names of the wiki's File and Category namespaces)
RawDocument = tuple

READ_BLOCK = 1 << 20
# One or more lines holding only whitespace (\r of CRLF files included) separate documents.
_BLANK_LINES = re.compile(r"\n(?:[^\S\n]*\n)+")
_LEADING_BLANK_LINES = re.compile(r"^(?:[^\S\n]*\n)+")
_TRAILING_BLANK_LINES = re.compile(r"(?:\n[^\S\n]*)+$")


@dataclass
class ReadStats:
    invalid_utf8_replaced: int = 0
    skipped_redirects: int = 0
    skipped_other_namespaces: int = 0
    skipped_without_text: int = 0
    documents_cut_at_size_limit: int = 0
    # input path -> how its encoding was chosen, for inputs that are not UTF-8
    encodings: dict[str, str] = field(default_factory=dict)
    # input path -> the format it was read as
    formats: dict[str, str] = field(default_factory=dict)


class InputTruncated(Exception):
    """An input ended early; `documents` complete documents were read before the cut."""

    def __init__(self, message: str):
        super().__init__(message)


def decode_line(line: bytes, stats: ReadStats) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        text = line.decode("utf-8", errors="replace")
        stats.invalid_utf8_replaced += text.count("\ufffd") - line.count("\ufffd".encode())
        return text


# Aozora Bunko's notation: its notes ［＃...］, the symbol legend of its header, or ruby on kanji.
_AOZORA = re.compile("［＃|【テキスト中に現れる記号について】|(?:｜[^《\n]{1,20}|[\u4e00-\u9fff])《[\u3040-\u30ff]{1,20}》")


def detect_format(head: bytes) -> str:
    """Guess the input format from the first bytes of its decompressed (UTF-8) content."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<") and b"<mediawiki" in text[:4096]:
        return "xml"
    if text.startswith(b"{"):
        first = text.split(b"\n", 1)[0]
        try:
            obj = json.loads(first)
        except ValueError:
            # A first line longer than the peeked bytes: decide on its opening key.
            return "cirrus" if re.match(rb'\{\s*"index"\s*:\s*\{', first) else "jsonl"
        return "cirrus" if isinstance(obj, dict) and isinstance(obj.get("index"), dict) else "jsonl"
    if len(_AOZORA.findall(text.decode("utf-8", errors="replace"))) >= 3:
        return "aozora"
    return "text"


def iter_documents(source: InputStream, fmt: str, stats: ReadStats, text_field: str = "text",
                   encoding: str = "auto") -> Iterator[RawDocument]:
    """Raw documents of one input. Raises InputTruncated for a cut file, BadInput for a file that is
    not what it claims to be (rejected before any of its documents), UserError for bad content."""
    try:
        head = source.stream.peek(SNIFF_BYTES)[:SNIFF_BYTES]
        if fmt == "auto":
            fmt = next((name for name, magic in BINARY_FORMATS.items() if head.startswith(magic)), "auto")
        if fmt in BINARY_FORMATS:
            if not head.startswith(BINARY_FORMATS[fmt]):
                raise BadInput(f"is not a {'PDF' if fmt == 'pdf' else 'ZIP'} file (--format {fmt})")
            stats.formats[str(source.path)] = fmt
            yield fmt, source.stream.read(), str(source.path)
            return
        reason = binary_reason(head)
        if reason:
            raise UserError(f"{source.path}: {reason}" + (f" (after {source.compression} decompression)"
                                                          if source.compression else ""))
        chosen = _choose_encoding(source, head, encoding, stats)
        if chosen != "utf-8" or encoding != "auto":
            head = _transcode(source, chosen)
        if fmt == "auto":
            fmt = detect_format(head)
        stats.formats[str(source.path)] = fmt
        if fmt == "xml":
            yield from _xml_documents(source, stats)
        elif fmt == "cirrus":
            yield from _cirrus_documents(source, stats)
        elif fmt == "jsonl":
            yield from _jsonl_documents(source, stats, text_field)
        elif fmt in ("text", "cc100"):
            yield from _text_documents(source, stats)
        elif fmt == "aozora":
            yield from _whole_document(source, stats, "aozora")
        else:
            raise ValueError(f"unknown format {fmt!r}")
    except TruncatedInput as err:
        raise InputTruncated(f"{source.path}: truncated or corrupt: {err}; download the file again") from err


def sniff_format(path, fmt: str, encoding: str) -> str | None:
    """The format an input will be read as, from its first bytes; None if that cannot be told now
    (the read itself then reports why)."""
    if fmt != "auto":
        return fmt
    try:
        with InputStream(path) as source:
            head = source.stream.peek(SNIFF_BYTES)[:SNIFF_BYTES]
    except (TruncatedInput, OSError):
        return None
    for name, magic in BINARY_FORMATS.items():
        if head.startswith(magic):
            return name
    if encoding == "auto" and (not is_utf8_text(head) or (head.isascii() and b"\x1b$" in head)):
        found = encodings.detect(head)
        encoding = found.encoding if found.confidence >= encodings.MIN_CONFIDENCE else "utf-8"
    if encoding not in ("auto", "utf-8"):
        head = head.decode(encoding, errors="ignore").encode("utf-8")
    return detect_format(head)


def _choose_encoding(source: InputStream, head: bytes, encoding: str, stats: ReadStats) -> str:
    if encoding != "auto":
        if encoding != "utf-8":
            stats.encodings[str(source.path)] = f"{encodings.display_name(encoding)} (--encoding)"
        return encoding
    if is_utf8_text(head) and not (head.isascii() and b"\x1b$" in head):  # ISO-2022-JP is 7-bit
        return "utf-8"
    found = encodings.detect(head)
    if found.encoding == "utf-8" or found.confidence < encodings.MIN_CONFIDENCE:
        raise BadInput(f"is not UTF-8 text, and no Japanese encoding reads it with confidence (best: "
                       f"{found.describe()}); name its encoding with --encoding (e.g. cp932, euc-jp)")
    log.info("%s: read as %s, detected", source.path, found.describe())
    stats.encodings[str(source.path)] = f"{found.describe()}, detected"
    return found.encoding


def _transcode(source: InputStream, encoding: str) -> bytes:
    """Check the whole input against `encoding` (a second pass, so that a bad byte at the end rejects
    the file before any of it is used), then make `source.stream` yield it as UTF-8; returns the
    new head."""
    with InputStream(source.path) as check:
        try:
            encodings.check_encoding(check.stream, encoding)
        except encodings.EncodingMismatch as err:
            raise BadInput(f"is not {encodings.display_name(encoding)} text: {err}") from None
    if encoding != "utf-8":
        source.stream = io.BufferedReader(encodings.Utf8Transcoder(source.stream, encoding), READ_BLOCK)
    return source.stream.peek(SNIFF_BYTES)[:SNIFF_BYTES]


def _whole_document(source: InputStream, stats: ReadStats, kind: str) -> Iterator[RawDocument]:
    text = decode_line(source.stream.read(), stats)
    if len(text) > MAX_DOCUMENT_CHARS:
        stats.documents_cut_at_size_limit += 1
        text = text[:MAX_DOCUMENT_CHARS]
    if text.strip():
        yield kind, text
    else:
        stats.skipped_without_text += 1


def _lines(source: InputStream, stats: ReadStats) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(source.stream, start=1):
        yield number, decode_line(raw, stats).rstrip("\r\n")


def _text_documents(source: InputStream, stats: ReadStats) -> Iterator[RawDocument]:
    """Documents separated by blank lines, read in blocks: one decode and one regex split per
    megabyte instead of Python work per line, since this runs in the single reading process."""
    pending = b""  # bytes after the last newline of the previous block
    carry = ""  # the document still open at the end of the previous block
    while block := source.stream.read1(READ_BLOCK):
        data = pending + block
        cut = data.rfind(b"\n") + 1  # a newline byte never occurs inside a UTF-8 character
        pending = data[cut:]
        if not cut:
            continue
        pieces = _BLANK_LINES.split(carry + decode_line(data[:cut], stats))
        carry = pieces.pop()
        for piece in pieces:
            if piece.strip():
                yield "text", _trim_blank_lines(piece)
        if len(carry) >= MAX_DOCUMENT_CHARS:
            stats.documents_cut_at_size_limit += 1
            yield "text", _trim_blank_lines(carry)
            carry = ""
    carry += decode_line(pending, stats)
    if carry.strip():
        yield "text", _trim_blank_lines(carry)


def _trim_blank_lines(piece: str) -> str:
    if piece[:1].isspace():
        piece = _LEADING_BLANK_LINES.sub("", piece)
    if piece[-1:].isspace():
        piece = _TRAILING_BLANK_LINES.sub("", piece)
    return piece


def _json_line(source: InputStream, number: int, line: str, what: str) -> object:
    try:
        return json.loads(line)
    except ValueError as err:
        raise UserError(
            f"{source.path}:{number}: not a JSON line ({err}); {what} hold one JSON object per line. "
            "Is the file complete? Pass --format to choose another reader."
        ) from err


def _cirrus_documents(source: InputStream, stats: ReadStats) -> Iterator[RawDocument]:
    for number, line in _lines(source, stats):
        if not line.strip():
            continue
        obj = _json_line(source, number, line, "CirrusSearch dumps")
        if not isinstance(obj, dict):
            raise UserError(f"{source.path}:{number}: expected a JSON object, got {type(obj).__name__}")
        if "index" in obj and isinstance(obj["index"], dict):
            continue  # the bulk-API action line before each document
        if obj.get("namespace", 0) != 0:
            stats.skipped_other_namespaces += 1
            continue
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            stats.skipped_without_text += 1
            continue
        yield "text", text


def _jsonl_documents(source: InputStream, stats: ReadStats, field: str) -> Iterator[RawDocument]:
    for number, line in _lines(source, stats):
        if not line.strip():
            continue
        obj = _json_line(source, number, line, "JSONL files")
        if not isinstance(obj, dict) or field not in obj:
            keys = ", ".join(sorted(obj)) if isinstance(obj, dict) else type(obj).__name__
            raise UserError(f"{source.path}:{number}: no field {field!r} (found: {keys}); set --text-field")
        text = obj[field]
        if text is None or (isinstance(text, str) and not text.strip()):
            stats.skipped_without_text += 1
            continue
        if not isinstance(text, str):
            raise UserError(f"{source.path}:{number}: field {field!r} is {type(text).__name__}, not a string")
        yield "text", text


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml_documents(source: InputStream, stats: ReadStats) -> Iterator[RawDocument]:
    pages = 0
    root = None
    # Localised names of the File (6) and Category (14) namespaces, from <siteinfo>, so links
    # such as [[ファイル:...]] or [[Thể loại:...]] are recognised in any language edition.
    non_text_namespaces: list[str] = []
    try:
        for event, elem in ET.iterparse(source.stream, events=("start", "end")):
            if root is None:
                root = elem
                if _local(root.tag) != "mediawiki":
                    raise UserError(f"{source.path}: XML root is <{_local(root.tag)}>, not a MediaWiki export <mediawiki>")
            if event != "end":
                continue
            name = _local(elem.tag)
            if name == "namespace" and elem.get("key") in ("6", "14") and elem.text:
                non_text_namespaces.append(elem.text.strip())
                continue
            if name != "page":
                continue
            pages += 1
            namespace = redirect = None
            text = ""
            for child in elem.iter():
                name = _local(child.tag)
                if name == "ns":
                    namespace = (child.text or "").strip()
                elif name == "redirect":
                    redirect = True
                elif name == "text":
                    text = child.text or ""
            root.clear()  # drop finished pages so memory stays flat
            if redirect or re.match(r"\s*#(?:REDIRECT|転送)", text, re.IGNORECASE):
                stats.skipped_redirects += 1
            elif namespace not in (None, "0"):
                stats.skipped_other_namespaces += 1
            elif text.strip():
                yield "wikitext", text, tuple(non_text_namespaces)
            else:
                stats.skipped_without_text += 1
    except ET.ParseError as err:
        line, column = err.position
        message = str(err)
        if "no element found" in message or "unclosed token" in message:
            raise InputTruncated(
                f"{source.path}: the XML ends before </mediawiki> (line {line}); it looks truncated "
                f"after {pages} complete pages"
            ) from err
        raise UserError(f"{source.path}:{line}:{column}: malformed XML ({message})") from err
