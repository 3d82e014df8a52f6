"""Replacing a file atomically: every reader sees the old content or the new, never part of one."""

from __future__ import annotations

import os
import tempfile


def write_atomically(path: str, data: bytes, mode: int, prefix: str = ".hexr-") -> None:
    """`data` in `path` with `mode`: a temporary file in the same directory (the mode set before
    anything is written, so a token is never readable by others), synced, then renamed."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=os.path.dirname(path) or ".")
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
