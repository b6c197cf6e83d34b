"""Any image file a user brings, turned into one array form: float32 grey in [0, 1], shape (H, W).

Infrared frames arrive as 8- or 16-bit PNG, JPEG, BMP or TIFF, in grey, RGB, RGBA or palette
form. The detector only needs intensity, so colour is reduced to luma and alpha is dropped;
the bit depth is divided out so that 8- and 16-bit sensors land on the same scale.

One frame convention: the picture as displayed, with its EXIF orientation applied. That is what
browsers, image viewers and labelling tools show, so it is the frame a user's clicks refer to; a
camera's JPEG stored sideways with an "rotate 90" tag is read upright here too.

Two images of one folder whose names differ only by suffix (a.png and a.jpg, a.png and a.PNG)
are refused: every output and label is named by the stem, so they would share them.
Hidden files (names starting with '.': pinpoint's own temporaries, macOS's ._ files) are not images.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from pinpoint.errors import InputError
from pinpoint.files import check_regular_file, find_by_stem, list_by_stem

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# OpenCV's decoders print their own warnings (libpng on a truncated file); our InputError says it in one line
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

MAX_PIXELS = 100_000_000  # refuse decompression bombs: a 40000 x 40000 header would need 6 GB as float32
MAX_IMAGE_BYTES = 2 * 1024**3  # a file larger than this is not an image of at most MAX_PIXELS
EXIF_ORIENTATION = 0x0112  # the EXIF tag that says how a stored picture is turned for display
# orientations 5 to 8 swap width and height
SWAPPING_ORIENTATIONS = (5, 6, 7, 8)


def find_image(folder: str | os.PathLike, stem: str) -> Path:
    """The image file called `stem` with any supported suffix (any case) in `folder`."""
    return find_by_stem(folder, stem, IMAGE_SUFFIXES, "image")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Supported image files directly inside `folder`, sorted by name; hidden files left out,
    two images sharing a stem refused."""
    return list_by_stem(folder, IMAGE_SUFFIXES, "image")


def to_grey(image: np.ndarray, source: str = "<array>") -> np.ndarray:
    """Reduce an image array (H, W), (H, W, 3) BGR or (H, W, 4) BGRA to float32 grey in [0, 1].

    Integer arrays of 8 and 16 bits are scaled by their type's maximum; wider ones (int32, int64,
    a Python list of ints) by the range their values use (_wide_integers_to_unit); float arrays are
    taken as already in [0, 1].
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = cv2.cvtColor(np.ascontiguousarray(image[:, :, :3]), cv2.COLOR_BGR2GRAY)
    if image.ndim != 2 or image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f"{source}: unsupported image shape {image.shape} (expected H x W, H x W x 3 or H x W x 4)")
    if np.issubdtype(image.dtype, np.integer) and np.iinfo(image.dtype).bits <= 16:
        grey = image.astype(np.float32) / float(np.iinfo(image.dtype).max)
    elif np.issubdtype(image.dtype, np.integer):
        grey = _wide_integers_to_unit(image)
    elif np.issubdtype(image.dtype, np.floating):
        grey = image.astype(np.float32)
    elif image.dtype == bool:
        grey = image.astype(np.float32)
    else:
        raise InputError(f"{source}: unsupported pixel type {image.dtype}")
    if not np.isfinite(grey).all():
        raise InputError(f"{source}: image holds NaN or infinite values")
    return grey


def _wide_integers_to_unit(image: np.ndarray) -> np.ndarray:
    """An integer array wider than 16 bits, on [0, 1]: values in 0..255 as 8-bit, in 0..65535 as 16-bit
    (int32 TIFFs and Python lists of ints hold such data), anything else stretched from its minimum
    to its maximum. Dividing by the type's maximum, as for 8 and 16 bits, would squeeze the picture
    into a few millionths and the detector would see a flat frame."""
    low, high = int(image.min()), int(image.max())
    values = image.astype(np.float64)
    if low >= 0 and high <= 255:
        return (values / 255.0).astype(np.float32)
    if low >= 0 and high <= 65535:
        return (values / 65535.0).astype(np.float32)
    return ((values - low) / max(high - low, 1)).astype(np.float32)


def read_raw(path: str | os.PathLike, what: str = "image") -> np.ndarray:
    """Decode an image file (any depth and channel count) as displayed, EXIF orientation applied;
    failures are InputErrors naming it. `what` names the file's role in the messages ("image", "mask")."""
    path = Path(path)
    article = "an" if what[0] in "aeiou" else "a"
    check_regular_file(path, f"{what} file")
    try:
        data = np.fromfile(path, dtype=np.uint8, count=MAX_IMAGE_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if data.size == 0:
        raise InputError(f"{path}: empty file, not {article} {what}")
    if data.size > MAX_IMAGE_BYTES:
        raise InputError(f"{path}: larger than {MAX_IMAGE_BYTES:,} bytes, too large for {article} {what}")
    orientation = _check_header(path)
    try:
        with silenced_native_stderr():  # libpng prints its own "libpng error: ..." before failing
            image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    if image is None:
        raise InputError(f"{path}: cannot decode {what} (corrupt, truncated or not a {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} file)")
    return orient(image, orientation)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as float32 grey in [0, 1]; every failure is an InputError naming the file."""
    return to_grey(read_raw(path), str(path))


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(H, W) of an image file as displayed (EXIF orientation applied), from its header where Pillow
    can read it, else by decoding it; failures are InputErrors naming it."""
    header = _header(Path(path))
    if header is None:
        return read_image(path).shape  # raises the InputError that names the problem
    width, height, orientation = header
    return (width, height) if orientation in SWAPPING_ORIENTATIONS else (height, width)


def orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """A stored picture (H, W[, C]) turned as its EXIF orientation (1 to 8) says it is displayed."""
    turned = {
        2: lambda a: a[:, ::-1],  # mirrored left-right
        3: lambda a: a[::-1, ::-1],  # turned 180 degrees
        4: lambda a: a[::-1],  # mirrored top-bottom
        5: lambda a: a.swapaxes(0, 1),  # transposed
        6: lambda a: np.rot90(a, -1),  # turned 90 degrees clockwise
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # transposed across the other diagonal
        8: lambda a: np.rot90(a, 1),  # turned 90 degrees counter-clockwise
    }.get(orientation)
    return np.ascontiguousarray(turned(image)) if turned else image


def _orientation(im) -> int:
    """The EXIF orientation OpenCV leaves for us to apply: 1 (as stored) when there is none.

    Read from the EXIF block Pillow found while opening the file, without decoding pixels. TIFF
    is the exception: OpenCV's TIFF reader applies the orientation itself.
    """
    from PIL import Image

    raw = im.info.get("exif")
    if im.format == "TIFF" or not raw:
        return 1
    try:
        exif = Image.Exif()
        exif.load(raw)
        value = int(exif.get(EXIF_ORIENTATION, 1))
    except Exception:  # a damaged EXIF block: the picture itself may still be fine
        return 1
    return value if 1 <= value <= 8 else 1


def _header(path: Path) -> tuple[int, int, int] | None:
    """(width, height, EXIF orientation) as stored, read by Pillow without decoding pixels; None
    where Pillow cannot read the header (it does not know every TIFF variant: the decoder decides)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's own complaints (corrupt EXIF, bombs): ours are below
            with Image.open(path) as im:
                return (*im.size, _orientation(im))
    except Image.DecompressionBombError:
        raise InputError(f"{path}: image header announces far more than the {MAX_PIXELS:,} pixel limit") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def _check_header(path: Path) -> int:
    """Refuse images whose header announces more than MAX_PIXELS, before any pixel is decoded;
    returns the EXIF orientation to apply after decoding."""
    header = _header(path)
    if header is None:
        return 1
    width, height, orientation = header
    if width * height > MAX_PIXELS:
        raise InputError(f"{path}: image is {width} x {height} pixels, more than the {MAX_PIXELS:,} pixel limit")
    return orientation


_stderr_lock = threading.Lock()
_stderr_users = 0
_stderr_saved: int | None = None


@contextlib.contextmanager
def silenced_native_stderr() -> Iterator[None]:
    """Send what C libraries print to the process's stderr (file descriptor 2) to the null device
    while the block runs: libpng writes "libpng error: ..." there itself before OpenCV returns its
    failure, and pinpoint's own one-line error says the same. Safe from several threads at once
    (the first in redirects, the last out restores); Python's own sys.stderr is untouched when it
    is not descriptor 2 (under pytest's capture, say)."""
    global _stderr_users, _stderr_saved
    with _stderr_lock:
        if _stderr_users == 0:
            try:
                saved = os.dup(2)
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 2)
                os.close(null)
                _stderr_saved = saved
            except OSError:
                _stderr_saved = None
        _stderr_users += 1
    try:
        yield
    finally:
        with _stderr_lock:
            _stderr_users -= 1
            if _stderr_users == 0 and _stderr_saved is not None:
                os.dup2(_stderr_saved, 2)
                os.close(_stderr_saved)
                _stderr_saved = None
