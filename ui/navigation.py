"""The app's pages and the way between them, through Streamlit's ``st.navigation`` and ``st.Page``.

``app.py`` calls :func:`run`: it declares :data:`PAGES` (Home first, the default page, then
the files of ``pages/`` in workflow order) and runs the one the browser asked for. Links
between pages name a page of :data:`PAGES` (``link(TRAIN, "Train a model")``), never a path.

Each run makes its own ``st.Page`` objects (:meth:`AppPage.page`): Streamlit marks on the
object the page it is about to run, so objects shared by concurrent sessions could refuse
each other's page.

A fresh server that has a ``pages/`` folder answers its very first request in Streamlit's
older pages-folder mode, before ``app.py`` ever declared the navigation: a bookmark to
``/Label`` would run that page alone, without Home, icons or the wide layout.
:func:`require_navigation` (called by ``ui.common.init_store``) notices a page run outside
:func:`run`, declares the navigation itself (``st.navigation`` ends the pages-folder mode for
the whole server) and reruns, so the page comes again through ``app.py``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitAPIException

PAGES_FOLDER = Path(__file__).resolve().parents[1] / "pages"


@dataclass(frozen=True)
class AppPage:
    """One page of the app: its file in ``pages/``, its title and icon."""

    file: str
    title: str
    icon: str
    default: bool = False

    def page(self) -> st.Page:
        """A fresh ``st.Page`` of it (its address is the file name without the number: ``/Label``)."""
        return st.Page(PAGES_FOLDER / self.file, title=self.title, icon=self.icon, default=self.default)


HOME = AppPage("0_Home.py", "Home", ":material/home:", default=True)
DATASETS = AppPage("1_Datasets.py", "Datasets", ":material/folder_open:")
LABEL = AppPage("2_Label.py", "Label", ":material/brush:")
TRAIN = AppPage("3_Train.py", "Train", ":material/model_training:")
RESULTS = AppPage("4_Results.py", "Results", ":material/analytics:")
COMPARE = AppPage("5_Compare.py", "Compare", ":material/compare:")
#: Every page, in the order of the sidebar.
PAGES = (HOME, DATASETS, LABEL, TRAIN, RESULTS, COMPARE)

# Set while run() runs a page, in that script thread.
_running = threading.local()
_taken_over = False


def _navigation() -> st.Page:
    return st.navigation([p.page() for p in PAGES])


def run() -> None:
    """The entry point's work: the app's look, its pages, and the page asked for."""
    from ui.app_icon import app_icon

    st.set_page_config(page_icon=app_icon(), layout="wide")  # drawn here: no icon fetched from outside
    page = _navigation()
    _running.active = True
    try:
        page.run()
    finally:
        _running.active = False


def require_navigation() -> None:
    """Rerun a page that runs outside :func:`run` through ``app.py`` (see the module's docstring).

    Once per process: a page started on its own (``streamlit run pages/3_Train.py``) then
    goes on alone instead of rerunning forever.
    """
    global _taken_over
    if getattr(_running, "active", False) or _taken_over:
        return
    _taken_over = True
    _navigation()
    st.rerun()


def link(page: AppPage, label: str | None = None, icon: str | None = None) -> None:
    """A link to another page of the app (its own title and icon unless given); plain text
    where the page is not registered (a page started on its own)."""
    try:
        st.page_link(page.page(), label=label, icon=icon)
    except (StreamlitAPIException, KeyError):
        st.markdown(f"**{label or page.title}** (in the sidebar)")
