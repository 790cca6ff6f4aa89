#!/usr/bin/env bash
# The worked study of docs/application/study.md, rerun from scratch: one joint SAE over the 11 wiki
# domains (the default sae-train run), then sae-diff, sae-diff -m, sae-compare and sae-search on it.
# Every include under docs/application/generated/ and every page under docs/application/figures/
# is rewritten from these real outputs; nothing there is edited by hand.
#   bash docs/study/run_study.sh            (STUDY_RUN=<folder> picks another run folder)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" WANDB_MODE="${WANDB_MODE:-offline}" HF_HUB_OFFLINE=1
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"   # shared cores: idle OpenMP threads must not spin
PY="${PY:-.venv/bin/python}"
RUN="${STUDY_RUN:-outputs/study/wiki_all}"
GEN=docs/application/generated
FIG=docs/application/figures
mkdir -p "$GEN" "$FIG"

# 1. The joint SAE: the default run (wiki_all sentences, TopK 3072, k 32), once.
if [ ! -f "$RUN/metrics.json" ]; then
  "$PY" -c "from sae_lightning.cli import train; train()" run_dir="$RUN" trainer.enable_progress_bar=false
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
echo "study outputs written to $GEN and $FIG"
