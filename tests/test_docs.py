"""README and docs/ say what the code does.

- every ```toml example of README.md and docs/*.md loads as a settings file, as written, and
  synthesizes;
- README's configuration reference is the one tools/settings_table.py generates from
  modules/settings.py, and lists exactly the fields of Settings and of its tables;
- docs/resources.md names every address of the default and the second configuration;
- every relative link points at a file (and heading) that exists, and every `make <target>`
  the pages mention is a target of the Makefile.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest
from pydantic import BaseModel

from modules.settings import Settings, SettingsError, load_settings
from tests.support import ROOT, doc_toml_blocks, synth_json
from tools import settings_table

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = [
    pytest.param(page, i, block, id=f"{page.relative_to(ROOT)}[{i}]")
    for page in PAGES
    for i, block in enumerate(doc_toml_blocks(page))
]


def test_the_pages_have_toml_examples():
    """The extraction finds README's examples (a regex that matched nothing would pass every check)."""
    readme = [p for p in EXAMPLES if p.values[0].name == "README.md"]
    assert len(readme) >= 3, "README's settings, [backend] and [imports] examples"
    assert any("certificate_arn" in p.values[2] for p in readme)


@pytest.mark.parametrize("page,index,text", EXAMPLES)
def test_toml_example_loads_and_synthesizes_as_written(page: Path, index: int, text: str, tmp_path: Path):
    path = tmp_path / "example.toml"
    path.write_text(text)
    try:
        settings = load_settings(path)
        stack = synth_json(settings)
    except SettingsError as e:
        pytest.fail(f"{page.relative_to(ROOT)}, toml example {index} is refused as written:\n{text}\n{e}")
    assert stack["resource"], "the example synthesizes a stack"


def test_a_refused_example_would_fail(tmp_path: Path):
    """The placeholder style of the old README is refused, so the check above can fail."""
    path = tmp_path / "example.toml"
    path.write_text('certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/..."\n')
    with pytest.raises(SettingsError, match="certificate_arn"):
        load_settings(path)


# --- README's configuration reference ------------------------------------------------

def table_fields(block: str) -> list[str]:
    """The setting names of the reference's rows, in order (`name` or `table.name`)."""
    return re.findall(r"^\| `([a-z_][a-z0-9_.]*)` \|", block, re.M)


def code_fields() -> list[str]:
    names = list(Settings.model_fields)
    for table, model in settings_table.TABLES.items():
        names += [f"{table}.{n}" for n in model.model_fields]
    return names


def test_readme_settings_table_lists_exactly_the_fields_of_settings():
    listed = table_fields(settings_table.readme_block(settings_table.README.read_text()))
    assert listed == code_fields()
    nested = {name for name, f in Settings.model_fields.items()
              if any(isinstance(a, type) and issubclass(a, BaseModel) for a in (f.annotation, *get_args(f.annotation)))}
    assert nested == set(settings_table.TABLES), "every table of Settings has its rows in the reference"


def test_readme_settings_table_is_not_stale():
    assert settings_table.readme_block(settings_table.README.read_text()) == settings_table.markdown(), (
        "README's settings table differs from modules/settings.py: run `python tools/settings_table.py --write`")


def test_the_table_check_sees_a_missing_or_extra_row():
    block = settings_table.markdown()
    first = next(line for line in block.splitlines() if line.startswith("| `name` |"))
    assert table_fields(block.replace(first + "\n", "")) != code_fields()
    assert table_fields(block + "| `retired_setting` | string | unset | gone |\n") != code_fields()


def test_every_setting_has_a_default_and_a_description():
    for name, field in Settings.model_fields.items():
        assert not field.is_required(), name
        assert field.description and len(field.description) > 10, f"{name} has no docstring"


def test_settings_table_types_and_defaults():
    rows = {r[1]: r for r in settings_table.rows(Settings)}
    assert rows["az_count"][2:4] == ("integer 2 to 6", "2")
    assert rows["db_engine"][2:4] == ('"mysql" or "postgres"', '"mysql"')
    assert rows["alb_allowed_cidrs"][2:4] == ("list of strings", '["0.0.0.0/0"]')
    assert rows["certificate_arn"][3] == "unset"
    assert rows["az_count"][0] == "networking"


# --- docs/resources.md ----------------------------------------------------------------

def addresses(stack: dict) -> set[str]:
    found = set()
    for block, prefix in (("resource", ""), ("data", "data."), ("ephemeral", "ephemeral.")):
        for rtype, items in stack.get(block, {}).items():
            found |= {f"{prefix}{rtype}.{name}" for name in items}
    found |= {f"var.{name}" for name in stack.get("variable", {})}
    return found


def test_resources_page_names_every_address(default: dict, second: dict):
    page = (ROOT / "docs" / "resources.md").read_text()
    named = set(re.findall(r"`([a-z][a-z0-9_.]*)`", page))
    missing = sorted((addresses(default) | addresses(second)) - named)
    assert not missing, f"docs/resources.md does not name: {missing}"
    assert not [o for o in list(default["output"]) + list(second["output"]) if o not in named]


# --- links and make targets -----------------------------------------------------------

def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files_and_headings(page: Path):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"


def _make_commands(text: str) -> set[str]:
    """Targets of the `make <target>` commands in a page's code (spans and fenced blocks)."""
    code = re.findall(r"```[a-z]*\n(.*?)```", text, re.S) + re.findall(r"`([^`\n]+)`", text)
    return {t for c in code for t in re.findall(r"(?:^|`|&& |; )(?:[A-Z_]+=\S+ )*make ([a-z][a-z0-9-]*)", c, re.M)}


def test_readme_documents_every_make_target():
    documented = _make_commands((ROOT / "README.md").read_text())
    assert _make_targets() - {"setup", "runtime-deps"} <= documented, "README's commands name every target"


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, re.M))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_make_commands_are_makefile_targets(page: Path):
    unknown = sorted(_make_commands(page.read_text()) - _make_targets())
    assert not unknown, f"{page.relative_to(ROOT)} mentions make targets the Makefile lacks: {unknown}"
