"""The auditors' pages as HTML: the front page, a page of runs, and the list of pages.

Pure functions of what they are given (no clock, no file reads), so the page written
after a run and the page ``archive html`` rebuilds are the same bytes.
:mod:`~softbee.runbook.archive.auditpage` decides what goes on which page and writes them.

Every page is one self-contained file: inline CSS and a few lines of inline
JavaScript, no network (a Content-Security-Policy forbids every fetch), so it opens
from the file system. The runbook and status filters live in the URL fragment
(``index.html#runbook=upgrade_downgrade&status=failed``), so a filtered view can be
bookmarked and survives the back button; links between pages carry the fragment, so
a filter follows the auditor from the list of pages to a page and on to older ones.

Every value from the index is HTML-escaped (a parameter or an error message can hold
markup), database columns show only dialect, host, port and database name, and any
``user:password@`` left in free text is masked. A link is written only for a plain
relative path inside the archive: a hand-edited ``javascript:`` or ``../`` path is
shown without one.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from softbee.runbook.archive.chain import INDEX_NAME, parse_iso
from softbee.runbook.archive.pageassets import PAGE, SCRIPT, STYLE
from softbee.urls import redact_text

COLUMNS = (
    "Started (UTC)",
    "Runbook",
    "Database",
    "Environment",
    "Revision before → after",
    "Status",
    "Duration",
    "Who",
)
_ERROR_LIMIT = 300
_UNREADABLE_SHOWN = 20


def page_file(number: int) -> str:
    """The file name of page ``number`` (1 holds the oldest runs), inside ``pages/``."""
    return f"page-{number:04d}.html"


def render_front(
    latest: Sequence[Mapping[str, Any]],
    *,
    runs: int,
    failed: int,
    runbooks: Mapping[str, Sequence[int]],
    pages: int,
    page_size: int,
    unreadable: Sequence[int] = (),
) -> str:
    """``index.html``: the archive's totals, its latest runs (newest first), links to the pages."""
    rows = newest_first(latest)
    totals = " · ".join(
        f"{_e(name or '(none)')} {count[0]}" + (f" ({count[1]} failed)" if count[1] else "")
        for name, count in sorted(runbooks.items())
    )
    if pages:
        where = (f'Every run is in the <a class="keep" href="pages/index.html">pages of '
                 f'{page_size}</a>; the newest page is <a class="keep" '
                 f'href="pages/{page_file(pages)}">{_e(page_file(pages))}</a>.')
    else:
        where = ""
    intro = (
        f'<p class="summary">{runs} run(s), {failed} failed. The latest {len(rows)} are below, '
        f"newest first; each time links to the run's report. {where}\n"
        "<code>softbee-runbook archive verify</code> checks the files against the hash chain.</p>\n"
        + (f'<p class="totals">{totals}</p>\n' if totals else "")
    )
    return _page(
        "Runbook archive", intro + _warning(unreadable),
        _filters(sorted(runbooks), _statuses(rows)),
        _runs_table(rows, up=""), empty="" if rows else "<p>No runs archived yet.</p>",
    )


def render_page(
    number: int, records: Sequence[Mapping[str, Any]], *, first: int, newer: bool
) -> str:
    """``pages/page-NNNN.html``: the runs ``first``.. of the index (1-based), newest first."""
    rows = newest_first(records)
    failed = sum(1 for record in rows if record.get("status") == "failed")
    times = sorted(t for r in rows if (t := _parse_time(r.get("started_at"))))
    span = f", started {_time(times[0])} – {_time(times[-1])} UTC" if times else ""
    nav = ['<a class="keep" href="../index.html">latest runs</a>',
           '<a class="keep" href="index.html">all pages</a>']
    if number > 1:
        nav.append(f'<a class="keep" rel="prev" href="{page_file(number - 1)}">older page</a>')
    if newer:
        nav.append(f'<a class="keep" rel="next" href="{page_file(number + 1)}">newer page</a>')
    intro = (
        f'<p class="summary">Page {number}: runs {first}–{first + len(rows) - 1} of the index, '
        f"{len(rows)} run(s), {failed} failed{_e(span)}. Newest first.</p>\n"
        f'<nav>{" · ".join(nav)}</nav>\n'
    )
    runbooks = sorted({_text(record.get("runbook")) for record in rows})
    return _page(f"Runbook archive, page {number}", intro, _filters(runbooks, _statuses(rows)),
                 _runs_table(rows, up="../"))


def render_page_list(summaries: Sequence[Mapping[str, Any]], *, newest: int,
                     page_size: int) -> str:
    """``pages/index.html``: one row per full page, with its counts by runbook and status."""
    names: set[str] = set()
    statuses = {"passed", "failed"}
    rows = []
    for summary in reversed(summaries):
        counts: Mapping[str, Mapping[str, int]] = summary["counts"]
        names.update(counts)
        statuses.update(status for by_status in counts.values() for status in by_status)
        failed = sum(by_status.get("failed", 0) for by_status in counts.values())
        name = page_file(summary["page"])
        span = " – ".join(t for t in (summary["from"], summary["to"]) if t)
        rows.append(
            f'<tr class="page{" failed" if failed else ""}" '
            f"data-counts=\"{_e(json.dumps(counts, sort_keys=True, separators=(',', ':')))}\">"
            f'<td><a class="keep" href="{name}">{_e(name)}</a></td>'
            f'<td>{summary["first"]}–{summary["first"] + summary["runs"] - 1}</td>'
            f'<td class="time">{_e(span)}</td><td class="duration">{summary["runs"]}</td>'
            f'<td class="duration">{failed}</td><td class="duration match"></td></tr>'
        )
    newest_link = (f'<a class="keep" href="{page_file(newest)}">{_e(page_file(newest))}</a>'
                   if newest else "none yet")
    intro = (
        f'<p class="summary">{len(rows)} full page(s) of {page_size} run(s), newest first; '
        f"the newest runs are on {newest_link} (rewritten after each run). A filter shows "
        "how many runs of each page match and opens the page filtered.</p>\n"
        '<nav><a class="keep" href="../index.html">latest runs</a></nav>\n'
    )
    head = "".join(f'<th scope="col">{name}</th>' for name in
                   ("Page", "Runs (index)", "Started (UTC)", "Runs", "Failed", "Matching"))
    table = (f'<table id="pages" data-unit="page(s)">\n<thead><tr>{head}</tr></thead>\n'
             "<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>")
    return _page("Runbook archive, all pages", intro, _filters(sorted(names), statuses), table)


def utc_text(value: Any) -> str:
    """An index time as ``YYYY-MM-DD HH:MM:SS`` in UTC; empty when it is not one."""
    return _time(_parse_time(value))


def newest_first(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Records by start time, newest first; records without a readable time last."""
    indexed = list(enumerate(records))
    dated = [(moment, n, r) for n, r in indexed if (moment := _parse_time(r.get("started_at")))]
    undated = [(n, r) for n, r in indexed if not _parse_time(r.get("started_at"))]
    dated.sort(key=lambda item: (item[0], item[1]), reverse=True)
    undated.sort(key=lambda item: item[0], reverse=True)
    return [r for _, _, r in dated] + [r for _, r in undated]


def database_label(identity: Any) -> str:
    """``dialect database on host:port`` from a record's database identity (never a password)."""
    if not isinstance(identity, Mapping) or not identity.get("dialect"):
        return ""
    name = (
        Path(str(identity.get("database") or "")).name
        if identity["dialect"] == "sqlite"
        else identity.get("database")
    )
    host = identity.get("host")
    where = f"{host}:{identity['port']}" if host and identity.get("port") else (host or "")
    return f"{identity['dialect']} {name}" + (f" on {where}" if where else "")


def relative_href(path: Any) -> str | None:
    """``path`` as a URL relative to the archive, or None unless it is a plain path inside it."""
    if not isinstance(path, str) or not path or "\\" in path or ":" in path:  # no scheme
        return None
    if any(part in ("", ".", "..") for part in path.split("/")):  # absolute, or leaves
        return None
    return quote(path, safe="/")


def format_duration(seconds: Any) -> str:
    """``2.5 s``, ``3 min 05 s`` or ``1 h 02 min``; empty when unknown."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def _runs_table(rows: Sequence[Mapping[str, Any]], *, up: str) -> str:
    head = "".join(f'<th scope="col">{_e(name)}</th>' for name in COLUMNS)
    body = "\n".join(_row(record, up) for record in rows)
    return (f'<table id="runs" data-unit="run(s)">\n<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{body}\n</tbody>\n</table>")


def _row(record: Mapping[str, Any], up: str) -> str:
    status = str(record.get("status"))
    kind = status if status in ("passed", "failed") else "other"
    started = _time(_parse_time(record.get("started_at"))) or str(record.get("started_at") or "")
    href = relative_href(record.get("html"))
    when = f'<a href="{_e(up + href)}">{_e(started)}</a>' if href else _e(started or "(unknown)")
    before, after = record.get("revision_before"), record.get("revision_after")
    revision = "" if before is None and after is None else f"{before or '-'} → {after or '-'}"
    user, host = record.get("user"), record.get("host")
    who = "@".join(str(part) for part in (user, host) if part)
    status_cell = f'<span class="badge">{_e(status)}</span>'
    error = record.get("error")
    if isinstance(error, Mapping):
        status_cell += f'<div class="error">{_e(_error_text(error))}</div>'
    cells = [
        f'<td class="time">{when}</td>',
        f"<td>{_e(_text(record.get('runbook')))}</td>",
        f"<td>{_e(database_label(record.get('database')))}</td>",
        f"<td>{_e(record.get('environment') or '')}</td>",
        f'<td class="revision">{_e(revision)}</td>',
        f'<td class="status">{status_cell}</td>',
        f'<td class="duration">{_e(format_duration(record.get("duration_s")))}</td>',
        f"<td>{_e(who)}</td>",
    ]
    return (
        f'<tr class="run {kind}" data-runbook="{_e(_text(record.get("runbook")))}" '
        f'data-status="{_e(status)}" data-run-id="{_e(record.get("run_id"))}">' + "".join(cells)
        + "</tr>"
    )


def _warning(unreadable: Sequence[int]) -> str:
    if not unreadable:
        return ""
    lines = ", ".join(str(number) for number in unreadable[:_UNREADABLE_SHOWN])
    if len(unreadable) > _UNREADABLE_SHOWN:
        lines += f" and {len(unreadable) - _UNREADABLE_SHOWN} more"
    return (f'<p class="warning">{INDEX_NAME} lines {_e(lines)} are unreadable and not shown: '
            "run <code>softbee-runbook archive verify</code>.</p>\n")


def _statuses(rows: Iterable[Mapping[str, Any]]) -> set[str]:
    return {"passed", "failed", *(str(record.get("status")) for record in rows)}


def _filters(runbooks: Iterable[str], statuses: Iterable[str]) -> str:
    return (
        '<form id="filters">\n<label>Runbook <select id="runbook"><option value="">all</option>'
        f"{_options(runbooks)}</select></label>\n"
        '<label>Status <select id="status"><option value="">all</option>'
        f"{_options(sorted(statuses))}</select></label>\n"
        '<span id="shown"></span>\n</form>\n'
    )


def _page(title: str, intro: str, filters: str, table: str, empty: str = "") -> str:
    return PAGE.format(style=STYLE, script=SCRIPT, title=_e(title), intro=intro,
                        filters=filters, table=table, empty=empty)


def _error_text(error: Mapping[str, Any]) -> str:
    message = " ".join(str(error.get("message") or "").split())
    text = f"{error.get('type') or 'error'}: {message}" if message else str(error.get("type"))
    step = str(error.get("step") or "").lstrip("# ").strip()
    if step:
        text += f" (step {step})"
    return text if len(text) <= _ERROR_LIMIT else text[: _ERROR_LIMIT - 1] + "…"


def _text(value: Any) -> str:
    """One spelling for a value in a row and in its filter list (absent: empty)."""
    return "" if value is None else str(value)


def _options(values: Iterable[str]) -> str:
    return "".join(f'<option value="{_e(value)}">{_e(value)}</option>' for value in values)


def _e(value: Any) -> str:
    """Escaped for HTML text and quoted attributes, with any URL password masked."""
    return _escaped("" if value is None else str(value))


@functools.lru_cache(maxsize=4096)  # runbooks, databases, users, revisions repeat row after row
def _escaped(text: str) -> str:
    return html.escape(redact_text(text), quote=True)


def _parse_time(text: Any) -> dt.datetime | None:
    moment = parse_iso(text)
    return moment.astimezone(dt.UTC) if moment else None


def _time(moment: dt.datetime | None) -> str:
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}" if moment else ""
