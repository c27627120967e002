"""The GPU path against the run_mlm route, bf16, on one GPU: train_bench.py and
train_bench_electra.py with the configurations a GPU is judged on, in about six minutes.

Here (MeCab is needed to build the data; the device machine has none):

    python benchmarks/gpu_bench.py --prepare_only

builds the corpus sample, the 32768-piece tokenizer and the datasets (full rows for ours; the
run_mlm baseline cuts the same text into rows of its own) under benchmarks/out/train_bench_cache/.
On the device machine, with that folder carried and our package from src/:

    PYTHONPATH=src python benchmarks/gpu_bench.py

Configurations: bert-small at 128 (batch 128), bert-base at 128 (batch 64) and 512 (batch 16),
bf16 autocast; then electra-small at 128 against the naive two-model route. Per configuration:
positions and text tokens per second of both arms, the ratio, MFU against the bf16 matmul rate
measured at start (an 8192^3 product; train_bench's measure_peaks). Arms alternate in fresh
processes as on the CPU (benchmarks/arms.py). `--smoke` runs a tiny configuration in fp32 on
any machine, to check the script before device time is spent on it.

Not measured by this script (yet): peak GPU memory per arm, and torch.compile (ours does not
compile: that is still to be tried on a GPU). Writes benchmarks/out/train_bench.json and
train_bench_electra.json as those scripts do.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_bench  # noqa: E402, I001  (the benches beside this file)
import train_bench_electra  # noqa: E402

GPU_CONFIGS = "bert-small:128:128,bert-base:128:64,bert-base:512:16"
SMOKE_CONFIGS = "bert-micro:64:8"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepare_only", action="store_true", help="build the data and stop (run it where MeCab is)")
    parser.add_argument("--smoke", action="store_true", help="a tiny fp32 run of every step, on any machine")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per block")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per block (CUDA kernels' first calls)")
    args = parser.parse_args()
    common = ["--repeats", str(args.repeats), "--steps", str(args.steps), "--warmup", str(args.warmup), "--no_ablation"]
    configs = SMOKE_CONFIGS if args.smoke else GPU_CONFIGS
    bert = ["--configs", configs, "--precision", "fp32" if args.smoke else "bf16", "--form", "full", "--budget", "240"]
    if args.prepare_only:
        train_bench.prepare_data(60_000, 32768, "packed", (128,))  # what train_bench_electra trains on
        return train_bench.main([*bert, "--prepare_only"])
    started = time.perf_counter()
    code = train_bench.main([*common, *bert])
    if not args.smoke:  # electra-small's data is the 128 dataset built above
        code = code or train_bench_electra.main([*common, "--precisions", "bf16", "--batch", "128"])
    print(f"gpu_bench: {time.perf_counter() - started:.0f} s in all")
    return code


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    sys.exit(main())
