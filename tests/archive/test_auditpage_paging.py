"""auditpage paging: per-run updates touch only the newest page, and equal a full rebuild."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from softbee.runbook.archive import HEAD_NAME, INDEX_NAME, append_record, verify_archive
from softbee.runbook.archive.auditpage import LATEST, PAGE_NAME, PAGES_DIR, write_index_page
from softbee.runbook.archive.chain import GENESIS_HASH, canonical_json, chain_hash
from softbee.runbook.archive.pagehtml import page_file
from softbee.runbook.cli import main
from tests.archive.test_auditpage import _VISIBLE_RUNS, _rows
from tests.browser import DevTools, headless

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _record(number: int) -> dict:
    """Run ``number``: runbooks in turn, every fourth run failed (from the second)."""
    failed = number % 4 == 1
    return {
        "run_id": f"run{number:09d}",
        "runbook": ("upgrade_downgrade", "inspect_diff", "check_drift")[number % 3],
        "status": "failed" if failed else "passed",
        "started_at": (T0 + dt.timedelta(minutes=number)).isoformat().replace("+00:00", "Z"),
        "duration_s": 12.0,
        "database": {"dialect": "postgresql", "host": "db", "port": 5432, "database": "softbee"},
        "error": {"type": "OperationalError", "message": "refused"} if failed else None,
        "html": f"2026/01/01/run{number:09d}.html",
    }


def _build(directory: Path, runs: int) -> None:
    """An index of ``runs`` records written at once, chained as ``append_record`` chains them."""
    directory.mkdir(parents=True)
    last = GENESIS_HASH
    with open(directory / INDEX_NAME, "wb") as index:
        for number in range(runs):
            record = {**_record(number), "prev_hash": last}
            record["hash"] = last = chain_hash(last, record)
            index.write(canonical_json(record) + b"\n")
    (directory / HEAD_NAME).write_bytes(canonical_json({"runs": runs, "hash": last}) + b"\n")


def _pages(directory: Path) -> dict[str, bytes]:
    """Every file of the auditors' pages, by path inside the archive."""
    files = [directory / PAGE_NAME, *sorted((directory / PAGES_DIR).iterdir())]
    return {path.relative_to(directory).as_posix(): path.read_bytes() for path in files}


def test_pages_updated_after_each_run_are_the_bytes_a_full_rebuild_writes(tmp_path: Path) -> None:
    directory = tmp_path / "archive"
    for number in range(11):
        append_record(directory, _record(number))
        if number == 5:  # a damaged line and a blank one, named on the front page
            with open(directory / INDEX_NAME, "ab") as index:
                index.write(b"{torn\n\n")
        write_index_page(directory, page_size=3)
    incremental = _pages(directory)

    rebuilt = write_index_page(directory, full=True, page_size=3)

    assert rebuilt.rebuilt and (rebuilt.runs, rebuilt.failed, rebuilt.pages) == (11, 3, 4)
    assert sorted(incremental) == sorted(_pages(directory)) == [
        "index.html", "pages/index.html", "pages/page-0001.html", "pages/page-0002.html",
        "pages/page-0003.html", "pages/page-0004.html", "pages/pages.jsonl", "pages/state.json"]
    assert incremental == _pages(directory)
    assert "lines 7 are unreadable" in incremental["index.html"].decode()


def test_a_run_reads_and_writes_as_much_at_1506_records_as_at_156(tmp_path: Path) -> None:
    """Structural, not timing: the bytes of the index read and the files written per update."""
    done = {}
    for runs in (155, 1505):
        directory = tmp_path / f"archive-{runs}"
        _build(directory, runs)
        write_index_page(directory, page_size=10)  # no state yet: the first update is in full
        append_record(directory, _record(runs))

        done[runs] = write_index_page(directory, page_size=10)

    small, large = done[155], done[1505]
    assert not small.rebuilt and not large.rebuilt
    assert [p.name for p in small.written] == ["page-0016.html", "index.html", "state.json"]
    assert [p.name for p in large.written] == ["page-0151.html", "index.html", "state.json"]
    line = max(len(line) for line in (tmp_path / "archive-1505" / INDEX_NAME).open("rb"))
    assert small.bytes_read <= (LATEST + 2) * line  # the front's runs, not the index
    assert abs(large.bytes_read - small.bytes_read) <= 0.02 * small.bytes_read
    sizes = [sum(p.stat().st_size for p in page.written) for page in (small, large)]
    assert abs(sizes[1] - sizes[0]) <= 0.02 * sizes[0]


def test_a_full_page_gets_its_newer_link_and_a_row_in_the_list_of_pages(tmp_path: Path) -> None:
    directory = tmp_path / "archive"
    _build(directory, 6)
    write_index_page(directory, page_size=3)
    pages = directory / PAGES_DIR
    assert 'rel="next"' not in (pages / page_file(2)).read_text()

    append_record(directory, _record(6))
    update = write_index_page(directory, page_size=3)

    assert [p.name for p in update.written] == [
        "page-0002.html", "page-0003.html", "pages.jsonl", "index.html", "index.html",
        "state.json"]
    assert 'rel="next" href="page-0003.html"' in (pages / page_file(2)).read_text()
    assert 'rel="prev" href="page-0002.html"' in (pages / page_file(3)).read_text()
    listed = [json.loads(line) for line in (pages / "pages.jsonl").read_text().splitlines()]
    assert [(s["page"], s["first"], s["runs"]) for s in listed] == [(1, 1, 3), (2, 4, 3)]
    assert listed[1]["counts"] == {"check_drift": {"failed": 1}, "inspect_diff": {"passed": 1},
                                   "upgrade_downgrade": {"passed": 1}}
    assert [r["data-run-id"] for r in _rows((pages / page_file(3)).read_text()).rows] == [
        "run000000006"]


def test_the_front_page_shows_the_latest_runs_and_totals_over_every_run(tmp_path: Path) -> None:
    directory = tmp_path / "archive"
    _build(directory, LATEST + 25)

    page = write_index_page(directory, page_size=10)

    front = (directory / PAGE_NAME).read_text()
    shown = [r["data-run-id"] for r in _rows(front).rows]
    assert shown == [f"run{n:09d}" for n in range(LATEST + 24, 24, -1)]
    assert f"{LATEST + 25} run(s), {page.failed} failed" in front
    assert page.failed == sum(_record(n)["status"] == "failed" for n in range(LATEST + 25))
    assert 'href="pages/page-0013.html"' in front
    assert all(r["href"].startswith("../2026/") for r in
               _rows((directory / PAGES_DIR / page_file(1)).read_text()).rows)


def test_an_index_rewritten_behind_the_pages_is_rebuilt_in_full(tmp_path: Path) -> None:
    directory = tmp_path / "archive"
    _build(directory, 10)
    write_index_page(directory, page_size=3)
    lines = (directory / INDEX_NAME).read_bytes().splitlines(keepends=True)
    (directory / INDEX_NAME).write_bytes(b"".join(lines[:5]))  # truncated: 5 runs, 2 pages

    update = write_index_page(directory, page_size=3)

    assert update.rebuilt and (update.runs, update.pages) == (5, 2)
    assert sorted(p.name for p in (directory / PAGES_DIR).glob("page-*.html")) == [
        "page-0001.html", "page-0002.html"]


def test_an_index_replaced_by_a_longer_one_is_rebuilt_in_full(tmp_path: Path) -> None:
    directory = tmp_path / "archive"
    _build(directory, 4)
    write_index_page(directory, page_size=3)
    other = tmp_path / "other"
    _build(other, 12)
    replaced = [json.loads(line) for line in (other / INDEX_NAME).read_bytes().splitlines()]
    replaced[3]["runbook"] = "recover_stamp"  # the line the pages last read is not there
    (directory / INDEX_NAME).write_bytes(b"".join(canonical_json(r) + b"\n" for r in replaced))

    update = write_index_page(directory, page_size=3)

    assert update.rebuilt and (update.runs, update.pages) == (12, 4)
    assert "recover_stamp 1" in (directory / PAGE_NAME).read_text()


def test_the_pages_stay_outside_the_hash_chain(tmp_path: Path) -> None:
    directory = tmp_path / "archive"
    for number in range(4):
        append_record(directory, {k: v for k, v in _record(number).items() if k != "html"})
        write_index_page(directory, page_size=2)

    assert verify_archive(directory) == []


def test_archive_html_rebuilds_every_page_after_one_is_deleted(tmp_path: Path, capsys) -> None:
    directory = tmp_path / "archive"
    _build(directory, 1200)
    write_index_page(directory)
    (directory / PAGES_DIR / page_file(1)).unlink()

    code = main(["archive", "html", "--archive-dir", str(directory)])

    assert code == 0
    assert "1200 run(s), 300 failed, 3 page(s)" in capsys.readouterr().out
    assert len(_rows((directory / PAGES_DIR / page_file(1)).read_text()).rows) == 500


# -- in a real browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seven runs in pages of three: run000000001 (inspect_diff) and run000000005 (check_drift)
    failed, one on page 1 and one on page 2."""
    directory = tmp_path_factory.mktemp("paged") / "archive"
    _build(directory, 7)
    write_index_page(directory, page_size=3)
    return directory


def _visible(dom: str) -> list[str]:
    return [r.get("data-run-id") or r["href"] for r in _rows(dom).rows if "hidden" not in r]


@pytest.mark.browser
def test_in_chromium_the_list_of_pages_filters_and_its_links_keep_the_filter(
    paged: Path, tmp_path: Path
) -> None:
    url = (paged / PAGES_DIR / PAGE_NAME).as_uri() + "#runbook=check_drift&status=failed"

    dom = headless(url, tmp_path / "profile", "--dump-dom")

    rows = [r for r in _Pages.parse(dom) if not r["hidden"]]
    assert [(r["href"], r["match"]) for r in rows] == [
        ("page-0002.html#runbook=check_drift&status=failed", "1")]
    assert "1 of 2 page(s) shown, 1 matching run(s)" in dom


@pytest.mark.browser
def test_in_chromium_a_page_opened_filtered_shows_its_matching_runs(
    paged: Path, tmp_path: Path
) -> None:
    url = (paged / PAGES_DIR / page_file(2)).as_uri() + "#status=failed"

    dom = headless(url, tmp_path / "profile", "--dump-dom")

    assert [r["data-run-id"] for r in _rows(dom).rows if "hidden" not in r] == ["run000000005"]
    assert "1 of 3 run(s) shown" in dom
    assert 'href="page-0001.html#status=failed"' in dom  # older page, still filtered
    assert 'href="page-0003.html#status=failed"' in dom


@pytest.mark.browser
def test_in_chromium_an_auditor_finds_failed_runs_page_by_page(paged: Path, tmp_path: Path) -> None:
    """Driven as a person would: on the list of pages pick "failed", open the newest page
    listed, see its failed run only, go to the older page (still filtered), come back."""
    chromium = DevTools((paged / PAGES_DIR / PAGE_NAME).as_uri(), tmp_path / "profile")
    loaded = ("document.readyState === 'complete' && location.pathname.endsWith('/{}') "
              "&& document.getElementById('shown').textContent !== ''")

    async def steps() -> dict[str, object]:
        await chromium.wait_for(loaded.format("pages/index.html"), "the list of pages loaded")
        await chromium.act("const s = document.getElementById('status');"
                           "s.value = 'failed'; s.dispatchEvent(new Event('change'))")
        seen: dict[str, object] = {"listed": await chromium.evaluate(
            "Array.from(document.querySelectorAll('#pages tbody tr:not([hidden]) a'))"
            ".map(a => a.getAttribute('href'))")}
        await chromium.act("document.querySelector('#pages tbody tr:not([hidden]) a').click()")
        await chromium.wait_for(loaded.format(page_file(2)), "page 2 loaded")
        seen["page2"] = await chromium.evaluate(_VISIBLE_RUNS)
        await chromium.act("document.querySelector('a[rel=prev]').click()")
        await chromium.wait_for(loaded.format(page_file(1)), "page 1 loaded")
        seen["page1"] = await chromium.evaluate(_VISIBLE_RUNS)
        seen["page1_hash"] = await chromium.evaluate("location.hash")
        await chromium.act("history.back()")
        await chromium.wait_for(loaded.format(page_file(2)), "back on page 2")
        seen["back"] = await chromium.evaluate(_VISIBLE_RUNS)
        return seen

    seen = chromium.drive(steps)

    assert seen["listed"] == ["page-0002.html#status=failed", "page-0001.html#status=failed"]
    assert seen["page2"] == ["run000000005"]
    assert seen["page1"] == ["run000000001"] and seen["page1_hash"] == "#status=failed"
    assert seen["back"] == ["run000000005"]


class _Pages:
    """The rows of the list of pages in a DOM dump: link, matching count, hidden or not."""

    @staticmethod
    def parse(dom: str) -> list[dict]:
        from html.parser import HTMLParser

        rows: list[dict] = []

        class Parser(HTMLParser):
            cell = ""

            def handle_starttag(self, tag: str, attrs: list) -> None:
                attributes = dict(attrs)
                if tag == "tr" and "page" in (attributes.get("class") or "").split():
                    rows.append({"hidden": "hidden" in attributes, "href": None, "match": ""})
                elif rows and tag == "a" and rows[-1]["href"] is None:
                    rows[-1]["href"] = attributes.get("href")
                elif rows and tag == "td":
                    self.cell = attributes.get("class") or ""

            def handle_data(self, data: str) -> None:
                if rows and "match" in self.cell.split():
                    rows[-1]["match"] += data

            def handle_endtag(self, tag: str) -> None:
                if tag == "td":
                    self.cell = ""

        Parser().feed(dom)
        return rows


def test_a_hand_edited_state_or_list_of_pages_does_not_stop_the_update(tmp_path: Path) -> None:
    directory = tmp_path / "archive"
    _build(directory, 7)
    write_index_page(directory, page_size=3)
    pages = directory / PAGES_DIR
    (pages / "state.json").write_text('{"version": 1, "page_size": 3, "offset": "x"}')
    with open(pages / "pages.jsonl", "a") as listed:
        listed.write('{"page": 0, "counts": {"x": 1}}\n')

    rebuilt = write_index_page(directory, page_size=3)  # the state: ignored, all rebuilt
    for number in range(7, 10):
        append_record(directory, _record(number))
    with open(pages / "pages.jsonl", "a") as listed:
        listed.write('{"page": 1, "counts": {"x": 1}}\nnot json\n')
    update = write_index_page(directory, page_size=3)  # page 3 fills: the list is rewritten

    assert rebuilt.rebuilt and not update.rebuilt and update.pages == 4
    summaries = [json.loads(line) for line in (pages / "pages.jsonl").read_text().splitlines()]
    assert [s["page"] for s in summaries] == [1, 2, 3]
