"""softbee-runbook: exit codes 0/1/2, one-line errors, and an archive free of secrets."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from softbee.runbook.archive import HEAD_NAME, INDEX_NAME, read_index
from softbee.runbook.cli import main
from softbee.runbook.run.report import error_line, print_summary
from tests.helpers import BEEYARD_APP, EXAMPLES, HUNG_AFTER_S, REPO_ROOT, assemble_oldest_stack

TOYS = EXAMPLES / "toy_runbooks"
SECRETS = ("s3cr3tpw", "abc123tok", "envpw456")


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m softbee.runbook ARGS`` in ``cwd`` against the toy runbooks."""
    return subprocess.run(
        [sys.executable, "-m", "softbee.runbook", *args],
        check=False,
        cwd=cwd,
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=HUNG_AFTER_S,
    )


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "SOFTBEE_RUNBOOKS_DIR": str(TOYS), **(extra or {})}
    for name in ("SOFTBEE_PROJECT_ROOT", "RUNBOOK_ARCHIVE_DIR"):  # unless the test sets them
        if name not in (extra or {}):
            env.pop(name, None)
    return env


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def _assert_one_line_error(returncode: int, stderr: str, code: int, *fragments: str) -> None:
    assert returncode == code, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("softbee-runbook: error: ")
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """Call ``main(argv)`` in this process (fast): returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("SOFTBEE_RUNBOOKS_DIR", str(TOYS))
    monkeypatch.delenv("SOFTBEE_PROJECT_ROOT", raising=False)
    monkeypatch.delenv("RUNBOOK_ARCHIVE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)

    def call(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One passing and one failing run, archived together (executed once for the module)."""
    project = tmp_path_factory.mktemp("project")
    archive = project / "shared-archive"
    commands = {
        "passed": ["run", "passing", "-p", "message", "hello", "-p", "dry_run", "yes"],
        "failed": ["run", "failing"],
    }
    procs = {
        key: subprocess.Popen(
            [sys.executable, "-m", "softbee.runbook", *args, "--archive-dir", str(archive)],
            cwd=project,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for key, args in commands.items()
    }
    done = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=HUNG_AFTER_S)
        done[key] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return {"project": project, "archive": archive, **done}


@pytest.fixture
def archive_copy(runs: dict[str, object], tmp_path: Path) -> Path:
    """A private copy of the module's archive, for tests that tamper with it."""
    copy = tmp_path / "archive-copy"
    shutil.copytree(runs["archive"], copy)
    return copy


# -- run: 0 and 1 -----------------------------------------------------------------------------


@pytest.mark.notebook
def test_a_passing_run_exits_0_and_prints_where_it_went_and_a_summary(runs):
    done = runs["passed"]

    assert done.returncode == 0, done.stderr
    assert "softbee-runbook" not in done.stderr  # (the kernel itself may log a shutdown race)
    out = done.stdout
    notebook = Path(out.splitlines()[0].removeprefix("archived: "))
    assert notebook.is_file() and notebook.is_relative_to(runs["archive"])
    assert "passing  passed in" in out
    assert "revision: aaa111 -> bbb222" in out
    assert "users  3       5      +2" in out
    assert "database: sqlite toy.sqlite3 (test)" in out


@pytest.mark.notebook
def test_a_run_that_fails_mid_notebook_exits_1_and_is_archived_with_its_error(runs):
    done = runs["failed"]

    assert done.returncode == 1
    assert "failing  failed in" in done.stdout
    assert "error:    RuntimeError: toy migration to head failed half way" in done.stdout
    assert "step 'Step 2: migrate to the target'" in done.stderr
    failed = [r for r in read_index(runs["archive"]) if r["runbook"] == "failing"]
    assert [(r["status"], r["error"]["type"]) for r in failed] == [("failed", "RuntimeError")]


# -- run: 2 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["run", "pasing", "-p", "message", "x"],
            ["no runbook 'pasing'", "did you mean 'passing'"],
        ),
        (
            ["run", "passing", "-p", "message", "x", "-p", "colour", "red"],
            ["unknown parameter 'colour'"],
        ),
        (["run", "passing"], ["needs parameter 'message'", "pass -p message VALUE"]),
        (
            ["run", "passing", "-p", "message", "x", "-p", "count", "lots"],
            ["'count' expects int, got 'lots'"],
        ),
        (
            ["run", "passing", "-p", "message", "x", "-p", "dry_run", "perhaps"],
            ["'dry_run' expects bool"],
        ),
        (["run", "passing", "-f", "missing.yaml"], ["parameters file 'missing.yaml' not found"]),
        (["run"], ["required: NAME"]),
        (["run", "passing", "-p", "message"], ["expected 2 arguments"]),
        (["frobnicate"], ["invalid choice: 'frobnicate'"]),
        (["archive", "list", "--since", "yesterday"], ["'yesterday' is not a date"]),
        (["archive", "show", "nosuchrun"], ["no run 'nosuchrun'"]),
    ],
    ids=[
        "unknown-runbook",
        "unknown-parameter",
        "missing-required",
        "wrong-int",
        "wrong-bool",
        "missing-file",
        "no-name",
        "half-a-p",
        "unknown-command",
        "bad-since",
        "unknown-run",
    ],
)
def test_bad_input_exits_2_with_one_line_and_archives_nothing(
    in_process, tmp_path, args, fragments
):
    code, _, err = in_process(*args)

    _assert_one_line_error(code, err, 2, *fragments)
    assert list(tmp_path.iterdir()) == []  # no archive/, nothing at all


def test_bad_input_through_the_real_entry_point_exits_2_with_one_line(tmp_path):
    archive = tmp_path / "archive"

    done = cli("run", "passing", "-p", "count", "many", "--archive-dir", str(archive), cwd=tmp_path)

    _assert_one_line_error(
        done.returncode, done.stderr, 2, "'count' expects int", "needs parameter 'message'"
    )
    assert not archive.exists()


def test_a_yaml_value_of_the_wrong_type_exits_2(in_process, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text('message: hi\ncount: "3"\n', encoding="utf-8")

    code, _, err = in_process("run", "passing", "-f", str(params))

    _assert_one_line_error(code, err, 2, "'count' expects int, got '3'")
    assert _files(tmp_path) == [params]


def test_an_archive_dir_that_is_a_file_exits_2_before_running(in_process, tmp_path):
    (tmp_path / "archive").write_text("not a folder", encoding="utf-8")

    code, _, err = in_process("run", "passing", "-p", "message", "x", "--archive-dir", "archive")

    _assert_one_line_error(code, err, 2, "is not a directory", "--archive-dir")


def test_help_exits_0(in_process):
    code, out, _ = in_process("run", "--help")

    assert code == 0 and "-p KEY VALUE" in out


# -- secrets ----------------------------------------------------------------------------------


@pytest.mark.notebook
def test_no_password_or_token_reaches_any_byte_of_the_archive(tmp_path):
    archive = tmp_path / "archive"

    done = cli(
        "run",
        "leaky",
        "-p",
        "database_url",
        "postgresql://u:s3cr3tpw@h/db",
        "-p",
        "api_token",
        "abc123tok",
        "--archive-dir",
        str(archive),
        cwd=tmp_path,
        env={"DATABASE_URL": "postgresql://app:envpw456@db.internal/softbee"},
    )

    assert done.returncode == 1, done.stderr  # leaky prints them, then raises with them
    files = _files(archive)
    assert {p.suffix for p in files} == {".ipynb", ".html", ".css", ".jsonl", ".head", ".json"}
    for path in files:
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret} in {path}"
    for secret in SECRETS:
        assert secret not in done.stdout and secret not in done.stderr
    record = read_index(archive)[0]
    assert record["parameters"] == {"database_url": "postgresql://u:***@h/db", "api_token": "***"}
    assert record["database"] == {
        "dialect": "postgresql",
        "host": "db.internal",
        "port": None,
        "database": "softbee",
    }
    assert "postgresql://u:***@h/db" in (archive / record["notebook"]).read_text(encoding="utf-8")


# -- concurrency ------------------------------------------------------------------------------


@pytest.mark.notebook
def test_two_runs_started_together_both_land_in_the_index_intact_and_chained(tmp_path):
    archive = tmp_path / "archive"
    params = tmp_path / "params.yaml"
    params.write_text("message: from a file\ncount: 10\nratio: 2\n", encoding="utf-8")
    commands = [
        ["run", "passing", "-p", "message", "first", "--archive-dir", str(archive)],
        ["run", "passing", "-f", str(params), "--archive-dir", str(archive)],
    ]

    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "softbee.runbook", *args],
            cwd=tmp_path,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    results = [p.communicate(timeout=HUNG_AFTER_S) for p in procs]

    assert [p.returncode for p in procs] == [0, 0], results
    records = read_index(archive)
    assert sorted(r["parameters"]["message"] for r in records) == ["first", "from a file"]
    assert next(r for r in records if r["parameters"]["message"] == "from a file")[
        "parameters"
    ] == {
        "message": "from a file",
        "count": 10,
        "ratio": 2.0,
    }
    verified = cli("archive", "verify", "--archive-dir", str(archive), cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout


# -- list -------------------------------------------------------------------------------------


def test_list_shows_each_runbook_with_its_purpose_and_parameters(tmp_path):
    done = cli("list", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "passing - Toy: record facts at each step and pass" in out
    assert "failing - Toy: fail in the middle of the run" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("    ")}
    assert lines["message"].split()[1:3] == ["str", "required"]
    assert "what this toy run says" in lines["message"]
    assert lines["count"].split()[1:4] == ["int", "=", "3"]
    assert lines["label"].split()[1:6] == ["str", "|", "None", "=", "None"]
    assert lines["target"].split()[1:4] == ["str", "=", '"head"']


#: What a run needs and the other commands must not pay for: seconds of imports between them.
HEAVY_MODULES = ("papermill", "nbconvert", "nbformat", "nbclient", "jupyter_client", "pandas",
                 "matplotlib", "flask", "jsonschema", "alembic")


def _imported_by(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> list[str]:
    """The heavy modules ``softbee-runbook ARGS`` imported, from a fresh interpreter."""
    probe = (
        "import sys, contextlib, io\n"
        "from softbee.runbook.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = main({args!r})\n"
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=cwd, env=_env(env),
                          capture_output=True, text=True, timeout=HUNG_AFTER_S, check=False)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"'))


@pytest.mark.parametrize("args", [["--help"], ["list"], ["archive", "list"]])
def test_help_list_and_archive_list_import_no_notebook_machinery(tmp_path, args):
    assert _imported_by(args, cwd=tmp_path) == []


def test_fleet_status_imports_no_notebook_machinery_nor_flask(tmp_path):
    from tests.fleet.test_fleet import stamped_sqlite

    env = {"T0_URL": stamped_sqlite(tmp_path / "t0.db", "abc")}
    (tmp_path / "targets.yaml").write_text("targets:\n  - {name: t0, url_env: T0_URL}\n")
    migrations = str(REPO_ROOT / "migrations")
    imported = _imported_by(["fleet", "status", "targets.yaml", "--migrations-dir", migrations],
                            cwd=tmp_path, env=env)
    assert imported == ["alembic"]  # the scripts' graph: Alembic's ScriptDirectory, nothing else


def test_main_can_be_called_in_process(monkeypatch, capsys):
    monkeypatch.setenv("SOFTBEE_RUNBOOKS_DIR", str(TOYS))

    assert main(["list"]) == 0
    assert "leaky - " in capsys.readouterr().out


# -- archive list / show / verify -------------------------------------------------------------


def test_archive_list_shows_a_table_of_runs_and_filters_them(runs, in_process):
    archive = str(runs["archive"])

    code, everything, _ = in_process("archive", "list", "--archive-dir", archive)
    _, failed, _ = in_process("archive", "list", "--status", "failed", "--archive-dir", archive)
    _, later, _ = in_process("archive", "list", "--since", "2999-01-01", "--archive-dir", archive)

    assert code == 0
    header, *rows = everything.splitlines()
    assert header.split()[:3] == ["RUN", "ID", "STARTED"]
    assert sorted(row.split()[3] for row in rows) == ["failing", "passing"]
    assert [row.split()[3:5] for row in failed.splitlines()[1:]] == [["failing", "failed"]]
    assert later.startswith("no archived runs match")


def test_archive_show_prints_the_record_and_the_paths(runs, in_process):
    record = next(r for r in read_index(runs["archive"]) if r["runbook"] == "passing")

    code, out, err = in_process(
        "archive", "show", record["run_id"][:6], "--archive-dir", str(runs["archive"])
    )

    assert code == 0, err
    fields = dict(line.split(":", 1) for line in out.splitlines())
    assert fields["status"].strip() == "passed"
    assert json.loads(fields["parameters"]) == {"message": "hello", "dry_run": True}
    assert Path(fields["notebook path"].strip()).is_file()
    assert Path(fields["html path"].strip()).is_file()


def test_archive_verify_exits_0_on_a_clean_archive(runs):
    done = cli("archive", "verify", "--archive-dir", str(runs["archive"]), cwd=runs["project"])

    assert done.returncode == 0, done.stdout
    assert done.stdout.startswith("archive OK: 2 run(s)")


def test_archive_verify_since_checks_newer_files_and_the_whole_chain(archive_copy, in_process):
    records = read_index(archive_copy)
    (archive_copy / records[0]["html"]).write_text("changed", encoding="utf-8")
    archive = str(archive_copy)

    code_all, out_all, _ = in_process("archive", "verify", "--archive-dir", archive)
    code_new, out_new, _ = in_process("archive", "verify", "--since", "2999-01-01", "--archive-dir", archive)
    code_bad, _, err_bad = in_process("archive", "verify", "--since", "soon", "--archive-dir", archive)

    assert code_all == 1 and records[0]["html"] in out_all
    assert code_new == 0, out_new  # no run started since: no file checked, the chain holds
    assert out_new.startswith("archive OK: the chain of 2 run(s) holds")
    assert code_bad == 2 and "'soon' is not a date" in err_bad


def test_archive_verify_exits_1_and_names_the_file_after_one_byte_of_it_changes(
    archive_copy, tmp_path
):
    record = read_index(archive_copy)[0]
    path = archive_copy / record["html"]
    data = bytearray(path.read_bytes())
    data[100] = ord("X") if data[100] != ord("X") else ord("Y")
    path.write_bytes(bytes(data))

    done = cli("archive", "verify", "--archive-dir", str(archive_copy), cwd=tmp_path)

    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{record['html']}: changed since it was archived (run {record['run_id']})"
    ]


def test_archive_verify_exits_1_after_a_record_is_deleted_from_the_index(archive_copy, in_process):
    index = archive_copy / INDEX_NAME
    first, second = index.read_text(encoding="utf-8").splitlines(keepends=True)
    index.write_text(second, encoding="utf-8")
    gone = json.loads(first)

    code, out, _ = in_process("archive", "verify", "--archive-dir", str(archive_copy))

    assert code == 1
    assert f"{gone['notebook']}: not in the index" in out
    assert "hash chain broken" in out


def test_archive_verify_exits_1_after_the_last_record_and_its_files_are_deleted(
    archive_copy, in_process
):
    index = archive_copy / INDEX_NAME
    first, second = index.read_text(encoding="utf-8").splitlines(keepends=True)
    index.write_text(first, encoding="utf-8")
    gone = json.loads(second)
    (archive_copy / gone["notebook"]).unlink()
    (archive_copy / gone["html"]).unlink()

    code, out, err = in_process("archive", "verify", "--archive-dir", str(archive_copy))

    assert code == 1
    assert out.splitlines() == [
        f"{HEAD_NAME}: the index ends after 1 run(s) but {HEAD_NAME} records 2: "
        "the last 1 record(s) were deleted"
    ]
    assert "1 problem(s)" in err


def test_without_archive_dir_the_archive_is_at_softbee_project_root(
    in_process, monkeypatch, tmp_path
):
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.setenv("SOFTBEE_PROJECT_ROOT", str(root))

    code, out, _ = in_process("archive", "list")

    assert code == 0
    assert out.strip() == f"no archived runs match in {root.resolve() / 'archive'}"


def test_archive_verify_of_a_missing_archive_exits_2(in_process, tmp_path):
    code, _, err = in_process("archive", "verify", "--archive-dir", str(tmp_path / "nowhere"))

    _assert_one_line_error(code, err, 2, "no archive at")


def test_archive_list_warns_about_unreadable_index_lines(archive_copy, in_process):
    index = archive_copy / "index.jsonl"
    index.write_bytes(index.read_bytes() + b"{not json\n")
    code, out, err = in_process("archive", "list", "--archive-dir", str(archive_copy))
    assert code == 0
    assert "unreadable" in err and "archive verify" in err


# -- issue 18: the summary says what was done, and never cuts the advice --------------------


ADVICE = ("Finish with recover_stamp (dry run first): undo it with `` softbee-runbook run "
          "recover_stamp -p app softbee:create_app -p migrations_dir migrations -p database_url "
          "'mysql://root@127.0.0.1:3306/app' -p fix_sql 'ALTER TABLE `hives` DROP COLUMN `w`' "
          "-p dry_run false ``")


def test_the_summary_names_the_round_trip_and_the_app_load_check_and_never_cuts_the_advice():
    message = f"revision r1 failed at 'UPDATE x': {'y' * 600};\n{ADVICE}"
    record = {
        "run_id": "r", "runbook": "upgrade_downgrade", "status": "failed", "duration_s": 1.0,
        "extra_facts": {"round_trip": "asked for; it did not finish (see the error)",
                        "app_load_check": "not checked: the database URL comes from the app's "
                                          "config (pass database_url or set DATABASE_URL to check)"},
        "error": {"type": "PartiallyApplied", "message": message, "cell": 9,
                  "execution_count": 5, "step": "## 3. Migrate"},
    }
    out = io.StringIO()
    print_summary(record, out)
    shown = out.getvalue()
    assert "round trip: asked for; it did not finish (see the error)" in shown
    assert "app load: not checked: the database URL comes from the app's config" in shown
    assert ADVICE in shown
    line = error_line("softbee-runbook", record, Path("run.html"))
    assert ADVICE in line and "\n" not in line


@pytest.mark.notebook
def test_a_round_trip_run_says_it_was_one_and_shows_the_app_load_check(tmp_path):
    """beeyard on its own SQLite file (the URL only its config knows): base -> head -> base -> head."""
    root = assemble_oldest_stack(tmp_path / "beeyard")
    done = subprocess.run(
        [sys.executable, "-m", "softbee.runbook", "run", "upgrade_downgrade", "-p", "app",
         BEEYARD_APP, "-p", "migrations_dir", "migrations", "-p", "round_trip", "true",
         "--archive-dir", str(tmp_path / "archive")],
        cwd=root, env=_env({"SOFTBEE_RUNBOOKS_DIR": str(REPO_ROOT / "runbooks")}),
        capture_output=True, text=True, timeout=HUNG_AFTER_S)
    assert done.returncode == 0, done.stderr
    assert ("round trip: passed: upgrade, downgrade, upgrade again over 4 revision(s); schema and "
            "row counts identical at each end (4 checks)") in done.stdout, done.stdout
    assert "app load: not checked: the database URL comes from the app's config" in done.stdout


def test_the_summary_names_a_revision_in_progress_and_each_finding_in_one_line():
    out = io.StringIO()
    print_summary({
        "run_id": "r1", "runbook": "inspect_diff", "status": "passed", "duration_s": 1.0,
        "outcome": "read-only: 1 finding(s) on the recorded state",
        "extra_facts": {
            "in_progress": ["revision 6f5b0d2a7c06: phase 2 of 3 (backfill users.full_name) "
                            "running, 119,929 / 200,000 rows"],
            "state_problems": ["records unknown revision deadbeef: it is not in migrations/:\n"
                               "run recover_stamp with purge=True"],
            "moved_outside": ["recorded 7a6c1e3b8d07 by run 3f2a on 2026-12-01; now at "
                              "8b7d2f4c9e08 with no run recorded"],
        },
    }, out)

    lines = out.getvalue().splitlines()
    assert ("in progress: revision 6f5b0d2a7c06: phase 2 of 3 (backfill users.full_name) running, "
            "119,929 / 200,000 rows") in lines
    assert ("finding: records unknown revision deadbeef: it is not in migrations/: "
            "run recover_stamp with purge=True") in lines
    assert ("changed outside the runbooks: recorded 7a6c1e3b8d07 by run 3f2a on 2026-12-01; "
            "now at 8b7d2f4c9e08 with no run recorded") in lines  # the page's first words, too
