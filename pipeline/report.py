"""Self-contained HTML reports for the people who act on them (marketing ops, data scientists).

A report is one file that opens anywhere, offline and forwarded by mail: CSS inline, figures
embedded as base64 PNG data URIs (at 100 dpi, enough for a screen and a few hundred kB per
report), no scripts and no links to fetch. Every piece of text is escaped, since table cells and
feature names come from lead data.

    report = Report("Weekly monitoring", "model v12").section("Acceptance")
    report.callout("On target", "ok").figure(fig, "Acceptance over time").write(path)
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

Level = Literal["ok", "warn", "alarm"]

FOOTER = "Lead acceptance predictor"
DPI = 100
# Spelled out next to the colour, so a verdict survives grey-scale printing and colour blindness.
_LEVEL_LABELS: dict[str, str] = {"ok": "OK", "warn": "Warning", "alarm": "Alarm"}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       line-height: 1.5; max-width: 1000px; margin: 2rem auto; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.subtitle { color: #555; margin-top: 0; font-size: 1.1rem; }
.meta, footer { color: #777; font-size: 0.85rem; }
footer { border-top: 1px solid #ddd; margin-top: 3rem; padding-top: 0.5rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3rem; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #e5e5e5; text-align: left; }
th { background: #f0f0f0; } tbody tr:nth-child(even) { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.facts th { background: none; font-weight: 600; }
.note { color: #777; font-size: 0.85rem; }
.callout { border-left: 5px solid; padding: 0.6rem 1rem; margin: 1rem 0; border-radius: 3px; }
.callout.ok { border-color: #4c9f70; background: #eef7f1; }
.callout.warn { border-color: #e0a526; background: #fdf6e6; }
.callout.alarm { border-color: #c8553d; background: #fbecea; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9rem; margin-top: 0.3rem; }
"""


class Report:
    """An HTML report built block by block; each method appends and returns the report."""

    def __init__(self, title: str, subtitle: str = "") -> None:
        self.title = title
        self.subtitle = subtitle
        self.generated_at = datetime.now(UTC)
        # Blocks before the first section, then one list per section (its <h2> first).
        self._sections: list[list[str]] = [[]]

    def section(self, heading: str, intro: str = "") -> Report:
        self._sections.append([f"<h2>{_e(heading)}</h2>"])
        return self.paragraph(intro) if intro else self

    def paragraph(self, text: str) -> Report:
        return self._add(f"<p>{_e(text)}</p>")

    def callout(self, text: str, level: Level = "ok") -> Report:
        if level not in _LEVEL_LABELS:
            raise ValueError(f"level must be one of {sorted(_LEVEL_LABELS)}, got {level!r}")
        label = _LEVEL_LABELS[level]
        return self._add(f'<div class="callout {level}"><strong>{label}:</strong> {_e(text)}</div>')

    def facts(self, items: Mapping[str, object]) -> Report:
        rows = "".join(
            f'<tr><th scope="row">{_e(key)}</th>{_td(value, "{:.4g}")}</tr>'
            for key, value in items.items()
        )
        return self._add(f'<table class="facts"><tbody>{rows}</tbody></table>')

    def table(
        self,
        frame: pd.DataFrame,
        caption: str = "",
        float_format: str = "{:.4g}",
        max_rows: int = 200,
    ) -> Report:
        """A data table; a meaningful index (anything but a default RangeIndex) becomes leading
        columns. Floats use `float_format`, missing values show empty; beyond `max_rows` rows
        the table is cut and says so."""
        if not isinstance(frame.index, pd.RangeIndex):
            frame = frame.reset_index()
        shown = frame.head(max_rows)
        head = "".join(f'<th scope="col">{_e(column)}</th>' for column in shown.columns)
        body = "".join(
            "<tr>" + "".join(_td(value, float_format) for value in row) + "</tr>"
            for row in shown.itertuples(index=False, name=None)
        )
        cap = f"<caption>{_e(caption)}</caption>" if caption else ""
        block = f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        if len(frame) > max_rows:
            block += f'<p class="note">First {max_rows} of {len(frame)} rows shown.</p>'
        return self._add(block)

    def figure(self, fig: Figure, caption: str) -> Report:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
        src = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        return self._add(
            f'<figure data-figure="{_slug(caption)}"><img src="{src}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )

    def html(self) -> str:
        stamp = self.generated_at.strftime("%Y-%m-%d %H:%M UTC")
        subtitle = f'<p class="subtitle">{_e(self.subtitle)}</p>' if self.subtitle else ""
        preamble, *sections = self._sections
        body = "\n".join(
            [
                f"<header><h1>{_e(self.title)}</h1>{subtitle}"
                f'<p class="meta">Generated {stamp}</p></header>',
                *preamble,
                *(f"<section>{''.join(blocks)}</section>" for blocks in sections),
                f"<footer>{FOOTER} · generated {stamp}</footer>",
            ]
        )
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(self.title)}</title><style>{_CSS}</style></head>"
            f"<body>\n{body}\n</body></html>\n"
        )

    def write(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.html(), encoding="utf-8")
        return path

    def _add(self, block: str) -> Report:
        self._sections[-1].append(block)
        return self


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _td(value: object, float_format: str) -> str:
    value = _plain(value)
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    css = ' class="num"' if numeric else ""
    return f"<td{css}>{_e(_format(value, float_format))}</td>"


def _plain(value: object) -> object:
    # numpy numbers (np.int64, np.float32, np.bool_) become Python ones, so they format alike.
    return value.item() if isinstance(value, np.number | np.bool_) else value


def _format(value: object, float_format: str) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else float_format.format(value)
    return str(value)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "figure"
