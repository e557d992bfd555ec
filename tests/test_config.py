"""The typed config system (promptft.config): nearest-key errors, `--set`, every adapter through the
job schema and the CLI, bench options validated as partial jobs, and cheap imports."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from promptft.adapters import ADAPTERS
from promptft.bench import load_config
from promptft.cli import app
from promptft.config import (
    JobConfig,
    TrainConfig,
    leaf_keys,
    load_job,
    method_job,
    parse_assignments,
)
from promptft.errors import ConfigError
from tiny import tiny_llama

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def user_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    assert message.startswith("error:"), message
    for fragment in fragments:
        assert fragment in message, message
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------------------------------------------
# unknown keys name the nearest valid one


@pytest.mark.parametrize(
    "data, fragments",
    [
        ({"data": {"feilds": {}}}, ["'data.feilds'", "did you mean 'data.fields'", "valid keys of 'data'"]),
        ({"trian": {}}, ["'trian'", "did you mean 'train'", "data, task, prompt, model, train, output"]),
        ({"train": {"warmup_ratoi": 0.1}}, ["did you mean 'train.warmup_ratio'"]),
        ({"prompt": {"templat": "x"}}, ["did you mean 'prompt.template'"]),
        (
            {"model": {"finetune": "prompt_tuning", "adapter": {"num_virtual_tokes": 8}}},
            ["prompt_tuning option", "did you mean 'model.adapter.num_virtual_tokens'", "init_text"],
        ),
        (
            {"model": {"lora": {"alpah": 4}}},
            ["did you mean 'model.lora.alpha'", "valid keys of 'model.lora'"],
        ),
        ({"model": {"finetune": "prompt_tunning"}}, ["unknown adapter", "did you mean 'prompt_tuning'"]),
    ],
)
def test_unknown_job_keys_name_the_nearest_valid_key(data, fragments):
    with pytest.raises(ConfigError) as err:
        JobConfig.parse(data)
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)


@pytest.mark.parametrize(
    "data, fragments",
    [
        ({"train": {"max_steps": "many"}}, ["train.max_steps must be an integer", "'many'"]),
        ({"train": {"learning_rate": 0}}, ["learning_rate must be > 0"]),
        ({"model": {"method": "promt"}}, ["model.method must be one of 'prompt', 'head'"]),
        ({"model": {"lora": {"r": 0}}}, ["model.lora", "r must be >= 1"]),
        ({"model": {"finetune": "lora", "adapter": {"r": 0}}}, ["model.adapter", "r must be >= 1"]),
        (
            {"model": {"finetune": "p_tuning", "adapter": {"encoder": "GRU"}}},
            ["model.adapter.encoder must be one of 'MLP', 'LSTM'"],
        ),
        ({"prompt": {"label_words": {"a": True}}}, ["prompt.label_words.a must be a string", "quote"]),
        ({"train": 3}, ["train must be a mapping"]),
        ({"prompt": {"max_length": 0}}, ["prompt.max_length must be >= 1"]),
    ],
)
def test_wrong_types_and_values_are_one_line_config_errors(data, fragments):
    with pytest.raises(ConfigError) as err:
        JobConfig.parse(data)
    message = str(err.value)
    assert "\n" not in message and "pydantic" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_train_config_is_the_one_schema_for_python_users():
    config = TrainConfig(learning_rate=3e-4, max_steps=60)
    assert config.learning_rate == 3e-4 and config.batch_size == 8  # defaults from the same schema
    assert JobConfig().train == TrainConfig(learning_rate=ADAPTERS["full"].default_learning_rate)
    with pytest.raises(ConfigError, match="did you mean 'max_steps'"):
        TrainConfig(max_stepz=3)
    assert config.replace(seed=1).seed == 1 and config.seed == 42


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_default_learning_rate_follows_every_adapter(name):
    assert (
        load_job(None, {"model.finetune": name}).train.learning_rate == ADAPTERS[name].default_learning_rate
    )
    assert load_job(None, {"model.finetune": name, "train.learning_rate": 0.5}).train.learning_rate == 0.5
    assert JobConfig.parse({"model": {"finetune": "lora"}}).train.learning_rate == 3e-4
    assert JobConfig.parse({"model": {"finetune": "full"}}).train.learning_rate == 1e-5


def test_adapter_options_round_trip_through_yaml(tmp_path):
    job = load_job(None, {}, ["model.finetune=prompt_tuning", "model.adapter.num_virtual_tokens=8"])
    assert job.model.adapter == {"num_virtual_tokens": 8, "init_text": None}  # stored in full
    assert job.model.adapter_settings().num_virtual_tokens == 8
    job.to_yaml(tmp_path / "job.yaml")
    assert JobConfig.from_yaml(tmp_path / "job.yaml") == job
    assert "lora" not in yaml.safe_load((tmp_path / "job.yaml").read_text())["model"]  # LoRA's only
    lora = load_job(None, {"model.finetune": "lora"}, ["model.adapter.r=4"])  # model.adapter is model.lora
    assert lora.model.lora.r == 4 and lora.model.adapter == {}


# ---------------------------------------------------------------------------------------------------------
# --set reaches every field

# One non-default value per field of the schema. A new field must be added here, so it is reachable too.
SAMPLES = {
    "data.train": "a.tsv",
    "data.dev": "b.tsv",
    "data.test": "c.tsv",
    "data.fields": {"premise": "sentence1", "hypothesis": 2},
    "data.label": 0,
    "data.label_map": {"0": "negative", "1": "positive"},
    "data.header": False,
    "data.format": "tsv",
    "task.type": "multi_label",
    "task.label_separator": ";",
    "task.label_columns": ["joy", 3],
    "task.allow_empty": True,
    "task.threshold": 0.3,
    "task.tune_thresholds": False,
    "task.value_range": (0.0, 5.0),
    "prompt.template": "Review: {text}\nSentiment: {mask}",
    "prompt.label_words": {"negative": "bad", "positive": ["good", "great"]},
    "prompt.token_reduction": "mean",
    "prompt.word_reduction": "mean",
    "prompt.answers": ("nope", "yep"),
    "prompt.train_negatives": 3,
    "prompt.calibrate": "contextual",
    "prompt.content_free": ["N/A", "nothing"],
    "prompt.max_length": 64,
    "prompt.demonstrations": {"selection": "similar", "n_sets": 2},
    "model.name": "some/model",
    "model.kind": "masked",
    "model.method": "head",
    "model.finetune": "lora",
    "model.adapter": {"r": 2},
    "model.lora": {"r": 4},
    "model.device": "cpu",
    "train.learning_rate": 0.002,
    "train.batch_size": 3,
    "train.grad_accum": 2,
    "train.max_steps": 7,
    "train.warmup_ratio": 0.1,
    "train.weight_decay": 0.01,
    "train.max_grad_norm": 0.5,
    "train.eval_every": 3,
    "train.eval_batch_size": 5,
    "train.eval_at_start": False,
    "train.refit": True,
    "train.refit_scale": "epochs",
    "train.tie_break": "dev_loss",
    "train.max_minutes": 1.5,
    "train.early_stopping_patience": None,
    "train.metric": "macro_f1",
    "train.seed": 7,
    "train.group_by_length": False,
    "train.checkpoint_every": 2,
    "train.progress": False,
    "train.mixed_precision": "bf16",
    "output": "runs/x",
}
ADAPTER_SAMPLES = {
    "lora": {
        "r": 2,
        "alpha": 4,
        "dropout": 0.1,
        "target_modules": ["q_proj"],
        "top_layers": 1,
        "use_dora": True,
        "modules_to_save": ["score"],
        "label_embeddings": False,  # True cannot go with top_layers: reached in the test below
    },
    "ia3": {"target_modules": ["k_proj", "down_proj"], "feedforward_modules": ["down_proj"]},
    "prompt_tuning": {"num_virtual_tokens": 3, "init_text": "a review"},
    "p_tuning": {"num_virtual_tokens": 3, "encoder": "LSTM", "encoder_hidden_size": 16},
    "prefix_tuning": {"num_virtual_tokens": 3, "projection": True, "encoder_hidden_size": 16},
}


def _get(job: JobConfig, key: str):
    value = job
    for part in key.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value


def _as_set(key: str, value) -> str:
    text = value.replace("\n", "\\n") if isinstance(value, str) else json.dumps(value)  # JSON is YAML
    return f"{key}={text}"


def test_every_schema_field_is_reachable_by_set():
    assert set(leaf_keys(JobConfig)) == set(SAMPLES)
    for key, value in SAMPLES.items():
        sets = [_as_set(key, value)]
        if key == "model.adapter":  # the default adapter (full) has no options: set one that has
            sets.insert(0, "model.finetune=prompt_tuning")
            value = {"num_virtual_tokens": 2}
            sets[1] = _as_set(key, value)
        if key == "task.value_range":  # options of one task type need that type
            sets.insert(0, "task.type=regression")
        elif key == "task.label_columns":
            sets.insert(0, "task.type=multi_label")
        elif key == "prompt.train_negatives":  # sampled questions are yes/no's
            sets.insert(0, "model.method=yes_no")
        got = _get(load_job(None, {}, sets), key)
        if key == "model.lora":
            assert got.r == 4
        elif key == "prompt.demonstrations":
            assert (got.selection, got.n_sets) == ("similar", 2)
        elif key == "model.adapter":
            assert got == {"num_virtual_tokens": 2, "init_text": None}
        else:
            assert got == value, key
    with pytest.raises(ConfigError, match="unknown full option 'model.adapter.r'"):
        load_job(None, {}, [_as_set("model.adapter", {"r": 2})])


@pytest.mark.parametrize("name", [n for n in ADAPTERS if n not in ("full", "none", "label_embeddings")])
def test_every_adapter_option_is_reachable_by_set(name):
    valid = [f.name for f in fields(ADAPTERS[name])]
    assert set(ADAPTER_SAMPLES[name]) == set(valid)  # a new option must be added here
    sets = [f"model.finetune={name}"] + [
        _as_set(f"model.adapter.{k}", v) for k, v in ADAPTER_SAMPLES[name].items()
    ]
    settings = load_job(None, {}, sets).model.adapter_settings()
    for key, value in ADAPTER_SAMPLES[name].items():
        assert getattr(settings, key) == value, key


def test_lora_label_embeddings_is_reachable_by_set():
    for key in ("model.adapter.label_embeddings", "model.lora.label_embeddings"):
        job = load_job(None, {}, ["model.finetune=lora", f"{key}=true"])
        assert job.model.adapter_settings().label_embeddings is True, key


def test_set_values_are_yaml_typed_and_flags_come_first():
    assert parse_assignments(["a.b=8", "c=null", "d=[x, y]", "e=1e-4", "f=hello world", "g={0: neg}"]) == {
        "a.b": 8,
        "c": None,
        "d": ["x", "y"],
        "e": "1e-4",  # YAML 1.1 reads a float without a dot as a string; the schema takes it as the number
        "f": "hello world",
        "g": {0: "neg"},
    }
    assert load_job(None, {}, ["train.learning_rate=1e-4"]).train.learning_rate == 1e-4
    templates = [
        "prompt.template={text}",
        "prompt.template={text} It was {mask}.",
        "prompt.template='{text}\\n{mask}'",
    ]
    assert [parse_assignments([t])["prompt.template"] for t in templates] == [
        "{text}",
        "{text} It was {mask}.",
        "{text}\n{mask}",
    ]  # taken as written (braces are not YAML mappings), \n a newline
    job = load_job(None, {"train.max_steps": 5}, ["train.max_steps=9"])
    assert job.train.max_steps == 9  # --set wins over the flags
    with pytest.raises(ConfigError, match="write KEY=VALUE"):
        parse_assignments(["train.max_steps"])


# ---------------------------------------------------------------------------------------------------------
# every adapter through the command line


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    model, tok = tiny_llama()
    model.save_pretrained(root / "tiny")
    tok.save_pretrained(root / "tiny")
    rows = [("I loved it", 1), ("a wonderful film", 1), ("I hated it", 0), ("an awful mess", 0)]
    (root / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    return root


def train_args(env: Path, run: Path, *extra) -> list:
    return [
        "train",
        "--train",
        env / "train.tsv",
        "--dev",
        env / "train.tsv",
        "--label-map",
        "0=negative,1=positive",
        "-w",
        "negative=terrible,positive=great",
        "--model",
        env / "tiny",
        "--device",
        "cpu",
        "--no-progress",
        "--steps",
        1,
        "--eval-every",
        1,
        "--batch-size",
        4,
        "-o",
        run,
        *extra,
    ]


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_every_adapter_trains_through_the_cli(env, tmp_path, name):
    run = tmp_path / name
    extra = ["--finetune", name]
    if name in ("prompt_tuning", "p_tuning", "prefix_tuning"):
        extra += ["--set", "model.adapter.num_virtual_tokens=2"]
    result = invoke(*train_args(env, run, *extra))
    assert result.exit_code == 0, result.output + repr(result.exception)
    saved = yaml.safe_load((run / "job.yaml").read_text())
    assert saved["model"]["finetune"] == name
    assert saved["train"]["learning_rate"] == ADAPTERS[name].default_learning_rate
    if name in ("prompt_tuning", "p_tuning", "prefix_tuning"):
        assert saved["model"]["adapter"]["num_virtual_tokens"] == 2
    final = json.loads((run / "final_metrics.json").read_text())
    assert final["steps"] == (0 if name == "none" else 1)
    scored = invoke("eval", run, "--data", env / "train.tsv", "--device", "cpu", "--json")
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["n"] == 4


def test_adapter_mistakes_on_the_cli_are_user_errors(env, tmp_path):
    run = tmp_path / "run"
    user_error(
        invoke(
            *train_args(env, run, "--finetune", "prompt_tuning", "--set", "model.adapter.num_virtual_tokes=2")
        ),
        "did you mean 'model.adapter.num_virtual_tokens'",
    )
    user_error(
        invoke(
            *train_args(
                env, run, "--finetune", "prompt_tuning", "--set", "model.adapter.num_virtual_tokens=0"
            )
        ),
        "num_virtual_tokens must be >= 1",
    )
    user_error(
        invoke(*train_args(env, run, "--set", "train.warmup_ratoi=0.1")), "did you mean 'train.warmup_ratio'"
    )
    user_error(invoke(*train_args(env, run, "--finetune", "lroa")), "did you mean 'lora'")
    user_error(invoke(*train_args(env, run, "--lora-r", 0, "--finetune", "lora")), "r must be >= 1")
    user_error(
        invoke(*train_args(env, run, "--method", "head", "--finetune", "prompt_tuning")), "head baseline"
    )
    assert not run.exists()


# ---------------------------------------------------------------------------------------------------------
# bench options are partial job configs


def test_bench_method_options_are_validated_by_the_job_schema(tmp_path):
    job = method_job(
        {"learning_rate": 1e-2, "max_length": 64, "adapter": {"num_virtual_tokens": 4}},
        "prompt",
        "prompt_tuning",
    )
    assert job.train.learning_rate == 1e-2 and job.prompt.max_length == 64
    assert job.model.adapter_settings().num_virtual_tokens == 4
    assert method_job({}, "prompt", "ia3").train.learning_rate == ADAPTERS["ia3"].default_learning_rate
    cases = {
        "methods: {prompt_ft_lora: {lerning_rate: 1e-3}}": [
            "methods.prompt_ft_lora.lerning_rate",
            "did you mean 'methods.prompt_ft_lora.learning_rate'",
        ],
        "methods: {prompt_tuning: {adapter: {num_virtual_tokes: 4}}}": [
            "did you mean 'methods.prompt_tuning.adapter.num_virtual_tokens'"
        ],
        "methods: {prompt_ft_lora: {lora: {r: 0}}}": ["methods.prompt_ft_lora.lora", "r must be >= 1"],
        "methods: {prompt_ft: {max_steps: many}}": ["methods.prompt_ft.max_steps must be an integer"],
        "methods: {prompt_ft_lora: {grid: {lerning_rate: [1e-3]}}}": [
            "did you mean 'methods.prompt_ft_lora.learning_rate'"
        ],
        "tasks: {trec: {prompt_ft: {eval_evry: 5}}}": ["tasks.trec.prompt_ft.eval_evry", "did you mean"],
        "metods: {}": ["unknown top-level key 'metods'", "did you mean 'methods'"],
        "methods: {setfit: {num_iteration: 3}}": [
            "setfit option",
            "did you mean 'methods.setfit.num_iterations'",
        ],
    }
    for i, (text, fragments) in enumerate(cases.items()):
        path = tmp_path / f"c{i}.yaml"
        path.write_text(text + "\n")
        with pytest.raises(ConfigError) as err:
            cfg = load_config(path)
            if "setfit" in text:  # setfit checks its own options when it runs
                from promptft.bench.methods import METHODS

                METHODS["setfit"](None, None, None, 0, cfg.method("setfit"))
        for fragment in fragments:
            assert fragment in str(err.value), str(err.value)


def test_bench_cli_reports_a_bad_option_as_a_user_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("methods: {prompt_ft_lora: {max_stepz: 2}}\n")
    user_error(
        invoke("bench", "run", "--tasks", "sst-2", "--methods", "prompt_ft_lora", "--config", path),
        "did you mean 'methods.prompt_ft_lora.max_steps'",
    )


# ---------------------------------------------------------------------------------------------------------
# cheap imports


def test_config_and_cli_import_and_validate_without_torch():
    code = (
        "import sys; import promptft.cli, promptft.config, promptft.recipes;"
        "from promptft.config import JobConfig, load_bench_config;"
        f"JobConfig.from_yaml({str(ROOT / 'examples' / 'sst2_prompt_lora.yaml')!r});"
        "JobConfig.parse({'model': {'finetune': 'prompt_tuning', 'adapter': {'num_virtual_tokens': 4}}});"
        "load_bench_config(None, {'prompt_ft_lora': ('prompt', 'lora')});"
        "print('torch' in sys.modules, 'transformers' in sys.modules, 'peft' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]


def test_result_tables_print_on_the_main_process_only(monkeypatch, capsys):
    # under `accelerate launch` every process runs the command; only the main one prints its table
    import promptft.training.distributed as distributed
    from promptft.cli.app import print_result

    monkeypatch.setattr(distributed, "is_main_process", lambda: False)
    print_result("the table")
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(distributed, "is_main_process", lambda: True)
    print_result("the table")
    assert "the table" in capsys.readouterr().out
