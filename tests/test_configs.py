"""Every run config in config/ builds its model (on the meta device: no memory, so 1.2B is free) with the parameter
count and KV-cache bytes of a closed form computed here from the config's values. Files named base_*.py are not
runs: run files execute them for their shared values. `python -m pytest -s tests/test_configs.py` prints the table."""

import gc
import glob
import os
import runpy
import sys
import warnings
from dataclasses import asdict

import pytest
import torch

import configurator
from model import GPT, GPTConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = sorted(p for p in glob.glob(os.path.join(ROOT, "config", "*.py"))
              if not os.path.basename(p).startswith("base_"))
PAPER = {
    "300m": (["qkv", "qk_v", "q_kv", "q_k_v", "qkv_gqa4", "qkv_mqa", "qk_v_gqa4", "qk_v_mqa"],
             dict(n_layer=20, n_embd=1024, n_head=16, n_inner=4096, learning_rate=2e-4, min_lr=2e-5,
                  warmup_iters=500, batch_size=6, gradient_accumulation_steps=192, eval_interval=200)),
    "1b2": (["qkv", "qk_v", "qkv_gqa8", "qkv_mqa", "qk_v_gqa8", "qk_v_mqa"],
            dict(n_layer=22, n_embd=2048, n_head=32, n_inner=8192, learning_rate=6e-5, min_lr=6e-6,
                 warmup_iters=1000, batch_size=2, gradient_accumulation_steps=288, eval_interval=500)),
    "7b": (["qkv", "qk_v", "qk_v_gqa8"],  # not the paper's: its recipe at 32 x 4096 (config/base_7b.py)
           dict(n_layer=32, n_embd=4096, n_head=32, n_inner=16384, learning_rate=1.4e-5, min_lr=1.4e-6,
                warmup_iters=563, batch_size=1, gradient_accumulation_steps=1024, eval_interval=250,
                total_tokens=133_000_000_000, parallel="fsdp")),
}
PAPER_SHARED = dict(block_size=2048, vocab_size=50304, dropout=0.1, bias=True, tie_embeddings=True,
                    eval_tokens=10_000_000, total_tokens=10_000_000_000, data_dir="data/slimpajama")


def read_config(path):
    """The values a config file sets, executed as configurator.py executes it (with its own __file__)."""
    scope = {"__file__": path}
    with open(path) as f:
        exec(f.read(), scope)
    return scope


def model_config(values):
    return GPTConfig(**{k: values[k] for k in asdict(GPTConfig()) if k in values})


def closed_form(c):
    """(parameters, KV-cache bytes per token in bf16) from the config's numbers alone."""
    C, L, D = c.n_embd, c.n_layer, c.n_embd // c.n_head
    kv = (c.n_kv_head or c.n_head) * D  # width of one cached K (or V) per layer
    fused = {"qkv": C + 2 * kv, "qk_v": C + kv, "q_kv": C + kv, "q_k_v": C}[c.proj]  # Q, then K and V if separate
    inner, b = c.n_inner or 4 * C, int(c.bias)
    attn = (C + b) * fused + (C + b) * C + (c.pos_conv + 1 if c.pos_conv else 0)
    mlp = (C + b) * inner + (inner + b) * C
    ln = (1 + b) * C
    params = c.vocab_size * C * (1 if c.tie_embeddings else 2) + c.block_size * C + L * (attn + mlp + 2 * ln) + ln
    cached = 0 if c.attn == "linear" else (1 if c.proj in ("qk_v", "q_k_v") else 2)
    return params, L * kv * cached * 2


SEVEN_B = {"qkv_7b.py": 6_658_596_864, "qk_v_7b.py": 6_121_594_880, "qk_v_gqa8_7b.py": 5_718_843_392}


def test_every_run_config_builds_its_closed_form_model():
    rows = []
    for path in RUNS:
        cfg = model_config(read_config(path))
        with torch.device("meta"):
            model = GPT(cfg)
        params, kv_bytes = closed_form(cfg)
        assert model.num_params() == params, path
        assert model.kv_bytes_per_token(torch.bfloat16) == kv_bytes, path
        rows.append((os.path.basename(path), cfg.proj, cfg.attn, cfg.n_kv_head or cfg.n_head,
                     f"{cfg.n_layer} x {cfg.n_embd}", f"{params:,}", f"{kv_bytes:,}"))
    counts = {row[0]: int(row[5].replace(",", "")) for row in rows}
    assert {name: counts.get(name) for name in SEVEN_B} == SEVEN_B  # the 7B runs, counted on the meta device
    print("\n| config | proj | attn | KV heads | layers x width | parameters | KV cache bytes/token (bf16) |")
    print("|---|---|---|---:|---|---:|---:|")
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")


@pytest.mark.parametrize("path", RUNS, ids=os.path.basename)
def test_train_py_accepts_every_run_config(path, tmp_path, monkeypatch):
    # every key known and of the right type, a valid model: train.py gets as far as looking for the data
    monkeypatch.setattr(sys, "argv", ["train.py", path, f"--data_dir={tmp_path}", f"--out_dir={tmp_path}"])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(os.path.join(ROOT, "train.py"), run_name="__main__")
    if read_config(path).get("parallel") == "fsdp":  # the 7B runs: refused outside torchrun, before the data
        assert str(e.value).startswith("parallel='fsdp' shards the model across torchrun's processes"), str(e.value)
    else:
        assert str(e.value).startswith(f"data_dir '{tmp_path}' has no train.bin"), str(e.value)


@pytest.mark.parametrize("scale", PAPER)
def test_paper_configs_follow_the_released_ones(scale):
    names, shape = PAPER[scale]
    for name in names:
        run = f"{name}_{scale}"
        values = read_config(os.path.join(ROOT, "config", f"{run}.py"))
        assert values["out_dir"] == f"out-{run}"
        expected = {**PAPER_SHARED, **shape}
        assert {k: values[k] for k in expected} == expected, run
        variant, _, groups = name.partition("_gqa")  # "qk_v_gqa4" -> "qk_v", "4"; "qk_v_mqa" -> "qk_v_mqa", ""
        assert values["proj"] == variant.removesuffix("_mqa")
        assert values["n_kv_head"] == (1 if variant.endswith("_mqa") else int(groups or 0)), run


def test_a_config_file_leaves_no_file_open(tmp_path):
    # config files included their base with exec(open(...).read()): under PYTHONWARNINGS=error each printed an
    # "Exception ignored ... ResourceWarning: unclosed file" traceback; nanoGPT-style files of users' are run so too
    own = tmp_path / "mine.py"
    own.write_text(f"exec(open({os.path.join(ROOT, 'config', 'cpu_lm.py')!r}).read())\nproj = 'qk_v'\n")
    for path in [*glob.glob(os.path.join(ROOT, "config", "*.py")), str(own)]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scope = configurator.run_file(path, {})
            gc.collect()
        assert not caught and "proj" in scope or "base_" in path, (path, [str(w.message) for w in caught])
