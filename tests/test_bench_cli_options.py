"""benchmarks/cli_options.py: one line per option of every command, what a refactor of the CLI must keep."""

from __future__ import annotations

from vskip.cli import build_parser


def test_every_command_option_is_listed_with_its_default_and_choices(benchmark):
    lines = benchmark("cli_options").option_lines(build_parser())
    assert "compress | ['--ratios'] | '0.5,0.7,0.9' | None | None | False | _StoreAction" in lines
    assert "score | ['--visual-row'] | 'predictor' | ['own', 'predictor'] | None | False | _StoreAction" in lines
    assert any(line.startswith("distill | ['--auto', '--no-auto'] | True") for line in lines)
