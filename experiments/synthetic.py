"""
The paper's synthetic suite: bidirectional tasks on lists of digits, every projection variant, with and without
(X)+. A model reads a list of n digits and predicts one output digit at each of the n positions.
  REVERSE  the list backwards          SORT  ascending
  SUB      9 - x per digit             SWAP  the two halves exchanged
  COPY     the list itself
Two arms. `none`: no position embedding at all, so (X)+ is the only source of position: the direct test of
whether it injects direction (REVERSE, SWAP) while the position-free SUB and COPY are the control. `learned`:
GPT-2's absolute position table, where REVERSE and SWAP saturate for every variant, so that arm runs the cases
that are still hard (SORT at 24 and 32 digits, REVERSE and SWAP at 32 with a 60-step budget).
Every (arm, case, model, seed) trains on freshly sampled lists and is scored by per-digit accuracy on a fixed
held-out set; cells are mean +/- std over seeds.

$ python -m experiments.synthetic --out=assets    # the full default run behind README's tables (~15 min on 2 free cores)
$ python -m experiments.synthetic --quick         # a seconds-long smoke run, into out-synthetic/
$ python -m experiments.synthetic --arms=none --models=q_kv,q_kv+ --seeds=0,1,2 --out=/tmp/syn
"""

import argparse
import csv
import math
import os
import statistics
import sys
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
# column name -> (proj, (X)+ basis or None); "+" is the product basis, "+concat" the separable one
MODELS = {"qkv": ("qkv", None), "qkv+": ("qkv", "product"), "q_kv": ("q_kv", None), "q_kv+": ("q_kv", "product"),
          "qk_v": ("qk_v", None), "q_k_v": ("q_k_v", None), "q_k_v+": ("q_k_v", "product"),
          "q_k_v+concat": ("q_k_v", "concat")}
# arm (pos_emb) -> cases (task, list length, training steps). SORT needs absolute ranks, which a score bias
# cannot give, so it runs only where the model has positions.
ARMS = {
    "none": [("reverse", 16, 400), ("reverse", 32, 400), ("swap", 16, 400), ("sub", 16, 400), ("copy", 16, 400)],
    "learned": [("sort", 24, 400), ("sort", 32, 400), ("reverse", 32, 60), ("swap", 32, 60)],
}
EVAL_SEED = 1234  # the held-out lists are the same for every run
DEFAULT_OUT = "out-synthetic"


def get_parser():
    p = argparse.ArgumentParser(description="Synthetic bidirectional tasks for every projection variant.")
    p.add_argument("--arms", type=names_of(ARMS, "arm"), default=list(ARMS))
    p.add_argument("--models", type=names_of(MODELS, "model"), default=list(MODELS))
    p.add_argument("--seeds", type=ints(0), default=[0, 1, 2])
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--embd", type=int, default=64, help="n_embd; divisible by --heads")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--pos_conv", type=int, default=16, help="m channels of (X)+ in the '+' models")
    p.add_argument("--steps_scale", type=float, default=1.0, help="multiplies every case's training steps")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--eval_size", type=int, default=1000)
    p.add_argument("--workers", type=int, default=2, help="processes, one thread each")
    p.add_argument("--out", default=DEFAULT_OUT, help="directory for synthetic.md, .csv and .png; 'assets' is "
                                                      "reserved for the full default run")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny models, 20 steps, one seed")
    return p


def names_of(choices, what):
    def parse(s):
        names = s.split(",")
        for n in names:
            if n not in choices:
                raise argparse.ArgumentTypeError(f"unknown {what} {n!r}; choose from {', '.join(choices)}.")
        return names
    return parse


def ints(low):
    def parse(s):
        try:
            values = [int(v) for v in s.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}.") from None
        if any(v < low for v in values):
            raise argparse.ArgumentTypeError(f"every value must be >= {low}; got {s!r}.")
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
    """Train one model on one case; return [(step, per-digit accuracy on the held-out lists)] at five points."""
    arm, task, n, steps, model_name, seed, args = job
    torch.set_num_threads(1)  # tiny models: a process per core beats threads inside one
    torch.manual_seed(seed)
    proj, basis = MODELS[model_name]
    cfg = GPTConfig(block_size=n, vocab_size=10, n_layer=args.layers, n_head=args.heads, n_embd=args.embd,
                    proj=proj, causal=False, pos_emb=arm, pos_conv=args.pos_conv if basis else 0,
                    pos_conv_basis=basis or "product", dropout=0.0)
    model = GPT(cfg)
    opt = model.configure_optimizers(0.01, args.lr, (0.9, 0.98), "cpu")
    gen = torch.Generator().manual_seed(seed)  # every model of a seed sees the same training lists
    x_eval, y_eval = sample(task, n, args.eval_size, torch.Generator().manual_seed(EVAL_SEED))
    evals, curve = {steps * k // 5 for k in range(1, 6)}, []
    for step in range(1, steps + 1):
        for group in opt.param_groups:
            group["lr"] = lr_at(step - 1, steps, args.lr)
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


def mean_std(values):
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def markdown(final, cases, models):
    """One table per arm: a row per case, a cell per model, mean +/- std of the final accuracy over seeds."""
    out = []
    for arm, arm_cases in cases.items():
        out += [f"\n**pos_emb = {arm}**\n", "| case | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
        for task, n, steps in arm_cases:
            cells = [mean_std(final[arm, task, n, m]) for m in models]
            out.append(f"| {task.upper()} {n} ({steps} steps) | " +
                       " | ".join(f"{100 * a:.1f} +/- {100 * s:.1f}" for a, s in cells) + " |")
    return "\n".join(out) + "\n"


def plot(final, cases, models, path):
    """One panel per arm: final accuracy per case and model, bars at the seed mean, whiskers at min and max."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(cases), 1, figsize=(12, 3.2 * len(cases)), squeeze=False)
    width = 0.8 / len(models)
    for ax, (arm, arm_cases) in zip(axes[:, 0], cases.items()):
        for i, m in enumerate(models):
            accs = [final[arm, t, n, m] for t, n, _ in arm_cases]
            means = [100 * statistics.mean(a) for a in accs]
            err = [[mu - 100 * min(a) for mu, a in zip(means, accs)], [100 * max(a) - mu for mu, a in zip(means, accs)]]
            ax.bar([g + (i - (len(models) - 1) / 2) * width for g in range(len(arm_cases))], means, width,
                   yerr=err, capsize=2, label=m)
        ax.set_xticks(range(len(arm_cases)), [f"{t.upper()} {n}" for t, n, _ in arm_cases])
        ax.set_ylabel("per-digit accuracy (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"pos_emb = {arm}", fontsize=10)
    axes[0, 0].legend(ncol=len(models), fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.12), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def check_args(parser, args):
    if args.embd % args.heads:
        parser.error(f"--embd {args.embd} is not divisible by --heads {args.heads}; pick an n_embd the head count "
                     f"divides.")
    if args.pos_conv <= 0 or args.pos_conv % 4:
        parser.error(f"--pos_conv must be a positive multiple of 4; got {args.pos_conv}.")
    for name in ("heads", "embd", "layers", "batch", "eval_size", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1; got {getattr(args, name)}.")
    if not args.steps_scale > 0:
        parser.error(f"--steps_scale must be > 0; got {args.steps_scale}.")
    # the tracked tables come only from the full default run: any other run writing there would replace them
    defaults = vars(parser.parse_args([]))
    changed = [k for k, v in vars(args).items() if k != "out" and v != defaults[k]]
    if os.path.normpath(args.out) == "assets" and changed:
        parser.error(f"--out=assets is reserved for the full default run, and this run changes "
                     f"{', '.join('--' + k for k in changed)}; write it elsewhere (default {DEFAULT_OUT}/).")
    try:  # fail now, not after the training, if the results cannot be written
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, ".write-test"), "w"):
            pass
        os.remove(os.path.join(args.out, ".write-test"))
    except OSError as e:
        parser.error(f"--out {args.out!r} is not a writable directory ({e.strerror}); choose another --out.")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.quick:  # smaller defaults; values given explicitly still win
        parser.set_defaults(seeds=[0], heads=1, embd=16, steps_scale=0.05, eval_size=64)
        args = parser.parse_args(argv)
    check_args(parser, args)

    cases = {arm: [(t, n, max(5, round(s * args.steps_scale))) for t, n, s in ARMS[arm]] for arm in args.arms}
    jobs = [(arm, t, n, s, m, seed, args) for arm in args.arms for (t, n, s), m, seed
            in product(cases[arm], args.models, args.seeds)]
    print(f"{len(jobs)} runs: arms {', '.join(args.arms)} x {len(args.models)} models x seeds {args.seeds}; "
          f"{args.layers} layers, {args.heads} heads, n_embd {args.embd}")
    t0 = time.time()
    rows, final = [], {}
    pool = get_context("spawn").Pool(args.workers) if args.workers > 1 else None
    try:
        results = pool.imap(run_one, jobs) if pool else map(run_one, jobs)
        for (arm, t, n, s, m, seed, _), curve in zip(jobs, results):
            rows += [{"arm": arm, "task": t, "length": n, "model": m, "seed": seed, "step": step, "acc": acc}
                     for step, acc in curve]
            final.setdefault((arm, t, n, m), []).append(curve[-1][1])
            print(f"{arm:7s} {t:7s} {n:2d} {m:12s} seed {seed}: acc {100 * curve[-1][1]:5.1f}%  "
                  f"({time.time() - t0:.0f}s elapsed)", flush=True)
    finally:
        if pool:
            pool.terminate()
    wall = time.time() - t0
    cmd = "python -m experiments.synthetic" + (" " + " ".join(argv) if argv else "")
    md = (f"Generated by `{cmd}` in {wall / 60:.1f} min. {args.layers} layers, {args.heads} heads, n_embd "
          f"{args.embd}, bidirectional, AdamW lr {args.lr} batch {args.batch}; (X)+ with m = {args.pos_conv}. "
          f"Final per-digit accuracy (%) on {args.eval_size} held-out lists, mean +/- std over seeds "
          f"{', '.join(map(str, args.seeds))}.\n" + markdown(final, cases, args.models))
    print(md)
    with open(os.path.join(args.out, "synthetic.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.out, "synthetic.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    plot(final, cases, args.models, os.path.join(args.out, "synthetic.png"))


if __name__ == "__main__":
    main()
