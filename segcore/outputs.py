"""Where ``predict``, ``lacosmic`` and ``clean`` write each frame's results, and the writers that put them there.

A frame's mask goes to ``<out>/<frame stem><suffix>.<format>``; the frames of an HDF5/NeXus stack share one
``<file stem><suffix>.h5`` (one mask per frame, the input's layout). A cleaned frame goes under its own name and
format; the frames of a stack into one stack file of the same name. Used by the one-process command line and by
the Dask path (:mod:`segcore.cluster`), so both write the same files.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from .errors import SegcoreError


def write_atomically(path: Path, write) -> Path:
    """Call ``write(tmp)`` on a temporary name beside ``path`` with the same suffix (writers choose the format by
    suffix), then move it into place: a crash leaves the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def refuse_clashes(addresses, target, group, what: str, verb: str = "would both write") -> None:
    """Refuse two inputs that would write the same output file (frames of one stack share their stack's file)."""
    owner: dict[Path, tuple[object, str]] = {}
    for address in addresses:
        path, key = target(address), group(address)
        first_key, first = owner.setdefault(path, (key, address))
        if first_key != key:
            raise SegcoreError(f"{first} and {address} {verb} {path}; write their {what} into separate --out folders")


class MaskOutput:
    """Masks into ``out``: ``<frame stem><suffix>.<format>``, or for the frames of an HDF5 stack (format h5) one
    ``<file stem><suffix>.h5`` holding one mask per frame in the input's layout (and the NeXus pixel_mask)."""

    def __init__(self, out: Path, mask_format: str, suffix: str = ""):
        self.out, self.mask_format, self.suffix = Path(out), mask_format, suffix
        self._stacks: dict = {}
        self._infos: dict = {}

    def format_of(self, address: str) -> str:
        from . import formats

        return formats.mask_format_for_input(address) if self.mask_format == "auto" else self.mask_format

    def stacked(self, address: str) -> bool:
        """Whether this frame's mask goes into a stack file shared with the other frames of its stack."""
        from . import formats

        return self.format_of(address) == "h5" and formats.is_hdf5(address)

    def group(self, address: str):
        from . import formats

        parsed = formats.parse_address(address)
        return (str(parsed.file), parsed.dataset) if self.stacked(address) else address

    def target(self, address: str) -> Path:
        from . import formats

        if self.stacked(address):
            return self.out / f"{formats.frame_stem(formats.frame_file(address))}{self.suffix}.h5"
        extension = {"tif": "tif"}.get(self.format_of(address), self.format_of(address))
        return self.out / f"{formats.frame_stem(address)}{self.suffix}.{extension}"

    def _info(self, address: str):
        from . import formats

        key = self.group(address)
        if key not in self._infos:
            self._infos[key] = formats.hdf5_info(address)
        return self._infos[key]

    def written_as(self, address: str) -> str:
        """Where the mask of ``address`` is (an address inside a stack file for the frames of a stack)."""
        from . import formats

        path = self.target(address)
        if not self.stacked(address):
            return str(path)
        return str(formats.FrameAddress(path, self._info(address).dataset, formats.parse_address(address).index))

    def write(self, address: str, mask) -> str:
        """Write ``mask`` for the frame ``address``; where it went (an address inside a stack file)."""
        from . import formats, io

        path = self.target(address)
        if not self.stacked(address):
            io.write_mask(path, mask)
            return str(path)
        key = self.group(address)
        if key not in self._stacks:
            self._stacks[key] = formats.mask_stack_writer(path, self._info(address))
        self._stacks[key].write(formats.parse_address(address).index, mask)
        return self.written_as(address)

    def close(self) -> None:
        while self._stacks:
            _, writer = self._stacks.popitem()
            writer.close()

    def abort(self) -> None:
        while self._stacks:
            _, writer = self._stacks.popitem()
            writer.abort()


class FrameOutput:
    """Cleaned frames into ``out`` in their own format: a file under its own name (fabio formats fabio cannot
    write become EDF), the frames of an HDF5 stack one stack file of the same name, layout and pixel type."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self._stacks: dict = {}

    def stacked(self, address: str) -> bool:
        from . import formats

        return formats.is_hdf5(address)

    def group(self, address: str):
        from . import formats

        parsed = formats.parse_address(address)
        return (str(parsed.file), parsed.dataset) if formats.is_hdf5(address) else address

    def target(self, address: str) -> Path:
        from . import formats

        parsed = formats.parse_address(address)
        if formats.is_hdf5(address):
            return self.out / parsed.file.name
        if formats.is_fabio(address):
            suffix = formats.suffix_of(parsed.file)
            name = formats.frame_stem(address) + (suffix if suffix in (".edf", ".cbf") else ".edf")
            return self.out / name
        return self.out / parsed.file.name

    def file_for(self, address: str, frame) -> Path:
        """The file a single (not stacked) frame is written to: CBF holds integers, so a float frame becomes EDF."""
        path = self.target(address)
        if path.suffix == ".cbf" and frame.dtype.kind == "f":
            path = path.with_suffix(".edf")
        return path

    def write(self, address: str, frame) -> None:
        from . import formats, io

        if not formats.is_hdf5(address):
            io.write_frame(self.file_for(address, frame), frame)
            return
        key = self.group(address)
        if key not in self._stacks:
            info = formats.hdf5_info(address)
            self._stacks[key] = formats.StackWriter(self.target(address), info.dataset, info.frames,
                                                    (info.height, info.width), frame.dtype, level=1)
        self._stacks[key].write(formats.parse_address(address).index, frame)

    close = MaskOutput.close
    abort = MaskOutput.abort
