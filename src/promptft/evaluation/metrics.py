"""Classification metrics. The single-label objective owns them (objectives sit below evaluation in the
layering); they are re-exported here for the classifiers, the CLI and the benchmark."""

from __future__ import annotations

from promptft.objectives.single_label import classification_metrics

__all__ = ["classification_metrics"]
