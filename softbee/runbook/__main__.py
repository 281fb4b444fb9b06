"""``python -m softbee.runbook``: the same as the ``softbee-runbook`` console script."""

from softbee.runbook.cli import entry

entry()
