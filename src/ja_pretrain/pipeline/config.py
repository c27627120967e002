"""The pipeline config: typed dataclasses loaded from YAML, with `a.b=c` overrides.

    run_dir: runs/quickstart          # where every stage writes (relative to the current dir)
    vars:                             # your own values, used as ${vars.NAME}
      text: /data/my-reports
    stages:                           # run in this order
      corpus:                         # stage name: its output is RUN_DIR/corpus
        command: corpus               # a ja-pretrain subcommand (or "package.module:object")
        args:                         # the subcommand's options, spelled as its flags without --
          inputs: ["${sample_corpus}"]
          valid_sentences: 200
      tokenizer:
        command: train-tokenizer
        args: {input_file: "${corpus}", vocab_size: 4000}

`${NAME}` is stage NAME's output dir (and makes NAME an upstream of this stage: its change
reruns this one), `${run_dir}` the run dir, `${vars.X}` a variable, `${sample_corpus}` the
corpus bundled with ja-pretrain. `out:` sets a stage's output dir, `after: [NAME]` adds an
upstream that no argument names, `launch: torchrun --nproc_per_node 8` runs the stage under a
launcher (torchrun gets `-m ja_pretrain.pipeline.child ...`).

Overrides on the command line: `run_dir=/tmp/x`, `vars.text=/data`, `STAGE.OPTION=VALUE`
(short for `stages.STAGE.args.OPTION=VALUE`), `stages.STAGE.launch=...`; values are read as YAML
(`20`, `true`, `[a, b]`).
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

import yaml

from ja_pretrain.errors import UserError
from ja_pretrain.utils.paths import require_file

STAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SCALAR = (str, int, float, bool)


@dataclasses.dataclass
class StageConfig:
    name: str
    command: str
    args: dict[str, Any] = dataclasses.field(default_factory=dict)
    out: str | None = None
    after: list[str] = dataclasses.field(default_factory=list)
    launch: str | None = None  # e.g. "torchrun --nproc_per_node 8": runs the stage under it


@dataclasses.dataclass
class PipelineConfig:
    run_dir: str
    stages: list[StageConfig]
    vars: dict[str, Any] = dataclasses.field(default_factory=dict)
    description: str = ""
    source: str = "<config>"
    lines: dict[tuple[str, ...], int] = dataclasses.field(default_factory=dict, repr=False)

    def stage(self, name: str) -> StageConfig:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise UserError(f"no stage {name!r} in {self.source}; stages: {', '.join(s.name for s in self.stages)}")

    def where(self, *path: str) -> str:
        """'FILE:LINE' of a key (or of its closest parent) for error messages."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return f"{self.source}:{line}"
        return self.source

    def to_yaml_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"run_dir": self.run_dir}
        if self.description:
            out["description"] = self.description
        if self.vars:
            out["vars"] = dict(self.vars)
        out["stages"] = {}
        for s in self.stages:
            entry: dict[str, Any] = {"command": s.command, "args": dict(s.args)}
            if s.out:
                entry["out"] = s.out
            if s.after:
                entry["after"] = list(s.after)
            if s.launch:
                entry["launch"] = s.launch
            out["stages"][s.name] = entry
        return out


def _key_lines(node: yaml.Node, path: tuple[str, ...], lines: dict[tuple[str, ...], int], source: str) -> None:
    """The line of every key; a key given twice in one mapping is an error (YAML keeps the last
    one silently, so a second stage of the same name would replace the first)."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = path + (str(key.value),)
            if sub in lines:
                raise UserError(f"{source}:{key.start_mark.line + 1}: '{'.'.join(sub)}' is given twice "
                                f"(first on line {lines[sub]}); names in a mapping must be unique")
            lines[sub] = key.start_mark.line + 1
            _key_lines(value, sub, lines, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            sub = path + (str(index),)
            lines[sub] = value.start_mark.line + 1
            _key_lines(value, sub, lines, source)


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> PipelineConfig:
    file = require_file(path, "CONFIG")
    text = file.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark else str(file)
        raise UserError(f"{where}: not valid YAML ({getattr(err, 'problem', err)})") from err
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        _key_lines(node, (), lines, str(file))
    data = apply_overrides(data if data is not None else {}, overrides or [], str(file))
    return parse_config(data, source=str(file), lines=lines)


def apply_overrides(data: Any, overrides: list[str], source: str) -> Any:
    if not isinstance(data, dict):
        raise UserError(f"{source}: the top level must be a mapping with run_dir and stages")
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"override {item!r}: write KEY=VALUE, e.g. bert.train_steps=20")
        parts = key.split(".")
        if parts[0] not in ("run_dir", "vars", "stages", "description"):
            # STAGE.OPTION is short for stages.STAGE.args.OPTION
            parts = ["stages", parts[0], "args", *parts[1:]] if len(parts) >= 2 else parts
        if parts[0] == "stages" and (len(parts) < 3 or parts[1] not in (data.get("stages") or {})):
            known = ", ".join(data.get("stages") or {})
            raise UserError(f"override {item!r}: no stage {parts[1] if len(parts) > 1 else ''!r} (stages: {known})")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        target = data
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                if part in target and target[part] is not None:
                    raise UserError(f"override {item!r}: {part!r} is not a mapping")
                target[part] = {}
            target = target[part]
        target[parts[-1]] = value
    return data


def _type_error(where: str, key: str, wanted: str, value: Any) -> UserError:
    return UserError(f"{where}: key '{key}' must be {wanted}, got {value!r}")


def parse_config(data: Any, *, source: str = "<config>", lines: dict | None = None) -> PipelineConfig:
    """Check the top-level schema (unknown keys, types, stage names) and build the dataclasses."""
    cfg = PipelineConfig(run_dir="", stages=[], source=source, lines=lines or {})
    if not isinstance(data, dict):
        raise UserError(f"{source}: the top level must be a mapping with run_dir and stages")
    known = {"run_dir", "vars", "stages", "description"}
    for key in data:
        if key not in known:
            raise UserError(f"{cfg.where(str(key))}: unknown key '{key}'; known keys: {', '.join(sorted(known))}")
    run_dir = data.get("run_dir")
    if not isinstance(run_dir, str) or not run_dir:
        raise _type_error(cfg.where("run_dir"), "run_dir", "a directory path", run_dir)
    cfg.run_dir = run_dir
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _type_error(cfg.where("description"), "description", "a string", description)
    cfg.description = description
    variables = data.get("vars") or {}
    if not isinstance(variables, dict):
        raise _type_error(cfg.where("vars"), "vars", "a mapping", variables)
    for name, value in variables.items():
        if not isinstance(value, SCALAR) and not (isinstance(value, list) and all(isinstance(v, SCALAR) for v in value)):
            raise _type_error(cfg.where("vars", str(name)), f"vars.{name}", "a string, number or list", value)
    cfg.vars = dict(variables)
    stages = data.get("stages")
    if not isinstance(stages, dict) or not stages:
        raise _type_error(cfg.where("stages"), "stages", "a mapping of stage names to stages", stages)
    for name, raw in stages.items():
        cfg.stages.append(_parse_stage(cfg, str(name), raw))
    return cfg


def _parse_stage(cfg: PipelineConfig, name: str, raw: Any) -> StageConfig:
    here = ("stages", name)
    if not STAGE_NAME.match(name) or name in ("run_dir", "vars", "sample_corpus"):
        raise UserError(f"{cfg.where(*here)}: stage name {name!r} must be letters, digits, '-', '_' or '.', "
                        "and not run_dir, vars or sample_corpus")
    if not isinstance(raw, dict):
        raise _type_error(cfg.where(*here), f"stages.{name}", "a mapping with command and args", raw)
    fields = {f.name for f in dataclasses.fields(StageConfig)} - {"name"}
    for key in raw:
        if key not in fields:
            raise UserError(f"{cfg.where(*here, str(key))}: unknown key 'stages.{name}.{key}'; "
                            f"a stage has {', '.join(sorted(fields))}")
    command = raw.get("command")
    if not isinstance(command, str) or not command:
        raise _type_error(cfg.where(*here, "command"), f"stages.{name}.command",
                          "a ja-pretrain subcommand name", command)
    args = raw.get("args") or {}
    if not isinstance(args, dict):
        raise _type_error(cfg.where(*here, "args"), f"stages.{name}.args", "a mapping of options", args)
    out = raw.get("out")
    if out is not None and not isinstance(out, str):
        raise _type_error(cfg.where(*here, "out"), f"stages.{name}.out", "a directory path", out)
    after = raw.get("after") or []
    if isinstance(after, str):
        after = [after]
    if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
        raise _type_error(cfg.where(*here, "after"), f"stages.{name}.after", "a list of stage names", after)
    launch = raw.get("launch")
    if launch is not None and (not isinstance(launch, str) or not launch.strip()):
        raise _type_error(cfg.where(*here, "launch"), f"stages.{name}.launch",
                          "a launcher command such as 'torchrun --nproc_per_node 8'", launch)
    return StageConfig(name=name, command=command, args={str(k): v for k, v in args.items()}, out=out, after=after,
                       launch=launch)
