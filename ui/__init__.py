"""Streamlit helpers shared by the app's pages (no science, no SQL here)."""
