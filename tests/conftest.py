import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


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
