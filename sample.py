"""
Sample text from a trained model with the KV cache, and show what the cache costs: after each sample, the bytes
its buffers really hold (next to the same model with V tied or untied) and the decode speed.
$ python sample.py --out_dir=out-cpu-tiny --start="ROMEO:" --num_samples=3 --max_new_tokens=100
The tokenizer is the one the checkpoint's data used (meta.json): r50k_base (GPT-2 BPE) or bytes. For both,
"<|endoftext|>" in the prompt and in the output is the document separator (eot_token). --compile=True runs the
one-token decode steps through torch.compile (generate(compile=True)).
"""
import argparse
import os
import time
from contextlib import nullcontext
from dataclasses import replace

import tiktoken
import torch

from model import GPT, SOURCES, GPTConfig

EOT = "<|endoftext|>"
V_TWIN = {"qkv": "qk_v", "qk_v": "qkv", "q_kv": "q_k_v", "q_k_v": "q_kv"}  # the same projections with V = K toggled
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def boolean(s):
    if s.lower() not in ("true", "false", "1", "0"):
        raise argparse.ArgumentTypeError(f"expected True or False, got {s!r}")
    return s.lower() in ("true", "1")


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
    p.add_argument("--compile", type=boolean, default=False,
                   help="torch.compile the one-token decode step (the first sample then includes compiling)")
    return p.parse_args(argv)


def load_model(out_dir, device):
    """-> (model in eval mode on device, meta dict of the training data)."""
    path = os.path.join(out_dir, "ckpt.pt")
    if not os.path.isfile(path):
        raise SystemExit(f"no checkpoint at {path}: train one with train.py or point --out_dir at its directory.")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
        model = GPT(GPTConfig(**ckpt["model_args"]))
        model.load_state_dict(ckpt["model"])
        meta = ckpt["meta"]
    except Exception as e:  # anything unreadable is one error for the user: this file is not a usable checkpoint
        reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        raise SystemExit(f"checkpoint {path} is corrupt or not written by train.py ({reason}); "
                         f"restore or retrain it.")
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
    model, meta = load_model(args.out_dir, device)
    encode, decode = get_tokenizer(meta)
    start = args.start
    if start.startswith("FILE:"):
        if not os.path.isfile(start[5:]):
            raise SystemExit(f"--start={start}: no such file; give the prompt text or FILE:<existing path>.")
        with open(start[5:], encoding="utf-8") as f:
            start = f.read()
    ids = encode(start) or [meta["eot_token"]]
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
