"""
Decode attention for one new token per sequence, in Triton, reading the K cache once when V = K.

Q-K=V halves the KV cache; this kernel turns that into half the bytes read per decoded token. Libraries such as
FlashAttention load a K tile and a V tile even when both are the same tensor; here each K tile is loaded once and
used for both products, q kᵀ and p k. With a separate v_cache the same kernel loads V tiles too, so one kernel
measures both the K=V path and the ordinary baseline.

Stage 1, one program per (batch, kv head, split): the G = H / H_kv query heads that share a kv head form one
[G, D] tile (GQA packing: the cache is read once per group, not once per query head), the program streams its
part of the sequence in BLOCK_N tiles with an online softmax in float32. Stage 2 merges the splits by their
running max and sum, i.e. their log-sum-exp (flash-decoding: long contexts with few heads still fill the GPU).
On CPU, Triton runs these kernels only under TRITON_INTERPRET=1 (set before triton is imported); that is how
the tests check them against decode_attention_ref.
"""

import math
import numbers

import torch
import triton
import triton.language as tl


@triton.jit
def _attend_split(Q, K, V, Lens, Acc, M, L, qk_scale, log2_base, split_len, T_max, G,
                  sqb, sqh, skb, skh, skt, svb, svh, svt, D: tl.constexpr,
                  BLOCK_G: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                  V_IS_K: tl.constexpr, ROPE: tl.constexpr, PRECISION: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)  # 64-bit offsets: a large cache holds more than 2^31 elements
    # torch.compile passes Python floats as fp64: in fp32, the loop's m, l and acc keep one type
    qk_scale, log2_base = tl.cast(qk_scale, tl.float32), tl.cast(log2_base, tl.float32)
    hk, s = tl.program_id(1), tl.program_id(2)
    n_split = tl.num_programs(2)
    g, n, d = tl.arange(0, BLOCK_G), tl.arange(0, BLOCK_N), tl.arange(0, BLOCK_D)
    # ROPE works on the two halves of each head (rotate-half pairs dimension i with i + D/2): BLOCK_D is then
    # the half's block, and d the offsets within a half
    HALF: tl.constexpr = D // 2 if ROPE else D
    g_ok, d_ok = g < G, d < HALF
    heads = hk * G + g  # the query heads of this kv head
    q_at = Q + b * sqb + heads[:, None] * sqh + d[None, :]
    q_ok = g_ok[:, None] & d_ok[None, :]
    q = tl.load(q_at, mask=q_ok, other=0.0)  # [G, D], or the first half under ROPE (the model rotated q)
    if ROPE:
        q2 = tl.load(q_at + HALF, mask=q_ok, other=0.0)
        inv = tl.exp2(-(2 * d / D) * log2_base)  # [HALF]: base^(-2i/D), the rotation speed of pair i
    start = s * split_len
    end = tl.minimum(start + split_len, tl.minimum(tl.load(Lens + b), T_max))  # never past the buffer
    m = tl.full([BLOCK_G], float("-inf"), tl.float32)
    l = tl.zeros([BLOCK_G], tl.float32)
    acc = tl.zeros([BLOCK_G, BLOCK_D], tl.float32)
    acc2 = tl.zeros([BLOCK_G, BLOCK_D], tl.float32)  # the second half's output under ROPE; unused otherwise
    for t0 in range(start, end, BLOCK_N):
        t = t0 + n
        tile_ok = (t < end)[:, None] & d_ok[None, :]
        k_at = K + b * skb + hk * skh + t[:, None] * skt + d[None, :]
        k = tl.load(k_at, mask=tile_ok, other=0.0)  # [N, D], or z's first half under ROPE
        if ROPE:  # V = K = z: both halves loaded once; a rotated copy in registers feeds the scores only
            k2 = tl.load(k_at + HALF, mask=tile_ok, other=0.0)
            angle = t[:, None].to(tl.float32) * inv[None, :]  # [N, HALF]
            c, sn = tl.cos(angle), tl.sin(angle)
            r1 = (k * c - k2 * sn).to(k.dtype)
            r2 = (k2 * c + k * sn).to(k.dtype)
            scores = tl.dot(q, tl.trans(r1), input_precision=PRECISION) + \
                tl.dot(q2, tl.trans(r2), input_precision=PRECISION)
        else:
            scores = tl.dot(q, tl.trans(k), input_precision=PRECISION)
        scores = tl.where((t < end)[None, :], scores * qk_scale, float("-inf"))  # [G, N], log2 units
        m_new = tl.maximum(m, tl.max(scores, 1))  # finite: every tile holds at least one valid position
        alpha = tl.exp2(m - m_new)
        p = tl.exp2(scores - m_new[:, None])
        l = l * alpha + tl.sum(p, 1)
        if V_IS_K:
            v = k  # the tile already in registers: K is read once for both products
        else:
            v = tl.load(V + b * svb + hk * svh + t[:, None] * svt + d[None, :], mask=tile_ok, other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        if ROPE:  # the values are z unrotated: the halves as loaded
            acc2 = acc2 * alpha[:, None] + tl.dot(p.to(k2.dtype), k2, input_precision=PRECISION)
        m = m_new
    # partials [B, H, n_split] (+ [D]); an empty split keeps m = -inf, l = 0, acc = 0 and weighs nothing in stage 2
    row = (b * G * tl.num_programs(1) + heads) * n_split + s
    tl.store(M + row, m, mask=g_ok)
    tl.store(L + row, l, mask=g_ok)
    tl.store(Acc + row[:, None] * D + d[None, :], acc, mask=q_ok)
    if ROPE:
        tl.store(Acc + row[:, None] * D + HALF + d[None, :], acc2, mask=q_ok)


@triton.jit
def _merge_splits(Acc, M, L, Out, n_split, sob, soh,
                  D: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr):
    b, h = tl.program_id(0), tl.program_id(1)
    s, d = tl.arange(0, BLOCK_S), tl.arange(0, BLOCK_D)
    s_ok, d_ok = s < n_split, d < D
    row = (b * tl.num_programs(1) + h) * n_split + s
    m = tl.load(M + row, mask=s_ok, other=float("-inf"))
    l = tl.load(L + row, mask=s_ok, other=0.0)
    acc = tl.load(Acc + row[:, None] * D + d[None, :], mask=s_ok[:, None] & d_ok[None, :], other=0.0)
    w = tl.exp2(m - tl.max(m, 0))  # rescale every split to the common max: a log-sum-exp merge
    out = tl.sum(w[:, None] * acc, 0) / tl.sum(w * l, 0)
    tl.store(Out + b * sob + h * soh + d, out.to(Out.dtype.element_ty), mask=d_ok)


# whether triton.jit made interpreted kernels: decided when this module was imported, by TRITON_INTERPRET then
INTERPRETED = type(_attend_split).__name__ == "InterpretedFunction"


def auto_splits(batch, n_kv_head, t_max, block_n, device):
    """Split the sequence until about two programs per SM are running, never into pieces shorter than a tile."""
    sms = torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 1
    return max(1, min(triton.cdiv(2 * sms, batch * n_kv_head), triton.cdiv(t_max, block_n)))


def check_inputs(q, k_cache, v_cache, lengths, positive_lengths=False):
    # a numpy array or a list was an AttributeError on .dim()
    for name, t in (("q", q), ("k_cache", k_cache), ("v_cache", v_cache)):
        if not (torch.is_tensor(t) or name == "v_cache" and t is None):
            raise ValueError(f"{name} must be a torch tensor{' (or None for V = K)' if name == 'v_cache' else ''}; "
                             f"got {type(t).__name__} (torch.as_tensor converts a numpy array).")
    if q.dim() != 3 or k_cache.dim() != 4:
        raise ValueError(f"q must be [B, H, D] and k_cache [B, H_kv, T_max, D]; got {tuple(q.shape)} and "
                         f"{tuple(k_cache.shape)}.")
    B, H, D = q.shape
    # an empty cache or head: the kernel gave NaN (or divided by D = 0) where the reference gave 0
    # H_kv = 0 was a ZeroDivisionError in the modulo
    if k_cache.size(0) != B or k_cache.size(3) != D or k_cache.size(1) < 1 or H % k_cache.size(1) or D < 1 or \
            k_cache.size(2) < 1:
        raise ValueError(f"k_cache {tuple(k_cache.shape)} must match q {tuple(q.shape)} in B and D (>= 1), its "
                         f"H_kv must divide H, and it must hold T_max >= 1 positions.")
    if v_cache is not None and v_cache.shape != k_cache.shape:
        raise ValueError(f"v_cache must have k_cache's shape {tuple(k_cache.shape)} (or be None for V = K); "
                         f"got {tuple(v_cache.shape)}.")
    if lengths is not None and (not torch.is_tensor(lengths) or lengths.shape != (B,) or lengths.is_floating_point()
                                or lengths.is_complex() or lengths.dtype == torch.bool):  # a list: AttributeError
        # float lengths: the kernel cut 3.7 to 3 positions where the reference masks 4, a silent disagreement; a bool
        # mask was argmin's "does not support bool input"
        raise ValueError(f"lengths must be a [B] = [{B}] integer tensor of valid positions; got "
                         f"{f'{tuple(lengths.shape)} {lengths.dtype}' if torch.is_tensor(lengths) else lengths}.")
    if len({t.device for t in (q, k_cache, v_cache, lengths) if torch.is_tensor(t)}) > 1:  # Triton's own error
        raise ValueError(f"q, k_cache, v_cache and lengths must be on one device; got {q.device}, {k_cache.device}, "
                         f"{None if v_cache is None else v_cache.device} and "
                         f"{lengths.device if torch.is_tensor(lengths) else None}.")
    # a length of 0 or below leaves a query nothing to attend over: NaN from both, without a word; the model's lengths
    # (pos + 1) skip the check, whose read of the tensor waits for the GPU in every layer's decode step
    # (meta lengths have no values to read: the reference's shapes-only run, and the kernel's refusal of meta, were
    # .item()'s RuntimeError here)
    if lengths is not None and not positive_lengths and lengths.numel() and not lengths.is_meta and \
            (low := int(lengths.min())) < 1:
        raise ValueError(f"lengths must be >= 1 (each query attends over its first lengths[b] cached positions); "
                         f"got {low} at b = {int(lengths.argmin())}.")
    if q.dtype != k_cache.dtype or (v_cache is not None and v_cache.dtype != k_cache.dtype) or \
            not q.is_floating_point():  # integers were Triton's "Unsupported lhs dtype", complex a KeyError
        raise ValueError(f"q, k_cache and v_cache must share one floating-point dtype; got {q.dtype}, "
                         f"{k_cache.dtype} and {None if v_cache is None else v_cache.dtype}.")


def real(x):
    """x as a finite float, or None: not a number (a string, a tensor, a bool), NaN, inf, or an integer past float's
    range (10**400 was math.isfinite's OverflowError). Here, not from checks.py: kernel.py imports no project file."""
    if not isinstance(x, numbers.Real) or isinstance(x, bool):
        return None
    try:
        x = float(x)  # a Fraction was the reference's TypeError in tensor * Fraction
    except OverflowError:
        return None
    return x if math.isfinite(x) else None


def check_scale(scale):
    """scale as a float (None stays None), or one sentence."""
    # the kernel takes scale * log2(e) as a float32: 1e300 (or 10**400) was inf there, NaN out of both
    s = real(scale)
    if scale is not None and (s is None or abs(s) * math.log2(math.e) > torch.finfo(torch.float32).max):
        # a tensor failed in the interpreter's cast, NaN gave NaN (the reference's too: a string was a TypeError);
        # scale=True ("scale the scores") ran as 1.0 where None is 1/sqrt(D), without a word
        raise ValueError(f"scale must be a finite number within float32's range (None: 1/sqrt(D)); got {scale!r}.")
    return s


def dense_rows(t):
    """The kernel reads each head's D values as contiguous; the model's q is a transposed view that already is."""
    return t if t.stride(-1) == 1 else t.contiguous()


def decode_attention(q, k_cache, v_cache=None, lengths=None, scale=None, *, rope_base=None, num_splits=None,
                     block_n=64, positive_lengths=False):
    """q [B, H, D] attends over the first lengths[b] positions of k_cache [B, H_kv, T_max, D] (and v_cache of the
    same shape; None means V = K). lengths: int tensor [B], each >= 1 (longer than T_max reads T_max), default
    T_max. rope_base (V = K only): the cache holds the unrotated z, q is already rotated to its position, and each
    z tile is rotated by its positions (rotate-half, as model.rotate) for the scores, while the values stay z.
    Returns [B, H, D] in q's dtype. num_splits and block_n tune the launch; by default auto_splits.
    positive_lengths: the caller vouches every length >= 1 (the model), which skips the check that reads them.
    No backward: call it under torch.no_grad() (inputs that require grad are refused otherwise)."""
    check_inputs(q, k_cache, v_cache, lengths, positive_lengths)
    if rope_base is not None and (v_cache is not None or q.size(-1) % 2):
        raise ValueError("rope_base is for V = K (v_cache None) with an even head dim: with a separate V, cache "
                         "the rotated keys and pass rope_base=None.")
    scale = check_scale(scale)
    # 0 ran unrotated, as no RoPE; a string was math.isfinite's TypeError (a bool is no base either)
    if rope_base is not None and not ((b := real(rope_base)) is not None and b > 1):
        raise ValueError(f"rope_base must be a finite number > 1, as GPTConfig's; got {rope_base}.")
    # numpy's integers too: np.int64(2) was refused as "got 2", an int to the eye
    whole = lambda n: isinstance(n, numbers.Integral) and not isinstance(n, bool)
    if not (whole(num_splits) and num_splits >= 1 or num_splits is None) or \
            not (whole(block_n) and block_n >= 16 and block_n & (block_n - 1) == 0):
        # 0 was a ZeroDivisionError, 48 the interpreter's "arange's range must be a power of 2"
        raise ValueError(f"num_splits must be an int >= 1 (or None) and block_n a power of two >= 16 (tl.dot's "
                         f"least tile); got {num_splits!r} and {block_n!r}.")
    num_splits, block_n = None if num_splits is None else int(num_splits), int(block_n)
    # Triton's "0 active drivers" (or "cpu tensor?" beside a GPU); meta tensors were the interpreter's "Cannot copy
    # out of meta tensor"
    if not q.is_cuda and not (INTERPRETED and q.device.type == "cpu"):
        raise ValueError(f"decode_attention runs on CUDA tensors, or on CPU under TRITON_INTERPRET=1 set before "
                         f"kernel.py is imported; got q on {q.device}.")
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (q, k_cache, v_cache)):
        # the output came back detached: a loss through it trained nothing before this call, without a word
        raise ValueError("decode_attention has no backward (a decode kernel): call it under torch.no_grad(), or "
                         "detach q and the caches; for gradients use decode_attention_ref.")
    if INTERPRETED and q.dtype == torch.bfloat16:  # the interpreter runs in numpy, which has no bfloat16: garbage
        raise ValueError("TRITON_INTERPRET=1 runs the kernel in numpy, which has no bfloat16 (the output was "
                         "garbage, ~1e9 off); give float16 or float32 tensors, or run on CUDA without it.")
    B, H, D = q.shape
    H_kv, T_max = k_cache.size(1), k_cache.size(2)
    G = H // H_kv
    if B == 0:  # no programs to launch (auto_splits divided by the batch)
        return q.new_empty(0, H, D)
    # wider ints clamped: a length past int32 wrapped in the cast below (2**40 to 0 positions: NaN, where the
    # reference reads the whole cache, as the docstring says); the model's int32 tensor goes through untouched
    # (no allocation per layer and step). The kernel reads lengths[b] at Lens + b: a strided or expanded int32 tensor
    # (lengths[::2], .expand(B)) gave another sequence's length, or memory past the tensor, without a word
    lengths = torch.full((B,), T_max, device=q.device) if lengths is None else \
        lengths.contiguous() if lengths.dtype == torch.int32 else lengths.long().clamp(max=T_max)
    if num_splits is None:
        num_splits = auto_splits(B, H_kv, T_max, block_n, q.device)
    split_len = triton.cdiv(triton.cdiv(T_max, num_splits), block_n) * block_n
    q, k_cache = dense_rows(q), dense_rows(k_cache)
    v = k_cache if v_cache is None else dense_rows(v_cache)
    scale = 1.0 / math.sqrt(D) if scale is None else float(scale)  # a numpy float32 was Triton's TypeError
    acc = torch.empty(B, H, num_splits, D, dtype=torch.float32, device=q.device)
    m = torch.empty(B, H, num_splits, dtype=torch.float32, device=q.device)
    l = torch.empty_like(m)
    block_d = max(16, triton.next_power_of_2(D))  # tl.dot needs every dimension >= 16
    _attend_split[(B, H_kv, num_splits)](
        q, k_cache, v, lengths.to(torch.int32), acc, m, l, scale * math.log2(math.e),
        math.log2(rope_base) if rope_base else 0.0, split_len, T_max, G,
        q.stride(0), q.stride(1), k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        v.stride(0), v.stride(1), v.stride(2), D=D,
        BLOCK_G=max(16, triton.next_power_of_2(G)), BLOCK_N=block_n,
        BLOCK_D=max(16, triton.next_power_of_2(D // 2)) if rope_base else block_d,
        V_IS_K=v_cache is None, ROPE=rope_base is not None,
        PRECISION="ieee" if q.dtype == torch.float32 else "tf32")  # tf32 is ignored for 16-bit inputs
    out = torch.empty(B, H, D, dtype=q.dtype, device=q.device)
    _merge_splits[(B, H)](acc, m, l, out, num_splits, out.stride(0), out.stride(1),
                          D=D, BLOCK_S=triton.next_power_of_2(num_splits), BLOCK_D=block_d)
    return out


def decode_attention_ref(q, k_cache, v_cache=None, lengths=None, scale=None):
    """Plain torch, float32 math, the same contract as decode_attention without rope_base: for its rope path
    the caller passes the rotated z as k_cache and z itself as v_cache."""
    check_inputs(q, k_cache, v_cache, lengths)
    scale = check_scale(scale)
    B, H, D = q.shape
    H_kv, T_max = k_cache.size(1), k_cache.size(2)
    v = (k_cache if v_cache is None else v_cache).float().repeat_interleave(H // H_kv, dim=1)  # [B, H, T_max, D]
    k = k_cache.float().repeat_interleave(H // H_kv, dim=1)
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    valid = None if lengths is None else torch.arange(T_max, device=q.device)[None, :] < lengths[:, None]  # [B, T_max]
    if valid is not None:  # rows past a length are never read, as in the kernel: a cache from torch.empty holds NaN
        # or inf there, and their 0 weight times NaN made the reference NaN where the kernel was right
        k, v = (t.masked_fill(~valid[:, None, :, None], 0) for t in (k, v))
    scores = torch.einsum("bhd,bhtd->bht", q.float(), k) * scale
    if valid is not None:
        scores = scores.masked_fill(~valid[:, None, :], float("-inf"))
    return torch.einsum("bht,bhtd->bhd", scores.softmax(-1), v).to(q.dtype)


if __name__ == "__main__":  # a library: run as a script it would exit 0 having run nothing
    raise SystemExit("kernel.py is a library, not a command: the model calls it in every cached decode step on CUDA; "
                     "measure it with bench.py --what=kernel --device=cuda, test it with python -m pytest "
                     "tests/test_kernel.py.")
