"""
What sharing projections buys, measured: KV-cache bytes vs context for every variant (theory and real buffers),
prefill time and memory, decode speed through the model's own cached path (eager and compiled), training
throughput, on CUDA the Triton decode kernel and a 1.2B optimizer step, and a memory plan per GPU for training
every run config under DDP and FSDP (arithmetic on the meta device).
$ OMP_NUM_THREADS=1 python bench.py --out=assets      # CPU: every section that runs on CPU, minutes
$ python bench.py --device=cuda --out=assets/gpu      # GPU: every section, 200 s on an H200
Each section prints a table and writes CSV (and PNG) under --out (default out-bench/, out-bench-quick/ with --quick).
Only the two commands above write into assets/, which holds the tracked results (see tracked_run). Timings are medians
over repeats, taken round robin over the variants, so compare variants within one run, never across machines. On a CPU
shared with other jobs, one thread makes the timings CPU time (see clock_kind); with more threads they are wall-clock.
"""
import argparse
import ast
import csv
import difflib
import glob
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import types
import weakref
from contextlib import nullcontext
from dataclasses import asdict

if getattr(sys.flags, "safe_path", False):  # PYTHONSAFEPATH=1 or -P leaves this folder off sys.path: the next
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # import was a ModuleNotFoundError traceback
from configurator import quiet_start  # standard library only

if __name__ == "__main__":  # a Ctrl-C (SIGTERM, SIGHUP) while torch imports: one line, not its traceback
    quiet_start()

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker
import torch
from torch.nn import functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from checkpoint import (ASSETS, atomic_write, checkpoint_path, guard_assets, hold_out, load_checkpoint, load_json,
                        new_dirs, save_figure, say_wrote, together, writable_dir)
from configurator import Parser, cli, compile_failure, run_file
from convert import GPT2_CHOSEN, GPT2_SIZES, check_conversion, gpt2_config
from model import GPT, SOURCES, GPTConfig
from sample import check_device

VARIANTS = [  # paper name -> the GPTConfig fields that make it
    ("QKV", dict(proj="qkv")),
    ("Q=K-V", dict(proj="q_kv")),
    ("Q-K=V", dict(proj="qk_v")),
    ("Q=K=V", dict(proj="q_k_v")),
    ("GQA-4", dict(proj="qkv", n_kv_head=4)),
    ("MQA", dict(proj="qkv", n_kv_head=1)),
    ("Q-K=V + GQA-4", dict(proj="qk_v", n_kv_head=4)),
    ("Q-K=V + MQA", dict(proj="qk_v", n_kv_head=1)),
    ("linear attention", dict(attn="linear")),
]
PAPER_SHAPES = {"300M": dict(n_layer=20, n_head=16, n_embd=1024, vocab_size=50304),
                "1.2B": dict(n_layer=22, n_head=32, n_embd=2048, vocab_size=50304)}
# decode and train shapes per device; --quick swaps in a tiny one
SMALL = dict(n_layer=2, n_head=8, n_embd=512, vocab_size=256)
DECODE_CPU = dict(n_layer=2, n_head=16, n_embd=1024, vocab_size=256)  # issue 14's goals: 16 heads x 64
TINY = dict(n_layer=2, n_head=8, n_embd=64, vocab_size=256)


def build(shape, fields, device, block_size):
    with torch.device(device):  # on "meta" no memory is used, so the paper shapes at 128k context cost nothing
        return GPT(GPTConfig(block_size=block_size, **shape, **fields))


def clock_kind(device):
    # On CPU with one thread (OMP_NUM_THREADS=1) the process's CPU time leaves out the slices other jobs hold the
    # core, which on a shared machine make wall-clock steps bimodal; with more threads it would count spin-waits.
    return "CPU time" if device.type == "cpu" and torch.get_num_threads() == 1 else "wall-clock"


def clock(device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.process_time() if clock_kind(device) == "CPU time" else time.perf_counter()


def write_csv(path, rows):
    f = io.StringIO()
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write(path, f.getvalue())
    say_wrote(path)


def save_fig(fig, path):
    save_figure(fig, path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    say_wrote(path)


def style(i, fields):
    # Q=K-V caches what QKV caches and Q=K=V what Q-K=V does: dashed lines keep both of a pair visible
    q, k, _ = SOURCES[fields.get("proj", "qkv")]
    return dict(marker="osv^DPX*h"[i], linestyle="--" if q == k else "-", markersize=5)


def ctx_label(t):
    return f"{t // 1024}k" if t >= 1024 else str(t)


def log2_context_axis(ax, contexts):
    ax.set_xscale("log", base=2)
    ax.set_xticks(contexts, [ctx_label(t) for t in contexts])
    ax.minorticks_off()
    ax.grid(True, alpha=0.3)


def print_table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for r in [header] + rows:
        print("  ".join(str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(r, widths))))


# -----------------------------------------------------------------------------
# cache bytes vs context

def state_bytes(config, dtype):
    """Linear attention's cache: per layer and key head a D x D state and a D normaliser, whatever the length."""
    d = config.n_embd // config.n_head
    return config.n_layer * (config.n_kv_head or config.n_head) * (d * d + d) * dtype.itemsize


def bench_cache(args, device):
    dtype, contexts = torch.bfloat16, [2 ** i for i in range(10, 15 if args.quick else 18)]
    print(f"\n== cache: batch 1, bf16, context {ctx_label(contexts[0])}..{ctx_label(contexts[-1])}, "
          f"buffers built by new_cache on the meta device ==")
    rows = []
    for shape_name, shape in PAPER_SHAPES.items():
        base = {}
        for name, fields in VARIANTS:
            model = build(shape, fields, "meta", contexts[-1])
            for t in contexts:
                allocated = model.new_cache(1, t, dtype, "meta").nbytes
                theory = (state_bytes(model.config, dtype) if model.config.attn == "linear"
                          else model.kv_bytes_per_token(dtype) * t)
                if allocated != theory:  # a check, not an assert: `python -O` skipped it and wrote the table
                    raise SystemExit(f"bench.py's self-check failed: {shape_name} {name} at {t} tokens: new_cache "
                                     f"holds {allocated:,} bytes where kv_bytes_per_token says {theory:,}; model.py's "
                                     f"cache sizes disagree, so no table is written (a bug: report it).")
                base.setdefault(t, allocated)  # QKV comes first
                c = model.config
                rows.append(dict(shape=shape_name, variant=name, n_layer=c.n_layer, n_head=c.n_head,
                                 n_embd=c.n_embd, proj=c.proj, n_kv_head=c.n_kv_head, attn=c.attn, context=t,
                                 theory_bytes=theory, allocated_bytes=allocated,
                                 reduction_vs_qkv=1 - allocated / base[t]))
    for shape_name in PAPER_SHAPES:
        print(f"\n{shape_name} {PAPER_SHAPES[shape_name]}: GiB of cache at each context (allocated = theory)")
        table = []
        for name, _ in VARIANTS:
            rs = [r for r in rows if r["shape"] == shape_name and r["variant"] == name]
            per_token = "fixed" if rs[0]["attn"] == "linear" else f"{rs[0]['allocated_bytes'] // rs[0]['context']}"
            table.append([name, per_token] + [f"{r['allocated_bytes'] / 2 ** 30:.3g}" for r in rs] +
                         [f"{100 * rs[-1]['reduction_vs_qkv']:.2f}%"])
        print_table(["variant", "bytes/token"] + [ctx_label(t) for t in contexts] +
                    [f"saved at {ctx_label(contexts[-1])}"], table)
    write_csv(os.path.join(args.out, "cache_savings.csv"), rows)
    fig, axes = plt.subplots(1, 2, figsize=(13, 6), sharey=True)
    for ax, shape_name in zip(axes, PAPER_SHAPES):
        for i, (name, fields) in enumerate(VARIANTS):
            rs = [r for r in rows if r["shape"] == shape_name and r["variant"] == name]
            gib = [r["allocated_bytes"] / 2 ** 30 for r in rs]
            red = rs[0]["reduction_vs_qkv"]
            label = (f"{name}: fixed {rs[0]['allocated_bytes'] / 2 ** 20:.1f} MiB state" if fields.get("attn")
                     else f"{name} (-{100 * red:.1f}%)" if red else f"{name} ({'baseline' if i == 0 else 'no saving'})")
            ax.plot(contexts, gib, label=label, **style(i, fields))
        s = PAPER_SHAPES[shape_name]
        ax.set_title(f"{shape_name}: {s['n_layer']} layers, d={s['n_embd']}, {s['n_head']} heads")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}"))  # not 10^-2
        log2_context_axis(ax, contexts)
        ax.set_xlabel("context length (tokens)")
        ax.legend(fontsize=8, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.13), title="cache vs QKV")
    axes[0].set_ylabel("KV cache, GiB (batch 1, bf16)")
    fig.suptitle("KV cache allocated by new_cache (equal to kv_bytes_per_token x context)")
    save_fig(fig, os.path.join(args.out, "cache_savings.png"))


# -----------------------------------------------------------------------------
# decode speed through the cached path generate uses

COMPILED = ("QKV", "Q-K=V", "Q-K=V + MQA")  # also timed through generate(compile=True)'s compiled step
GOALS = [("Q-K=V", 1.5), ("Q-K=V + MQA", 3.0)]  # issue 14: decode speed vs QKV at 8k context, CPU, B=8


def fill_cache(cache, upto):
    """Stand in for a prefill of `upto` tokens: random contents cost what real ones do to read, and positive
    values keep linear attention's normaliser away from zero."""
    for layer in cache.layers:
        for t in layer.values():
            t.uniform_()
    cache.pos = cache.end = upto  # end: linear attention's state stands for that many positions


def bench_decode(args, device):
    cuda = device.type == "cuda"
    if args.quick:
        shape, batch, contexts, warmup, reps, dtype = TINY, 1, [16, 32], 1, 2, torch.float32
    elif cuda:  # two contexts and two compiled variants: each compile of the 300M step costs about a minute
        shape, batch, contexts, warmup, reps, dtype = PAPER_SHAPES["300M"], 8, [8192, 32768], 3, 10, torch.bfloat16
    else:
        shape, batch, contexts, warmup, reps, dtype = DECODE_CPU, 8, [1024, 2048, 4096, 8192], 2, 10, torch.float32
    compiled = COMPILED[:2] if cuda else COMPILED
    print(f"\n== decode: {shape}, batch {batch}, {str(dtype)[6:]}, random weights and cache contents; one token "
          f"per step through model(idx, cache=cache), the path generate uses (compiled: generate(compile=True)'s "
          f"step, whose first call compiles in the warmup); median of {reps} steps ==")
    models = {name: build(shape, fields, device, contexts[-1] + warmup + reps).to(dtype).eval()
              for name, fields in VARIANTS}
    names = [name for name, _ in VARIANTS] + [f"{name}, compiled" for name in compiled]
    rows = []
    with torch.no_grad():
        for t in contexts:
            caches, steps = {}, {}  # the previous context's buffers are freed before these are allocated
            for name in names:
                model = models[name.removesuffix(", compiled")]
                # sized as generate(prompt of t tokens, warmup + reps new ones) sizes it
                caches[name] = model.new_cache(batch, t + warmup + reps, dtype, device)
                fill_cache(caches[name], t)
                steps[name] = model.compiled_step(caches[name]) if name.endswith("compiled") else model
            times = {name: [] for name in names}
            for r in range(warmup + reps):
                for name in names:
                    idx = torch.randint(shape["vocab_size"], (batch, 1), device=device)
                    t0 = clock(device)
                    steps[name](idx, cache=caches[name])
                    if r >= warmup:
                        times[name].append(clock(device) - t0)
            for name in names:
                dt = statistics.median(times[name])
                rows.append(dict(variant=name, batch=batch, context=t, ms_per_step=1e3 * dt,
                                 tokens_per_s=batch / dt, cache_bytes=caches[name].nbytes,
                                 ms_min=1e3 * min(times[name]), ms_max=1e3 * max(times[name]), repeats=reps))
    for r in rows:
        r["speed_vs_qkv"] = next(q["ms_per_step"] for q in rows if q["context"] == r["context"]) / r["ms_per_step"]
    print(f"ms per decode step (batch {batch}, {clock_kind(device)}), and speed relative to eager QKV in ()")
    table = [[name] + [f"{r['ms_per_step']:.2f} ({r['speed_vs_qkv']:.2f}x)" for r in rows if r["variant"] == name]
             for name in names]
    print_table(["variant"] + [ctx_label(t) for t in contexts], table)
    at = {r["variant"]: r for r in rows if r["context"] == contexts[-1]}
    for name in compiled:
        ratio = at[name]["ms_per_step"] / at[f"{name}, compiled"]["ms_per_step"]
        print(f"{name} at {ctx_label(contexts[-1])}: the compiled step runs at {ratio:.2f}x the eager one's speed")
    if not args.quick and not cuda:
        for name, goal in GOALS:
            got = at[name]["speed_vs_qkv"]
            print(f"goal: {name} decodes >= {goal}x faster than QKV at {ctx_label(contexts[-1])}, batch {batch}: "
                  f"{got:.2f}x, {'met' if got >= goal else 'NOT met'}")
    write_csv(os.path.join(args.out, "decode_speed.csv"), rows)
    plot_decode(rows, f"Cached decoding (eager) on {device_name(device)}: {shape['n_layer']} layers, "
                      f"d={shape['n_embd']}, {shape['n_head']} heads, batch {batch}, {str(dtype)[6:]}",
                f"ms per decode step (batch {batch}, {clock_kind(device)})", os.path.join(args.out, "decode_speed.png"))


def plot_decode(rows, title, ylabel, path):
    """ms per step and speed vs QKV against the context, eager variants: the median of the repeats, whiskers from
    the fastest to the slowest repeat (the speed's from QKV's median over the variant's slowest and fastest)."""
    contexts = sorted({r["context"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for i, (name, fields) in enumerate(VARIANTS):
        rs = sorted((r for r in rows if r["variant"] == name), key=lambda r: r["context"])
        qkv = [next(q["ms_per_step"] for q in rows if q["context"] == r["context"]) for r in rs]
        ms = [r["ms_per_step"] for r in rs]
        err = [[m - r["ms_min"] for m, r in zip(ms, rs)], [r["ms_max"] - m for m, r in zip(ms, rs)]]
        speed = [r["speed_vs_qkv"] for r in rs]
        speed_err = [[v - b / r["ms_max"] for v, b, r in zip(speed, qkv, rs)],
                     [b / r["ms_min"] - v for v, b, r in zip(speed, qkv, rs)]]
        x = [c * 1.015 ** (i - len(VARIANTS) / 2) for c in contexts]  # side by side: whiskers do not hide each other
        axes[0].errorbar(x, ms, yerr=err, capsize=2, label=name, **style(i, fields))
        axes[1].errorbar(x, speed, yerr=speed_err, capsize=2, label=name, **style(i, fields))
    axes[0].set_ylim(bottom=0)
    axes[0].set_ylabel(ylabel)
    axes[1].set_ylabel("decode speed relative to QKV")
    for ax in axes:
        log2_context_axis(ax, contexts)
        ax.set_xlabel("context length (tokens)")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"{title}\nmedian of {rows[0]['repeats']} repeats, whiskers: fastest to slowest repeat")
    save_fig(fig, path)


# -----------------------------------------------------------------------------
# prefill: time and memory of a long prompt

class PeakMemory(TorchDispatchMode):
    """Bytes of the tensors that ops create inside the `with` block: the peak of those alive at once and the
    largest one. A storage counts from the op that allocates it until the last tensor viewing it is freed; memory
    that kernels use internally and never return is not seen."""

    def __init__(self):
        super().__init__()
        self.refs, self.live, self.peak, self.largest = {}, 0, 0, 0

    def release(self, ptr, nbytes):
        self.refs[ptr] -= 1
        if not self.refs[ptr]:
            del self.refs[ptr]
            self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {a.untyped_storage().data_ptr() for a in pytree.tree_leaves((args, kwargs))
                  if isinstance(a, torch.Tensor)}
        for t in pytree.tree_leaves(out):
            if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                continue
            ptr, nbytes = t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()
            if ptr not in self.refs:
                if ptr in inputs or not nbytes:  # a view or an in-place result of a tensor made before the block
                    continue
                self.live += nbytes
                self.peak, self.largest = max(self.peak, self.live), max(self.largest, nbytes)
            self.refs[ptr] = self.refs.get(ptr, 0) + 1
            weakref.finalize(t, self.release, ptr, nbytes)
        return out


def bench_prefill(args, device):
    cuda = device.type == "cuda"
    shape = dict(TINY if args.quick else PAPER_SHAPES["300M"] if cuda else SMALL, vocab_size=50304)
    T, reps = (64, 2) if args.quick else (4096, 10 if cuda else 9)
    model = build(shape, {}, device, T + 1).eval()
    prompt = torch.randint(shape["vocab_size"], (1, T), device=device)
    print(f"\n== prefill: {shape}, QKV, one prompt of {T} tokens, float32; median of {reps} runs, round robin ==")

    def last_only():  # the reference: one uncached pass whose output layer sees the last position only
        hook = model.transformer.ln_f.register_forward_pre_hook(lambda m, a: (a[0][:, -1:],))
        logits = model(prompt)[0]
        hook.remove()
        return logits

    modes = {"generate(prompt, 1 new token)": lambda: model.generate(prompt, 1, temperature=0),
             "model(prompt, cache=new cache)": lambda: model(prompt, cache=model.new_cache(1, T + 1, device=device)),
             "reference: last position's logits only": last_only,
             "forward, every position's logits": lambda: model(prompt)}
    times = {mode: [] for mode in modes}
    memory = {mode: PeakMemory() for mode in modes}
    with torch.no_grad():
        for mode, fn in modes.items():  # a first run of each warms up, and its tensors are counted
            with memory[mode]:
                fn()
        for _ in range(reps):
            for mode, fn in modes.items():
                t0 = clock(device)
                fn()
                times[mode].append(clock(device) - t0)
    ref = statistics.median(times["reference: last position's logits only"])
    rows = [dict(what=mode, ms=1e3 * statistics.median(times[mode]), vs_reference=statistics.median(times[mode]) / ref,
                 peak_bytes=memory[mode].peak, largest_tensor_bytes=memory[mode].largest) for mode in modes]
    logits_bytes = T * shape["vocab_size"] * 4
    print(f"ms ({clock_kind(device)}), time relative to the reference, and the tensors ops created: MiB alive at "
          f"once (peak) and the largest; one [{T}, {shape['vocab_size']}] float32 logits tensor is "
          f"{logits_bytes / 2 ** 20:.0f} MiB")
    print_table(["", "ms", "vs reference", "peak MiB", "largest MiB"],
                [[r["what"], f"{r['ms']:.0f}", f"{r['vs_reference']:.3f}x", f"{r['peak_bytes'] / 2 ** 20:.1f}",
                  f"{r['largest_tensor_bytes'] / 2 ** 20:.1f}"] for r in rows])
    if not args.quick:
        gen = rows[0]
        print(f"goal: generate's prefill within 5% of the reference: {gen['vs_reference']:.3f}x, "
              f"{'met' if gen['vs_reference'] <= 1.05 else 'NOT met'}")
        print(f"goal: generate holds no [T, vocab] tensor: largest {gen['largest_tensor_bytes'] / 2 ** 20:.1f} MiB, "
              f"{'met' if gen['largest_tensor_bytes'] < logits_bytes else 'NOT met'}")
    write_csv(os.path.join(args.out, "prefill.csv"), rows)


# -----------------------------------------------------------------------------
# training throughput

def bench_train(args, device):
    cuda = device.type == "cuda"
    variants = VARIANTS
    if args.quick:
        shape, batch, block, warmup, reps = TINY, 2, 32, 1, 2
    elif cuda:  # the paper's 300M micro-batch, compiled as train.py does; two variants keep compiling to minutes
        shape, batch, block, warmup, reps = PAPER_SHAPES["300M"], 6, 2048, 3, 10
        variants = [v for v in VARIANTS if v[0] in ("QKV", "Q-K=V")]
    else:
        shape, batch, block, warmup, reps = SMALL, 2, 256, 1, 7
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
    print(f"\n== train: {shape}, batch {batch} x {block} tokens, forward + backward, "
          f"{'bf16 autocast, torch.compile' if cuda else 'float32'}; median of {reps} steps ==")
    models = {name: build(shape, fields, device, block).train() for name, fields in variants}
    steps = {name: torch.compile(m) if cuda else m for name, m in models.items()}
    x = torch.randint(shape["vocab_size"], (batch, block), device=device)
    y = torch.randint(shape["vocab_size"], (batch, block), device=device)
    times = {name: [] for name in models}
    for r in range(warmup + reps):
        for name, model in models.items():
            t0 = clock(device)
            with ctx:
                _, loss = steps[name](x, y)
            loss.backward()
            model.zero_grad(set_to_none=True)
            if r >= warmup:
                times[name].append(clock(device) - t0)
    rows = []
    for name, m in models.items():
        dt = statistics.median(times[name])
        rows.append(dict(variant=name, params=m.num_params(), batch=batch, block_size=block,
                         tokens_per_s=batch * block / dt, mfu=m.estimate_mfu(batch, dt)))
    for r in rows:
        r["ratio_vs_qkv"] = r["tokens_per_s"] / rows[0]["tokens_per_s"]
    print(f"forward + backward tokens/s ({clock_kind(device)}); MFU vs the GPU's bf16 peak (n/a on CPU)")
    print_table(["variant", "params", "tokens/s", "vs QKV", "MFU"],
                [[r["variant"], f"{r['params']:,}", f"{r['tokens_per_s']:.0f}", f"{r['ratio_vs_qkv']:.2f}x",
                  "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"] for r in rows])
    write_csv(os.path.join(args.out, "train_speed.csv"), rows)


def bench_step(args, device):
    cuda = device.type == "cuda"
    if not cuda and not args.quick:
        print("\n== step: the 1.2B optimizer step needs CUDA (--device=cuda); skipped ==")
        return False  # no table: none to record as a full run's (see measure)
    shape, batch, block = (TINY, 2, 32) if args.quick else (dict(PAPER_SHAPES["1.2B"], n_inner=8192), 2, 2048)
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
    # what ran: --quick's tiny shape is no paper's micro-batch, and configure_optimizers fuses AdamW on CUDA only
    # (the CPU run said "the paper's micro-batch 2 x 32 ... fused AdamW")
    micro = "micro-batch" if args.quick else "the paper's micro-batch"
    print(f"\n== step: {shape}, {micro} {batch} x {block}, dropout 0.1, forward + backward + "
          f"{'fused ' if cuda else ''}AdamW, {'bf16 autocast' if cuda else 'float32'}, eager; the second step is "
          f"timed ==")
    x = torch.randint(shape["vocab_size"], (batch, block), device=device)
    y = torch.randint(shape["vocab_size"], (batch, block), device=device)
    rows = []
    for name, fields in [v for v in VARIANTS if v[0] in ("QKV", "Q-K=V")]:
        model = build(shape, dict(fields, dropout=0.1), device, block).train()
        opt = model.configure_optimizers(0.1, 6e-5, (0.9, 0.95), device.type)
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        for _ in range(2):  # the first step also allocates AdamW's state, which the peak then holds
            t0 = clock(device)
            with ctx:
                _, loss = model(x, y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            dt = clock(device) - t0
        rows.append(dict(variant=name, params=model.num_params(), batch=batch, block_size=block, s_per_step=dt,
                         peak_memory_bytes=torch.cuda.max_memory_allocated(device) if cuda else None))
        del model, opt  # before the next variant is built, so its peak is its own
    print_table(["variant", "params", "s per step", "peak GiB"],
                [[r["variant"], f"{r['params']:,}", f"{r['s_per_step']:.3f}",
                  "n/a" if r["peak_memory_bytes"] is None else f"{r['peak_memory_bytes'] / 2 ** 30:.1f}"]
                 for r in rows])
    write_csv(os.path.join(args.out, "train_step.csv"), rows)


# -----------------------------------------------------------------------------
# Triton decode kernel vs SDPA, and the copy bandwidth of the same device

def cuda_time(fn, flush, warmup=5, reps=25):
    """Median seconds per call; `flush` is overwritten before each call so the cache is read from HBM, not L2."""
    for _ in range(warmup):
        fn()
    events = []
    for _ in range(reps):
        flush.zero_()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        events.append((start, end))
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in events) / 1e3


def copy_bandwidth(device, flush):
    """Bytes read + written per second by a 2 GiB device-to-device copy: the ceiling a decode kernel can approach."""
    src = torch.empty(2 * 2 ** 30, dtype=torch.int8, device=device)
    dst = torch.empty_like(src)
    return 2 * src.numel() / cuda_time(lambda: dst.copy_(src), flush)


def flash_decode(q, k, v):
    """PyTorch's flash-attention SDPA on one query per head, the query heads of each KV head folded into its
    queries as the model folds them ([B, H_kv, G, D]); an error, not a silent fallback, if flash cannot run it."""
    B, H, D = q.shape
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        return F.scaled_dot_product_attention(q.view(B, k.size(1), H // k.size(1), D), k, v)


def bench_kernel(args, device):
    if device.type != "cuda":
        print("\n== kernel: the Triton decode-attention table needs CUDA (--device=cuda); skipped ==")
        return False
    from kernel import decode_attention, decode_attention_ref
    B, H, D, dtype = 8, 32, 64, torch.bfloat16
    contexts = [1024, 2048] if args.quick else [4096, 16384, 65536, 131072]
    flush = torch.empty(512 * 2 ** 20, dtype=torch.int8, device=device)  # larger than any GPU's L2
    copy_bw = copy_bandwidth(device, flush)
    print(f"\n== kernel: decode attention, B={B}, H={H}, D={D}, {str(dtype)[6:]}; device copy bandwidth (read + write) "
          f"{copy_bw / 1e9:.0f} GB/s ==")
    rows = []
    for t in contexts:
        for h_kv in (32, 8, 1):
            q = torch.randn(B, H, D, dtype=dtype, device=device)
            k = torch.randn(B, h_kv, t, D, dtype=dtype, device=device)
            v = torch.randn_like(k)
            ref_k, ref_kv = decode_attention_ref(q, k), decode_attention_ref(q, k, v)
            modes = [("kernel V=K", lambda: decode_attention(q, k), k, ref_k),
                     ("kernel K,V", lambda: decode_attention(q, k, v), (k, v), ref_kv),
                     ("flash SDPA V=K", lambda: flash_decode(q, k, k), k, ref_k),
                     ("flash SDPA K,V", lambda: flash_decode(q, k, v), (k, v), ref_kv)]
            for mode, fn, read, ref in modes:
                nbytes = sum(x.numel() * x.element_size() for x in (read if isinstance(read, tuple) else (read,)))
                err = (fn().reshape(ref.shape).float() - ref.float()).abs().max().item()
                dt = cuda_time(fn, flush)
                rows.append(dict(context=t, n_kv_head=h_kv, mode=mode, us_per_call=1e6 * dt, cache_bytes=nbytes,
                                 gb_per_s=nbytes / dt / 1e9, of_copy_bw=nbytes / dt / copy_bw, max_abs_err=err))
    print("us per call, effective bandwidth = cache bytes read / time, and its fraction of the copy bandwidth")
    table = []
    for r in rows:
        base = next(q for q in rows if q["context"] == r["context"] and q["n_kv_head"] == r["n_kv_head"]
                    and q["mode"] == "kernel K,V")
        table.append([ctx_label(r["context"]), r["n_kv_head"], r["mode"], f"{r['us_per_call']:.1f}",
                      f"{r['gb_per_s']:.0f}", f"{100 * r['of_copy_bw']:.0f}%",
                      f"{base['us_per_call'] / r['us_per_call']:.2f}x", f"{r['max_abs_err']:.1e}"])
    print_table(["context", "H_kv", "mode", "us", "GB/s", "of copy", "vs kernel K,V", "max err"], table)
    write_csv(os.path.join(args.out, "kernel_decode.csv"), rows)


# -----------------------------------------------------------------------------
# memory per GPU: training under DDP and FSDP on 1, 8 and 64 GPUs, and the KV cache at serving time

GPU_GB = (40, 80, 141)  # A100 40GB, H100 80GB, H200 141GB, in decimal GB (the cards hold slightly more)
GPU_COUNTS = (1, 8, 64)


def train_settings():
    """The names train.py takes from a config file: every GPTConfig field and each number, flag or text it assigns
    before it reads its arguments (its config_keys), read from its source without running it."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py"), encoding="utf-8") as f:
        body = ast.parse(f.read()).body
    assigns = [n for n in body if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)]
    end = next(n.lineno for n in assigns if n.targets[0].id == "config_keys")
    return set(asdict(GPTConfig())) | {n.targets[0].id for n in assigns if n.lineno < end and isinstance(
        n.value, ast.Constant) and type(n.value.value) in (int, float, bool, str) and n.targets[0].id[0] != "_"}


def run_configs():
    """{name: the values it sets} for every run config in config/ (base_*.py are fragments, not runs), each checked
    as far as the plan reads it: a user's own file there that does not run, or sets a model train.py would refuse,
    is one sentence naming it (it was a traceback, or a plan for batch_size 0)."""
    runs, settings = {}, train_settings()
    for path in sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "config", "*.py"))):
        if not os.path.basename(path).startswith("base_"):
            scope = run_file(path, {})
            runs[os.path.basename(path)[:-3]] = scope
            default = asdict(GPTConfig())
            # a name train.py refuses (n_layers = 12 in a copied config) was left out: a plan of the base's model
            unknown = next((k for k, v in scope.items() if k in scope.assigned and not k.startswith("_")
                            and not isinstance(v, types.ModuleType) and k not in settings), None)
            near = difflib.get_close_matches(unknown, settings, n=1, cutoff=0.5) if unknown else []
            odd = unknown and f"{unknown} is no setting of train.py" + (f" (did you mean {near[0]}?)" if near else "")
            odd = odd or next((f"{k} = {scope[k]!r} is no {type(v).__name__}" for k, v in default.items() if k in scope
                        and type(scope[k]) is not type(v) and not (type(v) is float and type(scope[k]) is int)), None)
            odd = odd or next((f"{k} = {scope[k]!r} is no whole number >= 1" for k in ("batch_size",
                               "gradient_accumulation_steps") if k in scope and not (type(scope[k]) is int
                                                                                     and scope[k] >= 1)), None)
            try:
                odd or run_model(scope)
            except ValueError as e:
                odd = str(e).rstrip(".")
            if odd:
                raise SystemExit(f"config file {path!r}: {odd}; the memory plan covers every run in config/: fix the "
                                 f"file, or move it out of config/.")
    return runs


def run_model(values):
    """The GPTConfig train.py builds for a run config's values: GPT-2's shape where it starts from GPT-2, which keeps
    only the file's proj, n_kv_head and dropout (the file's own shape, or the default 124M one, was planned for a
    gpt2-xl run, a fifth of its parameters, without a word)."""
    if values.get("init_from") in GPT2_SIZES:
        chosen = {k: values[k] for k in GPT2_CHOSEN if k in values}
        return gpt2_config(values["init_from"], **chosen)
    c = GPTConfig(**{k: values[k] for k in asdict(GPTConfig()) if k in values})
    # a conversion config (init_from a checkpoint) that leaves out the checkpoint's shape was planned as GPT-2's
    # 124M model, a run train.py refuses ("conversion keeps n_layer, ..."): refused here as train.py does, while
    # the checkpoint is there to compare (not trained yet: the file's own shape, which train.py will check)
    src = values.get("init_from")
    if isinstance(src, str) and src not in ("scratch", "resume") and os.path.isfile(checkpoint_path(src)):
        try:
            was = GPTConfig(**load_checkpoint(src, ("model_args",), mmap=True)["model_args"])
        except SystemExit:  # unreadable or not train.py's: train.py names what is wrong with it
            return c
        # one token as calibration: train.py fits on its data, which the plan does not read
        check_conversion(was, c, values.get("convert_method", "lstsq"), torch.zeros(1, 1, dtype=torch.long))
    return c


def state_bytes_per_gpu(model, parallel, n_gpus, accum):
    """(weights, gradients, AdamW state) bytes on one GPU: fp32 master weights and gradients, AdamW's two fp32
    moments and a float32 step per tensor. DDP holds all of it on every GPU; FSDP a 1/N shard (padding ignored),
    plus, while micro-steps accumulate (accum > 1), the full fp32 gradient that it reduce-scatters only after the
    last one."""
    p, tensors = model.num_params(), len(list(model.parameters()))
    shard = 1 if parallel == "ddp" else n_gpus
    grads = 4 * p // shard + (4 * p if parallel == "fsdp" and accum > 1 else 0)
    return 4 * p // shard, grads, (8 * p + 4 * tensors) // shard


def activation_bytes(c, batch, grad_ckpt):
    """Activations one micro-batch keeps for the backward; an estimate after Korthikanti et al. 2022 (16-bit
    activations, 1-byte dropout masks), with SDPA's flash attention, which keeps no [T, T] scores. Per layer and
    token: 2 bytes x (the inputs of both LayerNorms, the QKV and MLP inputs, the stored Q, K, V widths, the attention
    output, the GELU input and output) + 2 dropout masks of 1 byte; 34 x n_embd for a GPT-2 block with QKV. Checkpointed:
    each Block's input plus one Block recomputed at a time. Plus the logits, bf16 and their float32 copy.
    Not counted: linear attention's causal [T, T] weight map per head (model.linear_attention), so its rows are low."""
    h, d = c.n_embd, c.n_embd // c.n_head
    kv = (c.n_kv_head or c.n_head) * d
    qkv = {"qkv": h + 2 * kv, "qk_v": h + kv, "q_kv": h + kv, "q_k_v": h}[c.proj]  # V = K or Q = K: stored once
    layer = 2 * (6 * h + qkv + 2 * (c.n_inner or 4 * h)) - 2 * h + (2 * h if c.dropout > 0 else 0)
    tokens = batch * c.block_size
    kept = c.n_layer * 2 * h + layer if grad_ckpt else c.n_layer * layer
    return tokens * (kept + 6 * c.vocab_size)


def bench_memory(args, device):
    print(f"\n== memory per GPU: training every run config under DDP and FSDP on {GPU_COUNTS} GPUs; KV cache at "
          f"serving (batch 1, block_size, bf16); built on the meta device ==")
    rows = []
    for name, values in run_configs().items():
        c = run_model(values)
        with torch.device("meta"):
            model = GPT(c)
        batch, total_accum = values.get("batch_size", 12), values.get("gradient_accumulation_steps", 40)
        kv = state_bytes(c, torch.bfloat16) if c.attn == "linear" else model.kv_bytes_per_token() * c.block_size
        for parallel in ("ddp", "fsdp"):
            for n in GPU_COUNTS:
                accum = total_accum / n  # micro-steps per GPU; train.py refuses a count that does not divide
                weights, grads, adam = state_bytes_per_gpu(model, parallel, n, accum)
                act, act_ckpt = (activation_bytes(c, batch, ckpt) for ckpt in (False, True))
                total, total_ckpt = weights + grads + adam + act, weights + grads + adam + act_ckpt
                row = dict(config=name, params=model.num_params(), parallel=parallel, gpus=n, batch_size=batch,
                           accum_per_gpu=int(accum) if accum == int(accum) else "n/a", weights=weights,
                           gradients=grads, optimizer=adam, activations=act, activations_ckpt=act_ckpt, total=total,
                           total_ckpt=total_ckpt, kv_cache_serving=kv)
                for gb in GPU_GB:  # "yes", "ckpt" (only with activation checkpointing) or "no"
                    row[f"fits_{gb}gb"] = ("yes" if total <= gb * 1e9 else "ckpt" if total_ckpt <= gb * 1e9
                                           else "no")
                rows.append(row)
    header = ["config", "params", "parallel", "GPUs", "accum/GPU", "weights", "grads", "AdamW", "act", "act ckpt",
              "total", "total ckpt", "KV serve"] + [f"{gb} GB" for gb in GPU_GB]
    table = [[r["config"], f"{r['params'] / 1e9:.2f}B", r["parallel"], r["gpus"], r["accum_per_gpu"]]
             + [f"{r[k] / 1e9:.2f}" for k in ("weights", "gradients", "optimizer", "activations",
                                                "activations_ckpt", "total", "total_ckpt", "kv_cache_serving")]
             + [r[f"fits_{gb}gb"] for gb in GPU_GB] for r in rows]
    print_table(header, table)
    write_csv(os.path.join(args.out, "memory.csv"), rows)
    path = os.path.join(args.out, "memory.md")
    intro = (f"Per GPU, decimal GB, written by bench.py's memory section (`--what=memory`; assets/memory.md by "
             f"`{FULL}`): arithmetic, an estimate for the activations (see docs/fsdp.md). Fits: yes, ckpt (only with "
             f"--grad_ckpt=True) or no.")
    atomic_write(path, intro + "\n\n| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
                 + "".join("| " + " | ".join(str(x) for x in r) + " |\n" for r in table))
    say_wrote(path)


# -----------------------------------------------------------------------------

def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, torch threads: {torch.get_num_threads()})"


# decode runs last: it is the longest, and its compiled step through the Triton kernel is the part a new torch or
# triton is likeliest to break (it did once on an H200), so a failure there cannot cost the other tables
BENCHES = {"cache": bench_cache, "memory": bench_memory, "kernel": bench_kernel, "prefill": bench_prefill, "train": bench_train,
           "step": bench_step, "decode": bench_decode}


FULL = "OMP_NUM_THREADS=1 python bench.py --out=assets"  # the runs that write the tracked results: CPU
FULL_GPU = "python bench.py --device=cuda --out=assets/gpu"  # and CUDA


def tracked_run(args, what, device):
    """Whether this run writes tracked results: every section at full size, into its device's folder (a CPU run
    into assets/gpu, or a GPU one into assets/, would replace the other device's tables), on CPU with one thread
    (the tracked timings are CPU time, see clock_kind)."""
    folder = {"cpu": ASSETS, "cuda": os.path.join(ASSETS, "gpu")}.get(device.type)
    return (set(what) == set(BENCHES) and not args.quick and folder is not None
            and os.path.realpath(args.out) == os.path.realpath(folder)
            and (device.type != "cpu" or torch.get_num_threads() == 1))


QUICK_OUT = "out-bench-quick"  # --quick's default --out
FULL_RECORD = "bench_full.json"  # in an --out: the sections whose tables there are a full run's, not --quick's


def full_record(folder):
    """The sections listed in folder's FULL_RECORD (none where there is no record), or None where it cannot be read."""
    path = os.path.join(folder, FULL_RECORD)
    if not os.path.exists(path):
        return set()
    try:
        return set(load_json(path)["sections"]) & set(BENCHES)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def full_sections(folder):
    """The sections whose tables in folder a full run wrote (FULL_RECORD), which a --quick run must not replace: a
    full run's tables (minutes to measure) were replaced by --quick's tiny shapes in the same --out without a word.
    A record that cannot be read counts as every section."""
    record = full_record(folder)
    return set(BENCHES) if record is None else record


def record_full(folder, section):
    """Add section to folder's FULL_RECORD, with its tables (inside their together() block)."""
    sections = sorted(full_sections(folder) | {section})
    atomic_write(os.path.join(folder, FULL_RECORD), json.dumps({"sections": sections}) + "\n")


def no_compiled_kernel():
    """Why the kernel section cannot time a compiled kernel, or None. With TRITON_INTERPRET=1 exported (the tests'
    CPU setting) it ran the kernel in numpy and stopped on its refusal of bfloat16, a traceback after the other
    sections; without triton, the import's."""
    try:
        from kernel import INTERPRETED
    except ImportError as e:
        return f"needs triton ({e}): pip install triton"
    return "would time Triton's CPU interpreter: TRITON_INTERPRET=1 is set; run with TRITON_INTERPRET=0" \
        if INTERPRETED else None


def get_parser():
    p = Parser(description="Cache, decode, training and kernel benchmarks of every variant.",
               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--what", default=",".join(BENCHES), help=f"comma-separated subset of {', '.join(BENCHES)}")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu, cuda, cuda:N or mps")
    p.add_argument("--quick", action="store_true", help="tiny shapes: every section in seconds (for tests)")
    # --quick's own default, as the studies' quick modes have: into out-bench, a check after an edit replaced the
    # full run's tables there (15 minutes on CPU) with its tiny shapes' without a word
    p.add_argument("--out", default=None,
                   help="directory for the CSV and PNG files; None: out-bench (out-bench-quick with --quick); assets/ "
                        "only for a run of every section, not --quick, on CPU with OMP_NUM_THREADS=1 (and assets/gpu "
                        "on CUDA)")
    return p


def main(argv=None):
    p = get_parser()
    args = p.parse_args(argv)
    args.out = args.out or (QUICK_OUT if args.quick else "out-bench")
    what = args.what.split(",")
    if set(what) - set(BENCHES):
        raise SystemExit(f"--what must be a comma-separated subset of {', '.join(BENCHES)}; got {args.what!r}.")
    check_device(p, args.device)  # --device=foo was torch's traceback
    device = torch.device(args.device)
    cuda_only = {"kernel"} | (set() if args.quick else {"step"})  # the sections that skip themselves off CUDA
    if device.type != "cuda" and set(what) <= cuda_only:  # else: exit 0, having measured and written nothing
        raise SystemExit(f"--what={args.what} measures nothing on {device.type}: {' and '.join(sorted(set(what)))} "
                         f"need{'s' if len(set(what)) == 1 else ''} CUDA; run it with --device=cuda on a GPU.")
    if device.type == "cuda" and "kernel" in what and (why := no_compiled_kernel()):
        rest = ",".join(x for x in what if x != "kernel") or ",".join(x for x in BENCHES if x != "kernel")
        raise SystemExit(f"bench.py's kernel section {why}; or leave it out: --what={rest}.")
    tracked = tracked_run(args, what, device)
    if (not tracked and device.type == "cpu" and set(what) == set(BENCHES) and not args.quick
            and os.path.realpath(args.out) == os.path.realpath(ASSETS)):
        # the full run with OMP_NUM_THREADS unset was told only "the full default run writes", its own command
        raise SystemExit(f"{args.out} is in assets/, whose CPU timings are CPU time on one thread, and this run has "
                         f"{torch.get_num_threads()} threads; run `{FULL}`, or write this run elsewhere.")
    # the command named is the one that writes the folder aimed at (assets/gpu: the CUDA run), whatever the device
    gpu_dir = os.path.realpath(os.path.join(ASSETS, "gpu"))
    in_gpu = os.path.commonpath([gpu_dir, os.path.realpath(args.out)]) == gpu_dir
    guard_assets(args.out, tracked, FULL_GPU if in_gpu else FULL)
    if args.quick and (full := sorted(full_sections(args.out) & set(what), key=list(BENCHES).index)):
        # "leave --out out" named the folder refused, where a full run had been aimed at --quick's own default; and
        # an unreadable record was told to hold tables (kernel, step on CPU) that no run wrote there
        fix = (f"give --quick another --out, or move that run's files out of {QUICK_OUT}" if
               os.path.realpath(args.out) == os.path.realpath(QUICK_OUT) else
               f"leave --out out (--quick writes {QUICK_OUT}) or choose another folder")
        held = (f"--out {args.out} holds a full run's {', '.join(full)} table{'s' if len(full) > 1 else ''} "
                f"({FULL_RECORD})" if full_record(args.out) is not None else
                f"--out {args.out}'s {FULL_RECORD} cannot be read, so every table there counts as a full run's")
        raise SystemExit(f"{held}, which --quick's tiny shapes would replace; {fix}.")
    # before the measurements: an --out that cannot take the results fails now, not after minutes (and is removed
    # again if the measurements stop before writing there). The tracked run writes into a folder of its own first:
    # one stopped in its last section would leave new tables beside old ones in assets/
    with new_dirs(args.out), tempfile.TemporaryDirectory() if tracked else nullcontext() as stage:
        writable_dir(args.out, "choose another --out", named=True)
        # two runs at once mixed their files in one folder, and each measured the other's load as its own timings
        with hold_out(
                args.out, f"--out {args.out} is being written by another bench.py run; wait for it to end (two at "
                          f"once would also slow each other's timings) or choose another --out."):
            measure(args, what, device, stage)


def measure(args, what, device, stage):
    """The sections asked for, written into args.out, or into stage first for a tracked run (see main)."""
    out, args.out = args.out, stage or args.out
    print(f"device: {device_name(device)} | torch {torch.__version__} | {platform.python_implementation()} "
          f"{platform.python_version()}")
    torch.manual_seed(0)
    for section, bench in BENCHES.items():
        if section in what:
            t0 = time.perf_counter()
            try:
                # together: a section's files, or none: one stopped while it drew its figure (a second or more)
                # left its new CSV beside the PNG of an earlier run, or alone. A skipped section (step on CPU) wrote
                # nothing: recorded, it had --quick's step refused for "a full run's step table" no run wrote
                with together():
                    wrote = bench(args, device) is not False
                    if wrote and not args.quick and not stage:  # a tracked run's folder, assets/, is guarded already
                        record_full(out, section)
            except Exception as e:  # decode (and step on CUDA) time torch.compile'd steps: no C++ compiler
                rest = [s for s in what if s != section] or [s for s in BENCHES if s != section]
                if not (why := compile_failure(e, f"bench.py's {section} section",
                                               f"leave it out: --what={','.join(rest)}")):
                    raise
                raise SystemExit(why) from None
            print(f"({section}: {time.perf_counter() - t0:.0f} s wall-clock)")
    if stage:  # every section finished: the tracked files change together
        with together():
            for name in sorted(os.listdir(stage)):
                with open(os.path.join(stage, name), "rb") as f:
                    atomic_write(os.path.join(out, name), f.read())
        print(f"wrote {', '.join(sorted(os.listdir(stage)))} into {out}")


if __name__ == "__main__":
    cli(main, "each section that finished wrote its files (a run into assets/ writes them only at its end).")
