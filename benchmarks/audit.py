"""The data audit on every classification task of the benchmark's task table, on the shared data.

    PYTHONPATH=src python benchmarks/audit.py            # -> benchmarks/results/audit/<task>.json + README.md
    PYTHONPATH=src python benchmarks/audit.py sst-2 rte  # some tasks only

Per task: each seed's k-shot train and dev plus the task's test file (where shipped) are audited together,
so train/dev/test overlap, conflicts across splits and near duplicates are all checked. The prompt is the
causal adaptation the default model trains with, and truncation is checked with that model's tokenizer at
the benchmark's max_length (256) when the offline model is installed.

Blind-spot checks (issue #13): where the task's k-shot files were drawn from a pool that the shared data
also holds (SST-2: ALPS' train.tsv + dev.tsv split GLUE's train set), the pool is passed as a reference
split, so the report says how many k-shot rows are found there exactly and only after normalising; and
the k-shot rows are searched for *inside* test sentences (SST-2's train set holds phrases of sentences).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from promptft.bench.tasks import TaskSpec, load_tasks, read_split, split_path
from promptft.data import Example, read_examples
from promptft.evaluation import AuditReport, audit
from promptft.evaluation.similarity import normalise
from promptft.settings import data_dir

OUT = Path(__file__).resolve().parent / "results" / "audit"
MAX_LENGTH = 256  # the benchmark's max_length (bench/default.yaml)
MODEL = "smollm2-135m"
# Pools the k-shot samples were drawn from, where the shared data holds them (see data/README.md).
POOLS = {"sst-2": {"pool_train": "SST-2/train.tsv", "pool_dev": "SST-2/dev.tsv"}}
MIN_CONTAINED_WORDS = 4  # shorter phrases ("a great film") occur inside other sentences by chance


def tokenizer_or_none() -> Any:
    try:
        from transformers import AutoTokenizer

        from promptft.models.registry import is_ready, resolve_model

        if not is_ready(MODEL):
            return None
        return AutoTokenizer.from_pretrained(resolve_model(MODEL))
    except Exception as err:  # the audit still runs, without the truncation check
        print(f"no tokenizer ({err}); truncation is not checked", file=sys.stderr)
        return None


def contained_in(rows: list[Example], sentences: list[Example]) -> list[dict[str, Any]]:
    """k-shot rows of >= MIN_CONTAINED_WORDS words whose normalised text occurs inside a test sentence
    (padded with spaces, so only whole words match)."""
    haystack = [f" {normalise(' '.join(s.fields.values()))} " for s in sentences]
    out = []
    for i, ex in enumerate(rows):
        needle = normalise(" ".join(ex.fields.values()))
        if len(needle.split()) < MIN_CONTAINED_WORDS:
            continue
        hits = [j + 1 for j, h in enumerate(haystack) if f" {needle} " in h]
        exact = [j for j in hits if haystack[j - 1].strip() == needle]
        if hits and len(hits) > len(exact):
            out.append({"row": i + 1, "text": needle, "test_rows": hits[:5], "n_test_rows": len(hits)})
    return out


class PoolIndex:
    """A pool's rows as exact keys, normalised keys and character n-gram TF-IDF vectors (for the rows
    that match neither: a British spelling or an escaped slash is a different string)."""

    def __init__(self, pools: dict[str, list[Example]]):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.rows = [(name, i + 1, ex) for name, exs in pools.items() for i, ex in enumerate(exs)]
        self.exact = {tuple(ex.fields.values()) for _, _, ex in self.rows}
        self.texts = [normalise(" ".join(ex.fields.values())) for _, _, ex in self.rows]
        self.norm = set(self.texts)
        self.vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)
        self.matrix = self.vec.fit_transform(self.texts)

    def nearest(self, text: str) -> tuple[int, float]:
        sims = (self.matrix @ self.vec.transform([text]).T).toarray().ravel()
        best = int(sims.argmax())
        return best, float(sims[best])


def test_near_pool(test: list[Example], index: PoolIndex, threshold: float = 0.9) -> dict[str, Any]:
    """Test rows whose nearest pool row has a character n-gram cosine >= threshold (a reworded or
    re-tokenised copy of a test sentence in the pool the training sample was drawn from)."""
    texts = [normalise(" ".join(ex.fields.values())) for ex in test]
    sims = index.matrix @ index.vec.transform(texts).T  # pool x test, sparse
    best = sims.max(axis=0).toarray().ravel()
    arg = sims.argmax(axis=0).A.ravel()
    hits = []
    for j in (best >= threshold).nonzero()[0]:
        name, row, ex = index.rows[int(arg[j])]
        hits.append(
            {
                "row": f"test:{j + 1}",
                "text": texts[j],
                "nearest": f"{name}:{row}",
                "nearest_text": " ".join(ex.fields.values()),
                "cosine": round(float(best[j]), 3),
            }
        )
    return {"threshold": threshold, "rows": len(test), "near": len(hits), "matches": hits[:50]}


def found_in_pools(split: str, rows: list[Example], index: PoolIndex) -> dict[str, Any]:
    """How many rows occur in the pools: as they are, only after normalising (what exact matching alone
    misses: trailing spaces, punctuation), and for the rest the nearest pool row and its cosine."""
    n_exact = n_norm = 0
    unmatched = []
    for i, ex in enumerate(rows):
        text = normalise(" ".join(ex.fields.values()))
        n_exact += tuple(ex.fields.values()) in index.exact
        if text in index.norm:
            n_norm += 1
            continue
        best, cos = index.nearest(text)
        name, row, pool_ex = index.rows[best]
        unmatched.append(
            {
                "row": f"{split}:{i + 1}",
                "text": " ".join(ex.fields.values()),
                "nearest": f"{name}:{row}",
                "nearest_text": " ".join(pool_ex.fields.values()),
                "cosine": round(cos, 3),
                "same_label": pool_ex.label == ex.label,
            }
        )
    return {
        "rows": len(rows),
        "exact": n_exact,
        "after_normalising": n_norm,
        "near_match": sum(u["cosine"] >= 0.8 for u in unmatched),
        "not_found": sum(u["cosine"] < 0.8 for u in unmatched),
        "unmatched": unmatched,
    }


def rows_of(finding: dict[str, Any]) -> int:
    """Rows a finding is about: for an overlap, the rows of the first split (not the pool's copies)."""
    return int(finding.get("details", {}).get("rows_in_first", finding["count"]))


def audit_task(task: TaskSpec, root: Path, k: int, seeds: tuple[int, ...], tokenizer: Any) -> dict[str, Any]:
    prompt = task.prompt_for("causal")
    test = read_split(task, root / task.test) if task.test else None
    pools = {name: read_split(task, root / rel) for name, rel in POOLS.get(task.key, {}).items()}
    index = PoolIndex(pools) if pools else None
    per_seed: dict[str, Any] = {}
    test_only: list[dict[str, Any]] = []
    totals: Counter[str] = Counter()
    severities: dict[str, str] = {}
    contained: dict[str, Any] = {}
    provenance: dict[str, Any] = {}
    for seed in seeds:
        splits = {
            "train": read_split(task, split_path(task, "train", seed, k, root)),
            "dev": read_split(task, split_path(task, "dev", seed, k, root)),
        }
        if test is not None:
            splits["test"] = test
        report: AuditReport = audit(
            splits,  # as read: the causal prompts have no field transforms
            template=prompt.template,
            label_words=prompt.label_words,
            tokenizer=tokenizer,
            max_length=MAX_LENGTH,
            reference=pools,
            k=k,
        )
        data = report.to_dict()
        # Findings about the test file alone (or the test file and a pool) are the same for every seed:
        # keep them once.
        fixed = [f for f in data["findings"] if not {"train", "dev"} & set(f["splits"])]
        if not test_only:
            test_only = fixed
        data["findings"] = [f for f in data["findings"] if f not in fixed]
        for f in data["findings"]:
            key = f"{f['code']}[{','.join(f['splits'])}]"
            totals[key] += rows_of(f)
            severities[key] = f["severity"]
        per_seed[str(seed)] = data
        if index is not None:
            provenance[str(seed)] = {
                name: found_in_pools(name, splits[name], index) for name in ("train", "dev")
            }
        if test is not None:
            contained[str(seed)] = {name: contained_in(splits[name], test) for name in ("train", "dev")}
    for f in test_only:
        key = f"{f['code']}[{','.join(f['splits'])}]"
        totals[key] = rows_of(f)
        severities[key] = f["severity"]
    return {
        "task": task.name,
        "key": task.key,
        "files": {
            "train": task.train.format(k=k, seed="<seed>"),
            "dev": task.dev.format(k=k, seed="<seed>"),
            "test": task.test,
            "reference_pools": POOLS.get(task.key, {}),
        },
        "template": prompt.template,
        "label_words": prompt.label_words,
        "max_length": MAX_LENGTH if tokenizer is not None else None,
        "tokenizer": MODEL if tokenizer is not None else None,
        "headline": {
            "rows_by_finding": dict(sorted(totals.items())),
            "severity": dict(sorted(severities.items())),
            "errors": sum(d["summary"]["errors"] for d in per_seed.values())
            + sum(f["severity"] == "error" for f in test_only),
            "exit_codes": {seed: d["exit_code"] for seed, d in per_seed.items()},
            # k rows per label in every seed's train and dev (else an unbalanced_sample finding)
            "k_shot_balanced": all(
                d["stats"][split]["balanced"] and set(d["stats"][split]["label_counts"].values()) == {k}
                for d in per_seed.values()
                for split in ("train", "dev")
            ),
        },
        "test_findings": test_only,
        "k_shot_rows_found_in_pools": provenance or None,
        "test_rows_near_pool": test_near_pool(test, index) if index is not None and test else None,
        "k_shot_rows_inside_test_sentences": contained if test is not None else None,
        "seeds": per_seed,
    }


# Other labelled sets in the shared data that the task table does not hold: audited as they are (no
# prompt, so no truncation or label-word check). key -> (name, {split: file}, read options, multi-label).
EXTRA: dict[str, tuple[str, dict[str, str], dict[str, Any], bool]] = {
    "goemotions": (
        "GoEmotions",
        {"train": "goemotions/train.tsv", "dev": "goemotions/dev.tsv", "test": "goemotions/test.tsv"},
        {"fields": {"text": 0}, "label": 1, "header": False},
        True,
    ),
    "agnews": (
        "AG News",
        {"dev": "agnews/dev.tsv", "test": "agnews/test.tsv"},
        {"fields": {"text": 0}, "label": 1, "header": False},
        False,
    ),
    "imdb": (
        "IMDB",
        {"dev": "imdb/dev.json", "test": "imdb/test.json"},
        {"label_map": {"0": "positive", "1": "negative"}},
        False,
    ),
    "yelp-5": ("Yelp-5", {"dev": "yelp-5/dev.json", "test": "yelp-5/test.json"}, {}, False),
}


def audit_extra(key: str, root: Path) -> dict[str, Any]:
    name, files, options, multi = EXTRA[key]
    splits = {split: read_examples(root / rel, **options) for split, rel in files.items()}
    if key == "goemotions":  # label indices -> emotion names ("6,27" -> "confusion,neutral")
        names = (root / "goemotions" / "emotions.txt").read_text().split("\n")
        splits = {
            split: [
                Example(ex.fields, ",".join(names[int(i)] for i in str(ex.label).split(","))) for ex in exs
            ]
            for split, exs in splits.items()
        }
    report = audit(splits, multi_label=multi)
    data = report.to_dict()
    totals = {f"{f['code']}[{','.join(f['splits'])}]": rows_of(f) for f in data["findings"]}
    return {
        "task": name,
        "key": key,
        "files": files,
        "multi_label": multi,
        "headline": {
            "rows_by_finding": dict(sorted(totals.items())),
            "severity": {f"{f['code']}[{','.join(f['splits'])}]": f["severity"] for f in data["findings"]},
            "errors": data["summary"]["errors"],
            "exit_code": data["exit_code"],
        },
        "report": data,
    }


def readme(results: dict[str, dict[str, Any]], command: str) -> str:
    lines = [
        "# Data audit of the benchmark tasks",
        "",
        f"Written by `{command}` (see `benchmarks/audit.py`). Rows are summed over the 5 seeds' audits",
        "(for an overlap `[a,b]`: rows of `a` also in `b`),",
        "except findings about the test file alone (or with a pool), which are counted once. The data sets",
        "outside the task table (GoEmotions, AG News, IMDB, Yelp-5) are audited once, split by split. See each",
        "`<task>.json` for the rows, groups, messages and fixes.",
        "",
        "| task | finding | severity | rows |",
        "|---|---|---|---|",
    ]
    for res in results.values():
        head = res["headline"]
        for key, n in head["rows_by_finding"].items():
            lines.append(f"| {res['task']} | `{key}` | {head['severity'][key]} | {n} |")
    for res in results.values():
        prov = res.get("k_shot_rows_found_in_pools")
        if not prov:
            continue
        tot = Counter()
        for per_split in prov.values():
            for x in per_split.values():
                tot.update(
                    {k: x[k] for k in ("rows", "exact", "after_normalising", "near_match", "not_found")}
                )
        near = res["test_rows_near_pool"]
        lines += [
            "",
            f"## {res['task']}: where the k-shot rows come from (blind-spot check)",
            "",
            f"Pools: {', '.join(f'`{v}`' for v in res['files']['reference_pools'].values())}. Of the "
            f"{tot['rows']} k-shot train+dev rows (5 seeds), {tot['exact']} occur in a pool exactly, "
            f"{tot['after_normalising']} after normalising case, spaces and punctuation, {tot['near_match']} "
            f"more only as a near match (character n-gram cosine >= 0.8: spelling variants), and "
            f"{tot['not_found']} not at all. Exact matching alone would have missed "
            f"{tot['rows'] - tot['exact']}. Test rows with a near copy (cosine >= {near['threshold']}) in a "
            f"pool: {near['near']} of {near['rows']} (listed in the json).",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tasks", nargs="*", help="task keys (default: the task table's and EXTRA's)")
    args = parser.parse_args()
    root = data_dir()
    if root is None or not root.is_dir():
        sys.exit("no data: set PROMPTFT_DATA to the shared data folder")
    table = load_tasks()
    tokenizer = tokenizer_or_none()
    command = "PYTHONPATH=src python " + " ".join(["benchmarks/audit.py", *sys.argv[1:]])
    OUT.mkdir(parents=True, exist_ok=True)
    results = {}
    wanted = [t for t in args.tasks if t not in EXTRA]
    for task in table.select(wanted) if wanted or not args.tasks else []:
        start = time.perf_counter()
        res = audit_task(task, root, table.k, table.seeds, tokenizer)
        res["command"] = command
        res["seconds"] = round(time.perf_counter() - start, 1)
        tmp = OUT / f".{task.key}.json.tmp"
        tmp.write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n")
        tmp.replace(OUT / f"{task.key}.json")
        results[task.key] = res
        print(f"{task.name}: {res['headline']['rows_by_finding']} ({res['seconds']} s)")
    extras = [t for t in args.tasks if t in EXTRA] if args.tasks else list(EXTRA)
    for key in extras:
        start = time.perf_counter()
        res = audit_extra(key, root)
        res["command"] = command
        res["seconds"] = round(time.perf_counter() - start, 1)
        tmp = OUT / f".{key}.json.tmp"
        tmp.write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n")
        tmp.replace(OUT / f"{key}.json")
        results[key] = res
        print(f"{res['task']}: {res['headline']['rows_by_finding']} ({res['seconds']} s)")
    if not args.tasks:
        (OUT / "README.md").write_text(readme(results, command))


if __name__ == "__main__":
    main()
