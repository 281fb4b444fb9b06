"""The typed library under the runbooks: each module is one step of a migration's life.

``project`` loads any Flask-Migrate app; ``state``, ``diff``, ``counts`` and ``offline``
read; ``migrate``, ``revision`` and ``recover`` write, behind ``guards``; ``lint``
reviews SQL; ``summary``, ``catalog``, ``execute``, ``redact`` and ``archive`` serve
headless runs and their audit trail.
"""

from softbee.runbook.errors import RunbookError
from softbee.runbook.project import Project, load_project

__all__ = ["Project", "RunbookError", "load_project"]
