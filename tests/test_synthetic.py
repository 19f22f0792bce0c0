import argparse
import csv
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from checkpoint import ASSETS
from configurator import in_range
from experiments import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("task, x, y", [
    ("reverse", [[1, 2, 3], [4, 5, 6]], [[3, 2, 1], [6, 5, 4]]),
    ("sort", [[3, 1, 2, 1], [9, 0, 9, 5]], [[1, 1, 2, 3], [0, 5, 9, 9]]),
    ("sub", [[0, 3, 9], [4, 5, 6]], [[9, 6, 0], [5, 4, 3]]),
    ("swap", [[1, 2, 3, 4], [5, 6, 7, 8]], [[3, 4, 1, 2], [7, 8, 5, 6]]),
    ("swap", [[5, 6, 7, 8, 9, 0]], [[8, 9, 0, 5, 6, 7]]),
    ("copy", [[4, 0, 4], [7, 7, 1]], [[4, 0, 4], [7, 7, 1]]),
    ("shift1", [[1, 2, 3, 4, 5], [9, 8, 7, 6, 5]], [[2, 3, 4, 5, 1], [8, 7, 6, 5, 9]]),  # output i = x[(i + 1) mod n]
    ("shift3", [[1, 2, 3, 4, 5], [0, 1, 2, 3, 4]], [[4, 5, 1, 2, 3], [3, 4, 0, 1, 2]]),  # output i = x[(i + 3) mod n]
])
def test_targets(task, x, y):
    assert synthetic.TASKS[task](torch.tensor(x)).tolist() == y


def read_outputs(out):
    with open(os.path.join(out, "synthetic.md")) as f:
        md = f.read()
    with open(os.path.join(out, "synthetic.csv")) as f:
        rows = list(csv.DictReader(f))
    return md, rows


QUICK = ["--quick", "--models=qkv,q_k_v+,q_k_v+concat", "--seeds=0,1"]


def test_quick_run_writes_both_arms_and_is_reproducible(tmp_path):
    # the CLI with its default two worker processes, then in-process with one: identical results
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    subprocess.run([sys.executable, "-m", "experiments.synthetic", *QUICK, f"--out={a}", f"--cache={a}/runs"],
                   cwd=ROOT, check=True, capture_output=True)
    synthetic.main([*QUICK, "--workers=1", f"--out={b}", f"--cache={b}/runs"])
    md, rows = read_outputs(a)
    assert os.path.getsize(os.path.join(a, "synthetic.png")) > 0
    assert md.count("| case | qkv | q_k_v+ | q_k_v+concat |") == 2  # one table per arm
    cases = [(arm, t, n, layers) for arm in synthetic.ARMS for t, n, _, layers in synthetic.ARMS[arm]]
    assert len(rows) == len(cases) * 3 * 2 * 5  # cases x models x seeds x eval points
    assert {(r["task"], r["layers"]) for r in rows if r["task"] == "shift1"} == {("shift1", "1"), ("shift1", "2")}
    # each cell is mean +/- std over seeds of the final step's accuracy in the CSV, in the row of its case
    lines = md.splitlines()
    for arm, t, n, layers in cases:
        key = (arm, t, str(n), str(layers))
        last = max(int(r["step"]) for r in rows if (r["arm"], r["task"], r["length"], r["layers"]) == key)
        line = next(x for x in lines if x.startswith(f"| {synthetic.case_name(t, n, last, layers)} |"))
        for m in ("qkv", "q_k_v+", "q_k_v+concat"):
            accs = [float(r["acc"]) for r in rows if (r["arm"], r["task"], r["length"], r["layers"], r["model"],
                                                      r["step"]) == (*key, m, str(last))]
            mu, sd = synthetic.mean_std(accs)
            assert len(accs) == 2 and f"{100 * mu:.1f} +/- {100 * sd:.1f}" in line
    assert read_outputs(b)[1] == rows
    # killed midway: the runs already finished are read back, the others trained again, and nothing changes
    files = sorted(os.listdir(os.path.join(b, "runs")))
    assert len(files) == len(cases) * 3 * 2
    os.remove(os.path.join(b, "runs", files[0]))
    synthetic.main([*QUICK, "--workers=1", f"--out={b}", f"--cache={b}/runs"])
    assert read_outputs(b)[1] == rows
    assert f"(1 of {len(files)} runs trained in this call" in read_outputs(b)[0]


def test_product_xplus_is_the_only_way_to_reverse_without_positions():
    # the mechanism end to end, small: no position embedding, REVERSE of 8 digits. Measured: qkv and concat stay
    # at a position-blind guess (about 25%), the product basis gets close to 100% in these 150 steps.
    args = synthetic.get_parser().parse_args(["--embd=32", "--heads=1", "--eval_size=200"])
    acc = {m: synthetic.run_one(("none", "reverse", 8, 150, 2, m, 0, args))[-1][1]
           for m in ("qkv", "q_k_v+concat", "q_k_v+")}
    assert acc["qkv"] < 0.4 and acc["q_k_v+concat"] < 0.4
    assert acc["q_k_v+"] > 0.9


@pytest.mark.parametrize("argv, message", [
    (["--arms=none,rope"], "unknown arm 'rope'"),
    (["--models=qkv,kqv"], "unknown model 'kqv'"),
    (["--heads=3", "--embd=32"], "--embd 32 is not divisible by --heads 3"),
    (["--pos_conv=6"], "--pos_conv must be a positive multiple of 4"),
    (["--steps_scale=0"], "--steps_scale: must be a finite number in (0, 1000]"),
    (["--steps_scale=inf"], "--steps_scale: must be a finite number in (0, 1000]"),
    (["--steps_scale=1e308"], "--steps_scale: must be a finite number in (0, 1000]"),  # an OverflowError traceback
    (["--lr=-1"], "--lr: must be a finite number > 0"),
    (["--workers=0"], "--workers: must be an integer >= 1"),
    (["--seeds=0,0"], "--seeds: 0 is listed twice; give each once."),  # was run twice: a std of 0 over 'seeds 0, 0'
    (["--models=qkv,qkv"], "--models: qkv is listed twice; give each once."),
])
def test_bad_arguments(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        synthetic.main(argv + ["--quick", f"--out={out}", f"--cache={tmp_path}/runs"])
    assert e.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_more_workers_than_cores_are_refused(tmp_path, capsys):
    # each worker is a process with torch loaded, started one per waiting run: --workers=1000 started 336 of them
    cores = max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    with pytest.raises(SystemExit) as e:
        synthetic.main([f"--workers={cores + 1}", "--quick", f"--out={tmp_path}/out", f"--cache={tmp_path}/runs"])
    assert e.value.code == 2
    assert f"--workers {cores + 1} is more than the " in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_the_workers_refusal_names_the_cores_there_are(monkeypatch, capsys):
    # a process allowed one core (taskset -c 0) was told of "this machine's 2 cores", the floor of the limit
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    parser = synthetic.get_parser()
    with pytest.raises(SystemExit):
        synthetic.check_args(parser, parser.parse_args(["--workers=3"]))
    err = capsys.readouterr().err
    assert "--workers 3 is more than the 1 core this process may use" in err and "at most 2 (the default)." in err


def numeric_settings():
    return [a for a in synthetic.get_parser()._actions if hasattr(a.type, "rule")]


def test_every_numeric_setting_is_declared():
    # every option that takes numbers carries its rule (--seeds: each of its comma-separated values)
    declared = {a.dest for a in numeric_settings()}
    assert declared == {"seeds", "heads", "embd", "pos_conv", "steps_scale", "batch", "lr", "eval_size", "workers"}


@pytest.mark.parametrize("action", numeric_settings(), ids=lambda a: a.dest)
def test_out_of_range_values_are_refused(capsys, action):
    # the bad values come from the declaration itself: a new setting is covered the day it is declared
    bad = [v for v in (0, -1, float("nan"), float("inf")) if not in_range(v, action.type.rule)] + ["abc"]
    for value in bad:
        with pytest.raises(SystemExit) as e:
            synthetic.get_parser().parse_args([f"--{action.dest}={value}"])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert f"argument --{action.dest}: must be " in err and "Traceback" not in err


def assets_digest():
    return sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in os.scandir(ASSETS))


@pytest.mark.parametrize("how", ["absolute", "symlink", "dotdot", "sub"])
def test_only_the_full_default_run_may_write_assets(tmp_path, capsys, how):
    # compared by real path: the tracked folder reached any other way is still the tracked folder
    out = {"absolute": os.path.realpath(ASSETS), "dotdot": os.path.join(ASSETS, "..", "assets"),
           "sub": os.path.join(ASSETS, "sub")}.get(how)
    if how == "symlink":
        out = str(tmp_path / "link")
        os.symlink(ASSETS, out)
    before = assets_digest()
    with pytest.raises(SystemExit) as e:
        synthetic.main(["--quick", f"--out={out}"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    where = "is in" if how == "sub" else "is"  # a folder inside it was said to be assets/ itself
    assert f"--out={out} {where} assets/, reserved for the full default run, and this run changes" in err
    assert err.rstrip().endswith("--quick; write it elsewhere (default out-synthetic/).")
    assert assets_digest() == before


def test_a_folder_named_assets_elsewhere_is_not_the_tracked_one(tmp_path, monkeypatch):
    # and the guard does not refuse what is not the tracked folder: the check is the real path, not the name
    monkeypatch.chdir(tmp_path)
    args = synthetic.get_parser().parse_args(["--quick", "--out=assets"])
    synthetic.check_args(synthetic.get_parser(), args)
    assert (tmp_path / "assets").is_dir()


def test_the_full_default_run_may_write_assets_with_any_worker_count(tmp_path):
    # the worker count and the cache folder change no number (the quick test above), so a loaded machine may run
    # it with one worker, and a killed run resumes from its cache
    before = assets_digest()
    for argv in ([f"--out={ASSETS}", f"--cache={tmp_path}"], [f"--out={ASSETS}", "--workers=1", f"--cache={tmp_path}"]):
        synthetic.check_args(synthetic.get_parser(), synthetic.get_parser().parse_args(argv))
    assert assets_digest() == before


def test_unwritable_out_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SystemExit):
        synthetic.main(["--quick", f"--out={blocker}", f"--cache={tmp_path}/runs"])
    assert "is not a writable directory" in capsys.readouterr().err
    assert blocker.read_text() == "not a directory"


def test_a_damaged_cache_file_is_run_again(tmp_path, monkeypatch):
    # written whole by atomic_write, so damage comes from outside; it was a JSONDecodeError from a worker process
    args = argparse.Namespace(heads=2, embd=32, pos_conv=4, batch=8, lr=1e-3, eval_size=8, periodic=False,
                              cache=str(tmp_path))
    job = ("none", "copy", 8, 5, 1, "qkv", 0, args)
    with open(synthetic.cache_file(job), "w") as f:
        f.write('[[0, 0.5], [5, ')
    monkeypatch.setattr(synthetic, "run_one", lambda job: [(0, 0.25), (5, 1.0)])
    assert synthetic.cached_run(job) == [(0, 0.25), (5, 1.0)]
    with open(synthetic.cache_file(job)) as f:
        assert json.load(f) == [[0, 0.25], [5, 1.0]]


@pytest.mark.parametrize("text", ["[]", '[[1, "x"]]', "[[1, 2.0], [2, 0.5], [3, 0.5], [4, 0.5], [5, 0.5]]",
                                  "[[1, 0.5]]", "[[], [2, 0.5], [3, 0.5], [4, 0.5], [5, 0.5]]", '{"a": 1}', "7"])
def test_a_cache_file_that_is_no_curve_is_run_again(tmp_path, monkeypatch, text):
    # valid JSON edited by hand: [] was an IndexError, [[1, "x"]] a format error in the table, and an accuracy of 2.0
    # reached the table as 200% with exit 0
    args = argparse.Namespace(heads=2, embd=32, pos_conv=4, batch=8, lr=1e-3, eval_size=8, periodic=False,
                              cache=str(tmp_path))
    job = ("none", "copy", 8, 5, 1, "qkv", 0, args)
    with open(synthetic.cache_file(job), "w") as f:
        f.write(text)
    fresh = [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4), (5, 0.5)]
    monkeypatch.setattr(synthetic, "run_one", lambda job: fresh)
    assert synthetic.cached_run(job) == fresh
    assert synthetic.cached_run(job) == fresh  # and the rewritten file reads back


def test_a_diverged_run_stops_with_one_sentence(tmp_path, capsys):
    # an lr of 1e9 made the loss NaN, and the tables reported argmax over NaN as accuracy, exit 0
    with pytest.raises(SystemExit) as e:
        synthetic.main(["--quick", "--arms=none", "--models=qkv", "--workers=1", "--lr=1e9", f"--out={tmp_path}/o",
                        f"--cache={tmp_path}/runs"])
    assert "the run diverged; lower --lr (now 1000000000.0)" in str(e.value)
    assert os.listdir(tmp_path) == []  # and --out and --cache, made for it, were left empty (the seventh pass)


def test_a_run_whose_curve_cannot_be_written_stops_the_study_with_workers(tmp_path):
    # a full disk (or a folder where the curve goes) raised SystemExit in a pool worker, which died without an answer:
    # the study printed the sentence once per run and waited forever (the default is 2 workers)
    args = argparse.Namespace(heads=1, embd=16, pos_conv=16, batch=64, lr=3e-3, eval_size=64, periodic=False,
                              cache=str(tmp_path / "runs"))
    os.makedirs(synthetic.cache_file(("none", "reverse", 16, 20, 2, "qkv", 0, args)))
    r = subprocess.run([sys.executable, "-m", "experiments.synthetic", "--quick", "--arms=none", "--models=qkv",
                        "--workers=2", f"--out={tmp_path}/o", f"--cache={tmp_path}/runs"], cwd=ROOT,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    # (the folder is now refused before the run trains, as the worker reads the cache: still a worker's SystemExit)
    assert r.stderr.strip().splitlines()[-1].endswith("is a folder, where this study caches the curve of a run; move "
                                                      "it out of the way and run again.")
    assert not os.path.exists(tmp_path / "o")


def test_a_cached_curve_behind_a_dangling_link_stops_the_study_before_it_runs(tmp_path):
    # read as no curve, the run was made again and its curve written over the link, exit 0 (the sixteenth pass)
    args = argparse.Namespace(heads=1, embd=16, pos_conv=16, batch=64, lr=3e-3, eval_size=64, periodic=False,
                              cache=str(tmp_path / "runs"))
    path = synthetic.cache_file(("none", "reverse", 16, 20, 2, "qkv", 0, args))
    os.makedirs(tmp_path / "runs")
    os.symlink("/mnt/gone/curve.json", path)
    with pytest.raises(SystemExit) as e:
        synthetic.main(["--quick", "--arms=none", "--models=qkv", "--workers=1", f"--out={tmp_path}/o",
                        f"--cache={tmp_path}/runs"])
    assert str(e.value) == (f"{path} is a link to '/mnt/gone/curve.json', which does not exist (a disk not mounted, "
                            f"a folder moved?); restore what it points to, or remove the link.")
    assert os.listdir(tmp_path / "runs") == [os.path.basename(path)] and os.path.islink(path)
    assert not os.path.exists(tmp_path / "o")


def test_workers_start_with_ctrl_c_blocked():
    # a Ctrl-C in the second a spawned worker takes to start, before its initializer ignores it, was a traceback
    # from multiprocessing's spawn_main under the parent's stop line (found by tests/test_stops.py)
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context
    pool = ProcessPoolExecutor(1, get_context("spawn"))
    try:
        with synthetic.ctrl_c_blocked(pool):
            blocked = pool.submit(signal.pthread_sigmask, signal.SIG_BLOCK, [])
        assert signal.SIGINT in blocked.result(timeout=60)
        assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # this process: as it was
    finally:
        pool.shutdown()


def test_a_killed_worker_stops_the_study_with_one_sentence(tmp_path, monkeypatch):
    # multiprocessing's Pool replaced a worker killed by the system (out of memory) or by hand without a word, and the
    # study waited for its run forever (tried by hand with kill -9; here the executor's answer to it)
    from concurrent.futures.process import BrokenProcessPool

    class Killed:
        def __init__(self, *args):
            pass

        def map(self, fn, jobs):
            raise BrokenProcessPool("A process in the process pool was terminated abruptly")

        def shutdown(self, **kwargs):
            pass
    monkeypatch.setattr(synthetic, "ProcessPoolExecutor", Killed)
    with pytest.raises(SystemExit, match="^a worker process of the study was killed .* run the same command to go on"):
        synthetic.main(["--quick", "--arms=none", "--models=qkv", "--workers=2", f"--out={tmp_path}/o",
                        f"--cache={tmp_path}/runs"])
    assert os.listdir(tmp_path) == []


def test_periodic_gives_the_plus_models_the_list_length_as_period(monkeypatch):
    seen, real = [], synthetic.GPT
    monkeypatch.setattr(synthetic, "GPT", lambda cfg: seen.append(cfg) or real(cfg))
    args = synthetic.get_parser().parse_args(["--periodic", "--embd=16", "--heads=1", "--eval_size=8", "--batch=4"])
    for model in ("q_kv", "q_kv+", "q_k_v+"):
        synthetic.run_one(("learned", "shift1", 12, 5, 1, model, 0, args))
    assert [c.pos_conv_period for c in seen] == [0, 12, 12]
    job = ("learned", "shift1", 12, 5, 1, "q_kv+", 0, args)  # its runs are cached apart from the others
    plain = argparse.Namespace(**{**vars(args), "periodic": False})
    assert synthetic.cache_file(job) != synthetic.cache_file(job[:-1] + (plain,))


def test_a_second_study_into_the_same_out_waits_its_turn(tmp_path, monkeypatch):
    # two at once wrote one folder: the tables of one beside the figure of the other
    import checkpoint
    monkeypatch.setattr(synthetic, "study", lambda *a: pytest.fail("ran beside another study"))
    out = tmp_path / "o"
    out.mkdir()
    with checkpoint.hold_lock(str(out), "held by the test, as a running study holds it"):
        with pytest.raises(SystemExit) as e:
            synthetic.main(["--quick", f"--out={out}", f"--cache={tmp_path}/runs"])
    assert str(e.value) == f"--out {out} is being written by another `python -m experiments.synthetic`; wait for it " \
                           f"to end, or choose another --out."
    assert os.listdir(out) == [] and not (tmp_path / "runs").exists()


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the tracker's signal mask from /proc")
def test_the_resource_tracker_takes_no_hangup():
    # a closed terminal (SIGHUP to the whole group) killed multiprocessing's resource tracker, which ignores only
    # SIGINT and SIGTERM; the one started again printed a KeyError traceback per semaphore after the stop's line
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("from multiprocessing import resource_tracker\nfrom experiments.synthetic import tracker_keeps_on_hangup\n"
            "tracker_keeps_on_hangup()\nprint(resource_tracker._resource_tracker._pid, flush=True)\ninput()\n")
    p = subprocess.Popen([sys.executable, "-c", code], cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    try:
        with open(f"/proc/{int(p.stdout.readline())}/status") as f:
            masks = {k: int(v, 16) for k, v in (line.split(":") for line in f) if k in ("SigBlk", "SigIgn")}
    finally:
        p.communicate("\n")
    assert (masks["SigBlk"] | masks["SigIgn"]) >> (signal.SIGHUP - 1) & 1 and p.returncode == 0


def test_the_header_names_xplus_only_where_a_model_has_it(tmp_path, capsys):
    # --models=qkv: the header said "(X)+ with m = 16" of a table without an (X)+ model
    synthetic.main(["--quick", "--arms=none", "--models=qkv", "--workers=1", f"--out={tmp_path}/o",
                    f"--cache={tmp_path}/runs"])
    md = (tmp_path / "o" / "synthetic.md").read_text()
    assert "warmup then cosine over each case's steps. Final per-digit accuracy" in md and "(X)+" not in md


def test_the_report_names_its_command_as_the_shell_takes_it(tmp_path, monkeypatch):
    # "Generated by `python -m experiments.synthetic --out=/x/my out`": a folder with a space, pasted, was two
    # arguments (argparse's "unrecognized arguments")
    out = tmp_path / "my out"
    monkeypatch.setattr(synthetic, "run_one", lambda job: [(s * job[3] // 4, 0.5) for s in range(5)])
    synthetic.main(["--quick", "--arms=none", "--models=qkv", "--workers=1", f"--out={out}", f"--cache={out}/runs"])
    assert (out / "synthetic.md").read_text().startswith(
        f"Generated by `python -m experiments.synthetic --quick --arms=none --models=qkv --workers=1 '--out={out}' "
        f"'--cache={out}/runs'` (")



def test_a_damaged_cache_file_counts_among_the_runs_trained(tmp_path, monkeypatch):
    # present on disk but no curve: trained again, and the table said "0 of 12 runs trained in this call"
    monkeypatch.setattr(synthetic, "run_one", lambda job: [(s, 0.5) for s in synthetic.eval_steps(job[3])])
    argv = ["--quick", "--arms=none", "--models=qkv", "--workers=1", f"--out={tmp_path}/o", f"--cache={tmp_path}/runs"]
    synthetic.main(argv)
    files = sorted(os.listdir(tmp_path / "runs"))
    (tmp_path / "runs" / files[0]).write_text("[[0, 2.5]]")
    synthetic.main(argv)
    assert f"(1 of {len(files)} runs trained in this call" in (tmp_path / "o" / "synthetic.md").read_text()
