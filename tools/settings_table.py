#!/usr/bin/env python
"""README's configuration reference, generated from modules/settings.py.

Every field of ``Settings`` (and of its tables ``[backend]``, ``[chat_alerts]``,
``[emulator]``) with its type, its default and its docstring, in the order and
under the section banners of the code. tests/test_docs.py fails when README's
table is stale or lists other fields than the code has.

    python tools/settings_table.py           # print the table
    python tools/settings_table.py --write   # rewrite it in README.md
"""
from __future__ import annotations

import inspect
import re
import sys
import types
import typing
from pathlib import Path

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modules.settings import (  # noqa: E402
    ChatAlertsSettings,
    EmulatorSettings,
    S3BackendSettings,
    Settings,
)

README = ROOT / "README.md"
START, END = "<!-- settings:start (tools/settings_table.py) -->", "<!-- settings:end -->"
# The TOML tables a settings file may have, in the order the table shows them.
TABLES: dict[str, type[BaseModel]] = {
    "backend": S3BackendSettings,
    "chat_alerts": ChatAlertsSettings,
    "emulator": EmulatorSettings,
}
_BANNER = re.compile(r"^\s*#\s*---\s*(.+?)\s*-{3,}\s*$")
_FIELD = re.compile(r"^    ([a-z_][a-z0-9_]*)\s*:")


def _sections(model: type[BaseModel]) -> dict[str, str]:
    """Field name -> the section banner above it in the class body ('' before the first)."""
    section, out = "", {}
    for line in inspect.getsource(model).splitlines():
        if m := _BANNER.match(line):
            section = m.group(1)
        elif (m := _FIELD.match(line)) and m.group(1) in model.model_fields:
            out[m.group(1)] = section
    return out


def _bounds(metadata: list) -> str:
    lo = next((m.ge for m in metadata if isinstance(m, annotated_types.Ge)), None)
    hi = next((m.le for m in metadata if isinstance(m, annotated_types.Le)), None)
    if lo is not None and hi is not None:
        return f" {lo} to {hi}"
    if lo is not None:
        return f" >= {lo}"
    return f" <= {hi}" if hi is not None else ""


def type_name(annotation: object, metadata: list | None = None) -> str:
    """A TOML-minded name of a field's type: integer 2 to 6, string, list of strings, ..."""
    metadata = list(metadata or [])
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        for e in extra:
            metadata += e.metadata if isinstance(e, FieldInfo) else [e]
        return type_name(base, metadata)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return type_name(args[0], metadata) if len(args) == 1 else " or ".join(type_name(a) for a in args)
    if origin is typing.Literal:
        values = [_toml(v) for v in typing.get_args(annotation)]
        return " or ".join(values) if len(values) == 2 else "one of " + ", ".join(values)
    if origin is list:
        return f"list of {type_name(typing.get_args(annotation)[0])}s"
    if origin is dict:
        return f"table of {type_name(typing.get_args(annotation)[1])}s"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table (below)"
    names = {bool: "boolean", int: "integer", str: "string", float: "number"}
    return names.get(annotation, str(annotation)) + _bounds(metadata)


def _toml(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return str(value)


def _cell(text: str) -> str:
    """Markdown table cell: one line, no pipes, no <...> that a renderer would take for HTML."""
    text = " ".join(text.split())
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def default_of(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    return _toml(field.get_default(call_default_factory=True))


def rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str, str]]:
    """(section, setting, type, default, meaning) of every field of a model, in code order."""
    sections = _sections(model)
    return [
        (sections.get(name, ""), f"{prefix}{name}", type_name(f.annotation, f.metadata), default_of(f),
         f.description or "")
        for name, f in model.model_fields.items()
    ]


def _table(model: type[BaseModel], prefix: str = "") -> list[str]:
    lines = ["| setting | type | default | meaning |", "|---|---|---|---|"]
    section = None
    for sec, name, typ, default, meaning in rows(model, prefix):
        if sec and sec != section:
            lines.append(f"| **{_cell(sec)}** | | | |")
        section = sec
        shown = default if default in ("unset", "required") else f"`{default}`"
        lines.append(f"| `{name}` | {_cell(typ)} | {shown} | {_cell(meaning)} |")
    return lines


def markdown() -> str:
    """The whole reference: the top-level settings, then each table's keys."""
    out = _table(Settings)
    for table, model in TABLES.items():
        doc = " ".join((model.__doc__ or "").split())
        out += ["", f"`[{table}]`: {_cell(doc)}", ""] + _table(model, f"{table}.")
    return "\n".join(out) + "\n"


def readme_with(table: str, readme: str) -> str:
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}{END}{tail}"


def readme_block(readme: str) -> str:
    """What README has between the markers now."""
    return readme.split(START, 1)[1].split(END, 1)[0].removeprefix("\n")


def main(argv: list[str]) -> int:
    table = markdown()
    if argv == ["--write"]:
        README.write_text(readme_with(table, README.read_text()))
        print("wrote the settings table in README.md")
    elif argv:
        print(__doc__, file=sys.stderr)
        return 2
    else:
        sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
