"""fleet with binds: a target of a multi-database project names one URL per bind.

The targets file's ``bind_url_env`` / ``bind_conn_id`` / ``bind_url`` are checked like the rest
(one line per problem, before anything runs); ``fleet status`` reads each bind's
``alembic_version`` and a target is at head only when every bind is; ``fleet run`` hands each
target's bind URLs to its runbook as ``bind_urls``, a secret that shows nowhere (the toy runbook
``toy_binds`` prints the real URLs on purpose). The PostgreSQL tests make two databases per
target and drop them; the server trusts local connections, so the URLs carry a password that
is sent but never checked, and the test looks for it everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from softbee.runbook import cli
from softbee.runbook.errors import ParameterError
from softbee.runbook.fleet.airflow_dag import bind_connection_urls
from softbee.runbook.fleet.fleet_run import FAILED, PASSED, run_fleet
from softbee.runbook.fleet.status import AT_HEAD, BEHIND, UNREACHABLE, fleet_status
from softbee.runbook.fleet.targets import Target, TargetsError, load_targets
from tests.conftest import create_pg_database, drop_pg_database
from tests.helpers import EXAMPLES, FULL_NAME, HEAD, MIGRATIONS, REPO_ROOT, VARROA

PASSWORD = "s3cret-bind-pw"
FAIL = "fail00000000"
GOOD = """\
targets:
  - {name: tenant-a, url_env: TENANT_A_URL, bind_url_env: {audit: TENANT_A_AUDIT_URL},
     bind_conn_id: {audit: tenant_a_audit}, wave: 1}
  - {name: tenant-b, url_env: TENANT_B_URL, bind_url: {audit: "sqlite:///audit-b.db"}, wave: 2}
"""
ENV = {"TENANT_A_URL": f"postgresql://app:{PASSWORD}@db1/a",
       "TENANT_A_AUDIT_URL": f"postgresql://app:{PASSWORD}@db2/a_audit",
       "TENANT_B_URL": "sqlite:///b.db"}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "targets.yaml"
    path.write_text(text)
    return path


def _problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None,
              need: str | None = "url") -> list[str]:
    with pytest.raises(TargetsError) as caught:
        load_targets(_write(tmp_path, text), environ=ENV if environ is None else environ,
                     need=need)
    return caught.value.problems


# -- the targets file ------------------------------------------------------------------------


def test_a_target_names_each_bind_and_where_its_url_comes_from(tmp_path, monkeypatch, capsys):
    fleet = load_targets(_write(tmp_path, GOOD), environ=ENV)
    a, b = fleet.targets
    assert (a.binds, b.binds) == (("audit",), ("audit",))
    assert a.resolve_bind_urls(ENV) == {"audit": ENV["TENANT_A_AUDIT_URL"]}
    assert b.resolve_bind_urls(ENV) == {"audit": "sqlite:///audit-b.db"}
    assert (a.bind_source("audit"), b.bind_source("audit")) == ("$TENANT_A_AUDIT_URL",
                                                                 "url in file")
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["fleet", "targets", str(_write(tmp_path, GOOD))]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[-1] == "BINDS"
    assert "audit ($TENANT_A_AUDIT_URL, connection tenant_a_audit)" in out
    assert "audit (url in file)" in out
    assert PASSWORD not in out


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ("bind_url_env: AUDIT_URL", "'bind_url_env' must be a mapping of bind name to variable"),
        ("bind_url_env: {default: AUDIT_URL}", "bind_url_env names bind 'default': the default "
                                               "bind's database is the target's own"),
        ("bind_url_env: {audit: 'postgresql://h/audit'}", "bind 'audit' holds a URL: put the URL "
                                                          "in an environment variable"),
        ("bind_url_env: {'audit db': AUDIT_URL}", "names bind 'audit db': a bind name is"),
        ("bind_url_env: {audit: NOT_SET_ANYWHERE}", "bind 'audit': environment variable "
                                                    "NOT_SET_ANYWHERE is not set: export"),
        ("bind_url_env: {audit: TENANT_B_URL_BAD}", "bind 'audit': $TENANT_B_URL_BAD is not a "
                                                    "database URL"),
        ("bind_conn_id: {audit: a_audit}", "bind 'audit' has only a bind_conn_id (for Airflow "
                                           "runs): add bind_url_env: {audit: VARIABLE}"),
        ("{bind_url_env: {audit: TENANT_A_AUDIT_URL}, bind_url: {audit: 'sqlite:///x.db'}}",
         "bind 'audit' is in both bind_url and bind_url_env: keep one"),
    ],
)
def test_each_bind_problem_is_one_line_naming_the_target_and_the_fix(tmp_path, entry, needle):
    extra = entry[1:-1] if entry.startswith("{") else entry
    problems = _problems(tmp_path, f"targets:\n  - {{name: a, url_env: TENANT_A_URL, {extra}}}\n",
                         environ={**ENV, "TENANT_B_URL_BAD": "not a url"})
    assert len(problems) == 1 and needle in problems[0], problems
    assert problems[0].startswith("target 'a': ") and "\n" not in problems[0]


def test_a_literal_bind_url_with_a_password_is_refused_without_echoing_it(tmp_path):
    problems = _problems(tmp_path, "targets:\n  - {name: a, url_env: TENANT_A_URL, bind_url: "
                                   f"{{audit: 'postgresql://app:{PASSWORD}@db/audit'}}}}\n")
    assert problems == ["target 'a': bind_url: bind 'audit' holds a password: never write one in "
                        "the targets file; put the URL in an environment variable and use "
                        "bind_url_env: {audit: VARIABLE}"]


def test_every_target_names_the_same_binds(tmp_path):
    problems = _problems(tmp_path, "targets:\n"
                         "  - {name: a, url_env: TENANT_A_URL, bind_url_env: "
                         "{audit: TENANT_A_AUDIT_URL}}\n"
                         "  - {name: b, url_env: TENANT_B_URL}\n")
    assert problems == ["target 'b': names binds none but target 'a' names audit: give every "
                        "target the same binds (a bind left out would be migrated wherever the "
                        "app's own settings point)"]


def test_airflow_needs_a_connection_per_bind_and_no_variable(tmp_path):
    fleet = load_targets(_write(tmp_path, "targets:\n  - {name: a, conn_id: a_db, bind_conn_id: "
                                          "{audit: a_audit}}\n"), environ={}, need="conn_id")
    assert fleet.targets[0].bind_conn_id == (("audit", "a_audit"),)
    problems = _problems(tmp_path, "targets:\n  - {name: a, conn_id: a_db, bind_url_env: "
                                   "{audit: TENANT_A_AUDIT_URL}}\n", need="conn_id")
    assert problems == ["target 'a': bind 'audit' has no bind_conn_id: Airflow runs take each "
                        "bind's URL from a Connection (add bind_conn_id: {audit: CONNECTION_ID})"]


def test_cli_prints_every_bind_problem_on_its_own_line_and_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TENANT_A_URL", "sqlite:///a.db")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    path = _write(tmp_path, "targets:\n  - {name: a, url_env: TENANT_A_URL, bind_url_env: "
                            "{default: NOT_SET_ANYWHERE}, bind_url: "
                            f"{{stats: 'postgresql://u:{PASSWORD}@h/s'}}}}\n"
                            "  - {name: b, url_env: TENANT_A_URL, bind_url_env: "
                            "{stats: NOT_SET_ANYWHERE}}\n")
    assert cli.main(["fleet", "status", str(path), "--migrations-dir", str(MIGRATIONS)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert captured.out == "" and len(lines) == 3
    assert all(line.startswith(("softbee-runbook: error: target 'a': bind",
                                "softbee-runbook: error: target 'b': bind")) for line in lines)
    assert PASSWORD not in captured.err


def test_airflow_reads_each_bind_from_its_connection():
    class Conn:
        def __init__(self, conn_type: str, uri: str, host: str | None = None) -> None:
            self.conn_type, self.uri, self.host = conn_type, uri, host

        def get_uri(self) -> str:
            return self.uri

    conns = {"a_audit": Conn("postgres", "postgresql://u:p@h/audit"),
             "a_stats": Conn("sqlite", "sqlite://", "/srv/stats.db")}
    assert bind_connection_urls({"audit": "a_audit", "stats": "a_stats"}, conns.__getitem__) == {
        "audit": "postgresql://u:p@h/audit", "stats": "sqlite:////srv/stats.db"}
    assert bind_connection_urls({}, conns.__getitem__) == {}


# -- on PostgreSQL: two databases per target -------------------------------------------------


def _stamp(url: str, revision: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) "
                             "PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES (:r)"), {"r": revision})
    engine.dispose()


def _with_password(url: str) -> str:
    """The URL with a password the (trusting) server never checks: it must show nowhere."""
    return make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)


@pytest.fixture
def pg_databases() -> Iterator[Callable[[str], str]]:
    """Make PostgreSQL databases on demand (``make(revision)``), drop them all afterwards."""
    made: list[str] = []

    def make(revision: str) -> str:
        url = create_pg_database()
        made.append(url)
        _stamp(url, revision)
        return _with_password(url)

    yield make
    for url in made:
        drop_pg_database(url)


def _bind_fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                targets: dict[str, tuple[str, str]]) -> Path:
    """``name -> (default URL, audit URL)``, each in its own variable."""
    lines = ["targets:"]
    for number, (name, (url, audit)) in enumerate(targets.items()):
        monkeypatch.setenv(f"BINDS_T{number}_URL", url)
        monkeypatch.setenv(f"BINDS_T{number}_AUDIT_URL", audit)
        lines.append(f"  - {{name: {name}, url_env: BINDS_T{number}_URL, "
                     f"bind_url_env: {{audit: BINDS_T{number}_AUDIT_URL}}}}")
    path = tmp_path / "targets.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _everything(folder: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


@pytest.mark.postgres
def test_status_reads_each_bind_and_a_target_is_at_head_only_when_every_bind_is(
        tmp_path, monkeypatch, capsys, pg_databases):
    make = pg_databases
    a_default, a_audit = make(HEAD), make(HEAD)
    path = _bind_fleet(tmp_path, monkeypatch, {
        "tenant-a": (a_default, a_audit),
        "tenant-b": (make(HEAD), make(VARROA)),
        "tenant-c": (a_default, f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/audit"),
    })
    status = fleet_status(load_targets(path), MIGRATIONS, per_server=1, connect_timeout_s=3)
    a, b, c = status.targets
    assert a.state == AT_HEAD and a.revision == HEAD
    assert [(p.bind, p.state, p.revision) for p in a.binds] == [
        ("default", AT_HEAD, HEAD), ("audit", AT_HEAD, HEAD)]
    assert (b.label, b.revision) == ("behind by 1", f"default={HEAD} audit={VARROA}")
    assert [(p.bind, p.label) for p in b.binds] == [("default", "at head"),
                                                    ("audit", "behind by 1")]
    assert b.state == BEHIND and c.state == UNREACHABLE and c.detail.startswith("audit: ")
    assert not status.all_at_head and status.counts() == {
        AT_HEAD: 1, BEHIND: 1, UNREACHABLE: 1}
    data = status.to_json()
    assert [p["label"] for p in data["targets"][1]["binds"]] == ["at head", "behind by 1"]
    assert PASSWORD not in json.dumps(data)

    assert cli.main(["fleet", "status", str(path), "--migrations-dir", str(MIGRATIONS),
                     "--connect-timeout", "3"]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split() == ["COUNT", "STATE", "BIND", "REVISION", "TARGETS"]
    assert lines[1].split() == ["3", "at", "head", "default", HEAD, "tenant-a,", "tenant-b,",
                                "tenant-c"]
    assert lines[2].split() == ["1", "at", "head", "audit", HEAD, "tenant-a"]
    assert lines[3].split() == ["1", "behind", "by", "1", "audit", VARROA, "tenant-b"]
    assert lines[4].split()[:4] == ["1", "unreachable", "audit", "-"]
    assert "unreachable: tenant-c: audit: " in captured.out
    assert lines[-1] == (f"3 target(s), head {HEAD}: 1 at head, 1 behind, 1 unreachable")
    assert PASSWORD not in captured.out + captured.err

    only_a = _bind_fleet(tmp_path, monkeypatch, {"tenant-a": (a_default, a_audit)})
    assert cli.main(["fleet", "status", str(only_a), "--json",
                     "--migrations-dir", str(MIGRATIONS)]) == 0
    assert json.loads(capsys.readouterr().out)["all_at_head"] is True


# -- fleet run: each target's bind URLs reach its runbook as a secret -----------------------


@pytest.fixture
def toy_runbooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOFTBEE_RUNBOOKS_DIR", str(EXAMPLES / "fleet_runbooks"))


@pytest.mark.postgres
@pytest.mark.notebook
def test_fleet_run_hands_each_target_its_own_bind_urls_and_no_password_shows(
        tmp_path, monkeypatch, capfd, pg_databases, toy_runbooks):
    make = pg_databases
    path = _bind_fleet(tmp_path, monkeypatch, {
        "tenant-a": (make(HEAD), make(VARROA)),
        "tenant-b": (make(FULL_NAME), make(HEAD)),
        "tenant-c": (make(HEAD), make(FAIL)),
    })
    archive_dir = tmp_path / "archive"
    # one worker: tenant-b's kernel starts (with its own secrets) while tenant-a runs
    result = run_fleet("toy_binds", load_targets(path), parallel=1, max_failures=2,
                       archive_dir=archive_dir, cwd=REPO_ROOT)

    assert [(t.name, t.status) for t in result.targets] == [
        ("tenant-a", PASSED), ("tenant-b", PASSED), ("tenant-c", FAILED)]
    from softbee.runbook.archive import read_index

    runs = {r["run_id"]: r for r in read_index(archive_dir) if r.get("kind") != "fleet"}
    facts = {t.name: runs[t.run_id]["extra_facts"] for t in result.targets}
    assert facts["tenant-a"]["bind_revisions"] == {"default": HEAD, "audit": VARROA}
    assert facts["tenant-b"]["bind_revisions"] == {"default": FULL_NAME, "audit": HEAD}
    assert facts["tenant-a"]["masked_in_notebook"] is True  # the notebook held ***, not the URL
    failed = result.targets[2]
    assert "toy failure on bind audit at postgresql+psycopg2://postgres:***@" in (
        failed.error or "")
    fleet = read_index(archive_dir)[-1]
    assert [t["binds"] for t in fleet["targets"]] == [["audit"]] * 3
    captured = capfd.readouterr()
    assert PASSWORD not in _everything(archive_dir) + captured.out + captured.err
    assert PASSWORD not in json.dumps([t.__dict__ for t in result.targets])


@pytest.mark.postgres
@pytest.mark.notebook
def test_one_target_run_takes_its_bind_urls_on_stdin_not_on_the_command_line(
        tmp_path, monkeypatch, pg_databases, toy_runbooks):
    """The Airflow task's path: ``softbee-runbook run`` in a child, ``-f /dev/stdin``."""
    from softbee.runbook.fleet import target_run

    commands: list[list[str]] = []
    real = target_run._bounded_run
    monkeypatch.setattr(target_run, "_bounded_run",
                        lambda command, *rest: commands.append(command) or real(command, *rest))
    make = pg_databases
    url, audit = make(VARROA), make(HEAD)
    archive_dir = tmp_path / "archive"
    result = target_run.run_target("toy_binds", Target("tenant-a"), url, texts={}, values={},
                                   bind_urls={"audit": audit}, archive_dir=archive_dir,
                                   cwd=REPO_ROOT, timeout_s=120)
    assert result.status == PASSED, result.error
    assert result.binds == ("audit",)
    assert commands[0][-2:] == ["-f", "/dev/stdin"] and PASSWORD not in " ".join(commands[0])
    from softbee.runbook.archive import find_run

    assert find_run(archive_dir, result.run_id).record["extra_facts"]["bind_revisions"] == {
        "default": VARROA, "audit": HEAD}
    assert PASSWORD not in _everything(archive_dir)


def test_a_runbook_without_bind_urls_is_refused_before_anything_runs(
        tmp_path, monkeypatch, capsys, toy_runbooks):
    path = _bind_fleet(tmp_path, monkeypatch, {
        "tenant-a": ("sqlite:///a.db", f"postgresql://u:{PASSWORD}@h/audit")})
    archive_dir = tmp_path / "archive"
    with pytest.raises(ParameterError, match="takes no bind_urls: it would migrate their "
                                             "default database only"):
        run_fleet("toy_fleet", load_targets(path), archive_dir=archive_dir, cwd=REPO_ROOT)
    assert cli.main(["fleet", "run", "toy_binds", str(path), "-p", "bind_urls", "{a: b}",
                     "--archive-dir", str(archive_dir)]) == 2
    err = capsys.readouterr().err
    assert "bind_urls comes from each target's bind_url_env" in err and PASSWORD not in err
    assert not archive_dir.exists()


def test_a_drift_check_that_reads_one_database_says_each_bind_was_not_checked(
        tmp_path, monkeypatch):
    from softbee.runbook.fleet.drift import drifted_targets
    from tests.fleet.test_fleet import stamped_sqlite

    checked: list[str] = []

    def check(url: str):
        checked.append(url)
        raise AssertionError("a target with binds must not be drift-checked on one database")

    path = _bind_fleet(tmp_path, monkeypatch, {"tenant-a": (
        stamped_sqlite(tmp_path / "a.db", HEAD), stamped_sqlite(tmp_path / "a_audit.db", HEAD))})
    fleet = load_targets(path)
    status = fleet_status(fleet, MIGRATIONS, drift=check)
    target = status.targets[0]
    assert target.state == AT_HEAD and target.drifted is None
    assert target.drift == ("bind default: drift not checked: this drift check reads one "
                            "database and cannot check bind default; bind audit: drift not "
                            "checked: this drift check reads one database and cannot check "
                            "bind audit")
    assert not status.no_drift and "1 drift not checked" in status.summary()
    found = drifted_targets(fleet.targets, {"tenant-a": "sqlite:///a.db"}, check)
    assert found["tenant-a"].drifted is None
    assert checked == []


def test_a_bind_that_cannot_be_read_is_drift_not_checked_and_the_others_still_are(
        tmp_path, monkeypatch):
    from softbee.runbook.review.drift import Drift
    from tests.fleet.test_fleet import stamped_sqlite

    class Check:
        asked: list[str] = []

        def __call__(self, url: str) -> Drift:
            raise AssertionError("a target with binds is checked bind by bind")

        def check_bind(self, urls: dict[str, str], bind: str) -> Drift:
            self.asked.append(bind)
            return Drift(HEAD, ("table stray not in any revision",) if bind == "audit" else ())

    path = _bind_fleet(tmp_path, monkeypatch, {
        "tenant-a": (stamped_sqlite(tmp_path / "a.db", HEAD),
                     stamped_sqlite(tmp_path / "a_audit.db", HEAD)),
        "tenant-b": (stamped_sqlite(tmp_path / "b.db", HEAD), f"sqlite:///{tmp_path / 'gone.db'}")})
    check = Check()
    a, b = fleet_status(load_targets(path), MIGRATIONS, drift=check).targets
    assert a.drifted is True and [s.drifted for s in a.binds] == [False, True]
    assert a.drift.endswith("bind audit: drift from revision "
                            f"{HEAD} in 1 place(s): table stray not in any revision")
    assert b.state == UNREACHABLE and b.drifted is None  # its default bind was checked, clean
    assert b.drift == (f"bind default: no drift: the schema is what revision {HEAD} produces; "
                       "bind audit: drift not checked: the bind could not be read")
    assert sorted(check.asked) == ["audit", "default", "default"]


def test_the_fleet_runbooks_table_has_a_bind_column_for_targets_with_binds(tmp_path, monkeypatch):
    from softbee.runbook.fleet.report import status_frame
    from tests.fleet.test_fleet import stamped_sqlite

    path = _bind_fleet(tmp_path, monkeypatch, {
        "tenant-a": (stamped_sqlite(tmp_path / "a.db", HEAD),
                     stamped_sqlite(tmp_path / "a_audit.db", VARROA))})
    frame = status_frame(fleet_status(load_targets(path), MIGRATIONS))
    assert list(frame.columns) == ["targets", "state", "bind", "revision", "names"]
    assert frame.values.tolist() == [["1", "at head", "default", HEAD, "tenant-a"],
                                     ["1", "behind by 1", "audit", VARROA, "tenant-a"]]
