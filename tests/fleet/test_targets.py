"""targets: the fleet's targets file is refused, one line per problem, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from softbee.runbook import cli
from softbee.runbook.fleet.targets import TargetsError, load_targets

GOOD = """\
targets:
  - {name: tenant-a, url_env: TENANT_A_URL, wave: 1, tags: [eu]}
  - {name: tenant-b, url_env: TENANT_B_URL, wave: 2, conn_id: tenant_b_db}
  - {name: local-file, url: "sqlite:///tmp/x.sqlite3", wave: 2}
"""
ENV = {"TENANT_A_URL": "postgresql://app:pw@db1/a", "TENANT_B_URL": "sqlite:///b.sqlite3"}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "targets.yaml"
    path.write_text(text)
    return path


def _problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(TargetsError) as caught:
        load_targets(_write(tmp_path, text), environ=ENV if environ is None else environ)
    return caught.value.problems


def test_a_good_file_gives_targets_in_order_with_waves_and_tags(tmp_path):
    fleet = load_targets(_write(tmp_path, GOOD), environ=ENV)
    assert [t.name for t in fleet.targets] == ["tenant-a", "tenant-b", "local-file"]
    assert [[t.name for t in wave] for wave in fleet.waves] == [
        ["tenant-a"], ["tenant-b", "local-file"]]
    assert fleet.targets[0].tags == ("eu",)
    assert fleet.targets[1].conn_id == "tenant_b_db"
    assert fleet.targets[0].resolve_url(ENV) == ENV["TENANT_A_URL"]


def test_unknown_key_names_the_target_and_the_keys_allowed(tmp_path):
    problems = _problems(tmp_path, "targets:\n  - {name: a, url_env: TENANT_A_URL, wvae: 2}\n")
    assert problems == [
        "target 'a': unknown key 'wvae': use one of name, url_env, conn_id, url, wave, tags, "
        "bind_url_env, bind_conn_id, bind_url (remove or rename it)"]


def test_duplicate_name_is_refused(tmp_path):
    problems = _problems(tmp_path, "targets:\n  - {name: a, url_env: TENANT_A_URL}\n"
                                   "  - {name: a, url_env: TENANT_B_URL}\n")
    assert len(problems) == 1 and "target 'a': duplicate name (entries 1 and 2)" in problems[0]


def test_missing_environment_variable_says_what_to_export(tmp_path):
    problems = _problems(tmp_path, "targets:\n  - {name: a, url_env: NOT_SET_ANYWHERE}\n")
    assert problems == ["target 'a': environment variable NOT_SET_ANYWHERE is not set: "
                        "export NOT_SET_ANYWHERE=postgresql://... (or fix url_env)"]


def test_missing_variable_is_fine_when_only_the_file_is_checked_for_airflow(tmp_path):
    path = _write(tmp_path, "targets:\n  - {name: a, url_env: NOT_SET, conn_id: a_db}\n")
    assert load_targets(path, environ={}, need="conn_id").targets[0].conn_id == "a_db"
    with pytest.raises(TargetsError, match="no conn_id"):
        load_targets(_write(tmp_path, "targets:\n  - {name: a, url_env: X}\n"), need="conn_id")


def test_wave_gap_is_refused(tmp_path):
    problems = _problems(tmp_path, "targets:\n  - {name: a, url_env: TENANT_A_URL, wave: 1}\n"
                                   "  - {name: b, url_env: TENANT_B_URL, wave: 3}\n")
    assert problems == ["target 'b': wave gap: waves 1, 3 are used but no target has wave 2: "
                        "number the waves 1, 2, 3... without gaps"]


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ("{name: a, url_env: TENANT_A_URL, wave: first}", "'wave' must be a whole number from 1"),
        ("{name: a, url_env: TENANT_A_URL, wave: 0}", "'wave' must be a whole number from 1"),
        ("{name: a, url_env: TENANT_A_URL, tags: {eu: 1}}", "'tags' must be a list of strings"),
        ("{name: 7, url_env: TENANT_A_URL}", "'name' must be a non-empty string"),
        ("{name: a, url_env: [X]}", "'url_env' must be a non-empty string"),
        ("{name: a}", "no url_env (nor conn_id for Airflow)"),
        ("{name: a, url_env: 'postgresql://h/db'}", "url_env holds a URL"),
    ],
)
def test_bad_types_name_the_field_and_the_fix(tmp_path, entry, needle):
    problems = _problems(tmp_path, f"targets:\n  - {entry}\n")
    assert len(problems) == 1 and needle in problems[0], problems
    assert problems[0].startswith(("target 'a'", "target #1"))


def test_a_literal_url_with_a_password_is_refused_without_echoing_it(tmp_path):
    problems = _problems(tmp_path,
                         "targets:\n  - {name: a, url: 'postgresql://app:hunter22@db/a'}\n")
    assert problems == ["target 'a': 'url' holds a password: never write one in the targets "
                        "file; put the URL in an environment variable and use url_env: VARIABLE"]
    assert "hunter22" not in problems[0]


def test_not_a_mapping_and_unknown_top_level_keys(tmp_path):
    assert "expected a mapping with a 'targets:' list" in _problems(tmp_path, "- a\n- b\n")[0]
    problems = _problems(tmp_path, "targets:\n  - {name: a, url_env: TENANT_A_URL}\nwaves: 2\n")
    assert len(problems) == 1
    assert problems[0].endswith("targets.yaml: unknown key 'waves' at the top: only 'targets' "
                                "is read (remove it)")


def test_cli_lists_a_good_file(tmp_path, monkeypatch, capsys):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["fleet", "targets", str(_write(tmp_path, GOOD))]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split() == ["tenant-a", "1", "$TENANT_A_URL", "-", "eu"]
    assert "3 target(s) in 2 wave(s)" in out
    assert "pw@" not in out


def test_cli_prints_each_problem_on_one_line_and_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TENANT_A_URL", raising=False)
    path = _write(tmp_path, "targets:\n  - {name: a, url_env: TENANT_A_URL, color: red}\n"
                            "  - {name: a, url_env: TENANT_A_URL}\n")
    assert cli.main(["fleet", "targets", str(path)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert captured.out == ""
    assert all(line.startswith("softbee-runbook: error: target 'a': ") for line in lines)
    assert any("unknown key 'color'" in line for line in lines)
    assert any("duplicate name" in line for line in lines)
