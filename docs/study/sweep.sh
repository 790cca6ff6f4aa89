#!/usr/bin/env bash
# The SAE study of docs/application/choosing-an-sae.md, rerun, in three steps per axis:
#   train  one Hydra multirun per axis (conf/hparams_search/study_<axis>.yaml, seeds 0 and 1),
#          labelling off (_study_reference.yaml): a multirun is one process, so nothing per job could
#          be measured of a labelling inside it;
#   label  every job labelled by sae-label in a process of its own, graded by the mpnet judge, under
#          GNU time: <job>.label.time (its wall time and peak memory). A job is labelled once;
#          RELABEL=1 labels every job again (after the labeller changed);
#   peak   each point's training alone (seed 0, one epoch, labelling off) under GNU time:
#          <job>.train.time, the training's peak memory (a multirun's peak covers all its jobs);
# then the tables and the Pareto figure from the run folders.
#   bash docs/study/sweep.sh                  every axis (~3 h on 2 quiet CPU cores)
#   bash docs/study/sweep.sh base width       only these axes; an axis whose folder exists is not retrained
# Outputs: $STUDY_SWEEP (outputs/study/sweep) / <axis>/<n>_<domain>/ run folders, <axis>.time;
# the committed docs/application/generated/sweep.{json,md}, docs/application/figures/sweep_pareto.svg.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 WANDB_MODE=offline
BIN="${BIN:-.venv/bin}"
OUT="${STUDY_SWEEP:-outputs/study/sweep}"
JUDGE=all-mpnet-base-v2
AXES="${*:-base width k variant data epochs epochs_long weight_decay embedder embedder_full small small_k small_narrow narrow_k candidates}"
mkdir -p "$OUT"
for axis in $AXES; do
  if [ -d "$OUT/$axis" ]; then echo "kept: $OUT/$axis"; continue; fi
  /usr/bin/time -v -o "$OUT/$axis.time" nice -n 10 "$BIN/sae-train" -m "hparams_search=study_$axis" \
    "hydra.sweep.dir=$OUT/$axis" trainer.enable_progress_bar=false
done
for axis in $AXES; do
  for job in "$OUT/$axis"/*_*/; do
    job="${job%/}"
    [ -f "$job/metrics.json" ] || continue   # a job stopped before its end
    overrides=$(sed -n 's/^- //p' "$job/.hydra/overrides.yaml" | grep -v '^trainer.enable_progress_bar=' || true)
    seed=$(sed -n 's/^seed=//p' <<<"$overrides")
    if [ -n "${RELABEL:-}" ] || [ ! -f "$job.label.time" ]; then
      # the run's own labelling seed; the time file is written whole, only once the labelling succeeded
      /usr/bin/time -v -o "$job.label.time.part" nice -n 10 "$BIN/sae-label" "run_dir=$job" "seed=$seed" \
        "labeling.judge_model=$JUDGE" > "$job.label.log" 2>&1
      mv "$job.label.time.part" "$job.label.time"
    fi
    if [ "$seed" = 0 ] && [ ! -f "$job.train.time" ]; then
      scratch=$(mktemp -d)
      # shellcheck disable=SC2086  # the job's overrides, one word each
      /usr/bin/time -v -o "$job.train.time.part" nice -n 10 "$BIN/sae-train" $overrides hydra.mode=RUN \
        "run_dir=$scratch/run" trainer.max_epochs=1 trainer.enable_progress_bar=false > "$scratch/log" 2>&1
      mv "$job.train.time.part" "$job.train.time"
      rm -rf "$scratch"
    fi
  done
done
"$BIN/python" docs/study/sweep_tables.py "$OUT" docs/application/generated docs/application/figures
