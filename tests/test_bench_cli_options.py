"""benchmarks/cli_options.py: one line per option of every command, what a refactor of the CLI must keep."""

from __future__ import annotations

from vskip.cli import build_parser


def test_every_command_option_is_listed_with_its_default_and_choices(benchmark):
    lines = benchmark("cli_options").option_lines(build_parser())
    assert "compress | ['--ratios'] | '0.5,0.7,0.9' | None | None | False | _StoreAction" in lines
    assert "score | ['--visual-row'] | 'predictor' | ['own', 'predictor'] | None | False | _StoreAction" in lines
    # A recipe's option defaults to None, its value kept unless given (`cli._given_settings`).
    assert "distill | ['--auto', '--no-auto'] | None | None | 0 | False | BooleanOptionalAction" in lines
