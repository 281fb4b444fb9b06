"""The fleet's targets file: which databases, where their URLs come from, in which wave.

The one shape read::

    targets:
      - name: tenant-a          # unique; letters, digits, '.', '_' and '-'
        url_env: TENANT_A_URL   # the environment variable holding the URL (local runs)
        conn_id: tenant_a_db    # the Airflow Connection holding it (Airflow runs)
        wave: 1                 # 1, 2, 3... without gaps (default 1)
        tags: [eu]              # free labels (optional)
        bind_url_env: {audit: TENANT_A_AUDIT_URL}   # a multi-database project: each other
        bind_conn_id: {audit: tenant_a_audit_db}    #   bind's URL, as url_env / conn_id / url
        bind_url: {reports: "sqlite:///r.db"}       #   are for the default bind

A multi-database project (Flask-Migrate's ``--multidb`` template) keeps one
``alembic_version`` per bind, each in its own database. ``url_env`` / ``conn_id`` /
``url`` name the default bind's database (the default engine, bind ``default``); the
``bind_*`` mappings name each other bind's, bind name to variable, Connection or
password-less URL. Every target of a file names the same binds: a bind left out would
be migrated wherever the app's own settings point. Runs get them as the runbook's
``bind_urls`` parameter, which travels like a secret (the kernel's environment, masked
everywhere), never on a command line or in a file.

A password never lives in the file: ``url:`` (and ``bind_url:``) may name a database
literally only when the URL carries no password (a SQLite file, a server using ``.pgpass`` or
certificates). Every problem is found before anything runs, each one line naming
the target and the fix; :class:`TargetsError` carries them all in ``.problems``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from softbee.runbook.errors import ParameterError
from softbee.runbook.fleet.binds import (
    BIND_KEYS,
    bind_availability,
    bind_mapping,
    bind_mismatches,
    bind_value_problems,
)
from softbee.urls import BadDatabaseURL, parse_url, url_passwords

TARGET_KEYS = ("name", "url_env", "conn_id", "url", "wave", "tags",
               "bind_url_env", "bind_conn_id", "bind_url")
FILE_KEYS = ("targets",)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TargetsError(ParameterError):
    """A targets file that cannot be used; ``problems`` lists each one (one line each)."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(problems[0] if len(problems) == 1 else f"{len(problems)} problems")
        self.problems = list(problems)


@dataclass(frozen=True)
class Target:
    """One database of the fleet: its name, where its URL comes from, its wave and tags."""

    name: str
    url_env: str | None = None
    conn_id: str | None = None
    url: str | None = None
    wave: int = 1
    tags: tuple[str, ...] = field(default=())
    bind_url_env: tuple[tuple[str, str], ...] = field(default=())  # (bind, variable), file order
    bind_conn_id: tuple[tuple[str, str], ...] = field(default=())  # (bind, Connection id)
    bind_url: tuple[tuple[str, str], ...] = field(default=())  # (bind, password-less URL)

    @property
    def binds(self) -> tuple[str, ...]:
        """The target's binds besides the default one, in file order (empty: one database)."""
        names: dict[str, None] = {}
        for pairs in (self.bind_url_env, self.bind_url, self.bind_conn_id):
            names.update((bind, None) for bind, _ in pairs)
        return tuple(names)

    def bind_source(self, bind: str) -> str:
        """Where one bind's URL comes from, as shown to people (never the URL itself)."""
        if bind in dict(self.bind_url_env):
            return f"${dict(self.bind_url_env)[bind]}"
        if bind in dict(self.bind_url):
            return "url in file"
        return f"connection {dict(self.bind_conn_id).get(bind)}"

    def resolve_bind_urls(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Each other bind's URL (bind name to URL) from its variable or the file; {} for none."""
        environ = os.environ if environ is None else environ
        problems = bind_availability(self.name, self.binds, dict(self.bind_url_env),
                                     dict(self.bind_url), dict(self.bind_conn_id), environ, "url")
        if problems:
            raise TargetsError(problems)
        found = dict(self.bind_url)
        for bind, variable in self.bind_url_env:
            found[bind] = environ[variable].strip()
        return {bind: found[bind] for bind in self.binds}

    @property
    def source(self) -> str:
        """Where the URL comes from, as shown to people (never the URL itself)."""
        if self.url_env:
            return f"${self.url_env}"
        if self.url:
            return "url in file"
        return f"connection {self.conn_id}"

    def resolve_url(self, environ: Mapping[str, str] | None = None) -> str:
        """The target's database URL, from its variable (or the file's password-less url)."""
        environ = os.environ if environ is None else environ
        if self.url_env:
            value = environ.get(self.url_env, "").strip()
            if not value:
                raise TargetsError([_missing_env(self)])
            return value
        if self.url:
            return self.url
        raise TargetsError(
            [f"target {self.name!r}: no url_env (conn_id {self.conn_id!r} is for Airflow runs): "
             "add url_env: VARIABLE for local runs"]
        )


@dataclass(frozen=True)
class Fleet:
    """The targets of one targets file, in file order."""

    path: Path
    targets: tuple[Target, ...]

    @property
    def waves(self) -> list[list[Target]]:
        """The targets grouped by wave, wave 1 first."""
        numbers = sorted({t.wave for t in self.targets})
        return [[t for t in self.targets if t.wave == n] for n in numbers]

    def target(self, name: str) -> Target:
        """The target called ``name``; an unknown name raises with the names that exist."""
        for target in self.targets:
            if target.name == name:
                return target
        known = ", ".join(t.name for t in self.targets[:10])
        raise TargetsError([f"no target {name!r} in {self.path}: known targets are {known}"])


def load_targets(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    need: str | None = "url",
) -> Fleet:
    """Read and check a targets file; ``need`` is ``"url"`` (local runs), ``"conn_id"`` or None.

    With ``need="url"`` every target must have a URL now: its variable set (``environ``,
    default the process environment), or a password-less ``url:``.
    """
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TargetsError([f"cannot read targets file {str(file)!r}: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise TargetsError(
            [f"targets file {str(file)!r} is not valid YAML{where}: fix the syntax"]
        ) from None
    targets, problems = parse_targets(data, file=str(file), environ=environ, need=need)
    if problems:
        raise TargetsError(problems)
    return Fleet(path=file, targets=tuple(targets))


def parse_targets(
    data: Any,
    *,
    file: str = "targets file",
    environ: Mapping[str, str] | None = None,
    need: str | None = "url",
) -> tuple[list[Target], list[str]]:
    """The targets in ``data`` (a parsed YAML document) and every problem found, one line each."""
    environ = os.environ if environ is None else environ
    if not isinstance(data, dict) or not isinstance(data.get("targets"), list):
        return [], [f"{file}: expected a mapping with a 'targets:' list "
                    "(targets: [{name: tenant-a, url_env: TENANT_A_URL, wave: 1}])"]
    problems = [
        f"{file}: unknown key {key!r} at the top: only 'targets' is read (remove it)"
        for key in data if key not in FILE_KEYS
    ]
    if not data["targets"]:
        problems.append(f"{file}: 'targets' is empty: list at least one database")
    targets: list[Target] = []
    seen: dict[str, int] = {}
    for number, entry in enumerate(data["targets"], start=1):
        target, found = _parse_one(entry, number, environ, need)
        problems.extend(found)
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str) and name in seen:
            problems.append(
                f"target {name!r}: duplicate name (entries {seen[name]} and {number}): "
                "give each target its own name"
            )
            continue
        if isinstance(name, str):
            seen[name] = number
        if target is not None:
            targets.append(target)
    problems.extend(_wave_gaps(targets))
    problems.extend(bind_mismatches([(t.name, t.binds) for t in targets]))
    return targets, problems


def _parse_one(
    entry: Any, number: int, environ: Mapping[str, str], need: str | None
) -> tuple[Target | None, list[str]]:
    if not isinstance(entry, dict):
        return None, [f"target #{number}: expected a mapping like "
                      "{name: tenant-a, url_env: TENANT_A_URL}, got "
                      f"{type(entry).__name__}"]
    name = entry.get("name")
    label = f"target {name!r}" if isinstance(name, str) and name else f"target #{number}"
    problems = [
        f"{label}: unknown key {key!r}: use one of {', '.join(TARGET_KEYS)} (remove or rename it)"
        for key in entry if key not in TARGET_KEYS
    ]
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"{label}: 'name' must be a non-empty string of letters, digits, "
                        "'.', '_' or '-'")
    for key in ("url_env", "conn_id", "url"):
        value = entry.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            problems.append(f"{label}: {key!r} must be a non-empty string")
    url_env, url = entry.get("url_env"), entry.get("url")
    if isinstance(url_env, str) and url_env and not _ENV_NAME.match(url_env):
        problems.append(
            f"{label}: url_env {url_env!r} is not a variable name: give the NAME of the "
            "variable holding the URL, not the URL"
            if "://" not in url_env else
            f"{label}: url_env holds a URL: put the URL in an environment variable and give "
            "its name (url_env: TENANT_A_URL)"
        )
    if isinstance(url, str) and url:
        problems.extend(_literal_url_problems(label, url))
        if url_env:
            problems.append(f"{label}: both url and url_env: keep one")
    if not (url_env or url or entry.get("conn_id")):
        problems.append(f"{label}: no url_env (nor conn_id for Airflow): add url_env: VARIABLE")
    wave = entry.get("wave", 1)
    if isinstance(wave, bool) or not isinstance(wave, int) or wave < 1:
        problems.append(f"{label}: 'wave' must be a whole number from 1, got {wave!r}")
    tags = entry.get("tags", [])
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        problems.append(f"{label}: 'tags' must be a list of strings, e.g. tags: [eu, paid]")
    binds = {key: bind_mapping(label, key, entry.get(key)) for key in BIND_KEYS}
    for found in binds.values():
        problems.extend(found[1])
    problems.extend(bind_value_problems(label, binds["bind_url_env"][0], binds["bind_url"][0]))
    if problems:
        return None, problems
    target = Target(
        name=name,
        url_env=url_env or None,
        conn_id=entry.get("conn_id") or None,
        url=url or None,
        wave=wave,
        tags=tuple(tags),
        bind_url_env=binds["bind_url_env"][0],
        bind_conn_id=binds["bind_conn_id"][0],
        bind_url=binds["bind_url"][0],
    )
    return target, (_availability_problems(target, environ, need) + bind_availability(
        target.name, target.binds, dict(target.bind_url_env), dict(target.bind_url),
        dict(target.bind_conn_id), environ, need))


def _literal_url_problems(label: str, url: str) -> list[str]:
    if url_passwords(url):
        return [f"{label}: 'url' holds a password: never write one in the targets file; "
                "put the URL in an environment variable and use url_env: VARIABLE"]
    try:
        parse_url(url)
    except BadDatabaseURL as exc:
        return [f"{label}: {exc}"]
    return []


def _availability_problems(target: Target, environ: Mapping[str, str], need: str | None) -> list[str]:
    if need == "conn_id" and not target.conn_id:
        return [f"target {target.name!r}: no conn_id: Airflow runs take the URL from a "
                "Connection (add conn_id: CONNECTION_ID)"]
    if need != "url" or target.url:
        return []
    if not target.url_env:
        return [f"target {target.name!r}: no url_env (conn_id {target.conn_id!r} is for "
                "Airflow runs): add url_env: VARIABLE for local runs"]
    value = environ.get(target.url_env, "").strip()
    if not value:
        return [_missing_env(target)]
    try:
        parse_url(value)
    except BadDatabaseURL:
        return [f"target {target.name!r}: ${target.url_env} is not a database URL: expected "
                "dialect://user:password@host:port/database or sqlite:///path/to/file.db"]
    return []


def _missing_env(target: Target) -> str:
    return (f"target {target.name!r}: environment variable {target.url_env} is not set: "
            f"export {target.url_env}=postgresql://... (or fix url_env)")


def _wave_gaps(targets: Sequence[Target]) -> list[str]:
    waves = sorted({t.wave for t in targets})
    missing = sorted(set(range(1, (waves[-1] if waves else 0) + 1)) - set(waves))
    if not missing:
        return []
    used = ", ".join(map(str, waves))
    gaps = ", ".join(map(str, missing))
    after = {n: [t.name for t in targets if t.wave > n][:1] for n in missing}
    first = next(iter(after.values()))[0]
    return [f"target {first!r}: wave gap: waves {used} are used but no target has wave {gaps}: "
            "number the waves 1, 2, 3... without gaps"]

