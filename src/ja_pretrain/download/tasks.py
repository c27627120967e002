"""Where the publishers keep the downstream evaluation data sets, and how each is verified.

JGLUE v1.3 (https://github.com/yahoojapan/JGLUE, CC BY-SA 4.0): one JSON-lines file per task and
split, `datasets/TASK-v1.3/SPLIT-v1.3.json` for TASK in jsts, jnli, jcommonsenseqa, jsquad and
SPLIT in train, valid (the test sets are not public). They are fetched from
raw.githubusercontent.com at the v1.3.0 release commit rather than a branch, so the URLs, and the
bytes behind them, never change. JGLUE publishes no checksums; the sha256 of the files we have
byte-identical copies of is pinned below and verified, the others have their sha256 recorded,
not verified (as the CirrusSearch dumps are). The files keep the repository's own layout under
the output directory (`OUT/jsts-v1.3/train-v1.3.json`), which is where `finetune --data OUT`
looks. MARC-ja is not among them: it is built from the Multilingual Amazon Reviews Corpus, which
its publisher no longer distributes, so only users who already hold the files can use it.

chABSA (https://github.com/chakki-works/chABSA-dataset, CC BY 4.0): the repository's README links
the publisher's zip on Amazon S3, `chABSA-dataset.zip`. It is kept as published, not extracted
(the finetune reader reads the zip). No published checksum; its sha256 is recorded.

livedoor news corpus (https://www.rondhuit.com/download.html, CC BY-ND 2.1 JP): RONDHUIT's
`ldcc-20140209.tar.gz`, kept as published, not extracted. No published checksum; its sha256 is
recorded.

Wikipedia NER (https://github.com/stockmarkteam/ner-wikipedia-dataset, CC BY-SA 3.0): `ner.json`
from raw.githubusercontent.com at a pinned commit (v2.0 of the data set), verified against the
sha256 of a byte-identical copy.

`base_url` replaces the publisher's part of every URL (the repository at the pinned commit for
JGLUE, the scheme, host and directory for chABSA and livedoor), for mirrors.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ja_pretrain.download.http import fetch
from ja_pretrain.download.sources import rebase
from ja_pretrain.errors import UserError

log = logging.getLogger(__name__)

# release/v1.3.0, 2025-03-31. A commit, not a tag or branch, so nothing can move under the URLs.
JGLUE_COMMIT = "6f071c09316baae89c3d083a90985b4b1cb9968c"
JGLUE_BASE = f"https://raw.githubusercontent.com/yahoojapan/JGLUE/{JGLUE_COMMIT}"
JGLUE_VERSION = "v1.3"
JGLUE_TASKS = ("jsts", "jnli", "jcommonsenseqa", "jsquad")
JGLUE_SPLITS = ("train", "valid")
# Computed from byte-identical copies of these files at JGLUE_COMMIT (sizes 3,164,816, 372,253,
# 632,446 and 1,976,638 bytes). The other files get their sha256 recorded on download.
JGLUE_SHA256 = {
    "jsts-v1.3/train-v1.3.json": "db6bd653270ac9786759920413a48973164d322998f34dd4ae32202af5e66969",
    "jsts-v1.3/valid-v1.3.json": "7c0bdcb381179f01096c635d058853d96da1e1248d23fe3f5c2beed5dc2d9b1a",
    "jnli-v1.3/valid-v1.3.json": "ca0353efc7c2eebfb6de4e13f16295053c8b1ee65e7b0849190c90426fbc495f",
    "jsquad-v1.3/valid-v1.3.json": "fb0a57a35281ff03bbe7f0e878cff5b577985fbe6fcb242e7e8ddb63d1c0ab11",
}
# JGLUE tasks that exist but cannot be downloaded, with why.
JGLUE_WITHDRAWN = {
    "marc_ja": "MARC-ja is built from the Multilingual Amazon Reviews Corpus, which its publisher no "
    "longer distributes, so it cannot be downloaded; if you have its files, pass them to `finetune --data DIR`",
}

CHABSA_BASE = "https://s3-ap-northeast-1.amazonaws.com/dev.tech-sketch.jp/chakki/public"
CHABSA_FILE = "chABSA-dataset.zip"

LIVEDOOR_BASE = "https://www.rondhuit.com/download"
LIVEDOOR_FILE = "ldcc-20140209.tar.gz"

NER_COMMIT = "5e525c2132c0e87cce890b8b92639a0cf357c1f3"
NER_BASE = f"https://raw.githubusercontent.com/stockmarkteam/ner-wikipedia-dataset/{NER_COMMIT}"
NER_FILE = "ner.json"
NER_SHA256 = "5796effb85c473aec5b85784545349ed42e408bb0fecdb78f82bc107d53edbe3"  # 4,042,700 bytes


def jglue_files(task: str) -> list[str]:
    """The task's files relative to the repository's `datasets/` (and to the output directory)."""
    return [f"{task}-{JGLUE_VERSION}/{split}-{JGLUE_VERSION}.json" for split in JGLUE_SPLITS]


def check_jglue_tasks(tasks: list[str] | tuple[str, ...] | None) -> list[str]:
    """The tasks to fetch, in the order given, each once; all of them for None."""
    if tasks is None:
        return list(JGLUE_TASKS)
    chosen = []
    for given in tasks:
        # `MARC-ja`, `marc-ja` and `marc_ja` all name the same task; so for the others.
        name = given.strip().lower().replace("-", "_")
        if name in JGLUE_WITHDRAWN:
            raise UserError(f"--tasks {given}: {JGLUE_WITHDRAWN[name]}")
        if name not in JGLUE_TASKS:
            raise UserError(f"--tasks {given!r}: not a JGLUE task; choose from {', '.join(JGLUE_TASKS)}")
        if name not in chosen:
            chosen.append(name)
    if not chosen:
        raise UserError(f"--tasks: name at least one of {', '.join(JGLUE_TASKS)}, or leave --tasks out for all")
    return chosen


def download_jglue(
    out_dir: str | Path, *, tasks: list[str] | tuple[str, ...] | None = None, base_url: str | None = None,
    **fetch_options,
) -> list[Path]:
    """Download the JGLUE v1.3 train and valid files of `tasks` (default: all four) into `out_dir`.

    Returns `out_dir/TASK-v1.3/train-v1.3.json` and `.../valid-v1.3.json` for each task.
    """
    chosen = check_jglue_tasks(tasks)  # all names checked before the first byte is fetched
    out_dir = Path(out_dir)
    paths = []
    for task in chosen:
        for relative in jglue_files(task):
            url = rebase(f"datasets/{relative}", JGLUE_BASE, base_url)
            paths.append(fetch(url, out_dir / relative, sha256=JGLUE_SHA256.get(relative), **fetch_options))
    return paths


def download_chabsa(out_dir: str | Path, *, base_url: str | None = None, **fetch_options) -> Path:
    """Download chABSA-dataset.zip into `out_dir`, not extracted. No checksum is published for it."""
    return fetch(rebase(CHABSA_FILE, CHABSA_BASE, base_url), Path(out_dir) / CHABSA_FILE, **fetch_options)


def download_livedoor(out_dir: str | Path, *, base_url: str | None = None, **fetch_options) -> Path:
    """Download the livedoor news corpus (ldcc-20140209.tar.gz) into `out_dir`, not extracted.

    No checksum is published for it.
    """
    return fetch(rebase(LIVEDOOR_FILE, LIVEDOOR_BASE, base_url), Path(out_dir) / LIVEDOOR_FILE, **fetch_options)


def download_ner_wikipedia(out_dir: str | Path, *, base_url: str | None = None, **fetch_options) -> Path:
    """Download Stockmark's Wikipedia NER data set (ner.json) into `out_dir`, verified."""
    return fetch(rebase(NER_FILE, NER_BASE, base_url), Path(out_dir) / NER_FILE, sha256=NER_SHA256, **fetch_options)
