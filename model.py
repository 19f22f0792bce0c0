"""
A GPT whose attention can share its projections, from "Do Transformers Need Three Projections?".

One attention class covers every variant:
  proj   qkv    Q, K, V          three projections (GPT-2)
         qk_v   Q-K=V            V is K: the cache holds K only
         q_kv   Q=K-V            K is Q: symmetric scores, no cache saving
         q_k_v  Q=K=V            one projection for all three
  n_kv_head  0 = n_head (MHA), g = GQA-g, 1 = MQA
  attn   softmax | linear        linear: φ(x) = elu(x) + 1, a recurrent state as the cache
  pos_conv  m > 0: (X)+, a fixed 2D sinusoidal encoding on the score map mixed back by a 1x1 conv
  pos_emb   learned (GPT-2 table) | none (no position table: (X)+, if on, is the only source of position)
            | rope (q and k rotated by position, v never; where V = K the cache holds the unrotated z)
With proj="qkv", n_kv_head=0, attn="softmax", pos_conv=0 this is exactly a GPT-2 / nanoGPT model.
"""

import contextlib
import math
import numbers
from dataclasses import dataclass, fields, replace

import torch
import torch.nn as nn
from torch.nn import functional as F

# Which of the fused projection's chunks serves as (q, k, v). Chunk 0 has n_head heads, the others n_kv_head.
SOURCES = {"qkv": (0, 1, 2), "qk_v": (0, 1, 1), "q_kv": (0, 0, 1), "q_k_v": (0, 0, 0)}
ATTNS = ("softmax", "linear")
POS_EMBS = ("learned", "none", "rope")
POS_CONV_BASES = ("product", "concat")
# dense bf16 tensor-core peak per GPU, by the part of torch.cuda.get_device_name that tells it, the more specific
# first: the PCIe and NVL cards run slower clocks (an H100 PCIe read as an SXM one put its MFU a quarter too low)
PEAK_FLOPS = {"A100": 312e12, "H100 PCIe": 756e12, "H100 NVL": 835e12, "H200 NVL": 835e12, "H100": 989e12,
              "H200": 989e12}
# Cached one-token softmax steps through kernel.py's Triton decode attention (K read once when V = K):
# None = for CUDA tensors, True = always (the tests, under TRITON_INTERPRET=1), False = never (SDPA).
DECODE_KERNEL = None


KINDS = {bool: "True or False", int: "an integer", float: "a number"}


def of_kind(v, default):
    """Whether v may stand where default does: a bool for a bool, an integer (no bool) for an int, any real number
    (no bool) for a float. numpy's bool is a bool: a sweep over np.array([True, False]) was refused as
    "got np.False_"."""
    v = bool(v) if type(v).__module__ == "numpy" and type(v).__name__ in ("bool", "bool_") else v
    if isinstance(default, bool) or isinstance(v, bool):
        return isinstance(v, bool) and isinstance(default, bool)
    return isinstance(v, numbers.Integral if isinstance(default, int) else numbers.Real)


@dataclass
class GPTConfig:
    block_size: int = 1024    # context length in tokens (positions)
    vocab_size: int = 50304   # token ids 0 .. vocab_size - 1
    n_layer: int = 12         # Blocks
    n_head: int = 12          # query heads per layer
    n_embd: int = 768         # width of the residual stream
    n_inner: int = 0          # 0 -> 4 * n_embd
    n_kv_head: int = 0        # 0 -> n_head; 1 -> MQA; g -> GQA-g
    proj: str = "qkv"         # "qkv" | "qk_v" | "q_kv" | "q_k_v"
    attn: str = "softmax"     # "softmax" | "linear"
    causal: bool = True       # False: every position attends to every other
    pos_conv: int = 0         # m channels of the (X)+ 2D positional encoding; 0 = off
    pos_conv_basis: str = "product"  # "product" (2D Fourier: depends on i and j jointly) | "concat" ([f(i), f(j)])
    pos_conv_period: int = 0  # 0: (X)+ tells every offset below block_size apart; p: harmonics of 2 pi / p, cyclic in p
    pos_emb: str = "learned"  # "learned" (GPT-2 table) | "none" (no position embedding parameter at all) | "rope"
    rope_base: float = 10000.0  # pos_emb="rope": the wavelengths run from 2 pi to 2 pi rope_base
    dropout: float = 0.0      # residual dropout (the paper uses 0.1)
    bias: bool = True         # biases in the linear layers and LayerNorms
    tie_embeddings: bool = True  # the output layer is the token embedding

    def __post_init__(self):
        # GPTConfig(ckpt["model_args"]) was "block_size must be an integer; got {...}", which named no fix
        if isinstance(self.block_size, dict):
            raise ValueError("GPTConfig takes its fields as keywords: GPTConfig(**ckpt['model_args']), not the dict "
                             "itself.")
        # each field of its default's kind first: block_size=2.5 failed deep in building the model, and
        # causal="False", a true string, built a causal model without a word
        for f in fields(self):  # the text settings: one of their choices, below
            v = getattr(self, f.name)
            if isinstance(f.default, str):  # numpy's str as Python's: np.str_ in asdict(config) made a checkpoint
                if isinstance(v, str) and type(v) is not str:  # saved so one that a weights-only load refuses
                    setattr(self, f.name, str(v))
                continue
            if not of_kind(v, f.default):
                raise ValueError(f"{f.name} must be {KINDS[type(f.default)]}; got {v!r}.")
            if type(v) not in (int, float, bool):  # numpy's as Python's: np.int64 heads made SDPA's enable_gqa a
                setattr(self, f.name, type(f.default)(v))  # numpy bool, which it refuses
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"{name} must be a positive integer; got {getattr(self, name)}.")
        # LayerNorm over one feature subtracts it from its own mean: every position's input became the LayerNorm's
        # bias, and a model that cannot see its tokens trained and sampled with exit 0
        if self.n_embd < 2:
            raise ValueError(f"n_embd must be at least 2 (LayerNorm over a single feature zeroes it, so every token "
                             f"would look the same to the model); got {self.n_embd}.")
        if self.n_inner < 0:
            raise ValueError(f"n_inner must be 0 (4 * n_embd) or a positive integer; got {self.n_inner}.")
        # as train.py's range: 0 or below gave inf or nan angles, and so did 1e-300 (its powers overflow)
        if not (math.isfinite(self.rope_base) and self.rope_base > 1):
            raise ValueError(f"rope_base must be a finite number > 1 (at 1 every pair turns at the same frequency; "
                             f"below, the wavelengths run backwards); got {self.rope_base}.")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}.")
        for name, choices in (("proj", SOURCES), ("attn", ATTNS), ("pos_conv_basis", POS_CONV_BASES),
                              ("pos_emb", POS_EMBS)):
            if not (isinstance(getattr(self, name), str) and getattr(self, name) in choices):
                raise ValueError(f"{name} must be one of {', '.join(choices)}; got {getattr(self, name)!r}.")
        if self.n_head < 1 or self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}).")
        kv = self.n_kv_head or self.n_head
        if self.n_kv_head < 0 or self.n_head % kv:
            raise ValueError(f"n_kv_head must divide n_head={self.n_head} (0 = n_head, 1 = MQA, g = GQA-g); "
                             f"got {self.n_kv_head}.")
        if SOURCES[self.proj][0] == SOURCES[self.proj][1] and kv != self.n_head:
            raise ValueError(f"n_kv_head must be 0 or n_head for proj={self.proj!r}, whose keys are its queries; "
                             f"got {self.n_kv_head}. Use proj='qkv' or 'qk_v' for GQA/MQA.")
        if self.pos_conv < 0 or self.pos_conv % 4:
            raise ValueError(f"pos_conv must be 0 (off) or a positive multiple of 4; got {self.pos_conv}.")
        if self.pos_conv_period and (self.pos_conv_period < 4 or not self.pos_conv):
            raise ValueError(f"pos_conv_period must be 0 (off) or a period of at least 4 positions with pos_conv > 0; "
                             f"got {self.pos_conv_period} with pos_conv={self.pos_conv}.")
        # RoPE: softmax (linear φ(R q)ᵀ φ(R k) is no function of the offset), no (X)+, pairs; the one in the way
        head_dim = self.n_embd // self.n_head
        why = self.pos_emb == "rope" and ("attn='softmax'; got attn='linear'" if self.attn == "linear" else
                                          f"pos_conv=0; got pos_conv={self.pos_conv}" if self.pos_conv else
                                          f"an even head_dim; n_embd/n_head = {self.n_embd}/{self.n_head} = "
                                          f"{head_dim}" if head_dim % 2 else "")
        if why:
            raise ValueError(f"pos_emb='rope' needs {why}; change that, or use pos_emb='learned' or 'none'.")
        if self.pos_conv and self.attn == "linear":
            raise ValueError("pos_conv needs attn='softmax': linear attention has no score map to convolve.")
        # a setting of a part the model does not have would train without it, and without a word
        if self.rope_base != GPTConfig.rope_base and self.pos_emb != "rope":
            raise ValueError(f"rope_base acts only with pos_emb='rope', and pos_emb is {self.pos_emb!r}; set "
                             f"pos_emb='rope', or leave rope_base at {GPTConfig.rope_base:g}.")
        if self.pos_conv_basis != GPTConfig.pos_conv_basis and not self.pos_conv:
            raise ValueError(f"pos_conv_basis acts only with pos_conv > 0 ((X)+ on), and pos_conv is 0; set pos_conv "
                             f"to a multiple of 4, or leave pos_conv_basis at {GPTConfig.pos_conv_basis!r}.")


def peak_flops(name):
    """The dense bf16 peak of the GPU torch names `name`, or None for one not in PEAK_FLOPS."""
    return next((f for key, f in PEAK_FLOPS.items() if key in name), None)


class Cache:
    """Decode buffers of every layer, filled from position 0 up to `pos`. `pos` is an int, or a [1] long tensor
    for generate's compiled step: then writes go to that position and attention masks the whole buffer, so every
    step has the same shapes and one graph serves them all.
    softmax: k [B, n_kv_head, max_len, head_dim], plus v of the same shape unless V = K.
    linear:  s [B, n_kv_head, head_dim, head_dim] = Σ φ(k_i) v_iᵀ and z [B, n_kv_head, head_dim] = Σ φ(k_i)."""

    def __init__(self, layers, max_len, lengths, config):
        self.layers, self.max_len, self.pos = layers, max_len, 0
        self.config = config  # of the model that made it: another's buffers, or lack of them, do not fit
        # [B] int32 = pos + 1 for the one-token step under way: the decode kernel's valid lengths, refilled in
        # place by GPT.forward once per step instead of allocated in every layer
        self.lengths = lengths
        self.end = 0  # the position the buffers were last filled to (None after a tensor pos): linear's state sums them

    @property
    def nbytes(self):
        return sum(t.numel() * t.element_size() for layer in self.layers for t in layer.values())

    def __getstate__(self):
        # the buffers' values only: written by a forward outside torch.no_grad(), torch's deepcopy refused them (a
        # beam search's branch: "Only Tensors created explicitly by the user ... support the deepcopy protocol"),
        # and torch.save kept their requires_grad, so the loaded cache's first write was autograd's RuntimeError
        return {**self.__dict__, "layers": [{k: t.detach() for k, t in layer.items()} for layer in self.layers]}

    def __setstate__(self, state):
        # a cache pickled before `end` was kept (torch.save(cache) by older code): linear attention's next step was
        # an AttributeError; its buffers were filled to its pos, as far as anyone can tell
        self.__dict__.update(state)
        if "end" not in state:
            self.end = self.pos if isinstance(self.pos, numbers.Integral) else None


def check_state_position(cache, pos):
    """Linear attention's cache is a sum over every position before cache.end: at pos 0 it starts empty (a cache
    reused for the next prompt with cache.pos = 0 carried the last prompt's sums without a word), and any other
    pos must be that end (cache.pos -= 1 to drop a rejected draft token kept the token in the sums, logits 0.007
    off, without a word)."""
    if pos == 0:
        for layer in cache.layers:
            for t in layer.values():
                t.zero_()
    elif cache.end is not None and pos != cache.end:
        raise ValueError(f"cache.pos is {pos}, and linear attention's state sums the first {cache.end} positions: it "
                         f"cannot go back or skip; start again at cache.pos = 0, or keep a copy.deepcopy(cache) to "
                         f"return to.")


def pos_conv_features(L, n, K, device, period=0):
    """Positions 0..L-1 -> [L, K, 2]: (sin, cos)(w_k p) for the K = m/4 frequencies of (X)+ at block_size n.
    w_0 = pi/n: over every pair of positions below n, sin(w_0 (i - j)) has the sign of i - j and
    cos(w_0 (i + j - c)) falls monotonically away from i + j = c, so the lowest frequency alone tells direction
    and the mirror (REVERSE's anti-diagonal) apart at every length up to block_size, without aliasing. The others
    rise geometrically to pi/2 to make those peaks sharp: one step off the peak costs 1 - cos(pi/2) = 1 per unit
    of weight. A geometric 10000^(-k/K) schedule fails at short lengths: its lowest frequency wraps over no list,
    so the peak is ambiguous, and its highest is not sharp. pi itself is avoided: sin(pi p) = 0 at every p.
    period p > 0: whole harmonics of 2 pi / p, rising geometrically (rounded) from 1 to p/4 (pi/2 again), so
    positions i and i + p look the same and a cyclic offset (i + 1 mod p) is one offset, the wrap-around included."""
    r = torch.arange(K, device=device) / max(K - 1, 1)
    if period:
        w = 2 * math.pi / period * ((period / 4) ** r).round()
    else:
        w = math.pi / n * (n / 2) ** r
    a = torch.arange(L, device=device).float()[:, None] * w
    return torch.stack([a.sin(), a.cos()], dim=-1)


def check_sampling(idx, vocab_size, max_new_tokens, temperature, top_k, use_cache, compile):
    """generate's arguments at their edges, in one sentence each: else an empty prompt fails deep in attention,
    top_k=0 in an index and a negative temperature silently samples the least likely tokens."""
    if torch.is_tensor(idx) and idx.dim() == 2 and idx.size(1) < 1:
        raise ValueError("the prompt idx [B, T] must hold at least one token (T >= 1); start from a token, "
                         "e.g. the tokenizer's end of text.")
    check_tokens(idx)
    if not (0 <= idx.min() and idx.max() < vocab_size):  # once per call; on CUDA the embedding's device assert
        raise out_of_vocab("idx", idx, vocab_size)
    # bools are integers to Python: top_k=True failed in topk, max_new_tokens=True asked for one token
    if not (isinstance(max_new_tokens, numbers.Integral) and not isinstance(max_new_tokens, bool)
            and max_new_tokens >= 0):
        raise ValueError(f"max_new_tokens must be an integer >= 0; got {max_new_tokens!r}.")
    # a tensor of one number only: one per row failed as "Boolean value of Tensor ... is ambiguous"
    if not (isinstance(temperature, numbers.Real) or torch.is_tensor(temperature) and temperature.numel() == 1) \
            or not temperature >= 0:  # nan too
        raise ValueError(f"temperature must be a number >= 0 (0 is greedy); got {temperature!r}.")
    if top_k is not None and not (isinstance(top_k, numbers.Integral) and not isinstance(top_k, bool) and top_k >= 1):
        raise ValueError(f"top_k must be None (all tokens) or an integer >= 1; got {top_k!r}.")
    for name, v in (("use_cache", use_cache), ("compile", compile)):  # "False", a true string, did the opposite
        if not isinstance(v, bool):
            raise ValueError(f"{name} must be True or False; got {v!r}.")


def check_tokens(idx, targets=None):
    """forward's inputs by type and shape only (no look at the values, which would wait for the device): else a
    float idx fails in the embedding, an empty batch in a reshape, and targets of idx's size in another shape
    (transposed) give a loss against the wrong tokens without a word."""
    for name, t in (("idx", idx), ("targets", targets)):
        if t is not None and not (torch.is_tensor(t) and t.dim() == 2 and t.dtype in (torch.long, torch.int)):
            what = f"a {t.dtype} tensor of shape {tuple(t.shape)}" if torch.is_tensor(t) else type(t).__name__
            raise ValueError(f"{name} must be a [B, T] tensor of token ids (int64 or int32); got {what}.")
    if idx.size(0) < 1 or idx.size(1) < 1:
        raise ValueError(f"idx [B, T] must hold at least one token (B, T >= 1); got shape {tuple(idx.shape)}.")
    if targets is not None and targets.shape != idx.shape:
        raise ValueError(f"targets must have idx's shape {tuple(idx.shape)}, the next token of each position; got "
                         f"{tuple(targets.shape)}.")


def out_of_vocab(name, t, vocab_size, ignored=""):
    """The sentence for token ids outside the vocabulary, which torch's embedding and cross-entropy report on CPU as
    an IndexError that names neither the argument nor the range."""
    return ValueError(f"{name} must hold token ids 0 .. {vocab_size - 1} (vocab_size = {vocab_size}){ignored}; got "
                      f"ids from {int(t.min())} to {int(t.max())}.")


def cache_length(prompt, new_tokens):
    """Positions generate's cache holds: the prompt and every new token but the last, which is never fed back."""
    return prompt + max(new_tokens - 1, 0)


def rope_tables(positions, head_dim, base):
    """[L] positions -> cos, sin [L, head_dim] of the rotate-half convention (GPT-NeoX, Llama): dimension i and
    i + head_dim/2 form a pair rotated by angle p base^(-2i/head_dim)."""
    inv = base ** (-torch.arange(0, head_dim, 2, device=positions.device) / head_dim)
    a = positions.float()[:, None] * inv
    a = torch.cat([a, a], dim=-1)
    return a.cos(), a.sin()


def rotate(x, cos, sin):
    """x [..., L, D] rotated pairwise by the tables of its L positions (rotate-half): norms are kept, and
    rotate(q, i) · rotate(k, j) depends on q, k and j - i only."""
    x1, x2 = x.chunk(2, dim=-1)
    return (x * cos + torch.cat([-x2, x1], dim=-1) * sin).to(x.dtype)


def linear_attention(q, k, v, causal, state=None, eps=1e-6):
    """Normalised linear attention with φ(x) = elu(x) + 1 (positive, so the denominator is > 0; eps guards it).
    q: [B, Hkv, G, T, D] (G query heads per key head), k, v: [B, Hkv, 1, T, D]. With `state` = (s, z) of the
    tokens before this chunk, they join every query and are advanced in place: that is the recurrent form, and
    for T = 1 it is exactly y = φ(q)ᵀ S_t / φ(q)ᵀ z_t. Causal cost: a [T, T] weight map per head, the memory of
    softmax attention without flash; bidirectional uses Σ φ(k) vᵀ directly, O(T D²) time and D² memory."""
    dev = q.device.type  # autocast asked only where it exists: on the meta device (shapes, FLOPs) it raised
    autocasting = torch.amp.is_autocast_available(dev) and torch.is_autocast_enabled(dev)
    if q.dtype == torch.float16 or autocasting and torch.get_autocast_dtype(dev) == torch.float16:
        # in float32: every weight φ(q)ᵀφ(k) is positive, about head_dim, so a row's sum passed float16's 65504 within
        # a block of 1024 tokens (inf, then inf / inf = NaN, a NaN loss and samples from it without a word)
        # off only where there is one: torch.autocast("meta", ...) raised for a float16 model there (shapes, FLOPs)
        with torch.autocast(dev, enabled=False) if torch.amp.is_autocast_available(dev) else contextlib.nullcontext():
            wide = None if state is None else [t.float() for t in state]
            y = linear_attention(q.float(), k.float(), v.float(), causal, wide, eps)
        for t, new in zip(state or (), wide or ()):
            t.copy_(new)  # the state advanced in place, in its own dtype
        return y.to(q.dtype)
    q, k = F.elu(q) + 1, F.elu(k) + 1
    if causal:
        a = (q @ k.transpose(-1, -2)).tril()                  # [B, Hkv, G, T, T]
        num, den = a @ v, a.sum(-1, keepdim=True)
    else:
        num, den = q @ (k.transpose(-1, -2) @ v), q @ k.sum(-2).unsqueeze(-1)
    if state is not None:
        s, z = state                                          # [B, Hkv, D, D], [B, Hkv, D]
        num = num + q @ s.unsqueeze(2)
        den = den + q @ z[:, :, None, :, None]
        s += (k.transpose(-1, -2) @ v).squeeze(2)
        z += k.sum(-2).squeeze(2)
    return num / (den + eps)


class CausalSelfAttention(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.n_head, self.n_kv_head = config.n_head, config.n_kv_head or config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.sources = SOURCES[config.proj]
        self.v_is_k = self.sources[1] == self.sources[2]
        self.attn, self.causal, self.pos_conv = config.attn, config.causal, config.pos_conv
        self.pos_conv_basis, self.block_size = config.pos_conv_basis, config.block_size
        self.pos_conv_period = config.pos_conv_period
        self.rope_base = config.rope_base if config.pos_emb == "rope" else None
        # one fused input projection holding exactly the weights the variant needs
        n_chunks = max(self.sources) + 1
        self.widths = [self.n_head * self.head_dim] + [self.n_kv_head * self.head_dim] * (n_chunks - 1)
        self.c_attn = nn.Linear(config.n_embd, sum(self.widths), bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        if self.pos_conv:  # (X)+: m -> 1 channels, shared by heads; 1/m keeps Σw = 1 at init (plain scores)
            self.conv = nn.Conv2d(self.pos_conv, 1, kernel_size=1)

    def project(self, x):
        """x [B, T, C] -> q [B, n_head, T, D], k, v [B, n_kv_head, T, D]; shared projections are the same tensor."""
        B, T, _ = x.shape
        chunks = [c.view(B, T, -1, self.head_dim).transpose(1, 2)
                  for c in self.c_attn(x).split(self.widths, dim=2)]
        return tuple(chunks[i] for i in self.sources)

    def pos_bias(self, pos, L, device):
        """(X)+ in its cheap form. P is fixed and the conv is linear, so conv(S + P) = (Σw) S + (P·w + b): a score
        scale and a learned [T, L] bias for queries pos..pos+T-1 over keys 0..L-1, computed without P itself.
        product: channel 4k + 2a + b is f_a(w_k i) f_b(w_k j) (f_0 = sin, f_1 = cos), so P·w = Σ_k f(i)ᵀ W_k f(j)
        with W_k the 2x2 block of those four weights: cos and sin of w_k (i - j) and of w_k (i + j), a bias that
        depends on both positions. concat: P = [f(i), f(j)], so P·w = a(i) + c(j); the softmax over keys cancels
        a(i) and b, which leaves a bias on the key position alone: it cannot tell which query asks."""
        m, w = self.pos_conv, self.conv.weight.view(-1)
        # angles in float32, the features in the weights' dtype: a model cast to half failed in the product
        f = pos_conv_features(L, self.block_size, m // 4, device, self.pos_conv_period).to(w.dtype)  # [L, K, 2]
        if self.pos_conv_basis == "concat":
            f = f.flatten(1)                                        # [L, m/2]
            return (f[pos:] @ w[:m // 2])[:, None] + (f @ w[m // 2:])[None, :] + self.conv.bias
        fq = torch.einsum("tka,kab->tkb", f[pos:], w.view(-1, 2, 2))  # f(i)ᵀ W_k for each query
        return fq.flatten(1) @ f.flatten(1).T + self.conv.bias

    def pos_conv_literal(self, s, pos=0):
        """The paper's (X)+ written out, for reading and tests: scores s [B, H, T, L] (queries pos..pos+T-1)
        broadcast over m channels, plus P [m, T, L], then the 1x1 conv back to [B, H, T, L]."""
        B, H, T, L = s.shape
        f = pos_conv_features(L, self.block_size, self.pos_conv // 4, s.device, self.pos_conv_period).to(s.dtype)
        if self.pos_conv_basis == "concat":
            f = f.flatten(1)
            P = torch.cat([f[pos:, None].expand(T, L, -1), f[None, :].expand(T, L, -1)], dim=-1).permute(2, 0, 1)
        else:
            P = torch.einsum("tka,lkb->kabtl", f[pos:], f).reshape(-1, T, L)
        return self.conv((s.unsqueeze(2) + P).flatten(0, 1)).view(B, H, T, L)

    def softmax_attention(self, q, k, v, pos):
        T, L = q.size(2), k.size(2)
        mask, is_causal = None, self.causal and T > 1
        if self.pos_conv:
            mask = self.pos_bias(pos, L, q.device).to(q.dtype)
            q = q * self.conv.weight.sum()
        # SDPA's is_causal assumes the queries start at 0; a tensor pos attends over the whole (partly empty) buffer
        if torch.is_tensor(pos) or (is_causal and (mask is not None or pos > 0)):
            allowed = torch.arange(L, device=q.device) <= (pos + torch.arange(T, device=q.device))[:, None]  # [T, L]
            mask = allowed if mask is None else mask.masked_fill(~allowed, float("-inf"))
            is_causal = False
        G = self.n_head // self.n_kv_head
        if T == 1 and G > 1:
            # one query per head: the G query heads of a KV head become G queries of one head, so SDPA reads each
            # KV head once (enable_gqa on CPU reads it once per query head); the [1, L] mask broadcasts over G.
            # reshape, not view: CUDA's SDPA returns [B, H_kv, G, D] with G and H_kv strided apart
            B, H, _, D = q.shape
            y = F.scaled_dot_product_attention(q.reshape(B, H // G, G, D), k, v, attn_mask=mask)
            return y.reshape(B, H, 1, D)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, enable_gqa=G > 1)

    def write_cache(self, cache, k, v, pos):
        """Store this chunk's k (and v) at pos..pos+T-1 -> what to attend over: the filled part for an int pos,
        the whole buffer for a tensor pos (softmax_attention masks the rest). V = K returns one tensor twice."""
        T = k.size(2)
        for name, new in (("k", k), ("v", v)):
            if name not in cache:
                continue
            if torch.is_tensor(pos):
                cache[name].index_copy_(2, pos + torch.arange(T, device=pos.device), new)
            else:
                cache[name][:, :, pos:pos + T] = new
        end = cache["k"].size(2) if torch.is_tensor(pos) else pos + T
        k = cache["k"][:, :, :end]
        return k, cache["v"][:, :, :end] if "v" in cache else k

    def forward(self, x, cache=None, pos=0, lengths=None):
        B, T, C = x.shape
        q, k, v = self.project(x)
        if self.attn == "linear":
            G = self.n_head // self.n_kv_head
            state = (cache["s"], cache["z"]) if cache is not None else None
            if state is not None:  # in the cache's dtype, as softmax's: a cache of another dtype failed
                q, k, v = (t.to(state[0].dtype) for t in (q, k, v))
            y = linear_attention(q.view(B, self.n_kv_head, G, T, -1), k.unsqueeze(2), v.unsqueeze(2),
                                 self.causal, state).view(B, self.n_head, T, -1).to(x.dtype)
        else:
            if self.rope_base:  # queries, and keys that are not also values, rotated by their own positions
                cos, sin = rope_tables(pos + torch.arange(T, device=x.device), self.head_dim, self.rope_base)
                q = rotate(q, cos, sin)
                if not self.v_is_k:
                    k = rotate(k, cos, sin)
            if cache is not None:  # write this chunk, then attend over everything cached so far
                k, v = self.write_cache(cache, k.to(cache["k"].dtype), v.to(cache["k"].dtype), pos)
                q = q.to(k.dtype)
            use_kernel = q.is_cuda if DECODE_KERNEL is None else DECODE_KERNEL
            if cache is not None and T == 1 and not self.pos_conv and use_kernel:
                from kernel import decode_attention  # here, not at the top: only this path needs triton
                rope = self.rope_base if self.v_is_k else None  # V = K: the kernel rotates each z tile it reads
                y = decode_attention(q[:, :, 0], cache["k"], cache.get("v"), lengths, rope_base=rope,
                                     positive_lengths=True).unsqueeze(2)  # [B, H, 1, D]; lengths: pos + 1
            else:
                if self.rope_base and self.v_is_k:  # V = K: cache and values hold the unrotated z; the scores
                    # see a rotated copy (SDPA's way; the kernel above rotates each tile in registers instead)
                    k = rotate(k, *rope_tables(torch.arange(k.size(2), device=x.device), self.head_dim,
                                               self.rope_base))
                y = self.softmax_attention(q, k, v, pos)
            y = y.to(x.dtype)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_dropout(self.c_proj(y))

    def new_cache(self, batch_size, max_len, dtype, device):
        shape = (batch_size, self.n_kv_head, self.head_dim)
        if self.attn == "linear":  # constant in max_len: the recurrent state
            return {"s": torch.zeros(*shape, self.head_dim, dtype=dtype, device=device),
                    "z": torch.zeros(*shape, dtype=dtype, device=device)}
        names = ("k",) if self.v_is_k else ("k", "v")
        return {n: torch.zeros(batch_size, self.n_kv_head, max_len, self.head_dim, dtype=dtype, device=device)
                for n in names}


class MLP(nn.Module):

    def __init__(self, config):
        super().__init__()
        n_inner = config.n_inner or 4 * config.n_embd
        self.c_fc = nn.Linear(config.n_embd, n_inner, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(n_inner, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, cache=None, pos=0, lengths=None):
        x = x + self.attn(self.ln_1(x), cache, pos, lengths)
        return x + self.mlp(self.ln_2(x))


def retie(model, incompatible_keys=None):
    """The output layer is the token embedding again after load_state_dict(..., assign=True) gave each name its own
    Parameter (a state dict's two names of the tied weight): each optimizer step moved it twice. The two names are
    one tensor in a saved state dict, two equal ones once converted ({k: v.half() ...}, as convert.py loads), and
    one name only with strict=False: the loaded one serves both. Two that differ are no tied model's."""
    wte, head = model.transformer.wte.weight, model.lm_head.weight
    missing = {k.rsplit(".", 2)[-2] for k in (incompatible_keys.missing_keys if incompatible_keys else ())}
    if not model.__dict__.pop("tied_before_load", True):  # untied (by config or by hand) stays so, as in GPT._apply
        if wte is not head and same_storage(wte, head):  # assign=True from a tied model's state dict: two Parameters
            # on one tensor, each optimizer step moved it twice (still tied, in a model that is not) without a word
            model.lm_head.weight = nn.Parameter(head.detach().clone(), requires_grad=head.requires_grad)
        return
    if wte is head or wte.shape != head.shape or missing >= {"lm_head", "wte"}:
        return
    if "lm_head" in missing:
        model.lm_head.weight = wte
    elif "wte" in missing:
        model.transformer.wte.weight = head
    elif "meta" in (wte.device.type, head.device.type):
        return
    elif same_storage(wte, head) or torch.equal(wte, head):
        model.transformer.wte.weight = head
    elif wte.dtype != head.dtype:  # one of the two names cast alone
        raise ValueError(f"the state dict holds transformer.wte.weight as {wte.dtype} and lm_head.weight as "
                         f"{head.dtype}, and this model ties them (tie_embeddings=True); cast both alike.")
    else:  # else two Parameters trained apart in a model whose config ties them, without a word
        raise untied_state(model)


def untied_state(model):
    # tied by hand: "build GPT with tie_embeddings=False" of a model built so
    if not model.__dict__.get("built", model.config).tie_embeddings:
        return ValueError("the state dict's transformer.wte.weight and lm_head.weight differ, and this model's were "
                          "tied by hand (its tie_embeddings=False): it is an untied model's; untie them first "
                          "(model.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().clone())).")
    return ValueError("the state dict's transformer.wte.weight and lm_head.weight differ, and this model ties "
                      "them (tie_embeddings=True): it is an untied model's; build GPT with tie_embeddings=False.")


def same_storage(a, b):
    # FSDP's shards (DTensor) have no storage of their own to compare, and the meta device none at all
    if "meta" in (a.device.type, b.device.type) or not type(a.data) is type(b.data) is torch.Tensor:
        return False
    ptr = lambda t: (t.untyped_storage().data_ptr(), t.storage_offset())
    return ptr(a) == ptr(b)


def note_tie(model, state_dict, prefix, *args):
    """Whether the weights were tied before a load, which retie restores only then."""
    tied = model.__dict__["tied_before_load"] = model.transformer.wte.weight is model.lm_head.weight
    # a plain load (no assign) copies both names into the one tied tensor, lm_head's last: an untied model's state
    # dict loaded as its output layer alone without a word, and retie sees one tensor after it (FSDP's shards: skipped)
    wte, head = (state_dict.get(prefix + k) for k in ("transformer.wte.weight", "lm_head.weight"))
    if tied and all(type(t) is torch.Tensor and t.device.type != "meta" for t in (wte, head)) and \
            wte.shape == head.shape and wte.dtype == head.dtype and not same_storage(wte, head) and \
            not torch.equal(wte, head):
        raise untied_state(model)


class GPT(nn.Module):

    def __init__(self, config):
        super().__init__()
        if not isinstance(config, GPTConfig):  # GPT(ckpt["model_args"]) was an AttributeError on a dict
            raise ValueError(f"GPT needs a GPTConfig, e.g. GPTConfig(**ckpt['model_args']); got "
                             f"{type(config).__name__}.")
        # checked again (replace runs __post_init__): a field set after GPTConfig() (config.n_head = 5) skipped its
        # check, and failed deep in the first forward, or, as causal = "False", built another model without a word.
        # A copy: a notebook that set a field of the same config to build the next model of a sweep
        # (cfg.block_size = 64; GPT(cfg)) changed this model's config under it, which then no longer described its
        # layers (a forward past the old block_size was an IndexError)
        self.config = config = replace(config)
        self.built = replace(config)  # what the layers are: model.config changed later no longer describes them
        wpe = {"wpe": nn.Embedding(config.block_size, config.n_embd)} if config.pos_emb == "learned" else {}
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            **wpe,
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.transformer.wte.weight = self.lm_head.weight
        self.register_load_state_dict_pre_hook(note_tie)  # untied too: see retie
        self.register_load_state_dict_post_hook(retie)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # GPT-2: residual projections scaled by 1/sqrt(2 n_layer)
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
            elif name.endswith("conv.weight"):
                nn.init.constant_(p, 1.0 / config.pos_conv)
            elif name.endswith("conv.bias"):
                nn.init.zeros_(p)

    def __setstate__(self, state):
        # a model pickled (torch.save(model)) before `built` and the load hooks were kept: its config as saved is what
        # its layers are, so model.config.block_size = 128 after torch.load is refused as in a new model (it was the
        # position table's IndexError), and load_state_dict(..., assign=True) keeps the tie (it trained apart)
        super().__setstate__(state)
        if "built" not in self.__dict__:
            self.built = replace(self.config)
        # and one pickled before either hook, or before note_tie: an untied one (by hand) was tied again by its load
        if note_tie not in [getattr(h, "hook", h) for h in self._load_state_dict_pre_hooks.values()]:
            self.register_load_state_dict_pre_hook(note_tie)
        if retie not in self._load_state_dict_post_hooks.values():
            self.register_load_state_dict_post_hook(retie)

    def _apply(self, fn, *args, **kwargs):
        # .to_empty() and .to() off the meta device make each module a new Parameter, one for each name of the tied
        # weight: the two then trained apart (num_params counted both) without a word
        tied = self.transformer.wte.weight is self.lm_head.weight  # untied by hand stays so
        super()._apply(fn, *args, **kwargs)
        if tied:
            self.transformer.wte.weight = self.lm_head.weight
        return self

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self):
        """Every parameter, position embeddings included, tied weights once."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx, targets=None, cache=None):
        """idx [B, T] -> logits [B, T, vocab], loss (mean cross-entropy vs targets, -1 ignored) or None.
        With a cache, idx continues the sequence from cache.pos, the cache advances by T, and only the last
        position's logits are computed, [B, 1, vocab]: a prompt never pays for a [T, vocab] output layer."""
        check_tokens(idx, targets)
        self.check_config()
        B, T = idx.shape
        if cache is not None and not isinstance(cache, Cache):  # a dict or list: an AttributeError on .pos
            raise ValueError(f"cache must be None or a Cache from model.new_cache(batch_size, max_len); got "
                             f"{type(cache).__name__}.")
        # one sentence, not torch's "Expected all tensors to be on the same device" from the embedding or SDPA (a
        # cache left at new_cache's default device="cpu" for a CUDA model)
        where = self.lm_head.weight.device
        for name, dev in (("idx", idx.device), ("cache", cache.lengths.device if isinstance(cache, Cache) else where)):
            if dev != where:
                raise ValueError(f"{name} is on {dev} and the model on {where}; "
                                 + (f"move it with idx.to('{where}')." if name == "idx" else
                                    f"make it with new_cache(..., device='{where}')."))
        pos = cache.pos if cache is not None else 0
        if cache is not None and cache.config is not self.config and cache.config != self.config:
            # a Q-K=V cache has no V: a QKV model would read its K as V without a word
            raise ValueError("the cache was made by another model (another GPTConfig); make it with this model's "
                             "new_cache(...).")
        if cache is not None and B != cache.lengths.size(0):
            raise ValueError(f"idx holds a batch of {B} but the cache was made for {cache.lengths.size(0)}; "
                             f"make it with new_cache({B}, ...).")
        if cache is not None and self.training and self.config.dropout > 0:  # a decode loop of one's own, as generate
            raise ValueError(f"a cached forward needs the model in eval mode: it is in training mode with dropout="
                             f"{self.config.dropout:g}, which would drop activations while decoding; call model.eval() "
                             f"first.")
        if cache is not None and targets is not None:
            raise ValueError("targets must be None with a cache: a cached forward returns the last position's "
                             "logits only; compute the loss without the cache.")
        limit = cache.max_len if cache is not None else self.config.block_size
        # set by hand (a rewind): -1 was the position table's IndexError, 2.0 the embedding's RuntimeError
        if not (torch.is_tensor(pos) or isinstance(pos, numbers.Integral) and not isinstance(pos, bool) and pos >= 0):
            raise ValueError(f"cache.pos must be an integer >= 0, the tokens already in the cache; got {pos!r}.")
        if not torch.is_tensor(pos) and pos + T > limit:  # a tensor pos is generate's compiled step, checked there
            raise ValueError(f"sequence of {pos + T} tokens is longer than the "
                             f"{'cache max_len' if cache is not None else 'block_size'} of {limit}.")
        if cache is not None and self.config.attn == "linear" and not torch.is_tensor(pos):
            check_state_position(cache, pos)
        lengths = None
        if cache is not None and T == 1:
            lengths = cache.lengths
            if torch.is_tensor(pos):
                lengths.copy_(pos + 1)
            else:
                lengths.fill_(pos + 1)
        try:  # on CPU (on CUDA an id out of range is a device-side assert; generate checks its prompt first)
            x = self.transformer.wte(idx)
        except IndexError:
            raise out_of_vocab("idx", idx, self.config.vocab_size) from None
        if "wpe" in self.transformer:
            x = x + self.transformer.wpe(pos + torch.arange(T, device=idx.device))
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache.layers[i] if cache is not None else None, pos, lengths)
        if cache is not None:
            cache.pos += T
            cache.end = None if torch.is_tensor(pos) else cache.pos
            x = x[:, -1:]
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = None
        if targets is not None:
            # in float32 also when FSDP computes in bf16 (autocast already runs cross_entropy in float32)
            # reshape: targets sliced from one batch of windows (batch[:, 1:]) are not contiguous; int32 ids as idx's
            try:
                loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1).long(),
                                       ignore_index=-1)
            except IndexError:
                raise out_of_vocab("targets", targets, self.config.vocab_size, ", or -1 (not scored)") from None
        return logits, loss

    def check_config(self):
        """model.config as built: model.config.block_size = 64, to try a longer context, was an IndexError in the
        position table, and a changed proj or dropout described a model other than the layers without a word."""
        built = self.__dict__.get("built")  # None only where __init__ never ran (__setstate__ sets it)
        if built is None or self.config == built:
            return
        self.config_changed(built)

    def config_changed(self, built):
        if not isinstance(self.config, GPTConfig):  # model.config = ckpt["model_args"]: an AttributeError on the dict
            raise ValueError(f"model.config was replaced by a {type(self.config).__name__} after the model was built; "
                             f"it is the GPTConfig of its layers (model.built holds it: model.config = "
                             f"dataclasses.replace(model.built)).")
        changed = next(f.name for f in fields(built) if getattr(self.config, f.name) != getattr(built, f.name))
        raise ValueError(f"model.config.{changed} was changed after the model was built ({getattr(built, changed)!r} "
                         f"-> {getattr(self.config, changed)!r}), and the layers are the old config's; build "
                         f"GPT(config) with the new one (its weights: this model's state_dict where their shapes "
                         f"agree, convert.convert_state_dict for proj or n_kv_head).")

    def kv_bytes_per_token(self, dtype=torch.bfloat16):
        """Cache bytes one more token of context costs, all layers (0 for linear attention: its state is fixed)."""
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"kv_bytes_per_token needs a torch.dtype, e.g. torch.bfloat16; got {dtype!r}.")
        self.check_config()  # model.config.n_layer = 24 after the build was counted as 24 layers without a word
        if self.config.attn == "linear":
            return 0
        a = self.transformer.h[0].attn
        return self.config.n_layer * a.n_kv_head * a.head_dim * (1 if a.v_is_k else 2) * dtype.itemsize

    def new_cache(self, batch_size, max_len, dtype=torch.float32, device="cpu"):
        """Pre-allocated decode buffers; dtype should be the dtype attention computes in."""
        self.check_config()
        whole = lambda n, least: isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= least
        if not (whole(batch_size, 1) and whole(max_len, 0)):
            raise ValueError(f"new_cache needs batch_size >= 1 and max_len >= 0, integers; got {batch_size!r} and "
                             f"{max_len!r}.")
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):  # int64 failed in the first write
            raise ValueError(f"new_cache needs a floating point dtype, the one attention computes in; got {dtype!r}.")
        if max_len > self.config.block_size:
            raise ValueError(f"max_len ({max_len}) must be <= block_size ({self.config.block_size}).")
        if not self.config.causal:
            raise ValueError("causal must be True for cached decoding: a bidirectional model's past depends on "
                             "its future.")
        return Cache([b.attn.new_cache(batch_size, max_len, dtype, device) for b in self.transformer.h], max_len,
                     torch.zeros(batch_size, dtype=torch.int32, device=device), self.config)

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, use_cache=True, compile=False):
        """Append max_new_tokens to idx [B, T]. temperature=0 is greedy (and below 1e-38, its limit). With the
        cache: one prefill, then one token per step; the prompt and every new token but the last (which is never
        fed back) must fit block_size. Without: full forward, context cropped to the last block_size tokens, the
        prompt's too. compile=True runs the one-token steps through torch.compile: the position is a tensor (see
        Cache), so one graph serves every step; the prefill stays eager."""
        self.check_config()
        check_sampling(idx, self.config.vocab_size, max_new_tokens, temperature, top_k, use_cache, compile)
        if self.training and self.config.dropout > 0:  # as eval.CheckpointLM: else it samples under dropout, and
            # greedy decoding gave other tokens on every call without a word
            raise ValueError(f"generate needs the model in eval mode: it is in training mode with dropout="
                             f"{self.config.dropout:g}, which would drop activations while sampling; call "
                             f"model.eval() first.")
        B, T = idx.shape
        bs = self.config.block_size
        if compile and (not use_cache or self.config.pos_conv):
            raise ValueError("compile=True needs use_cache=True and pos_conv=0: it compiles the cached one-token "
                             "step, and (X)+'s bias is built for an int position.")
        cache = None
        if use_cache:
            if T > bs:
                raise ValueError(f"prompt of {T} tokens is longer than block_size ({bs}); shorten the prompt or "
                                 f"pass use_cache=False to crop it.")
            positions = cache_length(T, max_new_tokens)
            if positions > bs:
                raise ValueError(f"prompt ({T}) + max_new_tokens ({max_new_tokens}) - 1 exceeds block_size ({bs}); "
                                 f"ask for fewer tokens or pass use_cache=False to crop the context.")
            dev = idx.device.type
            dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else self.lm_head.weight.dtype
            cache = self.new_cache(B, positions, dtype, idx.device)
        step, inp = self, idx
        for _ in range(max_new_tokens):
            logits, _ = step(inp if cache is not None else idx[:, -bs:], cache=cache)
            if compile and step is self:  # prefill done: the one-token steps from here on
                step = self.compiled_step(cache)
            logits = logits[:, -1, :]
            if temperature < 1e-38:  # 0, and the limit of temperatures float32 cannot divide by (they round to 0)
                nxt = logits.argmax(-1, keepdim=True)
            else:
                # in float32, from the largest logit: a logit over a small temperature (below 1e-38, or 1e-4 in
                # float16) overflowed to inf, and softmax's nan failed in multinomial; the probabilities are the same
                logits = logits.float()
                # top_k's cut from the logits before the division: a temperature of inf (float32's from 1e39 up)
                # made every logit 0, and top_k kept all of them
                low = logits < torch.topk(logits, min(top_k, logits.size(-1)))[0][:, [-1]] if top_k else None
                logits = (logits - logits.max(-1, keepdim=True).values) / temperature
                if low is not None:
                    logits[low] = -float("inf")
                nxt = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)
            idx = torch.cat((idx, nxt), dim=1)
            inp = nxt
        return idx

    def compiled_step(self, cache):
        """The one-token step of generate(compile=True): cache.pos becomes a [1] tensor, so every step has the same
        shapes, and forward goes through torch.compile (its graphs are kept on forward's code: later calls with
        the same shapes reuse them)."""
        cache.pos = torch.tensor([cache.pos], device=cache.lengths.device)
        return torch.compile(self.forward)

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        """AdamW; weight decay on matrices and embeddings (>= 2-D), not on biases, LayerNorm gains or the (X)+
        conv: its weights are a score scale and a positional bias, and decay would pull the scale toward 0."""
        params = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        decays = [p.dim() >= 2 and not n.endswith("attn.conv.weight") for n, p in params]
        groups = [{"params": [p for (_, p), d in zip(params, decays) if d], "weight_decay": weight_decay},
                  {"params": [p for (_, p), d in zip(params, decays) if not d], "weight_decay": 0.0}]
        fused = device_type == "cuda"
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=fused)

    def estimate_mfu(self, fwdbwd_per_iter, dt):
        """Model FLOPs utilisation vs the GPU's bf16 peak (PaLM appendix B); None off CUDA or on unknown GPUs."""
        dev = self.lm_head.weight.device
        if dev.type != "cuda":
            return None
        peak = peak_flops(torch.cuda.get_device_name(dev))
        if peak is None:
            return None
        return self.flops_per_token() * self.config.block_size * fwdbwd_per_iter / dt / peak

    def flops_per_token(self):
        """Training FLOPs per token (forward and backward, PaLM appendix B): 6 per weight the token is multiplied by,
        and 12 n_layer n_embd block_size for the scores and their weighted sum. An embedding lookup multiplies
        nothing: the position table and an untied token table are left out (a tied one is the output layer too); both
        were counted, which put an untied GPT-2 124M's MFU about a quarter too high."""
        self.check_config()  # the MFU of layers model.config no longer describes
        cfg, t = self.config, self.transformer
        # tied or not as the weights are, not as the config says: one untied by hand (retie's advice) or tied by hand
        # counted its token table as an output layer, or its output layer as a lookup (FSDP keeps the one Parameter)
        tied = t.wte.weight is self.lm_head.weight
        lookups = (t.wpe.weight.numel() if "wpe" in t else 0) + (0 if tied else t.wte.weight.numel())
        return 6 * (self.num_params() - lookups) + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size
