"""Drift across a fleet: ``fleet status --drift`` and ``fleet run``'s pre-apply gate.

The check itself needs the project (its app, its migrations, a scratch database per dialect),
which sits above ``fleet`` in the layers, so it is handed in: a :data:`DriftCheck` is any
callable taking a target's URL and returning a verdict with ``drifted``, ``error`` and
``message()`` (``softbee.runbook.review.drift.FleetDrift``, built by the CLI). A check that
raises or cannot run is reported ("drift could not be checked: ..."), never a crash, and never
blocks a target: the runbook's own gate (``upgrade_downgrade``'s ``allow_drift``) checks again.
The check reads one database against the app's models, so a target with binds (several
databases) is not checked here: it runs, and its runbook checks each bind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from softbee.runbook.errors import first_line
from softbee.runbook.fleet.targets import Target
from softbee.urls import redact_text

DriftCheck = Callable[[str], Any]
SKIPPED_DRIFT = "skipped (drift)"
DEFAULT_DRIFT_WORKERS = 8


@dataclass(frozen=True)
class TargetDrift:
    """One target's drift: True, False, or None when it could not be checked; the one-line message."""

    drifted: bool | None
    message: str


def target_drift(check: DriftCheck, url: str) -> TargetDrift:
    """``check(url)`` as a :class:`TargetDrift`; never raises."""
    try:
        verdict = check(url)
        error = getattr(verdict, "error", None)
        if error:
            return TargetDrift(None, redact_text(str(error)))
        return TargetDrift(bool(verdict.drifted), redact_text(verdict.message()))
    except Exception as exc:  # noqa: BLE001 - one target's failing check is its finding
        return TargetDrift(None, redact_text(f"drift could not be checked: {first_line(exc)}"))


def drifted_targets(
    targets: Iterable[Target], urls: Mapping[str, str], check: DriftCheck,
    workers: int = DEFAULT_DRIFT_WORKERS,
) -> dict[str, TargetDrift]:
    """Every target's drift, checked in parallel (``workers`` at once), by target name.

    A target with binds is left out (it has several databases; its runbook checks them).
    """
    chosen = [t for t in targets if not t.binds]
    if not chosen:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(chosen)))) as pool:
        found = list(pool.map(lambda t: target_drift(check, urls[t.name]), chosen))
    return {t.name: d for t, d in zip(chosen, found, strict=True)}


def skip_drifted(
    stages: list[Any], urls: Mapping[str, str], check: DriftCheck | None, allow_drift: bool,
    gated: bool,
) -> tuple[list[Any], dict[str, TargetDrift]]:
    """``fleet run``'s pre-apply gate: the stages without drifted targets, and those skipped.

    Only a runbook that has the gate itself (``gated``: an ``allow_drift`` parameter) is gated,
    and only without ``allow_drift``; a target whose drift could not be checked runs (its
    runbook checks again). A stage left empty is dropped.
    """
    if check is None or allow_drift or not gated:
        return stages, {}
    targets = [t for stage in stages for t in stage.targets]
    skipped = {name: d for name, d in drifted_targets(targets, urls, check).items() if d.drifted}
    kept = [type(stage)(stage.label, tuple(t for t in stage.targets if t.name not in skipped))
            for stage in stages]
    return [stage for stage in kept if stage.targets], skipped
