#!/usr/bin/env bash
# The whole few-shot table of issue #3, in the order we run it on a CPU (most informative cells first).
# Finished cells are skipped, so this script resumes where an interrupted sitting stopped. Run it alone on the
# machine (two torch jobs on a 2-core box slow each other ~5x, and cells record their train time), then
# `promptft bench report`.
set -u
PF=${PROMPTFT_BIN:-.venv/bin/promptft}
ALL=zero_shot,prompt_ft_lora,setfit,standard_ft
run() { echo "=== $(date -u +%H:%M:%S) bench run $*"; "$PF" bench run --no-report "$@" || echo "=== FAILED: $*"; }

for task in sst-2 mr cr; do run --model smollm2-135m --tasks "$task" --methods "$ALL"; done
run --model gemma3-270m --tasks sst-2 --methods zero_shot,prompt_ft_lora,standard_ft
run --model smollm2-135m --tasks sst-2 --methods prompt_ft
run --model smollm2-135m --tasks subj --methods "$ALL"
# SetFit trains its own MiniLM encoder, so these repeat SmolLM2's SST-2 setfit cells under Gemma's name: the
# comparison in Gemma's table then needs no cross-model bookkeeping (~6 min).
run --model gemma3-270m --tasks sst-2 --methods setfit
for task in mr cr; do run --model smollm2-135m --tasks "$task" --methods prompt_ft; done
run --model smollm2-135m --tasks sst-5 --methods "$ALL"
for task in mpqa trec rte; do run --model smollm2-135m --tasks "$task" --methods "$ALL"; done  # dev only
run --model smollm2-135m --tasks sst-5 --methods prompt_ft  # beyond issue #3's list (~7 min/seed)
echo "=== $(date -u +%H:%M:%S) plan finished"
