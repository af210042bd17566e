"""A dataset out of the store: a ZIP of its frames and current masks in the original layout.

Frames go in as they were imported (a stack file once, whatever number of its frames the
dataset holds); masks in the format asked for (``EXPORT_MASK_FORMATS``): one file per
frame (``<frame stem>.png``, ``.npy``, ``.edf``, ``.tif``), or with ``h5`` one file per
stack holding one mask per frame in the stack's own layout plus the NeXus ``pixel_mask``
(single frames get a NeXus file each). ``import_zip`` reads such a ZIP back.
"""

from __future__ import annotations

import os
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from segcore import data as segdata
from segcore import formats, io

from .datasets import SPLIT_FOLDERS, get_dataset, list_frames
from .errors import StoreError
from .masks import read_revision
from .paths import remove_tree, slug, staging_dir

__all__ = ["EXPORT_MASK_FORMATS", "export_dataset"]

EXPORT_MASK_FORMATS = formats.MASK_FORMATS


def export_dataset(dataset_id: int, mask_format: str = "png", target: str | os.PathLike | None = None) -> Path:
    """Write the dataset as a ZIP (``target``, default a new file under ``<home>/tmp``); its path.

    Frames without a mask have no mask file, except inside an ``h5`` stack mask, which holds one
    mask per frame of the stack: frames without one are empty there, and listed in the mask
    dataset's ``unlabelled_frames`` attribute.
    """
    if mask_format not in EXPORT_MASK_FORMATS:
        raise StoreError(f"mask format must be one of {', '.join(EXPORT_MASK_FORMATS)}, got {mask_format!r}")
    dataset = get_dataset(dataset_id)
    frames = list_frames(dataset_id)
    folder = staging_dir("export")
    try:
        zip_path = Path(target) if target is not None else folder.parent / f"{slug(dataset.name)}-{folder.name}.zip"
        tmp = zip_path.with_name(f".{zip_path.name}.part")
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as archive:
            stacks: dict[tuple[str, str, str | None], list] = defaultdict(list)
            added: set[str] = set()
            for frame in frames:
                split = SPLIT_FOLDERS[frame.split]
                file = io.frame_file(frame.path)
                arcname = f"{split}/{file.name}"
                if arcname not in added:
                    if not file.exists():
                        raise StoreError(f"{split}/{frame.name}: file is missing from the data folder")
                    archive.write(file, arcname, compress_type=zipfile.ZIP_STORED)
                    added.add(arcname)
                masks = segdata.annotation_dir(split)
                if mask_format == "h5" and formats.is_address(frame.path):
                    parsed = formats.parse_address(frame.path)
                    stacks[(masks, str(file), parsed.dataset)].append(frame)
                    continue
                if frame.revision_id is None:
                    continue
                extension = "tif" if mask_format == "tif" else mask_format
                path = folder / masks / f"{frame.stem}.{extension}"
                io.write_mask(path, read_revision(frame.revision_id))
                archive.write(path, f"{masks}/{path.name}", compress_type=zipfile.ZIP_DEFLATED)
            for (masks, file, _), members in stacks.items():
                if all(f.revision_id is None for f in members):
                    continue
                info = formats.hdf5_info(members[0].path)
                path = folder / masks / f"{formats.frame_stem(file)}.h5"
                unlabelled = []
                with formats.mask_stack_writer(path, info) as writer:
                    labelled: set[int | None] = set()
                    for frame in members:
                        index = formats.parse_address(frame.path).index
                        if frame.revision_id is not None:
                            writer.write(index, read_revision(frame.revision_id))
                            labelled.add(index)
                    if info.frames is not None:
                        unlabelled = [i for i in range(info.frames) if i not in labelled]
                    writer._data.attrs["unlabelled_frames"] = np.asarray(unlabelled, dtype=np.int64)
                archive.write(path, f"{masks}/{path.name}", compress_type=zipfile.ZIP_DEFLATED)
        os.replace(tmp, zip_path)
        return zip_path
    except BaseException:
        if "tmp" in locals() and tmp.exists():
            tmp.unlink()
        raise
    finally:
        remove_tree(folder)
