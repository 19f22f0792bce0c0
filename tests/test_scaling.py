"""experiments/scaling.py: the plan holds every cell the study asks for, once; --quick trains, writes its rows and
report outside assets/, resumes without training again, and the reading rule says no more than the seeds show."""

import argparse
import csv
import os
import subprocess
import sys

import pytest

from test_bad_inputs import tree_digest
from test_train import ROOT, make_data

from experiments import scaling


def test_full_plan_has_every_cell_once():
    s = scaling.FULL
    runs = scaling.plan(s)
    assert len(runs) == len(set(runs)) == 61
    key = lambda r: (r.proj, r.n_kv_head, r.n_embd, r.block_size, r.iters)
    have = {}
    for r in runs:
        have.setdefault(key(r), set()).add(r.seed)
    seeds = set(scaling.SEEDS)
    for p in ("qkv", "qk_v", "q_kv"):  # budget: separate full schedules of 600 and 2400 iterations
        for iters in (600, 2400):
            assert have[(p, 0, 128, 256, iters)] == seeds
    for p in ("qkv", "qk_v"):
        for t in (64, 128, 256, 512):  # context
            assert have[(p, 0, 128, t, 600)] == seeds
        for e in (64, 128, 256):  # size (the lr check's run stands in for seed 1337 of qkv at 256)
            assert have[(p, 0, e, 256, 600)] == seeds
        for g in (2, 1):  # cache budget
            assert have[(p, g, 128, 256, 600)] == seeds
    assert {r.lr for r in runs if r.n_embd == 256 and r.seed == 1337 and r.proj == "qkv"} == {2e-3, 1e-3}
    for r in runs:  # batch x block constant: 4096 tokens per iteration everywhere
        cmd = scaling.command(r, s, "d", "o", False)
        batch = int(next(a for a in cmd if a.startswith("--batch_size=")).split("=")[1])
        assert batch * r.block_size == 4096


def test_reading_rule():
    assert scaling.verdict([0.10, 0.12, 0.11]) == "shown"
    assert scaling.verdict([0.10, 0.01, 0.30]) == "suggested"  # all positive, but the mean is within the spread
    assert scaling.verdict([0.10, -0.01, 0.02]) == "no difference"
    assert scaling.verdict([0.1]) == "one seed"


def test_quick_run_writes_rows_and_report_outside_assets_and_resumes(tmp_path):
    make_data(tmp_path / "data")
    root = tmp_path / "runs"
    cmd = [sys.executable, "-m", "experiments.scaling", "--quick", f"--data_dir={tmp_path / 'data'}",
           f"--root={root}"]
    assets = tree_digest(os.path.join(ROOT, "assets"))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    with open(root / "scaling.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == scaling.COLUMNS
    assert len(rows) == len(scaling.plan(scaling.QUICK))
    assert all(float(x["best_val_loss"]) <= float(x["val_loss"]) for x in rows)
    assert {int(x["kv_bytes_per_token"]) for x in rows if x["variant"] == "qk_v_gqa2"} == {2 * 2 * 8 * 1 * 2}  # layers x kv heads x head_dim x K only x bf16
    with open(root / "scaling_projections.csv") as f:
        ana = list(csv.DictReader(f))
    assert {(a["iters"], a["layer"]) for a in ana} == {(i, x) for i in ("20", "40") for x in ("0", "1", "random")}
    md = (root / "scaling.md").read_text()
    assert not md.startswith("PARTIAL") and "## Cache budget" in md and "qk_v - q_kv" in md
    assert (root / "scaling.png").stat().st_size > 0
    assert tree_digest(os.path.join(ROOT, "assets")) == assets
    before = (root / "scaling.csv").read_bytes()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0 and "train.py" not in r.stdout  # nothing left to train
    assert (root / "scaling.csv").read_bytes() == before


@pytest.mark.parametrize("sub", ["", "runs"])
def test_run_folders_in_assets_are_refused_before_any_run(tmp_path, sub):
    make_data(tmp_path / "data")
    root = os.path.join(ROOT, "assets", sub)
    assets = tree_digest(os.path.join(ROOT, "assets"))
    with pytest.raises(SystemExit) as e:  # was refused by the first train.py run: 'train.py failed (...); fix it'
        scaling.main(["--quick", f"--data_dir={tmp_path / 'data'}", f"--root={root}"])
    assert str(e.value) == f"{root} is in assets/, which holds the studies' tracked results; write this run elsewhere."
    assert tree_digest(os.path.join(ROOT, "assets")) == assets and not os.path.exists(os.path.join(ROOT, "assets", "runs"))


def test_report_reads_each_size_run_not_the_learning_rate_check_it_lost(tmp_path):
    # The check's losing run shares variant, n_embd and seed with a size run; the size table once read it instead.
    s = dict(scaling.QUICK, seeds=(1, 2))
    embd, lr = s["lr_check"]
    rows = []
    for run in scaling.plan(s):
        run = run if run.lr else scaling.replace(run, lr=s["lr"])  # the default lr wins the check below
        losing = run.lr == lr
        rows.append(dict(variant=run.proj, proj=run.proj, n_kv_head=run.n_kv_head, n_layer=2, n_embd=run.n_embd,
                         block_size=run.block_size, batch_size=8, iters=run.iters, learning_rate=run.lr,
                         seed=run.seed, params=1000, kv_bytes_per_token=64, train_s=1,
                         val_loss=9.0 if losing else 2.0 + 0.1 * (run.proj == "qk_v"),
                         best_val_loss=9.0 if losing else 2.0 + 0.1 * (run.proj == "qk_v")))
    scaling.write_csv(str(tmp_path / "scaling.csv"), scaling.COLUMNS, rows)
    scaling.report(s, argparse.Namespace(root=str(tmp_path)))
    size_line = next(x for x in (tmp_path / "scaling.md").read_text().splitlines() if x.startswith(f"| n_embd {embd} |"))
    assert "+0.1000, +0.1000" in size_line and "9.0" not in size_line
    # the quick grid's runs warm up for 5 iterations: its report said config/cpu_lm.py's 50
    assert "(cosine after 5 warmup iterations)" in (tmp_path / "scaling.md").read_text()


def test_a_report_of_nothing_leaves_no_folder_and_names_the_command_that_trains_it(tmp_path):
    # --quick --report --root=X made X, then said to train with `python -m experiments.scaling`: the full grid, hours,
    # into another folder (the seventh pass)
    root = tmp_path / "runs" / "q"
    with pytest.raises(SystemExit) as e:
        scaling.main(["--quick", "--report", f"--root={root}"])
    assert str(e.value) == f"{root}/scaling.csv holds no finished run yet; train them first with `python -m " \
                           f"experiments.scaling --quick --root={root}`."
    assert os.listdir(tmp_path) == []
