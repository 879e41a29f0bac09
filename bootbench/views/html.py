"""bootbench's HTML kit: escaping, the self-contained page with its stylesheet, and tables of text cells.

report.html and compare.html are built from these, so both pages look alike
and every value on them is escaped in one way.

    page("title", f"<p>{esc(value)}</p>" + table(["a", "b"], [["1", "2"]]))
"""

from __future__ import annotations

import html
from typing import Any, Iterable


def esc(value: Any) -> str:
    """``value`` as HTML-escaped text."""
    return html.escape(str(value), quote=True)


def page(title: str, body: str, wide: bool = False) -> str:
    """A complete, self-contained HTML document with bootbench's stylesheet (``wide``: for wide tables, the
    page takes the window's width instead of a column of 1180 px)."""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"<main{WIDE if wide else ''}>\n"
            f"{body}\n</main>\n</body>\n</html>\n")


WIDE = ' class="wide"'


def table(header: Iterable[str], rows: Iterable[Iterable[str]], table_id: str = "", numeric_from: int = 0) -> str:
    """An HTML table of already-formatted text cells (escaped here); columns from ``numeric_from`` align right."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(f'<td{" class=num" if i >= numeric_from and numeric_from else ""}>{esc(c)}</td>'
                        for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return f'<table{ident}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


STYLE = """
:root { --ink: #24292f; --muted: #6a737d; --line: #e1e4e8; --accent: #dd8452; --bg: #f6f8fa; --bad: #c44e52; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 40px; }
main.wide { max-width: none; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 30px 0 12px; border-bottom: 1px solid var(--line); padding-bottom: 6px; }
h3 { font-size: 14px; margin: 0 0 6px; }
section > h3 { margin-top: 18px; }
.thin { font-weight: normal; color: var(--muted); font-size: 0.85em; }
.subtitle { margin: 0; font-size: 15px; }
.meta { margin: 4px 0 0; color: var(--muted); font-size: 12.5px; }
.meta b { color: var(--ink); font-weight: 600; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.92em; }
.stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; }
.stat { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.stat .label { display: block; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.stat .value { font-size: 28px; font-weight: 600; font-variant-numeric: tabular-nums; }
.stat .unit { margin-left: 4px; color: var(--muted); }
.stat .note { display: block; color: var(--muted); font-size: 12px; margin-top: 2px; }
#stat-median { border-top: 3px solid var(--accent); }
p.note { color: var(--muted); font-size: 13px; }
.warning { background: #fff5f5; border: 1px solid #f3c2c2; border-left: 4px solid var(--bad); border-radius: 6px;
  padding: 4px 14px; margin-top: 16px; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 14px; }
figure.plot { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
figure.plot.wide { grid-column: 1 / -1; }
figure.plot svg { display: block; width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 4px; }
table { border-collapse: collapse; background: #fff; border: 1px solid var(--line); font-size: 13px; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { background: #f0f2f4; font-weight: 600; white-space: nowrap; }
table.numbers td, td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.numbers td:first-child { text-align: left; }
#comparison td:first-child { white-space: nowrap; }
#comparison thead th, #regression thead th { white-space: normal; vertical-align: bottom; }
tr.headline { background: #fdf3ec; }
#stage-waterfall td:nth-child(2) { text-align: left; }
td.bar { width: 50%; min-width: 220px; vertical-align: middle; }
td.bar span { display: block; height: 12px; background: var(--accent); border-radius: 2px; }
tr.check-fail td { color: var(--bad); }
table.config { min-width: 50%; }
table.config table.config { min-width: 0; border: none; background: transparent; font-size: 12.5px; }
table.config table.config th, table.config table.config td { padding: 2px 10px 2px 0; border: none; }
table.config th { font-weight: 600; white-space: nowrap; width: 1%; }
.scroll { overflow-x: auto; }
.empty { color: var(--muted); font-style: italic; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
"""
