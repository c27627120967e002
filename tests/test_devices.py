"""One device and precision resolver for run-pretraining, evaluate and finetune, and evaluate
on the device and in the precision asked for."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from ja_pretrain.cli import main
from ja_pretrain.errors import UserError
from ja_pretrain.utils.devices import DEVICES, PRECISION_CHOICES, resolve_device, resolve_precision

from test_evaluate_fixtures import random_bert, write_corpus, write_tokenizer


def test_auto_picks_the_cpu_here_and_fp32_on_it():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(UserError, match="--precision 'fp8': choose auto, fp32, bf16, fp16"):
        resolve_precision("fp8", cpu)
    if not torch.cuda.is_available():
        assert resolve_device("auto") == cpu
        with pytest.raises(UserError, match="--device cuda: no CUDA device is available"):
            resolve_device("cuda")


@pytest.mark.parametrize("command", ["run-pretraining", "evaluate", "finetune"])
def test_the_three_commands_offer_the_same_device_and_precision_choices(command):
    from ja_pretrain.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    options = {a.dest: a for a in sub._actions}
    assert tuple(options["device"].choices) == DEVICES
    assert tuple(options["precision"].choices) == PRECISION_CHOICES


def test_evaluate_runs_in_the_precision_asked_for_and_says_so(tmp_path):
    tok = write_tokenizer(tmp_path / "tok")
    corpus = write_corpus(tmp_path / "valid.txt", repeat=2)
    model = random_bert(tok, tmp_path / "bert", hidden=64)
    figures = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"eval-{precision}"
        assert main(["evaluate", str(model), "--corpus", str(corpus), "--device", "cpu", "--precision", precision,
                     "--out", str(out)]) == 0
        report = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
        assert (report["device"], report["precision"]) == ("cpu", precision)
        figures[precision] = report["models"]["bert"]
    assert figures["fp32"]["masked_tokens"] == figures["bf16"]["masked_tokens"]  # the same masks
    # bf16 rounds the activations: close to fp32's loss, and not equal to it (autocast is on)
    assert figures["bf16"]["loss"] == pytest.approx(figures["fp32"]["loss"], abs=0.05)
    assert figures["bf16"]["loss"] != figures["fp32"]["loss"]
