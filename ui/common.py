"""What every page needs: the store opened once, the demo dataset on first start, shared widgets.

Pages call :func:`init_store` first. Everything else here is small glue between the
store (``db``) and Streamlit widgets: the dataset chooser shared by all pages, the
user's name for mask revisions, messages that survive a rerun, and friendly errors.
"""

from __future__ import annotations

import os
import threading

import streamlit as st
from streamlit.errors import StreamlitAuthError

from ui.navigation import require_navigation

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEMO_DATASET = "Simulated demo"


def _demo_sizes() -> dict:
    """The demo set: small enough to create in seconds on a laptop, big enough to train on.

    ``COSMICS_DEMO_FRAMES`` ("train,validation,test,real") and ``COSMICS_DEMO_SIZE``
    (pixels) override it, e.g. for a quick trial or a test.
    """
    sizes = {"n_train": 40, "n_validation": 8, "n_test": 12, "n_real": 4, "size": 256, "seed": 0}
    frames = os.environ.get("COSMICS_DEMO_FRAMES")
    if frames:
        values = [int(v) for v in frames.split(",")]
        sizes.update(zip(("n_train", "n_validation", "n_test", "n_real"), values))
    if os.environ.get("COSMICS_DEMO_SIZE"):
        sizes["size"] = int(os.environ["COSMICS_DEMO_SIZE"])
    return sizes


DEMO_SIZES = _demo_sizes()
SPLIT_LABELS = {"train": "Train", "validation": "Validation", "test": "Test", "real": "Real (no masks)"}

_demo_lock = threading.Lock()


def store_key() -> str:
    """Names the open store, so cached tables of one store never show in another."""
    import db

    return f"{os.environ.get('COSMICS_DB_URL', '')}|{db.home()}"


@st.cache_resource(show_spinner="Opening the store...")
def _engine(key: str):
    # Keyed by URL and data folder so a changed COSMICS_HOME opens (and migrates) its own store.
    import db

    return db.init_db()


#: Set to 1 to make every page ask for Streamlit's login (an OIDC provider in .streamlit/secrets.toml).
LOGIN_SETTING = "COSMICS_REQUIRE_LOGIN"


def login_required() -> bool:
    return os.environ.get(LOGIN_SETTING, "").strip().lower() in ("1", "true", "yes", "on")


def logged_in_user() -> str | None:
    """The logged-in user's name (else e-mail) when login is required and done; None otherwise."""
    if not login_required() or not st.user.is_logged_in:
        return None
    return str(getattr(st.user, "name", None) or getattr(st.user, "email", None) or "logged-in user")


def _require_login() -> None:
    """With login required, stop every page until the visitor has logged in; then they are the author."""
    if not login_required():
        return
    user = logged_in_user()
    if user is None:
        st.title("cosmics")
        st.info("This cosmics server asks everyone to log in first.")
        if st.button("Log in", type="primary"):
            try:
                st.login()
            except StreamlitAuthError as exc:
                show_error(exc, f"{LOGIN_SETTING} is set, but no login provider is configured "
                                "([auth] in .streamlit/secrets.toml, see the README)")
        st.stop()
    st.session_state["author"] = user
    st.sidebar.caption(f"Logged in as **{user}**")
    st.sidebar.button("Log out", on_click=st.logout)


def init_store() -> None:
    """Ask for a login when configured, open the store (migrating it if needed) and create the
    demo dataset on first start."""
    import db

    require_navigation()
    _require_login()
    try:
        _engine(store_key())
    except db.StoreError as exc:  # unreachable, locked or unreadable: say which store and why, nothing else
        show_error(exc, "The store cannot be opened")
        st.stop()
    if st.session_state.get("_demo_checked") == store_key():
        return
    with _demo_lock:
        if db.first_start():
            try:
                _create_demo()
            except (db.StoreError, OSError, ValueError) as exc:
                show_error(exc, "Could not create the demo dataset (create or import one on the Datasets page)")
        db.first_start_done()
    st.session_state["_demo_checked"] = store_key()


def _create_demo() -> None:
    import db

    sizes = _demo_sizes()
    total = sum(sizes[k] for k in ("n_train", "n_validation", "n_test", "n_real"))
    bar = st.progress(0.0, text="First start: creating the simulated demo dataset...")

    def progress(done: int, _total: int) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=f"First start: simulating demo frame {done} of {total}")

    try:
        db.import_simulated(DEMO_DATASET, progress=progress, **sizes)
    except db.StoreError:
        # Another browser tab created it at the same moment.
        if not any(d.name == DEMO_DATASET for d in db.list_datasets()):
            raise
    bar.empty()


# --- messages ----------------------------------------------------------------------------


def show_error(exc: BaseException, action: str | None = None) -> None:
    """A refused input or impossible request as a red box; the message already names the file."""
    message = str(exc) or type(exc).__name__
    st.error(f"{action}: {message}" if action else message, icon=":material/error:")


def flash(message: str, kind: str = "success", details: list[str] | None = None) -> None:
    """Keep a message to show after the next rerun (e.g. after an import refreshed the page)."""
    st.session_state.setdefault("_flash", []).append((kind, message, details or []))


def show_flash() -> None:
    for kind, message, details in st.session_state.pop("_flash", []):
        if kind == "toast":  # seen wherever the page is scrolled to
            st.toast(message, icon=":material/check_circle:")
            continue
        getattr(st, kind)(message)
        if details:
            with st.expander(f"Details ({len(details)})"):
                st.markdown("\n".join(f"- `{d}`" for d in details))


def report_lines(report) -> tuple[str, list[str]]:
    """One sentence for an import report, and the file names worth a look."""
    added = ", ".join(f"{n} {SPLIT_LABELS[s].split(' ')[0].lower()}" for s, n in report.frames_added.items() if n)
    text = f"Imported into **{report.dataset_name}**: {report.total_frames} frame(s)"
    text += f" ({added})" if added else ""
    text += f" and {report.masks_added} mask(s)."
    details = [f"{name}: no mask yet" for name in report.frames_without_mask]
    details += [f"{name}: ignored" for name in report.ignored]
    return text, details


# --- shared widgets ----------------------------------------------------------------------


def dataset_selector(container=None, label: str = "Dataset"):
    """Choose the dataset to work on; the choice is shared by all pages. Returns DatasetInfo or None."""
    import db

    container = container or st.sidebar
    datasets = db.list_datasets()
    if not datasets:
        container.info("No datasets yet. Create one on the Datasets page.")
        return None
    ids = [d.id for d in datasets]
    by_id = {d.id: d for d in datasets}
    chosen = st.session_state.get("dataset_id")
    if chosen is None:
        # A fresh session (a reload, a shared link): the address says which dataset it was on.
        chosen = _int_or_none(st.query_params.get("dataset"))
    if chosen not in by_id:
        chosen = ids[0]
    st.query_params["dataset"] = str(chosen)
    st.session_state["_dataset_choice"] = chosen

    def remember() -> None:
        st.session_state["dataset_id"] = st.session_state["_dataset_choice"]

    container.selectbox(
        label,
        ids,
        key="_dataset_choice",
        format_func=lambda i: f"{by_id[i].name} ({by_id[i].total_frames} frames)",
        on_change=remember,
        help="The dataset every page works on. Add or create datasets on the Datasets page.",
    )
    st.session_state["dataset_id"] = chosen
    return by_id[chosen]


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def select_dataset(dataset_id: int) -> None:
    """Make ``dataset_id`` the dataset the pages work on (e.g. right after creating it)."""
    st.session_state["dataset_id"] = dataset_id


def author_input(container=None) -> str:
    """'Your name' text box; the name is kept for the whole browser session, on every page.

    With login required, the logged-in user is the author and there is no box.
    """
    container = container or st.sidebar
    user = logged_in_user()
    if user is not None:
        return user
    if "author" not in st.session_state:
        # A fresh session (a reload): the name is kept in the address, as the dataset is.
        st.session_state["author"] = (st.query_params.get("author") or "").strip()
    if st.session_state["author"]:
        st.query_params["author"] = st.session_state["author"]
    elif "author" in st.query_params:
        del st.query_params["author"]
    st.session_state["_author_box"] = st.session_state["author"]

    def remember() -> None:
        st.session_state["author"] = st.session_state["_author_box"].strip()

    container.text_input(
        "Your name",
        key="_author_box",
        on_change=remember,
        placeholder="e.g. A. Scientist",
        help="Recorded with every mask you save or restore, so the history says who changed what.",
    )
    return st.session_state.get("author", "")
