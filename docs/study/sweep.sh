#!/usr/bin/env bash
# The SAE study of docs/application/choosing-an-sae.md, rerun: one Hydra multirun per axis
# (conf/hparams_search/study_<axis>.yaml, each at seeds 0 and 1), the mpnet judge on the points
# the page leans on, then the tables and the Pareto figure from the run folders.
#   bash docs/study/sweep.sh                  every axis (~2 h on 2 shared CPU cores, 8 axes at once)
#   bash docs/study/sweep.sh base width       only these axes; an axis whose folder exists is kept
# Outputs: $STUDY_SWEEP (outputs/study/sweep) / <axis>/<n>_<domain>/ run folders, <axis>.time;
# the committed docs/application/generated/sweep.{json,md}, docs/application/figures/sweep_pareto.svg.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 WANDB_MODE=offline
BIN="${BIN:-.venv/bin}"
OUT="${STUDY_SWEEP:-outputs/study/sweep}"
mkdir -p "$OUT"
for axis in ${*:-base width k variant data epochs embedder embedder_full small small_k small_narrow narrow_k candidates}; do
  if [ -d "$OUT/$axis" ]; then echo "kept: $OUT/$axis"; continue; fi
  /usr/bin/time -v -o "$OUT/$axis.time" nice -n 10 "$BIN/sae-train" -m "hparams_search=study_$axis" \
    "hydra.sweep.dir=$OUT/$axis" trainer.enable_progress_bar=false
done
# The mpnet judge grades the labels of the reference point and of the new default (study_candidates
# at 3072 latents) again: a new labelling of the same SAE, which becomes the run's current one (the
# labels do not change; the judge costs minutes per run, so the other points go without it).
for job in "$OUT"/base/*_*/ "$OUT"/candidates/*_*/; do
  [ -d "$job" ] && ! grep -q "sae.d_sae=6144" "$job/.hydra/overrides.yaml" || continue
  grep -q '"judge_model": "all-mpnet-base-v2"' "$job/labels.json" 2>/dev/null && continue
  seed=$(sed -n 's/^- seed=//p' "$job/.hydra/overrides.yaml")   # the run's own labelling seed
  nice -n 10 "$BIN/sae-label" "run_dir=$job" "seed=$seed" labeling.judge_model=all-mpnet-base-v2
done
"$BIN/python" docs/study/sweep_tables.py "$OUT" docs/application/generated docs/application/figures
