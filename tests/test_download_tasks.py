"""`ja-pretrain download jglue / chabsa / livedoor` without the network.

Files are served by a small HTTP server on 127.0.0.1 (as in test_download.py, whose tests cover
resuming and retrying; here only the publisher rules are under test), reached through
--base-url. The publishers' own URLs are checked by recording what `fetch` is asked for.
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ja_pretrain.cli import main
from ja_pretrain.download import download_chabsa, download_jglue, download_livedoor, tasks
from ja_pretrain.download.http import part_path, record_path
from ja_pretrain.errors import UserError

FAST = {"backoff": 0.0, "progress": False}
COMMIT = "6f071c09316baae89c3d083a90985b4b1cb9968c"
ALL_JGLUE = [
    f"{task}-v1.3/{split}-v1.3.json"
    for task in ("jsts", "jnli", "jcommonsenseqa", "jsquad") for split in ("train", "valid")
]


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        self.server.requests.append(path)
        data = self.server.files.get(path)
        self.send_response(200 if data is not None else 404)
        body = data if data is not None else b"not found"
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    """(base URL, {path: bytes} to serve, [paths requested])."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.requests = {}, []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.files, httpd.requests
    httpd.shutdown()
    httpd.server_close()


def content(name: str) -> bytes:
    # Different bytes per file, so a file saved under another's name is caught.
    return ("\n".join(json.dumps({"file": name, "i": i}) for i in range(200)) + "\n").encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def serve_jglue(files: dict, prefix: str) -> None:
    for relative in ALL_JGLUE:
        files[f"{prefix}/datasets/{relative}"] = content(relative)


@pytest.fixture
def fake_digests(monkeypatch):
    """The pinned digests, re-pointed at the served stand-ins of the same four files."""
    pinned = {relative: sha256(content(relative)) for relative in tasks.JGLUE_SHA256}
    monkeypatch.setattr(tasks, "JGLUE_SHA256", pinned)
    return pinned


def relative_files(root) -> list[str]:
    """The files under `root`, less the hidden download records beside them."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


# --- JGLUE -------------------------------------------------------------------------------------

def test_jglue_all_tasks_layout_urls_and_verification(server, tmp_path, fake_digests, capsys):
    base, files, requests = server
    serve_jglue(files, "/mirror/JGLUE")
    code = main(["download", "jglue", "--base-url", f"{base}/mirror/JGLUE/", "--out", str(tmp_path), "--no-progress"])
    assert code == 0
    assert relative_files(tmp_path) == sorted(ALL_JGLUE)
    assert requests == [f"/mirror/JGLUE/datasets/{relative}" for relative in ALL_JGLUE]
    for relative in ALL_JGLUE:
        target = tmp_path / relative
        assert target.read_bytes() == content(relative)
        record = json.loads(record_path(target).read_text())
        assert record["url"] == f"{base}/mirror/JGLUE/datasets/{relative}"
        assert record["sha256"] == sha256(content(relative))
        # Verified where a digest is pinned, only recorded elsewhere.
        assert record["verified"] == (["sha256"] if relative in fake_digests else [])
    err = capsys.readouterr().err
    assert "8 file(s)" in err and "jsts-v1.3/train-v1.3.json" in err


def test_jglue_tasks_subset_in_order_each_once(server, tmp_path, fake_digests):
    base, files, requests = server
    serve_jglue(files, "")
    paths = download_jglue(tmp_path, tasks=["jnli", "JSTS", "jnli"], base_url=base, **FAST)
    expected = ["jnli-v1.3/train-v1.3.json", "jnli-v1.3/valid-v1.3.json",
                "jsts-v1.3/train-v1.3.json", "jsts-v1.3/valid-v1.3.json"]
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == expected
    assert requests == [f"/datasets/{relative}" for relative in expected]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jnli-v1.3", "jsts-v1.3"]


def test_jglue_tasks_option_via_cli(server, tmp_path, fake_digests):
    base, files, _ = server
    serve_jglue(files, "")
    code = main(["download", "jglue", "--tasks", "jcommonsenseqa", "--base-url", base,
                 "--out", str(tmp_path), "--no-progress"])
    assert code == 0
    assert relative_files(tmp_path) == [
        "jcommonsenseqa-v1.3/train-v1.3.json", "jcommonsenseqa-v1.3/valid-v1.3.json"]


def test_jglue_wrong_bytes_for_a_pinned_digest_are_refused(server, tmp_path, capsys):
    base, files, _ = server
    serve_jglue(files, "")  # stand-ins: they cannot match the real JSTS digests
    code = main(["download", "jglue", "--tasks", "jsts", "--base-url", base, "--out", str(tmp_path), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and f"{base}/datasets/jsts-v1.3/train-v1.3.json" in err
    assert tasks.JGLUE_SHA256["jsts-v1.3/train-v1.3.json"] in err
    target = tmp_path / "jsts-v1.3" / "train-v1.3.json"
    assert not target.exists() and not part_path(target).exists()
    assert [p for p in (tmp_path / "jsts-v1.3").iterdir() if p.suffix != ".lock"] == []


def test_jglue_publisher_urls_pin_the_release_commit(monkeypatch, tmp_path):
    asked = []
    monkeypatch.setattr(tasks, "fetch", lambda url, out, sha256=None, **kw: asked.append((url, out, sha256)) or out)
    paths = download_jglue(tmp_path)
    root = f"https://raw.githubusercontent.com/yahoojapan/JGLUE/{COMMIT}/datasets"
    assert [url for url, _, _ in asked] == [f"{root}/{relative}" for relative in ALL_JGLUE]
    assert paths == [tmp_path / relative for relative in ALL_JGLUE]
    digests = {out.relative_to(tmp_path).as_posix(): digest for _, out, digest in asked}
    assert digests["jsts-v1.3/train-v1.3.json"] == "db6bd653270ac9786759920413a48973164d322998f34dd4ae32202af5e66969"
    assert digests["jsquad-v1.3/valid-v1.3.json"] == "fb0a57a35281ff03bbe7f0e878cff5b577985fbe6fcb242e7e8ddb63d1c0ab11"
    assert digests["jsquad-v1.3/train-v1.3.json"] is None and digests["jnli-v1.3/train-v1.3.json"] is None


def test_jglue_bad_task_fetches_nothing(monkeypatch, tmp_path):
    monkeypatch.setattr(tasks, "fetch", lambda *a, **kw: pytest.fail("fetched before the task names were checked"))
    with pytest.raises(UserError, match="not a JGLUE task"):
        download_jglue(tmp_path, tasks=["jsts", "jsquad2"])


# --- chABSA and livedoor -----------------------------------------------------------------------

@pytest.mark.parametrize(
    "download, name, publisher_url",
    [
        (download_chabsa, "chABSA-dataset.zip",
         "https://s3-ap-northeast-1.amazonaws.com/dev.tech-sketch.jp/chakki/public/chABSA-dataset.zip"),
        (download_livedoor, "ldcc-20140209.tar.gz", "https://www.rondhuit.com/download/ldcc-20140209.tar.gz"),
    ],
)
def test_single_file_publisher_urls(download, name, publisher_url, monkeypatch, tmp_path):
    asked = []
    monkeypatch.setattr(tasks, "fetch", lambda url, out, **kw: asked.append((url, out, kw)) or out)
    assert download(tmp_path) == tmp_path / name
    [(url, out, kw)] = asked
    assert url == publisher_url and out == tmp_path / name
    assert not any(kw.get(a) for a in ("sha256", "sha1", "md5"))  # none published


@pytest.mark.parametrize("source, name", [("chabsa", "chABSA-dataset.zip"), ("livedoor", "ldcc-20140209.tar.gz")])
def test_single_file_through_base_url_kept_as_published(source, name, server, tmp_path, capsys):
    base, files, requests = server
    files[f"/mirror/{source}/{name}"] = content(name)
    code = main(["download", source, "--base-url", f"{base}/mirror/{source}", "--out", str(tmp_path), "--no-progress"])
    assert code == 0
    assert requests == [f"/mirror/{source}/{name}"]
    target = tmp_path / name
    assert target.read_bytes() == content(name)  # not extracted
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".lock") == sorted([name, record_path(target).name])
    record = json.loads(record_path(target).read_text())
    assert record["url"] == f"{base}/mirror/{source}/{name}" and record["verified"] == []
    assert record["sha256"] == sha256(content(name))
    assert "1 file(s)" in capsys.readouterr().err


def test_ner_wikipedia_is_pinned_and_verified(server, monkeypatch, tmp_path, capsys):
    asked = []
    monkeypatch.setattr(tasks, "fetch", lambda url, out, **kw: asked.append((url, out, kw)) or out)
    assert tasks.download_ner_wikipedia(tmp_path) == tmp_path / "ner.json"
    [(url, _, kw)] = asked
    assert url == f"https://raw.githubusercontent.com/stockmarkteam/ner-wikipedia-dataset/{tasks.NER_COMMIT}/ner.json"
    assert kw["sha256"] == tasks.NER_SHA256
    monkeypatch.undo()
    base, files, _ = server
    files["/mirror/ner.json"] = b"[]"  # not the published bytes
    assert main(["download", "ner-wikipedia", "--base-url", f"{base}/mirror", "--out", str(tmp_path),
                 "--no-progress"]) == 2
    assert not (tmp_path / "ner.json").exists() and "sha256" in capsys.readouterr().err.lower()


# --- options -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "argv, message",
    [
        (["jawiki", "--date", "20240701", "--tasks", "jsts"], "--tasks applies to jglue only"),
        (["cc100-ja", "--tasks", "jsts"], "--tasks applies to jglue only"),
        (["--url", "http://127.0.0.1:9/a", "--tasks", "jsts"], "--tasks applies to jglue only"),
        (["jglue", "--tasks", "marc_ja"], "no longer distributes"),
        (["jglue", "--tasks", "jsts", "MARC-ja"], "finetune --data"),
        (["jglue", "--tasks", "jsquad2"], "--tasks 'jsquad2': not a JGLUE task; choose from jsts, jnli"),
        (["jglue", "--date", "20240701"], "--date applies to jawiki only"),
        (["chabsa", "--dump", "xml"], "--dump applies to jawiki only"),
        (["livedoor", "--shards", "1"], "--shards applies to jawiki only"),
        (["chabsa", "--sha256", "0" * 64], "--sha256 applies to --url only"),
    ],
)
def test_option_errors(argv, message, tmp_path, capsys):
    assert main(["download", *argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_help_names_the_new_sources_and_marc(capsys):
    with pytest.raises(SystemExit):
        main(["download", "--help"])
    out = capsys.readouterr().out
    assert all(word in out for word in ("jglue", "chabsa", "livedoor", "--tasks", "MARC-ja"))


@pytest.mark.parametrize("name", ["../../x.txt", "/tmp/x.txt", "sub/x.txt", "..", "a\\b.txt"])
def test_name_is_a_plain_file_name(name, tmp_path, capsys):
    code = main(["download", "--url", "http://127.0.0.1:9/x.txt", "--name", name, "--out", str(tmp_path / "out")])
    assert code == 2 and "give a plain file name" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
