import numpy as np
import pytest
import torch

from vskip import encoding, prompts
from vskip.cli import main
from vskip.compress import compress_records
from vskip.encoding import Example, chat_prompt, encode, token_word_index
from vskip.errors import BadInput
from vskip.media import load_image
from vskip.records import image_paths, read_records
from vskip.score import VisualPath, _prepare, aggregate_words, default_key_layers, score, score_records
from vskip.synth import build

# bfloat16 keeps 8 bits of mantissa. On vskip-tiny, against float32: over 40 vskip-synth test items
# (seed 0) the surprisal moved by 0.003 nats per token on average (at most 0.17, on values up to 3.5),
# the visual mass by 0.0015 (at most 0.04, on values up to 1), and the vskip keep masks at γ = 0.5 agreed
# on every word; over this test's 12 items (seed 3): 0.005 (at most 0.31), 0.0017 (at most 0.04), 98.9 %.
# The bounds, (mean, max) absolute difference per token, leave room for other CPUs' kernels.
BF16_TOLERANCE = {"text_score": (0.02, 1.0), "visual_score": (0.01, 0.1)}
BF16_KEEP_AGREEMENT = 0.95  # share of CoT words on which the bf16 and fp32 keep masks agree


def _surprisal(model, processor, record, base, n_images=1):
    """Reference: a plain full forward, -log softmax at every CoT token."""
    images = [load_image(p) for p in image_paths(record, base)][:n_images]
    reply = prompts.response(record["cot"], record["answer"])
    encoded = encode(
        processor,
        [Example(images, chat_prompt(processor, record["question"], "cot", n_images=n_images), reply)],
    )
    with torch.no_grad():
        logits = model(**encoded.inputs).logits[0].float()
    index = token_word_index(processor.tokenizer, reply, record["cot"])
    ids = encoded.inputs["input_ids"][0]
    start = encoded.reply_spans[0].start
    positions = [start + i for i, word in enumerate(index) if word >= 0]
    return [float(-logits[p - 1].log_softmax(-1)[ids[p]]) for p in positions]


def test_scores_cover_every_cot_token_and_word(tiny_random, image_dataset):
    records = read_records(image_dataset)
    scored = score_records(tiny_random, records, image_dataset.parent, blind=True, batch_size=2, progress=False)
    processor, model = tiny_random.processor, tiny_random.model
    for record, out in zip(records, scored, strict=True):
        assert out["words"] == record["cot"].split()
        pieces = iter(out["tokens"])
        assert ["".join(next(pieces) for _ in range(n)).strip() for n in out["word_tokens"]] == out["words"]
        assert sum(out["word_tokens"]) == len(out["tokens"]) == len(out["text_score"]) == len(out["visual_score"])
        assert sum(out["word_tokens"]) == len(processor.tokenizer(record["cot"])["input_ids"])  # every CoT token
        for name in ("word_text_score", "word_visual_score", "word_gain_score", "word_tokens", "word_lead_tokens"):
            assert len(out[name]) == len(out["words"])
        assert all(0 < v <= 1 for v in out["visual_score"])
        expected = _surprisal(model, processor, record, image_dataset.parent)
        assert out["text_score"] == pytest.approx(expected, abs=1e-4)
        blind = _surprisal(model, processor, record, image_dataset.parent, n_images=0)
        gain = [b - s for b, s in zip(blind, expected, strict=True)]
        assert out["gain_score"] == pytest.approx(gain, abs=1e-4)
    assert model.config.get_text_config()._attn_implementation == "sdpa"


def test_batching_does_not_change_the_scores(tiny_random, image_dataset):
    records = read_records(image_dataset)
    one = score_records(tiny_random, records, image_dataset.parent, batch_size=1, progress=False)
    three = score_records(tiny_random, records, image_dataset.parent, batch_size=3, progress=False)
    for a, b in zip(one, three, strict=True):
        assert a["visual_score"] == pytest.approx(b["visual_score"], abs=1e-4)
        assert a["text_score"] == pytest.approx(b["text_score"], abs=1e-4)
        assert "gain_score" not in a


def test_the_stage_decodes_each_image_twice_and_tokenises_each_reply_twice(tiny_random, image_dataset, tmp_path,
                                                                            monkeypatch):
    """Once to check the context before any work, once to score (it was three and four times)."""
    records = read_records(image_dataset)
    direct = score_records(tiny_random, records, image_dataset.parent, batch_size=2, progress=False)
    tokenizer = tiny_random.processor.tokenizer
    decoded, tokenised = [], []

    def counted_load(path):
        decoded.append(path)
        return load_image(path)

    def counted_call(self, text=None, *args, **kwargs):
        tokenised.append(text)
        return call(self, text, *args, **kwargs)

    call = type(tokenizer).__call__
    monkeypatch.setattr(encoding, "load_image", counted_load)
    monkeypatch.setattr(type(tokenizer), "__call__", counted_call)
    staged = score(tiny_random, records, image_dataset.parent, tmp_path / "scores.jsonl", batch_size=2,
                   progress=False)
    paths = [path for record in records for path in image_paths(record, image_dataset.parent)]
    assert sorted(decoded) == sorted(2 * paths)
    for record in records:
        reply = prompts.response(record["cot"], record["answer"])
        # Each time alone (its words and tokens) and closed by the end of turn (where it lies in the batch).
        assert tokenised.count(reply) == tokenised.count(reply + tokenizer.eos_token) == 2
    assert [{k: v for k, v in record.items() if k != "image_root"} for record in staged] == direct


def test_a_record_longer_than_the_context_is_refused_before_any_work(tiny_random, image_dataset, monkeypatch, tmp_path):
    records = read_records(image_dataset)
    monkeypatch.setattr(tiny_random.model.config.get_text_config(), "max_position_embeddings", 10)
    with pytest.raises(BadInput, match="record 'r0': its prompt is [0-9]+ tokens, longer than the model's context"):
        score_records(tiny_random, records, image_dataset.parent, progress=False)
    with pytest.raises(BadInput, match="record 'r0'"):
        score(tiny_random, records, image_dataset.parent, tmp_path / "out" / "scores.jsonl", progress=False)
    assert not (tmp_path / "out").exists()  # no journal


def test_key_layers_choose_the_visual_path(tiny_random, image_dataset):
    records = read_records(image_dataset)[:1]
    assert default_key_layers(tiny_random.family, tiny_random.model.config) == [0, 1]
    every = score_records(tiny_random, records, image_dataset.parent, progress=False)[0]
    upper = score_records(tiny_random, records, image_dataset.parent, visual=VisualPath(key_layers=(1,)),
                          progress=False)[0]
    assert every["text_score"] == upper["text_score"] and every["visual_score"] != upper["visual_score"]
    with pytest.raises(BadInput, match="subset of"):
        score_records(tiny_random, records, image_dataset.parent, visual=VisualPath(key_layers=(7,)), progress=False)


def test_the_visual_path_options_change_the_visual_scores_only(tiny_random, image_dataset):
    records = read_records(image_dataset)[:1]
    default = score_records(tiny_random, records, image_dataset.parent, progress=False)[0]
    for visual in (VisualPath(row="own"), VisualPath(aggregation="head-max-layer-mean")):
        other = score_records(tiny_random, records, image_dataset.parent, visual=visual, progress=False)[0]
        assert other["text_score"] == default["text_score"] and other["visual_score"] != default["visual_score"]
    with pytest.raises(BadInput, match="the row is one of own, predictor"):
        score_records(tiny_random, records, image_dataset.parent, visual=VisualPath(row="next"), progress=False)


def test_the_prediction_is_scored_and_a_missing_answer_refused(tiny_random, image_dataset):
    record = read_records(image_dataset)[0]
    scored = score_records(tiny_random, [dict(record, prediction="no")], image_dataset.parent, progress=False)
    assert scored[0]["prediction"] == "no"
    with pytest.raises(BadInput, match="record r0: the chain of thought has no answer"):
        score_records(tiny_random, [dict(record, prediction=None)], image_dataset.parent, progress=False)


@pytest.mark.parametrize("cot", [None, "", "  "])
def test_a_record_without_a_cot_is_refused_as_the_cli_refuses_it(tiny_random, image_dataset, cot):
    record = {**read_records(image_dataset)[0], "cot": cot}
    with pytest.raises(BadInput, match="record 'r0' has no 'cot'"):
        score_records(tiny_random, [record], image_dataset.parent, progress=False)


def test_word_score_is_the_max_over_its_tokens():
    assert aggregate_words([0.1, 0.7, 0.3, 0.2], [0, 0, 1, 2], 4) == [0.7, 0.3, 0.2, 0.0]


def test_bfloat16_scores_match_float32_within_the_stated_tolerance(tmp_path):
    # Terse CoTs, the style vskip-tiny was trained on, where the bounds were measured.
    data = build(tmp_path / "synth", seed=3, n_train=0, n_val=0, n_test=3)["test"]
    scored = {}
    for dtype in ("float32", "bfloat16"):
        out = tmp_path / f"{dtype}.jsonl"
        assert main(["score", "--data", str(data), "--out", str(out), "--dtype", dtype]) == 0
        scored[dtype] = read_records(out)
        assert {record["precision"]["score"] for record in scored[dtype]} == {dtype}
    for field, (mean_bound, max_bound) in BF16_TOLERANCE.items():
        full = np.concatenate([record[field] for record in scored["float32"]])
        half = np.concatenate([record[field] for record in scored["bfloat16"]])
        difference = np.abs(full - half)
        assert 0 < difference.mean() <= mean_bound and difference.max() <= max_bound, field  # 0: it is bf16
    masks = {dtype: compress_records(records, ["vskip"], [0.5]) for dtype, records in scored.items()}
    agree = [a == b for x, y in zip(masks["float32"], masks["bfloat16"]) for a, b in zip(x["keep"], y["keep"])]
    assert sum(agree) / len(agree) >= BF16_KEEP_AGREEMENT


def test_the_dependency_path_reads_the_rows_that_write_the_answer(tiny_random, image_dataset):
    record = read_records(image_dataset)[0]
    item = _prepare(record, tiny_random.processor, image_dataset.parent)
    tokenizer = tiny_random.processor.tokenizer
    ids = tokenizer(item.example.reply, add_special_tokens=False)["input_ids"]
    answer_text = tokenizer.decode([ids[i] for i in item.answer_tokens])
    assert answer_text.strip() == str(record["answer"]).strip()
    scored = score_records(tiny_random, [record], image_dataset.parent, progress=False)[0]
    assert len(scored["word_dependency_score"]) == len(scored["words"])
    assert all(0 <= value <= 1 for value in scored["dependency_score"]) and max(scored["dependency_score"]) > 0
