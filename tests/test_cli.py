"""The command line's conventions: shared options, defaults in every help, --version, --debug anywhere,
every option read by its command, and no dependency deprecations shown to users."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import vskip.settings
from vskip import cli
from vskip.errors import BadInput


def leaf_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, parser) of every command that runs something."""
    groups = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if not groups:
        yield path, parser
    for group in groups:
        for name, sub in group.choices.items():
            yield from leaf_parsers(sub, (*path, name))


COMMANDS = dict(leaf_parsers(cli.build_parser()))


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [action for action in parser._actions if not isinstance(action, argparse._HelpAction)]


def test_every_command_is_reached():
    assert {" ".join(path) for path in COMMANDS} == {
        "synth", "data import", "data export", "tiny train", "generate", "score", "compress", "distill", "merge",
        "evaluate", "demo",
    }  # fmt: skip


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_option_is_explained_with_its_default(path):
    parser = COMMANDS[path]
    text = "".join(parser.format_help().split())  # help wraps lines, at spaces and hyphens
    for action in options(parser):
        assert action.help, f"{action.dest} has no help"
        default = action.default
        if default is not None and default is not False and default != argparse.SUPPRESS:
            assert "".join(f"(default: {default})".split()) in text, action.dest


def _reads(function, seen: set[str] | None = None) -> set[str]:
    """The `args.X` a command function reads, itself or through the cli helpers it calls."""
    # `_given` and `_given_settings` read what their caller names (below), not options of their own.
    seen = {"_given", "_given_settings"} if seen is None else seen
    source = inspect.getsource(function)
    names = set(re.findall(r"args\.(\w+)", source)) | set(re.findall(r"getattr\(args, \"(\w+)\"", source))
    # A settings object's options are read by `_given_settings(args, OBJECT)` or `_given`: each field's option.
    for expression in re.findall(r"\b_given(?:_settings)?\(args, ([\w.]+(?:\(\))?)\)", source):
        settings = eval(expression, vars(vskip.settings))
        names |= {item.metadata["option"].flag.lstrip("-").replace("-", "_") for item in dataclasses.fields(settings)
                  if "option" in item.metadata}
    for helper in set(re.findall(r"\b(_\w+)\(", source)) - seen:
        seen.add(helper)
        if inspect.isfunction(getattr(cli, helper, None)):
            names |= _reads(getattr(cli, helper), seen)
    return names


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_no_option_does_nothing(path):
    parser = COMMANDS[path]
    read = _reads(parser.get_default("run"))
    unread = [action.dest for action in options(parser) if action.dest not in read and action.dest != "debug"]
    assert not unread


def test_the_stages_share_their_common_options():
    stages = [COMMANDS[(name,)] for name in ("generate", "score", "compress", "distill", "evaluate")]
    for dest in ("debug", "model", "dtype", "allow_pickle", "trust_remote_code", "batch_size", "skip_bad", "images",
                 "allow_outside_paths", "backend"):
        actions = [action for parser in stages for action in options(parser) if action.dest == dest]
        assert actions and all(action is actions[0] for action in actions), dest  # one definition, from a parent


def test_every_input_is_data():
    for path, parser in COMMANDS.items():
        inputs = [a.option_strings for a in options(parser)
                  if a.required and a.dest not in ("out", "source", "adapter")]
        assert inputs in ([], [["--data"]]), path


@pytest.mark.parametrize("argv", [["--version"], ["compress", "--help"], ["generate", "--data", "d.jsonl"]],
                         ids=["version", "help", "usage error"])
def test_the_cli_answers_at_once_without_loading_torch(argv):
    """Help, --version and usage errors come before any stage is imported: torch and transformers alone take
    seconds to load. `-X importtime` lists every module the command imported."""
    source = str(Path(cli.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "vskip.cli", *argv], capture_output=True,
                         text=True, env=env, timeout=120)
    assert run.returncode == (2 if argv[0] == "generate" else 0), run.stderr[-2000:]
    imported = {line.rpartition("|")[2].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert "vskip.errors" in imported and not imported & {"torch", "transformers", "peft", "datasets"}


def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["--version"])
    assert exit.value.code == 0 and re.fullmatch(r"vskip \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_before_or_after_the_command(tmp_path, where):
    command = ["generate", "--data", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "out.jsonl")]
    argv = ["--debug", *command] if where == "before" else [*command, "--debug"]
    with pytest.raises(BadInput, match="no such file"):
        cli.main(argv)


def test_dependency_deprecations_are_not_shown_to_users(tmp_path, monkeypatch, recwarn):
    def warn(args) -> None:
        warnings.warn("`old` is deprecated", FutureWarning, stacklevel=1)
        warnings.warn("`older` is deprecated", DeprecationWarning, stacklevel=1)
        warnings.warn("a real problem", UserWarning, stacklevel=1)

    monkeypatch.setattr(cli, "cmd_synth", warn)
    assert cli.main(["synth", "--out", str(tmp_path)]) == 0
    assert [str(w.message) for w in recwarn] == ["a real problem"]


def test_counts_below_their_minimum_are_usage_errors(capsys):
    for argv in (["synth", "--out", "x", "--n-test", "-1"], ["evaluate", "--data", "d", "--out", "o",
                                                              "--max-new-tokens", "0"]):
        with pytest.raises(SystemExit) as exit:
            cli.main(argv)
        assert exit.value.code == 2 and "is not a whole number of at least" in capsys.readouterr().err


def test_distill_options_default_to_the_recipe_and_override_it():
    from vskip.distill import DEFAULT_DISTILL
    from vskip.settings import LoraSettings

    parse = cli.build_parser().parse_args
    assert cli._distill_settings(parse(["distill", "--data", "d", "--out", "o"])) == DEFAULT_DISTILL
    lora = cli._distill_settings(parse(["distill", "--data", "d", "--out", "o", "--rank", "8", "--target-modules",
                                        "all-linear"])).lora
    assert lora == LoraSettings(rank=8, alpha=DEFAULT_DISTILL.lora.alpha, target_modules="all-linear")
    full = cli._distill_settings(parse(["distill", "--data", "d", "--out", "o", "--full", "--steps", "9", "--lr",
                                        "3e-4", "--batch-size", "4", "--ratios", "0.5,0.25",
                                        "--shares", "1:0.2,auto:0"]))
    assert full.lora is None and (full.training.steps, full.training.learning_rate, full.training.batch_size) == (
        9, 3e-4, 4)
    assert full.ratios == (0.5, 0.25) and full.shares == ((1.0, 0.2), ("auto", 0.0))
    assert full.training.warmup_steps == DEFAULT_DISTILL.training.warmup_steps
    # The length: passes over the data (the steps set by `distill`), or --steps outright.
    passes = cli._distill_settings(parse(["distill", "--data", "d", "--out", "o", "--passes", "2.5"]))
    assert (passes.passes, passes.training.steps, full.training.steps) == (2.5, None, 9)
    with pytest.raises(BadInput, match="--steps and --passes both set the training length: give one"):
        cli._distill_settings(parse(["distill", "--data", "d", "--out", "o", "--passes", "2", "--steps", "9"]))


@pytest.mark.parametrize("flags, methods", [
    ([], ("text", "vskip", "vskip+dependency")),
    (["--all-methods"], ("truncate", "random", "text", "visual", "vskip", "dependency", "vskip+dependency")),
])
def test_the_demo_runs_a_small_method_set_unless_asked_for_all(flags, methods, tmp_path, monkeypatch):
    import vskip.demo

    seen = []

    def run_demo(out, config):
        seen.append(config)
        Path(out).mkdir(parents=True)
        (Path(out) / "results.md").write_text("| results |")
        return Path(out) / "report.html"

    monkeypatch.setattr(vskip.demo, "run_demo", run_demo)
    assert cli.main(["demo", "--out", str(tmp_path / "demo"), *flags]) == 0
    assert seen[0].methods == methods and seen[0].ratios == (0.5, 0.7, 0.9)
