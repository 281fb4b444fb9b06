"""Advised commands: a ``softbee-runbook run`` line complete for the run that gives the advice.

Every piece of advice that names a command builds it here, from the project the run loaded:
``-p app``, ``-p migrations_dir`` and ``-p database_url`` as that run had them, so the line,
copied as it is, addresses the same project and database. A password is never written:
a URL held in ``DATABASE_URL`` is named by the variable, any other is shown masked (the
line then says to put the password back).
"""

from __future__ import annotations

import os
import shlex
from typing import TYPE_CHECKING, Any

from softbee.urls import MASK, redact_url

if TYPE_CHECKING:
    from softbee.runbook.project import Project

PROG = "softbee-runbook"


def database_argument(project: Project) -> str:
    """``-p database_url`` as a shell word: ``"$DATABASE_URL"`` when that holds it, else masked."""
    url = project.url.render_as_string(hide_password=False)
    if project.url.password is None:
        return shlex.quote(url)
    from softbee.urls import parse_url

    environ = os.environ.get("DATABASE_URL")
    try:
        same = bool(environ) and parse_url(environ or "") == project.url
    except ValueError:
        same = False
    return '"$DATABASE_URL"' if same else shlex.quote(redact_url(project.url))


def _word(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return shlex.quote(str(value))


def runbook_command(project: Project, runbook: str, **parameters: Any) -> str:
    """``softbee-runbook run RUNBOOK`` with app, migrations and database, then ``parameters``."""
    words = [PROG, "run", runbook, "-p", "app", shlex.quote(project.app_spec),
             "-p", "migrations_dir", shlex.quote(project.migrations_spec),
             "-p", "database_url", database_argument(project)]
    for name, value in parameters.items():
        if value is not None:
            words += ["-p", name, _word(value)]
    command = " ".join(words)
    if MASK in database_argument(project):
        command += f" (put the database password back in place of {MASK})"
    return command
