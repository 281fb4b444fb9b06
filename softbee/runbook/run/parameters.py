"""A run's parameter values checked against its runbook before anything runs.

Values come typed from a YAML file (``-f``) or as text from the command line (``-p``,
read as the parameter's kind); an unknown name, a missing required one or a value of the
wrong kind is refused with one line naming the parameter (:class:`ParameterError`). The
parameters themselves are read from the notebook by :mod:`~softbee.runbook.run.catalog`,
which re-exports these names.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from softbee.runbook.errors import ParameterError

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


@dataclass(frozen=True)
class Parameter:
    """One assignment of a runbook's ``parameters`` cell."""

    name: str
    type_name: str  # the annotation as written; "" when there is none
    default: str  # the default as Python source
    help: str = ""
    kind: str = "any"  # str, int, float, bool, list, dict or any
    nullable: bool = False  # ``Optional[...]`` / ``... | None``: "None" is a value

    @property
    def required(self) -> bool:
        """Whether a value must be given: default ``None`` and help starting "required"."""
        return self.default == "None" and self.help.lower().startswith("required")

    @property
    def shown_type(self) -> str:
        """The type as a person reads it (the annotation, else the inferred kind)."""
        return self.type_name or self.kind


class Runbook(Protocol):
    """What the checks read of a :class:`~softbee.runbook.run.catalog.Runbook` (which imports them)."""

    @property
    def name(self) -> str:
        """The runbook's name."""

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        """Its parameters, in the order of its cell."""

    def parameter(self, name: str) -> Parameter | None:
        """The parameter called ``name``, or None."""


def load_parameter_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping of parameter values (``-f params.yaml``)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParameterError(
            f"parameters file {str(file)!r} not found: check the -f path"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"parameters file {str(file)!r} cannot be read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ParameterError(
            f"parameters file {str(file)!r} is not valid YAML ({problem}{where}): fix it"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise ParameterError(
            f"parameters file {str(file)!r} must be a YAML mapping of name: value lines"
        )
    return data


def coerce_text(parameter: Parameter, text: str) -> Any:
    """Turn a ``-p NAME VALUE`` string into the parameter's declared type."""
    if parameter.nullable and text == "None":
        return None
    kind = parameter.kind
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            lowered = text.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(text)
        if kind in ("list", "dict"):
            value = yaml.safe_load(text)
            if not isinstance(value, list if kind == "list" else dict):
                raise ValueError(text)
            return value
    except (ValueError, yaml.YAMLError):
        raise ParameterError(_wrong_type(parameter, text)) from None
    return text


def check_value(parameter: Parameter, value: Any) -> Any:
    """Check a typed value (from YAML) against the parameter; return it, ints widened for floats."""
    if value is None:
        if parameter.nullable or parameter.default == "None":
            return None
        raise ParameterError(_wrong_type(parameter, value))
    kind = parameter.kind
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "list": isinstance(value, list),
        "dict": isinstance(value, dict),
        "any": True,
    }[kind]
    if not ok or not _json_like(value):
        hint = " (a quoted string in the YAML file: unquote it)" if isinstance(value, str) else ""
        raise ParameterError(_wrong_type(parameter, value) + hint)
    return float(value) if kind == "float" else value


def check_parameters(
    runbook: Runbook,
    values: Mapping[str, Any] | None = None,
    texts: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Validate typed ``values`` (YAML) and ``texts`` (``-p``, which win) before anything runs."""
    values = dict(values or {})
    texts = dict(texts or {})
    problems: list[str] = []
    refused: set[str] = set()
    result: dict[str, Any] = {}
    names = [p.name for p in runbook.parameters]
    for name in [*values, *(t for t in texts if t not in values)]:
        parameter = runbook.parameter(name)
        if parameter is None:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f", did you mean {close[0]!r}?" if close else ""
            takes = ", ".join(names) or "none"
            problems.append(
                f"unknown parameter {name!r} for runbook {runbook.name!r}{hint} "
                f"(its parameters: {takes})"
            )
            continue
        try:
            if name in texts:
                result[name] = coerce_text(parameter, texts[name])
            else:
                result[name] = check_value(parameter, values[name])
        except ParameterError as exc:
            problems.append(str(exc))
            refused.add(name)
    for parameter in runbook.parameters:
        if parameter.required and result.get(parameter.name) is None:
            if parameter.name in refused:
                continue
            what = parameter.help.partition(":")[2].strip() or parameter.help
            problems.append(
                f"runbook {runbook.name!r} needs parameter {parameter.name!r} ({what}): "
                f"pass -p {parameter.name} VALUE"
            )
    if problems:
        raise ParameterError("; ".join(problems))
    return result


def _wrong_type(parameter: Parameter, value: Any) -> str:
    expected = parameter.shown_type
    if parameter.kind == "bool":
        expected += " (true/false, yes/no or 1/0)"
    if isinstance(value, str):
        got = repr(value)
    else:
        got = f"{type(value).__name__} {value!r}"
    hint = ""
    if parameter.kind == "str" and not isinstance(value, str):
        hint = " (quote it in the YAML file)"
    elif parameter.kind == "any" and not _json_like(value):
        hint = " (use a string, number, true/false, list or mapping)"
    return f"parameter {parameter.name!r} expects {expected}, got {got}{hint}"


def _json_like(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, list):
        return all(_json_like(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_like(v) for k, v in value.items())
    return False
