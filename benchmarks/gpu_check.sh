#!/usr/bin/env bash
# One short pass over convbench's CUDA paths, for a GPU machine's first day (or a lease of a few minutes):
# the machine, `convbench doctor`, a torch + JAX speed matrix, a torch + JAX train matrix on the bundled digits,
# and benchmarks/train_vs_speed.py, each step under its own time limit so that one hang costs only its step.
#
#   OUT=gpu-check bash benchmarks/gpu_check.sh            # from the repository root
#
# Each step's output goes to $OUT/<step>.log (and its last lines to the terminal); the run folders to
# $OUT/results.tgz. A folder .whl/ of wheels (convbench's, convbench-jax's, any missing report library) is
# installed first with pip --target when present, for a machine that cannot reach a package index.
# Settings: STEPS (which of "machine doctor speed train train_vs_speed explain" run; all but explain by default:
# add it for `convbench explain`'s per-layer table, EXPLAIN_MODEL at EXPLAIN_DEPTH), DEVICE (cuda),
# FRAMEWORKS (torch,jax), SPEED_MODELS, MAX_TIME, TRAIN_MODELS, TRAIN_ARGS (more options for the train run; with
# TRAIN_ARGS2 a second train run), TVS_MODELS, ROUNDS, the LIMIT_* seconds.
set -u
OUT=${OUT:-gpu-check}
DEVICE=${DEVICE:-cuda}
FRAMEWORKS=${FRAMEWORKS:-torch,jax}
SPEED_MODELS=${SPEED_MODELS:-lenet5,resnet32,vgg16}
TRAIN_MODELS=${TRAIN_MODELS:-simple_cnn,lenet5}
TVS_MODELS=${TVS_MODELS:-lenet5,resnet32}
PY=${PY:-python3}
STEPS=${STEPS:-machine doctor speed train train_vs_speed}
mkdir -p "$OUT"
RUNS=$(mktemp -d)
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then   # wheels older than the checkout's last commit would test old code (the plugins' workers import them)
    head_time=$(git log -1 --format=%ct 2>/dev/null || echo 0)
    for wheel in .whl/convbench*.whl; do
        [ -e "$wheel" ] && [ "$(stat -c %Y "$wheel")" -lt "$head_time" ] && echo "warning: $wheel is older than the" \
            "last commit: rebuild it (pip wheel --no-deps --no-build-isolation . plugins/convbench-jax -w .whl)"
    done
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} || { echo "wheel install failed"; exit 1; }
fi

step() {   # step NAME LIMIT_S COMMAND...: runs it under timeout, its output to $OUT/NAME.log, its tail here
    local name=$1 limit=$2 start rc
    shift 2
    case " $STEPS " in *" ${name%2} "*) ;; *) return ;; esac
    start=$(date +%s)
    echo "=== $name ($(date -u +%T), limit ${limit}s): $*"
    timeout -k 5 "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    echo "=== $name: rc $rc in $(($(date +%s) - start)) s"
    tail -n "${TAIL:-25}" "$OUT/$name.log"
}

step machine 60 bash -c "nvidia-smi; $PY -c 'import sys, torch, jax; print(sys.version); print(\"torch\", torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else \"\"); print(\"jax\", jax.__version__, jax.devices())'; $PY -m harness --version"
step doctor "${LIMIT_DOCTOR:-300}" "$PY" -m harness doctor --device "$DEVICE" --frameworks "$FRAMEWORKS"
step speed "${LIMIT_SPEED:-150}" "$PY" -m harness run --mode speed --device "$DEVICE" --frameworks "$FRAMEWORKS" \
    --models "$SPEED_MODELS" --max-time "${MAX_TIME:-5}" --output "$RUNS"
step train "${LIMIT_TRAIN:-90}" "$PY" -m harness run --device "$DEVICE" --frameworks "$FRAMEWORKS" \
    --models "$TRAIN_MODELS" --output "$RUNS" ${TRAIN_ARGS:-}
[ -n "${TRAIN_ARGS2:-}" ] && step train2 "${LIMIT_TRAIN:-90}" "$PY" -m harness run --device "$DEVICE" \
    --frameworks "$FRAMEWORKS" --models "$TRAIN_MODELS" --output "$RUNS" $TRAIN_ARGS2
step train_vs_speed "${LIMIT_TVS:-100}" "$PY" benchmarks/train_vs_speed.py --device "$DEVICE" \
    --frameworks "$FRAMEWORKS" --models "$TVS_MODELS" --rounds "${ROUNDS:-4}" --json "$OUT/train_vs_speed.json"
step explain "${LIMIT_EXPLAIN:-200}" "$PY" -m harness explain --model "${EXPLAIN_MODEL:-vgg16}" --device "$DEVICE" \
    --frameworks "$FRAMEWORKS" --depth "${EXPLAIN_DEPTH:-2}" --max-time "${EXPLAIN_MAX_TIME:-0.5}" --output "$RUNS/explain"
tar -czf "$OUT/results.tgz" --exclude="*.html" --exclude="*.png" --exclude="*.npz" -C "$RUNS" . && echo "=== run folders: $OUT/results.tgz ($(du -h "$OUT/results.tgz" | cut -f1))"
