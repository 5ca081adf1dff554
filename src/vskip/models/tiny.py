"""vskip-tiny: a small Qwen2-VL built for vskip-synth, from tokenizer to weights.

It is the real transformers Qwen2-VL (config, model, processor classes) at a tiny size, so it
loads with `AutoProcessor` / `AutoModelForImageTextToText` like a hub checkpoint and takes the
same code paths as `Qwen/Qwen2-VL-7B-Instruct`. The tokenizer is a byte-level BPE trained on the
benchmark's text with Qwen2's pre-tokenizer (digits split one by one), and the chat template is
Qwen2-VL's, without the default system prompt.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast, Qwen2VLConfig, Qwen2VLForConditionalGeneration

from ..prompts import MODES, instruction
from ..settings import TinySettings

IMAGE_SIZE = 112  # 8x8 patches of 14 px, merged 2x2 into 16 image tokens of 28x28 px
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Qwen2's pre-tokenizer pattern: words with their leading space, digits one by one, punctuation runs.
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Qwen2-VL's template writes its default system turn ("You are a helpful assistant.") where a conversation has
# none, so a prompt with no system turn and one with that turn are the same prompt. vskip sends none; lmms-eval
# always sends that one. vskip-tiny learned its prompts without a system turn, so its template keeps the same
# equivalence the other way round: the default system turn, given first, is left out.
DEFAULT_SYSTEM = "You are a helpful assistant."
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if not (loop.first and message['role'] == 'system' and message['content'] == '" + DEFAULT_SYSTEM + "') %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def prompt_texts() -> list[str]:
    """Instruction text of every mode and ratio, so the tokenizer learns them as well as the data."""
    ratios = [None] + [r / 10 for r in range(1, 10)]
    return [instruction("", mode, ratio) for mode in MODES for ratio in ratios] + ["user", "assistant"]


def build_tokenizer(corpus: Iterable[str], vocab_size: int = TinySettings.vocab_size) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on `corpus`, pre-tokenized as Qwen2 does."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(corpus) + prompt_texts(), trainer=trainer)
    return wrap_tokenizer(tokenizer)


def wrap_tokenizer(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    """vskip-tiny's tokenizer around a trained BPE (`build_tokenizer`'s, or one read from a saved tokenizer.json)."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
    )


def build_processor(tokenizer: PreTrainedTokenizerFast):
    """A Qwen2VLProcessor for 112 px images (16 image tokens), with or without torchvision."""
    from transformers import Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from .loading import video_processor_or_placeholder

    pixels = IMAGE_SIZE * IMAGE_SIZE
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=pixels, max_pixels=pixels, patch_size=14, merge_size=2, temporal_patch_size=2
    )
    return Qwen2VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor_or_placeholder("Qwen2VLVideoProcessor"),
        chat_template=CHAT_TEMPLATE,
    )


def save_processor(processor, directory: str | Path) -> None:
    """Save as a hub Qwen2-VL checkpoint does, naming the real video processor class.

    Where torchvision is installed, `AutoProcessor.from_pretrained` then builds the standard
    processor; without it `vskip.models.load_processor` builds the image-only one.
    """
    processor.save_pretrained(directory)
    config_path = Path(directory) / "processor_config.json"
    config = json.loads(config_path.read_text())
    image = config["image_processor"]
    config["video_processor"] = {
        "video_processor_type": "Qwen2VLVideoProcessor",
        **{key: image[key] for key in ("patch_size", "merge_size", "temporal_patch_size", "image_mean", "image_std")},
        "size": image["size"],
    }
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def build_model(tokenizer: PreTrainedTokenizerFast, sizes: TinySettings = TinySettings(), seed: int = 0):
    """A randomly initialised Qwen2-VL of the given sizes, its token ids taken from `tokenizer`."""
    import torch

    head_dim = sizes.text_hidden // sizes.text_heads
    # M-RoPE splits the rotary half-dimension into temporal, height and width sections in
    # Qwen2-VL's proportions (16, 24, 24 of 64).
    half = head_dim // 2
    mrope_section = [half // 4, 3 * half // 8, half - half // 4 - 3 * half // 8]
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=sizes.text_hidden,
            intermediate_size=sizes.text_intermediate,
            num_hidden_layers=sizes.text_layers,
            num_attention_heads=sizes.text_heads,
            num_key_value_heads=sizes.text_kv_heads,
            max_position_embeddings=sizes.max_positions,
            rope_parameters=dict(rope_type="default", rope_theta=10000.0, mrope_section=mrope_section),
            tie_word_embeddings=True,
            bos_token_id=ids("<|endoftext|>"),
            eos_token_id=ids("<|im_end|>"),
            pad_token_id=ids("<|endoftext|>"),
        ),
        vision_config=dict(
            depth=sizes.vision_depth,
            embed_dim=sizes.vision_embed,
            hidden_size=sizes.text_hidden,
            num_heads=sizes.vision_heads,
            mlp_ratio=2,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            in_channels=3,
        ),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids("<|im_end|>")
    model.generation_config.pad_token_id = ids("<|endoftext|>")
    return model
