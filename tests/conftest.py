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


# One session-wide build of the tiny MobileNetV2 fixture for every module that does not import
# its own copy (a fixture imported into a module is rebuilt once per module).
from tiny_models import tiny  # noqa: E402,F401
