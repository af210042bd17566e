"""Test tiers and what the browser and PostgreSQL tests need.

Markers (registered in pyproject.toml): ``slow`` (left out by ``-m "not slow"``, the quick
check while working), ``browser`` and ``postgres``. Every test in a ``test_app_*`` module runs
whole pages in-process with Streamlit's AppTest (seconds each) and is marked slow here. A browser or PostgreSQL test whose
requirement is missing is skipped with the reason, or fails with it where
``COSMICS_REQUIRE_BROWSER=1`` / ``COSMICS_REQUIRE_POSTGRES=1`` says it must run (CI;
see ``tiers``).
"""

import os
import sys

import pytest
from tiers import REQUIRE_BROWSER, skip_or_fail

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


APP_TEST_MODULES = "test_app_"
#: The modules that take longest (minutes each), started first: pytest-xdist hands whole modules to its workers
#: in collection order (``--no-loadscope-reorder`` in pyproject.toml), so neither worker is left running one of
#: these alone at the end while the other idles.
LONGEST_FIRST = (
    "test_multiworker.py", "test_browser_loop.py", "test_browser_effort.py", "test_browser_results.py",
    "test_app_train_results_compare.py", "test_db_runs.py", "test_trainer.py", "test_cli.py",
)


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.name.startswith(APP_TEST_MODULES):
            item.add_marker(pytest.mark.slow)
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def pytest_runtest_setup(item):
    if item.get_closest_marker("browser") is not None:
        from browser_support import missing_browser_requirement

        missing = missing_browser_requirement()
        if missing:
            skip_or_fail(missing, REQUIRE_BROWSER)


@pytest.fixture(autouse=True)
def real_main_module():
    """Streamlit's AppTest runs a page as ``sys.modules["__main__"]`` and leaves it there; a process spawned later
    (Dask's LocalCluster workers) would then re-run that page's deleted temporary file and die at start ("Nanny
    failed to start worker process"). Each test gets the interpreter's own ``__main__`` back."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright, for the browser tests."""
    from browser_support import chromium_browser

    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture
def page(browser):
    from browser_support import new_page

    with new_page(browser) as page:
        yield page
