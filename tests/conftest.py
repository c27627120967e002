"""Suite-wide fixtures.

The suite runs as two pytest-xdist workers on a 2-core machine. Two OpenMP threads per worker
would spin against each other and make tiny-model steps several times slower, so torch is held
to one intra-op thread in every worker.
"""

import pytest


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """corpus -> tokenizer -> packed dataset (length 64) from the bundled sample; read-only."""
    from training_support import build_tiny_run

    return build_tiny_run(tmp_path_factory.mktemp("tiny"))
