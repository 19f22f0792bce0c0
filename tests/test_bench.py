import csv
import json
import os

import pytest
import torch

import bench
from model import GPT, GPTConfig
from test_bad_inputs import tree_digest
from test_train import ROOT

V_IS_K = {"qk_v", "q_k_v"}  # DESIGN.md: these variants cache K only


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_cache_section_bytes_equal_theory(tmp_path):
    bench.main(["--what=cache", "--quick", f"--out={tmp_path}"])
    assert (tmp_path / "cache_savings.png").stat().st_size > 0
    rows = read_csv(tmp_path / "cache_savings.csv")
    contexts = sorted({int(r["context"]) for r in rows})
    assert len(rows) == len(bench.PAPER_SHAPES) * len(bench.VARIANTS) * len(contexts)
    qkv = {(r["shape"], r["context"]): int(r["allocated_bytes"]) for r in rows if r["variant"] == "QKV"}
    for r in rows:
        n_layer, n_head, n_embd, t = (int(r[k]) for k in ("n_layer", "n_head", "n_embd", "context"))
        kv, d = int(r["n_kv_head"]) or n_head, n_embd // n_head
        allocated = int(r["allocated_bytes"])
        assert allocated == int(r["theory_bytes"])
        if r["attn"] == "linear":  # fixed state whatever the context: D x D plus a D normaliser per key head, bf16
            assert allocated == n_layer * kv * (d * d + d) * 2
        else:
            assert allocated == n_layer * kv * d * (1 if r["proj"] in V_IS_K else 2) * 2 * t
        assert float(r["reduction_vs_qkv"]) == pytest.approx(1 - allocated / qkv[(r["shape"], r["context"])])


def test_decode_prefill_train_step_kernel_quick(tmp_path, capsys):
    frames = torch._dynamo.utils.counters["frames"]
    frames.clear()
    bench.main(["--what=decode,prefill,train,step,kernel", "--quick", "--device=cpu", f"--out={tmp_path}"])
    out = capsys.readouterr().out
    assert "needs CUDA" in out
    assert (tmp_path / "decode_speed.png").stat().st_size > 0
    assert not list(tmp_path.glob("kernel*"))
    names = [name for name, _ in bench.VARIANTS]
    decode = read_csv(tmp_path / "decode_speed.csv")
    contexts = sorted({int(r["context"]) for r in decode})
    assert len(contexts) > 1
    assert [r["variant"] for r in decode] == (names + [f"{n}, compiled" for n in bench.COMPILED]) * len(contexts)
    assert all(float(r["ms_per_step"]) > 0 for r in decode)
    assert all(float(r["ms_min"]) <= float(r["ms_per_step"]) <= float(r["ms_max"]) for r in decode)  # the spread
    assert all(float(r["speed_vs_qkv"]) == 1 for r in decode if r["variant"] == "QKV")
    # every compiled row was compiled, within dynamo's recompile limit (8 graphs of forward's code): a check that
    # read cache.end in the compiled step made each step compile twice, and past the limit the last variant ran
    # eagerly under its "compiled" label
    assert frames["total"] == frames["ok"] <= 2 * len(bench.COMPILED)
    train = read_csv(tmp_path / "train_speed.csv")
    assert [r["variant"] for r in train] == names
    assert float(train[0]["ratio_vs_qkv"]) == 1 and all(float(r["tokens_per_s"]) > 0 for r in train)
    assert [r["variant"] for r in read_csv(tmp_path / "train_step.csv")] == ["QKV", "Q-K=V"]
    # its header names what ran: the CPU's AdamW is not fused, and --quick's 2 x 32 is no paper's micro-batch
    assert ("micro-batch 2 x 32, dropout 0.1, forward + backward + AdamW, float32, eager; the second step is timed =="
            in out)
    prefill = read_csv(tmp_path / "prefill.csv")
    assert float(prefill[2]["vs_reference"]) == 1  # the reference itself
    logits = 64 * 50304 * 4  # the [T, vocab] float32 logits of the quick run's 64-token prompt
    assert int(prefill[3]["largest_tensor_bytes"]) == logits  # the full forward builds them, generate never does
    assert all(int(r["largest_tensor_bytes"]) < logits for r in prefill[:3])


def test_memory_plan_counts_what_a_real_model_and_adamw_hold(tmp_path):
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=2, n_head=4, n_embd=64, block_size=32, vocab_size=256, proj="qk_v", n_kv_head=2))
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu")
    x = torch.randint(256, (2, 32))
    model(x, x)[1].backward()
    opt.step()  # AdamW allocates its state on the first step
    params = list(model.parameters())
    held = (sum(p.nbytes for p in params), sum(p.grad.nbytes for p in params),
            sum(t.nbytes for st in opt.state.values() for t in st.values()))
    assert bench.state_bytes_per_gpu(model, "ddp", 1, 4) == held
    assert bench.state_bytes_per_gpu(model, "ddp", 8, 4) == held  # DDP: a whole copy on every GPU
    assert bench.state_bytes_per_gpu(model, "fsdp", 1, 1) == held
    weights, grads, adam = bench.state_bytes_per_gpu(model, "fsdp", 4, 2)  # a quarter each, and the full fp32
    assert (weights, grads, adam) == (held[0] // 4, held[1] // 4 + held[1], held[2] // 4)  # gradient accumulates

    # Korthikanti et al.'s 34 bytes x n_embd per token and layer for a GPT-2 block with flash attention, + logits
    c = GPTConfig(n_layer=3, n_head=4, n_embd=64, block_size=32, vocab_size=256, dropout=0.1)
    assert bench.activation_bytes(c, 2, grad_ckpt=False) == 2 * 32 * (3 * 34 * 64 + 6 * 256)
    assert bench.activation_bytes(c, 2, grad_ckpt=True) == 2 * 32 * (3 * 2 * 64 + 34 * 64 + 6 * 256)

    bench.main(["--what=memory", f"--out={tmp_path}"])
    rows = read_csv(tmp_path / "memory.csv")
    assert len(rows) == len(bench.run_configs()) * 2 * len(bench.GPU_COUNTS)
    seven = {(r["parallel"], r["gpus"]): r for r in rows if r["config"] == "qkv_7b"}
    assert int(seven["ddp", "8"]["weights"]) == 4 * 6_658_596_864  # fp32 master weights
    assert seven["ddp", "8"]["fits_80gb"] == "no" and seven["fsdp", "8"]["fits_80gb"] == "yes"
    assert int(seven["ddp", "1"]["kv_cache_serving"]) == 32 * 2 * 4096 * 2 * 2048  # K and V, 32 layers, bf16, 2k
    assert (tmp_path / "memory.md").read_text().count("| qkv_7b |") == 6


def test_bad_section_is_one_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="--what must be a comma-separated subset of "
                                         "cache, memory, kernel, prefill, train, step, decode"):
        bench.main(["--what=cache,speed", f"--out={tmp_path}"])


def test_a_run_that_measures_nothing_or_stops_leaves_no_folder(tmp_path, monkeypatch):
    # --what=kernel on a CPU printed "skipped" and exited 0 with an empty --out; Ctrl-C in the first section left
    # the --out it had made (the seventh pass)
    with pytest.raises(SystemExit) as e:
        bench.main(["--what=kernel,step", "--device=cpu", f"--out={tmp_path / 'k'}"])
    assert str(e.value) == "--what=kernel,step measures nothing on cpu: kernel and step need CUDA; run it with " \
                           "--device=cuda on a GPU."

    def ctrl_c(args, device):
        raise KeyboardInterrupt
    monkeypatch.setitem(bench.BENCHES, "cache", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        bench.main(["--what=cache", "--device=cpu", f"--out={tmp_path / 'a' / 'b'}"])
    assert os.listdir(tmp_path) == []


def test_the_kernel_section_under_the_interpreter_is_one_sentence_before_any_section(tmp_path, monkeypatch):
    # TRITON_INTERPRET=1 left exported on a GPU machine: the kernel section ran decode_attention in numpy and stopped
    # on its bfloat16 refusal, a ValueError traceback after the cache and memory sections had written
    pytest.importorskip("triton")
    import kernel
    monkeypatch.setattr(kernel, "INTERPRETED", True)
    monkeypatch.setattr(bench, "check_device", lambda p, name: None)  # --device=cuda on a machine without one
    with pytest.raises(SystemExit, match="kernel section would time Triton's CPU interpreter: TRITON_INTERPRET=1 is "
                                         "set; run with TRITON_INTERPRET=0; or leave it out: --what=cache"):
        bench.main(["--what=cache,kernel", "--device=cuda", f"--out={tmp_path / 'g'}"])
    assert os.listdir(tmp_path) == []


def test_a_compile_that_cannot_work_is_one_sentence_after_the_other_sections(tmp_path, monkeypatch):
    # the decode section times torch.compile'd steps: without a C++ compiler (or under PYTHONUTF8=0 LC_ALL=C)
    # bench.py ended in inductor's traceback; the sections before it had written their files
    class InvalidCxxCompiler(RuntimeError):
        __module__ = "torch._inductor.exc"

    def no_compiler(args, device):
        raise InvalidCxxCompiler("No working C++ compiler found in torch._inductor.config.cpp.cxx\nmore")
    monkeypatch.setitem(bench.BENCHES, "decode", no_compiler)
    with pytest.raises(SystemExit) as e:
        bench.main(["--what=cache,decode", "--quick", "--device=cpu", f"--out={tmp_path}"])
    assert str(e.value) == ("bench.py's decode section: torch.compile failed (No working C++ compiler found in "
                            "torch._inductor.config.cpp.cxx); it needs a working C++ compiler on CPU (Triton on a "
                            "GPU): install one, or leave it out: --what=cache.")
    assert sorted(os.listdir(tmp_path)) == ["cache_savings.csv", "cache_savings.png"]


def test_a_section_the_disk_stops_at_its_figure_claims_no_file(tmp_path, monkeypatch, capsys):
    # `ulimit -f 100` under --out: the figure refused, the CSV kept its old text, yet `wrote .../cache_savings.csv`
    # was printed before the figure was tried
    (tmp_path / "cache_savings.csv").write_text("mine\n")
    real = bench.save_figure

    def full(fig, path, **kw):
        raise SystemExit(f"could not write {path} (File too large); the file there is unchanged")
    monkeypatch.setattr(bench, "save_figure", full)
    with pytest.raises(SystemExit, match="cache_savings.png"):
        bench.main(["--what=cache", "--quick", f"--out={tmp_path}"])
    assert "wrote" not in capsys.readouterr().out and (tmp_path / "cache_savings.csv").read_text() == "mine\n"
    monkeypatch.setattr(bench, "save_figure", real)
    bench.main(["--what=cache", "--quick", f"--out={tmp_path}"])
    out = capsys.readouterr().out
    assert f"wrote {tmp_path}/cache_savings.csv\nwrote {tmp_path}/cache_savings.png\n" in out


def test_the_tracked_run_changes_its_files_together_or_not_at_all(tmp_path, monkeypatch):
    # a full run into assets/ stopped in its last section (decode) left the new tables of the sections before it
    # beside the old ones (the seventh pass)
    out = tmp_path / "assets"
    out.mkdir()
    (out / "cache_savings.csv").write_text("the tracked table\n")
    monkeypatch.setattr(bench, "tracked_run", lambda *args: True)

    def ctrl_c(args, device):
        raise KeyboardInterrupt
    monkeypatch.setitem(bench.BENCHES, "decode", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        bench.main(["--what=cache,decode", "--device=cpu", f"--out={out}"])
    assert os.listdir(out) == ["cache_savings.csv"] and (out / "cache_savings.csv").read_text() == "the tracked table\n"
    bench.main(["--what=cache", "--device=cpu", f"--out={out}"])
    assert sorted(os.listdir(out)) == ["cache_savings.csv", "cache_savings.png"]
    assert (out / "cache_savings.csv").read_text().startswith("shape,variant,")


def test_only_a_full_run_writes_into_assets(tmp_path, monkeypatch):
    assets = os.path.join(ROOT, "assets")
    before = tree_digest(assets)
    (tmp_path / "link").symlink_to(assets)
    monkeypatch.chdir(ROOT)
    # --quick replaced the tracked cache_savings.* when --out defaulted to assets/; any spelling of the path is refused
    for argv in (["--quick"], ["--what=cache", "--quick"], ["--what=cache"]):
        for out in ("assets", assets, f"{assets}/../assets", tmp_path / "link"):
            with pytest.raises(SystemExit, match=r"is in assets/, which only the full default run \(`OMP_NUM_THREADS=1 "
                                                 r"python bench.py --out=assets`\) writes"):
                bench.main([*argv, f"--out={out}"])
    # a full run into the other device's folder, or on CPU with more threads (wall-clock timings), replaced the
    # tracked tables (the sixth pass); every section is a stub here: nothing is measured, nothing written
    ran = []
    monkeypatch.setattr(bench, "BENCHES", {k: lambda args, device, k=k: ran.append(k) for k in bench.BENCHES})
    monkeypatch.setattr(bench, "writable_dir", lambda *a, **k: None)
    # the message names the run that writes the folder aimed at: assets/gpu's is the CUDA one (it named the CPU
    # run's `--out=assets`, which does not write assets/gpu)
    cpu_run = r"`OMP_NUM_THREADS=1 python bench.py --out=assets`"
    gpu_run = r"`python bench.py --device=cuda --out=assets/gpu`"
    for threads, out, command in ((1, "assets/gpu", gpu_run), (1, "assets/gpu/x", gpu_run), (1, "assets/gpux", cpu_run),
                                  (1, "assets/extra", cpu_run)):
        monkeypatch.setattr(bench.torch, "get_num_threads", lambda: threads)
        with pytest.raises(SystemExit, match=rf"^{out} is in assets/, which only the full default run \({command}\) "
                                             r"writes"):
            bench.main([f"--out={out}", "--device=cpu"])
    # the full command with OMP_NUM_THREADS unset was told only to run the full command, which it was, but for that
    monkeypatch.setattr(bench.torch, "get_num_threads", lambda: 2)
    with pytest.raises(SystemExit, match=rf"^assets is in assets/, whose CPU timings are CPU time on one thread, and "
                                         rf"this run has 2 threads; run {cpu_run}"):
        bench.main(["--out=assets", "--device=cpu"])
    monkeypatch.setattr(bench.torch, "get_num_threads", lambda: 1)
    bench.main(["--out=assets", "--device=cpu"])  # the tracked CPU run itself
    assert ran == list(bench.BENCHES)
    args = bench.get_parser().parse_args(["--out=assets/gpu"])  # and the GPU one, as its device would see it
    assert bench.tracked_run(args, list(bench.BENCHES), torch.device("cuda"))
    assert not bench.tracked_run(bench.get_parser().parse_args(["--out=assets"]), list(bench.BENCHES),
                                 torch.device("cuda"))
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    bench.main(["--what=cache", "--quick"])  # the default --out: an untracked folder, not the full run's out-bench
    assert sorted(os.listdir(tmp_path / "out-bench-quick")) == ["cache_savings.csv", "cache_savings.png"]
    assert not os.path.exists(tmp_path / "out-bench")
    assert tree_digest(assets) == before


def test_a_users_config_the_memory_plan_cannot_read_is_one_sentence_naming_it(tmp_path, monkeypatch):
    # a run file of one's own in config/ that does not run, or sets a model train.py refuses, was a traceback from
    # exec or GPTConfig (n_layer = "2": "'>=' not supported"); batch_size = 0 a plan for no batch, exit 0
    real = bench.glob.glob
    mine = tmp_path / "mine.py"
    monkeypatch.setattr(bench.glob, "glob", lambda pattern: real(pattern) + [str(mine)])
    for body, why in (("n_embd = 3O", ", line 1: SyntaxError: invalid decimal literal; fix the file."),
                      ('n_layer = "2"', ": n_layer = '2' is no int; the memory plan covers every run in config/: fix "
                                        "the file, or move it out of config/."),
                      ("n_head = 4\nn_kv_head = 3", ": n_kv_head must divide n_head=4"),
                      ("batch_size = 0", ": batch_size = 0 is no whole number >= 1;"),
                      # a name train.py refuses was left out: the plan of the model without it, exit 0
                      ("n_layers = 12", ": n_layers is no setting of train.py (did you mean n_layer?); the memory")):
        mine.write_text(body + "\n")
        with pytest.raises(SystemExit) as e:
            bench.main(["--what=memory", "--quick", f"--out={tmp_path / 'out'}"])
        assert str(e.value).startswith(f"config file {str(mine)!r}{why}"), str(e.value)
        assert not (tmp_path / "out").exists()


def test_the_memory_plan_of_a_config_starting_from_gpt2_plans_gpt2s_shape(tmp_path, monkeypatch):
    # train.py gives a GPT-2 init_from GPT-2's shape (keeping the file's proj, n_kv_head, dropout): the plan built
    # the file's shape instead, here the default 124M model for a gpt2-xl run, a fifth of its parameters, exit 0
    from convert import gpt2_config
    real = bench.glob.glob
    mine = tmp_path / "mine.py"
    monkeypatch.setattr(bench.glob, "glob", lambda pattern: real(pattern) + [str(mine)])
    mine.write_text('init_from = "gpt2-xl"\nproj = "qk_v"\nbatch_size = 1\n')
    bench.main(["--what=memory", f"--out={tmp_path / 'out'}"])
    with open(tmp_path / "out" / "memory.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["config"] == "mine")
    with torch.device("meta"):
        params = GPT(gpt2_config("gpt2-xl", proj="qk_v")).num_params()
    assert int(row["params"]) == params and int(row["kv_cache_serving"]) == 48 * 1600 * 2 * 1024  # K only, bf16
    mine.write_text('init_from = "gpt2-xl"\nn_kv_head = 3\n')  # GPT-2 XL's 25 heads: one sentence, as train.py's
    with pytest.raises(SystemExit) as e:
        bench.main(["--what=memory", f"--out={tmp_path / 'out2'}"])
    assert str(e.value).startswith(f"config file {str(mine)!r}: n_kv_head must divide n_head=25"), str(e.value)


def test_the_memory_plan_of_a_conversion_config_refuses_a_shape_its_checkpoint_does_not_have(tmp_path, monkeypatch):
    # a config converting a trained run (init_from its folder) without the run's shape: train.py refuses it
    # ("conversion keeps n_layer, ..."), the plan planned GPT-2's default 124M model for a 0.03M run, exit 0
    from dataclasses import asdict
    real = bench.glob.glob
    mine, run = tmp_path / "mine.py", tmp_path / "run"
    monkeypatch.setattr(bench.glob, "glob", lambda pattern: real(pattern) + [str(mine)])
    shape = dict(vocab_size=256, block_size=32, n_layer=2, n_head=2, n_embd=32)
    run.mkdir()
    torch.save({"model": GPT(GPTConfig(**shape)).state_dict(), "model_args": asdict(GPTConfig(**shape))},
               run / "ckpt.pt")
    conversion = f'init_from = "{run}"\nproj = "qk_v"\nn_kv_head = 1\nconvert_method = "split"\nbatch_size = 4\n'
    mine.write_text(conversion)
    with pytest.raises(SystemExit) as e:
        bench.main(["--what=memory", "--quick", f"--out={tmp_path / 'out'}"])
    assert str(e.value).startswith(f"config file {str(mine)!r}: conversion keeps vocab_size, block_size, n_layer, "
                                   f"n_head, n_embd (source 256, 32, 2, 2, 32, destination 50304"), str(e.value)
    assert not (tmp_path / "out").exists()
    mine.write_text(conversion + "".join(f"{k} = {v}\n" for k, v in shape.items()))  # the run's shape: planned
    bench.main(["--what=memory", "--quick", f"--out={tmp_path / 'out'}"])
    with open(tmp_path / "out" / "memory.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["config"] == "mine")
    with torch.device("meta"):
        params = GPT(GPTConfig(**shape, proj="qk_v", n_kv_head=1)).num_params()
    assert int(row["params"]) == params == 31520


def test_a_second_run_into_the_same_out_waits_its_turn(tmp_path):
    # two at once mixed their CSVs and figures in one folder, and each timed the other's load as its own speed
    import checkpoint
    with checkpoint.hold_lock(str(tmp_path), "held by the test, as a running bench.py holds it"):
        with pytest.raises(SystemExit) as e:
            bench.main(["--what=cache", "--quick", f"--out={tmp_path}"])
    assert str(e.value) == f"--out {tmp_path} is being written by another bench.py run; wait for it to end (two at " \
                           f"once would also slow each other's timings) or choose another --out."
    assert os.listdir(tmp_path) == []


def test_cache_self_check_is_no_assert(tmp_path, monkeypatch):
    # an assert, which `python -O` skips: a cache of another size than the theory's was written to the table
    monkeypatch.setattr(GPT, "kv_bytes_per_token", lambda self, dtype: 1)
    with pytest.raises(SystemExit) as e:
        bench.main(["--what=cache", "--quick", f"--out={tmp_path}"])
    assert "bench.py's self-check failed" in str(e.value) and "where kv_bytes_per_token says" in str(e.value)
    assert not list(tmp_path.iterdir())


def test_a_quick_run_does_not_replace_a_full_runs_tables_in_one_out(tmp_path):
    # a full run's tables (minutes to measure) were replaced by --quick's tiny shapes in the same --out, exit 0
    out = tmp_path / "mine"
    bench.main(["--what=cache", f"--out={out}"])
    assert json.loads((out / bench.FULL_RECORD).read_text()) == {"sections": ["cache"]}
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(SystemExit) as e:
        bench.main(["--what=cache,memory", "--quick", f"--out={out}"])
    assert str(e.value) == f"--out {out} holds a full run's cache table (bench_full.json), which --quick's tiny " \
                           f"shapes would replace; leave --out out (--quick writes out-bench-quick) or choose " \
                           f"another folder."
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    bench.main(["--what=memory", "--quick", f"--out={out}"])  # another section's tables: nothing of the full run's
    assert (out / "cache_savings.csv").read_bytes() == before["cache_savings.csv"]
    assert json.loads((out / bench.FULL_RECORD).read_text()) == {"sections": ["cache"]}


def test_a_section_skipped_on_cpu_is_not_recorded_as_a_full_runs_table(tmp_path):
    # step skipped on CPU was listed in bench_full.json: --quick's step there was refused for a table never written
    bench.main(["--what=cache,step", f"--out={tmp_path}"])
    assert json.loads((tmp_path / bench.FULL_RECORD).read_text()) == {"sections": ["cache"]}
    assert not (tmp_path / "train_step.csv").exists()


def test_quick_refused_in_its_own_default_out_names_a_fix_that_works(tmp_path, monkeypatch):
    # a full run aimed at out-bench-quick: --quick (--out left out) was told "leave --out out", which it had done
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out-bench-quick").mkdir()
    (tmp_path / "out-bench-quick" / bench.FULL_RECORD).write_text('{"sections": ["cache"]}\n')
    with pytest.raises(SystemExit) as e:
        bench.main(["--what=cache", "--quick"])
    assert str(e.value) == "--out out-bench-quick holds a full run's cache table (bench_full.json), which --quick's " \
                           "tiny shapes would replace; give --quick another --out, or move that run's files out of " \
                           "out-bench-quick."
    # a record that cannot be read was said to hold a train table no run wrote there
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / bench.FULL_RECORD).write_text("garbage\n")
    with pytest.raises(SystemExit) as e:
        bench.main(["--what=train", "--quick", "--out=mine"])
    assert str(e.value) == "--out mine's bench_full.json cannot be read, so every table there counts as a full " \
                           "run's, which --quick's tiny shapes would replace; leave --out out (--quick writes " \
                           "out-bench-quick) or choose another folder."
