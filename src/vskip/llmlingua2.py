"""LLMLingua-2's keep probability of each CoT word: the paper's text-centric baseline (gate method `llmlingua2`).

LLMLingua-2 (Pan et al., 2024) is a token classifier, `microsoft/llmlingua-2-xlm-roberta-large-meetingbank`,
whose label 1 says "keep". We compute a word's probability as its compressor does (llmlingua 0.2.2,
`PromptCompressor.compress_prompt_llmlingua2`):

- the text's tokens (`tokenizer.tokenize`) are cut into chunks of at most 510, each ending at the last "." or
  "\\n" token it can reach (`__chunk_context`);
- each chunk is framed as `FRAME` says and classified alone: `p(token) = softmax(logits)[1]` (`__get_context_prob`);
- a word's probability is the mean of its tokens' (`token_to_word="mean"`), special tokens left out
  (`__merge_token_to_word`).

Two differences make it one more ranking beside vskip's others: words are vskip's whitespace words
(LLMLingua-2 makes a word of each punctuation token too: "mats." is one word here, two there), and the budget
is the gate's fill rule over the ranking (LLMLingua-2 keeps the words above a percentile of the probabilities:
a prefix of the same ranking, sized by its count of GPT-3.5 tokens). LLMLingua-2 also writes each chunk back
to text and tokenizes it again, which gives the same tokens except where a chunk of a text over 510 tokens
starts inside a word.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from .encoding import token_word_index, word_spans
from .errors import UnsupportedModel
from .models.loading import check_model_source, default_device, first_line, load_config, refuse_pickle, resolve

PUBLISHED = "microsoft/llmlingua-2-xlm-roberta-large-meetingbank"
# The most positions LLMLingua-2 classifies at once; a chunk holds two fewer, for its frame.
MAX_LENGTH = 512
CHUNK_TOKENS = MAX_LENGTH - 2
CHUNK_ENDS = (".", "\n")
# LLMLingua-2's compressor frames every chunk with these strings whatever the classifier (its TokenClfDataset's
# default, mBERT's); XLM-RoBERTa's tokenizer reads both as its unknown token, though its training script framed
# with <s> and </s>. We frame as the compressor does, so the probabilities are those its published results
# come from.
FRAME = ("[CLS]", "[SEP]")


@dataclass
class Classifier:
    model: torch.nn.Module
    tokenizer: object
    path: str


def load_classifier(
    name_or_path: str, *, device: str | torch.device | None = None, allow_pickle: bool = False,
    trust_remote_code: bool = False,
) -> Classifier:
    """A token classifier with two labels (1: keep) and its tokenizer, in float32 and eval mode, as LLMLingua-2
    loads `PUBLISHED` (a directory or hub id); `UnsupportedModel` or `BadInput` in one line where it cannot be."""
    check_model_source(name_or_path)
    path = resolve(name_or_path)
    config = load_config(path, trust_remote_code=trust_remote_code)
    architectures = config.architectures or []
    if config.num_labels != 2 or not any(name.endswith("ForTokenClassification") for name in architectures):
        raise UnsupportedModel(
            f"{path}: not a token classifier with two labels ({', '.join(architectures) or 'no architecture'}, "
            f"{config.num_labels} labels); LLMLingua-2's is {PUBLISHED}"
        )
    if not allow_pickle:
        refuse_pickle(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForTokenClassification.from_pretrained(
            path, dtype=torch.float32, use_safetensors=None if allow_pickle else True,
            trust_remote_code=trust_remote_code,
        )
    except (OSError, ValueError) as err:
        raise UnsupportedModel(f"{path}: the classifier could not be loaded ({first_line(err)})") from None
    model.to(default_device() if device is None else device).eval()
    return Classifier(model, tokenizer, path)


def chunks(pieces: Sequence[str]) -> list[slice]:
    """LLMLingua-2's chunks of a text's tokens: while more than `CHUNK_TOKENS` are left, the next chunk ends at the
    last `CHUNK_ENDS` token among the following `CHUNK_TOKENS` (or takes them all and one more, where there is
    none); the rest is the last chunk."""
    spans, start = [], 0
    while len(pieces) - start > CHUNK_TOKENS:
        last = start + CHUNK_TOKENS
        end = next((i for i in range(last, start, -1) if pieces[i] in CHUNK_ENDS), last)
        spans.append(slice(start, end + 1))
        start = end + 1
    return spans + [slice(start, len(pieces))] if start < len(pieces) else spans


@torch.no_grad()
def word_keep_probabilities(classifier: Classifier, text: str) -> list[float]:
    """One probability per whitespace word of `text` (`encoding.word_spans`): the mean over the word's tokens of
    the classifier's p(keep) (see the module); 0.0 for a word with no token but special ones."""
    tokenizer, model = classifier.tokenizer, classifier.model
    pieces = tokenizer.tokenize(text)
    ids = tokenizer.convert_tokens_to_ids(pieces)
    start, end = tokenizer.convert_tokens_to_ids(list(FRAME))
    device = next(model.parameters()).device
    probabilities = []
    for chunk in chunks(pieces):
        # A chunk of CHUNK_TOKENS + 1 loses its end frame, as LLMLingua-2 cuts every input to MAX_LENGTH.
        framed = torch.tensor([[start, *ids[chunk], end][:MAX_LENGTH]], device=device)
        logits = model(input_ids=framed).logits[0, 1 : 1 + chunk.stop - chunk.start]
        probabilities += logits.float().softmax(-1)[:, 1].tolist()
    n_words = len(word_spans(text))
    sums, counts = [0.0] * n_words, [0] * n_words
    special = set(tokenizer.all_special_ids)
    for token, word, probability in zip(ids, token_word_index(tokenizer, text, text), probabilities, strict=True):
        if token not in special:
            sums[word] += probability
            counts[word] += 1
    return [total / count if count else 0.0 for total, count in zip(sums, counts, strict=True)]
