"""Model names that do not resolve: the message says what to do (issue 16)."""

from __future__ import annotations

import pytest

from promptft.errors import ModelError
from promptft.models import registry
from promptft.models.loading import check_device


def test_missing_gemma_points_at_make_gemma(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTFT_CACHE", str(tmp_path))
    monkeypatch.setattr(registry, "package_dir", lambda entry: None)
    with pytest.raises(ModelError, match="`make gemma`") as err:
        registry.resolve_model("gemma3-270m")
    assert "make setup" not in str(err.value)


@pytest.mark.parametrize("name", ["/no/such/model", "./nope", "runs/a/best"])
def test_missing_model_path_is_no_such_folder(name):
    with pytest.raises(ModelError, match="no such folder"):
        registry.resolve_model(name)


def test_unknown_name_lists_the_aliases():
    with pytest.raises(ModelError, match="smollm2-135m"):
        registry.resolve_model("smollm")


def test_devices_are_checked_before_loading(monkeypatch):
    import torch

    assert check_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for bad in ("cuda", "cuda:1", "gpu", "mps"):
        with pytest.raises(ModelError, match="available here: cpu"):
            check_device(bad)
