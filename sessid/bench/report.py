"""Tables of benchmark figures, with ratios to sessid, and the lines a run prints as it goes."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Row:
    name: str
    value: float | None          # None: the contender is missing
    note: str = ""


@dataclass
class Table:
    title: str
    unit: str
    rows: list[Row] = field(default_factory=list)
    footer: str = ""

    def value(self, name: str) -> float | None:
        for row in self.rows:
            if row.name == name:
                return row.value
        return None

    def render(self, title: bool = True) -> str:
        base = self.value("sessid")
        width = max(len(r.name) for r in self.rows) + 2
        lines = [self.title] if title else []
        lines.append(f"{'':{width}}{self.unit:>14}  {'÷ sessid':>9}")
        for row in self.rows:
            if row.value is None:
                lines.append(f"{row.name:{width}}{'missing':>14}  {'':>9}  {row.note}")
                continue
            ratio = f"{row.value / base:9.2f}" if base else f"{'':>9}"
            lines.append(f"{row.name:{width}}{format_value(row.value):>14}  {ratio}  {row.note}".rstrip())
        if self.footer:
            lines.append(self.footer)
        return "\n".join(lines)


def format_value(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}"


class Steps:
    """What a workload says as it runs: step() before it measures a table (or a group of tables
    measured together), progress() every few seconds while it does. This one says nothing."""

    def step(self, heading: str) -> None:
        pass

    def progress(self, text: str) -> None:
        pass


class Console(Steps):
    """What a run prints: before each step, one line on stdout that says what is measured next;
    while it is measured, progress on stderr (a line that rewrites itself on a terminal, lines
    otherwise) so that no long step is silent; then its tables on stdout. Redirected, stdout holds
    only the headings and the tables."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        super().__init__()
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.heading = ""
        self.live = False          # a progress line that a terminal shows and the next print clears

    def _clear(self) -> None:
        if self.live:
            self.err.write("\r\033[K")
            self.err.flush()
            self.live = False

    def print(self, text: str = "") -> None:
        self._clear()
        print(text, file=self.out, flush=True)

    def step(self, heading: str) -> None:
        self.print()
        self.print(heading)
        self.heading = heading

    def progress(self, text: str) -> None:
        self._clear()
        if self.err.isatty():
            self.err.write(f"  ... {text}")
            self.err.flush()
            self.live = True
        else:
            print(f"  ... {text}", file=self.err, flush=True)

    def table(self, table: Table) -> None:
        """The table under the step's heading; its own title too unless the heading said it."""
        same = table.title == self.heading
        if not same:
            self.print()
        self.print(table.render(title=not same))
        self.heading = ""
