"""AVA frame-level mAP, agreeing with the reference evaluators and much faster."""

from pipeline.evaluation.evaluator import (ClassResult, EvaluationResult, evaluate,
                                           evaluate_files)
from pipeline.evaluation.protocols import PROTOCOLS

__all__ = ["PROTOCOLS", "ClassResult", "EvaluationResult", "evaluate", "evaluate_files"]
