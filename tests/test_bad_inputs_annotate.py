"""The annotation tool's share of the bad-input suite (issue 34): hostile request bodies, clients that
go away, and "train on my labels" refused, stopped or killed.

Each test is one row of the table in docs/bad-inputs.md, registered by @row. The server runs in a
thread where its terminal output is what capfd sees, and as a real `pinpoint annotate` process where
a signal must reach it.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

from bad_input_table import row
from conftest import make_spot_dataset
from pinpoint.annotate import make_server
from pinpoint.annotate.server import AnnotationServer
from pinpoint.points import Points

IMAGE_SIZE = 64  # make_spot_dataset's square images
LINUX_PROC = Path("/proc/self/stat").exists()  # where a process's parent and state can be read


def labelled_data(root: Path, n: int = 4) -> Path:
    """A dataset whose images are all labelled: enough for "train on my labels", small enough to start fast."""
    return make_spot_dataset(root, n)


@contextmanager
def served(data: Path, **kwargs) -> Iterator[AnnotationServer]:
    """make_server on a free loopback port, serving from a thread until the block ends."""
    server = make_server(data, host="127.0.0.1", port=0, **kwargs)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict]:
    """One request; the answer's status and its JSON."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        payload = response.read()
        assert response.getheader("Content-Type", "").startswith("application/json"), (response.status, payload[:200])
        return response.status, json.loads(payload)
    finally:
        conn.close()


def reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets a TCP reset, as when a browser abandons a fetch."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def on_connection_end(server: AnnotationServer) -> threading.Event:
    """An event set each time the server has finished with a connection (its handler thread is done)."""
    ended = threading.Event()
    original = server.shutdown_request

    def shutdown_request(connection: socket.socket) -> None:
        original(connection)
        ended.set()

    server.shutdown_request = shutdown_request  # type: ignore[method-assign]
    return ended


# ----- A. a request body nested without end ---------------------------------------------------------

@row("A label save (PUT /api/labels/NAME) whose JSON body is nested 2,000 deep ([[[[...]]]])",
     "Refused with HTTP 400: the body is not acceptable JSON (nested too deeply); nothing is written, nothing printed")
def test_a_deeply_nested_json_body_is_refused(tmp_path: Path, capfd) -> None:
    data = labelled_data(tmp_path / "data", 2)
    before = (data / "labels" / "im000.txt").read_text()
    body = ("[" * 2000 + "]" * 2000).encode()
    with served(data) as server:
        status, payload = request(server.port, "PUT", "/api/labels/im000", body,
                                  {"Content-Type": "application/json", "Content-Length": str(len(body))})
        assert status == 400, payload
        assert "not acceptable JSON" in payload["error"] and "nested" in payload["error"], payload
        assert "\n" not in payload["error"]
        assert request(server.port, "GET", "/api/images")[0] == 200  # still serving
    assert (data / "labels" / "im000.txt").read_text() == before
    assert capfd.readouterr().err == ""


# ----- B. a client that goes away ----------------------------------------------------------------------

def reset_mid_request(server: AnnotationServer, release: threading.Event, called: threading.Event) -> None:
    """Send half a request (no blank line after the headers), then reset while the server reads the rest."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(b"GET /api/images HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    time.sleep(0.2)  # the server's handler is now waiting for the rest of the headers
    reset(sock)


def reset_while_answering(server: AnnotationServer, release: threading.Event, called: threading.Event) -> None:
    """Ask for predictions, reset while the model works, then let the server write its answer to the dead socket."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(f"GET /api/predictions/im000 HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
    assert called.wait(10)
    reset(sock)
    release.set()


@row("A browser that abandons a request: the connection reset before the request is complete, or while the "
     "answer is being written",
     "Dropped silently: nothing printed on the terminal, and the tool goes on serving")
@pytest.mark.parametrize("abandon", [reset_mid_request, reset_while_answering], ids=["mid-request", "while-answering"])
def test_a_client_that_resets_its_connection_is_dropped_silently(
        tmp_path: Path, capfd, abandon: Callable[[AnnotationServer, threading.Event, threading.Event], None]) -> None:
    data = labelled_data(tmp_path / "data", 2)
    called, release = threading.Event(), threading.Event()

    def slow_model(path: Path) -> Points:
        called.set()
        release.wait(10)
        return Points(np.zeros((0, 2)), np.zeros(0), (IMAGE_SIZE, IMAGE_SIZE))

    with served(data, predictor=slow_model) as server:
        ended = on_connection_end(server)
        abandon(server, release, called)
        assert ended.wait(10), "the server never finished with the reset connection"
        status, listing = request(server.port, "GET", "/api/images")
        assert status == 200 and listing["total"] == 2
    err = capfd.readouterr().err
    assert err == "", err


# ----- C. "train on my labels" where no run folder can be made ---------------------------------------

@row("\"Train on my labels\" where its run folder cannot be created (runs/annotate under a file named runs, "
     "a working folder that cannot be written)",
     "Refused with HTTP 503: one line naming the folder and saying to start the tool from a folder that can be "
     "written; nothing printed on the terminal")
def test_training_where_no_run_folder_can_be_made_says_so(tmp_path: Path, capfd) -> None:
    data = labelled_data(tmp_path / "data", 2)
    (tmp_path / "runs").write_text("a file where the runs folder must be\n")
    runs = tmp_path / "runs" / "annotate"
    with served(data, weights="pretrained", runs=runs) as server:
        capfd.readouterr()  # whatever loading the model printed
        status, payload = request(server.port, "POST", "/api/train")
        assert status == 503, payload
        assert str(runs) in payload["error"] and "folder you can write to" in payload["error"], payload
        assert "internal error" not in payload["error"] and "\n" not in payload["error"]
        assert request(server.port, "GET", "/api/train")[1]["state"] == "idle"
    assert capfd.readouterr().err == ""
    assert (tmp_path / "runs").is_file()


# ----- D and E. the tool stopped or killed while it trains -----------------------------------------

def process_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first, then the parent's pid); None once gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2:].split()


def is_running(pid: int) -> bool:
    """True while the process exists and has not exited (a zombie waiting to be reaped has ended)."""
    fields = process_stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    """The live processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = process_stat(int(entry.name))
            if fields is not None and fields[1] == str(pid) and fields[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return found


def wait_for(condition: Callable[[], object], seconds: float, what: str | Callable[[], str]) -> object:
    """Poll `condition` until it is true; fail naming `what` (or what it returns then) after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"{what() if callable(what) else what}: not within {seconds:g} s")


class Tool:
    """`pinpoint annotate` as a real process in its own working folder, with its own temporary folder,
    so that anything it leaves behind is visible."""

    def __init__(self, root: Path):
        self.work = root / "work"
        self.temp = root / "temp"
        self.temp.mkdir()
        labelled_data(self.work / "data")
        self.out_path, self.err_path = root / "stdout.txt", root / "stderr.txt"
        env = {**os.environ, "TMPDIR": str(self.temp), "PYTHONUNBUFFERED": "1"}
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pinpoint", "annotate", "data", "--port", "0", "--train-epochs", "1000"],
                cwd=self.work, env=env, stdout=out, stderr=err)
        self.training: int | None = None
        url = wait_for(self._url, 20, "the tool never printed its address")
        self.port = int(re.search(r":(\d+)/", url).group(1))  # type: ignore[union-attr]

    def _url(self) -> str | None:
        assert self.process.poll() is None, self.err_path.read_text()
        match = re.search(r"open (http://\S+) in a browser", self.out_path.read_text())
        return match.group(1) if match else None

    def start_training(self) -> int:
        """Start "train on my labels", wait until the run has begun (config.json written); its process id."""
        status, payload = request(self.port, "POST", "/api/train")
        assert status == 200 and payload["state"] == "running", payload
        self.training = int(wait_for(lambda: children(self.process.pid)[:1], 10, "no training process")[0])
        wait_for(lambda: (self.work / "runs" / "annotate" / "config.json").is_file(), 40,
                 lambda: f"the run never began ({request(self.port, 'GET', '/api/train')[1]})")
        return self.training

    def left_behind(self) -> dict[str, list[str]]:
        """What the tool left in its working folder, and its own files in the temporary folder (torch keeps
        caches there too, which are not the tool's)."""
        own = [str(p.relative_to(self.temp)) for p in self.temp.rglob("*")
               if p.name.startswith("pinpoint") or p.name == "labelled.txt"]
        return {"working folder": sorted(os.listdir(self.work)), "temporary folder": sorted(own)}

    def close(self) -> None:
        """End whatever is still running: the tool, and a training process that outlived it."""
        for pid in (self.process.pid, self.training):
            if pid is not None and is_running(pid):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture()
def tool(tmp_path: Path) -> Iterator[Tool]:
    if not LINUX_PROC:
        pytest.skip("reads processes from /proc")
    started = Tool(tmp_path)
    try:
        yield started
    finally:
        started.close()


@row("Ctrl+C (SIGINT) to pinpoint annotate while \"train on my labels\" runs",
     "The training process is stopped and waited for; the unfinished run folder, with its list of images, is removed")
def test_stopping_the_tool_while_it_trains_leaves_nothing_behind(tool: Tool) -> None:
    training = tool.start_training()
    tool.process.send_signal(signal.SIGINT)
    # within 15 s: the run stopped when asked, rather than being killed after trainer.STOP_SECONDS
    assert tool.process.wait(15) == 0, tool.err_path.read_text()
    assert not is_running(training), "the training process outlived the tool"
    assert tool.left_behind() == {"working folder": ["data"], "temporary folder": []}
    err = tool.err_path.read_text()
    assert "Traceback" not in err, err


@row("pinpoint annotate killed (SIGKILL, a closed terminal) while \"train on my labels\" runs",
     "The training process notices and stops within a second or so; its unfinished run folder is removed, so no "
     "half-trained best.pt looks like a finished run")
def test_killing_the_tool_while_it_trains_ends_the_training_too(tool: Tool) -> None:
    training = tool.start_training()
    tool.process.kill()
    tool.process.wait(10)
    wait_for(lambda: not is_running(training), 15, "the training process outlived the killed tool")
    run = tool.work / "runs" / "annotate"
    assert not run.exists(), f"left as if finished: {sorted(os.listdir(run))}"
    assert tool.left_behind() == {"working folder": ["data"], "temporary folder": []}
