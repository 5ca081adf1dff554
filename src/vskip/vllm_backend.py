"""vLLM as an optional generation backend (`pip install 'vskip[vllm]'`, GPU only).

`generate_batch_vllm` writes the same records as `generate.generate_batch`: the prompt is built by
the same `record_example` with the checkpoint's own processor, vLLM decodes greedily, and the reply is
split and scored by the same helpers. A distilled adapter is not merged: vLLM serves it as a LoRA
(`LoRARequest`), which is what `adapter_layout_problems` checks an adapter directory against, without
vLLM installed. vLLM is imported inside the functions that need it.

What vLLM accepts, as read in its source (vllm/lora/peft_helper.py `PEFTHelper.validate_legal`,
vllm/lora/lora_model.py `LoRAModel.from_local_checkpoint`, vllm/lora/utils.py
`parse_fine_tuned_lora_name`, vllm/config/lora.py `MaxLoRARanks`):
- adapter_config.json with `r`, `lora_alpha`, `target_modules`; `bias == "none"`; no DoRA, no
  `lora_bias`, no aLoRA / layer replication / BD-LoRA / QALoRA; `modules_to_save` empty (or only a
  classifier head); `init_lora_weights` true or a pure initialisation (not PiSSA, OLoRA, LoftQ…);
  the largest rank (`r`, `rank_pattern`) at most the engine's `max_lora_rank`, itself one of
  1, 8, 16, 32, 64, 128, 256, 320, 512.
- weights named `base_model.model.<module path>.lora_A.weight` / `.lora_B.weight`; with
  `adapter_model.safetensors` the module list comes from these names and `target_modules` is not
  read, so a regex string there is accepted. Each module must be one vLLM can wrap (its linear
  layers); for a multimodal model vLLM puts LoRA on the language model only and drops the rest.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import ClassVar

from .encoding import record_example
from .errors import BadInput, UnsupportedModel, VSkipError
from .precision import dtype_name, resolve_dtype
from .prompts import Mode
from .records import Record
from .replies import generated_record
from .settings import MAX_NEW_TOKENS

VLLM_MISSING = "the vllm backend needs vLLM: pip install 'vskip[vllm]' (GPU only)"
# vllm/config/lora.py: MaxLoRARanks.
VLLM_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# PEFT initialisations that only set the first adapter weights (vLLM's PEFTHelper._init_is_supported).
PLAIN_INITS = ("gaussian", "eva", "orthogonal", "mica", "lora_ga")
# Without the base model at hand, the layers every supported language model has as linear layers.
LANGUAGE_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# vLLM dropped encoder-decoder models (Mllama among them) with its V0 engine (vllm-project/vllm#24907).
NOT_SERVED = {"mllama": "Llama-3.2-Vision (mllama) is not served by vLLM since it dropped encoder-decoder models"}


class MissingBackend(VSkipError):
    """An optional backend was asked for and is not installed."""


def _vllm():
    try:
        import vllm
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] != "vllm":
            raise
        raise MissingBackend(VLLM_MISSING) from None
    return vllm


@dataclass
class VllmModel:
    """A vLLM engine with the checkpoint's processor (for `chat_prompt` and token counts): a
    `generate.GenerationBackend` that decodes greedily."""

    name: ClassVar[str] = "vllm"
    # Not timed beside a baseline's model: its CoT lengths are all a baseline gives this backend.
    times_baseline: ClassVar[bool] = False

    llm: object
    processor: object
    path: str
    precision: str  # the dtype the engine was started with, as `LoadedModel.precision` names it
    max_images: int = 1
    # The adapter the engine was started for: `generate_batch_vllm` uses it when given none.
    adapter: str | None = None
    lora_ids: dict[str, int] = field(default_factory=dict)

    def lora_request(self, adapter: str | Path | None):
        """vLLM's LoRARequest for an adapter directory; one stable integer id per directory."""
        adapter = adapter if adapter is not None else self.adapter
        if adapter is None:
            return None
        if self.adapter is None:
            raise BadInput(f"{adapter}: load the model with load_vllm(..., adapter=...) to serve an adapter")
        from vllm.lora.request import LoRARequest

        path = str(Path(adapter).resolve())
        lora_id = self.lora_ids.setdefault(path, len(self.lora_ids) + 1)
        return LoRARequest(Path(path).name or "adapter", lora_id, path)

    @classmethod
    def load(cls, model: str, adapter: str | Path | None = None, *, records=(), base_dir=".", **load_options):
        """`load_vllm`, the engine started for as many images per prompt as the most any of `records` has."""
        from .records import image_paths

        most = max((len(image_paths(record, base_dir)) for record in records), default=1)
        return load_vllm(model, adapter=adapter, max_images=most, **load_options)

    def check_prompts(self, records: list[Record], base_dir: str | Path, mode: Mode, ratio: float | None) -> None:
        """Nothing to check beforehand: vLLM checks its own `max_model_len`."""

    def batch_generator(self, base_dir, mode, *, ratio, max_new_tokens, temperature=0.0, seed=0):
        """`generate_batch_vllm` over one batch; greedy only (sampled generation is the transformers backend's)."""
        if temperature > 0:
            raise BadInput("sampled generation runs on the transformers backend only")
        return lambda batch: generate_batch_vllm(self, batch, base_dir, mode, ratio=ratio,
                                                 max_new_tokens=max_new_tokens)

    def runner(self, base_dir, mode, *, ratio, max_new_tokens):
        """record -> the engine's `generate` of its prepared prompt (`generate.GenerationBackend.runner`)."""
        return lambda record: partial(vllm_decode, self, vllm_prompts(self, [record], base_dir, mode, ratio),
                                      max_new_tokens)


def load_vllm(
    model_path: str,
    *,
    adapter: str | Path | None = None,
    max_lora_rank: int | None = None,
    max_images: int = 1,
    dtype: str = "auto",
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    **engine_args,
) -> VllmModel:
    """A vLLM engine for `model_path` (a directory, hub id or `vskip-tiny`), LoRA enabled when `adapter` is given.

    The adapter is checked first (`lora.check_adapter`, then `adapter_layout_problems`) against
    `max_lora_rank` (default: the smallest vLLM accepts that holds the adapter's rank); `dtype` follows
    the same policy as the transformers backend (`precision.resolve_dtype` on the GPU); `engine_args`
    go to `vllm.LLM` (e.g. `gpu_memory_utilization`, `max_model_len`).
    """
    vllm = _vllm()
    from transformers import AutoConfig

    from .models.loading import load_processor, refuse_pickle, resolve

    path = resolve(model_path)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise UnsupportedModel(f"{path}: not a loadable model ({str(err).splitlines()[0]})") from None
    if config.model_type in NOT_SERVED:
        raise UnsupportedModel(f"{path}: {NOT_SERVED[config.model_type]}; use the transformers backend")
    if not allow_pickle:
        refuse_pickle(path)
    precision = dtype_name(resolve_dtype(dtype, "cuda"))
    options = dict(
        model=path, dtype=precision, trust_remote_code=trust_remote_code, limit_mm_per_prompt={"image": max_images}
    )
    if adapter is not None:
        max_lora_rank = max_lora_rank or engine_lora_rank(adapter)
        _check_adapter(adapter, path, config, max_lora_rank)
        options.update(enable_lora=True, max_lora_rank=max_lora_rank, max_loras=1)
    processor = load_processor(path, trust_remote_code=trust_remote_code)
    llm = vllm.LLM(**options, **engine_args)
    return VllmModel(llm, processor, path, precision, max_images, adapter=str(adapter) if adapter is not None else None)


def engine_lora_rank(adapter: str | Path) -> int:
    """The smallest `max_lora_rank` vLLM accepts that serves `adapter`'s largest rank (vLLM's default, 16,
    where the adapter's config cannot be read: the layout check then says why)."""
    try:
        rank = max(_ranks(json.loads((Path(adapter) / "adapter_config.json").read_text())))
    except (OSError, ValueError):
        return 16
    return next((allowed for allowed in VLLM_MAX_LORA_RANKS if allowed >= rank), VLLM_MAX_LORA_RANKS[-1])


def _check_adapter(adapter: str | Path, base_path: str, config, max_lora_rank: int) -> None:
    from .lora import check_adapter

    check_adapter(adapter, config, base_path)
    problems = adapter_layout_problems(adapter, max_lora_rank=max_lora_rank, base_model=base_path)
    if problems:
        raise BadInput(f"{adapter}: vLLM cannot serve this adapter: {'; '.join(problems)}")


def generate_batch_vllm(
    model: VllmModel,
    records: list[Record],
    base_dir: str | Path,
    mode: Mode,
    *,
    ratio: float | None = None,
    adapter: str | Path | None = None,
    max_new_tokens: int = MAX_NEW_TOKENS,
) -> list[Record]:
    """`generate.generate_batch` on vLLM: greedy decoding, one output record per input record, same fields.

    `adapter` (default: the one `load_vllm` was given) is served as a LoRA, not merged.
    `latency_s` is the batch's wall time shared equally among its records.
    """
    prompts = vllm_prompts(model, records, base_dir, mode, ratio)
    start = time.perf_counter()
    outputs = vllm_decode(model, prompts, max_new_tokens, adapter)
    elapsed = time.perf_counter() - start
    tokenizer = model.processor.tokenizer
    return [
        generated_record(record, mode, output.outputs[0].text, tokenizer, elapsed / len(records), model.precision)
        for record, output in zip(records, outputs)
    ]


def vllm_prompts(model: VllmModel, records: list[Record], base_dir: str | Path, mode: Mode, ratio: float | None):
    """vLLM's prompts of a batch of records: the chat prompt, and the images loaded."""
    prompts = []
    for record in records:
        example = record_example(model.processor, record, base_dir, mode, ratio=ratio)
        if example.videos:  # not wired to vLLM's video input: refused rather than generated without the video
            raise BadInput(f"record {record['id']}: the vllm backend reads no videos; use the transformers backend")
        if len(example.images) > model.max_images:
            raise BadInput(
                f"record {record['id']}: {len(example.images)} images, more than the {model.max_images} "
                "the engine was started for; pass max_images to load_vllm"
            )
        prompt = {"prompt": example.prompt}
        if example.images:
            prompt["multi_modal_data"] = {"image": example.images}
        prompts.append(prompt)
    return prompts


def vllm_decode(model: VllmModel, prompts: list[dict], max_new_tokens: int, adapter: str | Path | None = None):
    """The engine's greedy `generate` on prepared prompts, with `adapter` (default: the engine's) as a LoRA."""
    params = _vllm().SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
    return model.llm.generate(prompts, params, lora_request=model.lora_request(adapter), use_tqdm=False)


def adapter_layout_problems(
    adapter_dir: str | Path, *, max_lora_rank: int = VLLM_MAX_LORA_RANKS[-1], base_model: str | Path | None = None
) -> list[str]:
    """What would stop vLLM from serving `adapter_dir` as a LoRA of `base_model`; empty when nothing.

    `max_lora_rank`: the engine's (default: the largest vLLM accepts).

    `base_model` (default: the adapter's `base_model_name_or_path` where that is a local directory)
    is built on the meta device to check that every adapted module is a linear layer of its language
    model with the adapter's shapes; without it, module names are checked against the language
    models' projections.
    """
    adapter_dir = Path(adapter_dir)
    config_path = adapter_dir / "adapter_config.json"
    if not config_path.is_file():
        return ["no adapter_config.json"]
    try:
        config = json.loads(config_path.read_text())
    except ValueError as err:
        return [f"adapter_config.json is not JSON ({err})"]
    problems = _config_problems(config, max_lora_rank)
    weights_path = adapter_dir / "adapter_model.safetensors"
    if not weights_path.is_file():
        return [*problems, "no adapter_model.safetensors (vskip reads no pickled weights)"]
    from safetensors import safe_open

    with safe_open(weights_path, "pt") as weights:
        shapes = {name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()}
    modules, weight_problems = _lora_modules(shapes)
    problems += weight_problems
    config_rank = max(_ranks(config))
    for module, (a, b) in sorted(modules.items()):
        if a[0] != b[1]:
            problems.append(f"{module}: lora_A has rank {a[0]} but lora_B {b[1]}")
        elif a[0] > max_lora_rank >= config_rank:
            problems.append(f"{module}: weights of rank {a[0]}, greater than max_lora_rank {max_lora_rank}")
    base = base_model if base_model is not None else config.get("base_model_name_or_path")
    if base is not None and (Path(base) / "config.json").is_file():
        problems += _module_problems(modules, str(base))
    else:
        problems += [
            f"{module}: not a language-model projection ({', '.join(LANGUAGE_LINEAR)})"
            for module in sorted(modules)
            if module.rsplit(".", 1)[-1] not in LANGUAGE_LINEAR
        ]
    return problems


def _config_problems(config: dict, max_lora_rank: int) -> list[str]:
    """vLLM's PEFTHelper checks, on adapter_config.json."""
    problems = []
    if config.get("peft_type", "LORA") != "LORA":
        problems.append(f"peft_type is {config['peft_type']!r}; vLLM serves LoRA adapters only")
    missing = [name for name in ("r", "lora_alpha", "target_modules") if config.get(name) is None]
    if missing:
        problems.append(f"adapter_config.json has no {', '.join(missing)}")
    if max_lora_rank not in VLLM_MAX_LORA_RANKS:
        problems.append(f"max_lora_rank {max_lora_rank} is not one vLLM accepts ({VLLM_MAX_LORA_RANKS})")
    ranks = _ranks(config)
    if not isinstance(config.get("r"), int) or config["r"] <= 0:
        problems.append(f"r must be a positive integer, got {config.get('r')!r}")
    elif max(ranks) > max_lora_rank:
        problems.append(f"LoRA rank {max(ranks)} is greater than max_lora_rank {max_lora_rank}")
    if config.get("bias", "none") != "none":
        problems.append(f"bias is {config['bias']!r}; vLLM serves only bias 'none'")
    unsupported = [m for m in config.get("modules_to_save") or [] if m not in ("classifier", "score")]
    if unsupported:
        problems.append(f"modules_to_save {unsupported}: vLLM serves LoRA weights only")
    init = config.get("init_lora_weights", True)
    if isinstance(init, str) and init.lower() not in PLAIN_INITS:
        problems.append(f"init_lora_weights {init!r} changes the base weights; vLLM does not support it")
    for name, what in (
        ("use_dora", "DoRA"),
        ("lora_bias", "LoRA bias"),
        ("alora_invocation_tokens", "activated LoRA"),
        ("layer_replication", "layer replication"),
        ("use_bdlora", "block-diagonal LoRA"),
        ("use_qalora", "QALoRA"),
    ):
        if config.get(name):
            problems.append(f"{name} is set: vLLM does not support {what}")
    return problems


def _ranks(config: dict) -> list[int]:
    """`r` and the per-module ranks of `rank_pattern` (0 where `r` is missing or not a number)."""
    r = config.get("r")
    return [r if isinstance(r, int) else 0, *(config.get("rank_pattern") or {}).values()]


def _lora_modules(shapes: dict[str, tuple]) -> tuple[dict[str, tuple[tuple, tuple]], list[str]]:
    """Module path -> (lora_A shape, lora_B shape), from PEFT weight names; and the names vLLM rejects."""
    parts: dict[str, dict[str, tuple]] = {}
    problems = []
    for name, shape in shapes.items():
        pieces = name.split(".")
        if not name.startswith("base_model.model.") or pieces[-1] != "weight" or pieces[-2] not in ("lora_A", "lora_B"):
            problems.append(f"{name}: not a PEFT LoRA weight (base_model.model.<module>.lora_A/lora_B.weight)")
            continue
        parts.setdefault(".".join(pieces[2:-2]), {})[pieces[-2]] = shape
    modules = {}
    for module, pair in parts.items():
        if set(pair) != {"lora_A", "lora_B"}:
            problems.append(f"{module}: has {', '.join(sorted(pair))} only")
        else:
            modules[module] = (pair["lora_A"], pair["lora_B"])
    if not shapes:
        problems.append("adapter_model.safetensors holds no weights")
    return modules, problems


def _module_problems(modules: dict[str, tuple[tuple, tuple]], base: str) -> list[str]:
    """Each adapted module must be a linear layer of the base's language model, of the adapter's shape."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(base))
    language = {id(module) for module in model.get_decoder().modules()}
    problems = []
    for name, (a, b) in sorted(modules.items()):
        try:
            module = model.get_submodule(name)
        except AttributeError:
            problems.append(f"{name}: no such module in {base}")
            continue
        if not isinstance(module, torch.nn.Linear):
            problems.append(f"{name}: a {type(module).__name__}, not a linear layer; vLLM puts LoRA on linear layers")
        elif id(module) not in language:
            problems.append(f"{name}: outside the language model; vLLM would drop this LoRA")
        elif (a[1], b[0]) != (module.in_features, module.out_features):
            problems.append(
                f"{name}: LoRA maps {a[1]} -> {b[0]} features, the layer {module.in_features} -> {module.out_features}"
            )
    return problems
