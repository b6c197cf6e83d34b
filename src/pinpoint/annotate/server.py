"""The HTTP side of `pinpoint annotate`: a small JSON API plus the static page, standard library only.

Endpoints (NAME is an image's file stem, percent-encoded; coordinates are pixels, x = column,
y = row, pixel centres at integers, valid range [0, W] x [0, H]):

    GET    /                       the page (static/index.html); /static/FILE its scripts and styles
    GET    /api/images             every image with its label status, progress, how unsure the model is
                                   (doubt) and how much it disagrees with the labels (misses + false alarms);
                                   ?predict=1 first runs the model on every image (disagreement filter)
    GET    /api/image/NAME         the image as an 8-bit PNG after a percentile stretch;
                                   ?low=0.5&high=99.5 sets the percentiles, ?raw=1 sends it unstretched
    GET    /api/labels/NAME        {"points": [[x, y], ...] | null, "width", "height", "version"}; null = no
                                   label file; the version (a hash of the file, or "absent") also as ETag
    PUT    /api/labels/NAME        body {"points": [[x, y], ...]} replaces labels/NAME.txt atomically
    DELETE /api/labels/NAME        removes labels/NAME.txt (the image is unlabelled again)
                                   Both take If-Match: the version the edit was based on. If the file
                                   has changed since (another tab, another program), nothing is
                                   written: 412 with {"error", "current": the file as GET gives it}.
    GET    /api/predictions/NAME   the model's points with scores: {"points": [[x, y, score], ...]}
    GET    /api/review/NAME        ground truth against predictions, misses and false alarms marked
    POST   /api/train              "train on my labels": fine-tune the model on the labelled images in
                                   the background (trainer.py); 409 while a run goes, or without a model;
                                   503 where no run folder can be made
    GET    /api/train              that run's state: idle | running (epoch, epochs) | done | failed

Every error is JSON {"error": "..."} with a 4xx/5xx status. The server binds 127.0.0.1 unless
told otherwise and then also refuses requests whose Host header is not a loopback name (so a
web page cannot reach it through DNS rebinding) and cross-site writes. A client that goes away
(resets or closes its connection mid-request) is dropped without a word: it is not an error.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
import threading
import traceback
import webbrowser
from collections import OrderedDict
from contextlib import contextmanager
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, unquote, urlsplit

from pinpoint.annotate.render import DEFAULT_HIGH, DEFAULT_LOW, render_png
from pinpoint.annotate.store import AnnotationStore, Predictor, RequestError, VersionConflict, check_name, parse_points
from pinpoint.annotate.trainer import RUNS, Trainer
from pinpoint.errors import InputError

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 1_000_000  # 10,000 points as JSON take about 400 kB
DRAIN_BYTES = 8_000_000  # a refused body up to this size is read and dropped, so the client sees the answer
TRAIN_EPOCHS = 100  # "train on my labels": the default recipe's epochs (25 images from the pretrained model: about a minute)
SUGGESTION_FLOOR = 0.5  # suggestions come from down to this fraction of the model's threshold (the page's slider)
PNG_CACHE_ENTRIES = 16  # rendered frames kept, so going back and forth costs no new decode
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
PAGE_POLICY = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"


class ClientGone(Exception):
    """The client reset or closed its connection while its request was read or its answer written."""


@contextmanager
def client_io() -> Iterator[None]:
    """Around reads and writes of the client's socket: a ConnectionError there is the client going
    away (ClientGone), which is no bug, unlike one raised elsewhere (a model behind a network)."""
    try:
        yield
    except ConnectionError as exc:
        raise ClientGone(str(exc)) from exc


class AnnotationServer(ThreadingHTTPServer):
    """A threaded HTTP server bound to one dataset; `serve_forever()` runs it (in a thread in tests)."""

    daemon_threads = True

    def __init__(self, store: AnnotationStore, host: str = "127.0.0.1", port: int = 8000, verbose: bool = False):
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.store = store
        self.trainer: Trainer | None = None  # "train on my labels", where there is a model to start from
        self.verbose = verbose
        self.host = host
        self.loopback_only = _is_loopback(host)
        self.static_files = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()}
        self._png_cache: OrderedDict[tuple, bytes] = OrderedDict()
        self._png_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((host, port), AnnotationHandler)

    def process_request(self, request: socket.socket, client_address) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        """Stop listening and also end kept-alive connections, whose threads would otherwise
        go on answering the browser after the server is closed."""
        super().server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: socket.socket, client_address) -> None:
        """socketserver prints a traceback for any error of a connection; a client that resets or
        closes its connection (a browser abandoning a fetch) is no error, so it passes silently."""
        if isinstance(sys.exc_info()[1], (ClientGone, ConnectionError)):  # the latter from the request line's read
            return
        super().handle_error(request, client_address)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}/"

    def image_png(self, name: str, low: float | None, high: float | None) -> bytes:
        """The stretched PNG of one image, from a small cache keyed on the file's modification time."""
        path = self.store.image_path(name)
        stat = path.stat()
        key = (name, low, high, stat.st_mtime_ns, stat.st_size)
        with self._png_lock:
            if key in self._png_cache:
                self._png_cache.move_to_end(key)
                return self._png_cache[key]
        png = render_png(self.store.read_image(name), low, high)
        with self._png_lock:
            self._png_cache[key] = png
            while len(self._png_cache) > PNG_CACHE_ENTRIES:
                self._png_cache.popitem(last=False)
        return png


class AnnotationHandler(BaseHTTPRequestHandler):
    """Routes one request; every refusal is a RequestError turned into a JSON error."""

    server: AnnotationServer
    protocol_version = "HTTP/1.1"
    server_version = "pinpoint-annotate"
    sys_version = ""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        try:
            self._check_origin(method)
            segments, query = split_path(self.path)
            self._route(method, segments, query)
        except VersionConflict as exc:  # the file as it is now, so the page can show both versions
            self.close_connection = True
            self._send_json({"error": exc.message, "current": labels_json(self.server.store, exc.name)}, 412)
        except RequestError as exc:
            self.close_connection = True  # a refused request's body may be unread: start afresh
            self._send_json({"error": exc.message}, exc.status)
        except ClientGone:  # a browser abandoning a fetch: no one to answer
            self.close_connection = True
        except Exception as exc:  # a bug, not the user's fault: say so, keep serving
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            self._send_json({"error": f"internal error: {type(exc).__name__}: {exc}"}, 500)

    def _route(self, method: str, segments: list[str], query: dict[str, list[str]]) -> None:
        store = self.server.store
        if segments in ([], ["index.html"]):
            self._allow(method, "GET")
            return self._send_static("index.html")
        if len(segments) == 2 and segments[0] == "static":
            self._allow(method, "GET")
            return self._send_static(segments[1])
        if segments == ["api", "images"]:
            self._allow(method, "GET")
            return self._send_json(image_list(store, predict_all=_flag(query, "predict"),
                                              server_can_train=self.server.trainer is not None))
        if segments == ["api", "train"]:
            self._allow(method, "GET", "POST")
            if self.server.trainer is None:
                raise RequestError(409, "no model to fine-tune: start the tool with --weights (or the pretrained model)")
            return self._send_json(self.server.trainer.start() if method == "POST" else self.server.trainer.status())
        if len(segments) != 3 or segments[0] != "api":
            raise RequestError(404, f"no such endpoint: {urlsplit(self.path).path}")
        kind, name = segments[1], segments[2]
        check_name(name)
        if kind == "image":
            self._allow(method, "GET")
            low, high = _percentiles(query)
            return self._send(self.server.image_png(name, low, high), "image/png")
        if kind == "labels":
            self._allow(method, "GET", "PUT", "DELETE")
            if_match = self.headers.get("If-Match")
            if method == "PUT":
                store.write_points(name, parse_points(self._read_json()), if_match)
            elif method == "DELETE":
                store.delete_labels(name, if_match)
            labels = labels_json(store, name)
            return self._send_json(labels, headers={"ETag": labels["version"]})
        if kind == "predictions":
            self._allow(method, "GET")
            points = store.predictions(name)
            return self._send_json({"name": name, "points": [[float(x), float(y), float(s)] for (x, y), s in zip(points.xy, points.score)]})
        if kind == "review":
            self._allow(method, "GET")
            return self._send_json(store.review(name))
        raise RequestError(404, f"no such endpoint: /api/{kind}/")

    # ----- checks ----------------------------------------------------------------------

    def _allow(self, method: str, *allowed: str) -> None:
        if method not in allowed:
            raise RequestError(405, f"{method} is not allowed here (use {', '.join(allowed)})")

    def _check_origin(self, method: str) -> None:
        """Refuse requests a web page on another site could make through the user's browser."""
        host = self.headers.get("Host")
        if self.server.loopback_only and host is not None and not _is_local_host_header(host, self.server.port):
            raise RequestError(403, f"Host {host!r} refused: this server only answers on its loopback address")
        if self.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            raise RequestError(403, "cross-site request refused")
        origin = self.headers.get("Origin")
        if method not in ("GET", "HEAD") and origin is not None and origin != f"http://{host}":
            raise RequestError(403, f"Origin {origin!r} refused: writes are only accepted from the page itself")

    def _read_json(self) -> object:
        """The request body as JSON: bounded in size, UTF-8, no NaN or Infinity."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise RequestError(411, "send the body with a Content-Length, not chunked")
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            self.close_connection = True
            raise RequestError(411, "a Content-Length header is required")
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise RequestError(400, f"bad Content-Length {length_text!r}")
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._discard(length)
            raise RequestError(413, f"body of {length} bytes is over the {MAX_BODY_BYTES} byte limit")
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        with client_io():
            body = self.rfile.read(length)
        if content_type != "application/json":
            raise RequestError(415, "Content-Type must be application/json")
        try:
            return json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise RequestError(400, f"body is not valid JSON: {exc}") from None
        except RecursionError:  # the parser recurses per level: [[[[...]]]] thousands deep exhausts it
            raise RequestError(400, 'body is not acceptable JSON: nested too deeply (expected {"points": [[x, y], ...]})') from None

    def _discard(self, length: int) -> None:
        """Read and drop a refused body: closing on unread data resets the connection, and the
        client would get no answer. Past DRAIN_BYTES the connection is just closed."""
        if length > DRAIN_BYTES:
            return
        while length > 0:
            with client_io():
                chunk = self.rfile.read(min(length, 65536))
            if not chunk:
                return
            length -= len(chunk)

    # ----- responses -------------------------------------------------------------------

    def _send_static(self, file_name: str) -> None:
        path = self.server.static_files.get(file_name)
        if path is None:
            raise RequestError(404, f"no static file {file_name!r}")
        extra = {"Content-Security-Policy": PAGE_POLICY, "X-Frame-Options": "DENY",
                 "Referrer-Policy": "no-referrer"} if path.suffix == ".html" else {}
        content_type = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
        self._send(path.read_bytes(), content_type, cache="no-cache", extra=extra)

    def _send_json(self, payload: object, status: int = 200, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, allow_nan=False).encode("utf-8")
        self._send(body, "application/json; charset=utf-8", status, extra=headers)

    def _send(self, body: bytes, content_type: str, status: int = 200, cache: str = "no-store",
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        with client_io():
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own refusals (bad request line, unknown method) as JSON too."""
        self.close_connection = True
        try:
            self._send_json({"error": message or HTTPStatus(code).phrase}, code)
        except ValueError:  # not a status the http module knows
            self._send_json({"error": message or "error"}, code)

    def log_message(self, format: str, *args) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def log_error(self, format: str, *args) -> None:
        super().log_message(format, *args)


def split_path(raw_path: str) -> tuple[list[str], dict[str, list[str]]]:
    """The request path as decoded segments, and its query.

    Splitting happens before decoding, so an encoded slash stays inside its segment and is
    then refused by the name check; '.', '..' and empty segments are refused whether they
    were written plainly or percent-encoded.
    """
    parts = urlsplit(raw_path)
    if not parts.path.startswith("/"):
        raise RequestError(400, "request path must start with '/'")
    raw_segments = parts.path[1:].split("/")
    if raw_segments == [""]:
        raw_segments = []
    segments = []
    for raw in raw_segments:
        try:
            segment = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            raise RequestError(400, "request path is not valid UTF-8") from None
        if segment in ("", ".", ".."):
            raise RequestError(400, "request path must not contain empty, '.' or '..' segments")
        segments.append(segment)
    return segments, parse_qs(parts.query)


def image_list(store: AnnotationStore, predict_all: bool = False, server_can_train: bool = False) -> dict:
    """The page's sidebar: every image with its label status, and overall progress."""
    names = store.scan()
    if predict_all and store.has_model:
        for name in names:
            try:
                store.predictions(name)
            except RequestError:
                pass  # an unreadable image shows up as such when it is opened
    images = []
    for name in names:
        entry = store.label_summary(name)
        entry["disagreement"] = store.disagreement(name) if store.has_model else None
        entry["disagrees"] = bool(entry["disagreement"]) if entry["disagreement"] is not None else None
        entry["doubt"] = store.doubt(name) if store.has_model else None
        images.append(entry)
    return {
        "dataset": store.root.name,
        "total": len(images),
        "labelled": sum(entry["status"] == "labelled" for entry in images),
        "has_model": store.has_model,
        "match_px": store.match_px,
        "threshold": store.threshold,
        "can_train": server_can_train,
        "images": images,
    }


def labels_json(store: AnnotationStore, name: str) -> dict:
    version = store.label_version(name)  # read first: a file written in between reads as changed, never the reverse
    state = store.read_points(name)
    height, width = state.size
    points = None if state.xy is None else [[float(x), float(y)] for x, y in state.xy]
    return {"name": name, "width": width, "height": height, "points": points, "version": version}


def make_server(data_dir: str | os.PathLike, weights: str | os.PathLike | None = None, host: str = "127.0.0.1",
                port: int = 8000, predictor: Predictor | None = None, verbose: bool = False,
                train_epochs: int = TRAIN_EPOCHS, runs: str | os.PathLike = RUNS) -> AnnotationServer:
    """A ready, bound server for DATA_DIR; run it with `server.serve_forever()` (port 0 picks a free port).

    `weights` loads a checkpoint whose predictions become suggestions; `predictor` (image path ->
    Points) replaces it, for tests or for any other detector. With `weights`, the page can also
    fine-tune it on the labels ("train on my labels": `train_epochs` epochs, into the first free
    `runs`, runs2, ...).
    """
    threshold = None
    if predictor is None and weights is not None:
        predictor, threshold = suggester(weights)
    store = AnnotationStore(data_dir, predictor, threshold=threshold)
    try:
        server = AnnotationServer(store, host, port, verbose)
    except OSError as exc:  # port taken, address not on this machine, no permission
        raise InputError(f"{host}:{port}: cannot listen there ({exc.strerror or exc}); try another --port") from None
    if weights is not None:
        server.trainer = Trainer(store, weights, train_epochs, lambda best: store.set_model(*suggester(best)), runs)
    return server


def suggester(weights: str | os.PathLike) -> tuple[Predictor, float]:
    """A checkpoint's predictor for suggestions (down to SUGGESTION_FLOOR x its threshold) and its threshold."""
    from pinpoint.predict import load

    detector = load(weights)
    return partial(detector.predict, conf=detector.threshold * SUGGESTION_FLOOR), detector.threshold


def serve(data_dir: str | os.PathLike, weights: str | os.PathLike | None = None, host: str = "127.0.0.1",
          port: int = 8000, open_browser: bool = False, predictor: Predictor | None = None,
          train_epochs: int = TRAIN_EPOCHS) -> None:
    """Run the annotation tool until Ctrl+C. Every change is already on disk, so stopping loses nothing."""
    server = make_server(data_dir, weights, host, port, predictor, train_epochs=train_epochs)
    total = len(server.store.names)
    print(f"pinpoint annotate: {total} images in {server.store.images_dir}, labels in {server.store.labels_dir}")
    if not server.loopback_only:
        print(f"warning: listening on {host}: anyone who can reach this address can read the images and change the labels")
    print(f"open {server.url} in a browser (Ctrl+C stops)", flush=True)
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\npinpoint annotate: stopped")
    finally:
        if server.trainer is not None:
            server.trainer.stop()
        server.server_close()


def _percentiles(query: dict[str, list[str]]) -> tuple[float | None, float | None]:
    if _flag(query, "raw"):
        return None, None
    try:
        low = float(query.get("low", [DEFAULT_LOW])[-1])
        high = float(query.get("high", [DEFAULT_HIGH])[-1])
    except ValueError:
        raise RequestError(400, "low and high must be numbers (percentiles)") from None
    if not 0.0 <= low < high <= 100.0:
        raise RequestError(400, f"percentiles must satisfy 0 <= low < high <= 100, got low={low:g} high={high:g}")
    return low, high


def _flag(query: dict[str, list[str]], key: str) -> bool:
    return query.get(key, ["0"])[-1].lower() in ("1", "true", "yes")


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_local_host_header(header: str, port: int) -> bool:
    """Whether a Host header names this machine's loopback at our port (DNS-rebinding guard)."""
    header = header.strip().lower()
    if header.startswith("["):
        host, _, rest = header[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = header.partition(":")
    if port_text and port_text != str(port):
        return False
    if not port_text and port != 80:
        return False
    return _is_loopback(host)
