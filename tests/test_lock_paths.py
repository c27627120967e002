"""Outputs named as users name them (`.`, `..`, a directory under `/`), and file systems
without locks: each works or is refused in one line, never a traceback."""

from __future__ import annotations

import errno
import logging

import pytest

from ja_pretrain.cli import main
from ja_pretrain.errors import UserError
from ja_pretrain.resources import sample_corpus_path
from ja_pretrain.utils import locks
from ja_pretrain.utils.locks import exclusive, lock_path

pytest.importorskip("fcntl")


def test_dot_and_dotdot_lock_the_directories_they_name(tmp_path, monkeypatch):
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    assert lock_path(".") == tmp_path / ".run.lock"
    assert lock_path("sub/..") == tmp_path / ".run.lock"
    with exclusive(".", "run_dir ."):  # a pipeline's run_dir or a --model_dir may be "."
        assert (tmp_path / ".run.lock").read_text().startswith("ja-pretrain process ")
    assert lock_path("/data") == lock_path("/data/") and lock_path("/data").name == ".data.lock"


def test_an_output_replaced_as_a_whole_cannot_be_the_current_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("the user's own file")
    assert main(["corpus", str(sample_corpus_path()), "--out", ".", "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert "--out .: is the current directory" in err and "name a new directory, e.g. ./out" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing moved, nothing written
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert main(["corpus", str(sample_corpus_path()), "--out", "..", "--no_progress"]) == 2
    assert "--out ..: is above the current directory" in capsys.readouterr().err


def test_the_root_is_refused_in_one_line(capsys):
    assert main(["corpus", str(sample_corpus_path()), "--out", "/", "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert "--out /: is above the current directory" in err and "Traceback" not in err
    with pytest.raises(UserError, match="root of the file system"):
        with exclusive("/", "--model_dir /"):
            pass


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS])
def test_a_file_system_without_locks_is_said_once_and_work_goes_on(tmp_path, monkeypatch, caplog, code):
    def refuse(*args):
        raise OSError(code, "no locks here")

    monkeypatch.setattr(locks.fcntl, "flock", refuse)
    monkeypatch.setattr(locks, "_warned", set())
    ran = []
    with caplog.at_level(logging.WARNING, logger="ja_pretrain.utils.locks"):
        for name in ("a", "b"):
            with exclusive(tmp_path / name, f"--out {name}"):
                ran.append(name)
    assert ran == ["a", "b"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "does not support locks" in warnings[0] and str(tmp_path) in warnings[0]


def test_other_lock_errors_are_not_hidden(tmp_path, monkeypatch):
    def broken(*args):
        raise OSError(errno.EIO, "i/o error")

    monkeypatch.setattr(locks.fcntl, "flock", broken)
    with pytest.raises(OSError, match="i/o error"):
        with exclusive(tmp_path / "a", "--out a"):
            pass
