"""`vskip`: a thin command line over the Python API; each command is one API call."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import warnings
from dataclasses import fields, replace
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .errors import BadInput, VSkipError, VSkipWarning, warn


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM: stop where we are; the stages resume from their journals."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.exit_code = 128 + signum


def _interrupt(signum, frame) -> None:
    raise Interrupted(signum)


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help, except where there is none to show (a flag, or no value)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default == argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _ratio(text: str) -> float:
    from .prompts import check_ratio

    try:
        return check_ratio(float(text))
    except (ValueError, BadInput) as err:
        message = str(err) if isinstance(err, BadInput) else f"{text!r} is not a number; pass a kept share such as 0.5"
        raise argparse.ArgumentTypeError(message) from None


def _budget(text: str) -> float | str:
    """An argparse type: γ, or "auto" (the student chooses its own budget)."""
    from .prompts import AUTO

    return AUTO if text.strip() == AUTO else _ratio(text)


def _ratio_list(text: str) -> tuple[float, ...]:
    return tuple(_ratio(part) for part in text.split(",") if part.strip())


def _budget_list(text: str) -> list[float | str]:
    return [_budget(part) for part in text.split(",") if part.strip()]


def _union_split(text: str) -> tuple[int, int]:
    """'2:1' -> (2, 1): the turns of the visual and the text ranking in the `vskip` union."""
    try:
        visual, text_turns = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not VISUAL:TEXT turns, such as 2:1") from None
    if min(visual, text_turns) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: each ranking takes one turn or more")
    return visual, text_turns


def _layer_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of layer indices") from None


def _at_least(minimum: int):
    """An argparse type: a whole number no smaller than `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least {minimum}")
        return value

    return parse


_positive, _count = _at_least(1), _at_least(0)


def _number_where(accept, what: str):
    """An argparse type: a number for which `accept` holds (never NaN)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not accept(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    return parse


_positive_number = _number_where(lambda value: 0 < value < math.inf, "a positive number")
_share = _number_where(lambda value: 0 <= value < 1, "a share in [0, 1)")
_share_or_all = _number_where(lambda value: 0 <= value <= 1, "a share in [0, 1]")


def _ratio_shares(text: str) -> tuple[tuple[float | str, float], ...]:
    """'0.5:0.4,1:0.1' -> ((0.5, 0.4), (1.0, 0.1)): the share of distillation's examples at each γ named."""
    pairs = []
    for part in filter(str.strip, text.split(",")):
        ratio, colon, share = part.partition(":")
        if not colon:
            raise argparse.ArgumentTypeError(f"{part!r} is not γ:share, such as 0.5:0.4")
        pairs.append((_budget(ratio), _share_or_all(share)))
    return tuple(pairs)


def _setting_options(parser: argparse.ArgumentParser, settings, *, unset: bool = False) -> None:
    """One option for each field of the settings object `settings` that names one (`settings.Option`), with its help
    and the object's value as its default; with `unset`, the option defaults to None (not given: the caller keeps
    the object's value, `_given_settings`) and its help says the value."""
    kinds = {"count": _count, "positive": _positive, "positive number": _positive_number, "share": _share,
             "ratios": _ratio_list, "shares": _ratio_shares, "layers": _layer_list}
    for item in fields(settings):
        spec = item.metadata.get("option")
        if spec is None:
            continue
        value = getattr(settings, item.name)
        # As the help formatter does for an option whose default is None: no value, no "(default: …)".
        help = f"{spec.help} (default: {value})" if unset and value not in (None, ()) else spec.help
        options = {"default": None if unset else value, "help": help}
        if spec.kind == "flag":
            options["action"] = argparse.BooleanOptionalAction
        elif spec.choices:
            options["choices"] = list(spec.choices)
        else:
            options["type"] = kinds[spec.kind]
        parser.add_argument(spec.flag, **options)


def _given(args, settings) -> dict:
    """Field name -> value, for each option of the settings object `settings` (`_setting_options`) that was given: an
    option left at None, or given an empty list, was not."""
    values = {item.name: getattr(args, item.metadata["option"].flag.lstrip("-").replace("-", "_"))
              for item in fields(settings) if "option" in item.metadata}
    return {name: value for name, value in values.items() if value is not None and value != ()}


def _given_settings(args, settings):
    """`settings` with the values of its options that were given in place (`_given`)."""
    return replace(settings, **_given(args, settings))


def _show_warning(show_other, message, category, *args, **kwargs) -> None:
    """A `VSkipWarning` in one line on stderr, from the main process only (a multi-process launch runs every
    command in each); any other warning as `show_other` shows it."""
    if not issubclass(category, VSkipWarning):
        return show_other(message, category, *args, **kwargs)
    from .distributed import is_main_process

    if is_main_process():
        print(f"vskip: warning: {message}", file=sys.stderr)


# What the parser adds to the options that is no setting of the command.
_PLUMBING = ("run", "command", "data_command", "tiny_command", "out", "claim")


def _check(args, *, directory: bool = False, claim: bool = True) -> None:
    """What can be checked before any work: that `--out` can be written and is none of the command's inputs, that
    `--model` is where it is said to be, and, with `claim`, that `--out` holds no other run's work (`_claim`)."""
    from .outputs import INPUTS, check_not_input
    from .stage import check_output

    check_output(args.out, directory=directory)
    inputs = {option: str(getattr(args, option)) for option in INPUTS if getattr(args, option, None) is not None}
    if inputs:
        from .models import resolve

        check_not_input(args.out, {option: resolve(path) for option, path in inputs.items()}, directory=directory)
    if getattr(args, "model", None) is not None:
        from .models import check_model_source

        check_model_source(args.model)
    if claim:
        _claim(args, args.out)


def _claim(args, out: str | Path, **resolved) -> None:
    """Record this command and its settings (with `resolved` in place of what the options left open) as what makes
    `out`, refused where another run's work is there (`outputs.claim`); `_run` puts the record back if the
    command is refused after this."""
    from .distributed import is_main_process
    from .outputs import claim, maker

    names = (args.command, getattr(args, "data_command", None), getattr(args, "tiny_command", None))
    options = {key: value for key, value in vars(args).items() if key not in _PLUMBING} | resolved
    args.claim = claim(out, maker(" ".join(filter(None, names)), options),
                       overwrite=getattr(args, "overwrite", False), write=is_main_process())


def _base_dir(args, path: str) -> Path:
    """Where image paths resolve from: --images, else the directory of the data file (and each record's image_root)."""
    return Path(args.images) if getattr(args, "images", None) else Path(path).parent


def _read(
    args,
    path: str,
    required: tuple[str, ...],
    *,
    needs_answer: bool = False,
    images: bool = True,
    unique: tuple[str, ...] = ("id",),
) -> list:
    """The dataset's good records (`inputs.read_dataset`); with --skip-bad the bad ones go to OUT.skipped.jsonl
    (line or id, reason), and a line on stderr says how many."""
    from .distributed import is_main_process
    from .inputs import read_dataset
    from .stage import side_path

    side = side_path(args.out, ".skipped.jsonl") if args.skip_bad else None
    records, skipped = read_dataset(
        path, required, images=getattr(args, "images", None) or None, check_images=images, needs_answer=needs_answer,
        unique=unique, allow_outside_paths=getattr(args, "allow_outside_paths", False), skipped_to=side,
    )
    if skipped and is_main_process():
        print(f"vskip: skipped {len(skipped)} bad record(s) of {path}; see {side}", file=sys.stderr)
    return records


def _dtype_arg(parser: argparse.ArgumentParser) -> None:
    from .precision import DTYPES

    parser.add_argument(
        "--dtype", choices=DTYPES, default="auto",
        help="precision of the weights: auto is bfloat16 on a GPU that supports it, else float32",
    )


def _load_options(args) -> dict:
    return {"dtype": args.dtype, "allow_pickle": args.allow_pickle, "trust_remote_code": args.trust_remote_code}


def cmd_synth(args) -> None:
    from .synth import build

    _check(args, directory=True)
    sizes = {"train": args.n_train, "val": args.n_val, "test": args.n_test}
    empty = [split for split, size in sizes.items() if size == 0]
    if empty:
        warn(f"{' and '.join(f'{split}.jsonl' for split in empty)} will hold no records "
              f"({', '.join(f'--n-{split} 0' for split in empty)})")
    paths = build(args.out, seed=args.seed, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
                  cot_style=args.cot_style)
    for split, path in paths.items():
        print(f"{split}: {path}")


def cmd_data_import(args) -> None:
    from .datasets import import_dataset

    # Its output is the split's file, known once the source is read: claimed then, before anything is written.
    _check(args, directory=True, claim=False)
    path = import_dataset(args.source, args.out, kind=args.kind, split=args.split, limit=args.limit, config=args.config,
                          before_write=lambda path: _claim(args, path, split=path.stem))
    print(f"wrote {path}")


def cmd_data_export(args) -> None:
    from .export import export_lmms_eval
    from .records import REQUIRED_FIELDS

    exporter = {"lmms-eval": export_lmms_eval}[args.format]
    _check(args, directory=True)
    records = _read(args, args.data, REQUIRED_FIELDS)
    written = exporter(records, _base_dir(args, args.data), args.out, ratios=args.ratios, name=args.name,
                       mode=args.mode, max_new_tokens=args.max_new_tokens)
    for path in written:
        print(f"wrote {path}")
    print(f"run: lmms-eval eval --model vskip_qwen2_vl --model_args pretrained=MODEL --include_path {args.out} --tasks "
          f"{','.join(path.stem for path in written)} (MODEL's pixel bounds: see docs/lmms-eval.md)")


def _installed_version() -> str:
    try:
        return version("vskip")
    except PackageNotFoundError:  # run from a source tree on PYTHONPATH, not installed
        return "(not installed)"


def cmd_tiny_train(args) -> None:
    from dataclasses import replace

    from .models.train_tiny import train_tiny
    from .settings import TINY_SIZES, TINY_TRAINING, TINY_VISION_TRAINING
    from .training import warn_if_short

    _check(args, directory=True)
    vision = replace(TINY_VISION_TRAINING, steps=args.vision_steps, seed=args.seed)
    training = replace(TINY_TRAINING, steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                       learning_rate=args.lr)
    if args.init is None:
        warn_if_short(f"--vision-steps {vision.steps}", vision)
    warn_if_short(f"--steps {training.steps}", training)
    saved = train_tiny(
        args.data, args.out, sizes=TINY_SIZES.with_language(args.text_layers, args.text_hidden), vision_training=vision,
        training=training, direct_share=args.direct_share, init=args.init,
    )
    print(f"saved {saved}")


def cmd_generate(args) -> None:
    from .generate import generate_model
    from .records import REQUIRED_FIELDS

    _check(args)
    records = _read(args, args.data, REQUIRED_FIELDS)
    results = generate_model(args.model, records, _base_dir(args, args.data), args.out, backend=args.backend,
                             mode=args.mode, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                             **_load_options(args))
    correct = sum(r["correct"] for r in results)
    print(f"wrote {len(results)} records to {args.out}; accuracy {correct / max(1, len(results)):.3f}")


def cmd_score(args) -> None:
    from .score import SCORE_FIELDS, score_model
    from .settings import VisualPath

    _check(args)
    records = _read(args, args.data, SCORE_FIELDS, needs_answer=True)
    results = score_model(
        args.model, records, _base_dir(args, args.data), args.out, visual=_given_settings(args, VisualPath()),
        blind=args.blind, llmlingua2_model=args.llmlingua2_model, batch_size=args.batch_size, **_load_options(args),
    )
    print(f"wrote scores of {len(results)} records to {args.out}")


def cmd_compress(args) -> None:
    from .compress import compress

    _check(args)
    records = _read(args, args.data, ("id", "image", "question", "cot", "words"), needs_answer=True, images=False)
    results = compress(records, _base_dir(args, args.data), args.out, args.methods.split(","), args.ratios,
                       seed=args.seed, turns={"vskip": args.union_split})
    print(f"wrote {len(results)} compressed chains of thought to {args.out}")


def cmd_distill(args) -> None:
    from .distill import DISTILL_FIELDS, distill, incorrect_items
    from .distributed import is_main_process
    from .training import warn_if_short

    _check(args, directory=True)
    settings = _distill_settings(args)
    if settings.training.steps is not None:  # else `distill` sets them from the data, and warns
        warn_if_short(f"--steps {settings.training.steps}", settings.training)
    records = _read(args, args.data, DISTILL_FIELDS, needs_answer=True, unique=("id", "method", "ratio"))
    wrong = incorrect_items(records, args.method)
    if wrong and not args.include_incorrect and is_main_process():
        print(f"vskip: left out {len(wrong)} item(s) whose CoT led to a wrong answer (--include-incorrect keeps them)",
              file=sys.stderr)
    out = distill(
        args.model, records, _base_dir(args, args.data), args.out, method=args.method, settings=settings,
        include_incorrect=args.include_incorrect, gradient_checkpointing=args.gradient_checkpointing,
        **_load_options(args),
    )
    print(f"saved {'model' if settings.lora is None else 'adapter'} to {out}")


def _distill_settings(args):
    """The recipe the options ask for: `DEFAULT_DISTILL` with what was given in its place."""
    from .settings import DEFAULT_DISTILL

    lora = _given_settings(args, DEFAULT_DISTILL.lora)
    given = _given(args, DEFAULT_DISTILL.lora)
    if args.full and given:
        flags = ", ".join(f"--{key.replace('_', '-')}" for key in given)
        raise BadInput(f"{flags} shape a LoRA adapter; --full trains every weight of the language model instead")
    if args.steps is not None and args.passes is not None:
        raise BadInput("--steps and --passes both set the training length: give one")
    training = replace(DEFAULT_DISTILL.training, steps=args.steps, learning_rate=args.lr,
                       batch_size=args.batch_size, seed=args.seed)
    return replace(_given_settings(args, DEFAULT_DISTILL), training=training, lora=None if args.full else lora,
                   rounds=_given_settings(args, DEFAULT_DISTILL.rounds))


def cmd_merge(args) -> None:
    from .merge import merge_student

    _check(args, directory=True)
    # Any model there is this very merge's, or --overwrite's: `_check` refused another's.
    out = merge_student(args.adapter, args.out, model=args.model, dtype=args.dtype, replace=True)
    print(f"saved merged model to {out}")


def cmd_evaluate(args) -> None:
    from .evaluate import evaluate_model, summary_line
    from .records import REQUIRED_FIELDS
    from .settings import EvalSettings

    _check(args)
    records = _read(args, args.data, REQUIRED_FIELDS)
    settings = EvalSettings(mode=args.mode, ratio=args.ratio, batch_size=args.batch_size,
                            latency_items=args.latency_items, max_new_tokens=args.max_new_tokens)
    results = evaluate_model(
        args.model, records, _base_dir(args, args.data), args.out, adapter=args.adapter, backend=args.backend,
        settings=settings, baseline=args.baseline, **_load_options(args),
    )
    print(f"{summary_line(results)}; wrote {args.out}")


def cmd_demo(args) -> None:
    from dataclasses import replace

    from .demo import ALL_METHODS, DEFAULT, QUICK, STEPS_FILE, run_demo
    from .outputs import check_workspace

    # Its own workspace: `demo.Steps` makes again what changed, but it does not move in among others' files.
    _check(args, directory=True, claim=False)
    check_workspace(args.out, STEPS_FILE, "demo", overwrite=getattr(args, "overwrite", False))
    config = replace(QUICK if args.quick else DEFAULT, model=args.model, dtype=args.dtype)
    if args.rounds is not None:
        config = replace(config, rounds=args.rounds, samples=args.samples or config.samples)
    if args.all_methods:
        config = replace(config, methods=ALL_METHODS)
    report = run_demo(args.out, config)
    print((report.parent / "results.md").read_text())
    print(f"report: {report}")


def _parents() -> dict[str, argparse.ArgumentParser]:
    """The options several commands share, each defined once."""
    from .prompts import MODES
    from .settings import BACKENDS, BATCH_SIZE, MAX_NEW_TOKENS

    names = ("common", "model", "batch", "reply", "backend", "records", "images")
    parents = {name: _Parser(add_help=False) for name in names}
    # SUPPRESS: given before the command, `--debug` (or `--overwrite`) is not reset by the command's own default.
    parents["common"].add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    parents["common"].add_argument(
        "--overwrite", action="store_true", default=argparse.SUPPRESS,
        help="replace an output that another command, or this one with other settings, made (never an input)",
    )
    model = parents["model"]
    model.add_argument("--model", default="vskip-tiny",
                       help="checkpoint directory, hub id (name or org/name), or vskip-tiny, the shipped model; "
                            "a name that starts with ., / or ~ or has two / is always a directory")
    _dtype_arg(model)
    model.add_argument("--allow-pickle", action="store_true", help="allow non-safetensors weights")
    model.add_argument("--trust-remote-code", action="store_true", help="run the checkpoint's own code")
    parents["batch"].add_argument("--batch-size", type=_positive, default=BATCH_SIZE, help="records per forward pass")
    reply = parents["reply"]
    reply.add_argument("--mode", choices=MODES, default="cot", help="think step by step, or answer directly")
    reply.add_argument("--max-new-tokens", type=_positive, default=MAX_NEW_TOKENS, help="longest reply")
    parents["backend"].add_argument("--backend", choices=BACKENDS, default="transformers",
                                    help="vllm needs `pip install 'vskip[vllm]'` and a GPU")
    parents["records"].add_argument("--skip-bad", action="store_true",
                                    help="set bad records aside in OUT.skipped.jsonl and go on with the rest")
    images = parents["images"]
    images.add_argument("--images", metavar="DIR",
                        help="directory every record's image paths are relative to (default: where the data file "
                             "says: each record's image_root seen from the file, else the file's directory)")
    images.add_argument("--allow-outside-paths", action="store_true",
                        help="let image paths leave the dataset's directory")
    return parents


def build_parser() -> argparse.ArgumentParser:
    # The stages' defaults, each defined once, in a module that does not load torch: help comes at once.
    from .gate import METHODS
    from .settings import (
        DEFAULT_DISTILL,
        DEFAULT_EVAL,
        SYNTH_TEST,
        SYNTH_TRAIN,
        SYNTH_VAL,
        TINY_DIRECT_SHARE,
        TINY_SIZES,
        TINY_TRAINING,
        TINY_VISION_TRAINING,
        UNION_SPLIT,
        VisualPath,
    )
    from .synth.style import COT_STYLES

    parser = _Parser(prog="vskip", description=__doc__, formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_installed_version()}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    shared = _parents()
    commands = parser.add_subparsers(dest="command", required=True)

    def command(group, name: str, help: str, *uses: str) -> argparse.ArgumentParser:
        parents = [shared["common"], *(shared[use] for use in uses)]
        return group.add_parser(name, help=help, description=help, parents=parents, formatter_class=_HelpFormatter)

    synth = command(commands, "synth", "write the vskip-synth benchmark: four families (count, relate, doc, pope), "
                                       "so each split has 4 × its count records")
    synth.add_argument("--out", required=True, help="directory for train.jsonl, val.jsonl, test.jsonl and images/")
    synth.add_argument("--seed", type=int, default=0, help="the benchmark is a function of the seed")
    synth.add_argument("--n-train", type=_count, default=SYNTH_TRAIN, help="training items per family")
    synth.add_argument("--n-val", type=_count, default=SYNTH_VAL, help="validation items per family")
    synth.add_argument("--n-test", type=_count, default=SYNTH_TEST, help="test items per family")
    synth.add_argument("--cot-style", choices=COT_STYLES, default="natural",
                       help="reference CoTs as real models write them, or the bare walk (the same items)")
    synth.set_defaults(run=cmd_synth)

    data = command(commands, "data", "datasets").add_subparsers(dest="data_command", required=True)
    imported = command(data, "import", "a Hugging Face dataset (hub id or local parquet/arrow) to vskip JSONL")
    imported.add_argument("source", help="hub id (lmms-lab/DocVQA, MMMU/MMMU, lmms-lab/POPE) or local directory")
    imported.add_argument("--out", required=True, help="directory for SPLIT.jsonl and images/")
    imported.add_argument("--kind", choices=["docvqa", "mmmu", "pope"], help="layout (default: found from the columns)")
    imported.add_argument("--split", help="split (default: validation, else test, else train, else the only one)")
    imported.add_argument("--config", help="hub dataset config (default: DocVQA's, or every MMMU subject)")
    imported.add_argument("--limit", type=_count, help="keep the first LIMIT rows (default: all)")
    imported.set_defaults(run=cmd_data_import)
    export = command(data, "export", "a vskip dataset as a local task of an evaluation harness (lmms-eval), with "
                                     "vskip's prompt, γ marker and scoring", "reply", "records", "images")
    export.add_argument("--data", required=True, help="JSONL dataset with answers (vskip-synth's test.jsonl, an "
                                                      "imported DocVQA or POPE file)")
    export.add_argument("--out", required=True, help="directory for the task: YAML per γ, utils.py, items, images")
    export.add_argument("--format", choices=["lmms-eval"], default="lmms-eval", help="the harness")
    export.add_argument("--ratios", type=_budget_list, default="1",
                        help="comma-separated γ (1: the full CoT, no marker; auto), one task each")
    export.add_argument("--name", default="vskip", help="task name prefix: NAME_full, NAME_r0_5, NAME_auto")
    export.set_defaults(run=cmd_data_export)

    tiny = command(commands, "tiny", "the embedded vskip-tiny model").add_subparsers(dest="tiny_command", required=True)
    train = command(tiny, "train", "train vskip-tiny on vskip-synth, from scratch or continuing one")
    train.add_argument("--data", required=True, help="directory written by `vskip synth`")
    train.add_argument("--out", required=True, help="directory for the model, saved like a hub checkpoint")
    # Every default is the shipped weights' recipe (vskip.settings.TINY_*).
    train.add_argument("--vision-steps", type=_positive, default=TINY_VISION_TRAINING.steps,
                       help="steps of the vision tower's stage")
    train.add_argument("--steps", type=_positive, default=TINY_TRAINING.steps, help="steps of the language stage")
    train.add_argument("--batch-size", type=_positive, default=TINY_TRAINING.batch_size,
                       help="sequences per language step")
    train.add_argument("--lr", type=_positive_number, default=TINY_TRAINING.learning_rate,
                       help="peak learning rate of the language stage")
    train.add_argument("--init", help="a trained vskip-tiny (a directory, or vskip-tiny: the shipped one) whose "
                       "language stage to continue (its tokenizer and tower kept, no vision stage; "
                       "--vision-steps, --text-layers and --text-hidden unused)")
    train.add_argument("--seed", type=int, default=TINY_TRAINING.seed,
                       help="seed of initialisation and sampling, in both stages")
    train.add_argument("--text-layers", type=_positive, default=TINY_SIZES.text_layers,
                       help="decoder layers of the language model")
    train.add_argument("--text-hidden", type=_positive, default=TINY_SIZES.text_hidden,
                       help="width of the language model (its MLP 3× as wide, as the shipped model's)")
    train.add_argument("--direct-share", type=_share, default=TINY_DIRECT_SHARE,
                       help="share of language-stage draws that answer directly, the rest think step by step")
    train.set_defaults(run=cmd_tiny_train)

    gen = command(commands, "generate", "teacher generation of chains of thought",
                  "model", "batch", "reply", "backend", "records", "images")
    gen.add_argument("--data", required=True, help="JSONL dataset")
    gen.add_argument("--out", required=True, help="JSONL of the records with cot, prediction and correct")
    gen.set_defaults(run=cmd_generate)

    score = command(commands, "score", "text and visual scores of every CoT token and word",
                    "model", "batch", "records", "images")
    score.add_argument("--data", required=True, help="JSONL with a `cot` per record (e.g. from generate)")
    score.add_argument("--out", required=True, help="JSONL of the records with their scores")
    _setting_options(score, VisualPath())
    score.add_argument("--blind", action="store_true", help="add a text-only pass: information gain")
    score.add_argument("--llmlingua2-model", metavar="CLASSIFIER",
                       help="also score each word's LLMLingua-2 keep probability (for `compress --methods llmlingua2`) "
                            "with this token classifier: a directory or hub id, such as the paper's baseline, "
                            "microsoft/llmlingua-2-xlm-roberta-large-meetingbank")
    score.set_defaults(run=cmd_score)

    compress = command(commands, "compress", "keep masks and compressed CoTs per method and ratio", "records")
    compress.add_argument("--data", required=True, help="JSONL written by `vskip score`")
    compress.add_argument("--methods", default="vskip,text,visual,random,truncate",
                          help=f"comma-separated: any of {', '.join(METHODS)}")
    compress.add_argument("--ratios", type=_ratio_list, default="0.5,0.7,0.9", help="comma-separated γ values")
    compress.add_argument("--seed", type=int, default=0, help="seed of the random method")
    compress.add_argument("--union-split", type=_union_split, default=":".join(map(str, UNION_SPLIT)),
                          metavar="VISUAL:TEXT",
                          help="turns of the visual and the text ranking in each cycle of the vskip union")
    compress.add_argument("--out", required=True, help="JSONL: one record per item, method and ratio")
    compress.set_defaults(run=cmd_compress)

    distill = command(commands, "distill", "train a student (a LoRA adapter, or the language model) that writes "
                                           "compressed CoTs", "model", "batch", "records", "images")
    distill.add_argument(
        "--gradient-checkpointing", action=argparse.BooleanOptionalAction,
        help="recompute activations in the backward pass (default: on for models of 1B parameters or more)",
    )
    distill.add_argument("--data", required=True, help="JSONL written by `vskip compress`")
    distill.add_argument("--method", default="vskip", help="whose compressed CoTs to learn")
    distill.add_argument("--out", required=True, help="directory for the adapter (PEFT format), or the model (--full)")
    schedule = DEFAULT_DISTILL.training
    distill.add_argument("--steps", type=_positive, help="training steps (default: as many as --passes makes them)")
    distill.add_argument("--lr", type=_positive_number, default=schedule.learning_rate, help="peak learning rate")
    distill.add_argument("--seed", type=int, default=schedule.seed, help="seed of initialisation and sampling")
    _setting_options(distill, DEFAULT_DISTILL.lora, unset=True)  # unset: --full refuses any that was given
    distill.add_argument("--full", action="store_true",
                         help="train every weight of the language model instead of a LoRA adapter (float32; vision "
                              "tower frozen) and save a model directory, for `evaluate --model`")
    _setting_options(distill, DEFAULT_DISTILL, unset=True)  # unset: --passes beside --steps is refused
    _setting_options(distill, DEFAULT_DISTILL.rounds)
    distill.add_argument("--include-incorrect", action="store_true",
                         help="learn from CoTs that led to a wrong answer too")
    distill.set_defaults(run=cmd_distill)

    merge = command(commands, "merge", "merge a LoRA student into its base and save the model, for stacks that "
                                       "load models, not adapters (vLLM without LoRA, lmms-eval)")
    merge.add_argument("adapter", help="a LoRA adapter written by `vskip distill`")
    merge.add_argument("--out", required=True,
                       help="new or empty directory for the model (safetensors, processor, vskip_adapter.json)")
    merge.add_argument("--model", help="the base model (default: the one the adapter's vskip_adapter.json names)")
    _dtype_arg(merge)
    merge.set_defaults(run=cmd_merge)

    evaluate = command(commands, "evaluate", "accuracy, CoT length, latency, VARR, hallucination",
                       "model", "batch", "reply", "backend", "records", "images")
    evaluate.add_argument("--adapter", help="a LoRA adapter written by `vskip distill` (a student distilled with "
                                            "--full is a model: pass its directory as --model)")
    evaluate.add_argument("--data", required=True, help="JSONL dataset with answers")
    evaluate.add_argument("--ratio", type=_budget,
                          help="γ asked of a distilled model, or 'auto' (it chooses its own budget; default: none, "
                               "the full CoT)")
    evaluate.add_argument("--baseline",
                          help="results JSON of the uncompressed run: ActRatio divides by its CoT lengths, and its "
                               "model (and adapter, found from where the JSON is) is loaded again and timed beside "
                               "this run for the speed-up")
    _setting_options(evaluate, DEFAULT_EVAL)
    evaluate.add_argument("--out", required=True, help="results JSON; per-item records go to OUT.items.jsonl")
    evaluate.set_defaults(run=cmd_evaluate)

    demo = command(commands, "demo", "the whole pipeline on the embedded default, with its report")
    demo.add_argument("--out", default="runs/demo", help="directory for every file of the run")
    demo.add_argument("--model", default="vskip-tiny", help="the teacher, and the base of every student")
    _dtype_arg(demo)
    demo.add_argument("--quick", action="store_true", help="a small run (what the tests use)")
    demo.add_argument("--rounds", type=_count, help="on-policy rounds per student (see `vskip distill --rounds`; "
                      "default: the demo's own)")
    demo.add_argument("--samples", type=_positive, help="candidates per item and γ in a round (with --rounds)")
    demo.add_argument("--all-methods", action="store_true",
                      help="distil and evaluate every method (truncate, random, text, visual, vskip, dependency, "
                           "vskip+dependency), not only text, vskip and vskip+dependency")
    demo.set_defaults(run=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    # First of all: an interruption while a command starts (its imports take seconds) is one line too.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run(build_parser().parse_args(argv))
    except KeyboardInterrupt as err:
        # On a line of its own: the interruption may land mid-way through a progress bar's line.
        print("\nvskip: interrupted; rerun the same command to resume", file=sys.stderr)
        return getattr(err, "exit_code", 128 + signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
        from .distributed import leave

        leave()


def _run(args) -> int:
    """The command; its errors in one line and exit code 2 (a traceback with --debug)."""
    try:
        with warnings.catch_warnings():
            # Deprecations inside transformers, peft or torch are for their callers' authors, not for users.
            for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
                warnings.simplefilter("ignore", category)
            warnings.simplefilter("always", VSkipWarning)
            warnings.showwarning = partial(_show_warning, warnings.showwarning)
            args.run(args)
    except VSkipError as err:
        if getattr(args, "claim", None) is not None:
            args.claim.undo()
        if args.debug:
            raise
        print(f"vskip: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
