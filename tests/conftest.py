import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(os.path.dirname(ROOT), "shared", "golden")


@pytest.fixture(scope="session")
def golden_dir():
    path = os.path.join(GOLDEN, "ms")
    if not os.path.isdir(path):
        pytest.skip(f"golden files not found at {path} (shared/ must sit beside the checkout)")
    return path
