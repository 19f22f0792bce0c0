r"""
The CPU language-model experiment: is tying K and V cheap, and Q=K=V expensive, on real text? Trains every
config/cpu_lm*.py variant for 3 seeds on byte-level Shakespeare, one run at a time, then writes the results.

    python prepare_slimpajama.py --input=input.txt --tokenizer=bytes --val_fraction=0.1 \
        --out_dir=data/cpu_lm_bytes
    python -m experiments.cpu_lm             # trains the runs not finished yet (resumes a killed one), then reports
    python -m experiments.cpu_lm --report    # only the report: assets/cpu_lm.md, .csv, .png from the finished runs

Run {variant} with seed s trains into out-cpu_lm/{variant}_s{s}. A seed sets both the initial weights and the
batches, so for one seed every variant sees exactly the same training tokens; all score the same validation tokens.
The report goes to assets/ once all 21 runs have finished; before that it goes to out-cpu_lm/cpu_lm.* (a partial
report never replaces the complete one).
"""

import argparse
import csv
import io
import math
import os
import shlex
import statistics
import sys
import time

# run as a file (`python experiments/cpu_lm.py`) the project's modules are not on the path: say the way that works
if not __package__:  # and under PYTHONSAFEPATH=1 (or -P), -m finds experiments/ only on PYTHONPATH
    raise SystemExit("run the studies from the repository root as modules: "
                     + "PYTHONPATH=. " * getattr(sys.flags, "safe_path", False) + "python -m experiments.cpu_lm")

from configurator import quiet_start  # standard library only

if __name__ == "__main__":  # a Ctrl-C (SIGTERM, SIGHUP) while torch imports: one line, not its traceback
    quiet_start()

import torch

from checkpoint import (atomic_write, check_study_run, data_counts, data_name, drop_partial, hold_lock, load_checkpoint,
                        new_dirs, open_data, partial_prefix, partial_report, read_log, repo_path, reports_free,
                        save_figure, scored_tokens, study_assets, together, train_first, writable_dir)
from configurator import Parser, cli, run_child
from model import GPT, GPTConfig

VARIANTS = ["qkv", "qk_v", "q_kv", "q_k_v", "qkv_mqa", "qk_v_mqa", "qk_v_linear"]
SEEDS = [1337, 1338, 1339]
PAPER_PPL = {"qkv": 5.11, "qk_v": 5.27, "q_kv": 5.36, "q_k_v": 6.41}  # 300M, SlimPajama, the paper's table
ROOT = "out-cpu_lm"
ASSETS = "assets/cpu_lm"  # the complete report; a partial one goes to ROOT/cpu_lm
DATA_DIR, BLOCK_SIZE = "data/cpu_lm_bytes", 256  # config/cpu_lm.py's, which every variant executes


def config_file(variant):
    return repo_path("config/cpu_lm.py" if variant == "qkv" else f"config/cpu_lm_{variant}.py")


def run_dir(variant, seed):
    return f"{ROOT}/{variant}_s{seed}"


def train_args(variant, seed):
    return [config_file(variant), f"--seed={seed}"]


def checkpoint(variant, seed):
    """The run's checkpoint, or None before its first save. A run of other settings there (trained by hand, or by
    another study) is refused before anything reads it: neither resumed nor reported as this one, and its config
    not read unchecked (a max_iters missing or of another type was a traceback)."""
    out_dir = run_dir(variant, seed)
    path = os.path.join(out_dir, "ckpt.pt")
    if not os.path.lexists(path):  # a link whose target is gone is named by load_checkpoint, not a run not begun
        return None
    ckpt = load_checkpoint(path, ("model", "model_args", "config", "iter_num", "meta"))
    check_study_run(ckpt, out_dir, train_args(variant, seed), "python -m experiments.cpu_lm")
    return ckpt


def finished(ckpt):
    return ckpt is not None and ckpt["iter_num"] >= ckpt["config"]["max_iters"]


def runs():
    """(variant, seed, out_dir, its checkpoint or None) for every run of the experiment, in order."""
    for variant in VARIANTS:
        for seed in SEEDS:
            yield variant, seed, run_dir(variant, seed), checkpoint(variant, seed)


def train_all():
    start = time.time()
    # every folder checked first (runs() checks each): a run of other settings in a later one was refused only once
    # the runs before it had trained, hours for the whole study
    for variant, seed, out_dir, ckpt in list(runs()):
        if finished(ckpt):
            continue
        cmd = [sys.executable, repo_path("train.py"), *train_args(variant, seed), f"--out_dir={out_dir}"]
        if ckpt is not None:  # killed midway: continue from its last checkpoint
            cmd.append("--init_from=resume")
        print(shlex.join(cmd), flush=True)  # as pasted: a path with a space is one argument
        t0 = time.time()
        if run_child(cmd):  # train.py said why on stderr: no traceback of ours on top of it
            sys.exit(f"{out_dir}: train.py stopped (its message is above); fix that and run this command again, "
                     f"the finished runs are kept.")
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"{out_dir}: {time.time() - t0:.0f} s (load average {load})", flush=True)
    print(f"all runs: {(time.time() - start) / 60:.1f} min", flush=True)


def val_curve(out_dir, iter_num):
    """[(iter, val_loss)] from the run's log.jsonl, which ends at the checkpoint's iteration."""
    return [(e["iter"], e["val_loss"]) for e in read_log(out_dir, last=iter_num) if "val_loss" in e]


def collect():
    """{variant: [run]} for the finished runs (a run: its facts and validation curve), and one run's settings."""
    results, cfg, missing = {}, None, []
    for variant, seed, out_dir, ckpt in runs():
        if not finished(ckpt):
            missing.append(out_dir)
            continue
        with torch.device("meta"):  # shapes only: parameter count and cache bytes need no weights
            model = GPT(GPTConfig(**ckpt["model_args"]))
        curve = val_curve(out_dir, ckpt["iter_num"])
        a = model.config  # its defaults for a field the checkpoint's model_args lack (an older version's)
        cfg = {**ckpt["config"], **data_counts(ckpt, out_dir)}  # the table's header names them
        results.setdefault(variant, []).append({
            "variant": variant, "proj": a.proj, "n_kv_head": a.n_kv_head or a.n_head, "attn": a.attn,
            "seed": seed, "iters": ckpt["iter_num"], "params": model.num_params(),
            "kv_bytes_per_token_bf16": model.kv_bytes_per_token(torch.bfloat16),
            "val_loss": curve[-1][1], "val_ppl": math.exp(curve[-1][1]), "curve": curve})
    return results, cfg, missing


def mean_std(xs):
    return statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0


def write_table(results, cfg, missing, prefix):
    base = statistics.mean(r["val_ppl"] for r in results["qkv"]) if "qkv" in results else None
    lines = [f"PARTIAL: {len(missing)} of {len(VARIANTS) * len(SEEDS)} runs not finished, left out: "
             f"{', '.join(missing)}.", ""] if missing else []
    scored = scored_tokens(cfg["val_tokens"], cfg["block_size"], cfg["batch_size"], cfg["eval_tokens"])
    # what the runs' checkpoints record: data/cpu_lm_bytes prepared from another text was "Byte-level Shakespeare"
    lines += [f"{data_name(cfg, cfg.get('data_dir'))} (train {cfg['train_tokens']:,} bytes, validation "
              f"{cfg['val_tokens']:,}), "
             f"{cfg['n_layer']} layers, {cfg['n_head']} heads, n_embd {cfg['n_embd']}, block {cfg['block_size']}, "
             f"dropout {cfg['dropout']}, {cfg['max_iters']} iterations of {cfg['batch_size']} x {cfg['block_size']} "
             f"tokens. Final validation loss over {scored:,} tokens, mean +/- sample std over the finished "
             f"seeds (of {', '.join(map(str, SEEDS))}). Linear attention caches nothing per token: its state is "
             f"fixed. Generated by `python -m experiments.cpu_lm --report`.", "",
             "| variant | proj | n_kv_head | attn | params | KV cache bytes/token (bf16) | seeds | val loss | "
             "val perplexity | perplexity vs qkv | paper, 300M (vs QKV) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for variant, runs in results.items():
        r = runs[0]
        loss, ppl = mean_std([x["val_loss"] for x in runs]), mean_std([x["val_ppl"] for x in runs])
        rel = f"{(ppl[0] / base - 1) * 100:+.1f}%" if base else "n/a"
        p = PAPER_PPL.get(variant)
        paper = f"{p:.2f} ({(p / PAPER_PPL['qkv'] - 1) * 100:+.1f}%)" if p else ""
        lines.append(f"| {variant} | {r['proj']} | {r['n_kv_head']} | {r['attn']} | {r['params']:,} | "
                     f"{r['kv_bytes_per_token_bf16']:,} | {len(runs)} | {loss[0]:.4f} +/- {loss[1]:.4f} | "
                     f"{ppl[0]:.3f} +/- {ppl[1]:.3f} | {rel} | {paper} |")
    atomic_write(prefix + ".md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def write_csv(results, prefix):
    keys = ["variant", "proj", "n_kv_head", "attn", "seed", "iters", "params", "kv_bytes_per_token_bf16",
            "val_loss", "val_ppl"]
    f = io.StringIO()
    w = csv.writer(f, lineterminator="\n")
    w.writerow(keys)
    for runs in results.values():
        w.writerows([r[k] for k in keys] for r in runs)
    atomic_write(prefix + ".csv", f.getvalue())


def plot(results, prefix):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, (variant, runs) in enumerate(results.items()):
        style = dict(color=f"C{i}", ls=":" if "linear" in variant else "--" if "mqa" in variant else "-")
        # by iteration, where every seed has one (a curve of another length was an IndexError, or averaged
        # the losses of other iterations)
        iters = sorted(set.intersection(*({it for it, _ in r["curve"]} for r in runs)))
        mean = [statistics.mean(dict(r["curve"])[it] for r in runs) for it in iters]
        for ax in axes:
            ax.plot(iters, mean, label=variant, **style)
            for r in runs:
                ax.plot(*zip(*r["curve"]), lw=0.5, alpha=0.4, **style)
    last = max(it for runs in results.values() for it, _ in runs[0]["curve"])
    finals = [r["val_loss"] for runs in results.values() for r in runs]
    axes[0].set(xlabel="iteration", ylabel="validation loss (nats/byte)", title="validation loss (mean over seeds)")
    axes[1].set(xlabel="iteration", title="the second half, zoomed", xlim=(last / 2, last * 1.02),
                ylim=(min(finals) - 0.02, max(finals) + 0.15))
    axes[0].legend()
    fig.tight_layout()
    save_figure(fig, prefix + ".png", dpi=120)
    plt.close(fig)


def report(assets=ASSETS):
    results, cfg, missing = collect()
    if not results:
        sys.exit(f"no finished run under {ROOT}/; {train_first(ROOT, 'python -m experiments.cpu_lm')}.")
    # a partial report never replaces the complete one (nor a quick one its complete quick one)
    prefix = partial_prefix(f"{ROOT}/cpu_lm", assets) if missing else assets
    reports_free(prefix)  # not after its .md and .csv were written
    writable_dir(os.path.dirname(prefix), "make it writable")
    if missing:
        partial_report(missing, len(VARIANTS) * len(SEEDS), prefix, assets)
    with together():  # the three, or none: a stop while the figure drew left a new table beside an old figure
        write_table(results, cfg, missing, prefix)
        write_csv(results, prefix)
        plot(results, prefix)
    print(f"wrote {prefix}.md, {prefix}.csv, {prefix}.png")
    if not missing:
        drop_partial(assets, f"{ROOT}/cpu_lm")


def get_parser():
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--report", action="store_true", help="only the report, from the finished runs")
    return p


def main(argv=None):
    args = get_parser().parse_args(argv)
    assets = study_assets(ASSETS, f"{ROOT}/cpu_lm")
    if not args.report:  # the data first: train.py's own fix for it would be a setting this study does not have
        open_data(DATA_DIR, BLOCK_SIZE, 256, study="experiments.cpu_lm")
        with new_dirs(ROOT, os.path.dirname(assets)):  # stopped before a run saved (Ctrl-C): no empty folder left
            for folder in (ROOT, os.path.dirname(assets)):  # the runs and the report: unwritable now, not after hours
                writable_dir(folder, "make it writable, or run from a copy of the repository that is")
            reports_free(f"{ROOT}/cpu_lm", assets)
            with hold_lock(ROOT, f"{ROOT} is being trained into by another `python -m experiments.cpu_lm`; wait for "
                                 f"it to end, then run this again."):  # one study per folder: two train the same runs
                train_all()
    report(assets)


if __name__ == "__main__":
    cli(main, "every finished run is kept: run the same command to go on.")
