"""`ja-pretrain download`: fetch jawiki, CC-100 ja, the evaluation data sets or any URL,
resumable and checksum-verified."""

from __future__ import annotations

import argparse
import posixpath
import sys
import time
import urllib.parse
from pathlib import Path

from ja_pretrain.errors import UserError
from ja_pretrain.utils.options import add_option

NAME = "download"
SOURCES = ("jawiki", "cc100-ja", "edinet", "jglue", "chabsa", "livedoor", "ner-wikipedia")
HELP = ("download jawiki / CC-100 ja dumps, EDINET filings, JGLUE / chABSA / livedoor / NER data or any URL "
        "(resumable, verified)")
_EDINET_OPTIONS = ("start_date", "end_date", "doc_types", "file_type", "api_key")
DESCRIPTION = """\
Download raw corpora or evaluation data sets into --out DIR, streaming with a progress bar. An
interrupted download (Ctrl-C, a cut connection) is kept as NAME.part and resumed with an HTTP
Range request by the next run; a cut connection is also retried a few times on its own. Files are verified against
the publisher's checksums where there are any, written under a temporary name and renamed only
when complete and verified. A file already downloaded and verified is not fetched again.

sources:
  jawiki     Japanese Wikipedia. --dump cirrus (default): the CirrusSearch dump, plain text
             already extracted (weekly; numbered .json.bz2 shards since 2026, one .json.gz
             before). --dump xml: jawiki-DATE-pages-articles.xml.bz2, verified against
             Wikimedia's sha1sums/md5sums list. --date YYYYMMDD or --date latest.
  cc100-ja   CC-100 Japanese, https://data.statmt.org/cc-100/ja.txt.xz (no published checksum).
  edinet     filings from EDINET's API v2 (https://api.edinet-fsa.go.jp/api/v2): the documents of
             --doc-types (default 120, 有価証券報告書) filed from --start-date to --end-date, as
             DOCID.zip (inline XBRL, --file-type xbrl, the default) or DOCID.pdf, listed in
             OUT/edinet-documents.tsv; `ja-pretrain corpus OUT` reads them. The API key comes from
             --api-key or EDINET_API_KEY and is never printed or written to disk. Resumable: days
             already listed and documents already fetched are not fetched again.
  jglue      JGLUE v1.3 train and valid files from github.com/yahoojapan/JGLUE at the v1.3.0
             release commit, into DIR/TASK-v1.3/SPLIT-v1.3.json (where finetune --data DIR looks).
             --tasks picks from jsts, jnli, jcommonsenseqa, jsquad (default: all four). Files whose
             sha256 we know are verified, the others have theirs recorded. MARC-ja is not offered:
             it is no longer distributed by its publisher; pass your own copy to finetune --data.
  chabsa     chABSA-dataset.zip, the publisher's zip linked from github.com/chakki-works/chABSA-dataset,
             kept as published (finetune reads the zip). No published checksum.
  livedoor   the livedoor news corpus ldcc-20140209.tar.gz from RONDHUIT (www.rondhuit.com), kept as
             published. No published checksum.
  ner-wikipedia  Stockmark's Wikipedia NER data set (ner.json, v2.0) from
             github.com/stockmarkteam/ner-wikipedia-dataset at a pinned commit, sha256-verified.
  --url URL  anything else; give --sha256/--sha1/--md5 to verify it.

examples:
  ja-pretrain download jawiki --date latest --out raw/
  ja-pretrain download jawiki --date latest --shards 1 --out raw/     # a ~0.6 GB sample
  ja-pretrain download jawiki --date 20240701 --dump xml --out raw/
  ja-pretrain download cc100-ja --out raw/
  EDINET_API_KEY=... ja-pretrain download edinet --start-date 2024-06-01 --end-date 2024-06-30 --out raw/edinet
  ja-pretrain download jglue --out data/                         # data/jsts-v1.3/train-v1.3.json, ...
  ja-pretrain download jglue --tasks jsts jnli --out data/
  ja-pretrain download chabsa --out data/
  ja-pretrain download livedoor --out data/
  ja-pretrain download ner-wikipedia --out data/
  ja-pretrain download --url https://example.org/corpus.txt.gz --sha256 9f86d0... --out raw/
  ja-pretrain download jawiki --date 20240701 --dump xml --out raw/ \\
      --base-url https://ftp.acc.umu.se/mirror/wikimedia.org/dumps
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", nargs="?", choices=SOURCES, help="what to download (or use --url)")
    add_option(parser, "--out", required=True, type=Path, metavar="DIR", help="directory to download into")
    add_option(parser, "--date", help="jawiki: dump date YYYYMMDD, or 'latest' (the newest finished run)")
    # No argparse default, so that --dump given with another source can be refused.
    add_option(parser, "--dump", choices=("cirrus", "xml"), help="jawiki: which dump (default: cirrus)")
    add_option(parser, 
        "--shards", type=int, metavar="N",
        help="jawiki cirrus: only the first N shards (each about 0.6 GB compressed), for a sample",
    )
    add_option(parser, 
        "--tasks", nargs="+", metavar="NAME",
        help="jglue: which tasks, from jsts jnli jcommonsenseqa jsquad (default: all four; MARC-ja is no "
        "longer distributed by its publisher)",
    )
    add_option(parser, "--start_date", "--start-date", dest="start_date", metavar="YYYY-MM-DD",
               help="edinet: first filing day")
    add_option(parser, "--end_date", "--end-date", dest="end_date", metavar="YYYY-MM-DD",
               help="edinet: last filing day, inclusive (default: --start-date)")
    add_option(parser, "--doc_types", "--doc-types", dest="doc_types", nargs="+", metavar="CODE",
               help="edinet: docTypeCodes to fetch (default: 120, 有価証券報告書; 130 訂正有価証券報告書, "
               "140 四半期報告書, 160 半期報告書)")
    add_option(parser, "--file_type", "--file-type", dest="file_type", choices=("xbrl", "pdf"),
               help="edinet: the document ZIP with inline XBRL (default) or the PDF")
    add_option(parser, "--api_key", "--api-key", dest="api_key", metavar="KEY",
               help="edinet: the EDINET API key (default: the EDINET_API_KEY environment variable)")
    add_option(parser, "--url", help="download this URL instead of a named source")
    add_option(parser, "--name", help="--url: file name to save as (default: the last part of the URL path)")
    add_option(parser, "--sha256", metavar="HEX", help="--url: expected SHA-256")
    add_option(parser, "--sha1", metavar="HEX", help="--url: expected SHA-1")
    add_option(parser, "--md5", metavar="HEX", help="--url: expected MD5")
    add_option(parser, 
        "--base-url", metavar="URL",
        help="a mirror: replaces https://dumps.wikimedia.org (jawiki), https://data.statmt.org/cc-100 "
        "(cc100-ja), https://api.edinet-fsa.go.jp/api/v2 (edinet), "
        "https://raw.githubusercontent.com/yahoojapan/JGLUE/COMMIT (jglue), "
        "https://s3-ap-northeast-1.amazonaws.com/dev.tech-sketch.jp/chakki/public (chabsa) or "
        "https://www.rondhuit.com/download (livedoor), https://raw.githubusercontent.com/stockmarkteam/"
        "ner-wikipedia-dataset/COMMIT (ner-wikipedia) in every URL, jawiki's checksum lists included",
    )
    add_option(parser, "--retries", type=int, default=5, metavar="N", help="retries of a cut connection (default: 5)")
    add_option(parser, "--no-progress", action="store_true", help="no progress bar")


def _name_from_url(url: str) -> str:
    name = posixpath.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
    if not name:
        raise UserError(f"--url {url} ends in '/', so it names no file; add --name FILE")
    return name


def _check_options(args: argparse.Namespace) -> None:
    if args.url and args.source:
        raise UserError(f"give either a source ({args.source}) or --url, not both")
    if not args.url and not args.source:
        raise UserError(f"say what to download: {', '.join(SOURCES)}, or --url URL")
    if not args.url:
        for option in ("sha256", "sha1", "md5", "name"):
            if getattr(args, option):
                raise UserError(f"--{option} applies to --url only ({args.source} knows its own file names and checksums)")
    elif args.base_url:
        raise UserError("--base-url applies to the named sources; with --url, give the mirror's URL itself")
    if args.source == "jawiki" and not args.date:
        raise UserError("jawiki needs --date YYYYMMDD (a dump date) or --date latest")
    if args.source != "jawiki":
        for option in ("date", "shards", "dump"):
            if getattr(args, option) is not None:
                raise UserError(f"--{option} applies to jawiki only; leave it out for {args.source or '--url'}")
    if args.source == "edinet" and not args.start_date:
        raise UserError("edinet needs --start-date YYYY-MM-DD (and --end-date for more than one day)")
    if args.source != "edinet":
        for option in _EDINET_OPTIONS:
            if getattr(args, option) is not None:
                raise UserError(f"--{option.replace('_', '-')} applies to edinet only; leave it out for "
                                f"{args.source or '--url'}")
    if args.source != "jglue" and args.tasks is not None:
        raise UserError(f"--tasks applies to jglue only; {args.source or '--url'} is one data set, leave --tasks out")
    if args.retries < 0:
        raise UserError(f"--retries {args.retries}: must be 0 or more")
    if args.name is not None and (args.name in ("", ".", "..") or posixpath.basename(args.name) != args.name
                                  or "\\" in args.name):
        raise UserError(f"--name {args.name!r}: give a plain file name; the file goes into --out")


def run(args: argparse.Namespace) -> int:
    from ja_pretrain.download import (
        download_cc100,
        download_chabsa,
        download_jawiki,
        download_jglue,
        download_livedoor,
        download_ner_wikipedia,
        fetch,
    )

    _check_options(args)
    options = {"retries": args.retries, "progress": not args.no_progress}
    started = time.monotonic()
    if args.url:
        paths = [fetch(args.url, args.out / (args.name or _name_from_url(args.url)),
                       sha256=args.sha256, sha1=args.sha1, md5=args.md5, **options)]
    elif args.source == "jawiki":
        paths = download_jawiki(args.date, args.out, dump=args.dump or "cirrus", base_url=args.base_url,
                                max_shards=args.shards, **options)
    elif args.source == "jglue":
        paths = download_jglue(args.out, tasks=args.tasks, base_url=args.base_url, **options)
    elif args.source == "edinet":
        from ja_pretrain.download.edinet import download_edinet

        paths = download_edinet(args.out, start_date=args.start_date, end_date=args.end_date, doc_types=args.doc_types,
                                file_type=args.file_type or "xbrl", api_key_value=args.api_key,
                                base_url=args.base_url, **options)
    else:
        single = {"cc100-ja": download_cc100, "chabsa": download_chabsa, "livedoor": download_livedoor,
                  "ner-wikipedia": download_ner_wikipedia}
        paths = [single[args.source](args.out, base_url=args.base_url, **options)]
    total = sum(p.stat().st_size for p in paths)
    # Relative to --out, since JGLUE's files share names across task directories.
    listed = ", ".join(p.relative_to(args.out).as_posix() for p in paths[:3]) or "nothing matched"
    listed += f" and {len(paths) - 3} more" if len(paths) > 3 else ""
    print(f"download: {len(paths)} file(s), {total / 2**20:,.1f} MiB in {args.out} ({listed}) "
          f"in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0
