"""The pipeline runner with fake stages: skip on rerun, rerun from the changed stage, resume
after a crash, --stage/--from, logs and the saved config."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ja_pretrain.errors import UserError
from ja_pretrain.pipeline import run_pipeline

from pipeline_fakes import REGISTRY

TESTS = Path(__file__).parent
FAKES = "pipeline_fakes"

CONFIG = """\
run_dir: RUN
stages:
  corpus:
    command: fake-corpus
    args:
      inputs: ["TEXT"]
      every: 1
  tokenizer:
    command: fake-tokenize
    args:
      input_file: ${corpus}
      vocab_size: 50
  model:
    command: fake-train
    args:
      input_file: ${corpus}
      tokenizer_dir: ${tokenizer}
      steps: 4
"""


@pytest.fixture()
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    text = tmp_path / "input.txt"
    text.write_text("一行目の文。\n二行目の文。\n三行目の文。\n", encoding="utf-8")
    config = tmp_path / "pipe.yaml"
    config.write_text(CONFIG.replace("RUN", str(tmp_path / "run")).replace("TEXT", str(text)), encoding="utf-8")
    return tmp_path, config, calls


def _run(config, *overrides, **kwargs):
    stream = io.StringIO()
    results = run_pipeline(config, list(overrides), echo=False, stream=stream, registry=REGISTRY, **kwargs)
    return {r.name: r.status for r in results}, stream.getvalue()


def _calls(calls: Path) -> list[str]:
    return [line.split()[0] for line in calls.read_text(encoding="utf-8").splitlines()] if calls.exists() else []


def test_rerun_does_no_work_and_says_so(env):
    tmp, config, calls = env
    statuses, _ = _run(config)
    assert statuses == {"corpus": "ran", "tokenizer": "ran", "model": "ran"}
    assert _calls(calls) == ["fake-corpus", "fake-tokenize", "fake-train"]
    statuses, text = _run(config)
    assert set(statuses.values()) == {"skipped: up to date"}
    assert text.count("skipped: up to date") == 3
    assert len(_calls(calls)) == 3  # nothing ran again
    # The resolved config, the plan and a log per stage are in the run dir.
    run = tmp / "run"
    assert "vocab_size: 50" in (run / "pipeline.yaml").read_text(encoding="utf-8")
    plan = json.loads((run / "pipeline-plan.json").read_text())
    assert [p["stage"] for p in plan] == ["corpus", "tokenizer", "model"]
    assert plan[2]["upstream"] == ["corpus", "tokenizer"]
    log = (run / "logs" / "model.log").read_text(encoding="utf-8")
    assert "fake-train: 4 steps" in log and "step 4/4" in log and "step 1/4" not in log  # \r redraws collapsed


def test_changing_one_option_reruns_from_that_stage(env):
    tmp, config, calls = env
    _run(config)
    statuses, _ = _run(config, "tokenizer.vocab_size=60")
    assert statuses == {"corpus": "skipped: up to date", "tokenizer": "ran", "model": "ran"}
    statuses, _ = _run(config, "tokenizer.vocab_size=60", "model.steps=5")
    assert statuses == {"corpus": "skipped: up to date", "tokenizer": "skipped: up to date", "model": "ran"}
    assert (tmp / "run" / "model" / "final" / "weights.txt").read_text() == str(5 * 0.1)


def test_changed_input_file_reruns_everything(env):
    tmp, config, calls = env
    _run(config)
    (tmp / "input.txt").write_text("別の文章。\n", encoding="utf-8")
    statuses, _ = _run(config)
    assert statuses == {"corpus": "ran", "tokenizer": "ran", "model": "ran"}


def test_files_matched_by_a_pattern_are_signed(env):
    """A user's `data/*.txt`: adding or editing a matched file reruns the stage."""
    tmp, config, calls = env
    texts = tmp / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("一つ目の文書。\n", encoding="utf-8")
    config.write_text(config.read_text(encoding="utf-8").replace(str(tmp / "input.txt"), str(texts / "*.txt")),
                      encoding="utf-8")
    assert _run(config)[0]["corpus"] == "ran"
    assert set(_run(config)[0].values()) == {"skipped: up to date"}
    (texts / "b.txt").write_text("二つ目の文書。\n", encoding="utf-8")
    assert _run(config)[0]["corpus"] == "ran"
    (texts / "a.txt").write_text("書き換えた文書。\n", encoding="utf-8")
    assert _run(config)[0]["corpus"] == "ran"


def test_deleted_output_is_rebuilt(env):
    tmp, config, calls = env
    _run(config)
    (tmp / "run" / "tokenizer" / "manifest.json").unlink()
    statuses, _ = _run(config)
    assert statuses["corpus"] == "skipped: up to date" and statuses["tokenizer"] == "ran"


def test_run_killed_mid_stage_completes_on_rerun(env, monkeypatch):
    tmp, config, calls = env
    monkeypatch.setenv("FAKE_CRASH", str(tmp / "crashed-once"))
    with pytest.raises(UserError, match=r"stage 'tokenizer' failed .*simulated crash"):
        _run(config)
    assert _calls(calls) == ["fake-corpus", "fake-tokenize"]
    assert not (tmp / "run" / ".pipeline" / "tokenizer.json").exists()
    assert "RuntimeError" in (tmp / "run" / "logs" / "tokenizer.log").read_text(encoding="utf-8")
    statuses, _ = _run(config)
    assert statuses == {"corpus": "skipped: up to date", "tokenizer": "ran", "model": "ran"}
    assert "RuntimeError" not in (tmp / "run" / "logs" / "tokenizer.log").read_text(encoding="utf-8")
    assert "RuntimeError" in (tmp / "run" / "logs" / "tokenizer.previous.log").read_text(encoding="utf-8")
    assert (tmp / "run" / "tokenizer" / "manifest.json").is_file()
    assert (tmp / "run" / "model" / "final" / "weights.txt").is_file()


def test_killed_training_resumes_from_its_checkpoints(env, monkeypatch):
    tmp, config, calls = env
    monkeypatch.setenv("FAKE_CRASH_TRAIN", str(tmp / "train-crashed-once"))
    with pytest.raises(UserError, match="simulated kill during training"):
        _run(config)
    statuses, text = _run(config)
    assert statuses["model"] == "ran" and "resuming from the checkpoints" in text
    last = calls.read_text(encoding="utf-8").splitlines()[-1]
    assert last.startswith("fake-train") and "--do_continue" in last
    assert "started at step 3" in (tmp / "run" / "logs" / "model.log").read_text(encoding="utf-8")
    # Other options: the old checkpoints are removed and training starts over.
    statuses, text = _run(config, "model.steps=6")
    assert statuses["model"] == "ran" and "trained with other options" in text
    assert "--do_continue" not in calls.read_text(encoding="utf-8").splitlines()[-1]
    assert "started at step 1" in (tmp / "run" / "logs" / "model.log").read_text(encoding="utf-8")
    assert sorted(p.name for p in (tmp / "run" / "model").glob("checkpoint-*")) == [f"checkpoint-{i}" for i in range(1, 7)]


def test_checkpoints_trained_outside_the_pipeline_are_resumed_not_removed(env):
    tmp, config, calls = env
    for step in (1, 2, 3):  # e.g. a multi-node torchrun run by hand into the stage's dir
        (tmp / "run" / "model" / f"checkpoint-{step}").mkdir(parents=True)
    statuses, text = _run(config)
    assert statuses["model"] == "ran" and "resuming from the checkpoints" in text
    assert "started at step 4" in (tmp / "run" / "logs" / "model.log").read_text(encoding="utf-8")


def test_sigterm_stops_the_stage_and_the_rerun_resumes(env):
    import os
    import signal
    import subprocess
    import sys
    import time

    tmp, config, calls = env
    fakes = ("import sys; sys.path.insert(0, sys.argv.pop(1)); import pipeline_fakes; "
             "sys.exit(pipeline_fakes.cli_with_fakes(sys.argv[1:]))")
    cmd = [sys.executable, "-c", fakes, str(Path(__file__).parent), "pipeline", str(config), "model.sleep=0.3",
           "model.steps=8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoint = tmp / "run" / "model" / "checkpoint-2"
    deadline = time.time() + 60
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.1)
    assert checkpoint.exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143, proc.stderr.read().decode()  # SIGTERM's exit, not Ctrl-C's 130
    pid = int((tmp / "run" / "model" / "pid").read_text())
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):  # the stage did not outlive the pipeline
        os.kill(pid, 0)
    assert "[pipeline: interrupted]" in (tmp / "run" / "logs" / "model.log").read_text(encoding="utf-8")
    statuses, text = _run(config, "model.sleep=0.3", "model.steps=8")  # same options: resume
    assert statuses["model"] == "ran" and "resuming from the checkpoints" in text


def test_a_stage_does_not_outlive_a_killed_pipeline(env):
    """kill -9 of the pipeline: its running stage gets SIGTERM from the kernel and stops, so an
    immediate rerun never trains into the same directory at the same time."""
    import os
    import signal
    import subprocess
    import sys
    import time

    tmp, config, calls = env
    fakes = ("import sys; sys.path.insert(0, sys.argv.pop(1)); import pipeline_fakes; "
             "sys.exit(pipeline_fakes.cli_with_fakes(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", fakes, str(Path(__file__).parent), "pipeline", str(config),
                             "model.sleep=0.3", "model.steps=400", "model.quiet=true"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    pid_file = tmp / "run" / "model" / "pid"
    deadline = time.time() + 60
    while not pid_file.exists() and time.time() < deadline:
        time.sleep(0.1)
    stage = int(pid_file.read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.time() + 10  # the stage alone would sleep on for two minutes
    while time.time() < deadline:
        try:
            os.kill(stage, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    with pytest.raises(ProcessLookupError):
        os.kill(stage, 0)


def test_stage_and_from(env):
    tmp, config, calls = env
    with pytest.raises(UserError, match="needs stage 'corpus'"):
        _run(config, stage="tokenizer")
    _run(config)
    statuses, text = _run(config, stage="model", force=True)
    assert statuses == {"model": "ran"} and "to run it again" in text
    assert "started at step 1" in (tmp / "run" / "logs" / "model.log").read_text(encoding="utf-8")
    statuses, _ = _run(config, start="tokenizer")
    assert statuses == {"corpus": "skipped: up to date", "tokenizer": "ran", "model": "ran"}
    with pytest.raises(UserError, match="--from 'nope': no such stage"):
        _run(config, start="nope")


def test_dry_run_runs_nothing(env):
    tmp, config, calls = env
    stream = io.StringIO()
    run_pipeline(config, [], dry_run=True, echo=False, stream=stream, registry=REGISTRY)
    assert stream.getvalue().count("would run") == 3
    assert not (tmp / "run").exists() and not calls.exists()


LAUNCHER = """#!/usr/bin/env bash
# a launcher that stays the stage's parent, as srun, `uv run` and torchrun's agent do
echo $$ > "$LAUNCHER_PID"
"$@"
exit $?
"""


def _launcher(tmp: Path) -> str:
    script = tmp / "launcher.sh"
    script.write_text(LAUNCHER)
    script.chmod(0o755)
    import sys

    return f"{script} {sys.executable}"


def test_a_stage_runs_to_the_end_under_a_launcher_that_stays_its_parent(env, monkeypatch):
    """Before: the stage was told to die unless its parent was the pipeline, and killed itself."""
    tmp, config, calls = env
    monkeypatch.setenv("LAUNCHER_PID", str(tmp / "launcher.pid"))
    statuses, _ = _run(config, f"stages.model.launch={_launcher(tmp)}")
    assert statuses["model"] == "ran" and (tmp / "run" / "model" / "final" / "manifest.json").is_file()
    assert (tmp / "launcher.pid").is_file()


def test_kill_9_of_the_pipeline_takes_a_launcher_and_its_stage(env, monkeypatch):
    import os
    import signal
    import subprocess
    import sys
    import time

    tmp, config, calls = env
    monkeypatch.setenv("LAUNCHER_PID", str(tmp / "launcher.pid"))
    fakes = ("import sys; sys.path.insert(0, sys.argv.pop(1)); import pipeline_fakes; "
             "sys.exit(pipeline_fakes.cli_with_fakes(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", fakes, str(TESTS), "pipeline", str(config), "model.sleep=0.3",
                             "model.steps=400", "model.quiet=true", f"stages.model.launch={_launcher(tmp)}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid_file = tmp / "run" / "model" / "pid"
    deadline = time.time() + 60
    while not pid_file.exists() and time.time() < deadline:
        time.sleep(0.1)
    stage, launcher = int(pid_file.read_text()), int((tmp / "launcher.pid").read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.time() + 10
    gone = set()
    while time.time() < deadline and len(gone) < 2:
        for pid in (stage, launcher):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                gone.add(pid)
        time.sleep(0.1)
    assert gone == {stage, launcher}
