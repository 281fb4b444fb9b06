"""The modules' names before the library was split into packages, kept importable.

``import softbee.runbook.migrate`` (or ``from softbee.runbook.counts import row_counts``) in
a user's own runbook or revision still works: the old name is the new module itself, not a
copy, so patching or reading it is the same as reading the new one. The library itself
imports only the new names (``tests/test_layout.py`` checks it).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

# The old ``softbee.runbook.<name>`` -> where it lives now (under ``softbee.runbook.``).
MOVED = {
    "compat": "util.compat", "roots": "util.roots", "redact": "util.redact",
    "secrets": "util.secrets", "sqltext": "util.sqltext", "sqltypes": "util.sqltypes",
    "routing": "project.routing", "dialects": "project.dialects", "phases": "online.phases",
    "state": "review.state", "counts": "review.counts", "diff": "review.diff",
    "offline": "review.offline", "lint": "review.lint", "revision": "review.revision",
    "guards": "engine.guards", "migrate": "engine.migrate", "stepwise": "engine.stepwise",
    "online_run": "engine.online_run", "capture": "engine.capture",
    "scratch": "engine.scratch", "recover": "engine.recover",
    "auditpage": "archive.auditpage", "render": "archive.render", "summary": "archive.summary",
    "execute": "run.execute", "kernel": "run.kernel", "kernel_launch": "run.kernel_launch",
    "catalog": "run.catalog",
    "targets": "fleet.targets", "fleet_run": "fleet.fleet_run", "fleet_worker": "fleet.worker",
    "fleet_report": "fleet.report", "fleet_cli": "fleet.fleet_cli",
    "airflow_dag": "fleet.airflow_dag",
}
PREFIX = "softbee.runbook."


class _OldNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``softbee.runbook.<old name>`` and hands back the module at its new place."""

    def find_spec(self, fullname: str, path: object = None, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        """A spec for an old name; None for every other module."""
        if not fullname.startswith(PREFIX) or fullname[len(PREFIX):] not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        """The new module, imported (it keeps its own name, spec and loader)."""
        return importlib.import_module(PREFIX + MOVED[spec.name[len(PREFIX):]])

    def exec_module(self, module: ModuleType) -> None:
        """Nothing: the new module ran when it was imported."""


def install() -> None:
    """Make the old names importable (once per process)."""
    if not any(isinstance(finder, _OldNames) for finder in sys.meta_path):
        sys.meta_path.append(_OldNames())
