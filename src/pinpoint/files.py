"""Files in and out: atomic writes, and reading the text files users hand over.

Everything pinpoint writes (labels, checkpoints, logs, pictures) goes through here:
the content lands in a temporary file in the same folder, is flushed to disk, and
then replaces the target with one rename, which POSIX makes atomic. A crash or a full
disk never leaves a half-written file behind.

Text files from users (labels, split files, lists of images, COCO JSON) are read by
read_user_text, so a missing, unreadable, binary or endless file (a link to /dev/zero) is one
line naming it.

A run killed mid-write leaves its temporary file behind (`.NAME.<12 hex>.tmp.SUFFIX`). Listings
of user folders skip hidden files, these among them (is_hidden), and the folders pinpoint writes
into are swept of the stale ones before a verb starts (outputs.check_outputs), so they neither
pile up nor block a later run.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import time
from pathlib import Path
from typing import Iterator

from pinpoint.errors import InputError

MAX_TEXT_BYTES = 256 * 1024 * 1024  # the largest text file read whole: a COCO file of millions of points fits
# what atomic_path names its temporary files: .STEM.<12 hex digits>.tmp.SUFFIX
TEMPORARY_NAME = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp(\.[^.]*)?$")
# a temporary file untouched this long belongs to a run that was killed: a live writer (a checkpoint,
# a video being encoded) touches its file every few seconds at most
STALE_SECONDS = 3600.0


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


def read_user_text(path: str | os.PathLike, kind: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The text of a file a user gave (UTF-8; a leading byte-order mark, as Windows editors write, dropped).
    Any problem is an InputError naming the file and its `kind` ("split file", "label file", ...).

    Only a regular file is read, and at most `max_bytes` of it: a link to /dev/zero or a FIFO
    would otherwise grow memory without bound, or wait forever."""
    path = Path(path)
    raw = read_regular_file(path, kind, max_bytes)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: {kind} is not UTF-8 text") from None


def check_regular_file(path: str | os.PathLike, kind: str) -> None:
    """Refuse, with an InputError naming it, anything but an existing regular file: a folder, and a
    link to /dev/zero or a FIFO, whose reading would never end (opening a FIFO waits for a writer)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"{path}: {kind} not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {kind} ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: cannot read {kind} (it is a folder)")
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: cannot read {kind} (not a regular file: a device or a pipe)")


def read_regular_file(path: Path, kind: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; anything else is an InputError naming it."""
    check_regular_file(path, kind)
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read {kind} ({exc.strerror or exc})") from None
    if len(raw) > max_bytes:
        raise InputError(f"{path}: cannot read {kind} (larger than {max_bytes:,} bytes)")
    return raw


def is_hidden(path: str | os.PathLike) -> bool:
    """True for a name starting with '.' (pinpoint's own temporaries, macOS's ._ files): never a
    user's image, label or video."""
    return Path(path).name.startswith(".")


def find_by_stem(folder: str | os.PathLike, stem: str, suffixes: tuple[str, ...], what: str) -> Path:
    """The file called `stem` with one of `suffixes` (any case) in `folder`; none, or two (a.png and
    a.jpg share every output named by the stem), is an InputError. `what` names them ("image")."""
    folder = Path(folder)
    found = files_by_stem(folder, suffixes, cached=True).get(stem) or files_by_stem(folder, suffixes).get(stem, [])
    if not found:
        raise InputError(f"{folder / stem}.*: no {what} with this name (looked for {', '.join(suffixes)})")
    if len(found) > 1:
        raise InputError(_ambiguous(folder, stem, found, what))
    return found[0]


def list_by_stem(folder: str | os.PathLike, suffixes: tuple[str, ...], what: str) -> list[Path]:
    """The files of `folder` with one of `suffixes`, sorted by name; hidden files left out, two
    sharing a stem refused."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    by_stem = files_by_stem(folder, suffixes)
    for stem, found in by_stem.items():
        if len(found) > 1:
            raise InputError(_ambiguous(folder, stem, found, what))
    return sorted(found[0] for found in by_stem.values())


def not_regular_files(folder: str | os.PathLike, suffixes: tuple[str, ...]) -> list[Path]:
    """The visible entries of `folder` named like one of `suffixes` (any case) that are not regular
    files: a folder, a device, a pipe or a broken link named like an image or a video.

    Listings leave them out. A verb that reads a whole folder names them instead (each reader
    calls this), since an input left out without a word is a silent wrong answer."""
    try:
        entries = sorted(Path(folder).iterdir())
    except OSError:
        return []
    return [p for p in entries if p.suffix.lower() in suffixes and not is_hidden(p) and not p.is_file()]


NOT_REGULAR = "not a regular file (a folder, a device, a pipe or a broken link named as {what} files are)"


_listings: dict[tuple[Path, tuple[str, ...]], tuple[int, dict[str, list[Path]]]] = {}
LISTINGS_KEPT = 8


def files_by_stem(folder: Path, suffixes: tuple[str, ...], cached: bool = False) -> dict[str, list[Path]]:
    """Every visible file of `folder` with one of `suffixes` (any case), grouped by stem, from one scan.

    With `cached`, the last scan is reused while the folder's modification time is unchanged:
    find_by_stem is called once per stem of a split, and a fresh scan each time would make reading
    a 10,000-image dataset take 10,000 x 10,000 look-ups. A name missing from a cached scan is
    looked up again in a fresh one (a file added within the file system's time resolution).
    """
    try:
        version = folder.stat().st_mtime_ns
    except OSError:
        return {}
    key = (folder.absolute(), suffixes)
    if cached and key in _listings and _listings[key][0] == version:
        return _listings[key][1]
    by_stem: dict[str, list[Path]] = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return by_stem
    for path in entries:
        if path.suffix.lower() in suffixes and not is_hidden(path) and path.is_file():
            by_stem.setdefault(path.stem, []).append(path)
    _listings.pop(key, None)
    _listings[key] = (version, by_stem)
    while len(_listings) > LISTINGS_KEPT:
        _listings.pop(next(iter(_listings)))
    return by_stem


def _ambiguous(folder: Path, stem: str, found: list[Path], what: str) -> str:
    names = ", ".join(p.name for p in found)
    return (f"{folder / stem}.*: two {what}s share the name {stem} ({names}); their labels and outputs would collide, "
            "rename or remove one")


def is_temporary(path: str | os.PathLike) -> bool:
    """True for a file named like atomic_path's temporaries: never a user's file, never listed as one."""
    return bool(TEMPORARY_NAME.match(Path(path).name))


def remove_stale_temporaries(folder: str | os.PathLike, older_than: float = STALE_SECONDS) -> list[Path]:
    """Delete the temporary files a killed run left in `folder` (untouched for `older_than` seconds);
    returns them. A live writer's temporary file is younger, and is left alone."""
    folder = Path(folder)
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        try:
            if is_temporary(entry) and entry.is_file() and not entry.is_symlink() and now - entry.stat().st_mtime > older_than:
                entry.unlink()
                removed.append(entry)
        except OSError:
            continue  # gone already, or not ours to delete
    return removed


def numbered_folder(base: str | os.PathLike) -> Path:
    """The first of BASE, BASE2, BASE3, ... that is free (absent, or an empty folder), made now so
    that two runs started together do not pick the same one."""
    base = Path(base)
    for number in range(1, 100_000):
        folder = base if number == 1 else base.with_name(f"{base.name}{number}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            if folder.is_dir() and not any(folder.iterdir()):
                return folder
        except OSError as exc:
            raise InputError(f"{folder}: cannot create the run folder ({exc.strerror or exc})") from None
    raise InputError(f"{base}: no free numbered folder left beside it")


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
