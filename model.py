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
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
from torch.nn import functional as F

# what the model refuses, one sentence each (checks.py). retie and note_tie by these names too: a model pickled
# before checks.py was split off names its load hooks model.retie and model.note_tie
from checks import (check_built, check_forward, check_generate, check_new_cache, check_optimizer, check_state_position,
                    config_fields, note_tie, out_of_vocab, restore_pickled, retie)

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
# None = for CUDA tensors, compiled (not under TRITON_INTERPRET=1), True = always (the tests, under TRITON_INTERPRET=1),
# False = never (SDPA).
DECODE_KERNEL = None


def compiled_kernel():
    """Whether Triton compiles kernel.py's kernels: TRITON_INTERPRET=1 left exported (the tests' CPU setting) ran a CUDA
    model's decode steps in numpy, which has no bfloat16, at the interpreter's speed."""
    from kernel import INTERPRETED  # here, not at the top: only the decode step needs triton
    return not INTERPRETED


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
        config_fields(self, {"proj": SOURCES, "attn": ATTNS, "pos_conv_basis": POS_CONV_BASES,
                             "pos_emb": POS_EMBS}, GPTConfig)  # checks.py: each field in range, one sentence each


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


def cache_length(prompt, new_tokens):
    """Positions generate's cache holds: the prompt and every new token but the last, which is never fed back."""
    return prompt + max(new_tokens - 1, 0)


def rope_tables(positions, head_dim, base):
    """[L] positions -> cos, sin [L, head_dim] of the rotate-half convention (GPT-NeoX, Llama): dimension i and
    i + head_dim/2 form a pair rotated by angle p base^(-2i/head_dim)."""
    # float: an int base past int64 (rope_base=10**30, which GPTConfig takes) was torch.pow's OverflowError
    inv = float(base) ** (-torch.arange(0, head_dim, 2, device=positions.device) / head_dim)
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
            # the kernel has no backward: a step under autograd (a loss through cached decoding) goes through SDPA,
            # or its attention's weights got no gradient, without a word
            decode = cache is not None and T == 1 and not self.pos_conv and not (
                torch.is_grad_enabled() and any(t.requires_grad for t in (q, *cache.values())))
            if decode and (q.is_cuda and compiled_kernel() if DECODE_KERNEL is None else DECODE_KERNEL):
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


class GPT(nn.Module):

    def __init__(self, config):
        super().__init__()
        if not isinstance(config, GPTConfig):  # GPT(ckpt["model_args"]) was an AttributeError on a dict
            raise ValueError(f"GPT needs a GPTConfig, e.g. GPTConfig(**ckpt['model_args']); got "
                             f"{type(config).__name__}.")
        # checked again (replace runs __post_init__): a field set after GPTConfig() skipped its check; and a copy: a
        # notebook that set a field of the same config to build a sweep's next model changed this one's under it
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
        self.register_load_state_dict_pre_hook(note_tie)  # untied too: see checks.retie
        self.register_load_state_dict_post_hook(retie)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # GPT-2: residual projections scaled by 1/sqrt(2 n_layer)
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
            elif name.endswith("conv.weight"):
                nn.init.constant_(p, 1.0 / config.pos_conv)
            elif name.endswith("conv.bias"):
                nn.init.zeros_(p)

    def __setstate__(self, state):  # torch.load of a model pickled by older code: see checks.restore_pickled
        super().__setstate__(state)
        restore_pickled(self)

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
        check_forward(self, idx, targets, cache, Cache)
        B, T = idx.shape
        pos = cache.pos if cache is not None else 0
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

    def kv_bytes_per_token(self, dtype=torch.bfloat16):
        """Cache bytes one more token of context costs, all layers (0 for linear attention: its state is fixed)."""
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"kv_bytes_per_token needs a torch.dtype, e.g. torch.bfloat16; got {dtype!r}.")
        check_built(self)  # model.config.n_layer = 24 after the build was counted as 24 layers without a word
        if self.config.attn == "linear":
            return 0
        a = self.transformer.h[0].attn
        return self.config.n_layer * a.n_kv_head * a.head_dim * (1 if a.v_is_k else 2) * dtype.itemsize

    def new_cache(self, batch_size, max_len, dtype=torch.float32, device="cpu"):
        """Pre-allocated decode buffers; dtype should be the dtype attention computes in."""
        check_new_cache(self, batch_size, max_len, dtype, device)
        return Cache([b.attn.new_cache(batch_size, max_len, dtype, device) for b in self.transformer.h], max_len,
                     torch.zeros(batch_size, dtype=torch.int32, device=device), self.config)

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, use_cache=True, compile=False):
        """Append max_new_tokens to idx [B, T]. temperature=0 is greedy (and below 1e-38, its limit). With the
        cache: one prefill, then one token per step; the prompt and every new token but the last (which is never
        fed back) must fit block_size. Without: full forward, context cropped to the last block_size tokens, the
        prompt's too. compile=True runs the one-token steps through torch.compile: the position is a tensor (see
        Cache), so one graph serves every step; the prefill stays eager."""
        check_generate(self, idx, max_new_tokens, temperature, top_k, use_cache, compile)
        B, T = idx.shape
        bs = self.config.block_size
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
        check_optimizer(weight_decay, learning_rate, betas)
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
        check_built(self)  # the MFU of layers model.config no longer describes
        cfg, t = self.config, self.transformer
        # tied or not as the weights are, not as the config says: one untied by hand (retie's advice) or tied by hand
        # counted its token table as an output layer, or its output layer as a lookup (FSDP keeps the one Parameter)
        tied = t.wte.weight is self.lm_head.weight
        lookups = (t.wpe.weight.numel() if "wpe" in t else 0) + (0 if tied else t.wte.weight.numel())
        return 6 * (self.num_params() - lookups) + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size
