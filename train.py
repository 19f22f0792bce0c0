"""
Trains a GPT with shared attention projections, on one process or under torchrun as DDP or FSDP.

One process:     python train.py config/cpu_tiny.py
One node, 8 GPUs: torchrun --standalone --nproc_per_node=8 train.py config/qk_v_1b2.py
Two nodes:       torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 --master_addr=10.0.0.1 --master_port=29500 \
                     train.py config/qk_v_1b2.py    (and --node_rank=1 on the second node)
Past 1.2B:       torchrun --standalone --nproc_per_node=8 train.py config/qk_v_7b.py    (parallel=fsdp)
Resume:          the same command plus --init_from=resume (in any mode: a DDP checkpoint resumes under FSDP)
Retrofit:        python train.py config/cpu_lm_qk_v.py --init_from=out-cpu_lm/qkv_s1337 --convert_method=lstsq \
                     --out_dir=out-qk_v-from-qkv    (a qkv checkpoint, or --init_from=gpt2, converted to qk_v)
"""

import atexit
import contextlib
import errno
import fcntl
import inspect
import json
import math
import os
import re
import shlex
import shutil
import signal
import stat
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import asdict
from datetime import timedelta
from functools import partial

if __name__ != "__main__" and sys.argv[:1] == ["-m"]:  # `python -m train.py`: Python imports train to find .py in it
    raise SystemExit("python -m takes a module name, without .py: run python -m train ..., or python train.py ...")
if __name__ != "__main__":  # as nanoGPT's, a script: an import ran a whole training with the importer's command line
    raise ImportError("train.py is a script, not a module: importing it would start a training with this process's "
                      "command line; run it (python train.py config/cpu_tiny.py ...), or import what it uses from "
                      "model.py, checkpoint.py, convert.py and configurator.py.")


if getattr(sys.flags, "safe_path", False):  # PYTHONSAFEPATH=1 or -P leaves this folder off sys.path: the next
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # import was a ModuleNotFoundError traceback
from configurator import quiet_exit, quiet_start, stopped_by  # standard library only: before torch's seconds of import

# a scheduler's time limit or `kill` stops the run as Ctrl-C does, not with no word; not under torchrun, which sends
# SIGTERM to the other processes when one fails: those wait inside a collective, where Python runs no handler, and
# torchrun would wait 30 s before it kills them
quiet_start(sigterm="RANK" not in os.environ)

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict, get_optimizer_state_dict,
                                                     set_model_state_dict, set_optimizer_state_dict)
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.checkpoint import checkpoint

from checkpoint import (atomic_write, dangling, delete_what, eval_batches, file_above, first_entry, guard_assets,
                        inputs_only, iteration_tokens, json_text, load_checkpoint, load_json, lock_held, log_lines,
                        log_text, masked, masked_file, missing_dirs, open_data, other_data, perplexity,
                        prepare_command, received_as, remove_empty, remove_leftovers, renamed, run_files, run_length,
                        same_data_beside, save_checkpoint, saved_path, scored_tokens, signals_held, space_fix, to_open,
                        token_count, unfinished, unlocked, unreadable)
from configurator import (as_text, cache_failure, compile_failure, configure, describe, missing_device,
                          open_files_fix, out_of_memory, range_error, study_child, tolerant_output)
from convert import (GPT2_CHOSEN, GPT2_SIZES, HEAD_SHARING, TIE_METHODS, conversion_note, convert_state_dict,
                     exact_fit, gpt2_config, load_gpt2, ties_v)
from model import ATTNS, GPT, POS_CONV_BASES, POS_EMBS, SOURCES, GPTConfig

# -----------------------------------------------------------------------------
# settings; config files and --key=value arguments override them (configurator.py); `--help` lists them with the
# comment beside each
out_dir = "out"  # where ckpt.pt, log.jsonl and train.lock go; one run per out_dir
# init_from: a checkpoint of ours, or GPT-2's weights from the Hugging Face hub, is converted to this config's proj
# and n_kv_head, then trained from iteration 0 with a fresh optimizer
init_from = "scratch"  # scratch, resume (out_dir/ckpt.pt), a checkpoint (path or out_dir), gpt2[-medium|-large|-xl]
convert_method = "lstsq"  # how init_from ties V to K, see convert.convert_state_dict
calib_batches = 4  # training batches that convert_method lstsq and split fit on
eval_interval = 200  # iterations between evaluations (and checkpoints)
eval_tokens = 1_000_000  # validation tokens per evaluation, all processes together, in whole batches (at least one)
log_interval = 10  # iterations between log lines
always_save_checkpoint = True  # False: save at an evaluation only when the validation loss improves (and at the end)
seed = 1337  # initial weights, training batches and dropout
# data
data_dir = "data/slimpajama"  # train.bin, val.bin (uint16) and meta.json, from prepare_slimpajama.py
batch_size = 12  # sequences per micro-step per process
gradient_accumulation_steps = 40  # micro-steps per iteration, GLOBAL: divided among the processes
# model: every GPTConfig field by its own name (block_size, vocab_size, n_layer, ..., proj, n_kv_head, ...)
globals().update(asdict(GPTConfig()))
# AdamW
learning_rate = 6e-4  # peak learning rate, after warmup
max_iters = 600_000  # iterations of the run
total_tokens = 0  # > 0: max_iters = total_tokens // tokens per iteration
weight_decay = 0.1  # AdamW's, on matrices and embeddings
beta1 = 0.9  # AdamW's first-moment decay
beta2 = 0.95  # AdamW's second-moment decay
grad_clip = 1.0  # largest gradient norm; 0: no clipping
# learning rate: linear warmup, then cosine decay to min_lr at lr_decay_iters
decay_lr = True  # False: learning_rate throughout
warmup_iters = 2000  # iterations of linear warmup
lr_decay_iters = 0  # iteration where the cosine reaches min_lr; 0: max_iters
min_lr = 6e-5  # learning rate at the end of the decay
# system
device = "auto"  # auto: cuda, then mps, then cpu
dtype = "auto"  # auto: bfloat16 on CUDA when supported, else float32
compile = False  # torch.compile the model
backend = "auto"  # torchrun only; auto: nccl on CUDA, gloo on CPU
ddp_timeout = 600  # torchrun only: seconds a collective waits for a stalled process before the run stops
# parallel: "fsdp" is FSDP2: weights, gradients and AdamW state sharded across the processes, each Block gathered
# only while it computes
parallel = "ddp"  # torchrun only; ddp: every process holds the whole model and AdamW state, fsdp: sharded
grad_ckpt = False  # activation checkpointing: keep only each Block's input, recompute the rest in the backward
# -----------------------------------------------------------------------------
# The range of every number above (a rule of configurator.in_range, NaN and inf never in range) and the values of
# every string that takes a fixed set; check_settings() checks them all before any work.
RANGES = {
    "calib_batches": ">= 1", "eval_interval": ">= 1", "eval_tokens": ">= 1", "log_interval": ">= 1",
    "seed": "[0, 4294967295]",  # numpy's and torch's seeds are unsigned
    "batch_size": ">= 1", "gradient_accumulation_steps": ">= 1",
    "block_size": ">= 1", "vocab_size": ">= 1", "n_layer": ">= 1", "n_head": ">= 1",
    "n_embd": ">= 2",  # LayerNorm over one feature zeroes it: no token would be told from another
    "n_inner": ">= 0", "n_kv_head": ">= 0", "pos_conv": ">= 0", "pos_conv_period": ">= 0", "dropout": "[0, 1)",
    "rope_base": "> 1",  # at 1 every pair turns at the same frequency; below, the wavelengths run backwards
    "learning_rate": "> 0", "max_iters": ">= 0", "total_tokens": ">= 0", "weight_decay": ">= 0",
    "beta1": "[0, 1)", "beta2": "[0, 1)", "grad_clip": ">= 0",
    "warmup_iters": ">= 0", "lr_decay_iters": ">= 0", "min_lr": ">= 0",
    # torch adds it to a clock in nanoseconds (int64): 9e12 s wrapped to a rendezvous that timed out at once, 1e14
    # was an OverflowError in timedelta; a billion seconds (31 years) is as good as no limit
    "ddp_timeout": "[1, 1000000000]",
}
CHOICES = {
    "convert_method": TIE_METHODS, "proj": tuple(SOURCES), "attn": ATTNS, "pos_conv_basis": POS_CONV_BASES,
    "pos_emb": POS_EMBS, "device": ("auto", "cpu", "cuda", "cuda:N", "mps"), "dtype": ("auto", "float32", "bfloat16"),
    "backend": ("auto", "nccl", "gloo"), "parallel": ("ddp", "fsdp"),
}
# What a finished run may be asked again with, changed, and still be the same run: how it is watched and executed,
# not what it learns (init_from="resume" also matches the run it resumes).
UNCHECKED = ("out_dir", "eval_interval", "eval_tokens", "log_interval", "always_save_checkpoint",
             "compile", "backend", "ddp_timeout", "parallel", "grad_ckpt")
# How a run started, which its resumes keep: the checkpoint's, not the command's (a resume converts nothing).
ORIGIN = ("init_from", "convert_method", "calib_batches")
# names brought from elsewhere, whose nearest settings would mislead (--lr: min_lr; --local-rank: decay_lr)
_LAUNCH = "torchrun's option: write it before train.py (torchrun --standalone --nproc_per_node=2 train.py ...)"
HINTS = {"lr": "the peak learning rate is --learning_rate (--min_lr is where the decay ends)",
         # nanoGPT's own settings, which its users bring along
         "eval_iters": "--eval_tokens sets how many validation tokens each evaluation reads",
         "dataset": "--data_dir names the folder of train.bin, val.bin and meta.json",
         # nearest was eval_tokens, eval_interval: neither evaluates a trained checkpoint without training it
         "eval_only": "train.py has no evaluation-only mode: each evaluation's val_loss is in out_dir/log.jsonl, "
                      "and eval.py --out_dir=DIR scores a checkpoint on tasks (or on a text, --text=FILE)",
         **dict.fromkeys(("wandb_log", "wandb_project", "wandb_run_name"), "there is no wandb logging here: every "
                         "evaluation and log line goes to out_dir/log.jsonl"),
         **dict.fromkeys(("epochs", "steps", "num_train_epochs"), "a run's length is --max_iters (or --total_tokens, "
                         "in tokens)"),
         # other trainers' names (Hugging Face, Lightning, argparse habits), whose nearest spellings here are
         # unrelated: --config_file: compile, --resume: rope_base, --seq_len: seed, --hidden_size: batch_size
         **dict.fromkeys(("config", "config_file", "config-file", "cfg"), "config files are given without a flag: "
                         "python train.py config/x.py [--key=value ...]"),
         **dict.fromkeys(("resume", "resume_from_checkpoint", "checkpoint", "ckpt_path"), "--init_from=resume "
                         "resumes out_dir's ckpt.pt; --init_from=PATH starts a new run from the checkpoint at PATH"),
         **dict.fromkeys(("seq_len", "seq_length", "max_seq_len", "context_length", "ctx_len"), "the context "
                         "length is --block_size"),
         **dict.fromkeys(("hidden_size", "d_model"), "the model width is --n_embd"),
         # this project's own words (the README's, the paper's), whose nearest spellings were wrong: --fsdp: seed,
         # --ddp: dtype, --linear: n_inner, --rope: rope_base (refused without pos_emb), --activation_checkpointing:
         # always_save_checkpoint; --gqa, --mqa, --tie_kv, --rotary: nothing
         **dict.fromkeys(("fsdp", "ddp"), "the parallel mode is --parallel=ddp or --parallel=fsdp, under torchrun"),
         **dict.fromkeys(HEAD_SHARING, "head sharing is --n_kv_head: g "
                         "for GQA-g, 1 for MQA, 0 for n_head"),
         **dict.fromkeys(("tie_kv", "share_kv", "tied_kv", "shared_kv", "symmetric"), "which projections are tied "
                         "is --proj: qkv, qk_v (V = K), q_kv (K = Q) or q_k_v (one W)"),
         **dict.fromkeys(("linear", "linear_attention", "linear_attn"), "linear attention is --attn=linear"),
         **dict.fromkeys(("rope", "rotary", "use_rope"), "rotary positions are --pos_emb=rope (--rope_base sets "
                         "their base)"),
         **dict.fromkeys(("xplus", "x_plus"), "(X)+ is --pos_conv=m, its channels (a multiple of 4)"),
         **dict.fromkeys(("activation_checkpointing", "gradient_checkpointing", "grad_checkpointing"), "activation "
                         "checkpointing is --grad_ckpt=True"),
         **dict.fromkeys(("fp16", "bf16", "amp", "precision", "mixed_precision"), "the precision is --dtype (auto, "
                         "float32 or bfloat16)"),
         **dict.fromkeys(("world_size", "gpus", "num_gpus"), "the number of processes is torchrun's: torchrun "
                         "--standalone --nproc_per_node=N train.py, then the config file and settings"),
         **dict.fromkeys(("num_workers", "workers"), "batches are read from the memory-mapped train.bin in the "
                         "training process itself: there are no loader workers to set"),
         **dict.fromkeys(("save_steps", "save_interval", "checkpoint_interval"), "a checkpoint is saved at each "
                         "evaluation: --eval_interval (and --always_save_checkpoint)"),
         **dict.fromkeys(("local-rank", "local_rank"), "torch.distributed.launch passes it, and train.py reads its "
                         "rank from torchrun's environment: run it under torchrun instead (torchrun --standalone "
                         "--nproc_per_node=N train.py ...)"),
         **dict.fromkeys(("nproc_per_node", "nproc-per-node", "nnodes", "node_rank", "node-rank", "master_addr",
                          "master-addr", "master_port", "master-port", "standalone"), _LAUNCH),
         # the other scripts' options, brought along in a day's pipeline: their nearest names here are unrelated
         # (--text: attn, --input: dropout, --tokenizer: block_size, --max_new_tokens: eval_tokens)
         **{k: f"--{k} is an option of {script}, not of train.py (--help lists train.py's)" for script, keys in (
             ("prepare_slimpajama.py", ("input", "val_input", "tokenizer", "val_fraction", "train_tokens",
                                        "val_tokens", "skip_bad", "threads", "benchmark", "commit_seconds")),
             ("sample.py", ("start", "num_samples", "max_new_tokens", "temperature", "top_k", "use_cache")),
             ("eval.py", ("text", "tasks", "limit", "num_fewshot", "include_path")), ("eval.py and bench.py", ("out",)),
             ("bench.py", ("what", "quick"))) for k in keys},
         **{k: f"--{k} is an option of sample.py and eval.py: train.py's conversion fits on its own training data, "
               "--calib_batches of them" for k in ("calib", "calib_tokens")}}
config_keys = [k for k, v in globals().items() if not k.startswith("_") and type(v) in (int, float, bool, str)]
defaults = {k: globals()[k] for k in config_keys}
tolerant_output()  # before the first print: an accented path under an ASCII console is escaped, not a traceback
usage = partial(describe, "train.py", defaults, {**RANGES, **CHOICES}, [__file__, inspect.getsourcefile(GPTConfig)])
values, given = configure(defaults, sys.argv[1:], usage, HINTS)  # given: the keys a config file or --key=value set
globals().update(values)
config = {k: globals()[k] for k in config_keys}
# -----------------------------------------------------------------------------


def device_form(name):
    """The form of a device name among CHOICES["device"]: cuda:N for a GPU's index, cpu (mps) for torch's cpu:N
    (mps:N), which sample.py, eval.py and bench.py take and train.py refused; the name itself where torch takes
    none (cuda:00 passed here and was torch's traceback)."""
    if name == "auto":
        return name
    try:
        device = torch.device(name)
    except RuntimeError:
        return name
    return "cuda:N" if device.type == "cuda" and device.index is not None else device.type


def check_settings():
    """Every setting against its declaration above, before any work: one line per bad value, naming the setting."""
    errors = [f"{error} Set --{k}." for k, rule in RANGES.items()
              if (error := range_error(k, config[k], type(defaults[k]), rule))]
    for k, allowed in CHOICES.items():
        form = device_form(config[k]) if k == "device" else config[k]
        if form not in allowed:
            errors.append(f"{k} must be {', '.join(map(repr, allowed[:-1]))} or {allowed[-1]!r}; got {config[k]!r}. "
                          f"Set --{k}.")
    if errors:
        sys.exit("\n".join(errors))


check_settings()
if device_form(device) == "cpu":  # one CPU whatever its index: saved as cpu, so cpu:0 resumes a run of cpu
    device = config["device"] = "cpu"
guard_assets(out_dir, False, None)  # a symlink or an absolute path too: checkpoints never go among tracked results

converting = init_from not in ("scratch", "resume")
# how a conversion is made, where none is: the run trained from scratch without a word (a resume keeps its own)
if unread := [k for k in ORIGIN[1:] if k in given and init_from == "scratch"]:
    sys.exit(f"{' and '.join(unread)} say{'s' if len(unread) == 1 else ''} how --init_from's weights are converted, "
             f"and init_from='scratch' converts none; add --init_from=<out_dir, checkpoint or gpt2>, or drop "
             f"{'it' if len(unread) == 1 else 'them'}.")
source_path = None
source_at = {}  # the iteration and best_val_loss of the checkpoint converted (load_source), for the log
if converting and init_from not in GPT2_SIZES:
    source_path = os.path.join(init_from, "ckpt.pt") if os.path.isdir(init_from) else init_from
    if os.path.realpath(os.path.dirname(source_path)) == os.path.realpath(out_dir):
        sys.exit(f"out_dir {out_dir!r} holds the checkpoint to convert; give the converted run its own --out_dir.")


def auto_device():  # what 'auto' means on this machine (as_run, below)
    return "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"


def auto_dtype(name):
    return "bfloat16" if name.split(":")[0] == "cuda" and torch.cuda.is_bf16_supported() else "float32"


if device == "auto":
    device = auto_device()
device_type = device.split(":")[0]
if device_type in ("cuda", "mps") and (why := missing_device(device, "use --device=cpu (or auto)")):
    sys.exit(f"device={device!r}, but {why}.")
if dtype == "auto":
    dtype = auto_dtype(device)
ptdtype = getattr(torch, dtype)
fsdp = parallel == "fsdp"
# FSDP casts the gathered weights to bf16 itself (MixedPrecisionPolicy below); autocast on top would cast twice
ctx = nullcontext() if dtype == "float32" or fsdp else torch.autocast(device_type, dtype=ptdtype)



def torchrun_env():
    """(rank, local_rank, world_size) as torchrun set them for this process. RANK alone (a shell's leftover, another
    launcher) said here in one sentence, not as a KeyError now or a rendezvous that waits and fails later."""
    env = {k: os.environ.get(k, "") for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    bad = [k for k, v in env.items() if not v] or [k for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT")
                                                    if not env[k].isdigit()]
    if not bad and int(env["RANK"]) >= int(env["WORLD_SIZE"]):
        bad = ["RANK"]
    if bad:
        k = bad[0]
        what = ("empty" if k in os.environ else "not set") if not env[k] else \
            f"{env[k]!r}, not below WORLD_SIZE {env['WORLD_SIZE']}" if k == "RANK" and env[k].isdigit() else \
            f"{env[k]!r}, not a whole number"
        why = "but empty" if k == "RANK" and not env[k] else f"so this process is one of torchrun's, but {k} is {what}"
        sys.exit(f"RANK is set in the environment, {why}; start train.py with torchrun, or unset RANK (and "
                 f"WORLD_SIZE, LOCAL_RANK) to run one process.")
    return int(env["RANK"]), int(env["LOCAL_RANK"]), int(env["WORLD_SIZE"])


ddp = "RANK" in os.environ  # set by torchrun (under either parallel mode)
if fsdp and not ddp:
    sys.exit("parallel='fsdp' shards the model across torchrun's processes; run under torchrun (one process: "
             "torchrun --standalone --nproc_per_node=1 train.py ...) or set --parallel=ddp.")
rank, local_rank, world_size = torchrun_env() if ddp else (0, 0, 1)
# under torchrun each process takes the GPU of its local rank: the index of --device=cuda:N was read by nothing,
# and one process trained on cuda:0, another job's GPU perhaps
if ddp and device_type == "cuda" and device != "cuda":
    sys.exit(f"device={device!r}, but under torchrun each process uses the GPU of its LOCAL_RANK (cuda:{local_rank} "
             f"here); give --device=cuda (or auto), and choose the GPUs with CUDA_VISIBLE_DEVICES, e.g. "
             f"CUDA_VISIBLE_DEVICES=1 torchrun --standalone --nproc_per_node=1 train.py ...")
# torchrun started more processes on this node than it has GPUs: torch.cuda.set_device's 'invalid device ordinal'
# traceback in each process past the last one
if ddp and device_type == "cuda" and local_rank >= (gpus := torch.cuda.device_count()):
    shown = f" under CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']}" \
        if "CUDA_VISIBLE_DEVICES" in os.environ else ""
    sys.exit(f"rank {rank}: LOCAL_RANK {local_rank} takes cuda:{local_rank}, but PyTorch sees {gpus} CUDA "
             f"device{'s' if gpus > 1 else ''} here{shown}; start one process per GPU: torchrun "
             f"--nproc_per_node={gpus} ...")
master = rank == 0  # logs and writes the checkpoint
if ddp and backend == "nccl" and device_type != "cuda":
    sys.exit(f"backend='nccl' runs on CUDA only, and device is {device!r}; set --backend=gloo (or auto).")
if gradient_accumulation_steps % world_size:
    sys.exit(f"gradient_accumulation_steps ({gradient_accumulation_steps}) is global and must be divisible by the "
             f"{world_size} processes; set --gradient_accumulation_steps to a multiple of {world_size}.")
accum = gradient_accumulation_steps // world_size  # micro-steps of this process

def in_use(f, note=True):
    """SystemExit when another run holds the lock on f, out_dir/train.lock (the pid it wrote there says which).
    note: say so where the file system keeps no locks; the early probe of an existing lock leaves that to the taking
    of it (lock_out_dir), else a resume printed the note twice."""
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if not lock_held(e):  # a file system without locks: noted, and the run goes on unlocked
            return unlocked(out_dir, e) if note else None
        f.seek(0)
        # a resume has its checkpoint there and nowhere else: another --out_dir would be "does not exist"
        sys.exit(f"out_dir {out_dir!r} is in use by another train.py run (pid {f.read().strip() or '?'}); wait for "
                 + ("it to end (or stop it), then run this again." if init_from == "resume" else
                    "it to end or choose another --out_dir."))


def own_mode(folder):
    """For a resume, the chmod that makes the user's own read-only run folder writable, or None: a run received
    read-only was told to copy out_dir to a writable place, and the copy (cp -r keeps the modes) was read-only too."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    if init_from != "resume" or st.st_uid != os.getuid() or st.st_mode & stat.S_IWUSR:
        return None
    return f"its mode makes it read-only (as received, or copied with cp -r, which keeps it): chmod -R u+w " \
        f"{shlex.quote(folder)}, then resume there"


# where a run refused its out_dir can go instead: a resumed run's checkpoint is there, so only with a copy of it
elsewhere = "copy out_dir to a writable place and resume there" if init_from == "resume" else "choose another --out_dir"
# out_dir a file, or under one: a resume was told its checkpoint "does not exist ... or use --init_from=scratch",
# which that file refuses too
if (os.path.exists(out_dir) and not os.path.isdir(out_dir)) or file_above(out_dir):
    sys.exit(f"out_dir {out_dir!r} is a file or lies under one, not a folder; "
             + ("point --out_dir at the folder of the run to resume." if init_from == "resume" else
                "choose another --out_dir."))
# a folder where this run writes a file (the lock, each save, the log): named now, not as an unwritable out_dir or
# a missing checkpoint ("train one") later
for name in ("train.lock", "ckpt.pt", "log.jsonl"):
    if why := dangling(os.path.join(out_dir, name)) or dangling(out_dir):  # else taken for no file, and replaced
        sys.exit(why)
    if os.path.isdir(os.path.join(out_dir, name)):
        sys.exit(f"{os.path.join(out_dir, name)} is a folder, and this run writes that file; move it away"
                 f"{'' if init_from == 'resume' else ' or choose another --out_dir'}.")
# a run under way there: its checkpoint is no finished or stopped run to judge, whatever this command says of it
try:
    with open(os.path.join(out_dir, "train.lock")) as held:  # nothing created: a refused run leaves nothing behind
        in_use(held, note=False)
except OSError:  # no lock file, or none to read: lock_out_dir() below takes it, or says why it cannot
    pass
# the checkpoint already in out_dir, if any: resumed, or compared with this run's settings
ckpt_path = os.path.join(out_dir, "ckpt.pt")
# a folder this user cannot search hides the checkpoint in it: "does not exist ... use --init_from=scratch" was the
# advice for a run that is there
if init_from == "resume" and (why := unreadable(ckpt_path)):
    sys.exit(f"cannot read {ckpt_path} ({why}); make {to_open(ckpt_path)} for this user, then resume.")
if init_from == "resume" and not os.path.exists(ckpt_path):
    # a relative out_dir is read from this folder: "use --init_from=scratch" began the run again here, while its
    # checkpoint waited in the folder it was trained from
    here = "" if os.path.isabs(out_dir) else f" (a relative out_dir, read from this folder, {os.getcwd()}: if the " \
        f"run was trained from another folder, run it there)"
    # a run received with its checkpoint renamed by a browser ("ckpt (1).pt"): the rename, as sample.py says
    sys.exit(f"init_from='resume' but {ckpt_path} does not exist" + (f"; {hint}, then resume." if (
        hint := renamed(ckpt_path)) else f"{here}; check --out_dir or use --init_from=scratch."))
ckpt = None
if os.path.exists(ckpt_path):  # memory-mapped: the processes of a node share the file's pages, not a copy each
    resume_keys = ("optimizer", "best_val_loss", "rng") if init_from == "resume" else ()
    # a damaged one is refused; "train again", its fix elsewhere, would meet the same file here
    ckpt = load_checkpoint(ckpt_path, ("model_args", "iter_num", "config", *resume_keys), mmap=True,
                           again=f"move it away to train a new run in {out_dir}")

typed = {a[2:].partition("=")[0] for a in sys.argv[1:] if a.startswith("--")}  # the settings the command line gave


def set_by(keys, run):
    """Where the settings keys came from, as (what config files set them, the --key options that gave the others,
    the run's own values of the first as --key=value): one a config file sets cannot be dropped from the command
    line. "Resume with the config file the run was trained with" alone looped where the run was trained with this
    very file and a --proj=... beside it; a --key=value of the run's own value overrides any file."""
    # a key typed over a file's other value is the file's when dropped: the --key=value of the run's own is its fix
    filed = [k for k in keys if k in given.filed and not same_model(k, {**config, k: given.filed[k]}, run)]
    files = [a for a in sys.argv[1:] if not a.startswith("--")]
    sets = f"{', '.join(files)} set{'s' if len(files) == 1 else ''} {', '.join(filed)}" if filed else ""
    return sets, ", ".join(f"--{k}" for k in keys if k not in filed), " ".join(f"--{k}={run[k]}" for k in filed)


def same_model(key, now, was):
    """Whether two settings dicts give model field key the same value: n_kv_head=0 means n_head key/value heads, so a
    run of --n_kv_head=4 with n_head=4 is the run of n_kv_head=0 (a resume was refused "n_kv_head=4 (checkpoint: 0)",
    and the same command asked again called it a run of other settings)."""
    if key == "n_kv_head":  # the same value is the same setting: an n_head that differs is said as n_head (a resume
        # of --n_kv_head=0 with train.py's default n_head was refused "n_kv_head=0 (checkpoint: 0)")
        return now["n_kv_head"] == was["n_kv_head"] or (now["n_kv_head"] or now["n_head"]) == (was["n_kv_head"]
                                                                                               or was["n_head"])
    return now[key] == was[key]


# the architecture: a resumed run's is the checkpoint's, and a config file or --key that sets it otherwise is
# refused; GPT-2 brings its shape, and this config chooses only the variant and the dropout
if init_from == "resume":
    # a field the checkpoint predates is GPTConfig's default, as its model was built: compared too, and saved
    model_args = {**asdict(GPTConfig()), **ckpt["model_args"]}
    # a resume converts nothing: a method other than the run's own, given here, was read by nothing and the run went
    # on as it started (its own, from the command the run was started with, repeated, is that command)
    began = {**defaults, **ckpt["config"]}
    if unread := [k for k in ORIGIN[1:] if k in given and as_text(config[k]) != as_text(began[k])]:
        converted = began["init_from"] not in ("scratch", "resume")
        # by its method only where the model ties V to K: an untie (qk_v -> qkv) or a pooling used none, and was
        # said to be converted "by 'split'", the method its command named
        tied = SOURCES[model_args["proj"]][1] == SOURCES[model_args["proj"]][2]
        how = (f"converted from {began['init_from']!r}" + (f" by {began['convert_method']!r}" if tied else "")
               if converted else "from scratch")
        sets, dropped, own = set_by(unread, began)
        fix = " and ".join(([f"{sets}: add {own} (the run's own) or resume with the config file the run was trained "
                             f"with"] if sets else [])
                           + ([f"drop {dropped}"] if dropped else []))
        sys.exit(f"{', '.join(f'{k}={config[k]!r}' for k in unread)} say{'s' if len(unread) == 1 else ''} how "
                 f"weights are converted, and a resume converts nothing: {ckpt_path} goes on as its run began, "
                 f"{how}; {fix} (to convert again, start a new run in another --out_dir with "
                 f"--init_from={began['init_from'] if converted else out_dir}).")
    # the run goes on from where it started (scratch, or the model it converted and how): saved as "resume", any
    # later command, a scratch one or another conversion, matched it and was told "holds this run: nothing to do";
    # and the command's convert_method, read by nothing on a resume, was saved as the conversion's
    config.update({k: v for k, v in ckpt["config"].items() if k in ORIGIN and type(v) is type(defaults[k])})
    differ = [k for k in model_args if k in given and not same_model(k, config, model_args)]
    if differ:
        sets, dropped, own = set_by(differ, model_args)
        fix = f"{sets}: add {own} (the run's own) or resume with the config file the run was trained with" + (
            f" and drop {dropped}" if dropped else "") if sets else "drop these settings"
        sys.exit(f"on resume the architecture comes from {ckpt_path}, but "
                 + ", ".join(f"{k}={config[k]!r} (checkpoint: {model_args[k]!r})" for k in differ)
                 + f"; {fix}, or start a new run in another --out_dir.")
else:
    model_args = {k: config[k] for k in asdict(GPTConfig())}
try:
    if init_from in GPT2_SIZES:
        model_args = asdict(gpt2_config(init_from, **{k: config[k] for k in GPT2_CHOSEN}))
        # a config file's or --key's shape gives way to GPT-2's: said, not done without a word (--block_size=64)
        replaced = [f"{k}={model_args[k]!r} (not {config[k]!r})" for k in model_args if k in given
                    and config[k] != model_args[k]]
        if replaced and master:
            print(f"init_from={init_from} brings its architecture, which replaces the settings: {', '.join(replaced)}; "
                  f"only proj, n_kv_head and dropout are chosen here")
    gptconf = GPTConfig(**model_args)
except ValueError as e:
    sys.exit(str(e))
asked = dict(config)  # before GPT-2's shape replaces it: the values a resume of this command would compare
config.update(model_args)
block_size = model_args["block_size"]
tokens_per_iter = batch_size * block_size * gradient_accumulation_steps
if total_tokens and "max_iters" in given:  # one length set twice: total_tokens decided, and max_iters went unread
    # "leave max_iters out" could not be done from the command line where a config file set it (cpu_tiny.py's 600);
    # a config file that sets both was never told to drop its max_iters, the one way to train by total_tokens
    iters = total_tokens // tokens_per_iter
    tokens = (f"for {total_tokens:,} tokens ({tokens_per_iter:,} per iteration)" if iters else
              f"for one iteration ({tokens_per_iter:,} tokens: total_tokens={total_tokens:,} is less than one)")
    both = "total_tokens" in given.filed and "max_iters" in given.filed and "max_iters" not in typed
    sys.exit(f"max_iters={max_iters} and total_tokens={total_tokens:,} are both set, and total_tokens > 0 decides "
             f"max_iters; " + ("delete max_iters from the config file to train total_tokens, or " if both else "")
             + f"set --total_tokens=0 to train for max_iters, or --total_tokens=0 --max_iters={max(1, iters)} "
             f"{tokens}.")
if total_tokens:
    max_iters = total_tokens // tokens_per_iter
    if max_iters == 0:
        sys.exit(f"total_tokens={total_tokens:,} is less than one iteration ({tokens_per_iter:,} tokens); raise it, "
                 f"or set --total_tokens=0 and --max_iters.")
lr_decay_iters = lr_decay_iters or max_iters
# a schedule that contradicts itself is refused (a run that ends inside its warmup is only a short run, and allowed)
if decay_lr and min_lr > learning_rate:
    sys.exit(f"min_lr ({min_lr:g}) is above learning_rate ({learning_rate:g}), so the cosine would raise the rate as "
             f"it decays; set --min_lr at most --learning_rate, or --decay_lr=False for a constant rate.")
if decay_lr and 0 < config["lr_decay_iters"] <= warmup_iters:  # equal: a cosine of no iterations, the same jump
    sys.exit(f"lr_decay_iters ({config['lr_decay_iters']}) ends the cosine "
             f"{'where' if config['lr_decay_iters'] == warmup_iters else 'before'} warmup_iters ({warmup_iters}) ends "
             f"the warmup, so the rate would jump from the warmup to min_lr; set --lr_decay_iters above "
             f"--warmup_iters (or 0: max_iters).")
if learning_rate * weight_decay >= 1:  # AdamW scales the weights by 1 - lr * wd each step: zero or flipped
    sys.exit(f"weight_decay ({weight_decay:g}) times learning_rate ({learning_rate:g}) is "
             f"{learning_rate * weight_decay:g}, and AdamW multiplies the weights by 1 minus that every step, which "
             f"zeroes or flips them; lower --learning_rate or --weight_decay (0.1 is usual) until it is below 1.")
if not gptconf.causal:
    sys.exit("causal=False lets every position see the token it is trained to predict, so the loss falls to nothing "
             "and the model cannot generate; train.py trains language models: set --causal=True (bidirectional "
             "models are trained by experiments/synthetic.py).")


SCHEDULE = ("decay_lr", "learning_rate", "min_lr", "warmup_iters")  # what the rate at an iteration depends on


def get_lr(it, end=None, run=None):
    """Linear warmup to learning_rate over warmup_iters, cosine decay to min_lr at lr_decay_iters (or end), then
    min_lr. run: another run's SCHEDULE settings (a checkpoint's), for the rate that run trained at."""
    end = end or lr_decay_iters
    decay, peak, low, warmup = ((run or globals())[k] for k in SCHEDULE)
    if not decay:
        return peak
    if it < warmup:
        return peak * (it + 1) / (warmup + 1)
    if it >= end:
        return low
    ratio = (it - warmup) / (end - warmup)
    return low + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (peak - low)


def same(key, now, was):
    """Whether a setting has the value the checkpoint records: text the same under any locale (as_text), and
    data_dir (or the init_from a run converted) the same folder however it is spelled (data/x/, ./data/x, its
    absolute path, and a run's folder or its ckpt.pt), where the same command with data/x/ was "a run with other
    settings"."""
    if as_text(now) == as_text(was):
        return True
    if key in ("data_dir", "init_from") and isinstance(now, str) and isinstance(was, str) and now and was:
        try:  # as bytes: a path written under a UTF-8 locale may not encode under an ASCII or Latin-1 one
            now, was = (os.fsencode(saved_path(p)) for p in (now, was))
        except UnicodeError:
            return False
        if key == "init_from":  # a run's folder names its ckpt.pt, as source_path reads it: runq is runq/ckpt.pt
            now, was = (os.path.join(p, b"ckpt.pt") if os.path.isdir(p) else p for p in (now, was))
        return os.path.realpath(now) == os.path.realpath(was)
    return False


def as_run(settings):
    """settings with device and dtype 'auto' as this machine resolves them: a checkpoint records the spelling, and a
    run of device='auto' on a CPU, asked again with --device=cpu (or --dtype=float32), was 'a run with other
    settings', told to train into another out_dir."""
    dev = auto_device() if settings.get("device") == "auto" else settings.get("device")
    if settings.get("dtype") == "auto" and isinstance(dev, str):
        return {**settings, "device": dev, "dtype": auto_dtype(dev)}
    return {**settings, "device": dev}


def changed_settings(saved):
    """'key=value (checkpoint: value)' for each setting that differs from those saved with the checkpoint, apart
    from the UNCHECKED ones (a setting the checkpoint predates counts as its default), and how a conversion is made
    where this run converts nothing. device and dtype compare as they resolve ('auto' is this machine's)."""
    old = {**defaults, **saved}
    unread = ORIGIN[1:] if config["init_from"] in ("scratch", "resume") else ()
    now, was = as_run(config), as_run(old)
    return [f"{k}={config[k]!r} (checkpoint: {old[k]!r})" for k in config if not same(k, now[k], was[k])
            and not (k == "n_kv_head" and same_model(k, config, old))
            and k not in UNCHECKED + unread and not (k == "init_from" and "resume" in (config[k], old[k]))]


def source_trained_on():
    """How the checkpoint this command converts has changed since the finished conversion in out_dir was made from
    it, else None: the same command said "nothing to do", and sample.py then read a conversion of the older weights.
    The conversion's log line records the iteration it converted and its best_val_loss: a source trained again from
    scratch to the same iteration (deleted, then retrained with other settings) differs in the second."""
    if not (source_path and os.path.isfile(source_path)):
        return None
    try:
        then = (first_entry(out_dir) or {})["conversion"]
        now = load_checkpoint(source_path, ("iter_num", "best_val_loss"), mmap=True)
        if then["from_iter"] != now["iter_num"]:
            return (f"as it was at iteration {then['from_iter']}, and {source_path} has trained on since (iteration "
                    f"{now['iter_num']})")
        if "from_best" in then and not math.isclose(then["from_best"], now["best_val_loss"], rel_tol=1e-7):
            return (f"as it was at iteration {then['from_iter']} with best_val_loss {then['from_best']:.4f}, and "
                    f"{source_path} has been trained again since (best_val_loss {now['best_val_loss']:.4f})")
    except (OSError, ValueError, SystemExit, KeyError, TypeError):  # an older log, or a source not to be read here
        return None
    return None


def data_meta():
    """data_dir's meta.json as it is, or None where it cannot be read (open_data says why, before any work)."""
    try:
        return load_json(os.path.join(data_dir, "meta.json"))  # as open_data read it: UTF-8, a BOM or not
    except (OSError, ValueError):
        return None


# With a checkpoint in out_dir, the command that finished it, asked again, is done (so the main job can be rerun);
# a resumed run goes on from it; any other run would write over it and is refused
notes = []  # what a resume goes on under, said once the data is checked: "resuming ... go on under these" came
# before the refusal of another tokenizer's --data_dir, a resume announced that did not happen
if ckpt:
    # the model's fields as its model_args build it: a config without them (another program's) was said to hold
    # the defaults, "n_layer=2 (checkpoint: 12)" for a 2-layer model
    done, changed = ckpt["iter_num"], changed_settings({**ckpt["config"], **ckpt["model_args"]})
    length = "--total_tokens" if total_tokens else "--max_iters"  # total_tokens > 0 sets max_iters: raise it
    # ... unless data_dir was prepared again from other text since: then it is not this run (the quickstart
    # after `cp mytext.txt input.txt` said "nothing to do", and sampled the model of the old text)
    # a relative data_dir is read from the current folder: run from another, the run's own data is elsewhere, and
    # "delete out_dir to train it there again" would remove a finished run for nothing
    other_folder = "" if os.path.isabs(data_dir) else (f", or the run was trained from another folder than this one "
                                                       f"({os.getcwd()}), whose {data_dir} it read: if so, run it there")
    if done >= max_iters and not changed and (moved := other_data(ckpt.get("meta"), data_meta())):
        sys.exit(f"{ckpt_path} holds a finished run of these settings, trained on other data than "
                 f"{os.path.join(data_dir, 'meta.json')} records now ({', '.join(moved)}): {data_dir} was prepared "
                 f"again since{other_folder}; train this run into another --out_dir, or delete "
                 f"{run_files(out_dir)} to train it there again.")
    if done >= max_iters and not changed and (trained_on := source_trained_on()):
        sys.exit(f"{ckpt_path} holds a finished conversion of {init_from} {trained_on}: to convert it as it is now, "
                 f"give another --out_dir, or delete {run_files(out_dir)} to convert it there again.")
    if done >= max_iters and not changed:
        if master:
            resume = "" if init_from == "resume" else " and add --init_from=resume"  # not twice: it is there
            print(f"{ckpt_path} holds this run, finished at iteration {done}: nothing to do (to train on, raise "
                  f"{length}{resume}).")
        sys.exit(0)
    # total_tokens counts iterations of this run's size: a resume under another batch or accumulation ended the run
    # at other token counts than total_tokens, or called it done ("raise --total_tokens") short of them, unsaid
    was_tokens = iteration_tokens({**defaults, **ckpt["config"]}) or tokens_per_iter
    if init_from == "resume" and total_tokens and was_tokens != tokens_per_iter:
        seen, need = done * was_tokens, done + max(0, -(-(total_tokens - done * was_tokens) // tokens_per_iter))
        reach = seen + (need - done) * tokens_per_iter  # whole iterations: "trains 2,000" trained 2,304
        tokens_note = (f"total_tokens={total_tokens:,} sets max_iters={max_iters} at {tokens_per_iter:,} tokens per "
                       f"iteration, but the checkpoint's run trained {was_tokens:,} per iteration: if its {done} "
                       f"were all of that size ({seen:,} tokens; it records no count, and a resume before under "
                       f"another size makes it another), this run ends at "
                       f"{seen + max(0, max_iters - done) * tokens_per_iter:,} tokens, "
                       # its iterations already past total_tokens: "--max_iters=2 trains 512" trained nothing
                       + (f"though its {done} reach total_tokens={total_tokens:,} already."
                          if need <= done else f"and --total_tokens=0 --max_iters={need} trains {reach:,}"
                          + (f", the fewest whole iterations that reach {total_tokens:,}." if reach > total_tokens
                             else ".")))
    else:
        tokens_note = ""
    if init_from == "resume" and done >= max_iters:
        sys.exit(f"{ckpt_path} is at iteration {done}, and max_iters is {max_iters}"
                 f"{f' (set by total_tokens={total_tokens:,})' if total_tokens else ''}: nothing to train; raise "
                 f"{length} to continue it.{f' {tokens_note}' if tokens_note else ''}")
    # a resume keeps the checkpoint's architecture and refuses another given: offered only without those (GPT-2's
    # shape, which a resume does not bring, is none of them), and with the run's own config file for a file's
    ckpt_args = {**asdict(GPTConfig()), **ckpt["model_args"]}
    sets, dropped, own = set_by([k for k in ckpt_args if k in given and not same_model(k, asked, ckpt_args)],
                                ckpt_args)
    keep = "; ".join(([f"with {own} or the run's own config file, since {sets} otherwise"] if sets else [])
                     + ([f"without {dropped}"] if dropped else []))
    go_on = f"continue it with --init_from=resume ({keep}: a resume keeps the checkpoint's architecture)" if keep \
        else "continue it with --init_from=resume"
    saved = {**defaults, **ckpt["config"]}
    # the run's own end: total_tokens > 0 set its max_iters (its config keeps the max_iters it left unread), and the
    # run's advice to raise --total_tokens stretched the cosine without a word
    ran = saved["max_iters"] if (ran := run_length(saved)) is None else ran
    if done >= max_iters:  # finished: a resume to the same max_iters has nothing to train ("raise --max_iters")
        go_on = f"it is finished at iteration {done}: to train on, raise {length} and add --init_from=resume" + (
            f" ({keep})" if keep else "")
        if type(ran) is int and done < ran and length == "--max_iters" and not saved["total_tokens"]:  # stopped short,
            # which a shorter --max_iters (the config's, after a longer resume) called "finished"
            go_on = (f"it stopped at iteration {done} of its run's {ran}: to go on, add --init_from=resume "
                     f"--max_iters={ran}" + (f" ({keep})" if keep else ""))
        elif (type(ran) is int and done < ran and length == "--total_tokens" and saved["total_tokens"]
              and iteration_tokens(saved) == tokens_per_iter):  # the same, of a resume to a larger total_tokens
            go_on = (f"it stopped at iteration {done} of its run's {ran}: to go on, add --init_from=resume "
                     f"--total_tokens={saved['total_tokens']}" + (f" ({keep})" if keep else ""))
    if init_from != "resume" and changed:
        sys.exit(f"{ckpt_path} exists, from a run with other settings: {', '.join(changed[:3])}"
                 f"{f' and {len(changed) - 3} more' if len(changed) > 3 else ''}; {go_on}, or train this run into "
                 f"another --out_dir.")
    if init_from != "resume":
        sys.exit(f"{ckpt_path} holds this run, stopped at iteration {done} of {max_iters}; continue it with "
                 f"--init_from=resume.")
    # going on under other training settings is allowed, and said (a longer run is the usual reason: not said)
    notable = [c for c in changed if not c.startswith(("max_iters=", "total_tokens="))]
    if master and notable:  # only a resume gets here: every other run with a checkpoint has stopped above
        notes.append(f"resuming {ckpt_path} with settings other than its run's: {', '.join(notable)}; its weights "
                     f"and optimizer state go on under these.")
    if master and tokens_note:
        notes.append(tokens_note)
    # lr_decay_iters=0 follows max_iters: a longer run stretches the cosine, so the rate at the checkpoint's
    # iteration rises again from where its own decay had brought it (min_lr, for a finished run); a shorter one
    # squeezes it, and the rate falls at once (300 to 100 at iteration 80: 2.9e-3 to 1.2e-3, without a word)
    end = saved["lr_decay_iters"] or ran
    # the rate the checkpoint's run trained at, by its own schedule: under this command's, a run of decay_lr=False
    # (a constant 1e-2) was said to "rise from 1.00e-03", and told to keep with --lr_decay_iters a decay it never had
    was = {k: saved[k] if type(saved[k]) is type(defaults[k]) else config[k] for k in SCHEDULE}
    if master and not config["lr_decay_iters"] and was["decay_lr"] and \
            warmup_iters < done and type(end) is int and end != lr_decay_iters and get_lr(done, end) != get_lr(done):
        by = ", set by total_tokens" if total_tokens else ""
        then, now = get_lr(done, end, was), get_lr(done)
        # a checkpoint still inside its own warmup had no decay to keep: under the shorter warmup this command
        # gives, the --lr_decay_iters of its end put the rate at min_lr (1.35e-3 to 3.00e-4); its warmup keeps it
        keep = f"--lr_decay_iters={end} to keep the checkpoint's decay" if done >= was["warmup_iters"] else \
            f"--warmup_iters={was['warmup_iters']} to keep the checkpoint's warmup, which it was still in"
        notes.append(f"the cosine now ends at iteration {lr_decay_iters} (lr_decay_iters=0: max_iters{by}), not "
                     f"{end}: the rate at iteration {done} {'rises' if now > then else 'falls'} from {then:.2e} to "
                     f"{now:.2e}; set {keep}.")
# the checkpoint to convert, checked only now: a finished conversion asked again is done (and a stopped one told
# to resume) whether or not its source is still there
if source_path and (why := dangling(source_path)):
    sys.exit(why)
# a folder this user cannot search: "a folder without a ckpt.pt (a run that has saved none yet)" of one that holds it
if source_path and (why := unreadable(source_path)):
    sys.exit(f"init_from={init_from!r}: cannot read {source_path} ({why}); make {to_open(source_path)} for this "
             f"user, or point --init_from at another checkpoint.")
# a ckpt.pt that is a folder goes on to load_checkpoint, which names it (not "a folder without a ckpt.pt")
if source_path and os.path.isdir(init_from) and not os.path.exists(source_path):  # an out_dir, as documented
    hint = renamed(source_path, "--init_from")  # a run copied into it (cp -r) named as --init_from, not --out_dir
    sys.exit(f"init_from={init_from!r} is a folder without a ckpt.pt" + (f"; {hint}." if hint else " (a run that has "
             "saved none yet, or no out_dir); point --init_from at an out_dir that holds one, or at the checkpoint "
             "file."))
# a named pipe or a link to /dev/null at its ckpt.pt goes on to load_checkpoint too, which says what it is
if source_path and not os.path.isfile(source_path) and not os.path.isdir(source_path) and \
        not os.path.exists(source_path):
    # a run's folder moved or mistyped read as a word train.py does not know, not as a path that is not there
    sys.exit(f"init_from must be 'scratch', 'resume', {', '.join(map(repr, GPT2_SIZES))} or a checkpoint path; "
             f"{init_from!r} is none of these (no file or folder of that name" + ("" if os.path.isabs(init_from) else
             f" in this folder, {os.getcwd()}") + ").")
iter_num = ckpt["iter_num"] if ckpt else 0  # where training stands
saved_iter = ckpt["iter_num"] if ckpt else None  # where the checkpoint in out_dir stands (None: none yet)
saving = False  # a save is under way: Ctrl-C may land before or after its rename, so the file says which
made = []  # the folders lock_out_dir() made for out_dir, the deepest first
made_files = []  # train.lock if this run made it, and log.jsonl when this run writes it from the start
kept_log = None  # (log.jsonl, where open_log() moved the log it found there with no checkpoint beside it)
kept_eval = None  # (eval, where keep_eval() moved the evaluation of a run whose checkpoint is gone)


def unmake():
    """A run stopped before its first checkpoint (Ctrl-C, a full disk, a non-finite loss, a bad batch) leaves out_dir
    as it found it: not the folders it made, nor its own lock and log. The same command starts again from nothing
    either way. A stop just after the first save's rename, before saved_iter notes it, has saved: its log stays."""
    if saved_iter is None and not (saving and os.path.exists(ckpt_path)):
        for path in made_files:
            with contextlib.suppress(OSError):
                os.remove(path)
        for kept in (kept_log, kept_eval):  # the log and evaluation found here go back where they were
            if kept:
                with contextlib.suppress(OSError):
                    os.rename(kept[1], kept[0])
        remove_empty(made)  # one that holds anything else stays


def full(e):
    """A write refused for want of space: every file train.py writes but stdout and log.jsonl is written by a
    function that says so itself (atomic_write, lock_out_dir), so these two are where it comes from."""
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def how_to_go_on():
    """The end of a stopped run's line: what its checkpoint holds, and the command that goes on from it."""
    held = saved_iter
    if saving and os.path.exists(ckpt_path):  # stopped around a save's rename: the file says which side
        held = torch.load(ckpt_path, map_location="cpu", mmap=True, weights_only=True)["iter_num"]
    if held is not None and not os.path.exists(ckpt_path):  # "holds iteration N" of a file that is not there
        return (f"{ckpt_path}, saved at iteration {held}, is no longer there (out_dir moved or removed while the run "
                f"trained): to go on from it, point --out_dir at where it is now and add --init_from=resume.")
    if held is not None and held >= max_iters:  # stopped after the last save: "--init_from=resume" answers that
        # the run is finished, with nothing to do
        return f"{ckpt_path} holds iteration {held}, the last: the run is finished."
    if held is not None and study_child():  # the user's command is the study's, which takes no --init_from: it
        # resumes this run by itself when run again (its own line, next, says so)
        return f"{ckpt_path} holds iteration {held}, from which the study resumes this run when run again."
    return (f"{ckpt_path} holds iteration {held}: to go on, run the same command with --init_from=resume."
            if held is not None else "no checkpoint was saved yet: run the same command to start again.")


def interrupted(kind, e, tb):
    """Ctrl-C, SIGTERM or SIGHUP, a closed pipe on stdout (`train.py ... | head`), a full disk under stdout or
    log.jsonl, out of memory, a torch.compile that cannot work (no C++ compiler) or a torch cache folder it cannot
    make: one line instead of a traceback, and exit status 130 (143, 129) as a shell gives it for Ctrl-C (SIGTERM,
    SIGHUP), 1 otherwise. Every save is atomic, so the last checkpoint is whole, and it resumes exactly."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second Ctrl-C, pressed while this stops, would
        signal.signal(sig, signal.SIG_IGN)  # cut it short
    limit = e
    while limit is not None and not open_files_fix(limit):  # the open-file limit, wherever it struck (the data's
        limit = limit.__context__  # memmap, a module imported while an error unwound): a traceback
    if limit is not None:
        if master:
            with contextlib.suppress(OSError):
                print(f"stopped at iteration {iter_num}: too many files open ({limit.strerror}); "
                      f"{open_files_fix(limit)}; {how_to_go_on()}", file=sys.stderr)
            unmake()
        os._exit(1)
    if (compile and (why := compile_failure(e))) or (why := cache_failure(e)):  # the first compiled forward; or
        # a TORCHINDUCTOR_CACHE_DIR torch cannot make, when building the model imports torch._dynamo. Said by every
        # process, as out of memory is: under torchrun the first to exit (rank 1, silent) had torchrun end rank 0
        # before its line, and nothing said why the run failed
        print(f"{'' if master else f'rank {rank}: '}{why}", file=sys.stderr, flush=True)
        if master:
            unmake()
        os._exit(1)
    if why := out_of_memory(e, "lower --batch_size (a larger --gradient_accumulation_steps keeps the tokens per "
                                "iteration), pass --grad_ckpt=True, or train a smaller model"):
        print(f"{'' if master else f'rank {rank}: '}stopped at iteration {iter_num}: {why}; " + (
            f"{ckpt_path} holds iteration {saved_iter}: " + ("the study resumes this run from it when run again."
                                                            if study_child() else "resume it with --init_from=resume.")
            if saved_iter is not None
            else "no checkpoint was saved yet."), file=sys.stderr, flush=True)
        if master:
            unmake()
        os._exit(1)
    cause = e  # an error raised while Ctrl-C unwound (torch.save cut short fails closing its file) is that Ctrl-C
    while cause is not None and not isinstance(cause, (KeyboardInterrupt, BrokenPipeError)) and not full(cause):
        cause = cause.__context__
    if cause is None:
        return sys.__excepthook__(kind, e, tb)
    ctrl_c = isinstance(cause, KeyboardInterrupt)
    what, status = stopped_by(cause) if ctrl_c else (None, 1)
    if master:
        why = (f"stopped by {what}" if ctrl_c else "stopped: the reader of its output went away (a closed pipe)"
               if isinstance(cause, BrokenPipeError) else f"stopped: its output or "
               f"{os.path.join(out_dir, 'log.jsonl')} could not be written ({cause.strerror}; "
               f"{space_fix(cause) if cause.errno == errno.EFBIG else 'free space'} first)")
        with contextlib.suppress(OSError):  # a closed terminal (SIGHUP) takes no more text; unmake() still runs
            print(f"{why} at iteration {iter_num}; {how_to_go_on()}", file=sys.stderr)
        unmake()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # the closed pipe itself
            pass
    os._exit(status)  # the exception has unwound (a save under way removed its temporary file)


sys.excepthook = interrupted


def lock_out_dir():
    """Hold out_dir/train.lock for the whole run: a second run there would overwrite this one's checkpoint and
    interleave its log. The kernel drops the lock when the process ends, however it ends. Then make sure out_dir
    takes a new file, as every save does (a read-only folder whose files are writable would fail at the first).
    Refused, it leaves nothing behind: neither a lock file nor the folders it made."""
    fresh = not os.path.exists(os.path.join(out_dir, "train.lock"))
    f = None
    made.extend(missing_dirs(out_dir))  # for unmake(): a run refused now, or stopped before its first save
    try:
        os.makedirs(out_dir, exist_ok=True)
        f = open(os.path.join(out_dir, "train.lock"), "a+")
    except (OSError, RecursionError) as e:  # os.makedirs recurses once per folder to make: a thousand is too many
        why = e.strerror if isinstance(e, OSError) else "nested too deep to create"
        new = bool(made) and os.path.isdir(made[-1])  # made here, not refused by the folder above it
        unmake()
        if new and isinstance(e, PermissionError):
            masked(out_dir)
        lock = os.path.join(out_dir, "train.lock")
        if not fresh and isinstance(e, PermissionError) and os.access(out_dir, os.W_OK):  # the file, not the folder
            masked_file(lock)
            sys.exit(f"{lock} cannot be opened to write ({why}); make it writable (it holds only the pid of the "
                     f"run that trains there), or {elsewhere}.")
        sys.exit(f"out_dir {out_dir!r} is not a writable directory ({why}); {own_mode(out_dir) or elsewhere}.")
    if fresh:
        made_files.append(f.name)
    try:
        in_use(f)
    except SystemExit:  # another run holds out_dir (made at the same instant, perhaps): nothing there is this run's
        made.clear()
        made_files.clear()
        raise
    try:
        return claim(f)
    except SystemExit:
        f.close()
        unmake()
        raise


def claim(f):
    """f, the lock file this run holds in out_dir: out_dir checked to take this run's files."""
    try:
        os.remove(tempfile.mkstemp(dir=out_dir, prefix="ckpt.pt.", suffix=".tmp")[1])
    except OSError as e:
        if open_files_fix(e):  # the open-file limit, which the stop below names: not an out_dir to make writable
            raise
        sys.exit(f"out_dir {out_dir!r} takes no new file ({e.strerror}), so no checkpoint could be saved there; "
                 f"make it writable or {elsewhere}.")
    # a save killed (SIGKILL) before its rename: a checkpoint-sized leftover (ckpt.pt.tmp: the one name saves had
    # before ed29ce5; since, mkstemp's 8 characters), and not a file of the user's such as ckpt.pt.old.tmp
    remove_leftovers(out_dir, r"ckpt\.pt\.([a-z0-9_]{8}\.)?tmp")
    for name in ("ckpt.pt", "log.jsonl"):  # replaced at each save, written from the start: found now, not then
        path = os.path.join(out_dir, name)
        # a resume keeps the lines of the log before its checkpoint (open_log): "make it writable" led to a
        # PermissionError traceback there when the file could not be read either
        if name == "log.jsonl" and init_from == "resume" and (why := unreadable(path)):
            sys.exit(f"cannot read {path} ({why}), whose lines before the checkpoint a resume keeps; make it "
                     f"readable{'' if os.access(path, os.W_OK) else ' and writable'} or {elsewhere}.")
        if name == "log.jsonl" and init_from == "resume" and os.path.isfile(path):
            log_text(path)  # saved again as UTF-16: its lines, each no JSON, were dropped without a word
        if os.path.exists(path) and not os.access(path, os.W_OK):
            masked_file(path)
            sys.exit(f"{path} is read-only (or immutable), and this run would replace it; make it writable or "
                     f"{elsewhere}.")
    try:  # the first bytes this run writes: a full disk shows here, before any work
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
    except OSError as e:
        sys.exit(f"could not write {f.name} ({e.strerror}); {space_fix(e)}, or {elsewhere}.")
    return f


if ddp:
    if device_type == "cuda":
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(backend=backend if backend != "auto" else "nccl" if device_type == "cuda" else "gloo",
                                timeout=timedelta(seconds=ddp_timeout))
    except (dist.DistError, RuntimeError, ValueError) as e:  # no process 0 to meet: RANK and friends without torchrun
        first = (str(e).strip() or "?").splitlines()[0][:200]
        at = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
        if os.environ.get("TORCHELASTIC_RUN_ID") and re.search(r"time[ds]? ?out", str(e), re.I):
            # torchrun started them all: one is late (stopped, or slow to import on a busy machine), not missing,
            # and "start every process with torchrun" was the advice
            sys.exit(f"rank {rank}: waited more than ddp_timeout={ddp_timeout}s for the other processes at {at} "
                     f"({type(e).__name__}: {first}): one of them stalled or is slow to start; see its log, or raise "
                     f"--ddp_timeout if it is only slow.")
        sys.exit(f"rank {rank}: could not join the other processes at {at} ({type(e).__name__}: {first}); start "
                 f"every process with torchrun, or unset RANK to run one process.")

    def on_error(kind, e, tb):
        # a collective that failed or timed out: say which process gave up and why, not a page of backend frames
        if isinstance(e, dist.DistError) or isinstance(e, RuntimeError) and any(
                w in str(e) for w in ("gloo", "NCCL", "Timed out")):
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            # rank 0 says where the run stands, and a run that saved nothing leaves no out_dir (its lock and log
            # stayed, as after no other stop)
            # only a wait is helped by a longer --ddp_timeout: a process that ended (a refusal that rank 0 alone
            # makes, such as an unwritable out_dir, or a crash) closes its connections, and its own lines say why
            why = f"waited more than ddp_timeout={ddp_timeout}s: another process stalled; see its log, or raise " \
                f"--ddp_timeout if it is only slow" if re.search(r"time[ds]? ?out|timing out", str(e), re.I) else \
                "failed: another process ended or lost its connection; its own lines (or torchrun's report) say why"
            sys.stderr.write(f"rank {rank}: a collective {why} ({type(e).__name__}: {first})"
                             + (f"; {how_to_go_on()}" if master else "") + "\n")
            if master:
                unmake()
            os._exit(1)
        interrupted(kind, e, tb)
    sys.excepthook = on_error
if device_type == "cuda":
    torch.set_float32_matmul_precision("high")  # TF32 matmuls


def other_tokenizer(theirs, model, trained_on):
    sys.exit(f"{os.path.join(data_dir, 'meta.json')} records tokenizer {theirs!r}, and {model} was trained on "
             f"{trained_on!r} ids; point --data_dir at data of that tokenizer, or train from scratch in another "
             f"--out_dir.")


def load_source():
    """(GPTConfig, state dict, the tokenizer of its data or None, checkpoint.unfinished's sentence or None) of the
    model init_from converts: one of our checkpoints, or GPT-2 from the hub."""
    if source_path is None:
        # GPT-2's ids are r50k_base's: data of another tokenizer is refused below, but only once the weights are in;
        # offline, "download gpt2 once where there is a network" was the advice, and after the download this refusal
        # data not prepared, or a damaged meta.json, was the same: the hub first, then open_data's sentence; its
        # checks now come first, as below with GPT-2's shape (known before its weights)
        open_data(data_dir, block_size, gptconf.vocab_size, resuming=init_from)  # no checkpoint's data to name
        theirs = m.get("tokenizer") if isinstance(m := data_meta(), dict) else None
        if isinstance(theirs, str) and theirs != "r50k_base":
            other_tokenizer(theirs, init_from, "r50k_base")
        try:
            return (*load_gpt2(init_from), "r50k_base", None)
        except ValueError as e:
            sys.exit(str(e))
    try:
        src = load_checkpoint(source_path)
    except SystemExit as e:  # name the setting that pointed here
        sys.exit(f"init_from={init_from!r}: {e}")
    for k, v in (("from_iter", src.get("iter_num")), ("from_best", src.get("best_val_loss"))):
        if isinstance(v, (int, float)) and math.isfinite(v):
            source_at[k] = v
    # a run still training (or stopped) converts its midway save: sample.py and eval.py say so of the same file
    return (GPTConfig(**src["model_args"]), src["model"], src.get("meta", {}).get("tokenizer"),
            unfinished(init_from, src))


def resumed_data():
    """Refuse a resume whose data_dir is not there, naming the one the checkpoint trained on: without the run's config
    file (train.py's default data_dir), or with a relative data_dir from another folder, "prepare it with ..." was the
    advice, where the run's data was prepared already."""
    was = ckpt["config"].get("data_dir")
    if os.path.exists(data_dir) or not isinstance(was, str):
        return
    here = f"a relative path, missing from this folder ({os.getcwd()})"
    if was != data_dir and os.path.isabs(was) and not os.path.exists(was):
        # an absolute path of the machine or folder it was trained in, its data received here under a relative
        # name (data/sb of /home/alice/proj/data/sb): "--data_dir=/home/alice/..." named a folder that is not there
        tail = received_as(was)
        fix = f"--data_dir={shlex.quote(tail)}, the folder of that name here, if it holds that data" if tail else \
            "--data_dir set to the folder that holds that data here"
        if not tail and (moved := same_data_beside(was, ckpt.get("meta"))):  # renamed by hand on this machine
            fix = f"--data_dir={shlex.quote(moved)}, beside it, which holds the same data (moved or renamed?)"
        sys.exit(f"data_dir {data_dir!r} does not exist, and {ckpt_path} trained on data_dir {was!r}, which is not "
                 f"here either (gone, or a path of another machine); resume with {fix}.")
    if was != data_dir:
        # the run's own data_dir renamed by hand, resumed without its config file: "run from the folder the run was
        # trained in, or --data_dir=data/sb" was the advice from that very folder, where data/sb is gone
        if not os.path.exists(was) and (moved := same_data_beside(was, ckpt.get("meta"))):
            sys.exit(f"data_dir {data_dir!r} does not exist, and {ckpt_path} trained on data_dir {was!r}, which is not "
                     f"here either, but {moved!r} beside it holds the same data (moved or renamed?); resume with the "
                     f"config file and settings the run was trained with and --data_dir={shlex.quote(moved)}.")
        there = "" if os.path.isabs(was) or os.path.exists(was) else \
            f", {here}: run from the folder the run was trained in"
        sys.exit(f"data_dir {data_dir!r} does not exist, and {ckpt_path} trained on data_dir {was!r}{there}; resume "
                 f"with the config file and settings the run was trained with, or --data_dir={shlex.quote(was)}.")
    # an absolute one renamed by hand too: open_data's "prepare it with `prepare_slimpajama.py --out_dir=...`" was
    # the advice, which without the run's --input downloads SlimPajama in place of the renamed folder beside it
    if moved := same_data_beside(data_dir, ckpt.get("meta")):
        where = here if not os.path.isabs(data_dir) else "not there"
        sys.exit(f"data_dir {data_dir!r}, which {ckpt_path} trained on, is {where}, but {moved!r} beside it holds "
                 f"the same data (moved or renamed?); resume with --data_dir={shlex.quote(moved)}.")
    if not os.path.isabs(data_dir):
        sys.exit(f"data_dir {data_dir!r}, which {ckpt_path} trained on, is {here}; run from the folder the run was "
                 f"trained in, or give --data_dir as an absolute path.")
    if command := prepare_command(ckpt.get("meta"), data_dir):  # gone: made again from the files it was made from
        sys.exit(f"data_dir {data_dir!r}, which {ckpt_path} trained on, is not there; prepare it again from the files "
                 f"it was made from with `{command}`, or set --data_dir to where it is now.")


if init_from == "resume":
    resumed_data()
source = load_source() if converting else None
# a checkpoint's vocabulary and block_size (resumed, or converted with them: GPT-2's too) are no settings to change:
# name the data, not vocab_size or block_size
meta = open_data(data_dir, block_size, gptconf.vocab_size, resuming=init_from == "resume" or converting
                 and source[0].vocab_size == gptconf.vocab_size)
# vocab_size left at its default, GPT-2's 50304, on byte-level data (256 ids): 99% of the model's token rows never a
# target and its losses over 50304 choices, without a word (the data's own configs, cpu_tiny.py, set 256). So too a
# config file's: a paper config (r50k_base's 50304) shrunk by overrides to try on byte-level data
own_vocab = -(-meta["vocab_size"] // 64) * 64
if init_from == "scratch" and "vocab_size" not in typed and gptconf.vocab_size > own_vocab:
    whose = "a config file's" if "vocab_size" in given else "its default"
    gpt2 = " (GPT-2's)" if "vocab_size" not in given else ""
    notes.append(f"note: vocab_size is {whose} {gptconf.vocab_size}{gpt2} and {data_dir} holds "
                 f"{meta.get('tokenizer')!r} tokens, {meta['vocab_size']} ids: the model's other rows are never a "
                 f"target; set --vocab_size={own_vocab} for a model of this data's vocabulary.")
per_batch = batch_size * block_size  # calibration tokens per calib_batch
starts = token_count(data_dir, "train") - block_size  # the distinct windows train.bin has to draw them from
if source and ties_v(source[0], gptconf) and convert_method in ("lstsq", "split") and \
        (too_few := exact_fit(source[0], calib_batches * per_batch)):
    # more calib_batches than train.bin has distinct windows for only draw them again: "set --calib_batches=2" on a
    # train.bin of one window met the refusal of repeated windows below
    fix = f"set --calib_batches={too_few[0] // per_batch + 1} or more" if starts * block_size > too_few[0] else \
        f"prepare more training data ({data_dir}/train.bin holds {starts + block_size:,} tokens, {starts:,} " \
        f"distinct window{'s' if starts > 1 else ''}), or set --convert_method=k"
    sys.exit(f"calib_batches={calib_batches} gives {calib_batches * per_batch} calibration tokens ({batch_size} "
             f"batch x {block_size} block each), and convert_method={convert_method!r} {too_few[1]}; {fix}.")
# the two bins just checked, held open for the whole run: each batch reads its windows from them (reopened by their
# paths, data_dir deleted mid-run was a FileNotFoundError traceback, and prepared again from other text, the rest of
# the run trained on that without a word)
bins = {split: open(os.path.join(data_dir, f"{split}.bin"), "rb") for split in ("train", "val")}
checked = {split: os.fstat(f.fileno()).st_size for split, f in bins.items()}  # what open_data checked
# the ids its weights were trained on: on another tokenizer's ids (a vocabulary that fits: bytes in r50k's) a resumed
# or converted model trained on without a word, each embedding row now meaning another token
trained_on = (ckpt["meta"] or {}).get("tokenizer") if ckpt and ckpt.get("meta") else source[2] if source else None
if trained_on and meta.get("tokenizer") and trained_on != meta["tokenizer"]:
    other_tokenizer(meta["tokenizer"], ckpt_path if ckpt else init_from, trained_on)
for note in notes:
    print(note)
# the data under the same data_dir prepared again (other text, more shards) since the checkpoint: a resume goes on
# on it, and says so (a changed --data_dir is said among the settings); the batches are no longer the same
moved = other_data(ckpt.get("meta"), meta) if init_from == "resume" else []
# a data_dir whose own is gone stands for it (the folder here that resumed_data named, "if it holds that data"):
# other data there went on without a word, the new data_dir said as a setting only
was_dir = ckpt["config"].get("data_dir") if moved else None
if master and moved and (same("data_dir", config["data_dir"], was_dir) or
                         isinstance(was_dir, str) and was_dir and not os.path.exists(was_dir)):
    # other input names alone (the same text copied as in.txt) may be the very tokens: "perhaps", as sample.py says
    print(f"{os.path.join(data_dir, 'meta.json')} records {'perhaps ' * inputs_only(moved)}other data than "
          f"{ckpt_path} was trained on: {', '.join(moved)}; the resumed run trains and evaluates on the data there "
          f"now, and measures its best validation loss again from here.")

# validation batches per process of val_rows windows each: about eval_tokens, no more than val.bin holds whole
# (checkpoint.eval_batches, the rule the studies that score train.py's evaluation share)
val_len = token_count(data_dir, "val")
val_windows = (val_len - 1) // block_size  # open_data checked there is at least one
if val_windows < world_size:
    sys.exit(f"{data_dir}/val.bin holds {val_windows} window(s) of block_size {block_size}, fewer than the "
             f"{world_size} processes that each evaluate one; prepare more validation data or run fewer processes.")
val_rows, val_batches, capped = eval_batches(val_len, block_size, batch_size, eval_tokens, world_size)
val_scored = val_rows * val_batches * block_size * world_size  # each evaluation's tokens, all processes together
if capped and master:
    print(f"eval_tokens={eval_tokens:,} is more than {data_dir}/val.bin holds ({val_len:,} tokens): each evaluation "
          f"scores its first {val_scored:,} once.")
elif val_scored > eval_tokens and master:  # less than one batch: --help's "tokens per evaluation" was 20 times more
    print(f"eval_tokens={eval_tokens:,} is less than one validation batch ({val_scored:,} tokens: batch_size x "
          f"block_size x processes): each evaluation scores {val_scored:,}.")


def get_batch(split, *key):
    """x, y [batch_size (val: val_rows), block_size]. train: random windows from a generator seeded by (seed, *key),
    with key = (iteration, micro-batch index in the global batch), so a resumed run, or one with another number of
    processes, sees the same batches. val: consecutive windows from the start (key = batch index), so every
    evaluation scores the same tokens."""
    # read, not mapped: a bin cut in place mid-run (`truncate`, `> train.bin`) was numpy's ValueError traceback, or a
    # SIGBUS (a page mapped past the new end) that killed the run without a word; a short read is said below
    fd, size = bins[split].fileno(), checked[split]
    if split == "train":
        ix = np.random.default_rng([seed, *key]).integers(0, size // 2 - block_size, size=batch_size)
    else:
        ix = (key[0] * val_rows + np.arange(val_rows)) * block_size  # within val.bin: val_batches saw to it
    n = 2 * (block_size + 1)
    reads = [os.pread(fd, n, 2 * int(i)) for i in ix]
    if any(len(r) < n for r in reads) or os.fstat(fd).st_size != size:
        sys.exit(f"{data_dir}/{split}.bin changed while the run read it ({size:,} bytes when it began, "
                 f"{os.fstat(fd).st_size:,} now): it was cut or written in place; delete {delete_what(data_dir)} and "
                 f"prepare it again with prepare_slimpajama.py (a run reads the bins it began with, not new ones "
                 f"beside them).")
    w = np.stack([np.frombuffer(r, dtype=np.uint16) for r in reads]).astype(np.int64)  # inputs and next tokens
    if w.max() >= meta["vocab_size"]:  # the bins changed since they were checked on open (meta.json records a max)
        sys.exit(f"{data_dir}/{split}.bin holds token id {w.max()}, at or above vocab_size {meta['vocab_size']} of "
                 f"its meta.json: the bins are not that tokenizer's ids (the embedding would fail on them); delete "
                 f"{data_dir} and prepare it again with prepare_slimpajama.py.")
    x, y = (torch.from_numpy(np.ascontiguousarray(a)) for a in (w[:, :-1], w[:, 1:]))
    if device_type == "cuda":
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


def rng_states():
    """Every process's torch RNG states (dropout), gathered on all; the checkpoint keeps them as plain tensors."""
    state = {"cpu": torch.get_rng_state()}
    if device_type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state()
    states = [state] * world_size
    if ddp:
        dist.all_gather_object(states, state)
    return states


def other_masks(processes, compiled):
    """The line a resume with dropout says when it cannot repeat its run step for step, or None: each process draws
    its masks from its own stream, and compiled code draws them its own way, so another number of processes or
    another compile went on as another draw of the run (losses off by 1e-3 from step one) without a word, where
    the docs promised the uninterrupted run's losses."""
    if not gptconf.dropout:
        return None
    moved = ([f"{world_size} process{'es' * (world_size > 1)} (checkpoint: {processes})"]
             if processes != world_size else []) + \
        ([f"compile={compile} (checkpoint: {compiled})"] if isinstance(compiled, bool) and compiled != compile else [])
    return moved and (f"dropout={gptconf.dropout:g} draws its masks from each process's own random stream, which "
                      f"{' and '.join(moved)} change{'s' * (len(moved) == 1)}: the resumed run is another draw of the "
                      f"same training, not the uninterrupted run step for step.")


# model and optimizer
torch.manual_seed(seed)  # the same initial weights on every process: FSDP keeps each process's own shard of them
model = GPT(gptconf).to(device)
if rank > 0:  # dropout differs per process; rank 0 goes on with the init's stream, as a single process always did
    torch.manual_seed(seed + rank)
best_val_loss = float("inf")
saved_best = None  # a resumed checkpoint's best_val_loss as saved: one of the losses its run logged
if source:
    calib = torch.cat([get_batch("train", max_iters, k)[0] for k in range(calib_batches)])  # a key no step uses
    # a window drawn twice adds no equation: a train.bin little longer than block_size gives few distinct windows, and
    # 128 tokens of one window of 8 were fitted exactly, "unexplained V variance 0.000" (the check above counts all)
    distinct = torch.unique(calib, dim=0).numel()
    if ties_v(source[0], gptconf) and convert_method in ("lstsq", "split") and \
            (too_few := exact_fit(source[0], distinct)):
        fix = "raise --calib_batches" if starts * block_size > too_few[0] else "prepare more training data"
        sys.exit(f"the {len(calib)} calibration windows from {data_dir}/train.bin ({starts + block_size:,} tokens) are "
                 f"only {distinct // block_size} distinct, {distinct} tokens, and convert_method={convert_method!r} "
                 f"{too_few[1]}; {fix}, or set --convert_method=k.")
    try:
        state, fits = convert_state_dict(source[1], source[0], gptconf, convert_method, calib)
    except ValueError as e:
        sys.exit(f"init_from={init_from!r}: {e}")
    model.load_state_dict(state)
    # the method only where V was tied to K: untying and pooling are no fit by lstsq, whatever convert_method says
    tied_by = convert_method if ties_v(source[0], gptconf) else None
    # a window drawn twice adds no equation: 512 tokens of 3 distinct windows were called "512 training tokens"
    repeats = f", {distinct // block_size} distinct windows of {len(calib)}" if distinct < calib.numel() else ""
    fitted_on = f"{calib.numel():,} training tokens (calib_batches={calib_batches}{repeats})" \
        if tied_by in ("lstsq", "split") else None
    conversion = conversion_note(source[0], gptconf, tied_by, fits, fitted_on)
    # given, and read by nothing in this conversion: said, as sample.py says it (harmless: untying and pooling are
    # exact or fixed whatever the method, and the retrofit study gives its method to every conversion)
    if unused := [f"--{k}" for k in ORIGIN[1:] if k in given and not (tied_by if k == "convert_method" else fitted_on)]:
        conversion += (f" ({' and '.join(unused)} unused: "
                       f"{f'{tied_by} fits nothing' if tied_by else 'V is not newly tied to K'})")
    if source[3]:
        conversion += f"\n{source[3]}, so this converts that iteration."
    source = state = None  # free the memory
if grad_ckpt:  # wrapped inside FSDP's hooks (sharded below), so the recompute uses the weights already gathered
    for block in model.transformer.h:
        block.forward = partial(checkpoint, block.forward, use_reentrant=False)
if fsdp:  # bf16 copies of the gathered weights for compute, fp32 master weights, gradients reduced in fp32
    mp = MixedPrecisionPolicy(param_dtype=ptdtype, reduce_dtype=torch.float32)
    for block in model.transformer.h:
        fully_shard(block, mp_policy=mp)
    fully_shard(model, mp_policy=mp)  # the rest: the tied embedding / output layer, wpe, ln_f
raw_model = model  # keeps the state_dict keys clean of torch.compile's and DDP's prefixes
# AdamW's first construction imports torch._dynamo, and with it triton, whose native start aborted the process on a
# Ctrl-C inside it ("terminate called after throwing an instance of 'nanobind::python_error'"): the stop acts after
with signals_held():
    optimizer = model.configure_optimizers(weight_decay, learning_rate, (beta1, beta2), device_type)
# One checkpoint format for every mode: full tensors keyed by parameter name (the optimizer state too), gathered
# one tensor at a time into rank 0's CPU memory, so no GPU ever holds the whole state and a checkpoint written
# by one process, DDP or FSDP resumes under any of them.
SAVE = StateDictOptions(full_state_dict=True, cpu_offload=True)
LOAD = StateDictOptions(full_state_dict=True)  # every process reads the (memory-mapped) file and keeps its shard
if ckpt:  # resuming (any other run with a checkpoint in out_dir ended above)
    set_model_state_dict(model, ckpt["model"], options=LOAD)
    settings = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]  # this run's betas...
    if ckpt["iter_num"] == 0:
        # no step taken (a max_iters=0 run): get_optimizer_state_dict fills an empty AdamW by a zero step, saved as
        # step 1, and the resume's first update was bias-corrected as a second one (its losses left a fresh run's)
        pass
    elif isinstance(ckpt["optimizer"]["param_groups"][0]["params"][0], int):  # written before the names (issue 16)
        if fsdp:
            sys.exit(f"{ckpt_path} keys its optimizer state by position, the older format; resume it once with "
                     f"--parallel=ddp, whose next save writes the format --parallel=fsdp reads.")
        optimizer.load_state_dict(ckpt["optimizer"])
    else:
        set_optimizer_state_dict(model, optimizer, ckpt["optimizer"], options=LOAD)
    # loading restores the moments and step counts, and with them the checkpoint's betas and weight decay: a resume
    # said to go on under another beta2 or weight_decay went on under the old ones
    for group, own in zip(optimizer.param_groups, settings):
        group.update(own)
    best_val_loss = saved_best = ckpt["best_val_loss"]
    # of other data (prepared again, or another --data_dir): the checkpoint's best is of another validation text,
    # which always_save_checkpoint=False compared with it without a word (a better model went unsaved)
    if moved:
        best_val_loss = float("inf")
    # that loss is of the first windows its run scored: another eval_tokens (or count of processes) scores others,
    # which always_save_checkpoint=False compared with it without a word (a worse model could be saved as better)
    asked = ckpt["config"].get("eval_tokens"), ckpt["config"].get("batch_size")
    if all(type(n) is int and n > 0 for n in asked):  # its processes: one random state each (never none)
        was = scored_tokens(val_len, block_size, asked[1], asked[0], len(ckpt["rng"]))
        if was != val_scored and math.isfinite(best_val_loss):
            if master:
                print(f"evaluations now score the first {val_scored:,} validation tokens, not the {was:,} of "
                      f"{ckpt_path}'s best_val_loss {best_val_loss:.4f}: the best is measured again from here, and "
                      f"log.jsonl's validation curve changes measure at iteration {iter_num}.")
            best_val_loss = float("inf")
    if master and (drawn := other_masks(len(ckpt["rng"]), {**defaults, **ckpt["config"]}.get("compile"))):
        print(drawn)
    if rank < len(ckpt["rng"]):  # processes added on resume keep their fresh seeds
        torch.set_rng_state(ckpt["rng"][rank]["cpu"].cpu())
        if device_type == "cuda" and "cuda" in ckpt["rng"][rank]:
            torch.cuda.set_rng_state(ckpt["rng"][rank]["cuda"].cpu())
    ckpt = None  # free the memory
start_iter = iter_num
if compile:
    model = torch.compile(model)
if ddp and not fsdp:
    model = DDP(model, device_ids=[local_rank] if device_type == "cuda" else None)


@torch.no_grad()
def estimate_val_loss():
    """Mean loss over about eval_tokens validation tokens, shared among the processes; the same on every rank."""
    model.eval()
    n = val_batches
    total = torch.zeros((), device=device)
    for k in range(n):
        x, y = get_batch("val", rank * n + k)
        with ctx:
            total += model(x, y)[1].float()
    if ddp:
        dist.all_reduce(total)
    model.train()
    return total.item() / (n * world_size)


def log_entry(line):
    """The entry a log line holds, or None where it is none of train.py's (cut short, edited, a disk error)."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) and type(entry.get("iter")) is int else None


def before_checkpoint(line, entry):
    """A log line (with the entry log_entry read in it) a resumed run keeps: whole, and from before its checkpoint.
    A line cut short by a crash, or any that is not one of ours (an edit, a disk error), goes too: it would only stop
    the resume. A conversion's line is of iteration 0 and written before any checkpoint: a max_iters=0 conversion
    resumed lost it, and its log read as a run from scratch (checkpoint.started, the retrofit study's conversion
    facts)."""
    return line.endswith("\n") and entry is not None and (
        entry["iter"] < iter_num or "conversion" in entry or saved_after(entry))


def saved_after(entry):
    """Whether entry is the validation line the checkpoint was saved after (every save follows one). Kept by a
    resume, which logs no second: dropped, a resume killed in its first evaluation, or one whose eval_interval
    skips the checkpoint's iteration, left the log with no record of the evaluation its checkpoint stands on."""
    return entry["iter"] == iter_num and "val_loss" in entry


val_logged = None  # the validation loss the log holds at the checkpoint's iteration, the one it was saved after


def not_its_log(entries):
    """Why a resume's log.jsonl is not its checkpoint's run's, or None. Every save follows a validation line, and
    the checkpoint's best_val_loss is one of the losses its run logged up to its iteration: another run's log
    (a ckpt.pt copied in from a run that evaluated at the same iterations) was kept up to there, spliced, exit 0."""
    start = min(e["iter"] for e in entries)
    if start == iter_num > 0:  # a log a resume began at this checkpoint (received without its log, or beside another
        return None  # run's): the evaluation it was saved after, and its best, were logged elsewhere
    if not any(saved_after(e) for e in entries):
        return f"records no validation at iteration {iter_num}, where {ckpt_path} was saved"
    # only a log from iteration 0 holds every evaluation of its run (a resume's new log begins at its checkpoint,
    # whose best was logged elsewhere); to 7 digits: a log written again by a tool is still this run's
    if saved_best is not None and math.isfinite(saved_best) and start == 0 and not any(
            math.isclose(e["val_loss"], saved_best, rel_tol=1e-7) for e in entries
            if type(e.get("val_loss")) is float and e["iter"] <= iter_num):
        return (f"records no validation loss of {saved_best:.4f} up to iteration {iter_num}, the best_val_loss "
                f"{ckpt_path} was saved with")
    return None


def open_log():
    """out_dir/log.jsonl; a resumed run first drops the lines a crashed run wrote after its checkpoint."""
    global val_logged
    path = os.path.join(out_dir, "log.jsonl")
    if init_from == "resume" and os.path.exists(path):
        # UTF-8 with or without a BOM: saved by a Windows editor, its first line (the run's start, which
        # checkpoint.started reads) was no JSON to before_checkpoint and went without a word
        lines = [(n, line, log_entry(line)) for n, line in log_lines(log_text(path), numbered=True)]  # parsed once
        entries = [e for _, line, e in lines if line.endswith("\n") and e]
        if entries and (why := not_its_log(entries)):
            # another run's log beside this checkpoint (a folder copied, a ckpt.pt copied in): its lines up to
            # this iteration were kept as this run's, one log of two runs, exit 0. Set aside, as a log with no
            # checkpoint is; this run's log begins at its checkpoint
            os.rename(path, kept := free_kept())
            print(f"{path} {why}: it is another "
                  f"run's log (or one cut or edited); it is kept as {kept}, and this run writes a new log.", flush=True)
            return open(path, "w")
        # a bad line went without a word: said, and the log kept as it was. Not the last cut short by a kill (no
        # newline): a whole last line (a note appended with echo >>) is no kill's
        if bad := [str(n) for i, (n, line, e) in enumerate(lines) if e is None
                   and (i < len(lines) - 1 or line.endswith("\n"))]:
            shutil.copyfile(path, kept := free_kept())
            which = f"line {bad[0]} holds" if len(bad) == 1 else \
                f"lines {', '.join(bad[:5])}{', ...' * (len(bad) > 5)} hold"
            print(f"{path}: {which} no log entry of train.py (edited, or a disk error), left out by this resume; the "
                  f"log as it was is kept as {kept}.", flush=True)
        kept = [(line, e) for _, line, e in lines if before_checkpoint(line, e)]
        # the first validation line at the checkpoint's iteration is the one it was saved after; a second is a
        # resume's that stopped before its first save (Ctrl-C, a closed pipe), measured on other data or settings:
        # kept, the finished run's log held two losses at that iteration, one of data it never trained on
        at = [i for i, (_, e) in enumerate(kept) if saved_after(e)]
        kept = "".join(line for i, (line, _) in enumerate(kept) if i not in at[1:])
        # by rename, then appended to: truncated and refilled in place, a kill between the two (or a Ctrl-C in the
        # first evaluation, while the refill sat in a buffer) emptied the log. A log linked here from another run
        # is replaced by this run's own file, not written through the link into that run's
        atomic_write(path, kept)
        val_logged = next((e["val_loss"] for e in entries if saved_after(e)), None)
        return open(path, "a")
    if os.path.isfile(path) and (os.path.islink(path) or os.stat(path).st_nlink > 1):
        os.remove(path)  # another run's log, linked here (as its checkpoint can be): this run writes its own
    elif os.path.isfile(path) and os.path.getsize(path):
        keep_log(path)
    if init_from != "resume":  # a resume's eval/ is its checkpoint's own, with its log.jsonl or without (received)
        keep_eval()
    f = open(path, "w")
    if saved_iter is None:
        made_files.append(path)
    return f


def free_kept(name="log.{}.jsonl"):
    """out_dir/name with the first N not taken: where a log (or eval/) this run would otherwise lose is kept."""
    n = 1
    while os.path.lexists(kept := os.path.join(out_dir, name.format(n))):
        n += 1
    return kept


def keep_log(path):
    """A log with no checkpoint beside it (ckpt.pt moved or deleted to train again, a run killed before its first
    save) was replaced by this run's without a word, and a stop before this run's first save then removed it: it
    is moved to the first free log.N.jsonl, and back if this run stops before it saves."""
    global kept_log
    os.rename(path, kept := free_kept())
    kept_log = (path, kept)
    print(f"{path} has no checkpoint beside it; it is kept as {kept}, and this run writes a new log.", flush=True)


def keep_eval():
    """out_dir/eval/ of a run whose checkpoint is gone (deleted or moved away to train again): a new run trained
    beside it, and its results.md read as the new run's numbers. Moved to the first free eval.N/, as the log is."""
    global kept_eval
    path = os.path.join(out_dir, "eval")
    if os.path.islink(path) or not os.path.isfile(os.path.join(path, "results.json")):
        return
    os.rename(path, kept := free_kept("eval.{}"))
    kept_eval = (path, kept)
    print(f"{path} holds the evaluation of a run whose checkpoint is not there; it is kept as {kept}, and this run "
          f"starts without one.", flush=True)


def stop(what):
    """Exit on a non-finite loss before any optimizer step or save: the last checkpoint stays the last good one."""
    if saved_iter is None:
        sys.exit(f"{what} at iter {iter_num}; stopped before any checkpoint was saved. Lower --learning_rate and run "
                 f"again.")
    sys.exit(f"{what} at iter {iter_num}; stopped without saving ({ckpt_path} is untouched). Lower "
             f"--learning_rate or resume from the checkpoint.")


def log(entry, text):
    print(text, flush=True)
    logf.write(json_text(entry) + "\n")  # a perplexity past a float's range is null, not Infinity
    logf.flush()


if master:
    lock = lock_out_dir()  # taken after every check, so a refused run leaves no out_dir behind
    atexit.register(unmake)  # sys.exit before the first save (a non-finite loss, a bad batch, a failed save)
    if init_from != "resume" and os.path.exists(ckpt_path):  # another run saved here since the check above
        sys.exit(f"{ckpt_path} exists; continue it with --init_from=resume or train into another --out_dir.")
    logf = open_log()
    if converting:  # the fit of each layer: share of V's variance the tied projection cannot reproduce, split's r
        log({"iter": 0, "conversion": {"from": init_from, "method": tied_by, "layers": fits,
                                       **source_at}},
            f"{init_from}: {conversion}")
    # a constant rate reads none of the schedule's settings: those typed here are said to go unused (not refused:
    # a base command that sets them, as the tests' does, may add --decay_lr=False; config files set them for the
    # default schedule, and are not this command's word)
    if not decay_lr and (unused := [f"--{k}" for k in ("warmup_iters", "lr_decay_iters", "min_lr") if k in typed]):
        print(f"decay_lr=False trains at learning_rate ({learning_rate:g}) throughout, with no warmup or decay: "
              f"{', '.join(unused)} unused")
    # linear attention caches no token but keeps a fixed state: "KV cache 0 bytes/token" read as no memory at all
    cache = (f"a fixed recurrent state of {raw_model.new_cache(1, 1, ptdtype, 'meta').nbytes:,} bytes ({dtype}) in "
             f"place of a KV cache (linear attention)" if gptconf.attn == "linear" else
             f"KV cache {raw_model.kv_bytes_per_token(ptdtype)} bytes/token ({dtype})")
    # in millions, as nanoGPT's; a small model's exact count (3,000 parameters were "0.00M")
    params = raw_model.num_params()
    params = f"{params / 1e6:.2f}M" if params >= 10_000 else f"{params:,}"
    print(f"{params} parameters, {cache}; {tokens_per_iter:,} tokens/iter = "
          f"{batch_size} batch x {block_size} block x {accum} accumulation x {world_size} "
          f"process{'es' if world_size > 1 else ''}"
          f"{f' ({parallel})' if ddp else ''}; {max_iters} iterations; "
          f"{device}, {dtype}{', activation checkpointing' if grad_ckpt else ''}")

# training loop
while True:
    if iter_num % eval_interval == 0 or iter_num == max_iters:
        val_loss = estimate_val_loss()
        if not math.isfinite(val_loss):
            stop(f"validation loss is {val_loss}")
        improved = val_loss < best_val_loss
        best_val_loss = min(best_val_loss, val_loss)
        said = f"iter {iter_num}: val loss {val_loss:.4f}, val perplexity {perplexity(val_loss):.2f}"
        if master and iter_num == start_iter and val_loss == val_logged:  # the line the checkpoint was saved after
            print(said, flush=True)  # (measured again on other data or devices, it differs: both are logged)
        elif master:
            log({"iter": iter_num, "val_loss": val_loss, "val_ppl": perplexity(val_loss)}, said)
        # a checkpoint at every evaluation after the start (only when improved, if not always_save_checkpoint),
        # and always at the end: a finished run is one whose checkpoint is at max_iters
        if iter_num == max_iters or iter_num > start_iter and (improved or always_save_checkpoint):
            ckpt = {"model": get_model_state_dict(raw_model, options=SAVE),  # every process takes part
                    "optimizer": get_optimizer_state_dict(raw_model, optimizer, options=SAVE),
                    "model_args": model_args, "iter_num": iter_num, "best_val_loss": best_val_loss,
                    "config": config, "rng": rng_states(), "meta": meta}
            if master and gptconf.tie_embeddings:  # FSDP gathers the tied matrix twice; store it once
                ckpt["model"]["lm_head.weight"] = ckpt["model"]["transformer.wte.weight"]
            if master:
                saving = True
                try:
                    save_checkpoint(ckpt, ckpt_path)
                except SystemExit as e:  # a full disk, or out_dir made read-only mid-run: atomic_write's sentence
                    # said to free space "or write elsewhere", not that the last checkpoint stays and resumes
                    sys.exit(f"{str(e).rstrip('.')}; stopped at iteration {iter_num}: {how_to_go_on()}")
                saved_iter, saving = iter_num, False
                print(f"saved {ckpt_path}")
            ckpt = None
    if iter_num >= max_iters:
        break

    t0 = time.time()
    lr = get_lr(iter_num)
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss_sum = torch.zeros((), device=device)
    for micro_step in range(accum):
        if fsdp:  # reduce-scatter once, after the last micro-step; meanwhile full fp32 gradients accumulate
            raw_model.set_requires_gradient_sync(micro_step == accum - 1)
        elif ddp:  # all-reduce the gradients once, after the last micro-step
            model.require_backward_grad_sync = micro_step == accum - 1
        x, y = get_batch("train", iter_num, rank * accum + micro_step)
        with ctx:
            _, loss = model(x, y)
        loss_sum += loss.detach().float()
        (loss / accum).backward()
    # under FSDP the gradients are DTensor shards: clip_grad_norm_ reduces the norm across the processes
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else float("inf"))
    if ddp:
        dist.all_reduce(loss_sum)
    lossf, normf = loss_sum.item() / gradient_accumulation_steps, grad_norm.item()  # same on every rank
    if not (math.isfinite(lossf) and math.isfinite(normf)):
        stop(f"loss {lossf} (gradient norm {normf})")
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    dt = time.time() - t0

    if master and iter_num % log_interval == 0:
        mfu = raw_model.estimate_mfu(batch_size * accum, dt)
        log({"iter": iter_num, "loss": lossf, "lr": lr, "grad_norm": normf, "ms": dt * 1000,
             "tokens_per_s": tokens_per_iter / dt, "mfu": mfu},
            f"iter {iter_num}: loss {lossf:.4f}, lr {lr:.2e}, {dt * 1000:.1f} ms/iter, "
            f"{tokens_per_iter / dt:,.0f} tokens/s" + (f", mfu {mfu * 100:.1f}%" if mfu is not None else ""))
    iter_num += 1

for f in [*bins.values(), *([logf, lock] if master else [])]:  # done with: `python -X dev` named each unclosed
    if f is not None:
        f.close()
quiet_exit()  # saved and logged: a signal while the interpreter shuts down was a traceback from an atexit callback
if ddp:
    dist.destroy_process_group()
    # DDP keeps the gloo group and its worker threads alive past destroy_process_group; a worker that frees a finished
    # collective while Python shuts down aborts the process (seen in CPU runs under load). Nothing is left to clean
    # up (logs flushed, checkpoint fsynced), so leave without the interpreter's shutdown.
    sys.stdout.flush()
    os._exit(0)
