import os

import pytest
from hypothesis import settings

# CI replays the same generated examples every run (a failure there is reproducible, never flaky);
# locally hypothesis explores new examples each time.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(os.path.dirname(ROOT), "shared", "golden")


@pytest.fixture(scope="session")
def golden_dir():
    path = os.path.join(GOLDEN, "ms")
    if not os.path.isdir(path):
        pytest.skip(f"golden files not found at {path} (shared/ must sit beside the checkout)")
    return path


# Session fixtures live here once: a fixture imported into each test module is rebuilt per module.
from tiny_models import tiny  # noqa: E402,F401
from train_fixtures import arch_ckpt, head_run, pretrained_ckpt, shared_cache, tiny_data  # noqa: E402,F401
from official_fixtures import no_tools, official_benchmark, official_converter, official_tools  # noqa: E402,F401


def pytest_configure(config):
    import official_fixtures
    official_fixtures.prepare()


def pytest_terminal_summary(terminalreporter):
    import official_fixtures
    for line in official_fixtures.summary_lines():
        terminalreporter.write_line(line, yellow="UNAVAILABLE" in line, bold=True)
