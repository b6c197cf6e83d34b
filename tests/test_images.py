"""Reading any image file into float32 grey in [0, 1], and the one-line errors for files that are not images."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pinpoint.data import images
from pinpoint.data.images import find_image, list_images, read_image, to_grey
from pinpoint.errors import InputError

# R=200, G=30, B=10 in OpenCV's BGR order: swapping R and B would change the luma a lot.
COLOUR_BGR = (10, 30, 200)
LUMA_8BIT = 0.299 * 200 + 0.587 * 30 + 0.114 * 10  # ITU-R BT.601, what cv2's BGR2GRAY computes


def _ramp(dtype: type, height: int = 6, width: int = 9) -> np.ndarray:
    top = np.iinfo(dtype).max
    ramp = np.linspace(0, top, height * width).round().astype(dtype).reshape(height, width)
    ramp[0, 0], ramp[-1, -1] = 0, top
    return ramp


def _error_of(path: Path) -> str:
    with pytest.raises(InputError) as info:
        read_image(path)
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(str(path)), message
    return message


# ---------------------------------------------------------------- formats and depths


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".tiff"])
def test_lossless_8bit_grey_is_exact(tmp_path: Path, suffix: str) -> None:
    ramp = _ramp(np.uint8)
    path = tmp_path / f"frame{suffix}"
    assert cv2.imwrite(str(path), ramp)
    grey = read_image(path)
    assert grey.dtype == np.float32 and grey.shape == ramp.shape
    np.testing.assert_allclose(grey, ramp / 255.0, atol=1e-7)
    assert grey[-1, -1] == 1.0 and grey[0, 0] == 0.0


def test_jpeg_8bit_grey(tmp_path: Path) -> None:
    flat = np.full((16, 24), 128, np.uint8)
    flat[:, 12:] = 255
    path = tmp_path / "frame.jpg"
    assert cv2.imwrite(str(path), flat, [cv2.IMWRITE_JPEG_QUALITY, 100])
    grey = read_image(path)
    assert grey.dtype == np.float32 and grey.shape == (16, 24)
    assert abs(grey[8, 2] - 128 / 255) < 3 / 255
    assert abs(grey[8, 20] - 1.0) < 3 / 255


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_grey_scaled_by_65535(tmp_path: Path, suffix: str) -> None:
    ramp = _ramp(np.uint16)
    ramp[1, 1] = 257  # 257 / 65535 == 1 / 255: a 16-bit value that is not a multiple of 256
    path = tmp_path / f"frame16{suffix}"
    assert cv2.imwrite(str(path), ramp)
    grey = read_image(path)
    assert grey[-1, -1] == 1.0
    assert grey[1, 1] == pytest.approx(1 / 255, abs=1e-7)
    np.testing.assert_allclose(grey, ramp / 65535.0, atol=1e-7)


def test_16bit_png_written_by_pillow(tmp_path: Path) -> None:
    values = np.array([[0, 1000], [40000, 65535]], np.uint16)
    path = tmp_path / "pil16.png"
    Image.fromarray(values).save(path)
    np.testing.assert_allclose(read_image(path), values / 65535.0, atol=1e-7)


@pytest.mark.parametrize("bits", [8, 16])
def test_bgr_colour_reduced_to_cv2_luma(tmp_path: Path, bits: int) -> None:
    scale = 1 if bits == 8 else 257
    dtype = np.uint8 if bits == 8 else np.uint16
    image = np.zeros((4, 5, 3), dtype)
    image[:] = np.array(COLOUR_BGR) * scale
    path = tmp_path / f"colour{bits}.png"
    assert cv2.imwrite(str(path), image)
    grey = read_image(path)
    assert grey.shape == (4, 5)
    expected = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[0, 0] / float(np.iinfo(dtype).max)
    assert grey[2, 2] == pytest.approx(expected, abs=1e-6)
    assert grey[2, 2] == pytest.approx(LUMA_8BIT / 255, abs=1.5 / 255)


def test_bgra_drops_alpha(tmp_path: Path) -> None:
    image = np.zeros((3, 3, 4), np.uint8)
    image[..., :3] = COLOUR_BGR
    image[..., 3] = np.array([[0, 128, 255]] * 3)  # alpha must not change the grey value
    path = tmp_path / "alpha.png"
    assert cv2.imwrite(str(path), image)
    grey = read_image(path)
    assert grey.shape == (3, 3)
    assert np.all(grey == grey[0, 0])
    assert grey[0, 0] == pytest.approx(LUMA_8BIT / 255, abs=1.5 / 255)


def test_palette_png(tmp_path: Path) -> None:
    picture = Image.new("P", (5, 4), 0)
    palette = [0, 0, 0] * 256
    palette[3:6] = [200, 30, 10]  # index 1 is the known colour (RGB for Pillow)
    picture.putpalette(palette)
    picture.putpixel((3, 2), 1)
    path = tmp_path / "palette.png"
    picture.save(path)
    assert Image.open(path).mode == "P"
    grey = read_image(path)
    assert grey.shape == (4, 5)
    assert grey[2, 3] == pytest.approx(LUMA_8BIT / 255, abs=1.5 / 255)
    assert grey[0, 0] == 0.0


def test_grey_with_alpha_png(tmp_path: Path) -> None:
    path = tmp_path / "la.png"
    Image.new("LA", (3, 2), (100, 7)).save(path)
    np.testing.assert_allclose(read_image(path), np.full((2, 3), 100 / 255), atol=1e-6)


# ---------------------------------------------------------------- to_grey on arrays


def test_to_grey_arrays() -> None:
    assert to_grey(np.array([[0, 255]], np.uint8)).tolist() == [[0.0, 1.0]]
    assert to_grey(np.array([[65535]], np.uint16))[0, 0] == 1.0
    assert to_grey(np.full((2, 2, 1), 51, np.uint8))[1, 1] == pytest.approx(0.2)
    assert to_grey(np.array([[True, False]])).tolist() == [[1.0, 0.0]]
    np.testing.assert_array_equal(to_grey(np.array([[0.25]], np.float64)), [[0.25]])
    with pytest.raises(InputError, match="^cam: unsupported image shape"):
        to_grey(np.zeros((2, 2, 2), np.uint8), "cam")
    with pytest.raises(InputError, match="^cam: .*NaN"):
        to_grey(np.array([[np.nan]]), "cam")


# ---------------------------------------------------------------- files that are not images


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    assert "empty" in _error_of(path)


def test_truncated_png(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    assert cv2.imwrite(str(path), (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "cannot decode" in _error_of(path)


def test_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("these are not pixels\n")
    assert "cannot decode" in _error_of(path)


def test_missing_file(tmp_path: Path) -> None:
    assert "not found" in _error_of(tmp_path / "absent.png")


def test_folder_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "dir.png").mkdir()
    _error_of(tmp_path / "dir.png")


def _png_announcing(tmp_path: Path, width: int, height: int) -> Path:
    """A real small PNG whose IHDR is patched to announce width x height (with a correct CRC)."""
    path = tmp_path / f"bomb_{width}x{height}.png"
    Image.new("L", (8, 8), 0).save(path)
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any pixel decoding is attempted: the size check must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("cv2.imdecode called on an oversized image")

    monkeypatch.setattr(images.cv2, "imdecode", refuse)


def test_header_announcing_40000_squared_is_refused_before_decoding(tmp_path: Path, no_decoding: None) -> None:
    path = _png_announcing(tmp_path, 40000, 40000)
    start = time.perf_counter()
    message = _error_of(path)
    assert time.perf_counter() - start < 1.0
    assert "pixel limit" in message


def test_header_above_our_limit_but_below_pillows_is_refused(tmp_path: Path, no_decoding: None) -> None:
    # 12000 x 10000 = 1.2e8 pixels: over MAX_PIXELS (1e8), under Pillow's own bomb error (~1.8e8).
    path = _png_announcing(tmp_path, 12000, 10000)
    message = _error_of(path)
    assert "12000 x 10000" in message and "pixel limit" in message


def test_header_check_respects_a_disabled_pillow_limit(tmp_path: Path, no_decoding: None,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Some programs set Image.MAX_IMAGE_PIXELS = None; our own limit must still hold.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    path = _png_announcing(tmp_path, 40000, 40000)
    with Image.open(path) as probe:  # the patched header is well formed and read as such
        assert probe.size == (40000, 40000)
    message = _error_of(path)
    assert "40000 x 40000" in message


# ---------------------------------------------------------------- finding files


def _touch_image(path: Path) -> Path:
    assert cv2.imwrite(str(path), np.zeros((2, 2), np.uint8))
    return path


def test_list_images_sorted_and_filtered(tmp_path: Path) -> None:
    for name in ("b.png", "a.TIF", "c.jpeg", "d.bmp"):
        _touch_image(tmp_path / name)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub.png").mkdir()  # a folder with an image suffix is not an image
    assert [p.name for p in list_images(tmp_path)] == ["a.TIF", "b.png", "c.jpeg", "d.bmp"]


def test_list_images_of_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        list_images(tmp_path / "nothing")


def test_find_image_any_suffix(tmp_path: Path) -> None:
    _touch_image(tmp_path / "frame_7.bmp")
    _touch_image(tmp_path / "frame_8.JPG")
    _touch_image(tmp_path / "frame_9.Png")
    (tmp_path / "frame_7.txt").write_text("not an image")
    assert find_image(tmp_path, "frame_7") == tmp_path / "frame_7.bmp"
    assert find_image(tmp_path, "frame_8") == tmp_path / "frame_8.JPG"
    # every file list_images offers must be findable by its stem
    assert find_image(tmp_path, "frame_9") == tmp_path / "frame_9.Png"
    for listed in list_images(tmp_path):
        assert find_image(tmp_path, listed.stem) == listed


@pytest.mark.parametrize("names", [("x.bmp", "x.png"), ("x.png", "x.PNG"), ("x.jpg", "x.Png")])
def test_two_images_sharing_a_stem_are_refused_by_find_and_list(tmp_path: Path, names: tuple[str, str]) -> None:
    # every output is named by the stem: picking one of them would leave the other's labels to it
    for name in names:
        _touch_image(tmp_path / name)
    _touch_image(tmp_path / "y.png")
    for call in (lambda: find_image(tmp_path, "x"), lambda: list_images(tmp_path)):
        with pytest.raises(InputError) as info:
            call()
        message = str(info.value)
        assert message.startswith(str(tmp_path / "x")) and "two images share the name x" in message
        assert all(name in message for name in names) and "\n" not in message
    assert find_image(tmp_path, "y") == tmp_path / "y.png"  # the other images are still found


def test_hidden_files_are_not_images(tmp_path: Path) -> None:
    _touch_image(tmp_path / "a.png")
    _touch_image(tmp_path / ".a.0123456789ab.tmp.png")  # a temporary a killed run left
    (tmp_path / "._b.png").write_bytes(b"macOS resource fork")
    assert list_images(tmp_path) == [tmp_path / "a.png"]
    assert find_image(tmp_path, "a") == tmp_path / "a.png"


def test_find_image_missing_names_the_stem(tmp_path: Path) -> None:
    (tmp_path / "ghost.txt").write_text("1\n0.5 0.5\n")
    with pytest.raises(InputError) as info:
        find_image(tmp_path, "ghost")
    message = str(info.value)
    assert message.startswith(str(tmp_path / "ghost"))
    assert len(message.splitlines()) == 1
