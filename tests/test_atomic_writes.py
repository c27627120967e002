"""Write-then-rename outputs: nothing half-written under the final name, every file's data and
the rename on disk (fsync), and a failed fsync is an error, not a finished-looking output."""

import errno
import os

import pytest

from ja_pretrain.utils import atomic
from ja_pretrain.utils.atomic import atomic_directory, atomic_write_text


@pytest.fixture
def synced(monkeypatch):
    """('fsync', inode) for every os.fsync and ('rename', final name) for every os.replace, in order."""
    events: list[tuple[str, object]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def record_fsync(fd):
        events.append(("fsync", os.fstat(fd).st_ino))
        real_fsync(fd)

    def record_replace(src, dst):
        events.append(("rename", os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", record_fsync)
    monkeypatch.setattr(atomic.os, "replace", record_replace)
    return events


def test_every_file_is_synced_before_the_rename_and_the_parent_after(tmp_path, synced):
    out = tmp_path / "checkpoint-5"
    with atomic_directory(out) as tmp:
        (tmp / "model.safetensors").write_bytes(b"weights")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "state.json").write_text("{}")
    inodes = {p.name: p.stat().st_ino for p in out.rglob("*")}
    assert sorted(inodes) == ["model.safetensors", "state.json", "sub"]
    rename = synced.index(("rename", "checkpoint-5"))
    before = {ino for kind, ino in synced[:rename] if kind == "fsync"}
    assert set(inodes.values()) <= before
    if os.name == "posix":  # directories can be synced there: the rename itself is made durable
        assert synced[rename + 1:] == [("fsync", tmp_path.stat().st_ino)]


def test_a_failed_directory_write_leaves_nothing(tmp_path, synced):
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "out") as tmp:
            (tmp / "part").write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == [] and synced == []


def test_text_is_synced_then_renamed(tmp_path, synced):
    atomic_write_text(tmp_path / "manifest.json", "{}\n")
    final = tmp_path / "manifest.json"
    assert final.read_text() == "{}\n"
    assert synced[:2] == [("fsync", final.stat().st_ino), ("rename", "manifest.json")]


def test_a_failed_fsync_is_an_error_and_leaves_no_final_name(tmp_path, monkeypatch):
    def failing_fsync(fd):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "manifest.json", "{}\n")
    with pytest.raises(OSError):
        with atomic_directory(tmp_path / "final") as tmp:
            (tmp / "model.safetensors").write_bytes(b"weights")
    assert list(tmp_path.iterdir()) == []
