"""experiments/retrofit.py: the plan of runs, and the qkv-shaped stand-in for converted layers its layer attribution uses."""

from dataclasses import replace

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
