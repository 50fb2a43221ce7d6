#!/usr/bin/env bash
# Runs on a GPU machine, from the bundle that `cargo xtask gpu-bundle` builds: no Rust toolchain and no
# network needed. Finds cuBLAS and NVRTC (from the nvidia-* Python packages, or anywhere on the disk),
# runs the GPU tests of tensor-ops and nst-engine, then `nst bench` on the GPU at 400x300 and 1024x768
# (and on the CPU at 400x300, for the ratio on the same machine), then `nst stylize` end to end on the
# GPU against the CPU, with a checkpoint and resume. Everything goes to $OUT (or ./out).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${OUT:-$here/out}
mkdir -p "$out"
exec > >(tee "$out/gpu-run.log") 2>&1

# Ends the script with status $1 once tee has written everything to the log.
finish() {
    exec 1>&- 2>&-
    wait
    exit "$1"
}

echo "== machine"
date -u
uname -srm
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || echo "nvidia-smi failed"
ldd --version 2>&1 | head -n 1
if [ -f "$here/GLIBC_NEEDED" ]; then
    need=$(cat "$here/GLIBC_NEEDED")
    have=$(ldd --version 2>&1 | head -n 1 | grep -oE '[0-9]+\.[0-9]+$' || true)
    if [ -z "$have" ]; then
        echo "error: the bundle needs glibc $need or newer; this machine's C library is not glibc ($(ldd --version 2>&1 | head -n 1))"
        finish 2
    fi
    if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n 1)" != "$need" ]; then
        echo "error: the bundle needs glibc $need or newer, this machine has $have: build it on an older system"
        finish 2
    fi
    echo "glibc $have (the bundle needs $need; libstdc++ GLIBCXX_$(cat "$here/GLIBCXX_NEEDED" 2>/dev/null || echo '?'))"
fi

echo "== libraries"
libdirs=$(python3 - <<'PY' 2>/dev/null
import importlib.util, os
dirs = set()
for name in ("nvidia",):
    spec = importlib.util.find_spec(name)
    for base in (spec.submodule_search_locations or []) if spec else []:
        for root, _, files in os.walk(base):
            if any(f.startswith(("libcublas.so", "libnvrtc.so", "libnvrtc-builtins")) for f in files):
                dirs.add(root)
print(":".join(sorted(dirs)))
PY
)
if [ -z "$libdirs" ]; then
    libdirs=$(find / -xdev \( -name 'libcublas.so*' -o -name 'libnvrtc.so*' \) -printf '%h\n' 2>/dev/null | sort -u | paste -sd: -)
fi
export LD_LIBRARY_PATH="${libdirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
for d in ${libdirs//:/ }; do ls "$d" | grep -E '^lib(cublas|nvrtc)' | sed "s|^|  $d/|"; done
for b in "$here/nst" "$here"/tests/*; do
    ldd "$b" | grep -E 'not found' | sed "s|^|  $(basename "$b"): |" || true
done

status=0
echo "== GPU tests (NST_TEST_GPU=1: a missing device fails them)"
export NST_TEST_GPU=1 NST_TEST_NVRTC=1
for t in "$here"/tests/*; do
    echo "-- $(basename "$t")"
    "$t" cuda cublas nvrtc --test-threads 1 || status=1
done

echo "== benchmarks (random VGG-19 weights to conv5_1, seed objective, Adam)"
"$here/nst" bench --random-weights --device cuda --size 400x300 --iterations 30 || status=1
"$here/nst" bench --random-weights --device cuda --size 1024x768 --iterations 15 || status=1
"$here/nst" bench --random-weights --device cpu --size 400x300 --iterations 3 || status=1

echo "== end to end: nst stylize, GPU against CPU (random VGG-19 weights to relu4_2, the sample images)"
e2e=$(mktemp -d)
"$here/random_vgg19" "$e2e/vgg.mat" relu4_2 || status=1
common=(--content "$here/images/louvre_pyramid.jpg" --style "$here/images/hokusai_great_wave.jpg"
    --weights "$e2e/vgg.mat" --style-layers relu1_1,relu2_1,relu3_1,relu4_1 --print-every 50 --seed 7)
"$here/nst" stylize "${common[@]}" --iterations 200 --device cuda --out-dir "$e2e/gpu" -o "$e2e/gpu/result.png" \
    --animate "$out/e2e-gpu.gif" || status=1
"$here/nst" stylize "${common[@]}" --iterations 200 --device cpu --out-dir "$e2e/cpu" -o "$e2e/cpu/result.png" || status=1
echo "-- the same GPU run stopped at 100 with a checkpoint, then resumed to 200"
"$here/nst" stylize "${common[@]}" --iterations 100 --checkpoint-every 100 --device cuda --out-dir "$e2e/half" \
    -o "$e2e/half/result.png" -q || status=1
"$here/nst" stylize --weights "$e2e/vgg.mat" --device cuda --iterations 200 --resume "$e2e/half" -q || status=1
echo "-- --device auto (must pick the GPU)"
"$here/nst" stylize "${common[@]}" --iterations 1 --device auto --out-dir "$e2e/auto" -o "$e2e/auto/result.png" 2>&1 |
    grep -E "device: cuda" || status=1
cp "$e2e/gpu/result.png" "$out/e2e-gpu.png" 2>/dev/null
cp "$e2e/cpu/result.png" "$out/e2e-cpu.png" 2>/dev/null
# The pictures: the resumed run must equal the straight one pixel for pixel; GPU and CPU drift apart
# (Adam's steps amplify rounding differences) but stay within a few grey levels on average.
python3 - "$e2e" <<'PY' || status=1
import sys
try:
    import numpy as np
    from PIL import Image
except ImportError:
    print("numpy or Pillow missing: pictures not compared")
    sys.exit(0)
d = sys.argv[1]
load = lambda p: np.asarray(Image.open(f"{d}/{p}/result.png").convert("RGB"), dtype=np.int32)
gpu, cpu, resumed = load("gpu"), load("cpu"), load("half")
diff = np.abs(gpu - cpu)
print(f"GPU against CPU after 200 iterations: mean |diff| {diff.mean():.3f} grey levels, max {diff.max()}, "
      f"share over 8: {(diff > 8).mean():.4f}")
print(f"resumed against straight: max |diff| {np.abs(resumed - gpu).max()}")
sys.exit(0 if diff.mean() <= 4 and (resumed == gpu).all() else 1)
PY
rm -rf "$e2e"

echo "== exit $status"
finish $status
