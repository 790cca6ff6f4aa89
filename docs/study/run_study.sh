#!/usr/bin/env bash
# The worked study of docs/application/study.md, rerun from scratch: one joint SAE over the 11 wiki
# domains (the default sae-train run), then sae-diff, sae-diff -m, sae-compare and sae-search on it.
# Every include under docs/application/generated/ and every page under docs/application/figures/
# is rewritten from these real outputs; nothing there is edited by hand.
#   bash docs/study/run_study.sh            (STUDY_RUN=<folder> picks another run folder)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"   # shared cores: idle OpenMP threads must not spin
PY="${PY:-.venv/bin/python}"
# transformers prints "[INFO] Running in WANDB offline mode" to stdout on import whenever
# WANDB_MODE=offline, which would land inside the captured outputs: only training logs to W&B.
unset WANDB_MODE
RUN="${STUDY_RUN:-outputs/study/wiki_all}"
GEN=docs/application/generated
FIG=docs/application/figures
mkdir -p "$GEN" "$FIG" "$(dirname "$RUN")"

# 1. The joint SAE: the default run (wiki_all sentences, TopK 3072, k 32), once.
#    Its closing summary, as printed (paths relative to the repo), is quoted by Getting started.
#    The embedder is pinned to the settings the study was made with (float32 weights, batches of
#    128), the defaults until auto-bf16 and batches of 32: the same bit for bit on one machine, and
#    within a few thousandths on another CPU (fve 0.6764 on an Intel with AMX, 0.6762 on an AMD EPYC).
if [ ! -f "$RUN/metrics.json" ]; then
  WANDB_MODE=offline "$PY" -c "from sae_lightning.cli import train; train()" run_dir="$RUN" \
    embedder.dtype_compute=float32 embedder.batch_size=128 trainer.enable_progress_bar=false | tee "$RUN.train.log"
  sed -n '/^run folder:/,$p' "$RUN.train.log" | sed "s|$PWD/||g" > "$GEN/train.txt"
fi
"$PY" docs/study/tables.py run "$RUN" > "$GEN/run.md"

# 2. What separates two domains, named by the run's labels.
study_diff() {  # study_diff <A> <B> <name>: the table, its markdown excerpt and the page
  local out="$RUN/diff/$3"
  "$PY" -m sae_lightning.diff "$RUN" "$1" "$2" --top 10 --out "$out" > "$GEN/$3.txt"
  "$PY" docs/study/tables.py diff "$out" 10 > "$GEN/$3.md"
  cp "$out/diff.html" "$FIG/$3.html"
}
study_diff Mathematics History math-vs-history
study_diff "Physical sciences" "Biology and health sciences" physics-vs-biology

# 3. Every pair of domains: how many features separate them.
"$PY" -m sae_lightning.diff -m "$RUN" > "$GEN/matrix.txt"
"$PY" docs/study/tables.py matrix "$RUN/diff/matrix" > "$GEN/matrix.md"
cp "$RUN/diff/matrix/matrix.html" "$FIG/matrix.html"

# 4. How many features each domain owns (main / active / specific), from sae-compare.
"$PY" -c "from sae_lightning.cli import compare; compare()" "$RUN" --out outputs/study/compare > "$GEN/compare.txt"

# 5. A search steered by clamping a feature: a History query, with the strongest
#    Mathematics-vs-History feature for Mathematics turned up to 3x its top activation.
FEATURE=$("$PY" docs/study/tables.py top-feature "$RUN/diff/math-vs-history" Mathematics)
"$PY" -c "from sae_lightning.cli import search; search()" "$RUN" \
  "The empire collapsed after a long war with its neighbours." --clamp "$FEATURE=3x" -k 5 > "$GEN/search.txt"

# 6. Sparse SAE codes as a retrieval index against dense MiniLM, on the run's held-out sentences.
"$PY" docs/study/retrieval.py "$RUN" 1000 > "$GEN/retrieval.md"
echo "study outputs written to $GEN and $FIG (the site's screenshot: bash docs/study/screenshot.sh)"
