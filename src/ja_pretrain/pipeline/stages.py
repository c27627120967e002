"""From a stage's config to the exact command line it runs, checked before any work.

A stage's `args` are checked against the subcommand's own argparse parser (the command's typed
schema): an unknown option, a value of the wrong type or outside its choices, or a missing
required option stops the run, naming the stage, the option and the config line. Input paths
that no earlier stage produces must exist.

A word with `*` is a glob pattern, expanded (sorted) when the stage starts, so that a stage can
take the files an earlier one downloaded: `inputs: ["${download}/jawiki*"]`.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ja_pretrain.errors import UserError
from ja_pretrain.pipeline.config import PipelineConfig, StageConfig
from ja_pretrain.resources import sample_corpus_path
from ja_pretrain.utils.console import COMMAND_MODULES, command_module_name

# Which option of each subcommand names its output dir (filled with RUN_DIR/STAGE unless set),
# and which name inputs that must exist when no earlier stage makes them.
OUTPUT_OPTION = {
    "download": "out",
    "corpus": "out",
    "train-tokenizer": "model_dir",
    "build-dataset": "out",
    "run-pretraining": "model_dir",
    "extract-electra": "output_dir",
    "evaluate": "out",
    "finetune": "out",
    "report": "out",
}
INPUT_OPTIONS = {
    "corpus": ("inputs",),
    "train-tokenizer": ("input_file",),
    "build-dataset": ("corpus", "tokenizer"),
    "run-pretraining": ("input_file", "tokenizer_dir", "parameter_file", "init_from"),
    "extract-electra": ("input_dir", "parameter_file"),
    "evaluate": ("model_dir", "corpus", "generator"),
    "finetune": ("model_dir", "data", "train", "valid", "tokenizer"),
    "report": ("run_dir",),
}
# Commands that checkpoint: (flag that resumes, checkpoint dir pattern). A rerun of the same
# stage (same fingerprint) after a kill resumes its checkpoints; with changed options the stale
# output is removed first, as the command refuses to start over a foreign checkpoint.
RESUMABLE = {"run-pretraining": ("--do_continue", "checkpoint-*")}
RUN_DIR_REF = "${run_dir}"
REFERENCE = re.compile(r"\$\{([^}]*)\}")


class _Parser(argparse.ArgumentParser):
    """An argparse parser that raises instead of printing usage and exiting."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        raise UserError(message)


@dataclass
class StagePlan:
    """A stage ready to run: its command, argv, output dir and upstream stages."""

    name: str
    command: str  # CLI name, e.g. "train-tokenizer"
    spec: str  # "module" or "module:object" the child process runs
    argv: list[str]
    out: Path
    upstream: list[str] = field(default_factory=list)
    resume: tuple[str, str] | None = None  # (resume flag, checkpoint glob) of a checkpointing command
    launch: list[str] = field(default_factory=list)  # launcher words before `-m ja_pretrain.pipeline.child`


def command_registry() -> dict[str, str]:
    """CLI name -> module of every registered subcommand (utils.console.COMMAND_MODULES)."""
    registry = {}
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(command_module_name(module_name))
        registry[module.NAME] = module.__name__
    return registry


def load_command(spec: str):
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr) if attr else module
    except (ImportError, AttributeError) as err:
        raise UserError(f"command {spec!r} cannot be imported: {err}") from err


def command_parser(command, prog: str) -> _Parser:
    parser = _Parser(prog=prog, add_help=False)
    command.add_arguments(parser)
    return parser


def _resolve_text(text: str, cfg: PipelineConfig, outs: dict[str, Path], refs: set[str], where: str) -> Any:
    def value_of(name: str) -> Any:
        if name == "run_dir":
            refs.add(RUN_DIR_REF)  # made by the pipeline itself, so it need not exist yet
            return cfg.run_dir
        if name == "sample_corpus":
            return str(sample_corpus_path())
        if name.startswith("vars."):
            key = name[5:]
            if key not in cfg.vars:
                raise UserError(f"{where}: ${{{name}}}: no variable {key!r} under vars (set it with vars.{key}=...)")
            return cfg.vars[key]
        if name in outs:
            refs.add(name)
            return str(outs[name])
        raise UserError(f"{where}: ${{{name}}} names no earlier stage (earlier: {', '.join(outs) or 'none'}), "
                        "nor run_dir, vars.NAME or sample_corpus")

    whole = REFERENCE.fullmatch(text)
    if whole:  # "${vars.x}" alone keeps the variable's type (a list stays a list)
        return value_of(whole.group(1).strip())
    return REFERENCE.sub(lambda m: str(value_of(m.group(1).strip())), text)


def _resolve(value: Any, cfg, outs, refs, where) -> Any:
    if isinstance(value, str):
        return _resolve_text(value, cfg, outs, refs, where)
    if isinstance(value, list):
        out = []
        for item in value:
            resolved = _resolve(item, cfg, outs, refs, where)
            out.extend(resolved if isinstance(resolved, list) and isinstance(item, str) else [resolved])
        return out
    return value


def _find_action(parser: argparse.ArgumentParser, key: str) -> argparse.Action | None:
    wanted = key.replace("-", "_")
    for action in parser._actions:
        names = {action.dest} | {o.lstrip("-").replace("-", "_") for o in action.option_strings}
        if wanted in names and action.dest != "help":
            return action
    return None


def _check_scalar(action: argparse.Action, value: Any, label: str) -> str:
    kind = action.type
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UserError(f"{label} must be a single value, got {value!r}")
    if kind is int and not isinstance(value, int):
        raise UserError(f"{label} must be an integer, got {value!r}")
    if kind is float and not isinstance(value, (int, float)):
        raise UserError(f"{label} must be a number, got {value!r}")
    if action.choices is not None:
        converted = kind(value) if callable(kind) else value
        if converted not in action.choices:
            raise UserError(f"{label} must be one of {', '.join(map(str, action.choices))}, got {value!r}")
    return str(value)


def _arguments(action: argparse.Action, value: Any, label: str, key: str = "") -> list[str]:
    """The argv words that give `action` the value `value` (for a switch: `key: true` gives the
    flag `key` names; a store_false switch named by its dest gives the flag for false)."""
    flag = action.option_strings[0] if action.option_strings else None
    if action.nargs == 0:  # store_true / store_false / store_const
        if not isinstance(value, bool):
            raise UserError(f"{label} is a switch: write true or false, got {value!r}")
        named_flag = key.replace("-", "_") in {o.lstrip("-").replace("-", "_") for o in action.option_strings}
        on = value if named_flag or not isinstance(action, argparse._StoreFalseAction) else not value
        return [flag] if on else []
    many = action.nargs in ("+", "*") or (isinstance(action.nargs, int) and action.nargs > 1)
    if many:
        items = value if isinstance(value, list) else [value]
        if action.nargs == "+" and not items:
            raise UserError(f"{label} needs at least one value")
        words = [_check_scalar(action, v, label) for v in items]
        return ([flag] if flag else []) + words
    if isinstance(value, list):
        raise UserError(f"{label} takes one value, got a list {value!r}")
    if value is None:
        return []
    word = _check_scalar(action, value, label)
    return [flag, word] if flag else [word]


def plan_stages(cfg: PipelineConfig, registry: dict[str, str] | None = None) -> list[StagePlan]:
    """Check every stage and build its argv; raises UserError before anything runs."""
    registry = registry if registry is not None else command_registry()
    run_dir = Path(cfg.run_dir)
    outs: dict[str, Path] = {}
    plans = []
    seen: set[str] = set()
    for stage in cfg.stages:
        if stage.name in seen:
            raise UserError(f"{cfg.where('stages', stage.name)}: stage {stage.name!r} appears twice")
        seen.add(stage.name)
        plans.append(_plan_stage(cfg, stage, registry, run_dir, outs))
        outs[stage.name] = plans[-1].out
    return plans


def _plan_stage(cfg: PipelineConfig, stage: StageConfig, registry: dict[str, str], run_dir: Path,
                outs: dict[str, Path]) -> StagePlan:
    here = ("stages", stage.name)
    name = stage.command.replace("_", "-")
    if name not in registry:  # configs name subcommands only: a config cannot import arbitrary code
        raise UserError(f"{cfg.where(*here, 'command')}: stage {stage.name!r}: unknown command {stage.command!r}; "
                        f"commands: {', '.join(registry)}")
    spec = registry[name]
    command = load_command(spec)
    cli_name = getattr(command, "NAME", name)
    parser = command_parser(command, f"ja-pretrain {cli_name}")
    refs: set[str] = set()
    out_text = _resolve(stage.out, cfg, outs, refs, cfg.where(*here, "out")) if stage.out else None
    out = Path(out_text) if out_text else run_dir / stage.name
    args = dict(stage.args)
    output_option = getattr(command, "PIPELINE_OUTPUT", OUTPUT_OPTION.get(cli_name))
    if output_option:
        given = next((k for k in args if k.replace("-", "_") == output_option), None)
        if given is not None:
            out = Path(str(_resolve(args[given], cfg, outs, set(), cfg.where(*here, "args", given))))
        args[given or output_option] = str(out)
    positionals: list[tuple[int, list[str]]] = []
    argv: list[str] = []
    input_values: dict[str, list[tuple[Any, bool]]] = {}
    order = {id(a): i for i, a in enumerate(parser._actions)}
    for key, raw in args.items():
        where = cfg.where(*here, "args", key)
        label = f"{where}: stage {stage.name!r}: option '{key}'"
        action = _find_action(parser, key)
        if action is None:
            options = sorted(a.dest for a in parser._actions if a.dest != "help")
            raise UserError(f"{where}: stage {stage.name!r}: unknown option '{key}' for `ja-pretrain {cli_name}`; "
                            f"its options: {', '.join(options)}")
        value = _resolve(raw, cfg, outs, refs, where)
        words = _arguments(action, value, label, key)
        if action.option_strings:
            argv += words
        else:
            positionals.append((order[id(action)], words))
        # Each item on its own: is it made by an earlier stage (or the pipeline), or must it exist?
        items = []
        for item in raw if isinstance(raw, list) else [raw]:
            own: set[str] = set()
            resolved = _resolve(item, cfg, outs, own, where)
            items += [(r, bool(own)) for r in (resolved if isinstance(resolved, list) else [resolved])]
        input_values[action.dest] = items
    positional_words = [w for _, words in sorted(positionals, key=lambda p: p[0]) for w in words]
    argv = positional_words + argv
    try:
        parser.parse_args(argv)
    except UserError as err:
        raise UserError(f"{cfg.where(*here)}: stage {stage.name!r} (`ja-pretrain {cli_name}`): {err}") from None
    _check_inputs(cfg, stage, getattr(command, "PIPELINE_INPUTS", INPUT_OPTIONS.get(cli_name, ())), input_values)
    upstream = list(dict.fromkeys([*sorted(refs - {RUN_DIR_REF}), *stage.after]))
    for dep in stage.after:
        if dep not in outs:
            raise UserError(f"{cfg.where(*here, 'after')}: stage {stage.name!r}: after names {dep!r}, "
                            f"which is not an earlier stage")
    if cli_name == "report" and not stage.after:
        upstream = list(outs)  # a report reads the whole run dir
    resume = getattr(command, "PIPELINE_RESUME", RESUMABLE.get(cli_name))
    launch = shlex.split(stage.launch) if stage.launch else []
    return StagePlan(name=stage.name, command=cli_name, spec=spec, argv=argv, out=out, upstream=upstream,
                     resume=resume, launch=launch)


def _check_inputs(cfg: PipelineConfig, stage: StageConfig, dests: tuple[str, ...],
                  values: dict[str, list[tuple[Any, bool]]]) -> None:
    for dest in dests:
        key = next((k for k in stage.args if k.replace("-", "_") == dest), dest)
        where = f"{cfg.where('stages', stage.name, 'args', key)}: stage {stage.name!r}: input '{key}'"
        for item, made_here in values.get(dest, []):
            if made_here or not isinstance(item, str) or not item:
                continue
            if "*" in item:
                if not glob.glob(item):
                    raise UserError(f"{where} {item}: no file matches")
            elif not Path(item).exists():
                raise UserError(f"{where} {item}: no such file or directory")


def expand_globs(argv: list[str]) -> list[str]:
    """Replace each word holding `*` by the sorted files it matches (at least one)."""
    out = []
    for word in argv:
        if "*" in word and not word.startswith("-"):
            matches = sorted(glob.glob(word))
            if not matches:
                raise UserError(f"{word}: no file matches")
            out.extend(matches)
        else:
            out.append(word)
    return out
