"""Tokenizers: word segmentation (MeCab/Sudachi), subword training (WordPiece/SentencePiece),
export in the BertJapaneseTokenizer layout, and a fast encoder giving the same ids."""
