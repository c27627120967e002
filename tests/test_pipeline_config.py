"""Bad pipeline configs: each stops with a clear error (key, file:line) before any stage runs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ja_pretrain.errors import UserError
from ja_pretrain.pipeline import run_pipeline
from ja_pretrain.pipeline.config import load_config

from pipeline_fakes import REGISTRY, cli_with_fakes

TESTS = Path(__file__).parent
FAKES = "pipeline_fakes"

GOOD = """\
run_dir: RUN
vars:
  text: TEXT
stages:
  corpus:
    command: fake-corpus
    args:
      inputs: ["${vars.text}"]
  tokenizer:
    command: fake-tokenize
    args:
      input_file: ${corpus}
      kind: wordpiece
  model:
    command: fake-train
    args:
      input_file: ${corpus}
      tokenizer_dir: ${tokenizer}
      steps: 2
      do_whole_word_mask: false
"""


@pytest.fixture()
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    monkeypatch.setenv("FAKE_CALLS", str(tmp_path / "calls.txt"))
    (tmp_path / "in.txt").write_text("文。\n", encoding="utf-8")

    def write(text: str) -> Path:
        path = tmp_path / "c.yaml"
        path.write_text(text.replace("RUN", str(tmp_path / "run")).replace("TEXT", str(tmp_path / "in.txt")),
                        encoding="utf-8")
        return path

    return tmp_path, write


def _fails(tmp_path, config, match, *overrides):
    with pytest.raises(UserError, match=match):
        run_pipeline(config, list(overrides), echo=False, stream=io.StringIO(), registry=REGISTRY)
    assert not (tmp_path / "calls.txt").exists(), "a stage ran before the error"
    assert not (tmp_path / "run").exists()


BAD_CASES = [
    # (edit of the good config, expected message)
    (("run_dir: RUN", "run_dir: RUN\nrundir: x"), r"c.yaml:2: unknown key 'rundir'"),
    (("    command: fake-corpus", "    command: fake-corpus\n    argz: {}"),
     r"c.yaml:7: unknown key 'stages.corpus.argz'"),
    (("      kind: wordpiece", "      kind: wordpiece\n      vocab_sise: 10"),
     r"c.yaml:14: stage 'tokenizer': unknown option 'vocab_sise' .*vocab_size"),
    (("      steps: 2", "      steps: two"), r"c.yaml:19: stage 'model': option 'steps' must be an integer, got 'two'"),
    (("      steps: 2", "      steps: 2.5"), r"option 'steps' must be an integer"),
    (("      kind: wordpiece", "      kind: bpe"), r"c.yaml:13: .*option 'kind' must be one of wordpiece, sentencepiece"),
    (("      do_whole_word_mask: false", "      do_whole_word_mask: 1"), r"option 'do_whole_word_mask' is a switch"),
    (("      input_file: ${corpus}\n      kind", "      input_file: ${model}\n      kind"),
     r"c.yaml:12: \$\{model\} names no earlier stage"),
    (("command: fake-train", "command: train-the-model"), r"c.yaml:15: .*unknown command 'train-the-model'"),
    # configs name subcommands only: a module:object would be imported and run, even by --dry-run
    (("command: fake-train", "command: os:system"), r"c.yaml:15: .*unknown command 'os:system'"),
    (("  tokenizer:\n", "  corpus:\n    command: fake-corpus\n  tokenizer:\n"),
     r"c.yaml:\d+: 'stages.corpus' is given twice \(first on line 5\)"),
    (("      tokenizer_dir: ${tokenizer}\n", ""), r"stage 'model' .*required: --tokenizer_dir"),
    (("stages:", "stages: 3\nx:"), r"c.yaml:5: unknown key 'x'"),
    (("  text: TEXT", "  text: TEXT-missing"), r"c.yaml:8: stage 'corpus': input 'inputs' .*in.txt-missing: no such file"),
    (("  text: TEXT", "  text: {a: 1}"), r"c.yaml:3: key 'vars.text' must be a string, number or list"),
    (("inputs: [\"${vars.text}\"]", "inputs: [\"${vars.txt}\"]"), r"no variable 'txt' under vars"),
    (("run_dir: RUN", "run_dir: [RUN"), r"c.yaml:\d+: not valid YAML"),
    # A missing file beside one an earlier stage makes is still caught.
    (("  tokenizer:\n", "  corpus2:\n    command: fake-corpus\n"
      "    args: {inputs: [\"${corpus}/text.txt\", \"/nonexistent/*.txt\"]}\n  tokenizer:\n"),
     r"stage 'corpus2': input 'inputs' /nonexistent/\*.txt: no file matches"),
]


@pytest.mark.parametrize("edit,match", BAD_CASES, ids=[m[:30] for _, m in BAD_CASES])
def test_bad_config_stops_before_any_work(setup, edit, match):
    tmp_path, write = setup
    old, new = edit
    assert old in GOOD
    _fails(tmp_path, write(GOOD.replace(old, new, 1)), match)


@pytest.mark.parametrize("override,match", [
    ("model.stepz=3", r"unknown option 'stepz'"),
    ("nostage.steps=3", r"override 'nostage.steps=3': no stage 'nostage'"),
    ("model.steps=[1, 2]", r"option 'steps' takes one value"),
    ("steps", r"write KEY=VALUE"),
])
def test_bad_override_stops_before_any_work(setup, override, match):
    tmp_path, write = setup
    _fails(tmp_path, write(GOOD), match, override)


def test_good_config_with_overrides_parses(setup):
    tmp_path, write = setup
    cfg = load_config(write(GOOD), ["model.steps=7", "run_dir=/tmp/elsewhere", "vars.text=/x"])
    assert cfg.stage("model").args["steps"] == 7 and cfg.run_dir == "/tmp/elsewhere" and cfg.vars["text"] == "/x"
    assert cfg.where("stages", "model", "args", "steps") == f"{tmp_path / 'c.yaml'}:19"


def test_cli_reports_config_error_with_exit_2(setup, capsys):
    tmp_path, write = setup
    config = write(GOOD.replace("      steps: 2", "      steps: two"))
    assert cli_with_fakes(["pipeline", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ja-pretrain pipeline: error: ") and "c.yaml:19" in err and "'steps'" in err


def test_cli_takes_overrides_before_and_after_options(setup, capsys):
    tmp_path, write = setup
    config = str(write(GOOD))
    assert cli_with_fakes(["pipeline", config, "--dry-run", "model.steps=3", "tokenizer.kind=sentencepiece"]) == 0
    err = capsys.readouterr().err
    assert "--steps 3" in err and "--kind sentencepiece" in err and "would run" in err
    assert cli_with_fakes(["pipeline", config, "model.steps=4", "--dry-run"]) == 0
    assert "--steps 4" in capsys.readouterr().err
    assert cli_with_fakes(["pipeline", config, "--stage", "model", "model.steps=5", "--dry-run"]) == 0
    assert "--steps 5" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_dry_run_shows_each_stages_launcher(setup, capsys):
    tmp_path, write = setup
    config = str(write(GOOD))
    assert cli_with_fakes(["pipeline", config, "--dry-run",
                           "stages.model.launch=torchrun --standalone --nproc_per_node 2"]) == 0
    err = capsys.readouterr().err
    assert "model (would run, launched by `torchrun --standalone --nproc_per_node 2`): ja-pretrain fake-train" in err
