"""`ja-pretrain build-dataset`: corpus + tokenizer -> memory-mapped token ids and samples."""

from __future__ import annotations

import argparse
import functools

from ja_pretrain.config.forms import DEFAULT_FORM_OPTION, FORM_HELP, FORM_OPTIONS, stored_form
from ja_pretrain.utils.options import add_option

NAME = "build-dataset"
HELP = "encode a corpus with a tokenizer into memory-mapped ids and packed or NSP-pair samples"
DESCRIPTION = """\
Encode the corpus with a fast encoder that gives exactly AutoTokenizer's ids (MeCab in C,
WordPiece in Rust, a word cache; --workers processes), store the ids flat (uint16 when the
vocabulary fits) with a document/sentence index and word-start bits for whole-word masking,
and build the training samples once:
  packed  [CLS] + whole consecutive sentences of one document + [SEP] (a longer sentence is split)
  pairs   [CLS] A [SEP] B [SEP] with token_type_ids, B a random other document's text half the
          time (next-sentence prediction, as the first seed's BERT)
The corpus' train-*.txt become the train split and its valid.txt the valid split.

A finished --out built from the same inputs and options is left as it is (--force rebuilds).
Several machines: each runs --shard-index i --num-shards N into its own --out, then one runs
--merge SHARD_DIR... --out DIR.

examples:
  ja-pretrain build-dataset --corpus run/corpus --tokenizer run/tokenizer --out run/dataset \\
      --sequence-length 128 --workers 4
  ja-pretrain build-dataset --corpus run/corpus --tokenizer run/tokenizer --out run/nsp --form pairs
  ja-pretrain build-dataset --corpus run/corpus --tokenizer run/tokenizer --out parts/0 --shard-index 0 --num-shards 2
  ja-pretrain build-dataset --merge parts/0 parts/1 --out run/dataset
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = functools.partial(add_option, parser)
    a("--corpus", "--input_file", "--input-file", dest="corpus", default=None,
      help="corpus directory from `ja-pretrain corpus`, or a text file (one sentence per line)")
    a("--tokenizer", "--tokenizer_dir", "--tokenizer-dir", dest="tokenizer", default=None,
      help="tokenizer directory from `ja-pretrain train-tokenizer`")
    a("--out", "--output_dir", "--output-dir", dest="out", required=True, help="output dataset directory")
    a("--sequence_length", "--sequence-length", dest="sequence_length", type=int, default=None,
      help="tokens per sample incl. [CLS]/[SEP] (default: the preset's sequence-length, or 128)")
    a("--parameter_file", "--parameter-file", dest="parameter_file", default=None, help="parameter.json")
    a("--model_type", "--model-type", dest="model_type", default=None,
      help="preset whose sequence-length to use (e.g. bert-small)")
    a("--form", default=DEFAULT_FORM_OPTION, choices=tuple(FORM_OPTIONS), help=FORM_HELP)
    a("--workers", type=int, default=1, help="encoder processes (default: 1)")
    a("--seed", type=int, default=0, help="seed of the random B sentences in --form pairs")
    a("--dtype", default=None, choices=("uint16", "uint32"), help="force the token id type")
    a("--shard_index", "--shard-index", dest="shard_index", type=int, default=0)
    a("--num_shards", "--num-shards", dest="num_shards", type=int, default=1)
    a("--merge", nargs="+", metavar="SHARD_DIR", default=None, help="join shard directories into --out")
    a("--force", action="store_true", help="rebuild even if --out is up to date")
    a("--no_progress", "--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    import time

    from ja_pretrain.dataset.build import build_dataset, merge_shards
    from ja_pretrain.errors import UserError
    from ja_pretrain.utils.locks import exclusive
    from ja_pretrain.utils.manifest import read_manifest

    start = time.perf_counter()
    if not args.merge and not (args.corpus and args.tokenizer):
        raise UserError("--corpus and --tokenizer are required (or --merge SHARD_DIR...)")
    length = args.sequence_length
    if length is None and args.model_type:
        from ja_pretrain.config.parameters import load_parameters

        length = load_parameters(args.model_type, args.parameter_file).sequence_length
    with exclusive(args.out, f"--out {args.out}", replaced=True):
        if args.merge:
            out = merge_shards(args.merge, args.out, progress=args.progress)
        else:
            out = build_dataset(args.corpus, args.tokenizer, args.out, sequence_length=length or 128, form=stored_form(args.form),
                                workers=args.workers, seed=args.seed, dtype=args.dtype, shard_index=args.shard_index,
                                num_shards=args.num_shards, force=args.force, progress=args.progress)
    manifest = read_manifest(out)
    c = manifest["counts"]
    samples = f", {c['train_samples']} train samples" if "train_samples" in c else ""
    print(f"build-dataset: {c['train_documents']} documents, {c['train_sentences']} sentences, "
          f"{c['train_tokens']} tokens{samples} -> {out} in {time.perf_counter() - start:.1f}s")
    return 0
