"""Fetching the raw corpora and the evaluation data sets: resumable, checksum-verified HTTP
downloads (`fetch`), the publisher rules for Japanese Wikipedia and CC-100 (`download_jawiki`,
`download_cc100`) and for JGLUE, chABSA, livedoor and Wikipedia NER (`download_jglue`, `download_chabsa`,
`download_livedoor`, `download_ner_wikipedia`)."""

from ja_pretrain.download.http import HTTPStatusError, fetch
from ja_pretrain.download.sources import download_cc100, download_jawiki
from ja_pretrain.download.tasks import download_chabsa, download_jglue, download_livedoor, download_ner_wikipedia

__all__ = [
    "HTTPStatusError", "download_cc100", "download_chabsa", "download_jawiki", "download_jglue", "download_livedoor",
    "download_ner_wikipedia", "fetch",
]
