""""Train on my labels": fine-tune the suggesting model on the labels made so far, in the
background, and hand the new weights to the page when it ends.

The run is `pinpoint train --init WEIGHTS` itself, started as its own process (`python -m
pinpoint train`): the server keeps answering while it trains, and a crash of the run cannot take
the labelling down. It trains on the labelled images only (a split file of their names), from the
model the tool was started with each time (labels accumulate; the base stays the same), into the
first free runs/annotate, runs/annotate2, ... of the working folder. Its progress is read from the
epoch lines `train` prints. One run at a time: a second request while one runs is refused.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import Callable

from pinpoint.annotate.store import AnnotationStore, RequestError

RUNS = Path("runs") / "annotate"  # in the working folder, as `train` puts runs/train
MIN_LABELLED = 2  # one image to learn from and one to choose the threshold on
EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+)\b")


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

    def status(self) -> dict:
        with self._lock:
            return dict(self._state)

    def start(self) -> dict:
        """Start a run on the labelled images; 409 if one is running or too few images are labelled."""
        with self._lock:
            if self._state["state"] == "running":
                raise RequestError(409, f"a training run is going already (epoch {self._state['epoch']}/{self.epochs}, "
                                        f"{self._state['run']}); wait for it to end")
            labelled = [n for n in self.store.names if self.store.label_summary(n)["status"] == "labelled"]
            if len(labelled) < MIN_LABELLED:
                raise RequestError(409, f"label at least {MIN_LABELLED} images first ({len(labelled)} labelled)")
            from pinpoint.files import numbered_folder

            out = numbered_folder(self.runs)
            split = Path(tempfile.mkdtemp(prefix="pinpoint-annotate-")) / "labelled.txt"
            split.write_text("".join(f"{name}\n" for name in labelled))
            command = [sys.executable, "-m", "pinpoint", "train", "--data", str(self.store.root), "--split", str(split),
                       "--init", self.init, "--epochs", str(self.epochs), "--out", str(out), "--no-progress"]
            self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                             bufsize=1, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            self._state = {"state": "running", "epoch": 0, "epochs": self.epochs, "images": len(labelled),
                           "run": str(out), "message": f"training on {len(labelled)} labelled images"}
            threading.Thread(target=self._follow, args=(self._process, out, split), daemon=True).start()
            return dict(self._state)

    def stop(self) -> None:
        """End a running run (the server is stopping)."""
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()

    def _follow(self, process: subprocess.Popen, out: Path, split: Path) -> None:
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
        split.unlink(missing_ok=True)
        split.parent.rmdir()
        weights = out / "best.pt"
        if code == 0 and weights.is_file():
            try:
                self.on_done(weights)
            except Exception as exc:  # the new weights cannot be loaded: say so, keep the old model
                self._finish("failed", f"{weights}: {exc}")
                return
            self._finish("done", f"suggestions now come from {weights}")
        else:
            error = next((line for line in reversed(tail) if "error" in line.lower()), tail[-1] if tail else f"exit {code}")
            self._finish("failed", error)

    def _finish(self, state: str, message: str) -> None:
        with self._lock:
            self._state["state"], self._state["message"] = state, message
            self._process = None
