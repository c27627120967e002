"""Files shipped inside the package: presets and the sample corpus."""

from importlib import resources
from pathlib import Path

SAMPLE_CORPUS_NAME = "sample_ja.txt"


def resource_path(name: str) -> Path:
    return Path(str(resources.files(__name__) / name))


def sample_corpus_path() -> Path:
    """The bundled sample corpus: original Japanese prose written for ja-pretrain, a blank line
    between documents, a paragraph (several sentences) per line."""
    return resource_path(SAMPLE_CORPUS_NAME)
