"""Near-duplicate documents: MinHash signatures, LSH bands, and a bounded index of the bands seen.

Web crawls hold many copies of a page that differ by a sentence, a boilerplate footer or the
order of their lines; exact sentence hashing keeps each copy's unique leftovers. Here a whole
document is compared with the earlier ones by the Jaccard similarity of its sets of character
5-grams (shingles), estimated by MinHash and found by locality-sensitive hashing:

- `shingle_hashes`: every character 5-gram of the text, hashed to 64 bits in numpy (the code
  points combined polynomially, then a 64-bit finaliser), with no Python loop per character.
- `signatures`: NUM_PERM values per text by one permutation hashing: each shingle's hash falls
  into one of NUM_PERM bins by its top bits, and a bin's value is the smallest of the next 32
  bits among its shingles; a bin no shingle fell into takes the value of the first filled bin in
  a fixed random order of the other bins (optimal densification, Shrivastava, ICML 2017).
  P[signatures agree at j] is the Jaccard similarity, as with NUM_PERM hash functions, for one
  hash and a sort per shingle instead of NUM_PERM multiply-adds; and a whole batch of documents
  goes through one sort, so a short document costs no more numpy calls than a long one.
  Measured: the recall and precision of 128 multiply-add functions, the error of datasketch's
  estimate of the similarity, 3-4x the speed of the former (benchmarks/README.md).
- `band_keys`: the signature cut into `bands` bands of `rows` values; each band's values mixed
  into a seed of its own, an 8-byte key. Two documents share a band with probability
  1 - (1 - s^rows)^bands for similarity s. (bands, rows) are chosen for the threshold so that the
  areas of false positives below it and false negatives above it are smallest together (the rule
  datasketch uses; computed here).
- `NearDuplicateIndex`: the band keys of the documents kept so far, in the same bounded table as
  exact sentence de-duplication (dedup.py). A document sharing any band with a kept one is a
  near duplicate and goes whole; otherwise its keys are added. The first copy in input order stays,
  so the result does not depend on workers or machines.

Signatures are a pure function of a document, computed in the workers (or on each machine of a
sharded run, written into its part); the index is a single pass in document order in the writing
process (or in the merge: the global pass over all parts' signatures).
The implementation was chosen over datasketch's and datatrove's by measurement:
benchmarks/neardup_bench.py and benchmarks/README.md.
"""

from __future__ import annotations

import functools

import numpy as np

from ja_pretrain.corpus.dedup import SentenceDeduplicator

SHINGLE = 5
NUM_PERM = 128
KEY_SIZE = 8
_SEED = 20240624
_POLY = np.uint64(0x100000001B3)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_MAX_TEXTS = 1 << 20  # texts per sort in `signatures`: the text number takes the top bits of a key


def _mix(h: np.ndarray) -> None:
    """splitmix64's finaliser, in place: every input bit moves every output bit."""
    h ^= h >> np.uint64(30)
    h *= _MIX1
    h ^= h >> np.uint64(27)
    h *= _MIX2
    h ^= h >> np.uint64(31)


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)


def _window_hashes(points: np.ndarray, size: int) -> np.ndarray:
    n = len(points) - size + 1
    if n <= 0:
        return np.empty(0, dtype=np.uint64)
    h = points[:n].copy()
    for j in range(1, size):
        h *= _POLY
        h += points[j : j + n]
    _mix(h)
    return h


def shingle_hashes(text: str, size: int = SHINGLE) -> np.ndarray:
    """64-bit hashes of every `size`-character substring of `text` (empty if it is shorter)."""
    return _window_hashes(_code_points(text), size)


def joined_shingle_hashes(texts: list[str], size: int = SHINGLE) -> tuple[np.ndarray, np.ndarray]:
    """The shingle hashes of many texts in one pass, text after text, and how many each text has:
    the texts are hashed joined, and the windows that run from one into the next are dropped."""
    hashes = _window_hashes(_code_points("".join(texts)), size)
    lengths = np.fromiter(map(len, texts), dtype=np.intp, count=len(texts))
    if len(texts) > 1:
        ends = np.cumsum(lengths)
        crossing = (ends[:, None] - np.arange(1, size)).ravel()
        inside = np.ones(len(hashes), dtype=bool)
        inside[crossing[(crossing >= 0) & (crossing < len(hashes))]] = False
        hashes = hashes[inside]
    return hashes, np.maximum(lengths - (size - 1), 0)


@functools.lru_cache(maxsize=4)
def _densification(num_perm: int) -> np.ndarray:
    """Row j: bin j, then the other bins in a fixed random order, where an empty bin j looks
    for the value it takes."""
    rng = np.random.default_rng(_SEED)
    order = np.empty((num_perm, num_perm), dtype=np.intp)
    for j in range(num_perm):
        order[j, 0] = j
        order[j, 1:] = rng.permutation(np.delete(np.arange(num_perm), j))
    return order


def signatures(texts: list[str], num_perm: int = NUM_PERM) -> tuple[np.ndarray, np.ndarray]:
    """The MinHash signatures of many texts in one pass: (len(texts), num_perm) uint32 values
    (num_perm a power of two), and which texts have a shingle at all (the others' rows are 0)."""
    bin_bits = num_perm.bit_length() - 1
    if num_perm != 1 << bin_bits:
        raise ValueError(f"num_perm {num_perm}: must be a power of two")
    if len(texts) > _MAX_TEXTS:
        parts = [signatures(texts[i : i + _MAX_TEXTS], num_perm) for i in range(0, len(texts), _MAX_TEXTS)]
        return np.concatenate([v for v, _ in parts]), np.concatenate([h for _, h in parts])
    # A key is (text number, bin, value) in its bits, so that one sort orders every text's
    # shingles and the first of each run of one (text, bin) is that bin's smallest value.
    keys, counts = joined_shingle_hashes(texts)
    keys >>= np.uint64(64 - bin_bits - 32)  # the bin (top bits), then the 32 bits of the value
    if len(texts) > 1:
        keys |= np.repeat(np.arange(len(texts), dtype=np.uint64) << np.uint64(bin_bits + 32), counts)
    keys.sort()
    runs = keys >> np.uint64(32)
    first = np.ones(len(keys), dtype=bool)
    np.not_equal(runs[1:], runs[:-1], out=first[1:])
    heads = keys[first]
    text = (heads >> np.uint64(bin_bits + 32)).astype(np.intp)
    slot = ((heads >> np.uint64(32)) & np.uint64(num_perm - 1)).astype(np.intp)
    values = np.zeros((len(texts), num_perm), dtype=np.uint32)
    filled = np.zeros((len(texts), num_perm), dtype=bool)
    values[text, slot] = heads.astype(np.uint32)  # the low 32 bits: the value
    filled[text, slot] = True
    has = filled.any(axis=1)
    sparse = np.flatnonzero(has & ~filled.all(axis=1))
    if len(sparse):
        values[sparse] = _densify(values[sparse], filled[sparse])
    return values, has


def _densify(values: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """Each empty bin j takes the value of the first filled bin along row j of the order: the
    order's columns are tried in turn, for all documents at once, until no bin is left empty
    (a few steps unless a document has very few shingles)."""
    order = _densification(values.shape[1])
    donors = np.broadcast_to(np.arange(values.shape[1]), values.shape).copy()
    empty = ~filled
    for step in range(1, values.shape[1]):
        found = empty & filled[:, order[:, step]]
        donors[found] = np.broadcast_to(order[:, step], values.shape)[found]
        empty &= ~found
        if not empty.any():
            break
    return np.take_along_axis(values, donors, axis=1)


def minhash(text: str, num_perm: int = NUM_PERM) -> np.ndarray | None:
    """The MinHash signature of one text (see `signatures`), or None if it has no shingle."""
    values, has = signatures([text], num_perm)
    return values[0] if has[0] else None


def _collision_probability(s: np.ndarray, bands: int, rows: int) -> np.ndarray:
    return 1.0 - (1.0 - s**rows) ** bands


@functools.lru_cache(maxsize=16)
def lsh_parameters(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm that minimise false positives below `threshold`
    plus false negatives above it, each weighted equally."""
    below = np.linspace(0.0, threshold, 200)
    above = np.linspace(threshold, 1.0, 200)
    best = (float("inf"), 1, num_perm)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            fp = np.trapezoid(_collision_probability(below, bands, rows), below)
            fn = np.trapezoid(1.0 - _collision_probability(above, bands, rows), above)
            if fp + fn < best[0]:
                best = (fp + fn, bands, rows)
    return best[1], best[2]


@functools.lru_cache(maxsize=4)
def _band_seeds(bands: int) -> np.ndarray:
    return np.random.default_rng(_SEED + 1).integers(0, 2**63, size=bands, dtype=np.uint64)


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(len(signatures), bands) 64-bit keys: each band's values absorbed one by one into a seed of
    its own (xor, then the finaliser), so equal keys mean equal values in the same band."""
    values = signatures[:, : bands * rows].reshape(len(signatures), bands, rows).astype(np.uint64)
    keys = np.repeat(_band_seeds(bands)[None, :], len(signatures), axis=0)
    for row in range(rows):
        keys ^= values[:, :, row]
        _mix(keys)
    return keys


def document_bands(texts: list[str], threshold: float, num_perm: int = NUM_PERM) -> list[bytes | None]:
    """The LSH band keys of each text (KEY_SIZE bytes per band), or None for a text too short to
    have a shingle."""
    values, has = signatures(texts, num_perm)
    keys = band_keys(values, *lsh_parameters(threshold, num_perm)).astype("<u8", copy=False)
    return [row.tobytes() if ok else None for row, ok in zip(keys, has, strict=True)]


class NearDuplicateIndex:
    """The band keys of the documents kept so far, in `memory_mb` MiB (see dedup.py for what
    happens when it is full: the oldest keys of a crowded bucket are forgotten and counted)."""

    def __init__(self, memory_mb: float):
        self.table = SentenceDeduplicator(memory_mb)

    def is_near_duplicate(self, keys: bytes) -> bool:
        """True if the document shares a band with a kept one; else its keys are recorded."""
        return not self.table.add_group(np.frombuffer(keys, dtype="<u8"))

    @property
    def evictions(self) -> int:
        return self.table.evictions

    @property
    def capacity(self) -> int:
        return self.table.capacity
