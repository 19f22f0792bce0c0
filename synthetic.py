"""
The paper's synthetic suite: five bidirectional tasks on lists of digits, every projection variant, with and
without (X)+. A model reads a list of n digits and predicts one output digit at each of the n positions.
  REVERSE  the list backwards          SORT  ascending
  SUB      9 - x per digit             SWAP  the two halves exchanged
  COPY     the list itself
Each (task, model) is trained on freshly sampled lists for every configuration of a small grid (heads x n_embd x
list length) and seed, and scored by per-digit accuracy on a fixed held-out set; the table shows the mean.

$ python synthetic.py                 # the full default grid: about 1430 CPU-seconds, ~12 minutes on 2 free cores
$ python synthetic.py --quick         # a seconds-long smoke run
$ python synthetic.py --tasks=reverse,swap --models=q_kv,q_kv+ --seeds=0,1,2 --out=/tmp/syn
"""

import argparse
import csv
import math
import os
import time
from itertools import product
from multiprocessing import get_context

import torch

from model import GPT, GPTConfig

TASKS = {
    "reverse": lambda x: x.flip(-1),
    "sort": lambda x: x.sort(-1).values,
    "sub": lambda x: 9 - x,
    "swap": lambda x: x.roll(x.size(-1) // 2, dims=-1),  # [a, b] -> [b, a] for halves a, b of an even length
    "copy": lambda x: x.clone(),
}
# column name -> (proj, (X)+ on); "+" marks the positional conv
MODELS = {"qkv": ("qkv", False), "q_kv": ("q_kv", False), "q_kv+": ("q_kv", True),
          "qk_v": ("qk_v", False), "q_k_v": ("q_k_v", False), "q_k_v+": ("q_k_v", True)}
EVAL_SEED = 1234  # the held-out lists are the same for every run


def get_parser():
    p = argparse.ArgumentParser(description="Synthetic bidirectional tasks for every projection variant.")
    p.add_argument("--tasks", type=names_of(TASKS, "task"), default=list(TASKS))
    p.add_argument("--models", type=names_of(MODELS, "model"), default=list(MODELS))
    p.add_argument("--heads", type=ints(1), default=[1, 2])
    p.add_argument("--embd", type=ints(1), default=[32, 64], help="n_embd values; each divisible by every head count")
    p.add_argument("--lengths", type=ints(2, even=True), default=[8, 16], help="list lengths (even: SWAP halves them)")
    p.add_argument("--seeds", type=ints(0), default=[0, 1])
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--pos_conv", type=int, default=16, help="m channels of (X)+ in the '+' models")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--eval_size", type=int, default=1000)
    p.add_argument("--no_pos_emb", action="store_true", help="ablation: zero, frozen position embeddings")
    p.add_argument("--workers", type=int, default=2, help="processes, one thread each")
    p.add_argument("--out", default="assets", help="directory for synthetic.md, .csv and .png")
    p.add_argument("--quick", action="store_true", help="smoke run: one tiny configuration, 20 steps")
    return p


def names_of(choices, what):
    def parse(s):
        names = s.split(",")
        for n in names:
            if n not in choices:
                raise argparse.ArgumentTypeError(f"unknown {what} {n!r}; choose from {', '.join(choices)}.")
        return names
    return parse


def ints(low, even=False):
    def parse(s):
        try:
            values = [int(v) for v in s.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}.") from None
        if any(v < low or (even and v % 2) for v in values):
            raise argparse.ArgumentTypeError(f"every value must be {'an even integer ' if even else ''}>= {low}; "
                                             f"got {s!r}.")
        return values
    return parse


def sample(task, n, batch, gen):
    x = torch.randint(0, 10, (batch, n), generator=gen)
    return x, TASKS[task](x)


def lr_at(step, steps, lr):
    """Linear warmup over the first 5% of steps, then cosine down to lr / 10."""
    warmup = max(1, steps // 20)
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.45 * (1 + math.cos(math.pi * t)))


def run_one(job):
    """Train one model on one task; return [(step, per-digit accuracy on the held-out lists)] at five points."""
    task, model_name, n_head, n_embd, n, seed, args = job
    torch.set_num_threads(1)  # tiny models: a process per core beats threads inside one
    torch.manual_seed(seed)
    proj, plus = MODELS[model_name]
    cfg = GPTConfig(block_size=n, vocab_size=10, n_layer=args.layers, n_head=n_head, n_embd=n_embd, proj=proj,
                    causal=False, pos_conv=args.pos_conv if plus else 0, dropout=0.0)
    model = GPT(cfg)
    if args.no_pos_emb:  # ablation: no position information in the residual stream
        model.transformer.wpe.weight.requires_grad_(False).zero_()
    opt = model.configure_optimizers(0.01, args.lr, (0.9, 0.98), "cpu")
    gen = torch.Generator().manual_seed(seed)  # every model of a seed sees the same training lists
    x_eval, y_eval = sample(task, n, args.eval_size, torch.Generator().manual_seed(EVAL_SEED))
    evals, curve = {args.steps * k // 5 for k in range(1, 6)}, []
    for step in range(1, args.steps + 1):
        for group in opt.param_groups:
            group["lr"] = lr_at(step - 1, args.steps, args.lr)
        x, y = sample(task, n, args.batch, gen)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step in evals:
            with torch.no_grad():
                logits, _ = model(x_eval)  # [eval_size, n, 10]
            curve.append((step, (logits.argmax(-1) == y_eval).float().mean().item()))
    return curve


def markdown(table, tasks, models):
    lines = ["| task | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    rows = [(t.upper(), [table[t, m] for m in models]) for t in tasks]
    rows.append(("average", [sum(table[t, m] for t in tasks) / len(tasks) for m in models]))
    lines += [f"| {name} | " + " | ".join(f"{100 * a:.1f}" for a in accs) + " |" for name, accs in rows]
    return "\n".join(lines) + "\n"


def plot(table, curves, tasks, models, path):
    """Top: final accuracy per task (bars). Bottom: accuracy vs training step per task, mean over the grid."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(2.4 * len(tasks) + 1, 6.4))
    ax = fig.add_subplot(2, 1, 1)
    groups = [t.upper() for t in tasks] + ["average"]
    width = 0.8 / len(models)
    for i, m in enumerate(models):
        accs = [table[t, m] for t in tasks]
        accs.append(sum(accs) / len(accs))
        ax.bar([g + (i - (len(models) - 1) / 2) * width for g in range(len(groups))],
               [100 * a for a in accs], width, label=m)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("final per-digit accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(ncol=len(models), fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    for j, t in enumerate(tasks):
        ax = fig.add_subplot(2, len(tasks), len(tasks) + j + 1)
        for m in models:
            steps = sorted(curves[t, m])
            ax.plot(steps, [100 * curves[t, m][s] for s in steps], marker=".", label=m)
        ax.set_title(t.upper(), fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylim(0, 102)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.quick:  # smaller defaults; values given explicitly still win
        parser.set_defaults(heads=[1], embd=[16], lengths=[4], seeds=[0], steps=20, eval_size=64)
        args = parser.parse_args(argv)
    for e, h in product(args.embd, args.heads):
        if e % h:
            parser.error(f"--embd value {e} is not divisible by --heads value {h}; pick n_embd values that every "
                         f"head count divides.")
    if args.pos_conv <= 0 or args.pos_conv % 4:
        parser.error(f"--pos_conv must be a positive multiple of 4; got {args.pos_conv}.")
    for name, value in (("steps", args.steps), ("batch", args.batch), ("eval_size", args.eval_size),
                        ("workers", args.workers), ("layers", args.layers)):
        if value < 1:
            parser.error(f"--{name} must be >= 1; got {value}.")

    grid = list(product(args.heads, args.embd, args.lengths, args.seeds))
    jobs = [(t, m, h, e, n, s, args) for t, m in product(args.tasks, args.models) for h, e, n, s in grid]
    print(f"{len(args.tasks)} tasks x {len(args.models)} models x {len(grid)} runs (heads {args.heads}, "
          f"n_embd {args.embd}, lengths {args.lengths}, seeds {args.seeds}), {args.steps} steps each")
    t0 = time.time()
    rows, table, curves, group = [], {}, {}, []
    pool = get_context("spawn").Pool(args.workers) if args.workers > 1 else None
    try:
        results = pool.imap(run_one, jobs) if pool else map(run_one, jobs)
        for (t, m, h, e, n, s, _), curve in zip(jobs, results):
            rows += [{"task": t, "model": m, "n_head": h, "n_embd": e, "length": n, "seed": s, "step": step,
                      "acc": acc} for step, acc in curve]
            group.append(dict(curve))
            if len(group) == len(grid):  # the last run of this (task, model): average over the grid
                curves[t, m] = {step: sum(g[step] for g in group) / len(grid) for step in group[0]}
                table[t, m] = curves[t, m][args.steps]
                group = []
                print(f"{t:8s} {m:7s} acc {100 * table[t, m]:5.1f}%  ({time.time() - t0:.0f}s elapsed)", flush=True)
    finally:
        if pool:
            pool.terminate()
    print(f"wall time {time.time() - t0:.0f}s")

    md = markdown(table, args.tasks, args.models)
    print(md)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "synthetic.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.out, "synthetic.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    plot(table, curves, args.tasks, args.models, os.path.join(args.out, "synthetic.png"))


if __name__ == "__main__":
    main()
