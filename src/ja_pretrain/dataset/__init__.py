"""Encoded, packed training data: flat memory-mapped token ids plus sample indices.

    from ja_pretrain.dataset import build_dataset, prepare_dataset, open_samples
    out = build_dataset("run/corpus", "run/tokenizer", "run/dataset", sequence_length=128)
    samples = open_samples(out, split="train")
    batch = samples.batch(np.arange(8))   # dict of numpy arrays, see SampleSet.batch

Layout of a dataset directory (all written to a temporary sibling and renamed when complete):

    train.bin / train.wsb / train.idx   token ids, word-start bits, document+sentence index
    train.samples.npy                   int64 sample index ([start, end) or pairs rows)
    valid.*                             the same for the corpus' valid.txt (when present)
    manifest.json                       inputs' hashes, options, counts; written last
"""

from ja_pretrain.dataset.samples import SampleSet, open_samples

__all__ = ["SampleSet", "build_dataset", "open_samples", "prepare_dataset"]


def __getattr__(name):
    # The builders pull in the encoder and multiprocessing; readers (training) need not.
    if name == "build_dataset":
        from ja_pretrain.dataset.build import build_dataset

        return build_dataset
    if name == "prepare_dataset":
        from ja_pretrain.dataset.cache import prepare_dataset

        return prepare_dataset
    raise AttributeError(name)
