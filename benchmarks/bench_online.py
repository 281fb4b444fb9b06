"""Online-migration benchmark (issue 9): how long the application stalls while Soft-Bee upgrades.

    .venv/bin/python benchmarks/bench_online.py [--rows 1000000] [--ways flask,exact,estimate]
                                                [--kills N] [--seed 1] [--keep] [--url URL]
                                                [--tablespace NAME]

Builds a PostgreSQL database at revision 5e4a9c1f6b05 filled in SQL with ``--rows`` users and
as many inspections (plus the apiaries and hives they need), VACUUM ANALYZEs it and uses it as
the template of every copy. Then, on identical copies, one after the other:

* ``flask`` — ``flask db upgrade`` to head;
* ``exact`` — ``softbee-runbook run upgrade_downgrade -p count_mode exact``;
* ``estimate`` — the same with ``-p count_mode estimate``;

each while two application clients run on their own connections (a writer updating a random
user, a reader selecting a random user and a random inspection, every 10 ms). Prints wall time
and the writer's and reader's longest and 99th-percentile stall (an operation's wall latency; an
operation still waiting when the upgrade ends counts as a stall until then), what the clients
waited on (sampled: the statements they queued behind; and each stall over 100 ms put down to
the wait event its session showed most, a lock or the WAL flush), the runbook/flask wall-time
ratio, and checks each copy at head: every user and
inspection kept, every ``full_name`` equal to ``first_name || ' ' || last_name`` and NOT NULL,
``ix_inspections_varroa_mites_per_100`` valid.

``--kills N`` then kills the runbook upgrade (CLI and Jupyter kernel, ``kill -9``) N times at a
random moment of an uninterrupted run's wall time, each on a fresh copy; waits (bounded) for the
killed run's server sessions to end; says whether the state left is explained (a known revision
with exactly its schema, or a phase of the next revision recorded in ``softbee_runbook_phases``
with a schema between the two); and re-runs the upgrade, which must reach head with every row.

Needs PostgreSQL (default ``postgresql://postgres@127.0.0.1:5432``). Creates only databases named
``bench_online_*`` and drops them at the end (also on Ctrl-C or an error) unless ``--keep``.
Every wait is bounded. Not a test: it prints, and exits 1 when a check at head fails or a kill
leaves an unexplained state.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from softbee.runbook.online.phases import PHASE_TABLE, PhaseRecord, recorded_phases

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
START_REVISION = "5e4a9c1f6b05"  # before the full_name backfill, as in issue 9
VARROA_INDEX = "ix_inspections_varroa_mites_per_100"
DB_PREFIX = "bench_online_"
TAG_VARIABLE = "BENCH_ONLINE_TAG"  # marks every process a run starts, the Jupyter kernel included
CLIENT_PERIOD_S = 0.010
WAYS = ("flask", "exact", "estimate")

# Bounds of every wait.
COMMAND_TIMEOUT_S = 1800.0  # one flask / runbook run (a 1M-row run takes seconds to a minute)
CLIENT_JOIN_S = 5.0  # a client thread after it is told to stop (then its query is cancelled)
SESSIONS_GONE_S = 60.0  # a killed run's server sessions, before pg_terminate_backend
TERMINATED_GONE_S = 15.0  # sessions after pg_terminate_backend
KILL_REAP_S = 10.0  # the killed processes themselves
SAMPLE_PERIOD_S = 0.2  # how often the lock sampler looks at pg_stat_activity
WAIT_PERIOD_S = 0.01  # how often the clients' wait events are read (a stall's cause)
STALL_TARGET_S = 0.100  # issue 21: the application's worst stall at 10M rows
PROGRESS_PERIOD_S = 0.1  # how often the backfill's phase record is read (its lines: 1 a second)
LOCK_MODES = ("AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock",
              "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")


def say(message: str) -> None:
    """A progress line, time-stamped, flushed at once (the run is long and often piped)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# Pure logic: stalls, and the state a kill left (tests/engine/test_bench_online.py)
# --------------------------------------------------------------------------------------------

Op = tuple[float, float | None]  # (started, finished or None when it never finished)


def stalls(ops: Iterable[Op], began: float, ended: float) -> list[float]:
    """Each operation's wall latency within the window ``[began, ended]``, in seconds.

    Operations started before ``began`` (warm-up) or after ``ended`` are left out. An
    operation that had not finished by ``ended`` (or never finished) counts as a stall
    lasting until ``ended``.
    """
    return [end - started for started, end in _in_window(ops, began, ended)]


def _in_window(ops: Iterable[Op], began: float, ended: float) -> Iterator[tuple[float, float]]:
    """(started, end) of each operation started in ``[began, ended]``, cut at ``ended``."""
    for started, finished in ops:
        if started < began or started > ended:
            continue
        yield started, ended if finished is None or finished > ended else finished


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# What a client's session waited on during a stall (pg_stat_activity.wait_event_type/_event).
WAL_EVENTS = {"WALSync", "WALWrite", "WALInitSync", "WALInitWrite", "WALInsert", "WALBufMapping"}


def wait_kind(kind: str | None, event: str | None) -> str:
    """One cause for a wait event: a lock, the WAL flush, data-file I/O, running (no wait), other."""
    if kind == "Lock":
        return "lock"
    if event in WAL_EVENTS:
        return "WAL"
    if kind == "IO" and event and event.startswith("DataFile"):
        return "data file I/O"
    if kind is None:
        return "running"
    return f"{kind}/{event}"


Sample = tuple[float, str, str]  # (when, client role, wait_kind)


def stall_causes(ops: Iterable[Op], samples: Sequence[Sample], role: str, began: float,
                 ended: float, over: float = STALL_TARGET_S) -> list[tuple[float, str]]:
    """Each stall of ``role`` longer than ``over``: (seconds, the kind most sampled during it).

    A stall with no sample of its session waiting (the client's own thread not scheduled, the
    network) is ``"client side"``; longest first.
    """
    out = []
    for started, end in _in_window(ops, began, ended):
        if end - started <= over:
            continue
        kinds = Counter(kind for when, who, kind in samples
                        if who == role and started <= when <= end and kind != "running")
        out.append((end - started, kinds.most_common(1)[0][0] if kinds else "client side"))
    return sorted(out, reverse=True)


def describe_causes(causes: Sequence[tuple[float, str]]) -> str:
    """``3 over 100 ms (WAL 2, lock 1), longest on a lock 84 ms``, or ``none over 100 ms``."""
    if not causes:
        return f"none over {STALL_TARGET_S * 1000:.0f} ms"
    kinds = Counter(kind for _seconds, kind in causes)
    locks = [seconds for seconds, kind in causes if kind == "lock"]
    return (f"{len(causes)} over {STALL_TARGET_S * 1000:.0f} ms ("
            + ", ".join(f"{kind} {n}" for kind, n in kinds.most_common()) + ")"
            + (f", longest on a lock {locks[0] * 1000:.0f} ms" if locks else ", none on a lock"))


# A backfill's progress lines ("1,000,000 / 10,000,000 rows (10%), 180,000 rows/s, ETA 50s",
# online/phases.py) and when each was recorded (the phase table's rows_done, polled).
PROGRESS_LINE = re.compile(r"([\d,]+) / ([\d,]+) rows \((\d+)%\), ([\d,]+) rows/s, ETA (\d+)s")
ETA_AT = 0.10  # the moment: the line printed at 10 %
ETA_TOLERANCE = 0.20  # ... and its ETA within 20 % of the truth


@dataclass(frozen=True)
class Progress:
    """One progress line: rows done and in all, and the ETA it printed (seconds)."""

    done: int
    total: int
    eta_s: float


def progress_lines(text: str) -> list[Progress]:
    """Every backfill progress line in ``text`` (a log, or a notebook's outputs), in order."""
    return [Progress(int(m[1].replace(",", "")), int(m[2].replace(",", "")), float(m[5]))
            for m in PROGRESS_LINE.finditer(text)]


@dataclass(frozen=True)
class EtaCheck:
    """The line printed at about ``ETA_AT`` of a backfill, against that backfill's real end."""

    line: Progress
    at_s: float  # when its rows were recorded, seconds since the watch began
    actual_s: float  # from then until every row was done
    error: float  # (printed ETA - actual) / actual: > 0 too pessimistic, < 0 too optimistic

    def describe(self) -> str:
        return (f"ETA at {100 * self.line.done / self.line.total:.1f} % "
                f"({self.line.done:,} / {self.line.total:,} rows): {self.line.eta_s:.0f} s printed, "
                f"{self.actual_s:.1f} s actual, error {100 * self.error:+.1f} % "
                f"({'within' if abs(self.error) <= ETA_TOLERANCE else 'NOT within'} "
                f"{100 * ETA_TOLERANCE:.0f} %)")


Recorded = tuple[float, int, int]  # (seconds since the watch began, rows_done, rows_total)


def eta_check(lines: Sequence[Progress], timeline: Sequence[Recorded]) -> EtaCheck | None:
    """Compare the first line at or past ``ETA_AT`` with the rest of the backfill's real time.

    ``timeline`` is the phase record polled: the moment each ``rows_done`` was first seen.
    The line is printed right after its rows are recorded, so the moment its ``done`` first
    appears is the moment it was printed; the end is the first moment every row is done.
    None when the lines or the timeline do not hold both moments (a backfill shorter than
    one progress line, or one the poll missed).
    """
    line = next((p for p in lines if p.total and p.done >= ETA_AT * p.total), None)
    if line is None:
        return None
    at = next((t for t, done, _total in timeline if done >= line.done), None)
    end = next((t for t, done, total in timeline if total and done >= total), None)
    if at is None or end is None or end <= at:
        return None
    actual = end - at
    return EtaCheck(line, at, actual, (line.eta_s - actual) / actual)


def decile_rates(timeline: Sequence[Recorded]) -> list[float]:
    """The backfill's rate (rows/s) over each tenth of its rows, from the polled timeline.

    The moment a tenth is crossed is interpolated between the two records around it. Shows
    whether the rate at 10 % held: an ETA from the rate so far is only as good as that.
    """
    if len(timeline) < 2 or not timeline[-1][2]:
        return []
    total = timeline[-1][2]
    marks = [(timeline[0][0], float(timeline[0][1]))]
    for tenth in range(1, 11):
        rows = tenth * total / 10
        if rows <= marks[0][1]:
            continue
        for (t0, d0, _), (t1, d1, _) in zip(timeline, timeline[1:]):
            if d0 < rows <= d1:
                marks.append((t0 + (t1 - t0) * (rows - d0) / (d1 - d0), rows))
                break
    return [(b[1] - a[1]) / (b[0] - a[0]) if b[0] > a[0] else 0.0
            for a, b in zip(marks, marks[1:])]


def backfill_seconds(timeline: Sequence[Recorded]) -> float | None:
    """From the first recorded batch to the first moment every row is done (None: not seen)."""
    end = next((t for t, done, total in timeline if total and done >= total), None)
    return None if end is None or not timeline else end - timeline[0][0]


Schema = Mapping[str, Mapping[str, str]]  # table -> {column or "index NAME": description}


def schema_items(schema: Schema, *, nullability: bool = True) -> frozenset[tuple[str, str, str]]:
    """``schema_of``'s dict as a set of (table, item, description), without the phase table.

    ``nullability=False`` drops the `` NOT NULL`` suffix, for comparing a schema caught in
    the middle of a revision (a column added nullable, made NOT NULL by a later phase).
    """
    items = set()
    for table, columns in schema.items():
        if table == PHASE_TABLE:
            continue
        items.add((table, "", ""))
        for item, description in columns.items():
            if not nullability:
                description = description.removesuffix(" NOT NULL")
            items.add((table, item, description))
    return frozenset(items)


def describe_items(items: Iterable[tuple[str, str, str]], limit: int = 4) -> str:
    """A short list of schema items for a message."""
    names = sorted(f"{t}.{i}" if i else t for t, i, _ in items)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


@dataclass(frozen=True)
class Verdict:
    """What a kill left: a sentence for the operator and whether it is explained."""

    explained: bool
    state: str


def classify_state(
    version: str | None,
    schema: Schema,
    phases: Sequence[PhaseRecord],
    references: Mapping[str, Schema],
    children: Mapping[str, str],
    direction: str = "upgrade",
) -> Verdict:
    """Is the state a killed ``direction`` left explained by a revision or a recorded phase?

    Explained means one of two things:

    * no phase rows, and the schema equals ``references[version]`` exactly (nullability
      included, the phase table left out);
    * phase rows, all of ``direction`` and of the revision after ``version``
      (``children[version]``), and a schema between the two revisions' schemas: everything
      of ``version``'s and nothing that is not in the next one's, nullability aside (a
      phase may have added a column that a later phase makes NOT NULL).

    ``references`` holds the schema of every revision the run can be at.
    """
    if version is None:
        return Verdict(False, "no revision in alembic_version")
    if version not in references:
        return Verdict(False, f"{version}: not a revision of the upgrade's path")
    here = schema_items(schema)
    if not phases:
        wanted = schema_items(references[version])
        if here == wanted:
            return Verdict(True, f"{version}: at the revision, schema identical, no phase recorded")
        extra, missing = here - wanted, wanted - here
        parts = [f"{label} {describe_items(found)}"
                 for label, found in (("extra", extra), ("missing", missing)) if found]
        return Verdict(False, f"{version}: no phase recorded, but the schema differs "
                              f"({'; '.join(parts)})")
    latest = max(phases, key=lambda row: (row.phase, row.state == "running"))
    text = f"{version}, then {latest.describe()}"
    child = children.get(version)
    strangers = sorted({(row.revision, row.direction) for row in phases
                        if row.revision != child or row.direction != direction})
    if child is None or child not in references:
        return Verdict(False, f"{text}: {version} has no next revision to be in the middle of")
    if strangers:
        listed = ", ".join(f"{rev} {way}" for rev, way in strangers)
        return Verdict(False, f"{text}: phase rows of {listed}, not of {child} {direction}")
    loose = schema_items(schema, nullability=False)
    parent = schema_items(references[version], nullability=False)
    goal = schema_items(references[child], nullability=False)
    if not parent <= loose:
        return Verdict(False, f"{text}: {version}'s {describe_items(parent - loose)} missing")
    if not loose <= goal:
        return Verdict(False, f"{text}: {describe_items(loose - goal)} in neither revision")
    return Verdict(True, text)


# --------------------------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------------------------


class Server:
    """The PostgreSQL server: URLs for a database name, and the databases this run created."""

    def __init__(self, base_url: str, run_id: str, tablespace: str | None = None) -> None:
        import sqlalchemy as sa

        self.tablespace = tablespace  # where each copy is made (the template: the default one)
        self.base_url = base_url.rstrip("/")
        self.run_id = run_id
        self.created: list[str] = []
        self.admin = sa.create_engine(
            self.sqlalchemy_url("postgres"), isolation_level="AUTOCOMMIT",
            connect_args={"connect_timeout": 10, "application_name": "bench_online admin"})

    def url(self, database: str) -> str:
        """A libpq URL (``postgresql://...``) for ``database``: for psycopg2, flask, the runbook."""
        return f"{self.base_url}/{database}"

    def sqlalchemy_url(self, database: str) -> str:
        return self.url(database).replace("postgresql://", "postgresql+psycopg2://", 1)

    def name(self, suffix: str) -> str:
        return f"{DB_PREFIX}{self.run_id}_{suffix}"

    def sql(self, statement: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Run one statement on the ``postgres`` database (autocommit) and return its rows."""
        import sqlalchemy as sa

        with self.admin.connect() as conn:
            result = conn.execute(sa.text(statement), dict(params or {}))
            return list(result) if result.returns_rows else []

    def create(self, name: str, template: str | None = None) -> str:
        assert name.startswith(DB_PREFIX), name
        clause = ""
        if template is not None:
            # FILE_COPY: a checkpoint and a file copy, instead of WAL for every page of the
            # template (the default on 15), which would leave checkpoints to the next run.
            clause = f' TEMPLATE "{template}" STRATEGY = FILE_COPY'
            if self.tablespace:
                clause += f' TABLESPACE "{self.tablespace}"'
        self.created.append(name)  # first: a Ctrl-C during the CREATE must still drop it
        self.sql(f'CREATE DATABASE "{name}"{clause}')
        return name

    def drop(self, name: str) -> None:
        assert name.startswith(DB_PREFIX), name
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.created:
            self.created.remove(name)

    def drop_all(self) -> None:
        for name in list(reversed(self.created)):
            try:
                self.drop(name)
            except Exception as exc:  # noqa: BLE001 - keep dropping the others
                print(f"could not drop {name}: {exc}", file=sys.stderr)

    def checkpoint(self) -> None:
        """Flush dirty pages before a measured run, so it does not pay for the previous one's."""
        try:
            self.sql("CHECKPOINT")
        except Exception:  # noqa: BLE001 - not allowed for this role: measure without it
            pass

    @contextmanager
    def connect(self, database: str) -> Iterator[Any]:
        """A SQLAlchemy connection to ``database`` (its engine disposed afterwards)."""
        import sqlalchemy as sa

        engine = sa.create_engine(
            self.sqlalchemy_url(database),
            connect_args={"connect_timeout": 10, "application_name": "bench_online check"})
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            engine.dispose()


def fill_sql(rows: int) -> list[str]:
    """The statements that fill a database at 5e4a9c1f6b05 with ``rows`` users and inspections.

    Deterministic (arithmetic on the row number, no random()), every constraint respected:
    unique emails (and usernames, unique in practice), hives unique per apiary, foreign keys
    to existing rows. Apiaries and hives in Soft-Bee's seed proportions (1/20, 1/5).
    """
    apiaries, hives = max(1, rows // 20), max(1, rows // 5)
    first = "ARRAY['Ana','Bruno','Carla','Diego','Elena','Farid','Greta','Hugo','Ines','Jonas'," \
            "'Karin','Luis','Marta','Nils','Olga','Pablo','Rosa','Sven','Tereza','Yusuf']"
    last = "ARRAY['Abeille','Bienen','Colmena','Drone','Enjambre','Favo','Gelee','Hornet'," \
           "'Imker','Jalea','Kaste','Langstroth','Miel','Nectar','Ouvriere','Propolis']"
    epoch = "TIMESTAMP '2023-01-01 08:00:00'"
    return [
        f"""INSERT INTO users (id, email, username, password_hash, first_name, last_name,
                created_at, updated_at, email_verified, email_verification_token,
                email_verified_at)
            SELECT i, 'user' || i || '@example.org', 'user' || i,
                'pbkdf2:sha256:600000$' || md5(i::text),
                ({first})[1 + i % 20], ({last})[1 + (i / 20) % 16],
                {epoch} + i * INTERVAL '1 minute', {epoch} + i * INTERVAL '1 minute',
                i % 3 = 0, CASE WHEN i % 3 <> 0 THEN md5('token' || i) END,
                CASE WHEN i % 3 = 0 THEN {epoch} + i * INTERVAL '1 minute' + INTERVAL '1 hour' END
            FROM generate_series(1, {rows}) AS i""",
        f"""INSERT INTO apiaries (id, owner_id, name, location, latitude, longitude, notes)
            SELECT i, 1 + (i::bigint * 7919) % {rows}, 'Apiary ' || i, 'Field ' || (i % 500),
                40 + (i % 1000) / 100.0, -3 - (i % 700) / 100.0,
                CASE WHEN i % 4 = 0 THEN 'sheltered from the north wind' END
            FROM generate_series(1, {apiaries}) AS i""",
        f"""INSERT INTO hives (id, apiary_id, hive_number, status, hive_type, health_status,
                queen_year)
            SELECT i, 1 + (i - 1) % {apiaries}, 1 + (i - 1) / {apiaries},
                CASE WHEN i % 17 = 0 THEN 'dead' ELSE 'active' END,
                CASE WHEN i % 5 = 0 THEN 'top-bar' ELSE 'langstroth' END,
                (ARRAY['unknown','healthy','weak','queenless'])[1 + i % 4],
                CASE WHEN i % 6 <> 0 THEN 2019 + i % 6 END
            FROM generate_series(1, {hives}) AS i""",
        f"""INSERT INTO inspections (id, hive_id, inspector_id, inspected_at, queen_seen,
                eggs_seen, brood_frames, honey_frames, temperament, notes)
            SELECT i, 1 + (i::bigint * 31) % {hives},
                CASE WHEN i % 7 = 0 THEN NULL ELSE 1 + (i::bigint * 7919) % {rows} END,
                {epoch} + (i % 1500000) * INTERVAL '1 minute',
                i % 2 = 0, i % 3 <> 0, i % 11, (i / 11) % 9,
                (ARRAY['calm','nervous','aggressive'])[1 + i % 3],
                CASE WHEN i % 4 <> 0 THEN 'frames ' || (i % 11) || ', capped brood' END
            FROM generate_series(1, {rows}) AS i""",
        *(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
          f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
          for table in ("users", "apiaries", "hives", "inspections")),
    ]


# --------------------------------------------------------------------------------------------
# Processes: flask and the runbook, each in its own process group, killable with its kernel
# --------------------------------------------------------------------------------------------


def command_env(database_url: str, tag: str, archive_dir: Path) -> dict[str, str]:
    """The environment of a flask or runbook run on ``database_url``."""
    env = dict(os.environ)
    for name in ("TEST_DATABASE_URL", "SOFTBEE_PROJECT_ROOT"):
        env.pop(name, None)
    env.update({
        "FLASK_APP": "softbee", "FLASK_ENV": "development", "DATABASE_URL": database_url,
        "RUNBOOK_ARCHIVE_DIR": str(archive_dir), "SOFTBEE_PROJECT_ROOT": str(REPO),
        TAG_VARIABLE: tag, "PYTHONUNBUFFERED": "1",
    })
    return env


def flask_command(target: str = "head") -> list[str]:
    return [str(BIN / "flask"), "db", "upgrade", target]


def runbook_command(count_mode: str, *extra: str) -> list[str]:
    return [str(BIN / "softbee-runbook"), "run", "upgrade_downgrade",
            "-p", "count_mode", count_mode, *extra]


def tagged_pids(tag: str) -> list[int]:
    """Processes whose environment carries ``TAG_VARIABLE=tag`` (or starts with it).

    That is how the Jupyter kernel is found: jupyter_client starts it in a session of its
    own, so it is not in the CLI's process group, but it inherits the CLI's environment.
    Only processes this benchmark started carry the tag.
    """
    marker = f"{TAG_VARIABLE}={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or someone else's process
            continue
        if any(var.startswith(marker) for var in environ.split(b"\0")):
            found.append(int(entry.name))
    return found


def kill_tagged(tag: str, leader: subprocess.Popen[bytes] | None = None) -> int:
    """``kill -9`` the leader's process group and every process carrying ``tag``; how many."""
    killed = set()
    for _ in range(3):  # a process started while we were killing is caught by the next pass
        pids = tagged_pids(tag)
        if leader is not None and leader.poll() is None:
            try:
                os.killpg(leader.pid, signal.SIGKILL)
                killed.add(leader.pid)
            except ProcessLookupError:
                pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        if not pids:
            break
        time.sleep(0.05)
    if leader is not None:
        try:
            leader.wait(timeout=KILL_REAP_S)
        except subprocess.TimeoutExpired:
            pass
    deadline = time.monotonic() + KILL_REAP_S
    while tagged_pids(tag) and time.monotonic() < deadline:
        time.sleep(0.05)  # zombies of the kernel are reaped by whoever adopted them
    return len(killed)


def start(command: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` in a new session (its own process group), its output in ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(list(command), cwd=REPO, env=dict(env), stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def run_bounded(command: Sequence[str], env: Mapping[str, str], log: Path,
                timeout: float = COMMAND_TIMEOUT_S) -> tuple[int, float]:
    """Run ``command`` to its end (killed after ``timeout``); its exit status and wall time."""
    began = time.perf_counter()
    proc = start(command, env, log)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tagged(env[TAG_VARIABLE], proc)
        say(f"  {Path(command[0]).name} did not finish in {timeout:.0f} s: killed")
        code = -9
    return code, time.perf_counter() - began


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


# --------------------------------------------------------------------------------------------
# The application's clients, and a sampler of what they wait on
# --------------------------------------------------------------------------------------------


class Client(threading.Thread):
    """One application client on its own connection: one operation every 10 ms until stopped."""

    def __init__(self, role: str, dsn: str, statements: Sequence[tuple[str, str]], rows: int,
                 seed: int) -> None:
        super().__init__(name=f"bench_online {role}", daemon=True)
        self.role, self.dsn, self.statements, self.rows = role, dsn, statements, rows
        self.rng = random.Random(seed)
        self.ops: list[Op] = []
        self.inflight: float | None = None
        self.errors: Counter[str] = Counter()
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.conn: Any = None

    def run(self) -> None:
        import psycopg2

        try:
            self.conn = psycopg2.connect(self.dsn, application_name=self.name, connect_timeout=10)
            self.conn.autocommit = True
        except psycopg2.Error as exc:
            self.errors[f"connect: {str(exc).strip().splitlines()[0]}"] += 1
            self.ready.set()
            return
        cursor = self.conn.cursor()
        while not self.stop.is_set():
            started = time.perf_counter()
            self.inflight = started
            try:
                for _table, statement in self.statements:
                    cursor.execute(statement, (self.rng.randint(1, self.rows),))
                    cursor.fetchall() if cursor.description else None
                self.ops.append((started, time.perf_counter()))
            except psycopg2.Error as exc:
                self.ops.append((started, time.perf_counter()))
                self.errors[str(exc).strip().splitlines()[0][:80]] += 1
                if self.conn.closed:
                    break
            self.inflight = None
            self.ready.set()
            pause = started + CLIENT_PERIOD_S - time.perf_counter()
            if pause > 0:
                self.stop.wait(pause)
        self.conn.close()

    def halt(self) -> None:
        """Stop (bounded): a query still waiting after CLIENT_JOIN_S is cancelled."""
        self.stop.set()
        self.join(CLIENT_JOIN_S)
        if self.is_alive() and self.conn is not None and not self.conn.closed:
            self.errors["still waiting when stopped: cancelled"] += 1
            self.conn.cancel()
            self.join(CLIENT_JOIN_S)

    def all_ops(self) -> list[Op]:
        ops = list(self.ops)
        if self.inflight is not None:
            ops.append((self.inflight, None))
        return ops


def start_clients(dsn: str, rows: int, seed: int) -> list[Client]:
    """The writer and the reader, started, each having done one operation (bounded wait)."""
    clients = [
        Client("writer", dsn, [("users", "UPDATE users SET updated_at = now() WHERE id = %s")],
               rows, seed * 1000 + 1),
        Client("reader", dsn, [
            ("users", "SELECT id, email, username, first_name, last_name FROM users WHERE id = %s"),
            ("inspections", "SELECT id, hive_id, inspected_at, temperament FROM inspections "
                            "WHERE id = %s"),
        ], rows, seed * 1000 + 2),
    ]
    for client in clients:
        client.start()
    for client in clients:
        client.ready.wait(30)
    return clients


class _Poller(threading.Thread):
    """A thread that runs :meth:`poll` on its own autocommit connection every ``period`` s.

    Autocommit and no ``with conn`` (which opens a transaction even in autocommit since
    psycopg2 2.9): pg_stat_activity is read once per transaction, each poll needs its own.
    A poll that fails (a table not there yet, a statement timeout) is skipped.
    """

    def __init__(self, name: str, dsn: str, period: float) -> None:
        super().__init__(name=name, daemon=True)
        self.dsn, self.period = dsn, period
        self.stop = threading.Event()

    def run(self) -> None:
        import psycopg2

        try:
            conn = psycopg2.connect(self.dsn, application_name=self.name, connect_timeout=10)
        except psycopg2.Error:
            return
        conn.autocommit = True
        cursor = conn.cursor()
        cursor.execute("SET statement_timeout = 1000")
        while not self.stop.wait(self.period):
            try:
                self.poll(cursor)
            except psycopg2.Error:
                continue
        conn.close()

    def poll(self, cursor: Any) -> None:
        """One reading."""
        raise NotImplementedError

    def halt(self) -> None:
        self.stop.set()
        self.join(5)


class LockSampler(_Poller):
    """Every SAMPLE_PERIOD_S: which session, doing what, the clients are waiting behind.

    Counts samples per (blocker's application, state, statement): multiplied by the period,
    roughly how long the clients spent behind each statement.
    """

    QUERY = """
        SELECT w.application_name, b.application_name, b.state, left(b.query, 70),
               l.mode, l.relation::regclass::text
        FROM pg_stat_activity w
        CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS blocker(pid)
        JOIN pg_stat_activity b ON b.pid = blocker.pid
        LEFT JOIN pg_locks l ON l.pid = b.pid AND l.granted AND l.locktype = 'relation'
             AND l.relation IN (SELECT relation FROM pg_locks
                                WHERE pid = w.pid AND NOT granted AND locktype = 'relation')
        WHERE w.datname = %s AND w.application_name LIKE 'bench_online %%'
          AND w.wait_event_type = 'Lock'
    """

    def __init__(self, dsn: str, database: str) -> None:
        super().__init__("bench_online sampler", dsn, SAMPLE_PERIOD_S)
        self.database = database
        self.seen: Counter[tuple[str, ...]] = Counter()

    def poll(self, cursor: Any) -> None:
        """Count one sample of what each waiting client waits behind (its strongest lock)."""
        cursor.execute(self.QUERY, (self.database,))
        strongest: dict[tuple[str, ...], tuple[int, str]] = {}
        for waiter, app, state, query, mode, relation in cursor.fetchall():
            key = (waiter.removeprefix("bench_online "), app or "no application_name",
                   state or "?", " ".join((query or "").split()))
            rank = LOCK_MODES.index(mode) if mode in LOCK_MODES else -1
            if rank >= strongest.get(key, (-2, ""))[0]:
                strongest[key] = (rank, f"{mode} on {relation}" if mode else "a lock")
        for (waiter, app, state, query), (_rank, lock) in strongest.items():
            self.seen[(waiter, app, state, lock, query)] += 1

    def summary(self, limit: int = 5) -> list[str]:
        """The statements the clients waited behind longest, each with the seconds per client."""
        waits: dict[tuple[str, ...], dict[str, float]] = {}
        for (waiter, app, state, lock, query), count in self.seen.items():
            waits.setdefault((app, state, lock, query), {})[waiter] = count * SAMPLE_PERIOD_S
        ranked = sorted(waits.items(), key=lambda item: -max(item[1].values()))
        return [f"{query} [{app}, {state}, holding {lock}]: "
                + ", ".join(f"{waiter} ~{seconds:.1f} s" for waiter, seconds in sorted(by.items()))
                for (app, state, lock, query), by in ranked[:limit]]


class WaitSampler(_Poller):
    """Every WAIT_PERIOD_S: what each client's session is waiting on, if anything.

    A stall of a client is then put down to the wait it showed most during the stall
    (:func:`stall_causes`): the migration's locks, or the server's WAL flush, which no lock
    timeout shortens.
    """

    QUERY = ("SELECT application_name, wait_event_type, wait_event FROM pg_stat_activity "
             "WHERE datname = %s AND application_name IN ('bench_online writer', "
             "'bench_online reader') AND state = 'active'")

    def __init__(self, dsn: str, database: str) -> None:
        super().__init__("bench_online waits", dsn, WAIT_PERIOD_S)
        self.database = database
        self.samples: list[Sample] = []

    def poll(self, cursor: Any) -> None:
        """Note each client's current wait."""
        cursor.execute(self.QUERY, (self.database,))
        now = time.perf_counter()
        for app, kind, event in cursor.fetchall():
            self.samples.append((now, app.removeprefix("bench_online "), wait_kind(kind, event)))


class ProgressWatcher(_Poller):
    """Every PROGRESS_PERIOD_S: the backfill's recorded rows_done, and when each value appeared.

    The phase record is written just before each progress line is printed (phases.py), so this
    timeline dates the lines of every way, the runbook's too (whose lines reach only its
    archived notebook).
    """

    QUERY = (f"SELECT rows_done, rows_total FROM {PHASE_TABLE} "
             "WHERE name LIKE 'backfill %' AND rows_total IS NOT NULL")

    def __init__(self, dsn: str) -> None:
        super().__init__("bench_online progress", dsn, PROGRESS_PERIOD_S)
        self.began = time.perf_counter()
        self.timeline: list[Recorded] = []
        self._last: tuple[Any, Any] | None = None

    def poll(self, cursor: Any) -> None:
        """Note each new (rows_done, rows_total) of the backfill with when it was first seen."""
        cursor.execute(self.QUERY)
        rows = cursor.fetchall()
        now = time.perf_counter() - self.began
        for done, total in rows:
            if (done, total) != self._last:
                self.timeline.append((now, int(done or 0), int(total)))
                self._last = (done, total)


def printed_output(way: str, log: Path, archive: Path, since: float) -> str:
    """What the way printed: flask's output, or the runbook's archived notebook(s) since ``since``."""
    if way == "flask":
        return log.read_text(errors="replace") if log.is_file() else ""
    return "\n".join(notebook.read_text(errors="replace")
                     for notebook in sorted(archive.rglob("*.ipynb"))
                     if notebook.stat().st_mtime >= since)


LONGEST_BATCH = re.compile(r"longest batch (\d+) ms")


def longest_batch_ms(text: str) -> int | None:
    """The longest backfill batch a run's last progress line reports (None: not reported)."""
    found = [int(m[1]) for m in LONGEST_BATCH.finditer(text)]
    return max(found) if found else None


# --------------------------------------------------------------------------------------------
# The ways, and the check at head
# --------------------------------------------------------------------------------------------


@dataclass
class WayResult:
    way: str
    wall: float
    exit_code: int
    writer: list[float] = field(default_factory=list)
    reader: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    client_errors: list[str] = field(default_factory=list)
    blocked_by: list[str] = field(default_factory=list)
    eta: EtaCheck | None = None
    eta_note: str = ""
    rates: list[float] = field(default_factory=list)
    longest_batch_ms: int | None = None
    backfill_s: float | None = None
    writer_causes: list[tuple[float, str]] = field(default_factory=list)
    reader_causes: list[tuple[float, str]] = field(default_factory=list)


def check_at_head(server: Server, database: str, head: str, counts: Mapping[str, int]
                  ) -> list[str]:
    """What is wrong with ``database`` after an upgrade to head (an empty list: all right)."""
    import sqlalchemy as sa

    problems = []
    with server.connect(database) as conn:
        versions = [v for (v,) in conn.execute(sa.text("SELECT version_num FROM alembic_version"))]
        if versions != [head]:
            problems.append(f"alembic_version {versions}, not [{head}]")
        for table, expected in counts.items():
            found = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            if found != expected:
                problems.append(f"{table}: {found:,} rows, not {expected:,}")
        nullable = conn.execute(sa.text(
            "SELECT is_nullable FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'users' "
            "AND column_name = 'full_name'")).scalar()
        if nullable is None:
            problems.append("users.full_name missing")
        else:
            if nullable != "NO":
                problems.append("users.full_name is nullable")
            wrong = conn.execute(sa.text(
                "SELECT count(*) FROM users WHERE full_name IS NULL "
                "OR full_name <> first_name || ' ' || last_name")).scalar_one()
            if wrong:
                problems.append(f"{wrong:,} users without the right full_name")
        valid = conn.execute(sa.text(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = :name"), {"name": VARROA_INDEX}).scalar()
        if valid is None:
            problems.append(f"index {VARROA_INDEX} missing")
        elif not valid:
            problems.append(f"index {VARROA_INDEX} INVALID")
    return problems


def table_counts(server: Server, database: str) -> dict[str, int]:
    import sqlalchemy as sa

    with server.connect(database) as conn:
        return {table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("users", "inspections", "apiaries", "hives")}


def way_command(way: str) -> list[str]:
    return flask_command() if way == "flask" else runbook_command(way)


def run_way(server: Server, way: str, database: str, rows: int, seed: int, scratch: Path,
            head: str, counts: Mapping[str, int], tag: str) -> WayResult:
    """One way on its copy with the two clients running; timed, sampled, checked."""
    dsn = server.url(database)
    server.checkpoint()
    clients = start_clients(dsn, rows, seed)
    sampler = LockSampler(dsn, database)  # on the copy: its relation names resolve there
    sampler.start()
    watcher = ProgressWatcher(dsn)
    watcher.start()
    waits = WaitSampler(dsn, database)
    waits.start()
    log = scratch / f"{way}.log"
    since = time.time()
    try:
        began = time.perf_counter()
        code, _ = run_bounded(way_command(way), command_env(dsn, tag, scratch / "archive"), log)
        ended = time.perf_counter()
    finally:
        sampler.halt()
        watcher.halt()
        waits.halt()
        for client in clients:
            client.halt()
    result = WayResult(way, ended - began, code)
    writer, reader = clients
    result.writer = stalls(writer.all_ops(), began, ended)
    result.reader = stalls(reader.all_ops(), began, ended)
    result.writer_causes = stall_causes(writer.all_ops(), waits.samples, "writer", began, ended)
    result.reader_causes = stall_causes(reader.all_ops(), waits.samples, "reader", began, ended)
    result.client_errors = [f"{c.role}: {error} x{n}" for c in clients
                            for error, n in c.errors.items()]
    result.blocked_by = sampler.summary()
    printed = printed_output(way, log, scratch / "archive", since - 1)
    lines = progress_lines(printed)
    result.longest_batch_ms = longest_batch_ms(printed)
    result.eta = eta_check(lines, watcher.timeline)
    result.rates = decile_rates(watcher.timeline)
    result.backfill_s = backfill_seconds(watcher.timeline)
    if result.eta is None:
        result.eta_note = (f"no ETA check: {len(lines)} progress line(s) found, "
                           f"{len(watcher.timeline)} record(s) polled")
    if code != 0:
        result.problems.append(f"exit status {code}; last lines of {log}:\n{tail(log)}")
    result.problems += check_at_head(server, database, head, counts)
    return result


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def outside_backfill(result: WayResult) -> str:
    """``backfill 80.1 s, the rest 9.9 s``: how the way's wall time splits."""
    if result.backfill_s is None:
        return "backfill not timed"
    return f"backfill {result.backfill_s:.1f} s, the rest {result.wall - result.backfill_s:.1f} s"


def print_table(results: Sequence[WayResult]) -> None:
    print()
    print("| way | wall time | writer longest / p99 stall | reader longest / p99 stall "
          "| ops (w / r) | at head |")
    print("|---|---:|---:|---:|---:|---|")
    names = {"flask": "`flask db upgrade`", "exact": "runbook, `count_mode=exact`",
             "estimate": "runbook, `count_mode=estimate`"}
    for r in results:
        state = "ok" if not r.problems else "NOT OK"
        print(f"| {names[r.way]} | {r.wall:.1f} s "
              f"| {ms(max(r.writer, default=0))} / {ms(percentile(r.writer, 99))} "
              f"| {ms(max(r.reader, default=0))} / {ms(percentile(r.reader, 99))} "
              f"| {len(r.writer):,} / {len(r.reader):,} | {state} |")
    by_way = {r.way: r for r in results}
    if "flask" in by_way:
        print()
        for way in ("exact", "estimate"):
            if way in by_way:
                target = " (issue 9: <= 1.5x; issue 21 at 10M rows: <= 1.3x)"
                print(f"runbook ({way}) / flask wall time: "
                      f"{by_way[way].wall / by_way['flask'].wall:.2f}x{target}")
                run, flask = by_way[way], by_way["flask"]
                if run.backfill_s is not None and flask.backfill_s is not None:
                    print(f"  outside the backfill: {run.wall - run.backfill_s:.1f} s against "
                          f"{flask.wall - flask.backfill_s:.1f} s (the backfill: "
                          f"{run.backfill_s:.1f} s against {flask.backfill_s:.1f} s)")
    print()
    for r in results:
        print(f"{r.way}: stalls, writer {describe_causes(r.writer_causes)}; "
              f"reader {describe_causes(r.reader_causes)}")
    for r in results:
        print(f"{r.way}: {r.eta.describe() if r.eta else r.eta_note}")
    for r in results:
        for line in r.problems:
            print(f"{r.way}: NOT OK: {line}")
        for line in r.client_errors:
            print(f"{r.way}: client error: {line}")
    print("\nthe statements the clients waited behind (sampled every "
          f"{SAMPLE_PERIOD_S * 1000:.0f} ms):")
    for r in results:
        for line in r.blocked_by or ["nothing sampled"]:
            print(f"  {r.way}: {line}")


# --------------------------------------------------------------------------------------------
# Kills
# --------------------------------------------------------------------------------------------


def revision_chain(start: str) -> tuple[list[str], dict[str, str]]:
    """The revisions from ``start`` to head, and each revision's child (a linear history)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(REPO / "migrations"))
    children: dict[str, str] = {}
    for script in scripts.walk_revisions():
        parents = script.down_revision
        for parent in (parents if isinstance(parents, tuple) else (parents,)):
            if parent is not None:
                children[parent] = script.revision
    chain = [start]
    while chain[-1] in children:
        chain.append(children[chain[-1]])
    return chain, children


def reference_schemas(server: Server, chain: Sequence[str], scratch: Path, tag: str
                      ) -> dict[str, dict[str, dict[str, str]]]:
    """The schema of each revision of ``chain``: an empty database migrated one step at a time."""
    from softbee.runbook.engine.migrate import schema_of

    database = server.create(server.name("reference"))
    env = command_env(server.url(database), tag, scratch / "archive")
    references = {}
    try:
        for revision in chain:
            code, _ = run_bounded(flask_command(revision), env, scratch / "reference.log", 600)
            if code != 0:
                raise RuntimeError(f"flask db upgrade {revision} failed:\n"
                                   f"{tail(scratch / 'reference.log')}")
            with server.connect(database) as conn:
                references[revision] = schema_of(conn)
    finally:
        server.drop(database)
    return references


def wait_sessions_gone(server: Server, database: str) -> tuple[float, list[str]]:
    """Wait (bounded) until no session is connected to ``database``.

    Only the killed run can be connected to its copy (its sessions are named
    ``softbee-runbook`` and ``softbee-runbook env.py``). A backend busy in a long statement does
    not notice that its client is gone until the statement ends; after SESSIONS_GONE_S it is
    terminated. Returns the seconds waited and a line per terminated session.
    """
    query = ("SELECT pid, application_name, state, extract(epoch FROM now() - query_start), "
             "left(query, 70) FROM pg_stat_activity WHERE datname = :db")
    began = time.monotonic()
    terminated: list[str] = []
    deadline = began + SESSIONS_GONE_S
    while True:
        sessions = server.sql(query, {"db": database})
        if not sessions:
            return time.monotonic() - began, terminated
        if time.monotonic() >= deadline:
            if terminated:  # terminated already and still there: give up waiting
                terminated.append(f"{len(sessions)} session(s) still there after "
                                  f"pg_terminate_backend")
                return time.monotonic() - began, terminated
            for pid, app, state, seconds, text in sessions:
                line = (f"pid {pid} ({app or 'no application_name'}, {state}, "
                        f"{seconds or 0:.0f} s in: {' '.join((text or '').split())})")
                say(f"    still connected after {SESSIONS_GONE_S:.0f} s, terminating: {line}")
                server.sql("SELECT pg_terminate_backend(:pid)", {"pid": pid})
                terminated.append(line)
            deadline = time.monotonic() + TERMINATED_GONE_S
        time.sleep(0.1)


def sessions_doing(server: Server, database: str) -> str:
    """What the run's sessions on ``database`` are doing, as `` (in: ...)``, for the kill line."""
    rows = server.sql("SELECT state, left(query, 50) FROM pg_stat_activity WHERE datname = :db "
                      "AND state <> 'idle' ORDER BY query_start", {"db": database})
    if not rows:
        return " (no statement running)"
    return " (in: " + "; ".join(f"{state}: {' '.join((query or '').split())}"
                                for state, query in rows) + ")"


def read_state(server: Server, database: str
               ) -> tuple[str | None, dict[str, Any], list[PhaseRecord], list[str]]:
    """alembic_version, schema_of, phase rows and INVALID indexes of ``database``."""
    import sqlalchemy as sa

    from softbee.runbook.engine.migrate import schema_of

    with server.connect(database) as conn:
        versions = []
        if conn.execute(sa.text("SELECT to_regclass('alembic_version')")).scalar() is not None:
            versions = [v for (v,) in conn.execute(
                sa.text("SELECT version_num FROM alembic_version"))]
        phases = recorded_phases(conn)
        invalid = [name for (name,) in conn.execute(sa.text(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND NOT i.indisvalid"))]
        schema = schema_of(conn)
        conn.rollback()
    version = versions[0] if len(versions) == 1 else (
        None if not versions else f"several: {', '.join(versions)}")
    return version, schema, phases, invalid


@dataclass
class KillResult:
    moment: float
    verdict: Verdict
    terminated: int
    finished: bool
    late: bool  # the run had ended before the kill moment


def run_kills(server: Server, template: str, count: int, wall: float, rng: random.Random,
              scratch: Path, head: str, counts: Mapping[str, int], keep: bool,
              next_tag: Callable[[], str]) -> list[KillResult]:
    """``count`` kills of the runbook upgrade at random moments of ``wall``; each classified."""
    chain, children = revision_chain(START_REVISION)
    say(f"reference schemas of {', '.join(chain)} (empty database, flask db upgrade each)")
    references = reference_schemas(server, chain, scratch, next_tag())
    results = []
    for number in range(1, count + 1):
        database = server.create(server.name(f"kill{number:02d}"), template)
        moment = rng.uniform(0, wall)
        tag = next_tag()
        env = command_env(server.url(database), tag, scratch / "archive")
        log = scratch / f"kill{number:02d}.log"
        proc = start(runbook_command("exact"), env, log)
        finished_first = False
        try:
            proc.wait(timeout=moment)
            finished_first = True  # the run ended before the kill moment
        except subprocess.TimeoutExpired:
            pass
        doing = "" if finished_first else sessions_doing(server, database)
        killed = kill_tagged(tag, proc)
        waited, terminated = wait_sessions_gone(server, database)
        version, schema, phases, invalid = read_state(server, database)
        verdict = classify_state(version, schema, phases, references, children)
        extra = f"; INVALID index(es) left: {', '.join(invalid)}" if invalid else ""
        note = " (the run had already finished)" if finished_first else ""
        say(f"  kill {number:2d}/{count} at {moment:5.1f} s{note}{doing}: {killed} process(es) "
            f"killed, sessions gone after {waited:.1f} s"
            f"{f', {len(terminated)} terminated' if terminated else ''}")
        say(f"    state: {verdict.state}{extra}  explained: {'yes' if verdict.explained else 'NO'}")
        rerun_log = scratch / f"kill{number:02d}-rerun.log"
        code, seconds = run_bounded(runbook_command("exact", "-p", "lock_wait_s", "30"),
                                    command_env(server.url(database), next_tag(),
                                                scratch / "archive"), rerun_log)
        problems = check_at_head(server, database, head, counts)
        if code != 0:
            problems.insert(0, f"re-run exit status {code}:\n{tail(rerun_log)}")
        say(f"    re-run: {seconds:.1f} s, "
            f"{'at head, every row kept, every full_name filled' if not problems else 'NOT OK'}")
        for line in problems:
            say(f"      {line}")
        results.append(KillResult(moment, verdict, len(terminated), not problems, finished_first))
        if not keep:
            server.drop(database)
    return results


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


FILLED_TABLES = ("users", "apiaries", "hives", "inspections")
ORPHANS_SQL = {
    "apiaries.owner_id": "SELECT count(*) FROM apiaries a "
                         "WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = a.owner_id)",
    "hives.apiary_id": "SELECT count(*) FROM hives h "
                       "WHERE NOT EXISTS (SELECT 1 FROM apiaries a WHERE a.id = h.apiary_id)",
    "inspections.hive_id": "SELECT count(*) FROM inspections i "
                           "WHERE NOT EXISTS (SELECT 1 FROM hives h WHERE h.id = i.hive_id)",
    "inspections.inspector_id": "SELECT count(*) FROM inspections i WHERE i.inspector_id IS NOT "
                                "NULL AND NOT EXISTS (SELECT 1 FROM users u "
                                "WHERE u.id = i.inspector_id)",
}


def fill(conn: Any, rows: int) -> None:
    """Run ``fill_sql`` fast, in one transaction, leaving the schema exactly as it was.

    The unique constraints and the indexes that back no constraint are dropped first and
    rebuilt afterwards from their own definitions (``pg_get_constraintdef``,
    ``pg_get_indexdef``): one sort each instead of a million random inserts, and re-adding a
    unique constraint checks uniqueness over all the rows. Primary keys stay (foreign keys
    point at them). The foreign-key triggers are skipped for this session
    (``session_replication_role``, when the role may set it): the rows are consistent by
    construction, and the anti-joins after the fill prove it.
    """
    import sqlalchemy as sa

    def timed(label: str, statement: str) -> Any:
        step = time.perf_counter()
        result = conn.execute(sa.text(statement))
        say(f"  {label[:44]:44} {time.perf_counter() - step:6.1f} s")
        return result

    indexes = list(conn.execute(sa.text(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
        "WHERE t.relname = ANY(:tables) AND t.relnamespace = current_schema()::regnamespace "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)"),
        {"tables": list(FILLED_TABLES)}))
    uniques = list(conn.execute(sa.text(
        "SELECT t.relname, k.conname, pg_get_constraintdef(k.oid) FROM pg_constraint k "
        "JOIN pg_class t ON t.oid = k.conrelid WHERE k.contype = 'u' "
        "AND t.relname = ANY(:tables) AND t.relnamespace = current_schema()::regnamespace"),
        {"tables": list(FILLED_TABLES)}))
    for table, name, _definition in uniques:
        conn.execute(sa.text(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"'))
    for name, _definition in indexes:
        conn.execute(sa.text(f'DROP INDEX "{name}"'))
    try:
        with conn.begin_nested():
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
    except sa.exc.DBAPIError:
        say("  (cannot set session_replication_role: foreign keys checked row by row)")
    conn.execute(sa.text("SET LOCAL maintenance_work_mem = '1GB'"))
    for statement in fill_sql(rows):
        timed(" ".join(statement.split()[:3]), statement)
    conn.execute(sa.text("SET LOCAL session_replication_role = DEFAULT"))
    for table, name, definition in uniques:
        timed(f"rebuild {name}", f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
    for name, definition in indexes:
        timed(f"rebuild {name}", definition)
    for reference, query in ORPHANS_SQL.items():
        orphans = conn.execute(sa.text(query)).scalar_one()
        if orphans:
            raise RuntimeError(f"the fill left {orphans:,} rows whose {reference} points nowhere")
    conn.commit()


def free_disk(path: str = "/") -> str:
    """Free space where the server keeps its files (``path``: the same file system here)."""
    import shutil

    usage = shutil.disk_usage(path)
    return f"{usage.free / 2**30:.1f} GB free on {path}"


def build_template(server: Server, rows: int, scratch: Path, tag: str) -> str:
    """The dataset at START_REVISION, filled, VACUUM ANALYZEd: every copy's template."""
    import sqlalchemy as sa

    template = server.create(server.name("template"))
    began = time.perf_counter()
    env = command_env(server.url(template), tag, scratch / "archive")
    code, seconds = run_bounded(flask_command(START_REVISION), env, scratch / "template.log", 600)
    if code != 0:
        raise RuntimeError(f"flask db upgrade {START_REVISION} failed:\n"
                           f"{tail(scratch / 'template.log')}")
    say(f"  migrated to {START_REVISION} in {seconds:.1f} s (flask db upgrade)")
    with server.connect(template) as conn:
        fill(conn, rows)
        conn.execution_options(isolation_level="AUTOCOMMIT")
        step = time.perf_counter()
        conn.exec_driver_sql("VACUUM ANALYZE")
        say(f"  VACUUM ANALYZE {time.perf_counter() - step:6.1f} s")
        size = conn.execute(sa.text("SELECT pg_size_pretty(pg_database_size(current_database()))"
                                    )).scalar_one()
    say(f"template {template}: {rows:,} users and inspections, {size}, "
        f"built in {time.perf_counter() - began:.1f} s; {free_disk()}")
    return template


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="users, and inspections (default 1,000,000)")
    parser.add_argument("--ways", default=",".join(WAYS),
                        help="comma-separated, of flask, exact, estimate (default: all three)")
    parser.add_argument("--kills", type=int, default=0, metavar="N",
                        help="kill the runbook upgrade N times and re-run it (issue 9 asks 20)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the clients and kill moments")
    parser.add_argument("--keep", action="store_true", help="keep the databases (names printed)")
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432",
                        help="the server, without a database name")
    parser.add_argument("--tablespace", default=None,
                        help="make each copy in this tablespace (e.g. bench_tmpfs, made by "
                             "BENCH_DATA=tmpfs scripts/pg-bench-cluster.sh up)")
    args = parser.parse_args(argv)
    ways = [w.strip() for w in args.ways.split(",") if w.strip()]
    unknown = [w for w in ways if w not in WAYS]
    if unknown or args.rows < 1 or args.kills < 0:
        parser.error(f"--ways takes {', '.join(WAYS)}; --rows >= 1; --kills >= 0")
    args.ways = ways
    return args


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    run_id = uuid.uuid4().hex[:6]
    tags = iter(range(1, 1_000_000))

    def next_tag() -> str:
        return f"{run_id}-{next(tags)}"

    server = Server(args.url, run_id, args.tablespace)
    rng = random.Random(args.seed)
    load = os.getloadavg()
    server_version = server.sql("SHOW server_version")[0][0]
    say(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, PostgreSQL {server_version}, load average "
        f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    results: list[WayResult] = []
    kills: list[KillResult] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-online-") as folder:
            scratch = Path(folder)
            say(f"building the dataset: {args.rows:,} users and inspections at {START_REVISION}")
            template = build_template(server, args.rows, scratch, next_tag())
            counts = table_counts(server, template)
            chain, _ = revision_chain(START_REVISION)
            head = chain[-1]
            for way in args.ways:
                database = server.create(server.name(way), template)
                say(f"{way}: upgrading a copy ({database}) to {head}, clients running")
                result = run_way(server, way, database, args.rows, args.seed, scratch, head,
                                 counts, next_tag())
                results.append(result)
                say(f"  {way}: {result.wall:.1f} s, writer longest "
                    f"{ms(max(result.writer, default=0))}, reader longest "
                    f"{ms(max(result.reader, default=0))}, "
                    f"{'ok at head' if not result.problems else 'NOT OK'}")
                say(f"  {way}: {result.eta.describe() if result.eta else result.eta_note}")
                say(f"  {way}: stalls, writer {describe_causes(result.writer_causes)}; "
                    f"reader {describe_causes(result.reader_causes)}")
                say(f"  {way}: backfill rows/s per tenth of the rows: "
                    f"{', '.join(f'{rate:,.0f}' for rate in result.rates) or 'none'}; "
                    f"longest batch {result.longest_batch_ms or '?'} ms; "
                    f"{outside_backfill(result)}")
                if not args.keep:
                    server.drop(database)
                say(f"  {free_disk()}")
            if results:
                load = os.getloadavg()
                print_table(results)
                print(f"\n{args.rows:,} rows; load average at the end {load[0]:.1f} "
                      f"{load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs")
            if args.kills:
                exact = [r for r in results if r.way == "exact" and not r.problems]
                if exact:
                    wall = exact[0].wall
                else:
                    database = server.create(server.name("uninterrupted"), template)
                    say("measuring an uninterrupted runbook upgrade for the kill moments")
                    code, wall = run_bounded(runbook_command("exact"),
                                             command_env(server.url(database), next_tag(),
                                                         scratch / "archive"),
                                             scratch / "uninterrupted.log")
                    if not args.keep:
                        server.drop(database)
                say(f"{args.kills} kills within {wall:.1f} s (an uninterrupted run's wall time)")
                kills = run_kills(server, template, args.kills, wall, rng, scratch, head, counts,
                                  args.keep, next_tag)
                unexplained = sum(not k.verdict.explained for k in kills)
                finished = sum(k.finished for k in kills)
                terminated = sum(k.terminated for k in kills)
                late = sum(k.late for k in kills)
                print(f"\nkills: unexplained states {unexplained}/{len(kills)}, finished by a "
                      f"re-run {finished}/{len(kills)}; sessions terminated after "
                      f"{SESSIONS_GONE_S:.0f} s: {terminated}; kills after the run had "
                      f"already ended: {late}")
    except KeyboardInterrupt:
        say("interrupted: stopping what this run started and dropping its databases")
        return 130
    finally:
        for pid in tagged_pids(run_id):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if args.keep:
            say(f"kept: {', '.join(server.created) or 'nothing'}")
        else:
            server.drop_all()
        server.admin.dispose()
    failed = any(r.problems for r in results) or any(
        not k.verdict.explained or not k.finished for k in kills)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
