"""Cosmics: find cosmic-ray hits in X-ray detector frames.

Start with ``streamlit run app.py``. This file is the entry point and only that: it declares
the app's pages (``ui.navigation.PAGES``: Home, ``pages/0_Home.py``, then the other files of
``pages/``) with Streamlit's ``st.navigation`` and runs the page asked for.
"""

from ui.navigation import run

run()
