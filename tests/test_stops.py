"""Every command stopped while it works, and every command that writes stopped just as it saves, as a user stops
it: Ctrl-C to the process group while it works, `kill PID` (SIGTERM) as its first file is put in place
(tests/stop_at.py sends them at those points). Each must end with the signal's status and its stop lines only (its
own, and a study's train.py's), no traceback, no temporary file left, and the files it did write whole: the files of
one result all there or none. A new command is found by test_script_settings.find_scripts and must be given a line
here. Hand-written cases for each command's own stops are in its test file and test_train_settings.py."""

import csv
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from test_sample import BYTES_META, make_ckpt
from test_script_settings import SCRIPTS
from test_train import ROOT, make_data

TINY = ["--device=cpu", "--dtype=float32", "--n_layer=1", "--n_head=2", "--n_embd=16", "--block_size=32",
        "--batch_size=4", "--eval_interval=10", "--eval_tokens=512", "--max_iters=30", "--compile=False"]
# each command as a user runs it on the tiny world ({w}: data, run/ckpt.pt, text.txt), writing into {o}; the
# studies run in {c}, a view of the checkout (they train through ./train.py and write out-*/ beside it)
COMMANDS = {
    "train": ["train.py", *TINY, "--data_dir={w}/data", "--out_dir={o}"],
    "sample": ["sample.py", "--out_dir={w}/run", "--num_samples=2", "--max_new_tokens=20"],
    "eval": ["eval.py", "--out_dir={w}/run", "--text={w}/text.txt", "--out={o}"],
    "bench": ["bench.py", "--quick", "--what=cache,memory,prefill", "--out={o}"],
    "prepare_slimpajama": ["prepare_slimpajama.py", "--input={w}/text.txt", "--tokenizer=bytes",
                           "--val_fraction=0.1", "--out_dir={o}"],
    "experiments.analyze": ["experiments.analyze", "--out_dir={w}/run", "--data_dir={w}/data", "--out={o}"],
    "experiments.cpu_lm": ["experiments.cpu_lm"],
    "experiments.retrofit": ["experiments.retrofit", "--quick"],
    "experiments.rope": ["experiments.rope", "--quick"],
    "experiments.scaling": ["experiments.scaling", "--quick", "--data_dir={w}/data", "--root={o}"],
    "experiments.synthetic": ["experiments.synthetic", "--quick", "--workers=2", "--out={o}"],
}
# the files written together, as one result (none of them, or all)
RESULTS = [{"results.json", "results.md"}, {"projections.md", "projections.csv", "projections.png"},
           {"cache_savings.csv", "cache_savings.png"}, {"memory.csv", "memory.md"}]
# the studies' parents write only after every run has trained (minutes): their saves are their train.py's, and
# sample.py writes nothing
SAVES = ["train", "eval", "bench", "prepare_slimpajama", "experiments.analyze"]
CELLS = [(c, "work", "INT") for c in COMMANDS] + [(c, "save", "TERM") for c in SAVES]
if os.environ.get("STOPS_ALL"):  # every signal at every point: three times the cells, for a hostile pass
    CELLS = [(c, p, s) for p, cs in (("work", COMMANDS), ("save", SAVES)) for c in cs for s in ("INT", "TERM", "HUP")]


def test_every_command_has_a_line_here():
    assert set(COMMANDS) == set(SCRIPTS) | {"train"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = tmp_path_factory.mktemp("stops")
    make_data(w / "data")
    make_ckpt(w / "run", BYTES_META, config={"data_dir": str(w / "data")})
    (w / "text.txt").write_text("".join(f"Line {i}: to be, or not to be, that is the question.\n"
                                        for i in range(400)))
    return w


def checkout_view(c, w):
    """A folder where `python -m experiments.X` runs as in the repository: its code linked in, its data/cpu_lm_bytes
    the world's data."""
    c.mkdir()
    for name in os.listdir(ROOT):
        if name.endswith(".py") or name in ("config", "experiments"):
            os.symlink(os.path.join(ROOT, name), c / name)
    (c / "data").mkdir()
    os.symlink(w / "data", c / "data" / "cpu_lm_bytes")


def whole(path):
    """An error if path, a file a stopped command left, is not whole."""
    if path.name.endswith(".tmp"):
        return "a temporary file left behind"
    try:
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".jsonl":
            [json.loads(line) for line in path.read_text().splitlines()]
        elif path.suffix == ".csv":
            rows = list(csv.reader(path.open()))
            assert rows and all(len(r) == len(rows[0]) for r in rows), "ragged rows"
        elif path.suffix == ".pt":
            torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to read it back is the finding
        return f"cannot be read back ({e})"
    return None


@pytest.mark.parametrize("command, point, name", CELLS, ids=[f"{c} {p} {s}" for c, p, s in CELLS])
def test_every_command_stopped_while_it_works_or_saves_stops_cleanly(world, tmp_path, command, point, name):
    o, c = tmp_path / "out", tmp_path / "checkout"
    checkout_view(c, world)
    script, *args = (a.format(w=world, o=o) for a in COMMANDS[command])
    if script.endswith(".py"):
        script = os.path.join(ROOT, script)
    # a session of its own: the Ctrl-C sent to the process group reaches the command and its children, not pytest
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "stop_at.py"), point, name, script, *args],
                       cwd=c, capture_output=True, text=True, timeout=300, start_new_session=True)
    sig = getattr(signal, "SIG" + name)
    # the checkout view's data/cpu_lm_bytes is not Shakespeare: a full study says first where its report goes
    lines = [line for line in r.stderr.splitlines() if line.strip() and "this study's report goes to" not in line]
    assert r.returncode == 128 + sig, r.stderr
    assert lines and all(line.startswith("stopped") for line in lines), r.stderr
    assert ("Ctrl-C" if sig == signal.SIGINT else signal.Signals(sig).name) in lines[-1], r.stderr
    left = {}
    for d, _, names in os.walk(tmp_path):
        for n in names:
            p = os.path.join(d, n)
            if not os.path.islink(p) and (why := whole(type(tmp_path)(p))):
                left[os.path.relpath(p, tmp_path)] = why
        for group in RESULTS:
            if group & set(names) and not group <= set(names):
                left[os.path.relpath(d, tmp_path)] = f"holds {sorted(group & set(names))} of {sorted(group)}"
    assert left == {}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl's PR_SET_PDEATHSIG is Linux's")
def test_a_study_killed_with_sigkill_takes_its_train_py_with_it(tmp_path):
    # a study killed by SIGKILL (kill -9, the OOM killer) has no time to stop its children: its train.py went on
    # training, an orphan, into a run nobody would read
    import time
    make_data(tmp_path / "data")
    out = tmp_path / "out"
    train = [sys.executable, "train.py", "--device=cpu", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=32",
             "--vocab_size=256", "--batch_size=2", "--eval_interval=100000", "--max_iters=100000",
             f"--data_dir={tmp_path / 'data'}", f"--out_dir={out}"]
    study = subprocess.Popen([sys.executable, "-c", f"from configurator import run_child; run_child({train!r})"],
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def children():  # the train.py of this out_dir, found by its command line
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f"--out_dir={out}".encode() in f.read().split(b"\0"):
                        found.append(int(pid))
            except OSError:  # ended meanwhile
                pass
        return found
    deadline = time.time() + 120
    while not (out / "log.jsonl").exists() and time.time() < deadline:  # training, past its imports
        time.sleep(0.2)
    assert children(), "train.py did not start"
    study.kill()
    study.wait()
    deadline = time.time() + 30
    while children() and time.time() < deadline:
        time.sleep(0.2)
    left = children()
    for pid in left:  # not left running by a failing test
        os.kill(pid, signal.SIGKILL)
    assert not left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl's PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("value", ["1", "abc"])
def test_a_command_started_by_hand_with_study_pid_set_runs(value):
    # STUDY_PID set by the user or handed on by another program (a live process, not this one's parent, or no pid):
    # train.py (every command) was taken for an orphaned study run and stopped at once, 'stopped by SIGTERM while
    # starting', with no word why
    code = "import configurator, os, time; configurator.die_with_parent(); time.sleep(0.2); print('ran')"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, STUDY_PID=value))
    assert r.returncode == 0 and r.stdout == "ran\n", (r.returncode, r.stderr)
