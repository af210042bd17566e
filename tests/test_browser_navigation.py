"""In a real browser: a bookmark to a page, as the very first request of a fresh server, comes
through app.py's navigation (Streamlit answers that request in its pages-folder mode, see
``ui.navigation``), and the links between pages lead where they say."""

from __future__ import annotations

import pytest
from browser_support import serve_app, wait_idle

DEMO = {"COSMICS_DEMO_FRAMES": "2,1,1,0", "COSMICS_DEMO_SIZE": "64"}

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _navigation(page) -> list[str]:
    """The sidebar's page names, without the icons' ligature text."""
    return [text.split("\n")[-1].strip() for text in page.locator("[data-testid=stSidebarNavLink]").all_inner_texts()]


def test_a_bookmark_opened_first_on_a_fresh_server_gets_the_apps_navigation(tmp_path, page):
    with serve_app(tmp_path / "home", DEMO) as url:
        page.goto(f"{url}/Compare")
        page.get_by_role("heading", name="Compare").wait_for(timeout=120_000)
        wait_idle(page)
        assert _navigation(page) == ["Home", "Datasets", "Label", "Train", "Results", "Compare"]
        assert page.locator("[data-testid=stException]").count() == 0

        page.get_by_role("link", name="Train a model").click()  # no run yet: the page points to Train
        page.get_by_role("heading", name="Train").first.wait_for(timeout=60_000)
        assert page.url.rstrip("/").endswith("/Train")

        page.locator("[data-testid=stSidebarNavLink]").first.click()
        page.get_by_role("heading", name="Cosmics").wait_for(timeout=60_000)
        wait_idle(page)
        assert page.get_by_role("link", name="1. Datasets").count() == 1
        assert page.locator("[data-testid=stException]").count() == 0
