"""A SentencePiece model trained on raw text, as a `tokenizer.json` that AutoTokenizer loads
with no MeCab, no dictionary and no `sentencepiece`:

    NFKC -> SentencePiece's whitespace rules -> "▁" for spaces, split before each
         -> the unigram or BPE pieces, unknown characters as UTF-8 byte pieces
         -> [CLS] A [SEP] (pairs: [CLS] A [SEP] B [SEP], B with token type 1)

Each step mirrors what `SentencePieceProcessor.encode` does with the trainer settings of
`TRAINER_SETTINGS`, so the ids are the model's own (benchmarks/raw_text_bench.py measures the
share of sentences on which the two agree). NFKC is ours, not SentencePiece's: the trainer sees
text we normalised with the same NFKC (normalization_rule_name "identity").

The special tokens are the project's ([PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4 [unused0]..),
matched whole in the raw text before normalisation, as BertJapaneseTokenizer matches them.
Text that spells a special or byte piece only after NFKC ("［MASK］", "<0xE3>") can still come
out as that piece from the unigram model: `tokenizers`' Unigram has no piece types (transformers'
own conversion of SentencePiece unigram models behaves so too). SentencePiece never emits them
from text; BPE here never does either, as no merge makes them.
"""

from __future__ import annotations

from pathlib import Path

import sentencepiece as spm
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE, Unigram

from ja_pretrain.tokenization.files import FAST_TOKENIZER_FILE, SPECIAL_TOKENS

SPACE = "\u2581"  # SentencePiece's "▁", standing for a space
# For raw Japanese text. No dummy "▁" before each text: Japanese has no space before a sentence,
# and without one a sentence encodes the same alone (as the dataset encodes it) as inside a
# paragraph (as a downstream context is encoded). Byte fallback: a character the vocabulary
# lacks becomes its UTF-8 bytes, never [UNK].
TRAINER_SETTINGS = {"add_dummy_prefix": False, "byte_fallback": True, "remove_extra_whitespaces": True,
                    "split_by_whitespace": True}


def write_tokenizer_json(model_file: Path, model_type: str, out_dir: Path, specials: list[str]) -> None:
    """Convert `model_file` (a unigram or bpe model trained with TRAINER_SETTINGS) into
    out_dir/tokenizer.json."""
    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    pieces = [sp.IdToPiece(i) for i in range(sp.GetPieceSize())]
    scores = [sp.GetScore(i) for i in range(len(pieces))]
    unk = SPECIAL_TOKENS[1]
    if model_type == "bpe":
        ordinary = [i for i in range(len(pieces)) if _is_ordinary(sp, i)]
        model = BPE(vocab={p: i for i, p in enumerate(pieces)}, merges=_merges(pieces, scores, ordinary),
                    unk_token=unk, fuse_unk=True, byte_fallback=True)
    else:
        model = Unigram(list(zip(pieces, scores, strict=True)), unk_id=pieces.index(unk), byte_fallback=True)
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.NFKC(),
        # remove_extra_whitespaces: spaces (only U+0020, as SentencePiece) trimmed and runs made one
        normalizers.Replace(Regex(r"\A +| +\z"), ""),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    # split_by_whitespace: no piece spans a space, except the "▁" that opens it
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="never", split=True)
    tokenizer.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()])
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    cls, sep = SPECIAL_TOKENS[2], SPECIAL_TOKENS[3]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, pieces.index(cls)), (sep, pieces.index(sep))])
    tokenizer.save(str(out_dir / FAST_TOKENIZER_FILE))


def _is_ordinary(sp: spm.SentencePieceProcessor, i: int) -> bool:
    return not (sp.IsControl(i) or sp.IsUnknown(i) or sp.IsByte(i) or sp.IsUnused(i))


def _merges(pieces: list[str], scores: list[float], ordinary: list[int]) -> list[tuple[str, str]]:
    """BPE merges from a SentencePiece BPE model, which keeps pieces and scores but no merges.

    SentencePiece joins, at each step, the neighbours whose union is the highest-scoring piece.
    Every split of an ordinary piece into two ordinary pieces is a merge, ranked by the piece's
    score (ties by id, then by the left part's length): `tokenizers`' BPE, joining the
    lowest-ranked pair first, then makes the same choices. Special and byte pieces are never
    made by a merge, as SentencePiece never makes them from text.
    """
    known = {pieces[i] for i in ordinary}
    ranked = []
    for i in ordinary:
        piece = pieces[i]
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in known and right in known:
                ranked.append((-scores[i], i, cut, left, right))
    return [(left, right) for *_, left, right in sorted(ranked)]

