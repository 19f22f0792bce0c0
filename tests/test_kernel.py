"""kernel.py under the Triton interpreter: decode_attention vs decode_attention_ref vs SDPA, and the model's
cached decoding through the kernel vs through SDPA; and both kernels compiled ahead of time for real GPUs.
On a GPU the same tests run the compiled kernels, bfloat16 too:
TRITON_INTERPRET=0 python -m pytest tests/test_kernel.py"""

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")  # no triton on macOS: the kernel is a Linux/CUDA path
import kernel  # noqa: E402
import model  # noqa: E402
from kernel import decode_attention, decode_attention_ref  # noqa: E402

# the interpreter runs kernels on CPU tensors (conftest.py sets it); without it they need CUDA tensors
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
DEVICE = "cpu" if INTERPRET else "cuda"
runs_kernels = pytest.mark.skipif(not INTERPRET and not torch.cuda.is_available(),
                                  reason="TRITON_INTERPRET=0 and no CUDA device: nothing can run the kernels")
DTYPES = [torch.float32, torch.float16] + ([] if INTERPRET else [torch.bfloat16])  # the interpreter has no bf16

BLOCK_N, T_MAX = 16, 40
# a single token, tails short of and past a tile, the full cache, and more than the cache (reads T_MAX)
LENGTHS = [1, BLOCK_N - 1, BLOCK_N + 1, T_MAX, T_MAX + 7]
TOL = {torch.float32: dict(atol=1e-5, rtol=1e-5), torch.float16: dict(atol=2e-3, rtol=2e-3),
       torch.bfloat16: dict(atol=2e-2, rtol=2e-2)}


def inputs(H, H_kv, D, dtype, separate_v, B=len(LENGTHS)):
    torch.manual_seed(0)
    q = torch.randn(B, H, D, dtype=dtype).to(DEVICE)
    k = torch.randn(B, H_kv, T_MAX, D, dtype=dtype).to(DEVICE)
    v = torch.randn(B, H_kv, T_MAX, D, dtype=dtype).to(DEVICE) if separate_v else None
    return q, k, v


def sdpa(q, k, v, lengths, scale=None):
    """The same attention through PyTorch's SDPA, float32, one query per sequence."""
    v = k if v is None else v
    T = k.size(2)
    mask = (torch.arange(T, device=k.device)[None, :] < lengths[:, None])[:, None, None, :]  # [B, 1, 1, T]
    y = F.scaled_dot_product_attention(q.float().unsqueeze(2), k.float(), v.float(), attn_mask=mask,
                                       scale=scale, enable_gqa=True)
    return y.squeeze(2)


def test_cpu_tensors_without_the_interpreter_are_refused_in_one_sentence(monkeypatch):
    # without TRITON_INTERPRET=1 at import, CPU tensors were Triton's "0 active drivers ([])" RuntimeError
    import kernel
    monkeypatch.setattr(kernel, "INTERPRETED", False)
    with pytest.raises(ValueError, match="runs on CUDA tensors, or on CPU under TRITON_INTERPRET=1 set before "
                                         "kernel.py is imported; got q on cpu"):
        decode_attention(torch.zeros(1, 2, 8), torch.zeros(1, 1, 4, 8))
    with pytest.raises(ValueError, match="must be on one device; got cpu, meta, None and None"):
        decode_attention(torch.zeros(1, 2, 8), torch.zeros(1, 1, 4, 8, device="meta"))


@pytest.mark.skipif(not INTERPRET, reason="the interpreter's own gap")
def test_bfloat16_under_the_interpreter_is_refused_not_garbage():
    # numpy has no bfloat16: the interpreted kernel returned values ~1e9 off the reference with no word
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1 runs the kernel in numpy, which has no bfloat16"):
        decode_attention(*inputs(2, 2, 32, torch.bfloat16, False)[:2])


@runs_kernels
def test_a_numpy_scale_is_a_number_like_any():
    # numbers.Real lets numpy's float32 through, and Triton refused it ("cannot convert ... to tensor"): a traceback
    q, k, _ = inputs(2, 2, 32, torch.float32, False)
    lengths = torch.tensor(LENGTHS, device=DEVICE)
    out = decode_attention(q, k, None, lengths, scale=np.float32(0.25))
    torch.testing.assert_close(out, decode_attention_ref(q, k, None, lengths, scale=0.25), atol=1e-4, rtol=1e-4)
    # and numpy's integers for the launch: np.int64(2) was refused as "must be an int ...; got 2"
    out = decode_attention(q, k, None, lengths, num_splits=np.int64(2), block_n=np.int64(BLOCK_N))
    torch.testing.assert_close(out, decode_attention_ref(q, k, None, lengths), atol=1e-4, rtol=1e-4)


@runs_kernels
@pytest.mark.parametrize("separate_v", [False, True], ids=["v=k", "v"])
@pytest.mark.parametrize("num_splits", [1, 3, 8])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("D", [32, 64])
@pytest.mark.parametrize("H, H_kv", [(2, 2), (8, 2), (4, 1)], ids=["mha", "gqa4", "mqa"])
def test_kernel_equals_reference_and_sdpa(H, H_kv, D, dtype, num_splits, separate_v):
    q, k, v = inputs(H, H_kv, D, dtype, separate_v)
    lengths = torch.tensor(LENGTHS, device=DEVICE)
    out = decode_attention(q, k, v, lengths, num_splits=num_splits, block_n=BLOCK_N)
    ref = decode_attention_ref(q, k, v, lengths)
    expect = sdpa(q, k, v, lengths)
    assert out.dtype == ref.dtype == dtype and out.shape == (len(LENGTHS), H, D)
    torch.testing.assert_close(ref.float(), expect, **TOL[dtype])
    torch.testing.assert_close(out.float(), expect, **TOL[dtype])


@runs_kernels
@pytest.mark.parametrize("num_splits", [1, 3])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("D", [32, 64])
@pytest.mark.parametrize("H, H_kv", [(2, 2), (8, 2), (4, 1)], ids=["mha", "gqa4", "mqa"])
def test_rope_kernel_rotates_z_for_the_scores_only(H, H_kv, D, dtype, num_splits):
    # the cache holds the unrotated z: keys are z rotated to their positions (model.rotate), values z itself
    q, z, _ = inputs(H, H_kv, D, dtype, separate_v=False)
    lengths = torch.tensor(LENGTHS, device=DEVICE)
    out = decode_attention(q, z, None, lengths, rope_base=100.0, num_splits=num_splits, block_n=BLOCK_N)
    keys = model.rotate(z.float(), *model.rope_tables(torch.arange(T_MAX, device=DEVICE), D, 100.0))
    ref = decode_attention_ref(q, keys.to(dtype), z, lengths)  # the caller rotates: keys z rotated, values z
    B, G = len(LENGTHS), H // H_kv
    mask = (torch.arange(T_MAX, device=DEVICE)[None, :] < lengths[:, None])[:, None, None, :]
    expect = F.scaled_dot_product_attention(q.float().view(B, H_kv, G, D), keys, z.float(), attn_mask=mask)
    torch.testing.assert_close(ref.float(), expect.reshape(B, H, D), **TOL[dtype])
    torch.testing.assert_close(out.float(), expect.reshape(B, H, D), **TOL[dtype])
    assert not torch.allclose(out.float(), decode_attention_ref(q, z, None, lengths).float(), **TOL[dtype])


@runs_kernels
def test_defaults_scale_and_strided_q():
    """lengths=None is the whole cache, scale is honoured, and q may be a view like the model's (no copy)."""
    _, k, v = inputs(8, 2, 32, torch.float32, separate_v=True)
    q = torch.randn(k.size(0), 3, 8, 32).to(DEVICE).transpose(1, 2)[:, :, 1]  # [B, H, D], strided as the model's
    assert not q.is_contiguous()
    full = torch.full((q.size(0),), T_MAX, device=DEVICE)
    torch.testing.assert_close(decode_attention(q, k, v, block_n=BLOCK_N), sdpa(q, k, v, full))
    torch.testing.assert_close(decode_attention(q, k, v, scale=0.5, block_n=BLOCK_N), sdpa(q, k, v, full, 0.5))
    torch.testing.assert_close(decode_attention_ref(q, k, v, scale=0.5), sdpa(q, k, v, full, 0.5))


@runs_kernels
@pytest.mark.parametrize("separate_v", [False, True])
def test_positions_past_lengths_are_never_read(separate_v):
    """A cache from torch.empty may hold NaN or inf past the lengths: the kernel never reads them, and the reference
    (0 weight times NaN) gave NaN where the kernel was right."""
    q, k, v = inputs(4, 2, 16, torch.float32, separate_v)
    lengths = torch.tensor([1, 9, 17, 30, 3], device=DEVICE)
    clean = decode_attention_ref(q, k, v, lengths)
    past = torch.arange(T_MAX, device=DEVICE)[None, None, :, None] >= lengths[:, None, None, None]
    k, v = (None if t is None else t.masked_fill(past, float("nan")) for t in (k, v))
    torch.testing.assert_close(decode_attention_ref(q, k, v, lengths), clean)
    torch.testing.assert_close(decode_attention(q, k, v, lengths, block_n=BLOCK_N), clean, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("args, field", [
    ((torch.zeros(2, 4, 8), torch.zeros(2, 3, 5, 8)), "H_kv"),
    ((torch.zeros(2, 4, 8), torch.zeros(2, 2, 5, 8), torch.zeros(2, 2, 6, 8)), "v_cache"),
    ((torch.zeros(2, 4, 8), torch.zeros(2, 2, 5, 8), None, torch.tensor([5])), "lengths"),
    ((torch.zeros(2, 4, 8), torch.zeros(2, 2, 5, 8, dtype=torch.float16)), "dtype"),
    ((torch.zeros(2, 4, 8), torch.zeros(2, 2, 5, 8), torch.zeros(2, 2, 5, 8), None, None, 1e4), "rope_base"),
    # float lengths: the kernel cut 3.7 to 3 positions, the reference masked 4; rope_base 0 ran as no rotation
    ((torch.zeros(2, 4, 8), torch.zeros(2, 2, 5, 8), None, torch.tensor([3.7, 5.0])), "integer tensor"),
    ((torch.zeros(2, 4, 8), torch.zeros(2, 2, 5, 8), None, None, None, 0.0), "rope_base must be a finite number > 1"),
    # a list was an AttributeError, num_splits 0 a ZeroDivisionError, block_n 48 the interpreter's own error
    ((torch.zeros(2, 4, 8), torch.zeros(2, 2, 5, 8), None, [5, 5]), "integer tensor"),
    # a bool mask (which positions are valid) was argmin's RuntimeError
    ((torch.zeros(2, 4, 8), torch.zeros(2, 2, 5, 8), None, torch.tensor([True, False])), "integer tensor"),
    ((torch.zeros(2, 4, 8), torch.zeros(2, 2, 5, 8), None, None, None, None, 0), "num_splits must be an int >= 1"),
    ((torch.zeros(2, 4, 8), torch.zeros(2, 2, 5, 8), None, None, None, None, None, 48), "block_n a power of two"),
    # an empty cache gave NaN where the reference gave 0, D = 0 a ZeroDivisionError, a tensor scale the interpreter's
    # cast error; a float64 v_cache was said to be q's and k_cache's float32 twice
    ((torch.zeros(2, 4, 8), torch.zeros(2, 2, 0, 8)), "T_max >= 1"),
    ((torch.zeros(2, 4, 0), torch.zeros(2, 2, 5, 0)), "D \\(>= 1\\)"),
    ((torch.zeros(2, 4, 8), torch.zeros(2, 2, 5, 8), None, None, torch.tensor(0.3)), "scale must be a finite number"),
    ((torch.zeros(2, 4, 8), torch.zeros(2, 2, 5, 8), torch.zeros(2, 2, 5, 8, dtype=torch.float64)), "torch.float64"),
    # no kv head was a ZeroDivisionError, integer or complex tensors Triton's own errors, a string base math's
    ((torch.zeros(2, 4, 8), torch.zeros(2, 0, 5, 8)), "H_kv must divide H"),
    ((torch.zeros(2, 4, 8, dtype=torch.int32), torch.zeros(2, 2, 5, 8, dtype=torch.int32)), "floating-point dtype"),
    ((torch.zeros(2, 4, 8, dtype=torch.complex64), torch.zeros(2, 2, 5, 8, dtype=torch.complex64)),
     "floating-point dtype"),
    ((torch.zeros(2, 4, 8), torch.zeros(2, 2, 5, 8), None, None, None, "1e4"), "rope_base must be a finite number"),
    ((torch.zeros(2, 4, 8), torch.zeros(2, 2, 5, 8), None, None, None, True), "rope_base must be a finite number"),
    # a length of 0 or below: NaN from the kernel and the reference, without a word
    ((torch.zeros(2, 4, 8), torch.zeros(2, 2, 5, 8), None, torch.tensor([3, 0])), "lengths must be >= 1.*0 at b = 1"),
    ((torch.zeros(2, 4, 8), torch.zeros(2, 2, 5, 8), None, torch.tensor([-2, 5], dtype=torch.int32)), "-2 at b = 0"),
    # a numpy array was an AttributeError on .dim()
    ((np.zeros((2, 4, 8), np.float32), torch.zeros(2, 2, 5, 8)), "q must be a torch tensor.*ndarray"),
    ((torch.zeros(2, 4, 8), torch.zeros(2, 2, 5, 8), np.zeros((2, 2, 5, 8))), "v_cache must be a torch tensor"),
])
def test_bad_inputs_name_the_field(args, field):
    kw = dict(zip(("rope_base", "num_splits", "block_n"), args[5:]))
    with pytest.raises(ValueError, match=field):
        decode_attention(*args[:5], **{k: v for k, v in kw.items() if v is not None})
    if field.startswith(("lengths must be >= 1", "-2")):  # the reference too
        with pytest.raises(ValueError, match=field):
            decode_attention_ref(*args[:4])


@runs_kernels
def test_lengths_past_int32_and_an_empty_batch_read_as_the_reference():
    # 2**40 wrapped to 0 in the kernel's int32 cast (NaN), where the reference reads the whole cache; a batch of 0
    # divided by zero in auto_splits
    q, k, _ = inputs(4, 2, 32, torch.float32, separate_v=False, B=2)
    lengths = torch.tensor([2 ** 40, 3], device=DEVICE)
    torch.testing.assert_close(decode_attention(q, k, None, lengths, block_n=BLOCK_N),
                               decode_attention_ref(q, k, None, lengths), **TOL[torch.float32])
    assert decode_attention(q[:0], k[:0], block_n=BLOCK_N).shape == (0, 4, 32)


@runs_kernels
def test_strided_or_expanded_int32_lengths_are_read_as_the_reference():
    # the kernel read lengths[b] at Lens + b: lengths[::2] gave the next sequence's length, .expand(B) memory past
    # the one-element tensor, both without a word
    q, k, _ = inputs(4, 2, 32, torch.float32, separate_v=False, B=2)
    for lengths in (torch.tensor([5, 1, 3, 1], dtype=torch.int32, device=DEVICE)[::2],
                    torch.tensor([2], dtype=torch.int32, device=DEVICE).expand(2)):
        torch.testing.assert_close(decode_attention(q, k, None, lengths, block_n=BLOCK_N),
                                   decode_attention_ref(q, k, None, lengths), **TOL[torch.float32])


@runs_kernels
def test_meta_tensors_grad_inputs_and_the_references_scale_are_one_sentence():
    q, k = torch.zeros(1, 2, 8, device=DEVICE), torch.zeros(1, 1, 4, 8, device=DEVICE)
    # the interpreter's "Cannot copy out of meta tensor" traceback
    with pytest.raises(ValueError, match="runs on CUDA tensors.*got q on meta"):
        decode_attention(q.to("meta"), k.to("meta"))
    # the output came back detached: gradients through it were silently lost
    with pytest.raises(ValueError, match="decode_attention has no backward"):
        decode_attention(q.requires_grad_(), k)
    with torch.no_grad():  # what the model does
        assert decode_attention(q, k, block_n=BLOCK_N).shape == (1, 2, 8)
    # the reference checked no scale: a string was a TypeError, NaN gave NaN; True was 1.0 in both, not 1/sqrt(D)
    for scale in ("0.5", float("nan"), True):
        with pytest.raises(ValueError, match="scale must be a finite number"):
            decode_attention_ref(q.detach(), k, scale=scale)
    with pytest.raises(ValueError, match="scale must be a finite number"):
        decode_attention(q.detach(), k, scale=True)


@runs_kernels
def test_scales_past_float32_or_of_fractions_and_meta_lengths():
    q, k = torch.randn(1, 2, 8, device=DEVICE), torch.randn(1, 1, 4, 8, device=DEVICE)
    # the kernel takes scale as a float32: 1e300 gave NaN from both without a word, 10**400 was an OverflowError
    for scale in (1e300, 10 ** 400):
        for f in (decode_attention, decode_attention_ref):
            with pytest.raises(ValueError, match="scale must be a finite number within float32's range"):
                f(q, k, scale=scale)
    # a Fraction is a number: tensor * Fraction was a TypeError in both
    torch.testing.assert_close(decode_attention(q, k, scale=Fraction(1, 3), block_n=BLOCK_N),
                               decode_attention_ref(q, k, scale=1 / 3), **TOL[torch.float32])
    # meta lengths have no values: the reference's shapes-only run (and the kernel's refusal) were .item()'s error
    m = [t.to("meta") for t in (q, k, torch.ones(1, dtype=torch.int32))]
    assert decode_attention_ref(m[0], m[1], None, m[2]).shape == (1, 2, 8)
    with pytest.raises(ValueError, match="got q on meta"):
        decode_attention(m[0], m[1], None, m[2])
    with pytest.raises(ValueError, match="rope_base must be a finite number"):
        decode_attention(q, k, rope_base=10 ** 400)


@runs_kernels
def test_a_cached_step_under_autograd_gives_sdpas_gradients(monkeypatch):
    # the kernel has no backward: with DECODE_KERNEL (or on CUDA) a loss through a cached one-token step gave the
    # attention's projection no gradient at all
    torch.manual_seed(0)
    gpt = model.GPT(model.GPTConfig(block_size=16, vocab_size=50, n_layer=1, n_head=2, n_embd=32, proj="qk_v"))
    gpt.to(DEVICE)
    grads = []
    for forced in (False, True):
        monkeypatch.setattr(model, "DECODE_KERNEL", forced)
        gpt.zero_grad(set_to_none=True)
        cache = gpt.new_cache(1, 8, device=DEVICE)
        with torch.no_grad():
            gpt(torch.zeros(1, 4, dtype=torch.long, device=DEVICE), cache=cache)
        gpt(torch.ones(1, 1, dtype=torch.long, device=DEVICE), cache=cache)[0].sum().backward()
        grads.append([p.grad for p in gpt.parameters()])
    assert all((a is None) == (b is None) for a, b in zip(*grads))
    for a, b in zip(*grads):
        if a is not None:
            torch.testing.assert_close(a, b)


@runs_kernels
@pytest.mark.parametrize("proj, n_kv_head, pos_emb", [("qkv", 0, "learned"), ("qk_v", 0, "learned"),
                                                      ("qk_v", 2, "learned"), ("qkv", 1, "learned"),
                                                      ("qk_v", 2, "rope"), ("qkv", 0, "rope")],
                         ids=["qkv", "qk_v", "qk_v-gqa2", "qkv-mqa", "qk_v-gqa2-rope", "qkv-rope"])
def test_model_greedy_decoding_through_kernel_equals_sdpa(proj, n_kv_head, pos_emb, monkeypatch):
    torch.manual_seed(0)
    cfg = model.GPTConfig(block_size=32, vocab_size=50, n_layer=2, n_head=4, n_embd=64, proj=proj,
                          n_kv_head=n_kv_head, pos_emb=pos_emb)
    gpt = model.GPT(cfg).to(DEVICE).eval()
    prompt = torch.randint(0, cfg.vocab_size, (2, 5)).to(DEVICE)
    monkeypatch.setattr(model, "DECODE_KERNEL", False)
    expect = gpt.generate(prompt, 6, temperature=0)
    calls = []
    monkeypatch.setattr(kernel, "decode_attention",
                        lambda *a, **kw: calls.append((id(a[3]), a[3].tolist())) or decode_attention(*a, **kw))
    monkeypatch.setattr(model, "DECODE_KERNEL", True)
    got = gpt.generate(prompt, 6, temperature=0)
    # every one-token step of every layer (the prefill stays on SDPA), all given the cache's one lengths tensor
    assert [c[1] for c in calls] == [[pos + 1] * 2 for pos in range(5, 10) for _ in range(cfg.n_layer)]
    assert len({c[0] for c in calls}) == 1
    assert torch.equal(got, expect)


def test_by_default_only_a_compiled_kernel_decodes(monkeypatch):
    # TRITON_INTERPRET=1 left exported (the tests' CPU setting) sent a CUDA model's decode steps through the
    # interpreter: numpy's refusal of bfloat16, or its speed reported as the model's tokens/s
    cfg = model.GPTConfig(block_size=16, vocab_size=50, n_layer=1, n_head=2, n_embd=32, proj="qk_v")
    gpt = model.GPT(cfg).to(DEVICE).eval()
    calls = []
    monkeypatch.setattr(kernel, "decode_attention", lambda *a, **kw: calls.append(1) or decode_attention(*a, **kw))
    for interpreted in (True, False):
        monkeypatch.setattr(kernel, "INTERPRETED", interpreted)
        assert model.compiled_kernel() is not interpreted
        calls.clear()
        gpt.generate(torch.zeros(1, 3, dtype=torch.long, device=DEVICE), 3, temperature=0)
        assert bool(calls) == (DEVICE == "cuda" and not interpreted)


def test_importing_model_needs_no_triton():
    code = "import sys, model; assert 'triton' not in sys.modules and 'kernel' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


# Ahead-of-time compilation for sm_80 and sm_90 needs no GPU, but it needs the real @triton.jit functions, which
# TRITON_INTERPRET=1 (conftest.py) replaces: so it runs in a subprocess without it, this file as the script.
AOT_CONSTS = dict(D=64, BLOCK_N=64, BLOCK_D=64)


def aot_compile(arch, dtype):
    """-> tt.load ops inside stage 1's loop for V = K and separate V; stage 2 compiled too (ptx and cubin)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    target = GPUTarget("cuda", arch, 32)

    def build(fn, types, consts):
        sig = {a: "constexpr" if a in consts else types.get(a, "i32") for a in fn.arg_names}
        compiled = triton.compile(ASTSource(fn, sig, consts), target=target)
        assert compiled.asm["cubin"], fn.__name__
        return compiled.asm["ttir"]

    f32 = dict(Acc="*fp32", M="*fp32", L="*fp32")
    loads = {}
    for name, v_is_k, rope in (("v=k", True, False), ("v", False, False), ("v=k rope", True, True)):
        types = dict(Q=f"*{dtype}", K=f"*{dtype}", V=f"*{dtype}", Lens="*i32", qk_scale="fp32", log2_base="fp32",
                     **f32)
        consts = dict(AOT_CONSTS, BLOCK_G=16, V_IS_K=v_is_k, ROPE=rope, PRECISION="tf32")
        if rope:
            consts["BLOCK_D"] = 32  # the kernel works on the two halves of each head
        ttir = build(kernel._attend_split, types, consts)
        loop = ttir[ttir.index("scf.for"):ttir.index("scf.yield")]
        loads[name] = loop.count("tt.load")
    # torch.compile's inductor passes Python floats to a user kernel as fp64 (generate(compile=True) on CUDA)
    build(kernel._attend_split, dict(types, qk_scale="fp64", log2_base="fp64"), consts)
    build(kernel._merge_splits, dict(Out=f"*{dtype}", **f32), dict(D=64, BLOCK_S=16, BLOCK_D=64))
    return loads


def test_kernels_compile_for_sm80_and_sm90_and_v_is_k_loads_one_tile_less():
    root = Path(__file__).parent.parent
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(PYTHONPATH=str(root), TRITON_DEFAULT_FP_FUSION="1")  # fusion: triton 3.9's default, set so it is quiet
    out = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    loads = json.loads(out.stdout.splitlines()[-1])
    # rope loads z as its two halves: the same bytes as one tile, and no tables (the angles are computed)
    assert loads == {f"sm{arch}-{dtype}": {"v=k": 1, "v": 2, "v=k rope": 2}
                     for arch in (80, 90) for dtype in ("bf16", "fp16")}


if __name__ == "__main__":
    print(json.dumps({f"sm{arch}-{dtype}": aot_compile(arch, dtype)
                      for arch in (80, 90) for dtype in ("bf16", "fp16")}))


def test_kernel_imports_no_project_file():
    # DESIGN: kernel.py stands alone (copied into another project with torch and triton only); pass 27 had it import
    # checks.finite for its scale and rope_base checks
    import ast
    root = Path(kernel.__file__).parent
    project = {p.stem for p in root.glob("*.py")} | {"experiments"}
    tree = ast.parse(Path(kernel.__file__).read_text())
    imported = {(n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
                for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    assert not imported & project, imported & project
