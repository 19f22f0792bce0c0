"""
Projection analysis of a checkpoint: how alike are Wq, Wk and Wv, and how many directions does each one use?

Per layer: the cosine similarity between the flattened weight matrices (biases left out), for the whole matrix
and per head (averaged over heads), and the effective rank of each matrix: exp of the entropy of its normalised
singular values. Only the matrices a variant really has are listed: qk_v has Wq and Wk=Wv, q_kv has Wq=Wk and Wv,
q_k_v a single Wq=Wk=Wv (nothing to compare). A last row gives the same numbers for random Gaussian matrices of the
same shapes, the untrained reference.

The raw cosine changes under reparametrisations that leave the model's function unchanged (Wq, Wk -> A Wq, A^-T Wk
per head; Wv -> B Wv with c_proj's columns of the head times B^-1). Two measures that do not, per head and averaged:
- overlap: what two projections read from the residual stream, the mean cos^2 of the principal angles between the
  spans of their top-r right singular vectors (r = head_dim / 2 by default); random subspaces give about r / n_embd.
  Invariant to rotations (orthogonal A, B); to any invertible map at r = head_dim, where the span is the row space.
- CKA: linear CKA of their outputs (biases included) on validation tokens, each layer fed its real inputs; 1 when
  the outputs are equal up to a rotation and a scale. Random matrices applied to the same inputs are its reference.
- R2: the share of the second output's variance an affine map of the first explains on the same tokens, the fit
  convert_state_dict's lstsq makes (1 - its residual); invariant to any invertible per-head map. Its reference,
  random matrices on the same inputs, shows how much of it any projection of a low-rank residual stream explains.

    python -m experiments.analyze --out_dir=out-cpu_lm/qkv_s1337             # prints the tables, writes them to
                                                                             # out_dir/projections.{md,csv,png}
    python -m experiments.analyze --out_dir=out-retrofit/qkv_s1337 --out=assets  # the table and figure
                                                                                 # experiments/README.md shows
Only that command writes into assets/ (any other checkpoint or setting is refused there).
"""

import argparse
import csv
import io
import math
import os
import re
import sys

# run as a file (`python experiments/analyze.py`) the project's modules are not on the path: say the way that works
if not __package__:  # and under PYTHONSAFEPATH=1 (or -P), -m finds experiments/ only on PYTHONPATH
    raise SystemExit("run the studies from the repository root as modules: "
                     + "PYTHONPATH=. " * getattr(sys.flags, "safe_path", False) + "python -m experiments.analyze")

from configurator import quiet_start  # standard library only

if __name__ == "__main__":  # a Ctrl-C (SIGTERM, SIGHUP) while torch imports: one line, not its traceback
    quiet_start()

import torch

from checkpoint import (atomic_write, check_study_run, guard_assets, in_assets, load_checkpoint, new_dirs, not_its_data,
                        other_data, outputs_free, present, read_json, run_length, save_figure, saved_path, script,
                        shell_arg, study_assets, together, tokens, unwritable)
from configurator import Parser, as_text, as_typed, cli, number
from convert import affine_fit
from model import GPT, GPTConfig

ASSET_SOURCE = "out-retrofit/qkv_s1337"  # the checkpoint behind assets/projections.png (experiments/README.md)
ASSET_COMMAND = f"python -m experiments.analyze --out_dir={ASSET_SOURCE} --out=assets"
ASSET_ITERS = 600  # that checkpoint finished: experiments/retrofit.py's ITERS


def asset_train():
    """The command retrofit runs for ASSET_SOURCE (experiments/README.md), its train.py and config file named from
    here: from another folder `python train.py config/cpu_lm.py` is not there."""
    return (f"python {script('train.py')} {script('config/cpu_lm.py')} --seed=1337 --eval_interval=600 "
            f"--eval_tokens=106496 --out_dir={ASSET_SOURCE}")


PAIR_RULE = ("cosine of the flattened weights, whole matrix (mean over heads in brackets); with GQA/MQA each key "
             "or value head is repeated for the query heads that use it, as attention pairs them")


def cosine(a, b):
    a, b = a.flatten().double(), b.flatten().double()
    return (a @ b / (a.norm() * b.norm())).item()


def effective_rank(w):
    """exp(entropy of the singular values normalised to sum 1): n for an n x n identity, 1 for a rank-1 matrix."""
    s = torch.linalg.svdvals(w.double())
    p = s / s.sum()
    p = p[p > 0]  # 0 log 0 = 0
    return math.exp(-(p * p.log()).sum().item())


def projections(attn):
    """The matrices one attention layer holds, {name: [heads, head_dim, n_embd]}; a shared one is named 'Wk=Wv'."""
    chunks = attn.c_attn.weight.detach().split(attn.widths, dim=0)  # [heads * head_dim, n_embd] each
    out = {}
    for i, w in enumerate(chunks):
        name = "=".join(f"W{c}" for c, src in zip("qkv", attn.sources) if src == i)
        out[name] = w.view(-1, attn.head_dim, w.size(1))
    return out


def overlap(a, b, r):
    """Mean cos^2 of the principal angles between the spans of the top-r right singular vectors of a and b
    ([D, C] each): 1 when they read the same r directions of the residual stream, about r / C for random ones."""
    ua, ub = (torch.linalg.svd(w.double(), full_matrices=False)[2][:r] for w in (a, b))  # [r, C], orthonormal rows
    return (torch.linalg.matrix_norm(ua @ ub.T) ** 2 / r).item()


def cka(x, y):
    """Linear CKA of two outputs on the same N tokens, x [N, a], y [N, b]: invariant to rotations and scale."""
    x, y = (t.double() - t.double().mean(0) for t in (x, y))
    return ((x.T @ y).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm())).item()


def paired(a, b):
    """Two per-head tensors [Ha, ...], [Hb, ...] with the one with fewer heads (GQA/MQA keys and values) repeated
    for its query group, so that head h pairs with head h // G as attention pairs them."""
    H = max(a.size(0), b.size(0))
    return a.repeat_interleave(H // a.size(0), dim=0), b.repeat_interleave(H // b.size(0), dim=0)


def compare(a, b):
    """(whole, per-head mean) cosine of two projections [Ha, D, C] and [Hb, D, C], heads paired by paired()."""
    a, b = paired(a, b)
    return cosine(a, b), sum(cosine(x, y) for x, y in zip(a, b)) / a.size(0)


def per_head(f, a, b):
    a, b = paired(a, b)
    return sum(f(x, y) for x, y in zip(a, b)) / a.size(0)


def outputs(attn, x):
    """{name: [heads, N, D]}: each projection's output for inputs x [N, C], named as projections() names them."""
    chunks = attn.c_attn(x).split(attn.widths, dim=-1)
    return {n: c.view(len(x), -1, attn.head_dim).transpose(0, 1) for n, c in zip(projections(attn), chunks)}


def stats(mats, outs=None, r=None):
    """{'cos': {(name, name): (whole, per_head)}, 'erank': {name: value}, 'overlap': {pair: per-head mean},
    'cka', 'r2': {pair: per-head mean}} of one layer's projections; CKA and R2 only with outs (see outputs())."""
    names = list(mats)
    pairs = [(x, y) for i, x in enumerate(names) for y in names[i + 1:]]
    r = r or next(iter(mats.values())).size(1) // 2
    row = {"cos": {(x, y): compare(mats[x], mats[y]) for x, y in pairs},
           "erank": {n: effective_rank(w.flatten(0, 1)) for n, w in mats.items()},
           "overlap": {(x, y): per_head(lambda a, b: overlap(a, b, r), mats[x], mats[y]) for x, y in pairs}}
    if outs is not None:
        row["cka"] = {(x, y): per_head(cka, outs[x], outs[y]) for x, y in pairs}
        r2 = lambda a, b: 1 - affine_fit(a.double(), b.double(), True)[2]
        row["r2"] = {(x, y): per_head(r2, outs[x], outs[y]) for x, y in pairs}
    return row


def layer_inputs(model, idx):
    """[N, C] inputs of every layer's attention (after ln_1) for tokens idx [B, T]."""
    seen = []
    hooks = [b.ln_1.register_forward_hook(lambda m, i, out: seen.append(out.flatten(0, 1)))
             for b in model.transformer.h]
    with torch.no_grad():
        model(idx)
    for h in hooks:
        h.remove()
    return seen


def analyze(model, idx=None, r=None):
    """One row of stats per layer; CKA on the outputs for tokens idx [B, T] when given."""
    xs = layer_inputs(model, idx) if idx is not None else [None] * len(model.transformer.h)
    with torch.no_grad():
        return [stats(projections(b.attn), outputs(b.attn, x) if x is not None else None, r)
                for b, x in zip(model.transformer.h, xs)]


def random_row(model, idx=None, r=None):
    """The same stats for independent Gaussian matrices of the same shapes, as at initialisation: the reference
    a trained layer departs from (cosine near 0, effective rank below full because of the spread of singular values,
    overlap about r / n_embd). CKA and R2 of random matrices depend on the inputs: they are applied, without bias, to
    each layer's real inputs and averaged over layers, like the trained 'mean' row."""
    g = torch.Generator().manual_seed(0)
    mats = {n: torch.randn(w.shape, generator=g) for n, w in projections(model.transformer.h[0].attn).items()}
    if idx is None:
        return stats(mats, None, r)
    with torch.no_grad():
        return mean_row([stats(mats, {n: torch.einsum("nc,hdc->hnd", x, w) for n, w in mats.items()}, r)
                         for x in layer_inputs(model, idx)])


def mean_row(rows):
    mean = lambda xs: tuple(map(lambda *v: sum(v) / len(v), *xs)) if isinstance(xs[0], tuple) else sum(xs) / len(xs)
    return {key: {k: mean([r[key][k] for r in rows]) for k in rows[0][key]} for key in rows[0]}


def max_ranks(model):
    return {n: min(w.size(0) * w.size(1), w.size(2)) for n, w in projections(model.transformer.h[0].attn).items()}


def table(model, rows, random=None):
    """Markdown: one line per layer, the mean over layers, then random matrices of the same shapes. The raw cosine
    and effective rank, then the basis-independent overlap (and CKA where rows have it), all pairs in rows."""
    random = random or random_row(model)
    max_rank = max_ranks(model)
    head = (["layer"] + [f"cos {x}, {y}" for x, y in rows[0]["cos"]]
            + [f"erank {n} (of {max_rank[n]})" for n in rows[0]["erank"]]
            + [f"{m} {x}, {y}" for m in ("overlap", "cka", "r2") if m in rows[0] for x, y in rows[0][m]])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    labelled = [(str(i), r) for i, r in enumerate(rows)] + [("mean", mean_row(rows)), ("random", random)]
    for label, r in labelled:
        cells = ([f"{w:.3f} ({h:.3f})" for w, h in r["cos"].values()] + [f"{e:.1f}" for e in r["erank"].values()]
                 + [f"{v:.3f}" for m in ("overlap", "cka", "r2") if m in rows[0] for v in r[m].values()])
        lines.append("| " + " | ".join([label] + cells) + " |")
    return "\n".join(lines)


def records(rows, random, input_eranks=None):
    """Every number of the table as flat CSV records: layer (0.., 'mean', 'random'), measure, pair (or matrix),
    value. cos is the whole matrix, cos_head the mean over heads; input_erank is each layer's attention input."""
    out = []
    for label, r in [(str(i), r) for i, r in enumerate(rows)] + [("mean", mean_row(rows)), ("random", random)]:
        for pair, (whole, head) in r["cos"].items():
            out += [dict(layer=label, measure="cos", pair=" vs ".join(pair), value=whole),
                    dict(layer=label, measure="cos_head", pair=" vs ".join(pair), value=head)]
        out += [dict(layer=label, measure="erank", pair=n, value=v) for n, v in r["erank"].items()]
        out += [dict(layer=label, measure=m, pair=" vs ".join(pair), value=v)
                for m in ("overlap", "cka", "r2") if m in r for pair, v in r[m].items()]
    out += [dict(layer=str(i), measure="input_erank", pair="", value=e) for i, e in enumerate(input_eranks or [])]
    return out


def write(out, lines, recs, model, rows, random, title):
    """projections.md (what main printed: the settings, the rules and the table), .csv (recs) and .png, each
    written whole or not at all."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "projections")
    atomic_write(path + ".md", "\n\n".join(lines) + "\n")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["layer", "measure", "pair", "value"], lineterminator="\n")
    w.writeheader()
    w.writerows(recs)
    atomic_write(path + ".csv", buf.getvalue())
    plot(rows, random, max_ranks(model), title, path + ".png")
    return [path + ext for ext in (".md", ".csv", ".png")]


def plot(rows, random, max_rank, title, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    pairs = bool(rows[0]["cos"])  # q_k_v has none: its figure is the effective rank alone, not two empty panels
    fig, axes = plt.subplots(1, 3 if pairs else 1, figsize=(15, 4.4) if pairs else (6, 4.4), squeeze=False)
    ax1, ax2, ax3 = axes[0] if pairs else (None, axes[0][0], None)
    layers = range(len(rows))
    for pair in rows[0]["cos"]:
        line, = ax1.plot(layers, [r["cos"][pair][0] for r in rows], marker="o", label=f"{pair[0]} vs {pair[1]}")
        ax1.plot(layers, [r["cos"][pair][1] for r in rows], ls="--", color=line.get_color())
        ax1.axhline(random["cos"][pair][0], ls=":", color=line.get_color())
    if pairs:
        ax1.set(xlabel="layer", ylabel="cosine similarity", xticks=layers,
                title="raw cosine: whole matrix (solid), per-head mean (dashed),\nrandom matrices (dotted)")
        ax1.legend(fontsize=8)
    for name in rows[0]["erank"]:
        label = f"{name} (of {max_rank[name]})"
        line, = ax2.plot(layers, [r["erank"][name] for r in rows], marker="o", label=label)
        ax2.axhline(random["erank"][name], ls=":", color=line.get_color())
    ax2.set(xlabel="layer", ylabel="effective rank", title="effective rank (dotted: random matrices)", xticks=layers)
    ax2.legend(fontsize=8)
    # each measure has its own random reference: overlap's is about r / n_embd, CKA's is high (random projections
    # of the same low-rank inputs share its dominant directions), so both are drawn, in the pair's colour
    for pair in rows[0]["overlap"]:
        line, = ax3.plot(layers, [r["overlap"][pair] for r in rows], marker="o", label=f"{pair[0]} vs {pair[1]}")
        ax3.axhline(random["overlap"][pair], ls=":", color=line.get_color())
        if "cka" in rows[0]:
            ax3.plot(layers, [r["cka"][pair] for r in rows], marker="s", ls="--", color=line.get_color())
            ax3.axhline(random["cka"][pair], ls="-.", color=line.get_color(), lw=1)
    if pairs:
        ax3.set(xlabel="layer", ylabel="similarity", ylim=(0, 1), xticks=layers, title="basis-independent measures")
        styles = [("overlap", dict(marker="o")), ("random overlap", dict(ls=":"))]
        if "cka" in rows[0]:
            styles += [("CKA of the outputs", dict(marker="s", ls="--")), ("random CKA", dict(ls="-.", lw=1))]
        handles = ax3.get_legend_handles_labels()[0] + [Line2D([], [], color="gray", **kw) for _, kw in styles]
        ax3.legend(handles, [h.get_label() for h in ax3.get_legend_handles_labels()[0]] + [n for n, _ in styles],
                   fontsize=7, ncol=2, loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)


def load(out_dir):
    """-> (model, the checkpoint's data_dir or None, its iter_num, the tokenizer of its data or None, its data's
    meta, its max_iters or None)."""
    ckpt = load_checkpoint(out_dir, ("model", "model_args", "iter_num"))
    with torch.device("meta"):  # no random init: the weights come from the checkpoint
        model = GPT(GPTConfig(**ckpt["model_args"]))
    model.load_state_dict(ckpt["model"], assign=True)
    model.float()  # measured in float32: weights saved by hand in float16 or bfloat16 were einsum's dtype RuntimeError
    meta = ckpt.get("meta", {})
    config = ckpt.get("config", {})
    data_dir = saved_path(config.get("data_dir"))  # saved under another locale: the same folder in this one
    return model.eval(), data_dir, ckpt["iter_num"], meta.get("tokenizer"), meta, run_length(config)


def val_tokens(data_dir, n_tokens, block_size, tokenizer=None):
    """The first n_tokens of data_dir/val.bin as [n_tokens // block_size, block_size] token ids, or None if absent;
    refused when they are no uint16 tokens, or another tokenizer's (its meta.json says) than the model's."""
    # a link whose target is gone is named, not left out as "no val.bin" (present)
    if not data_dir or not present(os.path.join(data_dir, "val.bin")) or \
            not os.path.isfile(os.path.join(data_dir, "val.bin")):
        return None
    path, meta = os.path.join(data_dir, "val.bin"), os.path.join(data_dir, "meta.json")
    if os.path.getsize(path) % 2:  # cut inside a token: numpy's memmap refused it with a traceback
        raise SystemExit(f"{path} holds {os.path.getsize(path):,} bytes, an odd number, so it is no file of uint16 "
                         f"tokens; set --data_dir to a folder prepare_slimpajama.py wrote.")
    if tokenizer and not os.path.isfile(meta):  # a val.bin copied away from it: bytes measured as r50k ids, exit 0
        raise SystemExit(f"{data_dir} holds a val.bin and no meta.json naming its tokenizer, and the checkpoint's "
                         f"model reads {tokenizer!r}: CKA could be measured on the ids of another tokenizer; set "
                         f"--data_dir to a folder prepare_slimpajama.py wrote.")
    theirs = read_json(meta, "set --data_dir to a folder prepare_slimpajama.py wrote").get("tokenizer") \
        if tokenizer else tokenizer
    if theirs != tokenizer:  # ids below the vocabulary, so they ran, as other text than the model ever read
        raise SystemExit(f"{data_dir} holds tokens of {theirs!r} and the checkpoint's model reads {tokenizer!r}: CKA "
                         f"would be measured on the ids of another tokenizer; set --data_dir to data of {tokenizer!r}.")
    data = tokens(data_dir, "val")
    n = min(n_tokens, len(data)) // block_size
    if n == 0:
        raise SystemExit(f"{os.path.join(data_dir, 'val.bin')} holds {len(data)} tokens, fewer than one block "
                         f"(block_size {block_size}) to measure CKA on; set --data_dir to a larger validation set.")
    return torch.from_numpy(data[:n * block_size].astype("int64")).view(n, block_size)


def get_parser():
    parser = Parser(description="Similarity (raw cosine, subspace overlap, CKA) and effective rank "
                                "of Wq, Wk, Wv.",
                    formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out_dir", required=True, default=argparse.SUPPRESS, help="folder holding ckpt.pt")
    parser.add_argument("--out", default=None, help="folder for projections.png (None: --out_dir; '' for none; "
                        f"assets for the figure README shows, from `{ASSET_COMMAND}` only)")
    parser.add_argument("--data_dir", default=None, help="validation tokens for CKA (None: the checkpoint's)")
    parser.add_argument("--tokens", type=number(int, ">= 1"), default=16384,
                        help="validation tokens CKA is measured on, at least one block (block_size)")
    parser.add_argument("--rank", type=number(int, ">= 1"), default=None,
                        help="r of the subspace overlap, at most head_dim (None: head_dim / 2)")
    return parser


def main(argv=None):
    parser = get_parser()
    args = parser.parse_args(argv)
    # the tracked command's checkpoint is the retrofit study's source: "train one with train.py" named no config
    if os.path.realpath(args.out_dir) == os.path.realpath(ASSET_SOURCE) and \
            not os.path.lexists(os.path.join(ASSET_SOURCE, "ckpt.pt")):
        raise SystemExit(f"no checkpoint at {ASSET_SOURCE}/ckpt.pt, the retrofit study's seed-1337 source: train it "
                         f"with `python -m experiments.retrofit` (every run of the study) or `{asset_train()}` "
                         f"(this one).")
    model, data_dir, iters, tokenizer, meta, max_iters = load(args.out_dir)
    cfg = model.config
    head_dim = cfg.n_embd // cfg.n_head
    if args.tokens < cfg.block_size:
        parser.error(f"--tokens must be at least one block of {args.out_dir} (block_size {cfg.block_size}); got "
                     f"{args.tokens}.")
    if args.data_dir and not os.path.isfile(os.path.join(args.data_dir, "val.bin")):  # asked for: no silent skip
        parser.error(f"--data_dir {args.data_dir!r} has no val.bin; give a prepared data folder, or leave --data_dir "
                     f"out to use the checkpoint's.")
    if args.rank is not None and args.rank > head_dim:
        parser.error(f"--rank must be at most the head_dim of {args.out_dir} ({head_dim}), the most directions a head "
                     f"reads; got {args.rank}.")
    # --out_dir may name the checkpoint file itself (load_checkpoint takes either): the tables go beside it
    run_dir = os.path.dirname(args.out_dir) if os.path.isfile(args.out_dir) else args.out_dir
    out = run_dir if args.out is None else args.out
    if out:  # before the work, since the figure is written last
        changed = [k for k in vars(args) if k not in ("out", "out_dir") and getattr(args, k) != parser.get_default(k)]
        full_run = not changed and os.path.realpath(args.out_dir) == os.path.realpath(ASSET_SOURCE)
        guard_assets(out, full_run, ASSET_COMMAND)
        study_assets(out, data_dir=data_dir)  # the source's config/cpu_lm.py and text as the tracked figure's
        if in_assets(out) and iters != ASSET_ITERS:  # the right folder, but the tracked figure is of the finished run
            raise SystemExit(f"{args.out_dir} is at iteration {iters}, and assets/projections.* are of the retrofit "
                             f"source at {ASSET_ITERS}: finish it with `python -m experiments.retrofit` first.")
        if in_assets(out):  # and of the run retrofit trains there, not one trained into that folder by hand
            from experiments.retrofit import FULL, plan
            source = plan(FULL)[0]  # the source of the first seed: ASSET_SOURCE
            check_study_run(load_checkpoint(args.out_dir, ("model", "model_args", "config")), args.out_dir, source[3],
                            "python -m experiments.retrofit")
        # in the run's own folder an analysis is that folder's, whatever it names (a copy made with cp -r)
        # and one of another shape is another run, whatever its name: a link (latest) pointed at another run since
        # and so is one whose run is no folder from here (named in a sibling folder: cd runs; --out_dir=a
        # --out=../rep, then --out_dir=runs/b --out=rep from the first), as its shape says where it differs
        if os.path.realpath(out) != os.path.realpath(run_dir) and \
                (((other := analysed_run(out)) and os.path.realpath(other) != os.path.realpath(run_dir))
                 or (analysed_shape(out) or shape(cfg)) != shape(cfg)):
            other = other or analysed_name(out)
            raise SystemExit(f"--out {out} holds the analysis of another run, {other} (projections.md), which this "
                             f"one would replace; give another --out to keep both, or remove "
                             f"{os.path.join(shell_arg(out), 'projections.*')} to replace them.")
    with new_dirs(*[out] if out else []):  # made now, removed again if the work stops before writing there
        if out and (why := unwritable(out)):
            parser.error(f"--out {out!r} is not a writable directory ({why}); choose another --out.")
        if out:  # not after projections.md and .csv were written: three files of one analysis, or none
            outputs_free(*(os.path.join(out, f"projections.{ext}") for ext in ("md", "csv", "png")))
        work(args, model, data_dir, tokenizer, out, meta, (iters, max_iters))


def shape(cfg):
    """The model's fields projections.md's first line names after its run."""
    return (f"proj={cfg.proj}, n_head={cfg.n_head}, n_kv_head={cfg.n_kv_head or cfg.n_head}, n_layer={cfg.n_layer}, "
            f"n_embd={cfg.n_embd}")


def first_line(out):
    """out/projections.md's first line, which names the run analysed and its shape, or '' where there is none."""
    try:
        with open(os.path.join(out, "projections.md"), encoding="utf-8", errors="surrogateescape") as f:
            return f.readline().rstrip("\n")
    except OSError:
        return ""


def measured_on_data(out):
    """Whether out/projections.md holds CKA and R2 measured on validation tokens (its cka note says so)."""
    try:
        with open(os.path.join(out, "projections.md"), encoding="utf-8", errors="surrogateescape") as f:
            return "linear CKA of the outputs on" in f.read()
    except OSError:
        return False


def analysed_shape(out):
    """shape() as out/projections.md's first line gives it, or None."""
    first = first_line(out)
    return first[first.rfind(": proj=") + 2:] if ": proj=" in first else None


def analysed_name(out):
    """The run as out/projections.md's first line names it (as its command gave it), or None."""
    m = re.match(r"(.*?)(?: \(iteration \d+ of \d+: not finished\))?: proj=", first_line(out))
    return m[1] if m else None


def analysed_run(out):
    """The run folder whose analysis out/projections.md holds, where that folder is here (its first line names the
    run as its command gave it), else None: a second run analysed into the same --out replaced the first's three
    files without a word (eval.py refuses the like). A relative name given in another folder (cd runs; --out_dir=a
    --out=../rep) is looked for from --out's folders up too: looked for from here alone, it was no run, and the
    next run analysed there from the first folder replaced it without a word."""
    if (named := analysed_name(out)) is None:
        return None
    # written as UTF-8 under any locale: the run's name as this one's file names spell it ('runs/日本' under Latin-1
    # was no folder, and another run's analysis replaced it without a word)
    named, (up, folders) = saved_path(named), (os.path.realpath(out), [""])
    while up not in folders:
        folders.append(up)
        up = os.path.dirname(up)
    for folder in folders:  # here first, as the name was given; then out's folder and those above it
        name = os.path.join(folder, named) if folder else named
        run = os.path.dirname(name) if os.path.isfile(name) else name  # --out_dir=run/ckpt.pt: its folder
        if os.path.isfile(os.path.join(run, "ckpt.pt")):
            return run if not folder else os.path.relpath(run)
    return None


def work(args, model, data_dir, tokenizer, out, meta=None, at=(None, None)):
    """The tables of main(), printed, and written to out unless it is ''."""
    cfg = model.config
    head_dim = cfg.n_embd // cfg.n_head
    idx = val_tokens(args.data_dir or data_dir, args.tokens, cfg.block_size, tokenizer)
    # run from another folder, a relative data_dir is missing: its analysis without CKA and R2 replaced the one
    # measured on data (this run's, main checked) without a word, "(set --data_dir)" said only in the new table
    if idx is None and out and measured_on_data(out):
        where = args.data_dir or data_dir
        why = (f"no val.bin in {where!r}" + ("" if os.path.isabs(where) else f" from this folder, {os.getcwd()}")
               if where else "the checkpoint names no data_dir")
        raise SystemExit(f"--out {out} holds this run's analysis with CKA and R2, and this one has none ({why}), so "
                         f"it would replace them; set --data_dir to its prepared data (or run from the folder it was "
                         f"trained in), or remove {os.path.join(shell_arg(out), 'projections.*')} to replace it.")
    if idx is not None and int(idx.max()) >= cfg.vocab_size:
        raise SystemExit(f"the validation tokens of {args.data_dir or data_dir} reach {int(idx.max())}, beyond the "
                         f"vocabulary of {args.out_dir} (vocab_size {cfg.vocab_size}); set --data_dir to its data.")
    # R2's affine map fits head_dim + 1 numbers per output dimension: on no more tokens it fits them exactly, and
    # every pair, random matrices too, read r2 1.000
    if idx is not None and cfg.proj != "q_k_v" and idx.numel() <= head_dim + 1:
        bs = cfg.block_size
        # --tokens helps where val.bin's whole blocks are more: --tokens=20 of blocks of 8 (16 tokens) on a val.bin
        # of thousands was told to find a larger validation set
        held = len(tokens(args.data_dir or data_dir, "val")) // bs * bs
        fix = (f"raise --tokens to {(head_dim + 1) // bs * bs + bs} or more" if held > head_dim + 1 else
               "set --data_dir to a larger validation set")
        raise SystemExit(f"r2 would be measured on {idx.numel()} validation tokens, and its affine map fits "
                         f"{head_dim + 1} numbers per dimension of each head (head_dim {head_dim} and an offset), "
                         f"which so few tokens fit exactly whatever the weights; {fix}.")
    r = args.rank or max(1, head_dim // 2)
    rows, random = analyze(model, idx, r), random_row(model, idx, r)
    # --data_dir's tokens, not the checkpoint's: projections.md read as measured on its own validation data
    other = args.data_dir and not (data_dir and os.path.realpath(args.data_dir) == os.path.realpath(data_dir))
    where = f" of {os.path.join(args.data_dir, 'val.bin')} (--data_dir)" if other else ""
    # its own data_dir prepared again since from other text, or a relative one read from another folder that holds
    # other data of that name: tokens the model never trained on, called its validation tokens (sample.py says so)
    own = os.path.join(data_dir or "", "meta.json")
    if not other and idx is not None and os.path.isfile(own) and (moved := other_data(
            meta, read_json(own, "set --data_dir to a folder prepare_slimpajama.py wrote"))):
        where = f" of {os.path.join(data_dir, 'val.bin')} ({not_its_data(moved)})"
    # a run stopped midway (a study's, killed) was measured with nothing to say it is not the trained model
    iters, max_iters = at
    early = f" (iteration {iters} of {max_iters}: not finished)" if isinstance(max_iters, int) and \
        isinstance(iters, int) and iters < max_iters else ""
    lines = [f"{args.out_dir}{early}: {shape(cfg)}",
             f"cos: {PAIR_RULE}.", f"overlap: per head, mean cos^2 of the principal angles between the top-{r} right "
             f"singular subspaces (random: about {r / cfg.n_embd:.3f}).",
             f"cka: per head, linear CKA of the outputs on {idx.numel():,} validation tokens{where}; r2: on the same "
             f"tokens, the share of the second output's variance an affine map of the first explains."
             if idx is not None else
             (f"cka: left out, and r2, no val.bin in {args.data_dir or data_dir!r} (set --data_dir)." if
              args.data_dir or data_dir else  # a checkpoint saved by hand names no data: it read "no val.bin in None"
              "cka: left out, and r2: the checkpoint names no data_dir (set --data_dir to its prepared data).")]
    if not rows[0]["cos"]:  # q_k_v: the notes described cos, overlap and CKA columns its table never has
        lines[1:] = [f"one projection ({', '.join(rows[0]['erank'])}): no pair to compare, its effective rank only."]
    eranks = None
    if idx is not None:  # what any projection can read: a low-rank input makes every output predict the others
        eranks = [effective_rank(x - x.mean(0)) for x in layer_inputs(model, idx)]
        lines.append(f"erank of each layer's attention input (of {cfg.n_embd}): "
                     f"{', '.join(f'{e:.1f}' for e in eranks)}")
    lines.append(table(model, rows, random))
    print("\n\n".join(lines))
    if out:
        with together():  # the table and figure, or neither: a stop while the figure drew left the table alone
            # the title as text matplotlib can draw: outside UTF-8 mode (PYTHONUTF8=0 LC_ALL=C) a non-ASCII path
            # holds its bytes as surrogates, a TypeError from FT2Font at the figure's layout
            name = as_text(as_typed(args.out_dir)).encode("utf-8", "replace").decode("utf-8")
            # and each $ escaped: matplotlib reads text between two of them as math, so a folder named out_$RUN_$SEED
            # (a shell variable in single quotes) was a mathtext ParseSyntaxException traceback, nothing written
            name = name.replace("$", r"\$")
            # the run named as the text its bytes spell (UTF-8 typed under Latin-1: 'runs/æ\x97¥' saved as such was
            # no folder to the next command under UTF-8, whose run then replaced this analysis without a word)
            named = [lines[0].replace(args.out_dir, as_typed(args.out_dir), 1), *lines[1:]]
            paths = write(out, named, records(rows, random, eranks), model, rows, random, f"{name} (proj={cfg.proj})")
        print(f"\nwrote {', '.join(paths)}")

# what a stop leaves, said by cli: "nothing was written" was wrong for a closed output (`| head`) at the last line,
# printed after the table and figure were
AFTER = "projections.md, .csv and .png are written together when the analysis ends, not before."

if __name__ == "__main__":
    cli(main, AFTER)
