"""End to end: headless Chromium clicks on the annotation page, then the label files on disk are read.

Needs Debian's chromium (/usr/bin/chromium, or PINPOINT_CHROMIUM) and the Python playwright
package; .ci/browser-deps.sh installs both, and these tests skip with a reason without them.
No browser is downloaded: Playwright drives the system's Chromium through executable_path.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from pinpoint.annotate import make_server
from pinpoint.points import Points

W, H = 320, 240  # larger than the canvas in neither direction: the fitted scale is a few screen px per pixel
VIEWPORT = {"width": 1280, "height": 800}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def find_chromium() -> str | None:
    candidates = [os.environ.get("PINPOINT_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    try:
        from playwright import sync_api
    except ImportError as exc:
        pytest.skip(f"playwright is not installed ({exc}); see .ci/browser-deps.sh")
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium; see .ci/browser-deps.sh)")
    playwright = sync_api.sync_playwright().start()
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path_factory.mktemp("chromium-profile")), executable_path=chromium, headless=True,
        args=CHROMIUM_ARGS, viewport=VIEWPORT, device_scale_factor=1,
        bypass_csp=True)  # the page forbids eval; wait_for_function needs it
    try:
        yield context
    finally:
        context.close()
        playwright.stop()


class FakeDetector:
    def __call__(self, path: Path) -> Points:
        if path.stem == "img0":
            return Points([[60.25, 40.5], [250.0, 200.0]], [0.92, 0.41], (H, W))
        if path.stem == "img1":  # many suggestions, far from where the tests click
            return Points([[300.0, 10.0 + 20 * k] for k in range(5)], [0.9, 0.8, 0.7, 0.6, 0.5], (H, W))
        return Points(np.zeros((0, 2)), np.zeros(0), (H, W))


@pytest.fixture()
def dataset(tmp_path):
    data = tmp_path / "ds"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        frame = rng.normal(2000, 40, (H, W)).clip(0, 65535).astype(np.uint16)  # dark 16-bit infrared frame
        frame[100 + i, 150 + i] = 6000
        cv2.imwrite(str(data / "images" / f"img{i}.png"), frame)
    (data / "labels" / "img2.txt").write_text("1\n0.5 0.5\n")
    return data


@pytest.fixture()
def app(dataset, browser_context):
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    app = Page(page, dataset)
    try:
        yield app
        assert errors == []
    finally:
        page.close()
        app.stop()


class Page:
    """The page under test and its server, with helpers that speak image pixels."""

    def __init__(self, page, data: Path, port: int = 0):
        self.page = page
        self.data = data
        self.labels = data / "labels"
        self.restart(port)

    def restart(self, port: int | None = None) -> None:
        """Start the server, by default on the port it had (as a user restarting it would)."""
        port = self.server.port if port is None else port
        self.server = make_server(self.data, host="127.0.0.1", port=port, predictor=FakeDetector())
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.url = self.server.url

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def open(self, name: str = "") -> None:
        self.page.goto(self.url + (f"#{name}" if name else ""))
        self.page.wait_for_selector("body[data-ready]", timeout=10_000)

    def view(self) -> dict:
        return self.page.evaluate("window.pinpoint.view()")

    def idle(self) -> None:
        state = self.page.evaluate("window.pinpoint.idle()")
        assert state == {"pending": 0, "error": None}

    def canvas_box(self) -> dict:
        return self.page.locator("#canvas").bounding_box()

    def screen(self, x: float, y: float) -> tuple[float, float]:
        """Page position of image point (x, y): pixel centres at integers, the left edge at x = -0.5."""
        box, v = self.canvas_box(), self.view()
        return box["x"] + v["ox"] + (x + 0.5) * v["scale"], box["y"] + v["oy"] + (y + 0.5) * v["scale"]

    def click(self, x: float, y: float, button: str = "left") -> None:
        self.page.mouse.click(*self.screen(x, y), button=button)
        self.idle()

    def click_unsaved(self, x: float, y: float) -> None:
        """A click whose save is expected to fail: waits for the page to say so."""
        self.page.mouse.click(*self.screen(x, y))
        self.page.wait_for_function("document.getElementById('save-status').className === 'failed'")

    def label_text(self, name: str) -> str | None:
        path = self.labels / f"{name}.txt"
        return path.read_text() if path.exists() else None

    def label_points(self, name: str) -> np.ndarray:
        lines = self.label_text(name).splitlines()
        assert int(lines[0]) == len(lines) - 1
        return np.array([[float(v) for v in line.split()] for line in lines[1:]]).reshape(-1, 2) * [W, H]


def test_click_zoom_undo_and_next_image(app):
    app.open()
    assert app.page.inner_text("#image-name") == "img0"  # the first unlabelled image
    assert app.page.inner_text("#progress-text") == "1 / 3 labelled"

    # the image is fitted into the canvas with its aspect ratio and centred
    box, v = app.canvas_box(), app.view()
    fit = min(box["width"] / W, box["height"] / H)
    assert v["scale"] == pytest.approx(fit)
    assert v["ox"] == pytest.approx((box["width"] - W * fit) / 2)
    assert v["oy"] == pytest.approx((box["height"] - H * fit) / 2)

    # a click at a known place lands within half a screen pixel, 0.5 / fit image pixels
    app.click(100.3, 50.7)
    first = app.label_points("img0")
    assert first.shape == (1, 2)
    assert np.abs(first[0] - [100.3, 50.7]).max() <= 0.5 / fit
    assert app.page.inner_text("#progress-text") == "2 / 3 labelled"

    # zoom with the wheel around the cursor: the image point under the cursor stays put
    sx, sy = (round(v) for v in app.screen(200.0, 150.0))  # wheel events carry whole CSS pixels
    app.page.mouse.move(sx, sy)
    for _ in range(12):
        app.page.mouse.wheel(0, -240)
    app.page.wait_for_function(f"window.pinpoint.view().scale >= {12 * fit}")
    zoomed = app.view()
    assert zoomed["scale"] <= 16 * fit + 1e-9
    before = ((sx - box["x"] - v["ox"]) / v["scale"], (sy - box["y"] - v["oy"]) / v["scale"])
    after = ((sx - box["x"] - zoomed["ox"]) / zoomed["scale"], (sy - box["y"] - zoomed["oy"]) / zoomed["scale"])
    assert after == pytest.approx(before, abs=1e-6)
    assert before == pytest.approx((200.5, 150.5), abs=0.5 / fit)

    # a click while zoomed in is placed far more precisely
    app.click(200.37, 150.62)
    points = app.label_points("img0")
    assert points.shape == (2, 2)
    assert np.abs(points[0] - first[0]).max() < 1e-3
    assert np.abs(points[1] - [200.37, 150.62]).max() <= 0.5 / zoomed["scale"]
    assert 0.5 / zoomed["scale"] < 0.05

    # undo removes the second point on disk; undo again returns to no label file at all; redo restores
    app.page.keyboard.press("Control+z")
    app.idle()
    assert np.abs(app.label_points("img0") - first).max() < 1e-9
    app.page.click("#undo")
    app.idle()
    assert app.label_text("img0") is None
    app.page.keyboard.press("Control+y")
    app.idle()
    assert np.abs(app.label_points("img0") - first).max() < 1e-9

    # d moves to the next image, a comes back with the labels loaded from disk
    app.page.keyboard.press("d")
    app.page.wait_for_function("window.pinpoint.view().name === 'img1' && window.pinpoint.view().editable")
    assert app.page.inner_text("#image-name") == "img1"
    assert app.page.inner_text("#count").startswith("not labelled")
    app.page.keyboard.press("a")
    app.page.wait_for_function("window.pinpoint.view().name === 'img0' && window.pinpoint.view().editable")
    assert app.page.locator("#point-list li").count() == 1


def test_drag_right_click_delete_and_no_target(app):
    app.open("img2")
    assert app.view()["name"] == "img2"
    np.testing.assert_allclose(app.label_points("img2"), [[160.0, 120.0]])

    # drag the existing point by 10 image pixels to the right
    x0, y0 = app.screen(160.0, 120.0)
    step = 10 * app.view()["scale"]
    app.page.mouse.move(x0, y0)
    app.page.mouse.down()
    app.page.mouse.move(x0 + step / 2, y0, steps=3)
    app.page.mouse.move(x0 + step, y0, steps=3)
    app.page.mouse.up()
    app.idle()
    np.testing.assert_allclose(app.label_points("img2"), [[170.0, 120.0]], atol=1e-3)

    # a new point, then a right click on it removes it
    app.click(40.0, 30.0)
    assert len(app.label_points("img2")) == 2
    app.click(40.0, 30.0, button="right")
    np.testing.assert_allclose(app.label_points("img2"), [[170.0, 120.0]], atol=1e-3)

    # Delete removes the point under the cursor, leaving a labelled image with no target
    app.page.mouse.move(*app.screen(170.0, 120.0))
    app.page.keyboard.press("Delete")
    app.idle()
    assert app.label_text("img2") == "0\n"

    # "no target" on an image with points saves 0 too
    app.page.keyboard.press("d")  # last image: stays, with a note
    app.page.keyboard.press("a")
    app.page.wait_for_function("window.pinpoint.view().name === 'img1' && window.pinpoint.view().editable")
    app.click(10.0, 10.0)
    assert app.label_text("img1").startswith("1\n")
    app.page.click("#no-target")
    app.idle()
    assert app.label_text("img1") == "0\n"


def test_suggestions_accept_and_review(app):
    app.open("img0")
    app.page.wait_for_selector("#suggestion-list li button")
    rows = app.page.locator("#suggestion-list li")
    assert rows.count() == 2
    assert rows.nth(0).inner_text().startswith("0.92")

    # accept the first suggestion: it is written as a label and no longer offered
    rows.nth(0).locator("button").click()
    app.idle()
    np.testing.assert_allclose(app.label_points("img0"), [[60.25, 40.5]], atol=1e-3)
    assert app.page.locator("#suggestion-list li button").count() == 1

    # review: one target found, one prediction is a false alarm
    app.page.click("#mode-review")
    app.page.wait_for_function("document.getElementById('review-summary').textContent.includes('found')")
    assert app.page.inner_text("#review-summary").startswith("1 found · 0 missed · 1 false alarm(s)")

    # accept all takes the rest; the review follows the saved labels
    app.page.click("#accept-all")
    app.idle()
    np.testing.assert_allclose(app.label_points("img0"), [[60.25, 40.5], [250.0, 200.0]], atol=1e-3)
    app.page.wait_for_function("document.getElementById('review-summary').textContent.startsWith('2 found')")

    # the disagreement filter runs the model on every image: img2's target is missed by the model
    app.page.select_option("#filter", "disagree")
    app.page.wait_for_function("document.querySelectorAll('#image-list li:not(.outside)').length === 1")
    assert app.page.locator("#image-list li:not(.outside)").get_attribute("data-name") == "img2"


def test_a_change_made_while_the_server_is_down_is_saved_when_it_is_back(app, dataset):
    app.open("img1")
    app.stop()
    app.page.mouse.click(*app.screen(30.0, 20.0))
    app.page.wait_for_function("document.getElementById('save-status').className === 'failed'")
    assert app.label_text("img1") is None
    assert "retrying" in app.page.inner_text("#save-status")
    # the server comes back on the same port; the page sends the change again by itself
    app.restart()
    app.page.wait_for_function("document.getElementById('save-status').className === 'saved'", timeout=10_000)
    np.testing.assert_allclose(app.label_points("img1"), [[30.0, 20.0]], atol=0.5 / app.view()["scale"])


def test_two_tabs_on_one_image_never_overwrite_each_other_unseen(app, browser_context):
    app.open("img2")
    other = Page.__new__(Page)  # a second tab on the same server
    other.page, other.data, other.labels, other.server = browser_context.new_page(), app.data, app.labels, app.server
    try:
        other.page.goto(app.url + "#img2")
        other.page.wait_for_selector("body[data-ready]", timeout=10_000)
        # the first tab adds a point; the second, which read the file before, adds another
        app.click(40.0, 30.0)
        np.testing.assert_allclose(app.label_points("img2"), [[160.0, 120.0], [40.0, 30.0]], atol=1e-3)
        other.page.mouse.click(*other.screen(200.0, 100.0))
        other.page.wait_for_selector("#conflict[open]")
        # nothing was overwritten, the page says so and shows both versions
        np.testing.assert_allclose(app.label_points("img2"), [[160.0, 120.0], [40.0, 30.0]], atol=1e-3)
        assert "changed elsewhere" in other.page.inner_text("#save-status")
        assert "(200.00, 100.00)" in other.page.inner_text("#conflict-mine")
        assert "(40.00, 30.00)" in other.page.inner_text("#conflict-theirs")
        # the second tab keeps its own: written over the version it was shown
        other.page.click("#conflict-keep")
        other.idle()
        np.testing.assert_allclose(app.label_points("img2"), [[160.0, 120.0], [200.0, 100.0]], atol=1e-3)
        # the first tab, now stale, undoes its point: refused too (before, it deleted the file the other tab wrote)
        app.page.keyboard.press("Control+z")
        app.page.wait_for_selector("#conflict[open]")
        np.testing.assert_allclose(app.label_points("img2"), [[160.0, 120.0], [200.0, 100.0]], atol=1e-3)
        app.page.click("#conflict-take")  # it takes the file's: shown, and nothing more is written
        app.idle()
        assert app.page.locator("#point-list li").count() == 2
        np.testing.assert_allclose(app.label_points("img2"), [[160.0, 120.0], [200.0, 100.0]], atol=1e-3)
    finally:
        other.page.close()


def test_edits_of_two_images_that_failed_to_save_are_all_written_once_writing_works_again(app):
    app.open("img0")
    shutil.rmtree(app.labels)
    app.labels.write_text("not a folder")  # the labels folder cannot be written: every save fails on the server
    app.click_unsaved(30.0, 20.0)
    app.page.keyboard.press("d")
    app.page.wait_for_function("window.pinpoint.view().name === 'img1' && window.pinpoint.view().editable")
    app.click_unsaved(50.0, 60.0)  # a second image's edit fails as well; the first one's is still kept
    app.page.wait_for_function("document.getElementById('save-status').textContent.includes('2 images')")
    assert "retrying" in app.page.inner_text("#save-status")
    app.labels.unlink()
    app.labels.mkdir()  # fixed: both edits are written by the next retry, and only then is all saved
    app.page.wait_for_function("document.getElementById('save-status').textContent === 'all saved'", timeout=10_000)
    scale = app.view()["scale"]
    np.testing.assert_allclose(app.label_points("img0"), [[30.0, 20.0]], atol=0.5 / scale)
    np.testing.assert_allclose(app.label_points("img1"), [[50.0, 60.0]], atol=0.5 / scale)


def test_an_image_that_cannot_load_while_the_server_is_away_loads_when_it_is_back(app):
    app.open("img2")
    app.stop()
    app.page.keyboard.press("a")
    app.page.wait_for_function("document.getElementById('message').textContent.includes('trying again')")
    assert "fix or remove" not in app.page.inner_text("#message")  # its label file is fine: no advice to delete it
    app.restart()
    app.page.wait_for_function("window.pinpoint.view().name === 'img1' && window.pinpoint.view().editable",
                               timeout=10_000)
    assert app.page.is_hidden("#message") or "trying again" not in app.page.inner_text("#message")


def test_an_image_whose_edit_is_not_written_yet_shows_that_edit_when_opened_again(app):
    app.open("img0")
    shutil.rmtree(app.labels)
    app.labels.write_text("not a folder")
    app.click_unsaved(30.0, 20.0)
    app.page.keyboard.press("d")
    app.page.wait_for_function("window.pinpoint.view().name === 'img1' && window.pinpoint.view().editable",
                               timeout=10_000)
    app.page.keyboard.press("a")
    app.page.wait_for_function("window.pinpoint.view().name === 'img0' && window.pinpoint.view().editable")
    assert app.page.locator("#point-list li").count() == 1  # the edit, not the (still absent) file
    app.labels.unlink()
    app.labels.mkdir()
    app.page.wait_for_function("document.getElementById('save-status').textContent === 'all saved'", timeout=10_000)
    assert app.label_points("img0").shape == (1, 2)


def test_keyboard_paths_for_tiny_targets(app):
    app.open("img0")
    fit = app.view()["scale"]
    # + and - zoom around the cursor
    app.page.mouse.move(*app.screen(100.0, 80.0))
    app.page.keyboard.press("+")
    assert app.view()["scale"] == pytest.approx(1.5 * fit)
    app.page.keyboard.press("-")
    assert app.view()["scale"] == pytest.approx(fit)
    # a click adds a point and selects it; arrows nudge it, Shift by a tenth of a pixel
    app.click(100.0, 80.0)
    app.page.keyboard.press("ArrowRight")
    app.page.keyboard.press("Shift+ArrowDown")
    app.idle()
    np.testing.assert_allclose(app.label_points("img0"), [[101.0, 80.1]], atol=1e-3 + 0.5 / fit)
    # Shift+click beside it (inside its grab radius) adds a second point instead of grabbing the first
    app.page.keyboard.press("Escape")
    app.page.keyboard.down("Shift")
    app.page.mouse.click(*app.screen(102.0, 80.0))
    app.page.keyboard.up("Shift")
    app.idle()
    assert len(app.label_points("img0")) == 2
    # h hides the marks and says so
    app.page.keyboard.press("h")
    assert "marks hidden" in app.page.inner_text("#count")
    app.page.keyboard.press("h")
    # 0 on an image with points: no target, with its undo in place
    app.page.keyboard.press("0")
    app.idle()
    assert app.label_text("img0") == "0\n"
    assert app.page.is_visible("#toast") and "2 points removed" in app.page.inner_text("#toast")
    app.page.click("#toast-undo")
    app.idle()
    assert len(app.label_points("img0")) == 2
    # ? opens every key; Esc closes it
    app.page.keyboard.press("?")
    assert app.page.is_visible("#help") and "nudge" in app.page.inner_text("#help")
    app.page.keyboard.press("Escape")
    assert not app.page.is_visible("#help")
    # l goes to the image list; arrows move in it and Enter opens
    app.page.keyboard.press("l")
    assert app.page.evaluate("document.activeElement.dataset.name") == "img0"
    app.page.keyboard.press("ArrowDown")
    app.page.keyboard.press("Enter")
    app.page.wait_for_function("window.pinpoint.view().name === 'img1' && window.pinpoint.view().editable")


def test_zoom_can_stay_from_image_to_image_and_is_remembered(app):
    app.open("img0")
    fit = app.view()["scale"]
    app.page.check("#keep-view")
    app.page.mouse.move(*app.screen(100.0, 80.0))
    app.page.keyboard.press("+")
    zoomed = app.view()
    app.page.keyboard.press("d")
    app.page.wait_for_function("window.pinpoint.view().name === 'img1' && window.pinpoint.view().editable")
    assert (app.view()["scale"], app.view()["ox"]) == pytest.approx((zoomed["scale"], zoomed["ox"]))
    app.open("img1")  # a reload remembers the choice
    assert app.page.is_checked("#keep-view")
    app.page.uncheck("#keep-view")
    app.page.keyboard.press("+")
    app.page.keyboard.press("a")
    app.page.wait_for_function("window.pinpoint.view().name === 'img0' && window.pinpoint.view().editable")
    assert app.view()["scale"] == pytest.approx(fit)


def test_suggestions_by_score_by_click_and_by_key(app):
    app.open("img1")
    app.page.wait_for_selector("#suggestion-list li button")
    assert app.page.locator("#suggestion-list li button").count() == 5
    assert "primary" not in app.page.get_attribute("#accept-all", "class")  # many: not the highlighted button
    # the score slider hides the suggestions below it
    app.page.locator("#min-score").fill("0.75")
    assert app.page.locator("#suggestion-list li button").count() == 2
    assert "primary" in app.page.get_attribute("#accept-all", "class")
    # a click on a suggestion's ring accepts it
    sx, sy = app.screen(300.0, 10.0)
    app.page.mouse.click(sx + 8, sy)
    app.idle()
    np.testing.assert_allclose(app.label_points("img1"), [[300.0, 10.0]], atol=1e-3)
    # s accepts the suggestion nearest the cursor
    app.page.mouse.move(*app.screen(280.0, 35.0))
    app.page.keyboard.press("s")
    app.idle()
    np.testing.assert_allclose(app.label_points("img1"), [[300.0, 10.0], [300.0, 30.0]], atol=1e-3)


def test_train_on_my_labels_then_suggest_with_the_new_weights(browser_context, tmp_path):
    from pinpoint.cli import main

    data = tmp_path / "synth"
    assert main(["synth", str(data), "--n", "8", "--seed", "3", "--min-size", "96", "--max-size", "128"]) == 0
    server = make_server(data, weights="pretrained", host="127.0.0.1", port=0, train_epochs=1,
                         runs=tmp_path / "runs" / "annotate")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    page = browser_context.new_page()
    try:
        page.goto(server.url)
        page.wait_for_selector("body[data-ready]", timeout=10_000)
        before = server.store.predictor
        page.click("#train")
        page.wait_for_function("document.getElementById('train-status').textContent.includes('epoch')")
        # a second request while it runs is refused with a clear message
        page.wait_for_function("document.getElementById('train').disabled")
        status = page.evaluate("fetch('/api/train', {method: 'POST'}).then(r => r.json().then(j => [r.status, j.error]))")
        assert status[0] == 409 and "going already" in status[1]
        # the server keeps answering while it trains
        assert page.evaluate("fetch('/api/images').then(r => r.status)") == 200
        page.wait_for_function("document.getElementById('train-status').textContent.includes('trained on')",
                               timeout=120_000)
        assert (tmp_path / "runs" / "annotate" / "best.pt").is_file()
        assert server.store.predictor is not before  # suggestions now come from the new weights
        assert "runs/annotate" in page.inner_text("#message")
        assert page.evaluate("fetch('/api/train').then(r => r.json()).then(j => j.state)") == "done"
    finally:
        page.close()
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_label_mark_leaves_a_two_pixel_target_visible_at_the_fitted_size(app):
    app.open("img0")
    app.click(150.0, 100.0)
    scale = app.view()["scale"]

    def around_the_point() -> list:
        sx, sy = app.screen(150.0, 100.0)
        box = app.canvas_box()
        half = round(1.0 * scale)  # one image pixel each side: a 2 px target
        return app.page.evaluate(f"""(() => {{
            const canvas = document.getElementById('canvas');
            const dpr = window.devicePixelRatio || 1;
            const x = Math.round(({sx} - {box['x']} - {half}) * dpr), y = Math.round(({sy} - {box['y']} - {half}) * dpr);
            const side = Math.round(2 * {half} * dpr);
            return Array.from(canvas.getContext('2d').getImageData(x, y, side, side).data);
        }})()""")

    marked = around_the_point()
    app.page.keyboard.press("h")  # marks hidden: the image alone
    assert marked == around_the_point()


def test_the_list_can_put_what_most_needs_a_human_first(app):
    app.open("img0")
    app.page.select_option("#sort", "disagreement")
    # img2 is the one labelled image the model disagrees with (its target is missed)
    app.page.wait_for_function("document.querySelector('#image-list li').dataset.name === 'img2'")
    app.page.select_option("#sort", "doubt")
    # img1 has a point at 0.5, right at the cut (0.5 without a threshold): the model is least sure there
    app.page.wait_for_function("document.querySelector('#image-list li').dataset.name === 'img1'")
    assert [li.get_attribute("data-name") for li in app.page.locator("#image-list li").all()] == ["img1", "img0", "img2"]
