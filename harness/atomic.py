"""Every file convbench writes is written atomically: a uniquely named temporary file in the same folder, flushed
and fsynced, then renamed over the target. A reader (or a run killed mid-write) sees the old file or the new one,
never half of one, and two writers never share a temporary file. When the disk refuses (full, over quota, a file-size
limit, read-only) the temporary file is removed, the old file is left as it was, and ``WriteFailed`` says which file
and why in one line.
"""
from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable, Union

from harness.errors import ConvbenchError

Content = Union[str, bytes, Callable[[BinaryIO], object]]
# the disk refusing a write, wherever it surfaces: full, over quota, over a file-size limit, mounted read-only
REFUSED = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS})


class WriteFailed(ConvbenchError):
    """A file could not be written: one line naming the file and the reason (exit 2 from the CLI)."""

    def __init__(self, path: str | os.PathLike[str] | None, exc: OSError) -> None:
        self.path, self.reason = Path(path) if path else None, exc.strerror or str(exc)
        super().__init__(f"cannot write {repr(str(self.path)) if self.path else 'a file'}: {self.reason}")


def write_atomic(path: str | os.PathLike[str], content: Content) -> Path:
    """Writes ``content`` (text as UTF-8, bytes, or a function that writes to a binary file) to ``path`` atomically;
    returns ``path``. ``WriteFailed`` on any OSError, with nothing left behind and the previous file intact."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as fh:
                if callable(content):
                    content(fh)
                else:
                    fh.write(content.encode("utf-8") if isinstance(content, str) else content)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise WriteFailed(path, exc) from None
    return path


def refused_write(exc: BaseException, where: str | os.PathLike[str] | None = None) -> WriteFailed | None:
    """``exc`` as a ``WriteFailed`` naming its file (or ``where`` when it names none) if it is the disk refusing a
    write (``REFUSED``), else None: a write outside this module that failed is still one line, never a traceback."""
    if isinstance(exc, OSError) and exc.errno in REFUSED:
        return WriteFailed(exc.filename or where, exc)
    return None
