"""`promptft data sample`: few-shot splits written in the source's format, reproducible, never replacing a
split already there."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from promptft.cli import app
from promptft.data import read_examples, sample_k_shot
from promptft.data.readers import read_rows


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def user_error(result, *fragments):
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    for fragment in fragments:
        assert fragment in message, message
    assert "Traceback" not in result.output


def write_tsv(path, n_per_label=6):
    rows = [
        f"r{label}{i}\tsentence {i} of class {label}\t{label}" for label in "abc" for i in range(n_per_label)
    ]
    path.write_text("id\tsentence\tlabel\n" + "\n".join(rows) + "\n")
    return path


def test_a_tsv_with_a_header_keeps_its_columns_and_matches_sample_k_shot(tmp_path):
    source = write_tsv(tmp_path / "pool.tsv")
    result = invoke("data", "sample", source, "--k", 2, "--seeds", "13,21", "--output", tmp_path / "out")
    assert result.exit_code == 0, result.output
    for seed in (13, 21):
        folder = tmp_path / "out" / f"2-{seed}"
        train_lines = (folder / "train.tsv").read_text().splitlines()
        assert train_lines[0] == "id\tsentence\tlabel"  # the header and the extra id column survive
        train, dev = read_rows(folder / "train.tsv"), read_rows(folder / "dev.tsv")
        assert len(train) == len(dev) == 6 and {r.cells["id"] for r in train}.isdisjoint(
            r.cells["id"] for r in dev
        )
        expected = sample_k_shot(read_examples(source), 2, seed)
        assert [r.example for r in train] == expected[0] and [r.example for r in dev] == expected[1]
        record = json.loads((folder / "sample.json").read_text())
        assert record["seed"] == seed and record["train"]["per_label"] == {"a": 2, "b": 2, "c": 2}
        assert record["source_rows"] == 18 and record["dev"]["rows"] == 6
    first = (tmp_path / "out" / "2-13" / "train.tsv").read_text()
    assert first != (tmp_path / "out" / "2-21" / "train.tsv").read_text()  # seeds differ


def test_a_headerless_csv_stays_headerless_and_reads_back_the_same(tmp_path):
    source = tmp_path / "pool.csv"  # LM-BFF's layout: label, then a text with commas (quoted)
    source.write_text("".join(f'{i % 2},"text {i}, with a comma"\n' for i in range(12)))
    result = invoke("data", "sample", source, "--k", 3, "--dev-k", 0, "--output", tmp_path / "out")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "out" / "3-42"
    assert not (folder / "dev.csv").exists()
    lines = (folder / "train.csv").read_text().splitlines()
    assert len(lines) == 6 and all(line[:2] in ("0,", "1,") for line in lines)
    assert read_examples(folder / "train.csv") == sample_k_shot(read_examples(source), 3, 42, dev_k=0)[0]


def test_multi_label_jsonl_gives_every_label_k_rows_in_train_and_dev(tmp_path):
    source = tmp_path / "pool.jsonl"
    labels = ["x", "y", "x,y", "z", "y,z", "x,z"] * 4
    source.write_text(
        "".join(json.dumps({"text": f"t{i}", "label": lab, "n": i}) + "\n" for i, lab in enumerate(labels))
    )
    result = invoke(
        "data", "sample", source, "--task", "multi_label", "--k", 2, "--output", tmp_path / "out", "--json"
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)[0]
    assert min(record["train"]["per_label"].values()) >= 2 and min(record["dev"]["per_label"].values()) >= 2
    train = [
        json.loads(line) for line in (tmp_path / "out" / "2-42" / "train.jsonl").read_text().splitlines()
    ]
    dev = [json.loads(line) for line in (tmp_path / "out" / "2-42" / "dev.jsonl").read_text().splitlines()]
    assert set(train[0]) == {"text", "label", "n"} and not {r["n"] for r in train} & {r["n"] for r in dev}


def test_errors_say_how_to_fix_them_and_keep_what_is_there(tmp_path):
    source = write_tsv(tmp_path / "pool.tsv", n_per_label=3)
    out = tmp_path / "out"
    user_error(invoke("data", "sample", source, "--k", 2, "--output", out), "has 3 examples", "use k <= 1")
    assert not out.exists()
    assert invoke("data", "sample", source, "--k", 1, "--output", out).exit_code == 0
    kept = (out / "1-42" / "train.tsv").read_text()
    user_error(invoke("data", "sample", source, "--k", 1, "--output", out), "already exists", "--overwrite")
    assert (out / "1-42" / "train.tsv").read_text() == kept
    result = invoke("data", "sample", source, "--k", 1, "--output", out, "--overwrite", "--dev-k", 2)
    assert result.exit_code == 0 and json.loads((out / "1-42" / "sample.json").read_text())["dev_k"] == 2
    user_error(invoke("data", "sample", source, "--seeds", "1,x", "--output", out), "--seeds takes")
    user_error(
        invoke("data", "sample", source, "--labels", "a,nope", "--k", 1, "--output", tmp_path / "o2"),
        "'nope'",
    )
    user_error(invoke("data", "sample", tmp_path / "nope.tsv", "--output", out), "not found")


def test_a_saved_dataset_is_sampled_to_json_lines_with_label_names(tmp_path):
    import datasets

    texts = [f"good {i}" for i in range(5)] + [f"bad {i}" for i in range(5)]
    ds = datasets.Dataset.from_dict({"sentence": texts, "label": [1] * 5 + [0] * 5})
    ds.cast_column("label", datasets.ClassLabel(names=["negative", "positive"])).save_to_disk(
        str(tmp_path / "ds")
    )
    result = invoke("data", "sample", tmp_path / "ds", "--k", 2, "--output", tmp_path / "out")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "out" / "2-42" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {r["label"] for r in rows} == {"negative", "positive"}


def test_the_documented_flow_sample_then_bench_a_task_of_your_own(tmp_path):
    """docs/how-to/fewshot-benchmark.md: `data sample` writes the <k>-<seed> layout a task table reads."""
    import yaml

    from tiny import tiny_llama

    model, tok = tiny_llama()
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    rows = [("5", f"a great film {i}") for i in range(8)] + [("1", f"a dull film {i}") for i in range(8)]
    (tmp_path / "reviews.csv").write_text("stars,review\n" + "".join(f"{s},{t}\n" for s, t in rows))
    (tmp_path / "test.csv").write_text("stars,review\n5,loved it\n1,hated it\n")
    result = invoke("data", "sample", tmp_path / "reviews.csv", "--label-column", "stars", "--k", 2,
                    "--seeds", "13,21", "--output", tmp_path / "splits")  # fmt: skip
    assert result.exit_code == 0, result.output
    table = {
        "data_dir": ".",
        "k": 2,
        "seeds": [13, 21],
        "tasks": {
            "reviews": {
                "name": "Reviews", "format": "csv", "train": "splits/{k}-{seed}/train.csv",
                "dev": "splits/{k}-{seed}/dev.csv", "test": "test.csv", "fields": {"text": "review"},
                "label": "stars", "labels": {"1": "negative", "5": "positive"},
                "label_words": {"negative": "terrible", "positive": "great"},
                "prompts": {"causal": {"template": "Review: {text}\nSentiment: {mask}"}},
            }
        },
    }  # fmt: skip
    (tmp_path / "my_tasks.yaml").write_text(yaml.safe_dump(table))
    (tmp_path / "bench.yaml").write_text(
        yaml.safe_dump({"methods": {"prompt_ft_lora": {"max_steps": 2, "eval_every": 1}}})
    )
    args = ["--tasks-file", tmp_path / "my_tasks.yaml", "--results-dir", tmp_path / "results"]
    result = invoke("bench", "run", "--model", tmp_path / "tiny", "--tasks", "reviews", "--methods",
                    "zero_shot,prompt_ft_lora", "--config", tmp_path / "bench.yaml", "--device", "cpu", *args)  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "results" / "fewshot_summary.json").read_text())
    cell = summary["tiny"]["reviews"]["prompt_ft_lora"]
    assert cell["n_seeds"] == 2 and "std" in cell
