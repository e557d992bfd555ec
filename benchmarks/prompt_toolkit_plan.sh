#!/usr/bin/env bash
# Issue 11's benchmark cells, in the order we run them on a CPU: the cheap rows first, then each new method
# screened on SST-2 and TREC (5 seeds) before the other tasks get it. Finished cells are skipped, so this
# resumes where an interrupted sitting stopped. Run it alone on the machine (cells record their train time),
# then `promptft bench report`. Rough CPU cost per SST-2 seed (2 threads): calibrated_zero_shot seconds (one
# test pass per task), standard_ft grid ~7 min (TREC ~15), auto_label_words ~4, demonstrations ~7
# (TREC ~25: 7x longer prompts), channel ~3 (an earlier ~25 was measured beside another job), auto ~3 (its
# 30-minute budget is a cap, not a cost), pet ~8, ipet ~15+ (measured on a quiet machine).
set -u
PF=${PROMPTFT_BIN:-.venv/bin/promptft}
run() { echo "=== $(date -u +%H:%M:%S) bench run $*"; "$PF" bench run --no-report "$@" || echo "=== FAILED: $*"; }
LMBFF=sst-2,trec,subj,mr,cr,mpqa,sst-5,rte

run --model smollm2-135m --tasks "$LMBFF" --methods calibrated_zero_shot
# the fair baseline: standard FT with a learning-rate x steps grid on dev, in its own folder; once all 8 tasks
# have it, its cells replace the default table's standard_ft cells (the copy at the end of this plan)
run --model smollm2-135m --tasks sst-2,trec --methods standard_ft \
    --config benchmarks/configs/standard_ft_grid.yaml --results-dir benchmarks/results/experiments/standard_ft_grid
run --model smollm2-135m --tasks sst-2,trec --methods auto_label_words,auto_template
run --model smollm2-135m --tasks sst-2,trec --methods demonstrations,channel
run --model smollm2-135m --tasks sst-2 --methods auto,pet,ipet
# demonstrations beyond the screen: MPQA (cheap, dev-scored) and Subj (the SetFit target; ~21 min per seed:
# 2,000 test sentences x 2 demonstration sets)
run --model smollm2-135m --tasks mpqa,subj --methods demonstrations
# ... and MR (~12-16 min per seed), where LoRA prompt FT kept the untrained model on 2 seeds
run --model smollm2-135m --tasks mr --methods demonstrations
# channel scoring where Min et al. report the largest gains besides TREC: SST-5 (5 labels; ~13 min per seed)
run --model smollm2-135m --tasks sst-5 --methods channel
# (IA)3, SST-2's best adapter for both models, on the other 7 tasks (cheap: 1-5 min per seed)
run --model smollm2-135m --tasks "$LMBFF" --methods prompt_ft_ia3
# do the best SST-2 levers add up as voters? LoRA, (IA)3 and demonstrations models of one split (~10 min/seed)
run --model smollm2-135m --tasks sst-2 --methods method_ensemble
# the same vote on Gemma-3-270M's SST-2 (~9 min/seed), and with SetFit as a member where SetFit leads
run --model gemma3-270m --tasks sst-2 --methods method_ensemble
run --model smollm2-135m --tasks subj,trec --methods ensemble_with_setfit
# experiments in their own folders: LoRA that also trains the label words' rows (DART), and LoRA without the
# untrained model among the checkpoints (LM-BFF's selection)
run --model smollm2-135m --tasks trec,sst-2 --methods prompt_ft_lora \
    --config benchmarks/configs/lora_label_embeddings.yaml --results-dir benchmarks/results/experiments/lora_label_embeddings
run --model smollm2-135m --tasks mr,cr --methods prompt_ft_lora \
    --config benchmarks/configs/lora_no_step0.yaml --results-dir benchmarks/results/experiments/lora_no_step0
# refit on train + dev after the step is chosen on dev, counted in steps and in epochs
run --model smollm2-135m --tasks sst-2 --methods prompt_ft_lora,demonstrations \
    --config benchmarks/configs/refit.yaml --results-dir benchmarks/results/experiments/refit
run --model smollm2-135m --tasks sst-2 --methods prompt_ft_lora,demonstrations \
    --config benchmarks/configs/refit_epochs.yaml --results-dir benchmarks/results/experiments/refit_epochs
run --model smollm2-135m --tasks "$LMBFF" --methods standard_ft \
    --config benchmarks/configs/standard_ft_grid.yaml --results-dir benchmarks/results/experiments/standard_ft_grid
# the regridded baseline into the default table (the untuned cells: benchmarks/results/experiments/standard_ft_untuned/)
for task in ${LMBFF//,/ }; do
    cp benchmarks/results/experiments/standard_ft_grid/fewshot/smollm2-135m/"$task"/standard_ft/seed*.json \
        benchmarks/results/fewshot/smollm2-135m/"$task"/standard_ft/
done
echo "=== $(date -u +%H:%M:%S) plan finished"
