"""Word segmentation exactly as `BertJapaneseTokenizer` does it at load time.

transformers' `MecabTokenizer` (and `SudachiTokenizer`) NFKC-normalise the text, then take the
surface of every morpheme. The WordPiece step then splits each surface again on whitespace.
Training and the fast encoder both segment through this module, so the words a vocabulary is
learnt from are the words it is later applied to.

MeCab is driven in `-Owakati` mode (surfaces joined by single spaces): the lattice and the
surfaces are the same as with node objects, but no Python object is built per morpheme.
MeCab never puts a space inside a surface (space is its word separator class), so splitting
the output on " " gives the surfaces back.

Word tokenizer "none" (SentencePiece on raw text, a `tokenizer.json`) has no segmenter here:
its spec only names it, and fugashi is imported only when MeCab is asked for, so such a
tokenizer runs where fugashi is not installed.
"""

from __future__ import annotations

import importlib
import os
import unicodedata
from dataclasses import dataclass
from importlib import metadata

from ja_pretrain.errors import UserError

# "none": no segmenter; SentencePiece learns its pieces from the raw (NFKC) text.
WORD_TOKENIZERS = ("mecab", "sudachi", "none")
# tokenizer_config.json classes that mean "everything is in tokenizer.json" (the second is
# transformers 5's name for the first).
FAST_TOKENIZER_CLASSES = ("PreTrainedTokenizerFast", "TokenizersBackend")
MECAB_DICTIONARIES = ("ipadic", "unidic_lite", "unidic")
SUDACHI_MODES = ("A", "B", "C")

# import name -> (pip package, extra setup step)
_DIC_PACKAGES = {
    "ipadic": ("ipadic", ""),
    "unidic_lite": ("unidic-lite", ""),
    "unidic": ("unidic", " && python -m unidic download"),
}


def mecab_dictionary_dir(mecab_dic: str) -> str:
    """The directory of a pip-installed MeCab dictionary; a UserError naming the package if absent."""
    if mecab_dic not in _DIC_PACKAGES:
        raise UserError(f"--mecab_dic_type {mecab_dic!r}: choose one of {', '.join(MECAB_DICTIONARIES)}")
    package, extra = _DIC_PACKAGES[mecab_dic]
    try:
        module = importlib.import_module(mecab_dic)
    except ImportError:
        raise UserError(
            f"the MeCab dictionary {mecab_dic!r} is not installed; run `pip install {package}{extra}` "
            f"or choose another --mecab_dic_type"
        ) from None
    dic_dir = getattr(module, "DICDIR", None)
    if not dic_dir or not os.path.isdir(dic_dir):
        raise UserError(
            f"the MeCab dictionary {mecab_dic!r} is installed but its files are missing ({dic_dir}); "
            f"run `pip install --force-reinstall {package}{extra}`"
        )
    return dic_dir


@dataclass(frozen=True)
class WordTokenizerSpec:
    """Which word segmenter, with which dictionary/mode: what tokenizer_config.json records."""
    kind: str = "mecab"  # one of WORD_TOKENIZERS
    mecab_dic: str = "ipadic"
    sudachi_mode: str = "A"
    sudachi_dict: str = "core"

    def config_entries(self) -> dict:
        """The tokenizer_config.json keys BertJapaneseTokenizer reads for this segmenter."""
        if self.kind == "mecab":
            return {"word_tokenizer_type": "mecab", "mecab_kwargs": {"mecab_dic": self.mecab_dic}}
        if self.kind == "none":
            return {"word_tokenizer_type": "none"}
        return {
            "word_tokenizer_type": "sudachi",
            "sudachi_kwargs": {"sudachi_split_mode": self.sudachi_mode, "sudachi_dict_type": self.sudachi_dict},
        }

    def package_versions(self) -> dict[str, str]:
        """Versions of the segmenter and its dictionary: a new dictionary release can segment
        differently, so cached token ids depend on them."""

        names = {"mecab": ["fugashi", _DIC_PACKAGES[self.mecab_dic][0]], "none": ["tokenizers"]}.get(
            self.kind, ["sudachipy", f"sudachidict-{self.sudachi_dict}"])
        versions = {}
        for name in names:
            try:
                versions[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                versions[name] = "not installed"
        return versions

    @classmethod
    def from_config(cls, config: dict) -> "WordTokenizerSpec":
        if config.get("tokenizer_class") in FAST_TOKENIZER_CLASSES:
            return cls(kind="none")
        kind = config.get("word_tokenizer_type", "basic")
        if kind == "mecab":
            kwargs = config.get("mecab_kwargs") or {}
            if kwargs.get("mecab_option"):
                raise UserError("tokenizer_config.json: mecab_kwargs.mecab_option is not supported by the fast encoder")
            return cls(kind="mecab", mecab_dic=kwargs.get("mecab_dic", "unidic_lite"))
        if kind == "sudachi":
            kwargs = config.get("sudachi_kwargs") or {}
            return cls(
                kind="sudachi",
                sudachi_mode=kwargs.get("sudachi_split_mode", "A"),
                sudachi_dict=kwargs.get("sudachi_dict_type", "core"),
            )
        raise UserError(f"tokenizer_config.json: word_tokenizer_type {kind!r} is not supported; use mecab or sudachi")


class WordSegmenter:
    """Callable text -> surfaces, the same list BertJapaneseTokenizer's word tokenizer returns.

    Not picklable on purpose (it holds a C tagger); worker processes build their own.
    """

    def __init__(self, spec: WordTokenizerSpec):
        self.spec = spec
        if spec.kind == "mecab":
            import fugashi  # here, not at the top: a "none" tokenizer must run without it

            dic_dir = mecab_dictionary_dir(spec.mecab_dic)
            rc = os.path.join(dic_dir, "mecabrc")
            self._tagger = fugashi.GenericTagger(f'-d "{dic_dir}" -r "{rc}" -Owakati')
            self._parse = self._tagger.parse
        elif spec.kind == "sudachi":
            self._parse = _sudachi_parser(spec)
        elif spec.kind == "none":
            raise ValueError("word tokenizer 'none' has no segmenter: its text goes to SentencePiece whole")
        else:
            raise UserError(f"--word_tokenizer {spec.kind!r}: choose one of {', '.join(WORD_TOKENIZERS)}")

    def surfaces(self, text: str) -> list[str]:
        """Morpheme surfaces of NFKC(text), as MecabTokenizer.tokenize gives them."""
        text = unicodedata.normalize("NFKC", text)
        if not text.strip():
            return []
        if self.spec.kind == "mecab":
            return [w for w in self._parse(text).split(" ") if w]
        return self._parse(text)

    def wordpiece_words(self, text: str) -> list[str]:
        """The whitespace-free units the WordPiece step sees: each surface split on whitespace,
        as transformers' WordpieceTokenizer does per word."""
        if self.spec.kind == "mecab":
            # Surfaces are space-joined, so one split() equals split() of every surface.
            return self.wakati(text).split()
        text = unicodedata.normalize("NFKC", text)
        return [piece for surface in self._parse(text) for piece in surface.split()]

    def wakati(self, text: str) -> str:
        """MeCab only: the surfaces of NFKC(text) joined by spaces. MeCab reads a C string, so the
        output never holds a NUL (text after one is ignored, by transformers' MeCab path too)."""
        text = unicodedata.normalize("NFKC", text)
        return self._parse(text) if text.strip() else ""


def _sudachi_parser(spec: WordTokenizerSpec):
    try:
        from sudachipy import dictionary, tokenizer  # an optional extra: imported only when asked for
    except ImportError:
        raise UserError("Sudachi is not installed; run `pip install sudachipy sudachidict_core`") from None
    if spec.sudachi_mode not in SUDACHI_MODES:
        raise UserError(f"--sudachi_mode {spec.sudachi_mode!r}: choose A, B or C")
    try:
        sudachi = dictionary.Dictionary(dict=spec.sudachi_dict).create(
            getattr(tokenizer.Tokenizer.SplitMode, spec.sudachi_mode)
        )
    except Exception as err:  # sudachipy raises plain Exceptions for a missing dictionary
        raise UserError(
            f"the Sudachi dictionary {spec.sudachi_dict!r} could not be loaded ({err}); "
            f"run `pip install sudachidict_{spec.sudachi_dict}`"
        ) from None

    def parse(text: str) -> list[str]:
        return [m.surface() for m in sudachi.tokenize(text)]

    return parse
