"""Evaluation: the contrastive text-motion evaluator, the public T2M evaluator, the metrics and
the protocol that scores a checkpoint (SPEC 4).

    report = evaluate("runs/mlagen/export", "data/humanml3d", "runs/evaluator/export")
    report.save("results.json", "results.md")

Modules: ``evaluator`` (our model, InfoNCE, save/load), ``t2m`` (Guo et al.'s evaluator from a
user's files, loaded without unpickling code), ``metrics`` (pure functions on embeddings),
``run`` (replications, generation, the report and ``python -m training evaluate``).
"""

from training.evaluation.evaluator import (
    Evaluator,
    EvaluatorConfig,
    TextMotionEvaluator,
    info_nce_loss,
    load_evaluator,
    save_evaluator,
)
from training.evaluation.metrics import Interval, confidence_interval
from training.evaluation.run import Embedder, Protocol, Report, evaluate, main_evaluate

__all__ = [
    "Embedder",
    "Evaluator",
    "EvaluatorConfig",
    "Interval",
    "Protocol",
    "Report",
    "TextMotionEvaluator",
    "confidence_interval",
    "evaluate",
    "info_nce_loss",
    "load_evaluator",
    "main_evaluate",
    "save_evaluator",
]
