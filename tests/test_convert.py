"""convert.convert_state_dict (retrofit: qkv -> qk_v, GQA/MQA) and the GPT-2 hub layout, against cases with exact answers."""

import sys
from dataclasses import replace

import pytest
import torch

import convert as cv
from convert import convert_state_dict, from_hub_layout
from model import GPT, GPTConfig

N_HEAD, N_EMBD, VOCAB, BLOCK, D = 4, 32, 50, 32, 8
CFG = GPTConfig(block_size=BLOCK, vocab_size=VOCAB, n_layer=2, n_head=N_HEAD, n_embd=N_EMBD)
IDX = torch.randint(0, VOCAB, (4, BLOCK), generator=torch.Generator().manual_seed(1))


def model_of(cfg, state=None):
    torch.manual_seed(0)
    model = GPT(cfg).eval()
    if state is not None:
        model.load_state_dict(state)
    return model


def logits(model):
    with torch.no_grad():
        return model(IDX)[0]


def rows(chunk, head, H=N_HEAD):
    """Rows of c_attn holding `head` of chunk 0 (q), 1 (k) or 2 (v) of a qkv layer with H key/value heads."""
    start = N_HEAD * D + (chunk - 1) * H * D if chunk else 0
    return slice(start + head * D, start + (head + 1) * D)


def value_is_affine_in_key(model, H=N_HEAD, seed=0):
    """Wv_h := Mᵀ Wk_h, bv_h := bk_h M + c per head, M invertible: v = k M + c exactly."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in model.transformer.h:
            W, b = block.attn.c_attn.weight, block.attn.c_attn.bias
            b.normal_(0, 0.1, generator=g)
            for h in range(H):
                M = torch.randn(D, D, generator=g) + 3 * torch.eye(D)
                W[rows(2, h, H)] = M.T @ W[rows(1, h, H)]
                b[rows(2, h, H)] = b[rows(1, h, H)] @ M + 0.1 * torch.randn(D, generator=g)


def convert(model, dst, method=None, src=CFG):
    state, fits = convert_state_dict(model.state_dict(), src, dst, method, calib=IDX)
    return model_of(dst, state), fits


@pytest.mark.parametrize("proj,kv", [("qkv", 0), ("qkv", 2), ("qk_v", 0), ("qk_v", 1), ("q_kv", 0), ("q_k_v", 0)])
def test_conversion_to_the_same_variant_is_the_identity(proj, kv):
    cfg = replace(CFG, proj=proj, n_kv_head=kv)
    model = model_of(cfg)
    converted, _ = convert(model, cfg, "lstsq", src=cfg)
    assert torch.equal(logits(converted), logits(model))


def test_lstsq_is_exact_when_v_is_an_affine_map_of_k():
    model = model_of(CFG)
    value_is_affine_in_key(model)
    converted, fits = convert(model, replace(CFG, proj="qk_v"), "lstsq")
    assert torch.allclose(logits(converted), logits(model), atol=1e-5)
    assert max(max(f["residual"]) for f in fits) < 1e-9


def test_k_and_mean_are_not_exact_there():  # the case above is not exact by construction of the test
    model = model_of(CFG)
    value_is_affine_in_key(model)
    for method in ("k", "mean"):
        converted, _ = convert(model, replace(CFG, proj="qk_v"), method)
        assert (logits(converted) - logits(model)).abs().max() > 1e-2


def test_split_keeps_exactly_the_score_rank_and_uses_the_freed_dimensions_for_v():
    """Queries of rank r = 4 per head leave 4 dimensions of the tied projection free. Any v = k M + c then is
    exact: what the 4 kept key directions cannot predict of v lies in the span of the 4 others."""
    model = model_of(CFG)
    value_is_affine_in_key(model)
    with torch.no_grad():
        for block in model.transformer.h:
            for h in range(N_HEAD):
                q = rows(0, h)
                block.attn.c_attn.weight[q.start + 4:q.stop] = 0
                block.attn.c_attn.bias[q.start + 4:q.stop] = 0
    converted, fits = convert(model, replace(CFG, proj="qk_v"), "split")
    assert all(f["rank"] == [4] * N_HEAD for f in fits)
    assert torch.allclose(logits(converted), logits(model), atol=1e-5)


def identical_heads_in_groups(model, groups):
    """Every key head and every value head equal to the first of its group: pooling them loses nothing."""
    G = N_HEAD // groups
    with torch.no_grad():
        for block in model.transformer.h:
            W, b = block.attn.c_attn.weight, block.attn.c_attn.bias
            for chunk in (1, 2):
                for h in range(N_HEAD):
                    W[rows(chunk, h)], b[rows(chunk, h)] = W[rows(chunk, h - h % G)], b[rows(chunk, h - h % G)]


@pytest.mark.parametrize("kv", [2, 1])
def test_gqa_mean_pooling_of_identical_heads_is_exact(kv):
    model = model_of(CFG)
    identical_heads_in_groups(model, kv)
    converted, _ = convert(model, replace(CFG, n_kv_head=kv))
    assert torch.allclose(logits(converted), logits(model), atol=1e-6)


def test_pooling_and_lstsq_tying_at_once_are_exact_on_identical_affine_heads():
    model = model_of(CFG)
    value_is_affine_in_key(model)
    identical_heads_in_groups(model, 2)  # after the affine map: v heads copied along with their k heads
    converted, _ = convert(model, replace(CFG, proj="qk_v", n_kv_head=2), "lstsq")
    assert torch.allclose(logits(converted), logits(model), atol=1e-5)


def test_untying_and_repeating_heads_are_exact():
    src = replace(CFG, proj="qk_v", n_kv_head=1)
    model = model_of(src)
    converted, _ = convert(model, CFG, src=src)
    assert torch.allclose(logits(converted), logits(model), atol=1e-6)


@pytest.mark.parametrize("proj,kv", [("qk_v", 0), ("qk_v", 2), ("qk_v", 1), ("qkv", 1)])
def test_converted_shapes_and_cache_bytes_are_the_destinations(proj, kv):
    dst = replace(CFG, proj=proj, n_kv_head=kv)
    state, _ = convert_state_dict(model_of(CFG).state_dict(), CFG, dst, "lstsq", IDX)
    fresh = GPT(dst).state_dict()
    assert {k: t.shape for k, t in state.items()} == {k: t.shape for k, t in fresh.items()}
    model = model_of(dst, state)
    cached = (kv or N_HEAD) * D * (1 if proj == "qk_v" else 2)  # per layer per token
    assert model.kv_bytes_per_token(torch.float32) == 2 * cached * 4
    assert model.new_cache(2, BLOCK).nbytes == 2 * cached * 4 * 2 * BLOCK


def test_conversion_keeps_every_other_weight_and_the_input_dtype():
    state = {k: t.to(torch.bfloat16) for k, t in model_of(CFG).state_dict().items()}
    out, _ = convert_state_dict(state, CFG, replace(CFG, proj="qk_v"), "k")
    assert all(t.dtype == torch.bfloat16 for t in out.values())
    assert all(torch.equal(out[k], t) for k, t in state.items() if ".attn.c_" not in k)


@pytest.mark.parametrize("src,dst,method,field", [
    (CFG, replace(CFG, proj="q_kv"), "lstsq", "proj"),
    (CFG, replace(CFG, proj="q_k_v"), "mean", "proj"),
    (CFG, replace(CFG, proj="qk_v"), None, "convert_method"),
    (CFG, replace(CFG, proj="qk_v"), "svd", "convert_method"),
    (CFG, replace(CFG, n_layer=3), None, "n_layer"),
    (replace(CFG, n_head=6, n_embd=48, n_kv_head=2), replace(CFG, n_head=6, n_embd=48, n_kv_head=3), None,
     "n_kv_head"),
    # another rope_base turns every key by other angles: it was "the same variant, weights as they are"
    (replace(CFG, pos_emb="rope"), replace(CFG, pos_emb="rope", rope_base=500.0), None, "rope_base"),
    # split's whitening mixes the key's dimensions, RoPE's pairs with them: a layer's scores moved by 118%
    (replace(CFG, pos_emb="rope"), replace(CFG, pos_emb="rope", proj="qk_v"), "split", "pos_emb='rope'"),
    (replace(CFG, attn="linear"), replace(CFG, attn="linear", proj="qk_v"), "split", "attn='linear'"),  # φ per dim
])
def test_impossible_conversions_are_one_sentence_naming_the_field(src, dst, method, field):
    with pytest.raises(ValueError) as e:
        convert_state_dict(GPT(src).state_dict(), src, dst, method, IDX)
    assert field in str(e.value) and "\n" not in str(e.value)


def test_every_field_a_conversion_keeps_is_named_at_once():
    # train.py --init_from=CKPT without the source's config file was told "set vocab_size=64", then block_size, ...
    dst = replace(CFG, vocab_size=50304, block_size=1024, n_layer=12, proj="qk_v")
    with pytest.raises(ValueError) as e:
        cv.check_conversion(CFG, dst, "k", None)
    assert str(e.value) == (f"conversion keeps vocab_size, block_size, n_layer (source {VOCAB}, {CFG.block_size}, "
                            f"{CFG.n_layer}, destination 50304, 1024, 12); set vocab_size={VOCAB}, block_size="
                            f"{CFG.block_size}, n_layer={CFG.n_layer} or train the new shape from scratch.")


def test_a_refused_tie_names_the_tie_the_source_lacks():
    # a qk_v source was told "convert to 'qk_v'", the variant it already is
    for src, dst, fix in (("qkv", "q_k_v", "convert to"), ("qk_v", "q_k_v", "keep it as"),
                          ("qk_v", "q_kv", "keep it as"), ("qkv", "q_kv", "convert to")):
        with pytest.raises(ValueError) as e:
            cv.check_conversion(replace(CFG, proj=src), replace(CFG, proj=dst), "k", None)
        assert str(e.value) == (f"cannot convert proj={src!r} to {dst!r}: tying Q to K changes every score and no "
                                f"method here preserves them; {fix} 'qk_v' or train {dst!r} from scratch.")


def test_q_kv_to_q_k_v_keeps_every_score_with_k_and_lstsq():
    """q_kv's K is its Q: tying V to it keeps the one shared projection, so the scores stay; lstsq is exact when v
    is affine in k. It was refused as "changing every score". mean and split move K, which is Q, and are refused."""
    src, dst = replace(CFG, proj="q_kv"), replace(CFG, proj="q_k_v")
    model = model_of(src)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # chunk 0 is q (= k), chunk 1 is v: v = k M + c per head
        for block in model.transformer.h:
            W, b = block.attn.c_attn.weight, block.attn.c_attn.bias
            for h in range(N_HEAD):
                M = torch.randn(D, D, generator=g) + 3 * torch.eye(D)
                W[rows(1, h)] = M.T @ W[rows(0, h)]
                b[rows(1, h)] = b[rows(0, h)] @ M + 0.1 * torch.randn(D, generator=g)
    converted, fits = convert(model, dst, "lstsq", src=src)
    assert torch.allclose(logits(converted), logits(model), atol=1e-5) and max(max(f["residual"]) for f in fits) < 1e-9
    converted, _ = convert(model, dst, "k", src=src)
    assert torch.equal(converted.transformer.h[0].attn.c_attn.weight, model.transformer.h[0].attn.c_attn.weight[:32])
    for method in ("mean", "split"):
        with pytest.raises(ValueError) as e:
            convert(model, dst, method, src=src)
        assert str(e.value) == (f"convert_method={method!r} moves K, and in proj='q_kv' K is also Q, so every score "
                                f"would change; use 'k' or 'lstsq' to tie V to it.")
        convert(model, replace(dst, proj="qk_v"), method, src=src)  # K untied from Q first: any method


def test_lstsq_without_calibration_tokens_is_refused():
    with pytest.raises(ValueError, match="calib"):
        convert_state_dict(GPT(CFG).state_dict(), CFG, replace(CFG, proj="qk_v"), "lstsq")


@pytest.mark.parametrize("call,field", [
    # torch's errors from deep inside (embedding, reshape, load_state_dict listing every key) or an AttributeError
    (lambda st, dst: convert_state_dict(st, CFG, dst, "lstsq", IDX.float()), "calib must be token ids"),
    (lambda st, dst: convert_state_dict(st, CFG, dst, "lstsq", IDX[0]), "calib"),
    (lambda st, dst: convert_state_dict(st, CFG, dst, "lstsq", IDX[:0]), "calib"),
    (lambda st, dst: convert_state_dict(st, CFG, dst, "lstsq", IDX.tolist()), "calib"),
    (lambda st, dst: convert_state_dict(st, CFG, dst, "split", IDX.repeat(1, 2)), "T <= block_size"),
    (lambda st, dst: convert_state_dict(st, CFG, dst, "lstsq", IDX + VOCAB), "below vocab_size"),
    (lambda st, dst: convert_state_dict(st, replace(CFG, n_layer=3), replace(dst, n_layer=3), "k"),
     "state does not fit src_config at transformer.h.2"),
    (lambda st, dst: convert_state_dict({"_orig_mod." + k: t for k, t in st.items()}, CFG, dst, "k"), "_orig_mod"),
    (lambda st, dst: convert_state_dict(GPT(CFG), CFG, dst, "k"), "state must be a dict"),
    # the whole checkpoint: "must be a dict of weights ...; got dict", which it is
    (lambda st, dst: convert_state_dict({"model": dict(st), "iter_num": 5}, CFG, dst, "k"),
     "got a dict whose 'model' is (OrderedDict|dict); pass ckpt\\['model'\\]\\.$"),
    (lambda st, dst: convert_state_dict(st, CFG, {"proj": "qk_v"}, "k"), "dst_config must be"),
    # a diverged run's weights: LAPACK's error on stderr and torch's "please report a bug" INTERNAL ASSERT
    (lambda st, dst: convert_state_dict({**st, "transformer.h.0.attn.c_attn.weight": torch.full_like(
        st["transformer.h.0.attn.c_attn.weight"], float("nan"))}, CFG, dst, "lstsq", IDX),
     "state holds NaN or inf in transformer.h.0.attn.c_attn.weight"),
    # a model built on the meta device: the NaN check above was torch's "cannot be called on meta tensors"
    (lambda st, dst: convert_state_dict({k: t.to("meta") for k, t in st.items()}, CFG, dst, "k"),
     "state holds transformer.wte.weight on the meta device"),
])
def test_bad_calibration_states_and_configs_are_one_sentence(call, field):
    with pytest.raises(ValueError, match=field) as e:
        call(GPT(CFG).state_dict(), replace(CFG, proj="qk_v"))
    assert "\n" not in str(e.value)


def test_a_gpt2_size_that_does_not_exist_is_refused_before_the_hub_is_asked():
    # gpt2_config's KeyError; load_gpt2 offline advised to "unset HF_HUB_OFFLINE to download gpt3 once"
    for call in (cv.gpt2_config, cv.load_gpt2):
        with pytest.raises(ValueError, match="GPT-2 comes in the sizes gpt2, gpt2-medium, gpt2-large, gpt2-xl; got"):
            call("gpt3")


def test_split_on_fewer_calibration_tokens_than_head_dim():
    # 3 tokens give an SVD of 3 directions, fewer than the D - r the freed dimensions want: a shape error
    model = model_of(CFG)
    state, fits = convert_state_dict(model.state_dict(), CFG, replace(CFG, proj="qk_v"), "split", IDX[:1, :3])
    assert all(len(f["rank"]) == N_HEAD for f in fits) and all(t.isfinite().all() for t in state.values())


def hub_layout(model):
    """Our qkv state dict as the hub stores GPT-2: no 'transformer.' prefix, Conv1D weights [in, out], causal-mask
    buffers, lm_head kept under its own name."""
    hub = {}
    for name, t in model.state_dict().items():
        if name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):
            t = t.t()
        hub[name.removeprefix("transformer.")] = t.clone()
    for i in range(model.config.n_layer):
        hub[f"h.{i}.attn.bias"] = torch.tril(torch.ones(BLOCK, BLOCK))[None, None]
        hub[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    return hub


def test_hub_layout_maps_to_our_names_with_equal_logits():
    model = model_of(CFG)
    converted = model_of(CFG, from_hub_layout(hub_layout(model)))  # strict: every name matched, none left over
    assert torch.equal(logits(converted), logits(model))


def test_gpt2_comes_from_the_cache_without_asking_the_network(tmp_path, monkeypatch):
    import huggingface_hub
    hub = hub_layout(model_of(CFG))
    torch.save(hub, tmp_path / "pytorch_model.bin")
    calls = []

    def download(repo, file, local_files_only=False):
        calls.append((repo, local_files_only))
        return str(tmp_path / "pytorch_model.bin")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(cv, "hub_reachable", lambda: pytest.fail("asked the network"))
    for name in ("safetensors", "safetensors.torch"):  # the .bin file, as without safetensors installed
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setattr(cv, "gpt2_config", lambda name: CFG)  # gpt2's shapes, made small
    cfg, state = cv.load_gpt2("gpt2")
    assert calls == [("openai-community/gpt2", True)]
    assert cfg == CFG and state.keys() == from_hub_layout(hub).keys()


@pytest.mark.parametrize("content", [b"", b"garbage", "tiny"], ids=["empty", "not torch's", "another size"])
def test_a_damaged_gpt2_in_the_cache_is_one_sentence(tmp_path, monkeypatch, content):
    import huggingface_hub
    path = tmp_path / "pytorch_model.bin"  # was an EOFError, an UnpicklingError or load_state_dict's size mismatch
    if content == "tiny":
        torch.save(hub_layout(model_of(replace(CFG, n_layer=1))), path)
    else:
        path.write_bytes(content)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo, file, local_files_only=False: str(path))
    for name in ("safetensors", "safetensors.torch"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setattr(cv, "gpt2_config", lambda name: CFG)
    with pytest.raises(ValueError) as e:
        cv.load_gpt2("gpt2")
    assert str(e.value) == (f"{path}, the cached gpt2, is damaged or not gpt2's weights; delete it and download it "
                            f"again (run once where there is a network).")


def test_gpt2_offline_is_one_sentence_at_once(tmp_path, monkeypatch, capfd):
    import huggingface_hub.constants as hc
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path))  # an empty cache, whatever this machine holds
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(cv, "hub_reachable", lambda: False)  # no network: the real check is tested below
    with pytest.raises(ValueError) as e:
        cv.load_gpt2("gpt2")
    assert str(e.value) == (f"gpt2 is not in the Hugging Face cache ({tmp_path}) and the hub ({hc.ENDPOINT}) does not "
                            f"answer; download it once where there is a network (the cache is reused), or set HF_HOME "
                            f"to a cache that holds it.")
    assert capfd.readouterr().err == ""  # none of the hub's retry warnings


def test_gpt2_with_hf_hub_offline_names_that_setting(tmp_path, monkeypatch):
    import huggingface_hub.constants as hc
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)  # was: "the hub does not answer; download it where there is a
    with pytest.raises(ValueError) as e:            # network", on a machine that has one
        cv.load_gpt2("gpt2")
    assert str(e.value) == (f"gpt2 is not in the Hugging Face cache ({tmp_path}) and HF_HUB_OFFLINE (or "
                            f"TRANSFORMERS_OFFLINE) is set, so the hub is not asked; unset it to download gpt2 once "
                            f"(the cache is reused), or set HF_HOME to a cache that holds it.")


def test_hub_reachable_asks_once_briefly_and_respects_offline_mode(monkeypatch):
    import huggingface_hub
    import huggingface_hub.constants as hc
    asked = []

    class Session:
        def head(self, url, timeout):
            asked.append((url, timeout))
            if len(asked) == 2:
                raise OSError("no route to host")
    monkeypatch.setattr(huggingface_hub, "get_session", Session)
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    assert cv.hub_reachable() is True and cv.hub_reachable() is False
    assert asked == [(hc.ENDPOINT, 3)] * 2
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)  # HF_HUB_OFFLINE=1: never ask
    assert cv.hub_reachable() is False and len(asked) == 2


def test_gpt2_download_failure_is_one_sentence_and_the_retry_log_is_quiet(tmp_path, monkeypatch):
    import logging

    import huggingface_hub
    levels = []

    def download(repo, file, local_files_only=False):
        if local_files_only:
            raise FileNotFoundError("not cached")
        levels.append(logging.getLogger("huggingface_hub").getEffectiveLevel())
        raise ConnectionError("reset by peer")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(cv, "hub_reachable", lambda: True)
    before = logging.getLogger("huggingface_hub").level
    with pytest.raises(ValueError, match=r"^could not download gpt2 from the Hugging Face hub \(ConnectionError\)"):
        cv.load_gpt2("gpt2")
    assert levels == [logging.ERROR] and logging.getLogger("huggingface_hub").level == before


@pytest.mark.parametrize("hub", [{}, [1], {"h.0.ln_1.weight": torch.ones(2)}])
def test_from_hub_layout_of_no_gpt2_state_dict_is_one_sentence(hub):
    # an empty or another model's dict was a KeyError on wte.weight, a transformers model itself an AttributeError
    with pytest.raises(ValueError, match="^hub must be a GPT-2 state dict as the hub stores it .* with its wte.weight"):
        from_hub_layout(hub)
