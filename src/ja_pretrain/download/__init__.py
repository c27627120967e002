"""Fetching the raw corpora: resumable, checksum-verified HTTP downloads (`fetch`) and the
publisher rules for Japanese Wikipedia and CC-100 (`download_jawiki`, `download_cc100`)."""

from ja_pretrain.download.http import HTTPStatusError, fetch
from ja_pretrain.download.sources import download_cc100, download_jawiki

__all__ = ["HTTPStatusError", "download_cc100", "download_jawiki", "fetch"]
