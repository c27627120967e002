"""Downstream task files: each publisher's format is read, bad input is refused with its file and
line, splits by document are disjoint, seeded and recorded, and --data finds the files."""

from __future__ import annotations

import json

import pytest
from downstream_support import (
    CATEGORIES,
    chabsa_documents,
    jcqa_records,
    jsts_records,
    livedoor_articles,
    write_chabsa_zip,
    write_jglue,
    write_jsonl,
    write_livedoor_tar,
)

from ja_pretrain.downstream.data import load_task_data, split_by_document
from ja_pretrain.downstream.readers import read_task_file
from ja_pretrain.downstream.tasks import TASKS
from ja_pretrain.errors import UserError


def test_jglue_files_read_with_labels_as_published(tmp_path):
    datasets = write_jglue(tmp_path)
    jsts = read_task_file(TASKS["jsts"], datasets / "jsts-v1.3" / "valid-v1.3.json")
    records = jsts_records(20, 2)
    assert [e.uid for e in jsts] == [r["sentence_pair_id"] for r in records]
    assert [e.label for e in jsts] == [r["label"] for r in records]
    assert jsts[0].pairs == ((records[0]["sentence1"], records[0]["sentence2"]),)
    jnli = read_task_file(TASKS["jnli"], datasets / "jnli-v1.3" / "train-v1.3.json")
    assert {TASKS["jnli"].labels[e.label] for e in jnli} <= {"entailment", "contradiction", "neutral"}
    jcqa = read_task_file(TASKS["jcommonsenseqa"], datasets / "jcommonsenseqa-v1.3" / "valid-v1.3.json")
    first = jcqa_records(20, 2)[0]
    assert len(jcqa[0].pairs) == 5 and jcqa[0].label == first["label"] and jcqa[0].uid == str(first["q_id"])
    assert jcqa[0].pairs[3] == (first["question"], first["choice3"])


def test_marc_ja_and_compressed_json_lines(tmp_path):
    import gzip

    path = tmp_path / "valid-v1.2.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for i, label in enumerate(["positive", "negative", "positive"]):
            f.write(json.dumps({"review_id": f"R{i}", "sentence": "とても良い商品でした。", "label": label}) + "\n")
    examples = read_task_file(TASKS["marc_ja"], path)
    assert [TASKS["marc_ja"].labels[e.label] for e in examples] == ["positive", "negative", "positive"]
    assert [e.uid for e in examples] == ["R0", "R1", "R2"] and examples[0].pairs[0][1] is None


@pytest.mark.parametrize("task,record,message", [
    ("jsts", {"sentence1": "a", "label": 1.0}, "missing field 'sentence2'"),
    ("jsts", {"sentence1": "a", "sentence2": "b", "label": 7.5}, "not a number in JSTS's range 0-5"),
    ("jsts", {"sentence1": "a", "sentence2": 3, "label": 1.0}, "field 'sentence2' must be a string"),
    ("jnli", {"sentence1": "a", "sentence2": "b", "label": "entail"}, "is not one of JNLI's labels"),
    ("jcommonsenseqa", {"question": "q", **{f"choice{i}": "c" for i in range(5)}, "label": 5},
     "not a choice index 0-4"),
    ("jcommonsenseqa", {"question": "q", "choice0": "c", "label": 0}, "missing field 'choice1'"),
])
def test_bad_records_name_file_and_line(tmp_path, task, record, message):
    good = jsts_records(2, 0) if task == "jsts" else []
    path = write_jsonl(tmp_path / "train-v1.3.json", good + [record])
    with pytest.raises(UserError) as err:
        read_task_file(TASKS[task], path)
    assert f"{path}:{len(good) + 1}:" in str(err.value) and message in str(err.value)


def test_not_json_and_empty_split_are_refused(tmp_path):
    broken = tmp_path / "train-v1.3.json"
    broken.write_text(json.dumps(jsts_records(1, 0)[0]) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"{broken}:2: not valid JSON"):
        read_task_file(TASKS["jsts"], broken)
    empty = tmp_path / "valid-v1.3.json"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(UserError, match="no JSTS examples in it \\(an empty split\\)"):
        read_task_file(TASKS["jsts"], empty)


def test_chabsa_zip_directory_and_json_lines_agree(tmp_path):
    documents = chabsa_documents()
    from_zip = read_task_file(TASKS["chabsa"], write_chabsa_zip(tmp_path / "chABSA-dataset.zip", documents))
    directory = tmp_path / "dir"
    directory.mkdir()
    for doc in documents:
        (directory / f"{doc['header']['document_id']}_ann.json").write_text(json.dumps(doc, ensure_ascii=False),
                                                                              encoding="utf-8")
    from_dir = read_task_file(TASKS["chabsa"], directory)
    from_lines = read_task_file(TASKS["chabsa"], write_jsonl(tmp_path / "chabsa.jsonl", documents))
    assert from_zip == from_dir == from_lines
    assert len(from_zip) == sum(len(s["opinions"]) for d in documents for s in d["sentences"])
    first = documents[0]["sentences"][0]
    assert from_zip[0].pairs == ((first["sentence"], first["opinions"][0]["target"]),)
    assert TASKS["chabsa"].labels[from_zip[0].label] == first["opinions"][0]["polarity"]
    assert from_zip[0].group == "E00000" and from_zip[0].uid == "E00000:0:0"


def test_chabsa_bad_polarity_names_the_record(tmp_path):
    documents = chabsa_documents(2)
    documents[1]["sentences"][2]["opinions"][0]["polarity"] = "good"
    path = write_jsonl(tmp_path / "chabsa.jsonl", documents)
    with pytest.raises(UserError, match=rf"{path}:2: sentences\[2\]\.opinions\[0\]: label \"good\" is not one of"):
        read_task_file(TASKS["chabsa"], path)


def test_livedoor_archive_directory_and_json_lines_agree(tmp_path):
    articles = livedoor_articles()
    from_tar = read_task_file(TASKS["livedoor"], write_livedoor_tar(tmp_path / "ldcc-20140209.tar.gz", articles))
    for category, name, text in articles:
        (tmp_path / "text" / category).mkdir(parents=True, exist_ok=True)
        (tmp_path / "text" / category / name).write_text(text, encoding="utf-8")
    (tmp_path / "text" / CATEGORIES[0] / "LICENSE.txt").write_text("license\n", encoding="utf-8")
    from_dir = read_task_file(TASKS["livedoor"], tmp_path / "text")
    lines = [{"category": c, "file": n, "title": t.splitlines()[2], "body": "\n".join(t.splitlines()[3:])}
             for c, n, t in articles]
    from_lines = read_task_file(TASKS["livedoor"], write_jsonl(tmp_path / "livedoor.jsonl", lines))
    key = sorted
    assert key(from_tar, key=lambda e: e.uid) == key(from_dir, key=lambda e: e.uid) == key(from_lines,
                                                                                          key=lambda e: e.uid)
    assert len(from_tar) == len(articles)
    category, name, text = articles[0]
    example = next(e for e in from_tar if e.uid == name)
    assert example.pairs == ((text.splitlines()[2], "\n".join(text.splitlines()[3:])),)
    assert TASKS["livedoor"].labels[example.label] == category


def test_split_by_document_is_disjoint_seeded_and_recorded(tmp_path):
    examples = read_task_file(TASKS["chabsa"], write_jsonl(tmp_path / "c.jsonl", chabsa_documents(30)))
    train, valid, record = split_by_document(examples, 0.3, seed=7)
    assert {e.group for e in train}.isdisjoint({e.group for e in valid})
    assert len(train) + len(valid) == len(examples)
    assert sorted(record["train_documents"] + record["valid_documents"]) == sorted({e.group for e in examples})
    again = split_by_document(list(reversed(examples)), 0.3, seed=7)[2]
    assert again["valid_documents"] == record["valid_documents"]  # file order does not matter
    other = split_by_document(examples, 0.3, seed=8)[2]
    assert other["valid_documents"] != record["valid_documents"]
    with pytest.raises(UserError, match="--valid_ratio"):
        split_by_document(examples, 1.5, seed=7)


def test_data_finds_jglue_layouts_and_several_paths(tmp_path):
    datasets = write_jglue(tmp_path / "JGLUE")
    for data in (tmp_path / "JGLUE", datasets, datasets / "jsts-v1.3"):
        loaded = load_task_data(TASKS["jsts"], [data])
        assert loaded.files["train"] == datasets / "jsts-v1.3" / "train-v1.3.json"
    write_chabsa_zip(tmp_path / "fin" / "chABSA-dataset.zip", chabsa_documents())
    both = [tmp_path / "fin", datasets]
    assert load_task_data(TASKS["chabsa"], both).files["collection"].name == "chABSA-dataset.zip"
    assert load_task_data(TASKS["jnli"], both).files["valid"].parent.name == "jnli-v1.3"
    with pytest.raises(UserError, match="no JNLI data found"):
        load_task_data(TASKS["jnli"], [tmp_path / "fin"])
    (datasets / "jsts-v1.3" / "valid-v1.3.json").unlink()
    with pytest.raises(UserError, match="has the train split of JSTS but no valid file"):
        load_task_data(TASKS["jsts"], [datasets])
    with pytest.raises(UserError, match="--train and --valid go together"):
        load_task_data(TASKS["jsts"], train=datasets / "jsts-v1.3" / "train-v1.3.json")


def test_train_valid_files_replace_the_seeded_split(tmp_path):
    documents = chabsa_documents(6)
    train = write_jsonl(tmp_path / "a.jsonl", documents[:4])
    valid = write_jsonl(tmp_path / "b.jsonl", documents[4:])
    loaded = load_task_data(TASKS["chabsa"], train=train, valid=valid)
    assert loaded.split is None
    assert {e.group for e in loaded.valid} == {"E00004", "E00005"}


def test_sample_limits_are_seeded_subsets(tmp_path):
    datasets = write_jglue(tmp_path, n_train=40, n_valid=20)
    a = load_task_data(TASKS["jsts"], [datasets], max_train_samples=10, max_eval_samples=5)
    b = load_task_data(TASKS["jsts"], [datasets], max_train_samples=10, max_eval_samples=5)
    assert [e.uid for e in a.train] == [e.uid for e in b.train] and len(a.train) == 10 and len(a.valid) == 5
    assert a.sampled == {"train": {"kept": 10, "of": 40, "seed": 0}, "valid": {"kept": 5, "of": 20, "seed": 0}}
    assert [int(e.uid) for e in a.train] == sorted(int(e.uid) for e in a.train)  # file order kept


def test_smoke_task_builds_from_the_bundled_sample():
    loaded = load_task_data(TASKS["smoke"])
    labels = [e.label for e in loaded.train + loaded.valid]
    assert len(loaded.valid) > 20 and 0.4 < sum(labels) / len(labels) < 0.6  # balanced next / random
    assert {e.group for e in loaded.train}.isdisjoint({e.group for e in loaded.valid})
