"""`promptft push`: nothing is uploaded by default; --to-folder writes exactly what an upload carries;
--upload goes through huggingface_hub (replaced here by a recorder: the tests never touch the network)."""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from promptft.cli import app
from promptft.models import backbone_from_model
from tiny import tiny_llama


@pytest.fixture()
def saved(tmp_path):
    from promptft import PromptClassifier

    model, tok = tiny_llama()
    clf = PromptClassifier(backbone_from_model(model, tok, "causal"), "{text} It was {mask}.",
                           {"negative": "terrible", "positive": "great"})  # fmt: skip
    clf.base_model = "tiny"
    clf.set_finetune("lora")
    clf.save_pretrained(tmp_path / "run" / "best")
    return tmp_path / "run"


class _NoNetwork:
    def __init__(self, *args, **kwargs):
        raise AssertionError("push contacted the hub without --upload")


def test_default_lists_files_and_uploads_nothing(saved, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", _NoNetwork)
    result = CliRunner().invoke(app, ["push", str(saved), "--repo-id", "me/tiny-sst2"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "README.md" in out and "promptft_config.json" in out and "adapter_model.safetensors" in out
    assert "nothing was uploaded (pass --upload to upload)" in out


def test_to_folder_stages_exactly_the_saved_files_with_a_manifest(saved, tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", _NoNetwork)
    stage = tmp_path / "to-upload"
    result = CliRunner().invoke(
        app, ["push", str(saved / "best"), "--repo-id", "me/tiny-sst2", "--to-folder", str(stage)]
    )
    assert result.exit_code == 0, result.output
    best = saved / "best"
    expected = sorted(p.relative_to(best).as_posix() for p in best.rglob("*") if p.is_file())
    staged = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
    assert staged == sorted([*expected, "UPLOAD.json"])
    manifest = json.loads((stage / "UPLOAD.json").read_text())
    assert manifest["repo_id"] == "me/tiny-sst2" and manifest["private"] is True
    for item in manifest["files"]:
        assert hashlib.sha256((stage / item["path"]).read_bytes()).hexdigest() == item["sha256"]
    assert "# A prompt-based single-label classifier on tiny" in (stage / "README.md").read_text()
    again = CliRunner().invoke(app, ["push", str(saved), "--repo-id", "me/x", "--to-folder", str(stage)])
    assert again.exit_code == 2 and "not an empty folder" in again.stderr


def test_upload_only_with_the_flag_and_through_huggingface_hub(saved, monkeypatch):
    import huggingface_hub

    calls = []

    class Recorder:
        def create_repo(self, repo_id, private, exist_ok):
            calls.append(("create_repo", repo_id, private))

        def upload_folder(self, folder_path, repo_id, commit_message, ignore_patterns):
            calls.append(("upload_folder", folder_path, repo_id))

            class Info:
                repo_url = f"hub:{repo_id}"

            return Info()

    monkeypatch.setattr(huggingface_hub, "HfApi", Recorder)
    result = CliRunner().invoke(
        app, ["push", str(saved), "--repo-id", "me/tiny-sst2", "--upload", "--public"]
    )
    assert result.exit_code == 0, result.output
    assert calls == [
        ("create_repo", "me/tiny-sst2", False),
        ("upload_folder", str(saved / "best"), "me/tiny-sst2"),
    ]
    assert "uploaded: hub:me/tiny-sst2" in result.stdout


def test_bad_repo_id_and_failed_upload_are_clear_errors(saved, monkeypatch):
    import huggingface_hub

    bad = CliRunner().invoke(app, ["push", str(saved), "--repo-id", "no-owner"])
    assert bad.exit_code == 2 and "OWNER/NAME" in bad.stderr

    class Offline:
        def create_repo(self, *args, **kwargs):
            raise ConnectionError("no route to host")

    monkeypatch.setattr(huggingface_hub, "HfApi", Offline)
    failed = CliRunner().invoke(app, ["push", str(saved), "--repo-id", "me/x", "--upload"])
    assert failed.exit_code == 2 and "huggingface-cli login" in " ".join(failed.stderr.split())
    assert "Traceback" not in failed.output
