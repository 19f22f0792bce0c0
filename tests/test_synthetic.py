import csv
import os
import subprocess
import sys

import pytest
import torch

import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("task, x, y", [
    ("reverse", [[1, 2, 3], [4, 5, 6]], [[3, 2, 1], [6, 5, 4]]),
    ("sort", [[3, 1, 2, 1], [9, 0, 9, 5]], [[1, 1, 2, 3], [0, 5, 9, 9]]),
    ("sub", [[0, 3, 9], [4, 5, 6]], [[9, 6, 0], [5, 4, 3]]),
    ("swap", [[1, 2, 3, 4], [5, 6, 7, 8]], [[3, 4, 1, 2], [7, 8, 5, 6]]),
    ("swap", [[5, 6, 7, 8, 9, 0]], [[8, 9, 0, 5, 6, 7]]),
    ("copy", [[4, 0, 4], [7, 7, 1]], [[4, 0, 4], [7, 7, 1]]),
])
def test_targets(task, x, y):
    assert synthetic.TASKS[task](torch.tensor(x)).tolist() == y


def read_outputs(out):
    with open(os.path.join(out, "synthetic.md")) as f:
        md = [line.strip("|").split("|") for line in f.read().splitlines()]
    with open(os.path.join(out, "synthetic.csv")) as f:
        rows = list(csv.DictReader(f))
    return [[c.strip() for c in line] for line in md], rows


def test_quick_run_writes_table_and_is_reproducible(tmp_path):
    # the CLI with its default two worker processes, then in-process with one: identical results
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    subprocess.run([sys.executable, "synthetic.py", "--quick", f"--out={a}"], cwd=ROOT, check=True,
                   capture_output=True)
    synthetic.main(["--quick", "--workers=1", f"--out={b}"])
    md, rows = read_outputs(a)
    assert md[0] == ["task"] + list(synthetic.MODELS)
    assert [line[0] for line in md[2:]] == [t.upper() for t in synthetic.TASKS] + ["average"]
    assert os.path.getsize(os.path.join(a, "synthetic.png")) > 0
    # one row per (task, model, eval point); the table shows the final step's accuracy and its task mean
    assert len(rows) == len(synthetic.TASKS) * len(synthetic.MODELS) * 5
    final = {(r["task"], r["model"]): float(r["acc"]) for r in rows if r["step"] == "20"}
    for j, m in enumerate(synthetic.MODELS, start=1):
        accs = [final[t, m] for t in synthetic.TASKS]
        assert [float(line[j]) for line in md[2:]] == [round(100 * a, 1) for a in accs + [sum(accs) / len(accs)]]
    assert read_outputs(b) == (md, rows)


@pytest.mark.parametrize("argv, message", [
    (["--tasks=reverse,rotate"], "unknown task 'rotate'"),
    (["--models=qkv,kqv"], "unknown model 'kqv'"),
    (["--lengths=8,7"], "even"),
    (["--heads=3", "--embd=32"], "--embd value 32 is not divisible by --heads value 3"),
    (["--pos_conv=6"], "--pos_conv must be a positive multiple of 4"),
    (["--steps=0"], "--steps must be >= 1"),
])
def test_bad_arguments(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        synthetic.main(argv + ["--quick", f"--out={out}"])
    assert e.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
