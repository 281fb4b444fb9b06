"""auditpage: <archive>/index.html lists every run, escaped, filterable, and works in Chromium."""

from __future__ import annotations

import base64
import datetime as dt
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from softbee.runbook.archive import INDEX_NAME, archive_run, read_index, verify_archive
from softbee.runbook.archive.auditpage import (
    PAGE_NAME,
    format_duration,
    relative_href,
    render_index_page,
    write_index_page,
)
from softbee.runbook.archive.summary import MIME_TYPE
from softbee.runbook.cli import main
from tests.browser import DevTools, headless

T0 = dt.datetime(2024, 3, 5, 7, 8, 9, tzinfo=dt.UTC)
PASSWORD = "hunter2pw"
HOSTILE = '<img src=x onerror="document.title=1">'


def _facts(environment: str = "staging") -> dict:
    return {
        "runbook": "upgrade_downgrade",
        "database": {"dialect": "postgresql", "host": "db", "port": 5432,
                     "database": "softbee", "password": PASSWORD},
        "environment": environment,
        "revision_before": "aaa111",
        "revision_after": "bbb222",
    }


def _archive(directory: Path, run_id: str, *, minutes: int, runbook: str = "upgrade_downgrade",
             error: dict | None = None) -> None:
    """Archive a small notebook whose report names its run (``Report of <run id>``)."""
    outputs = [new_output("display_data", data={MIME_TYPE: _facts(), "text/plain": "facts"})]
    nb = new_notebook(cells=[new_markdown_cell(f"# Report of {run_id}"),
                             new_code_cell("record()", outputs=outputs)])
    started = T0 + dt.timedelta(minutes=minutes)
    archive_run(nb, directory=directory, runbook=runbook, run_id=run_id, started=started,
                finished=started + dt.timedelta(seconds=75), parameters={"note": HOSTILE},
                error=error, project_dir=directory.parent)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four runs: two passed, two failed (one with markup and a URL password in its error)."""
    directory = tmp_path_factory.mktemp("audit") / "archive"
    _archive(directory, "run000000001", minutes=0)
    _archive(directory, "run000000002", minutes=1, runbook="inspect_diff",
             error={"type": "RevisionError", "message": "no such revision", "step": "## 2."})
    _archive(directory, "run000000003", minutes=2, runbook="inspect_diff")
    _archive(directory, "run000000004", minutes=3, error={
        "type": "OperationalError", "step": "## 1. Preflight",
        "message": f"postgresql://bee:{PASSWORD}@db/softbee refused {HOSTILE}"})
    return directory


class _Rows(HTMLParser):
    """The table rows of a page or DOM dump: attributes, text and link of each."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self.images = 0
        self._row: dict | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "img":
            self.images += 1
        if tag == "tr" and "run" in (attributes.get("class") or "").split():
            self._row = {**attributes, "text": "", "href": None}
            self.rows.append(self._row)
        elif tag == "a" and self._row is not None:
            self._row["href"] = attributes.get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row is not None:
            self._row["text"] += data


class _Tags(HTMLParser):
    """Every tag that would fetch something: a src, a stylesheet link, an embedded object."""

    def __init__(self) -> None:
        super().__init__()
        self.fetching: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag in ("link", "img", "iframe", "object", "embed") or names & {"src", "srcset"}:
            self.fetching.append(tag)


def _rows(page: str) -> _Rows:
    parser = _Rows()
    parser.feed(page)
    return parser


# -- the page's content -------------------------------------------------------------------------


def test_every_archived_run_rewrites_the_page_with_all_runs_newest_first(archive: Path) -> None:
    rows = _rows((archive / PAGE_NAME).read_text(encoding="utf-8")).rows

    assert [r["data-run-id"] for r in rows] == [f"run00000000{n}" for n in (4, 3, 2, 1)]
    assert [r["data-status"] for r in rows] == ["failed", "passed", "failed", "passed"]
    assert ["failed" in r["class"].split() for r in rows] == [True, False, True, False]
    first = rows[-1]["text"]
    for shown in ("2024-03-05 07:08:09", "upgrade_downgrade", "postgresql softbee on db:5432",
                  "staging", "aaa111 → bbb222", "passed", "1 min 15 s"):
        assert shown in first


def test_each_row_links_relatively_to_its_runs_html(archive: Path) -> None:
    rows = _rows((archive / PAGE_NAME).read_text(encoding="utf-8")).rows
    records = {r["run_id"]: r for r in read_index(archive)}

    for row in rows:
        assert row["href"] == records[row["data-run-id"]]["html"]
        assert not row["href"].startswith(("/", "file:"))
        assert (archive / row["href"]).is_file()


def test_markup_is_escaped_and_no_password_reaches_the_page(archive: Path) -> None:
    page = (archive / PAGE_NAME).read_text(encoding="utf-8")

    assert PASSWORD not in page
    assert HOSTILE not in page and _rows(page).images == 0
    assert "OperationalError: postgresql://bee:***@db/softbee refused &lt;img" in page
    assert "(step 1. Preflight)" in page


def test_the_page_stays_outside_the_hash_chain(archive: Path) -> None:
    assert verify_archive(archive) == []


def test_the_page_is_self_contained_and_forbids_the_network(archive: Path) -> None:
    page = (archive / PAGE_NAME).read_text(encoding="utf-8")

    assert "default-src 'none'" in page
    assert "http://" not in page and "https://" not in page and "url(" not in page
    tags = _Tags()
    tags.feed(page)
    assert not tags.fetching, f"tags that would load something: {tags.fetching}"


def test_a_hand_edited_link_that_leaves_the_archive_is_not_linked() -> None:
    records = [{"run_id": "evil", "status": "passed", "started_at": "2024-01-01T00:00:00Z",
                "html": "javascript:alert(1)"},
               {"run_id": "up", "status": "passed", "started_at": "2024-01-02T00:00:00Z",
                "html": "../../etc/passwd.html"}]

    rows = _rows(render_index_page(records)).rows

    assert [r["href"] for r in rows] == [None, None]
    assert relative_href("2024/03/05/a b#c.html") == "2024/03/05/a%20b%23c.html"
    for bad in ("/abs.html", "https://x/y.html", "a/../b.html", "a\\b.html", "", None, 3):
        assert relative_href(bad) is None


def test_durations_read_as_seconds_minutes_or_hours() -> None:
    assert [format_duration(s) for s in (2.5, 75, 3725, None, -1)] == [
        "2.5 s", "1 min 15 s", "1 h 02 min", "", ""]


def test_unreadable_index_lines_are_named_on_the_page(archive: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(archive, copy)
    with open(copy / INDEX_NAME, "ab") as index:
        index.write(b"{torn\n")

    page = write_index_page(copy)

    text = page.path.read_text(encoding="utf-8")
    assert "line 5 are unreadable" in text.replace("lines 5", "line 5")
    assert (page.runs, page.failed) == (4, 2)


# -- the command ---------------------------------------------------------------------------------


def test_archive_html_rebuilds_the_page(archive: Path, tmp_path: Path, capsys) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(archive, copy)
    (copy / PAGE_NAME).unlink()

    code = main(["archive", "html", "--archive-dir", str(copy)])

    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(f"wrote {copy / PAGE_NAME}: 4 run(s), 2 failed")
    assert len(_rows((copy / PAGE_NAME).read_text(encoding="utf-8")).rows) == 4


def test_archive_html_of_a_missing_archive_exits_2_and_creates_nothing(tmp_path: Path,
                                                                        capsys) -> None:
    missing = tmp_path / "nowhere"

    code = main(["archive", "html", "--archive-dir", str(missing)])

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("softbee-runbook: error: no archive at")
    assert not missing.exists()


# -- in a real browser ---------------------------------------------------------------------------


@pytest.mark.browser
def test_in_chromium_the_failed_filter_shows_only_failed_runs_and_links_open(
    archive: Path, tmp_path: Path
) -> None:
    page_url = (archive / PAGE_NAME).as_uri()

    dom = headless(page_url + "#status=failed", tmp_path / "profile", "--dump-dom")

    rows = _rows(dom)
    visible = [r for r in rows.rows if "hidden" not in r]
    assert [r["data-run-id"] for r in visible] == ["run000000004", "run000000002"]
    assert len(rows.rows) == 4 and rows.images == 0
    assert "2 of 4 run(s) shown" in dom

    report = headless(urljoin(page_url, visible[0]["href"]), tmp_path / "profile", "--dump-dom")

    assert "Report of run000000004" in report


@pytest.mark.browser
def test_in_chromium_the_runbook_filter_combines_with_status(archive: Path, tmp_path: Path) -> None:
    url = (archive / PAGE_NAME).as_uri() + "#runbook=inspect_diff&status=passed"

    rows = _rows(headless(url, tmp_path / "profile", "--dump-dom")).rows

    assert [r["data-run-id"] for r in rows if "hidden" not in r] == ["run000000003"]


@pytest.mark.browser
def test_in_chromium_a_screenshot_of_the_failed_runs_shows_them_in_red(
    archive: Path, tmp_path: Path
) -> None:
    from PIL import Image

    shot = tmp_path / "failed.png"
    headless((archive / PAGE_NAME).as_uri() + "#status=failed", tmp_path / "profile",
              f"--screenshot={shot}", "--window-size=1280,800", "--hide-scrollbars")

    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(shot) as image:
        assert image.size == (1280, 800)
        colours = {colour for _, colour in image.convert("RGB").getcolors(1 << 20) or []}
    assert len(colours) > 50, "the screenshot is nearly blank"
    assert (0xFD, 0xEC, 0xEC) in colours, "no failed-row background in the screenshot"
    assert (0xC6, 0x28, 0x28) in colours, "no failed badge in the screenshot"


_VISIBLE_RUNS = ("Array.from(document.querySelectorAll('#runs tbody tr'))"
                 ".filter(row => !row.hidden).map(row => row.dataset.runId)")
_INDEX_LOADED = ("location.pathname.endsWith('/index.html') && document.readyState === 'complete'"
                 " && document.getElementById('shown').textContent !== ''")


@pytest.mark.browser
def test_in_chromium_an_auditor_filters_to_failed_runs_follows_a_link_and_comes_back(
    archive: Path, tmp_path: Path
) -> None:
    """Driven as a person would: pick "failed" in the Status list, click the newest failed
    run, read its report, screenshot it, go back: the filter is still applied."""
    chromium = DevTools((archive / PAGE_NAME).as_uri(), tmp_path / "profile")
    shots: dict[str, bytes] = {}

    async def steps() -> dict[str, object]:
        await chromium.wait_for(_INDEX_LOADED, "index.html loaded")
        seen: dict[str, object] = {"all": await chromium.evaluate(_VISIBLE_RUNS)}
        await chromium.act("const s = document.getElementById('status');"
                           "s.value = 'failed'; s.dispatchEvent(new Event('change'))")
        seen["failed"] = await chromium.evaluate(_VISIBLE_RUNS)
        seen["hash"] = await chromium.evaluate("location.hash")
        seen["counter"] = await chromium.evaluate("document.getElementById('shown').textContent")
        shot = await chromium.call("Page.captureScreenshot", format="png")
        shots["index"] = base64.b64decode(shot["data"])
        seen["link"] = await chromium.evaluate(
            "document.querySelector('#runs tbody tr:not([hidden]) a').getAttribute('href')")
        await chromium.act("document.querySelector('#runs tbody tr:not([hidden]) a').click()")
        await chromium.wait_for("!location.pathname.endsWith('/index.html') && "
                                "document.readyState === 'complete'", "the run's report loaded")
        seen["report_url"] = await chromium.evaluate("location.href")
        seen["report_text"] = await chromium.evaluate("document.body.innerText")
        shot = await chromium.call("Page.captureScreenshot", format="png")
        shots["report"] = base64.b64decode(shot["data"])
        await chromium.act("history.back()")
        await chromium.wait_for(_INDEX_LOADED, "back on index.html")
        seen["after_back"] = await chromium.evaluate(_VISIBLE_RUNS)
        return seen

    seen = chromium.drive(steps)

    assert seen["all"] == ["run000000004", "run000000003", "run000000002", "run000000001"]
    assert seen["failed"] == ["run000000004", "run000000002"]
    assert seen["hash"] == "#status=failed"
    assert seen["counter"] == "2 of 4 run(s) shown"
    assert seen["report_url"] == urljoin((archive / PAGE_NAME).as_uri(), str(seen["link"]))
    assert "Report of run000000004" in str(seen["report_text"])
    assert seen["after_back"] == ["run000000004", "run000000002"]
    for name, png in shots.items():
        (tmp_path / f"{name}.png").write_bytes(png)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000, name
