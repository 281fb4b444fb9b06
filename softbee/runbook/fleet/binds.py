"""The ``bind_*`` keys of a targets file: each other bind's database, checked like the rest.

A multi-database project (Flask-Migrate's ``--multidb`` template) keeps one ``alembic_version``
per bind, each in its own database. A target names the default bind's database as any target
does (``url_env``, ``conn_id``, ``url``) and each other bind's in mappings of bind name to
variable (``bind_url_env``), Airflow Connection (``bind_conn_id``) or password-less URL
(``bind_url``). Plain functions on plain values (:mod:`.targets` calls them), each returning
its problems, one line each naming the target and the fix; and the check a fleet run makes
before it hands each target's bind URLs to its runbook (the ``bind_urls`` parameter, a secret:
masked in the notebook, real in the kernel's environment, :mod:`softbee.runbook.util.secrets`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from softbee.urls import BadDatabaseURL, parse_url, url_passwords

BIND_KEYS = ("bind_url_env", "bind_conn_id", "bind_url")
#: The default engine's bind name, as the runbooks' ``binds`` parameter names it.
DEFAULT_BIND = "default"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EXAMPLE = {"bind_url_env": "{audit: TENANT_A_AUDIT_URL}",
            "bind_conn_id": "{audit: tenant_a_audit_db}",
            "bind_url": '{audit: "sqlite:///audit.db"}'}
_WHAT = {"bind_url_env": "variable", "bind_conn_id": "Connection id", "bind_url": "URL"}

Pairs = tuple[tuple[str, str], ...]


def bind_mapping(label: str, key: str, value: Any) -> tuple[Pairs, list[str]]:
    """``{bind: text}`` as (bind, text) pairs in file order, and the problems of its shape."""
    if value is None:
        return (), []
    example = _EXAMPLE[key]
    if not isinstance(value, dict) or not value:
        return (), [f"{label}: {key!r} must be a mapping of bind name to {_WHAT[key]}, "
                    f"e.g. {key}: {example}"]
    problems, pairs = [], []
    for bind, text in value.items():
        if not isinstance(bind, str) or not _IDENTIFIER.match(bind):
            problems.append(f"{label}: {key} names bind {bind!r}: a bind name is the app's bind "
                            "key (letters, digits and '_'), e.g. " + example)
        elif bind == DEFAULT_BIND:
            problems.append(f"{label}: {key} names bind 'default': the default bind's database is "
                            "the target's own (url_env, conn_id or url); list the other binds only")
        elif not isinstance(text, str) or not text.strip():
            problems.append(f"{label}: {key}: bind {bind!r} must be given a non-empty string")
        else:
            pairs.append((bind, text.strip()))
    return tuple(pairs), problems


def bind_value_problems(label: str, url_env: Pairs, urls: Pairs) -> list[str]:
    """A variable that is not a name, a literal URL with a password, a bind given twice."""
    problems = []
    for bind, variable in url_env:
        if not _IDENTIFIER.match(variable):
            problems.append(
                f"{label}: bind_url_env: bind {bind!r} holds a URL: put the URL in an environment "
                f"variable and give its name ({{{bind}: TENANT_{bind.upper()}_URL}})"
                if "://" in variable else
                f"{label}: bind_url_env: bind {bind!r}: {variable!r} is not a variable name: give "
                "the NAME of the variable holding the URL")
    for bind, url in urls:
        if url_passwords(url):
            problems.append(f"{label}: bind_url: bind {bind!r} holds a password: never write one "
                            "in the targets file; put the URL in an environment variable and use "
                            f"bind_url_env: {{{bind}: VARIABLE}}")
        else:
            try:
                parse_url(url)
            except BadDatabaseURL as exc:
                problems.append(f"{label}: bind_url: bind {bind!r}: {exc}")
    both = sorted(set(dict(url_env)) & set(dict(urls)))
    problems += [f"{label}: bind {bind!r} is in both bind_url and bind_url_env: keep one"
                 for bind in both]
    return problems


def bind_availability(
    name: str, binds: Sequence[str], url_env: Mapping[str, str], urls: Mapping[str, str],
    conn_ids: Mapping[str, str], environ: Mapping[str, str], need: str | None,
) -> list[str]:
    """Each bind of target ``name`` has a source for this kind of run, and a variable set to a URL.

    ``need`` is ``"url"`` (local runs: a set variable or a literal URL), ``"conn_id"``
    (Airflow: a Connection) or None (the file's shape only).
    """
    label = f"target {name!r}"
    if need == "conn_id":
        return [f"{label}: bind {bind!r} has no bind_conn_id: Airflow runs take each bind's URL "
                f"from a Connection (add bind_conn_id: {{{bind}: CONNECTION_ID}})"
                for bind in binds if bind not in conn_ids]
    if need != "url":
        return []
    problems = []
    for bind in binds:
        if bind not in url_env and bind not in urls:
            problems.append(f"{label}: bind {bind!r} has only a bind_conn_id (for Airflow runs): "
                            f"add bind_url_env: {{{bind}: VARIABLE}} for local runs")
            continue
        variable = url_env.get(bind)
        if variable is None:
            continue
        value = environ.get(variable, "").strip()
        if not value:
            problems.append(f"{label}: bind {bind!r}: environment variable {variable} is not set: "
                            f"export {variable}=postgresql://... (or fix bind_url_env)")
            continue
        try:
            parse_url(value)
        except BadDatabaseURL:
            problems.append(f"{label}: bind {bind!r}: ${variable} is not a database URL: "
                            "expected dialect://user:password@host:port/database or "
                            "sqlite:///path/to/file.db")
    return problems


def bind_mismatches(named: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """``(target, binds)`` pairs: a line for each target whose binds differ from the first's.

    Every target names the same binds: one left out would be migrated wherever the app's own
    settings point, on every target.
    """
    if not named or all(not binds for _, binds in named):
        return []
    first, wanted = named[0]
    shown = ", ".join(wanted) or "none"
    return [f"target {name!r}: names binds {', '.join(binds) or 'none'} but target "
            f"{first!r} names {shown}: give every target the same binds (a bind left out "
            "would be migrated wherever the app's own settings point)"
            for name, binds in named[1:] if set(binds) != set(wanted)]


def check_bind_parameter(runbook: Any, bind_urls: Mapping[str, Mapping[str, str]],
                         values: Mapping[str, Any], texts: Mapping[str, str]) -> None:
    """Before a fleet with binds runs: the runbook takes ``bind_urls`` and each target's passes.

    ``bind_urls`` is target name to that target's ``{bind: URL}`` (targets without binds left
    out); ``runbook`` a :class:`~softbee.runbook.run.catalog.Runbook`. Raises
    :class:`~softbee.runbook.errors.ParameterError`, its line redacted: it never shows a URL.
    """
    from softbee.runbook.errors import ParameterError
    from softbee.runbook.run.catalog import check_parameters
    from softbee.runbook.util.redact import Redactor

    if "bind_urls" in values or "bind_urls" in texts:
        raise ParameterError("bind_urls comes from each target's bind_url_env: do not pass it to "
                             "a fleet run")
    if not bind_urls:
        return
    if runbook.parameter("bind_urls") is None:
        names = ", ".join(list(bind_urls)[:3]) + (", ..." if len(bind_urls) > 3 else "")
        raise ParameterError(
            f"targets {names} have binds but runbook {runbook.name!r} takes no bind_urls: it "
            "would migrate their default database only; run a runbook that takes bind_urls "
            "(softbee-runbook list), or remove the bind_* keys")
    for urls in bind_urls.values():
        try:
            check_parameters(runbook, values={**values, "bind_urls": dict(urls)}, texts=texts)
        except ParameterError as exc:
            raise ParameterError(Redactor.for_run({"bind_urls": dict(urls)}).text(str(exc))
                                 ) from None
