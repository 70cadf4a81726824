"""Tables of benchmark figures, with ratios to sessid."""

from __future__ import annotations

from dataclasses import dataclass, field


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

    def render(self) -> str:
        base = self.value("sessid")
        width = max(len(r.name) for r in self.rows) + 2
        lines = [self.title, f"{'':{width}}{self.unit:>14}  {'÷ sessid':>9}"]
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
