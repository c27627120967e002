"""`ja-pretrain corpus`: raw dumps and text files -> clean sentence-per-line corpus."""

from __future__ import annotations

import argparse

from ja_pretrain.utils.options import add_option

NAME = "corpus"
HELP = "clean, sentence-split, de-duplicate and shard raw text into a corpus directory"
DESCRIPTION = """\
Read jawiki CirrusSearch or MediaWiki XML dumps, CC-100, plain text or JSONL (optionally
.gz/.xz/.bz2/.zst), Aozora Bunko text files, PDF files and EDINET document ZIPs (or directories
of them), in UTF-8, CP932/Shift_JIS, EUC-JP or ISO-2022-JP (--encoding, detected by default), and
write OUT/train-NNNNN.txt shards, OUT/valid.txt and OUT/manifest.json: one NFKC-normalised
sentence per line, a blank line between documents.

Cleaning: NFKC, invisible/control characters, whitespace, Wikipedia residue ([1], [要出典],
template leftovers; for XML dumps also templates, tables, refs, files, categories, lists);
Aozora ruby, notes, header and footer; PDF page headers, footers, page numbers and rows of
figures; EDINET hidden XBRL facts and numeric tables); optional quality filters for web text
(--quality); near-duplicate documents removed whole (MinHash + LSH, --near-dedup: on by default
for CC-100 and JSONL); sentences split after 。!? (not inside 「」『』() quotes/brackets), kept
when --min-chars..--max-chars long and not starting or ending with a comma; exact duplicate
sentences dropped (first copy kept, fixed memory). Every removed document is counted by reason
in the manifest, and up to 20 per reason are written to OUT/removed/REASON.txt to look at.
Documents are kept whole: a document goes entirely to train or to valid, drawn from a hash of
(--seed, document number).
Output is identical for any --workers; --shard-index/--num-shards + --merge gives the same
bytes as one machine. A finished --out with the same inputs and options is left as it is.

examples:
  ja-pretrain corpus jawiki-20240701-cirrussearch-content.json.gz --out run/corpus --workers 8
  ja-pretrain corpus jawiki-20210601-pages-articles.xml.bz2 --out run/corpus --valid-ratio 0.005
  ja-pretrain corpus ja.txt.xz --format cc100 --max-sentences 128000000 --valid-sentences 1000000 --out run/cc100
  ja-pretrain corpus reports/*.jsonl --text-field body --out run/fin-corpus
  ja-pretrain corpus raw/edinet/ tanshin-pdfs/ --on-bad-input skip --out run/fin-corpus
  ja-pretrain corpus mc4-ja.jsonl.gz --quality all --near-dedup-threshold 0.8 --out run/web
  ja-pretrain corpus aozora/*.txt --encoding cp932 --out run/aozora
  # on machine i of 4, then on one machine:
  ja-pretrain corpus dump.json.gz --shard-index i --num-shards 4 --out parts/part-i
  ja-pretrain corpus --merge parts/part-0 parts/part-1 parts/part-2 parts/part-3 --out run/corpus
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="dump or text files, read in this order")
    add_option(parser, "--out", "--output_dir", "--output-dir", dest="out", required=True, help="output directory")
    add_option(parser, "--format", default="auto",
               choices=("auto", "cirrus", "xml", "text", "cc100", "jsonl", "aozora", "pdf", "edinet"),
               help="input format (default: detected from the content)")
    add_option(parser, "--encoding", default="auto", metavar="NAME",
               help="text encoding of the inputs: utf-8, cp932 (Windows Shift_JIS), shift_jis, euc-jp, iso-2022-jp "
               "(default auto: UTF-8, else detected, with its confidence in the log and manifest; a file not in "
               "the named encoding is bad input)")
    add_option(parser, "--on_bad_input", "--on-bad-input", dest="on_bad_input", default="stop", choices=("stop", "skip"),
               help="an input that cannot be read (encrypted or image-only PDF, a ZIP that is not an EDINET "
               "document, a file not in --encoding): stop with its name and why (default), or skip it, go on with "
               "the others and list it in the manifest")
    add_option(parser, "--quality", nargs="+", metavar="FILTER[=T]", default=None,
               help="document quality filters for web text: all, or any of length=50 japanese=0.5 hiragana=0.1 "
               "symbols=0.1 urls=0.1 repeated_lines=0.3 repeated_ngrams=0.3 ellipsis_lines=0.7 (shown: the default thresholds; "
               "length, japanese and hiragana are minimums, the others maximums)")
    add_option(parser, "--near_dedup", "--near-dedup", dest="near_dedup", default="auto", choices=("auto", "on", "off"),
               help="remove near-duplicate documents whole, before sentence de-duplication (MinHash + LSH over "
               "character 5-grams; the first copy stays); auto (default): on when an input is CC-100 or JSONL")
    add_option(parser, "--near_dedup_threshold", "--near-dedup-threshold", dest="near_dedup_threshold", type=float,
               default=0.7, help="Jaccard similarity of 5-gram sets above which documents are near duplicates "
               "(default: 0.7)")
    add_option(parser, "--near_dedup_memory_mb", "--near-dedup-memory-mb", dest="near_dedup_memory_mb", type=float,
               default=256, help="memory for the near-duplicate band table: 131072 band keys per MB, about 8,000 "
               "documents per MB at the default threshold (default: 256)")
    add_option(parser, "--text_field", "--text-field", dest="text_field", default="text",
                        help="JSONL field holding the text (default: text)")
    add_option(parser, "--min_chars", "--min-chars", dest="min_chars", type=int, default=10,
                        help="drop sentences shorter than this (default: 10)")
    add_option(parser, "--max_chars", "--max-chars", dest="max_chars", type=int, default=1000,
                        help="drop sentences longer than this (default: 1000)")
    add_option(parser, "--valid_ratio", "--valid-ratio", dest="valid_ratio", type=float, default=None,
                        help="fraction of documents drawn for valid.txt (default: 0.01 without --valid-sentences); "
                        "with --valid-sentences: an upper bound")
    add_option(parser, "--valid_sentences", "--valid-sentences", dest="valid_sentences", type=int, default=None,
                        help="draw about this many sentences' worth of documents for valid.txt, evenly over the "
                        "whole corpus (a second, reading-only pass); 0 = no valid set")
    add_option(parser, "--seed", type=int, default=42, help="seed of the train/valid draw (default: 42)")
    add_option(parser, "--shard_size_mb", "--shard-size-mb", dest="shard_size_mb", type=float, default=256,
                        help="start a new train shard after this many MB (default: 256)")
    add_option(parser, "--max_sentences", "--max-sentences", dest="max_sentences", type=int, default=None,
                        help="stop after writing this many sentences (whole documents), like the first-128M cap on CC-100")
    add_option(parser, "--dedup_memory_mb", "--dedup-memory-mb", dest="dedup_memory_mb", type=float, default=256,
                        help="memory for the duplicate-sentence table: 131072 sentences per MB (default: 256)")
    add_option(parser, "--allow_truncated", "--allow-truncated", dest="allow_truncated", action="store_true",
                        help="use the complete documents of a truncated input instead of stopping with an error")
    add_option(parser, "--workers", type=int, default=1, help="cleaning processes; output is identical for any number")
    add_option(parser, "--shard_index", "--shard-index", dest="shard_index", type=int, default=None,
                        help="with --num-shards: clean only documents i mod n into a part directory")
    add_option(parser, "--num_shards", "--num-shards", dest="num_shards", type=int, default=None)
    add_option(parser, "--merge", nargs="+", metavar="PART_DIR", default=None,
                        help="merge the part directories of a sharded run into --out (no INPUT)")
    add_option(parser, "--force", action="store_true", help="rebuild even if --out is up to date")
    add_option(parser, "--no_progress", "--no-progress", dest="progress", action="store_false", default=None,
                        help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from ja_pretrain.corpus.build import build_corpus
    from ja_pretrain.corpus.summary import format_summary
    from ja_pretrain.errors import UserError
    from ja_pretrain.utils.locks import exclusive

    if args.merge and args.inputs:
        raise UserError("--merge takes part directories only; give INPUT files in the part runs")
    with exclusive(args.out, f"--out {args.out}", replaced=True):
        if args.merge:
            from ja_pretrain.corpus.parts import merge_parts

            manifest = merge_parts(args.merge, args.out)
        else:
            manifest = build_corpus(
                args.inputs, args.out, format=args.format, text_field=args.text_field, min_chars=args.min_chars,
                max_chars=args.max_chars, valid_ratio=args.valid_ratio, valid_sentences=args.valid_sentences,
                seed=args.seed, shard_size_mb=args.shard_size_mb, max_sentences=args.max_sentences,
                dedup_memory_mb=args.dedup_memory_mb, allow_truncated=args.allow_truncated, encoding=args.encoding,
                on_bad_input=args.on_bad_input, quality=args.quality, near_dedup=args.near_dedup,
                near_dedup_threshold=args.near_dedup_threshold, near_dedup_memory_mb=args.near_dedup_memory_mb,
                workers=args.workers,
                shard_index=args.shard_index, num_shards=args.num_shards, force=args.force, progress=args.progress,
            )
    print(format_summary(manifest, args.out))
    return 0
