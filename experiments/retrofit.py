r"""
The retrofit experiment: how much of a trained qkv model survives tying V to K (and pooling key/value heads), before
and after a short uptraining, against Q-K=V trained from scratch for the same total steps? Byte-level Shakespeare,
the cpu_lm setting (config/cpu_lm.py), 3 seeds, every run through train.py in a subprocess, one at a time, one thread
each.

    python prepare_slimpajama.py --input=input.txt --tokenizer=bytes --val_fraction=0.1 \
        --out_dir=data/cpu_lm_bytes
    python -m experiments.retrofit            # trains the runs not finished yet (resumes a killed one), writes assets/retrofit.*
    python -m experiments.retrofit --report   # only the report, from the finished runs under out-retrofit/
    python -m experiments.retrofit --quick    # the same pipeline at 1/10 of the steps, 1 seed: out-retrofit-quick/, not assets/
    python -m experiments.retrofit --redraw   # only the figure, from assets/retrofit.csv (no runs needed)

The report goes to assets/ only from the full run with every run finished; a partial one goes to the runs' folder
(out-retrofit/retrofit.*), so it never replaces the complete one.

Per seed: qkv trained for ITERS steps (the source); each conversion of it uptrained for UPTRAIN[-1] steps with one
warmup + cosine schedule (validation right after conversion, then after each UPTRAIN count: the shorter count is read
mid-schedule, not from a run annealed over it, which saves a run per conversion); qk_v from scratch for
ITERS + UPTRAIN[-1] steps, read the same way at ITERS + UPTRAIN[0].
"""

import argparse
import csv
import io
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import asdict

# run as a file (`python experiments/retrofit.py`) the project's modules are not on the path: say the way that works
if not __package__:  # and under PYTHONSAFEPATH=1 (or -P), -m finds experiments/ only on PYTHONPATH
    raise SystemExit("run the studies from the repository root as modules: "
                     + "PYTHONPATH=. " * getattr(sys.flags, "safe_path", False) + "python -m experiments.retrofit")

from configurator import quiet_start  # standard library only

if __name__ == "__main__":  # a Ctrl-C (SIGTERM, SIGHUP) while torch imports: one line, not its traceback
    quiet_start()

import numpy as np
import torch

from checkpoint import (atomic_write, check_study_run, data_counts, data_name, drop_partial, eval_batches, hold_lock,
                        load_checkpoint, log_lines, log_text, new_dirs, open_data, partial_prefix, partial_report,
                        present, read_log, read_table, redraw_missing, repo_path, reports_free, save_figure,
                        scored_tokens, study_assets, together, token_count, tokens, train_first, writable_dir)
from configurator import Parser, cli, run_child
from convert import convert_state_dict
from model import GPT, GPTConfig

SEEDS = [1337, 1338, 1339]
ITERS = 600
UPTRAIN = (60, 150)  # 10% and 25% of ITERS
UPTRAIN_LR = dict(learning_rate=6e-4, min_lr=6e-5, warmup_iters=10)  # about the source's lr 3/4 into its schedule
# name: (destination config, convert_method). qkv_mqa pools heads and qkv continued converts nothing (identity):
# their method is never used.
CONVERSIONS = {
    "qk_v k": ("config/cpu_lm_qk_v.py", "k"),
    "qk_v mean": ("config/cpu_lm_qk_v.py", "mean"),
    "qk_v lstsq": ("config/cpu_lm_qk_v.py", "lstsq"),
    "qk_v split": ("config/cpu_lm_qk_v.py", "split"),
    "qkv_mqa mean-pool": ("config/cpu_lm_qkv_mqa.py", "lstsq"),
    "qk_v_mqa lstsq": ("config/cpu_lm_qk_v_mqa.py", "lstsq"),
    "qkv continued": ("config/cpu_lm.py", "lstsq"),  # the control: the source itself, uptrained the same way
}
# the runs of a seed after its source: the whole Q-K=V comparison (conversions, control, scratch) before MQA
ORDER = ["qk_v k", "qk_v mean", "qk_v lstsq", "qk_v split", "qkv continued", "qk_v scratch", "qkv_mqa mean-pool",
         "qk_v_mqa lstsq"]
DATA_DIR, BLOCK_SIZE = "data/cpu_lm_bytes", 256  # config/cpu_lm.py's, which every run's config executes
FULL = dict(root="out-retrofit", assets="assets/retrofit", seeds=SEEDS, scale=1, eval_tokens=106496)
QUICK = dict(root="out-retrofit-quick", assets="out-retrofit-quick/retrofit", seeds=SEEDS[:1], scale=10,
             eval_tokens=16384)


def plan(s):
    """[(name, seed, out_dir, [train.py arguments], max_iters)] of every run: the sources of all seeds first (a run
    cut short still reports every seed right after conversion, see convert_sources), then seed by seed the runs
    in ORDER. The evaluation interval puts a validation at every read point (train.py also
    evaluates at 0 and at max_iters)."""
    iters, up = ITERS // s["scale"], [n // s["scale"] for n in UPTRAIN]
    source = lambda seed: f"{s['root']}/qkv_s{seed}"
    runs = [("qkv", seed, source(seed), [repo_path("config/cpu_lm.py"), f"--eval_interval={iters}",
                                         f"--warmup_iters={50 // s['scale']}"], iters) for seed in s["seeds"]]
    lr = [f"--{k}={v}" for k, v in UPTRAIN_LR.items()]
    for seed in s["seeds"]:
        for name in ORDER:
            if name == "qk_v scratch":
                runs.append((name, seed, f"{s['root']}/qk_v_scratch_s{seed}",
                             [repo_path("config/cpu_lm_qk_v.py"), f"--eval_interval={iters + up[0]}",
                              f"--warmup_iters={50 // s['scale']}"], iters + up[-1]))
                continue
            cfg, method = CONVERSIONS[name]
            runs.append((name, seed, f"{s['root']}/{name.replace(' ', '_')}_s{seed}",
                         [repo_path(cfg), f"--init_from={source(seed)}", f"--convert_method={method}",
                          f"--eval_interval={up[0]}", *lr], up[-1]))
    common = [f"--eval_tokens={s['eval_tokens']}"]
    return [(n, seed, out, [*args, *common, f"--max_iters={end}", f"--seed={seed}", f"--out_dir={out}"], end)
            for n, seed, out, args, end in runs]


def checkpoint(out_dir):
    """The run's checkpoint, or None before its first save."""
    path = os.path.join(out_dir, "ckpt.pt")
    # lexists: a link whose target is gone is named by load_checkpoint, not taken for a run not begun
    return load_checkpoint(path, ("model", "model_args", "config", "iter_num", "meta")) if os.path.lexists(path) \
        else None


def times(s):
    """[{"run", "s"}] of root/times.jsonl, one line per finished training run (an empty list before the first)."""
    path = os.path.join(s["root"], "times.jsonl")
    if not present(path):
        return []
    if os.path.isdir(path):  # an IsADirectoryError traceback in every report
        raise SystemExit(f"{path} is a folder, where this study keeps the time of each training run; move it out of "
                         f"the way and run again.")
    # with or without a byte order mark (a Windows editor's): its first line, a run's time, was "not JSON: delete it"
    lines = log_lines(log_text(path), numbered=True)  # a BOM, UTF-16, or pretty-printed by jq: as read_log reads
    entries = []
    for n, line in lines:
        try:
            e = json.loads(line)
        except ValueError:
            raise SystemExit(f"{path} has a line that is not JSON (cut by a kill while an older version appended to "
                             f"it); delete that line and run again.") from None
        # JSON, but no time of a run (edited, or another program's): the report's sum was a KeyError traceback
        if not (isinstance(e, dict) and isinstance(e.get("run"), str) and type(e.get("s")) in (int, float)
                and math.isfinite(e["s"])):
            raise SystemExit(f"{path}, line {n}, is no time of a training run (edited, or another program's); "
                             f"delete that line and run again.")
        entries.append(e)
    return entries


def train_minutes(s):
    """Minutes of training of the plan's runs, each run's last time: a run deleted and trained again was counted
    twice, and a line of a run in no folder of the plan as well."""
    outs = {out for _, _, out, _, _ in plan(s)}
    return sum({e["run"]: e["s"] for e in times(s) if e["run"] in outs}.values()) / 60


def add_time(s, run, seconds):
    # appended by rewriting the whole (short) file atomically: a kill leaves the old lines or the new ones, never a
    # torn last line that every later report would trip on
    entries = times(s) + [{"run": run, "s": seconds}]
    atomic_write(os.path.join(s["root"], "times.jsonl"), "".join(json.dumps(e) + "\n" for e in entries))


def train_all(s, command):
    """Each unfinished run through train.py (a killed one continues from its checkpoint); the stdout of the runs
    goes to their log.jsonl, the time of each to root/times.jsonl."""
    times(s)  # that file checked now, not after the first run has trained
    # one thread, as the report says and scaling does: torch's default took every core, another count per machine
    env = dict(os.environ, OMP_NUM_THREADS="1")
    todo = []
    # every folder first: a run of other settings there (by hand, another study) would be resumed as this one, and
    # one in a later folder was refused only once the runs before it had trained
    for name, seed, out, args, end in plan(s):
        ckpt = checkpoint(out)
        if ckpt is not None:
            check_study_run(ckpt, out, args, command)
        if ckpt is None or ckpt["iter_num"] < end:
            todo.append((out, args, ckpt))
    for out, args, ckpt in todo:
        cmd = [sys.executable, repo_path("train.py"), *args] + (["--init_from=resume"] if ckpt is not None else [])
        print(shlex.join(cmd), flush=True)  # as pasted: a path with a space is one argument
        t0 = time.time()
        if run_child(cmd, stdout=subprocess.DEVNULL, env=env):  # train.py said why on stderr
            sys.exit(f"{out}: train.py stopped (its message is above); fix that and run this command again, the "
                     f"finished runs are kept.")
        add_time(s, out, time.time() - t0)
        print(f"{out}: {time.time() - t0:.0f} s (load {os.getloadavg()[0]:.1f})", flush=True)


def curve_and_conversion(out_dir):
    """({iter: val_loss}, the conversion entry or None) from the run's log.jsonl."""
    val, conv = {}, None
    for e in read_log(out_dir):
        if "val_loss" in e:
            val[e["iter"]] = e["val_loss"]
        conv = e.get("conversion", conv)
    return val, conv


def collect(s):
    """One record per finished run: name, seed, KV bytes, validation losses at the read points, conversion facts."""
    recs, missing = [], []
    for name, seed, out, _, end in plan(s):
        ckpt = checkpoint(out)
        if ckpt is None or ckpt["iter_num"] < end:
            missing.append(out)
            continue
        with torch.device("meta"):
            model = GPT(GPTConfig(**ckpt["model_args"]))
        val, conv = curve_and_conversion(out)
        recs.append({"name": name, "seed": seed, "kv_bytes": model.kv_bytes_per_token(torch.bfloat16),
                     "params": model.num_params(), "val": val, "conversion": conv,
                     "config": {**ckpt["config"], **data_counts(ckpt, out)}})  # the header names its val tokens
    return recs, missing


def mean_std(xs):
    if not xs:
        return "n/a"
    return f"{statistics.mean(xs):.4f} +/- {statistics.stdev(xs) if len(xs) > 1 else 0.0:.4f}"


def rows(recs, conv, s):
    """Table rows: (name, kv bytes, [mean +/- std at each column], seeds converted, seeds uptrained); columns: after
    conversion (every finished source, from conv), after each UPTRAIN count (finished runs); the source and the
    from-scratch runs fill the columns of their own step counts."""
    iters, up = ITERS // s["scale"], [n // s["scale"] for n in UPTRAIN]
    out = []
    for name in ["qkv", *ORDER]:
        rs = [r for r in recs if r["name"] == name]
        at0 = [c["loss"] for (n, _), c in conv.items() if n == name]
        if not rs and not at0:
            continue
        if name == "qkv":
            cells, n0 = [mean_std([r["val"][iters] for r in rs]), "", ""], len(rs)
        elif name == "qk_v scratch":
            cells, n0 = ["", mean_std([r["val"][iters + up[0]] for r in rs]), mean_std([r["val"][iters + up[1]]
                                                                                        for r in rs])], 0
        else:
            cells, n0 = [mean_std(at0)] + [mean_std([r["val"][i] for r in rs]) for i in up], len(at0)
        kv = rs[0]["kv_bytes"] if rs else next(c["kv_bytes"] for (n, _), c in conv.items() if n == name)
        out.append((name, kv, cells, n0, len(rs) if name != "qkv" else ""))
    return out


def layer_facts(conv):
    """Per conversion that fits: mean over seeds and heads of each layer's unexplained V variance, and split's r."""
    lines = []
    for name in CONVERSIONS:
        fits = [c["fits"] for (n, _), c in conv.items() if n == name]
        if not fits or not fits[0][0]["residual"]:
            continue
        res = [statistics.mean(x for f in fits for x in f[i]["residual"]) for i in range(len(fits[0]))]
        line = f"- {name}: unexplained share of V's variance per layer " + ", ".join(f"{x:.4f}" for x in res)
        if fits[0][0]["rank"]:
            ranks = [statistics.mean(x for f in fits for x in f[i]["rank"]) for i in range(len(fits[0]))]
            line += "; score directions kept per head (of 32, mean) " + ", ".join(f"{x:.1f}" for x in ranks)
        lines.append(line)
    return lines


def windows(cfg, split, starts):
    data = tokens(cfg["data_dir"], split)
    x = torch.from_numpy(np.stack([data[i:i + cfg["block_size"] + 1] for i in starts]).astype(np.int64))
    return x[:, :-1].contiguous(), x[:, 1:].contiguous()


@torch.no_grad()
def val_loss(model, cfg):
    """The validation loss train.py's evaluation reports: the same consecutive windows, the same batches."""
    T = cfg["block_size"]
    # train.py's own rule (one process): a copy of it here wrapped round val.bin after train.py stopped doing so
    B, n, _ = eval_batches(token_count(cfg["data_dir"], "val"), T, cfg["batch_size"], cfg["eval_tokens"])
    return sum(model(*windows(cfg, "val", (k * B + np.arange(B)) * T))[1].item() for k in range(n)) / n


def calibration(cfg, seed, max_iters):
    """The tokens train.py fits a conversion on: calib_batches training batches under the key (seed, max_iters, k)."""
    data_len = token_count(cfg["data_dir"], "train")
    return torch.cat([windows(cfg, "train", np.random.default_rng([seed, max_iters, k]).integers(
        0, data_len - cfg["block_size"], size=cfg["batch_size"]))[0] for k in range(cfg["calib_batches"])])


def partly_tied(src, tied, n, C):
    """qkv weights whose first n layers compute what the qk_v conversion `tied` computes there (V := K, c_proj
    folded), the other layers the source's: the loss the conversion of those layers alone costs."""
    state = dict(src)
    for i in range(n):
        p = f"transformer.h.{i}.attn."
        for name in ("weight", "bias"):
            qk = tied[p + "c_attn." + name]
            state[p + "c_attn." + name] = torch.cat([qk, qk[C:]])
            state[p + "c_proj." + name] = tied[p + "c_proj." + name]
    return state


def destination(config_file):
    """proj and n_kv_head that a config file sets (it runs config/cpu_lm.py first, as under train.py)."""
    g = {"__file__": config_file}
    exec(open(config_file).read(), g)
    return {"proj": g["proj"], "n_kv_head": g["n_kv_head"]}


def cached_conversions(got):
    """Whether got is what convert_sources writes to conversions.json: every conversion with its facts."""
    def numbers(xs):
        return isinstance(xs, list) and all(type(x) in (int, float) and math.isfinite(x) for x in xs)
    return isinstance(got, dict) and set(got) == set(CONVERSIONS) and all(
        isinstance(c, dict) and numbers([c.get("loss")]) and type(c.get("kv_bytes")) is int
        and isinstance(c.get("fits"), list) and len(c["fits"]) > 0
        and all(isinstance(f, dict) and numbers(f.get("residual")) and numbers(f.get("rank")) for f in c["fits"])
        and (name != "qk_v lstsq" or numbers(c.get("attribution"))) for name, c in got.items())


def convert_sources(s):
    """{(name, seed): {"loss", "fits", "kv_bytes", "attribution"}} for every conversion of every finished source,
    done here exactly as train.py does it for the uptraining run (same calibration tokens), so "loss" is that run's
    first evaluation, whether the run exists yet or not. For lstsq to qk_v also the attribution: [validation loss
    with the first n layers tied, n = 0 .. n_layer] (partly_tied)."""
    out = {}
    for seed in s["seeds"]:
        cached = f"{s['root']}/qkv_s{seed}/conversions.json"  # a finished source never changes: computed once
        if os.path.isdir(cached):  # an IsADirectoryError traceback; computed again, it could not be written there
            sys.exit(f"{cached} is a folder, where this study keeps the conversions of its source; move it out of "
                     f"the way and run again.")
        try:
            present(cached)  # a link whose target is gone, computed again, was replaced by a file
            with open(cached) as f:
                got = json.load(f)
            if not cached_conversions(got):  # JSON, but not what this function writes: a KeyError or worse later
                raise ValueError
            out.update({(name, seed): c for name, c in got.items()})
            continue
        except (FileNotFoundError, NotADirectoryError):  # not there yet (its run folder a file: no run there either)
            pass
        except ValueError:  # torn by a kill while an older version wrote it in place: a cache, so computed again
            print(f"{cached} is not readable JSON of every conversion; computing it again", file=sys.stderr)
        src = checkpoint(f"{s['root']}/qkv_s{seed}")
        if src is None or src["iter_num"] < ITERS // s["scale"]:
            continue
        cfg = {**src["config"], "eval_tokens": s["eval_tokens"]}
        src_cfg = GPTConfig(**{**src["model_args"], "dropout": 0.0})
        calib = calibration(cfg, seed, UPTRAIN[-1] // s["scale"])
        for name, (config_file, method) in CONVERSIONS.items():
            dst_cfg = GPTConfig(**{**asdict(src_cfg), **destination(repo_path(config_file))})
            state, fits = convert_state_dict(src["model"], src_cfg, dst_cfg, method, calib)
            model = GPT(dst_cfg).eval()
            model.load_state_dict(state)
            out[(name, seed)] = {"loss": val_loss(model, cfg), "fits": fits,
                                 "kv_bytes": model.kv_bytes_per_token(torch.bfloat16)}
            if name == "qk_v lstsq":
                stand_in = GPT(src_cfg).eval()
                out[(name, seed)]["attribution"] = []
                for n in range(src_cfg.n_layer + 1):
                    stand_in.load_state_dict(partly_tied(src["model"], state, n, src_cfg.n_embd))
                    out[(name, seed)]["attribution"].append(val_loss(stand_in, cfg))
        atomic_write(cached, json.dumps({name: out[(name, seed)] for name in CONVERSIONS}))
    return out


def write_md(recs, conv, missing, s, command, prefix):
    iters, up = ITERS // s["scale"], [n // s["scale"] for n in UPTRAIN]
    cfg = next(r["config"] for r in recs if r["name"] == "qkv")
    lr = ", ".join(f"{k} {v}" for k, v in UPTRAIN_LR.items())
    # what train.py scored: s["eval_tokens"] on a smaller val.bin was its whole batches, not the count asked
    scored = scored_tokens(cfg["val_tokens"], cfg["block_size"], cfg["batch_size"], s["eval_tokens"])
    lines = []
    if missing:
        lines += [f"PARTIAL: {len(missing)} of {len(plan(s))} runs not finished, left out: {', '.join(missing)}.", ""]
    data = data_name(cfg, cfg.get("data_dir"))  # what the source runs' checkpoints record
    lines += [f"Retrofit on {data[0].lower()}{data[1:]}: qkv trained for {iters} iterations ({cfg['n_layer']} layers, "
              f"{cfg['n_head']} heads, n_embd {cfg['n_embd']}, block {cfg['block_size']}, batch {cfg['batch_size']}, "
              f"dropout {cfg['dropout']}), converted, then uptrained for {up[-1]} iterations ({lr}, cosine over "
              f"{up[-1]}; the {up[0]}-iteration column is read mid-schedule). qk_v scratch: trained from scratch with "
              f"the source's schedule for {iters + up[-1]} iterations (its {iters + up[0]} column is read "
              f"mid-schedule). Validation loss (nats/byte) over {scored:,} tokens, mean +/- sample std "
              f"over the seeds counted (of {', '.join(map(str, s['seeds']))}). The column after conversion is "
              f"computed by the report for every finished source (the runs' own first evaluations, where they "
              f"exist, agree to {agreement(recs, conv):.1e}).", "",
              f"Command: `{command}`; wall time of the training runs {train_minutes(s):.1f} min (one thread, "
              f"shared machine).", "",
              f"| model | KV cache bytes/token (bf16) | after conversion ({iters} steps) | +{up[0]} steps "
              f"({iters + up[0]}) | +{up[1]} steps ({iters + up[1]}) | seeds converted | seeds uptrained |",
              "|---|---|---|---|---|---|---|"]
    for name, kv, cells, n0, n1 in rows(recs, conv, s):
        lines.append(f"| {name} | {kv:,} | " + " | ".join(cells) + f" | {n0 or ''} | {n1} |")
    lines += ["", "Fit of the conversions (lstsq and split: per key head, share of V's variance around its mean that "
              "the tied projection cannot reproduce on the calibration tokens; mean over heads and seeds):", "",
              *layer_facts(conv)]
    attr = [c["attribution"] for c in conv.values() if "attribution" in c]
    if attr:
        lines += ["", "Where lstsq loses, before any uptraining: the source with its first n layers replaced by their "
                  "lstsq conversion (the weights the qk_v lstsq run starts from, written in qkv shape), validation "
                  f"loss and its increase over the source, mean +/- std over {len(attr)} seeds:", "",
                  "| layers tied | val loss | increase | increase from this layer |", "|---|---|---|---|"]
        for n in range(1, len(attr[0])):
            lines.append(f"| 0..{n - 1} | {mean_std([a[n] for a in attr])} | {mean_std([a[n] - a[0] for a in attr])} "
                         f"| {mean_std([a[n] - a[n - 1] for a in attr])} |")
    atomic_write(prefix + ".md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def agreement(recs, conv):
    """Largest difference between a run's first evaluation and the report's own conversion (0 when none overlap)."""
    return max([abs(r["val"][0] - conv[(r["name"], r["seed"])]["loss"]) for r in recs
                if (r["name"], r["seed"]) in conv] or [0.0])


def write_csv(recs, prefix):
    f = io.StringIO()
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["model", "seed", "kv_bytes_per_token_bf16", "params", "iter", "val_loss"])
    for r in recs:
        w.writerows([r["name"], r["seed"], r["kv_bytes"], r["params"], i, v] for i, v in sorted(r["val"].items()))
    atomic_write(prefix + ".csv", f.getvalue())


def read_csv(path, s):
    """The records plot() draws, from a written retrofit.csv: [{name, seed, val: {iter: loss}}]; a table missing
    a read plot() needs (a row deleted, the other mode's table) is one sentence, not a KeyError."""
    recs = {}
    for r in read_table(path, ["model", "seed", "iter", "val_loss"], text=["model"], ints=["seed", "iter"]):
        rec = recs.setdefault((r["model"], int(r["seed"])), {"name": r["model"], "seed": int(r["seed"]), "val": {}})
        rec["val"][int(r["iter"])] = float(r["val_loss"])
    steps = {}  # each model's reads, the same steps in every seed
    for rec in recs.values():
        # qkv's read at its last step is where the others start (the left panel); the others' at step 0
        first = {"qkv": ITERS // s["scale"], "qk_v scratch": max(rec["val"])}.get(rec["name"], 0)
        if (rec["name"] not in ["qkv", *ORDER] or first not in rec["val"]
                or steps.setdefault(rec["name"], set(rec["val"])) != set(rec["val"])):
            sys.exit(f"{path} is not this mode's whole table (its {rec['name']!r} seed {rec['seed']} reads steps "
                     f"{sorted(rec['val'])}); restore it (`git checkout -- {path}` where it is tracked) and run again.")
    return list(recs.values())


def plot(recs, s, prefix):
    """Left: the loss right after conversion, per model (seed mean, whiskers +/- sample std, value written beside
    it: a conversion can lose nats). Right: the uptraining on a scale around the source, where the differences are
    hundredths of a nat: every run's reads, the source as a star on top of its continuation."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    iters = ITERS // s["scale"]
    names = [n for n in ["qkv", *ORDER] if any(r["name"] == n for r in recs)]
    color = {n: f"C{i}" for i, n in enumerate(names)}
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(14, 6), gridspec_kw={"width_ratios": [1, 1.5]})
    at0 = [(n, [r["val"][0 if n != "qkv" else iters] for r in recs if r["name"] == n]) for n in names
           if n != "qk_v scratch"]
    for y, (n, xs) in enumerate(at0):
        mean, sd = statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0
        ax0.errorbar(mean, y, xerr=sd, fmt="o", color=color[n], capsize=3)
        ax0.annotate(f"{mean:.3f} +/- {sd:.3f}", (mean + sd, y), xytext=(6, 4), textcoords="offset points",
                     fontsize=8)
    ax0.set(yticks=range(len(at0)), yticklabels=[n for n, _ in at0], xlabel="validation loss (nats/byte)",
            title=f"right after conversion (the source: its step {iters})")
    ax0.set_xlim(right=ax0.get_xlim()[1] + 0.25 * (ax0.get_xlim()[1] - ax0.get_xlim()[0]))  # room for the labels
    ax0.invert_yaxis()
    ax0.grid(axis="x", lw=0.3)
    ends, reads = [], set()
    for n in names:
        rs = [r for r in recs if r["name"] == n]
        offset = 0 if n in ("qkv", "qk_v scratch") else iters  # uptraining starts where the source ended
        steps = sorted(t for t in set.intersection(*(set(r["val"]) for r in rs)) if t + offset >= iters)
        mean = [statistics.mean(r["val"][t] for r in rs) for t in steps]
        sd = [statistics.stdev([r["val"][t] for r in rs]) if len(rs) > 1 else 0 for t in steps]
        ends.append(mean[-1])
        reads |= {t + offset for t in steps}
        if n == "qkv":  # drawn last, above qkv continued, which starts from the same point
            ax1.errorbar([t + offset for t in steps], mean, yerr=sd, fmt="*", ms=14, color=color[n], capsize=3,
                         zorder=5, label=f"qkv source ({iters} steps)")
            continue
        ax1.errorbar([t + offset for t in steps], mean, yerr=sd, marker="o", ls="--" if "mqa" in n else "-",
                     color=color[n], capsize=3, label=n)
    ax1.set(xlabel="total training steps", ylabel="validation loss (nats/byte)",
            ylim=(min(ends) - 0.02, max(ends) + 0.06), xticks=sorted(reads),
            title="uptraining (lines from above the frame start off its scale: see left)")
    ax1.grid(axis="y", lw=0.3)
    ax1.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    n_seeds = len({r["seed"] for r in recs})
    fig.suptitle(f"retrofit: mean over {n_seeds} seeds, whiskers +/- sample std over seeds (as in the table)")
    fig.tight_layout()
    save_figure(fig, prefix + ".png", dpi=120)
    plt.close(fig)


def report(s, command):
    recs, missing = collect(s)
    if not any(r["name"] == "qkv" for r in recs):
        sys.exit(f"no finished qkv run under {s['root']}/; {train_first(s['root'], command)}.")
    # a partial report never replaces the complete one (nor a quick one its complete quick one)
    prefix = partial_prefix(f"{s['root']}/retrofit", s["assets"]) if missing else s["assets"]
    reports_free(prefix)  # not after its .md and .csv were written
    for _, _, out, args, _ in plan(s):  # nor is a run trained there with other settings (by hand, or another study)
        if out not in missing:          # in any report, a partial one included
            check_study_run(checkpoint(out), out, args, command)
    writable_dir(os.path.dirname(prefix), "make it writable")
    if missing:
        partial_report(missing, len(plan(s)), prefix, s["assets"])
    with together():  # the three, or none: a stop while the figure drew left a new table beside an old figure
        write_md(recs, convert_sources(s), missing, s, command, prefix)
        write_csv(recs, prefix)
        plot(recs, s, prefix)
    print(f"wrote {prefix}.md, .csv, .png")
    if not missing:
        drop_partial(s["assets"], f"{s['root']}/retrofit")


def get_parser():
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1/10 of the steps, 1 seed, into out-retrofit-quick/")
    only = p.add_mutually_exclusive_group()  # --report --redraw drew the figure and printed no report, exit 0
    only.add_argument("--report", action="store_true", help="only the report, from the finished runs")
    only.add_argument("--redraw", action="store_true", help="only the figure, from the written retrofit.csv")
    return p


def main(argv=None):
    args = get_parser().parse_args(argv)
    setting = QUICK if args.quick else dict(FULL, assets=study_assets(FULL["assets"], f"{FULL['root']}/retrofit"))
    if args.redraw:  # the figure from the written table alone, no runs needed
        if not present(setting["assets"] + ".csv") or not os.path.isfile(setting["assets"] + ".csv"):  # see rope's
            sys.exit(redraw_missing(f"{setting['assets']}.csv", "the study"))
        plot(read_csv(setting["assets"] + ".csv", setting), setting, setting["assets"])
        print(f"wrote {setting['assets']}.png")  # it said nothing, exit 0
        return
    command = "python -m experiments.retrofit" + (" --quick" if args.quick else "")
    if not args.report:  # the data first: train.py's own fix for it would be a setting this study does not have
        open_data(DATA_DIR, BLOCK_SIZE, 256, study="experiments.retrofit")
        root = setting["root"]
        with new_dirs(root, os.path.dirname(setting["assets"])):  # stopped before a run saved: no empty folder left
            for folder in (root, os.path.dirname(setting["assets"])):  # the runs and the report, before hours
                writable_dir(folder, "make it writable, or run from a copy of the repository that is")
            reports_free(f"{root}/retrofit", setting["assets"])
            with hold_lock(root, f"{root} is being trained into by another `{command}`; wait for it to end, then "
                                 f"run this again."):  # one study per folder: two would train the same runs
                train_all(setting, command)
    report(setting, command)


if __name__ == "__main__":
    cli(main, "every finished run is kept: run the same command to go on.")
