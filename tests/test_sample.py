import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict, replace

import numpy as np
import pytest
import tiktoken
import torch

import checkpoint
import sample
from convert import convert_state_dict
from model import GPT, GPTConfig
from test_train import ROOT, make_data

BYTES_META = {"tokenizer": "bytes", "vocab_size": 256, "eot_token": 0}
R50K_META = {"tokenizer": "r50k_base", "vocab_size": 50257, "eot_token": 50256}


def make_ckpt(out_dir, meta, config=None, **fields):
    """A checkpoint in train.py's format around a tiny random model (config: train.py's settings it records, e.g.
    data_dir); returns its model config."""
    cfg = GPTConfig(**{"block_size": 64, "vocab_size": meta["vocab_size"], "n_layer": 2, "n_head": 4, "n_embd": 32,
                       **fields})
    model = GPT(cfg)
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu")
    os.makedirs(out_dir, exist_ok=True)
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "model_args": asdict(cfg),
                "iter_num": 0, "best_val_loss": 9.9, "config": config or {}, "rng": torch.get_rng_state(), "meta": meta},
               os.path.join(out_dir, "ckpt.pt"))
    return cfg


def run(capsys, out_dir, *args):
    sample.main([f"--out_dir={out_dir}", "--device=cpu", "--temperature=0", *args])
    return capsys.readouterr().out


def stats_lines(out):
    return [line for line in out.splitlines() if "tokens/s" in line]


def test_bytes_tokenizer_roundtrip_and_separator():
    encode, decode = sample.get_tokenizer(BYTES_META)
    text = "héllo" + sample.EOT + "wörld"
    ids = encode(text)
    assert ids == list("héllo".encode()) + [0] + list("wörld".encode())
    assert decode(ids) == text


def test_ids_of_a_padded_vocabulary_decode_as_replacement_characters():
    # vocab_size padded past the tokenizer (50304 for r50k) leaves ids that are no token; a sample may hold them
    assert sample.get_tokenizer(BYTES_META)[1]([104, 105, 300, 33]) == "hi\ufffd!"
    assert sample.get_tokenizer(R50K_META)[1]([15496, 50300]) == "Hello\ufffd"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_bytes_sample_reports_the_cache_generate_built(tmp_path, capsys, monkeypatch, dtype):
    cfg = make_ckpt(tmp_path, BYTES_META, proj="qk_v")
    built = []
    new_cache = GPT.new_cache

    def spy(self, *a, **k):
        built.append(new_cache(self, *a, **k))
        return built[-1]
    monkeypatch.setattr(GPT, "new_cache", spy)
    out = run(capsys, tmp_path, "--start=hi", "--max_new_tokens=62", "--num_samples=2", f"--dtype={dtype}")
    n_tokens = 2 + 62 - 1  # the last new token is never fed back
    itemsize = getattr(torch, dtype).itemsize  # generate caches in the autocast dtype
    k_bytes = cfg.n_layer * cfg.n_head * (cfg.n_embd // cfg.n_head) * n_tokens * itemsize  # K only
    real = [c.nbytes for c in built if next(iter(c.layers[0].values())).device.type == "cpu"]
    assert real == [k_bytes, k_bytes]  # one cache per sample, exactly the size reported
    lines = stats_lines(out)
    assert len(lines) == 2
    # pass 40: bfloat16's bytes (the default on CUDA) were half of float32's, with nothing to say which
    of = "" if dtype == "float32" else f" ({dtype})"
    for line in lines:
        assert line.startswith(f"kv cache: {sample.fmt_bytes(k_bytes)}{of} allocated for 1 x {n_tokens} tokens "
                               f"(K only, V = K); with separate K and V: {sample.fmt_bytes(2 * k_bytes)} | ")
    assert out.count("hi") >= 2


def test_qkv_and_linear_reports(tmp_path, capsys):
    cfg = make_ckpt(tmp_path / "qkv", BYTES_META, proj="qkv", n_kv_head=2)
    kv_bytes = cfg.n_layer * cfg.n_kv_head * 2 * (cfg.n_embd // cfg.n_head) * cfg.block_size * 4
    line = stats_lines(run(capsys, tmp_path / "qkv", "--start=ab", "--num_samples=1"))[0]
    assert line.startswith(f"kv cache: {sample.fmt_bytes(kv_bytes)} allocated for 1 x 64 tokens (K and V); "
                           f"with V = K: {sample.fmt_bytes(kv_bytes // 2)} | ")
    cfg = make_ckpt(tmp_path / "lin", BYTES_META, attn="linear")
    d = cfg.n_embd // cfg.n_head
    state = cfg.n_layer * cfg.n_head * (d * d + d) * 4
    line = stats_lines(run(capsys, tmp_path / "lin", "--start=ab", "--num_samples=1", "--max_new_tokens=5"))[0]
    assert line.startswith(f"recurrent state: {sample.fmt_bytes(state)} allocated, fixed whatever the length")


def test_a_slow_sample_reports_its_rate_not_zero(tmp_path, capsys, monkeypatch):
    # the first sample under --compile=True includes compiling (10 tokens in 30 s on a CPU): it printed "0 tokens/s"
    make_ckpt(tmp_path, BYTES_META)
    clock = iter([0.0, 30.0])
    monkeypatch.setattr(sample.time, "perf_counter", lambda: next(clock))
    line = stats_lines(run(capsys, tmp_path, "--start=ab", "--max_new_tokens=10", "--num_samples=1"))[0]
    assert line.endswith("| 0.33 tokens/s")
    assert [sample.fmt_rate(r) for r in (0.004, 9.4, 9.5, 563.4)] == ["0.004", "9.4", "10", "563"]


def test_cached_uncached_and_compiled_greedy_text_agree(tmp_path, capsys):
    make_ckpt(tmp_path, BYTES_META, proj="q_k_v")
    cached = run(capsys, tmp_path, "--start=to be", "--max_new_tokens=20", "--num_samples=1")
    uncached = run(capsys, tmp_path, "--start=to be", "--max_new_tokens=20", "--num_samples=1", "--use_cache=False")
    compiled = run(capsys, tmp_path, "--start=to be", "--max_new_tokens=20", "--num_samples=1", "--compile=True")
    assert cached.split("\n")[0] == uncached.split("\n")[0] == compiled.split("\n")[0]
    assert "no kv cache" in stats_lines(uncached)[0]
    with pytest.raises(SystemExit, match="--compile=True .* needs --use_cache=True"):
        run(capsys, tmp_path, "--use_cache=False", "--compile=True")


def test_r50k_prompt_with_separator(tmp_path, capsys):
    try:
        enc = tiktoken.get_encoding("r50k_base")
    except Exception:
        pytest.skip("tiktoken's r50k_base is not available offline here (set TIKTOKEN_CACHE_DIR)")
    make_ckpt(tmp_path, R50K_META, proj="qk_v")
    prompt = "Hello" + sample.EOT + " world"
    encode, decode = sample.get_tokenizer(R50K_META)
    assert encode(prompt) == enc.encode("Hello") + [50256] + enc.encode(" world")
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text(prompt)
    out = run(capsys, tmp_path, f"--start=FILE:{prompt_file}", "--max_new_tokens=5", "--num_samples=1")
    assert out.startswith(prompt)
    assert "(K only, V = K)" in stats_lines(out)[0]


def test_a_text_file_with_a_utf8_byte_order_mark_is_its_text_alone(tmp_path):
    # Notepad's "UTF-8 with BOM": the mark began a FILE: prompt (and eval's --text, --calib), as prepare's data never
    (tmp_path / "prompt.txt").write_bytes("\ufeffROMEO:\r\n".encode())
    assert sample.read_text(f"FILE:{tmp_path / 'prompt.txt'}", "--start") == "ROMEO:\r\n"


def test_a_file_prompt_with_a_space_after_the_prefix_names_the_space(tmp_path, monkeypatch):
    # "FILE: prompt.txt" looked for " prompt.txt" and said "No such file", the space unseen in the message
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prompt.txt").write_text("ROMEO:")
    with pytest.raises(SystemExit) as e:
        sample.read_text("FILE: prompt.txt", "--start")
    assert str(e.value) == ("--start=FILE: prompt.txt: cannot read it as UTF-8 text (No such file or directory); the "
                            "path has a space before or after it; write --start=FILE:prompt.txt.")


def test_clear_errors_and_checkpoint_untouched(tmp_path, capsys):
    with pytest.raises(SystemExit, match="no checkpoint at"):
        run(capsys, tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "ckpt.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="is corrupt or not a checkpoint written by train.py"):
        run(capsys, tmp_path / "bad")
    make_ckpt(tmp_path / "tok", dict(BYTES_META, tokenizer="gpt4"))
    with pytest.raises(SystemExit, match="unknown tokenizer 'gpt4'"):
        run(capsys, tmp_path / "tok")
    make_ckpt(tmp_path / "noeot", {"tokenizer": "bytes", "vocab_size": 256})  # was a KeyError or a TypeError
    for start in ("--start=", "--start=a<|endoftext|>b"):
        with pytest.raises(SystemExit) as e:
            run(capsys, tmp_path / "noeot", start)
        assert str(e.value) == ("the checkpoint's meta names tokenizer 'bytes' but no eot_token (its document "
                                "separator): the file is damaged or not written by train.py; restore it or train "
                                "again.")
    bs = make_ckpt(tmp_path / "long", BYTES_META).block_size
    ckpt = (tmp_path / "long" / "ckpt.pt").read_bytes()
    with pytest.raises(SystemExit, match=f"the prompt is {bs + 1} tokens, longer than the model's context"):
        run(capsys, tmp_path / "long", "--start=" + "x" * (bs + 1))
    with pytest.raises(SystemExit, match=rf"prompt \(2 tokens\) \+ --max_new_tokens \({bs}\) - 1 exceeds the model's "
                                         rf"context \(block_size {bs}\); lower --max_new_tokens to {bs - 1} or"):
        run(capsys, tmp_path / "long", "--start=xy", f"--max_new_tokens={bs}")
    assert (tmp_path / "long" / "ckpt.pt").read_bytes() == ckpt
    make_ckpt(tmp_path / "bidi", BYTES_META, causal=False)  # was cached decoding's ValueError
    with pytest.raises(SystemExit, match=r"holds a bidirectional model \(causal=False\), which cannot generate or "
                                         r"score text left to right; use a causal checkpoint\.$"):
        run(capsys, tmp_path / "bidi")


def test_the_context_is_filled_to_the_last_position_and_a_long_prompt_crops_without_the_cache(tmp_path, capsys):
    # a 1-token prompt and block_size new tokens need block_size positions (the last token is never fed back):
    # refused before; and a prompt longer than the context was refused even with --use_cache=False, which crops
    bs = make_ckpt(tmp_path, BYTES_META).block_size
    full = run(capsys, tmp_path, "--start=x", f"--max_new_tokens={bs}", "--num_samples=1")
    assert f"allocated for 1 x {bs} tokens" in full
    default = run(capsys, tmp_path, "--start=x", "--num_samples=1")  # None: fill the context
    text = lambda out: [line for line in out.splitlines() if "tokens/s" not in line]  # noqa: E731
    assert text(default) == text(full)
    long = "ab" * bs
    out = run(capsys, tmp_path, f"--start={long}", "--use_cache=False", "--max_new_tokens=5", "--num_samples=1")
    cropped = run(capsys, tmp_path, f"--start={long[-bs:]}", "--use_cache=False", "--max_new_tokens=5",
                  "--num_samples=1")
    assert out.split("\n")[0][-5:] == cropped.split("\n")[0][-5:]  # the same 5 new bytes: the last bs tokens decide
    assert out.startswith(long)
    # the refusal's advice was --use_cache=False alone, which continues a full context by 1 token
    default = run(capsys, tmp_path, f"--start={long}", "--use_cache=False", "--num_samples=1")
    assert len(text(default)[0]) == len(long) + 1
    with pytest.raises(SystemExit) as e:
        run(capsys, tmp_path, f"--start={long}", "--num_samples=1")
    assert str(e.value).endswith("pass --use_cache=False and --max_new_tokens=N to continue it from its last 64 "
                                 "tokens (by default, with the context full, N is 1).")


@pytest.mark.parametrize("args", [["--calib=some text"], ["--convert_method=k"], ["--calib_tokens=64"]])
def test_conversion_settings_without_a_conversion_are_refused(args, tmp_path, capsys):
    # they were ignored: --calib=FILE:x without --proj sampled from the unconverted model with exit 0
    make_ckpt(tmp_path, BYTES_META)
    with pytest.raises(SystemExit) as e:
        run(capsys, tmp_path, *args)
    assert e.value.code == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.endswith(f" error: {args[0].split('=')[0]} says how weights are converted, and nothing is " \
                  f"converted without --proj or --n_kv_head; add one of those, or drop it.")


def test_converted_on_load_samples_through_the_k_only_cache(tmp_path, capsys):
    make_ckpt(tmp_path, BYTES_META)  # qkv
    out = run(capsys, tmp_path, "--proj=qk_v", "--convert_method=k", "--max_new_tokens=5", "--num_samples=1")
    assert "converted to proj=qk_v, n_kv_head=4: V tied to K by k\n" in out
    assert "(K only, V = K)" in stats_lines(out)[0]
    out = run(capsys, tmp_path, "--proj=qk_v", "--n_kv_head=1", "--calib=" + "To be, or not to be. " * 20,
              "--max_new_tokens=5", "--num_samples=1")
    # 420 bytes of text: six whole blocks of 64 tokens
    assert ("converted to proj=qk_v, n_kv_head=1: key/value heads mean-pooled from 4 to 1; V tied to K by lstsq "
            "fitted on 384 tokens of --calib; unexplained V variance per layer: ") in out
    with pytest.raises(SystemExit, match="names no data_dir; pass --calib=FILE:path"):
        run(capsys, tmp_path, "--proj=qk_v", "--convert_method=split")


def test_untying_says_it_is_exact_and_fits_nothing(tmp_path, capsys):
    make_ckpt(tmp_path, BYTES_META, proj="qk_v")
    out = run(capsys, tmp_path, "--proj=qkv", "--max_new_tokens=2", "--num_samples=1")  # lstsq is the default
    assert out.splitlines()[0] == ("converted to proj=qkv, n_kv_head=4: untied V from K (exact: copies of the shared "
                                   "weights)")
    assert "lstsq" not in out and "unexplained" not in out


@pytest.mark.parametrize("proj, args", [("qk_v", ["--proj=qkv"]), ("qkv", ["--n_kv_head=0"]),
                                        ("q_k_v", ["--proj=q_kv"])])
def test_an_exact_conversion_draws_what_the_checkpoint_draws_under_one_seed(tmp_path, capsys, proj, args):
    # the converted model's random init (its shape's, thrown away by load_state_dict) moved the seeded generator
    make_ckpt(tmp_path, BYTES_META, proj=proj, n_kv_head=2 if args == ["--n_kv_head=0"] else 0)
    draw = ["--temperature=1", "--top_k=200", "--seed=7", "--max_new_tokens=40", "--num_samples=2"]
    sample.main([f"--out_dir={tmp_path}", "--device=cpu", *draw])
    plain = [line for line in capsys.readouterr().out.splitlines() if "tokens/s" not in line and "kv cache" not in line]
    sample.main([f"--out_dir={tmp_path}", "--device=cpu", *draw, *args])
    converted = capsys.readouterr().out.splitlines()
    assert converted[0].startswith(("converted to", "nothing to convert"))
    assert [line for line in converted[1:] if "tokens/s" not in line] == plain


def test_conversion_settings_a_conversion_does_not_use_are_named(tmp_path, capsys):
    # pooling alone, untying, or tying by k read neither --convert_method nor --calib: exit 0 without a word
    make_ckpt(tmp_path, BYTES_META, proj="qk_v")
    out = run(capsys, tmp_path, "--n_kv_head=1", "--convert_method=split", "--max_new_tokens=2", "--num_samples=1")
    assert out.splitlines()[0] == ("converted to proj=qk_v, n_kv_head=1: key/value heads mean-pooled from 4 to 1 "
                                   "(--convert_method unused: V is not newly tied to K)")
    out = run(capsys, tmp_path, "--proj=qkv", "--calib=x", "--calib_tokens=9", "--max_new_tokens=2", "--num_samples=1")
    assert out.splitlines()[0].endswith("(--calib and --calib_tokens unused: V is not newly tied to K)")
    make_ckpt(tmp_path, BYTES_META)
    out = run(capsys, tmp_path, "--proj=qk_v", "--convert_method=k", "--calib=x", "--max_new_tokens=2",
              "--num_samples=1")
    assert out.splitlines()[0] == ("converted to proj=qk_v, n_kv_head=4: V tied to K by k (--calib unused: k fits "
                                   "nothing)")


def test_calibration_on_a_data_dir_holding_other_data_does_not_call_it_the_checkpoints_own(tmp_path, capsys):
    # a relative data_dir read from another folder that has one of that name, or the data_dir prepared again from
    # other text since: lstsq fitted on it, and the line said "(the checkpoint's own)" (the twelfth pass)
    make_data(tmp_path / "data")  # 20,000 train and 4,000 val tokens
    make_ckpt(tmp_path / "run", dict(BYTES_META, train_tokens=20_000, val_tokens=4_100),
              config={"data_dir": str(tmp_path / "data")})
    out = run(capsys, tmp_path / "run", "--proj=qk_v", "--calib_tokens=1000", "--max_new_tokens=2", "--num_samples=1")
    assert (f"V tied to K by lstsq fitted on 960 tokens of {tmp_path / 'data' / 'val.bin'} (not the data the "
            f"checkpoint was trained on: val_tokens 4000 (checkpoint: 4100)); unexplained") in out


def test_calibration_of_no_more_tokens_than_lstsq_fits_is_refused(tmp_path, capsys):
    # one block of 64 tokens for a head_dim of 64 (and an offset): any weights fit them exactly, and the line said
    # "unexplained V variance per layer: 0.000", a perfect conversion
    make_ckpt(tmp_path, BYTES_META, n_head=1, n_embd=64)
    with pytest.raises(SystemExit, match=r"^calibration from --calib gives 64 tokens, and --convert_method=lstsq fits "
                                         r"65 numbers per dimension of each key head, which so few tokens fit exactly "
                                         r"whatever the weights; raise --calib_tokens to 128 or more\.$"):
        run(capsys, tmp_path, "--proj=qk_v", "--calib=" + "x" * 200, "--calib_tokens=64")
    with pytest.raises(SystemExit, match=r"gives 64 tokens, .*; give a longer --calib text\.$"):
        run(capsys, tmp_path, "--proj=qk_v", "--calib=" + "x" * 100)
    out = run(capsys, tmp_path, "--proj=qk_v", "--calib=" + "x" * 200, "--max_new_tokens=2", "--num_samples=1")
    assert "lstsq fitted on 192 tokens of --calib" in out.splitlines()[0]


def test_a_prompt_file_of_json_documents_is_refused(tmp_path, capsys):
    # prompts kept as prepare's .jsonl: --start=FILE:prompts.jsonl sampled after the JSON syntax, {"text": "ROMEO:"}
    # and all, exit 0, where --calib and eval's --text refuse the same file
    make_ckpt(tmp_path, BYTES_META)
    (tmp_path / "p.jsonl").write_text(json.dumps({"text": "ROMEO:"}) + "\n")
    with pytest.raises(SystemExit) as e:
        run(capsys, tmp_path, f"--start=FILE:{tmp_path / 'p.jsonl'}", "--max_new_tokens=1")
    assert str(e.value) == (f"--start=FILE:{tmp_path / 'p.jsonl'}: this file holds JSON documents, one a line "
                            f"(prepare's .jsonl), and --start is one plain prompt; write their text to a .txt file "
                            f"(jq -r .text {tmp_path / 'p.jsonl'} > {tmp_path / 'p.txt'}) and give "
                            f"--start=FILE:{tmp_path / 'p.txt'}.")


def test_a_calibration_file_of_json_documents_is_refused(tmp_path, capsys):
    # prepare's .jsonl (or its lines saved as .txt) as --calib: lstsq fitted on the JSON syntax with the text, and the
    # conversion was reported as fitted on "tokens of --calib", exit 0; --text refuses the same files
    make_ckpt(tmp_path, BYTES_META)
    line = json.dumps({"text": "To be, or not to be, that is the question. " * 4}) + "\n"
    for name in ("docs.jsonl", "docs.txt"):
        (tmp_path / name).write_text(line * 10)
        with pytest.raises(SystemExit) as e:
            run(capsys, tmp_path, "--proj=qk_v", f"--calib=FILE:{tmp_path / name}", "--max_new_tokens=1")
        new = tmp_path / ("docs.txt" if name == "docs.jsonl" else "docs_2.txt")  # never the file it reads
        assert str(e.value) == (f"--calib=FILE:{tmp_path / name}: this file holds JSON documents, one a line "
                                f"(prepare's .jsonl), and --calib is one plain text; write their text to a .txt file "
                                f"(jq -r .text {tmp_path / name} > {new}) and give --calib=FILE:{new}.")
    (tmp_path / "docs.txt").write_text(json.loads(line)["text"] * 10)  # their text: fitted on
    out = run(capsys, tmp_path, "--proj=qk_v", f"--calib=FILE:{tmp_path / 'docs.txt'}", "--max_new_tokens=1",
              "--num_samples=1")
    assert "lstsq fitted on" in out and "tokens of --calib" in out
    out = run(capsys, tmp_path, "--proj=qk_v", "--calib=" + line * 10, "--max_new_tokens=1", "--num_samples=1")
    assert "lstsq fitted on" in out  # typed in, JSON or not, it is the text the user gave


def test_a_conversion_to_what_the_checkpoint_is_says_nothing_is_converted(tmp_path, capsys):
    # it sampled with exit 0 and no word, and the --calib file it was given was never read
    make_ckpt(tmp_path, BYTES_META, proj="qk_v")
    out = run(capsys, tmp_path, "--proj=qk_v", "--calib=FILE:/nowhere", "--max_new_tokens=2", "--num_samples=1")
    assert out.splitlines()[0] == f"nothing to convert: {tmp_path} is already proj=qk_v, n_kv_head=4"


def test_calibration_of_few_distinct_inputs_is_said_whatever_its_tokens(tmp_path, capsys):
    # 1,200 tokens of "abab...": a model without a position table sees 2 distinct inputs in its first layer, which
    # any weights fit exactly: "unexplained V variance per layer: 0.000, 0.000" with exit 0 and no word of it
    make_ckpt(tmp_path, BYTES_META, n_embd=128, pos_emb="rope")  # head_dim 32
    for text, n in (("ab" * 600, "2 directions"), ("x" * 600, "1 direction")):
        out = run(capsys, tmp_path, "--proj=qk_v", "--calib=" + text, "--max_new_tokens=1", "--num_samples=1")
        assert (f" (layer 0's calibration inputs span only {n}, no more than the 33 numbers lstsq fits per dimension "
                f"of each key head: exact on them whatever the weights, and no measure for inputs unlike them)\n"
                in out)
    text = open(os.path.join(ROOT, "README.md")).read()[:1200]  # prose: many distinct tokens
    out = run(capsys, tmp_path, "--proj=qk_v", "--calib=" + text, "--max_new_tokens=1", "--num_samples=1")
    assert "unexplained V variance" in out and "calibration inputs span" not in out


def test_tying_calibrates_on_the_checkpoints_own_validation_tokens(tmp_path, capsys):
    make_data(tmp_path / "data")
    cfg = make_ckpt(tmp_path / "run", BYTES_META, config={"data_dir": str(tmp_path / "data")})
    out = run(capsys, tmp_path / "run", "--proj=qk_v", "--calib_tokens=1000", "--max_new_tokens=2",
              "--num_samples=1")
    assert (f"V tied to K by lstsq fitted on 960 tokens of {tmp_path / 'data' / 'val.bin'} (the checkpoint's own); "
            "unexplained V variance per layer: ") in out  # 1000 tokens: 15 whole blocks of 64
    # the weights are the fit on exactly those tokens
    args = sample.parse_args([f"--out_dir={tmp_path / 'run'}", "--proj=qk_v", "--calib_tokens=1000"])
    model, _ = sample.load_model(args, "cpu")
    val = torch.from_numpy(np.fromfile(tmp_path / "data" / "val.bin", dtype=np.uint16)[:960].astype(np.int64))
    ckpt = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=True)
    want, _ = convert_state_dict(ckpt["model"], cfg, replace(cfg, proj="qk_v"), "lstsq", val.view(15, 64))
    assert all(torch.equal(t, want[k]) for k, t in model.state_dict().items())
    # data of another tokenizer in that directory is not the checkpoint's: ask for --calib
    (tmp_path / "data" / "meta.json").write_text(json.dumps({"tokenizer": "r50k_base", "vocab_size": 50257}))
    with pytest.raises(SystemExit, match=f"its data_dir '{tmp_path / 'data'}' no longer holds the val.bin and "
                                         r"meta.json it was trained on \(gone, damaged, or another tokenizer's\); "
                                         "pass --calib"):
        run(capsys, tmp_path / "run", "--proj=qk_v")


def test_tying_calibrates_on_a_data_dir_saved_under_another_locale(tmp_path):
    # a run trained under a UTF-8 locale saved data_dir 'dé'; sampled under PYTHONUTF8=0 LC_ALL=C (or 'data/日本'
    # under a Latin-1 locale) the calibration's first look at it was a UnicodeEncodeError traceback
    make_data(tmp_path / "dé")
    make_ckpt(tmp_path / "run", BYTES_META, config={"data_dir": str(tmp_path / "dé")})
    env = dict(os.environ, PYTHONUTF8="0", LC_ALL="C", PYTHONCOERCECLOCALE="0")
    r = subprocess.run([sys.executable, "sample.py", f"--out_dir={tmp_path / 'run'}", "--device=cpu", "--proj=qk_v",
                        "--calib_tokens=1000", "--max_new_tokens=2", "--num_samples=1"], cwd=ROOT, env=env,
                       capture_output=True, text=True, errors="replace", timeout=300)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "V tied to K by lstsq fitted on 960 tokens of " in r.stdout and "(the checkpoint's own)" in r.stdout


def test_a_data_dir_this_user_cannot_read_is_named_not_called_gone(tmp_path, capsys, monkeypatch):
    # as another user, an unreadable meta.json (or a data_dir not searchable) was "no longer holds the val.bin and
    # meta.json it was trained on (gone, damaged, ...)", where a val.bin unreadable said so; root reads every file,
    # so the denial is simulated where the checks meet it
    make_data(tmp_path / "data")
    make_ckpt(tmp_path / "run", BYTES_META, config={"data_dir": str(tmp_path / "data")})
    meta = str(tmp_path / "data" / "meta.json")
    monkeypatch.setattr(sample, "read_json", lambda path, what: (_ for _ in ()).throw(SystemExit(what)))

    def guarded_open(path, *args, **kwargs):
        if os.fspath(path) == meta:
            raise PermissionError(13, "Permission denied", meta)
        return open(path, *args, **kwargs)
    monkeypatch.setattr(checkpoint, "open", guarded_open, raising=False)  # checkpoint.unreadable's own read
    with pytest.raises(SystemExit) as e:
        run(capsys, tmp_path / "run", "--proj=qk_v")
    assert str(e.value) == (f"--convert_method=lstsq fits V on calibration tokens and this user cannot read {meta} "
                            f"(make it readable); pass --calib=FILE:path (or the text itself), or --convert_method=k.")
    # data/ not searchable (mode 000 or 400): "make it readable" could not be done through the folder (pass 27)
    monkeypatch.undo()
    monkeypatch.setattr(sample, "read_json", lambda path, what: (_ for _ in ()).throw(SystemExit(what)))
    stat = os.stat

    def guarded_stat(path, *args, **kwargs):
        if os.fspath(path) == meta:
            raise PermissionError(13, "Permission denied", meta)
        return stat(path, *args, **kwargs)
    monkeypatch.setattr(os, "stat", guarded_stat)
    with pytest.raises(SystemExit) as e:
        run(capsys, tmp_path / "run", "--proj=qk_v")
    monkeypatch.undo()
    assert f"this user cannot read {meta} (make the folders on its path searchable (chmod +x)); pass" in str(e.value)


def test_a_relative_data_dir_from_another_folder_says_so(tmp_path, capsys, monkeypatch):
    # trained with --data_dir=data in one folder, converted from another: "its data_dir 'data' no longer holds the
    # val.bin and meta.json it was trained on (gone, ...)" where they were still there, beside the run
    make_data(tmp_path / "data")
    make_ckpt(tmp_path / "run", BYTES_META, config={"data_dir": "data"})
    monkeypatch.chdir(tmp_path / "run")
    with pytest.raises(SystemExit) as e:
        run(capsys, tmp_path / "run", "--proj=qk_v")
    assert str(e.value) == (f"--convert_method=lstsq fits V on calibration tokens and its data_dir 'data' is a relative "
                            f"path, missing from this folder ({tmp_path / 'run'}); run from the folder it was trained "
                            f"in, or pass --calib=FILE:path (or the text itself), or --convert_method=k.")
    (tmp_path / "run" / "data").write_text("a file\n")  # here, but a file: "missing from this folder" was untrue
    with pytest.raises(SystemExit) as e:
        run(capsys, tmp_path / "run", "--proj=qk_v")
    assert str(e.value).startswith("--convert_method=lstsq fits V on calibration tokens and its data_dir 'data' no "
                                   "longer holds the val.bin and meta.json it was trained on"), str(e.value)
    monkeypatch.chdir(tmp_path)
    assert "V tied to K by lstsq fitted on" in run(capsys, tmp_path / "run", "--proj=qk_v", "--max_new_tokens=1",
                                                   "--num_samples=1")


def damage_val(path, how):
    val = np.fromfile(path / "val.bin", dtype=np.uint16)
    if how == "odd":
        val = np.append(val, 1).astype(np.uint16).tobytes()[:-1]  # cut inside the last token
    elif how == "id":
        val[3] = 300  # past the bytes vocabulary
    elif how == "copied":  # another data's val.bin copied in beside this meta.json: called "the checkpoint's own"
        val = np.concatenate([val, val])
    else:
        val = val[:0 if how == "empty" else 40]
    if how == "short":  # a split prepared that short, as its meta.json records
        meta = json.loads((path / "meta.json").read_text())
        (path / "meta.json").write_text(json.dumps({**meta, "val_tokens": len(val)}))
    (path / "val.bin").write_bytes(val if isinstance(val, bytes) else val.tobytes())


@pytest.mark.parametrize("how", ["odd", "empty", "id", "short", "copied"])
def test_a_damaged_or_short_own_validation_split_is_one_sentence(tmp_path, capsys, how):
    # an odd size or an empty val.bin was the memmap's ValueError, an id past the vocabulary an IndexError in the
    # embedding, and a short one was told to give a longer --calib text, which it had not given (the sixth pass)
    make_data(tmp_path / "data")
    make_ckpt(tmp_path / "run", BYTES_META, config={"data_dir": str(tmp_path / "data")})
    damage_val(tmp_path / "data", how)
    with pytest.raises(SystemExit) as e:
        run(capsys, tmp_path / "run", "--proj=qk_v")
    if how == "short":
        assert str(e.value) == (f"calibration from {tmp_path / 'data' / 'val.bin'} (the checkpoint's own) gives 40 "
                                f"tokens, fewer than one block (block_size 64); pass a longer text as "
                                f"--calib=FILE:path, or --convert_method=k.")
    else:
        assert str(e.value) == (f"--convert_method=lstsq fits V on calibration tokens and its data_dir "
                                f"'{tmp_path / 'data'}' no longer holds the val.bin and meta.json it was trained on "
                                f"(gone, damaged, or another tokenizer's); pass --calib=FILE:path (or the text "
                                f"itself), or --convert_method=k.")


def test_calibration_too_short_is_told_to_raise_calib_tokens_only_where_more_tokens_are_there(tmp_path, capsys):
    # --calib_tokens cuts what the text holds: a 5-token --calib (or a short val.bin) under a smaller --calib_tokens
    # was told "raise --calib_tokens to 64", which gave the same 5 tokens and then "give a longer --calib text"
    make_ckpt(tmp_path, BYTES_META, n_head=1, n_embd=64)
    with pytest.raises(SystemExit, match=r"^calibration from --calib gives 3 tokens, fewer than one block "
                                         r"\(block_size 64\); give a longer --calib text\.$"):
        run(capsys, tmp_path, "--proj=qk_v", "--calib=hello", "--calib_tokens=3")
    with pytest.raises(SystemExit, match=r"^calibration from --calib gives 64 tokens, and .*; give a longer --calib "
                                         r"text\.$"):
        run(capsys, tmp_path, "--proj=qk_v", "--calib=" + "x" * 100, "--calib_tokens=64")
    with pytest.raises(SystemExit, match=r"gives 64 tokens, and .*; raise --calib_tokens to 128 or more\.$"):
        run(capsys, tmp_path, "--proj=qk_v", "--calib=" + "x" * 128, "--calib_tokens=64")


def test_conversion_settings_are_checked_before_converting(tmp_path, capsys, monkeypatch):
    make_ckpt(tmp_path, BYTES_META)  # 4 heads
    monkeypatch.setattr(sample, "convert_state_dict", lambda *a: pytest.fail("converted"))
    with pytest.raises(SystemExit, match=r"^cannot convert .*: n_kv_head must divide n_head=4 \(0 = n_head, 1 = MQA, "
                                         r"g = GQA-g\); got 3\.$"):
        run(capsys, tmp_path, "--n_kv_head=3")
    with pytest.raises(SystemExit, match=r"^calibration from --calib gives 5 tokens, fewer than one block "
                                         r"\(block_size 64\); give a longer --calib text\.$"):
        run(capsys, tmp_path, "--proj=qk_v", "--calib=hello")
    with pytest.raises(SystemExit, match=r"raise --calib_tokens to 64 or more\.$"):
        run(capsys, tmp_path, "--proj=qk_v", "--calib=" + "x" * 100, "--calib_tokens=10")
    # a path given as the text (a data folder) was read as its characters and told "give a longer --calib text"
    monkeypatch.chdir(tmp_path)
    os.mkdir("data")
    with pytest.raises(SystemExit, match=r"^calibration from --calib gives 4 tokens, fewer than one block \(block_size "
                                         r"64\); --calib is the text itself, and 'data' was read as those 4 "
                                         r"characters, not the folder it names: give a text file as --calib=FILE:path"
                                         r"\.$"):
        run(capsys, tmp_path, "--proj=qk_v", "--calib=data")
    for empty in (["--calib="], ["--proj=qk_v", "--calib="]):
        with pytest.raises(SystemExit) as e:
            run(capsys, tmp_path, *empty)
        assert e.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1].endswith(': error: argument --calib: is empty; give the '
                                                                 'text, or "FILE:path" to read it from a file')


def test_a_utf8_prompt_read_outside_utf8_mode_is_its_text():
    # under PYTHONUTF8=0 LC_ALL=C Python decodes argv as ASCII: --start="Roméo:" reached sample.py as
    # 'Rom\udcc3\udca9o:' and was refused as "not UTF-8 text", which it is; bytes that are not UTF-8 still are
    assert sample.prompt("Rom\udcc3\udca9o:") == "Roméo:"
    with pytest.raises(argparse.ArgumentTypeError, match="holds bytes that are not UTF-8 text"):
        sample.prompt("Rom\udce9o:")


def test_a_compile_that_fails_is_one_sentence(tmp_path, capsys, monkeypatch):
    # without a C++ compiler, inductor raised a 40-line traceback from the first compiled step
    class InvalidCxxCompiler(RuntimeError):
        __module__ = "torch._inductor.exc"

    def no_compiler(self, cache):
        raise InvalidCxxCompiler("No working C++ compiler found in torch._inductor.config.cpp.cxx\nmore")
    monkeypatch.setattr(GPT, "compiled_step", no_compiler)
    make_ckpt(tmp_path, BYTES_META)
    with pytest.raises(SystemExit) as e:
        run(capsys, tmp_path, "--compile=True", "--max_new_tokens=3", "--num_samples=1")
    assert str(e.value) == ("--compile=True: torch.compile failed (No working C++ compiler found in "
                            "torch._inductor.config.cpp.cxx); it needs a working C++ compiler on CPU (Triton on a "
                            "GPU): install one, or pass --compile=False.")


@pytest.mark.parametrize("args, said", [
    (["--start=FILE:typo.txt"], "--start=FILE:typo.txt: cannot read it as UTF-8 text (No such file or directory)"),
    (["--compile=True", "--use_cache=False"], "--compile=True compiles the cached one-token step: it needs "
                                              "--use_cache=True"),
    (["--max_new_tokens=2000"], "prompt (1 tokens) + --max_new_tokens (2000) - 1 exceeds the model's context "
                                "(block_size 1024); lower --max_new_tokens to 1024"),
])
def test_a_bad_prompt_file_or_compile_without_cache_is_refused_before_the_model_loads(args, said, monkeypatch):
    # each was found after GPT-2 was downloaded (gpt2-xl: 6 GB), the first two after a checkpoint converted
    monkeypatch.setattr(sample, "load_model", lambda *a: pytest.fail("the model was loaded first"))
    with pytest.raises(SystemExit) as e:
        sample.main(["--init_from=gpt2", "--device=cpu", *args])
    assert str(e.value).startswith(said)


def test_a_temperature_too_small_to_sample_with_is_greedy(tmp_path, capsys):
    make_ckpt(tmp_path, BYTES_META)
    greedy = run(capsys, tmp_path, "--start=ab", "--max_new_tokens=20", "--num_samples=1")  # run() passes 0
    for t in ("1e-45", "0.009"):  # 1e-45 made logits / temperature overflow to NaN probabilities
        assert run(capsys, tmp_path, "--start=ab", "--max_new_tokens=20", "--num_samples=1",
                   f"--temperature={t}").split("\n")[0] == greedy.split("\n")[0]


def test_ctrl_c_is_one_line_not_a_traceback(tmp_path):
    make_ckpt(tmp_path, BYTES_META)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "sample.py", f"--out_dir={tmp_path}", "--device=cpu",
                             "--num_samples=100000"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # xdist may ignore it
    while "---------------" not in proc.stdout.readline():  # sampling is under way
        pass
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err == "stopped by Ctrl-C; nothing was written.\n"


def test_an_output_that_takes_no_more_text_is_one_line_not_a_traceback(tmp_path):
    # `sample.py | head -1` and `sample.py > /dev/full` were a BrokenPipeError or OSError traceback
    make_ckpt(tmp_path, BYTES_META)
    cmd = [sys.executable, "sample.py", f"--out_dir={tmp_path}", "--device=cpu", "--num_samples=100000"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.readline()  # what head -1 reads, then it closes the pipe
    proc.stdout.close()
    assert proc.wait(timeout=60) == 1
    assert proc.stderr.read() == "stopped: the reader of its output went away (a closed pipe); nothing was written.\n"
    with open("/dev/full", "w") as full:
        r = subprocess.run(cmd[:-1] + ["--num_samples=1"], cwd=ROOT, env=env, stdout=full, stderr=subprocess.PIPE,
                           text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr == "stopped: its output could not be written (No space left on device); nothing was written.\n"


def argument_refused(capsys, flag, value, says):
    """sample.py's parser refuses flag=value (with --proj=qk_v, so --calib is read): exit 2, its last line says."""
    with pytest.raises(SystemExit) as e:
        sample.parse_args([f"{flag}={value}", "--proj=qk_v"])
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"argument {flag}: {says}")


def test_a_file_named_with_a_lower_case_prefix_is_refused_not_read_as_text(tmp_path, capsys):
    # --start=file:prompt.txt sampled from the 15 characters "file:prompt.txt", exit 0; text that merely begins
    # with "file:" and names no file is still the prompt
    text = tmp_path / "prompt.txt"
    text.write_text("ROMEO:\n")
    for flag, prefix in (("--start", "file:"), ("--calib", "File:")):
        argument_refused(capsys, flag, f"{prefix}{text}", f'begins with "{prefix}", and only "FILE:" (upper case) '
                         f'reads a file: the value is the text itself; write "FILE:{text}" to read the file')
    assert sample.parse_args(["--start=file: a note"]).start == "file: a note"


def test_a_file_named_without_file_prefix_or_a_token_file_is_refused_not_read_as_text(tmp_path, capsys):
    # --calib=path/to/text.txt was the path's own bytes as calibration text (lstsq fitted V on them, exit 0); and
    # FILE:data/val.bin, prepare's uint16 ids of byte-level data, decodes as UTF-8 (a NUL after every byte)
    make_ckpt(tmp_path / "run", BYTES_META, proj="qkv")
    text = tmp_path / "a long enough name for one whole block of calibration.txt"
    text.write_text("To be, or not to be: that is the question.\n" * 20)
    for flag in ("--start", "--calib"):
        argument_refused(capsys, flag, text, f'names a file, and without "FILE:" the value is the text itself; write '
                         f'"FILE:{text}" to read the file')
    make_data(tmp_path / "data")  # ids 0..16 as uint16: valid UTF-8
    for flag, *convert in (("--start",), ("--calib", "--proj=qk_v")):
        with pytest.raises(SystemExit) as e:
            run(capsys, tmp_path / "run", f"{flag}=FILE:{tmp_path / 'data' / 'val.bin'}", *convert)
        assert str(e.value) == (f"{flag}=FILE:{tmp_path / 'data' / 'val.bin'}: val.bin holds the token ids "
                                f"prepare_slimpajama.py wrote (its meta.json is beside it), not text; give the text "
                                f"file it was prepared from.")
    os.symlink(tmp_path / "data" / "val.bin", tmp_path / "calib.txt")  # the same file under a text file's name
    with pytest.raises(SystemExit, match="val.bin holds the token ids"):
        run(capsys, tmp_path / "run", f"--calib=FILE:{tmp_path / 'calib.txt'}", "--proj=qk_v")
    out = run(capsys, tmp_path / "run", f"--calib=FILE:{text}", "--proj=qk_v", "--max_new_tokens=2", "--num_samples=1")
    assert "lstsq fitted on 832 tokens of --calib" in out


def test_a_token_file_copied_or_renamed_is_refused_not_read_as_text(tmp_path, capsys):
    # val.bin copied away from its meta.json (calib.dat) decodes as UTF-8, a NUL after every byte: --calib fitted V
    # on it and eval.py --text scored it, exit 0
    make_ckpt(tmp_path / "run", BYTES_META, proj="qkv")
    make_data(tmp_path / "data")
    shutil.copy(tmp_path / "data" / "val.bin", tmp_path / "calib.dat")
    for flag, *convert in (("--start",), ("--calib", "--proj=qk_v")):
        with pytest.raises(SystemExit) as e:
            run(capsys, tmp_path / "run", f"{flag}=FILE:{tmp_path / 'calib.dat'}", *convert)
        assert str(e.value) == (f"{flag}=FILE:{tmp_path / 'calib.dat'}: holds NUL bytes, as a file of token ids "
                                f"(prepare_slimpajama.py's .bin, copied or renamed) does, not text; give the text or "
                                f"FILE:<a text file>.")


def test_a_utf16_text_file_is_named_utf16(tmp_path, monkeypatch):
    # sample's FILE: and eval's --text: "cannot read it as UTF-8 text (invalid start byte); give a text file", for a
    # text file in UTF-16 (Windows PowerShell 5's `>`)
    # and Windows-1252 (smart quotes) or Latin-1: the same sentence. The command names the file and a new one beside
    # it, as prepare's: "iconv -f X -t UTF-8" named neither, and `iconv ... f > f` empties f
    prompt = tmp_path / "prompt.txt"
    then = f"{prompt} > {tmp_path / 'prompt_2.txt'}, and give {tmp_path / 'prompt_2.txt'} in its place"
    for text, codec, why in (("To be", "utf-16", "it is UTF-16 (it starts with UTF-16's byte order mark): convert it, "
                              f"e.g. iconv -f UTF-16 -t UTF-8 {then}"),
                             ("It\u2019s caf\u00e9 time\n", "cp1252", "it reads as Windows-1252 or Latin-1 text: "
                              f"convert it, e.g. iconv -f WINDOWS-1252 -t UTF-8 {then}")):
        (tmp_path / "prompt.txt").write_bytes(text.encode(codec))
        with pytest.raises(SystemExit) as e:
            sample.read_text_file(str(tmp_path / "prompt.txt"), "--text=prompt.txt", "give a text file")
        assert str(e.value) == f"--text=prompt.txt: cannot read it as UTF-8 text (invalid start byte; {why}); give " \
                               "a text file."
    # UTF-8 with one stray Latin-1 byte (caf\u00e9 ... na\xefve): "iconv -f WINDOWS-1252", as advised, made each
    # \u00e9 before it \u00c3\u00a9
    (tmp_path / "prompt.txt").write_bytes("caf\u00e9\n".encode() * 3 + b"na\xefve\n")
    with pytest.raises(SystemExit) as e:
        sample.read_text_file(str(tmp_path / "prompt.txt"), "--text=prompt.txt", "give a text file")
    assert str(e.value) == ("--text=prompt.txt: cannot read it as UTF-8 text (invalid continuation byte; the text "
                            "before it is UTF-8 beyond ASCII: fix that byte, not the file's encoding); give a text "
                            "file.")
    (tmp_path / "prompt.txt").write_bytes(b"\xef\xbb\xbfcaf\xe9\n")  # a UTF-8 mark alone before Windows-1252 text
    with pytest.raises(SystemExit, match="it reads as Windows-1252"):
        sample.read_text_file(str(tmp_path / "prompt.txt"), "--text=prompt.txt", "give a text file")
    # without its byte order mark: "holds NUL bytes, as a file of token ids", of a text (a token file ends with NUL)
    for codec, name in (("utf-16-le", "UTF-16LE"), ("utf-16-be", "UTF-16BE")):
        (tmp_path / "prompt.txt").write_bytes("To be, or not to be\n".encode(codec))
        with pytest.raises(SystemExit) as e:
            sample.read_text_file(str(tmp_path / "prompt.txt"), "--text=prompt.txt", "give a text file")
        assert str(e.value) == ("--text=prompt.txt: it is UTF-16 without a byte-order mark (every other byte NUL), "
                                f"not UTF-8; convert it, e.g. iconv -f {name} -t UTF-8 {then}.")
        # with an accent (caf\u00e9: E9 00) it is no UTF-8 at all: "invalid continuation byte" alone
        (tmp_path / "prompt.txt").write_bytes("To be, caf\u00e9\n".encode(codec))
        with pytest.raises(SystemExit) as e:
            sample.read_text_file(str(tmp_path / "prompt.txt"), "--text=prompt.txt", "give a text file")
        assert f"; it is UTF-16 without a byte-order mark (every other byte NUL): convert it, e.g. iconv -f {name} " \
               f"-t UTF-8 {then}); give a text file." in str(e.value)
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00")  # FF FE, then no whole UTF-16 unit: binary, not UTF-16
    with pytest.raises(SystemExit) as e:
        sample.read_text_file(str(tmp_path / "binary.txt"), "--text=binary.txt", "give a text file")
    assert str(e.value) == "--text=binary.txt: cannot read it as UTF-8 text (invalid start byte); give a text file."
    # FF FE glued before UTF-8 text (a damaged file, not UTF-16): each pair of its bytes a CJK character, and "convert
    # it from UTF-16" made that of it
    for glued in (b"\xff\xfeTo be!", b"\xff\xfe" + '{"tokenizer": "bytes"}\n'.encode()):
        (tmp_path / "binary.txt").write_bytes(glued)
        with pytest.raises(SystemExit) as e:
            sample.read_text_file(str(tmp_path / "binary.txt"), "--text=binary.txt", "give a text file")
        assert str(e.value) == "--text=binary.txt: cannot read it as UTF-8 text (invalid start byte); give a text file."
    # UTF-32 (PowerShell 5's -Encoding UTF32) begins with FF FE too: "convert it from UTF-16" made of it a text with a
    # NUL after each character
    for codec in ("utf-32", "utf-32-be"):
        (tmp_path / "prompt.txt").write_bytes(("\ufeff" if codec.endswith("be") else "").encode(codec)
                                              + "To be".encode(codec))
        with pytest.raises(SystemExit) as e:
            sample.read_text_file(str(tmp_path / "prompt.txt"), "--text=prompt.txt", "give a text file")
        assert f"; it is UTF-32 (it starts with UTF-32's byte order mark): convert it, e.g. iconv -f UTF-32 -t UTF-8 " \
               f"{then})" in str(e.value), str(e.value)
    # a name already there is not written over: the command writes the next free one
    (tmp_path / "prompt_2.txt").write_text("mine")
    prompt.write_text("To be", encoding="utf-16")
    with pytest.raises(SystemExit, match=f"UTF-8 {prompt} > {tmp_path / 'prompt_3.txt'}, and give"):
        sample.read_text_file(str(prompt), "--text=prompt.txt", "give a text file")
    # a name that starts with a dash: iconv took -notes.txt for its options ("invalid option -- 'n'")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-notes.txt").write_text("To be", encoding="utf-16")
    with pytest.raises(SystemExit, match="UTF-8 ./-notes.txt > -notes_2.txt, and give -notes_2.txt in its place"):
        sample.read_text_file("-notes.txt", "--start=FILE:-notes.txt", "give a text file")


def test_a_prompt_file_from_home_is_read_from_home(tmp_path, monkeypatch):
    # --start=FILE:~/prompt.txt (no shell expands that ~) read ./~/prompt.txt: "No such file or directory"
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "prompt.txt").write_text("To be")
    assert sample.read_text_file("~/prompt.txt", "--start=FILE:~/prompt.txt", "give a text file") == "To be"
    # '--start=FILE:$HOME/prompt.txt', quoted as a prompt is: "cannot read it as UTF-8 text (No such file...)"
    assert sample.read_text_file("$HOME/prompt.txt", "--start=FILE:$HOME/prompt.txt", "give a text file") == "To be"
    monkeypatch.delenv("NOPE", raising=False)
    with pytest.raises(SystemExit, match=r"^--start '\$NOPE/p.txt' names \$NOPE, which is not set in the environment"):
        sample.read_text_file("$NOPE/p.txt", "--start=FILE:$NOPE/p.txt", "give a text file")
    # a file not found there is named as expanded: "FILE:$HOME/nothing.txt: No such file" named no file looked for
    with pytest.raises(SystemExit) as e:
        sample.read_text_file("$HOME/nothing.txt", "--start=FILE:$HOME/nothing.txt", "give a text file")
    assert str(e.value) == (f"--start=FILE:$HOME/nothing.txt ({tmp_path}/nothing.txt): cannot read it as UTF-8 text "
                            f"(No such file or directory); give a text file.")


@pytest.mark.parametrize("gpus, shown, device, said", [
    (1, None, "cuda:1", "PyTorch sees 1 CUDA device (cuda:0); give one of them"),
    (2, "3,5", "cuda:2", "PyTorch sees 2 CUDA devices (cuda:0 to cuda:1, the GPUs CUDA_VISIBLE_DEVICES=3,5 names "
                         "numbered from 0); give one of them"),
    (0, "", "cuda", "PyTorch sees no CUDA device under CUDA_VISIBLE_DEVICES='', which hides every GPU it does not "
                    "name; name one there (nvidia-smi lists them) or unset it, or use --device=cpu")])
def test_a_gpu_this_machine_does_not_show_is_refused_naming_what_it_shows(gpus, shown, device, said, monkeypatch,
                                                                         capsys):
    # --device=cuda:1 on one GPU was torch's 'invalid device ordinal' traceback at the first tensor, and the GPUs
    # CUDA_VISIBLE_DEVICES hid were "this PyTorch build or machine has no CUDA device" (a CUDA build is mocked here)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    if shown is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", shown)
    with pytest.raises(SystemExit):
        sample.check_device(sample.get_parser(), device)
    assert capsys.readouterr().err.splitlines()[-1].endswith(f": error: --device={device}, but {said}.")
    monkeypatch.setattr(torch.version, "cuda", None)  # a CPU build: no variable shows it a GPU
    if not gpus:
        with pytest.raises(SystemExit):
            sample.check_device(sample.get_parser(), device)
        assert capsys.readouterr().err.splitlines()[-1].endswith(
            ": error: --device=cuda, but this PyTorch build or machine has no CUDA device; use --device=cpu.")


def test_the_tokenizer_from_python_takes_one_sequence_and_text():
    # a whole batch (y.tolist()) was a TypeError comparing a list with an int, a target's -1 Python's "bytes must be
    # in range(0, 256)", bytes to encode "a bytes-like object is required, not 'str'"
    encode, decode = sample.get_tokenizer({"tokenizer": "bytes", "eot_token": 0})
    y = torch.tensor([encode("hi")])
    assert decode(y[0]) == decode(y[0].tolist()) == decode(y[0].numpy()) == "hi"
    for ids, says in ((y.tolist(), "got \\[104, 105\\] in it"), ([104, -1], "got -1 in it")):
        with pytest.raises(ValueError, match=f"one sequence of token ids >= 0, e.g. y\\[0\\].tolist\\(\\); {says}"):
            decode(ids)
    with pytest.raises(ValueError, match="encode takes a str; got bytes \\(decode it first"):
        encode(b"hi")


def test_samples_of_a_run_still_training_say_it_is_not_finished(tmp_path, capsys):
    # sample.py on a run that trains on sampled a midway save without a word; a finished run says nothing
    make_ckpt(tmp_path, BYTES_META, config={"max_iters": 40})
    sample.main([f"--out_dir={tmp_path}", "--device=cpu", "--num_samples=1", "--max_new_tokens=2"])
    err = capsys.readouterr().err
    assert err == (f"{tmp_path} holds iteration 0 of its run's 40: not finished (still training, or stopped), so "
                   f"these are that iteration's samples.\n")
    make_ckpt(tmp_path, BYTES_META, config={"max_iters": 0})
    sample.main([f"--out_dir={tmp_path}", "--device=cpu", "--num_samples=1", "--max_new_tokens=2"])
    assert capsys.readouterr().err == ""
