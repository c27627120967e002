"""Downstream evaluation: fine-tune a pretrained model on the tasks Japanese models are judged by
(JGLUE, chABSA, livedoor) and score it on their dev splits.

    from ja_pretrain.downstream.suite import SuiteOptions, run_suite
    run_suite("runs/q/bert", SuiteOptions(tasks=["jsts"], data="JGLUE/datasets", out=Path("out")))

tasks: task specs; readers and data: the published files and splits; encoding and batches: the
model's inputs, built once; kinds: one module per kind of task (classification and regression,
multiple choice, extractive QA, token classification), each implementing one protocol (encode,
head, collect predictions, score); prediction_scores: accuracy, macro-F1 and correlations;
finetune: one training run; suite: the grid of runs and the files written; published and
scorecard: the table beside published reference figures.
"""
