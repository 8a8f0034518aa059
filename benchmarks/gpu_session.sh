#!/usr/bin/env bash
# One prepared GPU session: what a session that is lent a GPU machine runs, once, from the repository root:
#
#     bash benchmarks/gpu_session.sh          # logs and results under $OUT (default ./gpu-session-out)
#
# GPU time is scarce (minutes, start-up included, and one command of at most 10 minutes), so this script runs every
# GPU check in one go and always finishes: each step has its own timeout, the whole script a deadline
# (GPU_SESSION_S, default 510 s: under 9 minutes), and a step that fails or times out never stops the next.
#   1. the environment (nvidia-smi, Python, torch, triton) -> $OUT/env.txt, and lion_export importable from this
#      checkout (installed offline if needed: the machine cannot reach a package index);
#   2. kernel parity on the GPU (the interpreter off: the kernel tests put their tensors on CUDA), and the AOT
#      kernels launched through the CUDA driver -> $OUT/pytest.txt;
#   3. the kernel benchmark, benchmarks/kernels_gpu.py -> $OUT/bench.txt and $OUT/bench/kernels_gpu.{json,png}
#      (rewritten after every length, so a timeout still leaves the lengths measured);
#   3b. TensorRT engines on the GPU (tests/test_engine_gpu.py: every variant and mode, fp32 and fp16, built here
#      and run through TensorRTRunner against eager PyTorch) -> $OUT/engine.txt, when this machine has a TensorRT
#      that targets its GPU; otherwise one line saying what it lacks (e.g. an H200 is sm_90: TensorRT-RTX does not
#      target it, and standard TensorRT is not installed);
#   4. parity on onnxruntime's CUDA provider (a tiny export verified with --providers cuda,cpu) where the machine has
#      onnxruntime-gpu, and a line saying it has not otherwise -> $OUT/verify_cuda.txt;
#   5. a summary (the tail of each log) on stdout.
# Without a GPU (or torch) it says so in one line and skips steps 2-3 instead of hanging.
set -u -o pipefail          # no -e: a failing step must not stop the next

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
OUT=${OUT:-$ROOT/gpu-session-out}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || exit 1    # absolute: step 2 runs from tests/
DEADLINE_S=${GPU_SESSION_S:-510}
PY=${PYTHON:-$(command -v python || command -v python3 || echo python3)}
unset TRITON_INTERPRET      # the interpreter would run (and time) Python instead of the GPU kernels
START=$SECONDS

log() {
    echo "[gpu-session +$((SECONDS - START))s] $*" | tee -a "$OUT/steps.txt"
}

# Seconds a step may take: its own cap, or what is left before the deadline (less a reserve for the summary).
limit_for() {
    local cap=$1 left=$((DEADLINE_S - (SECONDS - START) - 15))
    echo $((left < cap ? left : cap))
}

# run_step NAME CAP LOGFILE COMMAND...: the command under `timeout`, its output appended to LOGFILE.
run_step() {
    local name=$1 limit t0=$SECONDS rc
    limit=$(limit_for "$2")
    local logfile=$3
    shift 3
    if ((limit < 20)); then
        log "$name: SKIPPED, only ${limit}s left before the ${DEADLINE_S}s deadline"
        return 1
    fi
    log "$name: started (timeout ${limit}s, log $logfile)"
    timeout -k 10 "$limit" "$@" >>"$logfile" 2>&1
    rc=$?
    if ((rc == 124 || rc == 137)); then
        log "$name: TIMED OUT after ${limit}s"
    else
        log "$name: exit $rc after $((SECONDS - t0))s"
    fi
    return "$rc"
}

# lion_export (with its kernels subpackage) imports from outside the checkout and resolves into this checkout.
package_ok() {
    (cd / && timeout -k 5 60 "$PY" -c '
import pathlib, sys
import lion_export.kernels
root, found = pathlib.Path(sys.argv[1]).resolve(), pathlib.Path(lion_export.kernels.__file__).resolve()
sys.exit(0 if root in found.parents else f"lion_export.kernels resolves to {found}, not into {root}")
' "$ROOT") >>"$OUT/install.txt" 2>&1
}

# Last resort without pip: the source tree itself is the package (lion_export/kernels, /plugins and /cli.py are
# symlinks to the top-level folders), so the repository root on PYTHONPATH is enough.
link_package() {
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    log "lion_export: imported from the source tree $ROOT (PYTHONPATH)"
}

# ---- 1. environment ---------------------------------------------------------------------------------------------
log "repo $ROOT, python $PY, results in $OUT, deadline ${DEADLINE_S}s"
{
    echo "== nvidia-smi"
    if command -v nvidia-smi >/dev/null; then
        timeout -k 5 20 nvidia-smi 2>&1 || echo "nvidia-smi failed or timed out (exit $?)"
    else
        echo "nvidia-smi: not found (no NVIDIA driver on this machine)"
    fi
    echo "== python"
    timeout -k 5 60 "$PY" -c '
import platform, sys
print("python", sys.version.split()[0], sys.executable)
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.version.cuda, "cuda available", torch.cuda.is_available())
    if torch.cuda.is_available():
        print("device", torch.cuda.get_device_name(), "capability", torch.cuda.get_device_capability())
except Exception as error:
    print("torch: NOT IMPORTABLE:", error)
try:
    import triton
    print("triton", triton.__version__)
except Exception as error:
    print("triton: NOT IMPORTABLE:", error)
' 2>&1 || echo "python environment probe failed or timed out (exit $?)"
} >"$OUT/env.txt"
cat "$OUT/env.txt"

GPU=no
if ! grep -q '^torch [0-9]' "$OUT/env.txt" || ! grep -q '^triton [0-9]' "$OUT/env.txt"; then
    log "NO TORCH/TRITON: $PY cannot import torch or triton, and this machine cannot reach a package index to install" \
        "them; skipping the GPU steps"
elif ! grep -q 'cuda available True' "$OUT/env.txt"; then
    log "NO CUDA GPU: torch sees no CUDA device (see $OUT/env.txt); skipping the GPU steps (parity tests, benchmark)"
else
    GPU=yes
fi

if [[ $GPU == yes ]]; then
    if package_ok; then
        log "lion_export: importable from this checkout"
    else
        # offline: no build isolation (it would fetch setuptools), no dependencies, no index; strict mode links the
        # files onto sys.path itself, ahead of any other lion_export installed system-wide
        run_step "pip install -e ." 120 "$OUT/install.txt" "$PY" -m pip install -e . -q --no-build-isolation \
            --no-deps --no-index --config-settings editable_mode=strict
        if ! package_ok && ! { link_package && package_ok; }; then
            log "lion_export: NOT IMPORTABLE (see $OUT/install.txt); skipping the GPU steps"
            GPU=no
        fi
    fi
fi

# ---- 2. kernel parity on the GPU --------------------------------------------------------------------------------
if [[ $GPU == yes ]]; then
    # from tests/: `python -m pytest` puts its working directory on sys.path, and the repository root would shadow
    # the installed lion_export (whose kernels subpackage lives elsewhere in the checkout)
    # -v names every test as it finishes, so a run cut by the timeout still says what passed and what failed; no -x:
    # one failure must not hide the rest. test_kernels_aot.py is left out: it needs no GPU and runs in CI. The scan
    # and launch tests go first: they compile few kernels, the chunked grid compiles many. The plugin's enqueue test
    # launches the scan through the TensorRT plugin's own code into caller-owned CUDA buffers (no engine needed).
    (cd tests && run_step "pytest (GPU parity)" 240 "$OUT/pytest.txt" \
        env -u TRITON_INTERPRET "$PY" -m pytest -v --tb=short --maxfail=30 -rfEs --durations=10 -p no:cacheprovider \
        test_kernels_scan.py test_kernels_aot_launch.py \
        test_plugin.py::test_enqueue_writes_the_bidirectional_recurrence_into_tensorrts_buffers \
        test_kernels_chunked.py)
else
    log "pytest (GPU parity): skipped (no usable GPU environment)"
fi

# ---- 3. benchmark -----------------------------------------------------------------------------------------------
if [[ $GPU == yes ]]; then
    limit=$(limit_for 300)
    budget=$((limit > 110 ? limit - 90 : 20))    # room for the length in flight when the budget runs out
    run_step "benchmark (--budget-s $budget)" 300 "$OUT/bench.txt" \
        "$PY" benchmarks/kernels_gpu.py --out "$OUT/bench" --budget-s "$budget"
else
    log "benchmark: skipped (no usable GPU environment)"
fi

# ---- 3b. TensorRT engines on the GPU ----------------------------------------------------------------------------
# The probe prints "engines: yes" or "engines: no (<what is missing>)", using the product's own backend choice.
if [[ $GPU == yes ]]; then
    timeout -k 5 120 "$PY" -c '
import torch
from lion_export.engine.backend import BackendError, load_backend
from lion_export.engine.rtx_targets import TARGETS
major, minor = torch.cuda.get_device_capability()
here, name = f"sm_{major}{minor}", torch.cuda.get_device_name()
targets = ", ".join(TARGETS)
try:
    backend = load_backend()
except BackendError as error:
    print(f"engines: no (this GPU machine has no TensorRT: {error})")
else:
    if backend.is_rtx and here not in TARGETS:
        print(f"engines: no ({name} is {here}; {backend.describe()} targets only {targets}, and "
              "standard TensorRT (import tensorrt), which builds for any GPU, is not installed)")
    else:
        print(f"engines: yes ({backend.describe()} on {name}, {here})")
' >"$OUT/engine.txt" 2>&1 || echo "engines: no (the TensorRT probe failed, exit $?)" >>"$OUT/engine.txt"
    log "$(grep '^engines:' "$OUT/engine.txt" | tail -n 1)"
    if grep -q '^engines: yes' "$OUT/engine.txt"; then
        (cd tests && run_step "pytest (engines)" 200 "$OUT/engine.txt" \
            env -u TRITON_INTERPRET "$PY" -m pytest -v --tb=short --maxfail=10 -rfEs -p no:cacheprovider \
            test_engine_gpu.py)
    fi
else
    log "engines: skipped (no usable GPU environment)"
fi

# ---- 4. summary -------------------------------------------------------------------------------------------------
# ---- 4. parity on onnxruntime's CUDA provider -------------------------------------------------------------------
if timeout -k 5 60 "$PY" -c 'import onnxruntime, sys; sys.exit("CUDAExecutionProvider" not in onnxruntime.get_available_providers())' \
        >/dev/null 2>&1; then
    VERIFY_DIR=$(mktemp -d)
    run_step "tiny checkpoint for the CUDA verify" 60 "$OUT/verify_cuda.txt" env -u TRITON_INTERPRET "$PY" -c '
import sys, torch
from lion_export import create_model, save_checkpoint
torch.manual_seed(0)
save_checkpoint(create_model("vit-tiny", mask="selective", depth=2, img_size=64, num_classes=10), sys.argv[1])
' "$VERIFY_DIR/model.pt" && \
    run_step "export (no verify)" 150 "$OUT/verify_cuda.txt" "$PY" -m lion_export.cli export "$VERIFY_DIR/model.pt" \
        --mode recurrent --no-verify --quiet && \
    run_step "lion-export verify --providers cuda,cpu" 150 "$OUT/verify_cuda.txt" "$PY" -m lion_export.cli verify \
        "$VERIFY_DIR/model.pt" "$VERIFY_DIR/model.onnx" --providers cuda,cpu --report "$OUT/verify_cuda.json"
    rm -rf "$VERIFY_DIR"
else
    log "verify on CUDA: skipped, NO onnxruntime-gpu here (onnxruntime lacks CUDAExecutionProvider)" | tee -a "$OUT/verify_cuda.txt"
fi

# ---- 5. summary -------------------------------------------------------------------------------------------------
# The device tool returns the last 12,000 characters of output: keep this short, the overview last (the files
# under $OUT come back in full).
section() {    # section TITLE FILE LINES: the file's last lines, each cut to 640 bytes (a table row of box characters)
    echo
    echo "=============== $1 ($2)"
    if [[ -s $2 ]]; then tail -n "$3" "$2" | cut -b1-640; else echo "(no output)"; fi
}
section "environment" "$OUT/env.txt" 40
[[ -e $OUT/install.txt ]] && section "install" "$OUT/install.txt" 8
section "pytest" "$OUT/pytest.txt" 25
section "benchmark" "$OUT/bench.txt" 35
[[ -e $OUT/engine.txt ]] && section "engines" "$OUT/engine.txt" 20
section "verify on CUDA" "$OUT/verify_cuda.txt" 20
section "steps" "$OUT/steps.txt" 20
echo
echo "gpu_session.sh: done in $((SECONDS - START))s; files under $OUT"
