"""`vskip`: a thin command line over the Python API; each command is one API call."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import VSkipError


def _ratio_list(text: str) -> list[float]:
    from .records import check_ratio

    try:
        return [check_ratio(float(part)) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of ratios") from None


def _model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="vskip-tiny", help="checkpoint directory, hub id, or vskip-tiny")
    parser.add_argument("--allow-pickle", action="store_true", help="allow non-safetensors weights")
    parser.add_argument("--trust-remote-code", action="store_true", help="run the checkpoint's own code")
    parser.add_argument("--batch-size", type=int, default=16)


def _load(args):
    from .models import load_model

    return load_model(args.model, allow_pickle=args.allow_pickle, trust_remote_code=args.trust_remote_code)


def cmd_synth(args) -> None:
    from .synth import build

    paths = build(args.out, seed=args.seed, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test)
    for split, path in paths.items():
        print(f"{split}: {path}")


def cmd_tiny_train(args) -> None:
    from dataclasses import replace

    from .models.train_tiny import DEFAULT_TRAINING, train_tiny

    training = replace(DEFAULT_TRAINING, steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    print(f"saved {train_tiny(args.data, args.out, training=training)}")


def cmd_generate(args) -> None:
    from .generate import generate
    from .records import read_records

    records = read_records(args.data)
    results = generate(
        _load(args), records, Path(args.data).parent, args.out, mode=args.mode, batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
    )
    correct = sum(r["correct"] for r in results)
    print(f"wrote {len(results)} records to {args.out}; accuracy {correct / max(1, len(results)):.3f}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vskip", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth", help="write the vskip-synth benchmark")
    synth.add_argument("--out", required=True)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--n-train", type=int, default=2000, help="records per family")
    synth.add_argument("--n-val", type=int, default=100, help="records per family")
    synth.add_argument("--n-test", type=int, default=300, help="records per family")
    synth.set_defaults(run=cmd_synth)

    tiny = commands.add_parser("tiny", help="the embedded vskip-tiny model").add_subparsers(
        dest="tiny_command", required=True
    )
    train = tiny.add_parser("train", help="train vskip-tiny from scratch on vskip-synth")
    train.add_argument("--data", required=True, help="directory written by `vskip synth`")
    train.add_argument("--out", required=True)
    train.add_argument("--steps", type=int, default=3000)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(run=cmd_tiny_train)

    gen = commands.add_parser("generate", help="teacher generation of chains of thought")
    _model_args(gen)
    gen.add_argument("--data", required=True, help="JSONL dataset")
    gen.add_argument("--out", required=True)
    gen.add_argument("--mode", choices=["cot", "direct"], default="cot")
    gen.add_argument("--max-new-tokens", type=int, default=160)
    gen.set_defaults(run=cmd_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except VSkipError as err:
        if args.debug:
            raise
        print(f"vskip: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vskip: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
