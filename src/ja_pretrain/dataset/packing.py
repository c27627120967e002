"""Training samples as token ranges over a TokenStore, built once and saved as an index.

Both forms work on *units*: a sentence, or a piece of at most `capacity` tokens of a sentence
longer than that. Units of a document are consecutive in the store, so a run of units is one
token range and a sample is a few int64 numbers:

  packed  [start, end)                       -> [CLS] tokens[start:end] [SEP]
  pairs   [a_start, a_end, b_start, b_end, label] -> [CLS] A [SEP] B [SEP]
          label 0: B is the text that follows A; 1: B is from a random other document

and two forms that fill every row, cutting documents anywhere (as RoBERTa's full-sentences
packing does); a row is again one token range, which may span documents:

  full    [start, end)  -> [CLS] doc1 [SEP] [CLS] doc2 [SEP] ...   each document on its own:
          attention within it only, positions from 0 (`SampleSet.batch` gives document_ids
          and position_ids), as if each were its own row
  joined  [start, end)  -> [CLS] doc1 [SEP] doc2 [SEP] ...         one sequence, attending across
"""

from __future__ import annotations

import bisect
import itertools

import numpy as np

PACKED_COLUMNS = 2
PAIRS_COLUMNS = 5


def _units(sentence_offsets: np.ndarray, document_sentences: np.ndarray, capacity: int):
    """Unit boundaries (token offsets, one more than units) and each document's unit range."""
    offsets = np.asarray(sentence_offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    pieces = np.maximum(1, -(-lengths // capacity))
    first_unit = np.cumsum(pieces) - pieces
    sentence_of_unit = np.repeat(np.arange(len(lengths)), pieces)
    piece_no = np.arange(len(sentence_of_unit)) - first_unit[sentence_of_unit]
    bounds = np.append(offsets[:-1][sentence_of_unit] + piece_no * capacity, offsets[-1])
    first_unit = np.append(first_unit, len(sentence_of_unit))
    docs = np.asarray(document_sentences, dtype=np.int64)
    return bounds, first_unit[docs[:-1]], first_unit[docs[1:]]


def packed_samples(sentence_offsets, document_sentences, sequence_length: int) -> np.ndarray:
    """Greedy packing of whole consecutive units of one document into [CLS] ... [SEP].

    Vectorised over documents: each round every unfinished document emits its next sample.
    """
    capacity = sequence_length - 2
    bounds, cur, end = _units(sentence_offsets, document_sentences, capacity)
    keep = cur < end
    cur, end = cur[keep], end[keep]
    starts, ends = [], []
    while len(cur):
        stop = np.searchsorted(bounds, bounds[cur] + capacity, side="right") - 1
        stop = np.minimum(stop, end)
        starts.append(bounds[cur])
        ends.append(bounds[stop])
        cur = stop
        keep = cur < end
        cur, end = cur[keep], end[keep]
    if not starts:
        return np.zeros((0, PACKED_COLUMNS), dtype=np.int64)
    samples = np.stack([np.concatenate(starts), np.concatenate(ends)], axis=1)
    return samples[np.argsort(samples[:, 0], kind="stable")]


def full_row_samples(document_offsets, sequence_length: int, joined: bool = False) -> np.ndarray:
    """Rows of `sequence_length` filled with consecutive documents (token offsets of each
    document and the end): each piece of a document costs its tokens plus [CLS] and [SEP]
    (`full`), or plus a [SEP] after one [CLS] per row (`joined`). A document that does not fit
    is cut and goes on in the next row. Greedy, one pass: a Python loop per document piece,
    which is small beside encoding the text."""
    bounds = np.asarray(document_offsets, dtype=np.int64).tolist()
    per_piece, per_row = (1, 1) if joined else (2, 0)
    min_room = per_piece + 1  # room for one more piece: its specials and a token
    rows: list[tuple[int, int]] = []
    row_start, room = -1, 0
    for s, e in itertools.pairwise(bounds):
        while s < e:
            if room < min_room:
                if row_start >= 0:
                    rows.append((row_start, s))
                row_start, room = s, sequence_length - per_row
            take = min(e - s, room - per_piece)
            room -= take + per_piece
            s += take
    if row_start >= 0:
        rows.append((row_start, bounds[-1]))
    return np.asarray(rows, dtype=np.int64).reshape(-1, PACKED_COLUMNS)


class RandomText:
    """Draws the random B of a pair: a random sentence start of a random other document,
    read from the split's index (memory maps are fine: a few reads per pair)."""

    def __init__(self, sentence_offsets, document_sentences, rng: np.random.Generator):
        self.offsets = sentence_offsets
        self.docs = document_sentences
        self.n_docs = len(document_sentences) - 1
        self.rng = rng

    def __call__(self, exclude: int, room: int) -> tuple[int, int]:
        r = exclude
        if self.n_docs > 1:
            r = int(self.rng.integers(self.n_docs - 1))
            r += r >= exclude
        first, stop = int(self.docs[r]), int(self.docs[r + 1])
        start = int(self.offsets[int(self.rng.integers(first, stop))])
        return start, min(int(self.offsets[stop]), start + room)


def pair_samples(sentence_offsets, document_sentences, sequence_length: int, rng: np.random.Generator,
                 random_text: RandomText | None = None, first_document: int = 0) -> np.ndarray:
    """Next-sentence-prediction pairs in the manner of BERT's create_pretraining_data.

    A chunk of whole units (at most L-3 tokens) is cut at a random unit boundary into A and B;
    with probability 1/2, B is replaced by text from a random other document and the unused
    units of the chunk are put back for the next chunk. A one-unit chunk is split in the middle
    of its tokens for a true continuation. `first_document` is the split-wide number of the
    first document given, for `random_text` to exclude.
    """
    target = sequence_length - 3
    random_text = random_text or RandomText(sentence_offsets, document_sentences, rng)
    # Units of at most L-4 tokens: a one-unit A with a random B keeps every token and still
    # leaves B a token of room.
    bounds_np, doc_first, doc_end = _units(sentence_offsets, document_sentences, target - 1)
    bounds, doc_first, doc_end = bounds_np.tolist(), doc_first.tolist(), doc_end.tolist()
    rows: list[tuple[int, int, int, int, int]] = []
    for d in range(len(doc_first)):
        i, e = doc_first[d], doc_end[d]
        while i < e:
            k = min(bisect.bisect_right(bounds, bounds[i] + target) - 1, e)
            random_b = rng.random() < 0.5
            if k - i >= 2:
                cut = i + 1 + int(rng.integers(k - i - 1))
                a0, a1 = bounds[i], bounds[cut]
                b0, b1 = bounds[cut], bounds[k]
                i = cut if random_b else k
            else:
                a0, a1 = bounds[i], bounds[k]
                if a1 - a0 >= 2 and not random_b:
                    mid = a0 + (a1 - a0) // 2
                    a1, b0, b1 = mid, mid, bounds[k]
                else:
                    random_b = True
                i = k
            if random_b:
                b0, b1 = random_text(first_document + d, target - (a1 - a0))
            rows.append((a0, a1, b0, b1, int(random_b)))
    if not rows:
        return np.zeros((0, PAIRS_COLUMNS), dtype=np.int64)
    return np.asarray(rows, dtype=np.int64)


def write_samples(store, path, form: str, sequence_length: int, seed: int, chunk_sentences: int = 1 << 14) -> int:
    """Build the sample index of a TokenStore a chunk of documents at a time into `path` (.npy).

    Memory is bounded by the chunk, not by the corpus: rows go to a scratch file first, since
    the .npy header needs the final row count.
    """
    columns = PAIRS_COLUMNS if form == "pairs" else PACKED_COLUMNS
    rng = np.random.default_rng(seed)
    random_text = RandomText(store.sentence_offsets, store.document_sentences, rng)
    scratch = path.with_name(path.name + ".rows")
    n_rows = 0
    with open(scratch, "wb") as f:
        for first, stop in store.document_chunks(chunk_sentences):
            docs, offsets = store.read_documents(first, stop)
            local_docs = docs - docs[0]
            if form == "packed":
                rows = packed_samples(offsets, local_docs, sequence_length)
            elif form in ("full", "joined"):
                rows = full_row_samples(offsets[local_docs], sequence_length, joined=form == "joined")
            else:
                rows = pair_samples(offsets, local_docs, sequence_length, rng, random_text, first)
            f.write(rows.tobytes())
            n_rows += len(rows)
    # A plain write, not a memory map: written pages of a map would count as resident memory.
    with open(path, "wb") as out, open(scratch, "rb") as rows_file:
        np.lib.format.write_array_header_1_0(
            out, {"descr": np.dtype(np.int64).str, "fortran_order": False, "shape": (n_rows, columns)})
        while block := rows_file.read(1 << 22):
            out.write(block)
    scratch.unlink()
    return n_rows
