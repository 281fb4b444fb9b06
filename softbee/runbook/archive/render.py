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

Rendering is nbconvert's ``lab`` template, made cheaper in three ways that change
nothing a reader sees (``tests/archive/test_render.py`` compares the pages with nbconvert's):
one exporter per process, so its templates compile once (a fleet worker renders
every target with it; each call starts from fresh resources, so nothing of one
notebook reaches the next); no BeautifulSoup pass over the whole page, which
nbconvert makes only to add ``tabindex`` and ``alt`` attributes (added here by
pattern, on the tags the template writes); and highlighted code, which pygments
has already escaped, is not sanitized again by bleach when it has exactly the shape
pygments writes (anything else is sanitized as before). IPython's lexers are taken from
``ipython_pygments_lexers``, as IPython 9 itself does, without importing IPython.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import html
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from softbee.runbook.archive.summary import is_facts
from softbee.runbook.util.gcpause import imports_without_gc

if TYPE_CHECKING:
    import nbformat
    from nbconvert import HTMLExporter

STATIC_DIR = "static"

_STYLE = re.compile(r"<style[^>]*>(.*?)</style>\s*", re.S)
_MODULE_SCRIPT = re.compile(r"<script type=\"module\">(.*?)</script>\s*", re.S)
_HIGHLIGHT = re.compile(r"(<div class=\"\s*highlight[^\"]*\"><pre>)(.*?)(</pre>)", re.S)
_SPAN = re.compile(r"<span class=\"([\w-]+)\">([^<]*)</span>")
_SAME_CLASS_NEIGHBOURS = re.compile(r"<span class=\"([\w-]+)\">([^<]*)</span><span class=\"\1\">")
_BODY_STYLE = re.compile(r"<style[^>]*>.*?</style>", re.S)
_PRE = re.compile(r"(<pre\b.*?</pre>)", re.S)
_BLOCK_GAP = re.compile(
    r">\s+(?=</?(?:div|p|h[1-6]|ul|ol|li|table|thead|tbody|tr|th|td|pre|style|blockquote|hr)\b)"
)
# What pygments writes for a code cell: div, pre, spans with a class, escaped text; nothing else.
_HIGHLIGHTED = re.compile(
    r'\s*<div class=" ?highlight[\w -]*"><pre>(?:[^<]|<span(?: class="[\w -]*")?>|</span>)*'
    r"</pre></div>\s*"
)
_DIV = re.compile(r"<div\b[^>]*>")
_CLASS = re.compile(r'\sclass="([^"]*)"')
_IMG_WITHOUT_ALT = re.compile(r"<img\b(?![^>]*\salt=)")
#: nbconvert's text for an image without one (its BeautifulSoup pass adds the same).
MISSING_ALT = "No description has been provided for this image"
_FOCUSABLE = {"jp-Cell-inputWrapper", "jp-OutputArea-output"}
# A tag, quoted attribute values (which may hold ">") included; script and style contents.
_TAG = re.compile(r"""(<(?:[^>"']|"[^"]*"|'[^']*')*>)""")
_RAW_TEXT = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.S | re.I)


@dataclass(frozen=True)
class Rendered:
    """A notebook's page and the stylesheet it links (``stylesheet_name``: archive-relative)."""

    html: bytes
    stylesheet: bytes
    stylesheet_name: str


def render_html(nb: nbformat.NotebookNode, *, up: int, summary: list[str] | None = None) -> Rendered:
    """The page for ``nb``, to be written ``up`` folders below the archive root, and its CSS.

    ``summary``: lines the page says first, above the notebook (the run's outcome).
    """
    page = exporter().from_notebook_node(_without_facts(nb))[0]
    if summary:
        opening = page.index(">", page.index("<body")) + 1
        said = "".join(f"<p>{html.escape(line)}</p>" for line in summary)
        page = (page[:opening] + '<div class="softbee-summary" style="margin:1em 2em;padding:'
                f'0.5em 1em;border-left:4px solid #888">{said}</div>' + page[opening:])
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


def _without_facts(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` without the facts the runbook recorded for the archive: they are not for readers."""
    if not any(is_facts(o) for cell in nb.cells for o in cell.get("outputs", ())):
        return nb
    shown = copy.copy(nb)
    shown.cells = [copy.copy(cell) for cell in nb.cells]
    for cell in shown.cells:
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs if not is_facts(o)]
    return shown


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


_EXPORTER: HTMLExporter | None = None
_EXPORTER_LOCK = threading.Lock()
_WARMED = False
#: How long a run waits for :func:`warm_beside` before rendering without it (seconds).
WARM_WAIT_S = 30.0


def exporter() -> HTMLExporter:
    """This process's HTML exporter (nbconvert's ``lab`` template), made on first use."""
    global _EXPORTER  # noqa: PLW0603 - one per process: its compiled templates are the point
    with _EXPORTER_LOCK:
        if _EXPORTER is None:
            _EXPORTER = exporter_class()()
        return _EXPORTER


def warm() -> None:
    """Make the exporter, compile its templates and what a runbook's page uses, once.

    A run calls this while its kernel starts, so the first page is not paid for after
    the last cell. A small notebook is rendered, the shape of a runbook: a heading, a
    code cell in IPython's lexer (pygments compiles a lexer's rules once per process,
    on first use), a table, printed text and an error. Later calls return at once.
    """
    global _WARMED  # noqa: PLW0603 - once per process, like the exporter
    if _WARMED:
        return
    from nbformat import v4

    code = v4.new_code_cell("from softbee.runbook import load_project  # a step\nx = 1", outputs=[
        v4.new_output("display_data", data={"text/html": "<table><tr><td>1</td></tr></table>",
                                            "text/plain": "1"}),
        v4.new_output("stream", name="stdout", text="done\n"),
        v4.new_output("error", ename="E", evalue="e", traceback=["\x1b[1;31mE\x1b[0m: e"])])
    nb = v4.new_notebook(cells=[v4.new_markdown_cell("## 1. A step\nIt **checks** `this`."), code],
                         metadata={"language_info": {"name": "python",
                                                     "pygments_lexer": "ipython3"}})
    exporter().from_notebook_node(nb)
    _WARMED = True


def warm_beside() -> threading.Thread:
    """:func:`warm` in a thread of its own, started now; join it before rendering.

    A run's process calls it once papermill is imported: it then mostly waits, for the
    kernel to answer and for each cell, and the thread uses that time, instead of
    making the first cell wait for the templates. Imports run with the collector paused.
    An error is left to the render that follows, which raises it where it belongs.
    """

    def run() -> None:
        try:
            with imports_without_gc(freeze=False):
                warm()
        except Exception:  # noqa: BLE001, S110 - render_html raises it again, on the run's thread
            pass

    thread = threading.Thread(target=run, name="softbee-render-warm", daemon=True)
    thread.start()
    return thread


def exporter_class() -> type[HTMLExporter]:
    """nbconvert's HTMLExporter without its page-wide BeautifulSoup pass (made on first call)."""
    from nbconvert import HTMLExporter
    from nbconvert.exporters.templateexporter import TemplateExporter
    from nbconvert.filters.highlight import Highlight2HTML
    from nbconvert.filters.strings import clean_html
    from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter

    class Highlight(Highlight2HTML):  # type: ignore[misc]
        """nbconvert's highlighting, with IPython's lexers from where IPython takes them.

        nbconvert imports them from ``IPython.lib.lexers``, which imports all of IPython
        (0.05-0.1 s) to re-export ``ipython_pygments_lexers``' classes: the same classes,
        the same pages.
        """

        def __call__(self, source: str, language: str | None = None,
                     metadata: Any = None) -> str:
            language = language or self.pygments_lexer
            lexer = None
            if not (metadata and "magics_language" in metadata):
                lexer = _ipython_lexer(language)
            if lexer is None:
                return super().__call__(source, language, metadata)  # type: ignore[no-any-return]
            from pygments import highlight
            from pygments.formatters import HtmlFormatter

            formatter = HtmlFormatter(cssclass=html.escape(f" highlight hl-{language}"),
                                      **self.extra_formatter_options)
            return highlight(source if len(source) > 0 else " ", lexer, formatter)  # type: ignore[no-any-return]

    def clean_unless_highlighted(element: Any) -> str:
        text = element.decode() if isinstance(element, bytes) else str(element)
        return text if _HIGHLIGHTED.fullmatch(text) else clean_html(text)

    class ArchiveHTMLExporter(HTMLExporter):  # type: ignore[misc]
        """nbconvert's HTMLExporter without the page-wide BeautifulSoup pass."""

        def default_filters(self) -> Any:
            yield from super().default_filters()
            yield ("clean_html", clean_unless_highlighted)

        def from_notebook_node(
            self, nb: nbformat.NotebookNode, resources: dict[str, Any] | None = None, **kw: Any
        ) -> tuple[str, dict[str, Any]]:
            # HTMLExporter.from_notebook_node's set-up, each call from fresh resources...
            language = nb.metadata.get("language_info", {})
            lexer = language.get("pygments_lexer", language.get("name", None))
            self.register_filter("highlight_code", self.filters.get(
                "highlight_code", Highlight(pygments_lexer=lexer, parent=self)))
            resources = self._init_resources(resources)
            self.register_filter("filter_data_type", WidgetsDataTypeFilter(
                notebook_metadata=self._nb_metadata, parent=self, resources=resources))
            page, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
            # ...and what its BeautifulSoup pass adds, and the text it writes, by pattern.
            return minimal_entities(accessible(page)), resources

    return ArchiveHTMLExporter


def _ipython_lexer(language: str | None) -> Any:
    """A new IPython lexer for ``ipython3``/``ipython2`` from ipython_pygments_lexers; else None.

    None also when ``IPython.lib.lexers`` is not a re-export of that package (IPython < 9
    has lexers of its own): nbconvert then imports them as ever.
    """
    if language not in ("ipython3", "ipython2") or not _lexers_are_separate():
        return None
    import ipython_pygments_lexers as lexers

    return lexers.IPython3Lexer() if language == "ipython3" else lexers.IPythonLexer()


@functools.cache
def _lexers_are_separate() -> bool:
    """Whether IPython (9 or later) takes its lexers from ipython_pygments_lexers, installed."""
    from importlib import metadata
    from importlib.util import find_spec

    try:
        major = int(metadata.version("ipython").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return major >= 9 and find_spec("ipython_pygments_lexers") is not None


def accessible(page: str) -> str:
    """``tabindex="0"`` on input wrappers and outputs, ``alt`` on images without one.

    The attributes nbconvert's HTMLExporter adds after rendering (keyboard focus for
    cells, a text for screen readers), on the tags its template writes.
    """

    def focusable(match: re.Match[str]) -> str:
        tag = match.group(0)
        found = _CLASS.search(tag)
        if found is None or "tabindex=" in tag or not _FOCUSABLE & set(found.group(1).split()):
            return tag
        return tag[:-1] + ' tabindex="0">'

    page = _DIV.sub(focusable, page)
    return _IMG_WITHOUT_ALT.sub(f'<img alt="{MISSING_ALT}"', page)


def minimal_entities(page: str) -> str:
    """Text between tags with only ``&``, ``<`` and ``>`` escaped, as BeautifulSoup writes it.

    Templates and pygments write ``&quot;``, ``&#39;`` and ``&nbsp;`` in text, where the
    characters themselves mean the same and weigh less. Tags (attribute values keep their
    entities) and the contents of ``<script>`` and ``<style>`` are left as they are.
    """
    out: list[str] = []
    position = 0
    for raw in _RAW_TEXT.finditer(page):
        out.append(_text_entities(page[position:raw.start()]))
        out.append(raw.group(0))
        position = raw.end()
    out.append(_text_entities(page[position:]))
    return "".join(out)


def _text_entities(chunk: str) -> str:
    parts = _TAG.split(chunk)  # text, tag, text, tag, ... text
    for index in range(0, len(parts), 2):
        if "&" in parts[index]:
            parts[index] = html.escape(html.unescape(parts[index]), quote=False)
    return "".join(parts)
