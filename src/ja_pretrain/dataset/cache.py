"""prepare_dataset: what training calls with whatever --input_file the user gave.

A built dataset directory is used as it is. A corpus directory or text file is built into
CACHE_DIR/<name>-<form>-L<length>-<key>, where key hashes exactly (corpus manifest or text
hashes, tokenizer files, sequence length, form). Because the key covers every input, a
finished entry with the same key is reused: that is what the seed's `--disable_overwrite_cache`
asked for, and it is the default here. `overwrite_cache=True` (`--overwrite_cache`) rebuilds it
anyway; the seed rebuilt on every launch because its cache was not keyed.

Distributed runs: local rank 0 of each node builds while the node's other ranks poll for the
finished manifest (or for rank 0's failure marker), then everyone maps the same files.
The output lock (`utils.locks`, a kernel lock released even on kill -9) keeps two builders (the
nodes of a job on a shared file system) from building one entry at once: the second waits,
naming the holder's host and pid, for up to JA_PRETRAIN_DATASET_WAIT_S seconds (a day by
default), then reuses what the first built. Waiting ranks say whom they wait for and give up
after the same time.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from ja_pretrain.dataset.build import build_dataset, check_options, corpus_fingerprint, tokenizer_fingerprint
from ja_pretrain.dataset.samples import DATASET_STAGE
from ja_pretrain.errors import UserError
from ja_pretrain.utils.locks import exclusive, lock_path
from ja_pretrain.utils.manifest import fingerprint, read_manifest

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
WAIT_TIMEOUT_S = float(os.environ.get("JA_PRETRAIN_DATASET_WAIT_S", 24 * 3600))


def cache_key(input_path, tokenizer_dir, sequence_length: int, form: str) -> str:
    return fingerprint({
        "corpus": corpus_fingerprint(input_path),
        "tokenizer": tokenizer_fingerprint(tokenizer_dir),
        "sequence_length": sequence_length,
        "form": form,
    })[:20]


def _is_dataset(path: Path) -> bool:
    manifest = read_manifest(path) if path.is_dir() else None
    return manifest is not None and manifest.get("stage") == DATASET_STAGE


def prepare_dataset(
    input_path: str | os.PathLike,
    tokenizer_dir: str | os.PathLike,
    *,
    sequence_length: int,
    form: str,
    cache_dir: str | os.PathLike,
    overwrite_cache: bool = False,
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """A dataset directory for `input_path`, building it into the cache when needed."""
    check_options(sequence_length, form)
    path = Path(input_path)
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    if _is_dataset(path):
        manifest = read_manifest(path)
        have = (manifest["options"]["sequence_length"], manifest["options"]["form"])
        if have != (sequence_length, form):
            raise UserError(f"{path}: built with sequence length {have[0]} and form {have[1]!r}; "
                            f"this run needs {sequence_length} and {form!r}; rebuild it or pass the corpus")
        if manifest["inputs"].get("tokenizer") != tokenizer_fingerprint(tokenizer_dir):
            raise UserError(f"{path}: built with another tokenizer than {tokenizer_dir}; its ids would not match "
                            f"the model's vocabulary. Pass that tokenizer, or the corpus to build a new dataset")
        return path
    key = cache_key(path, tokenizer_dir, sequence_length, form)
    target = Path(cache_dir) / f"{path.stem or path.name}-{form}-L{sequence_length}-{key}"
    local_rank, distributed = _local_rank()

    def build() -> None:
        if not overwrite_cache and _is_dataset(target):
            log.info("reusing cached dataset %s", target)
            return
        with exclusive(target, f"the dataset cache entry {target}", wait_s=WAIT_TIMEOUT_S):
            if not overwrite_cache and _is_dataset(target):
                return  # another process built it while we waited
            build_dataset(path, tokenizer_dir, target, sequence_length=sequence_length, form=form,
                          workers=workers, force=True, progress=progress)

    # The other ranks poll the filesystem rather than wait in a collective: a build of a real
    # corpus outlasts the process group's timeout, and a failed build must not leave them hanging.
    failed = target.with_name(target.name + ".failed")
    if local_rank == 0:
        failed.unlink(missing_ok=True)
        try:
            build()
        except BaseException as err:
            try:
                failed.parent.mkdir(parents=True, exist_ok=True)
                failed.write_text(f"{type(err).__name__}: {err}", encoding="utf-8")
            except OSError:
                pass  # the build's own error is the one to report
            raise
    else:
        _wait_for(target, failed, fresh=overwrite_cache)
    if distributed:
        import torch.distributed as dist  # here: building a dataset alone never needs torch

        dist.barrier()
    if not _is_dataset(target):
        raise UserError(f"{target}: the dataset was not built (see local rank 0's error)")
    return target


def _local_rank() -> tuple[int, bool]:
    rank, initialised = 0, False
    try:
        import torch.distributed as dist  # (see prepare_dataset)

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            rank, initialised = dist.get_rank(), True
    except ImportError:
        pass
    return int(os.environ.get("LOCAL_RANK", rank)), initialised


def _built_since(target: Path, since: float) -> bool:
    manifest = target / "manifest.json"
    return manifest.is_file() and manifest.stat().st_mtime >= since - 1


def _wait_for(target: Path, failed: Path, *, fresh: bool) -> None:
    """Wait for local rank 0 to finish `target` (with `fresh`: to rebuild it, as asked)."""
    started = time.time()
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    said = 0.0
    while not (_is_dataset(target) and (not fresh or _built_since(target, started))):
        if failed.exists() and failed.stat().st_mtime >= started - 1:  # not a marker of an earlier run
            raise UserError(f"{target}: local rank 0 failed to build the dataset ({failed.read_text(encoding='utf-8')})")
        holder = _holder(target, started)
        if time.monotonic() > deadline:
            raise UserError(f"{target}: gave up after {WAIT_TIMEOUT_S:.0f}s waiting for local rank 0 ({holder}) to "
                            "build it (JA_PRETRAIN_DATASET_WAIT_S sets the time)")
        if not said or time.monotonic() - said > 600:
            print(f"ja-pretrain: rank {os.environ.get('RANK', '?')} waits for local rank 0 ({holder}) to build "
                  f"{target} (giving up after {WAIT_TIMEOUT_S:.0f}s)", file=sys.stderr, flush=True)
            said = time.monotonic()
        time.sleep(POLL_SECONDS)


def _holder(target: Path, since: float) -> str:
    """Who builds `target`: the name in its lock file if written lately (the file keeps the name of
    its last holder, which may be an earlier run's)."""
    lock = lock_path(target)
    try:
        if lock.stat().st_mtime >= since - 60:
            return lock.read_text(encoding="utf-8").strip() or "starting"
    except OSError:
        pass
    return "not building yet"
