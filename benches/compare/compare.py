#!/usr/bin/env python3
"""Side-by-side timing of one `nst` Adam iteration against the same algorithm in PyTorch (CPU).

    python3 benches/compare/compare.py --install            # once: CPU PyTorch, numpy, scipy into target/bench-venv
    python3 benches/compare/compare.py                      # 400x300 and 1024x768, 2 threads, 3 rounds
    python3 benches/compare/compare.py --sizes 400x300 --rounds 5 --iterations 3 --threads 2

What it does:
  1. builds the release `nst` and the `random_vgg19` example (skip with --no-build);
  2. writes a VGG-19-shaped MatConvNet file with seeded random weights (conv1_1 ... relu5_1) to
     target/bench-compare/vgg19_random.mat;
  3. for every size and round, runs `nst bench --weights THAT.mat` and this script's PyTorch worker
     on the same file, one after the other (the order alternates between rounds, so both see the same
     load), each with a warm-up iteration and --iterations timed ones;
  4. prints, per size, the median iteration of each program over all rounds, the ratio ours/PyTorch,
     the start-up (weights + targets) and the peak RSS of each process, with the load average, and
     the relative difference between the two programs' costs at the start (the same image through
     both: the parity of the forward pass and the costs) and the largest over the later steps.

The algorithm on both sides is `nst bench`'s: the course objective (content relu4_2, style
relu1_1 ... relu5_1 at 0.2, alpha 10, beta 40, no TV, content 1/(4CHW), style 1/(4 C^2 (HW)^2)),
average pooling, synthetic content, style and start images of the working size, Adam with
lr 2, betas 0.9 / 0.999, epsilon 1e-8 added to sqrt(v) (TensorFlow v1's form).

Only the standard library is needed outside the virtual environment; the worker (`torch-worker`)
runs in it. The `torch` wheel comes from plain PyPI (on x86-64 Linux it pulls the CUDA libraries,
a few GB, which the CPU run does not use).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / "target" / "bench-venv"
VENV_PY = VENV / "bin" / "python"
OUT = ROOT / "target" / "bench-compare"
NST = ROOT / "target" / "release" / "nst"
RANDOM_VGG19 = ROOT / "target" / "release" / "examples" / "random_vgg19"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def install():
    if not VENV_PY.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(VENV_PY), "-m", "pip", "install", "--progress-bar", "off", "torch", "numpy", "scipy"],
        check=True,
    )


def build():
    env = dict(os.environ)
    env.setdefault("CARGO_BUILD_JOBS", "1")
    subprocess.run(
        ["cargo", "build", "--release", "-p", "nst-cli", "-p", "nst-engine", "--bin", "nst", "--example", "random_vgg19"],
        cwd=ROOT,
        env=env,
        check=True,
    )


def run_timed(cmd, env):
    """Runs cmd; returns (stdout, stderr, peak RSS in MB) of that child alone."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{out}\n{err}")
    return out, err, usage.ru_maxrss / 1024.0


ITER = re.compile(r"iteration (\d+): ([0-9.]+) s")
COST = re.compile(r"iteration (\d+): [0-9.]+ s, cost ([0-9.eE+-]+)")
STARTUP = re.compile(r"start-up \(weights \+ targets\) ([0-9.]+) s")


def parse(out, err):
    """Timed iterations (the warm-up dropped), start-up, and the cost at the start of every step."""
    times = [float(s) for i, s in ITER.findall(err) if int(i) > 0]
    costs = [float(c) for _, c in COST.findall(err)]
    m = STARTUP.search(out)
    return times, float(m.group(1)) if m else float("nan"), costs


def cost_gaps(ours_costs, torch_costs):
    """|J_nst - J_torch| / |J_torch| at the start (the same image through both programs: the parity of
    the forward pass and the costs), and the largest over the later steps (after Adam has moved the
    image: its first steps move each pixel by about the learning rate in the direction of the
    gradient's sign, so gradients near 0 that round differently take the two runs apart)."""
    gaps = [abs(a - b) / abs(b) for a, b in zip(ours_costs, torch_costs)]
    if not gaps:
        return float("nan"), float("nan")
    return gaps[0], max(gaps[1:], default=float("nan"))


def ours(weights, size, iterations, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    cmd = [str(NST), "bench", "--weights", str(weights), "--size", size, "--iterations", str(iterations)]
    out, err, rss = run_timed(cmd, env)
    return (*parse(out, err), rss)


def torch_side(weights, size, iterations, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [str(VENV_PY), __file__, "torch-worker", "--weights", str(weights), "--size", size,
           "--iterations", str(iterations), "--threads", str(threads)]
    out, err, rss = run_timed(cmd, env)
    return (*parse(out, err), rss)


def cpu_flags():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                keep = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "asimd", "sve") if f in flags]
                return " ".join(keep)
    except OSError:
        pass
    return "?"


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def compare(args):
    if not VENV_PY.exists():
        raise SystemExit(f"no virtual environment at {VENV}: run with --install first (downloads CPU PyTorch from PyPI)")
    if not args.no_build:
        build()
    weights = OUT / "vgg19_random.mat"
    if args.no_build:
        # `random_vgg19` is needed only to write the weights file once.
        needed = [NST] + ([] if weights.exists() else [RANDOM_VGG19])
        missing = [str(p) for p in needed if not p.exists()]
        if missing:
            raise SystemExit(f"--no-build: {', '.join(missing)} not built; run once without --no-build "
                             "(or: cargo build --release -p nst-cli -p nst-engine --bin nst --example random_vgg19)")
    OUT.mkdir(parents=True, exist_ok=True)
    if not weights.exists():
        subprocess.run([str(RANDOM_VGG19), str(weights), "relu5_1", "1"], check=True)
    torch_info = subprocess.run(
        [str(VENV_PY), "-c", "import torch; print(torch.__version__, torch.backends.cpu.get_cpu_capability())"],
        capture_output=True, text=True, check=True).stdout.strip()
    log(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs; flags: {cpu_flags()}")
    log(f"PyTorch {torch_info}; threads: {args.threads}; rounds: {args.rounds} x {args.iterations} timed iterations")
    rows = []
    for size in args.sizes.split(","):
        load0 = os.getloadavg()[0]
        mine, theirs = {"t": [], "s": [], "m": [], "c": []}, {"t": [], "s": [], "m": [], "c": []}
        for r in range(args.rounds):
            order = [("nst", ours, mine), ("torch", torch_side, theirs)]
            if r % 2 == 1:
                order.reverse()
            for name, fn, acc in order:
                t, s, c, m = fn(weights, size, args.iterations, args.threads)
                acc["t"] += t
                acc["c"] = c
                acc["s"].append(s)
                acc["m"].append(m)
                log(f"{size} round {r + 1} {name}: iterations {', '.join(f'{x:.3f}' for x in t)} s; "
                    f"start-up {s:.2f} s; peak RSS {m:.0f} MB; load {os.getloadavg()[0]:.1f}")
        load1 = os.getloadavg()[0]
        a, b = statistics.median(mine["t"]), statistics.median(theirs["t"])
        gap0, gap_later = cost_gaps(mine["c"], theirs["c"])
        log(f"{size} costs, nst:     {' '.join(f'{c:.9e}' for c in mine['c'])}")
        log(f"{size} costs, PyTorch: {' '.join(f'{c:.9e}' for c in theirs['c'])}")
        rows.append((size, a, b, statistics.median(mine["s"]), statistics.median(theirs["s"]),
                     max(mine["m"]), max(theirs["m"]), len(mine["t"]), load0, load1, gap0, gap_later))
    print(f"CPU: {cpu_model()}; flags: {cpu_flags()}; PyTorch {torch_info}; {args.threads} threads")
    print("| size | nst s/iter | PyTorch s/iter | ratio nst/PyTorch | nst start-up s | PyTorch start-up s | nst peak RSS MB | PyTorch peak RSS MB | samples each | load avg (1 min) | relative cost gap at the start | largest later |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for size, a, b, sa, sb, ma, mb, n, l0, l1, g0, g1 in rows:
        print(f"| {size} | {a:.3f} | {b:.3f} | **{a / b:.2f}** | {sa:.2f} | {sb:.2f} | {ma:.0f} | {mb:.0f} | {n} | {l0:.1f}-{l1:.1f} | {g0:.1e} | {g1:.1e} |")


# ---------------------------------------------------------------------------------------------
# The PyTorch worker: runs inside the virtual environment.


def load_mat(path, last="relu5_1"):
    import numpy as np
    import scipy.io
    import torch

    m = scipy.io.loadmat(str(path), struct_as_record=False, squeeze_me=True)
    layers = []
    for layer in np.atleast_1d(m["layers"]):
        kind, name = str(layer.type), str(layer.name)
        if kind == "conv":
            w, b = layer.weights[0], layer.weights[1]
            w = np.asarray(w, dtype=np.float32)  # [kh, kw, c_in, c_out]
            w = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
            b = torch.from_numpy(np.asarray(b, dtype=np.float32).reshape(-1))
            pad = [int(p) for p in np.atleast_1d(layer.pad)]
            if len(pad) == 1:
                pad = pad * 4
            stride = [int(s) for s in np.atleast_1d(layer.stride)]
            if len(stride) == 1:
                stride = stride * 2
            layers.append(("conv", name, (w, b, pad, stride)))
        elif kind == "relu":
            layers.append(("relu", name, None))
        elif kind == "pool":
            layers.append(("pool", name, None))
        else:
            raise SystemExit(f"layer {name}: type {kind} not supported")
        if name == last:
            break
    return layers


def forward(layers, x, taps):
    import torch.nn.functional as F

    out = {}
    for kind, name, p in layers:
        if kind == "conv":
            w, b, (pt, pb, pl, pr), stride = p
            if pt == pb == pl == pr:
                x = F.conv2d(x, w, b, stride=stride, padding=pt)
            else:
                x = F.conv2d(F.pad(x, (pl, pr, pt, pb)), w, b, stride=stride)
        elif kind == "relu":
            x = F.relu(x)
        else:  # `nst bench` replaces every pooling by 2x2 average pooling
            x = F.avg_pool2d(x, 2, 2)
        if name in taps:
            out[name] = x
    return out


def worker(args):
    t0 = time.perf_counter()
    import torch

    torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.split("x"))
    layers = load_mat(args.weights)
    content_layers = {"relu4_2": 1.0}
    style_layers = {f"relu{i}_1": 0.2 for i in range(1, 6)}
    taps = set(content_layers) | set(style_layers)
    alpha, beta = 10.0, 40.0

    def image(k):
        c = torch.arange(3).view(3, 1, 1)
        y = torch.arange(h).view(1, h, 1)
        x = torch.arange(w).view(1, 1, w)
        return (((c * 31 + y * 7 + x * 13 + k) % 97).float() - 48.0).unsqueeze(0)

    def gram(f):
        f = f.reshape(f.shape[1], -1)
        return f @ f.t()

    with torch.no_grad():
        pc = forward(layers, image(0), taps)
        ps = forward(layers, image(5), taps)
        content_t = {n: pc[n] for n in content_layers}
        style_t = {n: gram(ps[n]) for n in style_layers}
    startup = time.perf_counter() - t0

    x = image(9).requires_grad_(True)
    m = torch.zeros_like(x)
    v = torch.zeros_like(x)
    lr, b1, b2, eps = 2.0, 0.9, 0.999, 1e-8

    def step(t):
        feats = forward(layers, x, taps)
        loss = 0.0
        for n, wt in content_layers.items():
            f = feats[n]
            loss = loss + alpha * wt * ((f - content_t[n]) ** 2).sum() / (4.0 * f.numel())
        for n, wt in style_layers.items():
            f = feats[n]
            c, hw = f.shape[1], f.shape[2] * f.shape[3]
            loss = loss + beta * wt * ((gram(f) - style_t[n]) ** 2).sum() / (4.0 * c * c * hw * hw)
        x.grad = None
        loss.backward()
        with torch.no_grad():
            g = x.grad
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            lr_t = lr * (1 - b2**t) ** 0.5 / (1 - b1**t)
            x.sub_(lr_t * m / (v.sqrt() + eps))
        return loss.item()

    for i in range(args.iterations + 1):
        t = time.perf_counter()
        cost = step(i + 1)
        s = time.perf_counter() - t
        print(f"iteration {i}: {s:.4f} s, cost {cost:.9e}{' (warm-up)' if i == 0 else ''}", file=sys.stderr, flush=True)
    print(f"{args.size}: start-up (weights + targets) {startup:.2f} s (PyTorch {torch.__version__}, {torch.get_num_threads()} threads)")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd")
    p.add_argument("--install", action="store_true", help="create target/bench-venv with CPU PyTorch, numpy, scipy, then compare")
    p.add_argument("--install-only", action="store_true", help="only create the virtual environment")
    p.add_argument("--sizes", default="400x300,1024x768", help="comma-separated WxH (default: 400x300,1024x768)")
    p.add_argument("--rounds", type=int, default=3, help="alternating runs of each program per size (default 3)")
    p.add_argument("--iterations", type=int, default=3, help="timed iterations per run, after one warm-up (default 3)")
    p.add_argument("--threads", type=int, default=2, help="threads for both programs (default 2)")
    p.add_argument("--no-build", action="store_true", help="use the release binaries already built")
    wk = sub.add_parser("torch-worker", help="(internal) the PyTorch side of one run")
    wk.add_argument("--weights", required=True)
    wk.add_argument("--size", required=True)
    wk.add_argument("--iterations", type=int, default=3)
    wk.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if args.cmd == "torch-worker":
        worker(args)
        return
    if args.install or args.install_only:
        install()
        if args.install_only:
            return
    compare(args)


if __name__ == "__main__":
    main()
