"""The database remembers who migrated it: the runbooks' history table, and what it shows.

- :mod:`~softbee.runbook.history.table`: the table, creating it, rows in and out.
- :mod:`~softbee.runbook.history.recorder`: a writing run's rows (``engine`` calls it).
- :mod:`~softbee.runbook.history.outside`: a move made outside the runbooks, an edited
  revision file, said in one line by every runbook's set-up.
- :mod:`~softbee.runbook.history.vouch`: ``archive verify --database``, the archive and the
  databases checked against each other.

May import ``util``, ``project`` and ``archive`` (for the run's facts); ``engine`` and the
CLI import it. docs/history.md says what the table holds and why.
"""

from __future__ import annotations

from softbee.runbook.history.table import HISTORY_TABLE, HistoryRow, HistoryUnavailable, read_rows

__all__ = ["HISTORY_TABLE", "HistoryRow", "HistoryUnavailable", "read_rows"]
