"""prepare_dataset: the hash-keyed cache, --disable_overwrite_cache, ranks that wait."""

import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

import ja_pretrain.dataset.cache as cache
from ja_pretrain.dataset import open_samples, prepare_dataset
from ja_pretrain.errors import UserError
from ja_pretrain.utils.locks import lock_path

from tokdata_support import sample_documents, scratch, trained_tokenizer, write_corpus


def _stamp(directory):
    return (directory / "manifest.json").stat().st_mtime_ns


@pytest.fixture()
def setup(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", sample_documents()[:30], sample_documents()[30:33])
    tokenizer = tmp_path / "tokenizer"
    shutil.copytree(trained_tokenizer(), tokenizer)
    return corpus, tokenizer, tmp_path / "cache"


def test_same_request_reuses_changed_inputs_rebuild(setup):
    corpus, tokenizer, cache_dir = setup
    request = dict(sequence_length=32, form="packed", cache_dir=cache_dir)
    first = prepare_dataset(corpus, tokenizer, overwrite_cache=False, **request)
    stamp = _stamp(first)
    again = prepare_dataset(corpus, tokenizer, overwrite_cache=False, **request)
    assert again == first and _stamp(again) == stamp  # cache hit: nothing rebuilt

    # each part of the key gives another entry
    longer = prepare_dataset(corpus, tokenizer, overwrite_cache=False, **{**request, "sequence_length": 48})
    pairs = prepare_dataset(corpus, tokenizer, overwrite_cache=False, **{**request, "form": "pairs"})
    assert len({first, longer, pairs}) == 3 and open_samples(pairs).form == "pairs"
    with open(corpus / "train-00000.txt", "a", encoding="utf-8") as f:
        f.write("\n新しい文書の文です。\n")
    changed_corpus = prepare_dataset(corpus, tokenizer, overwrite_cache=False, **request)
    assert changed_corpus != first
    assert open_samples(changed_corpus).store.n_documents == open_samples(first).store.n_documents + 1
    with open(tokenizer / "vocab.txt", "a", encoding="utf-8") as f:
        f.write("新語\n")
    changed_tokenizer = prepare_dataset(corpus, tokenizer, overwrite_cache=False, **request)
    assert changed_tokenizer not in (first, changed_corpus)
    assert open_samples(changed_tokenizer).vocab_size == open_samples(first).vocab_size + 1


def test_same_request_reuses_and_overwrite_cache_rebuilds(setup):
    corpus, tokenizer, cache_dir = setup
    request = dict(sequence_length=32, form="packed", cache_dir=cache_dir)
    first = prepare_dataset(corpus, tokenizer, **request)
    stamp = _stamp(first)
    time.sleep(0.01)
    assert prepare_dataset(corpus, tokenizer, **request) == first and _stamp(first) == stamp
    time.sleep(0.01)
    again = prepare_dataset(corpus, tokenizer, overwrite_cache=True, **request)
    assert again == first and _stamp(again) != stamp
    # no leftovers; the lock file stays (see utils.locks)
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted([first.name, lock_path(first).name])


def test_a_built_dataset_is_used_as_it_is(setup):
    corpus, tokenizer, cache_dir = setup
    built = prepare_dataset(corpus, tokenizer, sequence_length=32, form="packed", cache_dir=cache_dir)
    assert prepare_dataset(built, tokenizer, sequence_length=32, form="packed", cache_dir=scratch("unused")) == built
    with pytest.raises(UserError, match="built with sequence length 32"):
        prepare_dataset(built, tokenizer, sequence_length=64, form="packed", cache_dir=cache_dir)
    with open(tokenizer / "vocab.txt", "a", encoding="utf-8") as f:
        f.write("新語\n")
    with pytest.raises(UserError, match="built with another tokenizer"):
        prepare_dataset(built, tokenizer, sequence_length=32, form="packed", cache_dir=cache_dir)


def test_other_local_ranks_wait_for_rank_zero(setup, monkeypatch):
    corpus, tokenizer, cache_dir = setup
    monkeypatch.setattr(cache, "POLL_SECONDS", 0.05)
    request = dict(sequence_length=32, form="packed", cache_dir=cache_dir, overwrite_cache=False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    result = {}
    waiter = threading.Thread(target=lambda: result.setdefault("dir", prepare_dataset(corpus, tokenizer, **request)))
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive() and not cache_dir.exists()  # rank 1 builds nothing
    monkeypatch.setenv("LOCAL_RANK", "0")
    built = prepare_dataset(corpus, tokenizer, **request)
    waiter.join(timeout=30)
    assert result["dir"] == built


@pytest.mark.parametrize("left", ["", "otherhost 12345", "{host} 999999999"],
                         ids=["empty (killed between create and write)", "another host's", "a dead pid's"])
def test_a_lock_file_without_a_live_holder_never_blocks_a_build(setup, left):
    """The lock file stays beside the entry; only a live holder of the kernel lock blocks. (The
    earlier O_EXCL lock file waited forever on each of these.)"""
    corpus, tokenizer, cache_dir = setup
    target = cache_dir / f"corpus-packed-L32-{cache.cache_key(corpus, tokenizer, 32, 'packed')}"
    cache_dir.mkdir()
    for lock in (lock_path(target), target.with_name(target.name + ".lock")):  # (the old name too)
        lock.write_text(left.format(host=socket.gethostname()))
    result = {}
    builder = threading.Thread(target=lambda: result.setdefault(
        "dir", prepare_dataset(corpus, tokenizer, sequence_length=32, form="packed", cache_dir=cache_dir)), daemon=True)
    builder.start()
    builder.join(timeout=60)
    assert result.get("dir") == target and (target / "manifest.json").is_file()


def test_a_live_holder_is_named_while_waiting_and_the_wait_ends(setup, monkeypatch, capsys):
    corpus, tokenizer, cache_dir = setup
    monkeypatch.setattr(cache, "WAIT_TIMEOUT_S", 2.0)
    target = cache_dir / f"corpus-packed-L32-{cache.cache_key(corpus, tokenizer, 32, 'packed')}"
    code = ("import sys, time\nfrom ja_pretrain.utils.locks import exclusive\n"
            f"with exclusive({str(target)!r}, 'test'):\n    print('held', flush=True)\n    time.sleep(60)\n")
    other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        holder = f"ja-pretrain process {other.pid} on host {socket.gethostname()}"
        with pytest.raises(UserError, match=f"gave up after 2s waiting for {holder}"):
            prepare_dataset(corpus, tokenizer, sequence_length=32, form="packed", cache_dir=cache_dir)
        assert f"waiting for {holder} to finish the dataset cache entry {target}" in capsys.readouterr().err
    finally:
        other.kill()
        other.wait()
    assert not target.exists()


def _rank(rank: int, port: int, corpus: str, tokenizer: str, cache_dir: str, report: str) -> None:
    import os

    import torch.distributed as dist

    os.environ["LOCAL_RANK"] = str(rank)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        built = []
        original = cache.build_dataset
        cache.build_dataset = lambda *a, **k: built.append(rank) or original(*a, **k)
        path = prepare_dataset(corpus, tokenizer, sequence_length=32, form="packed", cache_dir=cache_dir)
        with open(f"{report}.{rank}", "w") as f:
            f.write(f"{path}\n{len(open_samples(path))}\n{len(built)}\n")
    finally:
        dist.destroy_process_group()


def test_distributed_rank_zero_builds_the_others_wait_at_the_barrier(setup):
    import socket

    import torch.multiprocessing as mp

    corpus, tokenizer, cache_dir = setup
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    report = str(cache_dir.parent / "report")
    mp.spawn(_rank, args=(port, str(corpus), str(tokenizer), str(cache_dir), report), nprocs=2, join=True)
    zero, one = (open(f"{report}.{r}").read().split() for r in (0, 1))
    assert zero[:2] == one[:2] and int(zero[1]) > 0
    assert (zero[2], one[2]) == ("1", "0")  # only local rank 0 built


def test_waiting_ranks_stop_when_rank_zero_fails(setup, monkeypatch):
    """A failed build on local rank 0 must reach the ranks polling for it, not leave them hanging."""
    corpus, tokenizer, cache_dir = setup
    monkeypatch.setattr(cache, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(cache, "WAIT_TIMEOUT_S", 20.0)
    request = dict(sequence_length=32, form="packed", cache_dir=cache_dir)
    monkeypatch.setenv("LOCAL_RANK", "1")
    outcome = {}

    def wait():
        try:
            prepare_dataset(corpus, tokenizer, **request)
        except UserError as err:
            outcome["error"] = str(err)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.2)

    def broken_build(*args, **kwargs):
        raise UserError("disk full")

    monkeypatch.setattr(cache, "build_dataset", broken_build)
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(UserError, match="disk full"):
        prepare_dataset(corpus, tokenizer, **request)
    waiter.join(timeout=10)
    assert not waiter.is_alive() and "failed to build" in outcome["error"] and "disk full" in outcome["error"]
