"""Turn an infrared frame into a PNG a browser can show: a percentile contrast stretch to 8 bits.

Infrared frames are often 16-bit or nearly black, with the scene in a narrow band of grey
levels; shown as is, a faint target is invisible. Mapping the `low` percentile to black and
the `high` percentile to white spreads that band over the screen's 256 levels. The stretch
is done here, on the full-precision image, rather than in the browser, which only ever
receives 8-bit pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

DEFAULT_LOW = 0.5  # percent of pixels drawn pure black
DEFAULT_HIGH = 99.5  # percent of pixels drawn below pure white: bright targets saturate, the background stays readable


def stretch(image: np.ndarray, low: float = DEFAULT_LOW, high: float = DEFAULT_HIGH) -> np.ndarray:
    """uint8 image with the `low` and `high` percentiles of `image` mapped to 0 and 255.

    A flat band (both percentiles equal) falls back to the full min..max range, and a flat
    image to mid grey, so nothing divides by zero.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {low} and {high}")
    image = np.asarray(image, dtype=np.float32)
    lo, hi = (float(v) for v in np.percentile(image, [low, high]))
    if hi <= lo:
        lo, hi = float(image.min()), float(image.max())
    if hi <= lo:
        return np.full(image.shape, 128, dtype=np.uint8)
    scaled = (image - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def to_png(image_8bit: np.ndarray) -> bytes:
    """Encode a uint8 grey image as PNG bytes."""
    ok, encoded = cv2.imencode(".png", image_8bit, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def render_png(image: np.ndarray, low: float | None = DEFAULT_LOW, high: float | None = DEFAULT_HIGH) -> bytes:
    """The PNG the page shows; `low` = `high` = None sends the grey levels unstretched."""
    if low is None or high is None:
        raw = np.clip(np.rint(np.asarray(image, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
        return to_png(raw)
    return to_png(stretch(image, low, high))
