"""The annotation tool's HTTP API, against a real server on a loopback port.

The dataset is built here: a.png (8-bit, 40 x 30, labelled), b.png (16-bit, 64 x 48, dark),
c.png (whose label file is a link out of the dataset), and an image link out of the dataset.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from pinpoint.annotate import make_server
from pinpoint.annotate.store import MAX_POINTS
from pinpoint.errors import InputError
from pinpoint.points import Points

SECRET = "do not touch\n"


def make_dataset(root: Path) -> Path:
    data = root / "ds"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    cv2.imwrite(str(data / "images" / "a.png"), np.full((30, 40), 90, np.uint8))
    # b: 256 distinct dark 16-bit levels 1000..1255, so a min-max stretch maps level v to v - 1000
    ramp = (1000 + np.arange(64 * 48) % 256).astype(np.uint16).reshape(48, 64)
    cv2.imwrite(str(data / "images" / "b.png"), ramp)
    cv2.imwrite(str(data / "images" / "c.png"), np.zeros((20, 20), np.uint8))
    (data / "labels" / "a.txt").write_text("1\n0.5 0.5\n")
    (root / "secret.txt").write_text(SECRET)
    cv2.imwrite(str(root / "outside.png"), np.full((10, 10), 255, np.uint8))
    os.symlink(root / "outside.png", data / "images" / "evil.png")
    os.symlink(root / "secret.txt", data / "labels" / "c.txt")
    return data


class FakeDetector:
    """Deterministic suggestions per image, counting calls to check the cache."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.points = {
            "a": Points([[21.0, 15.0], [5.0, 5.0]], [0.9, 0.3], (30, 40)),
            "b": Points(np.zeros((0, 2)), np.zeros(0), (48, 64)),
            "c": Points([[3.0, 4.0]], [0.5], (20, 20)),
        }

    def __call__(self, path: Path) -> Points:
        self.calls.append(path.stem)
        return self.points[path.stem]


class Client:
    """Raw HTTP requests: http.client leaves paths exactly as written (no normalising of '..')."""

    def __init__(self, port: int):
        self.port = port

    def request(self, method: str, path: str, body: bytes | str | None = None, headers: dict | None = None,
                json_body: object = None) -> tuple[int, dict, bytes]:
        headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body)
            headers.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode("utf-8")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, **kwargs) -> tuple[int, dict]:
        status, headers, body = self.request(method, path, **kwargs)
        assert headers["content-type"].startswith("application/json"), (status, body[:200])
        return status, json.loads(body)


def run_server(data: Path, predictor=None):
    server = make_server(data, host="127.0.0.1", port=0, predictor=predictor)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture()
def setup(tmp_path):
    data = make_dataset(tmp_path)
    detector = FakeDetector()
    server, thread = run_server(data, detector)
    try:
        yield Client(server.port), data, detector, tmp_path
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture()
def client(setup):
    return setup[0]


# ----- page and static files -------------------------------------------------------------

def test_page_and_static_files_are_served(client):
    status, headers, body = client.request("GET", "/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert b'<canvas id="canvas"' in body
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
        status, headers, body = client.request("GET", f"/static/{name}")
        assert status == 200 and headers["content-type"].startswith(kind) and len(body) > 1000
    assert client.json("GET", "/static/nothing.js")[0] == 404
    assert client.json("GET", "/nowhere")[0] == 404


# ----- image list --------------------------------------------------------------------------

def test_image_list_reports_progress_and_skips_links_out_of_the_dataset(client):
    status, listing = client.json("GET", "/api/images")
    assert status == 200
    assert [e["name"] for e in listing["images"]] == ["a", "b", "c"]  # evil.png links outside: not listed
    assert listing["total"] == 3 and listing["labelled"] == 1 and listing["has_model"] is True
    a, b, c = listing["images"]
    assert (a["status"], a["count"]) == ("labelled", 1)
    assert (b["status"], b["count"]) == ("unlabelled", None)
    assert c["status"] == "invalid" and "outside the dataset" in c["error"]
    assert [e["disagrees"] for e in listing["images"]] == [None, None, None]  # nothing predicted yet


def test_predict_all_marks_disagreements(setup):
    client, data, detector, _ = setup
    (data / "labels" / "b.txt").write_text("1\n0.5 0.5\n")  # the model finds nothing in b: a miss
    status, listing = client.json("GET", "/api/images?predict=1")
    assert status == 200
    # a: one hit and one false alarm; b: one miss; c: label file refused, so it cannot be told
    assert {e["name"]: e["disagrees"] for e in listing["images"]} == {"a": True, "b": True, "c": None}
    assert sorted(detector.calls) == ["a", "b", "c"]


# ----- images ------------------------------------------------------------------------------

def get_png(client: Client, path: str) -> np.ndarray:
    status, headers, body = client.request("GET", path)
    assert status == 200 and headers["content-type"] == "image/png", body[:200]
    return cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED)


def test_dark_16bit_image_is_stretched_to_8_bits(client):
    levels = (1000 + np.arange(64 * 48) % 256).reshape(48, 64)
    minmax = get_png(client, "/api/image/b?low=0&high=100")
    assert minmax.dtype == np.uint8 and minmax.shape == (48, 64)
    np.testing.assert_array_equal(minmax, levels - 1000)
    raw = get_png(client, "/api/image/b?raw=1")
    assert raw.max() == 5 and raw.min() == 4  # 1255 / 65535 * 255 = 4.88: nearly black unstretched
    default = get_png(client, "/api/image/b").astype(np.float64)
    lo, hi = np.percentile(levels - 1000.0, [0.5, 99.5])  # 1.275 and 253.725
    expected = np.clip(np.rint((levels - 1000.0 - lo) * 255.0 / (hi - lo)), 0, 255)
    assert np.abs(default - expected).max() <= 1
    assert default.min() == 0 and default.max() == 255


@pytest.mark.parametrize("query", ["low=50&high=10", "low=-1&high=50", "low=0&high=101", "low=abc"])
def test_bad_percentiles_are_refused(client, query):
    status, payload = client.json("GET", f"/api/image/b?{query}")
    assert status == 400 and "percentile" in payload["error"]


def test_flat_image_renders_mid_grey(client):
    assert np.all(get_png(client, "/api/image/a") == 128)


# ----- labels ------------------------------------------------------------------------------

def test_existing_labels_load_in_pixels(client):
    status, a = client.json("GET", "/api/labels/a")
    assert status == 200 and a.pop("version").startswith('"')
    assert a == {"name": "a", "width": 40, "height": 30, "points": [[20.0, 15.0]]}
    assert client.json("GET", "/api/labels/b") == (200, {"name": "b", "width": 64, "height": 48, "points": None,
                                                         "version": '"absent"'})


def test_a_save_based_on_an_old_version_is_refused_and_shows_the_file(setup):
    client, data, _, _ = setup
    status, headers, body = client.request("GET", "/api/labels/a")
    version = headers["etag"]
    assert status == 200 and json.loads(body)["version"] == version
    # another tab saves first: the file and its version change
    status, headers, _ = client.request("PUT", "/api/labels/a", json_body={"points": [[5, 5]]}, headers={"If-Match": version})
    assert status == 200 and headers["etag"] != version
    newer = headers["etag"]
    # this tab, still at the first version, tries to save and then to delete: both refused, the file kept
    for method, kwargs in (("PUT", {"json_body": {"points": [[1, 1], [2, 2]]}}), ("DELETE", {})):
        status, payload = client.json(method, "/api/labels/a", headers={"If-Match": version}, **kwargs)
        assert status == 412 and "changed since this page read it" in payload["error"]
        assert np.allclose(payload["current"]["points"], [[5.0, 5.0]], atol=1e-4) and payload["current"]["version"] == newer
    assert (data / "labels" / "a.txt").read_text() == "1\n0.125000 0.166667\n"
    # with the version it was shown, the labeller's choice to keep theirs goes through
    status, payload = client.json("PUT", "/api/labels/a", json_body={"points": [[1, 1]]}, headers={"If-Match": newer})
    assert status == 200 and np.allclose(payload["points"], [[1.0, 1.0]], atol=1e-4)


def test_a_file_created_meanwhile_is_a_conflict_for_a_page_that_saw_none(setup):
    client, data, _, _ = setup
    (data / "labels" / "b.txt").write_text("1\n0.5 0.5\n")  # another program labelled b
    status, payload = client.json("PUT", "/api/labels/b", json_body={"points": []}, headers={"If-Match": '"absent"'})
    assert status == 412 and payload["current"]["points"] == [[32.0, 24.0]]
    assert (data / "labels" / "b.txt").read_text() == "1\n0.5 0.5\n"


def test_put_writes_the_label_file_exactly(setup):
    client, data, _, _ = setup
    status, payload = client.json("PUT", "/api/labels/b", json_body={"points": [[10.25, 20.5], [0, 0], [64, 48]]})
    assert status == 200
    # the answer is what the file now holds: normalised coordinates keep 6 decimals (1e-6 * 64 px here)
    assert payload["points"] == [[0.160156 * 64, 0.427083 * 48], [0.0, 0.0], [64.0, 48.0]]
    # 10.25 / 64 = 0.16015625, 20.5 / 48 = 0.4270833...
    assert (data / "labels" / "b.txt").read_text() == "3\n0.160156 0.427083\n0.000000 0.000000\n1.000000 1.000000\n"
    assert sorted(p.name for p in (data / "labels").iterdir()) == ["a.txt", "b.txt", "c.txt"]  # no temporary file left


def test_no_target_writes_zero_and_delete_unlabels(setup):
    client, data, _, _ = setup
    assert client.json("PUT", "/api/labels/a", json_body={"points": []})[0] == 200
    assert (data / "labels" / "a.txt").read_text() == "0\n"
    status, payload = client.json("DELETE", "/api/labels/a")
    assert status == 200 and payload["points"] is None
    assert not (data / "labels" / "a.txt").exists()
    assert client.json("DELETE", "/api/labels/a")[0] == 200  # already gone: nothing to do
    assert client.json("GET", "/api/images")[1]["labelled"] == 0


def test_labels_folder_is_created_on_first_save(tmp_path):
    data = tmp_path / "fresh"
    (data / "images").mkdir(parents=True)
    cv2.imwrite(str(data / "images" / "x.png"), np.zeros((10, 20), np.uint8))
    server, thread = run_server(data)
    try:
        client = Client(server.port)
        assert client.json("PUT", "/api/labels/x", json_body={"points": [[19, 9]]})[0] == 200
        assert (data / "labels" / "x.txt").read_text() == "1\n0.950000 0.900000\n"
        assert client.json("GET", "/api/predictions/x") == (409, {"error": "no model loaded: start the tool with --weights to get suggestions"})
        assert client.json("GET", "/api/images")[1]["has_model"] is False
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_failed_write_keeps_the_old_file(setup, monkeypatch):
    client, data, _, _ = setup

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    status, payload = client.json("PUT", "/api/labels/a", json_body={"points": [[1, 2], [3, 4]]})
    assert status == 503 and "No space left" in payload["error"] and "internal" not in payload["error"]  # the page retries
    assert (data / "labels" / "a.txt").read_text() == "1\n0.5 0.5\n"
    assert sorted(p.name for p in (data / "labels").iterdir()) == ["a.txt", "c.txt"]


def test_malformed_label_file_is_reported_not_overwritten_on_read(setup):
    client, data, _, _ = setup
    (data / "labels" / "b.txt").write_text("2\n0.1 0.1\n")
    status, payload = client.json("GET", "/api/labels/b")
    assert status == 422 and "count says 2" in payload["error"]
    entry = client.json("GET", "/api/images")[1]["images"][1]
    assert entry["status"] == "invalid"
    assert (data / "labels" / "b.txt").read_text() == "2\n0.1 0.1\n"


# ----- request validation ------------------------------------------------------------------

@pytest.mark.parametrize(("body", "message"), [
    ("not json", "not valid JSON"),
    ('{"points": [[NaN, 1]]}', "not valid JSON"),
    ('{"points": [[Infinity, 1]]}', "not valid JSON"),
    ('{"points": [[1e400, 1]]}', "finite"),
    ('{"points": [[1, 2, 3]]}', "two numbers"),
    ('{"points": [[true, 2]]}', "two numbers"),
    ('{"points": [["1", 2]]}', "two numbers"),
    ('{"points": [[64.01, 2]]}', "outside the image"),
    ('{"points": [[1, -0.001]]}', "outside the image"),
    ('{"points": [[1, 48.5]]}', "outside the image"),
    ('{"points": {"x": 1}}', "list"),
    ('[[1, 2]]', "JSON object"),
    ('{"points": [], "extra": 1}', "JSON object"),
    ('{"points": [[1, 2]]}'.encode("utf-16"), "not valid JSON"),
])
def test_bad_bodies_are_refused_and_nothing_is_written(setup, body, message):
    client, data, _, _ = setup
    status, payload = client.json("PUT", "/api/labels/b", body=body, headers={"Content-Type": "application/json"})
    assert status == 400 and message in payload["error"]
    assert not (data / "labels" / "b.txt").exists()


def test_point_count_is_bounded(setup):
    client, data, _, _ = setup
    too_many = {"points": [[1, 1]] * (MAX_POINTS + 1)}
    status, payload = client.json("PUT", "/api/labels/b", json_body=too_many)
    assert status == 400 and f"at most {MAX_POINTS}" in payload["error"]
    grid = [[k % 100 * 0.6, k // 100 * 0.45] for k in range(MAX_POINTS)]  # distinct points inside the 64 x 48 image
    assert client.json("PUT", "/api/labels/b", json_body={"points": grid})[0] == 200
    assert (data / "labels" / "b.txt").read_text().startswith(f"{MAX_POINTS}\n")


def test_a_point_given_twice_is_written_once(setup):
    client, data, _, _ = setup
    status, payload = client.json("PUT", "/api/labels/b", json_body={"points": [[10, 20], [30, 5], [10, 20]]})
    assert status == 200 and np.allclose(payload["points"], [[10, 20], [30, 5]], atol=1e-3)
    assert (data / "labels" / "b.txt").read_text().startswith("2\n")


def test_body_size_content_type_and_length_are_checked(setup):
    client, data, _, _ = setup
    huge = b'{"points": [' + b" " * 1_000_001 + b"]}"
    status, payload = client.json("PUT", "/api/labels/b", body=huge, headers={"Content-Type": "application/json"})
    assert status == 413
    status, payload = client.json("PUT", "/api/labels/b", body='{"points": []}', headers={"Content-Type": "text/plain"})
    assert status == 415
    conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=10)
    conn.putrequest("PUT", "/api/labels/b")
    conn.putheader("Content-Type", "application/json")
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 411 and "Content-Length" in json.loads(response.read())["error"]
    conn.close()
    assert not (data / "labels" / "b.txt").exists()


@pytest.mark.parametrize(("method", "path"), [("POST", "/api/labels/a"), ("PUT", "/api/images"),
                                              ("DELETE", "/api/image/a"), ("PUT", "/")])
def test_wrong_methods_are_refused(client, method, path):
    assert client.json(method, path, json_body={"points": []})[0] == 405


def test_unknown_methods_get_a_json_error(client):
    status, payload = client.json("OPTIONS", "/api/images")
    assert status == 501 and "OPTIONS" in payload["error"]


# ----- security ----------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "expected"), [
    ("/api/labels/../../secret", 400),
    ("/api/labels/..%2F..%2Fsecret", 400),
    ("/api/labels/%2e%2e", 400),
    ("/api/labels/%2E%2E/secret", 400),
    ("/api/image/%2Fetc%2Fpasswd", 400),
    ("/api/image//etc/passwd", 400),
    ("/api/labels/a%00", 400),
    ("/api/labels/..%5C..%5Csecret", 400),
    ("/api/labels/%252e%252e", 404),  # decoded once: the literal name '%2e%2e' is no image
    ("/api/image/evil", 404),  # a link out of the dataset is not an image of it
    ("/api/image/outside", 404),
    ("/api/labels/nothing", 404),
    ("/static/..%2Fserver.py", 404),
    ("/static/../server.py", 400),
    ("/api/labels/c", 403),  # labels/c.txt links to a file outside the dataset
    ("/api/labels/%ff", 400),
])
def test_paths_out_of_the_dataset_are_refused(client, path, expected):
    status, payload = client.json("GET", path)
    assert status == expected, payload
    assert SECRET.strip() not in json.dumps(payload)


def test_labels_folder_swapped_for_a_link_while_running_is_refused(setup):
    client, data, _, root = setup
    (root / "elsewhere").mkdir()
    (data / "labels" / "a.txt").unlink()
    (data / "labels" / "c.txt").unlink()
    (data / "labels").rmdir()
    os.symlink(root / "elsewhere", data / "labels")
    assert client.json("PUT", "/api/labels/a", json_body={"points": []})[0] == 403
    assert client.json("GET", "/api/labels/a")[0] == 403
    assert list((root / "elsewhere").iterdir()) == []


@pytest.mark.parametrize("path", ["/api/labels/c", "/api/labels/..%2F..%2Fsecret", "/api/labels/%2Ftmp%2Fx", "/api/labels/evil"])
def test_writes_out_of_the_dataset_are_refused(setup, path):
    client, data, _, root = setup
    before = sorted(p.name for p in root.rglob("*"))
    status, _ = client.json("PUT", path, json_body={"points": []})
    assert 400 <= status < 500
    assert client.json("DELETE", path)[0] in (400, 403, 404)
    assert (root / "secret.txt").read_text() == SECRET
    assert (root / "outside.png").exists()
    assert sorted(p.name for p in root.rglob("*")) == before


@pytest.mark.parametrize("headers", [{"Host": "evil.example:80"}, {"Host": "attacker.test"}])
def test_foreign_host_headers_are_refused(client, headers):
    # a page on another site that rebinds its DNS name to 127.0.0.1 still sends its own Host
    assert client.json("GET", "/api/images", headers=headers)[0] == 403


def test_cross_site_writes_are_refused(setup):
    client, data, _, _ = setup
    cross = {"Origin": "http://evil.example"}
    assert client.json("PUT", "/api/labels/b", json_body={"points": []}, headers=cross)[0] == 403
    assert client.json("GET", "/api/labels/a", headers={"Sec-Fetch-Site": "cross-site"})[0] == 403
    assert not (data / "labels" / "b.txt").exists()
    same = {"Origin": f"http://127.0.0.1:{client.port}", "Sec-Fetch-Site": "same-origin"}
    assert client.json("PUT", "/api/labels/b", json_body={"points": []}, headers=same)[0] == 200


def test_dataset_folders_linked_outside_are_refused_at_start(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    data = tmp_path / "ds"
    data.mkdir()
    os.symlink(outside, data / "images")
    with pytest.raises(InputError, match="points outside"):
        make_server(data, port=0)
    (data / "images").unlink()
    (data / "images").mkdir()
    os.symlink(tmp_path / "not-yet", data / "labels")  # a dangling link would be created outside on first save
    with pytest.raises(InputError, match="points outside"):
        make_server(data, port=0)
    with pytest.raises(InputError, match="no images/ folder"):
        make_server(outside, port=0)
    with pytest.raises(InputError, match="not a folder"):
        make_server(tmp_path / "missing", port=0)


def test_a_taken_port_is_an_input_error(setup):
    client, data, _, _ = setup
    with pytest.raises(InputError, match=f"127.0.0.1:{client.port}: cannot listen there"):
        make_server(data, port=client.port)


# ----- predictions and review --------------------------------------------------------------

def test_predictions_are_served_and_cached(setup):
    client, _, detector, _ = setup
    expected = (200, {"name": "a", "points": [[21.0, 15.0, 0.9], [5.0, 5.0, 0.3]]})
    assert client.json("GET", "/api/predictions/a") == expected
    assert client.json("GET", "/api/predictions/a") == expected
    assert detector.calls == ["a"]
    assert client.json("GET", "/api/predictions/b") == (200, {"name": "b", "points": []})


def test_review_marks_hits_misses_and_false_alarms(setup):
    client, data, _, _ = setup
    status, review = client.json("GET", "/api/review/a")
    assert status == 200
    # target (20, 15) is 1 px from the prediction (21, 15): a hit; (5, 5) matches nothing
    assert review["gt"] == [[20.0, 15.0, True]]
    assert review["pred"] == [[21.0, 15.0, 0.9, True], [5.0, 5.0, 0.3, False]]
    assert (review["hits"], review["misses"], review["false_alarms"], review["max_dist"]) == (1, 0, 1, 3.0)
    client.json("PUT", "/api/labels/a", json_body={"points": [[24.5, 15.0], [30, 20]]})  # 3.5 px away: no longer a hit
    review = client.json("GET", "/api/review/a")[1]
    assert [g[2] for g in review["gt"]] == [False, False]
    assert (review["hits"], review["misses"], review["false_alarms"]) == (0, 2, 2)
    status, review = client.json("GET", "/api/review/b")
    assert status == 200 and review["labelled"] is False and review["gt"] == [] and review["pred"] == []


def test_images_are_listed_in_natural_order(tmp_path):
    data = tmp_path / "frames"
    (data / "images").mkdir(parents=True)
    for name in ("frame_10.png", "frame_2.png", "frame_1.png"):
        cv2.imwrite(str(data / "images" / name), np.zeros((4, 4), np.uint8))
    server, thread = run_server(data)
    try:
        client = Client(server.port)
        names = [e["name"] for e in client.json("GET", "/api/images")[1]["images"]]
        assert names == ["frame_1", "frame_2", "frame_10"]
        # an image added while the tool runs, sharing a stem: one label file for two pictures, refused by name
        cv2.imwrite(str(data / "images" / "frame_2.jpg"), np.zeros((4, 4), np.uint8))
        status, body = client.json("GET", "/api/images")
        assert status == 409 and "frame_2.jpg, frame_2.png" in body["error"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_two_images_sharing_a_stem_are_refused_at_start(tmp_path):
    data = tmp_path / "frames"
    (data / "images").mkdir(parents=True)
    for name in ("a.png", "a.jpg"):
        cv2.imwrite(str(data / "images" / name), np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="two images share the name a"):
        make_server(data, port=0)


def test_with_a_model_suggestions_reach_below_its_threshold_while_review_counts_from_it(tmp_path):
    from pinpoint.annotate.server import SUGGESTION_FLOOR
    from pinpoint.predict import load

    data = tmp_path / "ds"
    (data / "images").mkdir(parents=True)
    frame = np.random.default_rng(0).normal(0.3, 0.02, (64, 80))
    for k, (y, x) in enumerate([(20, 20), (40, 60)]):  # a bright target and a faint one
        frame[y - 1:y + 2, x - 1:x + 2] += 0.5 if k == 0 else 0.14  # the pretrained model scores it about 0.34
    cv2.imwrite(str(data / "images" / "f.png"), (frame.clip(0, 1) * 255).astype(np.uint8))
    threshold = load("pretrained").threshold
    server, thread = run_server_with_weights(data)
    try:
        client = Client(server.port)
        status, listing = client.json("GET", "/api/images")
        assert status == 200 and listing["threshold"] == pytest.approx(threshold)
        scores = [s for _, _, s in client.json("GET", "/api/predictions/f")[1]["points"]]
        assert len(scores) == 2 and min(scores) >= SUGGESTION_FLOOR * threshold - 1e-9 and min(scores) < threshold
        review = client.json("GET", "/api/review/f")[1]
        assert all(s >= threshold for _, _, s, _ in review["pred"])
        assert len(review["pred"]) == 1  # the faint one is a suggestion, not a prediction the review counts
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def run_server_with_weights(data: Path):
    server = make_server(data, weights="pretrained", host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    return server, thread


def test_images_say_how_unsure_the_model_is_and_how_much_it_disagrees(setup):
    client, data, _, _ = setup
    (data / "labels" / "b.txt").write_text("2\n0.5 0.5\n0.25 0.25\n")  # the model finds nothing in b: two misses
    status, listing = client.json("GET", "/api/images?predict=1")
    assert status == 200
    entries = {e["name"]: e for e in listing["images"]}
    assert (entries["a"]["disagreement"], entries["b"]["disagreement"], entries["c"]["disagreement"]) == (1, 2, None)
    assert entries["b"]["doubt"] == 0.0  # no point at all: nothing to be unsure of
    assert entries["a"]["doubt"] == pytest.approx(0.6)  # its 0.3 point is 0.2 from the cut (0.5 without a threshold)


def test_train_needs_a_model_and_enough_labels(setup, tmp_path):
    client, data, _, _ = setup
    status, payload = client.json("POST", "/api/train")
    assert status == 409 and "no model" in payload["error"]
    server = make_server(data, weights="pretrained", host="127.0.0.1", port=0, runs=tmp_path / "runs" / "annotate")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        other = Client(server.port)
        for name in ("a", "b"):
            (data / "labels" / f"{name}.txt").unlink(missing_ok=True)
        status, payload = other.json("POST", "/api/train")
        assert status == 409 and "label at least 2 images" in payload["error"]
        assert other.json("GET", "/api/train") == (200, {"state": "idle", "epoch": 0, "epochs": 100, "images": 0,
                                                         "run": None, "message": ""})
        assert not (tmp_path / "runs").exists()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
