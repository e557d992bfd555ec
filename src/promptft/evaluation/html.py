"""A self-contained HTML page from markdown-like sections and PNG plots (embedded as base64 data URIs).

The markdown is what the report pieces render (`render_markdown()`): headings, paragraphs, `|` tables, `*`
bullet lists, `**bold**` and `` `code` ``. A small converter keeps the page free of extra dependencies; all
text is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0; color: #1d2433;
       background: #f5f6f8; line-height: 1.45; }
header { background: #1f3a5f; color: white; padding: 18px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 24px; }
header p { margin: 0; opacity: 0.85; }
main { max-width: 1100px; margin: 0 auto; padding: 16px 32px 48px 32px; }
section { background: white; border-radius: 8px; padding: 12px 24px 18px 24px; margin: 18px 0;
          box-shadow: 0 1px 3px rgba(0,0,0,0.12); }
h2 { border-bottom: 2px solid #dfe3ea; padding-bottom: 4px; color: #1f3a5f; }
h3 { color: #2b4c7e; margin-bottom: 6px; }
table { border-collapse: collapse; margin: 8px 0 14px 0; font-size: 14px; }
th, td { border: 1px solid #d5dae3; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #eef1f6; }
tr:nth-child(even) td { background: #fafbfc; }
td { max-width: 520px; overflow-wrap: anywhere; }
td.nw { white-space: nowrap; overflow-wrap: normal; }
code { background: #eef1f6; padding: 1px 4px; border-radius: 3px; }
.figures { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
figure { margin: 0; }
figure img { max-width: 100%; border: 1px solid #dfe3ea; border-radius: 4px; }
figcaption { font-size: 13px; color: #5b6475; text-align: center; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 12px; font-weight: 600; font-size: 13px; }
.ok { background: #d8f3dc; color: #1b5e20; } .warn { background: #ffe0b2; color: #8a4b00; }
.bad { background: #ffcdd2; color: #8e0000; } .muted { color: #5b6475; }
nav a { margin-right: 14px; color: #1f3a5f; }
"""


@dataclass
class Section:
    title: str
    markdown: str = ""
    images: list[tuple[str, Path]] = field(default_factory=list)  # (caption, png path)
    badge: tuple[str, str] | None = None  # (text, ok|warn|bad)

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def _cells(line: str) -> list[str]:
    body = line.strip()[1:-1] if line.strip().endswith("|") else line.strip()[1:]
    parts = re.split(r"(?<!\\)\|", body)
    return [p.strip().replace("\\|", "|") for p in parts]


def _td(cell: str) -> str:
    """A table cell; short ones (numbers, labels) never wrap, so long text columns take the room."""
    nowrap = ' class="nw"' if len(cell) <= 24 else ""
    return f"<td{nowrap}>{_inline(cell)}</td>"


def markdown_to_html(text: str) -> str:
    """The subset of markdown the report pieces write, as HTML."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
            continue
        heading = re.match(r"^(#{1,4})\s+(.*)$", stripped)
        if heading:
            level = min(len(heading.group(1)) + 2, 6)  # the page's own h1/h2 come first
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            i += 1
        elif stripped.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(lines[i])
                i += 1
            header, body = (
                _cells(rows[0]),
                [r for r in rows[1:] if not re.match(r"^\|[\s|:-]+\|?$", r.strip())],
            )
            table = ["<table>", "<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in header) + "</tr>"]
            table += ["<tr>" + "".join(_td(c) for c in _cells(r)) + "</tr>" for r in body]
            out.append("\n".join(table) + "\n</table>")
        elif re.match(r"^[*-]\s+", stripped):
            items = []
            while i < len(lines) and re.match(r"^\s*[*-]\s+", lines[i]):
                item = re.sub(r"^\s*[*-]\s+", "", lines[i])
                items.append(f"<li>{_inline(item)}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not re.match(r"^\s*(#|\||[*-]\s)", lines[i]):
                para.append(lines[i].strip())
                i += 1
            if not para:  # a line the loops above did not take (e.g. "*bold*" at a line start)
                para, i = [stripped], i + 1
            out.append("<p>" + "<br>".join(_inline(p) for p in para) + "</p>")
    return "\n".join(out)


def image_tag(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def render_page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """One HTML document: a header, a table of contents, then each section (badge, text, figures)."""
    nav = " ".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    body = []
    for s in sections:
        badge = f' <span class="badge {s.badge[1]}">{html.escape(s.badge[0])}</span>' if s.badge else ""
        figures = "".join(image_tag(p, c) for c, p in s.images if Path(p).is_file())
        body.append(
            f'<section id="{s.anchor}"><h2>{html.escape(s.title)}{badge}</h2>\n{markdown_to_html(s.markdown)}'
            + (f'<div class="figures">{figures}</div>' if figures else "")
            + "</section>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header>"
        f"<main><nav>{nav}</nav>\n" + "\n".join(body) + "</main></body></html>\n"
    )
