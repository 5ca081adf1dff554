import pytest
from PIL import Image

from vskip import prompts
from vskip.encoding import (
    Example,
    chat_prompt,
    check_context,
    encode,
    lead_tokens,
    record_example,
    token_word_index,
    word_spans,
)
from vskip.errors import BadInput


def test_reply_span_holds_exactly_the_reply_tokens(tiny_processor):
    image = Image.new("RGB", (112, 112), "white")
    replies = [prompts.response("The star is red.", "2"), prompts.response("", "yes")]
    prompt = chat_prompt(tiny_processor, "Is there a red star?", "cot")
    encoded = encode(tiny_processor, [Example([image], prompt, reply) for reply in replies])
    tokenizer = tiny_processor.tokenizer
    for row, reply in enumerate(replies):
        ids = encoded.inputs["input_ids"][row, encoded.reply_spans[row]].tolist()
        assert tokenizer.decode(ids) == reply + tokenizer.eos_token


def test_generation_batches_are_left_padded(tiny_processor):
    image = Image.new("RGB", (112, 112), "white")
    prompts_ = [chat_prompt(tiny_processor, q, "direct") for q in ("Is there a red star?", "How many?")]
    inputs = encode(tiny_processor, [Example([image], p) for p in prompts_], for_generation=True).inputs
    assert inputs["attention_mask"][:, -1].all()
    assert inputs["mm_token_type_ids"].sum() == 2 * 16  # 112 px -> 16 image tokens each


def test_tokens_map_to_the_words_they_spell(tiny_processor):
    cot = "The tea costs 14. That makes 2."
    reply = prompts.response(cot, "7")
    tokenizer = tiny_processor.tokenizer
    index = token_word_index(tokenizer, reply, cot)
    offsets = tokenizer(reply, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    words = [cot[start:end] for start, end in word_spans(cot)]
    rebuilt = ["" for _ in words]
    for word, (start, end) in zip(index, offsets):
        if word >= 0:
            rebuilt[word] += reply[start:end].strip()
    assert rebuilt == words
    assert index[-1] == -1  # the answer is never part of the CoT


def test_every_cot_token_is_in_the_word_it_writes(tiny_processor):
    tokenizer = tiny_processor.tokenizer
    cot = "The tea costs 14. 4 plus 3 makes 7."
    reply = prompts.response(cot, "7")
    index = token_word_index(tokenizer, reply, cot)
    pieces = [reply[start:end] for start, end in tokenizer(reply, return_offsets_mapping=True)["offset_mapping"]]
    assert pieces[3:6] == [" ", "1", "4"] and index[3:6] == [3, 3, 3]  # the space before a digit goes with it
    cot_tokens = len(tokenizer(cot, add_special_tokens=False)["input_ids"])
    assert index[:cot_tokens] == sorted(index[:cot_tokens]) and min(index[:cot_tokens]) == 0
    assert set(index[cot_tokens:]) == {-1}  # the answer line
    assert lead_tokens(tokenizer, ["14.", "tea"]) == [len(tokenizer(w)["input_ids"]) for w in ("14.", "tea")]


def test_prompt_modes_differ_only_in_the_instruction():
    assert prompts.instruction("Q?", "direct").endswith("Answer directly.")
    assert "ratio 0.5" in prompts.instruction("Q?", "cot", 0.5)
    assert prompts.instruction("Q?", "cot", 1.0) == prompts.instruction("Q?", "cot")


def test_split_response_reads_the_last_answer_line():
    assert prompts.split_response("a b c\nAnswer: 7") == ("a b c", "7")
    assert prompts.split_response("no answer here") == ("no answer here", None)


def test_a_record_becomes_its_images_and_the_prompt_of_its_question(tiny_processor, image_dataset):
    record = {"id": "two", "image": ["images/0.png", "images/1.png"], "question": "Is there a red star?"}
    seen = record_example(tiny_processor, record, image_dataset.parent, ratio=0.5, reply="Answer: no")
    assert [image.getpixel((0, 0)) for image in seen.images] == [(255, 0, 0), (0, 0, 255)]
    assert seen.prompt == chat_prompt(tiny_processor, record["question"], "cot", 0.5, n_images=2)
    assert seen.reply == "Answer: no"
    blind = record_example(tiny_processor, record, image_dataset.parent, "direct", blind=True)
    assert blind.images == [] and blind.prompt == chat_prompt(tiny_processor, record["question"], "direct", n_images=0)


def test_a_video_is_its_frames_and_a_video_part_of_the_prompt(tiny_processor, image_dataset, monkeypatch):
    monkeypatch.setattr("vskip.media.torchvision_installed", lambda: True)  # frames load without it
    record = {"id": "v", "image": "images/2.png", "video": ["images/0.png", "images/1.png"], "question": "Why?"}
    seen = record_example(tiny_processor, record, image_dataset.parent)
    assert [image.getpixel((0, 0)) for image in seen.images] == [(0, 128, 0)]
    assert [[frame.getpixel((0, 0)) for frame in video] for video in seen.videos] == [[(255, 0, 0), (0, 0, 255)]]
    assert seen.prompt == chat_prompt(tiny_processor, "Why?", "cot", n_images=1, n_videos=1)
    # The image first, then the video, then the instruction.
    assert "<|image_pad|><|vision_end|><|vision_start|><|video_pad|><|vision_end|>Why?" in seen.prompt
    blind = record_example(tiny_processor, record, image_dataset.parent, blind=True)
    assert blind.videos == [] and "<|video_pad|>" not in blind.prompt


def test_a_video_for_a_family_that_reads_none_is_refused_naming_the_record(tiny_processor):
    from transformers import LlavaConfig

    frames = [Image.new("RGB", (112, 112), "red")] * 2
    examples = [("r0", Example([frames[0]], "")), ("v", Example([], "", videos=[frames]))]
    with pytest.raises(BadInput, match="record 'v': llava models read no videos"):
        check_context(tiny_processor, LlavaConfig(), examples)


def test_an_example_longer_than_the_context_is_named_with_its_length(tiny_random):
    processor, config = tiny_random.processor, tiny_random.model.config
    image = Image.new("RGB", (112, 112), "white")
    prompt = chat_prompt(processor, "Is there a red star?", "cot")
    short = encode(processor, [Example([image], prompt)], for_generation=True).inputs["input_ids"].shape[1]
    reply = prompts.response("The star is red. " * 40, "yes")
    whole = encode(processor, [Example([image], prompt, reply)]).inputs["input_ids"].shape[1]
    examples = [(f"r{i}", Example([image], prompt)) for i in range(40)] + [("long", Example([image], prompt, reply))]
    text_config = config.get_text_config()
    limit = text_config.max_position_embeddings
    try:
        text_config.max_position_embeddings = whole
        check_context(processor, config, examples)  # exactly the context fits
        text_config.max_position_embeddings = whole - 1
        with pytest.raises(BadInput, match=f"record 'long': its prompt is {whole} tokens, .* context of {whole - 1}"):
            check_context(processor, config, examples)
        text_config.max_position_embeddings = short - 1
        with pytest.raises(BadInput, match="record 'r0'"):
            check_context(processor, config, examples)
    finally:
        text_config.max_position_embeddings = limit
