"""Bad files, each refused in one sentence that names the file and the fix (no traceback, nothing written), or
accepted where harmless: data checked against meta.json, checkpoints checked against their own model_args, files
written atomically, and tracked results in assets/ that only a study's complete, full run replaces."""

import argparse
import ast
import csv
import errno
import glob
import hashlib
import io
import json
import math
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

import checkpoint
import prepare_slimpajama as P
from configurator import configure
from experiments import analyze, cpu_lm, retrofit, rope, scaling
from model import GPT, GPTConfig
from test_bad_inputs import run_here, tree_digest
from test_train import ROOT, TINY, make_data, run_inprocess, train

PY = sys.executable
QKV = [*TINY, "--proj=qkv"]  # the tiny model, as a qkv run (the retrofit study's source variant)


def run(argv, cwd=ROOT):
    """A script as a user runs it: python ARGV from cwd, the repository importable from anywhere."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    return subprocess.run([PY, *argv], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def refused(r, names):
    """Exit non-zero, no traceback, and one line on stderr, naming `names`."""
    assert r.returncode != 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and names in lines[0], r.stderr


def files(path):
    return sorted(os.path.relpath(os.path.join(d, f), path) for d, _, names in os.walk(path) for f in names
                  if f != "train.lock")


# ---------------------------------------------------------------------------------------------------------------
# data: the bins against meta.json

def set_meta(path, **fields):
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, **fields}))


def truncate(path):
    np.fromfile(path / "train.bin", dtype=np.uint16)[:19_000].tofile(path / "train.bin")


def extend(path):
    with open(path / "train.bin", "ab") as f:
        f.write(np.ones(500, dtype=np.uint16).tobytes())


def as_uint32(path):  # another program's bins, read as uint16 they would be other tokens
    for split in ("train", "val"):
        np.fromfile(path / f"{split}.bin", dtype=np.uint16).astype(np.uint32).tofile(path / f"{split}.bin")


def odd(path):
    with open(path / "val.bin", "ab") as f:
        f.write(b"\x01")


def big_token(path):  # bins of another tokenizer than meta.json names: not recorded (data prepared before it was)
    val = np.fromfile(path / "val.bin", dtype=np.uint16)
    val[123] = 300
    val.tofile(path / "val.bin")


def bin_is_a_folder(path):
    os.remove(path / "val.bin")
    os.mkdir(path / "val.bin")


def no_validation(path):  # prepared with --val_fraction=0: no block_size can help, unlike a short split
    (path / "val.bin").write_bytes(b"")
    set_meta(path, val_tokens=0)


def no_validation_asked(path):  # prepared with --val_tokens=0: the split is there, the fix is that setting
    no_validation(path)
    set_meta(path, settings={"val_tokens": 0, "val_fraction": 0.1})


def partly_prepared(path):  # a prepare_slimpajama.py run stopped midway (Ctrl-C, kill): its command finishes it
    os.remove(path / "meta.json")
    (path / "progress.json").write_text("{}")


def a_file(path):
    shutil.rmtree(path)
    path.write_text("a file, not the data folder")


DATA_CASES = [
    (truncate, "{d}/train.bin holds 19,000 uint16 tokens and {d}/meta.json records 20,000 (cut short); delete {d} "
               "and prepare it again with prepare_slimpajama.py."),
    (extend, "{d}/train.bin holds 20,500 uint16 tokens and {d}/meta.json records 20,000 (extended, or written with a "
             "wider dtype); delete {d} and prepare it again with prepare_slimpajama.py."),
    (as_uint32, "{d}/train.bin holds 40,000 uint16 tokens and {d}/meta.json records 20,000 (extended, or written "
                "with a wider dtype); delete {d} and prepare it again with prepare_slimpajama.py."),
    (lambda d: set_meta(d, dtype="uint32"), "{d}/meta.json records dtype 'uint32', and train.py reads uint16 tokens; "
                                            "delete {d} and prepare it again with prepare_slimpajama.py."),
    (odd, "{d}/val.bin holds 8,001 bytes, an odd number, so it is no file of uint16 tokens (cut short, or written by "
          "another program); delete {d} and prepare it again with prepare_slimpajama.py."),
    (lambda d: set_meta(d, train_max_token=300, val_max_token=16),
     "{d}/train.bin holds token id 300, at or above vocab_size 256 of its tokenizer 'bytes' in {d}/meta.json: the "
     "bins are not that tokenizer's ids (the model would fail on them); delete {d} and prepare it again with "
     "prepare_slimpajama.py."),
    (big_token, "{d}/val.bin holds token id 300, at or above vocab_size 256"),
    (bin_is_a_folder, "{d}/val.bin is not a file; delete {d} and prepare it again with prepare_slimpajama.py."),
    (no_validation, "{d}/val.bin holds 0 tokens; delete {d} and prepare it again with more text and a "
                    "validation split (--val_fraction above 0, or --val_input)."),
    (no_validation_asked, "{d}/val.bin holds no tokens: {d} was prepared with --val_tokens=0; delete {d} and "
                          "prepare it again with --val_tokens above 0."),
    # was the hub's command, `prepare_slimpajama.py --out_dir=DATA`, whatever inputs the stopped run had
    (partly_prepared, "data_dir '{d}' is partly prepared (progress.json, no meta.json yet): run the "
                      "prepare_slimpajama.py command that began it again to finish it."),
    (a_file, "data_dir '{d}' is a file, not a directory; set --data_dir to the folder prepare_slimpajama.py wrote."),
    # a meta.json that the checkpoint would keep and load_checkpoint refuse: train.py trained and saved on it
    (lambda d: set_meta(d, eot_token=300), "{d}/meta.json holds eot_token = 300, which is no token id below its "
                                           "vocab_size 256: the file is edited or foreign; delete {d} and prepare"),
    (lambda d: set_meta(d, eot_token="x"), "{d}/meta.json holds eot_token = 'x', which is no token id"),
    (lambda d: set_meta(d, tokenizer="r50k_base"), "{d}/meta.json names tokenizer 'r50k_base' (50257 tokens) with "
                                                   "vocab_size 256: the file is edited or foreign; delete {d}"),
    # a TypeError traceback (unhashable), and "set --vocab_size=1,180,591,620,717,411,303,424"
    (lambda d: set_meta(d, tokenizer=["bytes"]), "{d}/meta.json records tokenizer ['bytes'], which is no tokenizer "
                                                 "name: the file is edited or foreign; delete {d}"),
    (lambda d: set_meta(d, vocab_size=2 ** 70), "{d}/meta.json records vocab_size 1,180,591,620,717,411,303,424, more "
                                                "ids than uint16 tokens hold (65,536): the file is edited or foreign"),
]


@pytest.mark.parametrize("damage, message", DATA_CASES, ids=["truncated", "extended", "uint32 bins", "uint32 meta",
                                                             "odd size", "recorded token id", "unrecorded token id",
                                                             "bin is a folder", "no validation", "val_tokens 0", "partly prepared", "data_dir a file",
                                                             "eot beyond vocab", "eot no int", "tokenizer vocab",
                                                             "tokenizer a list", "vocab beyond uint16"])
def test_data_that_disagrees_with_meta_json_is_one_sentence(tmp_path, damage, message):
    d = tmp_path / "data"
    make_data(d)
    damage(d)
    with pytest.raises(SystemExit) as e:
        checkpoint.open_data(str(d), 32, 256)
    assert str(e.value).startswith(message.format(d=d)), str(e.value)


def test_data_dir_under_a_file_is_not_told_to_prepare_there(tmp_path):
    (tmp_path / "input.txt").write_text("text")  # was "has no train.bin; prepare it with ... --out_dir=input.txt/x"
    with pytest.raises(SystemExit) as e:
        checkpoint.open_data(str(tmp_path / "input.txt" / "x" / "y"), 32, 256)
    assert str(e.value) == (f"data_dir '{tmp_path}/input.txt/x/y' lies under '{tmp_path}/input.txt', which is a "
                            f"file; set --data_dir to the folder prepare_slimpajama.py wrote.")
    assert checkpoint.file_above(str(tmp_path / "new" / "x")) is None  # a folder to make: prepare's advice stands


def test_data_being_prepared_now_is_told_to_wait_not_to_run_prepare_again(tmp_path):
    # train.py beside a prepare_slimpajama.py run still filling its data_dir was told to run that command again,
    # which its lock then refused
    d = tmp_path / "data"
    make_data(d)
    partly_prepared(d)
    with checkpoint.hold_lock(str(d), "held by the test, as prepare holds it"):
        with pytest.raises(SystemExit) as e:
            checkpoint.open_data(str(d), 32, 256)
    assert str(e.value) == f"data_dir '{d}' is being prepared by a prepare_slimpajama.py run now (progress.json, no " \
                           f"meta.json yet): wait for it to end, then run this again."
    with pytest.raises(SystemExit, match="is partly prepared"):  # stopped: its command finishes it
        checkpoint.open_data(str(d), 32, 256)


def test_data_without_the_recorded_fields_still_opens(tmp_path):
    make_data(tmp_path)  # meta.json as prepared before dtype and the largest ids were recorded
    assert checkpoint.open_data(str(tmp_path), 32, 256)["vocab_size"] == 256
    set_meta(tmp_path, dtype="uint16", train_max_token=16, val_max_token=16)
    assert checkpoint.open_data(str(tmp_path), 32, 512)["train_max_token"] == 16
    # a notebook's pathlib.Path, as load_checkpoint and tokens take: shlex.quote's TypeError traceback
    assert checkpoint.open_data(tmp_path, 32, 256)["vocab_size"] == 256


def gone(path):
    """path as a link to a file that is not there (a disk not mounted, a run moved away)."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    path.symlink_to(path.parent / "unmounted" / path.name)
    return f"{path} is a link to '{path.parent / 'unmounted' / path.name}', which does not exist (a disk not " \
           f"mounted, a folder moved?); restore what it points to, or remove the link."


@pytest.mark.parametrize("name", ["train.bin", "val.bin", "meta.json", "."])
def test_a_link_to_data_that_is_gone_is_named_not_taken_for_no_file(tmp_path, name):
    # was "has no val.bin, only train.bin and meta.json; delete DATA and prepare it": deleting a folder of links
    d = tmp_path / "data"
    make_data(d)
    message = gone(d if name == "." else d / name)
    with pytest.raises(SystemExit, match="^" + re.escape(message) + "$"):
        checkpoint.open_data(str(d), 32, 256)


@pytest.mark.parametrize("name", ["train.bin", "progress.json", "."])
def test_prepare_into_a_link_that_is_gone_is_one_sentence(tmp_path, name):
    # a FileNotFoundError traceback (and a progress.json left), or "not a writable directory (File exists)"
    (tmp_path / "in.txt").write_text("some text to prepare\n" * 50)
    out = tmp_path / "data"
    out.mkdir()
    message = gone(out if name == "." else out / name)
    if name == ".":
        message = f"{out} is not a writable directory (a link to '{tmp_path / 'unmounted' / 'data'}', which does " \
                  f"not exist); choose another --out_dir."
    with pytest.raises(SystemExit, match="^" + re.escape(message) + "$"):
        prepare(out, f"--input={tmp_path / 'in.txt'}", "--val_fraction=0.1")
    assert (out if name == "." else out / name).is_symlink()
    assert sorted(os.listdir(tmp_path)) == ["data", "in.txt"] and (name == "." or os.listdir(out) == [name])


def test_a_checkpoint_received_under_another_name_is_named(tmp_path):
    # a run's ckpt.pt downloaded by a browser as "ckpt (1).pt": "no checkpoint at dl/ckpt.pt: train one with train.py"
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "ckpt (1).pt").write_bytes(b"x")
    got = str(tmp_path / "dl" / "ckpt (1).pt")
    with pytest.raises(SystemExit) as e:
        checkpoint.load_checkpoint(str(tmp_path / "dl"))  # sample.py and eval.py
    assert str(e.value) == (f"no checkpoint at {tmp_path / 'dl' / 'ckpt.pt'}, but {tmp_path / 'dl'} holds ckpt (1).pt: "
                            f"if that is the checkpoint, rename it (`mv '{got}' {tmp_path / 'dl' / 'ckpt.pt'}`).")
    (tmp_path / "dl" / "log.jsonl").write_text("{}\n")  # the run's log received with it: "has saved none; wait"
    with pytest.raises(SystemExit, match=r"holds ckpt \(1\).pt: if that is the checkpoint, rename it"):
        checkpoint.load_checkpoint(str(tmp_path / "dl"))
    (tmp_path / "dl" / "train.lock").write_text(f"{os.getpid()}\n")  # a run under way there: its first save would
    with pytest.raises(SystemExit, match="has saved none"):  # replace a ckpt_old.pt renamed ckpt.pt as told
        checkpoint.load_checkpoint(str(tmp_path / "dl"))
    (tmp_path / "dl" / "train.lock").unlink()
    (tmp_path / "dl" / "log.jsonl").unlink()
    (tmp_path / "dl" / "ckpt (2).pt").write_bytes(b"x")  # two: which is the run's is not guessed, both are named
    with pytest.raises(SystemExit, match=r"holds ckpt \(1\).pt, ckpt \(2\).pt: rename the one that is the checkpoint"):
        checkpoint.load_checkpoint(str(tmp_path / "dl"))


def test_a_checkpoint_renamed_by_hand_is_named(tmp_path):
    # `mv out/ckpt.pt out/model.pt` to keep it: "the run in out has saved none; wait for it", of a run that had
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "model.pt").write_bytes(b"x")
    (tmp_path / "out" / "log.jsonl").write_text("{}\n")
    with pytest.raises(SystemExit, match=r"holds model.pt: if that is the checkpoint, rename it \(`mv "):
        checkpoint.load_checkpoint(str(tmp_path / "out"))


def test_a_run_copied_into_an_existing_out_dir_is_named(tmp_path, monkeypatch):
    # `cp -r run out` with out already there lands in out/run: a resume of out was told "check --out_dir or use
    # --init_from=scratch", and sample.py and eval.py "train one with train.py"
    (tmp_path / "out" / "run").mkdir(parents=True)
    (tmp_path / "out" / "run" / "ckpt.pt").write_bytes(b"x")
    out, inside = tmp_path / "out", tmp_path / "out" / "run"
    with pytest.raises(SystemExit) as e:
        checkpoint.load_checkpoint(str(out))
    assert str(e.value) == (f"no checkpoint at {out / 'ckpt.pt'}, but {out} holds the run folder run (copied into "
                            f"it with cp -r?): point --out_dir at {inside}.")
    assert run_inprocess(monkeypatch, [f"--out_dir={out}", "--init_from=resume"]) == (
        f"init_from='resume' but {out / 'ckpt.pt'} does not exist; {out} holds the run folder run (copied into it "
        f"with cp -r?): point --out_dir at {inside}, then resume.")
    (tmp_path / "out" / "run2").mkdir()  # a parent of several runs names them, choosing none
    (tmp_path / "out" / "run2" / "ckpt.pt").write_bytes(b"x")
    with pytest.raises(SystemExit, match="holds the run folders run, run2: point --out_dir at the one to use"):
        checkpoint.load_checkpoint(str(out))


@pytest.mark.parametrize("name", ["ckpt.pt", "log.jsonl", "train.lock", "."])
def test_a_link_in_out_dir_that_is_gone_is_refused_not_replaced(tmp_path, name, monkeypatch):
    # a scratch run took a link to an unmounted ckpt.pt for no checkpoint, trained, and replaced the link; sample.py
    # and --init_from=resume said "no checkpoint at out/ckpt.pt: train one"
    make_data(tmp_path / "data")
    out = tmp_path / "out"
    out.mkdir()
    message = gone(out if name == "." else out / name)
    for init in ("scratch", "resume"):
        assert run_inprocess(monkeypatch, [f"--data_dir={tmp_path / 'data'}", f"--out_dir={out}", "--max_iters=2",
                                           f"--init_from={init}"]) == message
    if name in ("ckpt.pt", "."):
        ckpt = out / "ckpt.pt" if name == "ckpt.pt" else out
        with pytest.raises(SystemExit, match="^" + re.escape(message) + "$"):
            checkpoint.load_checkpoint(str(out))  # sample.py and eval.py
        assert run_inprocess(monkeypatch, [f"--data_dir={tmp_path / 'data'}", f"--out_dir={tmp_path / 'new'}",
                                           f"--init_from={ckpt}"]) == message
    assert (out if name == "." else out / name).is_symlink()  # kept, as it was
    assert sorted(os.listdir(tmp_path)) == ["data", "out"]


def test_train_refuses_bad_data_before_any_work(tmp_path):
    make_data(tmp_path / "data")  # today: an index error at step 0 inside the embedding
    big_token(tmp_path / "data")
    r = train(tmp_path / "data", tmp_path / "out", "--max_iters=2", check=False)
    refused(r, "val.bin holds token id 300")
    assert not (tmp_path / "out").exists()


def prepare(out, *args):
    P.main([f"--out_dir={out}", "--commit_seconds=0", "--tokenizer=bytes", *args])
    return json.loads((out / "meta.json").read_text())


def test_prepare_records_what_it_wrote_and_rebuilds_only_when_told(tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("To be, or not to be, that is the question.\n" * 40 + "\u00e9\n" * 20)
    out, args = tmp_path / "d", ["--input", str(text), "--val_fraction=0.1"]
    meta = prepare(out, *args)
    train_bin, val_bin = (np.fromfile(out / f"{s}.bin", dtype=np.uint16) for s in ("train", "val"))
    assert meta["dtype"] == "uint16" and (meta["train_max_token"], meta["val_max_token"]) == (ord("u"), 0xc3)
    assert (meta["train_max_token"], meta["val_max_token"]) == (train_bin.max(), val_bin.max())  # 0xc3: é's first byte
    assert checkpoint.open_data(str(out), 32, 256) == meta
    # train.py's advice for a missing bin is to prepare it: the same command must not answer "nothing to do"
    for damage, held in ((lambda: os.remove(out / "train.bin"), "is missing"),
                         (lambda: train_bin[:100].tofile(out / "train.bin"), "holds 200 bytes")):
        damage()
        with pytest.raises(SystemExit) as e:
            prepare(out, *args)
        assert str(e.value) == (f"error: {out}/train.bin {held}, and {out}/meta.json records {meta['train_tokens']:,} "
                                f"tokens ({2 * meta['train_tokens']:,} bytes); delete {out} and run this command "
                                f"again to rebuild it")
    shutil.rmtree(out)
    assert prepare(out, *args) == meta


@pytest.mark.parametrize("lost", ["meta.json", "train.bin"])
def test_a_data_dir_missing_one_file_is_told_to_delete_it_before_preparing_again(tmp_path, lost):
    # "prepare it with `... --out_dir=d`" met prepare's "not overwriting" / "delete d" for the files still there
    text = tmp_path / "in.txt"
    text.write_text("To be, or not to be, that is the question.\n" * 40)
    out, args = tmp_path / "d", ["--input", str(text), "--val_fraction=0.1"]
    meta = prepare(out, *args)
    os.remove(out / lost)
    with pytest.raises(SystemExit) as e:
        checkpoint.open_data(str(out), 32, 256)
    held = " and ".join(n for n in ("train.bin", "val.bin", "meta.json") if n != lost)
    assert str(e.value).startswith(f"data_dir {str(out)!r} has no {lost}, only {held}; delete {out} and prepare it "
                                   f"with `python prepare_slimpajama.py ")
    with pytest.raises(SystemExit):  # the command alone refuses the folder
        prepare(out, *args)
    shutil.rmtree(out)  # as told
    assert prepare(out, *args) == meta and checkpoint.open_data(str(out), 32, 256) == meta


@pytest.mark.parametrize("name, content", [("in.txt", ""), ("in.jsonl", "\n  \n"), ("in.jsonl", '{"text": ""}\n'),
                                           ("in.txt", "\0\0\0")],  # was 1 token, the separator, exit 0
                         ids=["empty txt", "blank jsonl", "empty documents", "NUL bytes only"])
def test_prepare_refuses_an_input_without_text(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path / "d", "--input", str(path))
    assert str(e.value) == (f"error: the input holds no text for train.bin ({path} read, 0 bad line(s) and 0 bad "
                            "file(s) skipped); give files that hold documents")
    assert not (tmp_path / "d").exists()  # no dataset of 0 tokens left behind to look made, nor the folder it made


@pytest.mark.parametrize("content", ["To be, or not to be.\n".encode("utf-16-le") * 40, bytes(range(1, 17)) * 90],
                         ids=["UTF-16 without BOM", "token ids"])
def test_prepare_refuses_a_binary_txt_before_beginning_out_dir(tmp_path, content):
    # both decode as UTF-8: they were prepared as text of control characters with exit 0
    path = tmp_path / "in.txt"
    path.write_bytes(content)
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path / "d", "--input", str(path))
    if content[1] == 0:  # UTF-16 without its mark is named, with the command that converts it (as in a .jsonl)
        assert str(e.value) == (f"error: {path}: not UTF-8; it is UTF-16 without a byte-order mark (every other byte "
                                f"NUL): convert it, e.g. iconv -f UTF-16LE -t UTF-8 {path} > {tmp_path / 'in_2.txt'}, "
                                f"and give {tmp_path / 'in_2.txt'} in its place (out of a folder or glob given as "
                                f"input, move {path} away); or rerun with --skip_bad to skip and count such input")
    else:
        assert str(e.value) == (f"error: {path}: not text: 62% of its first {len(content):,} bytes are control "
                                f"characters (NUL and the like), as in a binary file or UTF-16 text without a "
                                f"byte-order mark; give it as UTF-8 text, or rerun with --skip_bad to skip and count "
                                f"such input")
    assert not (tmp_path / "d").exists()
    text = tmp_path / "text.txt"
    text.write_text("To be, or not to be, that is the question.\n" * 40)
    meta = prepare(tmp_path / "d", "--input", str(path), str(text), "--skip_bad", "--val_fraction=0.1")
    assert meta["skipped_shards"] == [str(path)] and meta["train_tokens"] + meta["val_tokens"] > 1000


def test_prepare_takes_formatted_text_with_many_controls_as_text(tmp_path):
    # a man page as nroff formats it (bold overstruck: N\bNA\bAM\bME\bE, a third of it backspaces) was "not text
    # ... as in a binary file"; tabs, page breaks and ANSI colours were text already
    text = "".join(f"{c}\b{c}" for c in "NAME  ls - list directory contents") + "\n\t\f\x1b[1mls\x1b[0m\n"
    path = tmp_path / "ls.txt"
    path.write_text(text * 40)
    meta = prepare(tmp_path / "d", "--input", str(path), "--val_fraction=0.1")
    assert meta["train_tokens"] + meta["val_tokens"] > 1000 and not meta["skipped_shards"]


def test_prepare_names_an_input_this_user_cannot_read_before_beginning_out_dir(tmp_path, monkeypatch):
    # another user's input (mode 000; as root, refused by hand) began out_dir (empty bins, progress.json), then
    # "could not read in.txt (Permission denied) ... rerun the same command to resume"; inputs given next were
    # told "the input files changed since d was made"
    text = tmp_path / "in.txt"
    text.write_text("To be, or not to be, that is the question.\n" * 40)
    prepare(tmp_path / "done", "--input", str(text), "--val_fraction=0.1")
    monkeypatch.setattr(P, "unreadable", lambda p: "Permission denied" if p.endswith("in.txt") else None)
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path / "d", "--input", str(text), "--val_fraction=0.1")
    assert str(e.value) == (f"error: cannot read {text} (Permission denied); make it readable for this user, or leave "
                            f"it out")
    assert not (tmp_path / "d").exists()
    prepare(tmp_path / "done", "--input", str(text), "--val_fraction=0.1")  # made: nothing to read, nothing to do


def test_prepare_refuses_a_validation_split_that_holds_nothing(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("a" * 1000 + "\n")  # one line: no line starts past the 10% mark (was 0 val tokens, exit 0)
    with pytest.raises(SystemExit) as e:
        prepare(tmp_path / "d", "--input", str(path), "--val_fraction=0.1")
    assert str(e.value) == ("error: the input holds no text for val.bin (--val_fraction 0.1 splits off nothing: a "
                            ".txt file at the first line start past that mark, a .jsonl file one document in every "
                            "10); give more text or lines, or validation files with --val_input")
    assert not (tmp_path / "d").exists()  # was an empty folder
    (tmp_path / "mine").mkdir()  # a folder the user made stays
    with pytest.raises(SystemExit):
        prepare(tmp_path / "mine", "--input", str(path), "--val_fraction=0.1")
    assert (tmp_path / "mine").is_dir()


def edit_json(path, edit):
    obj = json.loads(path.read_text())
    edit(obj)
    path.write_text(json.dumps(obj))


@pytest.mark.parametrize("edit, error", [
    (lambda m: m.pop("train_tokens"), "unreadable"),  # a KeyError traceback
    (lambda m: m.update(settings=5), "unreadable"),  # an AttributeError traceback
    (lambda m: m.update(val_tokens="12"), "unreadable"),
    (lambda m: m.update(vocab_size=1000), "records vocab_size 1000, and this command writes 256"),  # "nothing to do"
    (lambda m: m.update(eot_token=10), "records eot_token 10, and this command writes 0"),
], ids=["no train_tokens", "settings", "val_tokens", "vocab_size", "eot_token"])
def test_prepare_refuses_a_meta_json_edited_by_hand(tmp_path, edit, error):
    text = tmp_path / "in.txt"
    text.write_text("To be, or not to be, that is the question.\n" * 40)
    out, args = tmp_path / "d", ["--input", str(text), "--val_fraction=0.1"]
    prepare(out, *args)
    edit_json(out / "meta.json", edit)
    with pytest.raises(SystemExit) as e:
        prepare(out, *args)
    assert error in str(e.value) and f"delete {out}" in str(e.value)


@pytest.mark.parametrize("edit", [
    lambda st: st.pop("next"),  # KeyError
    lambda st: st.update(next=[-1, 0]),  # the input read again after what was committed: exit 0, twice the tokens
    lambda st: st.update(next=[0, "a"]),  # TypeError
    lambda st: st.update(next=[9, 0]),  # past the shards: "the input holds no text"
    lambda st: st["tokens"].update(train=-5),  # OSError of truncate
    lambda st: st.update(documents={}),  # KeyError
], ids=["no next", "next -1", "next text", "next past", "tokens -5", "documents"])
def test_prepare_refuses_a_progress_json_edited_by_hand(tmp_path, edit):
    text = tmp_path / "in.txt"
    text.write_text("To be, or not to be, that is the question.\n" * 40)
    out, args = tmp_path / "d", ["--input", str(text), "--val_fraction=0.1"]
    prepare(out, *args)
    meta = json.loads((out / "meta.json").read_text())
    os.remove(out / "meta.json")
    progress = {"settings": meta["settings"], "next": [0, 0], "tokens": {"train": 0, "val": 0},
                "documents": {"train": 0, "val": 0}, "shards": {"train": [], "val": []}, "skipped": 0,
                "skipped_shards": [], "nul_bytes_dropped": 0}  # as a run killed before its first commit leaves it
    edit(progress)
    (out / "progress.json").write_text(json.dumps(progress))
    with pytest.raises(SystemExit) as e:
        prepare(out, *args)
    assert str(e.value) == (f"error: {out}/progress.json is unreadable or not written by this script (ValueError); "
                            f"delete {out} and start over, or use another --out_dir")
    # prepared into the folder of its text (nanoGPT's data/x/input.txt): "delete out_dir" deleted the text too
    os.replace(text, out / "input.txt")
    with pytest.raises(SystemExit) as e:
        prepare(out, "--input", str(out / "input.txt"), "--val_fraction=0.1")
    assert f"delete {out}/train.bin, {out}/val.bin and {out}/progress.json (not {out}: it holds input.txt too) and " \
        f"start over" in str(e.value)


def test_json_and_tables_saved_by_a_windows_editor_or_a_spreadsheet_read_as_written(tmp_path, capsys):
    # Notepad, PowerShell 5 and a spreadsheet's "CSV UTF-8" put a byte order mark first: meta.json was "not a JSON
    # object: delete it and prepare again", a study's table "not a table this study wrote"
    text = tmp_path / "in.txt"
    text.write_text("To be, or not to be, that is the question.\n" * 40)
    out, args = tmp_path / "d", ["--input", str(text), "--val_fraction=0.1"]
    meta = prepare(out, *args)
    (out / "meta.json").write_bytes(b"\xef\xbb\xbf" + (out / "meta.json").read_bytes().replace(b"\n", b"\r\n"))
    P.main([f"--out_dir={out}", "--commit_seconds=0", "--tokenizer=bytes", *args])
    assert capsys.readouterr().out.endswith("already holds this dataset; nothing to do\n")
    assert checkpoint.open_data(str(out), 32, 256) == meta
    # saved again by PowerShell 5's Out-File: UTF-16, told "delete it and prepare again" where iconv converts it back
    (out / "meta.json").write_text(json.dumps(meta), encoding="utf-16")
    for read in (lambda: checkpoint.open_data(str(out), 32, 256),
                 lambda: P.main([f"--out_dir={out}", "--commit_seconds=0", "--tokenizer=bytes", *args])):
        with pytest.raises(SystemExit) as e:
            read()
        assert str(e.value).removeprefix("error: ").rstrip(".") == (
            f"{out / 'meta.json'} is not UTF-8; it is UTF-16 (it starts with UTF-16's byte order mark): convert it, "
            f"e.g. iconv -f UTF-16 -t UTF-8 {out / 'meta.json'} > {out / 'meta_2.json'} && mv {out / 'meta_2.json'} "
            f"{out / 'meta.json'}")  # "iconv -f UTF-16 -t UTF-8" named no file, and iconv f > f empties f
    table = "variant,seed,length,loss\nqkv rope,1337,256,1.5\n"
    (tmp_path / "t.csv").write_bytes(b"\xef\xbb\xbf" + table.replace("\n", "\r\n").encode())
    assert checkpoint.read_table(str(tmp_path / "t.csv"), ["variant", "seed", "length", "loss"], text=["variant"]) == \
        [{"variant": "qkv rope", "seed": "1337", "length": "256", "loss": "1.5"}]
    # a table saved as UTF-16 (a spreadsheet's "Unicode text", PowerShell 5) was "cannot be read as a CSV
    # (UnicodeDecodeError); restore it", for a file iconv converts back, as meta.json is told; a long one too
    for rows in (1, 400):
        (tmp_path / "t.csv").write_text(table + "qkv rope,1337,256,1.5\n" * rows, encoding="utf-16")
        with pytest.raises(SystemExit) as e:
            checkpoint.read_table(str(tmp_path / "t.csv"), ["variant", "seed", "length", "loss"], text=["variant"])
        assert str(e.value) == (f"{tmp_path / 't.csv'} is not UTF-8; it is UTF-16 (it starts with UTF-16's byte order "
                                f"mark): convert it, e.g. iconv -f UTF-16 -t UTF-8 {tmp_path / 't.csv'} > "
                                f"{tmp_path / 't_2.csv'} && mv {tmp_path / 't_2.csv'} {tmp_path / 't.csv'}.")


def test_prepare_asked_again_under_another_locale_is_the_same_dataset(tmp_path, capsys):
    # under LC_ALL=C PYTHONUTF8=0 préface.txt reaches Python as 'pr\udcc3\udca9face.txt': its fingerprint hashed those
    # surrogates, and the same command under a UTF-8 locale was "the input files changed ... delete d to start over"
    (tmp_path / "préface.txt").write_text("To be, or not to be, that is the question.\n" * 40)
    out, c_name = tmp_path / "d", f"{tmp_path}/pr\udcc3\udca9face.txt"
    args = ["--commit_seconds=0", "--tokenizer=bytes", "--val_fraction=0.1", f"--out_dir={out}"]
    P.main([*args, "--input", c_name])
    P.main([*args, "--input", str(tmp_path / "préface.txt")])
    assert capsys.readouterr().out.endswith("already holds this dataset; nothing to do\n")
    # and a dataset an earlier version made under LC_ALL=C, asked again there, is still this one
    st = os.stat(tmp_path / "préface.txt")
    meta = json.loads((out / "meta.json").read_text())
    meta["settings"]["shards_sha1"] = hashlib.sha1(json.dumps([[c_name, "mixed", st.st_size, st.st_mtime_ns]])
                                                   .encode()).hexdigest()
    (out / "meta.json").write_text(json.dumps(meta))
    P.main([*args, "--input", c_name])
    assert capsys.readouterr().out.endswith("already holds this dataset; nothing to do\n")
    # ... and asked under a UTF-8 locale too: "the input files changed ... delete d to start over" (the digest as
    # given here names é, not the surrogates that version hashed)
    P.main([*args, "--input", str(tmp_path / "préface.txt")])
    assert capsys.readouterr().out.endswith("already holds this dataset; nothing to do\n")


def test_a_finished_run_on_data_prepared_again_is_found_whatever_the_locale(tmp_path):
    # jq writes meta.json's \\u00e9 as the UTF-8 of é; under LC_ALL=C PYTHONUTF8=0 train.py read it with the locale's
    # ASCII, took it for no meta.json, skipped its check, and called the run on other data "nothing to do"
    data, out = tmp_path / "d", tmp_path / "out"
    make_data(data)
    meta = {**json.loads((data / "meta.json").read_text()), "settings": {"shards_sha1": "a"}, "source": "pr\u00e9"}
    (data / "meta.json").write_text(json.dumps(meta))
    train(data, out, "--max_iters=2")
    meta["settings"]["shards_sha1"] = "b"  # prepared again from other files of the same length
    (data / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_")}
    r = subprocess.run([PY, "train.py", *TINY, f"--data_dir={data}", f"--out_dir={out}", "--max_iters=2"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, env=dict(env, LC_ALL="C", PYTHONUTF8="0"))
    refused(r, "trained on other data than")


def test_a_dataset_an_older_prepare_fingerprinted_by_size_is_this_dataset_or_told_to_start_over(tmp_path):
    # before ea7da02 the inputs' fingerprint held no modification times: the same command on such a folder was told
    # "the input files changed ... give the same files in the same order", which it had, and met the same refusal
    text = tmp_path / "in.txt"
    text.write_text("To be, or not to be, that is the question.\n" * 40)
    out, args = tmp_path / "d", ["--input", str(text), "--val_fraction=0.1"]
    meta = prepare(out, *args)
    older = hashlib.sha1(json.dumps([[str(text), "mixed", text.stat().st_size]]).encode()).hexdigest()
    edit_json(out / "meta.json", lambda m: m["settings"].update(shards_sha1=older))
    digest = tree_digest(out)
    assert prepare(out, *args)["train_tokens"] == meta["train_tokens"] and tree_digest(out) == digest
    progress = {"settings": {**meta["settings"], "shards_sha1": older}, "next": [0, 0],
                "tokens": {"train": 0, "val": 0}, "documents": {"train": 0, "val": 0},
                "shards": {"train": [], "val": []}, "skipped": 0,
                "skipped_shards": [], "nul_bytes_dropped": 0}  # that version's run killed before its first commit
    (out / "meta.json").rename(tmp_path / "meta.json")
    (out / "progress.json").write_text(json.dumps(progress))
    with pytest.raises(SystemExit) as e:
        prepare(out, *args)
    assert str(e.value) == (f"error: {out} is a run of this command cut short by an older version of this script, "
                            f"which did not record the files' modification times; delete {out} and run this command "
                            f"again to start over")
    assert json.loads((out / "progress.json").read_text()) == progress  # nothing written
    text.write_text("To be, or not to be, that is the question!!\n" * 40)  # other sizes: another dataset, as before
    os.remove(out / "progress.json")
    (tmp_path / "meta.json").rename(out / "meta.json")
    with pytest.raises(SystemExit) as e:
        prepare(out, *args)
    assert str(e.value).startswith(f"error: the input files changed since {out} was made from them")


def test_a_dataset_whose_folder_was_moved_or_copied_with_its_inputs_is_this_dataset(tmp_path):
    # `mv project project-old` (input.txt and data/ inside it): the quickstart's prepare step was "the input files
    # changed since ... delete it to start over", and the train step then refused the run trained on them. A copy
    # (`cp -r`, tar: new modification times) was the same until meta.json recorded its inputs' contents
    for val, older in ((False, False), (True, False), (False, True)):
        old, new = tmp_path / f"old{val:d}{older:d}", tmp_path / f"new{val:d}{older:d}"
        old.mkdir()
        (old / "input.txt").write_text("To be, or not to be, that is the question.\n" * 40)
        (old / "valid.txt").write_text("Whether 'tis nobler in the mind to suffer.\n" * 4)

        def args(d):
            return ["--input", str(d / "input.txt")] + (["--val_input", str(d / "valid.txt")] if val else
                                                        ["--val_fraction=0.1"])
        meta = prepare(old / "data", *args(old))
        if older:  # made before inputs_sha256: matched by names, sizes and times
            del meta["inputs_sha256"]
            (old / "data" / "meta.json").write_text(json.dumps(meta))
        old.rename(new)
        digest = tree_digest(new / "data")
        assert prepare(new / "data", *args(new)) == meta and tree_digest(new / "data") == digest
        (new / "input.txt").rename(new / "other.txt")  # another name, the same bytes and time: as before, refused
        with pytest.raises(SystemExit, match="^error: the input files changed since"):
            prepare(new / "data", *(a.replace("input.txt", "other.txt") for a in args(new)))
        (new / "other.txt").rename(new / "input.txt")
        os.utime(new / "input.txt", ns=(0, 0))  # the same name, size and bytes, another time: a copy's
        if older:
            with pytest.raises(SystemExit, match="^error: the input files changed since"):
                prepare(new / "data", *args(new))
        else:
            assert prepare(new / "data", *args(new)) == meta
        (new / "input.txt").write_text("To be, or not to be: that is the question.\n" * 40)  # an edit, the same size
        with pytest.raises(SystemExit, match="^error: the input files changed since"):
            prepare(new / "data", *args(new))
        assert tree_digest(new / "data") == digest


def test_a_copied_project_prepared_again_resumes_its_run(tmp_path):
    # cp -r without data/ (or data/ deleted as "the input files changed" advised): prepared again from the copy's
    # input.txt, of new modification times, its shards_sha1 is another, and train.py refused to resume the run
    # trained on the same text as "trained on input files of other names, sizes or modification times"
    (tmp_path / "input.txt").write_text("To be, or not to be, that is the question.\n" * 40)
    was = prepare(tmp_path / "data", "--input", str(tmp_path / "input.txt"), "--val_fraction=0.1")
    os.utime(tmp_path / "input.txt", ns=(0, 0))
    shutil.rmtree(tmp_path / "data")
    now = prepare(tmp_path / "data", "--input", str(tmp_path / "input.txt"), "--val_fraction=0.1")
    assert was["settings"]["shards_sha1"] != now["settings"]["shards_sha1"] and checkpoint.other_data(was, now) == []
    (tmp_path / "input.txt").write_text("To be, or not to be: that is the question.\n" * 40)  # other text, same size
    shutil.rmtree(tmp_path / "data")
    now = prepare(tmp_path / "data", "--input", str(tmp_path / "input.txt"), "--val_fraction=0.1")
    # other contents, as both record them: not "perhaps" other data, as the line said of this text (train.py's
    # resume too, "records perhaps other data")
    assert checkpoint.other_data(was, now) == ["input files of other contents (inputs_sha256) than the checkpoint's"]
    assert checkpoint.not_its_data(checkpoint.other_data(was, now)).startswith("not the data")
    # a copy of the same text under another name (in.txt), whose inputs_sha256 (names and contents) differs too, or
    # a checkpoint whose data recorded no contents (an older prepare), may be the very same tokens: sample.py and
    # analyze.py called them "not the data the checkpoint was trained on"; where the token counts differ they are not
    (tmp_path / "in.txt").write_text("To be, or not to be, that is the question.\n" * 40)
    shutil.rmtree(tmp_path / "data")
    now = prepare(tmp_path / "data", "--input", str(tmp_path / "in.txt"), "--val_fraction=0.1")
    assert checkpoint.not_its_data(checkpoint.other_data(was, now)).startswith("perhaps not the data")
    was = {k: v for k, v in was.items() if k != "inputs_sha256"}
    assert checkpoint.other_data(was, now) == [
        "input files of other names, sizes or modification times than the checkpoint's"]
    assert checkpoint.not_its_data(checkpoint.other_data(was, now)).startswith("perhaps not the data")
    assert checkpoint.not_its_data(["val_tokens 9 (checkpoint: 8)"]) == \
        "not the data the checkpoint was trained on: val_tokens 9 (checkpoint: 8)"


# ---------------------------------------------------------------------------------------------------------------
# checkpoints: refused in one line by every script that reads them, or accepted where harmless

WEIGHT = "transformer.h.0.mlp.c_fc.weight"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Data, a tiny qkv run trained for 2 iterations, and broken copies of its checkpoint."""
    w = tmp_path_factory.mktemp("files")
    make_data(w / "data")
    r = run(["train.py", *QKV, f"--data_dir={w / 'data'}", f"--out_dir={w / 'run'}", "--max_iters=2"])
    assert r.returncode == 0, r.stderr
    good = torch.load(w / "run" / "ckpt.pt", weights_only=True)

    def variant(name, change=None, raw=None):
        (w / name).mkdir()
        if raw is not None:
            (w / name / "ckpt.pt").write_bytes(raw)
            return
        ckpt = {**good, "model": dict(good["model"]), "optimizer": dict(good["optimizer"])}
        change(ckpt)
        torch.save(ckpt, w / name / "ckpt.pt")

    variant("shapes", lambda c: c["model"].update({WEIGHT: torch.zeros(64, 32)}))
    variant("missing", lambda c: c["model"].pop("transformer.h.1.attn.c_proj.weight"))
    variant("compiled", lambda c: c.update(model={"_orig_mod." + k: v for k, v in c["model"].items()}))
    variant("emptyopt", lambda c: c["optimizer"].update(state={}))
    variant("nan", lambda c: c["model"].update({WEIGHT: torch.full((128, 32), float("nan"))}))
    variant("listmodel", lambda c: c.update(model=list(c["model"])))
    variant("empty", raw=b"")
    variant("truncated", raw=(w / "run" / "ckpt.pt").read_bytes()[:4096])
    variant("foreign", lambda c: [c.pop(k) for k in list(c) if k != "model"])
    variant("listconfig", lambda c: c.update(config=[1, 2]))
    variant("iterstr", lambda c: c.update(iter_num="2"))
    variant("negiter", lambda c: c.update(iter_num=-3))
    variant("rng", lambda c: c.update(rng=[{"cpu": torch.zeros(3)}]))
    variant("norng", lambda c: c.update(rng=[]))  # resumed with fresh random states and no word
    variant("nometa", lambda c: c.update(meta=None))
    variant("othertok", lambda c: c.update(meta={**c["meta"], "tokenizer": "r50k_base"}))
    variant("int8", lambda c: c["model"].update({WEIGHT: c["model"][WEIGHT].to(torch.int8)}))
    variant("optshape", lambda c: c["optimizer"].update(
        state={**c["optimizer"]["state"], WEIGHT: {**c["optimizer"]["state"][WEIGHT], "exp_avg": torch.zeros(1)}}))
    variant("bigeot", lambda c: c.update(meta={**c["meta"], "eot_token": 9999}))
    variant("listtok", lambda c: c.update(meta={**c["meta"], "tokenizer": ["bytes"]}))  # was VOCABS.get's TypeError
    variant("floatlayers", lambda c: c.update(model_args={**c["model_args"], "n_layer": 2.0}))
    variant("nomoments", lambda c: c["optimizer"].update(
        state={k: v for k, v in c["optimizer"]["state"].items() if k != WEIGHT}))
    variant("nogroup", lambda c: c["optimizer"].update(param_groups=c["optimizer"]["param_groups"][:1]))
    variant("ddint", lambda c: c.update(config={**c["config"], "data_dir": 5}))  # was os.path.join's TypeError
    variant("nostep", lambda c: c["optimizer"].update(  # resumed with AdamW's bias correction started over
        state={**c["optimizer"]["state"], WEIGHT: {k: v for k, v in c["optimizer"]["state"][WEIGHT].items()
                                                   if k != "step"}}))
    variant("nanbest", lambda c: c.update(best_val_loss=math.nan))  # never improved on: no save at any evaluation
    variant("negbest", lambda c: c.update(best_val_loss=-1.0))
    variant("betas", lambda c: c["optimizer"].update(
        param_groups=[{**c["optimizer"]["param_groups"][0], "betas": "x"}, *c["optimizer"]["param_groups"][1:]]))
    # n_head edited over weights of the same shapes: another model, sampled with exit 0 (the twentieth pass)
    def by_position(c, swap=False):  # the optimizer state as files before issue 16 keyed it
        opt = c["optimizer"]
        flat = [n for g in opt["param_groups"] for n in g["params"]]
        groups = [{**g, "params": [flat.index(n) for n in g["params"]]} for g in opt["param_groups"]]
        c["optimizer"] = {"state": {flat.index(n): s for n, s in opt["state"].items()},
                          "param_groups": groups[::-1] if swap else groups}

    # older groups than this model's: a ValueError traceback in torch's load_state_dict (the twentieth pass)
    variant("posgroups", lambda c: by_position(c, swap=True))
    variant("posnomoments", lambda c: [by_position(c), c["optimizer"]["state"].pop(0)])  # resumed without a word
    # tied weights of other values: lm_head's replaced the embedding on load, without a word (the twentieth pass)
    variant("untied", lambda c: c["model"].update({"lm_head.weight": c["model"]["lm_head.weight"] + 1}))
    variant("editedargs", lambda c: c.update(model_args={**c["model_args"], "n_head": c["model_args"]["n_head"] * 2}))
    return w


def as_trained(ckpt, config, **fields):
    """ckpt made a study's own run of config: a model of config's shape (random weights) and its model_args, which
    train.py saves alike with config (load_checkpoint refuses a file where they differ, as one edited by hand)."""
    args = {k: config[k] for k in asdict(GPTConfig())}
    torch.manual_seed(0)
    return {**ckpt, "config": config, "model_args": args, "model": GPT(GPTConfig(**args)).state_dict(), **fields}


CKPT_MESSAGES = {
    "shapes": "{p} holds transformer.h.0.mlp.c_fc.weight of shape (64, 32), and its model_args make (128, 32): its "
              "weights do not match its own model_args; restore the file or train again.",
    "missing": "{p} lacks transformer.h.1.attn.c_proj.weight: its weights do not match its own model_args; restore "
               "the file or train again.",
    "emptyopt": "{p} has an empty or malformed optimizer state at iteration 2; it cannot resume exactly: restore the "
                "file, or start from its weights with --init_from={d} in a new out_dir.",
    "nan": "{p} holds NaN or inf in transformer.h.0.mlp.c_fc.weight: the file is damaged; restore it or train again.",
    "listmodel": "{p} holds a 'model' that is no dict of tensors: it is not a checkpoint written by train.py; point "
                 "to an out_dir/ckpt.pt that train.py saved.",
    "empty": "{p} is corrupt or not a checkpoint written by train.py (EOFError); restore it or train again.",
    "truncated": "{p} is corrupt or not a checkpoint written by train.py",
    "foreign": "{p} has no model_args, optimizer, iter_num: it is not a checkpoint written by train.py; point to an "
               "out_dir/ckpt.pt that train.py saved.",
    "optshape": "{p} holds an optimizer state for transformer.h.0.mlp.c_fc.weight that does not fit that weight; it "
                "cannot resume exactly: restore the file, or start from its weights with --init_from={d} in a new "
                "out_dir.",
    # a RuntimeError traceback on resume; and, without the second group (biases, gains), a resume without a word
    "nomoments": "{p} holds no optimizer state for transformer.h.0.mlp.c_fc.weight; it cannot resume exactly: "
                 "restore the file, or start from its weights with --init_from={d} in a new out_dir.",
    "nogroup": "{p} holds no optimizer state for transformer.h.0.ln_1.weight; it cannot resume exactly",
    "nostep": "{p} holds an optimizer state for transformer.h.0.mlp.c_fc.weight without its step count; it cannot "
              "resume exactly: restore the file, or start from its weights with --init_from={d} in a new out_dir.",
    # a KeyError traceback inside torch's set_optimizer_state_dict
    "posgroups": "{p} keys its optimizer state by position (the older format), in groups of 18 and 10 weights, and "
                 "this model's AdamW groups hold 10 and 18; it cannot resume exactly: restore the file, or start from "
                 "its weights with --init_from={d} in a new out_dir.",
    "posnomoments": "{p} holds no optimizer state for transformer.wte.weight; it cannot resume exactly",
    "untied": "{p} holds lm_head.weight unlike transformer.wte.weight, where its model_args tie them "
              "(tie_embeddings=True): the file is damaged or another model's; restore it or train again.",
    "editedargs": "{p} holds model_args n_head = 4 and config n_head = 2, which train.py saves alike: one of them "
                  "was edited; restore the file or train again.",
    "betas": "{p} holds optimizer setting betas = 'x' in group 0, which is no AdamW setting; it cannot resume "
             "exactly: restore the file, or start from its weights with --init_from={d} in a new out_dir.",
}


@pytest.mark.parametrize("save, name", [
    (lambda m: m, "model.GPT"),  # torch.save(model)
    (lambda m: {"model": m.state_dict(), "model_args": m.config}, "model.GPTConfig"),
    (lambda m: {"model": m.state_dict(), "model_args": {**asdict(m.config), "n_layer": np.int64(1)}}, "numpy"),
])
def test_a_checkpoint_saved_by_hand_with_python_objects_is_not_called_corrupt(save, name, tmp_path):
    # whole torch files, refused by the weights-only load: "corrupt ... restore it", for a file that is not damaged
    model = GPT(GPTConfig(block_size=8, vocab_size=16, n_layer=1, n_head=2, n_embd=8))
    torch.save(save(model), tmp_path / "mine.pt")
    with pytest.raises(SystemExit) as e:
        checkpoint.load_checkpoint(str(tmp_path / "mine.pt"))
    assert re.fullmatch(f"{tmp_path / 'mine.pt'} holds a Python object \\({name}[^)]*\\) that a weights-only load "
                        "refuses: a checkpoint holds tensors and plain values, {'model': model.state_dict\\(\\), "
                        "'model_args': dataclasses.asdict\\(config\\)}; save it so, or train again.", str(e.value))


def test_a_checkpoint_saved_by_hand_is_told_the_meta_that_sample_py_reads(tmp_path, capsys):
    # saved as the message above advises, sample.py's load called it "not a checkpoint written by train.py", and
    # a model built on the meta device and saved was a torch traceback in the NaN check
    model = GPT(GPTConfig(block_size=8, vocab_size=16, n_layer=1, n_head=2, n_embd=8))
    torch.save({"model": model.state_dict(), "model_args": model.config}, tmp_path / "ckpt.pt")
    with pytest.raises(SystemExit, match=r"model.GPTConfig.*dataclasses.asdict\(config\), 'meta': json.load"):
        checkpoint.load_checkpoint(str(tmp_path), ("model", "model_args", "meta"))
    torch.save(model.state_dict(), tmp_path / "ckpt.pt")  # the weights alone: "not a checkpoint ...", no fix
    with pytest.raises(SystemExit, match=r"holds the weights alone \(torch.save\(model.state_dict\(\)\)\), without "
                                         r"the model_args to build their model from: save \{'model': model.state_dict"
                                         r"\(\), 'model_args': dataclasses.asdict\(config\), 'meta': json.load"):
        checkpoint.load_checkpoint(str(tmp_path), ("model", "model_args", "meta"))
    torch.save({"model": model.state_dict(), "model_args": asdict(model.config)}, tmp_path / "ckpt.pt")
    with pytest.raises(SystemExit, match="has no meta, which names the tokenizer of the data it was trained on: add "
                                         r"it to the checkpoint \(\{..., 'meta': json.load"):
        checkpoint.load_checkpoint(str(tmp_path), ("model", "model_args", "meta"))
    with pytest.raises(SystemExit, match=r"has no iter_num, the iterations its model trained: add it to the "
                                         r"checkpoint \(\{..., 'iter_num': N\}\)"):  # analyze's keys
        checkpoint.load_checkpoint(str(tmp_path), ("model", "model_args", "iter_num"))
    # model_args of another model (block_size changed in the dict): "restore the file or train again" of a file
    # that has no other version
    torch.save({"model": model.state_dict(), "model_args": {**asdict(model.config), "block_size": 16}},
               tmp_path / "ckpt.pt")
    with pytest.raises(SystemExit, match=r"its weights do not match its own model_args; save it again with the "
                                         r"model_args of the model these weights are from \(dataclasses.asdict\("
                                         r"model.built\), the config its layers were built with\)\.$"):
        checkpoint.load_checkpoint(str(tmp_path))
    # the advice followed for a model whose config was changed after the build (model.config would save the same
    # file again): its layers' model_args, and the file loads
    model.config.n_layer = 3
    torch.save({"model": model.state_dict(), "model_args": asdict(model.built)}, tmp_path / "ckpt.pt")
    assert checkpoint.load_checkpoint(str(tmp_path))["model_args"]["n_layer"] == model.built.n_layer
    model.config = replace(model.built)
    with torch.device("meta"):
        model = GPT(model.config)
    torch.save({"model": model.state_dict(), "model_args": asdict(model.config)}, tmp_path / "ckpt.pt")
    with pytest.raises(SystemExit, match="holds transformer.wte.weight on the meta device, a shape without values"):
        checkpoint.load_checkpoint(str(tmp_path))


def test_a_sound_checkpoint_loaded_with_keys_none_is_not_called_corrupt(tmp_path):
    # keys=None from Python was read inside the load's guard: "ckpt.pt is corrupt ...; restore it or train again"
    model = GPT(GPTConfig(block_size=8, vocab_size=16, n_layer=1, n_head=2, n_embd=8))
    torch.save({"model": model.state_dict(), "model_args": asdict(model.config)}, tmp_path / "ckpt.pt")
    with pytest.raises(ValueError, match="keys must be the names the checkpoint must hold.*; got None"):
        checkpoint.load_checkpoint(str(tmp_path), None)
    assert checkpoint.load_checkpoint(str(tmp_path), ["model"])["model_args"] == asdict(model.config)


def test_a_misspelt_key_asked_of_a_sound_checkpoint_names_the_key_not_the_file(tmp_path):
    # keys=("model", "modelargs") was "ckpt.pt has no modelargs: it is not a checkpoint written by train.py"
    model = GPT(GPTConfig(block_size=8, vocab_size=16, n_layer=1, n_head=2, n_embd=8))
    torch.save({"model": model.state_dict(), "model_args": asdict(model.config)}, tmp_path / "ckpt.pt")
    with pytest.raises(ValueError, match="^keys names 'modelargs', which no checkpoint of train.py holds \\(did you "
                                         "mean 'model_args'\\?\\); they hold model, optimizer, model_args, "):
        checkpoint.load_checkpoint(str(tmp_path), ("model", "modelargs"))
    with pytest.raises(SystemExit, match="has no iter_num"):  # one train.py writes: the file lacks it
        checkpoint.load_checkpoint(str(tmp_path), ("model", "iter_num"))


@pytest.mark.parametrize("make, what", [(os.mkfifo, "a named pipe"),
                                        (lambda p: os.symlink(os.devnull, p), "a link to '/dev/null', a device file")])
def test_a_ckpt_pt_that_is_no_regular_file_is_named_in_every_command(make, what, tmp_path, monkeypatch):
    # "no checkpoint: train one with train.py", and train.py, which loads what is there, said the same (the
    # twentieth pass)
    (tmp_path / "run").mkdir()
    make(tmp_path / "run" / "ckpt.pt")
    msg = (f"{tmp_path / 'run' / 'ckpt.pt'} is {what}, not a checkpoint; move it out of the way, or point to "
           f"another out_dir.")
    with pytest.raises(SystemExit) as e:
        checkpoint.load_checkpoint(str(tmp_path / "run"))
    assert str(e.value) == msg
    assert run_inprocess(monkeypatch, [f"--out_dir={tmp_path / 'run'}", f"--data_dir={tmp_path}"]) == msg
    assert run_inprocess(monkeypatch, [f"--out_dir={tmp_path / 'new'}", f"--init_from={tmp_path / 'run'}",
                                       f"--data_dir={tmp_path}"]) == f"init_from='{tmp_path / 'run'}': {msg}"
    assert sorted(os.listdir(tmp_path)) == ["run"] and os.listdir(tmp_path / "run") == ["ckpt.pt"]


@pytest.mark.parametrize("name", CKPT_MESSAGES)
def test_load_checkpoint_says_what_is_wrong_with_the_file(world, name):
    path = str(world / name / "ckpt.pt")
    with pytest.raises(SystemExit) as e:
        checkpoint.load_checkpoint(path, ("model", "model_args", "optimizer", "iter_num"))
    assert str(e.value).startswith(CKPT_MESSAGES[name].format(p=path, d=world / name)), str(e.value)


FIELD_MESSAGES = {  # damage to what train.py stores beside the weights, refused whichever keys a script asks for
    "listconfig": "{p} holds config = [1, 2], which is no dict of settings: the file is damaged or not written by "
                  "train.py; restore it or train again.",
    "iterstr": "{p} holds iter_num = '2', which is no iteration count",
    "negiter": "{p} holds iter_num = -3, which is no iteration count",
    "rng": "{p} holds rng = [{{'cpu': tensor([0., 0., 0.])}}], which is no list of the processes' random states",
    "norng": "{p} holds rng = [], which is no list of the processes' random states",
    "nometa": "{p} holds meta = None, which is no dict (its data's meta.json)",
    "othertok": "{p} names tokenizer 'r50k_base' (50257 tokens) for a model of vocab_size 256",
    "int8": "{p} holds transformer.h.0.mlp.c_fc.weight as torch.int8, and the model's weights are floating point",
    "bigeot": "{p} holds meta eot_token = 9999, which is no token of a model of vocab_size 256",
    "listtok": "{p} holds meta tokenizer = ['bytes'], which is no tokenizer name: its meta is damaged; restore the "
               "file or train again.",
    # was a TypeError traceback from nn.ModuleList, in every script
    "floatlayers": "{p} holds model_args n_layer = 2.0, which is no int: the file is damaged or not written by "
                   "train.py; restore it or train again.",
    "nanbest": "{p} holds best_val_loss = nan, which is no loss: the file is damaged or not written by train.py",
    "negbest": "{p} holds best_val_loss = -1.0, which is no loss",
    "ddint": "{p} holds config data_dir = 5, which is no path: the file is damaged or not written by train.py; restore "
             "it or train again.",
}


@pytest.mark.parametrize("name", FIELD_MESSAGES)
def test_load_checkpoint_checks_what_each_key_holds(world, name):
    path = str(world / name / "ckpt.pt")
    with pytest.raises(SystemExit) as e:
        checkpoint.load_checkpoint(path, ("model", "model_args", "iter_num", "rng", "best_val_loss"))
    assert str(e.value).startswith(FIELD_MESSAGES[name].format(p=path)), str(e.value)


def test_load_checkpoint_takes_one_key_as_a_string(world):
    # ("model") is a string: it was asked for the keys m, o, d, e, l, and said the file had none of them
    assert "model" in checkpoint.load_checkpoint(str(world / "run"), "model")


def test_a_compiled_models_prefix_is_stripped(world):
    ckpt = checkpoint.load_checkpoint(str(world / "compiled"))
    good = torch.load(world / "run" / "ckpt.pt", weights_only=True)["model"]
    assert ckpt["model"].keys() == good.keys() and all(torch.equal(ckpt["model"][k], good[k]) for k in good)


def test_torchs_older_file_format_loads_memory_mapped_too(world, tmp_path):
    # train.py maps the checkpoint it resumes, which torch's older format cannot be: a whole file saved with
    # _use_new_zipfile_serialization=False was "corrupt", and the fix given was to move it away
    good = torch.load(world / "run" / "ckpt.pt", weights_only=True)
    torch.save(good, tmp_path / "ckpt.pt", _use_new_zipfile_serialization=False)
    ckpt = checkpoint.load_checkpoint(tmp_path / "ckpt.pt", ("model", "optimizer", "iter_num"), mmap=True)
    assert ckpt["iter_num"] == good["iter_num"] and all(torch.equal(ckpt["model"][k], good["model"][k])
                                                        for k in good["model"])


def test_an_x_plus_checkpoint_from_before_pos_conv_basis_is_refused_not_read_as_another_model(tmp_path):
    # commit 6ce5be5's (X)+ was [f(i), f(j)] at 10000^(-k/K): its model_args lack pos_conv_basis, which filled in as
    # 'product' loaded the weights into another model without a word (sample, eval, analyze), and a resume stopped in
    # torch's optimizer load (the conv weights had moved out of weight decay since)
    from model import GPT, GPTConfig
    from dataclasses import asdict
    cfg = GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=16, vocab_size=256, pos_conv=8)
    args = {k: v for k, v in asdict(cfg).items() if k not in ("pos_conv_basis", "pos_conv_period", "pos_emb",
                                                               "rope_base")}
    torch.save({"model": GPT(cfg).state_dict(), "model_args": args}, tmp_path / "ckpt.pt")
    with pytest.raises(SystemExit) as e:
        checkpoint.load_checkpoint(str(tmp_path))
    assert str(e.value) == (f"{tmp_path / 'ckpt.pt'} holds an (X)+ model (pos_conv=8) written before pos_conv_basis "
                            f"existed (commit 137d68d), whose (X)+ features this code no longer builds: read it with "
                            f"the commit that trained it (git worktree add ../old 137d68d~1), or train again.")
    args["pos_conv"] = 0  # the same old fields without (X)+: built as it was trained
    torch.save({"model": GPT(GPTConfig(**args)).state_dict(), "model_args": args}, tmp_path / "ckpt.pt")
    assert checkpoint.load_checkpoint(str(tmp_path))["model_args"] == args


def resume(w, name):
    return ["train.py", *QKV, f"--data_dir={w / 'data'}", f"--out_dir={w / name}", "--init_from=resume",
            "--max_iters=4"]


SCRIPTS = {"train": resume,
           "sample": lambda w, name: ["sample.py", f"--out_dir={w / name}", "--max_new_tokens=8", "--num_samples=1"],
           "analyze": lambda w, name: ["-m", "experiments.analyze", f"--out_dir={w / name}"]}
CLI_CASES = [("train", "shapes"), ("train", "emptyopt"), ("sample", "missing"), ("sample", "foreign"),
             ("analyze", "shapes"), ("analyze", "empty"), ("train", "rng"), ("sample", "nometa"),
             ("analyze", "listconfig"), ("sample", "ddint")]


@pytest.mark.parametrize("script, name", CLI_CASES, ids=[f"{s} {n}" for s, n in CLI_CASES])
def test_every_script_refuses_a_bad_checkpoint_in_one_line(world, script, name, capfd):
    before, listing = tree_digest(world / name), files(world / name)
    # each script's first case as a user runs it, the rest in this process (the same code, no torch import)
    first = next(n for s, n in CLI_CASES if s == script) == name
    r = run(SCRIPTS[script](world, name)) if first else run_here(SCRIPTS[script](world, name), capfd)
    refused(r, f"{world / name / 'ckpt.pt'} ")
    assert tree_digest(world / name) == before and files(world / name) == listing


def test_a_compiled_models_checkpoint_samples(world):
    r = run(SCRIPTS["sample"](world, "compiled"))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert files(world / "compiled") == ["ckpt.pt"]


# ---------------------------------------------------------------------------------------------------------------
# atomic writes: a kill or an error between writing and renaming leaves the old file whole

def test_a_tiktoken_cache_this_user_cannot_read_is_named(tmp_path, monkeypatch):
    # TIKTOKEN_CACHE_DIR holding r50k_base's file, but unreadable (the file, or the folder: tiktoken then saw no file
    # and went to the network): the advice was "set TIKTOKEN_CACHE_DIR to a directory that holds its cached file"
    import tiktoken
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))

    def unreadable_file(name):
        raise PermissionError(13, "Permission denied", str(tmp_path / "0ea1"))
    monkeypatch.setattr(tiktoken, "get_encoding", unreadable_file)
    with pytest.raises(SystemExit) as e:
        checkpoint.r50k("error: ", ", or use --tokenizer=bytes")
    assert str(e.value) == (f"error: could not load tiktoken's r50k_base: {tmp_path / '0ea1'} cannot be read "
                            f"(Permission denied); make it readable to this user, or point TIKTOKEN_CACHE_DIR at a "
                            f"readable copy, or use --tokenizer=bytes.")

    def offline(name):
        raise ConnectionError("no network")
    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    with pytest.raises(SystemExit) as e:
        checkpoint.r50k()
    url = "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken"
    cached = tmp_path / "0ea1e91bbb3a60f729a8dc8f777fd2fc07cd8df4"  # the sha1 of url: tiktoken's name for it
    assert str(e.value) == (f"could not load tiktoken's r50k_base (ConnectionError); offline, set TIKTOKEN_CACHE_DIR "
                            f"to a folder that holds {url} saved as {cached}.")
    # the file downloaded by hand and put there under its own name: the same advice again, which it followed
    (tmp_path / "r50k_base.tiktoken").write_text("")
    monkeypatch.setattr(checkpoint, "R50K_SHA256", hashlib.sha256(b"").hexdigest())  # stands for r50k_base's own
    with pytest.raises(SystemExit) as e:
        checkpoint.r50k()
    assert str(e.value) == (f"could not load tiktoken's r50k_base (ConnectionError): tiktoken reads its cache by the "
                            f"sha1 of the file's URL, not as r50k_base.tiktoken; rename "
                            f"{tmp_path / 'r50k_base.tiktoken'} to {cached}.")
    # ... and one that is not r50k_base's (an error page saved by hand): renamed, tiktoken removed it at the next
    # run, and the advice was again to save it there
    monkeypatch.undo()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    with pytest.raises(SystemExit, match=r"r50k_base.tiktoken is not https://\S+ \(its sha256 is not r50k_base's; an "
                                         r"error page or a download cut short\); download it again, saved as "):
        checkpoint.r50k()
    (tmp_path / "r50k_base.tiktoken").rename(cached)

    def mismatched(name):  # as tiktoken does with a cached file whose sha256 is not r50k_base's
        cached.unlink()
        raise ConnectionError("no network")
    monkeypatch.setattr(tiktoken, "get_encoding", mismatched)
    with pytest.raises(SystemExit) as e:
        checkpoint.r50k()
    assert str(e.value) == (f"could not load tiktoken's r50k_base (ConnectionError): {cached} was not {url} (its "
                            f"sha256 is not r50k_base's; an error page or a download cut short), and tiktoken removed "
                            f"it; download it again to that name.")
    (tmp_path / "r50k_base.tiktoken").write_text("")
    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    # TIKTOKEN_CACHE_DIR naming the file itself, or a folder not there: os.listdir's traceback
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "r50k_base.tiktoken"))
    with pytest.raises(SystemExit) as e:
        checkpoint.r50k()
    assert str(e.value) == (f"could not load tiktoken's r50k_base (ConnectionError): TIKTOKEN_CACHE_DIR names the file "
                            f"{tmp_path / 'r50k_base.tiktoken'}, and tiktoken takes the folder its cached file is in; "
                            f"set TIKTOKEN_CACHE_DIR={tmp_path}, with the file saved there as {cached.name}.")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(SystemExit) as e:
        checkpoint.r50k()
    assert str(e.value) == (f"could not load tiktoken's r50k_base (ConnectionError); offline, set TIKTOKEN_CACHE_DIR "
                            f"to a folder that holds {url} saved as {tmp_path / 'nowhere' / cached.name}.")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))

    def unlistable(path):
        raise PermissionError(13, "Permission denied", path)
    monkeypatch.setattr(os, "listdir", unlistable)
    with pytest.raises(SystemExit) as e:
        checkpoint.r50k()
    assert str(e.value).startswith(f"could not load tiktoken's r50k_base: {tmp_path} cannot be read (Permission")


def test_atomic_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "f.txt"
    checkpoint.atomic_write(str(path), "text")
    assert path.read_text() == "text"
    checkpoint.atomic_write(str(path), b"bytes")
    assert path.read_bytes() == b"bytes"
    checkpoint.atomic_write(str(path), lambda f: f.write(b"written by a function"))
    assert path.read_bytes() == b"written by a function" and os.listdir(tmp_path) == ["f.txt"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_file_too_large_for_the_limit_is_not_told_to_free_space(tmp_path, monkeypatch):
    # under `ulimit -f 1000` (or onto FAT32, 4 GiB) a checkpoint's write fails with EFBIG: "free space on its disk"
    # freed nothing that helped
    import resource

    def too_large(f):
        raise OSError(errno.EFBIG, "File too large")
    for limit, fix in ((1000 * 1024, "raise this shell's file size limit (ulimit -f, now 1,000 KiB: ulimit -f "
                                     "unlimited)"),
                       (resource.RLIM_INFINITY, "write to a file system that takes larger files (FAT32 stops at "
                                                "4 GiB)")):
        monkeypatch.setattr(resource, "getrlimit", lambda what, limit=limit: (limit, resource.RLIM_INFINITY))
        with pytest.raises(SystemExit) as e:
            checkpoint.atomic_write(str(tmp_path / "ckpt.pt"), too_large)
        assert str(e.value) == f"could not write {tmp_path / 'ckpt.pt'} (File too large); nothing was written: " \
                               f"{fix}, or write elsewhere."
        assert os.listdir(tmp_path) == []
    assert checkpoint.space_fix(OSError(errno.ENOSPC, "No space left on device")) == "free space on its disk"
    monkeypatch.setattr(resource, "getrlimit", lambda what: (9, 4096))  # `ulimit -S -n 9`: "free space on its disk"
    assert checkpoint.space_fix(OSError(errno.EMFILE, "Too many open files")) == \
        "raise this shell's open-file limit (ulimit -n, now 9)"
    # the system's table full (ENFILE): no shell's limit raises it, and 'raise ulimit -n' was the advice
    assert checkpoint.space_fix(OSError(errno.ENFILE, "Too many open files in system")) == \
        "close other programs: the system's open-file table is full (ENFILE; fs.file-max, which root raises)"
    # bash's `ulimit -n 9` (and -f) sets the hard limit too: "ulimit -n 4096" was then refused to this user
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(resource, "getrlimit", lambda what: (9, 9))
    assert checkpoint.space_fix(OSError(errno.EMFILE, "Too many open files")) == \
        "run it from a new terminal (this shell's open-file limit (ulimit -n) is 9, also its hard limit, which only " \
        "root raises)"
    monkeypatch.setattr(resource, "getrlimit", lambda what: (1000 * 1024, 1000 * 1024))
    assert checkpoint.space_fix(OSError(errno.EFBIG, "File too large")) == \
        "run it from a new terminal (this shell's file size limit (ulimit -f) is 1,000 KiB, also its hard limit, " \
        "which only root raises)"
    monkeypatch.setattr(resource, "getrlimit", lambda what: (1000 * 1024, resource.RLIM_INFINITY))  # ulimit -S -f
    assert "ulimit -f unlimited" in checkpoint.space_fix(OSError(errno.EFBIG, "File too large"))


def test_a_file_system_without_locks_is_noted_not_called_busy(tmp_path, monkeypatch, capsys):
    # Lustre mounted without flock (ENOSYS), some FUSE and SMB mounts: every prepare, eval and study was told another
    # run held its folder ("wait for it to end"), and train.py that a data_dir was being prepared now
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOSYS, "Function not implemented")
    monkeypatch.setattr(fcntl, "flock", no_locks)
    with checkpoint.hold_lock(str(tmp_path), "busy"):
        pass
    assert capsys.readouterr().err == f"note: {tmp_path} is on a file system without locks (flock: Function not " \
                                      f"implemented), so a second command writing there at the same time is not " \
                                      f"refused; run one at a time.\n"
    assert not checkpoint.being_written(str(tmp_path))

    def busy(fd, op):
        raise BlockingIOError(errno.EWOULDBLOCK, "Resource temporarily unavailable")
    monkeypatch.setattr(fcntl, "flock", busy)
    assert checkpoint.being_written(str(tmp_path))
    with pytest.raises(checkpoint.Busy):
        with checkpoint.hold_lock(str(tmp_path), "busy"):
            pass


def test_atomic_write_keeps_to_the_users_umask(tmp_path):
    # a fixed chmod 0644 made every checkpoint, table and meta.json readable by all under umask 077
    old = os.umask(0o077)
    try:
        checkpoint.atomic_write(str(tmp_path / "f.txt"), "private")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o600


def test_atomic_write_writes_a_name_read_outside_utf8_mode_as_its_bytes(tmp_path):
    # under PYTHONUTF8=0 LC_ALL=C a path from the command line holds its bytes as surrogates ('pr\udcc3\udca9face'):
    # str.encode() raised, a traceback with the file unwritten
    checkpoint.atomic_write(str(tmp_path / "f.md"), "| pr\udcc3\udca9face.txt |")
    assert (tmp_path / "f.md").read_text() == "| préface.txt |"


def test_atomic_write_over_a_folder_says_so(tmp_path):
    # a folder where a study's cached curve goes: the advice was to free space on the disk (the seventh pass)
    (tmp_path / "curve.json").mkdir()
    with pytest.raises(SystemExit) as e:
        checkpoint.atomic_write(str(tmp_path / "curve.json"), "[]")
    assert str(e.value) == f"could not write {tmp_path / 'curve.json'}: a folder has that name; move it out of the " \
                           f"way, or write elsewhere."
    assert os.listdir(tmp_path) == ["curve.json"] and os.listdir(tmp_path / "curve.json") == []


def test_atomic_write_into_a_missing_folder_says_so(tmp_path):
    # checkpoint.save_checkpoint(ckpt, "new/ckpt.pt") from Python: the advice was to free space on the disk
    (tmp_path / "file").write_text("")
    for folder in (tmp_path / "new", tmp_path / "file"):
        with pytest.raises(SystemExit) as e:
            checkpoint.save_checkpoint({}, str(folder / "ckpt.pt"))
        assert str(e.value) == f"could not write {folder / 'ckpt.pt'}: its folder {folder} does not exist (never " \
                               f"made, or removed while this ran) or is a file; make it or run again, or write " \
                               f"elsewhere."
    assert os.listdir(tmp_path) == ["file"]


def test_atomic_write_into_a_folder_removed_meanwhile_says_so(tmp_path):
    # a study's folder deleted while it ran was told to "free space on its disk" (No such file or directory)
    path = tmp_path / "gone" / "curve.json"
    with pytest.raises(SystemExit) as e:
        checkpoint.atomic_write(str(path), "[]")
    assert str(e.value) == (f"could not write {path}: its folder {tmp_path / 'gone'} does not exist (never made, or "
                            f"removed while this ran) or is a file; make it or run again, or write elsewhere.")


def test_a_figure_is_drawn_before_its_temporary_file_exists(tmp_path, monkeypatch):
    # drawn into atomic_write's temporary file, a study killed (SIGTERM, a closed terminal) in the second matplotlib
    # takes left rope.png.XXXX.tmp beside its figure (in assets/ for a full run), which no later run removed
    from matplotlib.figure import Figure
    seen, draw = [], Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (seen.append(os.listdir(tmp_path)), draw(fig, *a, **k)))
    rope.plot([{"variant": "qkv rope", "seed": 1337, "length": 256, "loss": 1.8}], str(tmp_path / "rope.png"))
    assert seen == [[]] and os.listdir(tmp_path) == ["rope.png"]


def test_a_temporary_file_left_by_a_killed_writer_goes_at_the_next_write(tmp_path):
    # a SIGKILL (the OOM killer, kill -9) between atomic_write's first byte and its rename left rope.png.XXXXXXXX.tmp
    # beside the figure (in assets/ for a full study) for good: no later run knew it for a leftover. A writer holds
    # a lock on its own until the rename, so one that nobody holds is a dead writer's
    import fcntl
    names = ("rope.png.k2j_x9ab.tmp", "rope.png.q1w2e3r4.tmp", "rope.csv.a1b2c3d4.tmp")
    dead, live, other = (tmp_path / n for n in names)
    for f in (dead, live, other):
        f.write_bytes(b"half a figure")
    with open(live, "rb") as held:  # another process writing rope.png now
        fcntl.flock(held, fcntl.LOCK_EX)
        checkpoint.atomic_write(str(tmp_path / "rope.png"), b"figure")
        checkpoint.atomic_write(str(tmp_path / "rope.png"), b"figure again")  # its own lock gone with its rename
    assert sorted(os.listdir(tmp_path)) == ["rope.csv.a1b2c3d4.tmp", "rope.png", "rope.png.q1w2e3r4.tmp"]
    assert checkpoint._held == {}


def test_a_folder_or_fifo_named_like_a_leftover_is_left_alone(tmp_path):
    # only a plain file is a killed save's: a FIFO of a leftover's name was opened to lock it, and the write waited for
    # a writer to the FIFO for good; a folder of one (train.py's ckpt.pt.tmp) was an IsADirectoryError traceback
    os.mkfifo(tmp_path / "rope.png.k2j_x9ab.tmp")
    (tmp_path / "rope.png.q1w2e3r4.tmp").mkdir()
    (tmp_path / "rope.png.tmp").mkdir()
    checkpoint.atomic_write(str(tmp_path / "rope.png"), b"figure")
    checkpoint.remove_leftovers(str(tmp_path), r"rope\.png\.(.+\.)?tmp")
    assert sorted(os.listdir(tmp_path)) == ["rope.png", "rope.png.k2j_x9ab.tmp", "rope.png.q1w2e3r4.tmp",
                                            "rope.png.tmp"]


def test_a_leftover_this_user_cannot_remove_is_left_alone(tmp_path, monkeypatch):
    # another user's ckpt.pt.tmp in a folder with the sticky bit (or an immutable one): os.remove was a PermissionError
    # traceback in train.py and prepare before the run began (train.lock left in a fresh out_dir); as root the modes
    # do not refuse, so os.remove is made to
    (tmp_path / "ckpt.pt.tmp").write_bytes(b"theirs")
    (tmp_path / "ckpt.pt.a1b2c3d4.tmp").write_bytes(b"mine")
    remove = os.remove

    def denied(path, *a, **k):
        if os.path.basename(path) == "ckpt.pt.tmp":
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), path)
        remove(path, *a, **k)
    monkeypatch.setattr(checkpoint.os, "remove", denied)
    checkpoint.remove_leftovers(str(tmp_path), r"ckpt\.pt\.(.+\.)?tmp")
    assert os.listdir(tmp_path) == ["ckpt.pt.tmp"]


def test_a_folder_this_user_cannot_list_has_no_leftovers_to_remove(tmp_path, monkeypatch):
    # an out_dir of mode 300 (write and search, no read): train.py's resume, or a new run there, ended in os.listdir's
    # PermissionError traceback where saving works; as root the modes do not refuse, so os.listdir is made to
    (tmp_path / "ckpt.pt.a1b2c3d4.tmp").write_bytes(b"leftover")

    def denied(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
    monkeypatch.setattr(checkpoint.os, "listdir", denied)
    checkpoint.remove_leftovers(str(tmp_path), r"ckpt\.pt\.(.+\.)?tmp")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.pt.a1b2c3d4.tmp"]


def test_atomic_write_leaves_the_old_file_when_the_writer_dies_midway(tmp_path, monkeypatch):
    path = tmp_path / "results.csv"
    path.write_text("old,complete\n")

    def writer(f):
        f.write(b"new,half")
        raise KeyboardInterrupt  # a Ctrl-C (or any error) after part of the new content was written

    with pytest.raises(KeyboardInterrupt):
        checkpoint.atomic_write(str(path), writer)
    assert path.read_text() == "old,complete\n" and os.listdir(tmp_path) == ["results.csv"]

    def no_rename(src, dst):
        raise OSError(28, "No space left on device")

    def full_disk(f):  # what torch.save does on a full disk: its OSError, then a RuntimeError closing the file
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 13440 vs 13334")

    for writer in (full_disk, lambda f: checkpoint.torch.save({"w": checkpoint.torch.zeros(8)}, f)):
        with pytest.raises(SystemExit) as e:  # was the traceback above, at a checkpoint save after the training
            checkpoint.atomic_write(str(path), writer)
        assert str(e.value) == (f"could not write {path} (No space left on device); the file there is unchanged: free "
                                f"space on its disk, or write elsewhere.")
        assert path.read_text() == "old,complete\n" and os.listdir(tmp_path) == ["results.csv"]
        monkeypatch.setattr(checkpoint.os, "replace", no_rename)  # the second: written whole, then the rename fails
    with pytest.raises(SystemExit, match=r"^could not write .*/new.csv \(No space left on device\); nothing was "
                                         r"written: free space on its disk, or write elsewhere\.$"):
        checkpoint.atomic_write(str(tmp_path / "new.csv"), "new\n")
    assert os.listdir(tmp_path) == ["results.csv"]


def test_files_written_together_replace_theirs_all_or_none(tmp_path, monkeypatch):
    # a bench section's CSV and PNG, a study's table and figure: written one by one, a full disk (or a stop) at the
    # second left the new first beside the old second; in a new folder, the first alone
    old = {"t.csv": "old\n", "t.png": "old png"}
    for name, text in old.items():
        (tmp_path / name).write_text(text)
    real_fsync = os.fsync

    def full_at_png(fd):
        if os.readlink(f"/proc/self/fd/{fd}").split("/")[-1].startswith("t.png"):
            raise OSError(28, "No space left on device")
        real_fsync(fd)
    monkeypatch.setattr(checkpoint.os, "fsync", full_at_png)
    with pytest.raises(SystemExit, match=r"t.png \(No space left on device\); the file there is unchanged"):
        with checkpoint.together():
            checkpoint.atomic_write(str(tmp_path / "t.csv"), "new\n")
            checkpoint.atomic_write(str(tmp_path / "t.png"), "new png")
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == old  # no temporary file either
    monkeypatch.setattr(checkpoint.os, "fsync", real_fsync)
    with checkpoint.together():
        checkpoint.atomic_write(str(tmp_path / "t.csv"), "new\n")
        with checkpoint.together():  # nested: replaced with the outer block's
            checkpoint.atomic_write(str(tmp_path / "t.png"), "new png")
        assert (tmp_path / "t.png").read_text() == "old png"
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {"t.csv": "new\n", "t.png": "new png"}


def test_a_signal_taken_by_another_thread_between_two_files_written_together_waits_for_both(tmp_path, monkeypatch):
    # `kill PID` of eval.py just as it put results.json in place left results.json without results.md (found by
    # tests/test_stops.py): the renames held SIGTERM off the main thread only (pthread_sigmask), torch's threads took
    # it, and its Python handler then ran in the main thread between the two renames
    class Stop(Exception):
        pass

    def stop(signum, frame):
        raise Stop
    old = signal.signal(signal.SIGTERM, stop)
    idle = threading.Event()
    other = threading.Thread(target=idle.wait)
    other.start()
    real_replace = os.replace

    def replace_then_signal(src, dst):
        real_replace(src, dst)
        signal.pthread_kill(other.ident, signal.SIGTERM)
        time.sleep(0.05)  # time for the handler to run, if it is going to
    try:
        with pytest.raises(Stop):
            with checkpoint.together():
                checkpoint.atomic_write(str(tmp_path / "results.json"), "{}")
                checkpoint.atomic_write(str(tmp_path / "results.md"), "| |")
                monkeypatch.setattr(checkpoint.os, "replace", replace_then_signal)
        assert sorted(os.listdir(tmp_path)) == ["results.json", "results.md"]
    finally:
        idle.set()
        other.join()
        signal.signal(signal.SIGTERM, old)


def test_the_open_file_limit_wherever_it_strikes_is_one_sentence(tmp_path):
    # `ulimit -n 6`: train.py's memmap of the data, prepare's listing of the folder it made (while removing it) and
    # its import of resource to say so were tracebacks; bench and the studies (configurator.run_main) too
    import configurator

    def main():
        raise OSError(errno.EMFILE, "Too many open files")
    with pytest.raises(SystemExit) as e:
        configurator.run_main(main, "nothing was written.", "")
    assert str(e.value).startswith("stopped: too many files open (Too many open files); ") and \
        str(e.value).endswith("; nothing was written.")
    make_data(tmp_path / "data")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    r = subprocess.run([sys.executable, "train.py", *TINY, f"--data_dir={tmp_path / 'data'}", "--max_iters=2",
                        f"--out_dir={tmp_path / 'out'}"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (6, hard)))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr == "stopped at iteration 0: too many files open (Too many open files); raise this shell's " \
                       "open-file limit (ulimit -n, now 6); no checkpoint was saved yet: run the same command to " \
                       "start again.\n"
    assert not (tmp_path / "out").exists()


def test_a_name_too_long_for_the_disk_is_not_told_to_free_space(tmp_path):
    # its temporary file's name (the name, a dot, 8 characters, .tmp) passes the file system's 255 bytes first
    path = tmp_path / ("r" * 250)
    with pytest.raises(SystemExit) as e:
        checkpoint.atomic_write(str(path), "x")
    assert str(e.value) == f"could not write {path} (File name too long); nothing was written: choose a shorter " \
                           f"name, or write elsewhere."
    assert os.listdir(tmp_path) == []


def test_a_write_refused_for_permission_names_the_folder_to_make_writable_not_free_space(tmp_path, monkeypatch):
    # `rope --redraw` into a folder of mode 500 (or a read-only mount) was told to "free space on its disk" (the
    # sixteenth pass); as root the modes do not refuse, so mkstemp is made to
    def denied(*a, **k):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    monkeypatch.setattr(checkpoint.tempfile, "mkstemp", denied)
    with pytest.raises(SystemExit) as e:
        checkpoint.atomic_write(str(tmp_path / "t.png"), b"png")
    assert str(e.value) == (f"could not write {tmp_path / 't.png'} (Permission denied); nothing was written: make "
                            f"{tmp_path} writable for this user, or write elsewhere.")
    assert os.listdir(tmp_path) == []


def test_a_bad_log_entry_is_named_by_its_line_in_the_file(tmp_path):
    # a log reassembled from its JSON values (pretty-printed by jq, or a blank line before the bad one) was told to
    # delete the line numbered by the entry's place: a good line of the file, the bad one left
    good = [{"iter": 0, "val_loss": 5.0}, {"iter": 1, "loss": 4.0}]
    for text, n in (('{"iter": 0, "val_loss": 5.0}\n\n{"iter": 1, "loss": 4.0}\n5\n', 4),
                    ("".join(json.dumps(e, indent=2) + "\n" for e in good) + '{\n  "iter": "x"\n}\n', 9),
                    (json.dumps([*good, {"iter": "x"}], indent=2) + "\n", 10)):
        (tmp_path / "log.jsonl").write_text(text)
        with pytest.raises(SystemExit, match=f"^{tmp_path}/log.jsonl, line {n}, is not a log entry of train.py"):
            checkpoint.read_log(str(tmp_path))
    def refusal():
        with pytest.raises(SystemExit) as e:
            checkpoint.read_log(str(tmp_path))
        return str(e.value)

    # a run trained into its data folder (out_dir = data_dir): "delete out_dir and train again" deleted the data too
    (tmp_path / "meta.json").write_text("{}")
    (tmp_path / "log.jsonl").write_text('{"iter": 0, "loss": 5.0}\n')
    assert refusal().endswith(f"delete {tmp_path}/log.jsonl (not {tmp_path}: it holds the prepared data too) and "
                              f"train it again.")
    os.remove(tmp_path / "meta.json")
    # and one that holds another command's results (bench.py --out=out_dir's tables): deleted with the run too; what
    # the run made (its lock, older logs, eval/, projections.*) goes with it
    (tmp_path / "cache_savings.csv").write_text("x\n")
    assert refusal().endswith(f"delete {tmp_path}/log.jsonl (not {tmp_path}: it holds cache_savings.csv too) and "
                              f"train it again.")
    os.remove(tmp_path / "cache_savings.csv")
    # eval.1/: an older run's evaluation train.py kept aside as it keeps log.1.jsonl ("it holds eval.1 too")
    for name in ("train.lock", "log.1.jsonl", "projections.md", "eval/results.json", "eval.1/results.json"):
        os.makedirs(os.path.dirname(tmp_path / name), exist_ok=True)
        (tmp_path / name).write_text("x\n")
    assert (msg := refusal()).endswith(f"delete {tmp_path} and train it again."), msg
    s = dict(retrofit.QUICK, root=str(tmp_path))  # retrofit's times.jsonl, read as a log is
    (tmp_path / "times.jsonl").write_text('{"run": "a", "s": 1.5}\n\n{"run": "b", "s": 2.0}\n{"run": "c"}\n')
    with pytest.raises(SystemExit, match=f"^{tmp_path}/times.jsonl, line 4, is no time of a training run"):
        retrofit.times(s)


def test_retrofit_times_are_appended_whole(tmp_path, monkeypatch):
    s = dict(retrofit.QUICK, root=str(tmp_path))
    retrofit.add_time(s, "a", 1.5)
    retrofit.add_time(s, "b", 2.0)
    assert retrofit.times(s) == [{"run": "a", "s": 1.5}, {"run": "b", "s": 2.0}]
    saved = (tmp_path / "times.jsonl").read_bytes()  # saved by Notepad: a BOM, CRLF; its first line was "not JSON"
    (tmp_path / "times.jsonl").write_bytes(b"\xef\xbb\xbf" + saved.replace(b"\n", b"\r\n"))
    assert retrofit.times(s) == [{"run": "a", "s": 1.5}, {"run": "b", "s": 2.0}]
    # pretty-printed by `jq .` and saved back: "a line that is not JSON; delete that line" (every line was one)
    (tmp_path / "times.jsonl").write_text("".join(json.dumps(json.loads(x), indent=2) + "\n"
                                                  for x in saved.decode().splitlines()))
    assert retrofit.times(s) == [{"run": "a", "s": 1.5}, {"run": "b", "s": 2.0}]
    # saved again as UTF-16 (PowerShell 5): each line was no JSON, "delete that line"
    (tmp_path / "times.jsonl").write_bytes(saved.decode().encode("utf-16"))
    with pytest.raises(SystemExit, match=f"^{tmp_path}/times.jsonl is not UTF-8; it is UTF-16 .*iconv"):
        retrofit.times(s)
    (tmp_path / "times.jsonl").write_bytes(saved)

    def dies_midway(path, data):
        def writer(f):
            f.write(data.encode()[:-5])  # what an append in place leaves when the kill comes midway
            raise KeyboardInterrupt
        checkpoint.atomic_write(path, writer)

    before = (tmp_path / "times.jsonl").read_text()
    monkeypatch.setattr(retrofit, "atomic_write", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        retrofit.add_time(s, "c", 3.0)
    assert (tmp_path / "times.jsonl").read_text() == before
    # a file torn by an older version, which appended in place: one sentence, not a traceback
    (tmp_path / "times.jsonl").write_text(before + '{"run": "c", "s')
    with pytest.raises(SystemExit, match=f"{tmp_path}/times.jsonl has a line that is not JSON"):
        retrofit.times(s)
    # JSON, but no time: the report's sum was a KeyError or TypeError traceback (the seventh pass)
    for line in ('{"run": "c"}', '"x"', '{"run": "c", "s": NaN}'):
        (tmp_path / "times.jsonl").write_text(before + line + "\n")
        with pytest.raises(SystemExit, match=f"{tmp_path}/times.jsonl, line 3, is no time of a training run"):
            retrofit.times(s)
    # the report's training time: a run trained again (its folder deleted) counts once, a run of no folder of the
    # plan not at all (both were summed)
    source = retrofit.plan(s)[0][2]
    (tmp_path / "times.jsonl").write_text("".join(json.dumps({"run": r, "s": t}) + "\n" for r, t in
                                                  ((source, 120), (source, 60), ("elsewhere", 600))))
    assert retrofit.train_minutes(s) == 1.0
    (tmp_path / "times.jsonl").unlink()
    (tmp_path / "times.jsonl").mkdir()  # an IsADirectoryError traceback
    with pytest.raises(SystemExit, match=f"^{tmp_path}/times.jsonl is a folder, where this study keeps the time"):
        retrofit.times(s)


# ---------------------------------------------------------------------------------------------------------------
# tracked results: a partial report never replaces the complete one in assets/

def tracked(cwd, *names):
    """A stand-in for the repository's assets/: complete reports that must survive."""
    (cwd / "assets").mkdir()
    for name in names:
        (cwd / "assets" / name).write_text(f"the complete {name}\n")
    return tree_digest(cwd / "assets")


def test_cpu_lm_report_of_1_of_21_runs_goes_to_the_runs_folder(world, tmp_path, monkeypatch, capsys):
    before = tracked(tmp_path, "cpu_lm.md", "cpu_lm.csv", "cpu_lm.png")
    run = shutil.copytree(world / "run", tmp_path / "out-cpu_lm" / "qkv_s1337")
    ckpt = torch.load(run / "ckpt.pt", weights_only=True)
    os.symlink(os.path.join(ROOT, "config"), tmp_path / "config")  # where the study reads its runs' settings
    monkeypatch.chdir(tmp_path)  # the study's folders are relative to where it runs
    # a run trained there by hand (other settings) was in the partial report as the study's qkv, exit 0
    with pytest.raises(SystemExit, match="^out-cpu_lm/qkv_s1337 holds a run with batch_size = 4, where"):
        cpu_lm.main(["--report"])
    own = configure(ckpt["config"], cpu_lm.train_args("qkv", 1337))[0]  # the study's own run, finished
    torch.save(as_trained(ckpt, own, iter_num=own["max_iters"]), run / "ckpt.pt")
    (run / "log.jsonl").write_text(json.dumps({"iter": 0, "val_loss": 5.5}) + "\n" +  # evaluated at its last iteration
                                   json.dumps({"iter": own["max_iters"], "val_loss": 5.0}) + "\n")
    cpu_lm.main(["--report"])
    assert tree_digest(tmp_path / "assets") == before
    err = capsys.readouterr().err
    assert "20 of 21 runs not finished" in err and "goes to out-cpu_lm/cpu_lm.* (assets/cpu_lm.* holds the" in err
    md = (tmp_path / "out-cpu_lm" / "cpu_lm.md").read_text()
    assert md.startswith("PARTIAL: 20 of 21 runs not finished") and "| qkv | qkv | 4 | softmax |" in md
    assert (tmp_path / "out-cpu_lm" / "cpu_lm.png").read_bytes()[:4] == b"\x89PNG"
    # run from another folder, with no assets/ there: "assets/cpu_lm.* holds the complete one" of a file not there
    shutil.rmtree(tmp_path / "assets")
    cpu_lm.main(["--report"])
    assert "(assets/cpu_lm.* gets the complete one, once every run has finished)" in capsys.readouterr().err


def test_the_study_configs_hold_the_values_the_tracked_tables_were_made_with(tmp_path, monkeypatch):
    # edit a config/cpu_lm*.py and this digest together, then run the studies again: assets/ is of these values
    assert checkpoint.edited_configs() == [], "the tracked tables in assets/ were made with other values"
    assert sorted(checkpoint.STUDY_CONFIGS) == sorted(os.path.relpath(p, ROOT) for p in
                                                      glob.glob(os.path.join(ROOT, "config", "cpu_lm*.py")))
    text = open(os.path.join(ROOT, "config", "cpu_lm.py")).read()
    (tmp_path / "a.py").write_text("# a comment of mine\n" + text.replace(" = ", "  =  "))  # the same values
    (tmp_path / "b.py").write_text(text.replace("max_iters = 600", "max_iters = 4"))
    digest = checkpoint.STUDY_CONFIGS["config/cpu_lm.py"]
    a, b = (checkpoint.config_digest(checkpoint.config_values(str(tmp_path / n))) for n in ("a.py", "b.py"))
    assert a == digest != b
    # a variant's is of what it sets over config/cpu_lm.py: an edit there names that file alone, not all seven
    real = {n: checkpoint.config_values(n) for n in checkpoint.STUDY_CONFIGS}
    own = {n: {k: v for k, v in real[n].items() if real["config/cpu_lm.py"].get(k) != v} for n in real}
    base = checkpoint.config_values(str(tmp_path / "b.py"))
    monkeypatch.setattr(checkpoint, "config_values", lambda n: {**base, **own[n]})
    assert checkpoint.edited_configs() == ["config/cpu_lm.py"]
    own["config/cpu_lm_qk_v.py"]["proj"] = "qkv"  # and a variant's own value
    assert checkpoint.edited_configs() == ["config/cpu_lm.py", "config/cpu_lm_qk_v.py"]


def edited(tmp_path, monkeypatch):
    """config/cpu_lm.py as if edited in place, and tmp_path/assets as the repository's."""
    monkeypatch.setitem(checkpoint.STUDY_CONFIGS, "config/cpu_lm.py", "edited")
    monkeypatch.setattr(checkpoint, "ASSETS", str(tmp_path / "assets"))
    monkeypatch.chdir(tmp_path)
    return tracked(tmp_path, "cpu_lm.md", "rope.csv", "retrofit.csv", "scaling.csv")


FIX = "restore it: `git checkout -- config/cpu_lm.py`"


def test_a_study_after_its_config_was_edited_writes_beside_its_runs(world, tmp_path, monkeypatch, capsys):
    # max_iters = 4 in config/cpu_lm.py, then the full study: its report replaced the tracked one in assets/
    before = edited(tmp_path, monkeypatch)
    note = "config/cpu_lm.py sets other values than the tracked tables in assets/ were made with (" + FIX + \
           "): this study's report goes to {}.*, not assets/{}.*."
    with pytest.raises(SystemExit, match="no finished run under out-cpu_lm/"):
        cpu_lm.main(["--report"])
    assert note.format("out-cpu_lm/cpu_lm", "cpu_lm") in capsys.readouterr().err
    for study, name in ((rope, "rope"), (retrofit, "retrofit")):  # its table, not the tracked one
        with pytest.raises(SystemExit) as e:
            study.main(["--redraw"])
        err = capsys.readouterr().err + str(e.value)
        assert note.format(f"out-{name}/{name}", name) in err and f"out-{name}/{name}.csv, which does not" in err
    args = argparse.Namespace(data_dir="data/cpu_lm_bytes", root="out-scaling")
    assert not scaling.tracked(scaling.FULL, args) and scaling.paths(scaling.FULL, args)[0] == "out-scaling/scaling.csv"
    run = shutil.copytree(world / "run", tmp_path / "out-retrofit" / "qkv_s1337")  # analyze's --out=assets
    other = ".* holds other text than the tracked tables' "  # the world's data: 20,000 and 4,000 tokens
    with pytest.raises(SystemExit, match=re.escape(f"made with ({FIX}); ") + other +
                       re.escape("(20,000 train and 4,000 validation tokens, where tiny Shakespeare's are 1,003,857 "
                                 "and 111,539): --out=assets writes into assets/, which holds only those; give ")):
        analyze.main([f"--out_dir={os.path.relpath(run)}", "--out=assets"])
    assert tree_digest(tmp_path / "assets") == before
    monkeypatch.setitem(checkpoint.STUDY_CONFIGS, "config/cpu_lm.py", checkpoint.config_digest(
        checkpoint.config_values("config/cpu_lm.py")))
    assert scaling.tracked(scaling.FULL, args)  # as tracked: the tables go to assets/
    # data/cpu_lm_bytes prepared from the user's own text (as experiments/README.md allows): the same, for the text
    (tmp_path / "data" / "cpu_lm_bytes").mkdir(parents=True)
    for counts, tracked_there in (({"train_tokens": 5_000, "val_tokens": 500}, False), (checkpoint.SHAKESPEARE, True)):
        (tmp_path / "data" / "cpu_lm_bytes" / "meta.json").write_text(json.dumps({"vocab_size": 256, **counts}))
        assert scaling.tracked(scaling.FULL, args) is tracked_there
        with pytest.raises(SystemExit, match="no finished run under out-cpu_lm/"):
            cpu_lm.main(["--report"])
        said = "data/cpu_lm_bytes holds other text than the tracked tables' (5,000 train and 500 validation tokens, " \
               "where tiny Shakespeare's are 1,003,857 and 111,539): this study's report goes to out-cpu_lm/cpu_lm.*"
        assert (said in capsys.readouterr().err) is not tracked_there
    for damaged in ("{", "[]", '{"train_tokens": "5000", "val_tokens": 500}'):  # no counts: open_data says so
        (tmp_path / "data" / "cpu_lm_bytes" / "meta.json").write_text(damaged)
        assert checkpoint.other_text("data/cpu_lm_bytes") is None and scaling.tracked(scaling.FULL, args)
    # read as open_data reads it (load_json): a byte order mark, as a Windows editor saves it, made no claim either
    (tmp_path / "data" / "cpu_lm_bytes" / "meta.json").write_text("\ufeff" + json.dumps({"train_tokens": 5_000,
                                                                                         "val_tokens": 500}))
    assert checkpoint.other_text("data/cpu_lm_bytes") == {"train_tokens": 5_000, "val_tokens": 500}
    assert tree_digest(tmp_path / "assets") == before


def test_other_text_of_shakespeares_length_is_not_the_tracked_tables_data(tmp_path, monkeypatch, capsys):
    # data/cpu_lm_bytes prepared from Shakespeare lowercased (`tr A-Z a-z`: the same byte counts): the studies took
    # it for the tracked tables' text by meta.json's counts, and a full run wrote its report into assets/
    monkeypatch.chdir(tmp_path)
    os.makedirs("data/cpu_lm_bytes")
    (tmp_path / "data" / "cpu_lm_bytes" / "meta.json").write_text(json.dumps({"vocab_size": 256,
                                                                             **checkpoint.SHAKESPEARE}))
    assert checkpoint.other_text("data/cpu_lm_bytes") is None  # no bins to read (a --report): counts alone
    (tmp_path / "data" / "cpu_lm_bytes" / "val.bin").write_bytes(b"the lowercased text")
    assert checkpoint.other_text("data/cpu_lm_bytes") == checkpoint.SHAKESPEARE
    tracked_table = os.path.join(checkpoint.ASSETS, "cpu_lm")
    assert checkpoint.study_assets(tracked_table, "out-cpu_lm/cpu_lm") == "out-cpu_lm/cpu_lm"
    assert "data/cpu_lm_bytes holds other text than the tracked tables' (tiny Shakespeare's token counts, other " \
           "bytes): this study's report goes to out-cpu_lm/cpu_lm.*" in capsys.readouterr().err
    monkeypatch.setitem(checkpoint.SHAKESPEARE_BINS, "val.bin", hashlib.sha256(b"the lowercased text").hexdigest())
    assert checkpoint.other_text("data/cpu_lm_bytes") is None  # Shakespeare's own bytes: the tracked tables' data


@pytest.mark.parametrize("val_tokens, scored", [(111_539, 106_496), (50_000, 49_152), (1_000, 768)])
def test_cpu_lm_table_names_the_validation_tokens_train_py_scored(tmp_path, capsys, val_tokens, scored):
    # data/cpu_lm_bytes prepared from a shorter text (50,000 validation bytes): train.py scored 12 batches of 16 x 256
    # (49,152, and said so), and the table said "over 106,496 tokens" (the sixteenth pass)
    cfg = dict(train_tokens=400_000, val_tokens=val_tokens, n_layer=4, n_head=4, n_embd=128, block_size=256,
               dropout=0.1, max_iters=600, batch_size=16, eval_tokens=106_496)
    run = {"variant": "qkv", "proj": "qkv", "n_kv_head": 4, "attn": "softmax", "params": 1, "seed": 1337,
           "kv_bytes_per_token_bf16": 2048, "val_loss": 2.0, "val_ppl": 7.4}
    cpu_lm.write_table({"qkv": [run]}, cfg, [], str(tmp_path / "t"))
    assert f"Final validation loss over {scored:,} tokens," in (tmp_path / "t.md").read_text()


@pytest.mark.parametrize("train_tokens, val_tokens, name", [
    (1_003_857, 111_539, "Byte-level Shakespeare"), (400_000, 111_539, "Byte-level data of data/cpu_lm_bytes")])
def test_cpu_lm_table_names_shakespeare_only_for_its_data(tmp_path, train_tokens, val_tokens, name):
    # data/cpu_lm_bytes prepared from another text: the header said "Byte-level Shakespeare" whatever the runs'
    # checkpoints record (the seventeenth pass, left)
    cfg = dict(train_tokens=train_tokens, val_tokens=val_tokens, n_layer=4, n_head=4, n_embd=128, block_size=256,
               dropout=0.1, max_iters=600, batch_size=16, eval_tokens=106_496, data_dir="data/cpu_lm_bytes")
    run = {"variant": "qkv", "proj": "qkv", "n_kv_head": 4, "attn": "softmax", "params": 1, "seed": 1337,
           "kv_bytes_per_token_bf16": 2048, "val_loss": 2.0, "val_ppl": 7.4}
    cpu_lm.write_table({"qkv": [run]}, cfg, [], str(tmp_path / "t"))
    assert (tmp_path / "t.md").read_text().startswith(f"{name} (train {train_tokens:,} bytes, validation 111,539), ")


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["config"].pop("max_iters"), "out-cpu_lm/qkv_s1337 holds a run this study cannot check"),  # KeyError
    (lambda c: c["config"].update(max_iters="600"), "out-cpu_lm/qkv_s1337 holds a run this study cannot check"),
    (lambda c: c["meta"].pop("train_tokens"), "out-cpu_lm/qkv_s1337/ckpt.pt holds meta {'train_tokens': None, "),
    (lambda c: c["model_args"].pop("n_kv_head"), None),  # an older version's: GPTConfig's default, not a KeyError
])
def test_a_hand_edited_cpu_lm_checkpoint_is_one_sentence(world, tmp_path, monkeypatch, edit, message):
    # each was a KeyError or TypeError traceback in --report: its config and meta were read before it was checked
    run = shutil.copytree(world / "run", tmp_path / "out-cpu_lm" / "qkv_s1337")
    ckpt = torch.load(run / "ckpt.pt", weights_only=True)
    ckpt = as_trained(ckpt, configure(ckpt["config"], cpu_lm.train_args("qkv", 1337))[0], iter_num=600)
    edit(ckpt)
    torch.save(ckpt, run / "ckpt.pt")
    (run / "log.jsonl").write_text(json.dumps({"iter": 0, "val_loss": 5.5}) + "\n" +
                                   json.dumps({"iter": 600, "val_loss": 5.0}) + "\n")
    os.symlink(os.path.join(ROOT, "config"), tmp_path / "config")
    monkeypatch.chdir(tmp_path)
    if message is None:
        cpu_lm.main(["--report"])
        assert "| qkv | qkv | 4 | softmax |" in (tmp_path / "out-cpu_lm" / "cpu_lm.md").read_text()
        return
    with pytest.raises(SystemExit, match=f"^{re.escape(message)}"):
        cpu_lm.main(["--report"])
    assert not (tmp_path / "out-cpu_lm" / "cpu_lm.md").exists()


def test_a_study_run_trained_before_its_data_was_prepared_again_is_refused(world, tmp_path, monkeypatch):
    # a finished run is not trained again: a study went on with its other runs on the new data, and reported both
    run = shutil.copytree(world / "run", tmp_path / "out-cpu_lm" / "qkv_s1337")
    ckpt = torch.load(run / "ckpt.pt", weights_only=True)
    own = configure(ckpt["config"], cpu_lm.train_args("qkv", 1337))[0]
    torch.save(as_trained(ckpt, own, iter_num=600), run / "ckpt.pt")
    (run / "log.jsonl").write_text(json.dumps({"iter": 0, "val_loss": 5.5}) + "\n" +
                                   json.dumps({"iter": 600, "val_loss": 5.0}) + "\n")
    os.symlink(os.path.join(ROOT, "config"), tmp_path / "config")
    make_data(tmp_path / "data" / "cpu_lm_bytes")  # the data the run was trained on (make_data makes the same)
    monkeypatch.chdir(tmp_path)
    cpu_lm.main(["--report"])
    meta = tmp_path / "data" / "cpu_lm_bytes" / "meta.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "train_tokens": 30_000}))  # prepared again
    with pytest.raises(SystemExit, match=r"^out-cpu_lm/qkv_s1337 holds a run trained on data/cpu_lm_bytes before it "
                                         r"was prepared again \(train_tokens 30000 \(checkpoint: 20000\)\); move"):
        cpu_lm.main(["--report"])


def test_a_finished_run_whose_log_lost_its_last_lines_is_not_reported(world, tmp_path, monkeypatch):
    # a log cut before the run's last evaluation: its earlier loss was the run's final one, and the figure's mean
    # over seeds an IndexError; a curve with a gap averaged the losses of other iterations
    tracked(tmp_path, "cpu_lm.md")
    os.symlink(os.path.join(ROOT, "config"), tmp_path / "config")
    monkeypatch.chdir(tmp_path)
    ckpt = torch.load(world / "run" / "ckpt.pt", weights_only=True)
    for seed in (1337, 1338):
        run = shutil.copytree(world / "run", tmp_path / "out-cpu_lm" / f"qkv_s{seed}")
        own = configure(ckpt["config"], cpu_lm.train_args("qkv", seed))[0]
        torch.save(as_trained(ckpt, own, iter_num=600), run / "ckpt.pt")
        (run / "log.jsonl").write_text("".join(json.dumps({"iter": it, "val_loss": 5.0 - it / 1000}) + "\n"
                                               for it in range(0, 601, 50)))
    log = tmp_path / "out-cpu_lm" / "qkv_s1338" / "log.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:-1]))
    with pytest.raises(SystemExit, match="^out-cpu_lm/qkv_s1338/log.jsonl ends its validation curve at iteration "
                                         "550, and the run's checkpoint is at 600"):
        cpu_lm.main(["--report"])
    log.write_text("".join(lines[:3] + lines[5:]))  # a gap: iterations 150 and 200 missing
    cpu_lm.main(["--report"])
    assert "| qkv | qkv | 4 | softmax |" in (tmp_path / "out-cpu_lm" / "cpu_lm.md").read_text()


def test_a_complete_report_of_runs_trained_with_other_settings_is_refused(world, tmp_path, monkeypatch):
    # every run folder held a finished run, but one trained by hand (other settings): cpu_lm --report replaced
    # assets/cpu_lm.* with it, exit 0; rope --report scored it as each variant, or failed loading it, and retrofit
    # --report failed on its curve (tracebacks)
    before = tracked(tmp_path, "cpu_lm.md", "cpu_lm.csv", "cpu_lm.png")
    os.symlink(os.path.join(ROOT, "config"), tmp_path / "config")  # where the study reads its runs' settings
    for variant in cpu_lm.VARIANTS:
        for seed in cpu_lm.SEEDS:
            shutil.copytree(world / "run", tmp_path / cpu_lm.run_dir(variant, seed))
    ckpt = torch.load(world / "run" / "ckpt.pt", weights_only=True)
    for name in rope.VARIANTS:
        run = tmp_path / "out-rope-quick" / f"{name.replace(' ', '_')}_s1337"
        run.mkdir(parents=True)
        torch.save({**ckpt, "iter_num": 60}, run / "ckpt.pt")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        cpu_lm.main(["--report"])
    assert str(e.value).startswith("out-cpu_lm/qkv_s1337 holds a run with batch_size = 4, where `python -m "
                                   "experiments.cpu_lm` trains it with 16: a run of other settings; run the study "
                                   "with the options and config files that trained it, or move that folder out of "
                                   "the way")
    assert tree_digest(tmp_path / "assets") == before
    with pytest.raises(SystemExit, match="out-rope-quick/qkv_rope_s1337 holds a run with batch_size = 4, where "
                                         r"`python -m experiments.rope --quick --data_dir=\S+` trains it with 16"):
        rope.main(["--quick", "--report", f"--data_dir={world / 'data'}"])
    assert not (tmp_path / "out-rope-quick" / "rope.md").exists()
    # the study's own runs, scored on other data than they trained on (the full run's report goes to assets/)
    ns = argparse.Namespace(iters=60, data_dir="data/cpu_lm_bytes", root="out-rope-quick", seeds=[1337])
    for name, seed, out, proj, pos_emb in rope.runs(ns):
        own = configure(ckpt["config"], rope.train_args(ns, seed, out, proj, pos_emb))[0]
        torch.save(as_trained(ckpt, own, iter_num=60), os.path.join(out, "ckpt.pt"))
    with pytest.raises(SystemExit, match="out-rope-quick/qkv_rope_s1337 holds a run with data_dir = "
                                         "'data/cpu_lm_bytes', where `python -m experiments.rope --quick "
                                         f"--data_dir={world / 'data'}` trains it with '{world / 'data'}': a run of "
                                         "other settings; run the study with the options and config files that "
                                         "trained it"):
        rope.main(["--quick", "--report", f"--data_dir={world / 'data'}"])
    ns.data_dir = str(tmp_path / "data" / "cpu_lm_bytes") + "/"  # the same folder, written another way
    for name, seed, out, proj, pos_emb in rope.runs(ns):
        checkpoint.check_study_run(torch.load(os.path.join(out, "ckpt.pt"), weights_only=True), out,
                                   rope.train_args(ns, seed, out, proj, pos_emb), "python -m experiments.rope")
    s = dict(retrofit.QUICK, assets="assets/retrofit")  # the quick plan, reported where the complete one goes
    for _, _, out, _, end in retrofit.plan(s):
        os.makedirs(out, exist_ok=True)
        torch.save({**ckpt, "iter_num": end}, os.path.join(out, "ckpt.pt"))
        shutil.copy(world / "run" / "log.jsonl", out)
    with pytest.raises(SystemExit, match="out-retrofit-quick/qkv_s1337 holds a run with batch_size = 4, where "
                                         r"`python -m experiments.retrofit --quick` trains it with 16"):
        retrofit.report(s, "python -m experiments.retrofit --quick")
    assert tree_digest(tmp_path / "assets") == before


def test_a_study_neither_resumes_nor_keeps_a_run_of_other_settings_in_its_folder(world, tmp_path, monkeypatch):
    # a run started there by hand (or copied from another study) was resumed under the study's settings, which its
    # checkpoint then recorded, or kept as finished by its own max_iters: reported as the study's run, or refused
    # only by the report at the end of every other run (hours for a full study)
    os.symlink(os.path.join(ROOT, "config"), tmp_path / "config")
    monkeypatch.chdir(tmp_path)
    ckpt = torch.load(world / "run" / "ckpt.pt", weights_only=True)
    ns = argparse.Namespace(iters=60, data_dir=str(world / "data"), root="out-rope-quick", seeds=[1337], quick=True,
                            jobs=1)
    first = {"out-cpu_lm/qkv_s1337": lambda: cpu_lm.train_all(),
             "out-rope-quick/qkv_rope_s1337": lambda: rope.train_all(ns),
             "out-retrofit-quick/qkv_s1337": lambda: retrofit.train_all(retrofit.QUICK, "python -m experiments.x"),
             "out-rope-quick/qkv_e32_t32_i20_s1337": lambda: scaling.train_all(scaling.QUICK, ns)}
    for iters in (1, 2):  # stopped midway, and finished by its own max_iters
        for out, train_all in first.items():
            os.makedirs(out, exist_ok=True)
            torch.save({**ckpt, "iter_num": iters}, os.path.join(out, "ckpt.pt"))
            for name in ("run", "Popen"):
                monkeypatch.setattr(subprocess, name, lambda *a, **k: pytest.fail("trained a run of other settings"))
            with pytest.raises(SystemExit, match=f"^{out} holds a run with batch_size = 4, where `python -m "
                                                 r"experiments.[a-z_]+( --quick)?( --data_dir=\S+)?` trains it with "
                                                 "(16|8): a run of other settings"):
                train_all()
    for out in first:
        shutil.rmtree(out)
    # in the study's last folder: refused before the first run trains, not once the others had (hours)
    last = {cpu_lm.run_dir(cpu_lm.VARIANTS[-1], cpu_lm.SEEDS[-1]): first["out-cpu_lm/qkv_s1337"],
            list(rope.runs(ns))[-1][2]: first["out-rope-quick/qkv_rope_s1337"],
            retrofit.plan(retrofit.QUICK)[-1][2]: first["out-retrofit-quick/qkv_s1337"],
            os.path.join(ns.root, [r for r in scaling.plan(scaling.QUICK) if r.lr][-1].name(scaling.QUICK)):
                first["out-rope-quick/qkv_e32_t32_i20_s1337"]}
    for out, train_all in last.items():
        os.makedirs(out)
        torch.save({**ckpt, "iter_num": 1}, os.path.join(out, "ckpt.pt"))
        with pytest.raises(SystemExit, match=f"^{out} holds a run with "):
            train_all()
        shutil.rmtree(out)


@pytest.mark.parametrize("damage, message", [
    (lambda log: log.write_text(log.read_text() + '{"iter": 4, "val_lo'), "line 3, is not a log entry of train.py"),
    (lambda log: log.write_text('{"iter": 0, "loss": 5.0}\n'), "holds no validation loss"),
    (lambda log: log.write_text('{"iter": 0, "val_loss": NaN}\n'), "line 1, is not a log entry of train.py"),
    (lambda log: log.write_text('[1, 2]\n'), "line 1, is not a log entry of train.py"),
    (lambda log: log.unlink(), "cannot be read (No such file or directory)"),
])
def test_a_finished_runs_damaged_log_is_one_sentence(world, tmp_path, monkeypatch, damage, message):
    # the studies read each run's curve from its log.jsonl: a torn line was a JSONDecodeError, a log without
    # validation an IndexError, a missing one a FileNotFoundError, a NaN a NaN in the table
    run = tmp_path / "out-cpu_lm" / "qkv_s1337"
    shutil.copytree(world / "run", run)
    ckpt = torch.load(run / "ckpt.pt", weights_only=True)
    own = configure(ckpt["config"], cpu_lm.train_args("qkv", 1337))[0]  # the study's own run, finished
    torch.save(as_trained(ckpt, own, iter_num=600), run / "ckpt.pt")
    os.symlink(os.path.join(ROOT, "config"), tmp_path / "config")  # where the study reads its runs' settings
    log = run / "log.jsonl"
    log.write_text(json.dumps({"iter": 0, "val_loss": 5.5}) + "\n" + json.dumps({"iter": 600, "val_loss": 5.0}) + "\n")
    damage(log)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        cpu_lm.main(["--report"])
    assert message in str(e.value) and str(log.relative_to(tmp_path)) in str(e.value)
    assert not (tmp_path / "out-cpu_lm" / "cpu_lm.md").exists()


def test_a_study_on_other_data_writes_its_tables_beside_its_runs(tmp_path, monkeypatch):
    # `scaling --data_dir=mine` found every row done in assets/scaling.csv and reported Shakespeare's numbers as its
    # run, exit 0; a full `rope --data_dir=mine` wrote its tables over assets/rope.*
    mine, runs = str(tmp_path / "mine"), str(tmp_path / "runs")
    assert scaling.paths(scaling.FULL, argparse.Namespace(root=runs, data_dir=mine)) == \
        (os.path.join(runs, "scaling.csv"), os.path.join(runs, "scaling_projections.csv"))
    default = argparse.Namespace(root=runs, data_dir=os.path.abspath("data/cpu_lm_bytes"))
    assert scaling.paths(scaling.FULL, default)[0] == "assets/scaling.csv"
    with pytest.raises(SystemExit, match="does not exist: no run has finished yet; train them first with "
                                         f"`python -m experiments.scaling --root={runs} --data_dir={mine}`"):
        scaling.main(["--report", f"--root={runs}", f"--data_dir={mine}"])
    written = {}
    monkeypatch.setattr(rope, "open_data", lambda *a, **k: None)
    monkeypatch.setattr(rope, "score", lambda args: ([], []))
    monkeypatch.setattr(rope, "report", lambda rows, missing, args, wall: written.update({args.data_dir: args.assets}))
    for data_dir in (mine, "data/cpu_lm_bytes"):
        rope.main(["--report", f"--data_dir={data_dir}"])
    assert written == {mine: "out-rope/rope", "data/cpu_lm_bytes": "assets/rope"}


def test_the_scaling_report_from_assets_makes_no_run_folder(tmp_path, monkeypatch):
    # `python -m experiments.scaling --report` (the documented command) left an empty out-scaling/ behind
    (tmp_path / "assets").mkdir()
    for name in ("scaling.csv", "scaling_projections.csv"):
        shutil.copy(os.path.join(ROOT, "assets", name), tmp_path / "assets" / name)
    monkeypatch.chdir(tmp_path)
    scaling.main(["--report"])
    assert sorted(os.listdir(tmp_path)) == ["assets"] and (tmp_path / "assets" / "scaling.md").exists()


def test_a_scaling_root_of_runs_on_other_data_is_refused(world, tmp_path):
    # `scaling --quick --data_dir=mine` in the --root of a quick run on the default data found every row done and
    # reported those runs as its own, exit 0
    root = tmp_path / "root"
    shutil.copytree(world / "run", root / "qkv_e32_t32_i20_s1337")
    (root / "scaling.csv").write_text(TABLES[2][3])
    mine = tmp_path / "mine"
    with pytest.raises(SystemExit, match=f"^{root}/qkv_e32_t32_i20_s1337 was trained on --data_dir {world / 'data'}, "
                                         f"and the table of --root {root} holds the runs of one data; give "
                                         f"--data_dir={world / 'data'}, or another --root for {mine}.$"):
        scaling.main(["--quick", "--report", f"--root={root}", f"--data_dir={mine}"])
    assert not (root / "scaling.md").exists()
    # its own data: reported (the table's row has no run folder here, so the root names its data, as since 159df4a)
    (root / "scaling_data.txt").write_text(f"{world / 'data'}\n")
    scaling.main(["--quick", "--report", f"--root={root}", f"--data_dir={world / 'data'}"])
    assert (root / "scaling.md").exists()
    # its folder deleted (a row is done without it): the root names its data, as the study writes it with each row
    shutil.rmtree(root / "qkv_e32_t32_i20_s1337")
    (root / "scaling_data.txt").write_text(f"{world / 'data'}\n")
    with pytest.raises(SystemExit, match=f"^the table of --root {root} holds runs on --data_dir {world / 'data'} "
                                         f"\\({root}/scaling_data.txt says so\\); give --data_dir={world / 'data'}, "
                                         f"or another --root for {mine}.$"):
        scaling.main(["--quick", "--report", f"--root={root}", f"--data_dir={mine}"])


def test_the_scaling_root_s_data_is_advised_as_the_shell_takes_it(tmp_path):
    # "give --data_dir=/x/my data": pasted, two arguments
    root = tmp_path / "root"
    root.mkdir()
    (root / "scaling.csv").write_text(TABLES[2][3])
    (root / "scaling_data.txt").write_text(f"{tmp_path / 'my data'}\n")
    with pytest.raises(SystemExit) as e:
        scaling.main(["--quick", "--report", f"--root={root}", f"--data_dir={tmp_path / 'mine'}"])
    assert str(e.value).endswith(f"; give '--data_dir={tmp_path}/my data', or another --root for {tmp_path}/mine.")


def test_a_study_s_data_dir_is_one_folder_under_any_locale(tmp_path):
    # a run trained under a UTF-8 locale saved data_dir 'dé'; the study run under PYTHONUTF8=0 LC_ALL=C gives the
    # same folder typed as 'd\udcc3\udca9': realpath's UnicodeEncodeError there (a traceback from scaling --report
    # and from every study's check of a finished run), and in UTF-8 mode "a run of other settings"
    data = tmp_path / "dé"
    data.mkdir()
    typed = f"{tmp_path}/d\udcc3\udca9"
    assert checkpoint.same_folder(str(data), typed) and checkpoint.same_folder(str(data) + "/", str(data))
    assert not checkpoint.same_folder(str(data), str(tmp_path))
    checkpoint.check_study_run({"config": {"data_dir": str(data), "seed": 1}}, tmp_path / "run",
                               [f"--data_dir={typed}", "--seed=1"], "python -m experiments.scaling")
    root = tmp_path / "root"
    root.mkdir()
    (root / "scaling.csv").write_text(TABLES[2][3])
    (root / "scaling_data.txt").write_text(f"{data}\n")
    scaling.main(["--quick", "--report", f"--root={root}", f"--data_dir={typed}"])  # its own data: reported
    assert (root / "scaling.md").exists()


TABLES = [  # (study, its argv, the table it reads, a line of it)
    (rope, ["--redraw"], "assets/rope.csv", "variant,seed,length,loss\nqkv rope,1337,256,1.8\n"),
    (retrofit, ["--redraw"], "assets/retrofit.csv",
     "model,seed,kv_bytes_per_token_bf16,params,iter,val_loss\nqkv,1337,2048,858880,0,5.5\n"),
    (scaling, ["--quick", "--report"], "out-scaling-quick/scaling.csv", ",".join(scaling.COLUMNS) +
     "\nqkv,qkv,0,2,32,32,8,20,0.002,1337,34688,256,2.17504,2.17504,831\n"),  # the quick grid's first run
]


@pytest.mark.parametrize("study, argv, table, good", TABLES, ids=["rope", "retrofit", "scaling"])
@pytest.mark.parametrize("damage, message", [
    (lambda good: b"x,y\n1,2\n", "has no column"),  # rope drew an empty figure over its tracked one, exit 0
    (lambda good: good.split(b"\n")[0] + b"\n", "holds no rows"),  # so did both --redraw
    (lambda good: b"\xff\xfe" + good, "cannot be read as a CSV (UnicodeDecodeError)"),
    (lambda good: good.replace(b",1337,", b",,"), "line 2, holds '' as seed"),
    (lambda good: good.replace(b",1337,", b",nan,"), "line 2, holds 'nan' as seed"),
    (lambda good: good.replace(b",1337,", b",1.5,"), "line 2, holds '1.5' as seed"),  # int()'s ValueError
    (lambda good: good.replace(b",1337,", b",-1,"), "line 2, holds '-1' as seed"),
    (lambda good: good.rstrip(b"\n").rsplit(b",", 1)[0] + b"\n", "line 2, holds None as"),  # a short row
])
def test_a_damaged_table_is_one_sentence_and_draws_nothing(tmp_path, monkeypatch, study, argv, table, good, damage,
                                                          message):
    # each was a KeyError, ValueError or UnicodeDecodeError traceback, or a figure drawn from nothing
    path = tmp_path / table
    path.parent.mkdir()
    path.write_bytes(damage(good.encode()))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        study.main(argv)
    assert str(e.value).startswith(f"{table}") and message in str(e.value)
    assert os.listdir(path.parent) == [path.name]  # no figure, no report


@pytest.mark.parametrize("study, table, damage, message", [
    # a variant of no curve drew an empty figure, exit 0; a loss past exp()'s range was an OverflowError
    (rope, "assets/rope.csv", lambda rows: [["zzz", *r[1:]] for r in rows], "holds 'zzz' at length 256"),
    (rope, "assets/rope.csv", lambda rows: [[*rows[0][:3], "1e308"], *rows[1:]], "with loss 1e308"),
    # a row deleted, or the other mode's table, was a KeyError, or an empty min() for a model it does not train
    (retrofit, "assets/retrofit.csv", lambda rows: rows[1:], "'qkv' seed 1338 reads steps [0, 600]"),
    (retrofit, "assets/retrofit.csv", lambda rows: [["zzz", *r[1:]] for r in rows], "'zzz' seed 1337"),
])
def test_a_redrawn_table_this_study_never_writes_is_one_sentence(tmp_path, monkeypatch, study, table, damage,
                                                                  message):
    with open(os.path.join(ROOT, table), newline="") as f:
        header, *rows = list(csv.reader(f))
    path = tmp_path / table
    path.parent.mkdir()
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *damage(rows)])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        study.main(["--redraw"])
    assert str(e.value).startswith(table) and message in str(e.value)
    assert os.listdir(path.parent) == [path.name]  # no figure


@pytest.mark.parametrize("study", [rope, retrofit], ids=["rope", "retrofit"])
def test_a_redraw_says_what_it_wrote(tmp_path, monkeypatch, capsys, study):
    name = study.__name__.split(".")[-1]
    (tmp_path / "assets").mkdir()
    shutil.copy(os.path.join(ROOT, "assets", f"{name}.csv"), tmp_path / "assets")
    monkeypatch.chdir(tmp_path)
    study.main(["--redraw"])  # drew the figure and printed nothing
    assert capsys.readouterr().out == f"wrote assets/{name}.png\n" and (tmp_path / "assets" / f"{name}.png").exists()


@pytest.mark.parametrize("damage", [lambda rows: [[*r[:3], "zzz", *r[4:]] for r in rows], lambda rows: rows[1:]])
def test_scaling_report_of_a_projections_table_missing_a_measure_is_one_sentence(tmp_path, monkeypatch, damage):
    # every measure renamed (or one row deleted) was a StatisticsError from the mean of nothing, or a mean of fewer
    (tmp_path / "assets").mkdir()
    shutil.copy(os.path.join(ROOT, "assets", "scaling.csv"), tmp_path / "assets")
    with open(os.path.join(ROOT, "assets", "scaling_projections.csv"), newline="") as f:
        header, *rows = list(csv.reader(f))
    with open(tmp_path / "assets" / "scaling_projections.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *damage(rows)])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        scaling.main(["--report"])
    assert "does not hold each of the 9 measures" in str(e.value) and "seed 1337, layer 0" in str(e.value)
    assert sorted(os.listdir(tmp_path / "assets")) == ["scaling.csv", "scaling_projections.csv"]


def test_rope_report_without_finished_runs_is_one_sentence(world, tmp_path, monkeypatch):
    before = tracked(tmp_path, "rope.md", "rope.csv", "rope.png")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        rope.main(["--report", f"--data_dir={world / 'data'}"])
    # the advice carries --data_dir: without it the runs would train on the default data, which --report refuses
    assert str(e.value) == "no finished run under out-rope/; train them first with " \
                           f"`python -m experiments.rope --data_dir={world / 'data'}`."
    assert tree_digest(tmp_path / "assets") == before and sorted(os.listdir(tmp_path)) == ["assets"]


def test_rope_report_names_the_command_with_its_data_dir(tmp_path, capsys):
    # a study on other data said "Generated by `python -m experiments.rope --quick`": a command that trains the
    # default data, and whose report would be another
    args = argparse.Namespace(quick=True, data_dir=str(tmp_path / "mine"), root=str(tmp_path), iters=60, seeds=[1337],
                              assets=str(tmp_path / "rope"), scored=rope.EVAL_TOKENS)
    rows = [{"variant": v, "seed": 1337, "length": 256, "loss": 2.5} for v in rope.VARIANTS]
    rope.report(rows, [], args, 0.0)
    assert f"Generated by `python -m experiments.rope --quick --data_dir={tmp_path / 'mine'}`" in \
        (tmp_path / "rope.md").read_text()
    # the data named, as its meta.json records it: other text said only "config/cpu_lm.py" (Shakespeare's setting)
    for counts, name in (({"train_tokens": 40_000, "val_tokens": 4_000}, f"Byte-level data of {tmp_path / 'mine'}"),
                         (checkpoint.SHAKESPEARE, "Byte-level Shakespeare")):
        (tmp_path / "mine").mkdir(exist_ok=True)
        (tmp_path / "mine" / "meta.json").write_text(json.dumps({"tokenizer": "bytes", "vocab_size": 256, **counts}))
        rope.report(rows, [], args, 0.0)
        assert f"(0 min of training this call). {name}, config/cpu_lm.py, 60 iterations" in \
            (tmp_path / "rope.md").read_text()


def test_rope_names_its_command_as_the_shell_takes_it(tmp_path):
    # "Generated by `python -m experiments.rope --data_dir=/x/my data`" (and the advice to train first): a folder with
    # a space, pasted, was two arguments
    args = argparse.Namespace(quick=True, data_dir=str(tmp_path / "my data"))
    assert rope.study_command(args) == f"python -m experiments.rope --quick '--data_dir={tmp_path}/my data'"


def test_rope_report_says_it_trained_nothing(tmp_path, monkeypatch):
    # --report over runs trained before (by another version: 15 min) said "(2 min of training this call)": the
    # minutes it took to score them
    monkeypatch.chdir(tmp_path)
    clock = iter([0.0, 120.0, 120.0, 120.0])
    monkeypatch.setattr(rope.time, "time", lambda: next(clock))
    monkeypatch.setattr(rope, "open_data", lambda *a, **k: None)
    rows = [{"variant": v, "seed": 1337, "length": 256, "loss": 2.5} for v in rope.VARIANTS]
    monkeypatch.setattr(rope, "score", lambda args: (next(clock), setattr(args, "scored", rope.EVAL_TOKENS),
                                                     (rows, []))[2])  # scoring takes 2 minutes
    rope.main(["--quick", "--report"])
    assert "Generated by `python -m experiments.rope --quick` (--report: no run trained by this call)." in \
        (tmp_path / "out-rope-quick" / "rope.md").read_text()


def test_scored_tokens_of_more_processes_than_val_bin_has_windows_is_none():
    # a resume asks what its checkpoint's processes scored: two of them on a val.bin of one window were a
    # ZeroDivisionError; one window of 64 for one process, none for two
    assert checkpoint.scored_tokens(100, 64, 4, 512) == 64
    assert checkpoint.scored_tokens(100, 64, 4, 512, world_size=2) == 0


def test_rope_scores_the_same_bytes_at_every_length_of_a_small_val_bin(tmp_path):
    # a --data_dir whose val.bin holds 1,501 tokens: 256 scored 1,280 of them and 512 and 1,024 scored 1,024, and the
    # report said "on the same 106,496 validation bytes" (the sixteenth pass)
    data = np.arange(1501) % 251

    class MeanTarget(torch.nn.Module):  # loss = the mean target id: equal means over the same tokens
        def forward(self, x, y):
            return None, y.double().mean()
    assert rope.scored_at_every_length(data, 256) == 1024
    means = {n: rope.val_loss(MeanTarget(), data, n, 1024) for n in (256, 512, 1024)}
    assert means[256] == means[512] == means[1024] == pytest.approx(np.mean(data[1:1025]))
    args = argparse.Namespace(quick=True, data_dir=str(tmp_path / "mine"), root=str(tmp_path), iters=60, seeds=[1337],
                              assets=str(tmp_path / "rope"), scored=1024)
    rope.report([{"variant": v, "seed": 1337, "length": 256, "loss": 2.5} for v in rope.VARIANTS], [], args, 0.0)
    assert "on the same 1,024 validation bytes" in (tmp_path / "rope.md").read_text()
    assert rope.scored_at_every_length(np.zeros(111_539), 256) == rope.EVAL_TOKENS  # the default data's: as before


def test_a_second_partial_quick_report_replaces_the_first(tmp_path):
    # `--quick --report` twice while runs were unfinished: the first, partial, went to rope.md, the second to
    # rope_partial.md beside it, as if rope.md were the complete quick report, and rope.md kept the older runs
    args = argparse.Namespace(quick=True, data_dir=str(tmp_path / "mine"), root=str(tmp_path), iters=60, seeds=[1337],
                              assets=str(tmp_path / "rope"), scored=1024)
    rows = [{"variant": v, "seed": 1337, "length": 256, "loss": 2.5} for v in rope.VARIANTS]
    rope.report(rows[:1], [f"{v}_s1337" for v in list(rope.VARIANTS)[1:]], args, 0.0)
    rope.report(rows[:2], [f"{v}_s1337" for v in list(rope.VARIANTS)[2:]], args, 0.0)
    assert not list(tmp_path.glob("rope_partial.*"))
    n = len(rope.VARIANTS)
    assert (tmp_path / "rope.md").read_text().startswith(f"PARTIAL: {n - 2} of {n} runs not finished")


def test_a_complete_quick_report_removes_the_partial_one_it_replaces(tmp_path, capsys):
    # a run folder deleted, --quick --report wrote NAME_partial.* beside the complete quick report; trained again,
    # the complete report was written and the stale partial one stayed beside it, reporting fewer runs
    args = argparse.Namespace(quick=True, data_dir=str(tmp_path / "mine"), root=str(tmp_path), iters=60, seeds=[1337],
                              assets=str(tmp_path / "rope"), scored=1024)
    rows = [{"variant": v, "seed": 1337, "length": 256, "loss": 2.5} for v in rope.VARIANTS]
    rope.report(rows, [], args, 0.0)
    rope.report(rows[1:], [f"{next(iter(rope.VARIANTS))}_s1337"], args, 0.0)
    assert (tmp_path / "rope_partial.md").read_text().startswith("PARTIAL:")
    assert sorted(p.name for p in tmp_path.glob("rope_partial.*")) == ["rope_partial.csv", "rope_partial.md",
                                                                       "rope_partial.png"]
    (tmp_path / "rope_partial.txt").write_text("the user's\n")
    rope.report(rows, [], args, 0.0)
    assert sorted(p.name for p in tmp_path.glob("rope_partial.*")) == ["rope_partial.txt"]
    assert f"removed {tmp_path / 'rope_partial'}.*, a partial report: {tmp_path / 'rope'}.* now reports every run" \
        in capsys.readouterr().err
    (tmp_path / "rope_partial.md").write_text("notes of my own\n")  # not a partial report: kept
    rope.report(rows, [], args, 0.0)
    assert (tmp_path / "rope_partial.md").read_text() == "notes of my own\n"
    assert "removed" not in capsys.readouterr().err  # it was said removed, and kept
    (tmp_path / "rope_partial.md").unlink()
    (tmp_path / "rope_partial.md").mkdir()  # a folder of that name, or one unreadable: nothing to remove, no traceback
    rope.report(rows, [], args, 0.0)
    assert (tmp_path / "rope_partial.md").is_dir()


def test_a_complete_report_removes_the_partial_one_beside_the_runs(tmp_path, capsys):
    # a full study's partial report goes beside its runs (out-rope/rope.*, out-cpu_lm/cpu_lm.*), its complete one to
    # assets/: once every run finished, the PARTIAL report stayed in the runs' folder, which the README says is removed
    (tmp_path / "assets").mkdir()
    args = argparse.Namespace(quick=True, data_dir=str(tmp_path / "mine"), root=str(tmp_path), iters=60, seeds=[1337],
                              assets=str(tmp_path / "assets" / "rope"), scored=1024)
    rows = [{"variant": v, "seed": 1337, "length": 256, "loss": 2.5} for v in rope.VARIANTS]
    rope.report(rows[1:], [f"{next(iter(rope.VARIANTS))}_s1337"], args, 0.0)
    assert (tmp_path / "rope.md").read_text().startswith("PARTIAL:")
    rope.report(rows, [], args, 0.0)
    assert not list(tmp_path.glob("rope.*")) and (tmp_path / "assets" / "rope.md").exists()
    assert f"removed {tmp_path / 'rope'}.*, a partial report" in capsys.readouterr().err


def test_a_study_report_on_a_damaged_meta_json_keeps_the_text_beside_it(tmp_path):
    # data prepared into the folder of its text: "delete data_dir and prepare it again" deleted input.txt too
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "input.txt").write_text("To be, or not to be\n")
    (mine / "meta.json").write_text('{"train_tokens": 1')
    args = argparse.Namespace(quick=True, data_dir=str(mine), root=str(tmp_path), iters=60, seeds=[1337],
                              assets=str(tmp_path / "rope"), scored=1024)
    rows = [{"variant": v, "seed": 1337, "length": 256, "loss": 2.5} for v in rope.VARIANTS]
    with pytest.raises(SystemExit) as e:
        rope.report(rows, [], args, 0.0)
    assert str(e.value).endswith(f"delete {mine}/meta.json (not {mine}: it holds input.txt too) and prepare it again.")


def test_retrofit_partial_report_goes_to_the_runs_folder_and_a_torn_cache_is_recomputed(world, tmp_path, capsys,
                                                                                      monkeypatch):
    s = dict(retrofit.FULL, root=str(tmp_path / "out-retrofit"), assets=str(tmp_path / "assets" / "retrofit"),
             eval_tokens=512)
    before = tracked(tmp_path, "retrofit.md", "retrofit.csv", "retrofit.png")
    source = tmp_path / "out-retrofit" / "qkv_s1337"
    source.mkdir(parents=True)
    ckpt = torch.load(world / "run" / "ckpt.pt", weights_only=True)
    (source / "log.jsonl").write_text(json.dumps({"iter": 0, "val_loss": 5.5}) + "\n" +
                                      json.dumps({"iter": retrofit.ITERS, "val_loss": 2.5}) + "\n")
    torch.save({**ckpt, "iter_num": retrofit.ITERS}, source / "ckpt.pt")  # trained by hand (other settings)
    with pytest.raises(SystemExit, match=f"^{source} holds a run with batch_size = 4, where"):
        retrofit.report(s, "python -m experiments.retrofit")  # was in the partial report as the study's source
    monkeypatch.setattr(retrofit, "check_study_run", lambda *a: None)  # from here on the study's own source
    # torn by a kill of an older version; JSON of something else, an AttributeError or KeyError (the seventh pass)
    for damage in ('{"qk_v k": {"loss": 2.', '[1, 2]', '{"qk_v k": {"loss": 2.0}}'):
        (source / "conversions.json").write_text(damage)
        retrofit.report(s, "python -m experiments.retrofit")
        assert tree_digest(tmp_path / "assets") == before
        md = (tmp_path / "out-retrofit" / "retrofit.md").read_text()
        assert md.startswith(f"PARTIAL: {len(retrofit.plan(s)) - 1} of {len(retrofit.plan(s))} runs not finished")
        assert set(json.loads((source / "conversions.json").read_text())) == set(retrofit.CONVERSIONS)
    capsys.readouterr()
    retrofit.report(s, "python -m experiments.retrofit")  # the cache it wrote is read back, not computed again
    assert "computing it again" not in capsys.readouterr().err
    # a quick study's reports share its --root: one run's folder deleted, `--quick --report` replaced the complete
    # quick report with a partial one; it goes beside it now, and a first partial one where the complete one will
    quick = dict(s, assets=s["root"] + "/retrofit")
    for name in ("retrofit.md", "retrofit.csv", "retrofit_partial.md", "retrofit_partial.csv"):
        (tmp_path / "out-retrofit" / name).unlink(missing_ok=True)
    retrofit.report(quick, "python -m experiments.retrofit --quick")
    assert (tmp_path / "out-retrofit" / "retrofit.md").read_text().startswith("PARTIAL:")
    (tmp_path / "out-retrofit" / "retrofit.md").write_text("the complete quick report\n")
    retrofit.report(quick, "python -m experiments.retrofit --quick")
    assert (tmp_path / "out-retrofit" / "retrofit.md").read_text() == "the complete quick report\n"
    assert (tmp_path / "out-retrofit" / "retrofit_partial.md").read_text().startswith("PARTIAL:")
    assert "goes to " + s["root"] + "/retrofit_partial.* (" + s["root"] + "/retrofit.* holds the complete one)" in \
        capsys.readouterr().err
    (source / "conversions.json").unlink()
    (source / "conversions.json").mkdir()  # an IsADirectoryError traceback
    with pytest.raises(SystemExit, match=f"^{source}/conversions.json is a folder, where this study keeps the "):
        retrofit.report(s, "python -m experiments.retrofit")


def test_the_training_studies_start_this_repositorys_train_py_from_any_folder(tmp_path, monkeypatch):
    # run from another folder (PYTHONPATH set), their data advice named data/cpu_lm_bytes there, and once it was
    # prepared every run started ./train.py and config/cpu_lm.py there: "can't open file '.../train.py'", then
    # "train.py stopped (its message is above); fix that" (the twentieth pass)
    monkeypatch.chdir(tmp_path)
    ns = argparse.Namespace(iters=60, data_dir="data/cpu_lm_bytes")
    commands = [[checkpoint.repo_path("train.py"), *cpu_lm.train_args("qk_v", 1337)],
                *[args for _, _, _, args, _ in retrofit.plan(retrofit.QUICK)],
                rope.train_args(ns, 1337, "out-rope/qk_v", "qk_v", "rope"),
                *[scaling.command(run, scaling.QUICK, "data", "out", False)[1:] for run in scaling.plan(scaling.QUICK)]]
    files = {a for cmd in commands for a in cmd if a.endswith(".py")}
    assert {os.path.basename(a) for a in files} >= {"train.py", "cpu_lm.py", "cpu_lm_qk_v.py", "cpu_lm_qkv_mqa.py"}
    assert all(os.path.isfile(a) and os.path.realpath(a).startswith(os.path.realpath(ROOT) + os.sep) for a in files)
    assert not os.listdir(tmp_path)


def test_experiments_check_their_output_folders_before_training(tmp_path, monkeypatch):
    make_data(tmp_path / "data" / "cpu_lm_bytes")
    (tmp_path / "out-retrofit-quick").write_text("a file where the runs' folder should be")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("trained before checking its folders"))
    with pytest.raises(SystemExit, match=r"^out-retrofit-quick is not a writable directory \(a file has that name\); "
                                         r"move that file out of the way and run again\.$"):  # "make it writable"
        retrofit.main(["--quick"])


def test_an_output_option_naming_a_file_is_told_to_choose_another_not_to_move_the_file(tmp_path, monkeypatch):
    # bench.py --out=out-cpu-tiny/ckpt.pt or prepare --out_dir=input.txt: "move that file out of the way" told the
    # user to move their checkpoint or text away, where the option named the wrong path
    import bench
    (tmp_path / "ckpt.pt").write_bytes(b"a checkpoint")
    (tmp_path / "input.txt").write_text("some text\n" * 50)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r"^ckpt\.pt is a file, not a directory; choose another --out\.$"):
        bench.main(["--what=cache", "--quick", "--out=ckpt.pt"])
    with pytest.raises(SystemExit, match=r"^ckpt\.pt/ is a file, not a directory; choose another --out\.$"):
        bench.main(["--what=cache", "--quick", "--out=ckpt.pt/"])  # was "not a writable directory (File exists)"
    with pytest.raises(SystemExit, match=r"^input\.txt is a file, not a directory; choose another --out_dir\.$"):
        P.main(["--input=input.txt", "--tokenizer=bytes", "--out_dir=input.txt"])
    make_data(tmp_path / "data" / "cpu_lm_bytes")
    before = tree_digest(tmp_path)
    with pytest.raises(SystemExit, match=r"^input\.txt is a file, not a directory; choose another --root\.$"):
        scaling.main(["--quick", "--root=input.txt"])
    assert tree_digest(tmp_path) == before


STUDIES = [(cpu_lm, [], "out-cpu_lm"), (retrofit, ["--quick"], "out-retrofit-quick"),
           (rope, ["--quick"], "out-rope-quick"), (scaling, ["--quick"], "out-scaling-quick")]


@pytest.mark.parametrize("study, argv, root", STUDIES[:3], ids=[r for _, _, r in STUDIES[:3]])
def test_a_folder_named_like_a_report_file_is_refused_before_training(tmp_path, monkeypatch, study, argv, root):
    # atomic_write refused it only at the report, after every run trained (and after its .md and .csv were written)
    make_data(tmp_path / "data" / "cpu_lm_bytes")
    figure = tmp_path / root / f"{root.split('-')[1]}.png"  # where a partial report goes
    figure.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("trained before checking its report"))
    with pytest.raises(SystemExit) as e:
        study.main(argv)
    assert str(e.value) == (f"{root}/{figure.name} is a folder, where this command writes its results; move it out "
                            f"of the way, or write elsewhere.")
    assert os.listdir(tmp_path / root) == [figure.name]


@pytest.mark.parametrize("study, argv, root", STUDIES[:3], ids=[r for _, _, r in STUDIES[:3]])
def test_a_study_stopped_before_its_first_run_saved_leaves_no_folder(tmp_path, monkeypatch, study, argv, root):
    # Ctrl-C in the first train.py run, before its first checkpoint: train.py removed its run folder, and the study
    # left its own, empty (scaling's is removed as well: new_dirs)
    make_data(tmp_path / "data" / "cpu_lm_bytes")
    monkeypatch.chdir(tmp_path)

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(subprocess, "Popen", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        study.main(argv)
    assert sorted(os.listdir(tmp_path)) == ["data"]


@pytest.mark.parametrize("study, argv, root", STUDIES, ids=[r for _, _, r in STUDIES])
def test_a_second_study_into_the_same_runs_waits_its_turn(tmp_path, monkeypatch, study, argv, root):
    # the second one's first train.py met the first's lock and said to choose another --out_dir, a setting the
    # studies do not have; two scaling runs would also each rewrite scaling.csv from the rows they had read
    make_data(tmp_path / "data" / "cpu_lm_bytes")
    (tmp_path / root).mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("trained beside another study"))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("trained beside another study"))
    with checkpoint.hold_lock(root, "held by the test"):
        with pytest.raises(SystemExit, match=f"{root} is being trained into by another `python -m experiments."):
            study.main(argv)
    assert os.listdir(root) == []


# a train.py that stands in for the real one under a study: says it is ready, then stops on SIGTERM as train.py does
FAKE_TRAIN = """import os, signal, sys, time
def stop(*args):
    open(f"stopped.{os.getpid()}", "w").close()
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
open(f"ready.{os.getpid()}", "w").close()
time.sleep(30)
"""


@pytest.mark.parametrize("study, runs", [(cpu_lm, 1), (scaling, 2)], ids=["cpu_lm", "scaling"])
def test_a_study_stopped_by_sigterm_stops_its_runs_and_waits_for_them(tmp_path, monkeypatch, study, runs):
    # `kill` (or `timeout`) of a study: scaling's train.py processes trained on alone, cpu_lm's was killed mid-save
    # by subprocess.run with no word, leaving its lock and log; now each gets the SIGTERM and stops as it says
    import threading
    from configurator import Terminated, stop_on_sigterm
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text(FAKE_TRAIN)
    monkeypatch.setattr(study, "repo_path", lambda name: name)  # this folder's train.py, not the repository's

    def kill_when_ready():
        deadline = time.time() + 60
        while len([f for f in os.listdir(tmp_path) if f.startswith("ready.")]) < runs and time.time() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    stop_on_sigterm()
    threading.Thread(target=kill_when_ready, daemon=True).start()
    try:
        with pytest.raises(Terminated):
            if study is cpu_lm:
                cpu_lm.train_all()
            else:
                scaling.train_all(scaling.QUICK, argparse.Namespace(root="runs", data_dir="data", jobs=runs))
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGHUP, before[1])
    ready = sorted(f.split(".")[1] for f in os.listdir(tmp_path) if f.startswith("ready."))
    stopped = sorted(f.split(".")[1] for f in os.listdir(tmp_path) if f.startswith("stopped."))
    assert len(ready) == runs and stopped == ready  # each stopped by its own handler, before the study went on


@pytest.mark.parametrize("study, argv, root", STUDIES, ids=[r for _, _, r in STUDIES])
def test_a_report_while_the_study_trains_its_first_run_says_to_wait(tmp_path, monkeypatch, study, argv, root):
    # "no finished run; train them first with `python -m experiments.X`": that command, run, met the lock of the
    # study already training them
    make_data(tmp_path / "data" / "cpu_lm_bytes")
    (tmp_path / root).mkdir()
    monkeypatch.chdir(tmp_path)
    with checkpoint.hold_lock(root, "held by the test, as the study holds it"):
        with pytest.raises(SystemExit) as e:
            study.main([*argv, "--report"])
    assert re.search(r"; `python -m experiments\.[a-z_]+( --quick)?` is training them now: wait for its first run "
                     r"to finish, then run this again\.$", str(e.value)), str(e.value)
    with pytest.raises(SystemExit, match="; train them first with `python -m experiments"):  # none training them
        study.main([*argv, "--report"])


def test_a_scaling_study_whose_output_closes_stops_the_runs_still_training(tmp_path, monkeypatch):
    # `python -m experiments.scaling | head -3`: the line after a finished run met the closed pipe, and the study
    # ended there, its other run left training on its own
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text(FAKE_TRAIN.replace("time.sleep(", "'--proj=qkv' in sys.argv or time.sleep("))
    monkeypatch.setattr(scaling, "repo_path", lambda name: name)  # this folder's train.py, not the repository's

    def closed(*args):
        deadline = time.time() + 60  # the qk_v run ready to stop as train.py does
        while len([f for f in os.listdir(tmp_path) if f.startswith("ready.")]) < 2 and time.time() < deadline:
            time.sleep(0.05)
        raise BrokenPipeError(32, "Broken pipe")
    monkeypatch.setattr(scaling, "finish", closed)  # the first line after the qkv run
    with pytest.raises(BrokenPipeError):
        scaling.train_all(scaling.QUICK, argparse.Namespace(root="runs", data_dir="data", jobs=2))
    ready = sorted(f.split(".")[1] for f in os.listdir(tmp_path) if f.startswith("ready."))
    stopped = sorted(f.split(".")[1] for f in os.listdir(tmp_path) if f.startswith("stopped."))
    assert len(ready) == 2 and len(stopped) == 1 and stopped[0] in ready  # the qk_v run, stopped as it says


def test_a_run_refused_by_the_lock_leaves_the_folder_the_holder_made(tmp_path):
    # two evals (benches, studies) started together into one new folder: both found none, the second, refused by the
    # first's lock, removed the folder as one it had made, and the first's results had nowhere to go
    out, cache = tmp_path / "new", tmp_path / "cache"
    with pytest.raises(SystemExit, match="^busy$"):
        with checkpoint.new_dirs(str(out), str(cache)):  # looked before the other run made it
            cache.mkdir()  # this run's own: removed
            out.mkdir()
            with checkpoint.hold_lock(str(out), "held by the other run"):
                with checkpoint.hold_lock(str(out), "busy"):
                    pass
    assert out.is_dir() and not cache.exists()
    with pytest.raises(SystemExit):  # a folder this run made and failed in is still removed
        with checkpoint.new_dirs(str(tmp_path / "mine")):
            (tmp_path / "mine").mkdir()
            raise SystemExit("failed")
    assert not (tmp_path / "mine").exists()


def test_hold_lock_refuses_a_second_holder_and_runs_where_there_is_no_flock(tmp_path, monkeypatch):
    with checkpoint.hold_lock(str(tmp_path), "busy"):
        with pytest.raises(SystemExit, match="^busy$"):
            with checkpoint.hold_lock(str(tmp_path), "busy"):
                pass
        real = __import__
        monkeypatch.setattr("builtins.__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                            if name == "fcntl" else real(name, *a, **k))  # Windows: eval.py failed to import it
        with checkpoint.hold_lock(str(tmp_path), "busy"):
            pass


def test_a_folder_made_through_a_link_and_dotdot_is_the_one_removed(tmp_path, monkeypatch):
    # out_dir=link/../m: makedirs makes m beside the link's target; the normal form named ./m, so a run stopped
    # before its first save removed the user's own empty ./m and left the m it made
    (tmp_path / "far" / "sub").mkdir(parents=True)
    (tmp_path / "here").mkdir()
    os.symlink(tmp_path / "far" / "sub", tmp_path / "here" / "link")
    (tmp_path / "here" / "m").mkdir()  # the user's, empty
    monkeypatch.chdir(tmp_path / "here")
    assert checkpoint.missing_dirs("link/../m") == [str(tmp_path / "far" / "m")]
    with pytest.raises(SystemExit):
        with checkpoint.new_dirs("link/../m"):
            os.makedirs("link/../m")
            raise SystemExit("stopped")
    assert (tmp_path / "here" / "m").is_dir() and not (tmp_path / "far" / "m").exists()


def test_a_training_run_that_fails_stops_the_study_in_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr(subprocess, "Popen", lambda cmd, **k: argparse.Namespace(wait=lambda: 1))  # train.py refused
    s = dict(retrofit.QUICK, root=str(tmp_path / "runs"), assets=str(tmp_path / "runs" / "retrofit"))
    (tmp_path / "runs").mkdir()  # made by main, before the lock on it
    with pytest.raises(SystemExit, match=f"^{tmp_path}/runs/qkv_s1337: train.py stopped \\(its message is above\\)"):
        # was a CalledProcessError traceback below train.py's own one line
        retrofit.train_all(s, "python -m experiments.retrofit --quick")
    assert os.listdir(tmp_path / "runs") == []


def test_an_out_nested_too_deep_is_one_sentence_in_eval_and_the_studies(tmp_path, capsys, default_recursion_limit):
    # eval.py, synthetic and analyze checked --out with their own copies of writable_dir, which caught OSError only:
    # os.makedirs' RecursionError (1,500 folders, under PATH_MAX) was a traceback; they share checkpoint.unwritable
    import importlib
    from experiments import synthetic
    deep = str(tmp_path / ("a/" * 1500))[:-1]
    with pytest.raises(SystemExit) as e:
        importlib.import_module("eval").writable_out(deep)
    why = f"--out {deep!r} is not a writable directory (nested too deep to create); choose another --out."
    assert str(e.value) == why
    parser = synthetic.get_parser()
    with pytest.raises(SystemExit) as e:
        synthetic.check_args(parser, parser.parse_args([f"--out={deep}", f"--cache={tmp_path / 'runs'}"]))
    assert e.value.code == 2 and capsys.readouterr().err.endswith(why + "\n")
    assert not (tmp_path / "a").exists()


def test_two_full_scaling_studies_in_two_roots_do_not_share_the_tracked_table(tmp_path, monkeypatch):
    # each trained the same runs and rewrote assets/scaling.csv from the rows it had read, dropping the other's rows
    make_data(tmp_path / "data" / "cpu_lm_bytes")
    meta = json.loads((tmp_path / "data" / "cpu_lm_bytes" / "meta.json").read_text())
    monkeypatch.setattr(checkpoint, "SHAKESPEARE", {k: meta[k] for k in checkpoint.SHAKESPEARE})  # its text
    monkeypatch.setattr(checkpoint, "SHAKESPEARE_BINS", {name: hashlib.sha256(
        (tmp_path / "data" / "cpu_lm_bytes" / name).read_bytes()).hexdigest() for name in checkpoint.SHAKESPEARE_BINS})
    (tmp_path / "assets").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("trained beside another study"))
    with checkpoint.hold_lock("assets", "held by the test"):
        with pytest.raises(SystemExit, match=r"^assets/scaling.csv is being written by another `python -m "
                                             r"experiments.scaling` \(in another --root\); wait"):
            scaling.main(["--root=mine"])
    assert not (tmp_path / "mine").exists()


def test_a_file_that_is_no_checkpoint_or_a_run_without_one_is_refused_with_a_fix_that_works(tmp_path):
    # --out_dir=run/log.jsonl (or data/meta.json) was "corrupt ...; restore it or train again": the log was sound,
    # and neither fix made it a checkpoint; a run that has saved none yet was told "train one with train.py" in the
    # folder that run holds locked
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text('{"iter": 0, "val_loss": 5.5}\n')
    with pytest.raises(SystemExit) as e:
        checkpoint.load_checkpoint(run / "log.jsonl")
    assert str(e.value) == (f"{run / 'log.jsonl'} is not a checkpoint (UnpicklingError); point to the out_dir that "
                            f"holds train.py's ckpt.pt, or to the ckpt.pt itself.")
    for path in (run, run / "ckpt.pt"):
        with pytest.raises(SystemExit) as e:
            checkpoint.load_checkpoint(path)
        assert str(e.value) == (f"no checkpoint at {run / 'ckpt.pt'}: the run in {run} has saved none (train.py "
                                f"saves at every eval_interval after 0); wait for it if it is still training, or "
                                f"point to another out_dir.")
    (run / "log.jsonl").unlink()
    (run / "train.lock").write_text("123\n")  # a run in its first evaluation, before its log: "train one" too
    with pytest.raises(SystemExit, match=r": the run in .* has saved none \(train.py saves at every eval_interval"):
        checkpoint.load_checkpoint(run)
    (run / "train.lock").unlink()
    (run / "ckpt.pt").mkdir()  # "train one with train.py", whose run there refuses the folder
    with pytest.raises(SystemExit) as e:
        checkpoint.load_checkpoint(run)
    assert str(e.value) == f"{run / 'ckpt.pt'} is a folder, not a checkpoint; move it out of the way, or point to " \
                           f"another out_dir."


def test_a_run_whose_checkpoint_was_moved_away_is_not_said_to_have_saved_none(tmp_path):
    # `mv run/ckpt.pt elsewhere` after the run finished: sample.py and eval.py said "the run has saved none; wait for
    # it if it is still training", of a run whose log records the evaluation it saved at
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text('{"iter": 0, "val_loss": 5.5}\n{"iter": 0, "loss": 5.5}\n'
                                   '{"iter": 10, "val_loss": 5.4}\n{"iter": 12, "loss": 5.3}\n')
    (run / "train.lock").write_text("0\n")  # left by the finished run: no process
    with pytest.raises(SystemExit) as e:
        checkpoint.load_checkpoint(run)
    assert str(e.value) == (f"no checkpoint at {run / 'ckpt.pt'}: the run in {run} logged a validation at iteration 10 "
                            f"(log.jsonl), where train.py saves ckpt.pt by default, so it was moved or removed since; "
                            f"restore it, or point to another out_dir.")


def test_a_file_this_user_cannot_read_is_named_as_such_not_as_missing_or_corrupt(tmp_path, monkeypatch):
    # as another user: an unreadable ckpt.pt was "corrupt ... restore it or train again", a data folder that is not
    # searchable "has no train.bin; prepare it", and an unreadable val.bin a PermissionError traceback (sample.py
    # --proj=qk_v, experiments.analyze). The tests run as root too, whom modes do not stop: refused by hand here.
    from test_sample import BYTES_META, make_ckpt
    make_data(tmp_path / "data")
    make_ckpt(tmp_path / "run", BYTES_META)
    shut = {str(tmp_path / "run" / "ckpt.pt"), str(tmp_path / "data" / "val.bin")}

    def guarded_open(path, *args, **kwargs):
        if str(path) in shut:
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, *args, **kwargs)
    monkeypatch.setattr(checkpoint, "open", guarded_open, raising=False)  # checkpoint.py's own reads only
    with pytest.raises(SystemExit) as e:
        checkpoint.load_checkpoint(tmp_path / "run")
    assert str(e.value) == (f"cannot read {tmp_path / 'run' / 'ckpt.pt'} (Permission denied); make it readable for "
                            f"this user, or point to another out_dir.")
    with pytest.raises(SystemExit) as e:
        checkpoint.open_data(str(tmp_path / "data"), 8, 256)
    assert str(e.value) == (f"cannot read {tmp_path / 'data' / 'val.bin'} (Permission denied); make it readable for "
                            f"this user, or set --data_dir.")

    def guarded_memmap(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(checkpoint.np, "memmap", guarded_memmap)
    with pytest.raises(SystemExit) as e:
        checkpoint.tokens(str(tmp_path / "data"), "val")
    assert str(e.value) == f"cannot read {tmp_path / 'data' / 'val.bin'} (Permission denied); make it readable for " \
                           f"this user."


def test_a_file_in_a_folder_this_user_cannot_search_names_the_folders(tmp_path, monkeypatch):
    # run/ of mode 000 or 400 hides a readable ckpt.pt: sample.py and eval.py said "make it readable for this user",
    # which chmod cannot do through that folder. As root the modes do not refuse, so os.stat is made to
    (tmp_path / "ckpt.pt").write_bytes(b"x")
    stat, shut = os.stat, str(tmp_path / "ckpt.pt")

    def guarded_stat(path, *args, **kwargs):
        if str(path) == shut:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return stat(path, *args, **kwargs)
    monkeypatch.setattr(os, "stat", guarded_stat)
    with pytest.raises(SystemExit) as e:
        checkpoint.present(shut, ", or point to another out_dir")
    monkeypatch.undo()
    # searchable: "make the folders on its path readable", followed (chmod +r, mode 400), still hid the file
    assert str(e.value) == (f"cannot read {shut} (Permission denied); make the folders on its path searchable "
                            f"(chmod +x) for this user, or point to another out_dir.")


def test_a_bin_larger_than_an_address_space_cap_trains_and_is_one_sentence_where_mapped(tmp_path, monkeypatch):
    # under `ulimit -v` (as some clusters set) below train.bin's size, train.py mapped the whole bin only to count its
    # tokens (it reads its windows with pread): an OSError ENOMEM traceback before the first step; sample.py and
    # analyze, which map val.bin, gave the same traceback. A mapping refused for want of memory stands for the cap.
    make_data(tmp_path / "data")
    real = np.memmap

    def capped(path, *args, **kwargs):
        if str(path).endswith(".bin"):
            raise OSError(errno.ENOMEM, "Cannot allocate memory")
        return real(path, *args, **kwargs)
    monkeypatch.setattr(np, "memmap", capped)  # the forked run inherits it
    train(tmp_path / "data", tmp_path / "out", "--max_iters=1")
    assert (tmp_path / "out" / "ckpt.pt").exists()
    with pytest.raises(SystemExit) as e:
        checkpoint.tokens(str(tmp_path / "data"), "val")
    size = os.path.getsize(tmp_path / "data" / "val.bin")
    assert str(e.value) == f"cannot map {tmp_path / 'data' / 'val.bin'} ({size:,} bytes) into memory" \
        f"{checkpoint.memory_limit()}; {'raise it' if checkpoint.memory_limit() else 'free some memory'}" \
        f"{' (ulimit -v unlimited)' if checkpoint.memory_limit() else ''}, and run again."


def test_rope_redraw_on_other_data_draws_that_data_s_table(tmp_path, monkeypatch, capsys):
    # --redraw --data_dir=MINE drew the tracked figure from assets/rope.csv, Shakespeare's, exit 0: never MINE's
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        rope.main(["--redraw", "--data_dir=mine"])
    assert "out-rope/rope.csv, which does not exist; run `python -m experiments.rope --data_dir=mine` first" in \
        capsys.readouterr().err
    for folder in ("assets", "out-rope"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "rope.csv").write_text("variant,seed,length,loss\nqkv rope,1337,256,1.8\n")
    rope.main(["--redraw", "--data_dir=mine"])
    assert (tmp_path / "out-rope" / "rope.png").exists() and not (tmp_path / "assets" / "rope.png").exists()



def test_rope_redraw_of_another_mode_s_table_is_one_sentence(tmp_path, monkeypatch):
    # the full table copied beside the quick runs was drawn by --redraw --quick as its own, exit 0; a quick table in
    # assets/ as the tracked figure
    monkeypatch.chdir(tmp_path)
    for folder, argv, held, trains in (
            ("out-rope-quick", ["--redraw", "--quick"], "1337, 1338, 1339", "--quick trains 1337"),
            ("assets", ["--redraw"], "1337", "the full study trains 1337, 1338, 1339")):
        (tmp_path / folder).mkdir()
        seeds = held.split(", ")
        (tmp_path / folder / "rope.csv").write_text("variant,seed,length,loss\n" +
                                                     "".join(f"qkv rope,{s},256,1.8\n" for s in seeds))
        with pytest.raises(SystemExit) as e:
            rope.main(argv)
        assert str(e.value) == (f"{folder}/rope.csv holds the seeds {held}, and {trains}: it is another mode's "
                                f"table; restore it (`git checkout -- {folder}/rope.csv` where it is tracked), or "
                                f"redraw it with the mode that wrote it.")
        assert os.listdir(tmp_path / folder) == ["rope.csv"]


@pytest.mark.parametrize("study, table", [(rope, "out-rope-quick/rope.csv"),
                                          (retrofit, "out-retrofit-quick/retrofit.csv")])
def test_redraw_of_a_table_behind_a_dangling_link_says_so_not_run_the_study(tmp_path, monkeypatch, study, table):
    # --redraw checked os.path.isfile only: "which does not exist; run the study first", which would write its new
    # table over the link (and, for a table whose folder this user cannot search, beside it) (the sixteenth pass)
    monkeypatch.chdir(tmp_path)
    (tmp_path / os.path.dirname(table)).mkdir()
    os.symlink("gone", tmp_path / table)
    with pytest.raises(SystemExit) as e:
        study.main(["--redraw", "--quick"])
    assert str(e.value) == (f"{table} is a link to 'gone', which does not exist (a disk not mounted, a folder "
                            f"moved?); restore what it points to, or remove the link.")
    assert os.listdir(tmp_path / os.path.dirname(table)) == [os.path.basename(table)]

@pytest.mark.parametrize("study, table", [(rope, "assets/rope.csv"), (retrofit, "assets/retrofit.csv")])
def test_redraw_from_another_folder_names_the_projects_table_not_run_the_study(tmp_path, monkeypatch, capsys, study,
                                                                                table):
    # run from another folder (the repository on PYTHONPATH), the tracked table is no path from there: the advice was
    # "run the study first", an hour and more of training
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        study.main(["--redraw"])
    said = str(e.value) if e.value.code != 2 else capsys.readouterr().err.splitlines()[-1].partition("error: ")[2]
    assert said == (f"--redraw draws from {table}, which is read from this folder ({tmp_path}) and is not there; the "
                    f"project's is {os.path.join(ROOT, table)}: run from {ROOT} to redraw it.")
    assert os.listdir(tmp_path) == []

# ---------------------------------------------------------------------------------------------------------------
# the file matrix: every shared reader, every way its file can be damaged

def damaged_world(w):
    """One of each file the commands read, as they write it: data, a run (checkpoint and log), a study's table,
    times and data file, a config file and a text file."""
    from test_sample import BYTES_META, make_ckpt
    make_data(w / "data")
    make_ckpt(w / "run", BYTES_META)
    wrong_field(w / "run" / "ckpt.pt", "iter_num", 2)  # as its log ends
    (w / "run" / "log.jsonl").write_text('{"iter": 0, "val_loss": 5.5}\n{"iter": 0, "loss": 5.4, "lr": 0.001}\n'
                                         '{"iter": 2, "val_loss": 5.25}\n')
    (w / "study").mkdir()
    (w / "study" / "rows.csv").write_text("model,seed,iter,val_loss\nqkv,1337,0,5.5\nqkv,1337,2,5.25\n")
    (w / "study" / "times.jsonl").write_text('{"run": "qkv_s1", "s": 9}\n{"run": "qk_v_lstsq_s1", "s": 12.5}\n')
    (w / "study" / "scaling_data.txt").write_text(f"{w / 'data'}\n")
    (w / "cfg.py").write_text("max_iters = 2\neval_interval = 2\n")
    (w / "calib.txt").write_text("To be, or not to be, that is the question.\nWhether 'tis nobler in the mind.\n")
    (w / "study" / "qkv_s1").mkdir()
    fit = {"residual": [0.1], "rank": [1.0]}
    (w / "study" / "qkv_s1" / "conversions.json").write_text(json.dumps(
        {n: {"loss": 5.0, "kv_bytes": 64, "fits": [fit], "attribution": [5.0, 5.1]} for n in retrofit.CONVERSIONS}))
    (w / "study" / "curve.json").write_text("[[2, 0.5], [4, 0.75], [6, 1.0], [8, 1.0], [10, 1.0]]")
    (w / "tasks").mkdir()  # a local lm_eval task, as test_eval's make_task writes it (its datasets cache outside w)
    (w / "tasks" / "alphabet.jsonl").write_text("".join(json.dumps(
        {"context": "abcde", "choices": ["f", "x", "y", "z"], "label": 0}) + "\n" for _ in range(4)))
    (w / "tasks" / "alphabet.yaml").write_text(
        f"task: alphabet\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {w / 'tasks' / 'alphabet.jsonl'}\n  cache_dir: {w.parent / (w.name + '-hf')}\n"
        "test_split: test\noutput_type: multiple_choice\n"
        "doc_to_text: context\ndoc_to_choice: choices\ndoc_to_target: label\nmetric_list:\n  - metric: acc\n")
    (w / "hub").mkdir()
    torch.save({"wte.weight": torch.zeros(2, 2)}, w / "hub" / "pytorch_model.bin")


def wrong_field(path, key, value):  # valid syntax, a field of another type
    if path.suffix == ".json":
        path.write_text(json.dumps({**json.loads(path.read_text()), key: value}))
    elif path.suffix == ".jsonl":
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({**e, key: value}) + "\n" for e in lines))
    elif path.suffix == ".csv":
        path.write_text(path.read_text().replace(",0,", f",{value},"))
    else:
        ckpt = torch.load(path, weights_only=True)
        torch.save({**ckpt, key: value}, path)


DAMAGES = ["missing", "folder", "dangling link", "unreadable", "under a file", "empty", "half", "foreign",
           "wrong field"]
# reader: (its file under the world, the call on the folder that holds it, a foreign file in its place (another
# command's, of that name or another format), a field of the wrong type, the damages after which there is
# legitimately nothing to say: no table, no times, a text that is short but text)
READERS = {
    "load_checkpoint": ("run/ckpt.pt", lambda d: checkpoint.load_checkpoint(d, ("model", "iter_num")), "run/log.jsonl",
                        ("iter_num", "2"), ()),
    # a study's look at one of its runs: no file is a run not begun; anything else there is load_checkpoint's
    "study checkpoint": ("run/ckpt.pt", lambda d: rope.checkpoint(str(d), argparse.Namespace(iters=2)),
                         "run/log.jsonl", None, ("missing", "under a file")),  # its root is checked first
    "open_data train.bin": ("data/train.bin", lambda d: checkpoint.open_data(str(d), 32, 256), "run/ckpt.pt",
                            None, ()),
    "open_data val.bin": ("data/val.bin", lambda d: checkpoint.open_data(str(d), 32, 256), "data/train.bin",
                          None, ()),
    "open_data meta.json": ("data/meta.json", lambda d: checkpoint.open_data(str(d), 32, 256), "run/log.jsonl",
                            ("vocab_size", "256"), ()),
    "read_json": ("data/meta.json", lambda d: checkpoint.read_json(str(d / "meta.json"), "delete data and prepare it "
                  "again"), "run/log.jsonl", None, ()),  # prepare's and analyze's reader of meta.json
    "analyze val.bin": ("data/val.bin", lambda d: val_tokens(str(d), 256, 32, "bytes"), None, None,
                        ("missing", "folder", "under a file", "half")),  # no val.bin: no CKA, and it says so
    "read_log": ("run/log.jsonl", lambda d: checkpoint.read_log(str(d), last=2), "study/rows.csv",
                 ("iter", "2"), ()),
    "read_table": ("study/rows.csv", lambda d: checkpoint.read_table(
        str(d / "rows.csv"), ["model", "seed", "iter", "val_loss"], text=["model"], ints=["seed", "iter"]),
        "run/log.jsonl", ("iter", "1.5"), ("missing", "under a file")),
    "retrofit times": ("study/times.jsonl", lambda d: retrofit.times({"root": str(d)}), "study/rows.csv",
                       ("s", "12.5"), ("missing", "under a file", "empty")),
    "scaling data": ("study/scaling_data.txt", lambda d: scaling_data(d), "data/meta.json", None, ("missing",)),
    "config file": ("cfg.py", lambda d: configure_file(d / "cfg.py"), "run/ckpt.pt", None, ("empty",)),
    "text file": ("calib.txt", lambda d: read_text(d / "calib.txt"), "data/val.bin", None, ("empty", "half")),
    # prepare's reader of its meta.json and progress.json (the world's meta.json, as make_data writes it, has no
    # settings: refused whatever the damage; what matters is the advice for a file there but not readable now)
    "prepare's read_json": ("data/meta.json", lambda d: P.read_json(str(d / "meta.json"), P.is_meta), "run/log.jsonl",
                            None, ()),
    # prepare's inputs, found and sized before out_dir is begun (what they hold is read later, and checked there)
    "prepare input": ("calib.txt", lambda d: P.local_files([str(d / "calib.txt")], "--input"), None, None,
                      ("empty", "half", "unreadable")),  # read, or refused, once a dataset is to be written
    # ... and read whole: a dataset of half a text is a dataset (NOT_SWEPT)
    "prepare's run": ("calib.txt", lambda d: prepare_run(d / "calib.txt"), "data/val.bin", None, ()),
    # the data a study's finished run was trained on, compared with what data_dir holds now: no data there (a
    # report needs none) is nothing to compare, whatever the damage; train.py's open_data refuses it if it trains
    # (a count of another type, which open_data does not read, was "prepared again")
    "study data check": ("data/meta.json", lambda d: study_data_check(d), None, ("train_tokens", "20"),
                         tuple(DAMAGES)),
    # how a run started, from its log's first line: a log that cannot say is a start it cannot say ({})
    "started": ("run/log.jsonl", lambda d: checkpoint.started(str(d)), "study/rows.csv", ("iter", "2"),
                tuple(DAMAGES)),
    # a cache: torn or another file, it is computed again (here: no source run, so nothing is)
    "retrofit conversions": ("study/qkv_s1/conversions.json", lambda d: retrofit.convert_sources(
        {"root": str(d.parent if d.name == "qkv_s1" else d), "seeds": [1], "scale": 1, "eval_tokens": 64}),
        "study/times.jsonl", ("kv_bytes", "64.5"), ("missing", "under a file", "empty", "half", "foreign",
                                                     "wrong field")),
    "synthetic curve": ("study/curve.json", lambda d: synthetic_curve(d / "curve.json"), "study/times.jsonl", None,
                        ("missing", "under a file", "empty", "half", "foreign")),
    # GPT-2's weights in the Hugging Face cache (its lookup is faked: the file it finds is the world's)
    "hub weights": ("hub/pytorch_model.bin", lambda d: hub_weights(d / "pytorch_model.bin"), "run/ckpt.pt", None,
                    ()),
    # a local task of eval.py's --include_path, built before the model is loaded: its data file and its YAML (a
    # data file cut at a line is fewer questions)
    "eval task data": ("tasks/alphabet.jsonl", lambda d: eval_tasks(d), "run/log.jsonl", ("label", 9), ("half",)),
    "eval task YAML": ("tasks/alphabet.yaml", lambda d: eval_tasks(d), "cfg.py", None, ()),
    # a stopped prepare's bins, reopened to append at the lengths its progress.json committed (no fingerprint: a
    # longer file of another's there is taken as its own)
    "prepare's resumed bins": ("data/train.bin", lambda d: resumed_bins(d), None, None, ()),
}
# a reader's cells that are another's: the hub's lookup finds no file that is missing, under a file or a link whose
# target is gone (it downloads it again), and says so naming its cache (test_convert); prepare refuses a bin that is
# a link whose target is gone before it holds out_dir's lock, as it does for meta.json and progress.json
# eval's task YAML that is missing is a task lm_eval does not know, said so without a file to name (test_eval)
NOT_SWEPT = {("hub weights", d) for d in ("missing", "under a file", "dangling link")} | {("eval task YAML", "missing"),
    ("prepare's run", "half"), ("prepare's resumed bins", "dangling link")}


def scaling_data(root):  # as experiments.scaling reads it, in a --root it has checked
    checkpoint.writable_dir(str(root), "choose another --root")
    scaling.check_root_data({"assets": ""}, argparse.Namespace(root=str(root), data_dir=str(root.parent / "data")))


def val_tokens(*args):
    from experiments.analyze import val_tokens
    return val_tokens(*args)


def configure_file(path):
    return configure({"max_iters": 1, "eval_interval": 1}, [str(path)])


def prepare_run(path):
    P.main(["--input", str(path), f"--out_dir={path.parent / 'prepared'}", "--tokenizer=bytes", "--val_fraction=0.5",
            "--threads=1"])


def eval_tasks(folder):  # eval.py --include_path=folder, up to the model it then loads
    tasks = pytest.importorskip("lm_eval.tasks")
    import eval as ev

    class Built(Exception):
        pass

    def built(*args):
        raise Built
    with pytest.MonkeyPatch.context() as m:
        m.setattr(ev, "hub_reachable", lambda: True)
        m.setattr(ev, "TaskManager", lambda include_path: tasks.TaskManager(include_path=include_path,
                                                                             include_defaults=False))
        m.setattr(ev, "load_model", built)
        try:
            ev.main([f"--out_dir={folder.parent / 'run'}", "--tasks=alphabet", f"--include_path={folder}",
                     "--device=cpu"])
        except Built:
            pass


def resumed_bins(out_dir):
    for f in P.open_bins(str(out_dir), {"tokens": {"train": 20_000, "val": 4_000}}).values():
        f.close()


def study_data_check(data_dir):
    ckpt = {"config": {"data_dir": str(data_dir)}, "meta": {"train_tokens": 20_000, "val_tokens": 4_000}}
    checkpoint.check_study_run(ckpt, str(data_dir.parent / "run"), [], "python -m experiments.x")


def synthetic_curve(path):  # as the study reads it: every cached curve checked first, then each run's read
    from experiments import synthetic
    checkpoint.present(str(path))
    return synthetic.read_curve(str(path), 10)


def hub_weights(path):
    import huggingface_hub
    from huggingface_hub import constants

    import convert

    def download(repo, file, local_files_only=False):
        if not os.path.exists(path):  # as the hub's: not in the cache
            raise FileNotFoundError(path)
        return str(path)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(huggingface_hub, "hf_hub_download", download)
        m.setattr(constants, "HF_HUB_OFFLINE", True)
        try:
            convert.load_gpt2("gpt2")
        except ValueError as e:
            raise SystemExit(str(e)) from None


def read_text(path):
    import sample
    return sample.read_text_file(str(path), f"--calib=FILE:{path}", "give the text")


def damage(w, name, kind, foreign, field, monkeypatch):
    """Damages w/name as kind; -> the folder the reader is called on."""
    path = w / name
    folder = path.parent
    if kind == "missing":
        path.unlink()
    elif kind == "folder":
        path.unlink()
        path.mkdir()
    elif kind == "dangling link":
        path.unlink()
        path.symlink_to(w / "unmounted" / path.name)
    elif kind == "unreadable":  # the tests run as root, whom modes do not stop: refused by hand, as the kernel would
        import builtins
        real_open, real_stat = builtins.open, os.stat

        def guarded(opener):
            def call(p, *args, **kwargs):
                if os.path.abspath(os.fspath(p)) == str(path):
                    raise PermissionError(13, "Permission denied", os.fspath(p))
                return opener(p, *args, **kwargs)
            return call
        monkeypatch.setattr(builtins, "open", guarded(real_open))
        monkeypatch.setattr(io, "open", guarded(real_open))  # pathlib's (lm_eval reads its YAML so)
        monkeypatch.setattr(checkpoint.np, "memmap", guarded(checkpoint.np.memmap))
        monkeypatch.setattr(os, "stat", lambda p, *args, **kwargs: real_stat(p, *args, **kwargs))
    elif kind == "under a file":  # its folder is a file: ckpt.pt under run, which is a file
        folder = w / "a_file"
        folder.write_text("not a folder\n")
        if name == "cfg.py" or name == "calib.txt":
            folder = folder / "x"
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "half":
        path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    elif kind == "foreign":
        shutil.copy(w / foreign, path)
    elif kind == "wrong field":
        wrong_field(path, *field)
    return folder


def snapshot(w):
    return {os.path.join(d, n): (os.lstat(os.path.join(d, n)).st_size, os.lstat(os.path.join(d, n)).st_mtime_ns)
            for d, dirs, names in os.walk(w) for n in names + dirs}


CELLS = [(r, d) for r in READERS for d in DAMAGES if (r, d) not in NOT_SWEPT
         and not (d == "foreign" and READERS[r][2] is None or d == "wrong field" and READERS[r][3] is None)]
BROKEN = {}  # cells left failing, each with what is wrong and why it is left


@pytest.mark.parametrize("reader, kind", [pytest.param(r, d, marks=pytest.mark.xfail(strict=True, reason=BROKEN[r, d]))
                                          if (r, d) in BROKEN else (r, d) for r, d in CELLS],
                         ids=[f"{r}, {d}" for r, d in CELLS])
def test_every_reader_refuses_every_damaged_file_in_one_sentence_naming_it(tmp_path, monkeypatch, reader, kind):
    # each shared reader against each damage its file can have: a traceback, a damaged file read as none (a link
    # whose target is gone: a study then wrote a new table over it), or advice that cannot fix it (an unreadable
    # log told to train the run again) were each found in some reader before; here every pair is swept
    name, read, foreign, field, fine = READERS[reader]
    damaged_world(tmp_path)
    folder = damage(tmp_path, name, kind, foreign, field, monkeypatch)
    before = snapshot(tmp_path)
    if kind in fine:
        read(folder)
    else:
        with pytest.raises(SystemExit) as e:
            read(folder)
        message = str(e.value)
        assert "\n" not in message.strip(), message
        assert os.path.basename(name) in message or (kind == "under a file" and "a_file" in message), message
        assert not re.search(r"--\w+=[,.;)\s]", message), message  # advice to give an option nothing ("--data_dir=")
        assert kind != "dangling link" or "is a link to" in message, message  # not "no such file", where ls shows it
        if kind in ("unreadable", "dangling link"):  # there, only not readable now: nothing to restore or make anew
            assert not re.search(r"\b(restore it|train|prepare|delete)\b", message.split(";")[-1]), message
    assert snapshot(tmp_path) == before


# every place a script reads a file: the reader of the sweep above that reaches it, or why its file is no user's.
# A read added without either fails test_every_file_a_script_reads_is_swept
SWEPT = {
    # every meta.json and progress.json: check_study_data, read_json (open_data, sample), prepare's read_json and
    # train.py's data_meta read them through load_json, each of them swept by its own reader above
    "checkpoint.py:load_json:path": "read_json",
    "checkpoint.py:load_checkpoint:path": "load_checkpoint",
    # log.jsonl (read_log, started, train.py's resume) and retrofit's times.jsonl: log_text reads each
    "checkpoint.py:log_text:path": "read_log",
    "checkpoint.py:read_table:path": "read_table",
    "checkpoint.py:largest_token:path": "open_data train.bin",
    "checkpoint.py:tokens:path": "analyze val.bin",
    "configurator.py:run_file:path": "config file",
    "convert.py:gpt2_file:p": "hub weights",  # load_gpt2 reads them through gpt2_file's reader
    "experiments/retrofit.py:convert_sources:cached": "retrofit conversions",
    "experiments/scaling.py:check_root_data:data_file(args)": "scaling data",
    "experiments/synthetic.py:read_curve:path": "synthetic curve",
    "prepare_slimpajama.py:documents:path": "prepare's run",
    "prepare_slimpajama.py:contents_sha256:name": "prepare's run",  # the same inputs, hashed once written
    "prepare_slimpajama.py:head:path": "prepare's run",  # the same inputs, their first bytes judged before out_dir
    "prepare_slimpajama.py:json_documents:path": "prepare's run",  # the same inputs, a .txt's first line judged
    "prepare_slimpajama.py:open_bins:path": "prepare's resumed bins",
    "sample.py:read_text_file:path": "text file",
    # train.py cannot be imported: its reads are swept through the shared reader that checks the same file
    "train.py:<module>:os.path.join(data_dir, f'{split}.bin')": "open_data train.bin",  # the bins open_data checked
    "eval.py:task_data:yaml_path": "eval task YAML",
}
# reads only a training run reaches (a resume's log: seconds a cell), each swept by hand in the tests named
# (none now: a resume's log.jsonl is read by checkpoint.log_text, swept as read_log; what the resume keeps of a
# damaged log is test_train_settings.py's test_a_damaged_log_is_refused_or_cleaned_before_training and those after it)
BY_HAND = {  # reads a test of their own covers, each named: (test file, its tests)
    # the studies' data's bins, hashed where the counts are Shakespeare's: any other bytes, or a cut file, are not
    # its text; one not there to read (a --report needs none) leaves the counts to decide
    "checkpoint.py:shakespeare_bins:os.path.join(data_dir, name)": (
        "test_bad_files.py", "test_other_text_of_shakespeares_length_is_not_the_tracked_tables_data"),
    # a hand-downloaded r50k_base.tiktoken, hashed once it is a readable file: empty, cut short or another file is
    # "not r50k_base's ... download it again", a folder or unreadable file is not read
    "checkpoint.py:r50k:hand": ("test_bad_files.py", "test_a_tiktoken_cache_this_user_cannot_read_is_named"),
    # a study's partial report, read for its PARTIAL header (partial_md: by drop_partial, and by partial_prefix
    # before a second partial report replaces it, test_a_second_partial_quick_report_replaces_the_first): another
    # file there, or a folder, is kept
    "checkpoint.py:partial_md:prefix + '.md'": ("test_bad_files.py",
                                                "test_a_complete_quick_report_removes_the_partial_one_it_replaces"),
    # the run an earlier analysis in --out names on its first line: unreadable or no such line, nothing is refused
    "experiments/analyze.py:first_line:os.path.join(out, 'projections.md')": (
        "test_analyze.py", "test_another_runs_analysis_in_the_same_out_is_not_replaced"),
    # whether that analysis holds CKA and R2 (its note): unreadable or damaged, it holds none and nothing is refused
    "experiments/analyze.py:measured_on_data:os.path.join(out, 'projections.md')": (
        "test_analyze.py", "test_an_analysis_without_data_does_not_replace_the_one_with_cka"),
}
NOT_USER = {
    "bench.py:measure:os.path.join(stage, name)": "the staging folder this run made and wrote",
    "checkpoint.py:hold_lock:folder": "a folder opened for its lock, not read",
    "checkpoint.py:being_written:folder": "a folder opened for its lock, not read",
    "checkpoint.py:own_temporary:os.path.join(folder, other)": "another writer's temporary file, opened for its lock",
    "checkpoint.py:unreadable:path": "the probe present() makes for every reader above",
    "configurator.py:configure:os.devnull": "/dev/null",
    "configurator.py:describe:path": "the script's own source, for --help",
    "bench.py:train_settings:os.path.join(os.path.dirname(os.path.abspath(__file__)), 'train.py')":
        "train.py's own source, for its setting names",
    "configurator.py:closed_as_devnull:os.devnull": "/dev/null",
    "configurator.py:run_main:os.devnull": "/dev/null",
    "experiments/retrofit.py:destination:config_file": "the repository's own config files, named in CONVERSIONS",
    "checkpoint.py:training:os.path.join(folder, 'train.lock')": "the lock file, read for the holder's process id "
                                                                  "(damaged: no run there)",
    "train.py:<module>:os.path.join(out_dir, 'train.lock')": "the lock file, read for the holder's process id",
    "train.py:lock_out_dir:os.path.join(out_dir, 'train.lock')": "the lock file, opened to be held",
    "train.py:how_to_go_on:ckpt_path": "the checkpoint this run saved a moment before",
}
SOURCES = sorted([*map(os.path.basename, glob.glob(os.path.join(ROOT, "*.py"))),
                  *(os.path.join("experiments", os.path.basename(p)) for p in glob.glob(os.path.join(ROOT,
                                                                                                      "experiments",
                                                                                                      "*.py")))])
READS = {"open", "os.open", "np.memmap", "torch.load", "np.load", "np.fromfile", "pickle.load", "json.load",
         "yaml.load", "yaml.safe_load", "yaml.full_load", "safetensors.torch.load_file"}


def file_reads(script):
    """{"script:function:first argument": line} of each call in script that reads a file (exec(open(...)) is its
    open; json.load(f) of a file opened beside it is that open; open(path, "w") writes)."""
    found = {}

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, child.name)
                continue
            call = ast.unparse(child.func) if isinstance(child, ast.Call) else ""
            if call.endswith((".read_text", ".read_bytes")):  # Path(...).read_text(): named by its path
                found.setdefault(f"{script}:{function}:{ast.unparse(child.func.value)}", child.lineno)
            elif call in READS and child.args:
                mode = child.args[1] if len(child.args) > 1 else next(
                    (k.value for k in child.keywords if k.arg == "mode"), None)
                writes = isinstance(mode, ast.Constant) and isinstance(mode.value, str) and not set("r+") & set(
                    mode.value)
                opened = isinstance(child.args[0], ast.Name) and call in READS - {"open", "os.open", "np.memmap",
                                                                                 "torch.load", "np.load"}
                if not (writes or opened):
                    found.setdefault(f"{script}:{function}:{ast.unparse(child.args[0])}", child.lineno)
            visit(child, function)
    with open(os.path.join(ROOT, script), encoding="utf-8") as f:
        visit(ast.parse(f.read()), "<module>")
    return found


def test_every_file_a_script_reads_is_swept():
    # the sweep above covered the readers someone thought of: a reader added later (a cache, a config file, a
    # table) met none of its damages until a hostile pass did. Each read in a script is named here
    reads = {site: line for script in SOURCES for site, line in file_reads(script).items()}
    for site, line in reads.items():
        script, function, arg = site.split(":", 2)
        assert site in SWEPT or site in NOT_USER or site in BY_HAND, (
            f"{script}:{function}:{line} reads {arg} and no entry of the damaged-file sweep reaches it: add a reader "
            f"to READERS in tests/test_bad_files.py that calls it on a damaged file, and name it in SWEPT as {site!r} "
            f"(or, for a file no user gives or edits, put that key in NOT_USER with the reason)")
    for site in {**SWEPT, **NOT_USER, **BY_HAND}:
        assert site in reads, f"{site} reads no file now (moved or renamed): update SWEPT, NOT_USER or BY_HAND"
    assert set(SWEPT.values()) <= set(READERS), set(SWEPT.values()) - set(READERS)
    for test_file, *tests in BY_HAND.values():
        with open(os.path.join(ROOT, "tests", test_file), encoding="utf-8") as f:
            text = f.read()
        assert all(f"def {t}(" in text for t in tests), (test_file, tests)


@pytest.mark.parametrize("site", [s for s in SWEPT if not s.startswith("train.py:")])
def test_the_reader_named_for_each_read_reaches_it(tmp_path, site):
    # a SWEPT entry that named a reader that never calls the read would sweep nothing: each reader, on the world's
    # whole file, is watched for a read from that function (train.py cannot be imported; see SWEPT)
    import builtins
    import threading
    script, function, _ = site.split(":", 2)
    damaged_world(tmp_path)
    name, read, *_ = READERS[SWEPT[site]]
    callees = {np.memmap.__new__.__code__, torch.serialization.load.__code__}
    seen = set()

    def watch(frame, event, arg):
        if event == "c_call" and arg in (builtins.open, os.open) or event == "call" and frame.f_code in callees:
            caller = frame if event == "c_call" else frame.f_back
            for name in caller.f_code.co_qualname.split("."):  # a lambda in that function is that function's
                seen.add((os.path.relpath(caller.f_code.co_filename, ROOT), name))
    threading.setprofile(watch)
    sys.setprofile(watch)
    try:
        read(tmp_path / os.path.dirname(name))
    except SystemExit:
        pass
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    assert (script, function) in seen, f"READERS[{SWEPT[site]!r}] does not reach {script}:{function}"


def test_a_checkpoint_path_as_bytes_loads(tmp_path):
    # os.fspath kept bytes, and path.endswith(".pt") was a TypeError
    model = GPT(GPTConfig(block_size=8, vocab_size=16, n_layer=1, n_head=2, n_embd=8))
    torch.save({"model": model.state_dict(), "model_args": asdict(model.config)}, tmp_path / "ckpt.pt")
    for path in (tmp_path / "ckpt.pt", tmp_path):  # the file, or its out_dir
        assert checkpoint.load_checkpoint(os.fsencode(path))["model_args"] == asdict(model.config)
