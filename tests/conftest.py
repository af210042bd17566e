"""Test tiers and what the browser and PostgreSQL tests need.

Markers (registered in pyproject.toml): ``slow`` (left out by ``-m "not slow"``, the quick
check while working), ``browser`` and ``postgres``. Every test in a ``test_app_*`` module runs
whole pages in-process with Streamlit's AppTest (seconds each) and is marked slow here. A browser or PostgreSQL test whose
requirement is missing is skipped with the reason, or fails with it where
``COSMICS_REQUIRE_BROWSER=1`` / ``COSMICS_REQUIRE_POSTGRES=1`` says it must run (CI;
see ``tiers``).

``home`` is a store of its own as the app's first start leaves it (its demo dataset made), copied from a
template made once per test process; ``first_start_home`` an empty one, for the tests of that first start.
"""

import os
import shutil
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


# --- the app's store (AppTest modules) ------------------------------------------------

#: The demo the app makes on first start, kept small for the tests: 4/2/2/1 frames of 64 pixels.
DEMO_FRAMES, DEMO_SIZE = "4,2,2,1", "64"


def _use_app_home(monkeypatch, home):
    import db

    monkeypatch.setenv("COSMICS_HOME", str(home))
    monkeypatch.delenv("COSMICS_DB_URL", raising=False)
    monkeypatch.setenv("COSMICS_DEMO_FRAMES", DEMO_FRAMES)
    monkeypatch.setenv("COSMICS_DEMO_SIZE", DEMO_SIZE)
    db.reset()
    return home


@pytest.fixture(scope="session")
def demo_home_template(tmp_path_factory):
    """COSMICS_HOME as the app's first start leaves it, made once per test process (per xdist worker) by the
    app's own steps (``ui.common.init_store``): open and migrate the store, make the demo, mark the first start
    done. Only ``home`` uses it, through a copy: the database keeps paths relative to COSMICS_HOME, so a copy's
    frames and masks are its own."""
    import db
    from ui import common

    template = tmp_path_factory.mktemp("demo_template") / "home"
    with pytest.MonkeyPatch.context() as monkeypatch:
        _use_app_home(monkeypatch, template)
        db.init_db()
        assert db.first_start()
        # What ``common._create_demo`` does on the first page shown, less its progress bar.
        db.import_simulated(common.DEMO_DATASET, **common._demo_sizes())
        db.first_start_done()
        db.reset()  # closes every connection: SQLite folds its write-ahead log into cosmics.db
    return template


@pytest.fixture
def home(demo_home_template, tmp_path, monkeypatch):
    """A store of its own with the demo the app made on first start (4/2/2/1 frames of 64 pixels): a copy of
    ``demo_home_template``, so the app finds its first start done. Yields the COSMICS_HOME folder."""
    import db

    yield _use_app_home(monkeypatch, shutil.copytree(demo_home_template, tmp_path / "home"))
    db.reset()


@pytest.fixture
def first_start_home(tmp_path, monkeypatch):
    """An empty COSMICS_HOME, for the tests of the app's first start itself (it makes the demo there)."""
    import db

    yield _use_app_home(monkeypatch, tmp_path / "home")
    db.reset()


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
