"""`--form` names say which rows keep documents apart (full-apart) and which join them
(full-joined); the earlier names, which datasets record on disk, are still accepted."""

from __future__ import annotations

import json

import pytest

from ja_pretrain.cli import main
from ja_pretrain.commands.run_pretraining import dataset_form
from ja_pretrain.config.forms import form_option, stored_form


@pytest.mark.parametrize("option,disk", [("full-apart", "full"), ("full-joined", "joined"), ("full", "full"),
                                         ("joined", "joined"), ("packed", "packed"), ("pairs", "pairs")])
def test_both_spellings_name_one_form(option, disk, tmp_path):
    assert stored_form(option) == disk
    assert dataset_form(tmp_path / "corpus", nsp=False, form=option) == disk


def test_build_dataset_takes_the_new_name_and_records_the_disk_name(tiny, tmp_path, capsys):
    out = tmp_path / "joined"
    assert main(["build-dataset", "--corpus", str(tiny.corpus), "--tokenizer", str(tiny.tokenizer), "--out", str(out),
                 "--sequence_length", "64", "--form", "full-joined", "--no_progress"]) == 0
    assert json.loads((out / "manifest.json").read_text())["options"]["form"] == "joined"
    assert form_option("joined") == "full-joined" and form_option("full") == "full-apart"
    with pytest.raises(SystemExit):
        main(["build-dataset", "--corpus", str(tiny.corpus), "--tokenizer", str(tiny.tokenizer), "--out",
              str(tmp_path / "x"), "--form", "full-ish"])
    assert "full-apart" in capsys.readouterr().err
