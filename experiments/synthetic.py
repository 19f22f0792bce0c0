"""
The paper's synthetic suite: bidirectional tasks on lists of digits, every projection variant, with and without
(X)+. A model reads a list of n digits and predicts one output digit at each of the n positions.
  REVERSE  the list backwards          SORT    ascending
  SUB      9 - x per digit             SWAP    the two halves exchanged
  COPY     the list itself             SHIFTk  cyclic shift: output i = x[(i + k) mod n]
REVERSE and SWAP are involutions (i reads j exactly when j reads i), which symmetric scores (Q = K) express.
SHIFT is directional: in one attention hop a head that reads i+1 at every i needs S[i, i+1] > S[i-1, i] around the
whole cycle, impossible when its scores S are symmetric, so symmetric heads must split the cycle between them; a
second layer can route around it (two reflections make a rotation).
Two arms. `none`: no position embedding at all, so (X)+ is the only source of position: the direct test of
whether it injects position (REVERSE, SWAP: a bias symmetric in i and j suffices) and direction (SHIFT: it needs
the antisymmetric part), while the position-free SUB and COPY are the control. `learned`:
GPT-2's absolute position table, where REVERSE and SWAP saturate for every variant, so that arm runs the cases
that are still hard: SORT at 24 and 32 digits, REVERSE and SWAP at 32 with a 60-step budget, and SHIFT by 1 and 3
at 32 digits with one layer and with two.
Every (arm, case, model, seed) trains on freshly sampled lists and is scored by per-digit accuracy on a fixed
held-out set; cells are mean +/- sample std over seeds.

$ python -m experiments.synthetic --out=assets    # the full default run behind the tables (see experiments/README.md)
$ python -m experiments.synthetic --quick         # a seconds-long smoke run, into out-synthetic/
$ python -m experiments.synthetic --arms=none --models=q_kv,q_kv+ --seeds=0,1,2 --out=/tmp/syn
"""

import argparse
import contextlib
import csv
import hashlib
import io
import json
import math
import os
import shlex
import signal
import statistics
import sys
import time
from itertools import product
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import active_children, get_context

# run as a file (`python experiments/synthetic.py`) the project's modules are not on the path: say the way that works
if not __package__:  # and under PYTHONSAFEPATH=1 (or -P), -m finds experiments/ only on PYTHONPATH
    raise SystemExit("run the studies from the repository root as modules: "
                     + "PYTHONPATH=. " * getattr(sys.flags, "safe_path", False) + "python -m experiments.synthetic")

from configurator import quiet_start  # standard library only

if __name__ == "__main__":  # a Ctrl-C (SIGTERM, SIGHUP) while torch imports: one line, not its traceback
    quiet_start()

import torch

from checkpoint import (ASSETS, atomic_write, hold_out, in_assets, new_dirs, present, save_figure, together,
                        unwritable)
from configurator import Parser, cli, number, numbers, once
from model import GPT, GPTConfig

TASKS = {
    "reverse": lambda x: x.flip(-1),
    "shift1": lambda x: x.roll(-1, dims=-1),  # output i = x[(i + 1) mod n]
    "shift3": lambda x: x.roll(-3, dims=-1),  # output i = x[(i + 3) mod n]
    "sort": lambda x: x.sort(-1).values,
    "sub": lambda x: 9 - x,
    "swap": lambda x: x.roll(x.size(-1) // 2, dims=-1),  # [a, b] -> [b, a] for halves a, b of an even length
    "copy": lambda x: x.clone(),
}
# column name -> (proj, (X)+ basis or None); "+" is the product basis, "+concat" the separable one
MODELS = {"qkv": ("qkv", None), "qkv+": ("qkv", "product"), "q_kv": ("q_kv", None), "q_kv+": ("q_kv", "product"),
          "qk_v": ("qk_v", None), "q_k_v": ("q_k_v", None), "q_k_v+": ("q_k_v", "product"),
          "q_k_v+concat": ("q_k_v", "concat")}
# arm (pos_emb) -> cases (task, list length, training steps, layers). SORT needs absolute ranks, which a score bias
# cannot give, so it runs only where the model has positions. With positions SHIFT runs with one layer, where
# symmetric scores cannot express it in one head, and with two, where they can route around it.
ARMS = {
    "none": [("reverse", 16, 400, 2), ("reverse", 32, 400, 2), ("swap", 16, 400, 2), ("shift1", 16, 400, 2),
             ("sub", 16, 400, 2), ("copy", 16, 400, 2)],
    "learned": [("sort", 24, 400, 2), ("sort", 32, 400, 2), ("reverse", 32, 60, 2), ("swap", 32, 60, 2),
                ("shift1", 32, 400, 1), ("shift3", 32, 400, 1), ("shift1", 32, 400, 2), ("shift3", 32, 400, 2)],
}
EVAL_SEED = 1234  # the held-out lists are the same for every run
DEFAULT_OUT = "out-synthetic"
NOT_RESULTS = ("out", "workers", "cache")  # settings that do not change a number of the tables (tested: workers)


def get_parser():
    p = Parser(description="Synthetic bidirectional tasks for every projection variant.",
               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--arms", type=names_of(ARMS, "arm"), default=list(ARMS), help="comma-separated")
    p.add_argument("--models", type=names_of(MODELS, "model"), default=list(MODELS), help="comma-separated")
    p.add_argument("--seeds", type=numbers(int, ">= 0"), default=[0, 1, 2], help="comma-separated")
    p.add_argument("--heads", type=number(int, ">= 1"), default=2, help="attention heads")
    p.add_argument("--embd", type=number(int, ">= 2"), default=64, help="n_embd; divisible by --heads")
    p.add_argument("--pos_conv", type=number(int, ">= 4"), default=16,
                   help="m channels of (X)+ in the '+' models, a multiple of 4")
    p.add_argument("--periodic", action="store_true", help="(X)+ frequencies periodic in the list length "
                   "(pos_conv_period = n), so SHIFT's wrap-around is one more step of the same offset")
    # bounded: 1e308 made a case's step count infinite, an OverflowError traceback (1000 is some 60 days of runs)
    p.add_argument("--steps_scale", type=number(float, "(0, 1000]"), default=1.0,
                   help="multiplies every case's training steps")
    p.add_argument("--batch", type=number(int, ">= 1"), default=64, help="lists per training step")
    p.add_argument("--lr", type=number(float, "> 0"), default=3e-3, help="AdamW's peak learning rate")
    p.add_argument("--eval_size", type=number(int, ">= 1"), default=1000, help="held-out lists scored")
    p.add_argument("--workers", type=number(int, ">= 1"), default=2, help="processes, one thread each")
    p.add_argument("--out", default=DEFAULT_OUT, help="directory for synthetic.md, .csv and .png; assets/ is "
                                                      "reserved for the full default run")
    p.add_argument("--cache", default=os.path.join(DEFAULT_OUT, "runs"),
                   help="each finished run's curve, one file per run: a killed study resumes from here")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny models, 1/20 of the steps, one seed")
    return p


def names_of(choices, what):
    def parse(s):
        names = s.split(",")
        for n in names:
            if n not in choices:
                raise argparse.ArgumentTypeError(f"unknown {what} {n!r}; choose from {', '.join(choices)}.")
        return once(names)
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


class Diverged(Exception):
    """A run whose loss stopped being finite: its accuracy would be argmax over NaN, not a result."""


def eval_steps(steps):
    """The five steps a run's accuracy is measured at."""
    return sorted({steps * k // 5 for k in range(1, 6)})


def run_one(job):
    """Train one model on one case; return [(step, per-digit accuracy on the held-out lists)] at five points."""
    arm, task, n, steps, layers, model_name, seed, args = job
    torch.set_num_threads(1)  # tiny models: a process per core beats threads inside one
    torch.manual_seed(seed)
    proj, basis = MODELS[model_name]
    cfg = GPTConfig(block_size=n, vocab_size=10, n_layer=layers, n_head=args.heads, n_embd=args.embd,
                    proj=proj, causal=False, pos_emb=arm, pos_conv=args.pos_conv if basis else 0,
                    pos_conv_basis=basis or "product", pos_conv_period=n if basis and args.periodic else 0,
                    dropout=0.0)
    model = GPT(cfg)
    opt = model.configure_optimizers(0.01, args.lr, (0.9, 0.98), "cpu")
    gen = torch.Generator().manual_seed(seed)  # every model of a seed sees the same training lists
    x_eval, y_eval = sample(task, n, args.eval_size, torch.Generator().manual_seed(EVAL_SEED))
    evals, curve = set(eval_steps(steps)), []
    for step in range(1, steps + 1):
        for group in opt.param_groups:
            group["lr"] = lr_at(step - 1, steps, args.lr)
        x, y = sample(task, n, args.batch, gen)
        _, loss = model(x, y)
        if not torch.isfinite(loss):
            raise Diverged(f"{arm} {task}{n} {layers}L {model_name} seed {seed}: the loss is {loss.item()} at step "
                           f"{step}, so the run diverged; lower --lr (now {args.lr}) and run again.")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step in evals:
            with torch.no_grad():
                logits, _ = model(x_eval)  # [eval_size, n, 10]
            curve.append((step, (logits.argmax(-1) == y_eval).float().mean().item()))
    return curve


def cache_file(job):
    """Where one run's curve is kept: named by its case, model and seed, and a hash of every setting that changes
    its numbers, so a run with other settings never reads it."""
    arm, task, n, steps, layers, model_name, seed, args = job
    knobs = json.dumps([args.heads, args.embd, args.pos_conv, args.batch, args.lr, args.eval_size] +
                       (["periodic"] if args.periodic else []))  # the runs cached before it keep their names
    tag = hashlib.sha256(knobs.encode()).hexdigest()[:10]
    return os.path.join(args.cache, f"{arm}_{task}{n}_{layers}L_{steps}steps_{model_name}_s{seed}_{tag}.json")


def cached_run(job):
    """run_one, through the cache: a finished run is read back, a new one written atomically when it ends."""
    path = cache_file(job)
    curve = read_curve(path, job[3])
    if curve is not None:
        return curve
    curve = run_one(job)
    atomic_write(path, json.dumps(curve))
    return curve


def read_curve(path, steps):
    """A cached run's [(step, accuracy)], or None when it is not there yet or damaged (written whole, so not by this
    code): any other list would reach the tables as a wrong accuracy, or fail there."""
    if os.path.isdir(path):  # read as no curve, the run trained, and only then was its curve refused
        sys.exit(f"{path} is a folder, where this study caches the curve of a run; move it out of the way and run "
                 f"again.")
    try:
        with open(path) as f:
            curve = [tuple(p) for p in json.load(f)]
    except (OSError, ValueError, TypeError):
        return None
    ok = all(len(p) == 2 and type(p[1]) in (int, float) and 0 <= p[1] <= 1 for p in curve) and \
        [p[0] for p in curve] == eval_steps(steps)
    return curve if ok else None


def mean_std(values):
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def case_name(task, n, steps, layers, sep=", "):
    return f"{task.upper()} {n}{sep}{layers} layer{'s' * (layers > 1)}, {steps} steps"


def markdown(final, cases, models):
    """One table per arm: a row per case, a cell per model, mean +/- std of the final accuracy over seeds."""
    out = []
    for arm, arm_cases in cases.items():
        out += [f"\n**pos_emb = {arm}**\n", "| case | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
        for task, n, steps, layers in arm_cases:
            cells = [mean_std(final[arm, task, n, layers, m]) for m in models]
            out.append(f"| {case_name(task, n, steps, layers)} | " +
                       " | ".join(f"{100 * a:.1f} +/- {100 * s:.1f}" for a, s in cells) + " |")
    return "\n".join(out) + "\n"


def plot(final, cases, models, path):
    """One panel per arm: final accuracy per case and model, bars at the seed mean, whiskers at +/- the sample std
    over seeds (the tables' spread); each case names its layer count and step budget."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    widest = max(len(c) for c in cases.values())
    fig, axes = plt.subplots(len(cases), 1, figsize=(max(8, 1.9 * widest), 3.6 * len(cases)), squeeze=False)
    width = 0.8 / len(models)
    for ax, (arm, arm_cases) in zip(axes[:, 0], cases.items()):
        for i, m in enumerate(models):
            cells = [mean_std(final[arm, t, n, layers, m]) for t, n, _, layers in arm_cases]
            ax.bar([g + (i - (len(models) - 1) / 2) * width for g in range(len(arm_cases))],
                   [100 * mu for mu, _ in cells], width, yerr=[100 * sd for _, sd in cells], capsize=2,
                   error_kw={"elinewidth": 0.8}, color=f"C{i}", label=m)
        ax.set_xticks(range(len(arm_cases)), [case_name(*c, sep="\n") for c in arm_cases], fontsize=8)
        ax.set_ylabel("per-digit accuracy (%)")
        ax.set_ylim(0, 105)
        ax.set_title(f"pos_emb = {arm}", fontsize=10)
    n_seeds = len(next(iter(final.values())))
    axes[0, 0].legend(ncol=len(models), fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.12), frameon=False,
                      title=f"bar: mean over seeds (n = {n_seeds}); whisker: +/- sample std over seeds (as in the "
                            f"tables)",
                      title_fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)


# options a run reads nothing of (configurator.Parser.unread): (X)+'s, where --models holds no model with it
UNREAD = [(k, lambda a: not any(MODELS[m][1] for m in a.models), f"none of --models has (X)+ (the models ending in "
           f"+), so --{k} changes no run; add one of them, or drop --{k}") for k in ("pos_conv", "periodic")]


def check_args(parser, args):
    if args.embd % args.heads:
        parser.error(f"--embd {args.embd} is not divisible by --heads {args.heads}; pick an n_embd the head count "
                     f"divides.")
    # a worker is a process of its own with torch loaded, and the pool starts one per waiting run up to --workers:
    # --workers=1000 started 336 of them, gigabytes each, which ran the machine out of memory
    # at least the default 2; the sentence names the cores there are (taskset -c 0 was "this machine's 2 cores")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if args.workers > max(2, cores):
        parser.error(f"--workers {args.workers} is more than the {cores} core{'s' * (cores != 1)} this process may "
                     f"use; each worker is a process with torch loaded, so more of them only slow the study and fill "
                     f"the memory; give at most {max(2, cores)}{' (the default)' * (cores < 2)}.")
    if args.pos_conv % 4:
        parser.error(f"--pos_conv must be a positive multiple of 4; got {args.pos_conv}.")
    # the tracked tables come only from the full default run: any other run writing there would replace them.
    # Compared by real path, so an absolute path or a link to assets/ is assets/ too.
    defaults = vars(get_parser().parse_args([]))
    changed = [k for k, v in vars(args).items() if k not in NOT_RESULTS and v != defaults[k]]
    if in_assets(args.out) and changed:
        where = "is" if os.path.realpath(args.out) == os.path.realpath(ASSETS) else "is in"  # ./assets/sub: in it
        parser.error(f"--out={args.out} {where} assets/, reserved for the full default run, and this run changes "
                     f"{', '.join('--' + k for k in changed)}; write it elsewhere (default {DEFAULT_OUT}/).")
    if in_assets(args.cache):  # no run's cache goes there, the full run's included (its default is out-synthetic/)
        parser.error(f"--cache={args.cache} is in assets/, which holds only the studies' tables and figures; keep the "
                     f"runs elsewhere (default {DEFAULT_OUT}/runs).")
    for flag, folder in (("--out", args.out), ("--cache", args.cache)):
        if why := unwritable(folder):  # now, not after the training
            parser.error(f"{flag} {folder!r} is not a writable directory ({why}); choose another {flag}.")


def write_csv(rows, path):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write(path, buf.getvalue())


@contextlib.contextmanager
def ctrl_c_blocked(pool):
    """Workers started in this block inherit Ctrl-C blocked: a Ctrl-C in the second a worker takes to start, before
    its initializer ignores it, was a traceback from multiprocessing's spawn_main. This process gets it after."""
    if pool is None or not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks
        yield
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def tracker_keeps_on_hangup():
    """Start multiprocessing's resource tracker (the process the pool's semaphores register with) with SIGHUP blocked,
    which it keeps: it ignores SIGINT and SIGTERM but not SIGHUP, so a closed terminal killed it with the study, and
    the tracker multiprocessing started again printed a KeyError traceback for each semaphore the pool let go. It
    ends when this process does (its pipe closes), as before."""
    from multiprocessing import resource_tracker
    if not hasattr(signal, "SIGHUP") or not hasattr(signal, "pthread_sigmask"):  # Windows: no such signal
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})  # blocked, not ignored: this process still
    try:                                                                # takes a SIGHUP sent meanwhile, just after
        resource_tracker.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.quick:  # smaller defaults; values given explicitly still win
        parser.set_defaults(seeds=[0], heads=1, embd=16, steps_scale=0.05, eval_size=64)
        args = parser.parse_args(argv)
    parser.unread(args, UNREAD)
    with new_dirs(args.out, args.cache):  # check_args makes them; a study stopped before writing there leaves none
        check_args(parser, args)
        # two at once into one --out: the tables of one beside the figure of the other (other settings, or its note
        # of the runs it trained and their minutes), each run slowed by the other's
        with hold_out(
                args.out, f"--out {args.out} is being written by another `python -m experiments.synthetic`; wait for "
                          f"it to end, or choose another --out."):
            study(args, argv)


def study(args, argv):
    cases = {arm: [(t, n, max(5, round(s * args.steps_scale)), layers) for t, n, s, layers in ARMS[arm]]
             for arm in args.arms}
    jobs = [(arm, *case, m, seed, args) for arm in args.arms for case, m, seed
            in product(cases[arm], args.models, args.seeds)]
    print(f"{len(jobs)} runs: arms {', '.join(args.arms)} x {len(args.models)} models x seeds {args.seeds}; "
          f"{args.heads} heads, n_embd {args.embd}")
    # present: a cached curve behind a dangling link (a shared cache's disk not mounted) or unreadable to this user
    # was read as none, run again, and written over the link (or over the other user's file)
    # read as cached_run reads them: a damaged or hand-edited curve is trained again, and was counted among those
    # "read from" the cache ("0 of 12 runs trained in this call" after one was)
    done = sum(present(cache_file(j)) and read_curve(cache_file(j), j[3]) is not None for j in jobs)
    t0, cpu0 = time.time(), time.process_time()
    rows, final = [], {}
    # workers ignore Ctrl-C, which a terminal sends to them too: the parent stops them and says so, once. Not
    # multiprocessing's Pool: a worker that died there (killed, out of memory, or ending on a SystemExit such as a
    # full disk's sentence) was replaced without a word, and the study waited for its run forever
    if args.workers > 1:
        tracker_keeps_on_hangup()
    pool = ProcessPoolExecutor(args.workers, get_context("spawn"), signal.signal, (signal.SIGINT, signal.SIG_IGN)) \
        if args.workers > 1 else None
    try:  # a diverged run raises in its worker, and map raises it here, in order
        with ctrl_c_blocked(pool):  # map starts the workers
            results = pool.map(cached_run, jobs) if pool else map(cached_run, jobs)
        for (arm, t, n, s, layers, m, seed, _), curve in zip(jobs, results):
            rows += [{"arm": arm, "task": t, "length": n, "layers": layers, "model": m, "seed": seed, "step": step,
                      "acc": acc} for step, acc in curve]
            final.setdefault((arm, t, n, layers, m), []).append(curve[-1][1])
            print(f"{arm:7s} {t:7s} {n:2d} {layers}L {m:12s} seed {seed}: acc {100 * curve[-1][1]:5.1f}%  "
                  f"({time.time() - t0:.0f}s elapsed)", flush=True)
    except Diverged as e:
        sys.exit(f"synthetic.py: {e}")
    except BrokenProcessPool:
        sys.exit("a worker process of the study was killed (by the system when out of memory, or by hand); run the "
                 "same command to go on (every finished run is kept in --cache), with smaller settings if it was "
                 "memory.")
    finally:
        if pool:  # the runs under way too (the executor would wait for them): the work is stopping
            for worker in active_children():
                worker.terminate()
            pool.shutdown(cancel_futures=True)
    wall = time.time() - t0
    cmd = "python -m experiments.synthetic" + (" " + shlex.join(argv) if argv else "")  # a folder's space quoted
    md = (f"Generated by `{cmd}` ({len(jobs) - done} of {len(jobs)} runs trained in this call, {wall / 60:.1f} min; "
          f"the others read from {args.cache}). {args.heads} heads, n_embd {args.embd}, bidirectional, "
          f"AdamW lr {args.lr} batch {args.batch}, warmup then cosine over each case's steps"
          # (X)+'s m only where a model has it: "(X)+ with m = 16" headed a table of none
          + (f"; (X)+ with m = {args.pos_conv}{', frequencies periodic in the list length' if args.periodic else ''}"
             if any(MODELS[m][1] for m in args.models) else "") + ". Final per-digit "
          f"accuracy (%) on {args.eval_size} held-out lists, mean +/- sample std over seeds "
          f"{', '.join(map(str, args.seeds))}.\n" + markdown(final, cases, args.models))
    print(md)
    if args.workers == 1:  # with a pool the work is in the children, which this clock does not see
        print(f"CPU time of this process: {(time.process_time() - cpu0) / 60:.1f} min")
    with together():  # the three, or none: a stop while the figure drew left a new table beside an old figure
        atomic_write(os.path.join(args.out, "synthetic.md"), md)
        write_csv(rows, os.path.join(args.out, "synthetic.csv"))
        plot(final, cases, args.models, os.path.join(args.out, "synthetic.png"))


if __name__ == "__main__":
    cli(main, "every finished run is kept in --cache: run the same command to go on.")
