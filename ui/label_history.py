"""The Label page's mask history: every saved revision of the frame, two of them side by side or
as a difference, and restoring an older one (as a new revision; nothing is deleted)."""

from __future__ import annotations

import numpy as np
import streamlit as st

import db
from segcore.errors import SegcoreError
from segcore.metrics import n_cosmics
from ui.common import flash, show_error
from ui.images import difference_overlay, hex_to_rgb, overlay_mask, resize_nearest
from ui.label_editor import View, forget_work
from ui.proposals import source_text

NO_AUTHOR = "Type your name under *Your name* in the sidebar first: every revision records who saved it."


def mask_history(frame, author: str, gray: np.ndarray, view: View, canvas_hw: tuple[int, int]) -> None:
    st.markdown("#### Mask history")
    history = db.mask_history(frame.id)
    runs_by_id = {r.id: r for r in db.list_runs()} if any(r.run_id for r in history) else {}
    if not history:
        st.caption("No saved mask yet. Draw the cosmics and press *Save as new revision*.")
        return
    st.dataframe(
        [
            {
                "Revision": r.id,
                "Saved": r.created.strftime("%Y-%m-%d %H:%M:%S"),
                "Source": source_text(r, runs_by_id),
                "Author": r.author,
                "Cosmic pixels": r.cosmic_pixels,
                "Comment": (r.comment or "") + (f" [restored from {r.restored_from_id}]" if r.restored_from_id else ""),
                "Current": "yes" if i == 0 else "",
            }
            for i, r in enumerate(history)
        ],
        hide_index=True,
        width="stretch",
    )
    revisions = {r.id: r for r in history}
    h1, h2, h3 = st.columns([2, 2, 3])
    first = h1.selectbox("Revision", list(revisions), index=min(1, len(history) - 1), key=f"lbl_rev_a_{frame.id}",
                         format_func=lambda i: f"{i} ({revisions[i].source}, {revisions[i].author or 'unknown'})")
    second = h2.selectbox("Compare with", list(revisions), index=0, key=f"lbl_rev_b_{frame.id}",
                          format_func=lambda i: f"{i}" + (" (current)" if i == history[0].id else ""))
    shown = h3.segmented_control("View", ["Side by side", "Difference"], default="Side by side", key="lbl_view",
                                 required=True)
    area = st.radio("Area", ["zoom", "whole"], horizontal=True, key="lbl_area",
                    format_func=lambda a: "Zoom window" if a == "zoom" else "Whole frame")
    try:
        mask_a, mask_b = db.read_revision(first), db.read_revision(second)
    except SegcoreError as exc:
        show_error(exc, "Could not read the revision")
        return
    rows, cols = view.window.slices if area == "zoom" else (slice(None), slice(None))
    size = canvas_hw if area == "zoom" else None

    def picture(rgb: np.ndarray) -> np.ndarray:
        return resize_nearest(rgb, *size) if size else rgb

    if shown == "Side by side":
        p1, p2 = st.columns(2)
        for col, rev, mask in ((p1, first, mask_a), (p2, second, mask_b)):
            col.image(picture(overlay_mask(gray[rows, cols], mask[rows, cols], hex_to_rgb(view.colour),
                                           max(view.opacity, 0.6))),
                      caption=f"Revision {rev}: {n_cosmics(mask)} cosmic(s), {int(mask.sum())} pixel(s)",
                      width="stretch")
    else:
        only_a = int(np.count_nonzero(mask_a & ~mask_b))
        only_b = int(np.count_nonzero(mask_b & ~mask_a))
        st.image(picture(difference_overlay(gray[rows, cols], mask_a[rows, cols], mask_b[rows, cols])),
                 caption=f"Red: only in revision {first} ({only_a} px). Blue: only in revision {second} ({only_b} px). "
                 "White: in both.", width=min(view.canvas_side, 900))

    if first != history[0].id:
        if st.button(f"Restore revision {first}", icon=":material/restore:", key="lbl_restore",
                     help="Makes it the current mask again, as a new revision; nothing is deleted."):
            if not author:
                st.error(NO_AUTHOR)
                return
            try:
                restored = db.restore_revision(first, author=author)
            except SegcoreError as exc:
                show_error(exc, "Could not restore the revision")
            else:
                forget_work(frame.id)
                flash(f"Restored revision {first} of {frame.name} as revision {restored.id}.", "toast")
                st.rerun()
