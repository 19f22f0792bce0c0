"""Bad input across the scripts: each case (the first of each script as a subprocess, the rest in this process)
must exit non-zero with one line of error on stderr (argparse's usage block aside) that names the setting or file,
without a traceback, and without changing any checkpoint, bin or tracked asset."""

import fcntl
import hashlib
import json
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import warnings

import pytest
import torch

from test_train import ROOT, TINY, make_data, train

PY = sys.executable


def tree_digest(*dirs):
    """sha256 of every file under dirs: the data that no failed run may touch."""
    h = hashlib.sha256()
    for d in dirs:
        for base, _, names in sorted(os.walk(d)):
            for name in sorted(names):
                path = os.path.join(base, name)
                if name == "train.lock":
                    continue
                with open(path, "rb") as f:
                    h.update(path.encode() + f.read())
    return h.hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Prepared data, one tiny trained checkpoint (2 iterations), and broken copies of both, shared by every case."""
    w = tmp_path_factory.mktemp("bad")
    make_data(w / "data")
    train(w / "data", w / "run", "--max_iters=2")
    for name, content in (("empty", b""), ("truncated", (w / "run" / "ckpt.pt").read_bytes()[:1000])):
        (w / name).mkdir()
        (w / name / "ckpt.pt").write_bytes(content)
    (w / "foreign").mkdir()
    torch.save({"weights": torch.zeros(2)}, w / "foreign" / "ckpt.pt")
    shutil.copytree(w / "data", w / "badmeta")
    (w / "badmeta" / "meta.json").write_text("{not json")
    shutil.copytree(w / "data", w / "novocab")
    (w / "novocab" / "meta.json").write_text(json.dumps({"tokenizer": "bytes", "eot_token": 0}))
    (w / "afile").write_text("a file, not a folder")
    (w / "text.txt").write_text("To be, or not to be, that is the question.\n" * 50)
    os.symlink(os.path.join(ROOT, "assets"), w / "assets_link")
    make_data(w / "r50k", tokenizer="r50k_base", vocab_size=50257)
    (w / "halfprep").mkdir()
    (w / "halfprep" / "progress.json").write_text('{"settings": ')
    return w


T = ["train.py", *TINY]
CASES = [
    # train.py: numbers out of range, read once where they are set
    (T + ["--eval_interval=0"], "eval_interval"),
    (T + ["--log_interval=0"], "log_interval"),
    (T + ["--batch_size=0"], "batch_size"),
    (T + ["--block_size=0"], "block_size"),
    (T + ["--gradient_accumulation_steps=0"], "gradient_accumulation_steps"),
    (T + ["--max_iters=-1"], "max_iters"),
    (T + ["--learning_rate=-1.0"], "learning_rate"),
    (T + ["--learning_rate=nan"], "learning_rate"),
    (T + ["--warmup_iters=-5"], "warmup_iters"),
    (T + ["--eval_tokens=0"], "eval_tokens"),
    (T + ["--beta2=1.0"], "beta2"),
    (T + ["--dropout=1.5"], "dropout"),
    (T + ["--grad_clip=-1.0"], "grad_clip"),
    (T + ["--ddp_timeout=0"], "ddp_timeout"),
    (T + ["--total_tokens=10"], "total_tokens"),
    (T + ["--vocab_size=100"], "--vocab_size=256"),
    (T + ["--n_kv_head=3"], "n_kv_head"),
    (T + ["--proj=qv"], "proj"),
    (T + ["--n_layers=2"], "n_layers"),
    (T + ["--device=tpu"], "device"),
    (T + ["--device=cuda"], "--device=cpu"),
    (T + ["--dtype=float16"], "dtype"),
    # train.py: files and runs
    (T + ["--data_dir={w}/missing"], "data_dir"),
    (T + ["--data_dir={w}/badmeta"], "meta.json"),
    (T + ["--data_dir={w}/novocab"], "vocab_size"),
    (T + ["--out_dir={w}/afile"], "afile"),
    (T + ["--out_dir={w}/run"], "--init_from=resume"),
    (T + ["--out_dir={w}/run", "--init_from=resume", "--max_iters=1"], "nothing to train"),
    (T + ["--out_dir={w}/run", "--init_from=resume", "--max_iters=4", "--n_layer=3"], "n_layer=3"),
    (T + ["--out_dir={w}/empty", "--init_from=resume"], "empty/ckpt.pt"),
    (T + ["--out_dir={w}/truncated", "--init_from=resume"], "truncated/ckpt.pt"),
    (T + ["--out_dir={w}/foreign", "--init_from=resume"], "foreign/ckpt.pt"),
    (T + ["--init_from={w}/nowhere"], "init_from"),
    (T + ["--init_from={w}/foreign"], "init_from"),
    (T + ["--out_dir={w}/assets_link"], "is in assets/"),  # a link: trained into the repository's assets/
    (T + ["--init_from={w}/run", "--data_dir={w}/r50k"], "not the data the run was trained on"),  # not vocab_size
    # sample.py
    (["sample.py", "--out_dir={w}/run", "--num_samples=0"], "--num_samples"),
    (["sample.py", "--out_dir={w}/run", "--max_new_tokens=-5"], "--max_new_tokens"),
    (["sample.py", "--out_dir={w}/run", "--temperature=nan"], "--temperature"),
    (["sample.py", "--out_dir={w}/run", "--temperature=-1"], "--temperature"),
    (["sample.py", "--out_dir={w}/run", "--top_k=0"], "--top_k"),
    (["sample.py", "--out_dir={w}/run", "--device=tpu"], "--device"),
    (["sample.py", "--out_dir={w}/run", "--device=cuda"], "--device=cpu"),
    (["sample.py", "--out_dir={w}/missing"], "missing/ckpt.pt"),
    (["sample.py", "--out_dir={w}/truncated"], "truncated/ckpt.pt"),
    (["sample.py", "--out_dir={w}/run", "--start=FILE:{w}/nowhere.txt"], "--start"),
    (["sample.py", "--out_dir={w}/run", "--max_new_tokens=100"], "--max_new_tokens"),
    (["eval.py", "--out_dir={w}/run", "--text={w}/text.txt", "--out={w}/assets_link"], "is in assets/"),
    # prepare_slimpajama.py
    (["prepare_slimpajama.py", "--input={w}/text.txt", "--tokenizer=bytes", "--out_dir=assets/x"], "is in assets/"),
    (["prepare_slimpajama.py", "--input={w}/nowhere.txt", "--tokenizer=bytes", "--out_dir={w}/p1"], "--input"),
    (["prepare_slimpajama.py", "--input={w}/text.txt", "--tokenizer=bytes", "--commit_seconds=nan",
      "--out_dir={w}/p2"], "--commit_seconds"),
    (["prepare_slimpajama.py", "--input={w}/text.txt", "--tokenizer=bytes", "--out_dir={w}/afile"], "afile"),
    (["prepare_slimpajama.py", "--input={w}/text.txt", "--tokenizer=bytes", "--out_dir={w}/halfprep"],
     "progress.json"),
    (["prepare_slimpajama.py", "--input={w}/text.txt", "--val_fraction=1.5", "--out_dir={w}/p3"], "--val_fraction"),
    (["prepare_slimpajama.py", "--input={w}/text.txt", "--threads=0", "--out_dir={w}/p4"], "--threads"),
    # synthetic.py and analyze.py
    (["experiments.synthetic", "--quick", "--out=assets"], "--out=assets"),
    (["experiments.synthetic", "--quick", "--out={w}/afile"], "afile"),
    (["experiments.synthetic", "--steps_scale=0", "--out={w}/s1"], "--steps_scale"),
    (["experiments.synthetic", "--quick", "--out={w}/s2", "--cache=assets/runs"], "--cache=assets/runs is in assets/"),
    (["experiments.analyze", "--out_dir={w}/missing"], "missing/ckpt.pt"),
    (["experiments.analyze", "--out_dir={w}/truncated"], "truncated/ckpt.pt"),
    (["experiments.analyze", "--out_dir={w}/run", "--tokens=0"], "--tokens"),
    (["bench.py", "--quick", "--what=cache", "--out={w}/afile"], "afile"),
    (["bench.py", "--quick", "--what=cache", "--device=cuda", "--out={w}/b1"], "--device=cpu"),
    # empty, --out is its default (out-bench-quick here), as eval's is; spaces are no folder's name
    (["bench.py", "--quick", "--what=cache", "--out= "], "--out is only spaces (' '); give it a value, or leave it "
                                                           "out"),  # was " is not ..."  # was " is not ..."
]


def test_the_table_is_large_enough():
    assert len(CASES) >= 40


# the first case of each script runs as a subprocess, to prove its command line (exit status, what reaches stderr);
# the rest run in this process, which skips torch's import per case and is the same code (about a minute of CI)
IN_PROCESS = [any(a[0] == argv[0] for a, _ in CASES[:i]) for i, (argv, _) in enumerate(CASES)]


def run_here(argv, capfd):
    """`python ARGV` from the repository root (ARGV a script and its arguments, or -m and a module), run in this
    process, as a CompletedProcess. A SystemExit's message goes to stderr with status 1, as Python's own exit does;
    any other exception propagates (it would have been a traceback)."""
    saved_env, saved_argv, hook = dict(os.environ), sys.argv, sys.excepthook
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE)}
    cwd, threads = os.getcwd(), torch.get_num_threads()
    os.chdir(ROOT)
    capfd.readouterr()
    try:
        if argv[0] == "-m":
            sys.argv = list(argv[1:])  # run_module puts the module's file in sys.argv[0], as python -m does
            with warnings.catch_warnings():  # "found in sys.modules": this test's imports, not the module's
                warnings.simplefilter("ignore", RuntimeWarning)
                runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(argv)
            runpy.run_path(os.path.join(ROOT, argv[0]), run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code
    finally:
        os.chdir(cwd)
        sys.argv, sys.excepthook = saved_argv, hook
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        os.environ.clear()
        os.environ.update(saved_env)
        torch.set_num_threads(threads)
    if isinstance(code, str):
        print(code, file=sys.stderr)
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(argv, 1 if isinstance(code, str) else code or 0, out, err)


@pytest.mark.parametrize("argv, names, here", [(a, n, h) for (a, n), h in zip(CASES, IN_PROCESS)],
                         ids=[" ".join(a[:1] + a[len(T) if a[0] == "train.py" else 1:]) for a, _ in CASES])
def test_bad_input_is_one_clear_line(world, argv, names, here, capfd):
    w = world
    argv = [a.format(w=w) for a in argv]
    if argv[0] == "train.py" and not any(a.startswith("--data_dir") for a in argv):
        argv.append(f"--data_dir={w / 'data'}")
    if argv[0] == "train.py" and not any(a.startswith("--out_dir") for a in argv):
        argv.append(f"--out_dir={w / 'new'}")
    guarded = (w / "run", w / "data", os.path.join(ROOT, "assets"))
    before = tree_digest(*guarded)
    if argv[0].startswith("experiments."):  # the studies run as modules from the repository root
        argv.insert(0, "-m")
    if here:
        r = run_here(argv, capfd)
    else:
        r = subprocess.run([PY, *argv], cwd=ROOT, capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, OMP_NUM_THREADS="1"))
    returncode, stderr = r.returncode, r.stderr
    assert returncode != 0, stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith(("usage:", " "))]
    assert len(lines) == 1, stderr
    assert names.format(w=w) in lines[0], stderr
    assert tree_digest(*guarded) == before
    assert not (w / "new").exists()  # a refused run leaves no out_dir behind


def test_a_second_run_in_a_locked_out_dir_is_refused(world):
    w = world
    out = w / "locked"
    out.mkdir()
    with open(out / "train.lock", "w") as f:  # what a running train.py holds
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        f.write("12345\n")
        f.flush()
        r = subprocess.run([PY, *T, f"--data_dir={w / 'data'}", f"--out_dir={out}", "--max_iters=1"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
        assert r.returncode != 0 and "Traceback" not in r.stderr
        assert "in use by another train.py run (pid 12345)" in r.stderr
        assert sorted(os.listdir(out)) == ["train.lock"]
        # with the running run's checkpoint there: not "stopped at iteration 2; continue it with --init_from=resume"
        shutil.copy(w / "run" / "ckpt.pt", out)
        for extra in ("--max_iters=4", "--max_iters=2"):
            r = subprocess.run([PY, *T, f"--data_dir={w / 'data'}", f"--out_dir={out}", extra], cwd=ROOT,
                               capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
            assert r.returncode == 1 and r.stderr == (f"out_dir '{out}' is in use by another train.py run (pid 12345); "
                                                      f"wait for it to end or choose another --out_dir.\n"), r.stderr


def test_a_stalled_ddp_rank_stops_the_run_with_a_message(world, tmp_path):
    # rank 1 is frozen mid-run (SIGSTOP): rank 0 must give up after ddp_timeout and say why, not hang for gloo's
    # default 30 minutes
    import threading
    import time
    w, out = world, tmp_path / "ddp"
    cmd = [PY, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *T, f"--data_dir={w / 'data'}",
           f"--out_dir={out}", "--max_iters=1000000", "--eval_interval=1000000", "--log_interval=1",
           "--ddp_timeout=5"]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"), start_new_session=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(p.stdout), daemon=True)
    reader.start()
    workers = []
    try:
        deadline = time.time() + 120
        while not (out / "log.jsonl").exists() or (out / "log.jsonl").stat().st_size < 200:
            assert time.time() < deadline and p.poll() is None, "the run did not start"
            time.sleep(0.5)
        workers = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
        os.kill(int(max(workers, key=int)), signal.SIGSTOP)  # the later-started worker: rank 1
        # once rank 0 has said where the run stands, rank 1 goes on, so that torchrun's SIGTERM ends it now (a
        # stopped process takes it only when continued: torchrun waited 30 s more for it)
        deadline = time.time() + 90
        while not any("run the same command to start again" in line for line in lines) and p.poll() is None:
            assert time.time() < deadline, "rank 0 did not give up"
            time.sleep(0.2)
        os.kill(int(max(workers, key=int)), signal.SIGCONT)
        p.wait(timeout=90)
        reader.join(timeout=10)
        output = "".join(lines)
    finally:
        for pid in workers:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(int(pid), sig)
                except ProcessLookupError:
                    pass
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode != 0
    assert re.search(r"rank 0: a collective waited more than ddp_timeout=5s: another process stalled; see its log, "
                     r"or raise --ddp_timeout if it is only slow", output), output[-3000:]
    # rank 0 says where the run stands, and one that saved nothing leaves no out_dir: its lock and log stayed
    assert "no checkpoint was saved yet: run the same command to start again." in output, output[-3000:]
    assert not out.exists(), sorted(p.name for p in out.iterdir())


def test_a_refusal_of_rank_0_alone_is_not_called_a_timeout_by_the_others(world, tmp_path):
    # an out_dir rank 0 cannot make is refused by rank 0 only (it alone writes there): rank 1, waiting in the first
    # collective, was told to "raise --ddp_timeout if it is only slow", a wait that no timeout was part of
    w = world
    cmd = [PY, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *T, f"--data_dir={w / 'data'}",
           "--out_dir=/proc/self/not-here", "--max_iters=2"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode != 0
    assert "out_dir '/proc/self/not-here' is not a writable directory" in r.stderr, r.stderr[-3000:]
    assert "ddp_timeout" not in r.stderr, r.stderr[-3000:]


def test_a_compile_that_cannot_work_under_torchrun_is_said_whichever_process_ends_first(world, tmp_path):
    # each process meets the missing compiler; rank 1 exited without a word and torchrun then ended rank 0 before
    # its line: torchrun's report alone, with no cause. Rank 0 is held back here by what it alone does before the
    # first step (a resume rewrites log.jsonl's kept lines: a long log), so rank 1 is the first to meet it
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(world / "run" / "ckpt.pt", out)
    (out / "log.jsonl").write_text('{"iter": 0, "loss": 5.0}\n' * 400_000)
    cmd = [PY, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *T, f"--data_dir={world / 'data'}",
           f"--out_dir={out}", "--max_iters=3", "--init_from=resume", "--compile=True"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1", CXX=str(tmp_path / "no-such-g++")))
    assert r.returncode != 0
    assert re.search(r"^rank 1: --compile=True: torch\.compile failed \(.*install one, or pass --compile=False\.$",
                     r.stderr, re.M), r.stderr[-3000:]


def test_prepare_refuses_an_input_edited_to_the_same_size(tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("abcdefgh\n" * 400)
    cmd = [PY, "prepare_slimpajama.py", f"--input={text}", "--tokenizer=bytes", f"--out_dir={tmp_path / 'd'}"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    before = tree_digest(tmp_path / "d")
    stat = text.stat()
    text.write_text("abcdefgX\n" * 400)  # same size, new content, a later modification time
    os.utime(text, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "the input files changed" in r.stderr and "delete" in r.stderr
    assert tree_digest(tmp_path / "d") == before


@pytest.mark.parametrize("script", ["train.py", "sample.py", "eval.py", "bench.py", "prepare_slimpajama.py",
                                    "convert.py"])  # a library, whose one line says so (exit 1)
def test_every_script_runs_with_pythonsafepath(script, tmp_path):
    # PYTHONSAFEPATH=1 (or python -P, Python 3.11) leaves the script's folder off sys.path: each script's first
    # import of configurator was a ModuleNotFoundError traceback
    env = dict(os.environ, PYTHONSAFEPATH="1")
    r = subprocess.run([sys.executable, os.path.join(ROOT, script), "--help"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == (script == "convert.py") and "Traceback" not in r.stderr, r.stderr[-2000:]
