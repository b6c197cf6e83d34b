"""Any image file a user brings, turned into one array form: float32 grey in [0, 1], shape (H, W).

Infrared frames arrive as 8- or 16-bit PNG, JPEG, BMP or TIFF, in grey, RGB, RGBA or palette
form. The detector only needs intensity, so colour is reduced to luma and alpha is dropped;
the bit depth is divided out so that 8- and 16-bit sensors land on the same scale.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np

from pinpoint.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# OpenCV's decoders print their own warnings (libpng on a truncated file); our InputError says it in one line
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

MAX_PIXELS = 100_000_000  # refuse decompression bombs: a 40000 x 40000 header would need 6 GB as float32


def find_image(folder: str | os.PathLike, stem: str) -> Path:
    """The image file called `stem` with any supported suffix in `folder`."""
    folder = Path(folder)
    for suffix in IMAGE_SUFFIXES:
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    # Mixed-case suffixes (.Png, .Tif) that list_images accepts: one scan, only when the quick look fails.
    if folder.is_dir():
        for candidate in sorted(folder.iterdir()):
            if candidate.stem == stem and candidate.suffix.lower() in IMAGE_SUFFIXES and candidate.is_file():
                return candidate
    raise InputError(f"{folder / stem}.*: no image with this name (looked for {', '.join(IMAGE_SUFFIXES)})")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Supported image files directly inside `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def to_grey(image: np.ndarray, source: str = "<array>") -> np.ndarray:
    """Reduce an image array (H, W), (H, W, 3) BGR or (H, W, 4) BGRA to float32 grey in [0, 1].

    Integer arrays are scaled by their type's maximum; float arrays are taken as already in [0, 1].
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = cv2.cvtColor(np.ascontiguousarray(image[:, :, :3]), cv2.COLOR_BGR2GRAY)
    if image.ndim != 2 or image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f"{source}: unsupported image shape {image.shape} (expected H x W, H x W x 3 or H x W x 4)")
    if np.issubdtype(image.dtype, np.integer):
        grey = image.astype(np.float32) / float(np.iinfo(image.dtype).max)
    elif np.issubdtype(image.dtype, np.floating):
        grey = image.astype(np.float32)
    elif image.dtype == bool:
        grey = image.astype(np.float32)
    else:
        raise InputError(f"{source}: unsupported pixel type {image.dtype}")
    if not np.isfinite(grey).all():
        raise InputError(f"{source}: image holds NaN or infinite values")
    return grey


def read_raw(path: str | os.PathLike, what: str = "image") -> np.ndarray:
    """Decode an image file as stored (any depth and channel count); failures are InputErrors naming it.

    `what` names the file's role in the messages ("image", "mask").
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise InputError(f"{path}: {what} file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if data.size == 0:
        raise InputError(f"{path}: empty file, not an {what}" if what[0] in "aeiou" else f"{path}: empty file, not a {what}")
    _check_header_size(path)
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    if image is None:
        raise InputError(f"{path}: cannot decode {what} (corrupt, truncated or not a {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} file)")
    return image


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as float32 grey in [0, 1]; every failure is an InputError naming the file."""
    return to_grey(read_raw(path), str(path))


def _check_header_size(path: Path) -> None:
    """Refuse images whose header announces more than MAX_PIXELS, before any pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
    except Image.DecompressionBombError:
        raise InputError(f"{path}: image header announces far more than the {MAX_PIXELS:,} pixel limit") from None
    except (UnidentifiedImageError, OSError, ValueError):
        return  # let the decoder give its verdict; Pillow does not know every TIFF variant
    if width * height > MAX_PIXELS:
        raise InputError(f"{path}: image is {width} x {height} pixels, more than the {MAX_PIXELS:,} pixel limit")
