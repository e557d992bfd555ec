"""Metrics, diagnostics and reports."""

from promptft.evaluation.metrics import classification_metrics

__all__ = ["classification_metrics"]
