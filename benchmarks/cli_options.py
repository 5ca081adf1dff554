"""Every option of every `vskip` command, one line each (command, flags, default, choices, nargs, whether
required, action), so that two versions of the CLI can be compared: `python benchmarks/cli_options.py > FILE`
before and after a refactor, then `diff` (the help's wording may change; these may not)."""

from __future__ import annotations

import argparse

from vskip.cli import build_parser


def option_lines(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[str]:
    lines = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                lines += option_lines(sub, (*path, name))
        else:
            choices = list(action.choices) if action.choices is not None else None
            lines.append(" | ".join(map(str, (" ".join(path) or "vskip", action.option_strings or action.dest,
                                              repr(action.default), choices, action.nargs, action.required,
                                              type(action).__name__))))
    return lines


if __name__ == "__main__":
    print("\n".join(option_lines(build_parser())))
