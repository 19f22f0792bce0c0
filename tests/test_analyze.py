"""analyze.py: cosine similarity, effective rank, and which projections each variant's table lists."""

import os
import subprocess
import sys

import pytest
import torch

from analyze import analyze, compare, cosine, effective_rank, load, projections, table
from model import GPT, GPTConfig

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
    model = load(tmp_path)
    names = EXPECTED[(proj, n_kv_head)]
    for block, ref in zip(model.transformer.h, original.transformer.h):
        mats = projections(block.attn)
        assert list(mats) == names
        # the split matrices are exactly the fused weight, in order
        assert torch.equal(torch.cat([w.flatten(0, 1) for w in mats.values()]), ref.attn.c_attn.weight)
    rows = analyze(model)
    assert len(rows) == 2
    pairs = [(x, y) for i, x in enumerate(names) for y in names[i + 1:]]
    assert all(list(r["cos"]) == pairs and list(r["erank"]) == names for r in rows)
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
    png = tmp_path / "p.png"
    r = subprocess.run([sys.executable, "analyze.py", f"--out_dir={tmp_path}", f"--png={png}"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "| layer | cos Wq, Wk=Wv | erank Wq (of 32) | erank Wk=Wv (of 16) |" in r.stdout
    assert png.stat().st_size > 0


def test_cli_missing_checkpoint_is_one_clear_error(tmp_path):
    r = subprocess.run([sys.executable, "analyze.py", f"--out_dir={tmp_path}"], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode != 0
    assert r.stderr.strip() == f"no checkpoint at {tmp_path}/ckpt.pt: --out_dir must be the folder train.py " \
                               f"saved ckpt.pt in."
