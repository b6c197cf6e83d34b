"""Files in and out: atomic writes, and reading the text files users hand over.

Everything pinpoint writes (labels, checkpoints, logs, pictures) goes through here:
the content lands in a temporary file in the same folder, is flushed to disk, and
then replaces the target with one rename, which POSIX makes atomic. A crash or a full
disk never leaves a half-written file behind.

Text files from users (labels, split files, lists of images, COCO JSON) are read by
read_user_text, so a missing, unreadable or binary file is one line naming it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator

from pinpoint.errors import InputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is fsynced and renamed onto `path`.

    For libraries that want a filename (torch.save, cv2.imwrite, savefig). The temporary
    name keeps the real suffix so that format detection by extension still works.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _create_temporary(path)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Atomically replace `path` with `data`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically replace `path` with `text` (UTF-8, '\\n' line endings)."""
    write_bytes(path, text.encode("utf-8"))


def read_user_text(path: str | os.PathLike, kind: str) -> str:
    """The text of a file a user gave (UTF-8; a leading byte-order mark, as Windows editors write, dropped).
    Any problem is an InputError naming the file and its `kind` ("split file", "label file", ...)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: {kind} not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {kind} ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: {kind} is not UTF-8 text") from None


def _create_temporary(path: Path) -> Path:
    """Create an empty, uniquely named file beside `path` with the permissions a plain open() gives.

    tempfile.mkstemp would create it 0600, and the rename would carry that onto the result:
    labels and checkpoints unreadable by the group, unlike any file another tool writes.
    Mode 0666 filtered by the process umask is what open() gives a new file.
    """
    for _ in range(100):
        candidate = path.parent / f".{path.stem}.{secrets.token_hex(6)}.tmp{path.suffix}"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"{path.parent}: could not find a free temporary name for {path.name}")


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform lets a folder be opened.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
