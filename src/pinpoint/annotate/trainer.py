""""Train on my labels": fine-tune the suggesting model on the labels made so far, in the
background, and hand the new weights to the page when it ends.

The run is `pinpoint train --init WEIGHTS` itself, started as its own process (training_process.py,
which calls the same `train` the command line does): the server keeps answering while it trains, and a
crash of the run cannot take the labelling down. It trains on the labelled images only (their names
in labelled.txt, kept in the run folder as a record of what the run learnt from), from the model the
tool was started with each time (labels accumulate; the base stays the same), into the first free
runs/annotate, runs/annotate2, ... of the working folder. Its progress is read from the epoch lines
`train` prints. One run at a time: a second request while one runs is refused.

A run is the tool's own: one that does not finish (the tool stopped with Ctrl+C, or killed, or the
run failing) is removed, so that no half-trained best.pt ever looks like a finished run. The
training process watches the server that started it and stops when it goes, however it went
(SIGKILL included): Linux's PR_SET_PDEATHSIG would follow the short-lived request thread that
started it rather than the server, and exists on Linux only.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Callable

from pinpoint.annotate.store import AnnotationStore, RequestError
from pinpoint.errors import InputError
from pinpoint.files import numbered_folder, write_text

RUNS = Path("runs") / "annotate"  # in the working folder, as `train` puts runs/train
MIN_LABELLED = 2  # one image to learn from and one to choose the threshold on
EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+)\b")
LABELLED = "labelled.txt"  # the run's split file: the names of the images it trains on
STOP_SECONDS = 20.0  # how long a stopping server waits for its run to end before killing it
PARENT_POLL_SECONDS = 0.5  # how soon the training process notices that the server has gone
# what stops the training process as Ctrl+C does: the server's terminate(), and a closed terminal
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
CHILD = "pinpoint.annotate.training_process"  # the training process, run as python -m CHILD


class Trainer:
    """One background fine-tuning run at a time; `status()` is what the page polls."""

    def __init__(self, store: AnnotationStore, init: str | os.PathLike, epochs: int,
                 on_done: Callable[[Path], None], runs: str | os.PathLike = RUNS):
        self.store = store
        self.init = str(init)
        self.epochs = epochs
        self.on_done = on_done
        self.runs = Path(runs)
        self._lock = threading.Lock()
        self._state = {"state": "idle", "epoch": 0, "epochs": epochs, "images": 0, "run": None, "message": ""}
        self._process: subprocess.Popen | None = None
        self._base = self.runs.parent  # the folder the run folders are made in, or the nearest that existed

    def status(self) -> dict:
        with self._lock:
            return dict(self._state)

    def start(self) -> dict:
        """Start a run on the labelled images; 409 if one is running or too few images are labelled,
        503 if no run folder can be made or the process cannot start."""
        with self._lock:
            if self._state["state"] == "running":
                raise RequestError(409, f"a training run is going already (epoch {self._state['epoch']}/{self.epochs}, "
                                        f"{self._state['run']}); wait for it to end")
            labelled = [n for n in self.store.names if self.store.label_summary(n)["status"] == "labelled"]
            if len(labelled) < MIN_LABELLED:
                raise RequestError(409, f"label at least {MIN_LABELLED} images first ({len(labelled)} labelled)")
            self._base = existing_parent(self.runs)
            out = self._run_folder()
            try:
                write_text(out / LABELLED, "".join(f"{name}\n" for name in labelled))
                self._process = subprocess.Popen(self._command(out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                 text=True, bufsize=1, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            except (OSError, InputError) as exc:  # the list cannot be written (a full disk), or no Python to run
                remove_run(out, self._base)
                reason = getattr(exc, "strerror", None) or exc
                raise RequestError(503, f"{out}: cannot start the training run ({reason})") from None
            self._state = {"state": "running", "epoch": 0, "epochs": self.epochs, "images": len(labelled),
                           "run": str(out), "message": f"training on {len(labelled)} labelled images"}
            threading.Thread(target=self._follow, args=(self._process, out), daemon=True).start()
            return dict(self._state)

    def _run_folder(self) -> Path:
        """The first free runs/annotate, runs/annotate2, ..., made now. One that cannot be made is the
        working folder's doing, not a bug: the page says where, and what to do about it."""
        try:
            return numbered_folder(self.runs)
        except InputError as exc:
            raise RequestError(503, f"{exc}; start the tool from a folder you can write to") from None

    def _command(self, out: Path) -> list[str]:
        """The training process (training_process.py): this server to watch, its run folder, then `train`'s options."""
        return [sys.executable, "-m", CHILD, str(os.getpid()), str(out), str(self._base),
                "--data", str(self.store.root), "--split", str(out / LABELLED), "--init", self.init,
                "--epochs", str(self.epochs), "--no-progress"]

    def stop(self) -> None:
        """End a running run and wait for it (the server is stopping). The process removes its unfinished
        run itself; one that does not end in time is killed, and its run removed here."""
        with self._lock:
            process, run = self._process, self._state["run"]
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if not finished(process.returncode, Path(run)):
            remove_run(Path(run), self._base)

    def _follow(self, process: subprocess.Popen, out: Path) -> None:
        tail: deque[str] = deque(maxlen=5)
        for line in process.stdout:
            line = line.strip()
            if not line:
                continue
            tail.append(line)
            match = EPOCH_LINE.match(line)
            if match:
                with self._lock:
                    self._state["epoch"] = int(match.group(1))
        code = process.wait()
        weights = out / "best.pt"
        if finished(code, out):
            try:
                self.on_done(weights)
            except Exception as exc:  # the new weights cannot be loaded: say so, keep the old model
                self._finish("failed", f"{weights}: {exc}")
                return
            self._finish("done", f"suggestions now come from {weights}")
        else:
            remove_run(out, self._base)  # the process removes it too, unless it died before it could
            error = next((line for line in reversed(tail) if "error" in line.lower()), tail[-1] if tail else f"exit {code}")
            self._finish("failed", error)

    def _finish(self, state: str, message: str) -> None:
        with self._lock:
            self._state["state"], self._state["message"] = state, message
            self._process = None


def finished(code: int | None, out: Path) -> bool:
    """A run that ended well: exit status 0 and its weights written. Any other is removed."""
    return code == 0 and (out / "best.pt").is_file()


def existing_parent(folder: Path) -> Path:
    """The nearest of `folder`'s parents that exists: making run folders in `folder` creates only
    what lies below it, and only that is removed with an unfinished run."""
    return next((parent for parent in folder.parents if parent.exists()), folder.parent)


def remove_run(out: Path, base: Path) -> None:
    """Remove an unfinished run: its folder (labelled.txt and whatever `train` wrote) and the folders
    between it and `base` that were made for it and are empty now, so that nothing is left behind."""
    shutil.rmtree(out, ignore_errors=True)
    if base not in out.parents:
        return
    for folder in out.parents:
        if folder == base:
            return
        try:
            folder.rmdir()
        except OSError:  # another run is in it
            return
