"""
What model.py refuses, and why: GPTConfig's fields, forward's, generate's and new_cache's arguments, a model.config
changed after the build, a linear-attention cache rewound, and the tied embedding kept through loads and pickles.
Each is one sentence naming the argument and the fix, checked before any work. Kept apart so that model.py reads
as the model; it imports only torch (model.py imports it).
"""

import math
import numbers
from dataclasses import fields, replace

import torch
import torch.nn as nn


KINDS = {bool: "True or False", int: "an integer", float: "a number"}


def finite(x):
    """math.isfinite, False for an integer past float's range: rope_base=10**400 was math.isfinite's OverflowError
    traceback. (kernel.py, which imports no project file, has its own: kernel.real.)"""
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def of_kind(v, default):
    """Whether v may stand where default does: a bool for a bool, an integer (no bool) for an int, any real number
    (no bool) for a float. numpy's bool is a bool: a sweep over np.array([True, False]) was refused as
    "got np.False_"."""
    v = bool(v) if type(v).__module__ == "numpy" and type(v).__name__ in ("bool", "bool_") else v
    if isinstance(default, bool) or isinstance(v, bool):
        return isinstance(v, bool) and isinstance(default, bool)
    return isinstance(v, numbers.Integral if isinstance(default, int) else numbers.Real)


def config_fields(config, choices, base):
    """GPTConfig's fields, each of its kind and range and together a model that can be built, in one sentence each;
    choices: each text field's allowed values (model.py's SOURCES, ATTNS, ...); base: GPTConfig, whose defaults say
    which parts are off (a subclass's own default rope_base with learned positions acted on nothing, without a
    word, where it was refused before checks.py)."""
    # GPTConfig(ckpt["model_args"]) was "block_size must be an integer; got {...}", which named no fix
    if isinstance(config.block_size, dict):
        raise ValueError("GPTConfig takes its fields as keywords: GPTConfig(**ckpt['model_args']), not the dict "
                         "itself.")
    # each field of its default's kind first: block_size=2.5 failed deep in building the model, and
    # causal="False", a true string, built a causal model without a word
    for f in fields(config):  # the text settings: one of their choices, below
        v = getattr(config, f.name)
        if isinstance(f.default, str):  # numpy's str as Python's: np.str_ in asdict(config) made a checkpoint
            if isinstance(v, str) and type(v) is not str:  # saved so one that a weights-only load refuses
                setattr(config, f.name, str(v))
            continue
        if not of_kind(v, f.default):
            raise ValueError(f"{f.name} must be {KINDS[type(f.default)]}; got {v!r}.")
        if type(v) not in (int, float, bool):  # numpy's as Python's: np.int64 heads made SDPA's enable_gqa a
            try:  # numpy bool, which it refuses
                setattr(config, f.name, type(f.default)(v))
            except OverflowError:  # a Fraction past float's range (rope_base=Fraction(10**400, 3)): its range's
                setattr(config, f.name, math.inf if v > 0 else -math.inf)  # sentence below, not float()'s traceback
    for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
        if not getattr(config, name) >= 1:
            raise ValueError(f"{name} must be a positive integer; got {getattr(config, name)}.")
    # torch's sizes are int64, in bytes: vocab_size=10**30 passed here and failed in nn.Embedding's torch.empty, a
    # traceback (bench's memory plan builds every config in config/ on the meta device, where nothing else stops
    # it), and so did 2**61 elements of float32 ("Storage size calculation overflowed"); 8 bytes an
    # element leaves room for model.double(). n_embd first: the one named is then the largest factor
    n = config.n_embd
    weights = {"n_embd": 3 * n * n, "vocab_size": config.vocab_size * n, "block_size": config.block_size * n,
               "n_inner": (config.n_inner or 4 * n) * n, "pos_conv": config.pos_conv}  # (X)+'s conv: m x 1
    for name, size in weights.items():
        if size * 8 >= 2 ** 63:
            by = f" with n_embd = {n}" if name not in ("n_embd", "pos_conv") else ""
            raise ValueError(f"{name} = {getattr(config, name)}{by} makes a weight of {size:.3g} elements, past "
                             f"torch's int64 sizes (2**63 bytes); give smaller ones.")
    # LayerNorm over one feature subtracts it from its own mean: every position's input became the LayerNorm's
    # bias, and a model that cannot see its tokens trained and sampled with exit 0
    if config.n_embd < 2:
        raise ValueError(f"n_embd must be at least 2 (LayerNorm over a single feature zeroes it, so every token "
                         f"would look the same to the model); got {config.n_embd}.")
    if config.n_inner < 0:
        raise ValueError(f"n_inner must be 0 (4 * n_embd) or a positive integer; got {config.n_inner}.")
    # as train.py's range: 0 or below gave inf or nan angles, and so did 1e-300 (its powers overflow)
    if not (finite(config.rope_base) and config.rope_base > 1):
        raise ValueError(f"rope_base must be a finite number > 1 (at 1 every pair turns at the same frequency; "
                         f"below, the wavelengths run backwards); got {config.rope_base}.")
    if not 0 <= config.dropout < 1:
        raise ValueError(f"dropout must be in [0, 1); got {config.dropout}.")
    for name, names in choices.items():
        if not (isinstance(getattr(config, name), str) and getattr(config, name) in names):
            raise ValueError(f"{name} must be one of {', '.join(names)}; got {getattr(config, name)!r}.")
    if config.n_head < 1 or config.n_embd % config.n_head:
        raise ValueError(f"n_embd ({config.n_embd}) must be divisible by n_head ({config.n_head}).")
    kv = config.n_kv_head or config.n_head
    if config.n_kv_head < 0 or config.n_head % kv:
        raise ValueError(f"n_kv_head must divide n_head={config.n_head} (0 = n_head, 1 = MQA, g = GQA-g); "
                         f"got {config.n_kv_head}.")
    if choices["proj"][config.proj][0] == choices["proj"][config.proj][1] and kv != config.n_head:
        raise ValueError(f"n_kv_head must be 0 or n_head for proj={config.proj!r}, whose keys are its queries; "
                         f"got {config.n_kv_head}. Use proj='qkv' or 'qk_v' for GQA/MQA.")
    if config.pos_conv < 0 or config.pos_conv % 4:
        raise ValueError(f"pos_conv must be 0 (off) or a positive multiple of 4; got {config.pos_conv}.")
    if config.pos_conv_period and (config.pos_conv_period < 4 or not config.pos_conv):
        raise ValueError(f"pos_conv_period must be 0 (off) or a period of at least 4 positions with pos_conv > 0; "
                         f"got {config.pos_conv_period} with pos_conv={config.pos_conv}.")
    # RoPE: softmax (linear φ(R q)ᵀ φ(R k) is no function of the offset), no (X)+, pairs; the one in the way
    head_dim = config.n_embd // config.n_head
    why = config.pos_emb == "rope" and ("attn='softmax'; got attn='linear'" if config.attn == "linear" else
                                      f"pos_conv=0; got pos_conv={config.pos_conv}" if config.pos_conv else
                                      f"an even head_dim; n_embd/n_head = {config.n_embd}/{config.n_head} = "
                                      f"{head_dim}" if head_dim % 2 else "")
    if why:
        raise ValueError(f"pos_emb='rope' needs {why}; change that, or use pos_emb='learned' or 'none'.")
    if config.pos_conv and config.attn == "linear":
        raise ValueError("pos_conv needs attn='softmax': linear attention has no score map to convolve.")
    # a setting of a part the model does not have would train without it, and without a word
    if config.rope_base != base.rope_base and config.pos_emb != "rope":
        raise ValueError(f"rope_base acts only with pos_emb='rope', and pos_emb is {config.pos_emb!r}; set "
                         f"pos_emb='rope', or leave rope_base at {base.rope_base:g}.")
    if config.pos_conv_basis != base.pos_conv_basis and not config.pos_conv:
        raise ValueError(f"pos_conv_basis acts only with pos_conv > 0 ((X)+ on), and pos_conv is 0; set pos_conv "
                         f"to a multiple of 4, or leave pos_conv_basis at {base.pos_conv_basis!r}.")


def check_built(model):
    """model.config as built: model.config.block_size = 64, to try a longer context, was an IndexError in the
    position table, and a changed proj or dropout described a model other than the layers without a word."""
    built, config = model.__dict__.get("built"), model.config  # built: None only where __init__ never ran
    if built is None or config == built:
        return
    if not isinstance(config, type(built)):  # model.config = ckpt["model_args"]: an AttributeError on the dict
        raise ValueError(f"model.config was replaced by a {type(config).__name__} after the model was built; "
                         f"it is the GPTConfig of its layers (model.built holds it: model.config = "
                         f"dataclasses.replace(model.built)).")
    changed = next(f.name for f in fields(built) if getattr(config, f.name) != getattr(built, f.name))
    raise ValueError(f"model.config.{changed} was changed after the model was built ({getattr(built, changed)!r} "
                     f"-> {getattr(config, changed)!r}), and the layers are the old config's; build "
                     f"GPT(config) with the new one (its weights: this model's state_dict where their shapes "
                     f"agree, convert.convert_state_dict for proj or n_kv_head).")


def check_forward(model, idx, targets, cache, cache_type):
    """forward's inputs against the model: tokens, devices, and a cache (a cache_type, model.Cache) of this model,
    batch and eval mode, with room for idx."""
    check_tokens(idx, targets)
    check_built(model)
    # after idx, as before the move here: a float idx with a dict cache was named by its idx
    if cache is not None and not isinstance(cache, cache_type):  # a dict or list: an AttributeError on .pos
        raise ValueError(f"cache must be None or a Cache from model.new_cache(batch_size, max_len); got "
                         f"{type(cache).__name__}.")
    B, T = idx.shape
    # one sentence, not torch's "Expected all tensors to be on the same device" from the embedding or SDPA (a
    # cache left at new_cache's default device="cpu" for a CUDA model)
    where = model.lm_head.weight.device
    for name, dev in (("idx", idx.device), ("cache", cache.lengths.device if cache is not None else where)):
        check_device(name, dev, where)
    if cache is None:
        if T > model.config.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than the block_size of {model.config.block_size}.")
        return
    if cache.config is not model.config and cache.config != model.config:
        # a Q-K=V cache has no V: a QKV model would read its K as V without a word
        raise ValueError("the cache was made by another model (another GPTConfig); make it with this model's "
                         "new_cache(...).")
    if B != cache.lengths.size(0):
        raise ValueError(f"idx holds a batch of {B} but the cache was made for {cache.lengths.size(0)}; "
                         f"make it with new_cache({B}, ...).")
    if model.training and model.config.dropout > 0:  # a decode loop of one's own, as generate
        raise ValueError(f"a cached forward needs the model in eval mode: it is in training mode with dropout="
                         f"{model.config.dropout:g}, which would drop activations while decoding; call model.eval() "
                         f"first.")
    if targets is not None:
        raise ValueError("targets must be None with a cache: a cached forward returns the last position's "
                         "logits only; compute the loss without the cache.")
    pos = cache.pos  # set by hand (a rewind): -1 was the position table's IndexError, 2.0 the embedding's RuntimeError
    if not (torch.is_tensor(pos) or isinstance(pos, numbers.Integral) and not isinstance(pos, bool) and pos >= 0):
        raise ValueError(f"cache.pos must be an integer >= 0, the tokens already in the cache; got {pos!r}.")
    if not torch.is_tensor(pos) and pos + T > cache.max_len:  # a tensor pos is generate's compiled step
        raise ValueError(f"sequence of {pos + T} tokens is longer than the cache max_len of {cache.max_len}.")
    if not torch.is_tensor(pos) and model.config.attn == "softmax" and cache.end is not None and pos > cache.end:
        # a skip ahead attended to positions never written: zeros, or the last prompt's keys after cache.pos = 0
        # (a tensor pos first: reading cache.end there guarded generate's compiled step on it, a second graph)
        raise ValueError(f"cache.pos is {pos}, past the {cache.end} positions written: attention would read "
                         f"positions never written for this sequence; set cache.pos to at most {cache.end}.")


def check_device(name, dev, where):
    """idx or a cache on another device than the model (where), in one sentence."""
    if dev != where:
        raise ValueError(f"{name} is on {dev} and the model on {where}; "
                         + (f"move it with idx.to('{where}')." if name == "idx" else
                            f"make it with new_cache(..., device='{where}')."))


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


def check_generate(model, idx, max_new_tokens, temperature, top_k, use_cache, compile):
    """generate's arguments at their edges, in one sentence each: else an empty prompt fails deep in attention,
    top_k=0 in an index and a negative temperature silently samples the least likely tokens."""
    check_built(model)
    vocab_size = model.config.vocab_size
    if torch.is_tensor(idx) and idx.dim() == 2 and idx.size(1) < 1:
        raise ValueError("the prompt idx [B, T] must hold at least one token (T >= 1); start from a token, "
                         "e.g. the tokenizer's end of text.")
    check_tokens(idx)
    # before its values are read: a prompt on the meta device was .item()'s RuntimeError there, not forward's sentence
    check_device("idx", idx.device, model.lm_head.weight.device)
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
    if model.training and model.config.dropout > 0:  # as eval.CheckpointLM: else it samples under dropout, and
        # greedy decoding gave other tokens on every call without a word
        raise ValueError(f"generate needs the model in eval mode: it is in training mode with dropout="
                         f"{model.config.dropout:g}, which would drop activations while sampling; call "
                         f"model.eval() first.")
    if compile and (not use_cache or model.config.pos_conv):
        raise ValueError("compile=True needs use_cache=True and pos_conv=0: it compiles the cached one-token "
                         "step, and (X)+'s bias is built for an int position.")


def check_optimizer(weight_decay, learning_rate, betas):
    """configure_optimizers' arguments in one sentence each: betas=0.9 was AdamW's "'float' object is not
    subscriptable", a learning rate given as text torch's "'<=' not supported" (a one-number tensor is AdamW's too)."""
    def real(v):
        v = v.item() if torch.is_tensor(v) and v.numel() == 1 else v
        return isinstance(v, numbers.Real) and not isinstance(v, bool) and finite(v)
    for name, v in (("weight_decay", weight_decay), ("learning_rate", learning_rate)):
        if not (real(v) and v >= 0):
            raise ValueError(f"{name} must be a finite number >= 0; got {v!r}.")
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2 and all(real(b) and 0 <= b < 1 for b in betas)):
        raise ValueError(f"betas must be a pair of numbers in [0, 1), as train.py's (beta1, beta2) = (0.9, 0.95); "
                         f"got {betas!r}.")


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


def check_new_cache(model, batch_size, max_len, dtype, device):
    check_built(model)
    where = model.lm_head.weight.device
    try:  # "gpu" was torch's RuntimeError, "cuda" on a torch without CUDA its AssertionError, from torch.zeros
        usable = torch.device(device).type != "cuda" or torch.cuda.is_available()
    except (RuntimeError, TypeError):
        usable = False
    if not usable:
        raise ValueError(f"new_cache's device {device!r} is not one this torch can use; make the cache where the model "
                         f"is, new_cache(..., device='{where}').")
    whole = lambda n, least: isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= least
    if not (whole(batch_size, 1) and whole(max_len, 0)):
        raise ValueError(f"new_cache needs batch_size >= 1 and max_len >= 0, integers; got {batch_size!r} and "
                         f"{max_len!r}.")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):  # int64 failed in the first write
        raise ValueError(f"new_cache needs a floating point dtype, the one attention computes in; got {dtype!r}.")
    if max_len > model.config.block_size:
        raise ValueError(f"max_len ({max_len}) must be <= block_size ({model.config.block_size}).")
    if not model.config.causal:
        raise ValueError("causal must be True for cached decoding: a bidirectional model's past depends on "
                         "its future.")


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


def other_shapes(model, state_dict, prefix):
    """A state dict of another variant or size (a qkv checkpoint's weights into a qk_v model) was torch's RuntimeError
    listing every size mismatch, a traceback that named no fix. Plain tensors only: FSDP's shards are its own."""
    own = model.state_dict()
    for k, t in own.items():
        theirs = state_dict.get(prefix + k)
        if type(t) is torch.Tensor and type(theirs) is torch.Tensor and theirs.shape != t.shape:
            raise ValueError(f"the state dict holds {k} as {tuple(theirs.shape)} and this model makes "
                             f"{tuple(t.shape)}: its weights are another variant's or size's; build the model from "
                             f"their own config, GPT(GPTConfig(**ckpt['model_args'])), or convert them to this one "
                             f"with convert.convert_state_dict.")


def note_tie(model, state_dict, prefix, *args):
    """Whether the weights were tied before a load, which retie restores only then."""
    other_shapes(model, state_dict, prefix)
    tied = model.__dict__["tied_before_load"] = model.transformer.wte.weight is model.lm_head.weight
    # a plain load (no assign) copies both names into the one tied tensor, lm_head's last: an untied model's state
    # dict loaded as its output layer alone without a word, and retie sees one tensor after it (FSDP's shards: skipped)
    wte, head = (state_dict.get(prefix + k) for k in ("transformer.wte.weight", "lm_head.weight"))
    if tied and all(type(t) is torch.Tensor and t.device.type != "meta" for t in (wte, head)) and \
            wte.shape == head.shape and wte.dtype == head.dtype and not same_storage(wte, head) and \
            not torch.equal(wte, head):
        raise untied_state(model)


def restore_pickled(model):
    """A model pickled (torch.save(model)) before `built` and the load hooks were kept: its config as saved is what
    its layers are, so model.config.block_size = 128 after torch.load is refused as in a new model (it was the
    position table's IndexError), and load_state_dict(..., assign=True) keeps the tie (it trained apart)."""
    if "built" not in model.__dict__:
        model.built = replace(model.config)
    # and one pickled before either hook, or before note_tie: an untied one (by hand) was tied again by its load
    if note_tie not in [getattr(h, "hook", h) for h in model._load_state_dict_pre_hooks.values()]:
        model.register_load_state_dict_pre_hook(note_tie)
    if retie not in model._load_state_dict_post_hooks.values():
        model.register_load_state_dict_post_hook(retie)
