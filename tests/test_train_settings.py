"""train.py's settings and the runs a newcomer tries. The bad values come from the declarations themselves: every
number in train.py's RANGES gets 0, -1, NaN, inf and a non-number, and those out of its range must be refused in one
line that names it (those in range must pass on to the data); every string in CHOICES gets a value it does not
take. So a setting is covered the day it is declared. Most cases run train.py in this process (refused before any
work, so they are fast); a few run it as a subprocess to prove the command line: exit 1, one line, no traceback,
nothing written. Then --help, config files that do not run, resume and rerun against the checkpoint, the
checkpoint every run leaves, a read-only out_dir and Ctrl-C."""

import ast
import contextlib
import errno
import hashlib
import io
import json
import math
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict

import numpy as np
import pytest
import torch

import checkpoint
from configurator import range_error
from model import GPT, GPTConfig
from test_train import LR, MIN_LR, ROOT, TINY, make_data, read_log, run_forked, run_inprocess, train

TRAIN_PY = os.path.join(ROOT, "train.py")
BAD = (0, -1, math.nan, math.inf, "abc", 10**400)  # 10**400: an int that no float or int64 holds


def declared(name):
    """The keys of the dict train.py assigns to name, with the values that are literals (else None), read from
    its source without running it."""
    with open(TRAIN_PY) as f:
        tree = ast.parse(f.read())
    node = next(n.value for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == name)
    return {ast.literal_eval(k): ast.literal_eval(v) if isinstance(v, ast.Constant) else None
            for k, v in zip(node.keys, node.values)}


RANGES, CHOICES = declared("RANGES"), declared("CHOICES")


@pytest.fixture(scope="module")
def defaults():
    """{setting: default} as `train.py --help` lists them (run in this process)."""
    out, argv, hook = io.StringIO(), sys.argv, sys.excepthook
    sys.argv = ["train.py", "--help"]
    try:
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as e:
            runpy.run_path(TRAIN_PY, run_name="__main__")
    finally:
        sys.argv, sys.excepthook = argv, hook
    assert e.value.code == 0
    rows = [line.split(maxsplit=1) for line in out.getvalue().splitlines()[2:]]
    assert all(len(row) == 2 for row in rows), "a setting without a description"
    values = {}
    for key, text in (row[0][2:].split("=", 1) for row in rows):
        try:
            values[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            values[key] = text
    return values


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("data")
    make_data(path)
    return path


def refusal(monkeypatch, tmp_path, args, data_dir=None):
    """train.py's SystemExit message for TINY + args, run in this process, checked to have written nothing."""
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir or tmp_path / 'nodata'}",
                                      f"--out_dir={tmp_path / 'out'}", *args])
    assert not (tmp_path / "out").exists()
    return msg


def test_every_setting_is_declared(defaults):
    assert set(asdict(GPTConfig())) <= set(defaults)
    assert {k for k, v in defaults.items() if type(v) in (int, float)} == set(RANGES)
    # the free strings: paths, and init_from (a path or a name), each checked where it is opened
    assert {k for k, v in defaults.items() if type(v) is str} - set(CHOICES) == {"out_dir", "data_dir", "init_from"}
    assert defaults["batch_size"] == 12 and defaults["learning_rate"] == 6e-4 and defaults["proj"] == "qkv"


@pytest.mark.parametrize("key", RANGES)
def test_every_number_out_of_its_range_is_one_line_naming_it(key, defaults, tmp_path, monkeypatch):
    kind, rule = type(defaults[key]), RANGES[key]
    for value in BAD:
        msg = refusal(monkeypatch, tmp_path, [f"--{key}={value}"])
        if isinstance(value, str) or range_error(key, value, kind, rule):
            assert msg.startswith(f"{key} must be ") and "\n" not in msg, (value, msg)
        else:  # in range: the settings pass, and the run goes on to look for its data
            assert msg.startswith(f"data_dir '{tmp_path / 'nodata'}' has no train.bin"), (value, msg)


def test_every_string_holding_a_control_character_is_one_line(defaults, tmp_path, monkeypatch):
    # --out_dir=$'runs/x\n' trained into a folder whose name ends in an invisible newline (exit 0)
    for key in (k for k, v in defaults.items() if type(v) is str):
        msg = refusal(monkeypatch, tmp_path, [f"--{key}=x\n"])
        assert msg == f"{key} holds the control character '\\n' ('x\\n'), which no name or path means; give it " \
                      f"without newlines.", msg


def test_a_config_files_path_this_locales_file_names_cannot_hold_is_one_line(tmp_path, monkeypatch):
    # a config file is UTF-8 Python: out_dir = "runs/日本" under a Latin-1 locale (or "é" under LC_ALL=C with
    # PYTHONUTF8=0) was a UnicodeEncodeError traceback from os.path.realpath
    config = tmp_path / "mine.py"
    config.write_text('out_dir = "runs/\u65e5\u672c"\n', encoding="utf-8")
    monkeypatch.setattr(sys, "getfilesystemencoding", lambda: "iso8859-1")
    msg = refusal(monkeypatch, tmp_path, [str(config)])
    assert msg == (f"out_dir 'runs/\u65e5\u672c' in {config} holds '\u65e5', which a file name cannot hold in this "
                   f"locale's encoding (iso8859-1); run it under a UTF-8 locale (LC_ALL=C.UTF-8) or give the path "
                   f"without it."), msg
    config.write_text('out_dir = "runs/\xe9"\n', encoding="utf-8")  # Latin-1 holds it: no refusal
    assert refusal(monkeypatch, tmp_path, [str(config), "--data_dir=nodata"]).startswith("data_dir 'nodata'")


@pytest.mark.parametrize("key", CHOICES)
def test_every_string_outside_its_choices_is_one_line_naming_them(key, tmp_path, monkeypatch):
    msg = refusal(monkeypatch, tmp_path, [f"--{key}=foo"])
    assert re.fullmatch(rf"{key} must be ('[\w:]+', )*'[\w:]+' or '[\w:]+'; got 'foo'\. Set --{key}\.", msg), msg


def test_every_bad_setting_is_its_own_line(tmp_path, monkeypatch):
    msg = refusal(monkeypatch, tmp_path, ["--seed=-1", "--n_inner=-4", "--backend=foo"])
    assert msg.splitlines() == ["seed must be an integer in [0, 4294967295]; got -1. Set --seed.",
                                "n_inner must be an integer >= 0; got -4. Set --n_inner.",
                                "backend must be 'auto', 'nccl' or 'gloo'; got 'foo'. Set --backend."]


def test_every_string_given_empty_is_one_line_naming_its_default(defaults, tmp_path, monkeypatch):
    # --data_dir= was told to "prepare it with ... --out_dir=", --init_from= "no checkpoint at ckpt.pt"
    # --out_dir=" " trained into a folder named ' ' and --data_dir=" " was told to prepare with --out_dir=
    for value, what in (("", "empty"), (" ", "only spaces (' ')")):
        for key in (k for k, v in defaults.items() if type(v) is str):
            msg = refusal(monkeypatch, tmp_path, [f"--{key}={value}"])
            assert msg == f"{key} is {what} in --{key}={value}; give it a value, or leave it out for the default " \
                          f"{defaults[key]!r}.", msg


@pytest.mark.parametrize("value", ["0", "-1", "1", "nan", "inf", "-inf"])
def test_rope_base_must_be_above_one_on_the_command_line_and_in_a_config_file(value, tmp_path, monkeypatch):
    # 0 rotated nothing; below 0 or NaN made NaN losses that were blamed on the learning rate
    config = tmp_path / "rope.py"
    config.write_text(f"pos_emb = 'rope'\nrope_base = float('{value}')\n")
    msg = refusal(monkeypatch, tmp_path, [str(config)])
    assert msg == f"rope_base must be a finite number > 1; got {float(value)!r}. Set --rope_base."
    assert refusal(monkeypatch, tmp_path, ["--pos_emb=rope", f"--rope_base={value}"]) == msg


@pytest.mark.parametrize("field, value", [("rope_base", 0.0), ("rope_base", -1.0), ("rope_base", math.nan),
                                          ("rope_base", math.inf), ("n_inner", -4)])
def test_the_model_config_refuses_what_it_cannot_compute(field, value):
    # model.py is used from other scripts too: GPTConfig checks these itself
    with pytest.raises(ValueError, match=f"^{field} must be"):
        GPTConfig(**{field: value})


@pytest.mark.parametrize("arg", ["--n_inner=-4", "--seed=-1", "--backend=foo"])
def test_the_command_line_refuses_a_bad_setting_before_any_work(arg, tmp_path, data_dir):
    # with data there: seed=-1 used to train until the first batch of the second iteration, then fail
    r = train(data_dir, tmp_path / "out", arg, check=False)
    key = arg[2:].split("=")[0]
    assert r.returncode == 1 and r.stdout == "", r.stdout + r.stderr
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith(f"{key} must be "), r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("arg, hint", [
    # were "nearest valid keys: min_lr, ..." (--lr), "decay_lr, block_size, causal" (what torch.distributed.launch
    # passes each process) and "pos_conv_period, ..." (torchrun's options written after train.py)
    ("--lr=1e-3", "the peak learning rate is --learning_rate (--min_lr is where the decay ends)."),
    ("--local-rank=1", "torch.distributed.launch passes it, and train.py reads its rank from torchrun's environment: "
                       "run it under torchrun instead (torchrun --standalone --nproc_per_node=N train.py ...)."),
    ("--nproc_per_node=2", "torchrun's option: write it before train.py (torchrun --standalone --nproc_per_node=2 "
                           "train.py ...)."),
    ("--standalone", "torchrun's option: write it before train.py"),  # was "has no value; write --standalone=VALUE"
    # nanoGPT's names were pointed at the nearest spellings: eval_interval, data_dir..., min_lr..., pos_emb...
    ("--eval_iters=200", "--eval_tokens sets how many validation tokens each evaluation reads."),
    ("--dataset=openwebtext", "--data_dir names the folder of train.bin, val.bin and meta.json."),
    # nanoGPT's --eval_only=True was pointed at eval_tokens, eval_interval, which train a run
    ("--eval_only=True", "train.py has no evaluation-only mode: each evaluation's val_loss is in out_dir/log.jsonl, "
                         "and eval.py --out_dir=DIR scores a checkpoint on tasks (or on a text, --text=FILE)."),
    ("--wandb_log=True", "there is no wandb logging here: every evaluation and log line goes to out_dir/log.jsonl."),
    ("--epochs=3", "a run's length is --max_iters (or --total_tokens, in tokens)."),
    ("--colour=red", "no setting has a name like it (--help lists them)."),
    # other trainers' names were pointed at compile, rope_base, seed, batch_size, vocab_size, max_iters, or nothing
    ("--config_file=config/cpu_tiny.py", "config files are given without a flag: python train.py config/x.py "
                                         "[--key=value ...]."),
    ("--resume=True", "--init_from=resume resumes out_dir's ckpt.pt; --init_from=PATH starts a new run from the "
                      "checkpoint at PATH."),
    ("--seq_len=256", "the context length is --block_size."),
    ("--hidden_size=512", "the model width is --n_embd."),
    ("--fp16=True", "the precision is --dtype (auto, float32 or bfloat16)."),
    # its command's "train.py ..." ended the sentence in "...."
    ("--world_size=2", "the number of processes is torchrun's: torchrun --standalone --nproc_per_node=N train.py, "
                       "then the config file and settings."),
    ("--num_workers=4", "batches are read from the memory-mapped train.bin in the training process itself"),
    ("--save_steps=100", "a checkpoint is saved at each evaluation: --eval_interval (and --always_save_checkpoint)."),
    # this project's own words were pointed at seed, dtype, n_inner, rope_base, always_save_checkpoint, or nothing
    ("--fsdp=True", "the parallel mode is --parallel=ddp or --parallel=fsdp, under torchrun."),
    ("--ddp=True", "the parallel mode is --parallel=ddp or --parallel=fsdp, under torchrun."),
    ("--gqa=4", "head sharing is --n_kv_head: g for GQA-g, 1 for MQA, 0 for n_head."),
    ("--mqa=True", "head sharing is --n_kv_head: g for GQA-g, 1 for MQA, 0 for n_head."),
    ("--grouped_query=4", "head sharing is --n_kv_head: g for GQA-g, 1 for MQA, 0 for n_head."),  # was rope_base
    ("--multi_query=True", "head sharing is --n_kv_head: g for GQA-g, 1 for MQA, 0 for n_head."),
    ("--tie_kv=True", "which projections are tied is --proj: qkv, qk_v (V = K), q_kv (K = Q) or q_k_v (one W)."),
    ("--linear=True", "linear attention is --attn=linear."),
    ("--rope=True", "rotary positions are --pos_emb=rope (--rope_base sets their base)."),
    ("--xplus=16", "(X)+ is --pos_conv=m, its channels (a multiple of 4)."),
    ("--activation_checkpointing=True", "activation checkpointing is --grad_ckpt=True."),
    # the other scripts' options were pointed at unrelated settings: attn, dropout, eval_tokens
    ("--text=input.txt", "--text is an option of eval.py, not of train.py (--help lists train.py's)."),
    ("--input=input.txt", "--input is an option of prepare_slimpajama.py, not of train.py"),
    ("--max_new_tokens=100", "--max_new_tokens is an option of sample.py, not of train.py"),
])
def test_a_name_from_elsewhere_is_told_what_it_is(arg, hint, tmp_path, monkeypatch):
    msg = refusal(monkeypatch, tmp_path, [arg])
    assert msg.startswith(f"unknown config key {arg[2:].split('=')[0]!r} in {arg}; {hint}"), msg


def test_help_lists_every_setting_with_its_default_and_a_line_on_it():
    r = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == ""
    lines = r.stdout.splitlines()
    assert lines[0] == "usage: python train.py [CONFIG_FILE.py ...] [--key=value ...]"
    rows = dict(line.split(maxsplit=1) for line in lines[2:])
    assert rows["--batch_size=12"] == "sequences per micro-step per process; >= 1"
    assert rows["--parallel=ddp"].startswith("torchrun only") and rows["--parallel=ddp"].endswith("; one of ddp, fsdp")
    assert rows["--n_kv_head=0"] == "0 -> n_head; 1 -> MQA; g -> GQA-g; >= 0"  # GPTConfig's own comment


@pytest.mark.parametrize("text, line, error", [
    (b"n_layer = 2\nn_head = (\n", 2, "SyntaxError: '(' was never closed"),
    (b"import math\nn_layer = math.sqrt(-1)\n", 2, "ValueError: math domain error"),
    (b"n_layer = 2\nout_dir = 'caf\xe9'\n", 2, "byte 0xe9 is not UTF-8"),
    # a file that ends the command: exit status 3 (or 0, nothing trained), not a word
    (b"import sys\nn_layer = 2\nsys.exit(3)\n", 3, "it calls sys.exit(3), which ends the command before it starts"),
    (b"exit()\n", 1, "it calls sys.exit(None)"),
])
def test_a_config_file_that_does_not_run_is_one_line_naming_file_and_line(text, line, error, tmp_path, monkeypatch):
    config = tmp_path / "bad.py"
    config.write_bytes(text)
    msg = refusal(monkeypatch, tmp_path, [str(config)])
    assert msg.startswith(f"config file '{config}', line {line}: {error}") and "\n" not in msg, msg


def test_a_run_config_copied_out_of_config_is_told_to_copy_its_base_file(tmp_path, monkeypatch):
    # config/qk_v_300m.py copied to be edited: it executes base_300m.py beside itself, which stayed in config/, and
    # the refusal said "fix the file" of a file with nothing wrong in it
    shutil.copy(os.path.join(ROOT, "config", "qk_v_300m.py"), tmp_path / "mine.py")
    msg = refusal(monkeypatch, tmp_path, [str(tmp_path / "mine.py")])
    assert msg == (f"config file '{tmp_path / 'mine.py'}', line 4: it reads {tmp_path / 'base_300m.py'}, which is "
                   f"not there; the project's is {os.path.join(ROOT, 'config', 'base_300m.py')}: copy it there (and "
                   f"any file it executes in turn)."), msg


def test_a_config_file_with_a_syntax_error_is_no_traceback(tmp_path):
    config = tmp_path / "bad.py"
    config.write_text("n_layer = 2\nproj = 'qkv\n")
    r = subprocess.run([sys.executable, "train.py", str(config)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr == f"config file '{config}', line 2: SyntaxError: unterminated string literal (detected at " \
                       f"line 2); fix the file.\n"


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir):
    """A finished qk_v run (TINY, 2 iterations), which the tests copy before they use it."""
    out = tmp_path_factory.mktemp("finished") / "out"
    train(data_dir, out, "--max_iters=2")
    return out


def snapshot(out):
    """Every file of out with its bytes and modification time."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(out.iterdir())}


@pytest.mark.parametrize("how", ["--proj=qkv", "a config file", "a config file and --n_layer=3"])
def test_resume_compares_the_architecture_set_with_the_checkpoint_not_the_defaults(how, finished, data_dir,
                                                                                  tmp_path, monkeypatch):
    # proj='qkv' is train.py's default: the run resumed qk_v without a word
    out = shutil.copytree(finished, tmp_path / "run")
    before = snapshot(out)
    config = tmp_path / "qkv.py"
    config.write_text("proj = 'qkv'\n")
    args = [f"--data_dir={data_dir}", f"--out_dir={out}", "--init_from=resume", "--max_iters=4"]
    if how == "--proj=qkv":
        msg = run_inprocess(monkeypatch, [*args, "--proj=qkv"])
    else:  # TINY's --proj=qk_v would override the file's proj: the file alone gives it
        typed = ["--n_layer=3"] if how.endswith("--n_layer=3") else []
        monkeypatch.setattr(sys, "argv", ["train.py", str(config), *(a for a in TINY if a != "--proj=qk_v"), *args,
                                          *typed])
        monkeypatch.setattr(sys, "excepthook", sys.excepthook)
        with pytest.raises(SystemExit) as e:
            runpy.run_path(TRAIN_PY, run_name="__main__")
        msg = str(e.value)
    # a file's setting was told "drop these settings", which no command line can (the seventeenth pass)
    fix = "drop these settings" if how == "--proj=qkv" else \
        f"{config} sets proj: add --proj=qk_v (the run's own) or resume with the config file the run was trained with"
    layers = ""
    if how.endswith("--n_layer=3"):
        layers, fix = "n_layer=3 (checkpoint: 2), ", fix + " and drop --n_layer"
    assert msg == f"on resume the architecture comes from {out / 'ckpt.pt'}, but {layers}proj='qkv' (checkpoint: " \
                  f"'qk_v'); {fix}, or start a new run in another --out_dir."
    assert snapshot(out) == before


@pytest.mark.parametrize("file_proj", ["qkv", "qk_v"])
def test_a_resume_refused_for_a_field_both_a_file_and_the_command_line_give_says_which_fix_resumes(
        file_proj, finished, data_dir, tmp_path, monkeypatch):
    # --proj=qkv typed beside a file of proj = 'qkv' was told "drop these settings": dropped, the file's qkv was
    # refused again; a file of the run's own proj beside it is the case where dropping it is the fix (pass nineteen)
    out = shutil.copytree(finished, tmp_path / "run")
    before = snapshot(out)
    config = tmp_path / "proj.py"
    config.write_text(f"proj = {file_proj!r}\n")
    monkeypatch.setattr(sys, "argv", ["train.py", str(config), *(a for a in TINY if a != "--proj=qk_v"),
                                      f"--data_dir={data_dir}", f"--out_dir={out}", "--init_from=resume",
                                      "--max_iters=4", "--proj=qkv"])
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    with pytest.raises(SystemExit) as e:
        runpy.run_path(TRAIN_PY, run_name="__main__")
    fix = f"{config} sets proj: add --proj=qk_v (the run's own) or resume with the config file the run was " \
          f"trained with" if file_proj == "qkv" else "drop these settings"
    assert str(e.value) == f"on resume the architecture comes from {out / 'ckpt.pt'}, but proj='qkv' (checkpoint: " \
                           f"'qk_v'); {fix}, or start a new run in another --out_dir."
    assert snapshot(out) == before


def test_a_resume_refused_for_a_config_files_field_names_the_runs_own_value_which_resumes_it(finished, data_dir,
                                                                                                tmp_path, monkeypatch):
    # a run trained with a config file and --proj=... beside it, resumed with that file alone, was told to "resume
    # with the config file the run was trained with": the very file it was given, refused again (pass nineteen)
    out = shutil.copytree(finished, tmp_path / "run")
    before = snapshot(out)
    config = tmp_path / "qkv.py"
    config.write_text("proj = 'qkv'\n")
    tiny = [a for a in TINY if a != "--proj=qk_v"]
    args = [f"--data_dir={data_dir}", f"--out_dir={out}", "--init_from=resume", "--max_iters=3"]

    monkeypatch.setattr(sys, "argv", ["train.py", str(config), *tiny, *args])
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    with pytest.raises(SystemExit) as e:
        runpy.run_path(TRAIN_PY, run_name="__main__")
    assert f"{config} sets proj: add --proj=qk_v (the run's own) or resume with the config file" in str(e.value)
    assert snapshot(out) == before
    monkeypatch.setattr(sys, "argv", ["train.py", str(config), *tiny, *args, "--proj=qk_v"])
    runpy.run_path(TRAIN_PY, run_name="__main__")  # the advice followed: the run resumes and finishes
    assert [r["iter"] for r in read_log(out) if "val_loss" in r][-1] == 3


def test_device_and_dtype_auto_are_the_run_of_what_they_resolve_to(finished, data_dir, tmp_path, monkeypatch):
    # a checkpoint records the spelling: a run of device='auto' (every paper config) or dtype='auto' (cpu_tiny's),
    # asked again with --device=cpu or --dtype=float32, the same run on this CPU, was "a run with other settings:
    # dtype='float32' (checkpoint: 'auto')", told to train into another out_dir
    out = shutil.copytree(finished, tmp_path / "run")  # TINY's device=cpu, dtype=float32
    base = [f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=2"]
    assert run_inprocess(monkeypatch, [*base, "--device=auto", "--dtype=auto"]) == "0"  # finished: nothing to do
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    ckpt["config"].update(device="auto", dtype="auto")
    torch.save(ckpt, out / "ckpt.pt")
    before = snapshot(out)
    assert run_inprocess(monkeypatch, base) == "0"
    assert snapshot(out) == before
    msg = run_inprocess(monkeypatch, [*base, "--dtype=bfloat16"])  # what auto is not on a CPU
    assert msg.startswith(f"{out / 'ckpt.pt'} exists, from a run with other settings: dtype='bfloat16' (checkpoint: "
                          f"'auto')")


def test_n_kv_head_spelled_as_n_head_is_the_same_run_not_another(finished, data_dir, tmp_path, monkeypatch):
    # n_kv_head=2 with n_head=2 builds the model of n_kv_head=0: a resume was refused "n_kv_head=2 (checkpoint: 0);
    # drop these settings" and the same command asked again called it a run of other settings (pass nineteen)
    out = shutil.copytree(finished, tmp_path / "run")
    before = snapshot(out)
    base = [f"--data_dir={data_dir}", f"--out_dir={out}", "--n_kv_head=2"]
    assert run_inprocess(monkeypatch, [*base, "--max_iters=2"]) == "0"  # finished: nothing to do
    assert snapshot(out) == before
    msg = run_inprocess(monkeypatch, [*base, "--max_iters=3", "--n_kv_head=1"])  # MQA is another model
    assert "n_kv_head=1 (checkpoint: 0)" in msg, msg
    monkeypatch.setattr(sys, "argv", ["train.py", *TINY, *base, "--max_iters=3", "--init_from=resume"])
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    runpy.run_path(TRAIN_PY, run_name="__main__")  # resumes, and keeps the checkpoint's spelling
    ckpt = torch.load(out / "ckpt.pt", weights_only=False)
    assert ckpt["iter_num"] == 3 and ckpt["model_args"]["n_kv_head"] == 0


def test_n_kv_head_of_the_checkpoints_value_is_not_called_another(finished, data_dir, tmp_path, monkeypatch):
    # n_kv_head=0 resolves through n_head: given beside another n_head (train.py's default, where no config sets it)
    # it was refused "n_kv_head=0 (checkpoint: 0)", a value equal to the one it was told differs from
    out = shutil.copytree(finished, tmp_path / "run")
    base = [f"--data_dir={data_dir}", f"--out_dir={out}", "--n_kv_head=0", "--init_from=resume", "--max_iters=6"]
    msg = run_inprocess(monkeypatch, [*base, "--n_head=4"])
    assert msg.endswith("but n_head=4 (checkpoint: 2); drop these settings, or start a new run in another "
                        "--out_dir."), msg


def test_total_tokens_on_a_resume_of_another_batch_says_what_it_trains(finished, data_dir, tmp_path, monkeypatch):
    # total_tokens counts iterations of this run's size: the checkpoint's 2 iterations of 256 tokens, resumed with
    # twice the accumulation and total_tokens=1024, were called done ("raise --total_tokens") at 512 tokens, unsaid
    out = shutil.copytree(finished, tmp_path / "run")
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--init_from=resume",
                                      "--total_tokens=1024", "--gradient_accumulation_steps=4"])
    assert msg.endswith("nothing to train; raise --total_tokens to continue it. total_tokens=1,024 sets max_iters=2 at "
                        "512 tokens per iteration, but the checkpoint's run trained 256 per iteration: if its 2 were "
                        "all of that size (512 tokens; it records no count, and a resume before under another size "
                        "makes it another), this run ends at 512 tokens, and --total_tokens=0 --max_iters=3 trains "
                        "1,024."), msg
    # not a multiple of the new size: "--max_iters=3 trains 1,000" trained 1,024
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--init_from=resume",
                                      "--total_tokens=1000", "--gradient_accumulation_steps=4"])
    assert msg.endswith("--total_tokens=0 --max_iters=3 trains 1,024, the fewest whole iterations that reach "
                        "1,000."), msg
    # its iterations already reach total_tokens: "--total_tokens=0 --max_iters=2 trains 512" trained nothing
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--init_from=resume",
                                      "--total_tokens=512", "--gradient_accumulation_steps=4"])
    assert msg.endswith("this run ends at 512 tokens, though its 2 reach total_tokens=512 already."), msg


def test_resume_compares_a_field_the_checkpoint_predates_with_its_default(finished, data_dir, tmp_path, monkeypatch):
    # a checkpoint from before pos_emb existed, resumed with --pos_emb=rope: "go on under these", but the model was
    # built with the default (learned) and the saved config said rope
    out = shutil.copytree(finished, tmp_path / "run")
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    del ckpt["model_args"]["pos_emb"]
    torch.save(ckpt, out / "ckpt.pt")
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--init_from=resume",
                                      "--max_iters=4", "--pos_emb=rope"])
    assert msg == f"on resume the architecture comes from {out / 'ckpt.pt'}, but pos_emb='rope' (checkpoint: " \
                  f"'learned'); drop these settings, or start a new run in another --out_dir."


def test_a_finished_run_asked_again_is_done_and_touches_nothing(finished, data_dir, tmp_path, monkeypatch, capsys):
    out = shutil.copytree(finished, tmp_path / "run")
    before = snapshot(out)
    r = train(data_dir, out, "--max_iters=2")
    assert r.stdout == f"{out / 'ckpt.pt'} holds this run, finished at iteration 2: nothing to do (to train on, " \
                       f"raise --max_iters and add --init_from=resume).\n" and r.stderr == ""
    # how it is watched does not make another run; with resume, the same run is done too
    for args in (["--log_interval=5", "--eval_interval=1", "--eval_tokens=256"], ["--init_from=resume"]):
        assert run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=2", *args]) == "0"
        said = capsys.readouterr().out
        assert "finished at iteration 2: nothing to do" in said
        # the advice does not ask to add the --init_from=resume the command already has
        assert said.endswith("raise --max_iters and add --init_from=resume).\n" if not args[0].startswith("--init")
                             else "raise --max_iters).\n"), said
    # the same data folder spelled otherwise was "a run with other settings: data_dir='./data/' (checkpoint: ...)"
    for spelled in (f"{data_dir}/", os.path.relpath(data_dir) + "/."):
        assert run_inprocess(monkeypatch, [f"--data_dir={spelled}", f"--out_dir={out}", "--max_iters=2"]) == "0"
        assert "finished at iteration 2: nothing to do" in capsys.readouterr().out
    assert snapshot(out) == before


def test_a_finished_run_in_an_accented_folder_under_an_ascii_console_is_done(finished, data_dir, tmp_path):
    # train.py's own lines go to stdout, which under PYTHONIOENCODING=ascii (or cp1252 on Windows) failed on the
    # folder's name: a UnicodeEncodeError traceback after the run had been checked
    out = shutil.copytree(finished, tmp_path / "caf\xe9")
    args = [*TINY, f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=2"]
    r = subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True,
                       env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    assert r.stdout.startswith(str(tmp_path / "caf\\xe9").encode()) and b"nothing to do" in r.stdout


def test_the_same_command_under_another_locale_is_the_same_run(data_dir, tmp_path):
    # trained under PYTHONUTF8=0 LC_ALL=C, the checkpoint kept --data_dir=.../données as 'donn\udcc3\udca9es'; the
    # same command under a UTF-8 locale was refused, "other settings: data_dir='.../données' (checkpoint: ...)"; and
    # under the first locale again runé/ckpt.pt was "corrupt ... move it away" (torch's mmap cannot name the path)
    shutil.copytree(data_dir, tmp_path / "données")
    args = [sys.executable, "train.py", *TINY, f"--data_dir={tmp_path / 'données'}", f"--out_dir={tmp_path / 'runé'}",
            "--max_iters=2"]
    env = {**os.environ, "PYTHONUTF8": "0", "LC_ALL": "C", "OMP_NUM_THREADS": "1"}
    assert subprocess.run(args, cwd=ROOT, capture_output=True, env=env).returncode == 0
    for utf8 in ("1", "0"):
        r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env={**env, "PYTHONUTF8": utf8})
        assert r.returncode == 0 and "nothing to do" in r.stdout, r.stdout + r.stderr


def test_a_torch_cache_folder_that_cannot_be_made_is_one_sentence_and_no_out_dir(data_dir, tmp_path):
    # TORCHINDUCTOR_CACHE_DIR=/proc/nope: building the model imports torch._dynamo, which makes that folder: a
    # FileNotFoundError traceback from deep inside torch.nn.init, with or without --compile (the twelfth pass)
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": "/proc/nope", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "train.py", *TINY, f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'out'}",
                        "--max_iters=2"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert r.returncode == 1 and r.stderr == ("torch could not make its cache folder /proc/nope (No such file or "
                                              "directory); set TORCHINDUCTOR_CACHE_DIR to a folder it can make and "
                                              "write.\n"), r.stderr
    assert os.listdir(tmp_path) == []


def test_a_compile_that_cannot_work_is_one_sentence(data_dir, tmp_path):
    # without a C++ compiler inductor's error came from the first compiled forward, a 40-line traceback
    env = {**os.environ, "CXX": str(tmp_path / "no-such-g++"), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "train.py", *TINY, f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'out'}",
                        "--max_iters=2", "--compile=True"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("--compile=True: torch.compile failed (") and \
        r.stderr.endswith("install one, or pass --compile=False.\n")


def test_a_run_sized_by_total_tokens_is_told_to_raise_total_tokens(data_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    train(data_dir, out, "--total_tokens=512")  # 2 iterations of 256 tokens
    assert run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--total_tokens=512"]) == "0"
    # was "raise --max_iters", which total_tokens overrides: raising it ended in "max_iters is 2: nothing to train"
    assert "(to train on, raise --total_tokens and add --init_from=resume)" in capsys.readouterr().out
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--total_tokens=256",
                                      "--init_from=resume"])
    assert msg == (f"{out / 'ckpt.pt'} is at iteration 2, and max_iters is 1 (set by total_tokens=256): nothing to "
                   f"train; raise --total_tokens to continue it.")
    # --max_iters beside it went unread: a paper config (10B tokens) run with --max_iters=10 trained 400k iterations
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'new'}", "--total_tokens=512",
                                      "--max_iters=4"])
    said = ("max_iters=4 and total_tokens=512 are both set, and total_tokens > 0 decides max_iters; set "
            "--total_tokens=0 to train for max_iters, or --total_tokens=0 --max_iters=2 for 512 tokens (256 per "
            "iteration).")
    assert msg == said
    assert not (tmp_path / "new").exists()
    # max_iters set by a config file (cpu_tiny.py's 600): "leave max_iters out" could not be done on the command line
    (tmp_path / "conf.py").write_text("max_iters = 4\n")
    msg = run_inprocess(monkeypatch, [str(tmp_path / "conf.py"), f"--data_dir={data_dir}",
                                      f"--out_dir={tmp_path / 'new'}", "--total_tokens=512"])
    assert msg == said and not (tmp_path / "new").exists()


def test_the_default_vocab_size_on_byte_level_data_is_said(data_dir, tmp_path):
    # vocab_size left at GPT-2's 50304 on 256 byte ids: 99% of the token rows never a target, without a word
    args = [a for a in TINY if not a.startswith("--vocab_size")] + ["--max_iters=0", f"--data_dir={data_dir}"]
    r = run_forked(["train.py", *args, f"--out_dir={tmp_path / 'a'}"], dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == (f"note: vocab_size is its default 50304 (GPT-2's) and {data_dir} holds "
                                        f"'bytes' tokens, 256 ids: the model's other rows are never a target; set "
                                        f"--vocab_size=256 for a model of this data's vocabulary.")
    # a config file's 50304 (a paper config's, shrunk by overrides to try on byte-level data) went without a word
    (tmp_path / "paper.py").write_text("vocab_size = 50304\n")
    r = run_forked(["train.py", str(tmp_path / "paper.py"), *args, f"--out_dir={tmp_path / 'b'}"],
                   dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith(f"note: vocab_size is a config file's 50304 and {data_dir} holds ")


def test_max_iters_beside_total_tokens_is_told_what_each_fix_trains(data_dir, tmp_path, monkeypatch):
    base = [f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'new'}"]
    # a config file of the user's that sets both was told only to drop total_tokens, never to drop its max_iters
    (tmp_path / "both.py").write_text("max_iters = 4\ntotal_tokens = 512\n")
    msg = run_inprocess(monkeypatch, [str(tmp_path / "both.py"), *base])
    assert msg == ("max_iters=4 and total_tokens=512 are both set, and total_tokens > 0 decides max_iters; delete "
                   "max_iters from the config file to train total_tokens, or set --total_tokens=0 to train for "
                   "max_iters, or --total_tokens=0 --max_iters=2 for 512 tokens (256 per iteration).")
    # less than one iteration: "--max_iters=1 for 100 tokens" trains 256
    msg = run_inprocess(monkeypatch, [*base, "--total_tokens=100", "--max_iters=4"])
    assert msg.endswith("or --total_tokens=0 --max_iters=1 for one iteration (256 tokens: total_tokens=100 is less "
                        "than one).")
    assert not (tmp_path / "new").exists()


def test_resume_on_data_too_short_for_its_block_size_names_the_data_not_block_size(finished, tmp_path, monkeypatch):
    out = shutil.copytree(finished, tmp_path / "run")
    short = tmp_path / "short"
    make_data(short)
    np.ones(20, dtype=np.uint16).tofile(short / "val.bin")
    (short / "meta.json").write_text(json.dumps({**json.loads((short / "meta.json").read_text()), "val_tokens": 20}))
    msg = run_inprocess(monkeypatch, [f"--data_dir={short}", f"--out_dir={out}", "--init_from=resume",
                                      "--max_iters=4"])
    # was "or set a smaller --block_size", which a resumed run refuses: its block_size is the checkpoint's
    assert msg == (f"{short / 'val.bin'} holds 20 tokens, fewer than block_size + 1 (33); prepare more data, or point "
                   f"--data_dir at the data the checkpoint was trained on.")


def test_a_resume_whose_data_dir_is_not_there_names_the_checkpoints_not_prepare(finished, tmp_path, monkeypatch):
    # without the run's config file (the default data_dir), or from another folder with its relative data_dir, the
    # advice was "prepare it with `python prepare_slimpajama.py ... --out_dir=data/slimpajama`"
    out = shutil.copytree(finished, tmp_path / "run")
    was = str(torch.load(out / "ckpt.pt", weights_only=False)["config"]["data_dir"])
    monkeypatch.chdir(tmp_path)
    msg = run_inprocess(monkeypatch, [f"--out_dir={out}", "--init_from=resume", "--max_iters=4"])
    assert msg == (f"data_dir 'data/slimpajama' does not exist, and {out / 'ckpt.pt'} trained on data_dir {was!r}; "
                   f"resume with the config file and settings the run was trained with, or --data_dir={was}.")
    ckpt = torch.load(out / "ckpt.pt", weights_only=False)
    ckpt["config"]["data_dir"] = "data"  # trained from the data's parent folder, resumed from tmp_path
    torch.save(ckpt, out / "ckpt.pt")
    msg = run_inprocess(monkeypatch, ["--data_dir=data", f"--out_dir={out}", "--init_from=resume", "--max_iters=4"])
    assert msg == (f"data_dir 'data', which {out / 'ckpt.pt'} trained on, is a relative path, missing from this folder "
                   f"({tmp_path}); run from the folder the run was trained in, or give --data_dir as an absolute "
                   f"path.")


@pytest.mark.parametrize("given", [["--data_dir=data/bytes"], []], ids=["its data_dir", "no config"])
def test_a_resume_whose_data_dir_was_renamed_names_the_folder_beside_holding_its_data(finished, tmp_path, monkeypatch,
                                                                                      given):
    # data/bytes renamed data/sb by hand, the resume run from the very folder it was trained in: the advice was
    # "run from the folder the run was trained in", where it was run; resumed without the run's config file
    # (train.py's default data_dir), "run from the folder ..., or --data_dir=data/bytes", where data/bytes is gone
    out = shutil.copytree(finished, tmp_path / "run")
    ckpt = torch.load(out / "ckpt.pt", weights_only=False)
    shutil.copytree(ckpt["config"]["data_dir"], tmp_path / "data" / "sb")
    ckpt["config"]["data_dir"] = "data/bytes"
    torch.save(ckpt, out / "ckpt.pt")
    monkeypatch.chdir(tmp_path)
    msg = run_inprocess(monkeypatch, [*given, f"--out_dir={out}", "--init_from=resume", "--max_iters=4"])
    beside = "but 'data/sb' beside it holds the same data (moved or renamed?); resume with"
    assert msg == (f"data_dir 'data/bytes', which {out / 'ckpt.pt'} trained on, is a relative path, missing from this "
                   f"folder ({tmp_path}), {beside} --data_dir=data/sb." if given else
                   f"data_dir 'data/slimpajama' does not exist, and {out / 'ckpt.pt'} trained on data_dir "
                   f"'data/bytes', which is not here either, {beside} the config file and settings the run was "
                   f"trained with and --data_dir=data/sb."), msg


def test_a_renamed_data_dir_is_found_beside_the_same_text_prepared_with_the_other_tokenizer(tmp_path):
    # data/mine_bytes renamed data/moved beside data/mine_bpe, prepared from the same files with r50k_base: both
    # matched by inputs_sha256 alone, so neither was named, and the advice was "run from the folder" it was run from
    from checkpoint import same_data_beside
    meta = {"tokenizer": "bytes", "train_tokens": 900, "val_tokens": 100, "inputs_sha256": "ab" * 32}
    for name, m in (("moved", meta), ("mine_bpe", dict(meta, tokenizer="r50k_base", train_tokens=300,
                                                              val_tokens=30))):
        os.makedirs(tmp_path / "data" / name)
        for f in ("train.bin", "val.bin"):
            open(tmp_path / "data" / name / f, "wb").close()
        (tmp_path / "data" / name / "meta.json").write_text(json.dumps(m))
    assert same_data_beside(str(tmp_path / "data" / "mine_bytes"), meta) == str(tmp_path / "data" / "moved")


def test_a_renamed_data_dir_with_a_copy_beside_it_names_one_of_them(tmp_path):
    # data/sb renamed data/sb_moved beside a backup, data/sb_copy (cp -r): two folders of the same data named
    # neither, and the advice was "run from the folder the run was trained in" from that very folder
    from checkpoint import same_data_beside
    meta = {"tokenizer": "bytes", "train_tokens": 900, "val_tokens": 100, "inputs_sha256": "ab" * 32}
    for name in ("sb_moved", "sb_copy"):
        os.makedirs(tmp_path / "data" / name)
        for f in ("train.bin", "val.bin"):
            open(tmp_path / "data" / name / f, "wb").close()
        (tmp_path / "data" / name / "meta.json").write_text(json.dumps(meta))
    assert same_data_beside(str(tmp_path / "data" / "sb"), meta) == str(tmp_path / "data" / "sb_copy")
    # without the inputs' hash, counts alone may match other text: still neither
    del meta["inputs_sha256"]
    assert same_data_beside(str(tmp_path / "data" / "sb"), meta) is None


def test_a_resume_whose_absolute_data_dir_was_renamed_names_the_folder_beside(finished, tmp_path, monkeypatch):
    # /tmp/d renamed /tmp/d2 by hand, the run's config file giving /tmp/d: the advice was "prepare it with
    # `python prepare_slimpajama.py --out_dir=/tmp/d`", which downloads SlimPajama for a run of one's own text
    out = shutil.copytree(finished, tmp_path / "run")
    ckpt = torch.load(out / "ckpt.pt", weights_only=False)
    shutil.copytree(ckpt["config"]["data_dir"], tmp_path / "d2")
    gone = str(tmp_path / "d")
    ckpt["config"]["data_dir"] = gone
    torch.save(ckpt, out / "ckpt.pt")
    msg = run_inprocess(monkeypatch, [f"--data_dir={gone}", f"--out_dir={out}", "--init_from=resume", "--max_iters=4"])
    assert msg == (f"data_dir {gone!r}, which {out / 'ckpt.pt'} trained on, is not there, but "
                   f"{str(tmp_path / 'd2')!r} beside it holds the same data (moved or renamed?); resume with "
                   f"--data_dir={tmp_path / 'd2'}."), msg
    # the config's data_dir left out: the checkpoint's, not there either, names the same folder
    msg = run_inprocess(monkeypatch, [f"--out_dir={out}", "--init_from=resume", "--max_iters=4"])
    assert msg.endswith(f"resume with --data_dir={tmp_path / 'd2'}, beside it, which holds the same data (moved or "
                        f"renamed?)."), msg


def test_a_resume_whose_own_data_was_deleted_is_given_the_prepare_command_of_its_files(finished, tmp_path,
                                                                                       monkeypatch):
    # a run of one's own export.jsonl, its data folder deleted: the advice was `prepare_slimpajama.py --out_dir=...`,
    # which without --input downloads SlimPajama (20 GB), not the run's text
    out = shutil.copytree(finished, tmp_path / "run")
    ckpt = torch.load(out / "ckpt.pt", weights_only=False)
    gone, src = str(tmp_path / "d"), str(tmp_path / "my export.jsonl")
    ckpt["config"]["data_dir"] = gone
    ckpt["meta"] = {**ckpt["meta"], "train_shards": [src], "val_shards": [src],
                    "settings": {"source": "local files", "tokenizer": "bytes", "train_tokens": 10_000_000_000,
                                 "val_tokens": 10_000_000, "val_fraction": 0.1, "shards": 1, "shards_sha1": "x"}}
    torch.save(ckpt, out / "ckpt.pt")
    monkeypatch.chdir(tmp_path)
    msg = run_inprocess(monkeypatch, [f"--data_dir={gone}", f"--out_dir={out}", "--init_from=resume", "--max_iters=4"])
    assert msg == (f"data_dir {gone!r}, which {out / 'ckpt.pt'} trained on, is not there; prepare it again from the "
                   f"files it was made from with `python {os.path.join(ROOT, 'prepare_slimpajama.py')} --input '{src}' "
                   f"--tokenizer=bytes --val_fraction=0.1 --out_dir={gone}`, or set --data_dir to where it is "
                   f"now."), msg


def test_a_received_run_whose_absolute_data_dir_is_gone_names_the_folder_here(finished, tmp_path, monkeypatch):
    # a run trained on --data_dir=/home/alice/proj/data/bytes, received with its data as data/bytes: the advice was
    # "--data_dir=/home/alice/proj/data/bytes", a folder that is not on this machine
    out = shutil.copytree(finished, tmp_path / "run")
    ckpt = torch.load(out / "ckpt.pt", weights_only=False)
    was = str(tmp_path / "alice" / "proj" / "data" / "bytes")
    ckpt["config"]["data_dir"] = was
    torch.save(ckpt, out / "ckpt.pt")
    monkeypatch.chdir(tmp_path)
    args = [f"--out_dir={out}", "--init_from=resume", "--max_iters=4"]
    msg = run_inprocess(monkeypatch, args)
    assert msg == (f"data_dir 'data/slimpajama' does not exist, and {out / 'ckpt.pt'} trained on data_dir {was!r}, "
                   f"which is not here either (gone, or a path of another machine); resume with --data_dir set to "
                   f"the folder that holds that data here.")
    make_data(tmp_path / "data" / "bytes")
    msg = run_inprocess(monkeypatch, args)
    assert msg.endswith("resume with --data_dir=data/bytes, the folder of that name here, if it holds that data.")


def test_a_received_config_whose_absolute_data_dir_is_gone_names_the_folder_here(tmp_path, monkeypatch):
    # a colleague's config file (data_dir = "/home/alice/proj/data/bytes") received with the data as data/bytes:
    # told only to prepare it at /home/alice/..., which makes that path on this machine
    make_data(tmp_path / "data" / "bytes")
    monkeypatch.chdir(tmp_path)
    was = str(tmp_path / "alice" / "proj" / "data" / "bytes")
    msg = run_inprocess(monkeypatch, [f"--data_dir={was}", f"--out_dir={tmp_path / 'out'}"])
    assert msg.startswith(f"data_dir {was!r} does not exist (a path of another machine or folder?), but data/bytes "
                          f"here holds prepared data; set --data_dir=data/bytes if it is that data, or prepare it "
                          f"with `"), msg
    assert not (tmp_path / "out").exists() and not (tmp_path / "alice").exists()


def test_a_received_run_resumed_on_other_data_in_the_folder_named_says_so(finished, tmp_path):
    # the advice above, followed onto a folder of that name holding other data (other text of the same size): the
    # run went on on it with only "data_dir='data/bytes' (checkpoint: ...)" among the settings, as for a chosen one
    out = shutil.copytree(finished, tmp_path / "run")
    ckpt = torch.load(out / "ckpt.pt", weights_only=False)
    ckpt["config"]["data_dir"] = str(tmp_path / "alice" / "proj" / "data" / "bytes")
    ckpt["meta"] = {**ckpt["meta"], "settings": {"shards_sha1": "a"}}
    torch.save(ckpt, out / "ckpt.pt")
    data = tmp_path / "data" / "bytes"
    make_data(data)
    meta = json.loads((data / "meta.json").read_text())
    (data / "meta.json").write_text(json.dumps({**meta, "settings": {"shards_sha1": "b"}}))
    r = train(data, out, "--init_from=resume", "--max_iters=4")
    assert f"{data / 'meta.json'} records perhaps other data than {out / 'ckpt.pt'} was trained on" in r.stdout, \
        r.stdout


def test_a_run_received_with_its_checkpoint_renamed_is_told_the_rename(finished, tmp_path, monkeypatch):
    # "ckpt (1).pt" from a browser: sample.py named it, a resume said "does not exist ... use --init_from=scratch"
    out = tmp_path / "dl dir"
    out.mkdir()
    shutil.copy(finished / "ckpt.pt", out / "ckpt (1).pt")
    mv = f"(`mv '{out / 'ckpt (1).pt'}' '{out / 'ckpt.pt'}'`)"
    msg = run_inprocess(monkeypatch, [f"--out_dir={out}", "--init_from=resume", "--max_iters=4"])
    assert msg == f"init_from='resume' but {out / 'ckpt.pt'} does not exist; {out} holds ckpt (1).pt: if that is " \
        f"the checkpoint, rename it {mv}, then resume.", msg
    msg = run_inprocess(monkeypatch, [f"--init_from={out}", f"--out_dir={tmp_path / 'new'}", "--max_iters=4"])
    assert msg.endswith(f"is a folder without a ckpt.pt; {out} holds ckpt (1).pt: if that is the checkpoint, rename "
                        f"it {mv}."), msg


def test_a_relative_data_dir_prepared_in_the_project_but_run_from_elsewhere_is_named(tmp_path, monkeypatch):
    # `python ~/qkv-share/train.py ~/qkv-share/config/cpu_tiny.py` from ~ after the quickstart was told to prepare
    # data/shakespeare_bytes again in ~
    project = tmp_path / "project"
    make_data(project / "data" / "bytes")
    monkeypatch.setattr(checkpoint, "__file__", str(project / "checkpoint.py"))  # the repository, for the test
    monkeypatch.chdir(tmp_path)
    msg = run_inprocess(monkeypatch, ["--data_dir=data/bytes", f"--out_dir={tmp_path / 'out'}"])
    assert msg == (f"data_dir 'data/bytes' is a relative path, read from this folder ({tmp_path}), and has no "
                   f"train.bin here; the project's folder holds it prepared: run from {project} or set "
                   f"--data_dir={project / 'data' / 'bytes'}.")
    assert not (tmp_path / "out").exists()


def test_a_resume_or_conversion_on_another_tokenizers_data_is_refused(finished, tmp_path, monkeypatch, capsys):
    # a vocabulary that fits (bytes data for an r50k model) was trained on without a word, each embedding row now
    # meaning another token, and the checkpoint's meta then named the new tokenizer
    other = tmp_path / "other"
    make_data(other, tokenizer="chars")
    out = shutil.copytree(finished, tmp_path / "run")
    before = snapshot(out)
    msg = run_inprocess(monkeypatch, [f"--data_dir={other}", f"--out_dir={out}", "--init_from=resume", "--max_iters=4"])
    assert msg == f"{other / 'meta.json'} records tokenizer 'chars', and {out / 'ckpt.pt'} was trained on 'bytes' " \
                  f"ids; point --data_dir at data of that tokenizer, or train from scratch in another --out_dir."
    assert snapshot(out) == before
    assert capsys.readouterr().out == ""  # was "resuming ... with settings other than its run's: data_dir=...; its
    # weights and optimizer state go on under these", a resume announced before its refusal (pass 23)
    msg = run_inprocess(monkeypatch, [f"--data_dir={other}", f"--out_dir={tmp_path / 'conv'}", f"--init_from={out}"])
    assert msg.startswith(f"{other / 'meta.json'} records tokenizer 'chars', and {out} was trained on 'bytes' ids")
    assert not (tmp_path / "conv").exists()


def test_init_from_an_out_dir_without_a_checkpoint_says_so(tmp_path, monkeypatch, data_dir):
    # an out_dir is a documented form of init_from: one whose run saved nothing yet was "none of these" forms
    (tmp_path / "run").mkdir()
    msg = refusal(monkeypatch, tmp_path, [f"--init_from={tmp_path / 'run'}"], data_dir)
    assert msg == f"init_from={str(tmp_path / 'run')!r} is a folder without a ckpt.pt (a run that has saved none " \
                  f"yet, or no out_dir); point --init_from at an out_dir that holds one, or at the checkpoint file."
    (tmp_path / "run" / "ckpt.pt").mkdir()  # a folder by that name: it has one, only not a file
    msg = refusal(monkeypatch, tmp_path, [f"--init_from={tmp_path / 'run'}"], data_dir)
    assert msg == f"init_from={str(tmp_path / 'run')!r}: {tmp_path / 'run' / 'ckpt.pt'} is a folder, not a " \
                  f"checkpoint; move it out of the way, or point to another out_dir."


def test_a_finished_run_asked_with_other_settings_is_refused(finished, data_dir, tmp_path, monkeypatch):
    out = shutil.copytree(finished, tmp_path / "run")
    before = snapshot(out)
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=2",
                                      "--learning_rate=0.02", "--seed=7"])
    # finished: "continue it with --init_from=resume" met "nothing to train; raise --max_iters"
    assert msg == f"{out / 'ckpt.pt'} exists, from a run with other settings: seed=7 (checkpoint: 1337), " \
                  f"learning_rate=0.02 (checkpoint: 0.01); it is finished at iteration 2: to train on, raise " \
                  f"--max_iters and add --init_from=resume, or train this run into another --out_dir."
    assert snapshot(out) == before
    # an architecture field was told "continue it with --init_from=resume", which refuses it in turn
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=4", "--n_layer=3"])
    assert msg == f"{out / 'ckpt.pt'} exists, from a run with other settings: n_layer=3 (checkpoint: 2), " \
                  f"max_iters=4 (checkpoint: 2); continue " \
                  f"it with --init_from=resume (without --n_layer: a resume keeps the checkpoint's architecture), or " \
                  f"train this run into another --out_dir."
    # a config file's was told "without --n_layer", which no command line can do; GPT-2's shape, which a resume
    # does not bring, "without --block_size, --vocab_size, --n_layer, --n_head, --n_embd" (the seventeenth pass)
    config = tmp_path / "deeper.py"
    config.write_text("n_layer = 3\n")
    monkeypatch.setattr(sys, "argv", ["train.py", str(config), *(a for a in TINY if a != "--n_layer=2"),
                                      f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=4"])
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    with pytest.raises(SystemExit) as e:
        runpy.run_path(TRAIN_PY, run_name="__main__")
    assert str(e.value).endswith(f"continue it with --init_from=resume (with --n_layer=2 or the run's own config "
                                 f"file, since {config} sets n_layer otherwise: a resume keeps the checkpoint's "
                                 f"architecture), or train this run into another --out_dir."), str(e.value)
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=2",
                                      "--init_from=gpt2"])
    assert msg.endswith("it is finished at iteration 2: to train on, raise --max_iters and add --init_from=resume, "
                        "or train this run into another --out_dir."), msg
    assert snapshot(out) == before


def test_a_run_stopped_short_of_a_longer_resumes_end_is_not_called_finished(finished, data_dir, tmp_path,
                                                                              monkeypatch):
    # resumed with --max_iters=6 and stopped at iteration 2, the run's first command (--max_iters=2) was told "it is
    # finished at iteration 2: raise --max_iters", where it stopped at 2 of 6, and --max_iters=6 goes on exactly
    out = shutil.copytree(finished, tmp_path / "run")
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    ckpt["config"]["max_iters"] = 6
    torch.save(ckpt, out / "ckpt.pt")
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=2"])
    assert msg == f"{out / 'ckpt.pt'} exists, from a run with other settings: max_iters=2 (checkpoint: 6); it " \
                  f"stopped at iteration 2 of its run's 6: to go on, add --init_from=resume --max_iters=6, or train " \
                  f"this run into another --out_dir.", msg
    for edited in ("x", None):  # a max_iters edited by hand into no number: no traceback, no "of its run's"
        torch.save(dict(ckpt, config=dict(ckpt["config"], max_iters=edited)), out / "ckpt.pt")
        msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=2"])
        assert "it is finished at iteration 2: to train on, raise --max_iters" in msg, msg
    torch.save(ckpt, out / "ckpt.pt")
    train(data_dir, out, "--init_from=resume", "--max_iters=6")
    assert torch.load(out / "ckpt.pt", weights_only=True)["iter_num"] == 6


def test_a_run_stopped_short_of_a_larger_total_tokens_is_not_called_finished(finished, data_dir, tmp_path,
                                                                            monkeypatch):
    # the same, of total_tokens: resumed with a larger --total_tokens and stopped, the run's first command (its config
    # file's total_tokens) was told "it is finished at iteration 2: raise --total_tokens", where it stopped at 2 of 6
    out = shutil.copytree(finished, tmp_path / "run")
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    ckpt["config"].update(total_tokens=6 * 256, max_iters=600000)  # 4 x 32 x 2 tokens per iteration (TINY), and
    # the default max_iters that total_tokens leaves unread, as such a run saves it
    torch.save(ckpt, out / "ckpt.pt")
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--total_tokens=512"])
    assert msg == f"{out / 'ckpt.pt'} exists, from a run with other settings: total_tokens=512 (checkpoint: " \
                  f"1536); it stopped at iteration 2 of its run's 6: to go on, add --init_from=resume " \
                  f"--total_tokens=1536, or train this run into another --out_dir.", msg
    train(data_dir, out, "--init_from=resume", "--total_tokens=1536")
    assert torch.load(out / "ckpt.pt", weights_only=True)["iter_num"] == 6


def test_a_resumed_run_keeps_how_it_started(finished, data_dir, tmp_path, monkeypatch, capsys):
    # a resume saved init_from="resume", which matches any command: a scratch run asked into a converted run's
    # out_dir (or a conversion into a scratch run's) once it had been resumed was told "holds this run: nothing to
    # do"; and it saved the command's convert_method as the conversion's, said as a setting it "goes on under"
    out = tmp_path / "conv"
    train(data_dir, out, f"--init_from={finished}", "--convert_method=split", "--max_iters=2")
    r = train(data_dir, out, "--init_from=resume", "--max_iters=4")
    assert "settings other than its run's" not in r.stdout, r.stdout
    before = snapshot(out)
    conversion = [f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=4", f"--init_from={finished}"]
    msg = run_inprocess(monkeypatch, [*conversion[:3], "--init_from=scratch"])
    assert msg == f"{out / 'ckpt.pt'} exists, from a run with other settings: init_from='scratch' (checkpoint: " \
                  f"{str(finished)!r}); it is finished at iteration 4: to train on, raise --max_iters and add " \
                  f"--init_from=resume, or train this run into another --out_dir."
    assert "convert_method='lstsq' (checkpoint: 'split')" in run_inprocess(monkeypatch, conversion)
    # the command that started it, and the resume itself, are still this run
    for args in ([*conversion, "--convert_method=split"], [*conversion[:3], "--init_from=resume"]):
        assert run_inprocess(monkeypatch, args) == "0"
        assert "finished at iteration 4: nothing to do" in capsys.readouterr().out
    assert snapshot(out) == before


def test_a_conversion_from_a_folder_or_its_ckpt_is_the_same_run(finished, data_dir, tmp_path, monkeypatch, capsys):
    # pass 33: a conversion made with --init_from=run/ckpt.pt, asked again as --init_from=run (the README's "its
    # out_dir"), was "a run with other settings: init_from='run' (checkpoint: 'run/ckpt.pt')"
    out = tmp_path / "conv"
    train(data_dir, out, f"--init_from={finished / 'ckpt.pt'}", "--max_iters=2")
    for spelled in (finished, f"{finished}/"):
        args = [f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=2", f"--init_from={spelled}"]
        assert run_inprocess(monkeypatch, args) == "0"
        assert "finished at iteration 2: nothing to do" in capsys.readouterr().out


@pytest.mark.parametrize("again", [False, True])
def test_a_conversion_asked_again_after_its_source_changed_is_not_this_run(again, finished, data_dir, tmp_path,
                                                                           monkeypatch, capsys):
    # pass 30: the conversion's command, run again once its source had trained on, said "holds this run, finished:
    # nothing to do", exit 0, and sample.py then read the conversion of the older weights; pass 31: the same where
    # the source was deleted and trained again from scratch (another seed) to the same iteration
    src, out = shutil.copytree(finished, tmp_path / "src"), tmp_path / "conv"
    conversion = [f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=2", f"--init_from={src}"]
    train(data_dir, out, *conversion[2:])
    then = read_log(out)[0]["conversion"]
    assert then["from_iter"] == 2
    assert run_inprocess(monkeypatch, conversion) == "0"  # the same source: nothing to do
    assert "finished at iteration 2: nothing to do" in capsys.readouterr().out
    if again:
        shutil.rmtree(src)
        train(data_dir, src, "--max_iters=2", "--seed=9")
        now = torch.load(src / "ckpt.pt", weights_only=True)["best_val_loss"]
        how = (f"as it was at iteration 2 with best_val_loss {then['from_best']:.4f}, and {src / 'ckpt.pt'} has been "
               f"trained again since (best_val_loss {now:.4f})")
    else:
        train(data_dir, src, "--init_from=resume", "--max_iters=4")
        how = f"as it was at iteration 2, and {src / 'ckpt.pt'} has trained on since (iteration 4)"
    before = snapshot(out)
    assert run_inprocess(monkeypatch, conversion) == (
        f"{out / 'ckpt.pt'} holds a finished conversion of {src} {how}: to convert it as it is now, give another "
        f"--out_dir, or delete {out} to convert it there again.")
    assert snapshot(out) == before


def test_a_run_resumed_before_its_start_was_kept_is_read_from_its_log(finished, data_dir, tmp_path, monkeypatch,
                                                                      capsys):
    # a resume before 0f1ca57 (a converted run resumed at 0ce294a) saved init_from='resume' and its own
    # convert_method: the conversion's command was told "other settings: convert_method='split' (checkpoint:
    # 'lstsq')", and a scratch command "holds this run: nothing to do"; log.jsonl's first line says how it started
    out, qkv = tmp_path / "conv", tmp_path / "qkv"
    train(data_dir, qkv, "--proj=qkv", "--max_iters=2")
    train(data_dir, out, f"--init_from={qkv}", "--convert_method=split", "--max_iters=2")  # V tied to K by split
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    ckpt["config"].update(init_from="resume", convert_method="lstsq")  # as that resume saved it
    torch.save(ckpt, out / "ckpt.pt")
    before = snapshot(out)
    conversion = [f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=2", f"--init_from={qkv}"]
    assert run_inprocess(monkeypatch, [*conversion, "--convert_method=split"]) == "0"
    assert "finished at iteration 2: nothing to do" in capsys.readouterr().out
    msg = run_inprocess(monkeypatch, conversion[:3])
    assert msg.startswith(f"{out / 'ckpt.pt'} exists, from a run with other settings: init_from='scratch' "
                          f"(checkpoint: {str(qkv)!r})"), msg
    assert snapshot(out) == before
    scratch = shutil.copytree(finished, tmp_path / "scratch")  # a scratch run resumed then: still a scratch run
    ckpt = torch.load(scratch / "ckpt.pt", weights_only=True)
    ckpt["config"]["init_from"] = "resume"
    torch.save(ckpt, scratch / "ckpt.pt")
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={scratch}", "--max_iters=2",
                                      f"--init_from={finished}"])
    assert msg.startswith(f"{scratch / 'ckpt.pt'} exists, from a run with other settings: init_from="), msg


@pytest.mark.parametrize("args, error", [
    (["--min_lr=0.5"], r"^min_lr \(0\.5\) is above learning_rate \(0\.01\), so the cosine would raise the rate"),
    (["--warmup_iters=20", "--lr_decay_iters=10"], r"^lr_decay_iters \(10\) ends the cosine before warmup_iters \(20\)"),
    # equal: the rate went from the warmup's last step straight to min_lr
    (["--warmup_iters=20", "--lr_decay_iters=20"], r"^lr_decay_iters \(20\) ends the cosine where warmup_iters \(20\)"),
    (["--causal=False"], r"^causal=False lets every position see the token it is trained to predict"),
    # NaN at the first evaluation, with "Lower --learning_rate" as the fix: the decay term was at fault
    (["--weight_decay=100"], r"^weight_decay \(100\) times learning_rate \(0\.01\) is 1, and AdamW multiplies the "
                             r"weights by 1 minus that every step, which zeroes or flips them; lower --learning_rate "
                             r"or --weight_decay \(0\.1 is usual\) until it is below 1\.$"),
])
def test_a_schedule_or_model_that_trains_wrong_is_refused_before_any_work(args, error, tmp_path, data_dir,
                                                                          monkeypatch):
    # each trained to the end with exit 0: a rising cosine, a jump from warmup to min_lr, a model that sees its target
    assert re.search(error, refusal(monkeypatch, tmp_path, ["--max_iters=30", *args], data_dir))


def test_a_run_that_ends_inside_its_warmup_is_only_short(tmp_path, data_dir):
    r = train(data_dir, tmp_path / "out", "--max_iters=2", "--warmup_iters=50", "--decay_lr=True")
    assert (tmp_path / "out" / "ckpt.pt").exists() and r.stderr == ""


def test_resume_under_other_training_settings_says_what_changed(finished, data_dir, tmp_path):
    out = shutil.copytree(finished, tmp_path / "run")
    r = train(data_dir, out, "--init_from=resume", "--max_iters=4", "--learning_rate=0.02", "--seed=7")
    assert r.stdout.splitlines()[0] == f"resuming {out / 'ckpt.pt'} with settings other than its run's: seed=7 " \
        f"(checkpoint: 1337), learning_rate=0.02 (checkpoint: 0.01); its weights and optimizer state go on under these."
    r = train(data_dir, out, "--init_from=resume", "--max_iters=6", "--learning_rate=0.02", "--seed=7")
    assert "resuming" not in r.stdout  # the checkpoint now holds these settings; a longer run is not worth a line


def test_a_resume_with_dropout_under_other_processes_or_compile_says_it_draws_other_masks(data_dir, tmp_path):
    # each process draws its dropout masks from its own stream, compiled code its own way: a checkpoint of 2
    # processes resumed by 1 (or of compile=True resumed eager) went on off the uninterrupted run's losses by 1e-3
    # from its first step, where the docs promised them to 1e-6, without a word
    out = tmp_path / "out"
    train(data_dir, out, "--max_iters=2", "--dropout=0.1")
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    ckpt["rng"] = ckpt["rng"] * 2  # as two processes save it
    ckpt["config"]["compile"] = True
    torch.save(ckpt, out / "ckpt.pt")
    r = train(data_dir, out, "--init_from=resume", "--max_iters=4", "--dropout=0.1")
    assert r.stdout.splitlines()[0] == "dropout=0.1 draws its masks from each process's own random stream, which 1 " \
        "process (checkpoint: 2) and compile=False (checkpoint: True) change: the resumed run is another draw of the " \
        "same training, not the uninterrupted run step for step."
    r = train(data_dir, out, "--init_from=resume", "--max_iters=6", "--dropout=0.1")  # its own checkpoint now
    assert "masks" not in r.stdout


def test_a_resume_without_dropout_under_other_processes_draws_nothing(finished, data_dir, tmp_path):
    out = shutil.copytree(finished, tmp_path / "run")
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    ckpt["rng"] = ckpt["rng"] * 2
    torch.save(ckpt, out / "ckpt.pt")
    assert "masks" not in train(data_dir, out, "--init_from=resume", "--max_iters=4").stdout


def test_a_resume_of_a_checkpoint_whose_config_lacks_the_model_fields_names_its_model_not_the_defaults(
        finished, data_dir, tmp_path):
    # a config without the model's fields (another program's checkpoint): "n_layer=2 (checkpoint: 12)" where the
    # checkpoint's model_args build 2 layers (the twentieth pass)
    out = shutil.copytree(finished, tmp_path / "run")
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    ckpt["config"] = {k: v for k, v in ckpt["config"].items() if k not in ckpt["model_args"]}
    torch.save(ckpt, out / "ckpt.pt")
    r = train(data_dir, out, "--init_from=resume", "--max_iters=4", "--learning_rate=0.02")
    assert r.stdout.splitlines()[0] == f"resuming {out / 'ckpt.pt'} with settings other than its run's: " \
        f"learning_rate=0.02 (checkpoint: 0.01); its weights and optimizer state go on under these."


def test_a_resume_on_data_prepared_again_in_the_same_data_dir_says_so(tmp_path):
    # the same --data_dir, prepared again from other text: the run went on on other batches without a word
    data = tmp_path / "data"
    make_data(data)
    train(data, tmp_path / "out", "--max_iters=2")
    np.fromfile(data / "train.bin", dtype=np.uint16)[:15_000].tofile(data / "train.bin")
    meta = json.loads((data / "meta.json").read_text())
    (data / "meta.json").write_text(json.dumps({**meta, "train_tokens": 15_000}))
    r = train(data, tmp_path / "out", "--init_from=resume", "--max_iters=4")
    assert r.stdout.splitlines()[0] == f"{data / 'meta.json'} records other data than {tmp_path / 'out' / 'ckpt.pt'} " \
        f"was trained on: train_tokens 15000 (checkpoint: 20000); the resumed run trains and evaluates on the data " \
        f"there now, and measures its best validation loss again from here."
    # the same counts from input files of another name (the same text copied as in.txt: maybe the very tokens) were
    # "other data" for certain
    meta = {**meta, "train_tokens": 15_000}
    (data / "meta.json").write_text(json.dumps({**meta, "settings": {"shards_sha1": "a"}}))
    train(data, tmp_path / "out2", "--max_iters=2")
    (data / "meta.json").write_text(json.dumps({**meta, "settings": {"shards_sha1": "b"}}))
    r = train(data, tmp_path / "out2", "--init_from=resume", "--max_iters=4")
    assert f"{data / 'meta.json'} records perhaps other data than {tmp_path / 'out2' / 'ckpt.pt'} was trained on: " \
        f"input files of other names, sizes or modification times than the checkpoint's;" in r.stdout, r.stdout


def test_a_resume_on_other_data_measures_its_best_validation_loss_again(tmp_path):
    # pass 24 (third round): the data prepared again from other text, a resume with always_save_checkpoint=False
    # compared the new text's validation loss with the old text's best, and left better checkpoints unsaved
    data = tmp_path / "data"
    make_data(data)
    train(data, tmp_path / "out", "--max_iters=4", "--always_save_checkpoint=False")
    np.random.default_rng(1).integers(100, 256, size=3_000).astype(np.uint16).tofile(data / "val.bin")
    meta = json.loads((data / "meta.json").read_text())
    (data / "meta.json").write_text(json.dumps({**meta, "val_tokens": 3_000}))
    r = train(data, tmp_path / "out", "--init_from=resume", "--max_iters=8", "--always_save_checkpoint=False")
    assert "measures its best validation loss again from here" in r.stdout
    # the first at 4 is the old data's, the one the checkpoint was saved after; the resume's own follows it
    vals = [e["val_loss"] for e in read_log(tmp_path / "out") if "val_loss" in e and e["iter"] >= 4][1:]
    assert torch.load(tmp_path / "out" / "ckpt.pt", weights_only=True)["best_val_loss"] == min(vals)


def test_a_finished_run_asked_again_on_data_prepared_again_is_not_this_run(tmp_path, monkeypatch):
    # the quickstart after `cp mytext.txt input.txt` and a new data/shakespeare_bytes: "holds this run, finished:
    # nothing to do", exit 0, and sample.py then read the model of the old text
    data, out = tmp_path / "data", tmp_path / "out"
    make_data(data)
    train(data, out, "--max_iters=2")
    np.fromfile(data / "train.bin", dtype=np.uint16)[:15_000].tofile(data / "train.bin")
    meta = json.loads((data / "meta.json").read_text())
    (data / "meta.json").write_text(json.dumps({**meta, "train_tokens": 15_000}))
    before = snapshot(out)
    msg = run_inprocess(monkeypatch, [f"--data_dir={data}", f"--out_dir={out}", "--max_iters=2"])
    assert msg == f"{out / 'ckpt.pt'} holds a finished run of these settings, trained on other data than " \
                  f"{data / 'meta.json'} records now (train_tokens 15000 (checkpoint: 20000)): {data} was prepared " \
                  f"again since; train this run into another --out_dir, or delete {out} to train it there again."
    assert snapshot(out) == before
    # trained into its own data folder (out_dir = data_dir): "delete DATA" removed the data with the run
    train(data, data, "--max_iters=2")
    meta = json.loads((data / "meta.json").read_text())
    (data / "meta.json").write_text(json.dumps({**meta, "train_tokens": 14_000}))
    np.fromfile(data / "train.bin", dtype=np.uint16)[:14_000].tofile(data / "train.bin")
    msg = run_inprocess(monkeypatch, [f"--data_dir={data}", f"--out_dir={data}", "--max_iters=2"])
    assert msg.endswith(f"or delete {data / 'ckpt.pt'} and {data / 'log.jsonl'} (not {data}: it holds the prepared "
                        f"data too) to train it there again.")


def test_the_same_data_dir_spelled_another_way_is_the_same_run(finished, data_dir, tmp_path, monkeypatch, capsys):
    # data/x/, ./data/x or the absolute path of the folder a run was trained on: "a run with other settings:
    # data_dir='data/x/' (checkpoint: 'data/x')", asked again (the twelfth pass)
    out = shutil.copytree(finished, tmp_path / "run")
    monkeypatch.chdir(data_dir.parent)
    for spelled in (f"{data_dir}/", f"./{data_dir.name}", f"{data_dir.name}/."):
        assert run_inprocess(monkeypatch, [f"--data_dir={spelled}", f"--out_dir={out}", "--max_iters=2"]) == "0"
        assert "finished at iteration 2: nothing to do" in capsys.readouterr().out


def test_a_relative_data_dir_read_from_another_folder_is_said_before_deleting_the_run(finished, tmp_path, monkeypatch):
    # run from another folder with a data_dir of that name: "was prepared again since; ... or delete OUT to train it
    # there again", which removed a finished run that only needed running from its own folder
    out = shutil.copytree(finished, tmp_path / "run")
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    ckpt["config"]["data_dir"] = "data"  # trained from another folder, on its data/
    torch.save(ckpt, out / "ckpt.pt")
    make_data(tmp_path / "elsewhere" / "data")
    meta = json.loads((tmp_path / "elsewhere" / "data" / "meta.json").read_text())
    (tmp_path / "elsewhere" / "data" / "meta.json").write_text(json.dumps({**meta, "val_tokens": 3_999}))
    monkeypatch.chdir(tmp_path / "elsewhere")
    msg = run_inprocess(monkeypatch, ["--data_dir=data", f"--out_dir={out}", "--max_iters=2"])
    assert f"data was prepared again since, or the run was trained from another folder than this one " \
           f"({tmp_path / 'elsewhere'}), whose data it read: if so, run it there; train this run" in msg, msg


def test_data_prepared_again_from_other_text_of_the_same_length_is_not_this_run(tmp_path, monkeypatch):
    # the same token counts (an edited input.txt, another text of its size): "nothing to do", exit 0, and a resume
    # went on on the new text without a word; prepare's fingerprint of its input files tells them apart
    data, out = tmp_path / "data", tmp_path / "out"
    make_data(data)
    meta = json.loads((data / "meta.json").read_text())
    (data / "meta.json").write_text(json.dumps({**meta, "settings": {"shards_sha1": "a"}}))
    train(data, out, "--max_iters=2")
    (data / "meta.json").write_text(json.dumps({**meta, "settings": {"shards_sha1": "b"}}))
    msg = run_inprocess(monkeypatch, [f"--data_dir={data}", f"--out_dir={out}", "--max_iters=2"])
    assert msg == f"{out / 'ckpt.pt'} holds a finished run of these settings, trained on other data than " \
                  f"{data / 'meta.json'} records now (input files of other names, sizes or modification times than " \
                  f"the checkpoint's): {data} was prepared again since; train this run into another --out_dir, or " \
                  f"delete {out} to train it there again."


def test_data_prepared_again_from_the_same_files_as_a_checkpoint_from_before_modification_times(tmp_path, monkeypatch,
                                                                                                 capsys):
    # prepare's fingerprint held names and sizes before ea7da02: the same input prepared again since (the bins byte
    # for byte the same) was "other data ... input files of other names, sizes or modification times", and the
    # finished run's fix was to delete it
    data, out, text = tmp_path / "data", tmp_path / "out", tmp_path / "in.txt"
    make_data(data)
    text.write_text("the input file, of some size\n")
    older = hashlib.sha1(json.dumps([[str(text), "mixed", text.stat().st_size]]).encode()).hexdigest()
    meta = {**json.loads((data / "meta.json").read_text()), "source": "local files", "train_shards": [str(text)],
            "val_shards": [str(text)], "val_fraction": 0.1}
    (data / "meta.json").write_text(json.dumps({**meta, "settings": {"shards_sha1": older}}))
    train(data, out, "--max_iters=2")
    (data / "meta.json").write_text(json.dumps({**meta, "settings": {"shards_sha1": "today's, with the times"}}))
    assert run_inprocess(monkeypatch, [f"--data_dir={data}", f"--out_dir={out}", "--max_iters=2"]) == "0"
    assert "finished at iteration 2: nothing to do" in capsys.readouterr().out
    text.write_text("the input file, of another size\n")  # other files than the checkpoint's: said, as before
    msg = run_inprocess(monkeypatch, [f"--data_dir={data}", f"--out_dir={out}", "--max_iters=2"])
    assert "(input files of other names, sizes or modification times than the checkpoint's)" in msg, msg


def test_eval_tokens_beyond_the_validation_split_score_it_once(data_dir, tmp_path):
    # the windows wrapped round val.bin (4,000 tokens here) and scored its tokens up to 25 times, without a word
    r = train(data_dir, tmp_path / "out", "--max_iters=0", "--eval_tokens=100000")
    assert r.stdout.splitlines()[0] == f"eval_tokens=100,000 is more than {data_dir}/val.bin holds (4,000 tokens): " \
                                       f"each evaluation scores its first 3,968 once."
    whole = train(data_dir, tmp_path / "whole", "--max_iters=0", "--eval_tokens=3968")
    assert "is more than" not in whole.stdout and read_log(tmp_path / "out") == read_log(tmp_path / "whole")


def test_eval_tokens_below_one_batch_is_said(data_dir, tmp_path):
    # --help says "validation tokens per evaluation": --eval_tokens=100 scored a whole batch (4 x 32 = 128 here, 2,048
    # in config/cpu_tiny.py) without a word
    r = train(data_dir, tmp_path / "out", "--max_iters=0", "--eval_tokens=100", "--gradient_accumulation_steps=1")
    assert r.stdout.splitlines()[0] == "eval_tokens=100 is less than one validation batch (128 tokens: batch_size x " \
                                       "block_size x processes): each evaluation scores 128."
    assert "validation batch" not in train(data_dir, tmp_path / "one", "--max_iters=0", "--eval_tokens=128").stdout


def test_a_validation_split_shorter_than_one_batch_scores_each_window_once(data_dir, tmp_path):
    # 200 windows of 32 per batch from val.bin's 124 (4,000 tokens): the batch wrapped round and scored 76 of them
    # twice, while the line said "scores its first 6,400 once"
    r = train(data_dir, tmp_path / "out", "--max_iters=0", "--eval_tokens=100000", "--batch_size=200")
    assert r.stdout.splitlines()[0] == f"eval_tokens=100,000 is more than {data_dir}/val.bin holds (4,000 tokens): " \
                                       f"each evaluation scores its first 3,968 once."
    train(data_dir, tmp_path / "whole", "--max_iters=0", "--eval_tokens=3968", "--batch_size=124")
    assert read_log(tmp_path / "out") == read_log(tmp_path / "whole")


def test_a_conversion_calibrated_on_no_more_tokens_than_lstsq_fits_is_refused(data_dir, tmp_path, monkeypatch):
    # one batch of 1 x 32 tokens for a head_dim of 32 (and an offset): any weights fit them exactly, and the log said
    # "unexplained V variance per layer: 0.000", a perfect conversion
    train(data_dir, tmp_path / "src", "--max_iters=0", "--proj=qkv", "--n_head=1")
    msg = refusal(monkeypatch, tmp_path, [f"--init_from={tmp_path / 'src'}", "--n_head=1", "--calib_batches=1",
                                          "--batch_size=1", "--max_iters=0"], data_dir)
    assert msg == ("calib_batches=1 gives 32 calibration tokens (1 batch x 32 block each), and convert_method='lstsq' "
                   "fits 33 numbers per dimension of each key head, which so few tokens fit exactly whatever the "
                   "weights; set --calib_batches=2 or more.")
    train(data_dir, tmp_path / "out", f"--init_from={tmp_path / 'src'}", "--n_head=1", "--calib_batches=2",
          "--batch_size=1", "--max_iters=0")


def test_a_conversion_calibrated_on_few_distinct_windows_is_refused(data_dir, tmp_path, monkeypatch):
    # a train.bin of block_size + 1 tokens: every calibration window is its one window, 32 tokens for lstsq's 33
    # unknowns, fitted exactly ("unexplained V variance per layer: 0.000"), while the count of all windows (64) passed
    # the check above (the seventeenth pass)
    train(data_dir, tmp_path / "src", "--max_iters=0", "--proj=qkv", "--n_head=1")
    small = tmp_path / "small"
    shutil.copytree(data_dir, small)
    np.fromfile(small / "train.bin", dtype=np.uint16)[:33].tofile(small / "train.bin")
    meta = json.loads((small / "meta.json").read_text())
    (small / "meta.json").write_text(json.dumps({**meta, "train_tokens": 33}))
    msg = refusal(monkeypatch, tmp_path, [f"--init_from={tmp_path / 'src'}", "--n_head=1", "--calib_batches=2",
                                          "--batch_size=1", "--max_iters=0"], small)
    assert msg == (f"the 2 calibration windows from {small}/train.bin (33 tokens) are only 1 distinct, 32 tokens, and "
                   f"convert_method='lstsq' fits 33 numbers per dimension of each key head, which so few tokens fit "
                   f"exactly whatever the weights; prepare more training data, or set --convert_method=k.")
    # one batch of its one window: told "set --calib_batches=2", which drew the same window twice and met the
    # refusal above; the count of all calibration tokens now asks only what train.bin can give
    msg = refusal(monkeypatch, tmp_path, [f"--init_from={tmp_path / 'src'}", "--n_head=1", "--calib_batches=1",
                                          "--batch_size=1", "--max_iters=0"], small)
    assert msg == (f"calib_batches=1 gives 32 calibration tokens (1 batch x 32 block each), and convert_method='lstsq' "
                   f"fits 33 numbers per dimension of each key head, which so few tokens fit exactly whatever the "
                   f"weights; prepare more training data ({small}/train.bin holds 33 tokens, 1 distinct window), or "
                   f"set --convert_method=k.")


def test_a_conversion_whose_layer_inputs_span_few_directions_says_so(data_dir, tmp_path):
    # the test data holds 17 distinct tokens: a model without a position table sees 17 distinct inputs in its first
    # layer, whatever the windows, and lstsq's 33 unknowns fit them exactly ("unexplained V variance 0.000"): true
    # on this data, which gives that layer no other input, so said, not refused
    train(data_dir, tmp_path / "src", "--max_iters=0", "--proj=qkv", "--n_head=1", "--pos_emb=rope")
    r = train(data_dir, tmp_path / "dst", f"--init_from={tmp_path / 'src'}", "--n_head=1", "--pos_emb=rope",
              "--max_iters=0")
    assert (" (layer 0's calibration inputs span only 17 directions, no more than the 33 numbers lstsq fits per "
            "dimension of each key head: exact on them whatever the weights, and no measure for inputs unlike them)"
            in r.stdout)


def test_a_conversion_on_repeated_windows_says_how_many_are_distinct(data_dir, tmp_path):
    # a train.bin of block_size + 3 tokens holds 3 windows: 256 tokens of them, drawn 8 times, were "256 training
    # tokens", fitted on as many as a train.bin of 8 distinct windows gives
    train(data_dir, tmp_path / "src", "--max_iters=0", "--proj=qkv")
    small = tmp_path / "small"
    shutil.copytree(data_dir, small)
    np.fromfile(small / "train.bin", dtype=np.uint16)[:35].tofile(small / "train.bin")
    meta = json.loads((small / "meta.json").read_text())
    (small / "meta.json").write_text(json.dumps({**meta, "train_tokens": 35}))
    r = train(small, tmp_path / "out", f"--init_from={tmp_path / 'src'}", "--max_iters=0", "--calib_batches=2")
    assert "V tied to K by lstsq fitted on 256 training tokens (calib_batches=2, 3 distinct windows of 8); " \
           "unexplained V variance" in r.stdout.splitlines()[0]
    r = train(data_dir, tmp_path / "out2", f"--init_from={tmp_path / 'src'}", "--max_iters=0", "--calib_batches=2")
    assert "fitted on 256 training tokens (calib_batches=2); unexplained" in r.stdout.splitlines()[0]


def test_a_longer_resume_says_that_its_cosine_raises_the_rate_again(data_dir, tmp_path):
    # the finished run's own advice (raise --max_iters, add --init_from=resume) stretched the cosine to the new end:
    # the rate went from min_lr back up without a word
    out = tmp_path / "out"
    train(data_dir, out, "--max_iters=4")
    r = train(data_dir, out, "--init_from=resume", "--max_iters=8", "--eval_interval=8")
    assert r.stdout.splitlines()[0] == "the cosine now ends at iteration 8 (lr_decay_iters=0: max_iters), not 4: the " \
                                       "rate at iteration 4 rises from 1.00e-03 to 7.75e-03; set --lr_decay_iters=4 " \
                                       "to keep the checkpoint's decay."
    assert [e["lr"] for e in read_log(out) if e["iter"] == 4 and "lr" in e] == [pytest.approx(7.75e-3, rel=1e-3)]
    r = train(data_dir, out, "--init_from=resume", "--max_iters=12", "--eval_interval=8", "--lr_decay_iters=8")
    assert "cosine" not in r.stdout and [e["lr"] for e in read_log(out) if e["iter"] == 8 and "lr" in e] == [MIN_LR]


def stopped_at_4_of_12(data_dir, out):
    """A run of 4 iterations whose checkpoint says it was asked for 12: stopped short, as a kill leaves it."""
    train(data_dir, out, "--max_iters=4")
    ckpt = torch.load(out / "ckpt.pt", weights_only=False)
    ckpt["config"]["max_iters"] = 12
    torch.save(ckpt, out / "ckpt.pt")
    return out


def test_a_shorter_resume_says_that_its_cosine_lowers_the_rate(data_dir, tmp_path):
    # a run stopped at 4 of 12, resumed with --max_iters=6: the cosine squeezed to the new end, the rate at once
    # lower than the checkpoint's schedule gave, without a word (the longer run's note only; pass 23)
    out = stopped_at_4_of_12(data_dir, tmp_path / "out")
    r = train(data_dir, out, "--init_from=resume", "--max_iters=6", "--eval_interval=8")
    assert r.stdout.splitlines()[0] == "the cosine now ends at iteration 6 (lr_decay_iters=0: max_iters), not 12: " \
                                       "the rate at iteration 4 falls from 9.14e-03 to 5.50e-03; set " \
                                       "--lr_decay_iters=12 to keep the checkpoint's decay."


def test_a_longer_resume_says_the_rate_its_checkpoint_trained_at_not_this_commands(data_dir, tmp_path):
    # the note's "from" was this command's schedule under the old end: a resume under another learning_rate said
    # "rises from 1.82e-02" of a run at 9.14e-03, and one of a decay_lr=False run (a constant 1e-2) "rises from
    # 1.00e-03", with --lr_decay_iters to keep "the checkpoint's decay" it never had
    out = stopped_at_4_of_12(data_dir, tmp_path / "out")
    r = train(data_dir, out, "--init_from=resume", "--max_iters=16", "--eval_interval=8", f"--learning_rate={2 * LR}")
    assert r.stdout.splitlines()[1] == "the cosine now ends at iteration 16 (lr_decay_iters=0: max_iters), not 12: " \
                                       "the rate at iteration 4 rises from 9.14e-03 to 1.91e-02; set " \
                                       "--lr_decay_iters=12 to keep the checkpoint's decay."
    out = tmp_path / "constant"
    train(data_dir, out, "--max_iters=4", "--decay_lr=False")
    r = train(data_dir, out, "--init_from=resume", "--max_iters=8", "--eval_interval=8")
    assert "decay_lr=True (checkpoint: False)" in r.stdout and "cosine" not in r.stdout


def test_a_longer_resume_of_a_run_inside_its_warmup_under_a_shorter_warmup_advises_the_warmup(data_dir, tmp_path):
    # a run of 4 iterations inside a warmup of 8, resumed to 8 under a warmup of 2 (another config file): the note
    # told --lr_decay_iters=4 "to keep the checkpoint's decay", which put the rate at min_lr; it had no decay yet
    out = tmp_path / "out"
    train(data_dir, out, "--max_iters=4", "--warmup_iters=8")
    shutil.copytree(out, tmp_path / "copy")
    r = train(data_dir, out, "--init_from=resume", "--max_iters=8", "--eval_interval=8")
    assert r.stdout.splitlines()[1] == "the cosine now ends at iteration 8 (lr_decay_iters=0: max_iters), not 4: the " \
                                       "rate at iteration 4 rises from 5.56e-03 to 7.75e-03; set --warmup_iters=8 " \
                                       "to keep the checkpoint's warmup, which it was still in."
    train(data_dir, tmp_path / "copy", "--init_from=resume", "--max_iters=8", "--eval_interval=8", "--warmup_iters=8")
    assert [e["lr"] for e in read_log(tmp_path / "copy") if e["iter"] == 4 and "lr" in e] == \
        [pytest.approx(LR * 5 / 9)]


def test_a_longer_resume_by_total_tokens_says_that_its_cosine_raises_the_rate_again(data_dir, tmp_path):
    # the same under --total_tokens (the paper's configs), whose finished run advises raising it: the line was left
    # out, its checkpoint's config keeping the max_iters that total_tokens left unread
    out, per_iter = tmp_path / "out", 4 * 32 * 2  # batch x block x accumulation
    train(data_dir, out, f"--total_tokens={4 * per_iter}")
    r = train(data_dir, out, "--init_from=resume", f"--total_tokens={8 * per_iter}", "--eval_interval=8")
    assert r.stdout.splitlines()[0] == "the cosine now ends at iteration 8 (lr_decay_iters=0: max_iters, set by " \
                                       "total_tokens), not 4: the rate at iteration 4 rises from 1.00e-03 to " \
                                       "7.75e-03; set --lr_decay_iters=4 to keep the checkpoint's decay."


def test_a_diverging_run_with_a_finite_validation_loss_past_exp_range_logs_an_infinite_perplexity(data_dir, tmp_path):
    # a validation loss above 709.78 is finite, so the run goes on: math.exp(val_loss) raised OverflowError mid-run
    out = tmp_path / "out"
    r = train(data_dir, out, "--max_iters=4", "--learning_rate=50", "--min_lr=0", "--warmup_iters=0", "--grad_clip=0",
              "--weight_decay=0")
    vals = [e for e in read_log(out) if "val_loss" in e]
    assert vals[-1]["val_loss"] > 710 and vals[-1]["val_ppl"] is None
    assert f"iter 4: val loss {vals[-1]['val_loss']:.4f}, val perplexity inf" in r.stdout
    # strict JSON: json.dumps wrote the perplexity as the bare word Infinity, which JSON.parse and pandas refused
    for line in (out / "log.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in log.jsonl"))


def test_a_resume_under_another_eval_tokens_measures_its_best_again(data_dir, tmp_path):
    # the checkpoint's best_val_loss was of 512 tokens; compared with losses of 128, always_save_checkpoint=False
    # chose what to save between two measures, and the checkpoint kept a best of another measure, without a word
    out = tmp_path / "out"
    train(data_dir, out, "--max_iters=4")
    r = train(data_dir, out, "--init_from=resume", "--max_iters=8", "--eval_tokens=128", "--lr_decay_iters=4",
              "--always_save_checkpoint=False")
    line = next(x for x in r.stdout.splitlines() if x.startswith("evaluations"))
    assert re.fullmatch(rf"evaluations now score the first 128 validation tokens, not the 512 of {re.escape(str(out))}"
                        r"/ckpt.pt's best_val_loss \d\.\d{4}: the best is measured again from here, and log.jsonl's "
                        r"validation curve changes measure at iteration 4\.", line)
    vals = [e["val_loss"] for e in read_log(out) if "val_loss" in e and e["iter"] >= 4]  # of 128 tokens each
    assert torch.load(out / "ckpt.pt", weights_only=True)["best_val_loss"] == min(vals)
    r = train(data_dir, out, "--init_from=resume", "--max_iters=12", "--eval_tokens=128", "--lr_decay_iters=4")
    assert "evaluations now score" not in r.stdout


def test_a_resume_under_other_adamw_settings_trains_with_them(finished, data_dir, tmp_path):
    out = shutil.copytree(finished, tmp_path / "run")
    r = train(data_dir, out, "--init_from=resume", "--max_iters=4", "--beta2=0.5", "--weight_decay=0.01")
    assert "weight_decay=0.01 (checkpoint: 0.1), beta2=0.5 (checkpoint: 0.95); its weights" in r.stdout
    groups = torch.load(out / "ckpt.pt", weights_only=True)["optimizer"]["param_groups"]
    # were the checkpoint's (0.9, 0.95) and 0.1, which loading the optimizer state had put back: the line said
    # "go on under these", and the checkpoint's config recorded them, but AdamW kept the old ones
    assert [(tuple(g["betas"]), g["weight_decay"]) for g in groups] == [((0.9, 0.5), 0.01), ((0.9, 0.5), 0.0)]


def test_a_token_beyond_the_vocabulary_in_a_batch_is_one_sentence(tmp_path, data_dir):
    # meta.json records the largest id, so the open check trusts it: a bin edited since then failed in the embedding
    data = shutil.copytree(data_dir, tmp_path / "data")
    tokens = np.fromfile(data / "train.bin", dtype=np.uint16)
    tokens[::50] = 300  # every window holds one
    tokens.tofile(data / "train.bin")
    meta = json.loads((data / "meta.json").read_text())
    meta["train_max_token"] = 16
    (data / "meta.json").write_text(json.dumps(meta))
    r = train(data, tmp_path / "out", "--max_iters=2", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip() == f"{data}/train.bin holds token id 300, at or above vocab_size 256 of its meta.json: " \
        f"the bins are not that tokenizer's ids (the embedding would fail on them); delete {data} and prepare it " \
        f"again with prepare_slimpajama.py."


def test_a_run_without_iterations_leaves_a_checkpoint(tmp_path, data_dir):
    out = tmp_path / "out"
    train(data_dir, out, "--max_iters=0")
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    assert ckpt["iter_num"] == 0 and ckpt["best_val_loss"] == read_log(out)[0]["val_loss"]
    GPT(GPTConfig(**ckpt["model_args"])).load_state_dict(ckpt["model"])


def test_a_run_whose_validation_never_improves_still_leaves_its_end(tmp_path, data_dir):
    # a learning rate far too high, but finite: the loss at iteration 2 is worse than at 0, so
    # always_save_checkpoint=False found no improvement to save
    out = tmp_path / "out"
    train(data_dir, out, "--max_iters=2", "--always_save_checkpoint=False", "--learning_rate=1.0",
          "--decay_lr=False")
    val = [e["val_loss"] for e in read_log(out) if "val_loss" in e]
    assert len(val) == 2 and val[1] > val[0] + 1
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    assert ckpt["iter_num"] == 2 and ckpt["best_val_loss"] == val[0]


@contextlib.contextmanager
def read_only(path):
    """path takes no new file, and its files stay writable: its mode for a user, the immutable flag for root
    (whom modes do not stop)."""
    if os.geteuid() != 0:
        os.chmod(path, 0o555)
        try:
            yield
        finally:
            os.chmod(path, 0o755)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("running as root, where chattr +i does not work")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_out_dir_is_refused_before_training(tmp_path, data_dir):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("log.jsonl", "train.lock"):  # a former run's files, still writable
        (out / name).write_text("")
    with read_only(out):
        r = train(data_dir, out, "--max_iters=2", check=False)
    assert r.returncode == 1 and "iter 0" not in r.stdout
    assert r.stderr.startswith(f"out_dir '{out}' takes no new file (") and r.stderr.endswith(
        "so no checkpoint could be saved there; make it writable or choose another --out_dir.\n"), r.stderr
    assert sorted(os.listdir(out)) == ["log.jsonl", "train.lock"] and (out / "log.jsonl").read_text() == ""


def test_a_lock_file_this_user_cannot_open_is_named_not_its_folder(finished, data_dir, tmp_path, monkeypatch):
    # train.lock of mode 000 (as root, refused by hand) in a writable out_dir: "out_dir 'out' is not a writable
    # directory (Permission denied)"
    import builtins
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    before, real_open = snapshot(out), builtins.open

    def guarded(path, *args, **kwargs):
        if str(path).endswith("train.lock"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", guarded)
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--init_from=resume",
                                      "--max_iters=4"])
    monkeypatch.undo()
    assert msg == (f"{out / 'train.lock'} cannot be opened to write (Permission denied); make it writable (it holds "
                   f"only the pid of the run that trains there), or copy out_dir to a writable place and resume there.")
    assert snapshot(out) == before


def test_a_resume_in_a_run_folder_received_read_only_is_told_to_chmod_it(finished, data_dir, tmp_path, monkeypatch):
    # a run received read-only (chmod a-w, or a read-only archive) was told to "copy out_dir to a writable place",
    # and cp -r keeps the modes: the copy was refused the same way. As root every folder is writable, so the refusal
    # of the lock's open is made by hand
    import builtins
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    real_open, real_access = builtins.open, os.access

    def guarded(path, *args, **kwargs):
        if str(path).endswith("train.lock"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", guarded)
    monkeypatch.setattr(os, "access", lambda p, m, **k: False if str(p) == str(out) else real_access(p, m, **k))
    args = [f"--data_dir={data_dir}", f"--out_dir={out}", "--init_from=resume", "--max_iters=4"]
    out.chmod(0o555)
    try:
        msg = run_inprocess(monkeypatch, args)
    finally:
        out.chmod(0o755)
    assert msg == (f"out_dir '{out}' is not a writable directory (Permission denied); its mode makes it read-only (as "
                   f"received, or copied with cp -r, which keeps it): chmod -R u+w {out}, then resume there.")
    msg = run_inprocess(monkeypatch, args)  # writable by its mode (another user's, a read-only mount): copy it
    assert msg.endswith("(Permission denied); copy out_dir to a writable place and resume there.")


@contextlib.contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_a_new_out_dir_that_the_umask_makes_unwritable_names_the_umask(data_dir, tmp_path, monkeypatch):
    # under umask 277 the out_dir made is dr-x------ (as root, refused by hand): "choose another --out_dir" met the
    # same refusal in every other folder
    import builtins
    real_open = builtins.open

    def guarded(path, *args, **kwargs):
        if str(path).endswith("train.lock"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", guarded)
    with umask(0o277):
        msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'out' / 'run'}",
                                          "--max_iters=4"])
    monkeypatch.undo()
    assert msg == (f"{tmp_path / 'out' / 'run'} takes no file once made under umask 0277, which removes the owner's "
                   f"write or search permission from every new folder; run `umask 022` first, then run again.")
    assert not (tmp_path / "out").exists()
    with umask(0o277), pytest.raises(SystemExit, match=r"^\S+ takes no file once made under umask 0277, "):
        monkeypatch.setattr(tempfile, "TemporaryFile", lambda dir: guarded(os.path.join(dir, "train.lock")))
        checkpoint.unwritable(str(tmp_path / "new" / "out"))  # prepare's, eval's, bench's and the studies' check
    assert not (tmp_path / "new").exists()

    def refused(path, exist_ok=False):  # a folder above, not this umask, refuses the first folder to make
        raise PermissionError(13, "Permission denied", path)
    monkeypatch.setattr(os, "makedirs", refused)
    with umask(0o277):
        assert checkpoint.unwritable(str(tmp_path / "new" / "out")) == "Permission denied"


def test_files_a_run_wrote_read_only_under_its_umask_name_the_umask(finished, data_dir, tmp_path, monkeypatch):
    # under umask 277 every file of the run is r--------: "make it writable" fixed train.lock, then the next resume
    # refused ckpt.pt, then log.jsonl, one at a time
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    before = snapshot(out)
    os.chmod(out / "ckpt.pt", 0o400)  # root, whom modes do not stop, is refused it by hand
    monkeypatch.setattr(os, "access", lambda path, mode, real=os.access: not str(path).endswith("ckpt.pt")
                        and real(path, mode))
    with umask(0o277):
        msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--init_from=resume",
                                          "--max_iters=4"])
    assert msg == (f"{out / 'ckpt.pt'} is read-only to its owner, as every file written under umask 0277 is, and this "
                   f"run would write it; run `umask 022` and `chmod u+w {out}/*` first, then run again.")
    assert snapshot(out) == before
    with umask(0o022):  # a file made read-only by hand, not by the umask: the umask is no part of the advice
        checkpoint.masked_file(str(out / "ckpt.pt"))
    spaced = tmp_path / "my run's"  # the advice quoted for the shell: `chmod u+w /tmp/my run's/*` failed
    spaced.mkdir()
    (spaced / "ckpt.pt").write_bytes(b"")
    os.chmod(spaced / "ckpt.pt", 0o400)
    with umask(0o277), pytest.raises(SystemExit) as e:
        checkpoint.masked_file(str(spaced / "ckpt.pt"))
    assert str(e.value).endswith(f"run `umask 022` and `chmod u+w '{tmp_path}/my run'\"'\"'s'/*` first, then run "
                                 f"again.")
    (tmp_path / "-run").mkdir()  # and ./ before a dash: `chmod u+w -run/*` was "chmod: invalid option -- 'r'"
    (tmp_path / "-run" / "ckpt.pt").write_bytes(b"")
    os.chmod(tmp_path / "-run" / "ckpt.pt", 0o400)
    monkeypatch.chdir(tmp_path)
    with umask(0o277), pytest.raises(SystemExit) as e:
        checkpoint.masked_file("-run/ckpt.pt")
    assert str(e.value).endswith("run `umask 022` and `chmod u+w ./-run/*` first, then run again.")


def test_an_out_dir_without_locks_trains_with_a_note(data_dir, tmp_path, monkeypatch, capsys):
    # flock's ENOSYS (Lustre without -o flock) was "out_dir is in use by another train.py run (pid ?)"
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOSYS, "Function not implemented")
    monkeypatch.setattr(fcntl, "flock", no_locks)
    monkeypatch.setattr(sys, "argv", ["train.py", *TINY, f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'out'}",
                                      "--max_iters=2"])
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    with contextlib.suppress(SystemExit):
        runpy.run_path(os.path.join(ROOT, "train.py"), run_name="__main__")
    assert "is on a file system without locks (flock: Function not implemented)" in capsys.readouterr().err
    assert torch.load(tmp_path / "out" / "ckpt.pt", weights_only=True)["iter_num"] == 2
    # a resume there met its lock file twice (the early probe and the taking): the note was printed twice
    monkeypatch.setattr(sys, "argv", [*sys.argv, "--init_from=resume", "--max_iters=3"])
    with contextlib.suppress(SystemExit):
        runpy.run_path(os.path.join(ROOT, "train.py"), run_name="__main__")
    assert capsys.readouterr().err.count("is on a file system without locks") == 1
    assert torch.load(tmp_path / "out" / "ckpt.pt", weights_only=True)["iter_num"] == 3


def test_a_log_saved_by_a_windows_editor_keeps_its_first_line_on_resume(finished, data_dir, tmp_path):
    # a byte order mark before the first line (Notepad, PowerShell 5) made it no JSON: a resume dropped the run's
    # first evaluation without a word, and the studies' read_log called it "not a log entry of train.py"
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    lines = (out / "log.jsonl").read_text().splitlines()
    (out / "log.jsonl").write_bytes(b"\xef\xbb\xbf" + "".join(line + "\r\n" for line in lines).encode())
    assert checkpoint.started(out) == {"init_from": "scratch"}
    assert [json.loads(line) for line in lines] == checkpoint.read_log(out)
    train(data_dir, out, "--init_from=resume", "--max_iters=4")
    kept = [json.loads(line) for line in (out / "log.jsonl").read_text(encoding="utf-8-sig").splitlines()]
    before = [e for e in map(json.loads, lines) if e["iter"] < 2]  # those before the checkpoint (iteration 2) stay
    assert kept[:len(before)] == before and kept[len(before)]["iter"] == 2 and kept[-1]["iter"] == 4


def test_a_resumed_conversion_of_max_iters_0_keeps_its_conversion_line(finished, data_dir, tmp_path):
    # a resume dropped every line of its checkpoint's iteration, and a max_iters=0 conversion's checkpoint is at 0:
    # its conversion line went, and the log read as a run from scratch (checkpoint.started, the retrofit study)
    out = tmp_path / "out"
    train(data_dir, out, f"--init_from={finished}", "--max_iters=0")
    first = read_log(out)[0]
    train(data_dir, out, "--init_from=resume", "--max_iters=2")
    assert read_log(out)[0] == first and "conversion" in first
    assert checkpoint.started(out) == {"init_from": str(finished)}
    assert [e["iter"] for e in read_log(out)].count(0) == 3  # the conversion, the evaluation and the step


def test_a_log_whose_lines_end_in_cr_alone_keeps_them_on_resume(finished, data_dir, tmp_path):
    # saved by an editor that ends lines with \r alone (an old Mac's): read as bytes since 678397f, no line ended with
    # \n, and a resume dropped every one as cut by a kill, without a word (the curve before its checkpoint lost)
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    lines = (out / "log.jsonl").read_text().splitlines()
    (out / "log.jsonl").write_text("".join(line + "\r" for line in lines))
    assert [json.loads(line) for line in lines] == checkpoint.read_log(out)
    train(data_dir, out, "--init_from=resume", "--max_iters=4")
    kept = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    before = [e for e in map(json.loads, lines) if e["iter"] < 2]  # those before the checkpoint (iteration 2) stay
    assert before and kept[:len(before)] == before and kept[len(before)]["iter"] == 2 and kept[-1]["iter"] == 4


def test_a_damaged_line_before_the_checkpoint_is_said_and_the_log_kept(finished, data_dir, tmp_path):
    # pass 25, left: a line that is no entry in the middle of the log (an edit, a disk error) was dropped by a resume
    # without a word, as the last line a kill cuts short is
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    lines = (out / "log.jsonl").read_text().splitlines(keepends=True)
    damaged = [lines[0], '{"iter": 0, "lo\n', *lines[1:]]
    (out / "log.jsonl").write_text("".join(damaged))
    r = train(data_dir, out, "--init_from=resume", "--max_iters=4")
    assert f"{out / 'log.jsonl'}: line 2 holds no log entry of train.py (edited, or a disk error), left out by this " \
           f"resume; the log as it was is kept as {out / 'log.1.jsonl'}." in r.stdout
    assert (out / "log.1.jsonl").read_text() == "".join(damaged)
    kept = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    before = [e for e in map(json.loads, lines) if kept_by_resume(e, 2)]
    assert kept[:len(before)] == before and kept[-1]["iter"] == 4
    # the last line cut by a kill is what a resume is for: no word, nothing kept
    (out / "log.jsonl").write_text((out / "log.jsonl").read_text() + '{"iter": 5, "lo')
    r = train(data_dir, out, "--init_from=resume", "--max_iters=6")
    assert "holds no log entry" not in r.stdout and not (out / "log.2.jsonl").exists()
    # a whole last line that is no entry (a note appended with echo >>) is no kill's: it went without a word
    (out / "log.jsonl").write_text((out / "log.jsonl").read_text() + "resumed with lr 3e-4\n")
    r = train(data_dir, out, "--init_from=resume", "--max_iters=7")
    assert f"line {len((out / 'log.2.jsonl').read_text().splitlines())} holds no log entry" in r.stdout


def test_a_log_pretty_printed_by_jq_keeps_its_entries_on_resume(finished, data_dir, tmp_path):
    # `jq . log.jsonl` saved back spreads each entry over lines, none JSON alone: a resume dropped them all without a
    # word (the curve before its checkpoint lost for good), read_log told the studies to delete line 1 ("{")
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    lines = (out / "log.jsonl").read_text().splitlines()
    # slurped into one array (`jq -s .`, `jq -cs .` on one line): the same
    for indent in (2, None):
        (out / "log.jsonl").write_text(json.dumps([json.loads(line) for line in lines], indent=indent) + "\n")
        assert checkpoint.started(out) == {"init_from": "scratch"}
        assert [json.loads(line) for line in lines] == checkpoint.read_log(out)
    (out / "log.jsonl").write_text("".join(json.dumps(json.loads(line), indent=2) + "\n" for line in lines))
    assert checkpoint.started(out) == {"init_from": "scratch"}
    assert [json.loads(line) for line in lines] == checkpoint.read_log(out)
    train(data_dir, out, "--init_from=resume", "--max_iters=4")
    kept = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    before = [e for e in map(json.loads, lines) if e["iter"] < 2]  # those before the checkpoint (iteration 2) stay
    assert before and kept[:len(before)] == before and kept[len(before)]["iter"] == 2 and kept[-1]["iter"] == 4


def test_a_long_log_cut_by_a_kill_is_read_as_its_lines_not_decoded_twice(monkeypatch):
    # every line checked, then the whole text decoded as JSON values because the last line was cut (the crash a
    # resume is for): a million-line log took 10 s and 1.5 GB on resume; three lines stand for the million here
    lines = [json.dumps({"iter": i, "loss": 1.0}) + "\n" for i in range(3)] + ['{"iter": 3, "lo']
    calls = []
    monkeypatch.setattr(checkpoint, "_json_line", lambda line: calls.append(line) or True)
    monkeypatch.setattr(checkpoint.json, "JSONDecoder", None)  # the values' decoder is never made
    assert checkpoint.log_lines("".join(lines)) == lines and len(calls) == 1


def test_a_log_saved_again_as_utf16_is_refused_before_a_resume_drops_it(finished, data_dir, tmp_path):
    # PowerShell 5's `Get-Content log.jsonl > log.jsonl` writes UTF-16: no line was JSON, and a resume dropped them all
    # without a word (the curve before the checkpoint lost for good); read_log told the studies to delete line 1
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    saved = (out / "log.jsonl").read_text().encode("utf-16")
    (out / "log.jsonl").write_bytes(saved)
    sentence = f"{out}/log.jsonl is not UTF-8; it is UTF-16 (it starts with UTF-16's byte order mark): convert it, " \
        f"e.g. iconv -f UTF-16 -t UTF-8 {out}/log.jsonl > {out}/log_2.jsonl && mv {out}/log_2.jsonl {out}/log.jsonl."
    with pytest.raises(SystemExit, match=re.escape(sentence)):
        checkpoint.read_log(out)
    r = train(data_dir, out, "--init_from=resume", "--max_iters=4", check=False)
    assert r.returncode == 1 and sentence in r.stderr and "Traceback" not in r.stderr
    assert (out / "log.jsonl").read_bytes() == saved and torch.load(out / "ckpt.pt", weights_only=True)["iter_num"] == 2


def test_the_iconv_advice_for_a_log_in_a_folder_named_with_a_dash_runs_as_printed(tmp_path, monkeypatch):
    # --out_dir=-run: the in-place advice's `mv -run/log_2.jsonl -run/log.jsonl` was "mv: invalid option -- 'r'",
    # the converted copy left beside the UTF-16 log
    monkeypatch.chdir(tmp_path)
    os.mkdir("-run")
    with open("-run/log.jsonl", "wb") as f:
        f.write('{"iter": 0, "val_loss": 1.0}\n'.encode("utf-16"))
    with pytest.raises(SystemExit) as e:
        checkpoint.read_log("-run")
    command = str(e.value).split("e.g. ", 1)[1].removesuffix(".")
    assert command == "iconv -f UTF-16 -t UTF-8 ./-run/log.jsonl > -run/log_2.jsonl && mv ./-run/log_2.jsonl " \
                      "./-run/log.jsonl"
    if shutil.which("iconv"):
        subprocess.run(["bash", "-c", command], check=True)
        assert os.listdir("-run") == ["log.jsonl"] and checkpoint.read_log("-run") == [{"iter": 0, "val_loss": 1.0}]


def test_a_log_a_resume_cannot_read_is_refused_before_training(finished, data_dir, tmp_path, monkeypatch):
    # a log.jsonl this user can write but not read (mode 200; as root, refused by hand) was open_log's
    # PermissionError traceback, where mode 000 had been told "read-only ... make it writable", which led there
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    before = snapshot(out)
    monkeypatch.setattr(checkpoint, "unreadable", lambda p: "Permission denied" if p.endswith("log.jsonl") else None)
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--init_from=resume",
                                      "--max_iters=4"])
    assert msg == (f"cannot read {out / 'log.jsonl'} (Permission denied), whose lines before the checkpoint a resume "
                   f"keeps; make it readable or copy out_dir to a writable place and resume there.")
    assert snapshot(out) == before


def test_a_checkpoint_in_a_folder_this_user_cannot_search_is_named_not_missing(finished, data_dir, tmp_path,
                                                                                monkeypatch):
    # a run folder of mode 000 (another user's; as root, refused by hand) hides its ckpt.pt from os.path.exists: a
    # resume was told it "does not exist ... use --init_from=scratch", a conversion from it that it is "a folder
    # without a ckpt.pt (a run that has saved none yet)"
    out = shutil.copytree(finished, tmp_path / "run")
    before = snapshot(out)
    monkeypatch.setattr(checkpoint, "unreadable", lambda p: "Permission denied" if p.endswith("ckpt.pt") else None)
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--init_from=resume",
                                      "--max_iters=4"])
    assert msg == f"cannot read {out / 'ckpt.pt'} (Permission denied); make it readable for this user, then resume."
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'new'}", f"--init_from={out}",
                                      "--proj=qkv"])
    assert msg == (f"init_from='{out}': cannot read {out / 'ckpt.pt'} (Permission denied); make it readable for "
                   f"this user, or point --init_from at another checkpoint.")
    # a folder that cannot be searched (mode 000 or 400) hides the file: "its folder readable" (chmod +r) did not
    # open it; the advice names the folders' x bit
    monkeypatch.setattr(checkpoint, "to_open", lambda p: "the folders on its path searchable (chmod +x)")
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--init_from=resume",
                                      "--max_iters=4"])
    assert msg.endswith("make the folders on its path searchable (chmod +x) for this user, then resume.")
    assert snapshot(out) == before and not (tmp_path / "new").exists()


@pytest.mark.parametrize("name", ["ckpt.pt", "log.jsonl"])
def test_a_read_only_file_the_run_would_replace_is_refused_before_training(name, finished, data_dir, tmp_path,
                                                                            monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(finished, out)  # the folder takes new files, but the resumed run must replace these
    stale = out / "ckpt.pt.abc123xy.tmp"  # what a save killed before its rename (SIGKILL) leaves behind
    stale.write_bytes(b"half a checkpoint")
    own = out / "ckpt.pt.old.tmp"  # the user's own file, of no save's name (mkstemp's 8 characters): it was removed
    own.write_bytes(b"kept")
    with read_only(out / name):
        msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--init_from=resume",
                                          "--max_iters=4"])
    # was a PermissionError traceback: at the first save, or at once; then "or choose another --out_dir", where a
    # resumed run finds no checkpoint to resume
    assert msg == (f"{out / name} is read-only (or immutable), and this run would replace it; make it writable or "
                   f"copy out_dir to a writable place and resume there.")
    assert torch.load(out / "ckpt.pt", weights_only=True)["iter_num"] == 2
    assert not stale.exists()  # removed under the lock, under which no other run saves here
    assert own.read_bytes() == b"kept"


def test_an_older_versions_leftover_save_is_removed_too(finished, data_dir, tmp_path, monkeypatch):
    # train.py before ed29ce5 saved through ckpt.pt.tmp, one fixed name: a save killed before its rename left a
    # checkpoint-sized file that today's resume of that run never removed (only ckpt.pt.XXXXXXXX.tmp)
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    stale = out / "ckpt.pt.tmp"
    stale.write_bytes(b"half a checkpoint")
    with read_only(out / "ckpt.pt"):  # refused after the leftovers are cleared, before any training
        msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--init_from=resume",
                                          "--max_iters=4"])
    assert msg.startswith(f"{out / 'ckpt.pt'} is read-only")
    assert not stale.exists()
    (out / "ckpt.pt.tmp").mkdir()  # a folder of that name is no save's: an IsADirectoryError traceback, then
    with read_only(out / "ckpt.pt"):
        msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--init_from=resume",
                                          "--max_iters=4"])
    assert msg.startswith(f"{out / 'ckpt.pt'} is read-only") and (out / "ckpt.pt.tmp").is_dir()


def test_a_lock_that_takes_no_bytes_is_one_sentence(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.lock").symlink_to("/dev/full")  # writes fail as on a full disk (its truncate: EINVAL)
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=2"])
    assert msg.startswith(f"could not write {out / 'train.lock'} (") and msg.endswith(
        "); free space on its disk, or choose another --out_dir."), msg  # was an OSError traceback
    assert sorted(os.listdir(out)) == ["train.lock"]


def test_an_out_dir_nested_too_deep_is_one_sentence(tmp_path, monkeypatch, data_dir, default_recursion_limit):
    deep = str(tmp_path / ("a/" * 1500))[:-1]  # 3000 characters, under PATH_MAX: os.makedirs' RecursionError
    msg = refusal(monkeypatch, tmp_path, [f"--out_dir={deep}", "--max_iters=0"], data_dir)  # made: no long run
    assert msg == f"out_dir {deep!r} is not a writable directory (nested too deep to create); choose another --out_dir."
    with pytest.raises(SystemExit, match=r"is not a writable directory \(nested too deep to create\); fix\.$"):
        checkpoint.writable_dir(deep, "fix")
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("name, resume", [("ckpt.pt", False), ("ckpt.pt", True), ("train.lock", False)])
def test_a_folder_in_place_of_a_file_the_run_writes_is_named(name, resume, data_dir, tmp_path, monkeypatch):
    # ckpt.pt was "no checkpoint at out/ckpt.pt: train one with train.py", to a training run; train.lock was
    # "out_dir 'out' is not a writable directory (Is a directory)"
    out = tmp_path / "out"
    os.makedirs(out / name)
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=2",
                                      *["--init_from=resume"] * resume])
    assert msg == (f"{out / name} is a folder, and this run writes that file; move it away"
                   f"{'' if resume else ' or choose another --out_dir'}.")
    assert os.listdir(out) == [name]


@pytest.mark.parametrize("resume", [False, True])
@pytest.mark.parametrize("under", [False, True])
def test_an_out_dir_that_is_a_file_is_named_so(under, resume, data_dir, tmp_path, monkeypatch):
    # a resume was told "init_from='resume' but out/ckpt.pt does not exist; check --out_dir or use
    # --init_from=scratch", which that file refused too
    (tmp_path / "out").write_text("a file\n")
    out = tmp_path / "out" / "run" if under else tmp_path / "out"
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=2",
                                      *["--init_from=resume"] * resume])
    assert msg == f"out_dir {str(out)!r} is a file or lies under one, not a folder; " + (
        "point --out_dir at the folder of the run to resume." if resume else "choose another --out_dir.")
    assert os.listdir(tmp_path) == ["out"] and (tmp_path / "out").read_text() == "a file\n"


def test_a_damaged_log_is_refused_or_cleaned_before_training(finished, data_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    os.remove(out / "log.jsonl")
    os.mkdir(out / "log.jsonl")  # was an IsADirectoryError traceback
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--init_from=resume",
                                      "--max_iters=4"])
    assert msg == f"{out / 'log.jsonl'} is a folder, and this run writes that file; move it away."
    out = tmp_path / "out2"  # the refused run, in this process, still holds the lock on the first
    shutil.copytree(finished, out)
    lines = (finished / "log.jsonl").read_text().splitlines(keepends=True)
    (out / "log.jsonl").write_bytes("".join(lines[:2] + ["garbage\n", '{"no iter": 1}\n', "\xff\n"]).encode()
                                    + b"\xfe\n" + "".join(lines[2:]).encode())  # was a JSONDecodeError traceback
    train(data_dir, out, "--init_from=resume", "--max_iters=4")
    kept = [e for e in map(json.loads, lines) if kept_by_resume(e, 2)]
    log = read_log(out)  # every line parses: the foreign ones went with those after the checkpoint
    assert log[:len(kept)] == kept and [e["iter"] for e in log[len(kept):]] == [2, 3, 4]


@pytest.mark.parametrize("resume", [False, True])
def test_a_damaged_checkpoint_in_out_dir_is_refused_with_a_fix_that_works(resume, finished, data_dir, tmp_path,
                                                                         monkeypatch):
    # was "restore it or train again": the same command, run again, met the same file and the same refusal
    out = tmp_path / "out"
    out.mkdir()
    (out / "ckpt.pt").write_bytes(b"not a checkpoint")
    ckpt = torch.load(finished / "ckpt.pt", weights_only=True)
    del ckpt["iter_num"]
    torch.save(ckpt, tmp_path / "noiter.pt")
    for bad, what in (("not a checkpoint", "is corrupt or not a checkpoint written by train.py (UnpicklingError)"),
                      ((tmp_path / "noiter.pt").read_bytes(), "has no iter_num: it is not a checkpoint written by "
                                                                 "train.py")):
        (out / "ckpt.pt").write_bytes(bad.encode() if isinstance(bad, str) else bad)
        msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=2",
                                          *["--init_from=resume"] * resume])
        assert msg == f"{out / 'ckpt.pt'} {what}; restore it or move it away to train a new run in {out}."
    os.rename(out / "ckpt.pt", tmp_path / "moved.pt")
    train(data_dir, out, "--max_iters=2")
    assert torch.load(out / "ckpt.pt", weights_only=True)["iter_num"] == 2


@pytest.mark.parametrize("link", [os.symlink, os.link])
def test_a_run_made_of_another_runs_files_writes_its_own_log(link, finished, data_dir, tmp_path):
    # an out_dir whose ckpt.pt and log.jsonl link to another run's, resumed: the save replaced the linked checkpoint,
    # but the log was written through the link, and the other run's log.jsonl took this run's lines
    out = tmp_path / "branch"
    out.mkdir()
    other = shutil.copytree(finished, tmp_path / "other")
    before = snapshot(other)
    for name in ("ckpt.pt", "log.jsonl"):
        link(other / name, out / name)
    train(data_dir, out, "--init_from=resume", "--max_iters=4")
    assert snapshot(other) == before
    assert [e["iter"] for e in read_log(out)][-3:] == [2, 3, 4] and not (out / "log.jsonl").is_symlink()


def test_ctrl_c_while_starting_is_one_line(tmp_path, data_dir):
    config = tmp_path / "slow.py"  # a KeyboardInterrupt while the run is set up, as a Ctrl-C during imports gives
    config.write_text("raise KeyboardInterrupt\n")
    r = train(data_dir, tmp_path / "out", str(config), check=False)
    assert (r.returncode, r.stderr) == (130, "stopped by Ctrl-C while starting, before anything was written.\n")
    assert not (tmp_path / "out").exists()


def test_out_of_memory_is_one_line_naming_the_settings_that_use_less(tmp_path, data_dir):
    # a config too large for the machine (config/qk_v_300m.py on a laptop) was a 30-line traceback from the CPU
    # allocator (CUDA's OutOfMemoryError alike); here a batch of 400,000 sequences under a 4 GB address space
    import resource
    limit = 4 << 30
    cmd = [sys.executable, "train.py", *TINY, f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'out'}",
           "--max_iters=2", "--batch_size=400000", "--gradient_accumulation_steps=1"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    # the address space is capped here, so the sentence names that cap first (configurator.memory_limit)
    assert re.fullmatch(r"stopped at iteration 0: out of memory \(asking for [\d,]+ bytes more\) \(this shell's limit, "
                        r"ulimit -v, is 4,194,304 KiB\); (raise it \(ulimit -v unlimited\)|run it from a new "
                        r"terminal \(this limit is also this shell's hard limit, which only root raises\)), or lower "
                        r"--batch_size "
                        r"\(a larger --gradient_accumulation_steps keeps the tokens per iteration\), pass "
                        r"--grad_ckpt=True, or train a smaller model; no checkpoint was saved yet\.\n", r.stderr)
    assert not (tmp_path / "out").exists()


def test_a_non_finite_loss_before_any_checkpoint_names_none(tmp_path, data_dir, monkeypatch):
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'out'}", "--max_iters=3",
                                      "--learning_rate=1e10", "--grad_clip=0.0", "--weight_decay=0.0"])
    assert msg == "loss nan (gradient norm nan) at iter 1; stopped before any checkpoint was saved. Lower " \
                  "--learning_rate and run again."  # was: 'ckpt.pt is untouched ... resume from the checkpoint'
    assert sorted(os.listdir(tmp_path / "out")) == ["log.jsonl", "train.lock"]


def test_ctrl_c_stops_with_one_line_on_how_to_resume(tmp_path, data_dir, monkeypatch):
    out = tmp_path / "out"
    cmd = [sys.executable, "train.py", *TINY, f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=100000",
           "--eval_interval=2"]
    # SIGINT as a terminal sends it, also where this test runs in the background (which ignores it)
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        while not (out / "log.jsonl").exists() or '"iter": 3' not in (out / "log.jsonl").read_text():
            assert time.time() < deadline and p.poll() is None, "the run did not get past its first checkpoint"
            time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130
    saved = torch.load(out / "ckpt.pt", weights_only=True)["iter_num"]
    assert saved >= 2 and saved % 2 == 0 and sorted(os.listdir(out)) == ["ckpt.pt", "log.jsonl", "train.lock"]
    assert len(err.splitlines()) == 1 and err.startswith("stopped by Ctrl-C at iteration ")
    assert err.endswith(f"; {out / 'ckpt.pt'} holds iteration {saved}: to go on, run the same command with "
                        f"--init_from=resume.\n"), err
    # the same command without resume says so again
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=100000",
                                      "--eval_interval=2"])
    assert msg == f"{out / 'ckpt.pt'} holds this run, stopped at iteration {saved} of 100000; continue it with " \
                  f"--init_from=resume."


@pytest.mark.parametrize("name, status", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_signal_stops_as_ctrl_c_does_and_leaves_nothing_of_a_run_that_saved_nothing(tmp_path, data_dir, name,
                                                                                      status):
    # `kill` or a scheduler's time limit (SIGTERM), or a closed terminal (SIGHUP), ended the run with no word and left
    # the out_dir it made (log and lock)
    out = tmp_path / "new" / "out"
    cmd = [sys.executable, "train.py", *TINY, f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=100000",
           "--eval_interval=100000"]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))  # not under nohup
    try:
        deadline = time.time() + 120
        while not (out / "log.jsonl").exists() or '"iter": 3' not in (out / "log.jsonl").read_text():
            assert time.time() < deadline and p.poll() is None, "the run did not get to iteration 3"
            time.sleep(0.2)
        p.send_signal(getattr(signal, name))
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == status and re.fullmatch(rf"stopped by {name} at iteration \d+; no checkpoint was saved "
                                                   rf"yet: run the same command to start again\.\n", err), err
    assert not (tmp_path / "new").exists()


def test_data_deleted_or_prepared_again_mid_run_is_not_read_by_the_run(tmp_path):
    # each batch reopened train.bin by its path: the folder deleted (to prepare it again) was a FileNotFoundError
    # traceback mid-run, and new bins there were trained on without a word; the run reads the bins it checked
    data, out = tmp_path / "data", tmp_path / "out"
    make_data(data)
    cmd = [sys.executable, "train.py", *TINY, f"--data_dir={data}", f"--out_dir={out}", "--max_iters=100000",
           "--eval_interval=100000"]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def last():
        text = (out / "log.jsonl").read_text() if (out / "log.jsonl").exists() else ""
        return max([int(i) for i in re.findall(r'"iter": (\d+),', text)], default=-1)

    def reached(i):
        deadline = time.time() + 120
        while last() < i:
            assert time.time() < deadline and p.poll() is None, f"the run did not get to iteration {i}"
            time.sleep(0.1)
    try:
        reached(2)
        shutil.rmtree(data)
        reached(last() + 3)  # trained on after its data_dir went
        make_data(data)
        (data / "train.bin").write_bytes(b"\xff\xff" * 4000)  # ids beyond the vocabulary: refused if read
        reached(last() + 3)
        p.terminate()
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 143 and err.startswith("stopped by SIGTERM at iteration "), err


@pytest.mark.parametrize("size", [1001, 4000])
def test_a_bin_cut_in_place_mid_run_is_one_sentence(tmp_path, monkeypatch, size):
    # `truncate -s` on the train.bin a run holds: numpy's ValueError traceback at the next batch (an odd size), or a
    # SIGBUS (a mapped page past the new end); an even cut trained on fewer tokens than were checked without a word
    data, out = tmp_path / "data", tmp_path / "out"
    make_data(data)
    real = checkpoint.eval_batches

    def cut_then(*a):  # train.py calls it after opening the bins, before its first batch
        os.truncate(data / "train.bin", size)
        return real(*a)
    monkeypatch.setattr(checkpoint, "eval_batches", cut_then)
    msg = run_inprocess(monkeypatch, [f"--data_dir={data}", f"--out_dir={out}", "--max_iters=2"])
    assert msg == (f"{data}/train.bin changed while the run read it (40,000 bytes when it began, {size:,} now): it "
                   f"was cut or written in place; delete {data} and prepare it again with prepare_slimpajama.py (a "
                   f"run reads the bins it began with, not new ones beside them).")
    assert not (out / "ckpt.pt").exists()  # its folder goes at exit (atexit), as any stop before the first save


def test_a_closed_output_pipe_is_one_line_on_how_to_go_on(tmp_path, data_dir):
    # `python train.py ... | head` was a BrokenPipeError traceback when head had its lines
    cmd = [sys.executable, "train.py", *TINY, f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'out'}",
           "--max_iters=400", "--eval_interval=4", "--log_interval=1"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while "saved" not in proc.stdout.readline():  # a checkpoint exists: the line names it
        pass
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 1 and "Traceback" not in err
    assert re.fullmatch(r"stopped: the reader of its output went away \(a closed pipe\) at iteration \d+; "
                        rf"{re.escape(str(tmp_path / 'out' / 'ckpt.pt'))} holds iteration \d+: to go on, run the "
                        r"same command with --init_from=resume\.\n", err), err


@pytest.mark.parametrize("where", ["stdout", "log.jsonl"])
def test_a_full_disk_under_the_output_or_the_log_is_one_line(where, tmp_path, data_dir):
    # an OSError traceback (No space left on device) at the first line printed, or logged
    out = tmp_path / "out"
    out.mkdir()
    if where == "log.jsonl":
        (out / "log.jsonl").symlink_to("/dev/full")  # every write fails as on a full disk
    with open("/dev/full" if where == "stdout" else os.devnull, "w") as stdout:
        r = subprocess.run([sys.executable, "train.py", *TINY, f"--data_dir={data_dir}", f"--out_dir={out}",
                            "--max_iters=2"], cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=stdout,
                           stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr == (
        f"stopped: its output or {out / 'log.jsonl'} could not be written (No space left on device; free space "
        f"first) at iteration 0; no checkpoint was saved yet: run the same command to start again.\n"), r.stderr


def before_second_save(monkeypatch, act):
    """act() runs just before the second checkpoint train.py saves in this process."""
    saves, real = [], checkpoint.save_checkpoint

    def save(ckpt, path):
        saves.append(path)
        if len(saves) == 2:
            act()
        real(ckpt, path)
    monkeypatch.setattr(checkpoint, "save_checkpoint", save)


def test_a_save_refused_mid_run_says_where_the_run_stands(tmp_path, data_dir, monkeypatch):
    # the disk filled (or out_dir was made read-only) between two saves: atomic_write's "free space on its disk, or
    # write elsewhere" was the whole line, with no word that the last checkpoint stays and resumes
    out = tmp_path / "out"
    before_second_save(monkeypatch, lambda: monkeypatch.setattr(
        torch, "save", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device"))))
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=4",
                                      "--eval_interval=2"])
    assert msg == (f"could not write {out / 'ckpt.pt'} (No space left on device); the file there is unchanged: free "
                   f"space on its disk, or write elsewhere; stopped at iteration 4: {out / 'ckpt.pt'} holds iteration "
                   f"2: to go on, run the same command with --init_from=resume.")
    assert torch.load(out / "ckpt.pt", weights_only=True)["iter_num"] == 2


def test_an_out_dir_moved_mid_run_is_not_said_to_hold_the_checkpoint(tmp_path, data_dir, monkeypatch):
    # `mv out elsewhere` while the run trained: the next save failed, and the line said "out/ckpt.pt holds
    # iteration 2: to go on, run the same command with --init_from=resume", where no out/ckpt.pt was
    out = tmp_path / "out"
    before_second_save(monkeypatch, lambda: os.rename(out, tmp_path / "moved"))
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=4",
                                      "--eval_interval=2"])
    assert msg.endswith(f"; stopped at iteration 4: {out / 'ckpt.pt'}, saved at iteration 2, is no longer there "
                        f"(out_dir moved or removed while the run trained): to go on from it, point --out_dir at "
                        f"where it is now and add --init_from=resume."), msg


def test_a_run_stopped_before_its_first_save_leaves_no_out_dir_it_made(tmp_path, data_dir):
    # a full disk (or Ctrl-C) at iteration 0 left out/new/deeper holding train.lock and log.jsonl
    out = tmp_path / "new" / "deeper"
    with open("/dev/full", "w") as stdout:
        r = subprocess.run([sys.executable, "train.py", *TINY, f"--data_dir={data_dir}", f"--out_dir={out}",
                            "--max_iters=2"], cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=stdout,
                           stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.endswith("no checkpoint was saved yet: run the same command to start "
                                                   "again.\n"), r.stderr
    assert os.listdir(tmp_path) == []


def test_a_run_diverged_before_its_first_save_leaves_the_out_dir_as_it_found_it(tmp_path, data_dir):
    # a non-finite loss (sys.exit, not Ctrl-C) left out/new/deeper holding train.lock and log.jsonl; and Ctrl-C or a
    # full disk in an out_dir that existed left this run's lock and log beside the files already there
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("kept")
    for out in (tmp_path / "new" / "deeper", tmp_path / "mine"):
        r = train(data_dir, out, "--learning_rate=1e6", "--min_lr=0", "--warmup_iters=0", "--weight_decay=0.0",
                  check=False)
        assert r.returncode == 1 and "stopped before any checkpoint was saved" in r.stderr, r.stderr
    assert os.listdir(tmp_path) == ["mine"] and os.listdir(tmp_path / "mine") == ["notes.txt"]


def test_an_out_dir_refused_as_it_is_locked_is_left_as_it_was(tmp_path, data_dir, monkeypatch):
    # a disk too full for one more file: the refusal left the out_dir it had made, holding an empty train.lock
    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(tempfile, "mkstemp", full)
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "new" / "out", tmp_path / "empty"):
        msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}"])
        assert msg.startswith(f"out_dir '{out}' takes no new file (No space left on device)"), msg
    assert os.listdir(tmp_path) == ["empty"] and os.listdir(tmp_path / "empty") == []


def test_nccl_under_torchrun_needs_cuda(tmp_path, monkeypatch):
    for k, v in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "1")):
        monkeypatch.setenv(k, v)
    assert refusal(monkeypatch, tmp_path, ["--backend=nccl"]) == \
        "backend='nccl' runs on CUDA only, and device is 'cpu'; set --backend=gloo (or auto)."


INTERRUPTED_SAVE = ("import runpy, sys, torch\n"  # train.py whose first save is cut short by Ctrl-C
                    "def save(obj, f):\n"
                    "    try:\n"
                    "        f.write(b'the first bytes of a checkpoint')\n"
                    "        raise KeyboardInterrupt\n"
                    "    finally:\n"
                    "        raise RuntimeError('unexpected pos 337344 vs 333136')\n"
                    "torch.save = save\n"
                    "sys.argv[0] = 'train.py'\n"
                    "runpy.run_path('train.py', run_name='__main__')\n")


def test_ctrl_c_during_a_save_keeps_the_last_checkpoint_and_is_one_line(finished, data_dir, tmp_path):
    # torch.save cut short by Ctrl-C raises its own error on closing the file: still the same Ctrl-C
    out = shutil.copytree(finished, tmp_path / "run")
    before = (out / "ckpt.pt").read_bytes()
    r = train(data_dir, out, "--max_iters=4", "--init_from=resume", cmd=(sys.executable, "-c", INTERRUPTED_SAVE),
              check=False)
    assert r.returncode == 130
    assert r.stderr == f"stopped by Ctrl-C at iteration 4; {out / 'ckpt.pt'} holds iteration 2: to go on, run the " \
                       f"same command with --init_from=resume.\n"
    assert (out / "ckpt.pt").read_bytes() == before
    assert sorted(os.listdir(out)) == ["ckpt.pt", "log.jsonl", "train.lock"]


def test_ctrl_c_of_a_study_run_points_at_the_study_not_at_init_from(finished, data_dir, tmp_path):
    # a study's train.py (started by run_child, as every study starts it) said "to go on, run the same command with
    # --init_from=resume" above the study's own "run the same command to go on": the user's command is the study's,
    # which takes no --init_from (`python -m experiments.cpu_lm --init_from=resume` is refused)
    out = shutil.copytree(finished, tmp_path / "run")
    study = ("import sys\nfrom configurator import run_child\n"
             f"sys.exit(run_child([sys.executable, '-c', {INTERRUPTED_SAVE!r}, *sys.argv[1:]]))\n")
    r = train(data_dir, out, "--max_iters=4", "--init_from=resume", cmd=(sys.executable, "-c", study), check=False)
    assert r.returncode == 130
    assert r.stderr == f"stopped by Ctrl-C at iteration 4; {out / 'ckpt.pt'} holds iteration 2, from which the " \
                       f"study resumes this run when run again.\n"


CTRL_C_IN_EVAL = ("import torch\n"
                  "def eval(self):\n"
                  "    raise KeyboardInterrupt\n"
                  "torch.nn.Module.eval = eval\n")
KILL_AT_LOG_OPEN = ("import builtins, os\n"
                    "real_open = builtins.open\n"
                    "def open(path, mode='r', *a, **k):\n"
                    "    f = real_open(path, mode, *a, **k)\n"
                    "    if str(path).endswith('log.jsonl') and mode in ('w', 'a'):\n"
                    "        os._exit(9)\n"
                    "    return f\n"
                    "builtins.open = open\n")


def kept_by_resume(entry, it):
    """Whether a resume from a checkpoint at iteration it keeps entry: those before it, and the validation line
    the checkpoint was saved after."""
    return entry["iter"] < it or entry["iter"] == it and "val_loss" in entry


@pytest.mark.parametrize("stop, status", [
    # the kept lines were refilled from a buffer, flushed only by the first log line: a Ctrl-C (or kill) during the
    # resume's first evaluation, seconds on a large eval_tokens, left the log empty
    (CTRL_C_IN_EVAL, 130),
    # truncated on open, then refilled: a kill between the two (here the instant after the open) emptied it; it is
    # now rewritten by rename and appended to
    (KILL_AT_LOG_OPEN, 9),
])
def test_a_stop_as_a_resume_opens_its_log_keeps_the_log(stop, status, finished, data_dir, tmp_path):
    out = shutil.copytree(finished, tmp_path / "run")
    kept = [line for line in (out / "log.jsonl").read_text().splitlines(True) if kept_by_resume(json.loads(line), 2)]
    run = stop + "import runpy, sys\nsys.argv[0] = 'train.py'\nrunpy.run_path('train.py', run_name='__main__')\n"
    r = train(data_dir, out, "--max_iters=4", "--init_from=resume", "--eval_interval=2",
              cmd=(sys.executable, "-c", run), check=False)
    assert r.returncode == status
    if status == 130:
        assert r.stderr.startswith("stopped by Ctrl-C at iteration 2;"), r.stderr
    assert kept and (out / "log.jsonl").read_text() == "".join(kept)
    assert sorted(os.listdir(out)) == ["ckpt.pt", "log.jsonl", "train.lock"]


@pytest.mark.parametrize("first", [False, True])
def test_ctrl_c_just_after_a_save_names_the_iteration_the_file_holds(first, finished, data_dir, tmp_path):
    # Ctrl-C between the rename that completes a save and train.py noting it (the race CI once hit): the message
    # names what the file on disk holds, the new iteration. After a new run's first save, the stop took the run for
    # one that saved nothing and removed its log.jsonl and lock beside the checkpoint (found by tests/test_stops.py)
    out = tmp_path / "run" if first else shutil.copytree(finished, tmp_path / "run")
    late_ctrl_c = ("import os, runpy, sys\n"
                   "replace = os.replace\n"
                   "def replace_then_ctrl_c(a, b):\n"
                   "    replace(a, b)\n"
                   "    if str(b).endswith('ckpt.pt'):\n"
                   "        raise KeyboardInterrupt\n"
                   "os.replace = replace_then_ctrl_c\n"
                   "sys.argv[0] = 'train.py'\n"
                   "runpy.run_path('train.py', run_name='__main__')\n")
    r = train(data_dir, out, "--max_iters=4", *([] if first else ["--init_from=resume"]),
              cmd=(sys.executable, "-c", late_ctrl_c), check=False)
    assert r.returncode == 130
    assert torch.load(out / "ckpt.pt", weights_only=True)["iter_num"] == 4
    # the last save: "to go on, run the same command with --init_from=resume" was the advice, which answers that the
    # run is finished, with nothing to do
    assert r.stderr == f"stopped by Ctrl-C at iteration 4; {out / 'ckpt.pt'} holds iteration 4, the last: the run is " \
                       f"finished.\n"
    assert sorted(os.listdir(out)) == ["ckpt.pt", "log.jsonl", "train.lock"]
    assert [json.loads(line)["iter"] for line in (out / "log.jsonl").read_text().splitlines()][-1] == 4


@pytest.mark.parametrize("env, says", [
    ({"RANK": "0", "WORLD_SIZE": "2"}, "LOCAL_RANK is not set"),  # a shell's leftover RANK, not torchrun
    ({"RANK": "x", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "h", "MASTER_PORT": "1"},
     "RANK is 'x', not a whole number"),
    ({"RANK": "3", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"},
     "RANK is '3', not below WORLD_SIZE 2"),
    ({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_PORT": "1"}, "MASTER_ADDR is not set"),
    ({"RANK": "0", "LOCAL_RANK": "", "WORLD_SIZE": "1", "MASTER_PORT": "1"}, "LOCAL_RANK is empty"),
    ({"RANK": ""}, None)])  # `export RANK=`: it said "RANK is set ..., but RANK is not set"
def test_part_of_torchruns_environment_is_one_sentence(env, says, tmp_path, monkeypatch):
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    msg = refusal(monkeypatch, tmp_path, [])
    why = f"so this process is one of torchrun's, but {says}" if says else "but empty"
    assert msg == (f"RANK is set in the environment, {why}; start train.py with torchrun, or unset RANK (and "
                   f"WORLD_SIZE, LOCAL_RANK) to run one process.")


def test_a_process_whose_others_never_come_says_so_in_one_sentence(tmp_path, monkeypatch, data_dir):
    import socket
    with socket.socket() as s:  # a port nobody listens on: process 0 never started
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(k, v)
    msg = refusal(monkeypatch, tmp_path, ["--ddp_timeout=1"], data_dir)
    assert msg.startswith(f"rank 1: could not join the other processes at 127.0.0.1:{port} (") and "\n" not in msg
    assert msg.endswith("start every process with torchrun, or unset RANK to run one process."), msg


def test_a_process_of_torchruns_whose_others_are_late_is_told_of_ddp_timeout(tmp_path, monkeypatch, data_dir):
    # under torchrun, rank 1 stopped (SIGSTOP) or slow to import past --ddp_timeout: rank 0 was told to "start every
    # process with torchrun, or unset RANK", which it was, and had not
    import socket
    with socket.socket() as s:  # rank 0 hosts the store here; rank 1 never comes within the timeout
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": str(port), "TORCHELASTIC_RUN_ID": "test"}.items():
        monkeypatch.setenv(k, v)
    msg = refusal(monkeypatch, tmp_path, ["--ddp_timeout=1"], data_dir)
    assert msg.startswith(f"rank 0: waited more than ddp_timeout=1s for the other processes at 127.0.0.1:{port} (")
    assert msg.endswith("): one of them stalled or is slow to start; see its log, or raise --ddp_timeout if it is "
                        "only slow."), msg


def test_a_ddp_timeout_past_torchs_clock_is_refused_before_torchrun_meets_it(tmp_path, monkeypatch):
    # torch adds the timeout to a clock in int64 nanoseconds: 9e12 s wrapped to a rendezvous that timed out at once
    # (a page of C++ frames), 1e14 was timedelta's OverflowError traceback
    for value in ("9000000000000", "100000000000000"):
        assert refusal(monkeypatch, tmp_path, [f"--ddp_timeout={value}"]) == (
            f"ddp_timeout must be an integer in [1, 1000000000]; got {value}. Set --ddp_timeout.")


def test_a_run_refused_because_another_holds_the_out_dir_removes_nothing_there(tmp_path, data_dir, monkeypatch):
    # two runs into one new out_dir at the same instant: both found no folder and no lock, so the one refused by the
    # lock counted the folder and train.lock as its own and removed the winner's lock file (a third run then took a
    # new one beside the winner); the lock is simulated as held by another process
    import fcntl

    def held(*args):
        raise BlockingIOError(11, "Resource temporarily unavailable")
    monkeypatch.setattr(fcntl, "flock", held)
    out = tmp_path / "new" / "out"
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}"])
    assert msg.startswith(f"out_dir '{out}' is in use by another train.py run"), msg
    assert os.listdir(out) == ["train.lock"]


def test_a_resume_while_its_run_still_trains_is_told_to_wait_not_to_choose_another_out_dir(tmp_path, data_dir,
                                                                                            monkeypatch):
    # "or choose another --out_dir" sent a resume where its checkpoint is not: "does not exist" next
    import fcntl

    def held(*args):
        raise BlockingIOError(11, "Resource temporarily unavailable")
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.lock").write_text("12345\n")
    monkeypatch.setattr(fcntl, "flock", held)
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--init_from=resume"])
    assert msg == f"out_dir '{out}' is in use by another train.py run (pid 12345); wait for it to end (or stop it), " \
                  f"then run this again."
    assert os.listdir(out) == ["train.lock"]


@pytest.mark.parametrize("args, said", [
    (["--convert_method=k"], "convert_method says how --init_from's weights are converted, and init_from='scratch' "
                             "converts none; add --init_from=<out_dir, checkpoint or gpt2>, or drop it."),
    (["--init_from=scratch", "--convert_method=lstsq", "--calib_batches=3"],
     "convert_method and calib_batches say how --init_from's weights are converted, and init_from='scratch' converts "
     "none; add --init_from=<out_dir, checkpoint or gpt2>, or drop them.")])
def test_conversion_settings_on_a_scratch_run_are_refused(args, said, data_dir, tmp_path, monkeypatch):
    # the retrofit command without its --init_from trained from scratch with exit 0, its method read by nothing
    # (the seventeenth pass); a resume keeps the conversion it started from and may repeat its command's method
    out = tmp_path / "out"
    assert run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={out}", "--max_iters=2", *args]) == said
    assert not out.exists()


def test_a_resume_of_a_relative_out_dir_missing_here_names_this_folder(data_dir, tmp_path, monkeypatch):
    # run from another folder, a config file's relative out_dir was "does not exist; ... use --init_from=scratch",
    # which began the run again there (the seventeenth pass)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", "--out_dir=out-run", "--init_from=resume"])
    assert msg == f"init_from='resume' but {os.path.join('out-run', 'ckpt.pt')} does not exist (a relative out_dir, " \
                  f"read from this folder, {tmp_path / 'elsewhere'}: if the run was trained from another folder, run " \
                  f"it there); check --out_dir or use --init_from=scratch."
    assert os.listdir(tmp_path / "elsewhere") == []
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'gone'}", "--init_from=resume"])
    assert msg == f"init_from='resume' but {tmp_path / 'gone' / 'ckpt.pt'} does not exist; check --out_dir or use " \
                  f"--init_from=scratch."


@pytest.mark.parametrize("args, said", [
    (["--convert_method=k"], "convert_method='k' says how weights are converted, and a resume converts nothing: "
                             "{ckpt} goes on as its run began, from scratch; drop --convert_method (to convert again, "
                             "start a new run in another --out_dir with --init_from={out})."),
    (["--convert_method=split", "--calib_batches=8"],
     "convert_method='split', calib_batches=8 say how weights are converted, and a resume converts nothing: {ckpt} "
     "goes on as its run began, from scratch; drop --convert_method, --calib_batches (to convert again, start a new "
     "run in another --out_dir with --init_from={out}).")])
def test_conversion_settings_a_resume_does_not_read_are_refused(args, said, finished, data_dir, tmp_path,
                                                                 monkeypatch):
    # the run went on as it began, the method given read by nothing, exit 0; the run's own method, as the command
    # that started it gives it, is that command resumed (the retrofit study's), and allowed
    out = shutil.copytree(finished, tmp_path / "run")
    before = snapshot(out)
    base = [f"--data_dir={data_dir}", f"--out_dir={out}", "--init_from=resume", "--max_iters=2"]
    assert run_inprocess(monkeypatch, [*base, *args]) == said.format(ckpt=out / "ckpt.pt", out=out)
    assert snapshot(out) == before
    assert run_inprocess(monkeypatch, [*base, "--convert_method=lstsq", "--calib_batches=4"]) == "0"  # done


def test_a_conversion_says_which_of_its_settings_it_did_not_use(finished, data_dir, tmp_path, monkeypatch):
    # untying qk_v to qkv used no method, and k fits on no batches: each went unread without a word, exit 0
    qkv = tmp_path / "qkv"
    for source, out, args, said in [
            (finished, qkv, ["--proj=qkv", "--convert_method=split"], "(--convert_method unused: V is not newly tied "
                                                                      "to K)"),
            (qkv, tmp_path / "k", ["--convert_method=k", "--calib_batches=2"], "(--calib_batches unused: k fits "
                                                                               "nothing)")]:
        r = train(data_dir, out, f"--init_from={source}", "--max_iters=0", *args)
        line = next(line for line in r.stdout.splitlines() if line.startswith(f"{source}: converted"))
        assert line.endswith(said), line
    # a resume of the untied run named the method it did not use: "converted from '...' by 'split'"
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={qkv}", "--init_from=resume",
                                      "--max_iters=1", "--proj=qkv", "--convert_method=lstsq"])
    assert msg == (f"convert_method='lstsq' says how weights are converted, and a resume converts nothing: "
                   f"{qkv / 'ckpt.pt'} goes on as its run began, converted from '{finished}'; drop --convert_method "
                   f"(to convert again, start a new run in another --out_dir with --init_from={finished}).")


def test_a_constant_rate_says_the_schedule_settings_given_go_unused(data_dir, tmp_path):
    # --decay_lr=False --warmup_iters=5 trained at learning_rate from the first step, the warmup read by nothing,
    # without a word; said, not refused (a base command that sets them may add --decay_lr=False, as the tests do)
    r = train(data_dir, tmp_path / "out", "--max_iters=0", "--decay_lr=False", "--lr_decay_iters=7")
    assert f"decay_lr=False trains at learning_rate ({LR:g}) throughout, with no warmup or decay: --warmup_iters, " \
           f"--lr_decay_iters, --min_lr unused\n" in r.stdout
    assert "unused" not in train(data_dir, tmp_path / "decay", "--max_iters=0").stdout


def test_a_gpu_index_under_torchrun_is_refused(data_dir, tmp_path, monkeypatch):
    # each process takes cuda:LOCAL_RANK: `torchrun --nproc_per_node=1 train.py --device=cuda:1` trained on cuda:0,
    # the index read by nothing (refused before any CUDA call, so a machine without one tries it too)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # cuda:1 is there: the index is refused for torchrun
    for k, v in dict(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT="29500").items():
        monkeypatch.setenv(k, v)
    assert refusal(monkeypatch, tmp_path, ["--device=cuda:1"], data_dir) == (
        "device='cuda:1', but under torchrun each process uses the GPU of its LOCAL_RANK (cuda:0 here); give "
        "--device=cuda (or auto), and choose the GPUs with CUDA_VISIBLE_DEVICES, e.g. CUDA_VISIBLE_DEVICES=1 "
        "torchrun --standalone --nproc_per_node=1 train.py ...")


def test_a_gpu_this_machine_does_not_show_is_refused(data_dir, tmp_path, monkeypatch):
    # --device=cuda:1 on one GPU, or torchrun --nproc_per_node=2 on it, was torch's 'invalid device ordinal'
    # traceback at the first tensor (refused before any CUDA call, so a machine without one tries it too)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert refusal(monkeypatch, tmp_path, ["--device=cuda:1"], data_dir) == (
        "device='cuda:1', but PyTorch sees 1 CUDA device (cuda:0); give one of them.")
    for k, v in dict(RANK="1", LOCAL_RANK="1", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT="29500").items():
        monkeypatch.setenv(k, v)
    assert refusal(monkeypatch, tmp_path, ["--device=cuda"], data_dir) == (
        "rank 1: LOCAL_RANK 1 takes cuda:1, but PyTorch sees 1 CUDA device here; start one process per GPU: torchrun "
        "--nproc_per_node=1 ...")


def test_device_takes_the_forms_the_other_commands_take(tmp_path, monkeypatch, data_dir):
    # --device=cpu:0, which sample.py, eval.py and bench.py take, was refused; cuda:00, which passed the pattern,
    # was torch's 'Invalid device string' traceback
    assert refusal(monkeypatch, tmp_path, ["--device=cpu:0"]).startswith(f"data_dir '{tmp_path / 'nodata'}' has no")
    assert refusal(monkeypatch, tmp_path, ["--device=cuda:00"]) == (
        "device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got 'cuda:00'. Set --device.")
    out = tmp_path / "run"
    train(data_dir, out, "--max_iters=4", "--device=cpu:0")
    assert torch.load(out / "ckpt.pt", weights_only=False)["config"]["device"] == "cpu"
    r = train(data_dir, out, "--max_iters=4", "--device=cpu")  # the same run: finished, not "other settings"
    assert "other settings" not in r.stderr


def test_a_log_with_no_checkpoint_beside_it_is_kept(finished, data_dir, tmp_path):
    # ckpt.pt moved away (or deleted) to train again: the new run replaced the old run's log.jsonl without a word,
    # and a Ctrl-C before its first save then removed it, where a stopped run leaves out_dir as it found it
    out = shutil.copytree(finished, tmp_path / "run")
    (out / "ckpt.pt").rename(tmp_path / "best.pt")
    old = (out / "log.jsonl").read_bytes()
    # its evaluation too: eval/results.md stayed beside the new run's checkpoint, read as the new run's numbers
    (out / "eval").mkdir()
    (out / "eval" / "results.json").write_text('{"results": {}}')
    stop_at_save = ("import runpy, sys, torch\n"
                    "def save(obj, f):\n"
                    "    raise KeyboardInterrupt\n"
                    "torch.save = save\n"
                    "sys.argv[0] = 'train.py'\n"
                    "runpy.run_path('train.py', run_name='__main__')\n")
    r = train(data_dir, out, "--max_iters=4", cmd=(sys.executable, "-c", stop_at_save), check=False)
    assert r.returncode == 130 and r.stderr.endswith("no checkpoint was saved yet: run the same command to start "
                                                     "again.\n"), r.stderr
    assert sorted(os.listdir(out)) == ["eval", "log.jsonl", "train.lock"] and (out / "log.jsonl").read_bytes() == old
    r = train(data_dir, out, "--max_iters=4")
    assert r.stdout.startswith(f"{out / 'log.jsonl'} has no checkpoint beside it; it is kept as "
                               f"{out / 'log.1.jsonl'}, and this run writes a new log.\n{out / 'eval'} holds the "
                               f"evaluation of a run whose checkpoint is not there; it is kept as {out / 'eval.1'}, "
                               f"and this run starts without one.\n"), r.stdout
    assert not (out / "eval").exists() and (out / "eval.1" / "results.json").read_text() == '{"results": {}}'
    assert (out / "log.1.jsonl").read_bytes() == old and (out / "log.jsonl").read_bytes() != old
    # a resume of a checkpoint received with its eval/ but no log.jsonl: its own evaluation was moved to eval.2, "of
    # a run whose checkpoint is not there"
    (out / "eval").mkdir()
    (out / "eval" / "results.json").write_text('{"results": {}}')
    (out / "log.jsonl").unlink()
    r = train(data_dir, out, "--max_iters=6", "--init_from=resume")
    assert "holds the evaluation" not in r.stdout and (out / "eval" / "results.json").is_file(), r.stdout


def test_a_conversion_of_an_unfinished_run_says_which_iteration_it_converts(finished, data_dir, tmp_path):
    # pass 40: train.py --init_from=RUN of a run stopped at iteration 2 of its 6 printed "RUN: converted to ..." alone,
    # where sample.py and eval.py name that checkpoint's iteration as not finished
    src = shutil.copytree(finished, tmp_path / "src")
    ckpt = torch.load(src / "ckpt.pt", weights_only=True)
    ckpt["config"]["max_iters"] = 6
    torch.save(ckpt, src / "ckpt.pt")
    out = train(data_dir, tmp_path / "conv", "--max_iters=2", f"--init_from={src}").stdout
    assert (f"{src} holds iteration 2 of its run's 6: not finished (still training, or stopped), so this converts "
            f"that iteration.") in out
    assert "unfinished" not in read_log(tmp_path / "conv")[0]["conversion"]
