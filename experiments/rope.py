r"""
Does tying K and V change how a RoPE model extrapolates? qkv and qk_v, each with learned absolute positions and
with rotary embeddings, trained in the cpu_lm setting (config/cpu_lm.py: byte-level Shakespeare, block 256, 600
iterations) for 3 seeds through train.py; then scored on the same validation bytes at the training length and, for
the rope models, in windows of 2x and 4x it (a learned table has no rows there).

    python prepare_slimpajama.py --input=input.txt --tokenizer=bytes --val_fraction=0.1 \
        --out_dir=data/cpu_lm_bytes
    python -m experiments.rope             # trains the runs not finished yet into out-rope/, then writes assets/rope.{md,csv,png}
    python -m experiments.rope --report    # only the report, from the finished runs
    python -m experiments.rope --quick     # 60 iterations, 1 seed, into out-rope-quick/ (never assets/)
    python -m experiments.rope --redraw    # only the figure, from assets/rope.csv (no runs needed; with --quick or
                                           # --data_dir, from that run's out-rope*/rope.csv)

The report goes to assets/ once all 12 runs have finished; before that to out-rope/rope.* (a partial report never
replaces the complete one).
"""

import argparse
import csv
import io
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import replace

# run as a file (`python experiments/rope.py`) the project's modules are not on the path: say the way that works
if not __package__:  # and under PYTHONSAFEPATH=1 (or -P), -m finds experiments/ only on PYTHONPATH
    raise SystemExit("run the studies from the repository root as modules: "
                     + "PYTHONPATH=. " * getattr(sys.flags, "safe_path", False) + "python -m experiments.rope")

from configurator import quiet_start  # standard library only

if __name__ == "__main__":  # a Ctrl-C (SIGTERM, SIGHUP) while torch imports: one line, not its traceback
    quiet_start()

import numpy as np
import torch

from checkpoint import (atomic_write, check_study_run, data_name, default_data, delete_what, drop_partial, hold_lock,
                        load_checkpoint, new_dirs, open_data, partial_prefix, partial_report, present, read_json,
                        read_table, redraw_missing, repo_path, reports_free, save_figure, study_assets, together,
                        tokens, train_first, writable_dir)
from configurator import Parser, cli, run_child
from model import GPT, GPTConfig

VARIANTS = {"qkv": ("qkv", "learned"), "qk_v": ("qk_v", "learned"), "qkv rope": ("qkv", "rope"),
            "qk_v rope": ("qk_v", "rope")}
SEEDS = [1337, 1338, 1339]
FACTORS = (1, 2, 4)  # scoring windows, in training lengths
EVAL_TOKENS = 106_496  # the same validation bytes at every length: 416 windows of 256, 208 of 512, 104 of 1024


def runs(args):
    """Seed by seed, the rope models first: a run cut short still has every variant of the first seeds."""
    order = sorted(VARIANTS, key=lambda v: VARIANTS[v][1] != "rope")
    for seed in args.seeds:
        for name in order:
            proj, pos_emb = VARIANTS[name]
            yield name, seed, os.path.join(args.root, f"{name.replace(' ', '_')}_s{seed}"), proj, pos_emb


def checkpoint(out, args):
    """The run's checkpoint, None before its first save, and whether it has trained all its iterations."""
    path = os.path.join(out, "ckpt.pt")
    # lexists: a link whose target is gone is named by load_checkpoint, not taken for a run not begun
    ckpt = load_checkpoint(path, ("model", "model_args", "iter_num")) if os.path.lexists(path) else None
    return ckpt, ckpt is not None and ckpt["iter_num"] >= args.iters


def train_args(args, seed, out, proj, pos_emb):
    return [repo_path("config/cpu_lm.py"), f"--proj={proj}", f"--pos_emb={pos_emb}", f"--seed={seed}",
            f"--out_dir={out}", f"--max_iters={args.iters}", f"--eval_interval={args.iters}",
            f"--warmup_iters={min(50, args.iters // 10)}", f"--data_dir={args.data_dir}"]


def study_command(args):
    return "python -m experiments.rope" + (" --quick" if args.quick else "") + \
        (" " + shlex.quote(f"--data_dir={args.data_dir}") if args.data_dir != "data/cpu_lm_bytes" else "")


def train_all(args):
    """Each run without a finished checkpoint through train.py, one at a time. A run saves only at its end (its one
    evaluation), so a killed one starts again; one with a checkpoint (stopped by hand after an evaluation) resumes."""
    todo = []
    # every folder first: a run of other settings there (by hand, another study) would be resumed as this one, and
    # one in a later folder was refused only once the runs before it had trained (half an hour)
    for name, seed, out, proj, pos_emb in runs(args):
        ckpt, done = checkpoint(out, args)
        if ckpt is not None:
            check_study_run(ckpt, out, train_args(args, seed, out, proj, pos_emb), study_command(args))
        if not done:
            todo.append((seed, out, proj, pos_emb, ckpt))
    for seed, out, proj, pos_emb, ckpt in todo:
        cmd = [sys.executable, repo_path("train.py"), *train_args(args, seed, out, proj, pos_emb)]
        if ckpt is not None:
            cmd.append("--init_from=resume")
        t0 = time.time()
        if run_child(cmd, stdout=subprocess.DEVNULL):  # train.py said why on stderr
            sys.exit(f"{out}: train.py stopped (its message is above); fix that and run this command again, the "
                     f"finished runs are kept.")
        print(f"{out}: {time.time() - t0:.0f} s", flush=True)


@torch.no_grad()
def scored_at_every_length(data, block_size):
    """The validation tokens every length scores: the first EVAL_TOKENS, or as many whole windows of the longest
    length as a smaller val.bin holds (each length cutting its own count: 1,280 bytes at 256 and 1,024 at 512, said
    to be "the same" bytes)."""
    longest = FACTORS[-1] * block_size
    return min(EVAL_TOKENS, len(data) - 1) // longest * longest


def val_loss(model, data, length, scored):
    """Mean next-byte loss over consecutive windows of `length` (+1 target) tokens of the first `scored`."""
    n = scored // length
    x = torch.from_numpy(data[:n * length].astype(np.int64)).view(n, length)
    y = torch.from_numpy(data[1:n * length + 1].astype(np.int64)).view(n, length)
    return sum(model(x[i:i + 8], y[i:i + 8])[1].item() * len(x[i:i + 8]) for i in range(0, n, 8)) / n


def score(args):
    """[{variant, seed, length, loss}] of every finished run, and the runs not finished."""
    data = tokens(args.data_dir, "val")
    rows, missing = [], []
    for name, seed, out, proj, pos_emb in runs(args):
        ckpt, done = checkpoint(out, args)
        if not done:
            missing.append(out)
            continue
        # a run trained there by hand, or by another study, would be scored as this variant (or fail to load)
        check_study_run(ckpt, out, train_args(args, seed, out, proj, pos_emb), study_command(args))
        cfg = GPTConfig(**ckpt["model_args"])
        # config/cpu_lm.py's block_size: the same for every run
        args.scored = scored_at_every_length(data, cfg.block_size)
        for f in FACTORS if pos_emb == "rope" else FACTORS[:1]:
            model = GPT(replace(cfg, block_size=f * cfg.block_size))  # rope: no parameter depends on block_size
            model.load_state_dict(ckpt["model"])
            rows.append({"variant": name, "seed": seed, "length": f * cfg.block_size,
                         "loss": val_loss(model.eval(), data, f * cfg.block_size, args.scored)})
    return rows, missing


def read_csv(path):
    rows = read_table(path, ["variant", "seed", "length", "loss"], text=["variant"], ints=["seed", "length"])
    for n, r in enumerate(rows, 2):
        # a variant of no curve would draw an empty figure; a loss past exp()'s range, a traceback
        if r["variant"] not in VARIANTS or not 0 <= float(r["loss"]) < 100 or int(r["length"]) == 0:
            sys.exit(f"{path}, line {n}, holds {r['variant']!r} at length {r['length']} with loss {r['loss']}, "
                     f"which this study never writes; restore it (`git checkout -- {path}` where it is tracked) "
                     f"and run again.")
    return [dict(r, seed=int(r["seed"]), length=int(r["length"]), loss=float(r["loss"])) for r in rows]


def check_mode(rows, args):
    """That the table --redraw draws is this mode's: a full table copied beside the quick runs (seeds the quick study
    never trains), or a quick one into assets/ (the tracked table holds every seed), was drawn as this mode's."""
    seeds = sorted({r["seed"] for r in rows})
    if set(seeds) - set(args.seeds) or args.assets == "assets/rope" and seeds != args.seeds:
        mode = "--quick" if args.quick else "the full study"
        sys.exit(f"{args.assets}.csv holds the seeds {', '.join(map(str, seeds))}, and {mode} trains "
                 f"{', '.join(map(str, args.seeds))}: it is another mode's table; restore it (`git checkout -- "
                 f"{args.assets}.csv` where it is tracked), or redraw it with the mode that wrote it.")


def plot(rows, path):
    """Validation perplexity against the scoring window: the seed mean, whiskers +/- the sample std of the
    perplexity over seeds (the table's spread), each seed's own value as a faint dot."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    lengths = sorted({r["length"] for r in rows})
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, v in enumerate(VARIANTS):
        ppl = [(n, [math.exp(r["loss"]) for r in rows if r["variant"] == v and r["length"] == n]) for n in lengths]
        ppl = [(n, p) for n, p in ppl if p]
        if not ppl:
            continue
        shift = 1.03 ** (i - 1.5)  # variants side by side at each length, so whiskers do not hide each other
        ax.errorbar([n * shift for n, _ in ppl], [statistics.mean(p) for _, p in ppl], capsize=3, marker="o",
                    yerr=[statistics.stdev(p) if len(p) > 1 else 0 for _, p in ppl], color=f"C{i}", label=v,
                    ls="--" if VARIANTS[v][0] == "qk_v" else "-")
        ax.plot([n * shift for n, p in ppl for _ in p], [x for _, p in ppl for x in p], ".", color=f"C{i}",
                alpha=0.35)
    n_seeds = len({r["seed"] for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.set_xlabel("scoring window (bytes; trained at 256)")
    ax.set_ylabel("validation perplexity")
    ax.set_title(f"mean over {n_seeds} seeds, whiskers +/- sample std, dots: each seed", fontsize=10)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)


def report(rows, missing, args, wall):
    def cell(v, length):
        losses = [r["loss"] for r in rows if r["variant"] == v and r["length"] == length]
        if not losses:
            return "-"
        ppl = [math.exp(x) for x in losses]
        sd = statistics.stdev(ppl) if len(ppl) > 1 else 0.0
        return f"{statistics.mean(losses):.4f} / {statistics.mean(ppl):.3f} +/- {sd:.3f} ({len(losses)})"

    if not rows:
        sys.exit(f"no finished run under {args.root}/; {train_first(args.root, study_command(args))}.")
    # a partial report never replaces the complete one (nor a quick one its complete quick one)
    prefix = partial_prefix(f"{args.root}/rope", args.assets) if missing else args.assets
    reports_free(prefix)  # not after its .md and .csv were written
    if missing:
        partial_report(missing, len(args.seeds) * len(VARIANTS), prefix, args.assets)
    lengths = sorted({r["length"] for r in rows})
    md = [f"PARTIAL: {len(missing)} of {len(args.seeds) * len(VARIANTS)} runs not finished, left out: "
          f"{', '.join(missing)}.", ""] if missing else []  # as cpu_lm's and retrofit's: "1 runs" was no count
    took = "--report: no run trained by this call" if wall is None else f"{wall / 60:.0f} min of training this call"
    # the data scored, as its meta.json records it: data/cpu_lm_bytes prepared from another text was taken for the
    # Shakespeare of config/cpu_lm.py's docstring, which the header named alone
    meta = os.path.join(args.data_dir, "meta.json")
    again = f"delete {delete_what(args.data_dir)} and prepare it again"  # not the folder: its input.txt, a run
    data = data_name(read_json(meta, again) if present(meta) else None, args.data_dir)
    md += [f"Generated by `{study_command(args)}` ({took}). {data}, config/cpu_lm.py, {args.iters} iterations, seeds "
           f"{', '.join(map(str, args.seeds))}. "
           f"Each cell: validation loss / perplexity +/- std over seeds (seeds), on the same {args.scored:,} "
           f"validation bytes cut into windows of the given length.", "",
           "| variant | " + " | ".join(f"length {n}" for n in lengths) + " |", "|---|" + "---|" * len(lengths)]
    md += [f"| {v} | " + " | ".join(cell(v, n) for n in lengths) + " |" for v in VARIANTS]
    writable_dir(os.path.dirname(prefix), "make it writable")
    f = io.StringIO()
    w = csv.DictWriter(f, fieldnames=["variant", "seed", "length", "loss"])
    w.writeheader()
    w.writerows(rows)
    with together():  # the three, or none: a stop while the figure drew left a new table beside an old figure
        atomic_write(prefix + ".md", "\n".join(md) + "\n")
        atomic_write(prefix + ".csv", f.getvalue())
        plot(rows, prefix + ".png")
    print("\n".join(md))
    print(f"wrote {prefix}.md, {prefix}.csv, {prefix}.png")
    if not missing:
        drop_partial(args.assets, f"{args.root}/rope")


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The docstring as written, the defaults after each setting."""


def get_parser():
    p = Parser(description=__doc__, formatter_class=Formatter)  # the docstring says how to prepare --data_dir
    only = p.add_mutually_exclusive_group()  # --report --redraw drew the figure and printed no report, exit 0
    only.add_argument("--report", action="store_true", help="only the report, from the finished runs")
    p.add_argument("--quick", action="store_true", help="60 iterations, 1 seed, out-rope-quick/ (not assets/)")
    only.add_argument("--redraw", action="store_true", help="only the figure, from the written table (no runs needed)")
    p.add_argument("--data_dir", default="data/cpu_lm_bytes", help="byte-level data, as the first command above makes")
    return p


def main(argv=None):
    p = get_parser()
    args = p.parse_args(argv)
    args.iters, args.seeds = (60, SEEDS[:1]) if args.quick else (600, SEEDS)
    args.root = "out-rope-quick" if args.quick else "out-rope"
    # the tracked tables are the full study's on the default data; other data's go beside its runs
    args.assets = "assets/rope" if not args.quick and default_data(args.data_dir) else f"{args.root}/rope"
    args.assets = study_assets(args.assets, f"{args.root}/rope", args.data_dir)  # config/cpu_lm.py's, Shakespeare
    if args.redraw:  # the table of these runs: with another --data_dir the tracked figure was redrawn, exit 0
        # present: a table this user cannot reach (its folder not searchable) or a dangling link was "does not
        # exist; run the study first", which would train anew beside it or over the link
        if not present(args.assets + ".csv") or not os.path.isfile(args.assets + ".csv"):
            p.error(redraw_missing(f"{args.assets}.csv", f"`{study_command(args)}`"))
        rows = read_csv(args.assets + ".csv")
        check_mode(rows, args)
        plot(rows, args.assets + ".png")
        print(f"wrote {args.assets}.png")  # it said nothing, exit 0
        return
    # config/cpu_lm.py's block_size and vocab_size; the longest scoring window is FACTORS[-1] of them
    open_data(args.data_dir, FACTORS[-1] * 256, 256, study="experiments.rope")
    t0 = time.time()  # the training only: scoring the runs (minutes) was reported as "min of training this call",
    if not args.report:  # also by --report, which trains nothing
        command = "python -m experiments.rope" + (" --quick" if args.quick else "")
        with new_dirs(args.root, os.path.dirname(args.assets)):  # stopped before a run saved: no empty folder left
            for folder in (args.root, os.path.dirname(args.assets)):  # the runs and the report, checked before hours
                writable_dir(folder, "make it writable, or run from a copy of the repository that is")
            reports_free(f"{args.root}/rope", args.assets)
            with hold_lock(args.root, f"{args.root} is being trained into by another `{command}`; wait for it to "
                                      f"end, then run this again."):  # one study per folder: two train the same runs
                train_all(args)
    wall = None if args.report else time.time() - t0
    rows, missing = score(args)
    report(rows, missing, args, wall)


if __name__ == "__main__":
    cli(main, "every finished run is kept: run the same command to go on.")
