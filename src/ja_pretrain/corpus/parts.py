"""Building a corpus on several machines: parts, and merging them.

Machine i of n (`--shard-index i --num-shards n`) reads all inputs but cleans only the
documents whose index is i mod n, and writes each of them, in order, as one JSON line
`[index, [filtered counts per reason], [sentence, ...]]` to PART_DIR/documents.jsonl (documents left
empty by the length filter are written too, so that the indices stay complete).

`merge_parts` checks that the parts are the n shards of one job (same inputs and options),
reads them round-robin, which is document order again, and runs de-duplication, the
train/valid split and sharding on that stream. The merged directory is therefore
byte-identical to what one machine would have written, and a sentence repeated across parts
is removed like any other duplicate. Cleaning (the expensive part) is what is spread; the merge
only reads and writes text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ja_pretrain.corpus.output import STAGE, Cleaned, count_past_limit, write_corpus
from ja_pretrain.errors import UserError
from ja_pretrain.utils.atomic import atomic_directory
from ja_pretrain.utils.manifest import check_output_dir, read_manifest, write_manifest

PART_STAGE = "corpus-part"
PART_DOCUMENTS = "documents.jsonl"
# Read-side counts that the parts sum up (each part reads every input).
_SHARED_COUNTS = ("documents_read", "invalid_utf8_replaced", "skipped_redirects", "skipped_other_namespaces",
                  "skipped_without_text", "documents_cut_at_size_limit", "truncated_inputs", "encodings", "formats")


def check_shard_options(shard_index: int | None, num_shards: int | None) -> None:
    if shard_index is None or num_shards is None:
        raise UserError("--shard-index and --num-shards go together")
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise UserError(f"--shard-index {shard_index} --num-shards {num_shards}: need 0 <= index < num-shards")


def write_part(cleaned: Iterable[Cleaned], directory: Path) -> dict[str, Any]:
    documents = sentences = 0
    with open(directory / PART_DOCUMENTS, "w", encoding="utf-8") as f:
        for doc in cleaned:
            row = [doc.index, list(doc.filtered), doc.sentences, doc.removed, doc.detail, doc.text,
                   doc.bands.hex() if doc.bands else None]
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            documents += 1
            sentences += len(doc.sentences)
    return {"part_documents": documents, "part_sentences": sentences}


def merge_parts(part_dirs: Iterable[str | Path], out_dir: str | Path) -> dict[str, Any]:
    """Merge the part directories of one sharded job into a corpus directory."""
    started = time.perf_counter()
    part_dirs = [Path(p) for p in part_dirs]
    out_dir = Path(out_dir)
    manifests = _check_parts(part_dirs)
    check_output_dir(out_dir, (STAGE,))
    first = manifests[0]
    options = first["options"]
    ordered = sorted(zip(manifests, part_dirs, strict=True), key=lambda mp: mp[0]["shard_index"])
    with atomic_directory(out_dir) as tmp:
        counts = write_corpus(_round_robin([d for _, d in ordered]), tmp, options)
        for key in _SHARED_COUNTS:
            counts[key] = first["counts"].get(key)
        count_past_limit(counts, counts["documents_read"])
        # Each part reads every input, so a bad input found while reading is listed by all of them;
        # one found by a worker (a PDF, a ZIP) only by the part that converted it.
        bad = {b["path"]: b for m in manifests for b in m["counts"].get("bad_inputs", [])}
        counts["bad_inputs"] = sorted(bad.values(), key=lambda b: b["path"])
        if counts["train_sentences"] == 0:
            raise UserError(f"{', '.join(map(str, part_dirs))}: no sentence left after filtering")
        return write_manifest(
            tmp, stage=STAGE, inputs=first["inputs"], options=options, counts=counts,
            timings={"seconds": round(time.perf_counter() - started, 3)},
            extra={"merged_from": [str(d) for _, d in ordered]},
        )


def _check_parts(part_dirs: list[Path]) -> list[dict[str, Any]]:
    if not part_dirs:
        raise UserError("--merge needs the part directories")
    manifests = []
    for d in part_dirs:
        m = read_manifest(d) if d.is_dir() else None
        if m is None or m.get("stage") != PART_STAGE:
            raise UserError(f"{d}: not a finished corpus part (no part manifest.json); rerun that part with --shard-index")
        manifests.append(m)
    n = manifests[0]["num_shards"]
    for d, m in zip(part_dirs, manifests, strict=True):
        if m["num_shards"] != n or m["inputs"] != manifests[0]["inputs"] or m["options"] != manifests[0]["options"]:
            raise UserError(f"{d}: made from other inputs or options than {part_dirs[0]}; parts must come from one job")
    have = sorted(m["shard_index"] for m in manifests)
    if have != list(range(n)):
        missing = sorted(set(range(n)) - set(have))
        raise UserError(f"parts of a {n}-way job: got shard indices {have}; missing {missing} (or given twice)")
    return manifests


def _round_robin(part_dirs: list[Path]) -> Iterator[Cleaned]:
    files = [open(d / PART_DOCUMENTS, encoding="utf-8") for d in part_dirs]
    try:
        index = 0
        while True:
            part = index % len(files)
            line = files[part].readline()
            if not line:
                if any(f.readline() for f in files):
                    raise UserError(f"{part_dirs[part]}: ends before document {index}; the parts do not fit together")
                return
            got, filtered, sentences, removed, detail, text, bands = json.loads(line)
            if got != index:
                raise UserError(f"{part_dirs[part]}: document {got} where {index} was expected; the parts do not fit together")
            yield Cleaned(index, sentences, tuple(filtered), None, removed, detail, text,
                          bytes.fromhex(bands) if bands else None)
            index += 1
    finally:
        for f in files:
            f.close()
