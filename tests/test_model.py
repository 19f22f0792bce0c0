"""model.py: every projection variant x GQA/MQA x softmax/linear x (X)+, checked against formulas written here."""

import copy
import io
import math
from fractions import Fraction
from dataclasses import asdict, dataclass
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from model import GPT, SOURCES, GPTConfig

N_HEAD, N_EMBD, VOCAB, BLOCK = 4, 32, 50, 32
VARIANTS = [(p, kv) for p in SOURCES for kv in (0, 2, 1) if p in ("qkv", "qk_v") or kv == 0]


def tiny(**kw):
    args = dict(block_size=BLOCK, vocab_size=VOCAB, n_layer=2, n_head=N_HEAD, n_embd=N_EMBD)
    torch.manual_seed(0)
    return GPT(GPTConfig(**{**args, **kw})).eval()


def phi(x):
    return F.elu(x) + 1


def heads(x, n):  # [B, T, n * D] -> [B, n, T, D]
    B, T, _ = x.shape
    return x.view(B, T, n, -1).transpose(1, 2)


def paper_qkv(attn, x):
    """q, k, v from explicit slices of the fused weight, as the paper defines each variant."""
    H, Hkv, D = attn.n_head, attn.n_kv_head, attn.head_dim
    W, b = attn.c_attn.weight, attn.c_attn.bias
    wq, rest = (W[:H * D], b[:H * D]), (W[H * D:], b[H * D:])
    lin = lambda wb, lo, n: heads(x @ wb[0][lo:lo + n].T + wb[1][lo:lo + n], n // D)
    q = lin(wq, 0, H * D)
    proj = {v: k for k, v in SOURCES.items()}[attn.sources]
    if proj == "qkv":
        return q, lin(rest, 0, Hkv * D), lin(rest, Hkv * D, Hkv * D)
    if proj == "qk_v":
        k = lin(rest, 0, Hkv * D)
        return q, k, k
    if proj == "q_kv":
        return q, q, lin(rest, 0, H * D)
    return q, q, q


def merge(y):  # [B, H, T, D] -> [B, T, H * D]
    return y.transpose(1, 2).flatten(2)


def decode_logits(model, idx, prefill, tensor_pos=False):
    """Logits of positions prefill-1 .. T-1: a prefill of `prefill` tokens (its last position only), then one token
    per step through the cache; tensor_pos continues as generate's compiled step does, at a tensor position."""
    cache = model.new_cache(idx.size(0), idx.size(1))
    out = [model(idx[:, :prefill], cache=cache)[0]]
    if tensor_pos:
        cache.pos = torch.tensor([cache.pos])
    out += [model(idx[:, t:t + 1], cache=cache)[0] for t in range(prefill, idx.size(1))]
    assert all(o.shape == (idx.size(0), 1, model.config.vocab_size) for o in out)
    return torch.cat(out, dim=1)


# ---------------------------------------------------------------- variants, shapes, parameters

@pytest.mark.parametrize("attn", ["softmax", "linear"])
@pytest.mark.parametrize("proj,kv", VARIANTS)
def test_forward_backward_reaches_every_parameter(proj, kv, attn):
    model = tiny(proj=proj, n_kv_head=kv, attn=attn).train()
    idx = torch.randint(0, VOCAB, (2, 16))
    logits, loss = model(idx, targets=idx)
    assert logits.shape == (2, 16, VOCAB) and torch.isfinite(loss)
    assert model(idx)[1] is None and model(idx)[0].shape == (2, 16, VOCAB)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def closed_form_params(proj, kv, n_layer=2, C=N_EMBD, V=VOCAB, T=BLOCK, H=N_HEAD, pos_conv=0):
    D, Hkv = C // H, kv or H
    width = {"qkv": H * D + 2 * Hkv * D, "qk_v": H * D + Hkv * D, "q_kv": 2 * H * D, "q_k_v": H * D}[proj]
    layer = 2 * C + (C * width + width) + (C * C + C) + 2 * C + (C * 4 * C + 4 * C) + (4 * C * C + C)
    conv = pos_conv + 1 if pos_conv else 0
    return V * C + T * C + n_layer * (layer + conv) + 2 * C


@pytest.mark.parametrize("proj,kv", VARIANTS)
def test_parameter_count_is_the_closed_form(proj, kv):
    model = tiny(proj=proj, n_kv_head=kv)
    assert model.num_params() == closed_form_params(proj, kv)


def test_each_variant_holds_only_its_own_projections():
    D = N_EMBD // N_HEAD
    rows = {p: tiny(proj=p).transformer.h[0].attn.c_attn.weight.shape[0] for p in SOURCES}
    assert rows == {"qkv": 3 * N_EMBD, "qk_v": 2 * N_EMBD, "q_kv": 2 * N_EMBD, "q_k_v": N_EMBD}
    assert tiny(proj="qk_v", n_kv_head=1).transformer.h[0].attn.c_attn.weight.shape[0] == N_EMBD + D


def test_qkv_is_gpt2_naming_and_untied_head_is_separate():
    names = set(dict(tiny().named_parameters()))
    assert {"transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.attn.c_attn.weight",
            "transformer.h.0.attn.c_proj.weight", "transformer.h.0.mlp.c_fc.weight", "transformer.ln_f.weight"} <= names
    untied = tiny(tie_embeddings=False)
    assert untied.num_params() == closed_form_params("qkv", 0) + VOCAB * N_EMBD


def test_the_tie_survives_a_meta_device_start():
    # GPT() on the meta device, then load_state_dict(assign=True) or to_empty(): each name of the tied weight became
    # its own Parameter, which trained apart (3 AdamW steps: logits 0.77 off) and num_params counted twice
    model, idx = tiny(proj="qk_v"), torch.randint(0, VOCAB, (2, 9))
    for start in (lambda m: m.load_state_dict(model.state_dict(), assign=True),
                  lambda m: m.to_empty(device="cpu").load_state_dict(model.state_dict())):
        with torch.device("meta"):
            loaded = GPT(model.config)
        start(loaded)
        assert loaded.lm_head.weight is loaded.transformer.wte.weight
        assert loaded.num_params() == model.num_params()
        torch.testing.assert_close(loaded.eval()(idx)[0], model(idx)[0])
    state = model.state_dict()
    # a state dict cast on the way ({k: v.half() ...}) holds the two names as two equal tensors, strict=False one
    # of them: each still loaded as two Parameters; two that differ are an untied model's, refused
    for sd in ({k: v.clone() for k, v in state.items()}, {k: v for k, v in state.items() if k != "lm_head.weight"},
               {k: v for k, v in state.items() if k != "transformer.wte.weight"}):
        with torch.device("meta"):
            loaded = GPT(model.config)
        loaded.load_state_dict(sd, assign=True, strict=False)
        assert loaded.lm_head.weight is loaded.transformer.wte.weight
    with torch.device("meta"):
        loaded = GPT(model.config)
    with pytest.raises(ValueError, match="differ, and this model ties them"):
        loaded.load_state_dict({**state, "lm_head.weight": state["lm_head.weight"] + 1}, assign=True)
    with torch.device("meta"):
        loaded = GPT(model.config)
    with pytest.raises(ValueError, match="holds transformer.wte.weight as torch.float32 and lm_head.weight as "
                                         "torch.float16, and this model ties them"):  # one name cast alone
        loaded.load_state_dict({**state, "lm_head.weight": state["lm_head.weight"].half()}, assign=True)
    untied = tiny()  # untied by hand stays so through a cast
    untied.lm_head.weight = torch.nn.Parameter(untied.lm_head.weight + 1)
    assert untied.double().lm_head.weight is not untied.transformer.wte.weight
    untied.load_state_dict({k: t.clone() for k, t in untied.state_dict().items()})  # and through a load of its own
    assert untied.lm_head.weight is not untied.transformer.wte.weight
    # an untied model (by config, or by hand) given a tied model's state dict with assign=True: its two names are
    # one tensor, loaded as two Parameters on it, which each AdamW step moved twice, still tied, without a word
    by_hand = tiny(proj="qk_v")
    by_hand.lm_head.weight = torch.nn.Parameter(by_hand.lm_head.weight + 1)
    for loaded in (tiny(proj="qk_v", tie_embeddings=False), by_hand):
        loaded.load_state_dict(state, assign=True)
        wte, head = loaded.transformer.wte.weight, loaded.lm_head.weight
        assert wte.data_ptr() != head.data_ptr() and torch.equal(wte, head) and head.requires_grad
    tied = tiny(proj="qk_v", tie_embeddings=False)  # tied by hand: told to build it untied, as it was
    tied.lm_head.weight = tied.transformer.wte.weight
    with pytest.raises(ValueError, match=r"this model's were tied by hand \(its tie_embeddings=False\): it is an "
                                         r"untied model's; untie them first"):
        tied.load_state_dict({**state, "lm_head.weight": state["lm_head.weight"] + 1}, assign=True)
    # the same without assign=True (load_state_dict's default): both names were copied into the one tied tensor,
    # lm_head's last, so the untied model's token table was dropped without a word; refused before anything is copied
    untied_state = {**state, "lm_head.weight": state["lm_head.weight"] + 1}
    for loaded, told in ((tiny(proj="qk_v"), "this model ties them"), (tied, "this model's were tied by hand")):
        before = loaded.transformer.wte.weight.detach().clone()
        with pytest.raises(ValueError, match=f"differ, and {told}"):
            loaded.load_state_dict(untied_state)
        assert torch.equal(loaded.transformer.wte.weight, before)
        assert loaded.lm_head.weight is loaded.transformer.wte.weight


# ---------------------------------------------------------------- math identities

@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("proj,kv", VARIANTS)
def test_softmax_layer_equals_direct_formula(proj, kv, causal):
    attn = tiny(proj=proj, n_kv_head=kv, causal=causal).transformer.h[0].attn
    T = 9
    x = torch.randn(2, T, N_EMBD)
    q, k, v = paper_qkv(attn, x)
    G = attn.n_head // attn.n_kv_head
    k, v = k.repeat_interleave(G, 1), v.repeat_interleave(G, 1)   # query head h reads kv head h // G
    s = q @ k.transpose(-1, -2) / math.sqrt(attn.head_dim)
    if causal:
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    y = attn.c_proj(merge(s.softmax(-1) @ v))
    torch.testing.assert_close(attn(x), y, atol=1e-5, rtol=1e-5)


def sdpa_cuda_layout(q, k, v, **kw):
    """SDPA's values in the layout CUDA's kernels return them: [B, H, T, D] holding T and H swapped in memory."""
    return SDPA(q, k, v, **kw).transpose(1, 2).contiguous().transpose(1, 2)


SDPA = F.scaled_dot_product_attention


@pytest.mark.parametrize("layout", ["cpu", "cuda"], ids=["cpu-layout", "cuda-layout"])
@pytest.mark.parametrize("pos", [11, torch.tensor([7])], ids=["int-pos", "tensor-pos"])
@pytest.mark.parametrize("proj,kv", [("qkv", 2), ("qk_v", 2), ("qk_v", 1)])
def test_one_token_step_folds_gqa_heads_into_queries(proj, kv, pos, layout, monkeypatch):
    """A one-token step views q [B, H, 1, D] as [B, H_kv, G, D]: the same as SDPA's enable_gqa on the filled
    part of the cache (an int pos gets the filled slice; a tensor pos, the whole buffer to mask), whatever the
    strides SDPA returns (on an H200, CUDA's layout made the fold's .view fail)."""
    attn = tiny(proj=proj, n_kv_head=kv).transformer.h[0].attn
    D = attn.head_dim
    q, k = torch.randn(3, N_HEAD, 1, D), torch.randn(3, kv, 12, D)
    v = k if proj == "qk_v" else torch.randn(3, kv, 12, D)
    n = int(pos) + 1
    expect = F.scaled_dot_product_attention(q, k[:, :, :n], v[:, :, :n], enable_gqa=True)
    if layout == "cuda":
        monkeypatch.setattr(F, "scaled_dot_product_attention", sdpa_cuda_layout)
    got = attn.softmax_attention(q, k, v, pos)
    assert got.shape == (3, N_HEAD, 1, D)
    torch.testing.assert_close(got, expect, atol=1e-6, rtol=1e-5)


def test_shared_projections_are_the_same_tensor():
    x = torch.randn(1, 5, N_EMBD)
    q, k, v = tiny(proj="qk_v").transformer.h[0].attn.project(x)
    assert v is k and q is not k
    q, k, v = tiny(proj="q_kv").transformer.h[0].attn.project(x)
    assert k is q and v is not q
    q, k, v = tiny(proj="q_k_v").transformer.h[0].attn.project(x)
    assert q is k is v


def test_bidirectional_q_kv_scores_are_symmetric():
    attn = tiny(proj="q_kv", causal=False).transformer.h[0].attn
    q, k, _ = attn.project(torch.randn(2, 7, N_EMBD))
    s = q @ k.transpose(-1, -2)
    torch.testing.assert_close(s, s.transpose(-1, -2))
    q, k, _ = tiny(proj="qkv", causal=False).transformer.h[0].attn.project(torch.randn(2, 7, N_EMBD))
    s = q @ k.transpose(-1, -2)
    assert not torch.allclose(s, s.transpose(-1, -2))


# ---------------------------------------------------------------- cache and generation

@pytest.mark.parametrize("attn", ["softmax", "linear"])
@pytest.mark.parametrize("proj,kv", VARIANTS)
def test_cached_decoding_equals_full_forward(proj, kv, attn):
    model = tiny(proj=proj, n_kv_head=kv, attn=attn)
    idx = torch.randint(0, VOCAB, (2, 20))
    full = model(idx)[0]
    torch.testing.assert_close(decode_logits(model, idx, prefill=5), full[:, 4:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(decode_logits(model, idx, prefill=1), full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(decode_logits(model, idx, prefill=5, tensor_pos=True), full[:, 4:],
                               atol=1e-5, rtol=1e-5)
    cache = model.new_cache(2, 20)  # chunked prefill: a second chunk of several tokens starting at pos > 0
    chunks = torch.cat([model(idx[:, :8], cache=cache)[0], model(idx[:, 8:], cache=cache)[0]], dim=1)
    torch.testing.assert_close(chunks, full[:, [7, 19]], atol=1e-5, rtol=1e-5)
    prompt = idx[:, :4]
    assert torch.equal(model.generate(prompt, 12, temperature=0), model.generate(prompt, 12, temperature=0,
                                                                                   use_cache=False))


@pytest.mark.parametrize("attn", ["softmax", "linear"])
def test_a_cache_reused_from_position_0_forgets_the_last_prompt_and_cannot_rewind_linear(attn):
    # cache.pos = 0 starts the next prompt: linear attention's state kept the last prompt's sums (logits 0.01 off)
    model, idx = tiny(proj="qk_v", attn=attn), torch.randint(0, VOCAB, (2, 9))
    cache = model.new_cache(2, 9)
    model(idx.flip(1), cache=cache)
    cache.pos = 0
    torch.testing.assert_close(model(idx, cache=cache)[0], model(idx)[0][:, -1:], atol=1e-5, rtol=1e-5)
    # a rejected draft token dropped with cache.pos -= 1: softmax's buffer is written over, linear's sums keep it
    # (logits 0.007 off, no word); a branch kept with deepcopy, also of buffers written outside torch.no_grad()
    cache.pos = 5
    if attn == "linear":
        with pytest.raises(ValueError, match="cache.pos is 5, and linear attention's state sums the first 9 "
                                             "positions: it cannot go back or skip"):
            model(idx[:, 5:6], cache=cache)
    else:
        torch.testing.assert_close(model(idx[:, 5:6], cache=cache)[0], model(idx[:, :6])[0][:, -1:])
    cache = model.new_cache(2, 9)
    model(idx[:, :4], cache=cache)  # outside no_grad the buffers are no leaves: torch's deepcopy refused them
    branch = copy.deepcopy(cache)
    model(idx[:, 6:8], cache=cache)
    torch.testing.assert_close(model(idx[:, 4:6], cache=branch)[0], model(idx[:, :6])[0][:, -1:])
    saved = io.BytesIO()  # saved with its requires_grad, the loaded cache's first write was autograd's error
    torch.save(branch, saved)
    saved.seek(0)
    model(idx[:, 6:7], cache=torch.load(saved, weights_only=False))
    old = model.new_cache(2, 9)
    model(idx[:, :4], cache=old)
    del old.end  # pickled by the code before cache.end: linear's next step was an AttributeError
    saved = io.BytesIO()
    torch.save(old, saved)
    saved.seek(0)
    torch.testing.assert_close(model(idx[:, 4:6], cache=torch.load(saved, weights_only=False))[0],
                               model(idx[:, :6])[0][:, -1:])
    for pos in (-1, 2.0):  # the position table's IndexError, the embedding's RuntimeError
        cache.pos = pos
        with pytest.raises(ValueError, match=f"cache.pos must be an integer >= 0.*; got {pos}"):
            model(idx[:, :1], cache=cache)
    cache = model.new_cache(2, 9)  # a skip ahead read positions never written (zeros, or the last prompt's keys)
    model(idx[:, :4], cache=cache)
    cache.pos = 6
    with pytest.raises(ValueError, match="cache.pos is 6, past the 4 positions written" if attn == "softmax" else
                       "cache.pos is 6, and linear attention's state sums the first 4 positions"):
        model(idx[:, 6:7], cache=cache)


def test_sampled_generation_is_reproducible_and_cropped_without_cache():
    model = tiny(proj="qk_v")
    prompt = torch.randint(0, VOCAB, (2, 4))
    torch.manual_seed(1)
    a = model.generate(prompt, 10, temperature=0.8, top_k=5)
    torch.manual_seed(1)
    b = model.generate(prompt, 10, temperature=0.8, top_k=5, use_cache=False)
    assert torch.equal(a, b) and a.shape == (2, 14)
    long = model.generate(prompt, BLOCK + 5, temperature=0, use_cache=False)  # beyond block_size: cropped
    assert long.shape == (2, 4 + BLOCK + 5)
    # the cache holds the prompt and every new token but the last: BLOCK - 4 + 1 new tokens fill it exactly
    full = model.generate(prompt, BLOCK - 3, temperature=0)
    assert torch.equal(full, model.generate(prompt, BLOCK - 3, temperature=0, use_cache=False))
    # without the cache a prompt longer than the context is cropped too: its last BLOCK tokens decide
    longer = torch.randint(0, VOCAB, (2, BLOCK + 6))
    assert torch.equal(model.generate(longer, 3, temperature=0, use_cache=False)[:, -3:],
                       model.generate(longer[:, -BLOCK:], 3, temperature=0, use_cache=False)[:, -3:])


def test_cached_generation_never_builds_prompt_logits():
    model = tiny(proj="qk_v")
    shapes = []
    model.lm_head.register_forward_hook(lambda m, i, out: shapes.append(tuple(out.shape)))
    model.generate(torch.randint(0, VOCAB, (2, 20)), 3, temperature=0)
    assert shapes == [(2, 1, VOCAB)] * 3  # the prefill of 20 tokens, then two steps


@pytest.mark.parametrize("proj,kv,attn", [("qkv", 0, "softmax"), ("qk_v", 1, "softmax"), ("qk_v", 0, "linear")])
def test_compiled_decoding_is_one_graph_with_eager_tokens(proj, kv, attn, monkeypatch):
    """generate(compile=True): every one-token step runs one torch.compile graph (the position is a tensor),
    and the tokens are eager decoding's. Inductor compiles for real here: slow, so the model is tiny."""
    import torch._dynamo.testing
    model = tiny(proj=proj, n_kv_head=kv, attn=attn)
    prompt = torch.randint(0, VOCAB, (2, 5))
    expect = model.generate(prompt, 10, temperature=0)
    torch._dynamo.reset()
    counter, compile = torch._dynamo.testing.CompileCounterWithBackend("inductor"), torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compile(fn, backend=counter, **kw))
    assert torch.equal(model.generate(prompt, 10, temperature=0, compile=True), expect)
    assert counter.frame_count == 1


def test_cache_bytes_are_exact():
    ref = dict(n_layer=2, n_head=16, n_embd=64, block_size=64, vocab_size=VOCAB)
    base = GPT(GPTConfig(**ref)).kv_bytes_per_token(torch.bfloat16)
    assert base == 2 * 2 * 16 * 4 * 2  # layers x (K and V) x heads x head_dim x bytes
    expected = {("qk_v", 0): 1 / 2, ("q_kv", 0): 1, ("q_k_v", 0): 1 / 2, ("qk_v", 4): 1 / 8,
                ("qk_v", 1): 1 / 32, ("qkv", 1): 1 / 16, ("qkv", 4): 1 / 4}
    for (proj, kv), ratio in expected.items():
        model = GPT(GPTConfig(**ref, proj=proj, n_kv_head=kv))
        per_token = model.kv_bytes_per_token(torch.bfloat16)
        assert per_token == base * ratio, (proj, kv)
        cache = model.new_cache(3, 40, torch.bfloat16, "meta")
        assert cache.nbytes == per_token * 3 * 40
        assert ("v" in cache.layers[0]) == (proj in ("qkv", "q_kv"))


def test_linear_cache_is_a_fixed_state():
    for proj, kv in VARIANTS:
        model = tiny(proj=proj, n_kv_head=kv, attn="linear", block_size=1024)
        Hkv, D = kv or N_HEAD, N_EMBD // N_HEAD
        state = 2 * 2 * Hkv * (D * D + D) * 4  # layers x batch x kv heads x (S and z) x float32
        assert model.new_cache(2, 16).nbytes == model.new_cache(2, 1024).nbytes == state
        assert model.kv_bytes_per_token(torch.float32) == 0


@pytest.mark.parametrize("attn", ["softmax", "linear"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_a_cache_of_another_dtype_than_the_weights_decodes(attn, dtype):
    # new_cache's dtype is the one attention computes in: linear attention's state failed in its first product
    model, idx = tiny(proj="qk_v", attn=attn), torch.randint(0, VOCAB, (2, 9))
    cache = model.new_cache(2, 9, dtype)
    steps = [model(idx[:, :5], cache=cache)[0]] + [model(idx[:, t:t + 1], cache=cache)[0] for t in range(5, 9)]
    out = torch.cat(steps, dim=1)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, model(idx)[0][:, 4:], atol=0.02, rtol=0.02)


# ---------------------------------------------------------------- linear attention

def test_linear_q_k_v_layer_is_the_appendix_state_space_model():
    attn = tiny(proj="q_k_v", attn="linear").transformer.h[0].attn
    x = torch.randn(2, 10, N_EMBD)
    z = heads(attn.c_attn(x), N_HEAD)                          # q = k = v = z: [B, H, T, D]
    D = z.size(-1)
    S, norm, ys = torch.zeros(2, N_HEAD, D, D), torch.zeros(2, N_HEAD, D), []
    for t in range(10):
        zt = z[:, :, t]
        S = S + phi(zt)[..., :, None] * zt[..., None, :]        # S_t = S_{t-1} + φ(z_t) z_tᵀ
        norm = norm + phi(zt)
        num = (phi(zt)[..., None, :] @ S).squeeze(-2)           # φ(z_t)ᵀ S_t
        ys.append(num / ((phi(zt) * norm).sum(-1, keepdim=True) + 1e-6))
    y = attn.c_proj(merge(torch.stack(ys, dim=2)))
    torch.testing.assert_close(attn(x), y, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("proj,kv", [("qkv", 2), ("q_kv", 0)])
def test_bidirectional_linear_attention_sums_over_all_positions(proj, kv):
    attn = tiny(proj=proj, n_kv_head=kv, attn="linear", causal=False).transformer.h[0].attn
    x = torch.randn(2, 6, N_EMBD)
    q, k, v = paper_qkv(attn, x)
    G = attn.n_head // attn.n_kv_head
    k, v = k.repeat_interleave(G, 1), v.repeat_interleave(G, 1)
    ys = []
    for t in range(6):
        w = (phi(q[:, :, t, None, :]) * phi(k)).sum(-1)          # [B, H, T]: φ(q_t)ᵀ φ(k_i) for every i
        ys.append((w[..., None] * v).sum(2) / (w.sum(-1, keepdim=True) + 1e-6))
    y = attn.c_proj(merge(torch.stack(ys, dim=2)))
    torch.testing.assert_close(attn(x), y, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- (X)+ positional conv

def test_pos_conv_adds_m_plus_one_parameters_per_layer():
    for m in (4, 8, 16):
        assert tiny(proj="q_kv", pos_conv=m).num_params() == closed_form_params("q_kv", 0, pos_conv=m)
    assert closed_form_params("q_kv", 0, pos_conv=8) - closed_form_params("q_kv", 0) == 2 * 9


def random_conv(attn):
    torch.manual_seed(3)
    torch.nn.init.normal_(attn.conv.weight)
    torch.nn.init.normal_(attn.conv.bias)
    return attn


@pytest.mark.parametrize("basis", ["product", "concat"])
@pytest.mark.parametrize("pos", [0, 3])
def test_pos_conv_literal_equals_scale_plus_learned_bias(pos, basis):
    attn = random_conv(tiny(proj="q_k_v", pos_conv=8, pos_conv_basis=basis).transformer.h[0].attn)
    s = torch.randn(2, N_HEAD, 5, pos + 5)                      # queries pos..pos+4, keys 0..pos+4
    cheap = attn.conv.weight.sum() * s + attn.pos_bias(pos, pos + 5, s.device)
    torch.testing.assert_close(attn.pos_conv_literal(s, pos), cheap, atol=1e-5, rtol=1e-5)


def encoding_by_hand(basis, m, n, T, L, pos, period=0):
    """P [m, T, L] for queries pos..pos+T-1 and keys 0..L-1, written from the definition with plain loops:
    K = m/4 frequencies rising geometrically from pi/n to pi/2 (n = block_size), or with a period p the whole
    harmonics round((p/4)^(k/(K-1))) of 2 pi / p; f = (sin, cos).
    product: channel 4k + 2a + b is f_a(w_k i) f_b(w_k j). concat: channel 2k + a is f_a(w_k i), channel
    m/2 + 2k + a is f_a(w_k j)."""
    K = m // 4
    w = [math.pi / n * ((math.pi / 2) / (math.pi / n)) ** (k / max(K - 1, 1)) for k in range(K)]
    if period:
        w = [2 * math.pi / period * round((period / 4) ** (k / max(K - 1, 1))) for k in range(K)]
    f = (math.sin, math.cos)
    P = torch.zeros(m, T, L, dtype=torch.float64)
    for t in range(T):
        i = pos + t
        for j in range(L):
            for k in range(K):
                for a in range(2):
                    if basis == "concat":
                        P[2 * k + a, t, j] = f[a](w[k] * i)
                        P[m // 2 + 2 * k + a, t, j] = f[a](w[k] * j)
                    else:
                        for b in range(2):
                            P[4 * k + 2 * a + b, t, j] = f[a](w[k] * i) * f[b](w[k] * j)
    return P


@pytest.mark.parametrize("period", [0, 12])
@pytest.mark.parametrize("basis", ["product", "concat"])
@pytest.mark.parametrize("pos", [0, 3])
def test_pos_conv_scores_equal_the_definition_built_by_hand(pos, basis, period):
    # the model's scores (cheap form in the layer, and the literal form) against conv(S + P) with P from its
    # definition, not from model.py's own pos_conv_features
    m, T, L = 8, 4, pos + 4
    attn = random_conv(tiny(proj="q_k_v", pos_conv=m, pos_conv_basis=basis,
                            pos_conv_period=period).transformer.h[0].attn)
    s = torch.randn(2, N_HEAD, T, L, dtype=torch.float64)
    P = encoding_by_hand(basis, m, BLOCK, T, L, pos, period)
    w, b = attn.conv.weight.detach().double().view(m), attn.conv.bias.detach().double()
    expect = sum(w[c] * (s + P[c]) for c in range(m)) + b        # the 1x1 conv over the m channels of S + P
    cheap = w.sum() * s + attn.pos_bias(pos, L, "cpu").detach().double()
    torch.testing.assert_close(cheap, expect, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn.pos_conv_literal(s.float(), pos).detach().double(), expect, atol=1e-4, rtol=1e-4)
    # and the layer's output: softmax of those scores over the values, bidirectional at pos 0
    if pos == 0:
        attn.causal = False
        x = torch.randn(2, T, N_EMBD)
        q, k, v = paper_qkv(attn, x)
        scores = sum(w[c] * (q.double() @ k.double().transpose(-1, -2) / math.sqrt(attn.head_dim) + P[c])
                     for c in range(m)) + b
        y = attn.c_proj(merge(scores.softmax(-1).float() @ v))
        torch.testing.assert_close(attn(x), y, atol=1e-5, rtol=1e-5)


def test_a_pos_conv_period_makes_the_bias_cyclic():
    # with period p, query i and key j get the bias of i mod p and j mod p: SHIFT's wrap-around (n-1 reads 0) is
    # the same offset as every other step. Without it, no two positions below block_size look alike.
    for period in (0, 8):
        attn = random_conv(tiny(proj="q_kv", pos_conv=16, pos_conv_period=period).transformer.h[0].attn)
        bias = attn.pos_bias(0, 16, "cpu").detach()
        i = torch.arange(16)
        folded = bias[i % 8][:, i % 8]
        assert torch.allclose(bias, folded, atol=1e-5) == bool(period)
    with pytest.raises(ValueError, match="pos_conv_period must be 0 .* got 8 with pos_conv=0"):
        GPTConfig(pos_conv_period=8)
    with pytest.raises(ValueError, match="got 2 with pos_conv=8"):
        GPTConfig(pos_conv=8, pos_conv_period=2)


@pytest.mark.parametrize("basis", ["product", "concat"])
@pytest.mark.parametrize("causal", [True, False])
def test_pos_conv_layer_equals_literal_mechanism(causal, basis):
    attn = random_conv(tiny(proj="q_kv", pos_conv=8, causal=causal, pos_conv_basis=basis).transformer.h[0].attn)
    x = torch.randn(2, 9, N_EMBD)
    q, k, v = paper_qkv(attn, x)
    s = attn.pos_conv_literal(q @ k.transpose(-1, -2) / math.sqrt(attn.head_dim))
    if causal:
        s = s.masked_fill(torch.ones(9, 9, dtype=torch.bool).triu(1), float("-inf"))
    torch.testing.assert_close(attn(x), attn.c_proj(merge(s.softmax(-1) @ v)), atol=1e-5, rtol=1e-5)


def test_product_bias_depends_on_both_positions_jointly():
    # a(i) + c(j) has zero mixed differences b[i, j] - b[i, 0] - b[0, j] + b[0, 0]; the softmax over keys cancels
    # a(i), so a bias of that form cannot tell which query asks. The product basis must not be of that form.
    def mixed(basis):
        b = random_conv(tiny(proj="q_k_v", pos_conv=16, pos_conv_basis=basis).transformer.h[0].attn).pos_bias(
            0, 12, "cpu").detach()
        return (b - b[:, :1] - b[:1, :] + b[:1, :1]).abs().max().item()
    assert mixed("concat") < 1e-5
    assert mixed("product") > 0.1


def row_centred_fit(basis, n, m, target, block):
    """Least-squares conv weights and bias for a target [n, n] bias; returns the fit and its residual relative
    to the target, both with each query's row mean removed (the softmax over keys ignores a per-row constant)."""
    attn = tiny(proj="q_k_v", pos_conv=m, pos_conv_basis=basis, block_size=block).transformer.h[0].attn
    columns = []
    with torch.no_grad():
        for c in range(m + 1):  # the bias is linear in (w, b): one column per unit weight
            attn.conv.weight.zero_()
            attn.conv.bias.zero_()
            (attn.conv.weight.view(-1)[c] if c < m else attn.conv.bias).fill_(1.0)
            columns.append(attn.pos_bias(0, n, "cpu").double().flatten())
    A = torch.stack(columns, dim=1)
    fit = (A @ (torch.linalg.pinv(A) @ target.double().flatten())).view(n, n)
    centre = lambda b: b - b.mean(1, keepdim=True)
    return fit, (centre(fit - target)).norm().item() / centre(target.double()).norm().item()


@pytest.mark.parametrize("n", [8, 16, 32])
def test_product_basis_fits_mirror_and_direction_biases_where_concat_cannot(n):
    # Measured at m = 16 (relative row-centred residual, product vs concat; block_size 32, lengths 8/16/32):
    # mirror -|i + j - (n - 1)|: 0.06-0.09 vs 0.94-0.95; direction sign(i - j): 0.11-0.34 vs 0.63-0.69.
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    mirror, direction = -(i + j - (n - 1)).abs().float(), torch.sign(i - j).float()
    fit, res = row_centred_fit("product", n, 16, mirror, block=32)
    assert res < 0.12
    assert fit.argmax(1).tolist() == list(range(n - 1, -1, -1))  # every query prefers its mirror partner
    assert row_centred_fit("concat", n, 16, mirror, block=32)[1] > 0.9
    assert row_centred_fit("product", n, 16, direction, block=32)[1] < 0.4
    assert row_centred_fit("concat", n, 16, direction, block=32)[1] > 0.6


def test_pos_conv_breaks_the_symmetry_of_q_kv_scores():
    attn = random_conv(tiny(proj="q_kv", pos_conv=8, causal=False).transformer.h[0].attn)
    q, k, _ = attn.project(torch.randn(2, 7, N_EMBD))
    s = attn.pos_conv_literal(q @ k.transpose(-1, -2))
    assert not torch.allclose(s, s.transpose(-1, -2), atol=1e-3)


@pytest.mark.parametrize("basis", ["product", "concat"])
@pytest.mark.parametrize("proj", list(SOURCES))
def test_pos_conv_cached_decoding_equals_full_forward(proj, basis):
    model = tiny(proj=proj, pos_conv=8, pos_conv_basis=basis)
    for block in model.transformer.h:
        random_conv(block.attn)
    idx = torch.randint(0, VOCAB, (2, 14))
    torch.testing.assert_close(decode_logits(model, idx, prefill=4), model(idx)[0][:, 3:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("basis", ["product", "concat"])
def test_pos_conv_model_cast_to_bfloat16_runs_in_it(basis):
    # its features were float32 whatever the weights: model.to(torch.bfloat16) failed in the bias's product
    model = tiny(proj="q_kv", pos_conv=8, pos_conv_basis=basis)
    for block in model.transformer.h:
        random_conv(block.attn)
    idx = torch.randint(0, VOCAB, (2, 9))
    want = model(idx)[0]
    half = model.to(torch.bfloat16)
    torch.testing.assert_close(half(idx)[0].float(), want, atol=0.1, rtol=0.1)
    assert half.generate(idx, 3, temperature=0).shape == (2, 12)
    s = torch.randn(2, N_HEAD, 9, 9, dtype=torch.bfloat16)
    assert half.transformer.h[0].attn.pos_conv_literal(s).dtype == torch.bfloat16


def test_pos_emb_none_has_no_position_table_and_sees_no_position():
    model = tiny(proj="q_kv", pos_emb="none")
    assert "transformer.wpe.weight" not in dict(model.named_parameters())
    assert model.num_params() == closed_form_params("q_kv", 0) - BLOCK * N_EMBD
    # bidirectional and without positions, attention is permutation-equivariant: permuted input, permuted output
    model = tiny(proj="qkv", pos_emb="none", causal=False)
    idx, perm = torch.randint(0, VOCAB, (2, 10)), torch.randperm(10)
    torch.testing.assert_close(model(idx[:, perm])[0], model(idx)[0][:, perm], atol=1e-5, rtol=1e-5)
    # (X)+ then is the model's only source of position, and it breaks the equivariance
    model = tiny(proj="qkv", pos_emb="none", causal=False, pos_conv=8)
    for block in model.transformer.h:
        random_conv(block.attn)
    assert not torch.allclose(model(idx[:, perm])[0], model(idx)[0][:, perm], atol=1e-3)


# ---------------------------------------------------------------- errors, optimizer, MFU

@pytest.mark.parametrize("kw,field", [
    (dict(proj="qv"), "proj"), (dict(attn="flash"), "attn"), (dict(n_embd=30), "n_embd"),
    (dict(n_kv_head=3), "n_kv_head"), (dict(n_kv_head=-1), "n_kv_head"),
    (dict(proj="q_kv", n_kv_head=2), "n_kv_head"), (dict(proj="q_k_v", n_kv_head=1), "n_kv_head"),
    (dict(pos_conv=6), "pos_conv"), (dict(pos_conv=3), "pos_conv"),
    (dict(pos_conv=8, attn="linear"), "pos_conv"), (dict(pos_conv_basis="offset"), "pos_conv_basis"),
    (dict(pos_emb="sinusoidal"), "pos_emb"),
    (dict(rope_base=500.0), "rope_base"), (dict(pos_conv_basis="concat"), "pos_conv_basis"),  # parts not built
    # train.py's range: 1e-300's powers overflowed to NaN logits without a word
    (dict(pos_emb="rope", rope_base=1e-300), "rope_base must be a finite number > 1"),
    (dict(pos_emb="rope", rope_base=1.0), "rope_base must be a finite number > 1"),
    # an int past float's range was math.isfinite's OverflowError traceback
    (dict(pos_emb="rope", rope_base=10 ** 400), "rope_base must be a finite number > 1"),
    # of another type: 2.5 failed deep in building the model, the true string "False" built a causal one
    (dict(block_size=2.5), "block_size must be an integer"), (dict(n_embd=32.0), "n_embd must be an integer"),
    (dict(causal="False"), "causal must be True or False"), (dict(bias=None), "bias"), (dict(n_head=None), "n_head"),
    (dict(dropout="0.1"), "dropout must be a number"), (dict(proj=["qkv"]), "proj must be one of"),
    # past torch's int64 sizes: nn.Embedding's torch.empty traceback (bench's meta-device memory plan)
    (dict(vocab_size=10 ** 30), "vocab_size = 10+ with n_embd = .* past torch's int64"),
    (dict(n_inner=2 ** 62), "n_inner = 4611686018427387904 with n_embd"),
    # in bytes: 2**61 float32 elements was torch.empty's "Storage size calculation overflowed" traceback; the
    # conv's m x 1 too; and n_embd (past it, each weight) is named, not the vocab_size it multiplies
    (dict(vocab_size=2 ** 61, n_embd=2, n_head=1), "vocab_size = 2305843009213693952 with n_embd = 2 .* int64"),
    (dict(pos_conv=2 ** 62), "pos_conv = 4611686018427387904 makes a weight"),
    (dict(n_embd=2 ** 70, n_head=2 ** 70), "^n_embd = 1180591620717411303424 makes a weight"),
    # a Fraction past float's range: float()'s OverflowError traceback
    (dict(pos_emb="rope", rope_base=Fraction(10 ** 400, 3)), "rope_base must be a finite number > 1"),
])
def test_invalid_configs_name_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        tiny(**kw)


def test_a_subclass_default_of_a_part_not_built_is_refused_as_before():
    # checks.py compared rope_base with the subclass's own default: with learned positions it acted on nothing,
    # without a word, where model.py had refused it against GPTConfig's
    @dataclass
    class Longer(GPTConfig):
        rope_base: float = 500000.0

    with pytest.raises(ValueError, match="rope_base acts only with pos_emb='rope'.*leave rope_base at 10000"):
        Longer(n_layer=1, n_head=2, n_embd=16)
    assert Longer(n_layer=1, n_head=2, n_embd=16, pos_emb="rope").rope_base == 500000.0


def test_a_width_of_one_is_refused_since_layernorm_erases_every_token():
    # LayerNorm over one feature subtracts it from its own mean: every position's input is the LayerNorm's bias, so
    # the model's output did not depend on its tokens (a unigram model, trained and sampled with exit 0; analyze
    # printed CKA nan and r2 0.9998 for it)
    ln = torch.nn.LayerNorm(1)
    assert torch.equal(ln(torch.randn(5, 1)), ln(torch.randn(5, 1)))
    with pytest.raises(ValueError, match=r"n_embd must be at least 2 .*LayerNorm.*; got 1\."):
        tiny(n_embd=1, n_head=1)
    assert tiny(n_embd=2, n_head=2).config.n_embd == 2  # the least width that sees its input: head_dim 1 is fine


@pytest.mark.parametrize("field,value,says", [
    ("n_head", 5, "divisible by n_head"),  # else a RuntimeError in the first forward's reshape
    ("proj", "QKV", "proj must be one of"),  # a KeyError
    ("causal", "False", "causal must be True or False"),  # a true string: a causal model without a word
])
def test_a_field_set_after_the_config_is_checked_by_gpt(field, value, says):
    cfg = GPTConfig(block_size=BLOCK, vocab_size=VOCAB, n_layer=1, n_head=N_HEAD, n_embd=N_EMBD)
    setattr(cfg, field, value)
    with pytest.raises(ValueError, match=says):
        GPT(cfg)


def test_invalid_requests_name_the_field():
    model = tiny(proj="qk_v")
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(torch.zeros(1, 20, dtype=torch.long), BLOCK - 18)
    with pytest.raises(ValueError, match="block_size"):
        model.generate(torch.zeros(1, BLOCK + 1, dtype=torch.long), 1)
    with pytest.raises(ValueError, match="max_len"):
        model.new_cache(1, BLOCK + 1)
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, BLOCK + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="causal"):
        tiny(causal=False).new_cache(1, 8)
    with pytest.raises(ValueError, match="targets"):
        model(torch.zeros(1, 4, dtype=torch.long), targets=torch.zeros(1, 4, dtype=torch.long),
              cache=model.new_cache(1, 8))
    with pytest.raises(ValueError, match="pos_conv"):
        tiny(proj="q_kv", pos_conv=8).generate(torch.zeros(1, 4, dtype=torch.long), 2, compile=True)
    with pytest.raises(ValueError, match="use_cache"):
        model.generate(torch.zeros(1, 4, dtype=torch.long), 2, use_cache=False, compile=True)


@pytest.mark.parametrize("call,field", [
    (lambda m, p: m.generate(p[:, :0], 2), "prompt"), (lambda m, p: m.generate(p[:, :0], 2, use_cache=False), "prompt"),
    (lambda m, p: m.generate(p, 2, top_k=0), "top_k"), (lambda m, p: m.generate(p, 2, top_k=-1), "top_k"),
    (lambda m, p: m.generate(p, 2, temperature=-1.0), "temperature"),  # else samples the least likely tokens
    (lambda m, p: m.generate(p, 2, temperature=float("nan")), "temperature"),
    (lambda m, p: m.generate(p, -1), "max_new_tokens"), (lambda m, p: m.generate(p, 1.5), "max_new_tokens"),
    (lambda m, p: m(p[:, :0]), "idx"), (lambda m, p: m(p, cache=m.new_cache(2, 8)), "batch"),
    (lambda m, p: m.new_cache(1, -1), "max_len"), (lambda m, p: m.new_cache(0, 8), "batch_size"),
    # torch's own errors from deep inside (embedding, reshape, topk, zeros), or a silent result: targets transposed
    # gave a loss against the wrong tokens, and a QKV model read a Q-K=V cache's K as its V
    (lambda m, p: m(p.float()), "idx must be a \\[B, T\\] tensor"), (lambda m, p: m(p.tolist()), "idx"),
    (lambda m, p: m(p[0]), "idx"), (lambda m, p: m(p[:0]), "idx"), (lambda m, p: m.generate(p.float(), 2), "idx"),
    (lambda m, p: m(p.repeat(2, 1), p.repeat(2, 1).T), "targets must have idx's shape"),
    (lambda m, p: m(p, p.float()), "targets"),
    (lambda m, p: tiny(proj="qkv")(p, cache=m.new_cache(1, 8)), "another model"),
    (lambda m, p: m.generate(p, 2, top_k=True), "top_k"), (lambda m, p: m.generate(p, True), "max_new_tokens"),
    (lambda m, p: m.generate(p, 2, temperature=None), "temperature"),
    (lambda m, p: m.generate(p, 2, temperature=torch.tensor([0.5, 1.0])), "temperature"),  # "ambiguous" RuntimeError
    (lambda m, p: m.generate(p, 2, compile="no"), "compile must be True or False"),  # a true string: compiled
    (lambda m, p: m.generate(p, 2, use_cache="False"), "use_cache must be True or False"),
    (lambda m, p: m.new_cache(2.5, 8), "batch_size"), (lambda m, p: m.new_cache(1, 8, torch.int64), "dtype"),
    (lambda m, p: m.kv_bytes_per_token("bfloat16"), "torch.dtype"),
    (lambda m, p: m(p, cache={}), "cache must be None or a Cache"),  # an AttributeError on .pos
    (lambda m, p: m(p, cache=m.new_cache(1, 8).layers), "cache must be None or a Cache"),
    # idx first, as before checks.py: the move named a float idx given with a dict cache by its cache
    (lambda m, p: m(p.float(), cache={}), "idx must be a \\[B, T\\] tensor"),
    (lambda m, p: GPT(vars(m.config)), "GPT needs a GPTConfig"),  # GPT(ckpt["model_args"]): an AttributeError
    (lambda m, p: GPTConfig(vars(m.config)), "keywords: GPTConfig\\(\\*\\*ckpt"),  # "block_size must be ...; got {"
    # another variant's weights: torch's RuntimeError listing each size mismatch, strict=False too
    (lambda m, p: m.load_state_dict(tiny().state_dict()), "holds transformer.h.0.attn.c_attn.weight as \\(96, 32\\) "
     "and this model makes \\(64, 32\\): .* convert.convert_state_dict"),
    (lambda m, p: m.load_state_dict(tiny().state_dict(), strict=False), "another variant's or size's"),
    # a prompt on another device: its ids were read first, .item()'s RuntimeError on meta (meta stands for cuda)
    (lambda m, p: m.generate(p.to("meta"), 2), "idx is on meta and the model on cpu; move it with idx.to"),
    # a model left in training mode sampled under dropout: greedy decoding gave other tokens on every call
    (lambda m, p: tiny(dropout=0.1).train().generate(p, 2, temperature=0), "eval mode.*model.eval\\(\\)"),
    (lambda m, p: (lambda d: d.train()(p, cache=d.new_cache(1, 8)))(tiny(dropout=0.1)), "eval mode.*model.eval"),
    # torch's "Expected all tensors to be on the same device" from the embedding or SDPA (meta stands for cuda here)
    (lambda m, p: m(p.to("meta")), "idx is on meta and the model on cpu; move it with idx.to\\('cpu'\\)"),
    (lambda m, p: m(p, cache=m.new_cache(1, 8, device="meta")), "cache is on meta .*new_cache\\(..., device='cpu'\\)"),
    # torch's RuntimeError for a name it does not know, and on a torch without CUDA its AssertionError for "cuda"
    (lambda m, p: m.new_cache(1, 8, device="gpu"), "new_cache's device 'gpu' is not one this torch can use"),
] + ([] if torch.cuda.is_available() else [
    (lambda m, p: m.new_cache(1, 8, device="cuda"), "new_cache's device 'cuda' .*device='cpu'\\)")]))
def test_arguments_at_their_edges_name_the_argument(call, field):
    """Library calls as docs/model.md shows them, at their edges: one ValueError naming the argument, not an
    IndexError from deep inside (empty prompt, top_k=0) nor a silent result (a negative temperature)."""
    with pytest.raises(ValueError, match=field):
        call(tiny(proj="qk_v"), torch.zeros(1, 4, dtype=torch.long))


@pytest.mark.parametrize("call,says", [
    (lambda m, p: m(p + VOCAB), "idx must hold token ids 0 .. 49 \\(vocab_size = 50\\); got ids from 50 to 53"),
    (lambda m, p: m(p - 1), "idx must hold token ids 0 .. 49"),
    (lambda m, p: m(p, p + VOCAB), "targets must hold token ids 0 .. 49 \\(vocab_size = 50\\), or -1"),
    (lambda m, p: m(p, p - 2), "targets must hold token ids"),
    (lambda m, p: m.generate(p + VOCAB, 2), "idx must hold token ids"),
    (lambda m, p: m.generate(p - 1, 2, use_cache=False), "idx must hold token ids"),
])
def test_token_ids_outside_the_vocabulary_name_the_argument(call, says):
    # torch's IndexError "index out of range in self" named neither (on CUDA generate's prompt is a device assert)
    with pytest.raises(ValueError, match=says):
        call(tiny(), torch.arange(4)[None])


def test_numpy_numbers_in_the_config_are_pythons():
    # a sweep's np.int64 heads made SDPA's enable_gqa a numpy bool, which it refuses, deep in the first step
    import numpy as np
    model = tiny(proj="qk_v", n_kv_head=np.int64(2), dropout=np.float32(0.0))
    assert type(model.config.n_kv_head) is int and type(model.config.dropout) is float
    # and numpy's str: a sweep over np.array(["qkv", "qk_v"]) saved model_args that torch's weights-only load refuses
    assert type(tiny(proj=np.array(["qk_v"])[0]).config.proj) is str
    # numpy's bool as a bool: refused as "causal must be True or False; got np.False_"
    assert tiny(causal=np.array([True, False])[1]).config.causal is False
    assert model.generate(torch.zeros(1, 2, dtype=torch.long), 3).shape == (1, 5)


def test_linear_attention_in_float16_is_computed_past_its_range():
    # every weight φ(q)ᵀφ(k) is positive: a row of 128 weights of 1024 summed past float16's 65504, and inf / inf gave
    # NaN (a NaN loss, samples from it) where float32 gives the mean of v
    from model import linear_attention
    torch.manual_seed(0)
    q, k, v = torch.full((1, 1, 1, 128, 64), 3.0), torch.full((1, 1, 1, 128, 64), 3.0), torch.randn(1, 1, 1, 128, 64)
    want = linear_attention(q, k, v, True)
    state = (torch.zeros(1, 1, 64, 64, dtype=torch.float16), torch.zeros(1, 1, 64, dtype=torch.float16))
    for s in (None, state):
        got = linear_attention(q.half(), k.half(), v.half(), True, s)
        assert got.dtype == torch.float16
        torch.testing.assert_close(got.float(), want, atol=2e-3, rtol=2e-3)
    assert state[1].dtype == torch.float16 and torch.equal(state[1], torch.full((1, 1, 64), 4.0 * 128).half())
    # on the meta device (shapes or FLOPs counted without memory) its autocast check raised "unknown device type"
    meta = GPT(GPTConfig(block_size=8, vocab_size=VOCAB, n_layer=1, n_head=N_HEAD, n_embd=N_EMBD, attn="linear"))
    assert meta.to("meta")(torch.zeros(1, 8, dtype=torch.long, device="meta"))[0].shape == (1, 8, VOCAB)
    # ... and a float16 model there: its float32 path turned autocast off on "meta", "unsupported scalarType"
    assert meta.half()(torch.zeros(1, 8, dtype=torch.long, device="meta"))[0].dtype == torch.float16


def test_a_config_changed_for_the_next_model_leaves_the_first_as_built():
    # a sweep in a notebook: the same config, one field set, the next model; the first's config changed under it,
    # and its forward past the old block_size was the position table's IndexError
    cfg = GPTConfig(block_size=BLOCK, vocab_size=VOCAB, n_layer=1, n_head=N_HEAD, n_embd=N_EMBD)
    first = GPT(cfg).eval()
    cfg.block_size, cfg.proj = 2 * BLOCK, "qk_v"
    second = GPT(cfg)
    assert (first.config.block_size, first.config.proj) == (BLOCK, "qkv") and second.config.proj == "qk_v"
    with pytest.raises(ValueError, match=f"longer than the block_size of {BLOCK}"):
        first(torch.zeros(1, BLOCK + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="another model"):  # a Q-K=V cache, whose K a QKV model would read as V
        first(torch.zeros(1, 2, dtype=torch.long), cache=second.new_cache(1, 4))


@pytest.mark.parametrize("field, value", [("block_size", 2 * BLOCK), ("n_layer", 3), ("bias", False),
                                          ("proj", "qk_v"), ("dropout", 0.5), ("rope_base", 500.0)])
def test_model_config_changed_after_the_build_is_one_sentence(field, value):
    # model.config.block_size = 64, to try a longer context, was the position table's IndexError; a changed proj
    # or dropout described a model other than its layers without a word. "load this model's state_dict" into a
    # model of the new config was torch's size mismatch where the change reshapes the weights (block_size's table)
    fix = (r"build GPT\(config\) with the new one \(its weights: this model's state_dict where their shapes agree, "
           r"convert.convert_state_dict for proj or n_kv_head\)\.$")
    model = tiny()
    setattr(model.config, field, value)
    for call in (lambda: model(torch.zeros(1, BLOCK + 1, dtype=torch.long)), lambda: model.new_cache(1, 4),
                 lambda: model.generate(torch.zeros(1, 2, dtype=torch.long), 2),
                 lambda: torch.compile(model, backend="eager")(torch.zeros(1, BLOCK + 1, dtype=torch.long)),
                 model.kv_bytes_per_token, model.flops_per_token):  # these two counted the new config's layers
        with pytest.raises(ValueError, match=f"model.config.{field} was changed after the model was built .*{fix}"):
            call()


def test_model_config_replaced_by_a_dict_is_one_sentence():
    model = tiny()
    model.config = asdict(model.config)  # as ckpt["model_args"]: an AttributeError on the dict
    with pytest.raises(ValueError, match=r"model.config was replaced by a dict after the model was built; it is the "
                                         r"GPTConfig of its layers \(model.built holds it"):
        model(torch.zeros(1, 2, dtype=torch.long))


def test_a_model_pickled_before_built_was_kept_loads_as_a_new_one():
    # torch.save(model) by the code before model.built and the retie hook: after a git pull, torch.load skipped the
    # config check (model.config.block_size = 2 * BLOCK was the position table's IndexError again) and a
    # load_state_dict(..., assign=True) into it untied the embedding, which then trained apart
    model = tiny(proj="qk_v").eval()
    del model.built
    model._load_state_dict_post_hooks.clear()
    model._load_state_dict_pre_hooks.clear()
    buffer = io.BytesIO()
    torch.save(model, buffer)
    loaded = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    idx = torch.randint(0, VOCAB, (1, 9))
    torch.testing.assert_close(loaded(idx)[0], model(idx)[0])
    loaded.load_state_dict(model.state_dict(), assign=True)
    assert loaded.lm_head.weight is loaded.transformer.wte.weight
    loaded.config.block_size = 2 * BLOCK
    with pytest.raises(ValueError, match="model.config.block_size was changed after the model was built"):
        loaded(torch.zeros(1, BLOCK + 1, dtype=torch.long))
    loaded = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)  # untied by hand stays so through a load
    loaded.lm_head.weight = torch.nn.Parameter(loaded.lm_head.weight + 1)
    loaded.load_state_dict(loaded.state_dict(), assign=True)
    assert loaded.lm_head.weight is not loaded.transformer.wte.weight
    assert len(loaded._load_state_dict_pre_hooks) == len(loaded._load_state_dict_post_hooks) == 1


def test_a_model_pickled_before_checks_py_was_split_off_loads(monkeypatch):
    # torch.save(model) names the load hooks by module: code before checks.py saved them as model.retie and
    # model.note_tie, which torch.load must still find after a git pull
    import checks
    model = tiny(proj="qk_v").eval()
    for hook in (checks.retie, checks.note_tie):
        monkeypatch.setattr(hook, "__module__", "model")
    buffer = io.BytesIO()
    torch.save(model, buffer)
    monkeypatch.undo()
    loaded = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    loaded.load_state_dict(model.state_dict(), assign=True)
    assert loaded.lm_head.weight is loaded.transformer.wte.weight


def test_targets_sliced_from_one_batch_or_int32_give_the_same_loss():
    # batch[:, 1:] is not contiguous: targets.view failed on it
    model, batch = tiny(), torch.randint(0, VOCAB, (3, 11))
    x, y = batch[:, :-1], batch[:, 1:]
    loss = model(x, y.contiguous())[1]
    torch.testing.assert_close(model(x, y)[1], loss)
    torch.testing.assert_close(model(x.int(), y.int())[1], loss)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_sampling_at_a_tiny_temperature_is_the_argmax(dtype):
    # logits over 1e-40 (1e-6 in float16) overflowed to inf, and softmax's NaN failed in multinomial
    model = tiny().to(dtype)
    prompt = torch.zeros(2, 3, dtype=torch.long)
    greedy = model.generate(prompt, 4, temperature=0)
    for t in (1e-6, 1e-40, 5e-324):
        assert torch.equal(model.generate(prompt, 4, temperature=t), greedy)


@pytest.mark.parametrize("temperature", [1.0, 1e39, float("inf")])
def test_top_k_holds_at_any_temperature(temperature):
    # divided first, logits at a temperature float32 holds as inf were all 0, and top_k kept every token
    model, p = tiny(), torch.randint(0, VOCAB, (1, 4))
    top = set(model(p)[0][0, -1].topk(2).indices.tolist())
    torch.manual_seed(0)
    assert set(model.generate(p.repeat(64, 1), 1, temperature=temperature, top_k=2)[:, -1].tolist()) <= top


def test_optimizer_decays_only_matrices_and_mfu_is_unknown_on_cpu():
    model = tiny(proj="qk_v", pos_conv=8)
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu")
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    convs = [b.attn.conv.weight for b in model.transformer.h]  # 4-D, but a score scale and a bias, not a matrix
    assert all(p.dim() >= 2 for p in decay["params"]) and not any(p is c for p in decay["params"] for c in convs)
    assert all(p.dim() < 2 or any(p is c for c in convs) for p in no_decay["params"])
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == model.num_params()
    assert model.estimate_mfu(1, 0.1) is None


@pytest.mark.parametrize("args, named", [
    ((0.1, 1e-3, 0.9), "betas"), ((0.1, 1e-3, (0.9, 1.5)), "betas"), ((-0.1, 1e-3, (0.9, 0.95)), "weight_decay"),
    ((0.1, "3e-4", (0.9, 0.95)), "learning_rate"), ((0.1, float("nan"), (0.9, 0.95)), "learning_rate")])
def test_optimizer_arguments_out_of_range_are_one_sentence(args, named):
    # betas=0.9 was AdamW's "'float' object is not subscriptable", a text learning rate torch's "'<=' not supported"
    with pytest.raises(ValueError, match=f"^{named} must be"):
        tiny().configure_optimizers(*args, "cpu")
    assert tiny().configure_optimizers(0.1, torch.tensor(1e-3), [0.9, 0.95], "cpu")  # AdamW's own forms still go


@pytest.mark.parametrize("kw", [dict(tie_embeddings=False), dict(), dict(pos_emb="rope", tie_embeddings=False)])
def test_mfu_counts_the_weights_a_token_is_multiplied_by_not_embedding_lookups(kw):
    # 6 per weight of every matmul, LayerNorm and bias; the token table only as the output layer, no position table
    model, c = tiny(**kw), GPTConfig(block_size=BLOCK, vocab_size=VOCAB, n_layer=2, n_head=N_HEAD, n_embd=N_EMBD, **kw)
    lookups = ("transformer.wte", "transformer.wpe")  # a tied output layer is named wte: added back below
    mults = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(lookups))
    mults += VOCAB * N_EMBD if c.tie_embeddings else 0
    assert model.flops_per_token() == 6 * mults + 12 * 2 * N_EMBD * BLOCK


def test_mfu_counts_a_tie_made_or_undone_by_hand_as_the_weights_are():
    # untied by hand as retie's message advises: its token table was counted as a second output layer (MFU too high);
    # tied by hand: its output layer was taken for a lookup and left out (too low)
    untied, tied = tiny(tie_embeddings=False), tiny()
    by_hand = tiny()
    by_hand.lm_head.weight = torch.nn.Parameter(by_hand.lm_head.weight.detach().clone())
    assert by_hand.flops_per_token() == untied.flops_per_token()
    by_hand = tiny(tie_embeddings=False)
    by_hand.transformer.wte.weight = by_hand.lm_head.weight
    assert by_hand.flops_per_token() == tied.flops_per_token()


@pytest.mark.parametrize("name, peak", [("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12),
                                        ("NVIDIA H100 NVL", 835e12), ("NVIDIA H200", 989e12),
                                        ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA L4", None)])
def test_mfu_divides_by_the_peak_of_the_card_torch_names(monkeypatch, name, peak):
    # every name holding "H100" was read as the SXM card's 989 TFLOPS: an H100 PCIe's MFU a quarter too low, exit 0
    model = tiny()
    object.__setattr__(model, "lm_head", SimpleNamespace(weight=SimpleNamespace(device=torch.device("cuda"))))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda dev: name)
    mfu = model.estimate_mfu(2, 0.5)
    assert mfu is None if peak is None else mfu == pytest.approx(model.flops_per_token() * BLOCK * 2 / 0.5 / peak)


# ---------------------------------------------------------------- rotary position embeddings

def rope_reference(x, positions, base=10000.0):
    """Rotate-half RoPE written out per pair: dimensions i and i + D/2 of position p turn by p base^(-2i/D)."""
    D = x.size(-1)
    out = x.clone()
    for i in range(D // 2):
        a = positions.double() * base ** (-2 * i / D)
        c, s = a.cos().to(x.dtype)[:, None], a.sin().to(x.dtype)[:, None]
        out[..., i:i + 1] = x[..., i:i + 1] * c - x[..., i + D // 2:i + D // 2 + 1] * s
        out[..., i + D // 2:i + D // 2 + 1] = x[..., i + D // 2:i + D // 2 + 1] * c + x[..., i:i + 1] * s
    return out


def test_rope_keeps_norms_and_scores_depend_on_the_offset_only():
    from model import rope_tables, rotate
    q, k = torch.randn(1, 2, 1, 16), torch.randn(1, 2, 1, 16)
    at = lambda x, p: rotate(x, *rope_tables(torch.tensor([p]), 16, 10000.0))
    torch.testing.assert_close(at(q, 7).norm(dim=-1), q.norm(dim=-1))
    torch.testing.assert_close(at(q, 7), rope_reference(q, torch.tensor([7])))
    s = lambda i, j: (at(q, i) * at(k, j)).sum()
    torch.testing.assert_close(s(3, 10), s(20, 27), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(s(3, 10), s(3, 11), atol=1e-3)


def test_a_whole_number_rope_base_past_int64_is_a_base_like_any():
    # GPTConfig takes rope_base=10**30 (finite, > 1), and the forward was torch.pow's "int too big to convert"
    x = torch.zeros(1, 4, dtype=torch.long)
    torch.testing.assert_close(tiny(pos_emb="rope", rope_base=10 ** 30)(x)[0], tiny(pos_emb="rope", rope_base=1e30)(x)[0])


@pytest.mark.parametrize("proj", list(SOURCES))
def test_rope_layer_equals_reference_with_unrotated_values(proj):
    # q and k rotated by their positions, v never, also where v is the tied z that k rotates from
    attn = tiny(proj=proj, pos_emb="rope").transformer.h[0].attn
    x = torch.randn(2, 9, N_EMBD)
    q, k, v = paper_qkv(attn, x)
    pos = torch.arange(9)
    s = rope_reference(q, pos) @ rope_reference(k, pos).transpose(-1, -2) / math.sqrt(attn.head_dim)
    s = s.masked_fill(torch.ones(9, 9, dtype=torch.bool).triu(1), float("-inf"))
    torch.testing.assert_close(attn(x), attn.c_proj(merge(s.softmax(-1) @ v)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("proj,kv", VARIANTS)
def test_rope_cached_decoding_equals_full_forward(proj, kv):
    model = tiny(proj=proj, n_kv_head=kv, pos_emb="rope")
    idx = torch.randint(0, VOCAB, (2, 14))
    torch.testing.assert_close(decode_logits(model, idx, prefill=4), model(idx)[0][:, 3:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(decode_logits(model, idx, prefill=4, tensor_pos=True), model(idx)[0][:, 3:],
                               atol=1e-5, rtol=1e-5)


def test_rope_has_no_position_table_and_ties_k_v_at_half_the_cache():
    qkv, qk_v = tiny(pos_emb="rope"), tiny(proj="qk_v", pos_emb="rope")
    assert "transformer.wpe.weight" not in dict(qkv.named_parameters())
    assert qkv.num_params() == closed_form_params("qkv", 0) - BLOCK * N_EMBD
    cache = qk_v.new_cache(2, BLOCK)
    assert set(cache.layers[0]) == {"k"}  # z only, unrotated: no V buffer
    assert 2 * cache.nbytes == qkv.new_cache(2, BLOCK).nbytes == 2 * 2 * 2 * BLOCK * N_EMBD * 4
    # the cached z is the unrotated projection: exactly what the values are
    idx = torch.randint(0, VOCAB, (2, 6))
    qk_v(idx, cache=cache)
    attn = qk_v.transformer.h[0].attn
    _, z, _ = attn.project(qk_v.transformer.h[0].ln_1(qk_v.transformer.wte(idx)))
    torch.testing.assert_close(cache.layers[0]["k"][:, :, :6], z)


@pytest.mark.parametrize("kw, says", [(dict(attn="linear"), "got attn='linear'"), (dict(pos_conv=8), "got pos_conv=8"),
                                      (dict(n_embd=36, n_head=4), "n_embd/n_head = 36/4 = 9")])
def test_rope_refuses_what_it_cannot_do(kw, says):
    # one sentence listed all three conditions, so an odd head_dim read as a linear-attention or (X)+ problem
    with pytest.raises(ValueError, match="pos_emb='rope'") as e:
        tiny(pos_emb="rope", **kw)
    assert str(e.value).count("got") + str(e.value).count("n_embd/n_head") == 1 and says in str(e.value)
