"""The docs stay in step with the code: README size and command table, the generated CLI reference,
every default visible in --help, and no broken relative link."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from newllm.cli import clidoc
from newllm.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
#: The README is a manual page, not a lab notebook (measured results live in reports/).
README_MAX_BYTES = 10_000
#: Pages linked before the branch that writes them is merged (written in parallel this wave).
def markdown_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
    files += sorted((ROOT / "reports").glob("*/*.md"))
    return [f for f in files if f.is_file()]


def test_readme_is_at_most_10_kb():
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_MAX_BYTES, (
        f"README.md is {size} bytes; move manual text to docs/, results to reports/"
    )


def test_readme_lists_every_subcommand():
    text = (ROOT / "README.md").read_text()
    table = re.findall(r"^\| `newllm ([a-z0-9-]+)` \|", text, flags=re.M)
    names = [prog.split()[1] for prog, _ in clidoc.commands(build_parser()) if prog.count(" ") == 1]
    assert sorted(table) == sorted(names), (
        "README's command table must list exactly the subcommands of the parser"
    )


def test_cli_reference_is_generated_from_the_parser():
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert committed == clidoc.render(), f"docs/cli.md is out of date: run `{clidoc.REGENERATE}`"


def default_renderings(value: object) -> set[str]:
    if isinstance(value, float):
        return {str(value), format(value, "g")}
    if isinstance(value, list | tuple):
        return {",".join(map(str, value))}
    return {str(value)}


def options_with_defaults() -> list[tuple[str, argparse.Action]]:
    return [
        (prog, a)
        for prog, parser in clidoc.commands(build_parser())
        for a in parser._actions
        if clidoc.documented(a) and a.default not in (None, False) and a.default is not argparse.SUPPRESS
    ]


def test_there_are_options_with_defaults_to_check():
    assert len(options_with_defaults()) >= 30


@pytest.mark.parametrize("prog,action", options_with_defaults(), ids=lambda x: getattr(x, "dest", x))
def test_help_shows_the_default(prog, action):
    text = clidoc.help_text(action, prog)
    shown = default_renderings(action.default)
    assert "default" in text and any(s in text for s in shown), (
        f"{prog} {clidoc.flag(action)}: the help {text!r} does not show the default {action.default!r} "
        "(write '(default %(default)s)')"
    )


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a markdown heading."""
    s = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return s.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    explicit = set(re.findall(r'<a id="([^"]+)"></a>', text))  # e.g. the rows of a reproduction report
    return {slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)} | explicit


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # code blocks hold no links
    out = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = path if not file_part else (path.parent / unquote(file_part)).resolve()
        if not dest.exists():
            out.append(f"{path.relative_to(root)}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            out.append(f"{path.relative_to(root)}: {target} (no heading #{anchor})")
    return out


def test_every_relative_link_points_at_an_existing_file():
    broken = [b for f in markdown_files() for b in broken_links(f)]
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_link_check_sees_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text('# A heading\n<a id="row-1"></a>\n')
    page.write_text(
        "[ok](there.md) [anchor](there.md#a-heading) [row](there.md#row-1) [web](https://x.org)\n"
        "[gone](missing.md) [bad](there.md#nope)\n```\n[in code](nowhere.md)\n```\n"
    )
    found = [b.split(": ", 1)[1] for b in broken_links(page, tmp_path)]
    assert found == ["missing.md (no such file)", "there.md#nope (no heading #nope)"]
