"""benchmarks/bench_train_batching.py: steps on random batches against steps on length-grouped batches."""

from __future__ import annotations

from vskip.records import iter_jsonl


def test_grouped_batches_hold_less_padding_and_both_students_are_timed(benchmark, saved_tiny, image_dataset):
    # Each record at γ 0.5 and at γ 1: replies of two lengths, the short its CoT's first sentence.
    records = list(iter_jsonl(image_dataset))
    pairs = [(record, 0.5, f"{record['cot'].split('.')[0]}. {record['answer']}") for record in records] + [
        (record, 1.0, f"{record['cot']} {record['answer']}") for record in records]
    result = benchmark("bench_train_batching").paired_steps(
        str(saved_tiny), pairs, image_dataset.parent, dtype="float32", batch_size=2, steps=8, groups=4)
    assert result["random_over_grouped"]["speedup_items"] == 8
    assert all(seconds > 0 for seconds in result["mean_step_s"].values())
    assert result["padding_share"]["grouped"] < result["padding_share"]["random"]
    assert result["mean_tokens_per_batch"]["grouped"] < result["mean_tokens_per_batch"]["random"]
