"""The last layer at the read rows only, against the same layer at every position: one process.

    python benchmarks/last_layer_ab.py [--pairs 16] [--preset bert-small] [--precision fp32] [--threads 2]

train_bench.py's ablation arm `ours with the last layer at every position` runs in blocks of
fresh processes, whose speed on a shared virtual machine moves by more than this change is
worth. Here both variants are the same model in one process, with the same batch: step pairs
alternate (A B, B A, ...) and the ratio of each pair's CPU times is taken, so a slow spell of
the machine falls on both halves of a pair. A step is our objective's forward and backward and
a fused AdamW step, on a CPU with our dropout/attention and malloc settings, as the trainer runs
it. The masked positions come from our masking of a random batch (vocabulary 32768, sequence
128, batch 32 by default). Prints a table and writes benchmarks/out/last_layer_ab.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_bench import OUT_DIR, full_rows, params_for  # noqa: E402

SPECIAL = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}


def random_batch(rows: int, length: int, vocab: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(len(SPECIAL), vocab, (rows, length))
    ids[:, 0], ids[:, -1] = SPECIAL["cls"], SPECIAL["sep"]
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids),
            "special_tokens_mask": ids < len(SPECIAL), "word_start": np.ones_like(ids, dtype=bool)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--preset", default="bert-small")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import ja_pretrain.models.bert as bert  # the BERT family's encode_selected is swapped below
    from ja_pretrain.models.cpu_ops import use_cpu_ops
    from ja_pretrain.models.selected_output import encoder_flops
    from ja_pretrain.training.host_memory import keep_freed_memory
    from ja_pretrain.training.masking import draw_mask_noise
    from ja_pretrain.training.objectives import ObjectiveOptions, build_bert_objective

    torch.set_num_threads(args.threads)
    keep_freed_memory()
    torch.manual_seed(0)
    params = params_for(args.preset, args.batch)
    objective = build_bert_objective(params, SPECIAL, args.vocab, ObjectiveOptions()).train()
    use_cpu_ops(objective)
    optimizer = torch.optim.AdamW(objective.parameters(), lr=1e-4, fused=True)
    length = params.sequence_length
    inputs = objective.prepare(random_batch(args.batch, length, args.vocab),
                               draw_mask_noise(args.batch, length, torch.Generator().manual_seed(1)))
    selected = bert.encode_selected
    variants = {"read rows only": selected, "every position": full_rows}

    def step(name: str) -> float:
        bert.encode_selected = variants[name]
        start = time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            out = objective(**inputs)
        out.sums["mlm"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.process_time() - start

    names = list(variants)
    for name in names:  # warm-up
        step(name)
    times: dict[str, list[float]] = {name: [] for name in names}
    for pair in range(args.pairs):
        for name in names if pair % 2 == 0 else names[::-1]:
            times[name].append(step(name))
    bert.encode_selected = selected
    ratios = [full / ours for full, ours in zip(times["every position"], times["read rows only"], strict=True)]
    tokens, masked = args.batch * length, int(inputs["masked_positions"].numel())
    config = objective.model.config
    # forward + backward of the last layer's output projection and feed-forward at the rows ours skips
    skipped = 3.0 * (encoder_flops(config, length, tokens, read=tokens) - encoder_flops(config, length, tokens, read=masked))
    result = {
        "preset": args.preset, "precision": args.precision, "batch": args.batch, "sequence_length": length,
        "vocab_size": args.vocab, "threads": args.threads, "pairs": args.pairs, "torch": torch.__version__,
        "masked_positions": masked, "cpu_seconds": times, "pair_ratios": ratios,
        "ratio_median": statistics.median(ratios),
        "flops_ratio": (objective.flops(inputs) + skipped) / objective.flops(inputs),
    }
    lines = [
        f"last_layer_ab: {args.preset}, {args.precision}, batch {args.batch} x {length}, vocab {args.vocab}, "
        f"{args.threads} threads, torch {torch.__version__}, {args.pairs} alternating pairs (CPU time)",
        "",
        "| variant | median step CPU s | tok/s (CPU-time) |",
        "| :-- | --: | --: |",
        *[f"| {name} | {statistics.median(times[name]):.3f} | {tokens / statistics.median(times[name]):.0f} |"
          for name in names],
        "",
        f"read rows only over every position: {result['ratio_median']:.3f}x (median of the pairs; "
        f"min {min(ratios):.3f}, max {max(ratios):.3f}); matmul FLOPs every position / read rows: "
        f"{result['flops_ratio']:.3f}",
    ]
    print("\n".join(lines))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "last_layer_ab.json").write_text(json.dumps({**result, "table": lines}, indent=2))


if __name__ == "__main__":
    main()
