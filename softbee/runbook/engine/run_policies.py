"""What a run does when the database is busy, set once around ``run_migration``.

Two policies, each in its own module, both given to ``run_migration`` as keywords and both
in force for everything the run does in its thread:

- ``lock_retries`` (:class:`~softbee.runbook.engine.retries.LockRetries`): a statement that
  loses its lock to the application is tried again, within a budget;
- ``throttle`` (:class:`~softbee.runbook.online.throttle.Throttle`): an online backfill
  pauses while a replica lags, a VACUUM works on its table, or an operator asks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from softbee.runbook.engine.retries import LockRetries, lock_retries
from softbee.runbook.online.throttle import Throttle, throttling

P = ParamSpec("P")
R = TypeVar("R")


def under_run_policies(run: Callable[P, R]) -> Callable[P, R]:
    """Run ``run`` (``run_migration``) under its ``lock_retries`` and ``throttle``; its result lists the retries."""

    @functools.wraps(run)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        policy, throttle = kwargs.get("lock_retries"), kwargs.get("throttle")
        say = kwargs.get("progress")
        project = args[0] if args else kwargs.get("project")
        with lock_retries(policy if isinstance(policy, LockRetries) else None,
                          say if callable(say) else None, project) as log, \
                throttling(throttle if isinstance(throttle, Throttle) else None):
            result = run(*args, **kwargs)
        if hasattr(result, "lock_retries"):
            result.lock_retries = log.records()
        return result

    return wrapper
