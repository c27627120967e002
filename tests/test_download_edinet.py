"""`download edinet` against a local server shaped like EDINET's API v2: the key is sent and never
shown, the wanted documents are fetched, a rerun fetches nothing again, and the result is a
corpus input."""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ja_pretrain.cli import main
from ja_pretrain.resources import sample_corpus_path

from test_corpus_sources import edinet_zip

KEY = "s3cr3t-edinet-key-0123456789"
SAMPLE = [d for d in sample_corpus_path().read_text(encoding="utf-8").split("\n\n") if d.strip()]


def _listing(day: str) -> dict:
    def doc(doc_id, type_code, flag="1", withdrawn="0"):
        return {"seqNumber": 1, "docID": doc_id, "edinetCode": "E99999", "filerName": f"見本{doc_id}株式会社",
                "docTypeCode": type_code, "docDescription": "有価証券報告書－第10期", "xbrlFlag": flag, "pdfFlag": "1",
                "withdrawalStatus": withdrawn, "submitDateTime": f"{day} 15:00"}
    results = {"2024-06-27": [doc("S100AAA1", "120"), doc("S100AAA2", "350"), doc("S100AAA3", "120", withdrawn="1")],
               "2024-06-28": [doc("S100BBB1", "120"), doc("S100BBB2", "130")]}.get(day, [])
    return {"metadata": {"title": "提出された書類を把握するためのAPI", "parameter": {"date": day, "type": "2"},
                         "resultset": {"count": len(results)}, "status": "200", "message": "OK"},
            "results": results}


class _Api(BaseHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        type(self).requests.append(url.path)
        if query.get("Subscription-Key") != KEY:
            return self._send(401, json.dumps({"StatusCode": 401, "message": "Access denied due to invalid subscription key."}))
        if url.path == "/api/v2/documents.json":
            return self._send(200, json.dumps(_listing(query["date"]), ensure_ascii=False))
        doc_id = url.path.rsplit("/", 1)[-1]
        if url.path.startswith("/api/v2/documents/") and query.get("type") == "1":
            paragraphs = [s for d in SAMPLE[-12:] for s in d.split("\n") if len(s) > 20][:4]
            paragraphs[0] = f"{doc_id}の事業の内容について説明いたします。"
            return self._send(200, edinet_zip(paragraphs), "application/octet-stream")
        return self._send(404, json.dumps({"metadata": {"status": "404", "message": "Not Found"}}))

    def _send(self, code, body, content_type="application/json; charset=utf-8"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def api():
    _Api.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/api/v2"
    httpd.shutdown()
    httpd.server_close()


def download(api, out, *extra):
    return main(["download", "edinet", "--start-date", "2024-06-27", "--end-date", "2024-06-28", "--base-url", api,
                 "--out", str(out), "--no-progress", *extra])


def test_fetches_the_reports_keeps_the_key_secret_and_resumes(api, tmp_path, capsys, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("EDINET_API_KEY", KEY)
    out = tmp_path / "edinet"
    assert download(api, out) == 0
    assert sorted(p.name for p in out.glob("*.zip")) == ["S100AAA1.zip", "S100BBB1.zip"]  # 120 only, not withdrawn
    index = (out / "edinet-documents.tsv").read_text(encoding="utf-8").splitlines()
    assert [row.split("\t")[0] for row in index[1:]] == ["S100AAA1", "S100BBB1"]
    seen = capsys.readouterr()
    written = "".join(p.read_text(encoding="utf-8", errors="replace") for p in out.rglob("*") if p.is_file())
    for place in (seen.out, seen.err, caplog.text, written):
        assert KEY not in place
    # a rerun asks for nothing it already has (the past days' lists are kept too)
    before = len(_Api.requests)
    assert download(api, out) == 0
    assert _Api.requests[before:] == []
    # and the directory is a corpus input
    assert main(["corpus", str(out), "--out", str(tmp_path / "c"), "--no_progress", "--valid_ratio", "0"]) == 0
    text = (tmp_path / "c" / "train-00000.txt").read_text(encoding="utf-8")
    assert "S100AAA1の事業の内容" in text and "S100BBB1の事業の内容" in text


def test_more_types_and_a_wrong_key(api, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EDINET_API_KEY", raising=False)
    out = tmp_path / "edinet"
    assert download(api, out, "--doc-types", "120", "130", "--api-key", KEY) == 0
    assert sorted(p.stem for p in out.glob("*.zip")) == ["S100AAA1", "S100BBB1", "S100BBB2"]
    capsys.readouterr()
    assert download(api, tmp_path / "other", "--api-key", "wrong-key-xyz") == 2
    err = capsys.readouterr().err
    assert "refused the API key (HTTP 401)" in err and "wrong-key-xyz" not in err
    assert main(["download", "edinet", "--start-date", "2024-06-27", "--out", str(tmp_path / "x")]) == 2
    assert "EDINET_API_KEY" in capsys.readouterr().err
