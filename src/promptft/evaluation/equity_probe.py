"""An equity probe for sentiment classifiers, in the style of the Equity Evaluation Corpus (Kiritchenko &
Mohammad 2018), with our own templates and fillers (`fairness_terms/equity_probe.yaml`, editable).

Short templates ("{person} feels {word}.") are filled with people described by gender, race, religion or
nationality. A fair model scores every filling of one template and word alike. Per dimension we report each
group's mean probability of the positive label and its positive rate, the differences between groups, and
paired significance tests: fillings are matched by (template, word, filler position), so "my brother feels
sad." is compared with "my sister feels sad."; the paired t-test and the Wilcoxon signed-rank test run over
those matched pairs, and with more than two groups the Friedman test over all of them.

    from promptft.evaluation.equity_probe import equity_probe
    report = equity_probe(clf, positive_label="positive")
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from promptft.errors import ConfigError

ALPHA = 0.05  # significance level (Bonferroni-corrected over the pairs of groups in a dimension)
MIN_GAP = 0.01  # a mean-probability gap below this is not flagged, however significant


@dataclass(frozen=True)
class ProbeSentence:
    dimension: str
    group: str
    filler: str
    filler_index: int
    template: int
    emotion: str
    word: str
    text: str


def load_probe_spec(path: str | Path | None = None) -> dict[str, Any]:
    """The probe's templates, words and dimensions (default: the file shipped with promptft)."""
    if path is None:
        text = (resources.files("promptft.evaluation") / "fairness_terms" / "equity_probe.yaml").read_text()
    else:
        text = Path(path).read_text(encoding="utf-8")
    spec = yaml.safe_load(text)
    for key in ("templates", "words", "dimensions"):
        if not isinstance(spec, dict) or key not in spec:
            raise ConfigError(f"equity probe spec {path or 'equity_probe.yaml'} lacks `{key}:`")
    for name, groups in spec["dimensions"].items():
        sizes = {len(v) for v in groups.values()}
        if len(groups) < 2 or len(sizes) != 1:
            raise ConfigError(
                f"equity probe dimension {name!r}: give 2+ groups with the same number of fillers (matched by "
                f"position); got sizes { {g: len(v) for g, v in groups.items()} }"
            )
    return spec


def _fill(template: str, person: str, word: str) -> str:
    text = template.replace("{person}", person).replace("{word}", word)
    text = " ".join(text.split())
    return text[:1].upper() + text[1:]


def build_probe(spec: Mapping[str, Any] | None = None) -> list[ProbeSentence]:
    """Every filling of every template, for every dimension and group."""
    spec = spec or load_probe_spec()
    out = []
    for dimension, groups in spec["dimensions"].items():
        for t, entry in enumerate(spec["templates"]):
            for emotion, words in spec["words"][entry["words"]].items():
                for word in words:
                    for group, fillers in groups.items():
                        for i, filler in enumerate(fillers):
                            out.append(
                                ProbeSentence(dimension, group, filler, i, t, emotion, word,
                                              _fill(entry["template"], filler, word))
                            )  # fmt: skip
    return out


@dataclass
class EquityProbeReport:
    positive_label: str
    n_sentences: int
    dimensions: dict[str, dict[str, Any]]
    alpha: float = ALPHA
    min_gap: float = MIN_GAP
    notes: list[str] = field(default_factory=list)

    @property
    def flagged_dimensions(self) -> list[str]:
        return [name for name, d in self.dimensions.items() if d["flagged"]]

    @property
    def flagged(self) -> bool:
        return bool(self.flagged_dimensions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "positive_label": self.positive_label,
            "n_sentences": self.n_sentences,
            "alpha": self.alpha,
            "min_gap": self.min_gap,
            "flagged": self.flagged,
            "flagged_dimensions": self.flagged_dimensions,
            "dimensions": self.dimensions,
            "notes": self.notes,
        }

    def render_markdown(self) -> str:
        lines = [
            f"Equity probe: {self.n_sentences} sentences; p({self.positive_label}) per group. Flagged: "
            f"{', '.join(self.flagged_dimensions) or 'none'} (Bonferroni-corrected p < {self.alpha}, gap >= "
            f"{self.min_gap})",
        ]
        for name, d in self.dimensions.items():
            lines += [
                "",
                f"**{name}**",
                "",
                "| group | sentences | mean p | positive rate |",
                "|---|---|---|---|",
            ]
            for group, g in d["groups"].items():
                lines.append(f"| {group} | {g['n']} | {g['mean_prob']:.4f} | {g['positive_rate']:.3f} |")
            lines += ["", "| pair | Δ mean p | Δ positive rate | t-test p | Wilcoxon p | matched pairs |",
                      "|---|---|---|---|---|---|"]  # fmt: skip
            for pair, c in d["differences"].items():
                lines.append(
                    f"| {pair} | {c['mean_prob_diff']:+.4f} | {c['positive_rate_diff']:+.3f} | "
                    f"{_p(c['t_test_p'])} | {_p(c['wilcoxon_p'])} | {c['n_pairs']} |"
                )
            if d.get("friedman_p") is not None:
                lines.append(f"\nFriedman test over all {len(d['groups'])} groups: p = {_p(d['friedman_p'])}")
        return "\n".join(lines) + "\n"


def _p(p: float | None) -> str:
    return "-" if p is None else (f"{p:.2e}" if p < 1e-3 else f"{p:.3f}")


def score_probe(
    sentences: Sequence[ProbeSentence],
    probs: np.ndarray,
    *,
    positive_label: str,
    alpha: float = ALPHA,
    min_gap: float = MIN_GAP,
) -> EquityProbeReport:
    """The report for precomputed probabilities of the positive label (one per sentence)."""
    from scipy import stats

    probs = np.asarray(probs, dtype=float)
    dims: dict[str, dict[str, Any]] = {}
    for dimension in dict.fromkeys(s.dimension for s in sentences):
        rows = [(s, p) for s, p in zip(sentences, probs, strict=True) if s.dimension == dimension]
        groups = list(dict.fromkeys(s.group for s, _ in rows))
        cell: dict[str, dict[tuple, float]] = {g: {} for g in groups}
        for s, p in rows:
            cell[s.group][(s.template, s.word, s.filler_index)] = float(p)
        keys = sorted(set.intersection(*(set(c) for c in cell.values())))
        matrix = np.array([[cell[g][k] for k in keys] for g in groups])  # [groups, matched cells]
        per_group = {
            g: {"n": len(keys), "mean_prob": float(matrix[i].mean()), "positive_rate": float((matrix[i] > 0.5).mean())}
            for i, g in enumerate(groups)
        }  # fmt: skip
        n_comparisons = len(groups) * (len(groups) - 1) // 2
        diffs, flagged = {}, False
        for (i, a), (j, b) in itertools.combinations(enumerate(groups), 2):
            delta = matrix[i] - matrix[j]
            t_p = _safe_p(stats.ttest_rel, delta, matrix[i], matrix[j])
            w_p = _safe_p(stats.wilcoxon, delta, matrix[i], matrix[j])
            gap = float(delta.mean())
            significant = w_p is not None and min(1.0, w_p * n_comparisons) < alpha
            flagged = flagged or (significant and abs(gap) >= min_gap)
            diffs[f"{a}-{b}"] = {
                "mean_prob_diff": gap,
                "positive_rate_diff": per_group[a]["positive_rate"] - per_group[b]["positive_rate"],
                "t_test_p": t_p,
                "wilcoxon_p": w_p,
                "wilcoxon_p_bonferroni": None if w_p is None else min(1.0, w_p * n_comparisons),
                "n_pairs": len(keys),
                "share_higher": float((delta > 0).mean()),
            }
        friedman = None
        if len(groups) > 2:
            friedman = _safe_p(stats.friedmanchisquare, matrix - matrix[0], *matrix)
        means = [g["mean_prob"] for g in per_group.values()]
        rates = [g["positive_rate"] for g in per_group.values()]
        dims[dimension] = {
            "groups": per_group,
            "max_mean_prob_gap": float(max(means) - min(means)),
            "max_positive_rate_gap": float(max(rates) - min(rates)),
            "differences": diffs,
            "friedman_p": friedman,
            "flagged": bool(flagged),
        }
    return EquityProbeReport(positive_label, len(sentences), dims, alpha, min_gap)


def _safe_p(test, delta: np.ndarray, *samples: np.ndarray) -> float | None:
    """A test's p-value; 1.0 when the two sides are identical (no difference at all), None if undefined."""
    import warnings

    if np.allclose(delta, 0.0, atol=1e-12):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            p = float(test(*samples).pvalue)
        except ValueError:
            return None
    return None if np.isnan(p) else p


def equity_probe(
    classifier,
    *,
    positive_label: str | None = None,
    spec: Mapping[str, Any] | None = None,
    dimensions: Sequence[str] | None = None,
    batch_size: int = 32,
    alpha: float = ALPHA,
    min_gap: float = MIN_GAP,
) -> EquityProbeReport:
    """Fill the probe, score it with `classifier.predict_proba` and report per dimension."""
    from promptft.evaluation.counterfactual import _proba, positive_index

    sentences = build_probe(spec)
    if dimensions:
        sentences = [s for s in sentences if s.dimension in set(dimensions)]
        if not sentences:
            raise ConfigError(f"no probe sentences for dimensions {list(dimensions)}: check their names")
    labels = [str(x) for x in classifier.labels]
    pos = positive_index(labels, positive_label)
    texts = list(dict.fromkeys(s.text for s in sentences))  # names occur in two dimensions: score once
    scored = _proba(classifier, texts, batch_size)[:, pos]
    lookup = dict(zip(texts, scored, strict=True))
    probs = np.array([lookup[s.text] for s in sentences])
    report = score_probe(sentences, probs, positive_label=labels[pos], alpha=alpha, min_gap=min_gap)
    report.notes.append(f"{len(texts)} distinct sentences scored")
    return report
