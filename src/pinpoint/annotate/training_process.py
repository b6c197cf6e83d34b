"""The process that runs "train on my labels" (started by trainer.Trainer as `python -m
pinpoint.annotate.training_process PARENT_PID RUN BASE TRAIN_OPTIONS...`).

It runs `pinpoint train` as the command line does, stops as on Ctrl+C when the server that started
it goes (however it went, SIGKILL included) or on SIGTERM or SIGHUP, and removes its run unless it
finished. A module of its own, which nothing in the package imports: it calls the command line,
which reaches the server and the trainer, so inside trainer.py it would close an import circle.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

from pinpoint.annotate.trainer import PARENT_POLL_SECONDS, STOP_SIGNALS, finished, remove_run
from pinpoint.cli import main as cli_main


def main(argv: Sequence[str] | None = None) -> int:
    """The training process: `PARENT_PID RUN BASE TRAIN_OPTIONS...` runs `pinpoint train TRAIN_OPTIONS
    --out RUN`, stops when the server PARENT_PID is gone or on SIGTERM or SIGHUP (as on Ctrl+C), and
    removes RUN (see remove_run) unless the run finished. Its exit status is train's (130 when stopped)."""
    args = list(sys.argv[1:] if argv is None else argv)
    parent, out, base = int(args[0]), Path(args[1]), Path(args[2])
    code = 1
    try:
        for stop in STOP_SIGNALS:
            if signal.getsignal(stop) != signal.SIG_IGN:  # under nohup a closed terminal must not stop it either
                signal.signal(stop, signal.default_int_handler)
        threading.Thread(target=watch_parent, args=(parent,), daemon=True).start()
        code = train_run(args[3:], out)
    finally:
        hold_stops()
        if not finished(code, out):
            remove_run(out, base)
    return code


def train_run(options: list[str], out: Path) -> int:
    """`pinpoint train` as the command line runs it. Being stopped, or writing to a server that is gone
    (before the watcher has noticed), is a run that did not finish: status 130, not a traceback."""
    try:
        return cli_main(["train", *options, "--out", str(out)])
    except (KeyboardInterrupt, BrokenPipeError):
        return 130


def watch_parent(parent: int) -> None:
    """Interrupt the training once the server that started it has gone (killed, or ended without
    stopping it): no one would read its progress or use its weights. A process whose parent ends
    is handed to another, so its parent's id changes."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    silence_output()
    _thread.interrupt_main()


def silence_output() -> None:
    """Send the output that the gone server would have read to the null device, so the run ends as
    an interruption rather than on a broken pipe."""
    null = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(null, fd)
    os.close(null)


def hold_stops() -> None:
    """From here on the process only tidies up: a second Ctrl+C, stop signal or interruption must not cut
    the removal of an unfinished run short (a pending one is dropped too: Python then has no handler)."""
    for stop in (signal.SIGINT, *STOP_SIGNALS):
        signal.signal(stop, signal.SIG_IGN)


if __name__ == "__main__":
    sys.exit(main())
