import atexit
import hashlib
import importlib
import json
import math
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
import warnings

import numpy as np
import pytest
import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

from model import GPT, GPTConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LR, MIN_LR, WARMUP = 1e-2, 1e-3, 2
TINY = ["--device=cpu", "--dtype=float32", "--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32",
        "--vocab_size=256", "--proj=qk_v", "--batch_size=4", "--gradient_accumulation_steps=2", "--eval_interval=4",
        "--eval_tokens=512", "--log_interval=1", f"--warmup_iters={WARMUP}", f"--learning_rate={LR}",
        f"--min_lr={MIN_LR}", "--dropout=0.0"]
DESIGN_KEYS = {"model", "optimizer", "model_args", "iter_num", "best_val_loss", "config", "rng", "meta"}
TORCHRUN = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py")


def make_data(path, tokenizer="bytes", vocab_size=256):
    """A data dir as prepare_slimpajama.py writes it: documents of tokens 1..16, each ended by the token 0."""
    os.makedirs(path, exist_ok=True)
    tokens = np.random.default_rng(0).integers(1, 17, size=24_000).astype(np.uint16)
    tokens[99::100] = 0
    tokens[:20_000].tofile(os.path.join(path, "train.bin"))
    tokens[20_000:].tofile(os.path.join(path, "val.bin"))
    meta = {"tokenizer": tokenizer, "vocab_size": vocab_size, "eot_token": 0, "train_tokens": 20_000,
            "val_tokens": 4_000, "source": "test"}
    with open(os.path.join(path, "meta.json"), "w") as f:
        json.dump(meta, f)


def train(data_dir, out, *args, cmd=(sys.executable, "train.py"), check=True):
    """Runs cmd (train.py by default) on the tiny model in a process of its own; returns the CompletedProcess."""
    cmd = [*cmd, *TINY, f"--data_dir={data_dir}", f"--out_dir={out}", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if cmd[:2] == [sys.executable, "train.py"]:
        r = run_forked(cmd[1:], env)
    else:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def run_forked(argv, env, timeout=300):
    """`python ARGV` from the repository root, as subprocess.run(..., capture_output=True, text=True) returns it, in
    a child forked from this process: torch is imported already, which saves each of the suite's ~150 trainings the
    2 s its import takes, and the child is still a process of its own (exit status, files, locks, atexit). The child
    starts as a fresh `python` would: the project's modules imported again, Python's signal dispositions, this
    process's atexit callbacks and recursion limit dropped, stdin empty."""
    project = [m for m, mod in sys.modules.items() if os.path.dirname(getattr(mod, "__file__", None) or "") == ROOT]
    with open(os.devnull, "rb") as null, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                for fd, f in ((0, null), (1, out), (2, err)):
                    os.dup2(f.fileno(), fd)
                sys.stdin, sys.stdout = open(0, closefd=False), open(1, "w", closefd=False)
                sys.stderr = open(2, "w", closefd=False, buffering=1, errors="backslashreplace")
                code = fresh_python(argv, env, project)
            finally:
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except Exception:
                        pass
                os._exit(code)
        deadline = time.monotonic() + timeout
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise subprocess.TimeoutExpired(argv, timeout)
            time.sleep(0.02)
        texts = []
        for f in (out, err):
            f.seek(0)
            texts.append(f.read().decode("utf-8", errors="replace"))
    return subprocess.CompletedProcess(argv, os.waitstatus_to_exitcode(done[1]), *texts)


def fresh_python(argv, env, project):
    """The child's work in run_forked: runs the script as __main__ and returns the exit status Python would give."""
    os.chdir(ROOT)
    os.environ.clear()
    os.environ.update(env)
    atexit._clear()  # pytest's, not the script's
    importlib.reload(warnings)  # Python's own filters and printing again: pytest's record warnings, and hid them
    sys.excepthook = sys.__excepthook__
    sys.setrecursionlimit(1000)  # torch.compile, run earlier in this worker, raised it
    for name in project:  # their module state as a new process has it
        del sys.modules[name]
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # an ignored Ctrl-C stays ignored, as across exec
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    sys.argv, sys.path[0] = list(argv), ROOT
    path = os.path.join(ROOT, argv[0])
    main = sys.modules["__main__"] = types.ModuleType("__main__")  # as `python PATH` makes it (runpy's differs)
    main.__file__ = path
    try:
        with open(path, "rb") as f:
            source = f.read()
        exec(compile(source, path, "exec"), vars(main))
        code = 0
    except SystemExit as e:
        code = e.code
    except BaseException as e:  # Python's traceback, without this function's frame
        e.__traceback__ = e.__traceback__.tb_next
        sys.excepthook(type(e), e, e.__traceback__)
        code = 1
    atexit._run_exitfuncs()
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


def read_log(out):
    with open(os.path.join(out, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


def losses(log):
    """[(iter, 'loss' or 'val_loss', value)] in log order."""
    return [(e["iter"], k, e[k]) for e in log for k in ("loss", "val_loss") if k in e]


def but_saved_at(split, it):
    """A run stopped at max_iters=it and resumed evaluated at it, where it saved and the whole run did not: its log
    keeps that line, once (the resume logs no second); the rest is the whole run's."""
    assert [s[:2] for s in split].count((it, "val_loss")) == 1
    return [s for s in split if s[:2] != (it, "val_loss")]


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("data")
    make_data(path)
    return path


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("trained") / "out"
    train(data_dir, out, "--max_iters=4")
    return out


@pytest.fixture
def trained(tmp_path, trained_once):
    """A copy of a 4-iteration run, whose checkpoint (iter 4) the failure tests must leave untouched."""
    return shutil.copytree(trained_once, tmp_path / "out")


def test_a_forked_run_is_what_python_gives(tmp_path):
    """run_forked, which runs the suite's trainings, against `python SCRIPT` itself: the same status, stdout and
    stderr for what a fresh interpreter decides (warnings shown, signal dispositions, recursion limit, argv, stdin,
    atexit, the project's modules unimported, an uncaught exception's traceback)."""
    script = tmp_path / "script.py"
    script.write_text("import atexit, signal, sys, warnings\n"
                      "atexit.register(print, 'at exit')\n"
                      "warnings.warn('shown', UserWarning)\n"
                      "print(signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM),\n"
                      "      sys.getrecursionlimit(), sys.argv, repr(sys.stdin.read()),\n"
                      "      sys.excepthook is sys.__excepthook__, 'model' in sys.modules)\n"
                      "1 / int(sys.argv[1])\n")
    for arg in ("0", "1"):
        env = dict(os.environ, OMP_NUM_THREADS="1")
        forked = run_forked([str(script), arg], env)
        real = subprocess.run([sys.executable, str(script), arg], cwd=ROOT, capture_output=True, text=True, env=env)
        assert (forked.returncode, forked.stdout, forked.stderr) == (real.returncode, real.stdout, real.stderr)
        assert ("ZeroDivisionError" in forked.stderr) == (arg == "0") and "at exit" in forked.stdout


def test_loss_falls_and_log_and_checkpoint_are_written(tmp_path, data_dir):
    out = tmp_path / "out"
    r = train(data_dir, out, "--max_iters=12", cmd=(sys.executable, "-X", "dev", "train.py"))
    assert "ResourceWarning" not in r.stderr  # the bins, log.jsonl and train.lock were left to the exit to close
    log = read_log(out)
    steps = [e for e in log if "loss" in e]
    assert [e["iter"] for e in steps] == list(range(12))
    assert steps[-1]["loss"] < steps[0]["loss"] - 1.0
    assert all(e["ms"] > 0 and e["tokens_per_s"] > 0 and e["mfu"] is None for e in steps)
    evals = [e for e in log if "val_loss" in e]
    assert [e["iter"] for e in evals] == [0, 4, 8, 12]
    assert all(e["val_ppl"] == pytest.approx(math.exp(e["val_loss"])) for e in evals)
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 1.0
    # warmup to LR over WARMUP iterations, then a cosine that falls to MIN_LR at max_iters
    lrs = [e["lr"] for e in steps]
    assert lrs[0] == pytest.approx(LR / (WARMUP + 1)) and lrs[WARMUP] == pytest.approx(LR)
    assert all(a > b > MIN_LR for a, b in zip(lrs[WARMUP:], lrs[WARMUP + 1:]))

    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    assert set(ckpt) == DESIGN_KEYS
    assert ckpt["iter_num"] == 12 and len(ckpt["rng"]) == 1
    assert ckpt["meta"] == json.loads((data_dir / "meta.json").read_text())
    assert ckpt["best_val_loss"] == pytest.approx(evals[-1]["val_loss"])
    assert ckpt["config"]["learning_rate"] == LR and ckpt["model_args"]["proj"] == "qk_v"
    model = GPT(GPTConfig(**ckpt["model_args"]))
    model.load_state_dict(ckpt["model"])  # strict: the keys carry no compile or DDP prefix


def test_resume_repeats_the_uninterrupted_run_exactly(tmp_path, data_dir):
    # dropout on: the resumed run must also restore the RNG that draws the dropout masks
    common = ["--dropout=0.1", "--lr_decay_iters=12"]
    train(data_dir, tmp_path / "whole", *common, "--max_iters=12")
    train(data_dir, tmp_path / "split", *common, "--max_iters=6")
    train(data_dir, tmp_path / "split", *common, "--max_iters=12", "--init_from=resume")
    whole, split = losses(read_log(tmp_path / "whole")), losses(read_log(tmp_path / "split"))
    split = but_saved_at(split, 6)
    assert [w[:2] for w in whole] == [s[:2] for s in split]
    assert max(abs(w[2] - s[2]) for w, s in zip(whole, split)) <= 1e-6
    a = torch.load(tmp_path / "whole" / "ckpt.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "split" / "ckpt.pt", weights_only=True)["model"]
    assert all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)


def test_a_resume_beside_another_runs_log_sets_that_log_aside(tmp_path, data_dir, trained_once):
    # a run's folder copied and another run's ckpt.pt copied into it: the resume kept the first run's lines up to
    # the checkpoint's iteration as its own, one log of two runs, exit 0. Every save follows its validation line
    train(data_dir, tmp_path / "other", "--max_iters=6", "--seed=7")
    mix = shutil.copytree(trained_once, tmp_path / "mix")
    shutil.copyfile(tmp_path / "other" / "ckpt.pt", mix / "ckpt.pt")
    r = train(data_dir, mix, "--max_iters=8", "--seed=7", "--init_from=resume")
    assert (f"{mix / 'log.jsonl'} records no validation at iteration 6, where {mix / 'ckpt.pt'} was saved: it is "
            f"another run's log (or one cut or edited); it is kept as {mix / 'log.1.jsonl'}, and this run writes a new "
            f"log.") in r.stdout
    assert digest(mix / "log.1.jsonl") == digest(trained_once / "log.jsonl")
    assert min(e["iter"] for e in read_log(mix)) == 6  # the new log begins at the checkpoint
    # the run's own log resumes as it was: no second validation line at the checkpoint's iteration
    train(data_dir, tmp_path / "other", "--max_iters=8", "--seed=7", "--init_from=resume")
    assert [e["iter"] for e in read_log(tmp_path / "other") if "val_loss" in e] == [0, 4, 6, 8]


def test_a_resume_beside_the_log_of_a_run_that_evaluated_at_the_same_iteration_sets_it_aside(
        tmp_path, data_dir, trained_once):
    # both runs logged a validation line at iteration 4: only the checkpoint's best_val_loss, one of the losses
    # its own run logged, tells the logs apart; the first run's lines up to 4 were kept as this run's, exit 0
    train(data_dir, tmp_path / "other", "--max_iters=4", "--seed=7")
    mix = shutil.copytree(trained_once, tmp_path / "mix")
    shutil.copyfile(tmp_path / "other" / "ckpt.pt", mix / "ckpt.pt")
    best = torch.load(mix / "ckpt.pt", weights_only=True)["best_val_loss"]
    r = train(data_dir, mix, "--max_iters=6", "--seed=7", "--init_from=resume")
    assert (f"{mix / 'log.jsonl'} records no validation loss of {best:.4f} up to iteration 4, the best_val_loss "
            f"{mix / 'ckpt.pt'} was saved with: it is another run's log (or one cut or edited); it is kept as "
            f"{mix / 'log.1.jsonl'}") in r.stdout
    assert digest(mix / "log.1.jsonl") == digest(trained_once / "log.jsonl")
    assert min(e["iter"] for e in read_log(mix)) == 4


def test_a_resume_stopped_before_its_first_save_leaves_no_second_validation_line(tmp_path, data_dir, trained_once):
    # a resume on other data (or settings) logs its own validation at the checkpoint's iteration; stopped before its
    # first save (Ctrl-C, a closed pipe), that line stayed, and the next resume kept it: two losses at iteration 4
    out = shutil.copytree(trained_once, tmp_path / "out")
    first = [e for e in read_log(out) if e.get("iter") == 4 and "val_loss" in e][0]["val_loss"]
    with open(out / "log.jsonl", "a") as f:  # what the stopped resume leaves
        f.write(json.dumps({"iter": 4, "val_loss": first + 0.5, "val_ppl": math.exp(first + 0.5)}) + "\n")
    train(data_dir, out, "--max_iters=6", "--init_from=resume")
    evals = [e for e in read_log(out) if "val_loss" in e]
    assert [e["iter"] for e in evals] == [0, 4, 6] and evals[1]["val_loss"] == first


def test_a_log_a_resume_began_at_its_checkpoint_is_its_own(tmp_path, data_dir, trained_once):
    # a checkpoint received without its log, resumed under an eval_interval that skips its iteration: the new log
    # has no validation line there, and the next resume from that checkpoint (the first one killed before it
    # saved) called the run's own log another run's and set it aside
    got = tmp_path / "got"
    got.mkdir()
    shutil.copyfile(trained_once / "ckpt.pt", got / "ckpt.pt")
    train(data_dir, got, "--max_iters=6", "--eval_interval=5", "--init_from=resume")
    shutil.copyfile(trained_once / "ckpt.pt", got / "ckpt.pt")  # as a kill before the save at 5 leaves it
    r = train(data_dir, got, "--max_iters=6", "--eval_interval=5", "--init_from=resume")
    assert "another run's log" not in r.stdout and not (got / "log.1.jsonl").exists()
    assert [e["iter"] for e in read_log(got) if "val_loss" in e] == [5, 6]


def test_a_max_iters_0_checkpoint_resumes_as_a_fresh_run(tmp_path, data_dir):
    # get_optimizer_state_dict saved an AdamW that had taken no step as one zero step (step 1): the resume's first
    # update was bias-corrected as a second, and its losses left the fresh run's from iteration 1, without a word
    train(data_dir, tmp_path / "whole", "--max_iters=4")
    train(data_dir, tmp_path / "split", "--max_iters=0")
    train(data_dir, tmp_path / "split", "--max_iters=4", "--init_from=resume")
    whole, split = losses(read_log(tmp_path / "whole")), losses(read_log(tmp_path / "split"))
    assert [w[:2] for w in whole] == [s[:2] for s in split]
    assert max(abs(w[2] - s[2]) for w, s in zip(whole, split)) <= 1e-6


def test_ddp_on_two_processes_matches_one_process(tmp_path, data_dir):
    # global accumulation 4: two micro-steps on each of two processes, or four on one
    args = ["--max_iters=6", "--gradient_accumulation_steps=4"]
    train(data_dir, tmp_path / "one", *args)
    train(data_dir, tmp_path / "two", *args, cmd=TORCHRUN)
    one, two = losses(read_log(tmp_path / "one")), losses(read_log(tmp_path / "two"))
    assert [o[:2] for o in one] == [t[:2] for t in two]
    assert all(t[2] == pytest.approx(o[2], rel=1e-5) for o, t in zip(one, two))
    ckpt = torch.load(tmp_path / "two" / "ckpt.pt", weights_only=True)
    assert len(ckpt["rng"]) == 2
    ref = torch.load(tmp_path / "one" / "ckpt.pt", weights_only=True)["model"]
    assert ckpt["model"].keys() == ref.keys()  # no "module." prefix
    assert all(torch.allclose(ckpt["model"][k], ref[k], rtol=1e-4, atol=1e-6) for k in ref)


def test_activation_checkpointing_changes_no_number(tmp_path, data_dir):
    # dropout on: the recompute in the backward must draw the forward's masks again
    args = ["--max_iters=4", "--dropout=0.1"]
    train(data_dir, tmp_path / "plain", *args)
    train(data_dir, tmp_path / "ckpt", *args, "--grad_ckpt=True")
    assert losses(read_log(tmp_path / "plain")) == losses(read_log(tmp_path / "ckpt"))


# FSDP vs DDP: the same float32 arithmetic, but FSDP's reduce-scatter and sharded norm add the two processes'
# gradients in another order than DDP's all-reduce, so the losses agree to rounding (rel 1e-5), not bitwise
ACCUM4 = ["--gradient_accumulation_steps=4", "--lr_decay_iters=12"]  # two micro-steps on each of two processes


@pytest.fixture(scope="module")
def ddp_whole(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("ddp") / "whole"
    train(data_dir, out, *ACCUM4, "--max_iters=12", cmd=TORCHRUN)
    return losses(read_log(out))


def assert_close(a, b, rel):
    assert [x[:2] for x in a] == [y[:2] for y in b]
    assert all(y[2] == pytest.approx(x[2], rel=rel) for x, y in zip(a, b)), (a, b)


def test_fsdp_matches_ddp_and_resumes_exactly(tmp_path, data_dir, ddp_whole):
    fsdp = ["--parallel=fsdp", *ACCUM4]
    train(data_dir, tmp_path / "whole", *fsdp, "--max_iters=12", cmd=TORCHRUN)
    whole = losses(read_log(tmp_path / "whole"))
    assert_close(ddp_whole, whole, rel=1e-5)
    train(data_dir, tmp_path / "split", *fsdp, "--max_iters=6", cmd=TORCHRUN)
    train(data_dir, tmp_path / "split", *fsdp, "--max_iters=12", "--init_from=resume", cmd=TORCHRUN)
    split = but_saved_at(losses(read_log(tmp_path / "split")), 6)
    assert [w[:2] for w in whole] == [s[:2] for s in split]
    assert max(abs(w[2] - s[2]) for w, s in zip(whole, split)) <= 1e-6
    ckpt = torch.load(tmp_path / "whole" / "ckpt.pt", weights_only=True)
    assert ckpt["model"]["lm_head.weight"].data_ptr() == ckpt["model"]["transformer.wte.weight"].data_ptr()
    model = GPT(GPTConfig(**ckpt["model_args"]))
    model.load_state_dict(ckpt["model"])  # full tensors with plain keys, as one process writes them
    assert set(ckpt["optimizer"]["state"]) == {n for n, _ in model.named_parameters()}  # keyed by name
    assert all(v.shape == ckpt["model"][k].shape for k, st in ckpt["optimizer"]["state"].items()
               for v in (st["exp_avg"], st["exp_avg_sq"]))


def test_checkpoints_move_between_ddp_fsdp_and_one_process(tmp_path, data_dir, ddp_whole):
    # DDP for 6 iterations, FSDP from there to 12; FSDP for 6, one process from there to 12: each repeats DDP's run
    train(data_dir, tmp_path / "ddp_fsdp", *ACCUM4, "--max_iters=6", cmd=TORCHRUN)
    train(data_dir, tmp_path / "ddp_fsdp", *ACCUM4, "--parallel=fsdp", "--max_iters=12", "--init_from=resume",
          cmd=TORCHRUN)
    assert_close(ddp_whole, but_saved_at(losses(read_log(tmp_path / "ddp_fsdp")), 6), rel=1e-5)
    train(data_dir, tmp_path / "fsdp_one", *ACCUM4, "--parallel=fsdp", "--max_iters=6", cmd=TORCHRUN)
    train(data_dir, tmp_path / "fsdp_one", *ACCUM4, "--max_iters=12", "--init_from=resume")
    assert_close(ddp_whole, but_saved_at(losses(read_log(tmp_path / "fsdp_one")), 6), rel=1e-5)


def test_a_checkpoint_with_the_older_position_keyed_optimizer_state_still_resumes(tmp_path, data_dir, trained):
    old = shutil.copytree(trained, tmp_path / "old")
    ckpt = torch.load(old / "ckpt.pt", weights_only=True)
    model = GPT(GPTConfig(**ckpt["model_args"]))
    opt = model.configure_optimizers(0.1, LR, (0.9, 0.95), "cpu")
    set_optimizer_state_dict(model, opt, ckpt["optimizer"], options=StateDictOptions(full_state_dict=True))
    ckpt["optimizer"] = opt.state_dict()  # what train.py wrote before issue 16: state keyed 0, 1, 2, ...
    assert isinstance(ckpt["optimizer"]["param_groups"][0]["params"][0], int)
    torch.save(ckpt, old / "ckpt.pt")
    r = train(data_dir, old, "--max_iters=8", "--init_from=resume", "--parallel=fsdp", cmd=TORCHRUN, check=False)
    assert r.returncode != 0 and "keys its optimizer state by position" in r.stderr and "--parallel=ddp" in r.stderr
    train(data_dir, trained, "--max_iters=8", "--init_from=resume")
    train(data_dir, old, "--max_iters=8", "--init_from=resume")
    assert losses(read_log(old)) == losses(read_log(trained))
    assert isinstance(next(iter(torch.load(old / "ckpt.pt", weights_only=True)["optimizer"]["state"])), str)


def test_a_crash_while_saving_leaves_the_previous_checkpoint(data_dir, trained):
    before = digest(trained / "ckpt.pt")
    broken_save = ("import runpy, sys, torch\n"
                   "def half_save(obj, f):\n"
                   "    f.write(b'the first bytes of a checkpoint')\n"
                   "    raise OSError('disk full')\n"
                   "torch.save = half_save\n"
                   "sys.argv[0] = 'train.py'\n"
                   "runpy.run_path('train.py', run_name='__main__')\n")
    r = train(data_dir, trained, "--max_iters=8", "--init_from=resume", cmd=(sys.executable, "-c", broken_save),
              check=False)
    assert r.returncode != 0 and "disk full" in r.stderr
    assert digest(trained / "ckpt.pt") == before
    assert sorted(os.listdir(trained)) == ["ckpt.pt", "log.jsonl", "train.lock"]  # no temporary file left
    assert torch.load(trained / "ckpt.pt", weights_only=True)["iter_num"] == 4


@pytest.mark.parametrize("eval_interval, what", [(4, "loss"), (1, "validation loss")])
def test_a_non_finite_loss_stops_without_saving(data_dir, trained, eval_interval, what):
    # an absurd learning rate: the step at iter 4 blows the weights up, iter 5 sees the non-finite loss
    before = digest(trained / "ckpt.pt")
    r = train(data_dir, trained, "--max_iters=8", "--init_from=resume", "--learning_rate=1e30", "--decay_lr=False",
              "--weight_decay=0.0", f"--eval_interval={eval_interval}", check=False)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1].startswith(what) and "at iter 5" in r.stderr, r.stderr
    assert digest(trained / "ckpt.pt") == before


def run_inprocess(monkeypatch, args):
    """train.py's SystemExit message for args, run in this process (the error comes before any training)."""
    monkeypatch.setattr(sys, "argv", ["train.py", *TINY, *args])
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # train.py sets its own (Ctrl-C): undone after the test
    with pytest.raises(SystemExit) as e:
        runpy.run_path(os.path.join(ROOT, "train.py"), run_name="__main__")
    return str(e.value)


def test_bad_data_dir_and_vocab_are_one_clear_sentence(tmp_path, monkeypatch):
    msg = run_inprocess(monkeypatch, [f"--data_dir={tmp_path / 'nowhere'}", f"--out_dir={tmp_path / 'out'}"])
    assert msg == (f"data_dir '{tmp_path / 'nowhere'}' has no train.bin; prepare it with `python prepare_slimpajama.py "
                   f"--input=FILE --tokenizer=bytes --val_fraction=0.1 --out_dir={tmp_path / 'nowhere'}` or set "
                   f"--data_dir.")  # a vocab_size 256 model: the byte-level command, not the hub's r50k set
    msg = run_inprocess(monkeypatch, [f"--data_dir={tmp_path / 'nowhere'}", "--vocab_size=50304"])
    assert msg == (f"data_dir '{tmp_path / 'nowhere'}' has no train.bin; prepare it with `python prepare_slimpajama.py "
                   f"--out_dir={tmp_path / 'nowhere'}` or set --data_dir.")
    # from another folder (`cd elsewhere && python /repo/train.py ...`) the command names the script where it is:
    # `python prepare_slimpajama.py` was not there (the twelfth pass)
    # and a data_dir with a space in it is quoted, as a shell needs it
    monkeypatch.chdir(tmp_path)
    msg = run_inprocess(monkeypatch, ["--data_dir=no where", "--vocab_size=50304"])
    assert msg == (f"data_dir 'no where' has no train.bin; prepare it with `python "
                   f"{os.path.join(ROOT, 'prepare_slimpajama.py')} --out_dir='no where'` or set --data_dir.")
    make_data(tmp_path / "gpt2", tokenizer="r50k_base", vocab_size=50257)
    msg = run_inprocess(monkeypatch, [f"--data_dir={tmp_path / 'gpt2'}", f"--out_dir={tmp_path / 'out'}"])
    assert msg == f"vocab_size 256 < tokenizer vocab 50257 in {tmp_path / 'gpt2' / 'meta.json'}; set --vocab_size=50304."


def test_a_data_dir_above_prepared_data_names_them(tmp_path, monkeypatch):
    # --data_dir=data for data/shakespeare_bytes was told to prepare data into data/ itself (the 23rd pass)
    make_data(tmp_path / "data" / "shakespeare_bytes")
    (tmp_path / "data" / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    msg = run_inprocess(monkeypatch, ["--data_dir=data", "--out_dir=out"])
    assert msg == ("data_dir 'data' has no train.bin, but data/shakespeare_bytes holds prepared data; set --data_dir "
                   f"to it, or prepare it with `python {os.path.join(ROOT, 'prepare_slimpajama.py')} --input=FILE "
                   "--tokenizer=bytes --val_fraction=0.1 --out_dir=data`."), msg
    assert not (tmp_path / "out").exists()


def test_a_data_dir_above_half_or_many_prepared_folders_names_only_the_prepared(tmp_path, monkeypatch):
    # a folder prepare stopped writing (meta.json alone) was named as prepared data, and three of five were named as
    # if all (the 23rd pass, second round)
    for n in range(5):
        make_data(tmp_path / "many" / f"d{n}")
    (tmp_path / "half" / "a").mkdir(parents=True)
    (tmp_path / "half" / "a" / "meta.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    msg = run_inprocess(monkeypatch, ["--data_dir=half", "--out_dir=out"])
    assert msg.startswith("data_dir 'half' has no train.bin; prepare it with"), msg
    msg = run_inprocess(monkeypatch, ["--data_dir=many", "--out_dir=out"])
    assert "but many/d0, many/d1, many/d2 and 2 more hold prepared data; set --data_dir to one of them" in msg, msg
    assert not (tmp_path / "out").exists()


def test_resume_and_scratch_refuse_the_wrong_out_dir(tmp_path, monkeypatch, data_dir, trained):
    before = digest(trained / "ckpt.pt")
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'empty'}",
                                      "--init_from=resume"])
    assert "\n" not in msg and "does not exist" in msg and "ckpt.pt" in msg
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={trained}"])
    assert "\n" not in msg and "exists" in msg and "--init_from=resume" in msg
    assert digest(trained / "ckpt.pt") == before


def test_global_accumulation_must_divide_among_processes(tmp_path, monkeypatch, data_dir):
    for k, v in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "1")):
        monkeypatch.setenv(k, v)  # torchrun's whole environment: part of it is refused first
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'out'}",
                                      "--gradient_accumulation_steps=3"])
    assert "\n" not in msg and "gradient_accumulation_steps (3)" in msg and "multiple of 2" in msg


def test_parallel_is_ddp_or_fsdp_and_fsdp_needs_torchrun(tmp_path, monkeypatch, data_dir):
    out = [f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'out'}"]
    assert run_inprocess(monkeypatch, [*out, "--parallel=zero"]) == \
        "parallel must be 'ddp' or 'fsdp'; got 'zero'. Set --parallel."
    msg = run_inprocess(monkeypatch, [*out, "--parallel=fsdp"])
    assert "\n" not in msg and "run under torchrun" in msg and "--parallel=ddp" in msg
    assert not (tmp_path / "out").exists()


def test_init_from_a_checkpoint_converts_it_to_the_configs_variant(tmp_path, data_dir):
    src = tmp_path / "qkv"
    train(data_dir, src, "--proj=qkv", "--max_iters=4")
    before = digest(src / "ckpt.pt")
    # the same variant: the identity, so the new run's first evaluation is the source's last
    r = train(data_dir, tmp_path / "same", "--proj=qkv", f"--init_from={src}", "--max_iters=2")
    assert read_log(tmp_path / "same")[1]["val_loss"] == read_log(src)[-1]["val_loss"]
    # nothing tied, nothing fitted: it said "(lstsq); unexplained V variance per layer: -, -" and logged lstsq
    assert f"{src}: converted to proj=qkv, n_kv_head=2: the same variant, weights as they are\n" in r.stdout
    assert read_log(tmp_path / "same")[0]["conversion"]["method"] is None
    r = train(data_dir, tmp_path / "tied", f"--init_from={src / 'ckpt.pt'}", "--convert_method=lstsq", "--max_iters=2")
    assert "converted to proj=qk_v, n_kv_head=2: V tied to K by lstsq fitted on " in r.stdout
    log = read_log(tmp_path / "tied")
    conv = log[0]["conversion"]
    assert conv["method"] == "lstsq" and len(conv["layers"]) == 2 and len(conv["layers"][0]["residual"]) == 2
    assert log[1]["iter"] == 0 and "val_loss" in log[1]
    ckpt = torch.load(tmp_path / "tied" / "ckpt.pt", weights_only=True)
    assert ckpt["model_args"]["proj"] == "qk_v" and ckpt["iter_num"] == 2
    assert digest(src / "ckpt.pt") == before


def test_init_from_refuses_its_source_dir_foreign_files_and_impossible_conversions(tmp_path, monkeypatch, data_dir,
                                                                                 trained):
    before = digest(trained / "ckpt.pt")
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={trained}", f"--init_from={trained}"])
    assert "\n" not in msg and "own --out_dir" in msg
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'a'}",
                                      f"--init_from={tmp_path / 'x.pt'}"])
    assert "\n" not in msg and "not a checkpoint written by train.py" in msg
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'b'}",
                                      f"--init_from={trained}", "--proj=q_kv"])
    assert "\n" not in msg and "proj='qk_v' to 'q_kv'" in msg
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'c'}", "--init_from=gpt3"])
    assert "\n" not in msg and "'gpt2-xl'" in msg
    # pass 40: a run's folder moved or mistyped was "'runA' is none of these", as if a path were no form of it
    monkeypatch.chdir(tmp_path)
    msg = run_inprocess(monkeypatch, [f"--data_dir={data_dir}", "--out_dir=c", "--init_from=runA"])
    assert msg.endswith(f"'runA' is none of these (no file or folder of that name in this folder, {tmp_path}).")
    assert digest(trained / "ckpt.pt") == before and not any((tmp_path / d).exists() for d in "abc")


def test_a_finished_conversion_asked_again_is_done_without_its_source(tmp_path, monkeypatch, data_dir, trained, capsys):
    source = shutil.copytree(trained, tmp_path / "source")
    args = [f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'conv'}", f"--init_from={source}", "--proj=qkv",
            "--max_iters=2"]
    train(data_dir, tmp_path / "conv", *args[2:])
    shutil.rmtree(source)  # was "init_from must be ... or a checkpoint path; 'source' is none of these", exit 1
    assert run_inprocess(monkeypatch, args) == "0"
    assert "holds this run, finished at iteration 2: nothing to do" in capsys.readouterr().out


def test_gpt2_says_which_settings_its_architecture_replaces(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants as hc
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    # stops at the data (none prepared: checked before the hub is asked), after the note
    msg = run_inprocess(monkeypatch, ["--init_from=gpt2", "--block_size=64", f"--out_dir={tmp_path / 'o'}",
                                      f"--data_dir={tmp_path / 'none'}"])
    assert msg.startswith(f"data_dir '{tmp_path / 'none'}' has no train.bin")
    # --block_size=64 and TINY's shape were replaced by GPT-2's without a word
    assert capsys.readouterr().out == ("init_from=gpt2 brings its architecture, which replaces the settings: "
                                       "block_size=1024 (not 64), vocab_size=50257 (not 256), n_layer=12 (not 2), "
                                       "n_head=12 (not 2), n_embd=768 (not 32); only proj, n_kv_head and dropout "
                                       "are chosen here\n")


def test_gpt2_on_another_tokenizers_data_is_refused_before_the_hub_is_asked(tmp_path, monkeypatch, data_dir):
    # offline, "download gpt2 once where there is a network" was the advice; online, the download, then this refusal
    import convert
    monkeypatch.setattr(convert, "load_gpt2", lambda name: pytest.fail(f"the hub was asked for {name}"))
    msg = run_inprocess(monkeypatch, ["--init_from=gpt2", f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'o'}"])
    assert msg == (f"{data_dir / 'meta.json'} records tokenizer 'bytes', and gpt2 was trained on 'r50k_base' ids; "
                   f"point --data_dir at data of that tokenizer, or train from scratch in another --out_dir.")
    assert not (tmp_path / "o").exists()


def test_gpt2_on_data_open_data_refuses_is_refused_before_the_hub_is_asked(tmp_path, monkeypatch, data_dir):
    # meta.json holding a list (hand-edited): the tokenizer check before the hub was "'list' object has no attribute
    # 'get'"; and data not prepared, or a damaged meta.json, was the hub's advice first, open_data's after it
    import convert
    monkeypatch.setattr(convert, "load_gpt2", lambda name: pytest.fail(f"the hub was asked for {name}"))
    data = shutil.copytree(data_dir, tmp_path / "data")
    for text in ('["bytes"]', '{"tokenizer": "byt'):
        (data / "meta.json").write_text(text)
        msg = run_inprocess(monkeypatch, ["--init_from=gpt2", f"--data_dir={data}", f"--out_dir={tmp_path / 'o'}"])
        assert msg.startswith(f"{data / 'meta.json'} is unreadable or not a JSON object")
    msg = run_inprocess(monkeypatch, ["--init_from=gpt2", f"--data_dir={tmp_path / 'no'}",
                                      f"--out_dir={tmp_path / 'o'}"])
    assert msg.startswith(f"data_dir '{tmp_path / 'no'}' has no train.bin; prepare it with")
    # r50k data shorter than GPT-2's block: was "or point --data_dir at the data the checkpoint was trained on"
    make_data(tmp_path / "short", "r50k_base", 50257)
    np.zeros(600, np.uint16).tofile(tmp_path / "short" / "val.bin")
    meta = json.loads((tmp_path / "short" / "meta.json").read_text())
    (tmp_path / "short" / "meta.json").write_text(json.dumps(dict(meta, val_tokens=600)))
    msg = run_inprocess(monkeypatch, ["--init_from=gpt2", f"--data_dir={tmp_path / 'short'}",
                                      f"--out_dir={tmp_path / 'o'}"])
    assert msg == (f"{tmp_path / 'short' / 'val.bin'} holds 600 tokens, fewer than block_size + 1 (1025); prepare "
                   f"more data (gpt2's block_size, which no setting changes).")


def test_gpt2_without_network_is_one_clear_error(tmp_path):
    data_dir = tmp_path / "data"
    make_data(data_dir, tokenizer="r50k_base", vocab_size=50257)  # GPT-2's own tokenizer: byte data is refused first
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    r = subprocess.run([sys.executable, "train.py", *TINY, f"--data_dir={data_dir}", f"--out_dir={tmp_path / 'o'}",
                        "--init_from=gpt2"], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 1 and r.stderr.strip().startswith("gpt2 is not in the Hugging Face cache")
    assert "\n" not in r.stderr.strip() and not (tmp_path / "o").exists()


def test_importing_train_py_trains_nothing(tmp_path):
    # `import train` in a script of one's own ran a whole training with that script's command line, exit 0
    make_data(tmp_path / "data")
    script = tmp_path / "mine.py"
    script.write_text(f"import sys\nsys.path.insert(0, {ROOT!r})\nimport train\n")
    r = subprocess.run([sys.executable, str(script), *TINY, "--max_iters=2", f"--data_dir={tmp_path / 'data'}",
                        f"--out_dir={tmp_path / 'out'}"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == (
        "ImportError: train.py is a script, not a module: importing it would start a training with this process's "
        "command line; run it (python train.py config/cpu_tiny.py ...), or import what it uses from model.py, "
        "checkpoint.py, convert.py and configurator.py.")
    assert sorted(os.listdir(tmp_path)) == ["data", "mine.py"]


def test_python_m_train_py_is_one_line_and_trains_nothing(tmp_path):
    # Python imports train to look for a module py in it: that import trained, then Python's own error followed
    make_data(tmp_path / "data")
    r = subprocess.run([sys.executable, "-m", "train.py", *TINY, "--max_iters=2", f"--data_dir={tmp_path / 'data'}",
                        f"--out_dir={tmp_path / 'out'}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "python -m takes a module name, without .py: run python -m "
                                                         "train ..., or python train.py ...\n")
    assert sorted(os.listdir(tmp_path)) == ["data"]


@pytest.mark.parametrize("args, says", [
    (["--attn=linear"], "a fixed recurrent state of 4,352 bytes (float32) in place of a KV cache (linear attention);"),
    ([], "KV cache 256 bytes/token (float32);")])
def test_the_header_says_what_the_model_caches(tmp_path, data_dir, args, says):
    # linear attention's header said "KV cache 0 bytes/token": its state is fixed, not nothing (2 layers x 2 heads
    # x (16 x 16 + 16) x 4 bytes)
    r = train(data_dir, tmp_path / "out", "--max_iters=0", *args)
    assert f"0.03M parameters, {says} " in r.stdout
    assert "x 2 accumulation x 1 process;" in r.stdout  # was "x 1 processes"


def test_the_header_counts_a_small_models_parameters_exactly(tmp_path, data_dir):
    # a model of a few thousand parameters was "0.00M parameters": every count below 5,000 read as none
    r = train(data_dir, tmp_path / "out", "--max_iters=0", "--n_layer=1", "--n_head=1", "--n_embd=2")
    cfg = GPTConfig(**torch.load(tmp_path / "out" / "ckpt.pt", weights_only=True)["model_args"])
    assert r.stdout.startswith(f"{GPT(cfg).num_params():,} parameters, KV cache ")
