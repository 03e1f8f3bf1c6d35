"""The README and docs/ say what the code does: the command reference lists every option of every command's parser
(and none it lacks), the columns reference is results.csv's schema, the two commands at the top are the ones CI
runs, every relative link leads to a file, and the articles' page carries the figures the package ships."""
from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import pytest

from harness.commands.cli import build_parser
from harness.results.records import COLUMNS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    """The README's text under '## title', up to the next '## '."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, flags=re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def listed(parser: argparse.ArgumentParser) -> list[str]:
    """What a synopsis must show: every option string a user may type (hidden aliases aside) and the positionals."""
    names = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        names.extend(action.option_strings or [action.metavar or action.dest.upper()])
    return names


def synopsis() -> dict[str, str]:
    """The command reference's code block, cut into each command's lines (a 'convbench NAME' line and the indented
    lines after it)."""
    block = re.search(r"```\n(.*?)```", section("Command reference"), flags=re.S)
    assert block, "the command reference has no code block"
    parts: dict[str, str] = {}
    name = None
    for line in block.group(1).splitlines():
        if line.startswith("convbench "):
            name = line.split()[1]
            assert name not in parts, f"'convbench {name}' is listed twice"
            parts[name] = ""
        assert name, f"a line before the first command: {line!r}"
        parts[name] += line.split("#")[0] + "\n"   # comments may say anything
    return parts


def test_the_command_reference_lists_every_command():
    assert sorted(synopsis()) == sorted(commands())


@pytest.mark.parametrize("command", sorted(commands()))
def test_the_command_reference_lists_every_option_and_no_other(command):
    text = synopsis()[command]
    options = listed(commands()[command])
    missing = [o for o in options if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text)]
    assert not missing, f"convbench {command}: the README's command reference does not list {missing}"
    extra = sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text)) - set(options))
    assert not extra, f"convbench {command}: the README lists {extra}, which its parser does not have"


def test_the_columns_reference_is_the_schema():
    table = [line for line in section("Results columns").splitlines() if line.startswith("| `")]
    names = [n for line in table for n in re.findall(r"`([a-z0-9_]+)`", line.split("|")[1])]
    assert len(names) == len(set(names)), "a column is listed twice"
    assert set(names) == set(COLUMNS), (f"not in the README: {sorted(set(COLUMNS) - set(names))}; "
                                        f"not a column: {sorted(set(names) - set(COLUMNS))}")


def test_the_two_commands_come_first_and_are_what_ci_installs():
    blocks = re.findall(r"```bash\n(.*?)\n```", README, flags=re.S)
    main, tests = blocks[0], blocks[1]
    assert README.index(main) < README.index("## What you get")
    assert main.endswith("&& convbench run") and tests.endswith("&& python -m pytest -q")
    assert main.startswith("python3 -m venv .venv && ") and tests.startswith("python3 -m venv .venv && ")
    ci = (ROOT / ".ci" / "run").read_text()
    install = re.search(r"pip install (-e '\.\[[a-z,]+\]'.*?) && python -m pytest", tests).group(1)
    assert f"pip install --quiet {install}" in ci, "the README's test command installs what .ci/run does not"
    assert "pip install --quiet torch==2.13.0" in ci and "pip install torch==2.13.0" in tests


def test_the_readme_stays_a_user_guide():
    assert len(README.splitlines()) <= 300
    order = ["Two commands", "What you get", "Common tasks", "Installing", "Command reference",
             "What makes the numbers comparable", "Networks and datasets", "Results columns", "Plugins", "Development"]
    found = [re.search(rf"^## {re.escape(t)}$", README, flags=re.M) for t in order]
    assert all(found), [t for t, m in zip(order, found) if not m]
    assert [m.start() for m in found] == sorted(m.start() for m in found)


@pytest.mark.parametrize("page", ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))])
def test_relative_links_lead_to_files(page):
    path = ROOT / page
    broken = []
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
        if not re.match(r"[a-z]+:", target) and not (path.parent / target).exists():
            broken.append(target)
    assert not broken, f"{page} links to missing files: {broken}"


def test_the_articles_page_carries_the_shipped_figures():
    page = (ROOT / "docs" / "articles.md").read_text()
    with open(ROOT / "harness" / "results" / "reference" / "articles.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row["accuracy"]:
            percent = f"{float(row['accuracy']) * 100:.2f}".rstrip("0").rstrip(".")
            assert re.search(rf"{re.escape(percent)}\d* ?%", page), f"docs/articles.md lacks {row['network']}'s {percent} %"
        if row["time_s"]:
            hours, rest = divmod(int(float(row["time_s"])), 3600)
            assert f"{hours} h {rest // 60} min" in page, f"docs/articles.md lacks {row['network']}'s time"
