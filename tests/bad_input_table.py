"""The table of docs/bad-inputs.md, kept equal to the bad-input suite's cases.

Each case of the suite registers its row (what a user gave, what pinpoint does with it) with
@row, in the module it lives in; the table lists the modules of SUITE in that order, each in its
own order. `python tests/bad_input_table.py` prints the table to paste into the docs.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Callable

SUITE = ("test_bad_inputs", "test_bad_inputs_annotate")  # the modules of the bad-input suite, in the table's order
DOCS_TABLE = Path(__file__).resolve().parents[1] / "docs" / "bad-inputs.md"
_ROWS: dict[str, list[tuple[str, str]]] = {}


def row(given: str, outcome: str) -> Callable:
    """Register a test as one row of the docs' table of bad inputs."""
    module = inspect.currentframe().f_back.f_globals["__name__"]  # type: ignore[union-attr]

    def register(test: Callable) -> Callable:
        _ROWS.setdefault(module, []).append((given, outcome))
        return test
    return register


def add_rows(module: str, rows: list[tuple[str, str]]) -> None:
    """Rows of cases that are not one test function each (a parametrised family, a hypothesis test)."""
    _ROWS.setdefault(module, []).extend(rows)


def suite_rows() -> list[tuple[str, str]]:
    """Every row of the suite, its modules imported (so registered) in SUITE's order."""
    for name in SUITE:
        importlib.import_module(name)
    return [entry for name in SUITE for entry in _ROWS.get(name, [])]


def table_rows(text: str) -> list[tuple[str, str]]:
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| input ")]
    return [tuple(cell.strip() for cell in line.strip("|").split(" | ")) for line in rows]  # type: ignore[misc]


def markdown_table() -> str:
    lines = ["| input | what pinpoint does |", "|---|---|"]
    return "\n".join(lines + [f"| {given} | {outcome} |" for given, outcome in suite_rows()]) + "\n"


if __name__ == "__main__":
    import bad_input_table  # the copy the test modules register with, not this __main__

    print(bad_input_table.markdown_table(), end="")
