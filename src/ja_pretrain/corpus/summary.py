"""The one-screen summary printed after a corpus build."""

from __future__ import annotations

from typing import Any

from ja_pretrain.corpus.output import UNSAMPLED


def format_summary(manifest: dict[str, Any], out_dir: str) -> str:
    c = manifest.get("counts", {})
    seconds = manifest.get("timings", {}).get("seconds", 0.0)
    mb = sum(f.get("bytes", 0) for f in manifest.get("inputs", {}).get("files", [])) / 1e6
    if manifest.get("stage") == "corpus-part":
        return (
            f"corpus part {manifest.get('shard_index')}/{manifest.get('num_shards')} -> {out_dir}: "
            f"{c.get('part_documents', 0):,} documents, {c.get('part_sentences', 0):,} sentences before de-duplication "
            f"({seconds:.1f} s). Merge all parts with: ja-pretrain corpus --merge PART_DIR... --out DIR"
        )
    d = c.get("dropped", {})
    rows = [
        f"corpus -> {out_dir}",
        f"  read       {len(manifest.get('inputs', {}).get('files', []))} input(s), {mb:,.1f} MB, "
        f"{c.get('documents_read', 0):,} documents in {seconds:.1f} s ({mb / max(seconds, 1e-9):.2f} MB/s)",
        f"  train      {c.get('train_documents', 0):,} documents, {c.get('train_sentences', 0):,} sentences, "
        f"{c.get('train_characters', 0):,} characters in {c.get('train_shards', 0)} shard(s)",
        f"  valid      {c.get('valid_documents', 0):,} documents, {c.get('valid_sentences', 0):,} sentences, "
        f"{c.get('valid_characters', 0):,} characters"
        + (f" (drawn at ratio {c['valid_ratio_used']:.4g})" if "valid_ratio_used" in c else ""),
        f"  dropped    {d.get('too_short', 0):,} too short, {d.get('too_long', 0):,} too long, "
        f"{d.get('unfinished', 0):,} unfinished (comma at an end), {d.get('duplicate', 0):,} duplicate sentences; "
        f"{d.get('empty_documents', 0):,} documents left empty",
        f"  skipped    {c.get('skipped_redirects', 0):,} redirects, {c.get('skipped_other_namespaces', 0):,} other namespaces, "
        f"{c.get('skipped_without_text', 0):,} without text",
        f"  repaired   {c.get('invalid_utf8_replaced', 0):,} invalid UTF-8 sequences replaced by U+FFFD",
    ]
    removed = c.get("documents_removed") or {}
    if removed:
        rows.append("  removed    " + ", ".join(f"{n:,} {reason.replace('_', ' ')}" for reason, n in removed.items())
                    + " (documents)" + (f"; samples in {out_dir}/removed/" if any(
                        r not in UNSAMPLED for r in removed) else ""))
    if c.get("encodings"):
        rows.append("  encodings  " + "; ".join(f"{p}: {how}" for p, how in c["encodings"].items()))
    for bad in c.get("bad_inputs") or []:
        rows.append(f"  SKIPPED    {bad['path']}: {bad['reason']}")
    if c.get("near_dedup_evictions"):
        rows.append(
            f"  note       near-duplicate table was full ({c['near_dedup_evictions']:,} band keys forgotten of "
            f"{c.get('near_dedup_capacity', 0):,}); raise --near-dedup-memory-mb to compare with every document"
        )
    if c.get("dedup_evictions"):
        rows.append(
            f"  note       de-duplication table was full ({c['dedup_evictions']:,} entries forgotten of "
            f"{c.get('dedup_capacity', 0):,}); raise --dedup-memory-mb to catch every duplicate"
        )
    if c.get("truncated_inputs"):
        rows.append(f"  WARNING    truncated input(s) used up to the cut: {', '.join(c['truncated_inputs'])}")
    return "\n".join(rows)
