"""The auditors' pages' inline stylesheet, script and HTML skeleton (no network, no files).

The script filters rows by the URL fragment (``#runbook=...&status=...``): rows of runs
carry ``data-runbook``/``data-status``; rows of the list of pages carry ``data-counts``
(``{runbook: {status: runs}}``) and show how many runs match. Links marked ``keep`` (to
other pages of the archive) carry the filter in their fragment.
"""

from __future__ import annotations

STYLE = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em; color: #1d1d1f; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
.summary, .totals, nav { color: #555; margin: 0 0 .8em; }
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

SCRIPT = """
(function () {
  "use strict";
  var runbook = document.getElementById("runbook");
  var status = document.getElementById("status");
  var table = document.querySelector("table[data-unit]");
  var rows = Array.prototype.slice.call(table.querySelectorAll("tbody tr"));
  var links = Array.prototype.slice.call(document.querySelectorAll("a.keep"));
  links.forEach(function (link) { link.dataset.base = link.getAttribute("href"); });
  function choose(select, value) {
    select.value = "";
    if (!value) { return; }
    var known = Array.prototype.some.call(select.options, function (option) {
      return option.value === value;
    });
    if (!known) {  /* a filter from another page: none here match it */
      var option = document.createElement("option");
      option.value = value;
      option.textContent = value;
      select.appendChild(option);
    }
    select.value = value;
  }
  function readLocation() {
    var text = location.hash.replace(/^#/, "") || location.search.replace(/^\\?/, "");
    var params = new URLSearchParams(text);
    choose(runbook, params.get("runbook"));
    choose(status, params.get("status"));
  }
  function matching(row) {
    if (row.dataset.counts === undefined) {
      return (!runbook.value || row.dataset.runbook === runbook.value) &&
             (!status.value || row.dataset.status === status.value) ? 1 : 0;
    }
    var counts = JSON.parse(row.dataset.counts);
    var runs = 0;
    Object.keys(counts).forEach(function (name) {
      if (runbook.value && name !== runbook.value) { return; }
      Object.keys(counts[name]).forEach(function (state) {
        if (!status.value || state === status.value) { runs += counts[name][state]; }
      });
    });
    row.querySelector(".match").textContent = runs;
    return runs;
  }
  function fragment() {
    var params = new URLSearchParams();
    if (runbook.value) { params.set("runbook", runbook.value); }
    if (status.value) { params.set("status", status.value); }
    return params.toString();
  }
  function apply() {
    var shown = 0;
    var runs = 0;
    rows.forEach(function (row) {
      var found = matching(row);
      row.hidden = found === 0;
      if (found) { shown += 1; runs += found; }
    });
    var text = shown + " of " + rows.length + " " + table.dataset.unit + " shown";
    if (table.id === "pages") { text += ", " + runs + " matching run(s)"; }
    document.getElementById("shown").textContent = text;
    document.getElementById("nomatch").hidden = shown > 0 || rows.length === 0;
    var kept = fragment();
    links.forEach(function (link) {
      link.setAttribute("href", link.dataset.base + (kept ? "#" + kept : ""));
    });
  }
  function changed() {
    try { history.replaceState(null, "", "#" + fragment()); } catch (e) { /* file: URL */ }
    apply();
  }
  runbook.addEventListener("change", changed);
  status.addEventListener("change", changed);
  window.addEventListener("hashchange", function () { readLocation(); apply(); });
  readLocation();
  apply();
}());
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; \
style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<h1>{title}</h1>
{intro}{filters}{table}
<p id="nomatch" hidden>Nothing matches these filters.</p>
{empty}
<script>{script}</script>
</body>
</html>
"""
