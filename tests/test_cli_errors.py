"""OS errors a user can act on end a command with one line naming the path, not a traceback."""

from __future__ import annotations

import errno

import pytest

from ja_pretrain.cli import main
from ja_pretrain.resources import sample_corpus_path
from ja_pretrain.utils.console import os_error_message, run_guarded


def test_an_output_under_a_file_is_a_message(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["corpus", str(sample_corpus_path()), "--out", str(blocker / "corpus"), "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert f"{blocker}: exists and is not a directory" in err and "Traceback" not in err


@pytest.mark.parametrize("code,words", [(errno.ENOSPC, "no space left on device"), (errno.EROFS, "read-only"),
                                        (errno.ENOTDIR, "not a directory")])
def test_disk_errors_become_one_line(code, words, capsys):
    def fails(_):
        raise OSError(code, "raw", "/data/out/model.safetensors")

    assert run_guarded("demo", fails, None) == 2
    assert f"/data/out/model.safetensors: {words}" in capsys.readouterr().err
    assert os_error_message(OSError(errno.ECONNRESET, "reset")) is None  # not ours to explain: raised as is
