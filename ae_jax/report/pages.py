"""One self-contained HTML results page: headings, text, tables and PNG figures embedded as base64."""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import os
import re
from collections.abc import Sequence

from ae_jax import stages


class Share(float):
    """A share of a count (its value: count / total) that reads as a percentage with its counts; JSON and CSV
    files get the fraction at full precision."""

    def __new__(cls, count: int, total: int):
        share = super().__new__(cls, count / total if total else math.nan)
        share.count, share.total = int(count), int(total)
        return share

    @classmethod
    def of(cls, fraction: float, total: int) -> Share:
        """The share `fraction` of `total` items (a fraction measured on exactly `total` items)."""
        return cls(round(fraction * total), total)

    def text(self) -> str:
        return percent(self.count, self.total)


def percent(count: int, total: int) -> str:
    """'0.014% (14 of 100,000)': a share as a percentage (3 significant digits) with its counts."""
    return f"{100 * count / total:.3g}% ({count:,} of {total:,})" if total else f"{count:,} of 0"


def cell_text(value) -> str:
    """A table cell as a reader sees it: 3 significant digits, shares as percentages with their counts."""
    if isinstance(value, Share):
        return value.text()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3g}"
    return str(value)


def cells_line(cells: dict) -> str:
    """'held-out mse: 0.0123; psnr dB: 19.1': named numbers on one line, as cell_text shows them."""
    return "; ".join(f"{k}: {cell_text(v)}" for k, v in cells.items())


def _cell(value) -> str:
    return html.escape(cell_text(value))


def table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """An HTML table of dict rows (columns: the first row's keys unless given)."""
    if not rows:
        return "<p><em>(no rows)</em></p>"
    columns = list(columns or rows[0].keys())
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


FIGURE_SOURCE = "ae-jax-figure:"  # marks a figure's path in a section until write_page inlines the PNG


def figure(path: str, caption: str = "") -> str:
    """The PNG at `path`, inlined when the page is written (`write_page`, by the process that writes), so the page
    stays readable offline and when moved."""
    caption = caption or os.path.basename(path)
    return (
        f'<figure><img src="{FIGURE_SOURCE}{html.escape(path)}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _inline_figures(page: str) -> str:
    """The page with each figure's path (FIGURE_SOURCE) replaced by its PNG's bytes as base64."""

    def inline(match: re.Match) -> str:
        with open(html.unescape(match.group(1)), "rb") as f:
            return f'src="data:image/png;base64,{base64.b64encode(f.read()).decode()}"'

    return re.sub(f'src="{re.escape(FIGURE_SOURCE)}([^"]*)"', inline, page)


def paragraph(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def warning(text: str) -> str:
    """A paragraph set apart: something that makes the numbers around it untrustworthy."""
    return f'<p class="warning">{html.escape(text)}</p>'


def write_page(path: str, title: str, sections: Sequence[tuple[str, Sequence[str]]], banner: str = "") -> str:
    """Write sections of (heading, [html fragments]) as one HTML file, under a visible banner when given (a page
    that is not a result: "smoke size: ..."); returns its path."""
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:0.85em}"
        "td,th{border:1px solid #bbb;padding:3px 7px;text-align:right}th{background:#eee}"
        "figure{display:inline-block;margin:0.5em;vertical-align:top}"
        "img{max-width:100%}figcaption{font-size:0.8em;color:#555}"
        "nav a{margin-right:1em}.scroll{overflow-x:auto;max-width:100%}td,th{white-space:nowrap}"
        ".banner{background:#fd4;border:2px solid #a60;padding:0.5em 1em;font-weight:bold}"
        ".warning{background:#fdd;border:1px solid #c33;padding:0.3em 0.6em}"
    )
    banner = f'<p class="banner">{html.escape(banner)}</p>' if banner else ""
    nav = "".join(f'<a href="#s{i}">{html.escape(h)}</a>' for i, (h, _) in enumerate(sections))
    body = "".join(f'<h2 id="s{i}">{html.escape(h)}</h2>' + "".join(parts) for i, (h, parts) in enumerate(sections))
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{banner}<nav>{nav}</nav>{body}"
        "</body></html>"
    )
    return stages.write_atomically(path, lambda f: f.write(_inline_figures(page)), mode="w")


def write_csv(rows: Sequence[dict], path: str, columns: Sequence[str] | None = None) -> str:
    """Rows of dicts as a CSV file (columns: `columns`, default every key in first-seen order); returns its path."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, list(columns or dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    writer.writerows(rows)
    return stages.write_atomically(path, lambda f: f.write(text.getvalue().encode()))
