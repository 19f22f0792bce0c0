"""experiments/analyze.py: cosine similarity, effective rank, and which projections each variant's table lists."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import experiments.analyze
from experiments.analyze import (ASSET_COMMAND, analysed_run, analyze, cka, compare, cosine, effective_rank, load, main,
                                 overlap, projections, random_row, table)
from configurator import run_file
from model import GPT, GPTConfig
from test_bad_inputs import run_here

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPECTED = {  # (proj, n_kv_head) -> the matrices that exist
    ("qkv", 0): ["Wq", "Wk", "Wv"],
    ("qkv", 1): ["Wq", "Wk", "Wv"],
    ("qk_v", 0): ["Wq", "Wk=Wv"],
    ("qk_v", 2): ["Wq", "Wk=Wv"],
    ("q_kv", 0): ["Wq=Wk", "Wv"],
    ("q_k_v", 0): ["Wq=Wk=Wv"],
}


def save_ckpt(out_dir, proj, n_kv_head=0):
    """A checkpoint shaped like train.py's, from a tiny random model."""
    args = dict(block_size=16, vocab_size=40, n_layer=2, n_head=4, n_embd=32, proj=proj, n_kv_head=n_kv_head)
    torch.manual_seed(0)
    model = GPT(GPTConfig(**args))
    torch.save({"model": model.state_dict(), "optimizer": {}, "model_args": args, "iter_num": 0,
                "best_val_loss": 1e9, "config": {}, "rng": {}, "meta": {}}, os.path.join(out_dir, "ckpt.pt"))
    return model


def test_cosine_with_itself_is_one():
    w = torch.randn(48, 32)
    assert cosine(w, w) == pytest.approx(1.0, abs=1e-12)
    assert cosine(w, -w) == pytest.approx(-1.0, abs=1e-12)


def test_effective_rank_of_identity_is_its_size():
    assert effective_rank(torch.eye(24)) == pytest.approx(24.0, rel=1e-9)


def test_effective_rank_of_rank_one_matrix_is_one():
    w = torch.outer(torch.randn(20, dtype=torch.float64), torch.randn(30, dtype=torch.float64))
    assert effective_rank(w) == pytest.approx(1.0, rel=1e-6)


def test_effective_rank_of_two_equal_singular_values_is_two():
    assert effective_rank(torch.diag(torch.tensor([3.0, 3.0, 0.0]))) == pytest.approx(2.0, rel=1e-9)


@pytest.mark.parametrize("proj,n_kv_head", list(EXPECTED))
def test_table_lists_only_existing_projections(tmp_path, proj, n_kv_head):
    original = save_ckpt(tmp_path, proj, n_kv_head)
    model, *_ = load(str(tmp_path))  # load_checkpoint takes a str
    names = EXPECTED[(proj, n_kv_head)]
    for block, ref in zip(model.transformer.h, original.transformer.h):
        mats = projections(block.attn)
        assert list(mats) == names
        # the split matrices are exactly the fused weight, in order
        assert torch.equal(torch.cat([w.flatten(0, 1) for w in mats.values()]), ref.attn.c_attn.weight)
    rows = analyze(model)
    assert len(rows) == 2
    pairs = [(x, y) for i, x in enumerate(names) for y in names[i + 1:]]
    assert all(list(r["cos"]) == pairs == list(r["overlap"]) and list(r["erank"]) == names for r in rows)
    lines = table(model, rows).splitlines()
    assert [line.split(" |")[0] for line in lines[2:]] == ["| 0", "| 1", "| mean", "| random"]
    header = lines[0]
    for name in ["Wq", "Wk", "Wv"]:  # a shared matrix is never listed under a separate name
        assert (f"erank {name} " in header) == (name in names)


def test_kv_group_pairing_under_mqa():
    """With one key head, every query head is compared with it: equal heads give 1 whole and per head."""
    k = torch.randn(1, 8, 32)
    q = k.repeat(4, 1, 1)
    assert compare(q, k) == pytest.approx((1.0, 1.0), abs=1e-12)
    q[1:] = torch.randn(3, 8, 32)
    whole, per_head = compare(q, k)
    assert per_head == pytest.approx((1.0 + sum(cosine(q[h], k[0]) for h in range(1, 4))) / 4, abs=1e-12)
    assert whole < 1.0


def test_tied_value_and_key_give_cosine_one(tmp_path):
    model = save_ckpt(tmp_path, "qkv")
    attn = model.transformer.h[1].attn
    with torch.no_grad():
        attn.c_attn.weight[64:] = attn.c_attn.weight[32:64]  # Wv := Wk
    rows = analyze(model)
    assert rows[1]["cos"][("Wk", "Wv")] == pytest.approx((1.0, 1.0), abs=1e-12)
    assert abs(rows[0]["cos"][("Wk", "Wv")][0]) < 0.2  # independent random init is far from 1


def test_cli_prints_table_and_writes_figure(tmp_path):
    save_ckpt(tmp_path, "qk_v", 2)
    r = subprocess.run([sys.executable, "-m", "experiments.analyze", f"--out_dir={tmp_path}"], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert "| layer | cos Wq, Wk=Wv | erank Wq (of 32) | erank Wk=Wv (of 16) | overlap Wq, Wk=Wv |" in r.stdout
    assert (tmp_path / "projections.png").stat().st_size > 0  # beside the checkpoint, never assets/ by default
    # the checkpoint names no data (as one saved by hand): it read "no val.bin in None"
    assert "cka: left out, and r2: the checkpoint names no data_dir (set --data_dir to its prepared data)." in r.stdout


def test_cli_missing_checkpoint_is_one_clear_error(tmp_path, capfd):
    # in this process: test_bad_inputs runs the same refusal as a subprocess
    r = run_here(["-m", "experiments.analyze", f"--out_dir={tmp_path}"], capfd)
    assert r.returncode != 0
    assert r.stderr.strip() == f"no checkpoint at {tmp_path}/ckpt.pt: train one with train.py, or point to the " \
                               f"out_dir that holds it."


def test_cka_is_one_for_equal_outputs_and_outputs_related_by_a_rotation_and_scale():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 8, generator=g, dtype=torch.float64)
    rot = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))[0]
    assert cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert cka(x, 3 * x @ rot + 1) == pytest.approx(1.0, abs=1e-12)
    assert cka(x, torch.randn(500, 8, generator=g, dtype=torch.float64)) < 0.1  # independent outputs


def test_overlap_is_one_for_the_same_row_space_and_r_over_c_for_random_ones():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(8, 64, generator=g, dtype=torch.float64)
    mix = torch.randn(8, 8, generator=g, dtype=torch.float64)  # invertible: the same row space
    assert overlap(w, mix @ w, 8) == pytest.approx(1.0, abs=1e-9)
    rand = [overlap(torch.randn(8, 64, generator=g), torch.randn(8, 64, generator=g), 4) for _ in range(50)]
    assert sum(rand) / 50 == pytest.approx(4 / 64, rel=0.2)


def rotate_heads(model, seed=0):
    """Per head: q, k -> q R1, k R1 (scores unchanged) and v -> v R2 with c_proj's columns times R2 (output
    unchanged): the model computes the same function from other weights."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in model.transformer.h:
            attn, D = block.attn, block.attn.head_dim
            W, b, Wo = attn.c_attn.weight, attn.c_attn.bias, attn.c_proj.weight
            H = attn.n_head
            for h in range(H):
                r1, r2 = (torch.linalg.qr(torch.randn(D, D, generator=g))[0] for _ in range(2))
                for chunk, r in ((0, r1), (1, r1), (2, r2)):
                    rows = slice(chunk * H * D + h * D, chunk * H * D + (h + 1) * D)
                    W[rows], b[rows] = r.T @ W[rows], b[rows] @ r
                Wo[:, h * D:(h + 1) * D] = Wo[:, h * D:(h + 1) * D] @ r2


def test_overlap_and_cka_are_invariant_to_rotations_that_keep_the_model_and_the_cosine_is_not(tmp_path):
    model = save_ckpt(tmp_path, "qkv").eval()
    with torch.no_grad():  # trained-like biases, so CKA sees them too
        for block in model.transformer.h:
            block.attn.c_attn.bias.normal_(0, 0.1)
    idx = torch.randint(0, 40, (8, 16), generator=torch.Generator().manual_seed(1))
    before, logits = analyze(model, idx), model(idx)[0]
    rotate_heads(model)
    after = analyze(model, idx)
    assert torch.allclose(model(idx)[0], logits, atol=1e-5)
    for a, b in zip(before, after):
        for pair in a["overlap"]:
            assert b["overlap"][pair] == pytest.approx(a["overlap"][pair], abs=1e-6)  # float32 weights
            assert b["cka"][pair] == pytest.approx(a["cka"][pair], abs=1e-6)
            assert b["r2"][pair] == pytest.approx(a["r2"][pair], abs=1e-6)
        assert abs(b["cos"][("Wk", "Wv")][1] - a["cos"][("Wk", "Wv")][1]) > 1e-3


def test_tied_value_and_key_give_overlap_and_cka_one_and_random_reference_is_low(tmp_path):
    model = save_ckpt(tmp_path, "qkv").eval()
    attn = model.transformer.h[0].attn
    with torch.no_grad():
        attn.c_attn.weight[64:] = attn.c_attn.weight[32:64]  # Wv := Wk
        attn.c_attn.bias[64:] = attn.c_attn.bias[32:64]
    idx = torch.randint(0, 40, (8, 16), generator=torch.Generator().manual_seed(1))
    row = analyze(model, idx)[0]
    assert row["overlap"][("Wk", "Wv")] == pytest.approx(1.0, abs=1e-9)
    assert row["cka"][("Wk", "Wv")] == pytest.approx(1.0, abs=1e-9)
    assert row["r2"][("Wk", "Wv")] == pytest.approx(1.0, abs=1e-9)
    rand = random_row(model, idx)
    # measured here: overlap 0.129 (r / n_embd = 0.125 for random subspaces), CKA 0.344, R2 0.428; each is far
    # from the 1.0 of a tied pair, and the bounds sit near what they measure so a drift in the reference shows
    assert 0.10 < rand["overlap"][("Wk", "Wv")] < 0.16
    assert 0.30 < rand["cka"][("Wk", "Wv")] < 0.40
    assert 0.38 < rand["r2"][("Wk", "Wv")] < 0.48


def run_main(capsys, *argv):
    """experiments.analyze.main in-process -> (exit code or None, stdout, the last line of stderr)."""
    try:
        main(list(argv))
        code = None
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else str(e.code)
    out, err = capsys.readouterr()
    return code, out, (err.strip().splitlines() or [""])[-1]


def test_tokens_below_one_block_and_rank_above_head_dim_are_refused_before_the_work(tmp_path, capsys):
    save_ckpt(tmp_path, "qkv")  # block_size 16, head_dim 8
    data = tmp_path / "data"
    data.mkdir()
    np.arange(40, dtype=np.uint16).tofile(data / "val.bin")
    for arg, want in (("--tokens=15", f"--tokens must be at least one block of {tmp_path} (block_size 16); got 15."),
                      ("--rank=9", f"--rank must be at most the head_dim of {tmp_path} (8), the most directions a "
                                   f"head reads; got 9.")):
        code, out, err = run_main(capsys, f"--out_dir={tmp_path}", f"--data_dir={data}", arg)
        assert code == 2 and out == "" and err.split(": error: ")[1] == want
    assert not (tmp_path / "projections.png").exists()
    # one block and the full head_dim are measured: 16 tokens, r = 8
    code, out, _ = run_main(capsys, f"--out_dir={tmp_path}", f"--data_dir={data}", "--tokens=16", "--rank=8", "--out=")
    assert code is None
    assert "linear CKA of the outputs on 16 validation tokens" in out and "top-8 right singular" in out
    (data / "val.bin").write_bytes(np.arange(10, dtype=np.uint16).tobytes())
    code, out, err = run_main(capsys, f"--out_dir={tmp_path}", f"--data_dir={data}")
    assert code == f"{data}/val.bin holds 10 tokens, fewer than one block (block_size 16) to measure CKA on; set " \
                   f"--data_dir to a larger validation set."
    (data / "val.bin").write_bytes(np.arange(100, dtype=np.uint16).tobytes())  # tokens 40.. beyond vocab_size 40
    code, out, err = run_main(capsys, f"--out_dir={tmp_path}", f"--data_dir={data}")
    assert code == f"the validation tokens of {data} reach 95, beyond the vocabulary of {tmp_path} (vocab_size 40); " \
                   f"set --data_dir to its data."


def test_a_checkpoint_saved_in_half_precision_is_measured_as_in_float32(tmp_path, capsys):
    # {'model': model.half().state_dict(), ...} saved by hand: CKA's einsum on float32 inputs was a RuntimeError
    save_ckpt(tmp_path, "qk_v")
    data = tmp_path / "data"
    data.mkdir()
    np.arange(40, dtype=np.uint16).tofile(data / "val.bin")
    code, want, _ = run_main(capsys, f"--out_dir={tmp_path}", f"--data_dir={data}", "--tokens=32", "--out=")
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    for dtype in (torch.float16, torch.bfloat16):
        torch.save({**ckpt, "model": {k: t.to(dtype) for k, t in ckpt["model"].items()}}, tmp_path / "ckpt.pt")
        code, out, err = run_main(capsys, f"--out_dir={tmp_path}", f"--data_dir={data}", "--tokens=32", "--out=")
        assert code is None and "linear CKA of the outputs on 32 validation tokens" in out, err
        assert out.splitlines()[0] == want.splitlines()[0]


def test_r2_on_no_more_tokens_than_its_fit_has_unknowns_is_refused(tmp_path, capsys):
    # head_dim 16 + an offset: 16 tokens (one block, allowed) fitted any pair exactly, r2 1.000 for the trained and
    # the random matrices alike, exit 0 (the sixteenth pass)
    save_ckpt(tmp_path, "qkv")
    cfg = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    cfg["model_args"]["n_head"] = 2  # head_dim 16; the weights' shapes do not depend on it
    torch.save(cfg, tmp_path / "ckpt.pt")
    data = tmp_path / "data"
    data.mkdir()
    np.arange(40, dtype=np.uint16).tofile(data / "val.bin")
    code, out, _ = run_main(capsys, f"--out_dir={tmp_path}", f"--data_dir={data}", "--tokens=16",
                            f"--out={tmp_path / 'o'}")
    assert code == "r2 would be measured on 16 validation tokens, and its affine map fits 17 numbers per " \
                   "dimension of each head (head_dim 16 and an offset), which so few tokens fit exactly whatever " \
                   "the weights; raise --tokens to 32 or more."
    assert out == "" and not (tmp_path / "o").exists()
    np.arange(16, dtype=np.uint16).tofile(data / "val.bin")  # --tokens is enough; val.bin holds one block
    code, _, _ = run_main(capsys, f"--out_dir={tmp_path}", f"--data_dir={data}", "--out=")
    assert code.endswith("whatever the weights; set --data_dir to a larger validation set.")
    np.arange(40, dtype=np.uint16).tofile(data / "val.bin")
    code, out, _ = run_main(capsys, f"--out_dir={tmp_path}", f"--data_dir={data}", "--tokens=32", "--out=")
    assert code is None and "linear CKA of the outputs on 32 validation tokens" in out
    # --tokens=20 is more than the fit's 17 unknowns, but whole blocks of 16 make it 16: the fix is --tokens, not
    # a larger validation set, which val.bin (40 tokens, two blocks) already is (the seventeenth pass)
    code, _, _ = run_main(capsys, f"--out_dir={tmp_path}", f"--data_dir={data}", "--tokens=20", "--out=")
    assert code.endswith("whatever the weights; raise --tokens to 32 or more.")


def test_validation_data_of_another_tokenizer_or_cut_inside_a_token_is_refused_and_leaves_no_folder(tmp_path, capsys):
    # a val.bin of odd size was numpy's ValueError traceback; another tokenizer's ids below the model's vocabulary
    # (bytes for an r50k model) were measured as its text, exit 0; and --out, made before these checks, was left
    # behind empty (the seventh pass)
    save_ckpt(tmp_path, "qkv")
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    torch.save({**ckpt, "meta": {"tokenizer": "chars", "vocab_size": 40}}, tmp_path / "ckpt.pt")  # another program's
    data = tmp_path / "data"
    data.mkdir()
    (data / "val.bin").write_bytes(np.arange(33, dtype=np.uint16).tobytes()[:-1])
    code, out, _ = run_main(capsys, f"--out_dir={tmp_path}", f"--data_dir={data}", "--out=" + str(tmp_path / "a" / "b"))
    assert code == f"{data}/val.bin holds 65 bytes, an odd number, so it is no file of uint16 tokens; set --data_dir " \
                   f"to a folder prepare_slimpajama.py wrote."
    np.arange(32, dtype=np.uint16).tofile(data / "val.bin")
    # a val.bin copied away from its meta.json: its tokenizer unknown, its ids were measured as the model's text
    # (bytes for an r50k model, exit 0; the seventeenth pass)
    code, out, _ = run_main(capsys, f"--out_dir={tmp_path}", f"--data_dir={data}", "--out=" + str(tmp_path / "a" / "b"))
    assert code == f"{data} holds a val.bin and no meta.json naming its tokenizer, and the checkpoint's model reads " \
                   f"'chars': CKA could be measured on the ids of another tokenizer; set --data_dir to a folder " \
                   f"prepare_slimpajama.py wrote."
    (data / "meta.json").write_text('{"tokenizer": "r50k_base", "vocab_size": 50257}')
    code, out, _ = run_main(capsys, f"--out_dir={tmp_path}", f"--data_dir={data}", "--out=" + str(tmp_path / "a" / "b"))
    assert code == f"{data} holds tokens of 'r50k_base' and the checkpoint's model reads 'chars': CKA would be " \
                   f"measured on the ids of another tokenizer; set --data_dir to data of 'chars'."
    assert not (tmp_path / "a").exists()


def test_a_checkpoint_path_puts_the_tables_beside_it(tmp_path, capsys):
    # --out_dir=run/ckpt.pt was refused with advice on --out, a flag that was not given (the seventh pass)
    save_ckpt(tmp_path, "qk_v")
    code, out, _ = run_main(capsys, f"--out_dir={tmp_path / 'ckpt.pt'}")
    assert code is None and f"wrote {tmp_path / 'projections.md'}, " in out


def test_assets_take_only_the_figure_readme_names(tmp_path, capsys, monkeypatch):
    save_ckpt(tmp_path, "qkv")
    assets = os.path.join(ROOT, "assets")
    before = {n: os.path.getmtime(os.path.join(assets, n)) for n in os.listdir(assets)}
    link = tmp_path / "link"
    link.symlink_to(assets)
    for out in (assets, "assets", str(link)):  # an absolute path and a link are assets/ too
        code, _, _ = run_main(capsys, f"--out_dir={tmp_path}", f"--out={out}")
        assert code == f"{out} is in assets/, which only the full default run (`{ASSET_COMMAND}`) writes; write " \
                       f"this run elsewhere."
    # the source checkpoint itself, with another setting, is refused too
    monkeypatch.setattr(experiments.analyze, "ASSET_SOURCE", str(tmp_path))
    code, _, _ = run_main(capsys, f"--out_dir={tmp_path}", f"--out={assets}", "--rank=2")
    assert "only the full default run" in code
    # and with the default settings, before it has finished: it wrote an unfinished run's figure over the tracked one
    code, _, _ = run_main(capsys, f"--out_dir={tmp_path}", f"--out={assets}")
    assert code == f"{tmp_path} is at iteration 0, and assets/projections.* are of the retrofit source at 600: " \
                   f"finish it with `python -m experiments.retrofit` first."
    # and finished, but trained there by hand with other settings: it replaced the tracked figure (the seventh pass)
    scope = run_file("config/cpu_lm.py", {})
    config = {**{k: scope[k] for k in scope.assigned}, "eval_interval": 600, "warmup_iters": 50, "max_iters": 600,
              "seed": 1337, "batch_size": 4}
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    args = {k: config[k] for k in ckpt["model_args"]}  # its model, as train.py saves it beside the config
    torch.save({**ckpt, "iter_num": 600, "config": config, "model_args": args,
                "model": GPT(GPTConfig(**args)).state_dict()}, tmp_path / "ckpt.pt")
    code, _, _ = run_main(capsys, f"--out_dir={tmp_path}", f"--out={assets}")
    assert code == f"{tmp_path} holds a run with batch_size = 4, where `python -m experiments.retrofit` trains it " \
                   f"with 16: a run of other settings; run the study with the options and config files that " \
                   f"trained it, or move that folder out of the way (the study then trains its own run there)."
    assert {n: os.path.getmtime(os.path.join(assets, n)) for n in os.listdir(assets)} == before


def test_an_out_that_cannot_take_the_figure_fails_before_the_work(tmp_path, capsys, monkeypatch):
    save_ckpt(tmp_path, "qkv")
    (tmp_path / "afile").write_text("")
    monkeypatch.setattr(experiments.analyze, "analyze", lambda *a: pytest.fail("analysed"))
    code, out, err = run_main(capsys, f"--out_dir={tmp_path}", f"--out={tmp_path / 'afile'}")
    assert code == 2 and err.endswith(f"--out '{tmp_path / 'afile'}' is not a writable directory (File exists); "
                                      f"choose another --out.")


def test_a_folder_in_place_of_an_output_file_fails_before_the_work(tmp_path, capsys, monkeypatch):
    # was "could not write .../projections.png: a folder has that name" after projections.md and .csv were written
    save_ckpt(tmp_path, "qkv")
    (tmp_path / "out" / "projections.png").mkdir(parents=True)
    monkeypatch.setattr(experiments.analyze, "analyze", lambda *a: pytest.fail("analysed"))
    with pytest.raises(SystemExit) as e:
        experiments.analyze.main([f"--out_dir={tmp_path}", f"--out={tmp_path / 'out'}"])
    assert str(e.value) == (f"{tmp_path / 'out' / 'projections.png'} is a folder, where this command writes its "
                            f"results; move it out of the way, or write elsewhere.")
    assert os.listdir(tmp_path / "out") == ["projections.png"]


def test_every_number_of_the_table_is_in_the_written_md_and_csv(tmp_path):
    from experiments.analyze import records, write
    model = save_ckpt(tmp_path, "qkv").eval()
    idx = torch.randint(0, 40, (8, 16), generator=torch.Generator().manual_seed(1))
    rows, random = analyze(model, idx), random_row(model, idx)
    md_table = table(model, rows, random)
    paths = write(str(tmp_path / "out"), ["settings line", md_table], records(rows, random, [7.5, 3.25]), model,
                  rows, random, "title")
    assert [os.path.basename(p) for p in paths] == ["projections.md", "projections.csv", "projections.png"]
    md = open(paths[0]).read()
    assert md == "settings line\n\n" + md_table + "\n"
    with open(paths[1]) as f:
        recs = list(csv.DictReader(f))
    # per row of the table (2 layers, mean, random): 3 pairs x (cos, cos_head, overlap, cka, r2) + 3 eranks
    assert len(recs) == 4 * (3 * 5 + 3) + 2
    lines = {line.split(" | ")[0][2:]: line for line in md_table.splitlines()[2:]}
    value = {(r["layer"], r["measure"], r["pair"]): float(r["value"]) for r in recs}
    for label, line in lines.items():
        cells = line.strip("| ").split(" | ")[1:]
        pairs = ("Wq vs Wk", "Wq vs Wv", "Wk vs Wv")
        expect = ([f"{value[label, 'cos', p]:.3f} ({value[label, 'cos_head', p]:.3f})" for p in pairs]
                  + [f"{value[label, 'erank', n]:.1f}" for n in ("Wq", "Wk", "Wv")]
                  + [f"{value[label, m, p]:.3f}" for m in ("overlap", "cka", "r2") for p in pairs])
        assert cells == expect
    assert value["1", "input_erank", ""] == 3.25


def test_one_projection_is_not_described_by_the_pair_measures_its_table_lacks(tmp_path, capsys):
    save_ckpt(tmp_path, "q_k_v")
    data = tmp_path / "data"
    data.mkdir()
    np.arange(40, dtype=np.uint16).tofile(data / "val.bin")
    code, out, _ = run_main(capsys, f"--out_dir={tmp_path}", f"--data_dir={data}", "--tokens=16", "--out=")
    assert code is None
    assert "one projection (Wq=Wk=Wv): no pair to compare, its effective rank only." in out
    assert "cos:" not in out and "overlap:" not in out and "CKA" not in out
    assert "erank of each layer's attention input" in out and "| layer | erank Wq=Wk=Wv (of 32) |" in out


@pytest.mark.parametrize("proj, panels", [("q_k_v", 1), ("qk_v", 3)])
def test_the_figure_draws_no_empty_pair_panels_for_one_projection(tmp_path, capsys, monkeypatch, proj, panels):
    save_ckpt(tmp_path, proj)
    data = tmp_path / "data"
    data.mkdir()
    np.arange(40, dtype=np.uint16).tofile(data / "val.bin")
    titles = []
    monkeypatch.setattr(experiments.analyze, "save_figure",
                        lambda fig, path, **kw: titles.extend(a.get_title() for a in fig.axes))
    code, _, _ = run_main(capsys, f"--out_dir={tmp_path}", f"--data_dir={data}", "--tokens=16",
                          f"--out={tmp_path / 'fig'}")
    assert code is None and len(titles) == panels and "effective rank (dotted: random matrices)" in titles


def test_a_closed_output_after_the_files_is_not_called_nothing_written(tmp_path, capfd, monkeypatch):
    # `python -m experiments.analyze ... | head -1`: the pipe closed at the "wrote" line, after the table and figure
    # were written, and the stop said "nothing was written"
    from configurator import cli
    save_ckpt(tmp_path, "qk_v")
    real_print = print

    def closed_at_wrote(*args, **kwargs):
        if args and str(args[0]).startswith("\nwrote"):
            raise BrokenPipeError(32, "Broken pipe")
        real_print(*args, **kwargs)
    monkeypatch.setattr("builtins.print", closed_at_wrote)
    with pytest.raises(SystemExit):
        cli(lambda: main([f"--out_dir={tmp_path}", "--out=" + str(tmp_path / "out")]), experiments.analyze.AFTER)
    err = capfd.readouterr().err
    assert sorted(os.listdir(tmp_path / "out")) == ["projections.csv", "projections.md", "projections.png"]
    assert "nothing was written" not in err and err.endswith("written together when the analysis ends, not before.\n")


def test_a_non_ascii_folder_outside_utf8_mode_is_drawn_in_the_title(tmp_path):
    # PYTHONUTF8=0 LC_ALL=C gives the command line's "runé" as 'run\udcc3\udca9': the figure's title, the folder, was
    # a TypeError from matplotlib's FT2Font (a traceback after the table, nothing written)
    run = tmp_path / "runé"
    run.mkdir()
    save_ckpt(run, "qk_v")
    env = dict(os.environ, PYTHONUTF8="0", LC_ALL="C", PYTHONCOERCECLOCALE="0")
    r = subprocess.run([sys.executable, "-m", "experiments.analyze", f"--out_dir={run}"], cwd=ROOT, env=env,
                       capture_output=True)
    assert r.returncode == 0 and b"Traceback" not in r.stderr, r.stderr[-2000:]
    assert (run / "projections.png").stat().st_size > 0 and (run / "projections.md").exists()



def test_a_study_run_from_another_projects_folder_imports_this_repositorys_modules(tmp_path):
    # experiments/README.md: run from another folder with the repository on PYTHONPATH; `python -m` puts that folder
    # first, and a nanoGPT checkout's own configurator.py and model.py were imported (an ImportError traceback)
    (tmp_path / "configurator.py").write_text("x = 1\n")
    (tmp_path / "model.py").write_text("class GPT:\n    pass\n")
    (tmp_path / "run").mkdir()
    save_ckpt(tmp_path / "run", "qk_v")
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-m", "experiments.analyze", "--out_dir=run", "--out=out"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert (tmp_path / "out" / "projections.md").exists()


def test_a_folder_named_with_dollar_signs_is_drawn_in_the_title_as_it_is(tmp_path, capsys):
    # out_$RUN_$SEED, a shell variable in single quotes: matplotlib parsed "$RUN_$" in the title as math, a
    # ParseSyntaxException traceback after the table, nothing written
    run = tmp_path / "out_$RUN_$SEED"
    run.mkdir()
    save_ckpt(run, "qk_v")
    main([f"--out_dir={run}", "--tokens=64"])
    assert (run / "projections.png").stat().st_size > 0 and (run / "projections.md").exists()


def test_a_run_stopped_midway_is_named_as_not_finished(tmp_path):
    # a study's run killed at iteration 50 of 600 was measured and written with nothing to say so
    save_ckpt(tmp_path, "qkv")
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    torch.save(dict(ckpt, iter_num=50, config={"max_iters": 600}), tmp_path / "ckpt.pt")
    main([f"--out_dir={tmp_path}", "--tokens=64", "--out="])
    main([f"--out_dir={tmp_path}", "--tokens=64"])
    assert (tmp_path / "projections.md").read_text().startswith(f"{tmp_path} (iteration 50 of 600: not finished): ")
    torch.save(dict(ckpt, iter_num=600, config={"max_iters": 600}), tmp_path / "ckpt.pt")  # finished: as before
    main([f"--out_dir={tmp_path}", "--tokens=64"])
    assert (tmp_path / "projections.md").read_text().startswith(f"{tmp_path}: proj=qkv")


def test_a_run_of_total_tokens_is_finished_at_its_token_count(tmp_path):
    # total_tokens > 0 sets max_iters: a finished run of --total_tokens=1280 (20 iterations of 64 tokens) was
    # "iteration 20 of 600000: not finished", train.py's default max_iters that its config still records
    save_ckpt(tmp_path, "qkv")
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    config = {"max_iters": 600000, "total_tokens": 1280, "batch_size": 4, "block_size": 16,
              "gradient_accumulation_steps": 1}
    torch.save(dict(ckpt, iter_num=20, config=config), tmp_path / "ckpt.pt")
    main([f"--out_dir={tmp_path}", "--tokens=64"])
    assert (tmp_path / "projections.md").read_text().startswith(f"{tmp_path}: proj=qkv")
    torch.save(dict(ckpt, iter_num=10, config=config), tmp_path / "ckpt.pt")
    main([f"--out_dir={tmp_path}", "--tokens=64"])
    assert (tmp_path / "projections.md").read_text().startswith(f"{tmp_path} (iteration 10 of 20: not finished): ")


def test_cka_on_another_data_dir_names_it(tmp_path, capsys):
    # projections.md said "on 16 validation tokens" whether they were the checkpoint's own or --data_dir's
    save_ckpt(tmp_path, "qkv")
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    for d in ("own", "other"):
        (tmp_path / d).mkdir()
        np.arange(40, dtype=np.uint16).tofile(tmp_path / d / "val.bin")
    ckpt["config"]["data_dir"] = str(tmp_path / "own")
    torch.save(ckpt, tmp_path / "ckpt.pt")
    for given, said in (([], "on 32 validation tokens; r2"), ([f"--data_dir={tmp_path / 'own'}"], "on 32 validation "
                        "tokens; r2"), ([f"--data_dir={tmp_path / 'other'}"], f"on 32 validation tokens of "
                                                                           f"{tmp_path / 'other' / 'val.bin'} "
                                                                           f"(--data_dir); r2")):
        code, out, _ = run_main(capsys, f"--out_dir={tmp_path}", "--tokens=32", "--out=", *given)
        assert code is None and said in out


def test_cka_on_its_own_data_dir_prepared_again_says_so(tmp_path, capsys):
    # the checkpoint's data_dir prepared again from other text (or a relative one read from another folder) was
    # measured on without a word: "on 32 validation tokens", as if the model's own, while sample.py says so
    save_ckpt(tmp_path, "qkv")
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    data = tmp_path / "data"
    data.mkdir()
    np.arange(40, dtype=np.uint16).tofile(data / "val.bin")
    ckpt["config"]["data_dir"], ckpt["meta"] = str(data), {"train_tokens": 400, "val_tokens": 40}
    torch.save(ckpt, tmp_path / "ckpt.pt")
    for train_tokens, said in ((400, "on 32 validation tokens; r2"),
                               (900, f"on 32 validation tokens of {data / 'val.bin'} (not the data the checkpoint was "
                                     f"trained on: train_tokens 900 (checkpoint: 400)); r2")):
        (data / "meta.json").write_text(json.dumps({"train_tokens": train_tokens, "val_tokens": 40}))
        for given in ([], [f"--data_dir={data}"]):
            code, out, _ = run_main(capsys, f"--out_dir={tmp_path}", "--tokens=32", "--out=", *given)
            assert code is None and said in out


def test_the_tracked_command_before_its_checkpoint_names_the_run_that_trains_it(tmp_path, capsys, monkeypatch):
    # README's `analyze --out_dir=out-retrofit/qkv_s1337 --out=assets` in a fresh clone was told "train one with
    # train.py", which names no config: that checkpoint is the retrofit study's source
    monkeypatch.chdir(tmp_path)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for extra in (["--out=assets"], []):
        code, _, _ = run_main(capsys, "--out_dir=out-retrofit/qkv_s1337", *extra)
        # from another folder, the repository's train.py and config by their paths (`python train.py` is not here)
        assert code == ("no checkpoint at out-retrofit/qkv_s1337/ckpt.pt, the retrofit study's seed-1337 source: train "
                        f"it with `python -m experiments.retrofit` (every run of the study) or `python {repo}/train.py "
                        f"{repo}/config/cpu_lm.py --seed=1337 --eval_interval=600 --eval_tokens=106496 "
                        "--out_dir=out-retrofit/qkv_s1337` (this one).")
        assert list(tmp_path.iterdir()) == []


def two_runs(a, b):
    """Two runs of one shape but proj, a (qkv) and b (qk_v), saved in their folders (made here)."""
    for run, proj in ((a, "qkv"), (b, "qk_v")):
        run.mkdir(parents=True)
        save_ckpt(run, proj)


def contents(folder):
    """{name: bytes} of folder's files: what a refused analysis must leave as it was."""
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_another_runs_analysis_in_the_same_out_is_not_replaced(tmp_path):
    # a second run analysed into the same --out replaced the first's projections.* without a word (eval.py refuses
    # another run's evaluation there); the same run again, a stopped one finished since, or a copy made with cp -r
    # analysed in its own folder, replaces its own
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    two_runs(a, b)
    main([f"--out_dir={a}", "--tokens=64", f"--out={out}"])
    before = contents(out)
    with pytest.raises(SystemExit) as e:
        main([f"--out_dir={b}", "--tokens=64", f"--out={out}"])
    assert str(e.value) == f"--out {out} holds the analysis of another run, {a} (projections.md), which this one " \
                           f"would replace; give another --out to keep both, or remove {out}/projections.* to " \
                           f"replace them."
    assert contents(out) == before
    main([f"--out_dir={a / 'ckpt.pt'}", "--tokens=64", f"--out={out}"])  # a, named by its checkpoint
    main([f"--out_dir={a}", "--tokens=64"])
    (b / "projections.md").write_bytes((a / "projections.md").read_bytes())  # b copied from a, then trained on
    main([f"--out_dir={b}", "--tokens=64"])
    assert (b / "projections.md").read_text().startswith(f"{b}: proj=qk_v")
    # a projections.md that cannot be read, or names no run, refuses nothing (the swept reader's promise)
    (tmp_path / "odd" / "projections.md").mkdir(parents=True)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "projections.md").write_bytes(b"\xff\xfe\x00 not ours\n")
    assert analysed_run(str(tmp_path / "odd")) is None and analysed_run(str(tmp_path / "bin")) is None


def test_an_analysis_without_data_does_not_replace_the_one_with_cka(tmp_path, monkeypatch, capsys):
    # run from another folder, the checkpoint's relative data_dir is missing: its analysis without CKA and R2
    # replaced the run's own measured one without a word
    run = tmp_path / "run"
    run.mkdir()
    save_ckpt(run, "qkv")
    ckpt = torch.load(run / "ckpt.pt", weights_only=True)
    torch.save({**ckpt, "config": {"data_dir": "data"}}, run / "ckpt.pt")
    (tmp_path / "data").mkdir()
    np.arange(40, dtype=np.uint16).tofile(tmp_path / "data" / "val.bin")
    monkeypatch.chdir(tmp_path)
    main(["--out_dir=run", "--tokens=32"])
    before = contents(run)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(SystemExit) as e:
        main([f"--out_dir={run}", "--tokens=32"])
    assert str(e.value) == f"--out {run} holds this run's analysis with CKA and R2, and this one has none (no " \
                           f"val.bin in 'data' from this folder, {elsewhere}), so it would replace them; set " \
                           f"--data_dir to its prepared data (or run from the folder it was trained in), or remove " \
                           f"{run}/projections.* to replace it."
    assert contents(run) == before
    main([f"--out_dir={run}", "--tokens=32", "--out="])  # printed only: nothing replaced
    main([f"--out_dir={run}", "--tokens=32", f"--data_dir={tmp_path / 'data'}"])  # as advised
    assert "linear CKA of the outputs on 32 validation tokens" in (run / "projections.md").read_text()


@pytest.mark.parametrize("first, second", [(("", "runs/a", "rep"), ("runs", "b", "../rep")),
                                           (("runs", "a", "../rep"), ("", "runs/b", "rep"))],
                         ids=["from another folder", "in a sibling folder"])
def test_another_runs_analysis_named_from_elsewhere_is_not_replaced(first, second, tmp_path, monkeypatch):
    # projections.md names its run as its command gave it: runs/a given in tmp_path is no folder from runs/, and a
    # given in runs/ none from tmp_path nor from rep's folders up; a run of another shape analysed into the same --out
    # from the other folder replaced it without a word
    two_runs(tmp_path / "runs" / "a", tmp_path / "runs" / "b")
    (where, run, out), (there, other, other_out) = first, second
    monkeypatch.chdir(tmp_path / where)
    main([f"--out_dir={run}", "--tokens=64", f"--out={out}"])
    before = contents(tmp_path / "rep")
    monkeypatch.chdir(tmp_path / there)
    with pytest.raises(SystemExit) as e:
        main([f"--out_dir={other}", "--tokens=64", f"--out={other_out}"])
    assert str(e.value).startswith(f"--out {other_out} holds the analysis of another run, a (projections.md)")
    assert contents(tmp_path / "rep") == before
    main([f"--out_dir={other[:-1]}a", "--tokens=64", f"--out={other_out}"])  # the same run, named from here: its own


def test_another_runs_analysis_in_a_folder_named_with_a_dash_names_the_files_as_rm_reads_them(tmp_path, monkeypatch):
    # --out=-rep: "remove -rep/projections.*", typed as rm -rep/projections.*, was "rm: invalid option -- 'e'"
    two_runs(tmp_path / "a", tmp_path / "b")
    monkeypatch.chdir(tmp_path)
    main(["--out_dir=a", "--tokens=64", "--out=-rep"])
    with pytest.raises(SystemExit, match=r"or remove \./-rep/projections\.\* to replace them\.$"):
        main(["--out_dir=b", "--tokens=64", "--out=-rep"])


def test_another_runs_analysis_named_under_another_locale_is_not_replaced(tmp_path, monkeypatch):
    # projections.md is UTF-8 under any locale: 'é' read back under PYTHONUTF8=0 LC_ALL=C was no folder there, and
    # another run analysed into the same --out replaced it without a word
    run, other, out = tmp_path / "é", tmp_path / "b", tmp_path / "out"
    two_runs(run, other)
    main([f"--out_dir={run}", "--tokens=64", f"--out={out}"])
    before = contents(out)
    env = dict(os.environ, PYTHONUTF8="0", LC_ALL="C", PYTHONCOERCECLOCALE="0")
    r = subprocess.run([sys.executable, "-m", "experiments.analyze", f"--out_dir={other}", "--tokens=64",
                        f"--out={out}"], cwd=ROOT, env=env, capture_output=True, text=True, errors="replace",
                       timeout=300)
    assert r.returncode == 1 and "holds the analysis of another run" in r.stderr, r.stderr[-2000:]
    assert contents(out) == before
    # and a UTF-8 name typed under a Latin-1 locale ('Ã¼' to Python there) is saved as the name it spells
    monkeypatch.setattr(sys, "getfilesystemencoding", lambda: "iso8859-1")
    typed = tmp_path / "ü".encode("utf-8").decode("latin-1")
    typed.mkdir()
    save_ckpt(typed, "qkv")
    main([f"--out_dir={typed}", "--tokens=64"])
    assert (typed / "projections.md").read_text(encoding="utf-8").startswith(f"{tmp_path}/ü: proj=qkv")


def test_a_link_pointed_at_another_run_since_does_not_replace_its_analysis(tmp_path, monkeypatch):
    # projections.md names its run as given: `latest`, pointed from a (qkv) at b (qk_v) since, was the same name, and
    # b's analysis replaced a's without a word; a model of another shape is another run
    two_runs(tmp_path / "a", tmp_path / "b")
    monkeypatch.chdir(tmp_path)
    os.symlink("a", "latest")
    main(["--out_dir=latest", "--tokens=64", "--out=rep"])
    main(["--out_dir=latest", "--tokens=64", "--out=rep"])  # the same run again: its own
    before = contents(tmp_path / "rep")
    os.remove("latest")
    os.symlink("b", "latest")
    with pytest.raises(SystemExit, match="holds the analysis of another run, latest"):
        main(["--out_dir=latest", "--tokens=64", "--out=rep"])
    assert contents(tmp_path / "rep") == before
