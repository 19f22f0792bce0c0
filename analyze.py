"""
Projection analysis of a checkpoint: how alike are Wq, Wk and Wv, and how many directions does each one use?

Per layer: the cosine similarity between the flattened weight matrices (biases left out), for the whole matrix
and per head (averaged over heads), and the effective rank of each matrix: exp of the entropy of its normalised
singular values. Only the matrices a variant really has are listed: qk_v has Wq and Wk=Wv, q_kv has Wq=Wk and Wv,
q_k_v a single Wq=Wk=Wv (nothing to compare). A last row gives the same numbers for random Gaussian matrices of the
same shapes, the untrained reference.

    python analyze.py --out_dir=out-cpu_lm/qkv_s0           # prints a table, writes assets/projections.png
"""

import argparse
import math
import os
import sys

import torch

from model import GPT, GPTConfig

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


def compare(a, b):
    """(whole, per-head mean) cosine of two projections [Ha, D, C] and [Hb, D, C]. The one with fewer heads
    (GQA/MQA keys and values) has each head repeated for its query group, head h pairs with head h // G."""
    H = max(a.size(0), b.size(0))
    a = a.repeat_interleave(H // a.size(0), dim=0)
    b = b.repeat_interleave(H // b.size(0), dim=0)
    return cosine(a, b), sum(cosine(x, y) for x, y in zip(a, b)) / H


def stats(mats):
    """{'cos': {(name, name): (whole, per_head)}, 'erank': {name: value}} of one layer's projections."""
    names = list(mats)
    cos = {(x, y): compare(mats[x], mats[y]) for i, x in enumerate(names) for y in names[i + 1:]}
    return {"cos": cos, "erank": {n: effective_rank(w.flatten(0, 1)) for n, w in mats.items()}}


def analyze(model):
    """One row of stats per layer."""
    return [stats(projections(block.attn)) for block in model.transformer.h]


def random_row(model):
    """The same stats for independent Gaussian matrices of the same shapes, as at initialisation: the reference
    a trained layer departs from (cosine near 0, effective rank below full because of the spread of singular values)."""
    g = torch.Generator().manual_seed(0)
    mats = projections(model.transformer.h[0].attn)
    return stats({n: torch.randn(w.shape, generator=g) for n, w in mats.items()})


def mean_row(rows):
    cos = {p: tuple(sum(r["cos"][p][j] for r in rows) / len(rows) for j in range(2)) for p in rows[0]["cos"]}
    erank = {n: sum(r["erank"][n] for r in rows) / len(rows) for n in rows[0]["erank"]}
    return {"cos": cos, "erank": erank}


def max_ranks(model):
    return {n: min(w.size(0) * w.size(1), w.size(2)) for n, w in projections(model.transformer.h[0].attn).items()}


def table(model, rows):
    """A markdown table: one line per layer, the mean over layers, then random matrices of the same shapes."""
    max_rank = max_ranks(model)
    head = (["layer"] + [f"cos {x}, {y}" for x, y in rows[0]["cos"]]
            + [f"erank {n} (of {max_rank[n]})" for n in rows[0]["erank"]])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    labelled = [(str(i), r) for i, r in enumerate(rows)] + [("mean", mean_row(rows)), ("random", random_row(model))]
    for label, r in labelled:
        cells = [f"{w:.3f} ({h:.3f})" for w, h in r["cos"].values()] + [f"{e:.1f}" for e in r["erank"].values()]
        lines.append("| " + " | ".join([label] + cells) + " |")
    return "\n".join(lines)


def plot(rows, random, max_rank, title, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    layers = range(len(rows))
    for pair in rows[0]["cos"]:
        line, = ax1.plot(layers, [r["cos"][pair][0] for r in rows], marker="o", label=f"{pair[0]} vs {pair[1]}")
        ax1.plot(layers, [r["cos"][pair][1] for r in rows], ls="--", color=line.get_color())
    ax1.axhline(0, color="gray", lw=0.5)
    ax1.set(xlabel="layer", ylabel="cosine similarity", title="whole matrix (solid), per-head mean (dashed)",
            xticks=layers)
    if rows[0]["cos"]:
        ax1.legend()
    for name in rows[0]["erank"]:
        label = f"{name} (of {max_rank[name]})"
        line, = ax2.plot(layers, [r["erank"][name] for r in rows], marker="o", label=label)
        ax2.axhline(random["erank"][name], ls=":", color=line.get_color())
    ax2.set(xlabel="layer", ylabel="effective rank", title="effective rank (dotted: random matrices)", xticks=layers)
    ax2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def load(out_dir):
    path = os.path.join(out_dir, "ckpt.pt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path}: --out_dir must be the folder train.py saved ckpt.pt in.")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    with torch.device("meta"):  # no random init: the weights come from the checkpoint
        model = GPT(GPTConfig(**ckpt["model_args"]))
    model.load_state_dict(ckpt["model"], assign=True)
    return model


def main():
    parser = argparse.ArgumentParser(description="Cosine similarity and effective rank of Wq, Wk, Wv.")
    parser.add_argument("--out_dir", required=True, help="folder holding ckpt.pt")
    parser.add_argument("--png", default="assets/projections.png", help="figure path ('' for none)")
    args = parser.parse_args()
    try:
        model = load(args.out_dir)
    except FileNotFoundError as e:
        sys.exit(str(e))
    rows = analyze(model)
    cfg = model.config
    print(f"{args.out_dir}: proj={cfg.proj}, n_head={cfg.n_head}, n_kv_head={cfg.n_kv_head or cfg.n_head}, "
          f"n_layer={cfg.n_layer}, n_embd={cfg.n_embd}")
    print(f"cos: {PAIR_RULE}.\n")
    print(table(model, rows))
    if args.png:
        plot(rows, random_row(model), max_ranks(model), f"{args.out_dir} (proj={cfg.proj})", args.png)
        print(f"\nwrote {args.png}")


if __name__ == "__main__":
    main()
