"""Drift across a fleet: ``fleet status --drift`` and ``fleet run``'s pre-apply gate.

The check itself needs the project (its app, its migrations, a scratch database per dialect),
which sits above ``fleet`` in the layers, so it is handed in: a :data:`DriftCheck` is any
callable taking a target's URL and returning a verdict with ``drifted``, ``error`` and
``message()`` (``softbee.runbook.review.drift.FleetDrift``, built by the CLI). A check that
raises or cannot run is reported ("drift could not be checked: ..."), never a crash, and never
blocks a target: the runbook's own gate (``upgrade_downgrade``'s ``allow_drift``) checks again.

A target with binds (a multi-database project, :mod:`.binds`) is checked bind by bind: each
bind's database against the schema its own recorded revision produces for that bind. The
check is asked through its ``check_bind(urls, bind)`` (``urls``: every bind's URL, the default
first); a check without it says so per bind ("drift not checked"), never a silent pass. The
target's verdict is drifted when any bind is, clean only when every bind is, and its line
names each bind's own (each bounded like any target's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from softbee.runbook.errors import first_line
from softbee.runbook.fleet.binds import DEFAULT_BIND
from softbee.runbook.fleet.targets import Target
from softbee.urls import redact_text

DriftCheck = Callable[[str], Any]  # and, for targets with binds, check_bind(urls, bind)
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


def bind_drift(check: DriftCheck, urls: Mapping[str, str], bind: str) -> TargetDrift:
    """One bind's drift: ``check.check_bind(urls, bind)`` as a :class:`TargetDrift`; never raises.

    ``urls`` holds every bind's URL (``"default"`` first). A check that cannot take binds
    says so: the bind is not checked.
    """
    per_bind = getattr(check, "check_bind", None)
    if per_bind is None:
        return TargetDrift(None, "drift not checked: this drift check reads one database "
                                 f"and cannot check bind {bind}")
    return target_drift(lambda _url: per_bind(urls, bind), urls.get(bind, ""))


def binds_drift(found: Sequence[tuple[str, TargetDrift]]) -> TargetDrift:
    """A target's drift from its binds': drifted when any is, clean only when all are checked clean.

    The line names each bind's verdict: ``bind default: no drift ...; bind audit: drift ...``.
    """
    verdicts = [d.drifted for _, d in found]
    drifted = True if True in verdicts else (None if None in verdicts or not verdicts else False)
    return TargetDrift(drifted, "; ".join(f"bind {bind}: {d.message}" for bind, d in found))


def drifted_targets(
    targets: Iterable[Target], urls: Mapping[str, str], check: DriftCheck,
    workers: int = DEFAULT_DRIFT_WORKERS,
    bind_urls: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, TargetDrift]:
    """Every target's drift, checked in parallel (``workers`` at once), by target name.

    A target with binds is checked bind by bind, its other binds' URLs taken from
    ``bind_urls`` (target name to ``{bind: URL}``); one without them is not checked.
    """
    chosen = list(targets)
    if not chosen:
        return {}
    bind_urls = bind_urls or {}
    jobs: list[tuple[Target, str | None, dict[str, str]]] = []
    for t in chosen:
        if not t.binds:
            jobs.append((t, None, {DEFAULT_BIND: urls[t.name]}))
            continue
        every = {DEFAULT_BIND: urls[t.name], **dict(bind_urls.get(t.name) or {})}
        jobs += [(t, bind, every) for bind in (DEFAULT_BIND, *t.binds)]

    def one(job: tuple[Target, str | None, dict[str, str]]) -> TargetDrift:
        _, bind, every = job
        if bind is None:
            return target_drift(check, every[DEFAULT_BIND])
        if bind not in every:
            return TargetDrift(None, f"drift not checked: no URL for bind {bind}")
        return bind_drift(check, every, bind)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
        found = list(pool.map(one, jobs))
    per_target: dict[str, list[tuple[str | None, TargetDrift]]] = {}
    for (t, bind, _), drift in zip(jobs, found, strict=True):
        per_target.setdefault(t.name, []).append((bind, drift))
    return {name: parts[0][1] if parts[0][0] is None else
            binds_drift([(str(b), d) for b, d in parts]) for name, parts in per_target.items()}


def skip_drifted(
    stages: list[Any], urls: Mapping[str, str], check: DriftCheck | None, allow_drift: bool,
    gated: bool, bind_urls: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[list[Any], dict[str, TargetDrift]]:
    """``fleet run``'s pre-apply gate: the stages without drifted targets, and those skipped.

    Only a runbook that has the gate itself (``gated``: an ``allow_drift`` parameter) is gated,
    and only without ``allow_drift``; a target whose drift could not be checked runs (its
    runbook checks again). A target with binds is skipped when any of its binds drifted.
    A stage left empty is dropped.
    """
    if check is None or allow_drift or not gated:
        return stages, {}
    targets = [t for stage in stages for t in stage.targets]
    skipped = {name: d for name, d in drifted_targets(
        targets, urls, check, bind_urls=bind_urls).items() if d.drifted}
    kept = [type(stage)(stage.label, tuple(t for t in stage.targets if t.name not in skipped))
            for stage in stages]
    return [stage for stage in kept if stage.targets], skipped
