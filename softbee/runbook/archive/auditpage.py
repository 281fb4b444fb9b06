"""The auditors' page: ``<archive>/index.html``, one table of every archived run.

The page is built from the index records (:func:`~softbee.runbook.archive.read_index`)
and rewritten after every archived run and by ``softbee-runbook archive html``. It
is one self-contained file: inline CSS and a few lines of inline JavaScript, no
network (a Content-Security-Policy forbids every fetch), so it opens from the
file system. Rows are newest first and link, relatively, to each run's HTML;
failed runs stand out. The runbook and status filters live in the URL fragment
(``index.html#runbook=upgrade_downgrade&status=failed``), so a filtered view can
be bookmarked and survives the browser's back button.

Every value from the index is HTML-escaped (a parameter or an error message can
hold markup), database columns show only dialect, host, port and database name,
and any ``user:password@`` left in free text is masked. A link is written only
for a plain relative path inside the archive: a hand-edited ``javascript:`` or
``../`` path is shown without one. The page is derived data, outside the hash
chain: ``archive verify`` remains the check, and ``archive html`` rebuilds it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import html
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from softbee.runbook.archive.chain import (
    ARCHIVE_DIR_ENV,
    INDEX_NAME,
    parse_iso,
    read_index,
    unreadable_lines,
    write_atomic,
)
from softbee.runbook.errors import ArchiveError
from softbee.urls import redact_text

PAGE_NAME = "index.html"
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


@dataclass(frozen=True)
class IndexPage:
    """The page written: where, and how many runs (and failed runs) it lists."""

    path: Path
    runs: int
    failed: int


def write_index_page(directory: Path) -> IndexPage:
    """Rebuild ``<directory>/index.html`` from the index; an absent archive is refused."""
    if not directory.is_dir():
        raise ArchiveError(
            f"no archive at {str(directory)!r}: pass --archive-dir DIR or set {ARCHIVE_DIR_ENV}"
        )
    fd = os.open(directory, os.O_RDONLY)
    try:
        # Two runs finishing together: the later writer reads the index after both appends.
        fcntl.flock(fd, fcntl.LOCK_EX)
        records = read_index(directory)
        page = render_index_page(
            records, unreadable=_unreadable(directory, len(records)),
            generated=dt.datetime.now(dt.UTC),
        )
        path = directory / PAGE_NAME
        write_atomic(path, page.encode("utf-8"), _page_mode(directory))
    finally:
        os.close(fd)  # releases the lock
    failed = sum(1 for record in records if record.get("status") == "failed")
    return IndexPage(path=path, runs=len(records), failed=failed)


def render_index_page(
    records: Sequence[Mapping[str, Any]],
    *,
    unreadable: Sequence[int] = (),
    generated: dt.datetime | None = None,
) -> str:
    """The page's HTML for ``records`` (index order), newest run first."""
    runs = newest_first(records)
    failed = sum(1 for record in runs if record.get("status") == "failed")
    runbooks = sorted({_text(record.get("runbook")) for record in runs})
    statuses = sorted({"passed", "failed", *(str(record.get("status")) for record in runs)})
    when = f" · generated {_time(generated)} UTC" if generated else ""
    warning = ""
    if unreadable:
        lines = ", ".join(str(number) for number in unreadable)
        warning = (
            f'<p class="warning">{INDEX_NAME} lines {_e(lines)} are unreadable and not shown: '
            "run <code>softbee-runbook archive verify</code>.</p>\n"
        )
    head = "".join(f'<th scope="col">{_e(name)}</th>' for name in COLUMNS)
    body = "\n".join(_row(record) for record in runs)
    return _PAGE.format(
        style=_STYLE,
        script=_SCRIPT,
        summary=_e(f"{len(runs)} run(s), {failed} failed{when}"),
        warning=warning,
        runbook_options=_options(runbooks),
        status_options=_options(statuses),
        head=head,
        body=body,
        empty="" if runs else "<p>No runs archived yet.</p>",
    )


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


def _row(record: Mapping[str, Any]) -> str:
    status = str(record.get("status"))
    kind = status if status in ("passed", "failed") else "other"
    started = _time(_parse_time(record.get("started_at"))) or str(record.get("started_at") or "")
    href = relative_href(record.get("html"))
    when = f'<a href="{_e(href)}">{_e(started)}</a>' if href else _e(started or "(unknown)")
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


def _unreadable(directory: Path, readable: int) -> list[int]:
    """Unreadable index lines; parsed again only when the line count says there are some."""
    index = directory / INDEX_NAME
    content = index.read_bytes() if index.is_file() else b""
    lines = sum(1 for line in content.split(b"\n") if line.strip())
    return unreadable_lines(directory) if lines != readable else []


def _page_mode(directory: Path) -> int:
    """The index's permissions (who may read the runs may read the page), else 0644."""
    try:
        return os.stat(directory / INDEX_NAME).st_mode & 0o777
    except OSError:
        return 0o644


_STYLE = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em; color: #1d1d1f; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
.summary { color: #555; margin: 0 0 1em; }
.warning { background: #fff4d6; border: 1px solid #e0b000; padding: .5em .8em; }
form { margin: 0 0 .8em; display: flex; gap: 1.2em; align-items: center; }
select { font: inherit; padding: .15em .3em; }
#shown { color: #555; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35em .6em; border-bottom: 1px solid #ddd; vertical-align: top; }
th { background: #f3f3f5; position: sticky; top: 0; }
td.revision, td.time { font-family: ui-monospace, "DejaVu Sans Mono", monospace; white-space: nowrap; }
td.duration { text-align: right; white-space: nowrap; }
.badge { display: inline-block; padding: 0 .5em; border-radius: .7em; background: #e3f4e6; color: #1b5e20; }
tr.failed { background: #fdecec; }
tr.failed td:first-child { box-shadow: inset 4px 0 0 #c62828; }
tr.failed .badge { background: #c62828; color: #fff; font-weight: bold; }
tr.other .badge { background: #eee; color: #333; }
.error { color: #8e1b1b; font-size: .9em; margin-top: .2em; max-width: 40em; word-break: break-word; }
"""

_SCRIPT = """
(function () {
  "use strict";
  var runbook = document.getElementById("runbook");
  var status = document.getElementById("status");
  var rows = Array.prototype.slice.call(document.querySelectorAll("#runs tbody tr"));
  function choose(select, value) {
    select.value = "";
    Array.prototype.forEach.call(select.options, function (option) {
      if (option.value === value) { select.value = value; }
    });
  }
  function readLocation() {
    var text = location.hash.replace(/^#/, "") || location.search.replace(/^\\?/, "");
    var params = new URLSearchParams(text);
    choose(runbook, params.get("runbook"));
    choose(status, params.get("status"));
  }
  function apply() {
    var shown = 0;
    rows.forEach(function (row) {
      var keep = (!runbook.value || row.dataset.runbook === runbook.value) &&
                 (!status.value || row.dataset.status === status.value);
      row.hidden = !keep;
      if (keep) { shown += 1; }
    });
    document.getElementById("shown").textContent = shown + " of " + rows.length + " run(s) shown";
    document.getElementById("nomatch").hidden = shown > 0 || rows.length === 0;
  }
  function changed() {
    var params = new URLSearchParams();
    if (runbook.value) { params.set("runbook", runbook.value); }
    if (status.value) { params.set("status", status.value); }
    try { history.replaceState(null, "", "#" + params.toString()); } catch (e) { /* file: URL */ }
    apply();
  }
  runbook.addEventListener("change", changed);
  status.addEventListener("change", changed);
  window.addEventListener("hashchange", function () { readLocation(); apply(); });
  readLocation();
  apply();
}());
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; \
style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Runbook archive</title>
<style>{style}</style>
</head>
<body>
<h1>Runbook archive</h1>
<p class="summary">{summary}. Newest first; each time links to the run's report.
<code>softbee-runbook archive verify</code> checks the files against the hash chain.</p>
{warning}<form id="filters">
<label>Runbook <select id="runbook"><option value="">all</option>{runbook_options}</select></label>
<label>Status <select id="status"><option value="">all</option>{status_options}</select></label>
<span id="shown"></span>
</form>
<table id="runs">
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<p id="nomatch" hidden>No run matches these filters.</p>
{empty}
<script>{script}</script>
</body>
</html>
"""
