"""benchmarks/bench_train_precision.py: a float32-based and a bfloat16-based student's steps, side by side."""

from __future__ import annotations

from vskip.records import iter_jsonl


def test_both_students_take_the_same_steps_and_learn_alike(benchmark, saved_tiny, image_dataset):
    # Each record at γ 0.5, its reply the CoT's first sentence and the answer.
    pairs = [(record, 0.5, f"{record['cot'].split('.')[0]}. {record['answer']}")
             for record in iter_jsonl(image_dataset)]
    result = benchmark("bench_train_precision").paired_steps(str(saved_tiny), pairs, image_dataset.parent, 2, 3)
    assert result["float32_over_bfloat16"]["speedup_items"] == 3
    assert set(result["median_step_s"]) == {"float32", "bfloat16"}
    assert all(seconds > 0 for seconds in result["median_step_s"].values())
    # The same batches from the same adapter: bfloat16 moves the loss by rounding, not by learning something else.
    assert result["mean_abs_loss_difference"] < 0.05 * result["mean_loss"]["float32"]
