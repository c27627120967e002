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
  auto     chosen from the first bytes of the (decompressed) content.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

from ja_pretrain.corpus.compression import InputStream, TruncatedInput
from ja_pretrain.corpus.sniff import SNIFF_BYTES, not_text_reason
from ja_pretrain.errors import UserError

FORMATS = ("auto", "cirrus", "xml", "text", "cc100", "jsonl")

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


def detect_format(head: bytes) -> str:
    """Guess the input format from the first bytes of its decompressed content."""
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
    return "text"


def iter_documents(source: InputStream, fmt: str, stats: ReadStats, text_field: str = "text") -> Iterator[RawDocument]:
    """Raw documents of one input. Raises InputTruncated for a cut file, UserError for bad content."""
    try:
        head = source.stream.peek(SNIFF_BYTES)[:SNIFF_BYTES]
        reason = not_text_reason(head)
        if reason:
            raise UserError(f"{source.path}: {reason}" + (f" (after {source.compression} decompression)"
                                                          if source.compression else ""))
        if fmt == "auto":
            fmt = detect_format(head)
        if fmt == "xml":
            yield from _xml_documents(source, stats)
        elif fmt == "cirrus":
            yield from _cirrus_documents(source, stats)
        elif fmt == "jsonl":
            yield from _jsonl_documents(source, stats, text_field)
        elif fmt in ("text", "cc100"):
            yield from _text_documents(source, stats)
        else:
            raise ValueError(f"unknown format {fmt!r}")
    except TruncatedInput as err:
        raise InputTruncated(f"{source.path}: truncated or corrupt: {err}; download the file again") from err


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
