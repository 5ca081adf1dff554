"""Turn (images, videos, question, reply) into model inputs, the same way for every stage.

Generation, teacher-forced scoring, the tiny model's training and distillation all go through
`chat_prompt` and `encode` (and, from a dataset record, `record_example`), so a prompt is never built
two ways. The processor does what differs
per architecture (image and video tokens, pixel layout, Mllama's cross-attention mask); the reply is text
appended after the generation prompt, and `encode` returns where its tokens lie.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from .errors import BadInput
from .media import load_image, load_video
from .models.families import family_for
from .prompts import Mode, instruction
from .records import Record, image_paths

# Examples encoded at once when checking their lengths: the processor is much faster on a batch.
CONTEXT_CHECK_BATCH = 32


@dataclass
class Example:
    images: list[Image.Image]
    prompt: str
    reply: str = ""
    videos: list[list[Image.Image]] = field(default_factory=list)  # each video its frames


@dataclass
class Encoded:
    inputs: dict[str, torch.Tensor]
    # reply_spans[b] is the slice of sequence positions holding example b's reply tokens.
    reply_spans: list[slice] = field(default_factory=list)


def chat_prompt(
    processor, question: str, mode: Mode, ratio: float | None = None, n_images: int = 1, n_videos: int = 0
) -> str:
    """The generation prompt (chat template applied, assistant turn opened) for one question: its images, then
    its videos, then the instruction."""
    content = [{"type": "image"}] * n_images + [{"type": "video"}] * n_videos
    content.append({"type": "text", "text": instruction(question, mode, ratio)})
    return processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )


def record_example(
    processor,
    record: Record,
    base_dir: str | Path,
    mode: Mode = "cot",
    *,
    ratio: float | None = None,
    reply: str = "",
    blind: bool = False,
) -> Example:
    """The example of a dataset record: its images and video (none when `blind`), the prompt of its question for
    `mode` and γ = `ratio`, and `reply` (the assistant turn to teacher-force; empty for generation)."""
    images = [] if blind else [load_image(path) for path in image_paths(record, base_dir)]
    videos = [] if blind or not record.get("video") else [load_video(image_paths(record, base_dir, "video"))]
    prompt = chat_prompt(processor, record["question"], mode, ratio, n_images=len(images), n_videos=len(videos))
    return Example(images, prompt, reply, videos)


def encode(processor, examples: list[Example], *, for_generation: bool = False) -> Encoded:
    """Tokenize a batch of examples.

    For generation the batch is padded on the left and replies are ignored. For teacher forcing it
    is padded on the right, each reply (ended by the tokenizer's end-of-turn token) follows its prompt,
    and `reply_spans` locate the reply tokens.
    """
    tokenizer = processor.tokenizer
    replies = ["" if for_generation else example.reply + tokenizer.eos_token for example in examples]
    texts = [example.prompt + reply for example, reply in zip(examples, replies)]
    kwargs = {}
    for kind in ("images", "videos"):
        if any(getattr(example, kind) for example in examples):
            kwargs[kind] = [getattr(example, kind) for example in examples]
    inputs = processor(
        text=texts, padding=True, padding_side="left" if for_generation else "right", return_tensors="pt", **kwargs
    )
    if for_generation:
        return Encoded(dict(inputs))
    spans = []
    lengths = inputs["attention_mask"].sum(dim=1).tolist()
    for row, (reply, length) in enumerate(zip(replies, lengths)):
        reply_ids = tokenizer(reply, add_special_tokens=False)["input_ids"]
        span = slice(length - len(reply_ids), length)
        if inputs["input_ids"][row, span].tolist() != reply_ids:
            raise ValueError(
                "the reply's tokens changed when joined to the prompt; the chat template must end the "
                "generation prompt at a token boundary"
            )
        spans.append(span)
    return Encoded(dict(inputs), spans)


def context_length(config) -> int | None:
    """The most positions the language model was built for (`max_position_embeddings`), where its config says."""
    return getattr(config.get_text_config(), "max_position_embeddings", None)


def check_context(processor, config, examples: Iterable[tuple[str, Example]]) -> None:
    """Raise `BadInput` naming the first (record id, example) the model cannot take (`encode_within_context`).

    Examples with replies are encoded as `encode` does for teacher forcing, the others as for generation.
    """
    examples = iter(examples)
    while chunk := list(itertools.islice(examples, CONTEXT_CHECK_BATCH)):
        encode_within_context(processor, config, chunk, for_generation=not any(example.reply for _, example in chunk))


def encode_within_context(processor, config, examples: list[tuple[str, Example]], **options) -> Encoded:
    """`encode` (with `options`) of examples the model can take; `BadInput` naming the first (record id, example)
    it cannot: one with a video where the family reads none (`ModelFamily.video_token_id`), or one whose tokens (prompt
    with its image and video tokens, and the reply where it has one) outnumber the model's context: past it a model
    reads positions it never learned."""
    reads_videos = family_for(config).video_token_id(config) is not None
    for record_id, example in examples:
        if example.videos and not reads_videos:
            raise BadInput(f"record {record_id!r}: {config.model_type} models read no videos; "
                           "give the frames as images ('image': [...]) or drop the record")
    encoded = encode(processor, [example for _, example in examples], **options)
    limit = context_length(config)
    for (record_id, _), length in zip(examples, encoded.inputs["attention_mask"].sum(dim=1).tolist()):
        if limit is not None and length > limit:
            raise BadInput(
                f"record {record_id!r}: its prompt is {length} tokens, longer than the model's context of {limit}; "
                "shorten it (or its image) or drop the record"
            )
    return encoded


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the whitespace-separated words of `text`: the units vskip keeps or prunes."""
    return [match.span() for match in re.finditer(r"\S+", text)]


def lead_tokens(tokenizer, words: list[str]) -> list[int]:
    """Tokens of each word written with nothing before it, as the first word of a compressed CoT is."""
    return [len(ids) for ids in tokenizer(words, add_special_tokens=False)["input_ids"]] if words else []


def token_word_index(tokenizer, reply: str, cot: str) -> list[int]:
    """For each token of `reply` (no special tokens), the index of the CoT word it belongs to, or -1
    (`offsets_word_index`)."""
    offsets = tokenizer(reply, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return offsets_word_index(offsets, reply, cot)


def offsets_word_index(offsets: list[tuple[int, int]], reply: str, cot: str) -> list[int]:
    """For each token of `reply`, given by its character `offsets`, the index of the CoT word it belongs to, or -1.

    The CoT is the start of the reply (see `prompts.response`), so a token belongs to the word whose
    character span holds the token's first non-space character. A token of whitespace alone (Qwen2's
    pre-tokenizer splits the space before a digit off: " 5" is " ", "5") belongs to the word it
    precedes, which writes it: so every CoT token is in exactly one word, and a budget counted in
    words' tokens is counted in the tokens the model writes. Tokens after the CoT (the answer line)
    get -1, and so are never pruned.
    """
    spans = word_spans(cot)
    indices = []
    word = 0
    for start, end in offsets:
        piece = reply[start:end]
        # The token's first non-space character; for whitespace alone, where the next word starts.
        first = start + len(piece) - len(piece.lstrip())
        if first >= len(cot):
            indices.append(-1)
            continue
        while word < len(spans) and spans[word][1] <= first:
            word += 1
        precedes = not piece.strip()
        indices.append(word if word < len(spans) and (precedes or spans[word][0] <= first) else -1)
    return indices
