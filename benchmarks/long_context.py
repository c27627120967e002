"""Long context: masked-LM loss by position in the row, before and after the 8,192-token stage.

    python benchmarks/long_context.py [--stage1_steps 300] [--stage2_steps 150]

The recipe's two stages on a small ModernBERT that a 2-core CPU can train at 8,192 tokens
(benchmarks/configs/parameter.json: modernbert-mini, 4 layers, hidden 128, GLU 512, 2 heads,
window 128, layers 1 and 4 global):

    stage 1   modernbert-mini       full rows of 1,024 tokens, global RoPE base 10,000
    stage 2   modernbert-mini-long  full rows of 8,192, from stage 1's weights, global RoPE base 160,000

both through `ja-pretrain run-pretraining`, on the Aozora Bunko works of ../shared/data/corpus-ja
(long documents: most run past 8,192 tokens; 2% of the works held out, seed 42) with a MeCab
ipadic + WordPiece 16,000 tokenizer trained on them. Then each model reads the held-out works in
rows of up to 8,192 tokens (one work per row, whole sentences: `evaluate`'s own rows) with 15%
of the tokens masked by `evaluate`'s fixed masks, and the loss at the masked positions is
summed per bucket of position in the row. Prints a table, writes benchmarks/out/long_context.json
and the plot benchmarks/long_context.png; an interrupted run resumes (finished stages are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "corpus-ja"
OUT_DIR = ROOT / "benchmarks" / "out"
WORK = OUT_DIR / "long_context"
PARAMETERS = ROOT / "benchmarks" / "configs" / "parameter.json"
BUCKETS = (0, 256, 512, 1024, 2048, 4096, 8192)


def run(argv: list[str], log: Path) -> None:
    with open(log, "a", encoding="utf-8") as out:
        code = subprocess.call([sys.executable, "-m", "ja_pretrain", *argv], stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        raise SystemExit(f"{argv[0]} failed (exit {code}); see {log}")


def loss_by_position(model_dir: Path, corpus: Path, length: int, max_sentences: int) -> dict:
    """Summed masked-LM loss and counts per position bucket over the held-out rows. The rows go
    through the training route (`ModelFamily.encode_selected` with packed sequences: on a CPU,
    models/packed_attention.py, no 8,192 x 8,192 masks), at the masked positions only."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForMaskedLM

    from ja_pretrain.evaluation.heldout import build_heldout_set
    from ja_pretrain.evaluation.heldout_scoring import iter_batches
    from ja_pretrain.models.cpu_ops import use_cpu_ops
    from ja_pretrain.models.modernbert import MODERNBERT, varlen_arguments
    from ja_pretrain.tokenization.files import load_saved_tokenizer

    final = model_dir / "final"
    tokenizer = load_saved_tokenizer(final)
    model = AutoModelForMaskedLM.from_pretrained(final).eval()
    use_cpu_ops(model)
    heldout = build_heldout_set(tokenizer, corpus, sequence_length=length, max_sentences=max_sentences,
                                mask_probability=0.15, seed=0, tokenizer_dir=final)
    edges = torch.tensor(BUCKETS)
    sums, counts = torch.zeros(len(BUCKETS) - 1, dtype=torch.float64), torch.zeros(len(BUCKETS) - 1)
    with torch.no_grad():
        for batch in iter_batches(heldout, 1, tokenizer.pad_token_id):
            where = batch["mask"]
            targets = batch["input_ids"][where]
            inputs = batch["input_ids"].masked_fill(where, tokenizer.mask_token_id)
            packed = varlen_arguments(batch["attention_mask"].numpy())  # one work a row, then its padding
            hidden = MODERNBERT.encode_selected(model, where.flatten().nonzero().squeeze(1), input_ids=inputs, **packed)
            losses = F.cross_entropy(MODERNBERT.mlm_logits(model, hidden).float(), targets, reduction="none").double()
            bucket = torch.bucketize(where.nonzero()[:, 1], edges, right=True) - 1
            sums.index_add_(0, bucket, losses)
            counts.index_add_(0, bucket, torch.ones_like(losses, dtype=torch.float32))
    return {"rows": len(heldout.sequences), "tokens": heldout.tokens, "sums": sums.tolist(), "counts": counts.tolist()}


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{a}-{b}" for a, b in zip(BUCKETS[:-1], BUCKETS[1:], strict=True)]
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, r in results.items():
        losses = [s / c if c else float("nan") for s, c in zip(r["sums"], r["counts"], strict=True)]
        ax.plot(labels, losses, marker="o", label=name)
    ax.axvline(2.5, color="grey", linestyle=":", linewidth=1)
    ax.text(2.55, ax.get_ylim()[1], " stage 1 trained up to here", va="top", fontsize=8, color="grey")
    ax.set_xlabel("position in the row (tokens)")
    ax.set_ylabel("held-out masked-LM loss")
    ax.set_title("modernbert-mini on held-out Aozora works, rows of 8,192 tokens")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage1_steps", type=int, default=300)
    parser.add_argument("--stage2_steps", type=int, default=150)
    parser.add_argument("--max_sentences", type=int, default=4000, help="held-out sentences read")
    args = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"this benchmark reads {SHARED}; not found")
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.time()
    corpus, tokenizer = WORK / "corpus", WORK / "tokenizer"
    log = WORK / "run.log"
    run(["corpus", str(SHARED / "aozora_pd_sample.txt.gz"), "--out", str(corpus), "--valid_ratio", "0.02", "--seed",
         "42", "--no_progress"], log)
    run(["train-tokenizer", "--input_file", str(corpus), "--model_dir", str(tokenizer), "--mecab_dic_type", "ipadic",
         "--tokenizer_type", "wordpiece", "--vocab_size", "16000", "--min_frequency", "2", "--limit_alphabet", "6129",
         "--num_unused_tokens", "10"], log)
    common = ["--input_file", str(corpus), "--tokenizer_dir", str(tokenizer), "--parameter_file", str(PARAMETERS),
              "--seed", "0", "--no_progress", "--eval_samples", "64"]
    stages = {"stage 1 (1,024 tokens)": (WORK / "stage1", ["--model_type", "modernbert-mini", "--train_steps",
                                                            str(args.stage1_steps)]),
              "stage 2 (8,192 tokens)": (WORK / "stage2", ["--model_type", "modernbert-mini-long", "--train_steps",
                                                           str(args.stage2_steps), "--init_from",
                                                           str(WORK / "stage1" / "final")])}
    seconds = {}
    for name, (model_dir, extra) in stages.items():
        if (model_dir / "final" / "manifest.json").is_file():
            continue
        begin = time.time()
        run(["run-pretraining", *common, "--model_dir", str(model_dir), *extra,
             *(["--do_continue"] if model_dir.exists() else [])], log)
        seconds[name] = time.time() - begin
    sys.path.insert(0, str(ROOT / "src"))
    results = {name: loss_by_position(model_dir, corpus, 8192, args.max_sentences)
               for name, (model_dir, _) in stages.items()}
    lines = [f"long_context: modernbert-mini, stage 1 {args.stage1_steps} steps of 8 x 1,024, stage 2 "
             f"{args.stage2_steps} steps of 1 x 8,192; held-out Aozora rows of up to 8,192 tokens, 15% masked; "
             f"{time.time() - started:.0f} s", "",
             "| position | " + " | ".join(results) + " | masked tokens |", "| :-- | --: | --: | --: |"]
    first = next(iter(results.values()))
    for i, (a, b) in enumerate(zip(BUCKETS[:-1], BUCKETS[1:], strict=True)):
        cells = [f"{r['sums'][i] / r['counts'][i]:.3f}" if r["counts"][i] else "n/a" for r in results.values()]
        lines.append(f"| {a}-{b} | " + " | ".join(cells) + f" | {int(first['counts'][i])} |")
    table = "\n".join(lines)
    print(table)
    plot(results, ROOT / "benchmarks" / "long_context.png")
    (OUT_DIR / "long_context.json").write_text(json.dumps({"options": vars(args), "buckets": BUCKETS,
                                                           "results": results, "train_seconds": seconds,
                                                           "table": table}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
