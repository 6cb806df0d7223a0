"""The command-line reference (``docs/cli.md``), generated from :func:`newllm.cli.main.build_parser`.

``python -m newllm.cli.clidoc > docs/cli.md`` writes, for ``newllm`` and every subcommand (nested
ones too, e.g. ``newllm data info``), a one-line synopsis and a table of its options: flag with its
value form, default, and help text (``%(default)s`` expanded as ``--help`` does). Deprecated aliases
(hidden from ``--help``) are listed with the flag that replaces them. The synopsis is built here, not
by argparse, so the text does not depend on the terminal width or the Python version.
``tests/test_docs.py`` checks that the committed file equals this output.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence

from .common import _Deprecated
from .main import build_parser

REGENERATE = "python -m newllm.cli.clidoc > docs/cli.md"

#: Synopsis lines are wrapped at this width (continuation lines indented under the command).
WIDTH = 100


def commands(
    parser: argparse.ArgumentParser, prog: str = "newllm"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``(name, parser)`` for ``parser`` and every subcommand below it, depth first, in definition order."""
    yield prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, f"{prog} {name}")


def documented(action: argparse.Action) -> bool:
    """Shown in the reference: not ``-h``, not hidden, not a subcommand list, not a deprecated alias."""
    return not (
        isinstance(action, argparse._HelpAction | argparse._SubParsersAction | _Deprecated)
        or action.help == argparse.SUPPRESS
    )


def help_text(action: argparse.Action, prog: str = "newllm") -> str:
    """The action's help with ``%(default)s`` and friends expanded, as ``--help`` prints it."""
    if not action.help:
        return ""
    params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
    if params.get("choices") is not None:
        params["choices"] = ", ".join(map(str, params["choices"]))
    return " ".join((action.help % dict(params, prog=prog)).split())


def metavar(action: argparse.Action) -> str:
    """``{a,b}`` for choices, else the metavar (default: the dest in capitals); ``X [X ...]`` for ``+``."""
    if action.metavar is not None:
        mv = str(action.metavar)
    elif action.choices is not None:
        mv = "{" + ",".join(map(str, action.choices)) + "}"
    else:
        mv = action.dest.upper() if action.option_strings else action.dest
    if action.nargs == "+":
        return f"{mv} [{mv} ...]"
    if action.nargs == "*":
        return f"[{mv} ...]"
    if action.nargs == "?":
        return f"[{mv}]"
    return mv


def flag(action: argparse.Action) -> str:
    """``--name VALUE`` (the longest option string), ``--name`` for a switch, ``VALUE`` for a positional."""
    if not action.option_strings:
        return metavar(action)
    name = max(action.option_strings, key=len)
    return name if action.nargs == 0 else f"{name} {metavar(action)}"


def default_text(action: argparse.Action) -> str:
    """The default as the table shows it: empty for None, False and switches."""
    d = action.default
    if d is None or d is False or d is argparse.SUPPRESS or action.nargs == 0:
        return ""
    if isinstance(d, list | tuple):
        return ",".join(map(str, d))
    return str(d)


def synopsis(prog: str, parser: argparse.ArgumentParser) -> str:
    """One usage line (wrapped at :data:`WIDTH`): required items bare, optional ones in brackets,
    mutually exclusive groups as ``(a | b)`` when required, ``[a | b]`` otherwise."""
    items: list[str] = []
    grouped: dict[int, argparse._MutuallyExclusiveGroup] = {}
    for mx in parser._mutually_exclusive_groups:
        for a in mx._group_actions:
            grouped[id(a)] = mx
    done: set[int] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            items.append("{" + ",".join(action.choices) + "} ...")
            continue
        if not documented(action) or id(action) in done:
            continue
        group = grouped.get(id(action))
        if group is not None:
            members = [a for a in group._group_actions if documented(a)]
            done.update(id(a) for a in members)
            inner = " | ".join(flag(a) for a in members)
            items.append(f"({inner})" if group.required else f"[{inner}]")
        elif action.required or not action.option_strings:
            items.append(flag(action))
        else:
            items.append(f"[{flag(action)}]")
    return _wrap(prog, items)


def _wrap(prog: str, items: Sequence[str]) -> str:
    indent = " " * (len(prog) + 1)
    lines, line = [], prog
    for item in items:
        if len(line) + 1 + len(item) > WIDTH and line.strip():
            lines.append(line)
            line = indent + item
        else:
            line = f"{line} {item}"
    lines.append(line)
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _groups(parser: argparse.ArgumentParser) -> Iterator[tuple[str, list[argparse.Action]]]:
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if documented(a)]
        if actions:
            yield group.title or "options", actions


def section(prog: str, parser: argparse.ArgumentParser) -> list[str]:
    """The markdown of one command: heading, description, synopsis, option tables, deprecated aliases."""
    out = [f"## {prog}", ""]
    if parser.description:
        out += [parser.description, ""]
    out += ["```text", synopsis(prog, parser), "```", ""]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            out += ["| command | what it does |", "|---|---|"]
            helps = {a.dest: a.help for a in action._choices_actions}
            out += [f"| `{prog} {name}` | {_cell(helps.get(name) or '')} |" for name in action.choices]
            out.append("")
    for title, actions in _groups(parser):
        out += [f"**{title}**", "", "| option | default | meaning |", "|---|---|---|"]
        for a in actions:
            d = default_text(a)
            out.append(
                f"| `{_cell(flag(a))}` | {f'`{_cell(d)}`' if d else ''} | {_cell(help_text(a, prog))} |"
            )
        out.append("")
    old = [a for a in parser._actions if isinstance(a, _Deprecated)]
    if old:
        out += [
            "Deprecated aliases (accepted for one release with a warning; see [glossary](glossary.md)):",
            "",
        ]
        out += [f"- `{max(a.option_strings, key=len)}` → `{a.new}`" for a in old]
        out.append("")
    return out


def render(parser: argparse.ArgumentParser | None = None) -> str:
    """The whole of ``docs/cli.md``."""
    parser = build_parser() if parser is None else parser
    out = [
        "# Command-line reference",
        "",
        f"Generated from the parser by `{REGENERATE}`; do not edit by hand.",
        "`tests/test_docs.py` checks that this file equals the generated text: after changing a flag, run",
        "the command again.",
        "Every command exits 0 on success and 2 with one `error: ...` line on stderr for bad input.",
        "",
    ]
    for prog, sub in commands(parser):
        out += section(prog, sub)
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m newllm.cli.clidoc", description=f"print docs/cli.md ({REGENERATE})"
    ).parse_args(argv)
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
