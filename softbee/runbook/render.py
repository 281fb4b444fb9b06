"""Render an archived notebook as HTML that links one shared stylesheet instead of embedding it.

nbconvert's ``lab`` template embeds about 300 KB of CSS in every page. The
archive keeps that CSS once, as ``static/notebook-<sha256 prefix>.css`` (the name
follows the content, so a new nbconvert version writes a new file and older
pages keep theirs), and each page links it by a relative path: it renders the
same, from the file system, with no server and no network. Two more savings
change nothing on screen: the inline loader for mermaid diagrams is left out of
pages that have none; syntax-highlighting ``<span>``s whose class no CSS
rule styles are unwrapped to their text, and neighbours of one class merged;
the whitespace between block and table tags (outside ``<pre>``), which
browsers do not render, is dropped; and a ``<style>`` block repeated in the body
(pandas puts the same one before every table; browsers apply each to the whole
page, ``scoped`` or not) is kept once.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import nbformat

STATIC_DIR = "static"

_STYLE = re.compile(r"<style[^>]*>(.*?)</style>\s*", re.S)
_MODULE_SCRIPT = re.compile(r"<script type=\"module\">(.*?)</script>\s*", re.S)
_HIGHLIGHT = re.compile(r"(<div class=\"highlight[^\"]*\"><pre>)(.*?)(</pre>)", re.S)
_SPAN = re.compile(r"<span class=\"([\w-]+)\">([^<]*)</span>")
_SAME_CLASS_NEIGHBOURS = re.compile(r"<span class=\"([\w-]+)\">([^<]*)</span><span class=\"\1\">")
_BODY_STYLE = re.compile(r"<style[^>]*>.*?</style>", re.S)
_PRE = re.compile(r"(<pre\b.*?</pre>)", re.S)
_BLOCK_GAP = re.compile(
    r">\s+(?=</?(?:div|p|h[1-6]|ul|ol|li|table|thead|tbody|tr|th|td|pre|style|blockquote|hr)\b)"
)


@dataclass(frozen=True)
class Rendered:
    """A notebook's page and the stylesheet it links (``stylesheet_name``: archive-relative)."""

    html: bytes
    stylesheet: bytes
    stylesheet_name: str


def render_html(nb: nbformat.NotebookNode, *, up: int) -> Rendered:
    """The page for ``nb``, to be written ``up`` folders below the archive root, and its CSS."""
    from nbconvert import HTMLExporter

    page = HTMLExporter().from_notebook_node(nb)[0]
    head_end = page.index("</head>")
    head, body = page[:head_end], page[head_end:]

    css = "\n".join(match.group(1).strip("\n") for match in _STYLE.finditer(head)) + "\n"
    stylesheet = css.encode("utf-8")
    name = f"{STATIC_DIR}/notebook-{hashlib.sha256(stylesheet).hexdigest()[:16]}.css"
    link = f'<link rel="stylesheet" href="{"../" * up}{html.escape(name)}">\n'
    first = _STYLE.search(head)
    if first is not None:
        head = head[: first.start()] + link + _STYLE.sub("", head[first.start() :])
    if 'class="jp-Mermaid' not in body:
        head = _MODULE_SCRIPT.sub(lambda m: "" if "mermaid" in m.group(1) else m.group(0), head)
    body = _HIGHLIGHT.sub(
        lambda m: m.group(1) + _unwrap_unstyled(m.group(2), css) + m.group(3), body
    )
    body = _once_each(_BODY_STYLE, body)
    body = "".join(
        part if part.startswith("<pre") else _BLOCK_GAP.sub(">", part) for part in _PRE.split(body)
    )
    return Rendered(html=(head + body).encode("utf-8"), stylesheet=stylesheet, stylesheet_name=name)


def _once_each(pattern: re.Pattern[str], text: str) -> str:
    """``text`` with every repeat of a ``pattern`` match already seen removed."""
    seen: set[str] = set()

    def first(match: re.Match[str]) -> str:
        if match.group(0) in seen:
            return ""
        seen.add(match.group(0))
        return match.group(0)

    return pattern.sub(first, text)


def _unwrap_unstyled(code: str, css: str) -> str:
    """Replace ``<span class="n">x</span>`` by ``x`` when no rule in ``css`` names class ``n``."""
    styled: dict[str, bool] = {}

    def unwrap(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in styled:
            styled[name] = re.search(rf"\.{re.escape(name)}(?![\w-])", css) is not None
        return match.group(0) if styled[name] else match.group(2)

    code = _SPAN.sub(unwrap, code)
    while True:
        merged = _SAME_CLASS_NEIGHBOURS.sub(r'<span class="\1">\2', code)
        if merged == code:
            return code
        code = merged
