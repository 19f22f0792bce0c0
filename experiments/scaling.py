"""
Do the CPU-scale disagreements with the paper survive longer training, bigger models and longer contexts?
In the cpu_lm setting (config/cpu_lm.py: byte-level Shakespeare, 4 layers, 4 heads, n_embd 128, block 256, batch
16, lr 2e-3 -> 2e-4, dropout 0.1), 3 seeds everywhere, every run through train.py:

  budget   qkv, qk_v, q_kv with a full cosine schedule of 600 and of 2400 iterations (separate runs), and the
           projection analysis of every qkv checkpoint as soon as it finishes
  context  qkv, qk_v at block_size 64, 128, 256, 512 with batch x block = 4096 tokens per iteration
  size     qkv, qk_v at n_embd 64, 128, 256; the learning rate for 256 is checked first on one seed (2e-3 vs
           1e-3) and the better one is used for its other runs
  cache    qkv, qk_v with n_kv_head 2 and 1: validation loss against KV-cache bytes per token

    python prepare_slimpajama.py --input=input.txt --tokenizer=bytes --val_fraction=0.1 --out_dir=data/cpu_lm_bytes
    python -m experiments.scaling             # trains what is not finished (2 runs at a time, one thread each);
                                              # each finished run's row goes to assets/scaling.csv at once
    python -m experiments.scaling --report    # only assets/scaling.{md,png}, from the CSVs
    python -m experiments.scaling --quick     # a tiny grid, about a minute, into out-scaling-quick/ (never assets/)

A run that is in assets/scaling.csv is done, whether its folder exists or not (a fresh clone holds only the CSVs);
a killed run resumes from its checkpoint. The report reads only the CSVs, so it can be rebuilt anywhere.
"""

import argparse
import contextlib
import csv
import io
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace

# run as a file (`python experiments/scaling.py`) the project's modules are not on the path: say the way that works
if not __package__:  # and under PYTHONSAFEPATH=1 (or -P), -m finds experiments/ only on PYTHONPATH
    raise SystemExit("run the studies from the repository root as modules: "
                     + "PYTHONPATH=. " * getattr(sys.flags, "safe_path", False) + "python -m experiments.scaling")

from configurator import quiet_start  # standard library only

if __name__ == "__main__":  # a Ctrl-C (SIGTERM, SIGHUP) while torch imports: one line, not its traceback
    quiet_start()

import numpy as np
import torch

from checkpoint import (ASSETS, atomic_write, check_study_data, check_study_run, data_counts, data_name,
                        default_data, delete_what, edited_configs, guard_assets, hold_lock, load_checkpoint, load_json,
                        new_dirs, open_data, other_data, other_text, present, read_json, read_log, read_table,
                        repo_path, same_folder, save_figure, scored_tokens, study_assets, together, tokens,
                        train_first, writable_dir)
from configurator import Parser, child_env, cli, number, stop_children
from experiments.analyze import analyze, random_row
from model import GPT, GPTConfig

SEEDS = (1337, 1338, 1339)
COLUMNS = ["variant", "proj", "n_kv_head", "n_layer", "n_embd", "block_size", "batch_size", "iters",
           "learning_rate", "seed", "params", "kv_bytes_per_token", "val_loss", "best_val_loss", "train_s"]
PAIRS = [("Wq", "Wk"), ("Wq", "Wv"), ("Wk", "Wv")]
MEASURES = ("overlap", "cka", "r2")
ANALYSIS_TOKENS = 16384
ANALYSIS_COLUMNS = ["iters", "seed", "layer", "measure", "pair", "value"]
INTS = ["n_kv_head", "n_layer", "n_embd", "block_size", "batch_size", "iters", "seed", "params", "kv_bytes_per_token"]


@dataclass(frozen=True)
class Run:
    proj: str
    n_kv_head: int
    n_embd: int
    block_size: int
    iters: int
    lr: float  # 0: the winner of the learning-rate check for this n_embd
    seed: int

    @property
    def variant(self):
        return self.proj + {0: "", 1: "_mqa"}.get(self.n_kv_head, f"_gqa{self.n_kv_head}")

    def name(self, s):
        lr = "" if self.lr in (0, s["lr"]) else f"_lr{self.lr:g}"
        return f"{self.variant}_e{self.n_embd}_t{self.block_size}_i{self.iters}{lr}_s{self.seed}"


FULL = dict(root="out-scaling", assets="assets/scaling", seeds=SEEDS, iters=(600, 2400), blocks=(64, 128, 256, 512),
            embds=(64, 128, 256), kv_heads=(2, 1), base_embd=128, base_block=256, tokens_per_iter=4096, lr=2e-3,
            lr_check=(256, 1e-3), eval_interval=100, eval_tokens=106_496, extra=[])
QUICK = dict(root="out-scaling-quick", assets=None, seeds=SEEDS[:1], iters=(20, 40), blocks=(32, 64), embds=(32, 64),
             kv_heads=(2,), base_embd=32, base_block=32, tokens_per_iter=256, lr=2e-3, lr_check=(64, 1e-3),
             eval_interval=10, eval_tokens=2048, extra=["--warmup_iters=5", "--n_layer=2"])


def plan(s):
    """Every run, each once, in the order they train: the base runs of every seed first (they serve all four
    questions), the learning-rate check, then the 2400-iteration budget, cache, context and size."""
    runs = [Run(p, 0, s["base_embd"], s["base_block"], s["iters"][0], s["lr"], seed)
            for seed in s["seeds"] for p in ("qkv", "qk_v", "q_kv")]
    embd, lr = s["lr_check"]
    runs += [Run("qkv", 0, embd, s["base_block"], s["iters"][0], x, s["seeds"][0]) for x in (s["lr"], lr)]
    runs += [Run(p, 0, s["base_embd"], s["base_block"], s["iters"][1], s["lr"], seed)
             for seed in s["seeds"] for p in ("qkv", "qk_v", "q_kv")]
    runs += [Run(p, g, s["base_embd"], s["base_block"], s["iters"][0], s["lr"], seed)
             for seed in s["seeds"] for g in s["kv_heads"] for p in ("qkv", "qk_v")]
    runs += [Run(p, 0, s["base_embd"], t, s["iters"][0], s["lr"], seed)
             for seed in s["seeds"] for t in s["blocks"] if t != s["base_block"] for p in ("qkv", "qk_v")]
    runs += [Run(p, 0, e, s["base_block"], s["iters"][0], 0 if e == embd else s["lr"], seed)
             for seed in s["seeds"] for e in s["embds"] if e != s["base_embd"] for p in ("qkv", "qk_v")]
    out = []
    for r in runs:  # the check's run at the default lr is also the first size run at that n_embd
        if r not in out and not (r.lr == 0 and r.seed == s["seeds"][0] and r.proj == "qkv"):
            out.append(r)
    return out


def lr_check_winner(s, rows):
    """The learning rate the runs at the check's n_embd use: the one of lower final loss, None until both ran."""
    embd, lr = s["lr_check"]
    found = {x: row_of(rows, Run("qkv", 0, embd, s["base_block"], s["iters"][0], x, s["seeds"][0]))
             for x in (s["lr"], lr)}
    if None in found.values():
        return None
    return min(found, key=lambda x: float(found[x]["val_loss"]))


def grid_rows(s, rows):
    """The rows the tables and the figure read: all but the learning-rate check's losing run, which has the same
    variant, size and seed as a size run and would otherwise stand in for it."""
    embd, _ = s["lr_check"]
    lr = lr_check_winner(s, rows) or s["lr"]
    return [r for r in rows if int(r["n_embd"]) != embd or float(r["learning_rate"]) == lr]


def resolve(run, s, rows):
    """The run with its learning rate decided (None while it waits for the check)."""
    if run.lr:
        return run
    lr = lr_check_winner(s, rows)
    return replace(run, lr=lr) if lr else None


def row_of(rows, run):
    key = (run.proj, run.n_kv_head, run.n_embd, run.block_size, run.iters, run.lr, run.seed)
    return next((r for r in rows if (r["proj"], int(r["n_kv_head"]), int(r["n_embd"]), int(r["block_size"]),
                                     int(r["iters"]), float(r["learning_rate"]), int(r["seed"])) == key), None)


def command(run, s, data_dir, out_dir, resume):
    batch = s["tokens_per_iter"] // run.block_size
    args = [repo_path("config/cpu_lm.py"), f"--proj={run.proj}", f"--n_kv_head={run.n_kv_head}",
            f"--n_embd={run.n_embd}", f"--block_size={run.block_size}", f"--batch_size={batch}",
            f"--max_iters={run.iters}", f"--learning_rate={run.lr}", f"--min_lr={run.lr / 10}",
            f"--eval_interval={s['eval_interval']}", f"--log_interval={s['eval_interval']}",
            f"--eval_tokens={s['eval_tokens']}", f"--seed={run.seed}", f"--data_dir={data_dir}", f"--out_dir={out_dir}",
            *s["extra"]]
    return [sys.executable, repo_path("train.py"), *args] + (["--init_from=resume"] if resume else [])


def read_csv(path, columns):
    # a run in the table is done: its row is not rebuilt, so a table damaged by hand is restored, not deleted
    fix = ("restore it (`git checkout -- FILE` where it is tracked, else from the run folders' checkpoints by "
           "deleting it) and run again")
    rows = read_table(path, columns, text=["variant", "proj", "layer", "measure", "pair"], ints=INTS, fix=fix)
    if columns == ANALYSIS_COLUMNS:  # every layer holds each measure of each pair: the means are over them
        held = {}
        for r in rows:
            held.setdefault((r["iters"], r["seed"], r["layer"]), set()).add((r["measure"], r["pair"]))
        whole = {(m, f"{a}-{b}") for m in MEASURES for a, b in PAIRS}
        for (iters, seed, layer), got in held.items():
            if got != whole:
                sys.exit(f"{path} does not hold each of the {len(whole)} measures ({', '.join(MEASURES)} of each "
                         f"pair) for iters {iters}, seed {seed}, layer {layer}; {fix.replace('FILE', path)}.")
    return rows


def write_csv(path, columns, rows):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write(path, buf.getvalue())


def finish(run, s, out_dir, train_s, data_dir):
    """The CSV row of a finished run (and, for a qkv budget run, its projection analysis rows)."""
    ckpt = load_checkpoint(out_dir, ("model", "model_args", "iter_num", "best_val_loss"))
    cfg = GPTConfig(**ckpt["model_args"])
    model = GPT(replace(cfg, dropout=0.0))
    model.load_state_dict(ckpt["model"])
    vals = [e["val_loss"] for e in read_log(out_dir, last=ckpt["iter_num"]) if "val_loss" in e]
    row = {"variant": run.variant, "proj": run.proj, "n_kv_head": run.n_kv_head, "n_layer": cfg.n_layer,
           "n_embd": run.n_embd, "block_size": run.block_size, "batch_size": s["tokens_per_iter"] // run.block_size,
           "iters": run.iters, "learning_rate": run.lr, "seed": run.seed, "params": model.num_params(),
           "kv_bytes_per_token": model.kv_bytes_per_token(torch.bfloat16), "val_loss": f"{vals[-1]:.5f}",
           "best_val_loss": f"{min(vals):.5f}", "train_s": round(train_s)}
    analysis = []
    if run.proj == "qkv" and run.n_kv_head == 0 and run.n_embd == s["base_embd"] and \
            run.block_size == s["base_block"] and run.lr == s["lr"]:
        n = min(ANALYSIS_TOKENS, len(tokens(data_dir, "val"))) // cfg.block_size
        idx = torch.from_numpy(tokens(data_dir, "val")[:n * cfg.block_size].astype(np.int64)).view(n, cfg.block_size)
        layers = analyze(model.eval(), idx)
        labelled = [(str(i), r) for i, r in enumerate(layers)] + [("random", random_row(model, idx))]
        analysis = [{"iters": run.iters, "seed": run.seed, "layer": label, "measure": m,
                     "pair": f"{a}-{b}", "value": f"{r[m][(a, b)]:.5f}"}
                    for label, r in labelled for m in MEASURES for a, b in PAIRS]
    return row, analysis


def one_grid(s, rows, csv_path):
    """That every row of the table is a run of s's grid: --quick's rows in a --root the full grid then trained into
    (or reported) were counted as its finished runs ("13 of 61"; 61 rows of any kind read as complete), and a quick
    row's 2 layers headed the full table."""
    plans = plan(s)
    other = [r for r in rows if key_run(r, s) not in plans]
    if other:
        grid = "the quick grid (--quick)" if s is FULL else "the full grid (no --quick)"
        sys.exit(f"{csv_path} holds {len(other)} run(s) of {grid}, such as {row_run(other[0]).name(s)}, and a table "
                 f"holds the runs of one grid; give the options that trained them, or another --root.")


def train_all(s, args):
    """Up to args.jobs train.py processes at once, one thread each; a finished run's row is written at once."""
    csv_path, ana_path = paths(s, args)
    rows, ana = read_csv(csv_path, COLUMNS), read_csv(ana_path, ANALYSIS_COLUMNS)
    one_grid(s, rows, csv_path)  # before hours of training beside them
    todo = [r for r in plan(s) if not (r.lr and row_of(rows, r))]
    for run in todo:  # every folder whose run is settled, first: a later one was refused after hours of training
        if run.lr:
            check_folder(run, s, args)
    running = {}  # Popen -> (run, out_dir, start, stderr file)
    try:
        train_todo(s, args, todo, running, rows, ana)
    except BaseException as e:  # a SIGTERM to this process alone, or its output closed (`| head`), left its runs
        stop_children(running, e)  # training on their own
        raise


def check_folder(run, s, args):
    """A run of other settings in run's folder (by hand, another study) refused: not resumed as this one. lexists: a
    link whose target is gone is named by load_checkpoint, not trained over."""
    out_dir = os.path.join(args.root, run.name(s))
    ckpt_file = os.path.join(out_dir, "ckpt.pt")
    if os.path.lexists(ckpt_file):
        check_study_run(load_checkpoint(ckpt_file, ("config",)), out_dir,
                        command(run, s, args.data_dir, out_dir, True)[2:-1],
                        "python -m experiments.scaling" + (" --quick" if s is QUICK else ""))


def train_todo(s, args, todo, running, rows, ana):
    """train_all's loop, with running kept where train_all stops it."""
    csv_path, ana_path = paths(s, args)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    t_start = time.time()
    while todo or running:
        while len(running) < args.jobs:
            ready = [r for r in todo if resolve(r, s, rows) is not None]
            if not ready:
                break
            run = ready[0]
            todo.remove(run)
            run = resolve(run, s, rows)
            if row_of(rows, run):
                continue
            out_dir = os.path.join(args.root, run.name(s))
            ckpt_file = os.path.join(out_dir, "ckpt.pt")
            cmd = command(run, s, args.data_dir, out_dir, os.path.lexists(ckpt_file))
            try:  # again: the runs waiting for the learning rate check were not settled before
                check_folder(run, s, args)
            except SystemExit:
                for q in running:  # the runs under way end first, as when one fails
                    q.wait()
                raise
            err = tempfile.TemporaryFile()
            print(shlex.join(cmd[1:]), flush=True)  # as pasted: a path with a space is one argument
            running[subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=child_env(env))] = \
                (run, out_dir, time.time(), err)
        if not running:
            if todo:
                sys.exit("runs wait for the learning-rate check, which is not in this plan; run the full grid.")
            break
        time.sleep(1)
        for p in [p for p in running if p.poll() is not None]:
            run, out_dir, t0, err = running.pop(p)
            if p.returncode != 0:
                err.seek(0)
                tail = err.read().decode(errors="replace").strip().splitlines()[-1:] or ["(no message)"]
                for q in running:
                    q.wait()
                sys.exit(f"{out_dir}: train.py failed ({tail[0]}); fix it and rerun: finished runs are kept.")
            row, new = finish(run, s, out_dir, time.time() - t0, args.data_dir)
            rows.append(row)
            order = {r: i for i, r in enumerate(plan(s))}
            rows.sort(key=lambda r: order.get(key_run(r, s), len(order)))
            write_csv(csv_path, COLUMNS, rows)
            if not tracked(s, args):
                atomic_write(data_file(args), data_line(args.data_dir))
            if new:
                ana[:] = merge_analysis(ana, new)
                write_csv(ana_path, ANALYSIS_COLUMNS, ana)
            print(f"{run.name(s)}: val loss {row['val_loss']} ({time.time() - t0:.0f} s; "
                  f"{(time.time() - t_start) / 60:.0f} min in all)", flush=True)
            report(s, args)  # the tables so far (marked PARTIAL), so a session that ends mid-study leaves them


def merge_analysis(ana, new):
    """The analysis rows with a run's new ones in place of any of the same budget and seed: a run trained again
    after its row was deleted from scaling.csv (the way to redo one) appended its rows beside the old run's, and the
    table averaged the two runs' projections as one seed's."""
    done = {(str(r["iters"]), str(r["seed"])) for r in new}
    return [r for r in ana if (str(r["iters"]), str(r["seed"])) not in done] + new


def row_run(row):
    """The run a CSV row records, at the learning rate it trained with: its folder's name (Run.name)."""
    return Run(row["proj"], int(row["n_kv_head"]), int(row["n_embd"]), int(row["block_size"]), int(row["iters"]),
               float(row["learning_rate"]), int(row["seed"]))


def key_run(row, s):
    """The plan entry a CSV row answers (the lr of a size run at the check's n_embd was 0 in the plan)."""
    run = row_run(row)
    plans = plan(s)
    if run in plans:
        return run
    return replace(run, lr=0)


def data_file(args):
    """Where a --root whose table is beside its runs names their data: a row stays when its run folder is deleted, and
    says nothing of its data, so another --data_dir there reported that data's rows as its own (exit 0)."""
    return os.path.join(args.root, "scaling_data.txt")


def data_line(data_dir):
    """scaling_data.txt: the folder, then what its meta.json records of the text (token counts, the inputs'
    fingerprint and contents) as JSON: data_dir prepared again from another text, with the run folders deleted (their
    rows stay), trained the rest on the new text beside the old rows, exit 0."""
    try:
        meta = load_json(os.path.join(data_dir, "meta.json"))
    except (OSError, ValueError):  # checked by open_data before the runs: gone since
        meta = {}
    # inputs_sha256: the same text prepared again from a cp -r copy (new times, another shards_sha1) is this data, as
    # it is to train.py; without it, a copied project's root was refused as "prepared again"
    keep = {k: meta[k] for k in ("train_tokens", "val_tokens", "inputs_sha256") if k in meta}
    if isinstance(meta.get("settings"), dict) and "shards_sha1" in meta["settings"]:
        keep["settings"] = {"shards_sha1": meta["settings"]["shards_sha1"]}
    return f"{data_dir}\n{json.dumps(keep)}\n"


def check_root_data(s, args):
    """A table beside its runs (--quick, other data) holds the runs of one data_dir: a run in the table is done,
    so the runs of another --data_dir in that --root were reported as this one's (exit 0, nothing trained)."""
    if not tracked(s, args) and os.path.isdir(data_file(args)):  # written after the first run: failed only then
        sys.exit(f"{data_file(args)} is a folder, where this study keeps the --data_dir of the runs in --root; move "
                 f"it out of the way and run again.")
    if not tracked(s, args) and present(data_file(args)) and os.path.isfile(data_file(args)):
        with open(data_file(args), encoding="utf-8", errors="replace") as f:
            saved, _, was = f.read().strip().partition("\n")  # a table before this: the folder alone
        if not saved:  # emptied by hand or a full disk: "give --data_dir=" named no folder
            sys.exit(f"{data_file(args)} names no data_dir (it holds the --data_dir of the runs in --root "
                     f"{args.root}); write that folder into it, or give another --root for {args.data_dir}.")
        if not same_folder(saved, args.data_dir):  # as given: a moved repository keeps it
            sys.exit(f"the table of --root {args.root} holds runs on --data_dir {saved} ({data_file(args)} says so); "
                     f"give {shlex.quote(f'--data_dir={saved}')}, or another --root for {args.data_dir}.")
        try:
            was, now = json.loads(was or "{}"), load_json(os.path.join(args.data_dir, "meta.json"))
        except (OSError, ValueError):  # no data here (a --report needs none), or the line edited: nothing to compare
            was = now = None
        if moved := other_data(was, now):
            sys.exit(f"the table of --root {args.root} holds runs on {args.data_dir} before it was prepared again ("
                     f"{'; '.join(moved).replace('(checkpoint: ', '(its runs: ')}; {data_file(args)} says so); "
                     f"prepare the data as it was, or give another --root for the data as it is now.")
    if not tracked(s, args):
        for name in sorted(os.listdir(args.root)):
            path = os.path.join(args.root, name, "ckpt.pt")
            ckpt = load_checkpoint(path, ("config",)) if os.path.lexists(path) else {"config": {}}
            saved = ckpt["config"].get("data_dir")
            if isinstance(saved, str) and not same_folder(saved, args.data_dir):
                sys.exit(f"{os.path.join(args.root, name)} was trained on --data_dir {saved}, and the table of "
                         f"--root {args.root} holds the runs of one data; give {shlex.quote(f'--data_dir={saved}')}, "
                         f"or another --root for {args.data_dir}.")
            # its finished runs too, which train_todo never checks: prepared again since, the rest trained on the
            # new data beside them, and --report named the new val.bin's counts for the old runs' analysis
            check_study_data(ckpt, os.path.join(args.root, name), args.data_dir)
    if not tracked(s, args) and not os.path.lexists(data_file(args)):
        # a table written before 159df4a names no data: the rows of run folders deleted since were reported as those
        # of any --data_dir given, headed with its name and its val.bin's bytes (exit 0)
        # the folder a row trained in is named with its rate (row_run): the plan's entry (key_run) has none for a size
        # run, so where the check's 1e-3 won every size run was counted gone
        lost = sum(not os.path.isfile(os.path.join(args.root, row_run(r).name(s), "ckpt.pt"))
                   for r in read_csv(paths(s, args)[0], COLUMNS))
        if lost:
            sys.exit(f"{paths(s, args)[0]} holds {lost} row(s) whose run folders are gone, and nothing in --root "
                     f"{args.root} names the data they trained on (a table of a version before 159df4a): write that "
                     f"--data_dir into {data_file(args)} (one line), or delete the table and run "
                     f"`{study_command(s, args)}` (no --report), which rebuilds it from the run folders that remain "
                     f"and trains the gone runs again.")


def tracked(s, args):
    """Whether the tables go to assets/: the full grid on the default data (Shakespeare) with config/cpu_lm.py's
    tracked values; other data's, or other values', go beside its runs."""
    return bool(s["assets"]) and default_data(args.data_dir) and not edited_configs() and not other_text(args.data_dir)


def table_lock(s, args):
    """The tracked table is one for every --root: a second full study in another --root trained the same runs, and
    each rewrote assets/scaling.csv from the rows it had read, dropping the other's."""
    if not tracked(s, args):  # the table is in --root, whose lock is held
        return contextlib.nullcontext()
    table = paths(s, args)[0]
    writable_dir(os.path.dirname(table), "make it writable, or run from a copy of the repository that is")
    return hold_lock(os.path.dirname(table), f"{table} is being written by another `python -m experiments.scaling` "
                                             f"(in another --root); wait for it to end, then run this again.")


def paths(s, args):
    base = s["assets"] if tracked(s, args) else os.path.join(args.root, "scaling")
    return base + ".csv", base + "_projections.csv"


# ---------------------------------------------------------------------------------------------------- report

def loss_of(rows, key, **where):
    """{seed: float(row[key])} of the rows matching where."""
    out = {}
    for r in rows:
        if all(str(r[k]) == str(v) for k, v in where.items()):
            out[int(r["seed"])] = float(r[key])
    return out


def verdict(gaps):
    """The rule every reading follows: with paired per-seed gaps, a difference is shown when every seed agrees in
    sign and the mean gap exceeds the spread (sample std) of the gaps; suggested when only one of the two holds;
    otherwise no difference."""
    if len(gaps) < 2:
        return "one seed"
    mean, sd = statistics.mean(gaps), statistics.stdev(gaps)
    same = all(g > 0 for g in gaps) or all(g < 0 for g in gaps)
    big = abs(mean) > sd
    return "shown" if same and big else "suggested" if same or big else "no difference"


def gap_line(label, a, b, what):
    """A table row of the paired gaps a - b (dicts seed -> loss) over the seeds both have."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    gaps = [a[x] - b[x] for x in seeds]
    rel = [math.exp(a[x] - b[x]) * 100 - 100 for x in seeds]
    sd = statistics.stdev(gaps) if len(gaps) > 1 else 0.0
    return (f"| {label} | {what} | " + ", ".join(f"{g:+.4f}" for g in gaps) + f" | {statistics.mean(gaps):+.4f} "
            f"+/- {sd:.4f} | {statistics.mean(rel):+.1f}% | {verdict(gaps)} |")


GAP_HEAD = ["| setting | gap | per seed (nats/byte) | mean +/- std | perplexity | reading |", "|---|---|---|---|---|---|"]


def budget_table(rows, s, which):
    lines = []
    for iters in s["iters"]:
        where = dict(n_kv_head=0, n_embd=s["base_embd"], block_size=s["base_block"], iters=iters)
        loss = {p: loss_of(rows, which, proj=p, **where) for p in ("qkv", "qk_v", "q_kv")}
        for a, b in (("qk_v", "qkv"), ("q_kv", "qkv"), ("qk_v", "q_kv")):
            line = gap_line(f"{iters} iterations", loss[a], loss[b], f"{a} - {b}")
            lines += [line] if line else []
    return lines


def axis_table(rows, s, axis, values, fixed):
    lines = []
    for v in values:
        where = {**fixed, axis: v}
        line = gap_line(f"{axis} {v}", loss_of(rows, "val_loss", proj="qk_v", **where),
                        loss_of(rows, "val_loss", proj="qkv", **where), "qk_v - qkv")
        lines += [line] if line else []
    return lines


def mean_std(xs):
    return f"{statistics.mean(xs):.4f} +/- {statistics.stdev(xs) if len(xs) > 1 else 0.0:.4f}"


def cache_table(rows, s):
    """Every base-size 600-iteration variant, by KV-cache bytes per token."""
    where = dict(n_embd=s["base_embd"], block_size=s["base_block"], iters=s["iters"][0], learning_rate=s["lr"])
    variants = {}
    for r in rows:
        if all(str(r[k]) == str(v) for k, v in where.items()):
            variants.setdefault((int(r["kv_bytes_per_token"]), r["variant"]), []).append(float(r["val_loss"]))
    lines = ["| KV cache bytes/token (bf16) | variant | seeds | val loss | best at this budget |", "|---|---|---|---|---|"]
    for kv in sorted({k for k, _ in variants}, reverse=True):
        here = {v: xs for (k, v), xs in variants.items() if k == kv}
        best = min(here, key=lambda v: statistics.mean(here[v]))
        for v, xs in sorted(here.items(), key=lambda item: statistics.mean(item[1])):
            lines.append(f"| {kv:,} | {v} | {len(xs)} | {mean_std(xs)} | {'yes' if v == best and len(here) > 1 else ''} |")
    return lines, variants


def analysis_table(ana, s):
    """Mean over layers per seed, then mean +/- std over seeds, per budget; and the random reference."""
    lines = ["| iterations | seeds | " + " | ".join(f"{m} {a[1:]}-{b[1:]}" for m in MEASURES for a, b in PAIRS) + " |",
             "|---|---|" + "---|" * (len(MEASURES) * len(PAIRS))]
    for iters in s["iters"]:
        for ref in (False, True):
            here = [r for r in ana if int(r["iters"]) == iters and (r["layer"] == "random") == ref]
            seeds = sorted({int(r["seed"]) for r in here})
            if not seeds:
                continue
            cells = []
            for m in MEASURES:
                for a, b in PAIRS:
                    per_seed = [statistics.mean(float(r["value"]) for r in here if int(r["seed"]) == x and
                                                r["measure"] == m and r["pair"] == f"{a}-{b}") for x in seeds]
                    # the random row too: its CKA and R2 are of each seed's own inputs, and the row showed the
                    # first seed's alone beside a count of every seed
                    cells.append(mean_std(per_seed).replace(" +/- ", " ± "))
            label = f"{iters} (random matrices)" if ref else str(iters)
            lines.append(f"| {label} | {len(seeds)} | " + " | ".join(cells) + " |")
    return lines


def val_length(s, args):
    """Tokens of the val.bin the table's runs scored, None where not counted: the tracked table's is Shakespeare's,
    which holds the eval_tokens and ANALYSIS_TOKENS asked (and a fresh clone has no data); a table beside its runs
    reads --data_dir's (check_root_data: the runs' own), whose val.bin may be smaller, or gone since."""
    path = os.path.join(args.data_dir, "val.bin")
    if tracked(s, args) or not present(path) or not os.path.isfile(path):
        return None
    return os.path.getsize(path) // 2  # uint16 tokens, counted without mapping the file (cut: no ValueError)


def scored_phrase(s, args, rows):
    """The validation bytes the report's losses are over: eval_tokens was said where a smaller val.bin gave train.py's
    evaluation its whole batches only, and another count at each block size where it holds few windows of them."""
    val, asked = val_length(s, args), s["eval_tokens"]
    counts = {int(r["block_size"]): scored_tokens(val or sys.maxsize, int(r["block_size"]), int(r["batch_size"]),
                                                  asked) for r in rows}
    if val is None and not tracked(s, args):
        return f"{asked:,} validation bytes asked ({args.data_dir}/val.bin, gone now, may have held fewer)"
    if len(set(counts.values())) == 1:
        n = next(iter(counts.values()))
        return f"same {n:,} validation bytes" + (f" (all the whole batches its val.bin of {val:,} holds; "
                                                  f"eval_tokens {asked:,})" if n < asked else "")
    return ("first " + ", ".join(f"{n:,} (block_size {b})" for b, n in sorted(counts.items())) +
            f" validation bytes (the whole batches of each block_size its val.bin of {val:,} holds; eval_tokens "
            f"{asked:,})")


def analysis_tokens(s, args):
    """The validation bytes finish() analysed: ANALYSIS_TOKENS, or the whole blocks of a smaller val.bin."""
    val = val_length(s, args)
    return min(ANALYSIS_TOKENS, val if val is not None else ANALYSIS_TOKENS) // s["base_block"] * s["base_block"]


def run_counts(root, data_dir):
    """The data counts a run in root on data_dir recorded (data_counts), None where root holds none: the runs of one
    table trained on one data (check_study_data refuses another). A run of another --data_dir is no run of this
    table: `--report --root=R`, R a quick study's on other text, rewrote assets/scaling.md's header to name
    data/cpu_lm_bytes as "Byte-level data of", from runs the tracked table never held."""
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else ():
        path = os.path.join(root, name, "ckpt.pt")
        if os.path.isfile(path):
            ckpt = load_checkpoint(path, ("meta",))
            saved = ckpt.get("config", {}).get("data_dir") if isinstance(ckpt.get("config"), dict) else None
            if not isinstance(saved, str) or same_folder(saved, data_dir):
                return data_counts(ckpt, os.path.join(root, name))
    return None


def header_data(s, args):
    """The tracked table names what its runs' checkpoints record (a full run on data/cpu_lm_bytes prepared from
    another text was headed "Byte-level Shakespeare"), and without runs (a fresh clone's --report: its CSVs record
    no data) is Shakespeare's; a table beside its runs names what --data_dir's meta.json records (check_root_data:
    the runs' own): data/cpu_lm_bytes prepared from another text was "Byte-level Shakespeare" too."""
    if tracked(s, args):
        counts = run_counts(args.root, args.data_dir)
        return data_name(counts, args.data_dir) if counts else "Byte-level Shakespeare"
    meta = os.path.join(args.data_dir, "meta.json")
    # gone since: the folder says what it was
    counts = read_json(meta, f"delete {delete_what(args.data_dir)} and prepare it again") if present(meta) else None
    return data_name(counts, args.data_dir)


def study_command(s, args):
    """The command that trains the runs of s into args.root: --quick, --root and --data_dir as given."""
    return "python -m experiments.scaling" + (" --quick" if s is QUICK else "") + \
        (" " + shlex.quote(f"--root={args.root}") if args.root != s["root"] and not tracked(s, args) else "") + \
        (" " + shlex.quote(f"--data_dir={args.data_dir}") if not default_data(args.data_dir) else "")


def report(s, args):
    csv_path, ana_path = paths(s, args)
    rows, ana = read_csv(csv_path, COLUMNS), read_csv(ana_path, ANALYSIS_COLUMNS)
    one_grid(s, rows, csv_path)
    # the command that trains them: --quick, --root and --data_dir as given (the full grid elsewhere takes hours);
    # not the --root of a tracked table, which every --root trains: `--report --root=X` rewrote assets/scaling.md to
    # name X, a folder it never read
    command = study_command(s, args)
    if not rows and not os.path.lexists(csv_path) and tracked(s, args) and not os.path.isdir("assets"):
        # run from another folder (PYTHONPATH set): "assets/scaling.csv holds no finished run yet" of a file that
        # is not there, and training would start the full grid into this folder
        sys.exit(f"{csv_path} does not exist here: the tracked table is read from assets/ in the current folder, "
                 f"and {os.getcwd()} has none; run from the repository root ({os.path.dirname(ASSETS)}).")
    if not rows:
        held = "holds no finished run yet" if os.path.lexists(csv_path) else "does not exist: no run has finished yet"
        sys.exit(f"{csv_path} {held}; {train_first(args.root, command)}.")
    expected = len(plan(s))
    md_path = csv_path[:-4] + ".md"
    partial = len(rows) < expected
    # config/cpu_lm.py's 50, or the quick grid's own (the quick report said 50 where its runs warmed up for 5)
    warmup = next((a.split("=")[1] for a in s["extra"] if a.startswith("--warmup_iters=")), 50)
    winner = lr_check_winner(s, rows)
    checked, rows = rows, grid_rows(s, rows)
    analysed = analysis_tokens(s, args)  # the validation bytes finish() analysed
    lines = []
    if partial:
        lines += [f"PARTIAL: {len(checked)} of {expected} runs finished; the tables show what is in.", ""]
    lines += [f"Generated by `{command}` (`--report` rebuilds it from {os.path.basename(csv_path)} and "
              f"{os.path.basename(ana_path)}). {header_data(s, args)}, config/cpu_lm.py: {rows[0]['n_layer']} layers, "
              f"4 heads, dropout 0.1, {s['tokens_per_iter']:,} tokens per iteration, lr {s['lr']:g} -> "
              f"{s['lr'] / 10:g} (cosine after {warmup} warmup iterations) unless said, seeds "
              f"{', '.join(map(str, s['seeds']))}, one thread per run. Validation loss in nats/byte over the "
              f"{scored_phrase(s, args, rows)}, final (at the last iteration) unless said; best = the lowest "
              f"of the evaluations every {s['eval_interval']} iterations.", "",
              "Reading rule: gaps are paired by seed (the same seed gives every variant the same batches). A "
              "difference is **shown** when every seed agrees in sign and the mean gap exceeds the spread (sample "
              "std) of the per-seed gaps, **suggested** when only one of the two holds, otherwise **no difference**.",
              "", f"## Budget: {s['iters'][0]} against {s['iters'][1]} iterations (each a full schedule)", "",
              "Final validation loss:", "",
              *GAP_HEAD, *budget_table(rows, s, "val_loss"), "", "Best validation loss:", "", *GAP_HEAD,
              *budget_table(rows, s, "best_val_loss"), "",
              f"Projection analysis of the qkv checkpoints (experiments/analyze.py on the first {analysed:,} "
              f"validation bytes; per seed the mean over layers, then mean ± std over seeds; the random row applies "
              f"Gaussian matrices of the same shapes to the same inputs):", "", *analysis_table(ana, s), "",
              "## Context: block_size with batch x block constant", "", *GAP_HEAD,
              *axis_table(rows, s, "block_size", s["blocks"], dict(n_kv_head=0, n_embd=s["base_embd"],
                                                                  iters=s["iters"][0])), "",
              f"## Size: n_embd ({rows[0]['n_layer']} layers, 4 heads)", ""]  # the quick grid's: 20, 40 and 2
    embd, lr = s["lr_check"]
    check = {x: loss_of(checked, "val_loss", proj="qkv", n_embd=embd, iters=s["iters"][0], learning_rate=x,
                        seed=s["seeds"][0]) for x in (s["lr"], lr)}
    if all(check.values()):
        lines += [f"Learning-rate check at n_embd {embd} (qkv, seed {s['seeds'][0]}): lr {s['lr']:g} gives "
                  f"{check[s['lr']][s['seeds'][0]]:.4f}, lr {lr:g} gives {check[lr][s['seeds'][0]]:.4f}; the runs "
                  f"at n_embd {embd} use lr {winner:g}.", ""]
    lines += [*GAP_HEAD, *axis_table(rows, s, "n_embd", s["embds"], dict(n_kv_head=0, block_size=s["base_block"],
                                                                         iters=s["iters"][0])), ""]
    size_rows = [f"| {e} | {int(next(r['params'] for r in rows if int(r['n_embd']) == e and r['proj'] == p)):,} | {p} |"
                 for e in s["embds"] for p in ("qkv", "qk_v")
                 if any(int(r["n_embd"]) == e and r["proj"] == p for r in rows)]
    lines += ["| n_embd | parameters | variant |", "|---|---|---|", *size_rows, ""]
    cache, _ = cache_table(rows, s)
    lines += ["## Cache budget: validation loss against KV-cache bytes per token (base size, "
              f"{s['iters'][0]} iterations)", "", *cache]
    with together():  # both, or neither: a stop while the figure drew left a new table beside an old figure
        atomic_write(md_path, "\n".join(lines) + "\n")
        plot(rows, s, csv_path[:-4] + ".png")
    print("\n".join(lines))
    print(f"wrote {md_path}, {csv_path[:-4]}.png")


def plot(rows, s, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.5))
    base = dict(n_kv_head=0, n_embd=s["base_embd"], block_size=s["base_block"])
    for i, p in enumerate(("qkv", "qk_v", "q_kv")):  # budget: final loss per seed and its mean
        pts = [(it, v) for it in s["iters"] for v in loss_of(rows, "val_loss", proj=p, iters=it, **base).values()]
        if pts:
            axes[0].scatter(*zip(*pts), color=f"C{i}", s=12, alpha=0.6)
            means = [(it, statistics.mean(v for x, v in pts if x == it)) for it in s["iters"] if
                     any(x == it for x, _ in pts)]
            axes[0].plot(*zip(*means), color=f"C{i}", marker="o", label=p)
    axes[0].set(xscale="log", xticks=s["iters"], xticklabels=[str(x) for x in s["iters"]], xlabel="iterations",
                ylabel="final validation loss (nats/byte)", title="budget (dots: seeds)")
    for ax, axis, values, fixed in ((axes[1], "block_size", s["blocks"], dict(n_kv_head=0, n_embd=s["base_embd"])),
                                    (axes[2], "n_embd", s["embds"], dict(n_kv_head=0, block_size=s["base_block"]))):
        pts = []
        for v in values:
            a = loss_of(rows, "val_loss", proj="qk_v", iters=s["iters"][0], **{**fixed, axis: v})
            b = loss_of(rows, "val_loss", proj="qkv", iters=s["iters"][0], **{**fixed, axis: v})
            pts += [(v, math.exp(a[x] - b[x]) * 100 - 100) for x in set(a) & set(b)]
        if pts:
            ax.scatter(*zip(*pts), color="C1", s=12, alpha=0.6)
            means = [(v, statistics.mean(g for x, g in pts if x == v)) for v in values if any(x == v for x, _ in pts)]
            ax.plot(*zip(*means), color="C1", marker="o", label="qk_v vs qkv, mean")
            ax.legend()
        ax.axhline(0, color="gray", lw=0.5)
        ax.set(xscale="log", xticks=values, xticklabels=[str(v) for v in values], xlabel=axis,
               ylabel="perplexity of qk_v vs qkv (%)", title=f"{axis} (dots: seeds)")
    _, variants = cache_table(rows, s)
    for i, proj in enumerate(("qkv", "qk_v", "q_kv")):
        pts = sorted((kv, statistics.mean(xs), min(xs), max(xs)) for (kv, v), xs in variants.items()
                     if v.split("_gqa")[0].split("_mqa")[0] == proj)
        if pts:
            kv, mean, lo, hi = zip(*pts)
            axes[3].errorbar(kv, mean, yerr=[np.subtract(mean, lo), np.subtract(hi, mean)], color=f"C{i}",
                             marker="o", capsize=3, label=f"{proj} (MHA, GQA-2, MQA)" if proj != "q_kv" else proj)
    kvs = sorted({kv for kv, _ in variants})
    axes[3].set(xscale="log", xticks=kvs, xticklabels=[f"{kv:,}" for kv in kvs], xlabel="KV-cache bytes per token (bf16)",
                ylabel="final validation loss", title="cache budget (bars: min-max over seeds)")
    for ax in axes:
        ax.minorticks_off()  # a log axis labels its minor ticks too, on top of the ticks set above
    for ax in (axes[0], axes[3]):
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


# options a mode reads nothing of (configurator.Parser.unread)
UNREAD = [("jobs", lambda a: a.report, "--report trains nothing, and --jobs is how many runs train at once; drop it")]


def main(argv=None):
    # the docstring: --help pointed to it for the data and showed a line of its own
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a tiny grid into --root (default out-scaling-quick/)")
    p.add_argument("--report", action="store_true", help="only the report, from the CSVs")
    p.add_argument("--data_dir", default="data/cpu_lm_bytes",
                   help="prepared byte-level data, as the first command above makes (default data/cpu_lm_bytes)")
    p.add_argument("--root", default=None, help="run folders (default out-scaling/, or out-scaling-quick/)")
    p.add_argument("--jobs", type=number(int, "[1, 16]"), default=2,
                   help="train.py processes at once, one thread each (default 2)")
    args = p.parse_args(argv)
    p.unread(args, UNREAD)
    s = QUICK if args.quick else FULL
    args.root = args.root or s["root"]
    if s["assets"] and default_data(args.data_dir):  # said once: tracked() reads them again where it is asked
        study_assets(s["assets"], os.path.join(args.root, "scaling"), args.data_dir)
    if not args.report:  # the data first: train.py's own fix for it would be a setting this study does not have
        open_data(args.data_dir, max(s["blocks"]), 256, study="experiments.scaling")
    guard_assets(args.root, False, None)  # run folders never go there (found by train.py, after the data check)
    if args.report and tracked(s, args):  # from assets/ alone: no run folder read, none made (an empty one was left)
        return report(s, args)
    # a report of nothing, or a study stopped before its first run, leaves no folder: nor the tracked table's, which
    # a full run from another folder made (an empty assets/ there then turned the next --report's advice)
    with new_dirs(args.root, os.path.dirname(paths(s, args)[0])):
        writable_dir(args.root, "choose another --root", named=True)  # a file there was a FileExistsError traceback
        check_root_data(s, args)
        if not args.report:  # one study per --root: a second one would train the same runs
            with hold_lock(args.root, f"--root {args.root} is being trained into by another `python -m "
                                      f"experiments.scaling`; wait for it to end, then run this again, or choose "
                                      f"another --root."), table_lock(s, args):
                train_all(s, args)
        report(s, args)


if __name__ == "__main__":
    cli(main, "every finished run's row is kept: run the same command to go on.")
