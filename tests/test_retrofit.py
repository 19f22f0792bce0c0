"""experiments/retrofit.py: the plan of runs, and the qkv-shaped stand-in for converted layers its layer attribution uses."""

import sys
from dataclasses import replace

import pytest
import torch

from experiments import retrofit
from convert import convert_state_dict
from model import GPT, GPTConfig

CFG = GPTConfig(block_size=32, vocab_size=50, n_layer=3, n_head=4, n_embd=32)


def test_every_conversion_starts_from_its_own_seeds_source_and_quick_stays_out_of_assets():
    for setting in (retrofit.FULL, retrofit.QUICK):
        runs = retrofit.plan(setting)
        assert len(runs) == len(setting["seeds"]) * (len(retrofit.CONVERSIONS) + 2)
        outs = [out for _, _, out, _, _ in runs]
        assert len(set(outs)) == len(outs) and all(o.startswith(setting["root"] + "/") for o in outs)
        for name, seed, out, args, end in runs:
            assert f"--seed={seed}" in args and f"--max_iters={end}" in args
            if name in retrofit.CONVERSIONS:
                assert f"--init_from={setting['root']}/qkv_s{seed}" in args
    assert retrofit.FULL["assets"] == "assets/retrofit" and not retrofit.QUICK["assets"].startswith("assets")
    ends = {name: end for name, _, _, _, end in retrofit.plan(retrofit.FULL)}
    assert ends == {"qkv": 600, **{n: 150 for n in retrofit.CONVERSIONS}, "qk_v scratch": 750}


def test_partly_tied_qkv_weights_compute_what_the_converted_layers_compute():
    torch.manual_seed(0)
    src = GPT(CFG).eval()
    idx = torch.randint(0, 50, (4, 32))
    dst = replace(CFG, proj="qk_v")
    tied, _ = convert_state_dict(src.state_dict(), CFG, dst, "lstsq", idx)
    converted = GPT(dst).eval()
    converted.load_state_dict(tied)
    stand_in = GPT(CFG).eval()
    stand_in.load_state_dict(retrofit.partly_tied(src.state_dict(), tied, CFG.n_layer, CFG.n_embd))
    with torch.no_grad():
        assert torch.allclose(stand_in(idx)[0], converted(idx)[0], atol=1e-6)
        stand_in.load_state_dict(retrofit.partly_tied(src.state_dict(), tied, 0, CFG.n_embd))
        assert torch.equal(stand_in(idx)[0], src(idx)[0])


def test_val_loss_scores_the_windows_train_py_does_on_a_small_val_bin(tmp_path):
    # a val.bin of 1,000 tokens and eval_tokens 4,096: train.py scores its 28 whole windows of 32 (7 batches of 4),
    # each once; val_loss took 32 batches, wrapping round modulo len - 32, which scored some tokens twice and was
    # compared with train.py's losses as the same evaluation (the sixteenth pass)
    import numpy as np
    data = (np.arange(1000) * 7 % 251).astype(np.uint16)
    data.tofile(tmp_path / "val.bin")

    class MeanTarget(torch.nn.Module):  # loss = the mean target id of the batch: the windows show through
        def forward(self, x, y):
            return None, y.double().mean()
    cfg = dict(data_dir=str(tmp_path), block_size=32, batch_size=4, eval_tokens=4096)
    want = np.mean([data[i * 32 + 1:i * 32 + 33].mean() for i in range(28)])
    assert retrofit.val_loss(MeanTarget(), cfg) == pytest.approx(want)
    cfg.update(batch_size=64)  # more rows than val.bin holds windows: one batch of its 31
    assert retrofit.val_loss(MeanTarget(), cfg) == pytest.approx(data[1:31 * 32 + 1].mean())


@pytest.mark.parametrize("val_tokens, scored", [(111_539, 106_496), (50_000, 49_152), (1_000, 768)])
def test_the_report_names_the_validation_tokens_train_py_scored(tmp_path, val_tokens, scored):
    # data/cpu_lm_bytes prepared from a shorter text: train.py scored the 12 whole batches of 16 x 256 of a val.bin
    # of 50,000 (49,152), and the report said "over 106,496 tokens" (left by the sixteenth pass)
    s = dict(retrofit.FULL, root=str(tmp_path))
    cfg = dict(n_layer=4, n_head=4, n_embd=128, block_size=256, batch_size=16, dropout=0.1, eval_tokens=106_496,
               val_tokens=val_tokens, train_tokens=400_000)
    recs = [{"name": "qkv", "seed": 1337, "kv_bytes": 4096, "params": 1, "val": {600: 2.0}, "config": cfg}]
    retrofit.write_md(recs, {}, [], s, "python -m experiments.retrofit", str(tmp_path / "r"))
    assert f"Validation loss (nats/byte) over {scored:,} tokens, mean" in (tmp_path / "r.md").read_text()


@pytest.mark.parametrize("train_tokens, name", [(1_003_857, "byte-level Shakespeare"),
                                                (400_000, "byte-level data of data/cpu_lm_bytes")])
def test_the_report_names_shakespeare_only_for_its_data(tmp_path, train_tokens, name):
    # data/cpu_lm_bytes prepared from another text: "Retrofit on byte-level Shakespeare" whatever the source runs'
    # checkpoints record (the seventeenth pass, left)
    s = dict(retrofit.FULL, root=str(tmp_path))
    cfg = dict(n_layer=4, n_head=4, n_embd=128, block_size=256, batch_size=16, dropout=0.1, eval_tokens=106_496,
               val_tokens=111_539, train_tokens=train_tokens, data_dir="data/cpu_lm_bytes")
    recs = [{"name": "qkv", "seed": 1337, "kv_bytes": 4096, "params": 1, "val": {600: 2.0}, "config": cfg}]
    retrofit.write_md(recs, {}, [], s, "python -m experiments.retrofit", str(tmp_path / "r"))
    assert (tmp_path / "r.md").read_text().startswith(f"Retrofit on {name}: qkv trained for 600 iterations")


def test_the_runs_train_on_one_thread_as_the_report_says(tmp_path, monkeypatch):
    # the report says "(one thread, shared machine)", and train.py ran with torch's default, every core (the
    # seventeenth pass, left)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    seen = []
    monkeypatch.setattr(retrofit, "run_child", lambda cmd, **kw: seen.append(kw.get("env")) or 1)
    with pytest.raises(SystemExit, match="train.py stopped"):
        retrofit.train_all(retrofit.QUICK, "python -m experiments.retrofit --quick")
    assert seen[0]["OMP_NUM_THREADS"] == "1"
    s = dict(retrofit.FULL, root=str(tmp_path))
    cfg = dict(n_layer=4, n_head=4, n_embd=128, block_size=256, batch_size=16, dropout=0.1, eval_tokens=106_496,
               val_tokens=111_539, train_tokens=1_003_857, data_dir="data/cpu_lm_bytes")
    recs = [{"name": "qkv", "seed": 1337, "kv_bytes": 4096, "params": 1, "val": {600: 2.0}, "config": cfg}]
    retrofit.write_md(recs, {}, [], s, "python -m experiments.retrofit", str(tmp_path / "r"))
    assert "min (one thread, shared machine)." in (tmp_path / "r.md").read_text()


def test_the_command_each_run_prints_is_one_the_shell_takes(tmp_path, monkeypatch, capsys):
    # retrofit and cpu_lm print each train.py command as they start it; a Python (or repository) under a folder
    # with a space ("/x/my env/bin/python") was printed unquoted, and pasted was two arguments
    import shlex

    from experiments import cpu_lm
    monkeypatch.chdir(tmp_path)
    python = str(tmp_path / "my env" / "python")
    monkeypatch.setattr(sys, "executable", python)
    for study, call in ((retrofit, lambda: retrofit.train_all(retrofit.QUICK, "python -m experiments.retrofit")),
                        (cpu_lm, cpu_lm.train_all)):
        monkeypatch.setattr(study, "run_child", lambda cmd, **kw: 1)
        with pytest.raises(SystemExit, match="train.py stopped"):
            call()
        line = capsys.readouterr().out.splitlines()[0]
        assert shlex.split(line)[0] == python and line.startswith(shlex.quote(python) + " ")
