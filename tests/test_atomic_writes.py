"""Write-then-rename outputs: nothing half-written under the final name, and the data is on disk
(fsync) before the name appears."""

import os

import pytest

from ja_pretrain.utils import atomic
from ja_pretrain.utils.atomic import atomic_directory, atomic_write_text


@pytest.fixture
def synced(monkeypatch):
    """The paths fsync_path was called on, in order, with the rename marked where it happened."""
    events: list[str] = []
    real_fsync, real_replace = atomic.fsync_path, os.replace

    def record_fsync(path):
        events.append(f"fsync {os.path.basename(path)}")
        real_fsync(path)

    def record_replace(src, dst):
        events.append(f"rename {os.path.basename(src)} -> {os.path.basename(dst)}")
        real_replace(src, dst)

    monkeypatch.setattr(atomic, "fsync_path", record_fsync)
    monkeypatch.setattr(atomic.os, "replace", record_replace)
    return events


def test_directory_contents_are_synced_before_the_rename_and_the_rename_after(tmp_path, synced):
    out = tmp_path / "checkpoint-5"
    with atomic_directory(out) as tmp:
        (tmp / "model.safetensors").write_bytes(b"weights")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "state.json").write_text("{}")
    assert sorted(p.name for p in out.rglob("*")) == ["model.safetensors", "state.json", "sub"]
    rename = next(i for i, e in enumerate(synced) if e.startswith("rename"))
    before, after = synced[:rename], synced[rename + 1:]
    assert {"fsync model.safetensors", "fsync state.json", "fsync sub"} <= set(before)
    assert after == [f"fsync {tmp_path.name}"]  # the parent, so the new name itself survives


def test_a_failed_directory_write_leaves_nothing_and_syncs_nothing(tmp_path, synced):
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "out") as tmp:
            (tmp / "part").write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == [] and synced == []


def test_text_is_synced_then_renamed(tmp_path, synced):
    atomic_write_text(tmp_path / "manifest.json", "{}\n")
    assert (tmp_path / "manifest.json").read_text() == "{}\n"
    assert [e.split()[0] for e in synced] == ["fsync", "rename", "fsync"]
    assert synced[-1] == f"fsync {tmp_path.name}"
