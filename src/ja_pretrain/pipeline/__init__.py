"""`ja-pretrain pipeline CONFIG.yaml`: run the stages a config names, in order, skipping those
that are up to date.

- `config`: the typed config (dataclasses) loaded from YAML with `a.b=c` overrides;
- `stages`: each stage's argv, checked against its subcommand's parser before any work;
- `runner`: fingerprints, skip logic, child processes and per-stage logs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import TextIO

import yaml

from ja_pretrain.pipeline.config import PipelineConfig, load_config
from ja_pretrain.pipeline.runner import PipelineRunner, StageResult
from ja_pretrain.pipeline.stages import StagePlan, command_registry, plan_stages
from ja_pretrain.utils.atomic import atomic_write_json, atomic_write_text
from ja_pretrain.utils.console import raise_terminated
from ja_pretrain.utils.locks import exclusive

__all__ = ["PipelineConfig", "load_config", "plan_stages", "run_pipeline", "StagePlan", "StageResult"]


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM (a batch system's stop) stops the running stage cleanly, like Ctrl-C, and the
    pipeline exits 143 as every command does after a SIGTERM (130 is Ctrl-C's)."""
    try:
        previous = signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_pipeline(
    config_path: str | os.PathLike,
    overrides: list[str] | None = None,
    *,
    stage: str | None = None,
    start: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    echo: bool = True,
    stream: TextIO | None = None,
    registry: dict[str, str] | None = None,
) -> list[StageResult]:
    """Load, check and run a pipeline config. Every check runs before the first stage starts."""
    cfg = load_config(config_path, overrides)
    plans = plan_stages(cfg, registry if registry is not None else command_registry())
    run_dir = Path(cfg.run_dir)
    out = stream or sys.stderr
    runner = PipelineRunner(run_dir, plans, echo=echo, stream=out)
    if dry_run:
        for index, plan in enumerate(plans):
            runner.fingerprints[plan.name] = fp = runner.stage_fingerprint(plan)
            state = "up to date" if runner.is_up_to_date(plan, fp) else "would run"
            launcher = f", launched by `{' '.join(plan.launch)}`" if plan.launch else ""
            out.write(f"[{index + 1}/{len(plans)}] {plan.name} ({state}{launcher}): ja-pretrain {plan.command} "
                      f"{' '.join(plan.argv)}\n")
        return []
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "pipeline.yaml",
                      f"# {cfg.source} with overrides {overrides or []}, {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
                      + yaml.safe_dump(cfg.to_yaml_dict(), allow_unicode=True, sort_keys=False))
    atomic_write_json(run_dir / "pipeline-plan.json", [
        {"stage": p.name, "command": p.command, "argv": p.argv, "launch": p.launch, "out": str(p.out),
         "upstream": p.upstream}
        for p in plans
    ])
    started = time.time()
    with exclusive(run_dir, f"run_dir {run_dir} (a pipeline)"), _terminate_as_interrupt():
        results = runner.run(only=stage, start=start, force=force)
    ran = sum(r.status == "ran" for r in results)
    out.write(f"pipeline: {ran} stage(s) ran, {len(results) - ran} up to date, in {time.time() - started:.1f}s; "
              f"run dir {run_dir}\n")
    return results
