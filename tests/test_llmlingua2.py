"""LLMLingua-2's keep probabilities on a tiny random XLM-RoBERTa classifier: the formula, its chunks, the plumbing
from `vskip score --llmlingua2-model` to `compress --methods llmlingua2`, the refusals, and (where the llmlingua
package is installed) the same keep decisions as its own compressor."""

from __future__ import annotations

import re

import pytest
import torch
from transformers import XLMRobertaConfig, XLMRobertaForTokenClassification, XLMRobertaTokenizer

from vskip.cli import main
from vskip.compress import compress_records
from vskip.errors import BadInput, UnsupportedModel
from vskip.gate import WordScores, keep_mask
from vskip.llmlingua2 import CHUNK_TOKENS, chunks, load_classifier, word_keep_probabilities
from vskip.records import read_records
from vskip.score import score

VOCABULARY = "i see a red blue green circle star square there is the tea jam costs plus makes how many cat sat on mat"
# A word outside the vocabulary ("catalog") takes several tokens, a number a lone "▁" before its digits, and a
# letter the vocabulary lacks ("H") the unknown token, which LLMLingua-2 leaves out of the mean.
TEXT = "I see a catalog of 12 red stars Hello there"


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    """A random two-label XLM-RoBERTa token classifier with a small Unigram vocabulary, saved as a checkpoint.
    Its directory's name says xlm-roberta-large, as the llmlingua package needs to read it."""
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("<mask>", 0.0)]
    vocab += [(f"▁{word}", -2.0) for word in VOCABULARY.split()] + [("▁", -3.0), (".", -3.0), (",", -3.0)]
    vocab += [(char, -5.0) for char in "abcdefghijklmnopqrstuvwxyzI0123456789"]
    tokenizer = XLMRobertaTokenizer(vocab=vocab)
    torch.manual_seed(0)
    # Weights large enough that a token's probability depends on its context and on the frame; at the default
    # scale (0.02) each is its own embedding's alone, and a wrong frame would go unseen.
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=520, num_labels=2, initializer_range=0.5, pad_token_id=tokenizer.pad_token_id,
    )
    path = tmp_path_factory.mktemp("llmlingua2") / "tiny-xlm-roberta-large"
    XLMRobertaForTokenClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def classifier(classifier_dir):
    return load_classifier(str(classifier_dir), device="cpu")


def keep_probabilities_by_hand(classifier, words: list[str]) -> list[float]:
    """LLMLingua-2's formula read by hand: the words' tokens, each word tokenized alone, between two unknown tokens
    (what XLM-RoBERTa's tokenizer makes of the "[CLS]" and "[SEP]" LLMLingua-2 frames them with); p(keep) =
    softmax(logits)[1]; a word's probability the mean over its tokens that are not the unknown token."""
    tokenizer = classifier.tokenizer
    pieces = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(word)) for word in words]
    unknown = tokenizer.unk_token_id
    ids = torch.tensor([[unknown, *(token for word in pieces for token in word), unknown]])
    with torch.no_grad():
        keep = classifier.model(input_ids=ids).logits[0, 1:-1].softmax(-1)[:, 1].tolist()
    out = []
    for word in pieces:
        kept = [p for token, p in zip(word, keep[: len(word)]) if token != unknown]
        keep = keep[len(word) :]
        out.append(sum(kept) / len(kept))
    return out


def test_a_word_keeps_the_mean_keep_probability_of_its_tokens(classifier):
    tokenizer = classifier.tokenizer
    assert tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"]) == [tokenizer.unk_token_id] * 2
    assert len(tokenizer.tokenize("catalog")) > 1 and tokenizer.tokenize("12")[0] == "▁"
    assert tokenizer.unk_token_id in tokenizer.convert_tokens_to_ids(tokenizer.tokenize("Hello"))
    probabilities = word_keep_probabilities(classifier, TEXT)
    assert probabilities == pytest.approx(keep_probabilities_by_hand(classifier, TEXT.split()), abs=1e-6)
    assert len(set(probabilities)) == len(probabilities)


def test_chunks_end_at_the_last_full_stop_they_reach():
    assert chunks([]) == [] and chunks(["a"] * CHUNK_TOKENS) == [slice(0, CHUNK_TOKENS)]
    pieces = ["a"] * 1200
    pieces[300] = pieces[700] = "."
    assert chunks(pieces) == [slice(0, 301), slice(301, 701), slice(701, 1200)]
    # With no full stop in reach a chunk takes one token more, which loses its end frame (512 positions at most).
    assert chunks(["a"] * 1100) == [slice(0, 511), slice(511, 1022), slice(1022, 1100)]


def test_a_text_longer_than_a_chunk_is_classified_chunk_by_chunk(classifier):
    sentence = "the red cat sat on the blue mat."  # 9 tokens: 56 sentences fill the first chunk (504 tokens)
    assert len(classifier.tokenizer.tokenize(sentence)) == 9
    text = " ".join([sentence] * 100)
    first, rest = [sentence] * 56, [sentence] * 44
    by_hand = [p for part in (first, rest) for p in keep_probabilities_by_hand(classifier, " ".join(part).split())]
    assert word_keep_probabilities(classifier, text) == pytest.approx(by_hand, abs=1e-5)


def test_the_method_ranks_words_by_their_keep_probability_and_needs_them():
    scored = {"id": "r0", "cot": "a b c d", "words": list("abcd"), "word_tokens": [1, 1, 1, 1],
              "word_text_score": [9, 8, 0, 0], "word_visual_score": [0, 0, 0, 0]}
    (kept,) = compress_records([{**scored, "word_llmlingua2_score": [0.1, 0.9, 0.6, 0.2]}], ["llmlingua2"], [0.5])
    assert kept["compressed_cot"] == "b c"
    with pytest.raises(BadInput, match=r"record r0: method 'llmlingua2' needs llmlingua2 scores "
                                       r"\(word_llmlingua2_score\): score with --llmlingua2-model"):
        compress_records([scored], ["llmlingua2"], [0.5])


def test_score_and_compress_carry_the_keep_probabilities(saved_tiny, classifier_dir, classifier, image_dataset, capsys):
    scores, compressed = image_dataset.parent / "scores.jsonl", image_dataset.parent / "compressed.jsonl"
    assert main(["score", "--model", str(saved_tiny), "--data", str(image_dataset), "--out", str(scores),
                 "--llmlingua2-model", str(classifier_dir)]) == 0
    for record in read_records(scores):
        assert record["word_llmlingua2_score"] == pytest.approx(word_keep_probabilities(classifier, record["cot"]))
        assert len(record["word_llmlingua2_score"]) == len(record["words"])
    assert main(["compress", "--data", str(scores), "--methods", "llmlingua2,text,vskip", "--ratios", "0.5",
                 "--out", str(compressed)]) == 0
    methods = {record["method"] for record in read_records(compressed, unique=("id", "method"))}
    assert methods == {"llmlingua2", "text", "vskip"}


def test_a_journal_scored_with_another_classifier_is_not_resumed(tiny_random, classifier_dir, classifier, image_dataset,
                                                                 monkeypatch, capsys):
    out = image_dataset.parent / "scores.jsonl"
    records = read_records(image_dataset)
    calls = []

    def interrupted(model, text):  # at the second record: the journal holds the first, scored with the classifier
        calls.append(text)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return word_keep_probabilities(model, text)

    monkeypatch.setattr("vskip.score.word_keep_probabilities", interrupted)
    with pytest.raises(KeyboardInterrupt):
        score(tiny_random, records, image_dataset.parent, out, llmlingua2=classifier, batch_size=1, progress=False)
    results = score(tiny_random, records, image_dataset.parent, out, batch_size=1, progress=False)
    change = f"other settings (llmlingua2 {str(classifier_dir.resolve())!r} → None); starting afresh"
    assert change in capsys.readouterr().err
    assert not any("word_llmlingua2_score" in record for record in results)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("missing", "no such model directory"),
        ("vlm", "not a token classifier with two labels (Qwen2VLForConditionalGeneration"),
        ("hub", "nor in the hub cache, and HF_HUB_OFFLINE is set"),
    ],
)
def test_a_classifier_that_cannot_be_loaded_is_refused_in_one_line(source, message, saved_tiny, image_dataset,
                                                                   tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    name = {"missing": str(tmp_path / "none"), "vlm": str(saved_tiny), "hub": "someone/some-classifier"}[source]
    with pytest.raises((BadInput, UnsupportedModel), match="^" + re.escape(name)):
        load_classifier(name)
    argv = ["score", "--model", str(saved_tiny), "--data", str(image_dataset), "--out", str(tmp_path / "s.jsonl"),
            "--llmlingua2-model", name]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_keep_decisions_equal_the_llmlingua_packages(classifier_dir, classifier, monkeypatch):
    """The llmlingua package's own compressor keeps, at every rate, the words our ranking puts first. Its
    threshold counts GPT-3.5 tokens (tiktoken, downloaded on first use): here one per word, which changes
    how many words it keeps, never which come first."""
    pytest.importorskip("llmlingua")
    import tiktoken
    from llmlingua import PromptCompressor

    class OnePerWord:
        def encode(self, text: str) -> list[str]:
            return text.split()

    monkeypatch.setattr(tiktoken, "encoding_for_model", lambda name: OnePerWord())
    compressor = PromptCompressor(model_name=str(classifier_dir), use_llmlingua2=True, device_map="cpu")
    words = TEXT.split()
    ours = word_keep_probabilities(classifier, TEXT)
    for rate in (0.2, 0.4, 0.6, 0.8):
        labelled = compressor.compress_prompt_llmlingua2([TEXT], rate=rate, return_word_label=True)
        theirs = [line.rsplit(" ", 1)[1] == "1" for line in labelled["fn_labeled_original_prompt"].split("\t\t|\t\t")]
        assert len(theirs) == len(words) and any(theirs)
        ratio = sum(theirs) / len(words)
        assert keep_mask("llmlingua2", WordScores.of([1] * len(words), llmlingua2=ours), ratio) == theirs
