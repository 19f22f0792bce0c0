"""
Trained weights to another variant: qkv -> qk_v (tie V to K; q_kv -> q_k_v too, with k or lstsq), untying,
fewer or more key/value heads (GQA/MQA), or both (tying Q to K is refused: no method keeps the scores);
and GPT-2's weights from the Hugging Face hub in our layout. Every weight a conversion does not change is carried
over as it is. train.py (init_from), sample.py and eval.py (--proj, --n_kv_head) and the retrofit study use it.

    state, fits = convert_state_dict(ckpt["model"], GPTConfig(**ckpt["model_args"]), dst_config, "lstsq", calib)

Untying (qk_v -> qkv) is exact: V's rows become a copy of K's, every method gives the same weights.
"""

import os
import sys

import torch

if getattr(sys.flags, "safe_path", False):  # PYTHONSAFEPATH=1 or -P leaves this folder off sys.path: `python -P
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # convert.py` was a traceback, not its one line
from model import SOURCES, Block, GPT, GPTConfig

TIE_METHODS = ("k", "mean", "lstsq", "split")
# split keeps the fewest score directions that lose at most this fraction of the score energy. Chosen on the retrofit
# experiment's seed-1337 source among 1e-2 ... 1e-7 (first 32 validation windows): the loss after conversion falls
# from +0.039 nat at 1e-3 to +0.0002 at 1e-6 (2 to 8 of 32 directions kept at 1e-3, 13 to 20 at 1e-6), no lower
# at 1e-7, where the freed dimensions become too few for V.
SPLIT_TOL = 1e-6
INPUT_TOL = 1e-3  # a calibration input direction counts (directions) at this share of the strongest's scale
# other tools' and the paper's names for n_kv_head, which train.py, sample.py and eval.py hint at (--grouped_query was
# pointed at --rope_base, --multi_query at nothing)
HEAD_SHARING = ("gqa", "mqa", "kv_heads", "num_kv_heads", "n_kv_heads", "grouped_query", "multi_query",
                "grouped_query_attention", "multi_query_attention")
SAME_FIELDS = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "n_inner", "attn", "causal", "bias",
               "tie_embeddings", "pos_conv")  # conversions change proj and n_kv_head only (and dropout, no weight)


def check_conversion(src, dst, method, calib):
    """Raise ValueError, with one sentence naming the field and the fix, for a conversion that cannot be done."""
    if not (isinstance(src, GPTConfig) and isinstance(dst, GPTConfig)):
        raise ValueError(f"src_config and dst_config must be GPTConfigs (a checkpoint's: "
                         f"GPTConfig(**ckpt['model_args'])); got {type(src).__name__} and {type(dst).__name__}.")
    # rope_base too: another one turns every key by other angles, a new model said to be "weights as they are".
    # Every differing field at once: train.py --init_from=CKPT without the source's config file was told to set
    # vocab_size, then block_size, then n_layer ..., one run each
    fields = SAME_FIELDS + ("pos_emb", "pos_conv_basis", "pos_conv_period", "rope_base")
    if off := [f for f in fields if getattr(src, f) != getattr(dst, f)]:
        was = lambda c: ", ".join(repr(getattr(c, f)) for f in off)
        raise ValueError(f"conversion keeps {', '.join(off)} (source {was(src)}, destination {was(dst)}); set "
                         f"{', '.join(f'{f}={getattr(src, f)!r}' for f in off)} or train the new shape from scratch.")
    hs, hd = src.n_kv_head or src.n_head, dst.n_kv_head or dst.n_head
    if hs % hd and hd % hs:
        raise ValueError(f"n_kv_head={hd} must divide or be a multiple of the source's {hs} key/value heads, "
                         f"so that heads are mean-pooled or repeated by whole groups.")
    s, d = SOURCES[src.proj], SOURCES[dst.proj]
    if d[0] == d[1] and s[0] != s[1]:
        raise ValueError(f"cannot convert proj={src.proj!r} to {dst.proj!r}: tying Q to K changes every score and no "
                         f"method here preserves them; {'keep it as' if src.proj == 'qk_v' else 'convert to'} 'qk_v' "
                         f"or train {dst.proj!r} from scratch.")  # qk_v: "convert to 'qk_v'" named itself
    tie = ties_v(src, dst)  # and so to Q where K is Q: q_kv -> q_k_v
    if tie and method not in TIE_METHODS:
        raise ValueError(f"convert_method must be one of {', '.join(TIE_METHODS)} to tie V to K; got {method!r}.")
    if tie and s[0] == s[1] == d[0] == d[1] and method in ("mean", "split"):
        # Q stays K (q_kv -> q_k_v): k keeps the shared projection and lstsq folds its fit into c_proj; mean and
        # split would move K alone (q_kv -> qk_v unties K from Q first, and takes every method)
        raise ValueError(f"convert_method={method!r} moves K, and in proj={src.proj!r} K is also Q, so every score "
                         f"would change; use 'k' or 'lstsq' to tie V to it.")
    why = {"rope": "pos_emb='rope' turns them in fixed pairs", "linear": "attn='linear' maps each by φ"}.get(
        src.pos_emb if src.pos_emb == "rope" else src.attn)
    if tie and method == "split" and why:
        # its whitening mixes the key's dimensions, which keeps q kᵀ and nothing that acts on k's dimensions one by
        # one before the score: measured (random init, every direction kept, r = head_dim), a RoPE layer's scores
        # moved by 118% of their norm, a linear layer's attention weights by up to 0.31
        raise ValueError(f"convert_method='split' mixes the key's dimensions, and {why}, so every score would "
                         f"change; use 'lstsq' (it keeps K) or 'k'.")
    if tie and method in ("lstsq", "split"):
        check_calib(calib, src, method)


def check_calib(calib, cfg, method):
    """The calibration tokens lstsq and split run the source model on, once, so their values too: an empty or
    float calib failed in a reshape or the embedding, one longer than block_size named no calib."""
    if calib is None:
        raise ValueError(f"convert_method={method!r} fits on calibration tokens; pass calib (token ids [B, T]).")
    ok = (torch.is_tensor(calib) and calib.dim() == 2 and calib.dtype in (torch.long, torch.int) and calib.numel()
          and calib.size(1) <= cfg.block_size and 0 <= calib.min() and calib.max() < cfg.vocab_size)
    if not ok:
        what = (f"a {calib.dtype} tensor of shape {tuple(calib.shape)}" if torch.is_tensor(calib) else
                type(calib).__name__)
        raise ValueError(f"calib must be token ids [B, T] (int64 or int32, at least one, T <= block_size = "
                         f"{cfg.block_size}, each below vocab_size = {cfg.vocab_size}); got {what}.")


def exact_fit(cfg, n_tokens):
    """(unknowns, phrase) where n_tokens calibration tokens are no more than the numbers lstsq and split fit per
    dimension of each key head (head_dim weights, and an offset with biases), else None: any weights then fit them
    exactly, and "unexplained V variance 0.000" read as a perfect conversion. The commands refuse it (sample.py,
    eval.py, train.py --init_from); the library fits whatever it is given. narrow_note asks it of a layer's input
    directions."""
    unknowns = cfg.n_embd // cfg.n_head + cfg.bias
    if n_tokens > unknowns:
        return None
    return unknowns, (f"fits {unknowns} numbers per dimension of each key head, which so few tokens fit exactly "
                      f"whatever the weights")


def directions(x, offset):
    """The directions rows x [N, C] span (with a column of ones where the fit has an offset): singular values of
    at least INPUT_TOL of the largest. A direction that much weaker moves no printed residual off 0.000."""
    if offset:  # [x, 1] spans the directions of x about its mean, and the ones: centring keeps a mean off the count
        x = x - x.mean(0)
    s = torch.linalg.eigvalsh(x.T @ x).clamp_min(0).sqrt()
    return int((s > INPUT_TOL * s.max()).sum()) + offset


def ties_v(src, dst):
    """Whether converting config src to dst ties V to K, the one change that fits anything."""
    return SOURCES[dst.proj][1] == SOURCES[dst.proj][2] and SOURCES[src.proj][1] != SOURCES[src.proj][2]


def split_heads(attn):
    """{role: (W [heads, D, C], b [heads, D])} of the q, k and v a layer computes (tied roles share a tensor)."""
    D = attn.head_dim
    W = attn.c_attn.weight.split(attn.widths)
    b = attn.c_attn.bias.split(attn.widths) if attn.c_attn.bias is not None else [torch.zeros(w.size(0)) for w in W]
    return {r: (W[i].view(-1, D, W[i].size(1)), b[i].view(-1, D)) for r, i in zip("qkv", attn.sources)}


def regroup(wb, n):
    """Key/value heads (W [h, D, C], b [h, D]) -> n heads: the mean of each group of h/n, or each repeated n/h times.
    Pooling is GQA's uptraining init; repeating is exact (the same head serves the same query heads)."""
    h = wb[0].size(0)
    if n <= h:
        return tuple(t.view(n, h // n, *t.shape[1:]).mean(1) for t in wb)
    return tuple(t.repeat_interleave(n // h, dim=0) for t in wb)


def affine_fit(k, v, intercept):
    """Least squares v ≈ k B + c over calibration rows (k, v [N, D]); -> B [D, D], c [D], residual as the
    fraction of v's variance (around its mean) left unexplained."""
    a = torch.cat([k, torch.ones_like(k[:, :1])], 1) if intercept else k
    sol = torch.linalg.lstsq(a, v).solution
    res = (a @ sol - v).pow(2).sum() / (v - v.mean(0)).pow(2).sum().clamp_min(1e-30)
    return sol[:k.size(1)], sol[-1] if intercept else torch.zeros_like(v[0]), res.item()


def sym_sqrt(g):
    """G^(1/2) and G^(-1/2) of a symmetric positive semi-definite G (directions with no energy get 0 in both)."""
    e, u = torch.linalg.eigh(g)
    keep = e > e.max() * 1e-12
    s = torch.where(keep, e.clamp_min(0).sqrt(), 0)
    return (u * s) @ u.T, (u * torch.where(keep, 1 / s.clamp_min(1e-30), 0)) @ u.T


def split_key(x, q_heads, k, v, intercept):
    """`split` for one key head: new (q rows for each query head, tied k rows), both as (W [D, C], b [D]), and r.
    In the key's whitened coordinates (E[k kᵀ] = I) the score energy of direction u is uᵀ L (Σ_h E[q_h q_hᵀ]) L u,
    L = E[k kᵀ]^(1/2); the top-r eigenvectors keep the scores up to SPLIT_TOL of that energy, the query reads only
    them, and the other D - r tied dimensions carry the principal directions of the part of v they cannot predict."""
    lin = lambda wb: x @ wb[0].T + wb[1]                     # [N, C] -> [N, D]
    K, V = lin(k), lin(v)
    L, L_inv = sym_sqrt(K.T @ K / len(K))
    energy, u = torch.linalg.eigh(L @ sum(lin(q).T @ lin(q) for q in q_heads) @ L / len(K))
    energy, u = energy.flip(0).clamp_min(0), u.flip(1)       # descending
    tail = energy.flip(0).cumsum(0).flip(0) / energy.sum().clamp_min(1e-30)  # share of directions i.. D-1
    r = int((tail > SPLIT_TOL).sum())                        # the fewest kept directions whose tail is <= SPLIT_TOL
    to_k, to_q = L_inv @ u[:, :r], L @ u[:, :r]              # [D, r]: scores q kᵀ ≈ (q to_q)(k to_k)ᵀ
    B, c, _ = affine_fit(K @ to_k, V, intercept)
    _, _, free = torch.linalg.svd(V - (K @ to_k @ B + c), full_matrices=False)
    to_v = free[:K.size(1) - r].T                            # [D, D - r] top directions of what the r cannot predict
    # fewer calibration rows N than D - r: the SVD has only N directions, and they hold all of it; zeros fill up
    to_v = torch.cat([to_v, to_v.new_zeros(K.size(1), K.size(1) - r - to_v.size(1))], 1)
    tied = (torch.cat([to_k.T @ k[0], to_v.T @ v[0]]), torch.cat([k[1] @ to_k, v[1] @ to_v]))
    pad = lambda t: torch.cat([t, t.new_zeros(K.size(1) - r, *t.shape[1:])])
    queries = [(pad(to_q.T @ q[0]), pad(q[1] @ to_q)) for q in q_heads]
    return queries, tied, r


def convert_layer(attn, dst_attn, x, method):
    """Writes into dst_attn (a fresh layer of the destination variant) the converted weights of attn, in float64.
    x: [N, C] calibration inputs of this layer (post ln_1), needed by lstsq and split. -> fit facts of the layer."""
    dd = lambda wb: tuple(t.double() for t in wb)
    roles = {r: dd(wb) for r, wb in split_heads(attn).items()}
    hkv, G = dst_attn.n_kv_head, dst_attn.n_head // dst_attn.n_kv_head
    q, k, v = roles["q"], regroup(roles["k"], hkv), regroup(roles["v"], hkv)
    Wo, bo = attn.c_proj.weight.double().clone(), attn.c_proj.bias
    bo = bo.double().clone() if bo is not None else None
    fit = {"residual": [], "rank": []}
    tie = dst_attn.v_is_k and not attn.v_is_k
    if tie and method == "mean":
        k = v = tuple((a + b) / 2 for a, b in zip(k, v))
    elif tie and method in ("lstsq", "split"):
        q, k = [list(t) for t in q], [list(t) for t in k]
        x = x.double()
        fit["directions"] = directions(x, bo is not None)
        D = attn.head_dim
        for j in range(hkv):
            kj, vj = (k[0][j], k[1][j]), (v[0][j], v[1][j])
            group = range(j * G, (j + 1) * G)
            if method == "split":
                queries, kj, r = split_key(x, [(q[0][h], q[1][h]) for h in group], kj, vj, bo is not None)
                for h, qh in zip(group, queries):
                    q[0][h], q[1][h] = qh
                k[0][j], k[1][j] = kj
                fit["rank"].append(r)
            B, c, res = affine_fit(x @ kj[0].T + kj[1], x @ vj[0].T + vj[1], bo is not None)
            fit["residual"].append(res)
            for h in group:  # y_h = Σ a (k B + c) = (Σ a k) B + c: B and c move into c_proj's columns of head h
                cols = slice(h * D, (h + 1) * D)
                if bo is not None:
                    bo += Wo[:, cols] @ c
                Wo[:, cols] = Wo[:, cols] @ B.T
        q, k = tuple(torch.stack(t) for t in q), tuple(torch.stack(t) for t in k)
    parts = {"q": q, "k": k, "v": k if dst_attn.v_is_k else v}
    chunks = [next(parts[r] for r, s in zip("qkv", dst_attn.sources) if s == i) for i in range(len(dst_attn.widths))]
    dst_attn.c_attn.weight.copy_(torch.cat([w.flatten(0, 1) for w, _ in chunks]))
    if dst_attn.c_attn.bias is not None:
        dst_attn.c_attn.bias.copy_(torch.cat([b.flatten() for _, b in chunks]))
    dst_attn.c_proj.weight.copy_(Wo)
    if bo is not None:
        dst_attn.c_proj.bias.copy_(bo)
    return fit


@torch.no_grad()
def convert_state_dict(state, src_config, dst_config, method=None, calib=None):
    """Weights of a src_config model -> weights of a dst_config model, and the fit facts of each layer.

    Key/value heads are mean-pooled per group (or repeated); then, when V is newly tied to K (qkv -> qk_v):
      k      keep Wk as the tied projection (scores unchanged), drop Wv
      mean   (Wk + Wv) / 2 for both
      lstsq  keep Wk, fit v ≈ k B + c per key head on calibration inputs, fold B into c_proj's columns of the query
             heads that read it and c into c_proj's bias: exact when v is an affine map of k, because each
             query's attention weights sum to 1, so Σ a (k B + c) = (Σ a k) B + c
      split  keep only the score directions that carry all but SPLIT_TOL of the score energy (split_key), give the
             freed dimensions of the tied projection to what of v those cannot predict, then fold as lstsq
             (refused with RoPE or linear attention: they act on the key's dimensions, which split mixes)
    calib: token ids [B, T] for lstsq and split. The layers are fitted in order, each on the inputs it receives from
    the already converted layers before it: those are the activations the converted model will really see, so the
    fit of a layer also absorbs the errors of the ones before it.
    -> (state dict of dst_config, [per layer {"residual": [per key head: unexplained share of v's variance],
        "rank": [per key head: split's r]}])."""
    check_conversion(src_config, dst_config, method, calib)
    with torch.device("meta"):  # no random init of weights that are about to be replaced
        model = GPT(src_config).eval()
    check_state(state, model)
    model.load_state_dict({k: t.float().cpu() for k, t in state.items()}, assign=True)
    if src_config.tie_embeddings:  # assign gave the two names their own tensors: one again, as GPT() ties them
        model.lm_head.weight = model.transformer.wte.weight
    dtypes = {k: t.dtype for k, t in state.items()}
    ties = ties_v(src_config, dst_config)  # only tying V to K fits anything
    fits = []
    for i, block in enumerate(model.transformer.h):
        x = None
        if ties and method in ("lstsq", "split"):
            seen = []
            hook = block.ln_1.register_forward_hook(lambda m, inp, out: seen.append(out.flatten(0, 1)))
            model(calib.cpu())
            hook.remove()
            x = seen[0]
        new = Block(dst_config).eval()
        new.load_state_dict({k: t for k, t in block.state_dict().items() if not k.startswith("attn.c_")},
                            strict=False)
        fits.append(convert_layer(block.attn, new.attn, x, method))
        model.transformer.h[i] = new
    return {k: t.to(dtypes.get(k, t.dtype)) for k, t in model.state_dict().items()}, fits


def check_state(state, model):
    """state holds each weight of model (built from src_config), of its shape, and nothing else: load_state_dict's
    own error lists every key of a state of another config, or of a compiled model's (_orig_mod.)."""
    want = {k: t.shape for k, t in model.state_dict().items()}
    if not (isinstance(state, dict) and all(torch.is_tensor(t) for t in state.values())):
        # a whole checkpoint was "must be a dict of weights ...; got dict": name what in it is no weight
        key = next((k for k, t in state.items() if not torch.is_tensor(t)), None) if isinstance(state, dict) else None
        what = type(state).__name__ if key is None else f"a dict whose {key!r} is {type(state[key]).__name__}"
        fix = "; pass ckpt['model']" if isinstance(state, dict) and isinstance(state.get("model"), dict) else ""
        raise ValueError(f"state must be a dict of weights (model.state_dict(), a checkpoint's 'model'); got "
                         f"{what}{fix}.")
    bad = next((k for k in {**want, **state} if k not in state or k not in want or state[k].shape != want[k]), None)
    if bad is not None:
        how = ("lacks it" if bad not in state else "holds it, and src_config makes no such weight" if bad not in want
               else f"holds it as {tuple(state[bad].shape)}, and src_config makes {tuple(want[bad])}")
        raise ValueError(f"state does not fit src_config at {bad} ({how}); pass the GPTConfig its weights were "
                         f"trained with (a checkpoint's model_args), and the weights without a wrapper's prefix "
                         f"(_orig_mod., module.).")
    bad = next((k for k, t in state.items() if t.is_meta), None)
    if bad is not None:  # a model built under torch.device("meta"): the NaN check below was a torch traceback
        raise ValueError(f"state holds {bad} on the meta device, a shape without values; pass a model's weights.")
    # a diverged run's: lstsq and split failed inside LAPACK with torch's "please report a bug" assert
    bad = next((k for k, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()), None)
    if bad is not None:
        raise ValueError(f"state holds NaN or inf in {bad}: those weights diverged; convert a checkpoint saved "
                         f"before they did.")


def conversion_note(src, dst, method, fits, source):
    """One line that says what the conversion did, and claims a fit (by method, on source) only where one was made:
    sample.py, eval.py and train.py print it."""
    hs, hd = src.n_kv_head or src.n_head, dst.n_kv_head or dst.n_head
    done = []
    if hd < hs:
        done.append(f"key/value heads mean-pooled from {hs} to {hd}")
    elif hd > hs:
        done.append(f"key/value heads repeated from {hs} to {hd} (exact)")
    s, d = SOURCES[src.proj], SOURCES[dst.proj]
    untied = [f"{'QKV'[b]} from {'QKV'[a]}" for a in range(3) for b in range(a + 1, 3) if s[a] == s[b] and d[a] != d[b]]
    if untied:
        done.append(f"untied {', '.join(untied)} (exact: copies of the shared weights)")
    if ties_v(src, dst):
        done.append(f"V tied to K by {method}" + (f" fitted on {source}" if source else ""))
    unexplained = [f"{sum(f['residual']) / len(f['residual']):.3f}" for f in fits if f["residual"]]
    what = "; ".join(done) or "the same variant, weights as they are"
    return (f"converted to proj={dst.proj}, n_kv_head={hd}: {what}"
            + (f"; unexplained V variance per layer: {', '.join(unexplained)}" if unexplained else "")
            + narrow_note(src, fits, method))


def narrow_note(cfg, fits, method):
    """The note said after the residuals for the first layer whose calibration inputs span no more directions than
    lstsq and split fit unknowns (exact_fit), else "": any weights fit them exactly, and "0.000" there says nothing of
    inputs unlike them, as a repeated or periodic --calib text gives. Tokens are no measure of it (the first layer of
    a model without a position table sees one input per distinct token); inputs spanning every direction a layer's
    can (n_embd - 1 after LayerNorm's centring, and the offset) are no such case: a key head as wide as the model fits
    any input exactly. A note, not a refusal: data of few distinct tokens gives that layer as few inputs in use as in
    calibration, and its fit is exact."""
    every = cfg.n_embd - 1 + cfg.bias
    for layer, f in enumerate(fits):
        n = f.get("directions")
        if n is not None and n < every and (too_few := exact_fit(cfg, n)):
            return (f" (layer {layer}'s calibration inputs span only {n} direction{'s' * (n != 1)}, no more than the "
                    f"{too_few[0]} numbers {method} fits per dimension of each key head: exact on them whatever the "
                    f"weights, and no measure for inputs unlike them)")
    return ""


# ---------------------------------------------------------------------------------------------------------------
# GPT-2 from the Hugging Face hub: with proj="qkv" our names are nanoGPT's, which are the hub's.

GPT2_SIZES = {"gpt2": (12, 12, 768), "gpt2-medium": (24, 16, 1024), "gpt2-large": (36, 20, 1280),
              "gpt2-xl": (48, 25, 1600)}  # n_layer, n_head, n_embd
GPT2_CHOSEN = ("proj", "n_kv_head", "dropout")  # what a run's settings choose of a GPT-2 start: the rest is GPT-2's


def gpt2_config(name, **overrides):
    """The GPTConfig of a GPT-2 size (r50k's 50257 tokens, 1024 positions); overrides e.g. proj, n_kv_head."""
    if name not in GPT2_SIZES:  # a KeyError otherwise
        raise ValueError(f"GPT-2 comes in the sizes {', '.join(GPT2_SIZES)}; got {name!r}.")
    n_layer, n_head, n_embd = GPT2_SIZES[name]
    return GPTConfig(**{**dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=1024, vocab_size=50257,
                               bias=True, tie_embeddings=True), **overrides})


def from_hub_layout(hub):
    """A GPT-2 state dict as the hub stores it -> ours with proj="qkv". The hub's Conv1D layers keep their weight
    as [in, out] (ours: nn.Linear, [out, in]); the causal-mask buffers and the tied lm_head are dropped."""
    # a notebook's transformers model itself, or another model's weights, was an AttributeError or KeyError
    if not (isinstance(hub, dict) and any(k.removeprefix("transformer.") == "wte.weight" for k in hub)):
        raise ValueError(f"hub must be a GPT-2 state dict as the hub stores it (GPT2LMHeadModel.from_pretrained("
                         f"'gpt2').state_dict()), with its wte.weight; got {type(hub).__name__}"
                         f"{' without wte.weight' if isinstance(hub, dict) else ''}.")
    ours = {}
    for name, t in hub.items():
        name = name.removeprefix("transformer.")
        if name.endswith((".attn.bias", ".attn.masked_bias")) or name == "lm_head.weight":
            continue
        if name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):
            t = t.t()
        ours["transformer." + name] = t.contiguous()
    ours["lm_head.weight"] = ours["transformer.wte.weight"]
    return ours


def hub_problem(timeout=3):
    """None when the Hugging Face hub answers within timeout seconds, asked the way its client asks (HF_ENDPOINT,
    proxies); else why not, in a few words: offline, a download retries for most of a minute before it fails."""
    from huggingface_hub import constants, get_session
    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    try:
        get_session().head(constants.ENDPOINT, timeout=timeout)
        return None
    except Exception as e:
        cause = e  # the client's error wraps the socket's, which says it best ("Connection refused")
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__context__ or cause.__cause__
        return (cause.strerror or str(cause)) if cause is not None else type(e).__name__


def hub_reachable(timeout=3):
    return hub_problem(timeout) is None


def gpt2_file(name):
    """-> (repo, file name, reader) of GPT-2 `name`'s weights on the hub: safetensors where it is installed."""
    try:
        import safetensors.torch
        return f"openai-community/{name}", "model.safetensors", safetensors.torch.load_file
    except ImportError:
        return (f"openai-community/{name}", "pytorch_model.bin",
                lambda p: torch.load(p, map_location="cpu", weights_only=True))


def gpt2_missing(name):
    """-> None when GPT-2 `name` is in the hub's cache or the hub answers (a download can be tried), else the sentence
    that says neither: eval.py asks before its tasks, whose own refusal advised --text, which then met this one."""
    from huggingface_hub import constants, hf_hub_download
    repo, file, _ = gpt2_file(name)
    try:
        hf_hub_download(repo, file, local_files_only=True)
        return None
    except Exception:  # not in the cache
        if constants.HF_HUB_OFFLINE:  # the user's setting: the hub is never asked, so a network would not help
            return (f"{name} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE (or "
                    f"TRANSFORMERS_OFFLINE) is set, so the hub is not asked; unset it to download {name} once (the "
                    f"cache is reused), or set HF_HOME to a cache that holds it.")
        if not hub_reachable():
            return (f"{name} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and the hub "
                    f"({constants.ENDPOINT}) does not answer; download it once where there is a network (the cache "
                    f"is reused), or set HF_HOME to a cache that holds it.")
    return None


def load_gpt2(name):
    """-> (gpt2_config(name), our state dict) from the hub (huggingface_hub, cached in ~/.cache/huggingface): the
    cache first, the network only when the file is not there and the hub answers. ValueError (one sentence) else."""
    import logging

    from huggingface_hub import hf_hub_download
    cfg = gpt2_config(name)  # another name is refused before the hub is asked for it
    repo, file, read = gpt2_file(name)
    try:
        path = hf_hub_download(repo, file, local_files_only=True)
    except Exception:  # not in the cache
        if why := gpt2_missing(name):
            raise ValueError(why) from None
        hub_log = logging.getLogger("huggingface_hub")
        level = hub_log.level
        hub_log.setLevel(logging.ERROR)  # its retries are one warning each; the sentence below says what failed
        try:
            path = hf_hub_download(repo, file)
        except Exception as e:
            raise ValueError(f"could not download {name} from the Hugging Face hub ({type(e).__name__}); check the "
                             f"network, or download it once where there is one (the cache is reused).") from None
        finally:
            hub_log.setLevel(level)
    with torch.device("meta"):
        want = {k: t.shape for k, t in GPT(cfg).state_dict().items()}
    try:  # a file cut short, another program's, or another size's: the error of whichever step meets it first
        state = from_hub_layout(read(path))
        fits = {k: t.shape for k, t in state.items()} == want
    except PermissionError as e:  # whole, but not this user's to read: "delete it and download it again" fixed nothing
        raise ValueError(f"cannot read {path}, the cached {name} ({e.strerror}); make it readable for this user, or "
                         f"set HF_HOME to a cache that holds it.") from None
    except Exception:
        fits = False
    if not fits:
        raise ValueError(f"{path}, the cached {name}, is damaged or not {name}'s weights; delete it and download it "
                         f"again (run once where there is a network).")
    return cfg, state


if __name__ == "__main__":  # a library: run as a script it would exit 0 having converted nothing
    sys.exit("convert.py is a library, not a command: convert a checkpoint with train.py --init_from=CKPT --proj=... "
             "(trains on), or sample.py/eval.py --proj=... (on load).")
