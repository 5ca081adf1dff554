"""Every knob of every stage and its default, as plain data: the settings objects and the constants that
the API's signatures and the CLI's options both read, each defined here once.

Every settings object is frozen and checks itself when made: a value out of range is a `BadInput` naming it,
whether it came from the CLI, the API or `dataclasses.replace`. (What depends on a model, such as which
layers see the image, is checked where the model is loaded.)

Nothing here imports torch or transformers: the CLI shows these defaults in its help at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from .errors import BadInput
from .prompts import MODES, Mode


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise BadInput(message)


@dataclass(frozen=True)
class Option:
    """How the CLI sets one field of a settings object (`cli` builds the option from it): its flag and help, and how
    its text reads: `kind`, a name the CLI maps to a parser ("count", "positive", "positive number", "share",
    "ratios", "shares", "layers", or "flag": --x / --no-x), or `choices`."""

    flag: str
    help: str
    kind: str | None = None
    choices: tuple[str, ...] | None = None


def option(flag: str, help: str, kind: str | None = None, choices: tuple[str, ...] | None = None) -> dict:
    """A settings field's metadata naming its CLI option (`Option`)."""
    return {"option": Option(flag, help, kind, choices)}


# Records per forward pass of every stage that runs a model over a file (generate, score, evaluate), and
# sequences per step of distillation: one `--batch-size` option serves them all.
BATCH_SIZE = 16
# The engines that generate (`generate.load_backend`): transformers, or vLLM (`pip install 'vskip[vllm]'`, GPU only).
BACKENDS = ("transformers", "vllm")
# The longest reply a model may write, in new tokens (generate, evaluate).
MAX_NEW_TOKENS = 160
# The items per family of each vskip-synth split (a split holds four families).
SYNTH_TRAIN, SYNTH_VAL, SYNTH_TEST = 2000, 100, 300
# Turns of the visual and the text ranking in each cycle of the `vskip` union (`vskip compress --union-split`):
# one each, the paper's union.
UNION_SPLIT = (1, 1)


@dataclass(frozen=True)
class TrainSettings:
    # None: the run sets them from its data (distillation: `DistillSettings.passes`).
    steps: int | None = 1000
    batch_size: int = 16
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    log_every: int = 50
    # 0: only at the end. Saving distill's default LoRA student on vskip-tiny (7.5 MB) takes about 40 ms, a step
    # 0.6 s or more on 2 cores: every 100 steps costs under 0.1 %, and a kill loses at most 100 steps.
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        _require(self.steps is None or self.steps >= 1, f"steps {self.steps} must be at least 1")
        _require(self.batch_size >= 1, f"batch size {self.batch_size} must be at least 1")
        _require(self.learning_rate > 0, f"learning rate {self.learning_rate} must be above 0")
        _require(self.warmup_steps >= 0, f"warm-up steps {self.warmup_steps} must be 0 or more")


# LoRA targets by the name `vskip distill --target-modules` gives them: the language model's attention
# projections, or all its linear layers (attention and MLP, as TokenSkip trains). `{lm}` and `{attention}`
# are a model family's own module names, so the vision tower (whose MLP may be called the same) never matches.
_PROJECTIONS = r"{attention}\.(q_proj|k_proj|v_proj|o_proj)"
LORA_TARGETS = {
    "attention": rf".*{{lm}}.*\.{_PROJECTIONS}",
    "all-linear": rf".*{{lm}}.*\.({_PROJECTIONS}|mlp\.(gate_proj|up_proj|down_proj))",
}


@dataclass(frozen=True)
class LoraSettings:
    rank: int = field(default=32, metadata=option("--rank", "LoRA rank", "positive"))
    alpha: int = field(default=64, metadata=option("--alpha", "LoRA alpha: the update is scaled by alpha / rank",
                                                   "positive"))
    dropout: float = 0.0
    # A name in LORA_TARGETS: "attention" or "all-linear".
    target_modules: str = field(default="all-linear", metadata=option(
        "--target-modules", "LoRA on the language model's attention projections (q, k, v, o), or on all its linear "
        "layers (attention and MLP); never on the vision tower", choices=tuple(LORA_TARGETS)))

    def __post_init__(self) -> None:
        _require(self.rank >= 1 and self.alpha >= 1, f"LoRA rank {self.rank} and alpha {self.alpha} must be at least 1")
        _require(self.target_modules in LORA_TARGETS,
                 f"target modules {self.target_modules!r}: valid are {', '.join(LORA_TARGETS)}")


# How a round chooses among a student's qualifying candidates, and what becomes of an item with none
# (`vskip.rounds`).
Selection = Literal["gate", "shortest"]
SELECTIONS: tuple[Selection, ...] = ("gate", "shortest")
Fallback = Literal["keep", "drop"]
FALLBACKS: tuple[Fallback, ...] = ("keep", "drop")


@dataclass(frozen=True)
class RoundSettings:
    """On-policy rounds after the first student (`vskip.rounds`): each round, the student writes `samples`
    candidates per item and γ (the first greedy, the rest sampled at `temperature`), the qualifying ones chosen
    by `selection` become the next student's targets, and items with none keep the gate's (`fallback`)."""

    count: int = field(default=0, metadata=option(
        "--rounds", "on-policy rounds after the first student: it writes its own compressions, the right ones within "
        "budget become the next student's targets", "count"))
    samples: int = field(default=1, metadata=option(
        "--samples", "candidates a round's student writes per item and γ: one greedy, the rest sampled", "positive"))
    temperature: float = field(default=1.0, metadata=option(
        "--temperature", "sampling temperature of the candidates after the first", "positive number"))
    selection: str = field(default="gate", metadata=option(
        "--selection", "among qualifying candidates: the one keeping most of the gate's words, or the shortest",
        choices=SELECTIONS))
    fallback: str = field(default="keep", metadata=option(
        "--fallback", "an item with no qualifying candidate keeps the gate's compression, or is dropped",
        choices=FALLBACKS))

    def __post_init__(self) -> None:
        _require(self.count >= 0, f"rounds {self.count} must be 0 or more")
        _require(self.samples >= 1, f"samples {self.samples} must be at least 1 (the greedy candidate)")
        _require(self.temperature > 0, f"temperature {self.temperature} must be above 0")
        _require(self.selection in SELECTIONS, f"selection {self.selection!r}: valid are {', '.join(SELECTIONS)}")
        _require(self.fallback in FALLBACKS, f"fallback {self.fallback!r}: valid are {', '.join(FALLBACKS)}")


def _pairs(shares: tuple[tuple[float | str, float], ...]) -> str:
    """(γ, share) pairs as `--shares` writes them: "0.5:0.4,1:0.1"."""
    return ",".join(f"{ratio if isinstance(ratio, str) else f'{ratio:g}'}:{share:g}" for ratio, share in shares)


@dataclass(frozen=True)
class DistillSettings:
    """The distillation recipe: every knob of `vskip distill` and its default, here and nowhere else.

    The defaults measured best on vskip-tiny's validation split (BENCHMARKS.md, `bench_distill.py`,
    docs/students.md): rank-16 LoRA on the attention projections alone learned that a marker is there
    but hardly which γ it names; on every linear layer the student writes close to the length asked;
    and about four passes over the examples wrote best at 400 and at 800 items per family (two passes
    underfit, eight overfit), so the steps follow the data unless `training.steps` is given.
    """

    training: TrainSettings = field(
        default_factory=lambda: TrainSettings(steps=None, batch_size=BATCH_SIZE, learning_rate=1e-3, warmup_steps=30)
    )
    passes: float = field(default=4.0, metadata=option(
        "--passes", "training length in passes over the examples: ⌈passes × examples ÷ (batch size × processes)⌉ "
        "steps (or give --steps)", "positive number"))
    # None: train every weight of the language model instead (float32; vision tower frozen).
    lora: LoraSettings | None = LoraSettings()
    # The γ values to learn, each present in the compressed file (None: all it has). γ = 1 is always there.
    ratios: tuple[float, ...] | None = field(default=None, metadata=option(
        "--ratios", "comma-separated γ values to learn, each in --data (default: every γ it has); γ = 1, the "
        "uncompressed CoT, is always learned", "ratios"))
    # (γ, share) pairs: the share of examples drawn at each γ named (1: the uncompressed CoT; `prompts.AUTO`), the γ
    # not named splitting the rest equally (`distill.ratio_shares`); none: every γ alike, as TokenSkip draws them.
    shares: tuple[tuple[float | str, float], ...] = field(default=(), metadata=option(
        "--shares", "comma-separated γ:share pairs, e.g. 0.5:0.4,1:0.1 (γ 1 is the uncompressed CoT; auto the auto "
        "marker); the γ not named share the rest equally (default: every γ alike)", "shares"))
    # The share of the training steps over which the γ come in one at a time, from 1 down, before every γ is drawn
    # (`distill.shares_at`); 0: every γ from the first step.
    curriculum: float = field(default=0.0, metadata=option(
        "--curriculum", "share of the steps over which the γ come in one at a time from 1 down (the smallest last) "
        "before every γ is drawn; 0: every γ from the start", "share"))
    # Batches drawn together and split by length (`distill.pair_sampler`); 1: each batch drawn at random.
    length_groups: int = field(default=1, metadata=option(
        "--length-groups", "draw this many batches together, sort them by length and train on one of them, so a "
        "batch holds examples of like length and less padding; 1: every batch drawn at random", "positive"))
    # Also teach the `auto` marker (as one more γ): each item's smallest γ whose compression the base model
    # still answers right when handed it, or its whole CoT where none does.
    auto: bool = field(default=True, metadata=option(
        "--auto", "also teach the auto marker: per item, the smallest γ whose compression the base still answers "
        "right from when handed it (one forced answer per item and γ first)", "flag"))
    rounds: RoundSettings = RoundSettings()

    def __post_init__(self) -> None:
        named, shares = [ratio for ratio, _ in self.shares], [share for _, share in self.shares]
        _require(len(set(named)) == len(named), f"shares {_pairs(self.shares)} name a γ twice")
        _require(all(0 <= share <= 1 for share in shares) and sum(shares) <= 1 + 1e-9,
                 f"shares {_pairs(self.shares)}: each must lie in [0, 1], and together they must not pass 1")
        _require(0 <= self.curriculum < 1, f"curriculum {self.curriculum} must be at least 0 and below 1")
        _require(self.length_groups >= 1, f"length_groups {self.length_groups} must be at least 1")


DEFAULT_DISTILL = DistillSettings()


@dataclass(frozen=True)
class EvalSettings:
    mode: Mode = "cot"
    ratio: float | str | None = None  # γ, "auto" (`prompts.AUTO`), or None: the full CoT
    batch_size: int = BATCH_SIZE
    latency_items: int = field(default=48, metadata=option(
        "--latency-items", "items timed at batch 1 (with the baseline's model beside, alternating); 0: none", "count"))
    max_new_tokens: int = MAX_NEW_TOKENS
    seed: int = 0

    def __post_init__(self) -> None:
        _require(self.mode in MODES, f"mode {self.mode!r}: valid are {', '.join(MODES)}")
        _require(self.batch_size >= 1, f"batch size {self.batch_size} must be at least 1")
        _require(self.latency_items >= 0, f"latency items {self.latency_items} must be 0 or more")
        _require(self.max_new_tokens >= 1, f"max new tokens {self.max_new_tokens} must be at least 1")


DEFAULT_EVAL = EvalSettings()

# The query row the visual path reads for token i: its own ("own", the paper's formula), or the one that
# predicted it, i - 1 ("predictor"), where the text path's surprisal of token i is read and where a causal
# model looks at the image to write token i. The ablation of benchmarks/bench_compression.py on the
# validation split chose the predicting row over every layer that sees the image: with vskip-tiny the
# union keeps 63 % of visual words at γ = 0.5 there, against 51 % for the paper's own row over the lower
# half and 57 % for the text path alone (BENCHMARKS.md).
VISUAL_ROWS = ("own", "predictor")
# Mean over key layers then max over heads (the paper's), or max over heads then mean over layers.
VISUAL_AGGREGATIONS = ("layer-mean-head-max", "head-max-layer-mean")


@dataclass(frozen=True)
class VisualPath:
    """How the visual path reads the attention; the defaults are the ones the validation ablation chose (see
    VISUAL_ROWS), the paper's formula is `row="own"`. Choices for ablations on a validation split, never on
    the test split."""

    key_layers: tuple[int, ...] | None = field(default=None, metadata=option(  # None: `default_key_layers`
        "--key-layers", "comma-separated layer indices (default: every layer that sees the image)", "layers"))
    row: str = field(default="predictor", metadata=option(
        "--visual-row", "query row whose attention to the image scores token i: its own, or the one that predicted "
        "it (i - 1, where the text path reads its surprisal)", choices=VISUAL_ROWS))
    aggregation: str = field(default="layer-mean-head-max", metadata=option(
        "--visual-aggregation", "mean over key layers then max over heads (the paper's formula), or the other order",
        choices=VISUAL_AGGREGATIONS))

    def __post_init__(self) -> None:
        _require(self.row in VISUAL_ROWS and self.aggregation in VISUAL_AGGREGATIONS,
                 f"visual path {self.row!r}, {self.aggregation!r}: the row is one of {', '.join(VISUAL_ROWS)}, "
                 f"the aggregation one of {', '.join(VISUAL_AGGREGATIONS)}")


@dataclass(frozen=True)
class TinySettings:
    """The sizes of vskip-tiny; defaults are the shipped model's."""

    vocab_size: int = 640
    text_hidden: int = 256
    text_layers: int = 4
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate: int = 768
    vision_embed: int = 128
    vision_depth: int = 4
    vision_heads: int = 4
    max_positions: int = 1024

    def __post_init__(self) -> None:
        # Rotary embeddings rotate pairs of each head's dimensions.
        _require(self.text_hidden % (2 * self.text_heads) == 0,
                 f"text hidden size {self.text_hidden} must be a multiple of {2 * self.text_heads} "
                 f"(twice the {self.text_heads} heads)")

    def with_language(self, layers: int, hidden: int) -> TinySettings:
        """These sizes with a language model `layers` deep and `hidden` wide, its MLP as many times wider as
        the shipped model's (3×): how `vskip tiny train` trades depth for width at about the same parameters."""
        return replace(self, text_layers=layers, text_hidden=hidden,
                       text_intermediate=hidden * self.text_intermediate // self.text_hidden)


@dataclass(frozen=True)
class DemoSettings:
    """The demo's run (`vskip demo`, `demo.run_demo`): its model, data sizes, methods, γ and students."""

    model: str = "vskip-tiny"
    dtype: str = "auto"  # precision.DTYPES: every model the demo loads, teacher and students
    seed: int = 0
    # Sized for ≤ 40 minutes on 2 CPU cores with the natural teacher (CoTs of ~55 tokens).
    n_distill: int = 400  # training items per family whose teacher CoTs are compressed and distilled
    n_test: int = 75  # test items per family
    methods: tuple[str, ...] = ("text", "vskip", "vskip+dependency")
    ratios: tuple[float, ...] = (0.5, 0.7, 0.9)
    auto: bool = True  # each student is also asked to choose its own budget (`prompts.AUTO`)
    distill_steps: int = 1000  # per student, and per round of on-policy rounds
    rounds: int = 0  # on-policy rounds per student (`vskip.rounds`); the round-0 student is evaluated beside the last
    samples: int = 1  # candidates per item and γ in a round: one greedy, the rest sampled
    batch_size: int = 32
    latency_items: int = 96  # ~24 per family: the per-family speed-ups need a couple dozen pairs each
    examples_per_task: int = 2

    def __post_init__(self) -> None:
        for name in ("n_distill", "n_test", "distill_steps", "samples", "batch_size"):
            _require(getattr(self, name) >= 1, f"{name} {getattr(self, name)} must be at least 1")
        for name in ("rounds", "latency_items", "examples_per_task"):
            _require(getattr(self, name) >= 0, f"{name} {getattr(self, name)} must be 0 or more")
        _require(bool(self.methods) and bool(self.ratios), "the demo needs at least one method and one γ")


# The recipe of the shipped vskip-tiny (`vskip tiny train`; `models.train_tiny` says what each stage does).
TINY_SIZES = TinySettings()
TINY_VISION_TRAINING = TrainSettings(
    steps=1000, batch_size=32, learning_rate=1e-3, warmup_steps=50, seed=0, checkpoint_every=250
)
TINY_DIRECT_SHARE = 0.5
TINY_TRAINING = TrainSettings(
    steps=8000, batch_size=16, learning_rate=1e-3, weight_decay=0.0, warmup_steps=150, seed=0, checkpoint_every=250
)
