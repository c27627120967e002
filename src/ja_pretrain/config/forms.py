"""How a dataset lays text out in rows (`build-dataset --form`, `run-pretraining --form`); kept
here, free of imports, so that the commands' --help does not load numpy. The layouts are in
`ja_pretrain.dataset.packing`.

The option names say what a row holds: `full-apart` (rows full of documents, each attending
only to itself) and `full-joined` (rows full of documents that attend to each other). Datasets
record their form under the names they have always had on disk (`full`, `joined`), which the
option accepts too, so older configs, manifests and cached datasets stay valid as they are."""

FORMS = ("packed", "full", "joined", "pairs")  # as recorded on disk (manifests, cache directory names)
# option spelling -> the name on disk; the on-disk names are accepted as spellings too
FORM_OPTIONS = {"packed": "packed", "full-apart": "full", "full-joined": "joined", "pairs": "pairs",
                "full": "full", "joined": "joined"}
# packed: one document per row, padded; full-apart: rows filled with documents kept apart;
# full-joined: rows filled with documents that see each other; pairs: next-sentence prediction pairs.
# full-apart is the default: at equal tokens of text it gave the lowest held-out loss of the three
# (by a hair, benchmarks/packing_bench.py) in 0.63x the packed form's training time.
DEFAULT_FORM = "full"
DEFAULT_FORM_OPTION = "full-apart"
FORM_HELP = ("packed: whole sentences of one document per row, the rest padding; full-apart: rows filled with "
             "several documents, each attending only to itself (positions from 0 per document); full-joined: rows "
             "filled with documents separated by [SEP] that attend to each other; pairs: [CLS] A [SEP] B [SEP] for "
             f"next-sentence prediction (default: {DEFAULT_FORM_OPTION}; the earlier names full and joined are "
             "accepted)")


def stored_form(name: str) -> str:
    """The on-disk name of a form given in either spelling (unknown names are returned as they
    are, for the caller's own error)."""
    return FORM_OPTIONS.get(name, name)


def form_option(stored: str) -> str:
    """The option spelling of a form recorded on disk (what a card or a message shows)."""
    return next((option for option, disk in FORM_OPTIONS.items() if disk == stored), stored)
