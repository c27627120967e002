"""`ja-pretrain download` against a local HTTP server on 127.0.0.1 (no network needed).

The server below implements just enough of HTTP for the cases a real download meets: Range
requests (206 and 416), a server that ignores Range, a connection cut in the middle of the
body, 404s, and directory listings like dumps.wikimedia.org's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ja_pretrain.cli import main
from ja_pretrain.download import download_cc100, download_jawiki, fetch
from ja_pretrain.download.http import part_path, record_path
from ja_pretrain.errors import UserError

FAST = {"backoff": 0.0, "progress": False}


def left_behind(directory):
    """Files a download left, less the empty lock files (kept by design: see utils.locks)."""
    return sorted(p.name for p in directory.iterdir() if not p.name.endswith(".lock"))


class FakePublisher:
    """Files by URL path, plus switches for misbehaviour; records every request it gets."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}  # path -> how many more responses to cut half way
        self.ignore_range: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []

    def add(self, path: str, data: bytes) -> str:
        self.files[path] = data
        return path

    def listing(self, directory: str) -> str | None:
        entries = set()
        for path in self.files:
            if path.startswith(directory) and path != directory:
                rest = path[len(directory):]
                entries.add(rest.split("/", 1)[0] + ("/" if "/" in rest else ""))
        if not entries:
            return None
        # Like Apache/nginx autoindex pages: one link per entry, names percent-encoded.
        links = "".join(f'<a href="{urllib.parse.quote(e)}">{e}</a>\n' for e in sorted(entries))
        return f'<html><body><a href="../">../</a>\n{links}</body></html>'


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None, cut: bool = False):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        # A cut connection: the announced length is not delivered, then the socket closes.
        self.wfile.write(body[: len(body) // 2] if cut else body)

    def do_GET(self):
        pub: FakePublisher = self.server.publisher
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        range_header = self.headers.get("Range")
        pub.requests.append((path, range_header))
        if path.endswith("/"):
            listing = pub.listing(path)
            return self._send(200, listing.encode()) if listing else self._send(404, b"not found")
        data = pub.files.get(path)
        if data is None:
            return self._send(404, b"not found")
        cut = pub.cut.get(path, 0) > 0
        if cut:
            pub.cut[path] -= 1
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        if_range = self.headers.get("If-Range")
        if range_header and path not in pub.ignore_range and if_range in (None, etag):
            start = int(re.fullmatch(r"bytes=(\d+)-", range_header).group(1))
            if start >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            content_range = f"bytes {start}-{len(data) - 1}/{len(data)}"
            return self._send(206, data[start:], {"Content-Range": content_range, "ETag": etag}, cut)
        return self._send(200, data, {"ETag": etag}, cut=cut)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.publisher = FakePublisher()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield base, httpd.publisher
    httpd.shutdown()
    httpd.server_close()


def payload(n: int = 300_000, seed: int = 0) -> bytes:
    # Pseudo-random bytes (not repetitive), so a resume at the wrong offset changes the hash.
    out, block = bytearray(), hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the fetcher -------------------------------------------------------------------------------

def test_plain_download_verified_and_recorded(server, tmp_path):
    base, pub = server
    data = payload()
    pub.add("/data/a.bin", data)
    out = fetch(f"{base}/data/a.bin", tmp_path / "a.bin", sha256=sha256(data), md5=hashlib.md5(data).hexdigest(), **FAST)
    assert out.read_bytes() == data
    assert not part_path(out).exists()
    record = json.loads(record_path(out).read_text())
    assert record["bytes"] == len(data) and record["sha256"] == sha256(data)
    assert record["verified"] == ["md5", "sha256"]


def test_resume_after_cut_connection(server, tmp_path):
    base, pub = server
    data = payload()
    pub.add("/a.bin", data)
    pub.cut["/a.bin"] = 1
    out = fetch(f"{base}/a.bin", tmp_path / "a.bin", sha256=sha256(data), chunk_size=4096, **FAST)
    assert out.read_bytes() == data
    (_, first_range), (_, second_range) = pub.requests
    assert first_range is None
    # The retry resumed where the cut left off instead of starting again.
    assert second_range == f"bytes={len(data) // 2}-"


def test_resume_part_left_by_an_interrupted_run(server, tmp_path):
    base, pub = server
    data = payload()
    pub.add("/a.bin", data)
    target = tmp_path / "a.bin"
    part_path(target).write_bytes(data[:123_457])  # as Ctrl-C would leave it
    fetch(f"{base}/a.bin", target, sha256=sha256(data), **FAST)
    assert target.read_bytes() == data
    assert pub.requests == [("/a.bin", "bytes=123457-")]


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    base, pub = server
    data = payload()
    pub.add("/a.bin", data)
    pub.ignore_range.add("/a.bin")
    target = tmp_path / "a.bin"
    part_path(target).write_bytes(b"x" * 1000)  # would corrupt the file if the 200 body were appended
    fetch(f"{base}/a.bin", target, sha256=sha256(data), **FAST)
    assert target.read_bytes() == data
    assert pub.requests == [("/a.bin", "bytes=1000-")]


def test_file_changed_on_the_server_is_not_spliced(server, tmp_path):
    base, pub = server
    old, new = payload(seed=1), payload(seed=2)
    pub.add("/ja.txt.xz", old)
    pub.cut["/ja.txt.xz"] = 1
    target = tmp_path / "ja.txt.xz"
    with pytest.raises(UserError):
        fetch(f"{base}/ja.txt.xz", target, retries=0, **FAST)  # no checksum, like CC-100
    assert part_path(target).stat().st_size == len(old) // 2
    pub.files["/ja.txt.xz"] = new  # the publisher replaced the file before the rerun
    fetch(f"{base}/ja.txt.xz", target, **FAST)
    assert target.read_bytes() == new
    assert pub.requests[-1] == ("/ja.txt.xz", f"bytes={len(old) // 2}-")
    assert left_behind(tmp_path) == [".ja.txt.xz.download.json", "ja.txt.xz"]


def test_416_with_a_complete_part_finishes_without_refetching(server, tmp_path):
    base, pub = server
    data = payload(50_000)
    pub.add("/a.bin", data)
    target = tmp_path / "a.bin"
    part_path(target).write_bytes(data)
    fetch(f"{base}/a.bin", target, sha256=sha256(data), **FAST)
    assert target.read_bytes() == data
    assert len(pub.requests) == 1


def test_416_with_an_oversized_part_restarts(server, tmp_path):
    base, pub = server
    data = payload(50_000)
    pub.add("/a.bin", data)
    target = tmp_path / "a.bin"
    part_path(target).write_bytes(payload(60_000, seed=1))
    fetch(f"{base}/a.bin", target, sha256=sha256(data), **FAST)
    assert target.read_bytes() == data
    assert [r for _, r in pub.requests] == ["bytes=60000-", None]


def test_checksum_mismatch_deletes_the_download(server, tmp_path):
    base, pub = server
    pub.add("/a.bin", payload())
    target = tmp_path / "a.bin"
    with pytest.raises(UserError, match="checksum mismatch"):
        fetch(f"{base}/a.bin", target, sha256="0" * 64, **FAST)
    assert not target.exists() and not part_path(target).exists()


def test_checksum_mismatch_exits_2_via_cli(server, tmp_path, capsys):
    base, pub = server
    pub.add("/a.bin", payload())
    code = main(["download", "--url", f"{base}/a.bin", "--md5", "f" * 32, "--out", str(tmp_path), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and f"{base}/a.bin" in err
    assert left_behind(tmp_path) == []


def test_404_reported_with_the_url(server, tmp_path, capsys):
    base, _ = server
    code = main(["download", "--url", f"{base}/missing/file.txt.xz", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "404" in err and f"{base}/missing/file.txt.xz" in err
    assert left_behind(tmp_path) == []


def test_gives_up_after_retries_and_keeps_the_part(server, tmp_path):
    base, pub = server
    data = payload()
    pub.add("/a.bin", data)
    pub.cut["/a.bin"] = 100
    target = tmp_path / "a.bin"
    with pytest.raises(UserError, match="rerun the same command to resume"):
        fetch(f"{base}/a.bin", target, retries=2, **FAST)
    assert len(pub.requests) == 3
    assert not target.exists()
    # Each attempt delivered half of what was still missing, and all of it was kept.
    assert part_path(target).read_bytes() == data[: len(data) - len(data) // 8]


def test_already_complete_file_is_not_downloaded_again(server, tmp_path, caplog):
    base, pub = server
    data = payload()
    pub.add("/a.bin", data)
    target = fetch(f"{base}/a.bin", tmp_path / "a.bin", sha256=sha256(data), **FAST)
    pub.requests.clear()
    with caplog.at_level(logging.INFO, logger="ja_pretrain.download"):
        again = fetch(f"{base}/a.bin", tmp_path / "a.bin", sha256=sha256(data), **FAST)
    assert again == target and pub.requests == []
    assert "not downloading again" in caplog.text


def test_existing_file_without_record_is_verified_by_hash(server, tmp_path):
    base, pub = server
    data = payload()
    pub.add("/a.bin", data)
    target = tmp_path / "a.bin"
    target.write_bytes(data)
    fetch(f"{base}/a.bin", target, sha256=sha256(data), **FAST)
    assert pub.requests == []
    assert json.loads(record_path(target).read_text())["sha256"] == sha256(data)
    target.write_bytes(data[:-1] + b"!")
    record_path(target).unlink()
    with pytest.raises(UserError, match="already exists but does not match"):
        fetch(f"{base}/a.bin", target, sha256=sha256(data), **FAST)
    assert target.read_bytes().endswith(b"!")  # the user's file is left alone


def test_file_changed_after_download_is_reported(server, tmp_path):
    base, pub = server
    pub.add("/a.bin", payload())
    target = fetch(f"{base}/a.bin", tmp_path / "a.bin", **FAST)
    with open(target, "ab") as f:
        f.write(b"appended by hand")
    with pytest.raises(UserError, match="has changed since it was downloaded"):
        fetch(f"{base}/a.bin", target, **FAST)


@pytest.mark.skipif(os.name == "nt", reason="advisory locks need fcntl")
def test_a_second_run_on_the_same_file_is_refused(server, tmp_path):
    import fcntl

    base, pub = server
    pub.add("/a.bin", payload())
    target = tmp_path / "a.bin"
    with open(tmp_path / ".a.bin.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running download would
        with pytest.raises(UserError, match=r"a\.bin \(a download\): another process is writing it now"):
            fetch(f"{base}/a.bin", target, **FAST)
    assert pub.requests == [] and not part_path(target).exists()
    fetch(f"{base}/a.bin", target, **FAST)  # the lock is gone with its holder
    assert target.read_bytes() == payload()


def test_malformed_digest_option_is_rejected(tmp_path, capsys):
    code = main(["download", "--url", "http://127.0.0.1:9/x", "--sha256", "abc", "--out", str(tmp_path)])
    assert code == 2
    assert "--sha256" in capsys.readouterr().err


# --- publisher rules ---------------------------------------------------------------------------

def _xml_dump(pub: FakePublisher, date: str, data: bytes, algorithms=("sha1", "md5")) -> None:
    name = f"jawiki-{date}-pages-articles.xml.bz2"
    pub.add(f"/jawiki/{date}/{name}", data)
    for algorithm in algorithms:
        lines = [
            f"{hashlib.new(algorithm, b'other').hexdigest()}  jawiki-{date}-pages-articles-multistream.xml.bz2",
            f"{hashlib.new(algorithm, data).hexdigest()}  {name}",
        ]
        pub.add(f"/jawiki/{date}/jawiki-{date}-{algorithm}sums.txt", ("\n".join(lines) + "\n").encode())


def test_jawiki_xml_through_base_url_verifies_published_sha1(server, tmp_path, capsys):
    base, pub = server
    data = payload()
    _xml_dump(pub, "20240701", data)
    code = main(["download", "jawiki", "--date", "20240701", "--dump", "xml",
                 "--base-url", base + "/", "--out", str(tmp_path)])
    assert code == 0
    target = tmp_path / "jawiki-20240701-pages-articles.xml.bz2"
    assert target.read_bytes() == data
    record = json.loads(record_path(target).read_text())
    assert record["verified"] == ["sha1"]
    assert record["url"] == f"{base}/jawiki/20240701/jawiki-20240701-pages-articles.xml.bz2"
    assert "1 file(s)" in capsys.readouterr().err


def test_jawiki_xml_falls_back_to_md5sums(server, tmp_path):
    base, pub = server
    data = payload()
    _xml_dump(pub, "20240701", data, algorithms=("md5",))
    [target] = download_jawiki("20240701", tmp_path, dump="xml", base_url=base, **FAST)
    assert json.loads(record_path(target).read_text())["verified"] == ["md5"]


def test_jawiki_xml_with_tampered_file_is_rejected(server, tmp_path, capsys):
    base, pub = server
    _xml_dump(pub, "20240701", payload())
    pub.files["/jawiki/20240701/jawiki-20240701-pages-articles.xml.bz2"] = payload(seed=7)
    code = main(["download", "jawiki", "--date", "20240701", "--dump", "xml", "--base-url", base,
                 "--out", str(tmp_path), "--no-progress"])
    assert code == 2
    assert "sha1 expected" in capsys.readouterr().err
    assert left_behind(tmp_path) == []


def test_jawiki_xml_latest_resolves_to_a_dated_file(server, tmp_path):
    base, pub = server
    data = payload()
    _xml_dump(pub, "20261101", data)
    pub.add("/jawiki/latest/jawiki-latest-sha1sums.txt", pub.files["/jawiki/20261101/jawiki-20261101-sha1sums.txt"])
    [target] = download_jawiki("latest", tmp_path, dump="xml", base_url=base, **FAST)
    assert target.name == "jawiki-20261101-pages-articles.xml.bz2" and target.read_bytes() == data


def test_jawiki_xml_unknown_date_names_the_checksum_urls(server, tmp_path):
    base, _ = server
    with pytest.raises(UserError, match=re.escape(f"{base}/jawiki/20200101/jawiki-20200101-sha1sums.txt")):
        download_jawiki("20200101", tmp_path, dump="xml", base_url=base, **FAST)


def _cirrus_run(pub: FakePublisher, date: str, shards: list[bytes], finished: bool = True) -> None:
    directory = f"/other/cirrus_search_index/{date}/index_name=jawiki_content/"
    for i, data in enumerate(shards):
        pub.add(f"{directory}jawiki_content-{date}-{i:05d}.json.bz2", data)
    if finished:
        pub.add(directory + "_SUCCESS", b"")


def test_jawiki_cirrus_latest_takes_newest_finished_run(server, tmp_path):
    base, pub = server
    _cirrus_run(pub, "20261018", [payload(1000, seed=1)])
    _cirrus_run(pub, "20261025", [payload(2000, seed=2), payload(3000, seed=3)])
    _cirrus_run(pub, "20261101", [payload(4000, seed=4)], finished=False)  # still being written
    paths = download_jawiki("latest", tmp_path, base_url=base, **FAST)
    assert [p.name for p in paths] == ["jawiki_content-20261025-00000.json.bz2", "jawiki_content-20261025-00001.json.bz2"]
    assert [p.read_bytes() for p in paths] == [payload(2000, seed=2), payload(3000, seed=3)]


def test_jawiki_cirrus_shards_option_takes_the_first_n(server, tmp_path, capsys):
    base, pub = server
    _cirrus_run(pub, "20261025", [payload(2000, seed=2), payload(3000, seed=3), payload(1000, seed=4)])
    code = main(["download", "jawiki", "--date", "20261025", "--shards", "2", "--base-url", base,
                 "--out", str(tmp_path), "--no-progress"])
    assert code == 0
    assert sorted(p.name for p in tmp_path.glob("*.bz2")) == [
        "jawiki_content-20261025-00000.json.bz2", "jawiki_content-20261025-00001.json.bz2"]
    assert "2 file(s)" in capsys.readouterr().err


def test_jawiki_cirrus_unfinished_date_is_refused(server, tmp_path):
    base, pub = server
    _cirrus_run(pub, "20261101", [payload(4000)], finished=False)
    with pytest.raises(UserError, match="_SUCCESS"):
        download_jawiki("20261101", tmp_path, base_url=base, **FAST)
    assert left_behind(tmp_path) == []


def test_jawiki_cirrus_old_date_uses_the_legacy_single_file(server, tmp_path):
    base, pub = server
    data = payload()
    pub.add("/other/cirrussearch/20240701/jawiki-20240701-cirrussearch-content.json.gz", data)
    [target] = download_jawiki("20240701", tmp_path, base_url=base, **FAST)
    assert target.name == "jawiki-20240701-cirrussearch-content.json.gz" and target.read_bytes() == data


def test_jawiki_cirrus_missing_everywhere_names_both_urls(server, tmp_path, capsys):
    base, _ = server
    code = main(["download", "jawiki", "--date", "20230101", "--base-url", base, "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "cirrus_search_index/20230101/index_name=jawiki_content/" in err
    assert "cirrussearch/20230101/jawiki-20230101-cirrussearch-content.json.gz" in err


def test_cc100_through_base_url(server, tmp_path):
    base, pub = server
    data = payload()
    pub.add("/mirror/cc-100/ja.txt.xz", data)
    target = download_cc100(tmp_path, base_url=f"{base}/mirror/cc-100", **FAST)
    assert target == tmp_path / "ja.txt.xz" and target.read_bytes() == data
    assert json.loads(record_path(target).read_text())["verified"] == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["jawiki"], "--date"),
        (["cc100-ja", "--sha256", "0" * 64], "--sha256 applies to --url only"),
        (["--url", "http://127.0.0.1:9/a", "--base-url", "http://x"], "--base-url applies"),
        (["jawiki", "--date", "20241301"], "YYYYMMDD"),
        (["jawiki", "--date", "20240701", "--dump", "xml", "--shards", "1"], "--dump cirrus only"),
        ([], "say what to download"),
        (["--url", "example.org/ja.txt.xz"], "is not an http:// or https:// URL"),
    ],
)
def test_option_errors(argv, message, tmp_path, capsys):
    assert main(["download", *argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_refused_connection_says_nothing_was_kept(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on: bound, never accepting, then closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError) as caught:
        fetch(f"http://127.0.0.1:{port}/a.bin", tmp_path / "a.bin", retries=1, **FAST)
    message = str(caught.value)
    assert "gave up after 2 attempts" in message and "nothing was written" in message and ".part" not in message
    assert left_behind(tmp_path) == []
