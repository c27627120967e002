"""Training samples as token ranges over a TokenStore, built once and saved as an index.

Both forms work on *units*: a sentence, or a piece of at most `capacity` tokens of a sentence
longer than that. Units of a document are consecutive in the store, so a run of units is one
token range and a sample is a few int64 numbers:

  packed  [start, end)                       -> [CLS] tokens[start:end] [SEP]
  pairs   [a_start, a_end, b_start, b_end, label] -> [CLS] A [SEP] B [SEP]
          label 0: B is the text that follows A; 1: B is from a random other document
"""

from __future__ import annotations

import bisect

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


def pair_samples(sentence_offsets, document_sentences, sequence_length: int, seed: int) -> np.ndarray:
    """Next-sentence-prediction pairs in the manner of BERT's create_pretraining_data.

    A chunk of whole units (at most L-3 tokens) is cut at a random unit boundary into A and B;
    with probability 1/2, B is replaced by text from a random other document and the unused
    units of the chunk are put back for the next chunk. A one-unit chunk is split in the middle
    of its tokens for a true continuation.
    """
    target = sequence_length - 3
    bounds_np, doc_first, doc_end = _units(sentence_offsets, document_sentences, target)
    keep = doc_first < doc_end
    doc_first, doc_end = doc_first[keep].tolist(), doc_end[keep].tolist()
    bounds = bounds_np.tolist()
    n_docs = len(doc_first)
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, int, int, int, int]] = []
    for d in range(n_docs):
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
                a1 = min(a1, a0 + target - 1)
                r = d
                if n_docs > 1:
                    r = int(rng.integers(n_docs - 1))
                    r += r >= d
                u = int(rng.integers(doc_first[r], doc_end[r]))
                b0 = bounds[u]
                b1 = min(bounds[doc_end[r]], b0 + target - (a1 - a0))
            rows.append((a0, a1, b0, b1, int(random_b)))
    if not rows:
        return np.zeros((0, PAIRS_COLUMNS), dtype=np.int64)
    return np.asarray(rows, dtype=np.int64)
