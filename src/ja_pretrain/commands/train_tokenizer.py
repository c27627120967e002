"""`ja-pretrain train-tokenizer`: corpus -> MeCab/Sudachi + WordPiece/SentencePiece tokenizer, or
SentencePiece on the raw text (no MeCab at load time)."""

from __future__ import annotations

import argparse
import functools

from ja_pretrain.tokenization.words import WORD_TOKENIZERS
from ja_pretrain.utils.options import add_option

NAME = "train-tokenizer"
HELP = "train a MeCab+WordPiece (or SentencePiece) tokenizer, or SentencePiece without MeCab"
DESCRIPTION = """\
Segment the corpus into words with MeCab (fugashi + a pip dictionary) or Sudachi, in parallel
over --num_files parts cut at document boundaries, then learn WordPiece (Rust `tokenizers`) or
SentencePiece (unigram or bpe) subwords from those words. Text is NFKC-normalised exactly as
BertJapaneseTokenizer does at load time. Special tokens: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3
[MASK]=4, then [unused0].. (--num_unused_tokens).

Writes MODEL_DIR/vocab.txt (or spiece.model), tokenizer_config.json, special_tokens_map.json
and manifest.json; `transformers.AutoTokenizer.from_pretrained(MODEL_DIR)` loads it as
BertJapaneseTokenizer. A MODEL_DIR already trained from the same input with the same options is
left as it is (--force retrains).

--word_tokenizer none: no morphological analyser. SentencePiece (unigram or bpe, with byte
fallback: no [UNK]) learns its pieces from the NFKC text itself, as ModernBERT-Ja's tokenizer,
and the result is saved as tokenizer.json (+ the spiece.model it came from), which AutoTokenizer
loads as a fast tokenizer with neither fugashi nor a dictionary installed. Same special tokens.
Whole-word masking refuses it: without a segmenter there are no Japanese words to mask.

examples:
  ja-pretrain train-tokenizer --input_file run/corpus --model_dir run/tokenizer --num_files 8
  ja-pretrain train-tokenizer --input_file corpus.txt --model_dir tokenizer/ \\
      --intermediate_dir ./data/corpus_split/ --num_files 20 --mecab_dic_type ipadic \\
      --tokenizer_type wordpiece --vocab_size 32768 --min_frequency 2 --limit_alphabet 6129 \\
      --num_unused_tokens 10
  ja-pretrain train-tokenizer --input-file run/corpus --model-dir run/tok-sp \\
      --tokenizer-type sentencepiece --sentencepiece-model unigram --max-sentences 10000000
  ja-pretrain train-tokenizer --input_file run/corpus --model_dir run/tok-raw --word_tokenizer none \\
      --vocab_size 32768 --max_sentences 10000000
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = functools.partial(add_option, parser)
    a("--input_file", "--input-file", dest="input_file", required=True,
      help="corpus directory from `ja-pretrain corpus` (its train-*.txt) or one text file "
      "(one sentence per line, blank line between documents)")
    a("--model_dir", "--model-dir", dest="model_dir", required=True, help="output tokenizer directory")
    a("--intermediate_dir", "--intermediate-dir", dest="intermediate_dir", default=None,
      help="keep the corpus parts and their word files here (default: a temporary dir, removed)")
    a("--num_files", "--num-files", dest="num_files", type=int, default=1,
      help="parts the corpus is cut into for parallel word segmentation (default: 1)")
    a("--workers", type=int, default=None, help="processes (default: min(num_files, CPUs))")
    a("--word_tokenizer", "--word-tokenizer", dest="word_tokenizer", default="mecab", choices=WORD_TOKENIZERS,
      help="word segmenter before the subwords (default: mecab); none: SentencePiece on the raw text, "
      "saved as tokenizer.json (loads without MeCab)")
    a("--mecab_dic_type", "--mecab-dic-type", dest="mecab_dic_type", default="ipadic",
      choices=("ipadic", "unidic_lite", "unidic"), help="MeCab dictionary package (default: ipadic)")
    a("--sudachi_mode", "--sudachi-mode", dest="sudachi_mode", default="A", choices=("A", "B", "C"))
    a("--tokenizer_type", "--tokenizer-type", dest="tokenizer_type", default=None,
      choices=("wordpiece", "sentencepiece"),
      help="subword model (default: wordpiece; sentencepiece with --word_tokenizer none, the only choice there)")
    a("--sentencepiece_model", "--sentencepiece-model", dest="sentencepiece_model", default="unigram",
      choices=("unigram", "bpe"), help="SentencePiece algorithm (default: unigram)")
    a("--vocab_size", "--vocab-size", dest="vocab_size", type=int, default=32768)
    a("--min_frequency", "--min-frequency", dest="min_frequency", type=int, default=2,
      help="WordPiece: minimum pair frequency for a merge (default: 2)")
    a("--limit_alphabet", "--limit-alphabet", dest="limit_alphabet", type=int, default=6129,
      help="WordPiece: keep at most this many characters (default: 6129)")
    a("--num_unused_tokens", "--num-unused-tokens", dest="num_unused_tokens", type=int, default=10)
    a("--max_sentences", "--max-sentences", dest="max_sentences", type=int, default=None,
      help="train on a uniform sample of this many sentences")
    a("--seed", type=int, default=0, help="seed of the --max_sentences sample")
    a("--force", action="store_true", help="retrain even if MODEL_DIR is up to date")


def run(args: argparse.Namespace) -> int:
    import time

    from ja_pretrain.tokenization.train import train_tokenizer
    from ja_pretrain.utils.locks import exclusive
    from ja_pretrain.utils.manifest import read_manifest

    start = time.perf_counter()
    with exclusive(args.model_dir, f"--model_dir {args.model_dir}", replaced=True):
        out = train_tokenizer(
            args.input_file, args.model_dir, intermediate_dir=args.intermediate_dir, num_files=args.num_files,
            mecab_dic_type=args.mecab_dic_type, tokenizer_type=args.tokenizer_type,
            sentencepiece_model=args.sentencepiece_model, vocab_size=args.vocab_size,
            min_frequency=args.min_frequency, limit_alphabet=args.limit_alphabet,
            num_unused_tokens=args.num_unused_tokens, word_tokenizer=args.word_tokenizer,
            sudachi_mode=args.sudachi_mode, max_sentences=args.max_sentences, workers=args.workers, seed=args.seed,
            force=args.force,
        )
    counts = read_manifest(out)["counts"]
    words = f" ({counts['words']} words)" if "words" in counts else ""
    print(f"train-tokenizer: {counts['vocab_size']} ids from {counts['sentences']} sentences{words} "
          f"-> {out} in {time.perf_counter() - start:.1f}s")
    return 0
