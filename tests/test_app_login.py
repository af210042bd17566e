"""Opening the app (AppTest): login through Streamlit's own authentication when COSMICS_REQUIRE_LOGIN
asks for it, and one clear message when the store cannot be opened."""

from __future__ import annotations

import pytest
from test_app_datasets_label import ROOT, TIMEOUT, texts

import db

pytestmark = pytest.mark.usefixtures("home")  # a store of its own with its demo dataset


def _app(user: dict, page: str | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.user = user
    at.run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at


def test_without_the_setting_nobody_is_asked_to_log_in(monkeypatch):
    monkeypatch.delenv("COSMICS_REQUIRE_LOGIN", raising=False)
    at = _app({"is_logged_in": False}, "pages/2_Label.py")
    assert "log in first" not in texts(at.info)
    assert [t.label for t in at.sidebar.text_input] == ["Your name"]


@pytest.mark.parametrize("page", [None, "pages/1_Datasets.py", "pages/2_Label.py", "pages/3_Train.py"])
def test_with_the_setting_every_page_waits_for_a_login(monkeypatch, page):
    monkeypatch.setenv("COSMICS_REQUIRE_LOGIN", "1")
    at = _app({"is_logged_in": False}, page)
    assert "This cosmics server asks everyone to log in first." in texts(at.info)
    assert [b.label for b in at.button] == ["Log in"]
    assert not at.title or [t.value for t in at.title] == ["cosmics"]
    assert not at.dataframe and not at.selectbox  # nothing of the store is shown


def test_a_logged_in_user_is_the_author_of_what_they_save(monkeypatch):
    monkeypatch.setenv("COSMICS_REQUIRE_LOGIN", "1")
    at = _app({"is_logged_in": True, "name": "Ana Lima", "email": "ana@example.org"}, "pages/2_Label.py")
    assert "Logged in as **Ana Lima**" in texts(at.sidebar.caption)
    assert "Your name" not in [t.label for t in at.sidebar.text_input]  # no free-text author
    assert at.session_state["author"] == "Ana Lima"
    assert "Log out" in [b.label for b in at.sidebar.button]
    assert db.list_datasets()  # the pages work as usual


def test_login_required_but_not_configured_says_so(monkeypatch):
    monkeypatch.setenv("COSMICS_REQUIRE_LOGIN", "1")
    at = _app({"is_logged_in": False})
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert "no login provider is configured" in texts(at.error)
    assert "log in first" in texts(at.info)


def test_a_store_that_cannot_be_reached_is_one_message_on_the_page(monkeypatch):
    monkeypatch.setenv("COSMICS_DB_URL", "postgresql+psycopg://user:secret@127.0.0.1:9/none?connect_timeout=2")
    db.reset()
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    errors = texts(at.error)
    assert errors.startswith("The store cannot be opened: the store postgresql+psycopg://user:***@127.0.0.1:9/none")
    assert "Connection refused" in errors and "secret" not in errors
