"""render: archived pages link one shared stylesheet, show the same thing, and stay small."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from nbconvert import HTMLExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from softbee.runbook.archive import render
from softbee.runbook.archive.render import render_html
from softbee.runbook.run.execute import run_runbook
from tests.helpers import HUNG_AFTER_S, REPO_ROOT

#: The budget for one archived upgrade_downgrade run, notebook and page together.
MAX_RUN_BYTES = 80_000  # 60,000 at first; +120 B for the package paths, +~400 B from a fresh
# install of the notebook stack (nbconvert, Pygments), the rest for new parameters: history
# (64,505 measured), allow_drift with the drift check (66,201; issue 19), and the five lock
# retry and backfill throttle parameters (71,213; issue 21), then binds and bind_urls with
# a loop over the binds in each step's cell (77,573; issue 23). Embedding the stylesheet or
# keeping the facts outputs would each cost far more.


def _notebook():
    frame_html = (
        '<div><style scoped="">.dataframe thead th { text-align: right; }</style>'
        '<table class="dataframe"><tr><td>1</td></tr></table></div>'
    )
    return new_notebook(
        cells=[
            new_markdown_cell("# A runbook\n\nWith *emphasis* and `code`."),
            new_code_cell(
                "import pandas as pd\nframe = pd.DataFrame({'a': [1]})  # a comment\ndisplay(frame)",
                outputs=[
                    new_output("display_data", data={"text/html": frame_html, "text/plain": "a"}),
                    new_output("display_data", data={"text/html": frame_html, "text/plain": "a"}),
                    new_output("stream", name="stdout", text="  indented\n\ttabbed\n"),
                ],
            ),
        ]
    )


def _styles(page: str) -> list[str]:
    head = page[: page.index("</head>")]
    return [m.strip("\n") for m in re.findall(r"<style[^>]*>(.*?)</style>", head, re.S)]


def _visible_text(page: str) -> str:
    body = page[page.index("<body") :]
    body = re.sub(r"<style[^>]*>.*?</style>", "", body, flags=re.S)
    return re.sub(r"\s+", "", re.sub(r"<[^>]+>", "", body))


def test_the_stylesheet_is_every_style_nbconvert_embeds_in_the_head_in_order():
    nb = _notebook()
    original = HTMLExporter().from_notebook_node(nb)[0]

    rendered = render_html(nb, up=3)

    page = rendered.html.decode()
    assert rendered.stylesheet.decode() == "\n".join(_styles(original)) + "\n"
    assert _styles(page) == []
    assert f'<link rel="stylesheet" href="../../../{rendered.stylesheet_name}">' in page
    assert re.fullmatch(r"static/notebook-[0-9a-f]{16}\.css", rendered.stylesheet_name)


def test_the_page_shows_the_same_text_and_keeps_preformatted_whitespace():
    nb = _notebook()
    original = HTMLExporter().from_notebook_node(nb)[0]

    page = render_html(nb, up=3).html.decode()

    assert _visible_text(page) == _visible_text(original)
    assert "  indented\n\ttabbed" in page  # inside <pre>: untouched
    assert page.count(".dataframe thead th") == 1  # the repeated table style is kept once
    assert '<span class="c1"># a comment</span>' in page  # styled highlighting kept


def test_the_same_nbconvert_gives_the_same_stylesheet_name_for_every_notebook():
    first = render_html(_notebook(), up=3)
    second = render_html(new_notebook(cells=[new_markdown_cell("# Other")]), up=1)

    assert first.stylesheet_name == second.stylesheet_name
    assert b'href="../static/' in second.html


@pytest.mark.notebook
def test_an_archived_upgrade_downgrade_run_stays_within_its_byte_budget(tmp_path, monkeypatch):
    monkeypatch.delenv("SOFTBEE_RUNBOOKS_DIR", raising=False)
    archive_dir = tmp_path / "archive"

    run = run_runbook(
        "upgrade_downgrade",
        texts={"database_url": f"sqlite:///{tmp_path / 'softbee.sqlite3'}"},
        archive_dir=archive_dir,
        cwd=REPO_ROOT,
    )

    assert run.passed, run.record["error"]
    size = run.notebook.stat().st_size + run.html.stat().st_size
    assert size <= MAX_RUN_BYTES, f"{size} bytes"
    stylesheet = archive_dir / run.record["stylesheet"]
    assert stylesheet.stat().st_size > 100_000  # kept once, beside the runs
    assert Path(run.html.parent, "../../..", run.record["stylesheet"]).resolve() == stylesheet


def test_the_exporter_kept_for_the_process_renders_each_notebook_from_scratch():
    """A fleet worker renders every target with one exporter: nothing of one reaches the next."""
    from softbee.runbook.archive import render

    first = new_notebook(cells=[new_markdown_cell("# Target one\n\nSecret-looking ONE-ONLY text")])
    second = _notebook()
    render.render_html(first, up=3)

    again = render.render_html(second, up=3).html.decode()
    fresh = render.exporter_class()().from_notebook_node(second)[0]

    assert "ONE-ONLY" not in again
    assert _visible_text(again) == _visible_text(render.render_html(second, up=3).html.decode())
    assert render.exporter().from_notebook_node(second)[0] == fresh


def test_the_attributes_nbconverts_soup_pass_adds_are_added_without_it():
    nb = _notebook()
    nb.cells[1].outputs.append(new_output("display_data", data={
        "image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}))
    original = HTMLExporter().from_notebook_node(nb)[0]

    page = render.render_html(nb, up=3).html.decode()

    assert page.count('tabindex="0"') == original.count('tabindex="0"') > 0
    assert page.count(f'alt="{render.MISSING_ALT}"') == original.count(
        f'alt="{render.MISSING_ALT}"') == 1


def test_text_keeps_only_the_entities_html_needs_and_attributes_keep_theirs():
    page = ('<p title="a &quot;b&quot; c>d">x &quot;y&quot; &#39;z&#39; &lt;w&gt; &amp;&nbsp;</p>'
            '<script>var s = "&quot;";</script><style>a::after{content:"&amp;"}</style>')

    assert render.minimal_entities(page) == (
        '<p title="a &quot;b&quot; c>d">x "y" \'z\' &lt;w&gt; &amp;\xa0</p>'
        '<script>var s = "&quot;";</script><style>a::after{content:"&amp;"}</style>')


def test_highlighted_code_skips_bleach_only_in_the_shape_pygments_writes():
    clean = render.exporter().environment.filters["clean_html"]
    code = ('<div class=" highlight hl-ipython3"><pre><span></span><span class="n">x</span>'
            '<span class="o">=</span><span class="s2">&quot;a&lt;b&quot;</span>\n</pre></div>\n')

    assert clean(code) == code
    unsafe = '<div class="highlight"><pre><img src=x onerror=alert(1)></pre></div>'
    assert "<img" not in clean(unsafe)  # anything else is sanitized, as before


IPYTHON_CODE = "%time x = !ls\nfrom IPython.display import display  # a comment\ndisplay(x)"


@pytest.mark.parametrize("lexer", ["ipython3", "ipython2"])
def test_ipython_code_is_highlighted_as_nbconverts_own_lexers_do(lexer):
    nb = new_notebook(cells=[new_code_cell(IPYTHON_CODE)])
    nb.metadata["language_info"] = {"name": "python", "pygments_lexer": lexer}
    ours = render.exporter().from_notebook_node(nb)[0]

    theirs = render.exporter_class()()
    theirs.filters = {"highlight_code": Highlight2HTML(pygments_lexer=lexer, parent=theirs)}
    assert f"hl-{lexer}" in ours
    assert ours == theirs.from_notebook_node(nb)[0]


def test_rendering_ipython_code_does_not_import_ipython():
    code = (
        "import sys\n"
        "from nbformat.v4 import new_code_cell, new_notebook\n"
        "from softbee.runbook.archive import render\n"
        f"nb = new_notebook(cells=[new_code_cell({IPYTHON_CODE!r})])\n"
        "nb.metadata['language_info'] = {'name': 'python', 'pygments_lexer': 'ipython3'}\n"
        "page = render.exporter().from_notebook_node(nb)[0]\n"
        "assert 'hl-ipython3' in page and '<span class=\"o\">%</span>' in page, page\n"
        "print('IPython' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=HUNG_AFTER_S, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"
