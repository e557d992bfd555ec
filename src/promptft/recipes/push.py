"""The push recipe: share a saved classifier on the Hugging Face hub — only when asked to.

By default nothing leaves the machine: `push` lists what would be uploaded (the saved folder with its model
card), and `to_folder` writes exactly that, plus a manifest (`UPLOAD.json`: the target repo, each file's
size and sha256), to a folder, to inspect or to upload by other means. Only `upload=True`
(`promptft push ... --upload`) contacts the hub, through `huggingface_hub` (a dependency of transformers),
with the token from `huggingface-cli login` or `$HF_TOKEN`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from promptft.classifiers.card import CARD_FILE, write_model_card
from promptft.errors import ConfigError, ModelError, PromptFTError
from promptft.files import write_dir_atomically
from promptft.recipes.run_dir import classifier_dir

MANIFEST = "UPLOAD.json"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*$")
_SKIP = (".tmp", ".old", ".lock")


@dataclass
class PushResult:
    model_dir: str
    repo_id: str
    files: list[dict] = field(default_factory=list)  # {"path", "bytes", "sha256"}
    folder: str | None = None  # where the upload was staged (to_folder)
    uploaded: bool = False
    url: str | None = None

    @property
    def total_bytes(self) -> int:
        return sum(f["bytes"] for f in self.files)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def upload_files(model_dir: Path) -> list[Path]:
    """The files of a saved classifier that an upload carries (temporary leftovers excluded), sorted."""
    return sorted(
        p for p in model_dir.rglob("*")
        if p.is_file() and not any(part.endswith(_SKIP) for part in p.relative_to(model_dir).parts)
    )  # fmt: skip


def push(
    model_dir: str | Path,
    repo_id: str,
    *,
    to_folder: str | Path | None = None,
    upload: bool = False,
    private: bool = True,
    commit_message: str | None = None,
) -> PushResult:
    """List (and with `to_folder`, stage) what sharing `model_dir` as `repo_id` uploads; upload it only
    with `upload=True`. A model folder without a model card gets one first."""
    if not _REPO_ID.match(repo_id):
        raise ConfigError(
            f"--repo-id {repo_id!r} is not a hub repository id: write it as OWNER/NAME, e.g. me/sst2-lora"
        )
    folder = Path(classifier_dir(model_dir))
    if not (folder / CARD_FILE).exists():
        write_model_card(folder)  # a folder saved before model cards existed
    files = upload_files(folder)
    result = PushResult(
        model_dir=str(folder),
        repo_id=repo_id,
        files=[{"path": p.relative_to(folder).as_posix(), "bytes": p.stat().st_size, "sha256": _sha256(p)}
               for p in files],
    )  # fmt: skip
    if to_folder is not None:
        target = Path(to_folder)
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise PromptFTError(f"{target} exists and is not an empty folder: choose a new --to-folder")

        def stage(tmp: Path) -> None:
            for path in files:
                dest = tmp / path.relative_to(folder)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest)
            manifest = {"repo_id": repo_id, "private": private, "source": str(folder), "files": result.files}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))

        write_dir_atomically(target, stage)
        result.folder = str(target)
    if upload:
        result.url = _upload(folder, repo_id, private, commit_message or "Upload a promptft classifier")
        result.uploaded = True
    return result


def _upload(folder: Path, repo_id: str, private: bool, message: str) -> str:
    try:
        from huggingface_hub import HfApi
    except ImportError:  # pragma: no cover - a dependency of transformers
        raise ModelError("uploading needs huggingface_hub: pip install huggingface_hub") from None
    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            commit_message=message,
            ignore_patterns=[f"*{suffix}" for suffix in _SKIP] + [f"*{s}/*" for s in _SKIP],
        )
    except Exception as err:  # network, authentication, permissions: the hub's own message says which
        raise ModelError(
            f"the upload to {repo_id} failed ({type(err).__name__}: {err}); check your network and log in "
            "with `huggingface-cli login` (or set HF_TOKEN), then push again"
        ) from None
    return str(getattr(info, "repo_url", None) or getattr(info, "commit_url", None) or repo_id)
