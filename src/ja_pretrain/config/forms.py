"""How a dataset lays text out in rows (`build-dataset --form`, `run-pretraining --form`); kept
here, free of imports, so that the commands' --help does not load numpy. The layouts are in
`ja_pretrain.dataset.packing`."""

FORMS = ("packed", "full", "joined", "pairs")
# packed: one document per row, padded; full: rows filled with documents kept apart; joined:
# rows filled with documents that see each other; pairs: next-sentence prediction pairs.
# full is the default: at equal tokens of text it gave the lowest held-out loss of the three
# (by a hair, benchmarks/packing_bench.py) in 0.63x the packed form's training time.
DEFAULT_FORM = "full"
FORM_HELP = ("packed: whole sentences of one document per row, the rest padding; full: rows filled with several "
             "documents, each attending only to itself (positions from 0 per document); joined: rows filled with "
             "documents separated by [SEP] that attend to each other; pairs: [CLS] A [SEP] B [SEP] for next-sentence "
             f"prediction (default: {DEFAULT_FORM})")
