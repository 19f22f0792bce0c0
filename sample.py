"""
Sample text from a trained model with the KV cache, and show what the cache costs: after each sample, the bytes
its buffers really hold (next to the same model with V tied or untied) and the decode speed.
$ python sample.py --out_dir=out-cpu-tiny --start="ROMEO:" --num_samples=3 --max_new_tokens=100
GPT-2 from the hub, converted to Q-K=V first (lstsq fits on the calibration text; see convert.convert_state_dict):
$ python sample.py --init_from=gpt2 --proj=qk_v --convert_method=lstsq --calib=FILE:input.txt --start="Hello,"
The tokenizer is the one the checkpoint's data used (meta.json): r50k_base (GPT-2 BPE) or bytes; GPT-2's is
r50k_base. For both, "<|endoftext|>" in the prompt and in the output is the document separator (eot_token).
--compile=True runs the one-token decode steps through torch.compile (generate(compile=True)).
"""
import argparse
import os
import time
from contextlib import nullcontext
from dataclasses import replace

import tiktoken
import torch

from checkpoint import load_checkpoint
from convert import GPT2_SIZES, TIE_METHODS, convert_state_dict, load_gpt2
from model import GPT, SOURCES, GPTConfig

EOT = "<|endoftext|>"
GPT2_META = {"tokenizer": "r50k_base", "vocab_size": 50257, "eot_token": 50256}
V_TWIN = {"qkv": "qk_v", "qk_v": "qkv", "q_kv": "q_k_v", "q_k_v": "q_kv"}  # the same projections with V = K toggled
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def boolean(s):
    if s.lower() not in ("true", "false", "1", "0"):
        raise argparse.ArgumentTypeError(f"expected True or False, got {s!r}")
    return s.lower() in ("true", "1")


def add_model_args(p):
    """Where the model comes from, and the conversion applied first: shared by sample.py and eval.py."""
    p.add_argument("--init_from", default="resume", choices=["resume", *GPT2_SIZES],
                   help="resume: out_dir's checkpoint; gpt2...: the Hugging Face hub's weights")
    p.add_argument("--proj", default=None, choices=list(SOURCES), help="convert the weights to this variant first")
    p.add_argument("--n_kv_head", type=int, default=None, help="convert to this many key/value heads (GQA/MQA)")
    p.add_argument("--convert_method", default="lstsq", choices=TIE_METHODS, help="how V is tied to K")
    p.add_argument("--calib", default=None, help='text that lstsq and split fit on, or "FILE:path"')
    p.add_argument("--calib_tokens", type=int, default=8192)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Sample from out_dir/ckpt.pt with the KV cache.")
    p.add_argument("--out_dir", default="out", help="directory holding ckpt.pt")
    p.add_argument("--start", default="\n", help='prompt text, or "FILE:path" to read it from a file; '
                   'an empty prompt starts a new document')
    p.add_argument("--num_samples", type=int, default=3)
    p.add_argument("--max_new_tokens", type=int, default=None,
                   help="default: fill the model's context (block_size minus the prompt)")
    p.add_argument("--temperature", type=float, default=0.8, help="0 is greedy")
    p.add_argument("--top_k", type=int, default=200)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=DTYPES, default=None, help="default: bfloat16 on CUDA, float32 on CPU")
    p.add_argument("--use_cache", type=boolean, default=True)
    add_model_args(p)
    p.add_argument("--compile", type=boolean, default=False,
                   help="torch.compile the one-token decode step (the first sample then includes compiling)")
    args = p.parse_args(argv)
    if args.num_samples < 1:
        p.error(f"--num_samples must be >= 1; got {args.num_samples}.")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        p.error(f"--max_new_tokens must be >= 1 (or left out to fill the context); got {args.max_new_tokens}.")
    if not 0 <= args.temperature < float("inf"):
        p.error(f"--temperature must be a finite number >= 0 (0 is greedy); got {args.temperature}.")
    if args.top_k < 1:
        p.error(f"--top_k must be >= 1; got {args.top_k}.")
    if args.calib_tokens < 1:
        p.error(f"--calib_tokens must be >= 1; got {args.calib_tokens}.")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        p.error(f"--device must be cpu, cuda, cuda:N or mps; got {args.device!r}.")
    if device.type == "cuda" and not torch.cuda.is_available() or device.type == "mps" and \
            not torch.backends.mps.is_available():
        p.error(f"--device={args.device}, but this PyTorch build or machine has no {device.type.upper()} device; "
                f"use --device=cpu.")
    if device.type not in ("cpu", "cuda", "mps"):
        p.error(f"--device must be cpu, cuda, cuda:N or mps; got {args.device!r}.")
    return args


def read_text(arg, flag):
    if not arg.startswith("FILE:"):
        return arg
    if not os.path.isfile(arg[5:]):
        raise SystemExit(f"{flag}={arg}: no such file; give the text or FILE:<existing path>.")
    with open(arg[5:], encoding="utf-8") as f:
        return f.read()


def load_model(args, device):
    """-> (model in eval mode on device, meta dict of its tokenizer): the checkpoint or GPT-2, converted to
    --proj / --n_kv_head when they are given."""
    if args.init_from == "resume":
        ckpt = load_checkpoint(args.out_dir, ("model", "model_args", "meta"))
        cfg, state, meta = GPTConfig(**ckpt["model_args"]), ckpt["model"], ckpt["meta"]
    else:
        try:
            (cfg, state), meta = load_gpt2(args.init_from), GPT2_META
        except ValueError as e:
            raise SystemExit(str(e))
    dst = replace(cfg, proj=args.proj or cfg.proj,
                  n_kv_head=cfg.n_kv_head if args.n_kv_head is None else args.n_kv_head)
    if dst != cfg:
        calib = None
        if args.calib is not None:
            ids = get_tokenizer(meta)[0](read_text(args.calib, "--calib"))[:args.calib_tokens]
            T = min(cfg.block_size, len(ids))
            calib = torch.tensor(ids[:len(ids) // T * T]).view(-1, T)
        try:
            state, fits = convert_state_dict(state, cfg, dst, args.convert_method, calib)
        except ValueError as e:
            raise SystemExit(f"{e} (sample.py: --calib=FILE:path gives the calibration text)")
        unexplained = [f"{sum(f['residual']) / len(f['residual']):.3f}" for f in fits if f["residual"]]
        print(f"converted to proj={dst.proj}, n_kv_head={dst.n_kv_head or dst.n_head} ({args.convert_method})"
              + (f"; unexplained V variance per layer: {', '.join(unexplained)}" if unexplained else ""))
    model = GPT(dst)
    model.load_state_dict(state)
    return model.eval().to(device), meta


def get_tokenizer(meta):
    """-> (encode: str -> ids, decode: ids -> str), both mapping EOT to and from meta's eot_token."""
    name, eot = meta.get("tokenizer"), meta.get("eot_token")
    if name == "r50k_base":
        try:
            enc = tiktoken.get_encoding("r50k_base")
        except Exception as e:
            raise SystemExit(f"could not load tiktoken's r50k_base ({type(e).__name__}); offline, set "
                             f"TIKTOKEN_CACHE_DIR to a directory that holds its cached file.")
        return (lambda s: enc.encode(s, allowed_special={EOT})), enc.decode
    if name == "bytes":
        def encode(s):
            ids = []
            for i, part in enumerate(s.split(EOT)):
                ids += ([eot] if i else []) + list(part.encode("utf-8"))
            return ids

        def decode(ids):
            parts, cur = [], []
            for t in ids:
                if t == eot:
                    parts.append(cur)
                    cur = []
                else:
                    cur.append(t)
            return EOT.join(bytes(p).decode("utf-8", errors="replace") for p in parts + [cur])
        return encode, decode
    raise SystemExit(f"unknown tokenizer {name!r} in the checkpoint's meta; sample.py knows 'r50k_base' and 'bytes'.")


def fmt_bytes(n):
    if n < 1024:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"


def cache_report(model, n_tokens, dtype):
    """The cache generate builds for this run (batch 1, prompt + new tokens, the dtype attention computes in),
    built again on the meta device so its exact nbytes cost no memory, next to its twin with V = K toggled."""
    cfg = model.config
    nbytes = model.new_cache(1, n_tokens, dtype, "meta").nbytes
    if cfg.attn == "linear":
        return f"recurrent state: {fmt_bytes(nbytes)} allocated, fixed whatever the length (linear attention)"
    with torch.device("meta"):
        twin = GPT(replace(cfg, proj=V_TWIN[cfg.proj]))
    twin_bytes = twin.new_cache(1, n_tokens, dtype, "meta").nbytes
    head = f"kv cache: {fmt_bytes(nbytes)} allocated for 1 x {n_tokens} tokens"
    if SOURCES[cfg.proj][1] == SOURCES[cfg.proj][2]:
        return f"{head} (K only, V = K); with separate K and V: {fmt_bytes(twin_bytes)}"
    return f"{head} (K and V); with V = K: {fmt_bytes(twin_bytes)}"


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype or ("bfloat16" if device.type == "cuda" else "float32")]
    torch.manual_seed(args.seed)
    model, meta = load_model(args, device)
    encode, decode = get_tokenizer(meta)
    ids = encode(read_text(args.start, "--start")) or [meta["eot_token"]]
    bs = model.config.block_size
    if len(ids) > bs:
        raise SystemExit(f"the prompt is {len(ids)} tokens, longer than the model's context (block_size {bs}); "
                         f"shorten --start.")
    n_new = bs - len(ids) if args.max_new_tokens is None else args.max_new_tokens
    if args.use_cache and len(ids) + n_new > bs:
        raise SystemExit(f"prompt ({len(ids)} tokens) + --max_new_tokens ({n_new}) exceeds the model's context "
                         f"(block_size {bs}); lower --max_new_tokens or pass --use_cache=False to crop the context.")
    if args.compile and (not args.use_cache or model.config.pos_conv):
        raise SystemExit("--compile=True compiles the cached one-token step: it needs --use_cache=True and a "
                         "checkpoint without pos_conv.")
    # generate builds its cache in the autocast dtype, or the weights' dtype (float32) without autocast
    ctx = nullcontext() if dtype == torch.float32 else torch.autocast(device.type, dtype=dtype)
    report = cache_report(model, len(ids) + n_new, dtype) if args.use_cache else \
        "no kv cache (--use_cache=False): every step runs the whole context again"
    x = torch.tensor(ids, dtype=torch.long, device=device)[None, :]  # [1, T]
    with ctx:
        for _ in range(args.num_samples):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            y = model.generate(x, n_new, temperature=args.temperature, top_k=args.top_k, use_cache=args.use_cache,
                               compile=args.compile)
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            print(decode(y[0].tolist()))
            print(f"{report} | {n_new / dt:.0f} tokens/s")
            print("---------------")


if __name__ == "__main__":
    main()
