"""`promptft push`: flags -> `promptft.recipes.push` -> what was (or would be) uploaded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from promptft.cli.app import app, print_result


@app.command("push")
def push(
    model_dir: Annotated[Path, typer.Argument(help="A saved classifier (a run's best/ folder, or the run).")],
    repo_id: Annotated[str, typer.Option("--repo-id", help="The hub repository, OWNER/NAME.")],
    to_folder: Annotated[
        Path | None,
        typer.Option(
            "--to-folder", help="Write what would be uploaded (and UPLOAD.json) to this new folder."
        ),
    ] = None,
    upload: Annotated[
        bool,
        typer.Option("--upload", help="Really upload to the Hugging Face hub (never without this flag)."),
    ] = False,
    private: Annotated[
        bool, typer.Option("--private/--public", help="Visibility of a repository that push creates.")
    ] = True,
) -> None:
    """Share a saved classifier (its weights, prompt and model card) on the Hugging Face hub.

    Nothing is uploaded unless you pass --upload: without it, push lists the files an upload would carry, and --to-folder writes exactly those files plus a manifest (UPLOAD.json) to a folder. Uploading uses the token of `huggingface-cli login` (or HF_TOKEN).

        promptft push runs/sst2/best --repo-id me/sst2-lora --to-folder to-upload

        promptft push runs/sst2/best --repo-id me/sst2-lora --upload
    """
    from rich.table import Table

    from promptft.recipes.push import push as run_push

    result = run_push(model_dir, repo_id, to_folder=to_folder, upload=upload, private=private)
    table = Table(title=f"{result.model_dir} -> {result.repo_id}")
    table.add_column("file")
    table.add_column("bytes", justify="right")
    for item in result.files:
        table.add_row(item["path"], f"{item['bytes']:,}")
    print_result(table)
    if result.folder:
        print_result(f"staged in {result.folder} ({len(result.files)} files, {result.total_bytes:,} bytes)")
    if result.uploaded:
        print_result(f"uploaded: {result.url}")
    else:
        print_result("nothing was uploaded (pass --upload to upload)")
