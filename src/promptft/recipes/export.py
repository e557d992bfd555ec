"""The export recipe: a saved classifier (a run or its best/) -> a self-contained ONNX folder.

    from promptft.recipes.export import export
    export("runs/sst2", "exports/sst2-onnx", int8=True)

The folder holds model.onnx, promptft_onnx.json (prompt, label words, labels, objective, input layout),
the tokenizer and the run's job.yaml (so `promptft predict`/`eval` read files with the training job's
columns); `promptft predict`, `eval` and `serve` run it with onnxruntime, without the run or base model.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from promptft.errors import PromptFTError
from promptft.recipes.evaluate import refuse_ensemble
from promptft.recipes.run_dir import JOB_FILE, check_writable, classifier_dir

SAMPLE = ["a short sentence", "another, somewhat longer sentence to check the exported graph with"]


def export(
    model_dir: str | Path,
    onnx: str | Path,
    *,
    int8: bool = False,
    int4: bool = False,
    overwrite: bool = False,
    check: bool = True,
) -> dict[str, Any]:
    """Export and (with `check`) compare the ONNX graph's label logits with PyTorch's on two sentences
    (fp32: they must agree to 1e-3; int8/int4 only report the difference). `int8`: onnxruntime dynamic
    int8; `int4`: weight-only int4 (onnxruntime MatMulNBits). Returns a summary (folder, size,
    seconds, max_abs_diff)."""
    from promptft.classifiers import load_classifier
    from promptft.deploy.onnx_export import export_onnx
    from promptft.deploy.onnx_runtime import ONNX_MODEL, OnnxClassifier

    onnx = Path(onnx)  # a folder (named as given, `out.onnx` too): model.onnx, the prompt, the tokenizer
    if int8 and int4:
        raise PromptFTError("--int8 and --int4 are two quantizations: choose one")
    if onnx.exists() and not overwrite:
        raise PromptFTError(f"{onnx} already exists: choose another --onnx folder, or pass --overwrite")
    check_writable(onnx, "the ONNX folder")
    folder = classifier_dir(model_dir)
    refuse_ensemble(folder, "an ONNX export")
    start = time.perf_counter()
    clf = load_classifier(folder, device="cpu")
    sample = [{f: text for f in clf.fields} for text in SAMPLE]
    reference = clf.logits_encoded(clf.encode(sample)) if check else None
    export_onnx(clf, onnx, int8=int8, int4=int4, source=str(folder.resolve()), overwrite=overwrite)
    job = next((p for p in (folder / JOB_FILE, folder.parent / JOB_FILE) if p.is_file()), None)
    if job is not None:
        shutil.copy(job, onnx / JOB_FILE)
    summary: dict[str, Any] = {
        "folder": str(onnx),
        "quantization": "int8" if int8 else "int4" if int4 else None,
        "size_mb": round((onnx / ONNX_MODEL).stat().st_size / 2**20, 2),
        "seconds": round(time.perf_counter() - start, 1),
    }
    if reference is not None:
        runtime = OnnxClassifier(onnx)
        got = runtime.logits_encoded(runtime.encode(sample))
        diff = float((got - reference).abs().max())
        summary["max_abs_diff"] = diff
        if not (int8 or int4) and diff > 1e-3:
            raise PromptFTError(
                f"the exported graph's scores differ from PyTorch's by {diff:.2g}: please report this model; "
                f"the folder {onnx} is kept for inspection"
            )
    config_path = onnx / "promptft_onnx.json"
    config = json.loads(config_path.read_text())
    config["export_check"] = {k: summary[k] for k in ("max_abs_diff",) if k in summary}
    config_path.write_text(json.dumps(config, indent=2))
    return summary
