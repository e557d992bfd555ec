"""Data-parallel training: `accelerate launch -m promptft train` on 2 CPU processes (gloo) ends with the
weights that 1 process reaches on the same global batches."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import promptft
from promptft.config import DataConfig, JobConfig
from promptft.recipes.train import train as run_job
from tiny import tiny_llama

SENTENCES = [
    ("I loved it", "1"),
    ("a wonderful film", "1"),
    ("I hated it", "0"),
    ("an awful mess", "0"),
    ("good acting", "1"),
    ("boring and bad", "0"),
    ("it was great fun", "1"),
]  # 7 examples, batch 4: every other step has 3, split 2 + 1 across the processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_weights(run: Path) -> dict[str, torch.Tensor]:
    (path,) = (run / "best" / "model").glob("*.safetensors")
    return load_file(path)


def test_two_processes_reach_the_weights_of_one(tmp_path):
    model, tok = tiny_llama(seed=1)
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    rows = "".join(f"{text}\t{label}\n" for text, label in SENTENCES)
    (tmp_path / "train.tsv").write_text("sentence\tlabel\n" + rows)
    job = JobConfig()
    job.data = DataConfig(train=str(tmp_path / "train.tsv"), label_map={"0": "negative", "1": "positive"})
    job.prompt.label_words = {"negative": "terrible", "positive": "great"}
    job.model.name = str(tmp_path / "tiny")
    job.model.device = "cpu"
    job.model.finetune = "full"
    job.train.learning_rate = 5e-3
    job.train.batch_size = 4
    job.train.max_steps = 4
    job.train.eval_every = 2
    job.train.progress = False
    job.to_yaml(tmp_path / "job.yaml")

    job.output = str(tmp_path / "one")
    run_job(job)

    src = str(Path(promptft.__file__).parents[1])
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    launch += ["--main_process_port", str(free_port())]
    command = [*launch, "-m", "promptft", "train", "--config", str(tmp_path / "job.yaml")]
    done = subprocess.run(
        [*command, "-o", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "data-parallel on 2 processes" in " ".join(done.stderr.split())

    one, two = model_weights(tmp_path / "one"), model_weights(tmp_path / "two")
    untrained = load_file(next((tmp_path / "tiny").glob("*.safetensors")))
    moved = max((one[k] - untrained[k]).abs().max().item() for k in one)
    gaps = torch.cat([(one[k] - two[k]).abs().flatten() for k in one])
    # Float noise (other reduction orders), amplified where Adam divides a ~0 gradient by its own size, moves
    # a rare element: on one CPU up to 1.9e-4 after 4 steps that moved weights by 1.3e-2. Unsynchronised
    # gradients or a wrongly weighted loss move most of them by about as much as training does.
    assert moved > 1e-3 and (gaps > 1e-4).float().mean() < 1e-2 and gaps.max() < moved / 10, (
        moved,
        gaps.max(),
    )
    # one process wrote each file once: the metrics log has each evaluation once
    logged = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [2, 4]
    expected = [json.loads(line) for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    for got, want in zip(logged, expected, strict=True):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-3)  # the whole global batch's
    assert json.loads((tmp_path / "two" / "final_metrics.json").read_text())["steps"] == 4
