"""Corpus builds end to end: determinism across workers and machines, split, shards, resume."""

import json
import multiprocessing
import signal

import pytest

from ja_pretrain.cli import main
from ja_pretrain.corpus import output
from ja_pretrain.corpus.build import build_corpus
from ja_pretrain.corpus.layout import corpus_files, iter_documents
from ja_pretrain.corpus.parts import merge_parts
from ja_pretrain.corpus.process import CleanOptions, init_worker

SUBJECTS = ["山田さん", "東京の会社", "この研究", "新しい駅", "地元の学校", "古い寺院", "その選手", "市の図書館", "県の博物館"]
PLACES = ["大阪", "札幌", "福岡", "名古屋", "仙台", "京都", "神戸"]
ACTIONS = ["新しい計画を発表した", "多くの人に知られるようになった", "大きな役割を果たした", "記念行事を開いた", "改装を終えた"]


def write_input(path, n_docs: int, per_doc: int = 4) -> list[list[str]]:
    """A plain-text input of n_docs paragraphs; some sentences repeat across documents."""
    docs = [
        [
            f"{SUBJECTS[(d * 7 + s) % 9]}は{1900 + d % 40}年に{PLACES[(d + s) % 7]}で{ACTIONS[(d * 3 + s) % 5]}。"
            for s in range(per_doc)
        ]
        for d in range(n_docs)
    ]
    for d in range(9, n_docs, 10):  # a sentence repeated from the previous document
        docs[d][1] = docs[d - 1][0]
    path.write_text("\n\n".join("".join(d) + "「短い。」" for d in docs) + "\n", encoding="utf-8")
    return docs


def tree(directory) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.name != "manifest.json"}


@pytest.fixture(scope="module")
def corpus_input(tmp_path_factory):
    path = tmp_path_factory.mktemp("input") / "input.txt"
    write_input(path, 600)
    return path


def test_workers_give_identical_output(tmp_path, corpus_input, monkeypatch):
    monkeypatch.setattr("ja_pretrain.corpus.build.BATCH_DOCUMENTS", 16)  # many batches in flight, out of step
    options = dict(valid_ratio=0.1, seed=3, shard_size_mb=0.01, progress=False)
    one = build_corpus([corpus_input], tmp_path / "w1", workers=1, **options)
    two = build_corpus([corpus_input], tmp_path / "w2", workers=2, **options)
    assert tree(tmp_path / "w1") == tree(tmp_path / "w2")
    assert one["counts"] == two["counts"] and one["fingerprint"] == two["fingerprint"]
    assert one["counts"]["dropped"]["duplicate"] > 0  # the input repeats sentences
    assert one["counts"]["train_shards"] > 1  # small shards: several files


def _terminate_handler(signum, frame):  # stands for the command's handler (console.run_guarded)
    raise KeyboardInterrupt


def test_workers_die_on_sigterm_whatever_the_parent_handles():
    previous = signal.signal(signal.SIGTERM, _terminate_handler)
    try:
        with multiprocessing.get_context("fork").Pool(1, initializer=init_worker, initargs=(CleanOptions(),)) as pool:
            assert pool.apply(signal.getsignal, (signal.SIGTERM,)) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("split", [{"valid_ratio": 0.1}, {"valid_sentences": 100}], ids=["ratio", "sentences"])
def test_parts_merge_equals_single_run(tmp_path, corpus_input, split):
    options = dict(seed=3, shard_size_mb=0.01, progress=False, **split)
    build_corpus([corpus_input], tmp_path / "single", **options)
    for i in range(3):
        part = build_corpus([corpus_input], tmp_path / f"part{i}", shard_index=i, num_shards=3, **options)
        assert part["stage"] == "corpus-part"
    # parts given in any order
    merged = merge_parts([tmp_path / "part2", tmp_path / "part0", tmp_path / "part1"], tmp_path / "merged")
    assert tree(tmp_path / "merged") == tree(tmp_path / "single")
    single = json.loads((tmp_path / "single" / "manifest.json").read_text())
    assert merged["fingerprint"] == single["fingerprint"]
    assert merged["counts"]["dropped"] == single["counts"]["dropped"]


def test_merge_rejects_incomplete_or_mixed_parts(tmp_path, corpus_input, capsys):
    for i in range(2):
        build_corpus([corpus_input], tmp_path / f"p{i}", shard_index=i, num_shards=2, progress=False)
    build_corpus([corpus_input], tmp_path / "other", shard_index=1, num_shards=2, seed=9, progress=False)
    code = main(["corpus", "--merge", str(tmp_path / "p0"), "--out", str(tmp_path / "m")])
    assert code == 2 and "missing [1]" in capsys.readouterr().err
    code = main(["corpus", "--merge", str(tmp_path / "p0"), str(tmp_path / "other"), "--out", str(tmp_path / "m")])
    assert code == 2 and "other inputs or options" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_split_is_by_document_and_seeded(tmp_path, corpus_input):
    a = build_corpus([corpus_input], tmp_path / "a", valid_ratio=0.2, seed=1, progress=False)
    b = build_corpus([corpus_input], tmp_path / "b", valid_ratio=0.2, seed=2, progress=False)
    valid_a = list(iter_documents(corpus_files(tmp_path / "a", "valid")))
    train_a = list(iter_documents(tmp_path / "a"))
    assert 0.1 < a["counts"]["valid_documents"] / (a["counts"]["valid_documents"] + a["counts"]["train_documents"]) < 0.3
    assert not {tuple(d) for d in valid_a} & {tuple(d) for d in train_a}
    assert (tmp_path / "a" / "valid.txt").read_bytes() != (tmp_path / "b" / "valid.txt").read_bytes()
    assert b["counts"]["valid_documents"] > 0


def test_valid_sentences_draws_evenly_over_the_corpus(tmp_path):
    path = tmp_path / "in.txt"
    docs = write_input(path, 600)
    manifest = build_corpus([path], tmp_path / "out", valid_sentences=300, seed=4, progress=False)
    c = manifest["counts"]
    assert 200 <= c["valid_sentences"] <= 400  # about N: a binomial draw at N / total
    assert abs(c["valid_ratio_used"] - 300 / (c["train_sentences"] + c["valid_sentences"])) < 1e-9
    first_sentences = {d[0]: i for i, d in enumerate(docs)}
    positions = sorted(first_sentences[d[0]] for d in iter_documents(corpus_files(tmp_path / "out", "valid")))
    assert positions[0] < 150 and positions[-1] > 450  # from the whole input, not only its start
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.json", "train-00000.txt", "valid.txt"]
    # --valid-ratio bounds the draw
    bounded = build_corpus([path], tmp_path / "bounded", valid_sentences=300, valid_ratio=0.02, seed=4, progress=False)
    assert bounded["counts"]["valid_ratio_used"] == 0.02


def test_small_input_still_gets_a_valid_document(tmp_path):
    path = tmp_path / "in.txt"
    write_input(path, 3)
    manifest = build_corpus([path], tmp_path / "out", valid_ratio=0.001, progress=False)
    assert manifest["counts"]["valid_documents"] == 1 and manifest["counts"]["train_documents"] == 2


def test_interrupted_run_leaves_nothing_finished_and_rerun_completes(tmp_path, corpus_input, monkeypatch, capsys):
    out = tmp_path / "out"
    calls = {"n": 0}
    real_write = output.CorpusWriter._write

    def interrupted_write(self, split, sentences):
        calls["n"] += 1
        if calls["n"] == 50:
            raise KeyboardInterrupt
        return real_write(self, split, sentences)

    monkeypatch.setattr(output.CorpusWriter, "_write", interrupted_write)
    code = main(["corpus", str(corpus_input), "--out", str(out), "--no-progress"])
    assert code == 130 and "rerun" in capsys.readouterr().err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == [".out.lock"]  # the lock stays, empty of meaning
    monkeypatch.undo()
    # a crash (killed process) leaves a dot-named temporary directory; the rerun clears it
    (tmp_path / ".out.tmp-99999").mkdir()
    (tmp_path / ".out.tmp-99999" / "train-00000.txt").write_text("half")
    assert main(["corpus", str(corpus_input), "--out", str(out), "--no-progress"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out"]
    assert (out / "manifest.json").is_file()


def test_cli_end_to_end_skip_and_rebuild(tmp_path, corpus_input, capsys):
    out = tmp_path / "out"
    argv = ["corpus", str(corpus_input), "--out", str(out), "--valid_ratio", "0.1", "--min-chars", "12", "--no-progress"]
    assert main(argv) == 0
    summary = capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert f"{manifest['counts']['train_sentences']:,} sentences" in summary
    assert manifest["options"]["min_chars"] == 12 and manifest["counts"]["dropped"]["too_short"] == 600
    assert manifest["inputs"]["files"][0]["sha256"] and manifest["timings"]["seconds"] >= 0
    for line in (out / "train-00000.txt").read_text().split("\n"):
        assert line == "" or 12 <= len(line) <= 1000
    mtime = (out / "manifest.json").stat().st_mtime_ns
    assert main(argv) == 0  # same inputs and options: up to date, nothing rewritten
    assert (out / "manifest.json").stat().st_mtime_ns == mtime
    assert main([*argv, "--seed", "5"]) == 0  # other options: the previous output is replaced
    assert json.loads((out / "manifest.json").read_text())["options"]["seed"] == 5


def test_bad_options_exit_2(tmp_path, corpus_input, capsys):
    out = str(tmp_path / "out")
    assert main(["corpus", str(corpus_input), "--out", out, "--valid-ratio", "1.5"]) == 2
    assert "--valid-ratio" in capsys.readouterr().err
    assert main(["corpus", str(corpus_input), "--out", out, "--shard-index", "3", "--num-shards", "2"]) == 2
    assert "--shard-index 3 --num-shards 2" in capsys.readouterr().err
    assert main(["corpus", "--out", out]) == 2
    assert "no INPUT" in capsys.readouterr().err
