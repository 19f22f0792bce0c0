import argparse
import json
import math
import os
import shlex
import shutil
import string
import subprocess
import sys

import numpy as np
import pytest
import tiktoken
import torch

import checkpoint
import eval as ev
import sample
from model import GPT, GPTConfig
from test_sample import BYTES_META, R50K_META, make_ckpt
from test_train import ROOT, make_data, train

ALPHABET = string.ascii_lowercase


@pytest.fixture(scope="module")
def lm_eval():
    return pytest.importorskip("lm_eval")


def request(*args):
    from lm_eval.api.instance import Instance
    return Instance("loglikelihood", {}, args, 0)


def tiny_lm(batch_size, block_size=16):
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=block_size, vocab_size=256, n_layer=2, n_head=2, n_embd=32, proj="qk_v"))
    return ev.CheckpointLM(model.eval(), BYTES_META, batch_size)


def own_logprob(model, ids, n):
    """log p(last n of ids | the tokens before them) from the model's own loss: one forward over the last
    block_size + 1 tokens, the context positions' targets ignored (-1)."""
    ids = torch.tensor(ids[-(model.config.block_size + 1):])
    targets = ids[1:].clone()
    targets[:-n] = -1
    with torch.no_grad():
        logits, loss = model(ids[None, :-1], targets[None])
    greedy = bool((logits[0, -n:].argmax(-1) == ids[-n:]).all())
    return -loss.item() * n, greedy


def test_loglikelihood_is_the_models_cross_entropy(lm_eval):
    lm = tiny_lm(batch_size=3)  # 6 requests of different lengths: two batches, right-padded
    eot = BYTES_META["eot_token"]
    reqs = [("ab", "c"), ("", "hello"), ("the cat", " sat on"), ("x" * 30, "yz"),  # 32 tokens: cropped
            ("0123456789abcdef", "ghi"), (" ", "c")]
    # an empty context starts a document (eot); a context's trailing space moves to the continuation
    want_ids = [list(b"abc"), [eot] + list(b"hello"), list(b"the cat sat on"), list(b"x" * 30 + b"yz"),
                list(b"0123456789abcdefghi"), [eot] + list(b" c")]
    n_cont = [1, 5, 7, 2, 3, 2]  # the tokens scored: the continuation's
    got = lm.loglikelihood([request(*r) for r in reqs])
    for ids, n, (lp, greedy) in zip(want_ids, n_cont, got):
        want, want_greedy = own_logprob(lm.model, ids, n)
        assert lp == pytest.approx(want, rel=1e-5, abs=1e-5)
        assert greedy == want_greedy


@pytest.mark.parametrize("kw,says", [
    (dict(batch_size=-1), "batch_size must be an integer >= 1; got -1"),  # scored nothing: every perplexity 1.0
    (dict(batch_size=0), "batch_size must be an integer >= 1"),  # range()'s ValueError
    (dict(dtype=torch.int64), "dtype must be torch.float32"),  # float32 under autocast's warning
    (dict(dtype="bfloat16"), "dtype must be torch.float32"),
    (dict(causal=False), "the model must be causal"),  # saw the tokens it scored
    # no meta was get_tokenizer's AttributeError; an r50k meta for a byte-level model failed in the forward
    (dict(meta=None), "meta must be the checkpoint's meta dict .*; got NoneType"),
    (dict(meta={"tokenizer": "r50k_base", "eot_token": 50256, "vocab_size": 50257}),
     "meta names tokenizer 'r50k_base' \\(50257 tokens\\) for a model of vocab_size 256"),
    # the whole checkpoint was "unknown tokenizer None in the checkpoint's meta"; a list, "unhashable type"
    (dict(meta={"model": {}, "model_args": {}, "meta": {}}), "meta must be .*; got the whole checkpoint; pass "
                                                             "ckpt\\['meta'\\]"),
    (dict(meta={"tokenizer": ["bytes"], "eot_token": 0}), "meta must be .*; got tokenizer \\['bytes'\\]"),
])
def test_checkpoint_lm_arguments_as_a_library_are_one_sentence(lm_eval, kw, says):
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=256, n_layer=1, n_head=2, n_embd=16, causal=kw.pop("causal", True)))
    meta = kw.pop("meta", BYTES_META)
    with pytest.raises(ValueError, match=says):
        ev.CheckpointLM(model, meta, **kw)
    with pytest.raises(ValueError, match="text holds no words"):  # a ZeroDivisionError
        ev.text_perplexity(tiny_lm(2), "x.txt", "  \n")
    assert ev.CheckpointLM(tiny_lm(2).model, BYTES_META, np.int64(2)).batch_size == 2  # numpy's integers are integers


def test_checkpoint_lm_given_a_state_dict_or_first_0_says_so(lm_eval):
    # the checkpoint's weights for the model were an AttributeError on .config, first = 0 a RuntimeError in gather
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=256, n_layer=1, n_head=2, n_embd=16))
    with pytest.raises(ValueError, match="model must be a GPT .*load_state_dict.*; got OrderedDict"):
        ev.CheckpointLM(model.state_dict(), BYTES_META)
    lm = ev.CheckpointLM(model, BYTES_META)
    with pytest.raises(ValueError, match="first >= 1.*got first = 0"):
        lm.score([([1, 2, 3], 1), ([1, 2, 3], 0)])
    assert lm.score([([1, 2, 3], 3)]) == [(0.0, True)]  # nothing to score: log p 0


def test_checkpoint_lm_follows_the_model_where_it_moves(lm_eval):
    # a notebook that moved the model after making the LM (model.to('cuda')) was sent its inputs on the old device,
    # and the forward's refusal told it to move idx, which the LM makes; meta stands in for the other device here
    model, seen = GPT(GPTConfig(block_size=16, vocab_size=256, n_layer=1, n_head=2, n_embd=16)), []

    class Seen(Exception):
        pass

    def stop(module, args):
        seen.append(args[0].device)
        raise Seen

    lm = ev.CheckpointLM(model, BYTES_META)
    model.to("meta").register_forward_pre_hook(stop)
    with pytest.raises(Seen):  # (generate_until reads it so too; on meta its prompt check cannot read the ids)
        lm.score([(list(b"some words"), 1)])
    assert seen == [torch.device("meta")]


def test_checkpoint_lm_scores_without_dropout(lm_eval):
    # a model left in training mode (as GPT() builds it) scored under dropout: another perplexity every call
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=256, n_layer=1, n_head=2, n_embd=16, dropout=0.5))
    scores = [ev.text_perplexity(ev.CheckpointLM(model.train(), BYTES_META), "x.txt", "some words here")["text"]
              ["logprob"] for _ in range(2)]
    assert scores[0] == scores[1]
    # and trained on after the LM was made (model.train() in a notebook): the next evaluation scored under dropout
    lm = ev.CheckpointLM(model, BYTES_META)
    model.train()
    assert ev.text_perplexity(lm, "x.txt", "some words here")["text"]["logprob"] == scores[0]
    model.train()
    gen = request("some", {"until": [], "max_gen_toks": 2})
    assert lm.generate_until([gen]) == lm.generate_until([gen])  # a ValueError from generate, in training mode
    # and left as it was: a notebook that scored mid-training trained on after it without dropout
    assert model.training
    ev.text_perplexity(lm, "x.txt", "some words here")
    assert model.training
    lm.generate_until([gen])
    assert model.training
    ev.CheckpointLM(model, BYTES_META)  # making one too
    assert model.training


def test_bpe_word_space_moves_to_the_continuation(lm_eval):
    meta = {"tokenizer": "r50k_base", "vocab_size": 50257, "eot_token": 50256}
    model = GPT(GPTConfig(block_size=16, vocab_size=50257, n_layer=1, n_head=1, n_embd=8))
    lm = ev.CheckpointLM(model, meta)
    encode, _ = ev.get_tokenizer(meta)
    # " sat" is one r50k token; "the cat " + "sat" would end the context on a lone space token instead
    assert lm.pair("the cat ", "sat") == (encode("the cat") + encode(" sat"), len(encode("the cat")))
    assert len(encode(" sat")) == 1 and encode("the cat ")[-1] not in encode("the cat")


def test_generation_fits_any_block_size_and_any_token_budget(lm_eval):
    # block_size 1 made a 2-token prompt for 0 new tokens (generate's ValueError), and max_gen_toks 0 kept
    # block_size + 1 prompt tokens (the sixth pass)
    for bs in (1, 4):
        lm = tiny_lm(batch_size=1, block_size=bs)
        got = lm.generate_until([request("abcdefgh", {"until": [], "max_gen_toks": n}) for n in (0, 1, 3, 99)])
        assert got[0] == "" and [len(t) <= n for t, n in zip(got, (0, 1, 3, 99))] == [True] * 4  # a char per byte at most


def test_rolling_loglikelihood_sums_windows_of_block_size(lm_eval):
    lm = tiny_lm(batch_size=2, block_size=16)
    text = "To be, or not to be, that is the question:"  # 42 bytes; with the leading eot token 43 tokens
    ids = [BYTES_META["eot_token"]] + list(text.encode())
    # every token after eot predicted once, in windows cut back from the end, each fed the 16 tokens before its
    # last target (the first one: the start of the document); (start, end) of each window's targets
    want = 0.0
    for start, end in ((1, 11), (11, 27), (27, 43)):
        want += own_logprob(lm.model, ids[max(0, end - 1 - 16):end], end - start)[0]
    got = lm.loglikelihood_rolling([request(text), request(text[:5])])
    assert got[0] == pytest.approx(want, rel=1e-5)
    assert got[1] == pytest.approx(own_logprob(lm.model, ids[:6], 5)[0], rel=1e-5)  # one window, no cropping
    # a continuation longer than block_size is scored whole, in the same windows
    (lp, _), = lm.loglikelihood([request("", text)])
    assert lp == pytest.approx(want, rel=1e-5)


def test_missing_harness_is_one_line_with_the_fix(tmp_path):
    code = ("import sys, runpy; sys.modules['lm_eval'] = None; "  # None in sys.modules makes the import fail
            f"sys.argv = ['eval.py', '--out_dir={tmp_path}']; runpy.run_path('eval.py', run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert r.stdout == ""
    assert r.stderr.strip() == ev.INSTALL  # before looking for a checkpoint: tmp_path has none
    assert "pip install -r requirements-eval.txt" in ev.INSTALL


def make_alphabet_data(path):
    """Byte-level documents that run through the alphabet (z wraps to a): a model learns the next letter fast."""
    rng = np.random.default_rng(0)
    tokens = []
    while len(tokens) < 24_000:
        start, n = rng.integers(26), rng.integers(20, 60)
        tokens += [ord(ALPHABET[(start + i) % 26]) for i in range(n)] + [0]
    tokens = np.array(tokens[:24_000], dtype=np.uint16)
    os.makedirs(path, exist_ok=True)
    tokens[:20_000].tofile(os.path.join(path, "train.bin"))
    tokens[20_000:].tofile(os.path.join(path, "val.bin"))
    with open(os.path.join(path, "meta.json"), "w") as f:
        json.dump(dict(BYTES_META, train_tokens=20_000, val_tokens=4_000, source="test"), f)


def make_task(path):
    """A multiple-choice task in local files: which letter comes next? 12 questions, the label of the last 3 on
    a wrong letter, so a model that learned the alphabet scores exactly 9/12."""
    docs = []
    for i in range(12):
        s = (3 * i) % 26
        run = "".join(ALPHABET[(s + j) % 26] for j in range(5))
        right = ALPHABET[(s + 5) % 26]
        choices = [ALPHABET[(s + 12 + k) % 26] for k in range(3)]
        choices.insert(i % 4, right)
        docs.append({"context": run, "choices": choices, "label": (i % 4 + 1) % 4 if i >= 9 else i % 4})
    with open(path / "alphabet.jsonl", "w") as f:
        f.writelines(json.dumps(d) + "\n" for d in docs)
    with open(path / "alphabet.yaml", "w") as f:
        f.write(f"task: alphabet\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
                f"    test: {path / 'alphabet.jsonl'}\n  cache_dir: {path / 'hf_cache'}\n"  # not ~/.cache
                "test_split: test\noutput_type: multiple_choice\n"
                "doc_to_text: context\ndoc_to_choice: choices\ndoc_to_target: label\ntarget_delimiter: ''\n"
                "metric_list:\n  - metric: acc\n  - metric: acc_norm\n")
    return docs


@pytest.fixture
def offline(monkeypatch):
    """No network, as eval.py sees it; the offline switches it sets are undone after the test."""
    import datasets
    import huggingface_hub.constants as hc
    monkeypatch.setattr(ev, "hub_reachable", lambda: False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", datasets.config.HF_HUB_OFFLINE)
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # the user's switches, unset
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", hc.HF_HUB_OFFLINE)


def test_local_multiple_choice_task_end_to_end(tmp_path, lm_eval, offline, monkeypatch, capsys):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    make_alphabet_data(tmp_path / "data")
    out = tmp_path / "out"
    train(tmp_path / "data", out, "--max_iters=40", "--eval_interval=40")
    docs = make_task(tmp_path)
    ev.main([f"--out_dir={out}", "--tasks=alphabet", "--num_fewshot=0", f"--include_path={tmp_path}",
             "--device=cpu", "--batch_size=5"])
    with open(out / "eval" / "results.json") as f:
        full = json.load(f)
    assert full["checkpoint"]["model_args"]["block_size"] == 32 and full["n-shot"] == {"alphabet": 0}
    res = full["results"]["alphabet"]
    # the expected accuracy from the model's own forward: the choice with the highest log-probability
    model, _ = ev.load_model(ev.parse_args([f"--out_dir={out}"]), "cpu")
    picks = [max(range(4), key=lambda k: own_logprob(model, list((d["context"] + d["choices"][k]).encode()), 1)[0])
             for d in docs]
    want = sum(p == d["label"] for p, d in zip(picks, docs)) / len(docs)
    assert want == 9 / 12  # the model learned the alphabet: right on the 9 true labels, wrong on the 3 false
    assert res["acc,none"] == pytest.approx(want)
    assert res["acc_norm,none"] == pytest.approx(want)  # every choice is one byte: normalising changes nothing
    assert 0 < res["acc_stderr,none"] < 1
    md = (out / "eval" / "results.md").read_text()
    assert md.splitlines()[2:] == [f"| alphabet | acc | {want:.4f} | {res['acc_stderr,none']:.4f} |",
                                   f"| alphabet | acc_norm | {want:.4f} | {res['acc_norm_stderr,none']:.4f} |"]
    assert md == capsys.readouterr().out
    # greedy generation through the KV cache: cut at `until`, or max_gen_toks long; a long prompt is cropped
    lm = ev.CheckpointLM(model, BYTES_META)
    long = "".join(ALPHABET[i % 26] for i in range(40))  # past block_size (32), ends in "n"
    assert lm.generate_until([request("abcde", {"until": ["j"], "max_gen_toks": 10}),
                              request(long, {"until": [], "max_gen_toks": 5})]) == ["fghi", "opqrs"]
    assert [g for _, g in lm.loglikelihood([request("abcde", "fgh"), request("abcde", "fgx")])] == [True, False]


def test_more_shots_than_a_task_holds_is_one_sentence(tmp_path, lm_eval, offline, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    make_ckpt(tmp_path / "run", BYTES_META)
    make_task(tmp_path)  # 12 documents: the examples are drawn from the others
    with pytest.raises(SystemExit) as e:  # was random.sample's ValueError from inside the harness
        ev.main([f"--out_dir={tmp_path / 'run'}", "--tasks=alphabet", "--num_fewshot=50", f"--include_path={tmp_path}",
                 "--device=cpu"])
    assert str(e.value) == ("--num_fewshot=50 asks for more examples than a task has documents to draw them from (its "
                            "few-shot split, else its own); lower --num_fewshot.")
    assert os.listdir(tmp_path / "run") == ["ckpt.pt"]


def test_table_has_the_reported_metrics_and_the_mean_acc():
    res = {"results": {"piqa": {"alias": "piqa", "sample_len": 9, "acc,none": 0.6, "acc_stderr,none": 0.01,
                                "acc_norm,none": 0.62, "acc_norm_stderr,none": "N/A"},
                       "arc_easy": {"acc,none": 0.4, "acc_stderr,none": 0.02}},
           "higher_is_better": {"piqa": {"acc": True, "acc_norm": True}, "arc_easy": {"acc": True}}}
    assert ev.table(res).splitlines()[2:] == ["| piqa | acc | 0.6000 | 0.0100 |", "| piqa | acc_norm | 0.6200 | n/a |",
                                              "| arc_easy | acc | 0.4000 | 0.0200 |",
                                              "| mean of 2 tasks | acc | 0.5000 | |"]


def test_a_limited_evaluation_says_under_its_table_what_it_scored():
    # pass 30: --limit=5 wrote "| nextline | acc | 0.0000 | 0.0000 |" to results.md, 5 of the task's 40 documents
    # read as its result; the limit was in results.json alone
    res = {"results": {"a": {"acc,none": 0.5}, "b": {"acc,none": 0.25}},
           "higher_is_better": {"a": {"acc": True}, "b": {"acc": True}},
           "n-samples": {"a": {"original": 40, "effective": 5}, "b": {"original": 3, "effective": 3}}}
    assert ev.table(res).splitlines()[-2:] == ["", "--limit: documents scored a 5 of 40 (a quick check, not a result)."]
    res["n-samples"]["a"]["effective"] = 40  # a limit above every task's size scored them whole: no note
    assert ev.table(res).splitlines()[-1] == "| mean of 2 tasks | acc | 0.3750 | |"


def test_the_mean_acc_counts_a_group_once_not_again_through_its_subtasks():
    # --tasks=grp,c with grp = [a, b]: the harness reports grp (its aggregate) and a, b; the mean was over all four
    res = {"results": {"a": {"acc,none": 0.1}, "b": {"acc,none": 0.3}, "c": {"acc,none": 0.8},
                       "grp": {"acc,none": 0.2}},
           "higher_is_better": {t: {"acc": True} for t in "abc"} | {"grp": {"acc": True}},
           "group_subtasks": {"grp": ["a", "b"]}}
    lines = ev.table(res).splitlines()
    assert lines[-1] == "| mean of 2 tasks | acc | 0.5000 | |"  # grp and c; was "mean of 4 tasks | acc | 0.3500"
    assert "| a | acc | 0.1000 | n/a |" in lines  # each subtask's row stays
    # a group that aggregates nothing (no acc of its own) is counted through its subtasks, not left out
    del res["results"]["grp"]["acc,none"]
    assert ev.table(res).splitlines()[-1] == "| mean of 3 tasks | acc | 0.4000 | |"


def test_a_task_whose_dataset_is_not_cached_offline_is_one_sentence_before_the_model(tmp_path, lm_eval, offline,
                                                                                       monkeypatch, capfd):
    # a hub dataset no cache holds, in a task of its own (the built-in tasks take long to index)
    (tmp_path / "hubtask.yaml").write_text("task: hubtask\ndataset_path: nobody/absent-dataset\ntest_split: test\n"
                                           "output_type: multiple_choice\ndoc_to_text: q\ndoc_to_choice: c\n"
                                           "doc_to_target: 0\n")
    monkeypatch.setattr(ev, "TaskManager", lambda include_path: lm_eval.tasks.TaskManager(
        include_path=include_path, include_defaults=False))
    for tasks in ("hubtask", "hubtask, ,"):  # a stray comma was a task named '' that lm_eval did not know
        with pytest.raises(SystemExit) as e:  # tmp_path holds no checkpoint: the tasks are checked first
            ev.main([f"--out_dir={tmp_path}", f"--tasks={tasks}", f"--include_path={tmp_path}"])
        assert str(e.value) == ("--tasks: the dataset of hubtask is not in the Hugging Face cache and the hub "
                                "(https://huggingface.co) does not answer; run once where there is a network (the "
                                "cache is reused), or measure perplexity on a local text with --text=FILE.")
    assert "Retrying" not in capfd.readouterr().err
    # HF_HUB_OFFLINE=1 set by the user: "run once where there is a network" would not help while it is set
    for switch in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(switch, "1")
        with pytest.raises(SystemExit) as e:
            ev.main([f"--out_dir={tmp_path}", "--tasks=hubtask", f"--include_path={tmp_path}"])
        assert str(e.value) == ("--tasks: the dataset of hubtask is not in the Hugging Face cache and HF_HUB_OFFLINE "
                                "(or HF_DATASETS_OFFLINE, TRANSFORMERS_OFFLINE) is set, so the hub is not asked; unset "
                                "it and run once where there is a network (the cache is reused), or measure "
                                "perplexity on a local text with --text=FILE.")
        monkeypatch.delenv(switch)
    with pytest.raises(SystemExit) as e:
        ev.main([f"--out_dir={tmp_path}", "--tasks= ,", f"--include_path={tmp_path}"])
    assert str(e.value) == ("--tasks=' ,' names no task; give comma-separated lm_eval task names, or --text=FILE for "
                            "the perplexity of a local text.")
    assert not (tmp_path / "eval").exists()


def test_gpt2_missing_offline_is_said_before_the_tasks(tmp_path, offline, monkeypatch):
    # `--init_from=gpt2` offline with neither cached: the tasks' refusal came first (half a minute) and advised
    # --text, which then said GPT-2 is missing (the thirty-ninth pass); GPT-2 is now named first, before the tasks
    import convert
    import huggingface_hub

    def not_cached(repo, file, local_files_only=False):
        raise FileNotFoundError(file)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", not_cached)
    monkeypatch.setattr(convert, "hub_reachable", lambda: False)
    monkeypatch.setattr(ev, "load_tasks", lambda args: pytest.fail("the tasks were loaded before GPT-2 was found"))
    with pytest.raises(SystemExit, match=r"^gpt2-medium is not in the Hugging Face cache .* does not answer; "):
        ev.main(["--init_from=gpt2-medium", f"--out={tmp_path / 'out'}"])
    assert not (tmp_path / "out").exists()


def test_a_local_task_that_cannot_be_built_offline_is_one_sentence_before_the_model(tmp_path, lm_eval, offline,
                                                                                      monkeypatch):
    # its YAML names a data file that is not there, or an output_type lm_eval lacks: FileNotFoundError and
    # ValueError tracebacks from the harness (the sixth pass)
    make_task(tmp_path)
    yaml = (tmp_path / "alphabet.yaml").read_text()
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "nofile.yaml").write_text(yaml.replace("task: alphabet", "task: nofile").replace(
        "alphabet.jsonl", "absent.jsonl"))
    (tmp_path / "tasks" / "badtype.yaml").write_text(yaml.replace("task: alphabet", "task: badtype").replace(
        "output_type: multiple_choice", "output_type: telepathy"))
    monkeypatch.setattr(ev, "TaskManager", lambda include_path: lm_eval.tasks.TaskManager(
        include_path=include_path, include_defaults=False))
    for task, why in (("nofile", f"FileNotFoundError: Unable to find '{tmp_path / 'absent.jsonl'}'"),
                      ("badtype", "ValueError: Got invalid output_type 'telepathy'")):
        with pytest.raises(SystemExit) as e:  # tmp_path holds no checkpoint: the tasks are checked first
            ev.main([f"--out_dir={tmp_path}", f"--tasks={task}", f"--include_path={tmp_path / 'tasks'}"])
        assert str(e.value).startswith(f"--tasks: lm_eval cannot build task {task} ({why}")
        data = "" if task == "nofile" else f" or its data file {tmp_path / 'alphabet.jsonl'}"  # the one that is there
        assert str(e.value).endswith(f"); fix its YAML file {tmp_path / 'tasks' / task}.yaml{data}.")


def test_a_local_task_whose_data_or_yaml_is_cut_short_is_one_sentence_before_the_model(tmp_path, lm_eval, offline,
                                                                                        monkeypatch):
    # its data file empty, cut mid-line or holding a label beyond its choices, or its YAML cut mid-value:
    # StopIteration, DatasetGenerationError, IndexError and AttributeError tracebacks from the harness (the
    # sixteenth pass; the sixth caught only FileNotFoundError and ValueError)
    make_task(tmp_path)
    yaml, data = (tmp_path / "alphabet.yaml").read_text(), (tmp_path / "alphabet.jsonl").read_text()
    (tmp_path / "tasks").mkdir()
    for task, text in (("empty", ""), ("half", data[:len(data) // 2 + 7]),
                       ("label", data.replace('"label": 0', '"label": 9'))):
        (tmp_path / f"{task}.jsonl").write_text(text)
        (tmp_path / "tasks" / f"{task}.yaml").write_text(yaml.replace("task: alphabet", f"task: {task}").replace(
            "alphabet.jsonl", f"{task}.jsonl").replace("hf_cache", f"hf_cache_{task}"))
    (tmp_path / "tasks" / "cut.yaml").write_text(yaml.replace("task: alphabet", "task: cut")[:55])
    monkeypatch.setattr(ev, "TaskManager", lambda include_path: lm_eval.tasks.TaskManager(
        include_path=include_path, include_defaults=False))
    for task, why in (("empty", "StopIteration"), ("half", "ArrowInvalid: JSON parse error"),
                      ("label", "IndexError: list index out of range"), ("cut", "AttributeError: ")):
        with pytest.raises(SystemExit) as e:  # tmp_path holds no checkpoint: the tasks are checked first
            ev.main([f"--out_dir={tmp_path}", f"--tasks={task}", f"--include_path={tmp_path / 'tasks'}"])
        assert str(e.value).startswith(f"--tasks: lm_eval cannot build task {task} ({why}"), str(e.value)
        data = "" if task == "cut" else f" or its data file {tmp_path / task}.jsonl"  # both named, as they are
        assert str(e.value).endswith(f"); fix its YAML file {tmp_path / 'tasks' / task}.yaml{data}."), str(e.value)
    assert not (tmp_path / "eval").exists()


def test_a_local_task_that_cannot_be_built_online_is_one_sentence_before_the_model(tmp_path, lm_eval, monkeypatch):
    # with the hub answering, the tasks were built only inside simple_evaluate, after the model: a local task's
    # missing or empty data file was the harness' traceback there (the sixteenth pass); --include_path's tasks are
    # built first, online too
    make_task(tmp_path)
    yaml = (tmp_path / "alphabet.yaml").read_text()
    (tmp_path / "tasks").mkdir()
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "tasks" / "nofile.yaml").write_text(yaml.replace("task: alphabet", "task: nofile").replace(
        "alphabet.jsonl", "absent.jsonl"))
    (tmp_path / "tasks" / "empty.yaml").write_text(yaml.replace("task: alphabet", "task: empty").replace(
        "alphabet.jsonl", "empty.jsonl"))
    monkeypatch.setattr(ev, "hub_reachable", lambda: True)
    monkeypatch.setattr(ev, "TaskManager", lambda include_path: lm_eval.tasks.TaskManager(
        include_path=include_path, include_defaults=False))
    for task, why in (("nofile", "FileNotFoundError: Unable to find"), ("empty", "StopIteration")):
        with pytest.raises(SystemExit) as e:  # tmp_path holds no checkpoint: the tasks are checked first
            ev.main([f"--out_dir={tmp_path}", f"--tasks={task}", f"--include_path={tmp_path / 'tasks'}"])
        assert str(e.value).startswith(f"--tasks: lm_eval cannot build task {task} ({why}"), str(e.value)
    assert not (tmp_path / "eval").exists()


def test_a_task_built_without_permission_is_one_sentence_naming_the_fix(tmp_path, lm_eval, offline, monkeypatch):
    # HOME read-only: datasets could not make ~/.cache; or a task's data file unreadable to this user: a
    # PermissionError traceback from deep inside datasets (the twelfth pass; as root, the refusals are made here)
    import datasets
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", "/home/ro/.cache/huggingface/datasets")
    for where, said in (("/home/ro/.cache", "--tasks: the Hugging Face datasets cache /home/ro/.cache/huggingface/"
                                            "datasets cannot be made or written (Permission denied: /home/ro/.cache); "
                                            "set HF_HOME (or HF_DATASETS_CACHE) to a writable folder."),
                        ("/tasks/t.jsonl", "--tasks: lm_eval cannot build t: /tasks/t.jsonl (Permission denied); "
                                           "make it readable to this user.")):
        class TM:
            all_tasks = ["t"]

            def __init__(self, include_path):
                pass

            def load(self, names):
                raise PermissionError(13, "Permission denied", where)
        monkeypatch.setattr(ev, "TaskManager", TM)
        with pytest.raises(SystemExit) as e:
            ev.main([f"--out_dir={tmp_path}", "--tasks=t"])
        assert str(e.value) == said


def test_a_long_text_is_scored_in_pieces_of_the_same_windows(monkeypatch):
    # all the windows of --text were built at once: a 22 MB text took 1.2 GB beside its ids, 200 MB ran out of memory.
    # Two windows a piece stand for SEGMENT's 4096; the log-likelihood is the one text's, window for window
    lm, text = tiny_lm(3), "To be, or not to be, that is the question:\n" * 3  # 130 tokens, block_size 16
    whole = lm.score([([lm.eot] + list(text.encode()), 1)])[0][0]
    asked, score = [], lm.score
    monkeypatch.setattr(lm, "score", lambda requests: asked.extend(requests) or score(requests))
    monkeypatch.setattr(ev, "SEGMENT", 2)
    got = ev.text_perplexity(lm, "x.txt", text)["text"]["logprob"]
    assert got == pytest.approx(whole, rel=1e-6) and len(asked) == 5
    assert max(len(tokens) for tokens, _ in asked) <= 2 * 16 + 16 + 1


def test_text_perplexity_is_the_rolling_log_likelihood_per_word_and_byte(tmp_path, monkeypatch, capsys):
    make_ckpt(tmp_path, BYTES_META)  # block_size 64
    text = "To be, or not to be, that is the question:\n" * 3  # 129 bytes, 30 words
    (tmp_path / "hamlet.txt").write_text(text)
    monkeypatch.setattr(ev, "hub_reachable", lambda: pytest.fail("asked the network"))
    ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 'hamlet.txt'}", "--device=cpu", "--batch_size=2"])
    with open(tmp_path / "eval" / "results.json") as f:
        res = json.load(f)
    model, _ = ev.load_model(ev.parse_args([f"--out_dir={tmp_path}"]), "cpu")
    ids = [BYTES_META["eot_token"]] + list(text.encode())  # 130 tokens: windows cut back from the end
    logp = sum(own_logprob(model, ids[max(0, end - 65):end], end - start)[0]
               for start, end in ((1, 2), (2, 66), (66, 130)))
    assert res["text"] == {"path": str(tmp_path / "hamlet.txt"), "tokens": 129, "words": 30, "bytes": 129,
                           "logprob": pytest.approx(logp, rel=1e-6)}
    assert res["checkpoint"]["convert_method"] is None  # nothing converted: was "lstsq", a default never used
    got = res["results"]["hamlet.txt"]
    # perplexities in log space: exp turns logp's float32 rounding (rel 1e-6 of about -717 for this random model)
    # into a relative error of |d logp| / 30 on the word perplexity, which a rel=1e-6 check of exp() failed by chance
    assert math.log(got["word_perplexity,none"]) == pytest.approx(-logp / 30, rel=1e-6)
    assert math.log(got["byte_perplexity,none"]) == pytest.approx(-logp / 129, rel=1e-6)
    assert got["bits_per_byte,none"] == pytest.approx(-logp / 129 / math.log(2), rel=1e-6)
    md = (tmp_path / "eval" / "results.md").read_text()
    assert md.splitlines()[2:] == [f"| hamlet.txt | {k} | {got[k + ',none']:.4f} | n/a |"
                                   for k in ("word_perplexity", "byte_perplexity", "bits_per_byte")]
    assert capsys.readouterr().out == md
    metrics = pytest.importorskip("lm_eval.api.metrics")  # the harness' own aggregation of the same sums
    assert math.log(got["word_perplexity,none"]) == \
        pytest.approx(math.log(metrics.weighted_perplexity([(logp, 30)])), rel=1e-6)
    assert got["bits_per_byte,none"] == pytest.approx(metrics.bits_per_byte([(logp, 129)]), rel=1e-6)


def test_results_name_a_conversion_method_only_where_one_was_used(tmp_path, capsys):
    # untying qk_v recorded "convert_method": "lstsq", the default, though nothing was fitted
    make_ckpt(tmp_path, BYTES_META, proj="qk_v")
    (tmp_path / "t.txt").write_text("a few words of text\n")
    # and recorded neither what the conversion changed nor the dtype: a converted qk_v read as a trained qkv
    for args, method, source in ((["--proj=qkv"], None, {"proj": "qk_v"}),
                                 (["--n_kv_head=1", "--convert_method=k"], None, {"n_kv_head": 0}),
                                 (["--proj=qkv", "--n_kv_head=2"], None, {"proj": "qk_v", "n_kv_head": 0}),
                                 (["--dtype=bfloat16"], None, None)):
        ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 't.txt'}", "--device=cpu", *args])
        res = json.loads((tmp_path / "eval" / "results.json").read_text())
        assert res["checkpoint"]["convert_method"] is method and res["checkpoint"]["converted_from"] == source
        assert res["checkpoint"]["dtype"] == ("bfloat16" if "--dtype=bfloat16" in args else "float32")
    make_ckpt(tmp_path, BYTES_META)  # qkv: tied by k (another run in the folder: its eval/ holds the qk_v run's)
    shutil.rmtree(tmp_path / "eval")
    ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 't.txt'}", "--device=cpu", "--proj=qk_v",
             "--convert_method=k"])
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["checkpoint"]["convert_method"] == "k"


def test_results_of_a_fitted_conversion_name_its_calibration_and_fit(tmp_path, capsys):
    # results.json named the method only: lstsq fitted on two --calib texts gave two results told apart by nothing
    make_ckpt(tmp_path, BYTES_META)  # qkv, block_size 64
    (tmp_path / "t.txt").write_text("a few words of text\n")
    recs = []
    for calib in ("the first calibration text, " * 20, "FILE:" + str(tmp_path / "t.txt") + "x"):
        if calib.startswith("FILE:"):
            (tmp_path / "t.txtx").write_text("quite another text to fit on. " * 20)
        ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 't.txt'}", "--device=cpu", "--proj=qk_v",
                 f"--calib={calib}"])
        out, err = capsys.readouterr()
        said = err.splitlines()[0]  # a note, on stderr: stdout is the table alone, as results.md (it began with this)
        assert out == (tmp_path / "eval" / "results.md").read_text()
        rec = json.loads((tmp_path / "eval" / "results.json").read_text())["checkpoint"]
        assert rec["calib"] == calib and rec["conversion"] == said and "by lstsq fitted on" in said, rec
        # and results.md, the table read as the run's (results.json alone said it was a conversion's)
        assert out.endswith(f"\n\nScored after a conversion at load, not the run as trained: {said}\n")
        recs.append(rec["conversion"])
    assert recs[0] != recs[1]
    ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 't.txt'}", "--device=cpu", "--proj=qk_v",
             "--convert_method=k"])  # fits nothing: no calibration to name
    rec = json.loads((tmp_path / "eval" / "results.json").read_text())["checkpoint"]
    assert rec["calib"] is None and rec["conversion"].endswith("V tied to K by k")
    ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 't.txt'}", "--device=cpu"])
    rec = json.loads((tmp_path / "eval" / "results.json").read_text())["checkpoint"]
    assert rec["calib"] is None and rec["conversion"] is None
    assert "conversion" not in (tmp_path / "eval" / "results.md").read_text()


def test_a_second_eval_into_the_same_out_waits_its_turn(tmp_path, monkeypatch):
    # two evaluations into one --out each wrote results.json and results.md, which could then come from different runs
    make_ckpt(tmp_path, BYTES_META)
    (tmp_path / "t.txt").write_text("a few words of text\n")
    (tmp_path / "eval").mkdir()
    monkeypatch.setattr(ev, "text_perplexity", lambda *a: pytest.fail("evaluated beside another eval"))
    with checkpoint.hold_lock(str(tmp_path / "eval"), "held by the test"):
        with pytest.raises(SystemExit) as e:
            ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 't.txt'}", "--device=cpu"])
    assert str(e.value) == (f"--out {tmp_path / 'eval'} is being written by another eval.py run; wait for it to end "
                            f"or choose another --out.")
    assert os.listdir(tmp_path / "eval") == []


def test_a_folder_in_place_of_a_result_file_fails_before_the_evaluation(tmp_path, monkeypatch):
    # "could not write eval/results.json: a folder has that name" came after the whole evaluation
    make_ckpt(tmp_path, BYTES_META)
    (tmp_path / "t.txt").write_text("a few words of text\n")
    (tmp_path / "eval" / "results.json").mkdir(parents=True)
    monkeypatch.setattr(ev, "text_perplexity", lambda *a: pytest.fail("evaluated"))
    with pytest.raises(SystemExit) as e:
        ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 't.txt'}", "--device=cpu"])
    assert str(e.value) == (f"{tmp_path / 'eval' / 'results.json'} is a folder, where this command writes its "
                            f"results; move it out of the way, or write elsewhere.")
    assert os.listdir(tmp_path / "eval") == ["results.json"]


def test_a_text_is_read_byte_for_byte_with_its_carriage_returns(tmp_path):
    # text mode turned "\r\n" into "\n": a Windows text (prepare_slimpajama keeps its bytes) was scored and counted
    # without its carriage returns, the results' "bytes" below the file's size; --start/--calib=FILE: the same
    (tmp_path / "crlf.txt").write_bytes(b"one\r\ntwo\rthree\n")
    assert ev.read_text_file(str(tmp_path / "crlf.txt")) == "one\r\ntwo\rthree\n"
    assert sample.read_text(f"FILE:{tmp_path / 'crlf.txt'}", "--start") == "one\r\ntwo\rthree\n"


@pytest.mark.parametrize("meta", [BYTES_META, R50K_META])
def test_a_text_is_one_document_whose_end_of_text_tags_are_text(meta):
    # "<|endoftext|>" in --text became one separator token: 13 bytes counted, one token scored (bits per byte too
    # low), and the file read as two documents where the docs (and prepare_slimpajama, inside a document) say one
    lm = tiny_lm(4)
    lm.encode, lm.eot = sample.get_tokenizer(meta)[0], meta["eot_token"]  # the tasks': the tag is the separator
    lm.encode_text = sample.get_tokenizer(meta, special=False)[0]
    scored = []
    lm.score = lambda reqs: scored.extend(reqs) or [(-1.0, False)]
    ev.text_perplexity(lm, "t.txt", "To be<|endoftext|>or not")
    (ids, first), = scored
    assert first == 1 and ids[0] == lm.eot and meta["eot_token"] not in ids[1:]
    if meta is BYTES_META:
        assert ids[1:] == list(b"To be<|endoftext|>or not")


def test_a_pipe_in_a_text_file_name_stays_in_its_table_cell():
    # "| a|b.txt | bits_per_byte |" rendered as five cells: the name split across the task and metric columns
    res = {"results": {"a|b.txt": {"bits_per_byte,none": 1.0}}, "higher_is_better": {"a|b.txt": {"bits_per_byte": 0}}}
    assert ev.table(res).splitlines()[2] == "| a\\|b.txt | bits_per_byte | 1.0000 | n/a |"



def test_a_line_break_in_a_text_file_name_stays_in_its_table_row():
    # --text=$'a\nb.txt' wrote "| a" and "b.txt | bits_per_byte | ..." as two rows of the table, neither whole
    res = {"results": {"a\nb\r.txt": {"bits_per_byte,none": 1.0}},
           "higher_is_better": {"a\nb\r.txt": {"bits_per_byte": 0}}}
    assert ev.table(res).splitlines()[2:] == ["| a\\nb\\r.txt | bits_per_byte | 1.0000 | n/a |"]


def test_a_text_file_name_read_outside_utf8_mode_is_its_name():
    # under PYTHONUTF8=0 LC_ALL=C, --text=préface.txt reached eval.py as 'pr\udcc3\udca9face.txt': results.md, its
    # task name unencodable, was a traceback after results.json (which named the task by the surrogates)
    class LM:
        eot, encode_text = 0, staticmethod(lambda s: list(s.encode()))
        score = staticmethod(lambda reqs: [(-1.0, False)])
        model = argparse.Namespace(config=argparse.Namespace(block_size=8))
    assert list(ev.text_perplexity(LM, "d/pr\udcc3\udca9face.txt", "a b")["results"]) == ["préface.txt"]
    assert list(ev.text_perplexity(LM, "pr\udce9face.txt", "a b")["results"]) == ["pr\\xe9face.txt"]  # not UTF-8


def test_results_json_names_a_path_read_outside_utf8_mode_by_its_name(tmp_path):
    # under PYTHONUTF8=0 LC_ALL=C, --text=préface.txt reached eval.py as 'pr\udcc3\udca9face.txt': results.json
    # recorded the path as two lone surrogates (JavaScript read "pr��face.txt"), where its table had the name
    make_ckpt(tmp_path, BYTES_META)
    (tmp_path / "préface.txt").write_text("a few words of text\n")
    ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path}/pr\udcc3\udca9face.txt", "--device=cpu"])
    raw = (tmp_path / "eval" / "results.json").read_text()
    assert "\\udc" not in raw and json.loads(raw)["text"]["path"] == f"{tmp_path}/préface.txt"


def test_a_perplexity_beyond_a_float_is_inf():
    class LM:  # one word of 5000 tokens at 0.2 nats each: exp(1000) overflowed after the work
        eot, encode_text = 0, staticmethod(lambda s: list(s.encode()))
        score = staticmethod(lambda reqs: [(-1000.0, False)])
        model = argparse.Namespace(config=argparse.Namespace(block_size=8192))  # one piece: one score
    got = ev.text_perplexity(LM, "a.txt", "a" * 5000)["results"]["a.txt"]
    assert got == {"word_perplexity,none": math.inf, "byte_perplexity,none": pytest.approx(math.exp(0.2)),
                   "bits_per_byte,none": pytest.approx(0.2 / math.log(2))}


def test_results_json_is_strict_json_where_a_perplexity_is_beyond_a_float(tmp_path, capsys):
    # one word of 300 bytes at about 5.5 nats each: results.json held the bare word Infinity, which is no JSON
    # (JSON.parse and pandas refused the file, jq 1.6 read 1.8e308); results.md says inf
    make_ckpt(tmp_path, BYTES_META)
    (tmp_path / "t.txt").write_text("x" * 300)
    ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 't.txt'}", "--device=cpu"])
    res = json.loads((tmp_path / "eval" / "results.json").read_text(),
                     parse_constant=lambda c: pytest.fail(f"{c} in results.json"))
    assert res["results"]["t.txt"]["word_perplexity,none"] is None
    assert "| t.txt | word_perplexity | inf | n/a |" in capsys.readouterr().out


def test_text_needs_neither_the_harness_nor_the_network(tmp_path):
    make_ckpt(tmp_path, BYTES_META)
    (tmp_path / "t.txt").write_text("a few words of text\n")
    code = ("import sys, runpy; sys.modules['lm_eval'] = None; "
            f"sys.argv = ['eval.py', '--out_dir={tmp_path}', '--text={tmp_path / 't.txt'}', '--device=cpu']; "
            "runpy.run_path('eval.py', run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[2].startswith("| t.txt | word_perplexity | ")
    assert r.stderr.startswith("20 tokens in ")


def test_results_written_before_an_output_that_takes_no_text_are_said_written(tmp_path):
    # `eval.py ... > /dev/full`: the table failed after both files were written, and the one line said only
    # "results.json and results.md are written whole when the evaluation ends, not before", as if all were lost
    make_ckpt(tmp_path, BYTES_META)
    (tmp_path / "t.txt").write_text("a few words of text\n")
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "eval.py", f"--out_dir={tmp_path}", f"--text={tmp_path / 't.txt'}"],
                           cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 1 and sorted(os.listdir(tmp_path / "eval")) == ["results.json", "results.md"]
    wrote, stopped = r.stderr.splitlines()
    assert wrote.endswith(f"; wrote {tmp_path / 'eval'}/results.json and results.md")
    assert stopped.startswith("stopped: its output could not be written (No space left on device)")


def test_bad_text_and_settings_are_one_line_before_any_work(tmp_path, capsys):
    make_ckpt(tmp_path, BYTES_META)
    (tmp_path / "blank.txt").write_text(" \n\t\n")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00")
    for arg, want in (("--text=nowhere.txt", "--text=nowhere.txt: cannot read it as UTF-8 text (No such file or "
                                             "directory); give a text file."),
                      (f"--text={tmp_path}", f"--text={tmp_path}: cannot read it as UTF-8 text (Is a directory); "
                                             f"give a text file."),
                      (f"--text={tmp_path / 'blank.txt'}", f"--text={tmp_path / 'blank.txt'} holds no words; give a "
                                                           f"text to measure perplexity on."),
                      (f"--text={tmp_path / 'binary.txt'}", f"--text={tmp_path / 'binary.txt'}: cannot read it as "
                                                            f"UTF-8 text (invalid start byte); give a text file.")):
        with pytest.raises(SystemExit) as e:
            ev.main([f"--out_dir={tmp_path}", arg])
        assert str(e.value) == want
    for arg, want in (("--limit=nan", "argument --limit: must be a finite number > 0; got nan."),
                      ("--limit=0", "argument --limit: must be a finite number > 0; got 0.0."),
                      ("--num_fewshot=-1", "argument --num_fewshot: must be an integer >= 0; got -1."),
                      ("--batch_size=0", "argument --batch_size: must be an integer >= 1; got 0."),
                      ("--limit=1.5", "--limit above 1 is a number of documents, a whole one below 2**63 (below 1, "
                                      "a fraction); got 1.5."),  # the harness took 1 document (the sixth pass)
                      # the harness' islice failed on it with a traceback, after the model loaded (the seventh pass)
                      ("--limit=1e300", "--limit above 1 is a number of documents, a whole one below 2**63 (below 1, "
                                        "a fraction); got 1e+300."),
                      ("--device=tpu", "--device must be cpu, cuda, cuda:N or mps; got 'tpu'."),
                      ("--calib=FILE:x.txt", "--calib says how weights are converted, and nothing is converted "
                                             "without --proj or --n_kv_head; add one of those, or drop it."),
                      # the tasks' settings beside --text were ignored without a word, exit 0 (the sixth pass)
                      ("--text=t.txt --limit=5", "--limit applies to the lm_eval tasks, and --text measures the whole "
                                                 "file without them; drop it, or evaluate tasks with --tasks instead "
                                                 "of --text."),
                      ("--text=t.txt --num_fewshot=5 --include_path=d", "--num_fewshot and --include_path apply to "
                                                                        "the lm_eval tasks, and --text measures the "
                                                                        "whole file without them; drop them, or "
                                                                        "evaluate tasks with --tasks instead of "
                                                                        "--text.")):
        with pytest.raises(SystemExit) as e:
            ev.parse_args(arg.split())
        assert e.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1].split(": error: ")[1] == want
    assert not (tmp_path / "eval").exists()


def test_a_missing_checkpoint_makes_no_folder_and_a_checkpoint_path_puts_results_beside_it(tmp_path):
    # eval made out_dir/eval before finding there was no checkpoint; and --out_dir=run/ckpt.pt (which sample.py
    # takes) failed with advice on --out, a flag that was not given
    (tmp_path / "text.txt").write_text("To be, or not to be.\n")
    with pytest.raises(SystemExit, match="no checkpoint at"):
        ev.main([f"--out_dir={tmp_path / 'none'}", f"--text={tmp_path / 'text.txt'}", "--device=cpu"])
    assert not (tmp_path / "none").exists()
    make_ckpt(tmp_path / "run", BYTES_META)
    ev.main([f"--out_dir={tmp_path / 'run' / 'ckpt.pt'}", f"--text={tmp_path / 'text.txt'}", "--device=cpu"])
    assert (tmp_path / "run" / "eval" / "results.json").exists()


def test_a_tokenizer_missing_offline_makes_no_folder(tmp_path, monkeypatch):
    # r50k_base neither cached nor downloadable: the sentence came after out_dir/eval was made (the sixth pass)
    (tmp_path / "text.txt").write_text("To be, or not to be.\n")
    make_ckpt(tmp_path, R50K_META)

    def offline(name):
        raise ConnectionError("no network")
    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    with pytest.raises(SystemExit, match="could not load tiktoken's r50k_base"):
        ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 'text.txt'}", "--device=cpu"])
    assert not (tmp_path / "eval").exists()


def test_an_evaluation_stopped_midway_leaves_no_empty_folder(tmp_path, monkeypatch):
    # Ctrl-C during the evaluation left the --out it had made (parents too) empty behind (the seventh pass)
    (tmp_path / "text.txt").write_text("To be, or not to be.\n")
    make_ckpt(tmp_path, BYTES_META)
    (tmp_path / "kept").mkdir()

    def ctrl_c(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(ev, "text_perplexity", ctrl_c)
    for out in (tmp_path / "new" / "eval", tmp_path / "kept"):
        with pytest.raises(KeyboardInterrupt):
            ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 'text.txt'}", "--device=cpu", f"--out={out}"])
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt", "kept", "text.txt"]  # a folder that was there stays


def test_results_name_a_conversion_method_only_where_v_was_tied_to_k(tmp_path):
    # pooling or repeating key heads, untying, or nothing to convert recorded "lstsq", a method never used (the
    # seventh pass; the sixth fixed it for a run without --proj or --n_kv_head)
    (tmp_path / "text.txt").write_text("To be, or not to be.\n")
    make_ckpt(tmp_path / "gqa", BYTES_META, n_kv_head=2)
    make_ckpt(tmp_path / "qk_v", BYTES_META, proj="qk_v")
    for run, arg, want in (("gqa", "--n_kv_head=4", None), ("qk_v", "--proj=qkv", None), ("qk_v", "--proj=qk_v", None),
                           ("gqa", "--proj=qk_v", "k")):
        ev.main([f"--out_dir={tmp_path / run}", f"--text={tmp_path / 'text.txt'}", "--device=cpu", arg,
                 "--convert_method=k"])
        with open(tmp_path / run / "eval" / "results.json") as f:
            assert json.load(f)["checkpoint"]["convert_method"] == want, arg


def test_text_in_samples_file_form_or_a_token_file_is_one_sentence_that_fixes_it(tmp_path):
    # --text=FILE:x.txt (sample.py's form) was "no such file ...; give a text file", though it named one; and
    # --text=data/val.bin scored prepare's uint16 ids as text (a NUL after each byte), exit 0
    make_ckpt(tmp_path / "run", BYTES_META)
    (tmp_path / "text.txt").write_text("To be, or not to be.\n")
    make_data(tmp_path / "data")
    for arg, want in ((f"FILE:{tmp_path / 'text.txt'}", f"--text=FILE:{tmp_path / 'text.txt'}: cannot read it as "
                       f"UTF-8 text (No such file or directory); --text takes the path itself: "
                       f"--text={tmp_path / 'text.txt'}."),
                      (str(tmp_path / "data" / "val.bin"), f"--text={tmp_path / 'data' / 'val.bin'}: val.bin holds "
                       f"the token ids prepare_slimpajama.py wrote (its meta.json is beside it), not text; give the "
                       f"text file it was prepared from."),
                      # prepare's document file, scored with its JSON syntax as one text, exit 0
                      (str(tmp_path / "docs.jsonl"), f"--text={tmp_path / 'docs.jsonl'}: a .jsonl file is JSON, one "
                       f"document a line, and --text scores a file as one plain text, JSON syntax and all; write its "
                       f"documents' text to a .txt file (jq -r .text {tmp_path / 'docs.jsonl'} > "
                       f"{tmp_path / 'docs_2.txt'}) and give --text={tmp_path / 'docs_2.txt'}."),
                      # "(jq -r .text)" alone: jq on a .jsonl.zst's compressed bytes is a parse error
                      (str(tmp_path / "z.jsonl.zst"), f"--text={tmp_path / 'z.jsonl.zst'}: a .jsonl file is JSON, one "
                       f"document a line, and --text scores a file as one plain text, JSON syntax and all; write its "
                       f"documents' text to a .txt file (zstd -dc {tmp_path / 'z.jsonl.zst'} | jq -r .text > "
                       f"{tmp_path / 'z.txt'}) and give --text={tmp_path / 'z.txt'}."),
                      # the same documents saved as docs.txt: scored JSON syntax and all, exit 0; `jq -r .text
                      # docs.txt > docs.txt`, the likely guess, emptied it
                      (str(tmp_path / "docs.txt"), f"--text={tmp_path / 'docs.txt'}: this file is JSON, one "
                       f"document a line, and --text scores a file as one plain text, JSON syntax and all; write its "
                       f"documents' text to a .txt file (jq -r .text {tmp_path / 'docs.txt'} > "
                       f"{tmp_path / 'docs_2.txt'}) and give --text={tmp_path / 'docs_2.txt'}.")):
        (tmp_path / "docs.jsonl").write_text('{"text": "To be, or not to be."}\n')
        (tmp_path / "z.jsonl.zst").write_bytes(b"\x28\xb5\x2f\xfd")  # refused by its name, never read
        (tmp_path / "docs.txt").write_text('\ufeff{"text": "To be, or not to be."}\n')  # a BOM: Notepad's
        with pytest.raises(SystemExit) as e:
            ev.main([f"--out_dir={tmp_path / 'run'}", f"--text={arg}", "--device=cpu"])
        assert str(e.value) == want
    assert not (tmp_path / "run" / "eval").exists()
    ev.main([f"--out_dir={tmp_path / 'run'}", f"--text={tmp_path / 'text.txt'}", "--device=cpu"])
    assert (tmp_path / "run" / "eval" / "results.json").exists()


def test_a_path_given_as_a_task_names_the_flag_it_belongs_to(tmp_path, lm_eval, monkeypatch):
    # --tasks=mytask.yaml (or its folder, or a text) was "knows no task ...; add task YAML files through
    # --include_path", which takes a folder and still needs the task's name in --tasks; in a folder with a space the
    # flag advised, pasted, was two arguments (now quoted)
    monkeypatch.setattr(ev, "TaskManager", lambda include_path: lm_eval.tasks.TaskManager(
        include_path=include_path, include_defaults=False))
    for root in (tmp_path, tmp_path / "my tasks"):
        root.mkdir(exist_ok=True)
        make_task(root)
        text = root / "text.txt"
        text.write_text("To be, or not to be.\n")
        flag = shlex.quote(f"--include_path={root}")
        for arg, want in ((root / "alphabet.yaml", f"is a file; pass its folder as {flag} and the names its YAML files "
                                                   f"give as --tasks."),
                          (root, f"is a folder; pass the folder as {flag} and the names its YAML files give as "
                                 f"--tasks."),
                          (text, f"is a file; for the perplexity of a text file, use "
                                 f"{shlex.quote(f'--text={text}')}.")):
            with pytest.raises(SystemExit) as e:  # tmp_path holds no checkpoint: the tasks are checked first
                ev.main([f"--out_dir={tmp_path}", f"--tasks={arg}"])
            assert str(e.value) == f"--tasks takes task names, and {arg} {want}"
    assert "'--text=" in str(e.value)  # the folder with a space


def test_a_mistyped_local_task_names_the_nearest_and_the_list_that_holds_it(tmp_path, lm_eval, monkeypatch):
    # --tasks=alphabt with --include_path was told to list tasks with `lm_eval ls tasks`, which leaves local tasks
    # out, or to add task YAML files through --include_path, as it had; now the nearest name and the list with them
    monkeypatch.setattr(ev, "TaskManager", lambda include_path: lm_eval.tasks.TaskManager(
        include_path=include_path, include_defaults=False))
    make_task(tmp_path)
    with pytest.raises(SystemExit) as e:  # tmp_path holds no checkpoint: the tasks are checked first
        ev.main([f"--out_dir={tmp_path}", "--tasks=alphabt", f"--include_path={tmp_path}"])
    assert str(e.value) == (f"--tasks: lm_eval knows no task alphabt (nearest: alphabet); list them with "
                            f"`lm_eval ls tasks --include_path {shlex.quote(str(tmp_path))}`.")
    # two mistyped: one list of the nearest, sorted, cut at three, named alphabet's alone and left zebra out
    yaml = (tmp_path / "alphabet.yaml").read_text()
    for name in ("alphabet_a", "alphabet_b", "alphabet_c", "zebra"):
        (tmp_path / f"{name}.yaml").write_text(yaml.replace("task: alphabet", f"task: {name}"))
    with pytest.raises(SystemExit) as e:
        ev.main([f"--out_dir={tmp_path}", "--tasks=alphabt,zebr", f"--include_path={tmp_path}"])
    assert str(e.value).startswith("--tasks: lm_eval knows no task alphabt (nearest: alphabet, alphabet_")
    assert "), zebr (nearest: zebra); list them with" in str(e.value)


def test_results_name_the_iteration_of_the_checkpoint_they_measured(tmp_path):
    # results.json named out_dir and the model's shape only: evaluated while the run trained on (or before a
    # resume), out_dir/eval/results.json sat beside a later ckpt.pt as if they were its results
    make_ckpt(tmp_path, BYTES_META)
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    torch.save(dict(ckpt, iter_num=30), tmp_path / "ckpt.pt")
    (tmp_path / "text.txt").write_text("To be, or not to be.\n")
    ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 'text.txt'}", "--device=cpu"])
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["checkpoint"]["iter_num"] == 30


def test_results_in_another_dtype_than_float32_say_so(tmp_path):
    # pass 40: bfloat16 (the default on CUDA) replaced a float32 evaluation's table in the same --out with numbers
    # that differ in the last digits, results.json alone naming the dtype
    make_ckpt(tmp_path, BYTES_META)
    (tmp_path / "text.txt").write_text("To be, or not to be.\n")
    ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 'text.txt'}", "--device=cpu"])
    assert "Scored in" not in (tmp_path / "eval" / "results.md").read_text()
    ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 'text.txt'}", "--device=cpu", "--dtype=bfloat16"])
    assert (tmp_path / "eval" / "results.md").read_text().endswith(
        "\n\nScored in bfloat16 (float32's numbers differ in the last digits).\n")


def test_results_of_a_run_still_training_say_it_is_not_finished(tmp_path):
    # eval.py on a run that trains on (or stopped early) scored a midway save, and the table said nothing of it
    make_ckpt(tmp_path, BYTES_META)
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    torch.save(dict(ckpt, iter_num=30, config={"max_iters": 50}), tmp_path / "ckpt.pt")
    (tmp_path / "text.txt").write_text("To be, or not to be.\n")
    ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 'text.txt'}", "--device=cpu"])
    md = (tmp_path / "eval" / "results.md").read_text()
    assert md.endswith(f"\n\n{tmp_path} holds iteration 30 of its run's 50: not finished (still training, or "
                       f"stopped), so these are that iteration's numbers.\n")
    torch.save(dict(ckpt, iter_num=50, config={"max_iters": 50}), tmp_path / "ckpt.pt")  # finished: the table alone
    ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 'text.txt'}", "--device=cpu"])
    assert "not finished" not in (tmp_path / "eval" / "results.md").read_text()


def test_a_stop_between_results_json_and_md_leaves_the_old_pair(tmp_path, monkeypatch):
    # Ctrl-C (SIGTERM, a full disk) after results.json was written, before results.md: the new json beside the old
    # md, two evaluations in one pair; in a new --out, the json alone
    make_ckpt(tmp_path, BYTES_META)
    (tmp_path / "a.txt").write_text("To be, or not to be, that is the question:\n" * 3)
    monkeypatch.setattr(ev, "hub_reachable", lambda: pytest.fail("asked the network"))
    ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 'a.txt'}", "--device=cpu"])
    before = {p.name: p.read_bytes() for p in (tmp_path / "eval").iterdir()}
    write = ev.atomic_write

    def stopped_at_md(path, data):
        if path.endswith("results.md"):
            raise KeyboardInterrupt
        write(path, data)
    monkeypatch.setattr(ev, "atomic_write", stopped_at_md)
    for out in (tmp_path / "eval", tmp_path / "new"):
        with pytest.raises(KeyboardInterrupt):
            ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 'a.txt'}", "--device=cpu", "--dtype=bfloat16",
                     f"--out={out}"])  # the same text in another dtype: the same evaluation, which replaces its own
    assert {p.name: p.read_bytes() for p in (tmp_path / "eval").iterdir()} == before
    assert not (tmp_path / "new").exists()


def test_the_results_to_remove_in_a_folder_named_with_a_dash_are_named_as_rm_reads_them(tmp_path, monkeypatch):
    # --out=-ev: "remove -ev/results.json", typed as rm -ev/results.json, was "rm: invalid option -- 'e'"
    make_ckpt(tmp_path, BYTES_META)
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text(f"the text of {name}, a few words\n")
    monkeypatch.chdir(tmp_path)
    ev.main(["--out_dir=.", "--text=a.txt", "--device=cpu", "--out=-ev"])
    with pytest.raises(SystemExit, match=r"or remove \./-ev/results\.json to replace them\.$"):
        ev.main(["--out_dir=.", "--text=b.txt", "--device=cpu", "--out=-ev"])


def test_an_evaluation_of_other_tasks_or_text_never_replaces_the_results_in_its_out(tmp_path, capsys):
    # case 52 of the twenty-third pass: a quick --text (or --limit) check into out_dir/eval replaced the results.json
    # of an hours-long evaluation there without a word
    make_ckpt(tmp_path, BYTES_META)
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text(f"the text of {name}, a few words\n")
    ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 'a.txt'}", "--device=cpu"])
    before = {p.name: p.read_bytes() for p in (tmp_path / "eval").iterdir()}
    with pytest.raises(SystemExit) as e:
        ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 'b.txt'}", "--device=cpu"])
    path = tmp_path / "eval" / "results.json"
    assert str(e.value) == (f"--out {tmp_path / 'eval'} holds the results of another evaluation (the perplexity of "
                            f"{tmp_path / 'a.txt'}), which this one would replace; give another --out to keep both, "
                            f"or remove {path} to replace them.")
    assert {p.name: p.read_bytes() for p in (tmp_path / "eval").iterdir()} == before
    ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 'b.txt'}", "--device=cpu", f"--out={tmp_path / 'b'}"])
    ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 'a.txt'}", "--device=cpu", "--dtype=bfloat16"])
    assert json.loads(path.read_text())["checkpoint"]["dtype"] == "bfloat16"  # the same evaluation replaces its own
    # tasks: another limit, shot count or task list is another evaluation; the same tasks in another order are not
    args = argparse.Namespace(text=None, num_fewshot=5, limit=None)
    path.write_text(json.dumps({"results": {}, "evaluation": ev.evaluation(args, ["hellaswag", "arc_easy"])}))
    quick = ev.evaluation(argparse.Namespace(text=None, num_fewshot=5, limit=10.0), ["arc_easy", "hellaswag"])
    assert "(tasks arc_easy,hellaswag (5-shot, no --limit))" in ev.other_results(str(tmp_path / "eval"), quick)
    assert ev.other_results(str(tmp_path / "eval"), ev.evaluation(args, ["arc_easy", "hellaswag"])) is None
    assert ev.other_results(str(tmp_path / "eval"), ev.evaluation(args, ["arc_easy"])) is not None
    # written before results.json recorded its evaluation: a text's by its file name, the harness' as any tasks
    path.write_text(json.dumps({"results": {}, "text": {"path": "a.txt"}}))
    assert ev.other_results(str(tmp_path / "eval"), {"text": str(tmp_path / "a.txt")}) is None
    assert ev.other_results(str(tmp_path / "eval"), {"text": str(tmp_path / "b.txt")}) is not None
    assert ev.other_results(str(tmp_path / "eval"), quick) is not None
    path.write_text(json.dumps({"results": {"arc_easy": {}}}))
    assert ev.other_results(str(tmp_path / "eval"), quick) is None
    assert ev.other_results(str(tmp_path / "eval"), {"text": str(tmp_path / "a.txt")}) is not None


def test_another_run_on_the_same_text_never_replaces_the_results_in_its_out(tmp_path):
    # pass 24 (third round): two runs evaluated on one text into one --out (qkv, then qk_v, side by side) kept the
    # second's results without a word; the same run again (a later checkpoint, by its checkpoint file) replaces its own
    for run in ("a", "b"):
        make_ckpt(tmp_path / run, BYTES_META)
    (tmp_path / "t.txt").write_text("the text of t, a few words\n")
    out, text = f"--out={tmp_path / 'ev'}", f"--text={tmp_path / 't.txt'}"
    ev.main([f"--out_dir={tmp_path / 'a'}", text, "--device=cpu", out])
    before = (tmp_path / "ev" / "results.json").read_bytes()
    with pytest.raises(SystemExit, match=r"holds the results of another run \(.*a\), which this evaluation would"):
        ev.main([f"--out_dir={tmp_path / 'b'}", text, "--device=cpu", out])
    assert (tmp_path / "ev" / "results.json").read_bytes() == before
    ev.main([f"--out_dir={tmp_path / 'a' / 'ckpt.pt'}", text, "--device=cpu", out, "--dtype=bfloat16"])
    assert json.loads((tmp_path / "ev" / "results.json").read_text())["checkpoint"]["dtype"] == "bfloat16"
    ev.main([f"--out_dir={tmp_path / 'a'}", text, "--device=cpu"])  # its own eval folder, after `mv a c`: its own
    ev.main([f"--out_dir={tmp_path / 'a'}", text, "--device=cpu", f"--out={tmp_path / 'a' / 'ev2'}"])
    (tmp_path / "a").rename(tmp_path / "c")
    ev.main([f"--out_dir={tmp_path / 'c'}", text, "--device=cpu"])
    ev.main([f"--out_dir={tmp_path / 'c'}", text, "--device=cpu", f"--out={tmp_path / 'c' / 'ev2'}"])
    with pytest.raises(SystemExit, match=r"another run \(.*ckpt.pt, not there now\)"):  # renamed or deleted: unknown
        ev.main([f"--out_dir={tmp_path / 'c'}", text, "--device=cpu", out])
    # pass 25: a's results filed in b's own folder (--out=b/eval) were replaced by b's evaluation there without a word
    ev.main([f"--out_dir={tmp_path / 'c'}", text, "--device=cpu", f"--out={tmp_path / 'b' / 'eval'}"])
    before = (tmp_path / "b" / "eval" / "results.json").read_bytes()
    with pytest.raises(SystemExit, match=r"holds the results of another run \(.*c\), which this evaluation would"):
        ev.main([f"--out_dir={tmp_path / 'b'}", text, "--device=cpu"])
    assert (tmp_path / "b" / "eval" / "results.json").read_bytes() == before
    # pass 26: renamed (`mv c d`) and a new run trained under the old name, d/eval was "another run (c)"; and a
    # copy's (`cp -r d e`) eval/ is the run's own results as copied, as before pass 25
    (tmp_path / "c").rename(tmp_path / "d")
    make_ckpt(tmp_path / "c", BYTES_META)
    ev.main([f"--out_dir={tmp_path / 'd'}", text, "--device=cpu"])
    shutil.copytree(tmp_path / "d", tmp_path / "e")
    ev.main([f"--out_dir={tmp_path / 'e'}", text, "--device=cpu"])
    assert json.loads((tmp_path / "e" / "eval" / "results.json").read_text())["checkpoint"]["out_dir"].endswith("e")
    # a run trained inside another's folder has its own eval/: e's evaluation into it replaced its results as e's
    make_ckpt(tmp_path / "e" / "sub", BYTES_META)
    ev.main([f"--out_dir={tmp_path / 'e' / 'sub'}", text, "--device=cpu"])
    (tmp_path / "e" / "sub").rename(tmp_path / "e" / "sub2")
    with pytest.raises(SystemExit, match=r"holds the results of another run"):
        ev.main([f"--out_dir={tmp_path / 'e'}", text, "--device=cpu", f"--out={tmp_path / 'e' / 'sub2' / 'eval'}"])


def test_a_run_replaced_in_its_folder_never_replaces_the_old_runs_results(tmp_path):
    # pass 31: a qkv run evaluated into --out=ev, then its folder replaced by a qk_v run (`rm -r a; cp -r b a`) and
    # evaluated into ev again: the path was the same, so the qk_v run's results replaced the qkv run's, exit 0
    make_ckpt(tmp_path / "a", BYTES_META, proj="qkv")
    (tmp_path / "t.txt").write_text("the text of t, a few words\n")
    out, text = f"--out={tmp_path / 'ev'}", f"--text={tmp_path / 't.txt'}"
    ev.main([f"--out_dir={tmp_path / 'a'}", text, "--device=cpu", out])
    ev.main([f"--out_dir={tmp_path / 'a'}", text, "--device=cpu", out, "--proj=qk_v", "--convert_method=k"])
    ev.main([f"--out_dir={tmp_path / 'a'}", text, "--device=cpu", out, "--n_kv_head=1"])
    before = (tmp_path / "ev" / "results.json").read_bytes()
    make_ckpt(tmp_path / "a", BYTES_META, proj="qk_v")
    with pytest.raises(SystemExit, match=r"holds the results of .*a when its checkpoint was another model \(proj="
                                         r"'qkv', now 'qk_v'\): another run"):
        ev.main([f"--out_dir={tmp_path / 'a'}", text, "--device=cpu", out])
    assert (tmp_path / "ev" / "results.json").read_bytes() == before
    with pytest.raises(SystemExit, match=r"another model"):  # untied back to qkv, it is still another run
        ev.main([f"--out_dir={tmp_path / 'a'}", text, "--device=cpu", out, "--proj=qkv"])


def two_checkpoint_files(tmp_path):
    """a.pt and b.pt side by side in tmp_path (two runs copied to compare them) and a text: its --text."""
    for run in ("a", "b"):
        make_ckpt(tmp_path / run, BYTES_META)
        shutil.move(tmp_path / run / "ckpt.pt", tmp_path / f"{run}.pt")
    (tmp_path / "t.txt").write_text("the text of t, a few words\n")
    return f"--text={tmp_path / 't.txt'}"


def test_two_checkpoint_files_of_one_folder_never_replace_each_others_results(tmp_path):
    # pass 27: two checkpoints copied side by side to compare them (cmp/qkv.pt, cmp/qk_v.pt) share cmp/eval, and the
    # second's evaluation replaced the first's results as the same run's (one folder) without a word
    text = two_checkpoint_files(tmp_path)
    ev.main([f"--out_dir={tmp_path / 'a.pt'}", text, "--device=cpu"])
    before = (tmp_path / "eval" / "results.json").read_bytes()
    with pytest.raises(SystemExit, match=r"holds the results of another run \(.*a\.pt\), which this evaluation"):
        ev.main([f"--out_dir={tmp_path / 'b.pt'}", text, "--device=cpu"])
    assert (tmp_path / "eval" / "results.json").read_bytes() == before
    (tmp_path / "latest.pt").symlink_to("a.pt")  # the same file by a link, or again: its own results
    ev.main([f"--out_dir={tmp_path / 'latest.pt'}", text, "--device=cpu", "--dtype=bfloat16"])
    ev.main([f"--out_dir={tmp_path / 'a.pt'}", text, "--device=cpu"])


def test_another_checkpoint_file_is_named_by_the_file_its_results_record(tmp_path):
    # a link evaluated, then pointed at another file of its folder, was "another run (best.pt)", the very name given;
    # a file renamed in its folder was "another run (a.pt)", with no word that a.pt is gone
    text = two_checkpoint_files(tmp_path)
    (tmp_path / "best.pt").symlink_to("a.pt")
    ev.main([f"--out_dir={tmp_path / 'best.pt'}", text, "--device=cpu"])
    (tmp_path / "best.pt").unlink()
    (tmp_path / "best.pt").symlink_to("b.pt")
    with pytest.raises(SystemExit, match=f"another run \\({tmp_path / 'a.pt'}\\), which"):
        ev.main([f"--out_dir={tmp_path / 'best.pt'}", text, "--device=cpu"])
    shutil.move(tmp_path / "a.pt", tmp_path / "c.pt")
    with pytest.raises(SystemExit, match=f"another run \\({tmp_path / 'a.pt'}, not there now\\)"):
        ev.main([f"--out_dir={tmp_path / 'c.pt'}", text, "--device=cpu"])
    # the folder, which has no ckpt.pt: "remove results.json to replace them", and then no ckpt.pt to evaluate
    with pytest.raises(SystemExit, match="no checkpoint at .*ckpt.pt, but .* holds b.pt, best.pt, c.pt: rename the"):
        ev.main([f"--out_dir={tmp_path}", text, "--device=cpu"])


def test_another_runs_results_read_under_another_locale_are_not_replaced(tmp_path, monkeypatch):
    # results.json is UTF-8 under any locale: run 'é' recorded under UTF-8 and read under PYTHONUTF8=0 LC_ALL=C was a
    # UnicodeEncodeError in other_run, "no run to compare", and another run's evaluation replaced it without a word
    for run in ("é", "b"):
        make_ckpt(tmp_path / run, BYTES_META)
    (tmp_path / "t.txt").write_text("the text of t, a few words\n")
    ev.main([f"--out_dir={tmp_path / 'é'}", f"--text={tmp_path / 't.txt'}", "--device=cpu", f"--out={tmp_path / 'ev'}"])
    before = (tmp_path / "ev" / "results.json").read_bytes()
    env = dict(os.environ, PYTHONUTF8="0", LC_ALL="C", PYTHONCOERCECLOCALE="0")
    r = subprocess.run([sys.executable, "eval.py", f"--out_dir={tmp_path / 'b'}", f"--text={tmp_path / 't.txt'}",
                        "--device=cpu", f"--out={tmp_path / 'ev'}"], cwd=ROOT, env=env, capture_output=True,
                       text=True, errors="replace", timeout=300)
    assert r.returncode == 1 and "holds the results of another run" in r.stderr, r.stderr[-2000:]
    assert (tmp_path / "ev" / "results.json").read_bytes() == before
    # and a UTF-8 name typed under a Latin-1 locale ('Ã¼' to Python there) is recorded as the name it spells
    monkeypatch.setattr(sys, "getfilesystemencoding", lambda: "iso8859-1")
    typed = tmp_path / "ü".encode("utf-8").decode("latin-1")
    make_ckpt(typed, BYTES_META)
    ev.main([f"--out_dir={typed}", f"--text={tmp_path / 't.txt'}", "--device=cpu"])
    was = json.loads((typed / "eval" / "results.json").read_text(encoding="utf-8"))["checkpoint"]
    assert was["out_dir"] == was["path"] == str(tmp_path / "ü")


def test_a_run_recorded_from_another_folder_is_named_where_it_is(tmp_path, monkeypatch):
    # pass 24 (fourth round): results.json recorded out_dir as given, from the folder eval.py ran in: run a evaluated
    # from sub/ (../a), then b from tmp_path, was refused as "another run (../a)", a folder beside tmp_path, not a
    for run in ("a", "b"):
        make_ckpt(tmp_path / run, BYTES_META)
    (tmp_path / "t.txt").write_text("the text of t, a few words\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    ev.main(["--out_dir=../a", "--text=../t.txt", "--device=cpu", "--out=../ev"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        ev.main(["--out_dir=b", "--text=t.txt", "--device=cpu", "--out=ev"])
    assert f"another run ({tmp_path / 'a'})" in str(e.value)
    ev.main(["--out_dir=a", "--text=t.txt", "--device=cpu", "--out=ev"])  # the same run, from here: its own
    # a link to the latest run, since pointed at another: out_dir as given is the same, the run is not
    (tmp_path / "latest").symlink_to("a")
    ev.main(["--out_dir=latest", "--text=t.txt", "--device=cpu", "--out=ev2"])
    (tmp_path / "latest").unlink()
    (tmp_path / "latest").symlink_to("b")
    with pytest.raises(SystemExit, match=r"another run \(.*a\), which"):
        ev.main(["--out_dir=latest", "--text=t.txt", "--device=cpu", "--out=ev2"])


def test_a_text_file_replaced_by_another_text_is_another_evaluation(tmp_path):
    # pass 23 (third round): input.txt evaluated, then replaced by another text (README's "your own text") and
    # evaluated again into the same --out, replaced the first text's results without a word; a copy is the same
    make_ckpt(tmp_path, BYTES_META)
    (tmp_path / "a.txt").write_text("the text of a, a few words\n")
    ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 'a.txt'}", "--device=cpu"])
    (tmp_path / "copy.txt").write_bytes((tmp_path / "a.txt").read_bytes())
    ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 'copy.txt'}", "--device=cpu"])
    (tmp_path / "copy.txt").write_text("the text of b, a few words\n")
    # pass 32: it named the very file given, as if it were another one; it now says the file's text changed
    with pytest.raises(SystemExit, match=r"another evaluation \(the perplexity of .*, a file whose text has changed"):
        ev.main([f"--out_dir={tmp_path}", f"--text={tmp_path / 'copy.txt'}", "--device=cpu"])


def test_the_same_text_by_a_symlink_or_after_its_folder_moved_is_the_same_evaluation(tmp_path):
    # pass 23 (second round): --text by a symlink to the text, or the same text after `mv project project-old`,
    # was refused as another evaluation; a task named twice was another task list; a hand-edited record a traceback
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "a.txt").write_text("the text\n")
    (proj / "b.txt").write_text("another text\n")
    (proj / "link.txt").symlink_to("a.txt")
    out = tmp_path / "eval"
    out.mkdir()
    path = out / "results.json"
    path.write_text(json.dumps({"results": {}, "evaluation": {"text": str(proj / "a.txt")}}))
    assert ev.other_results(str(out), {"text": str(proj / "link.txt")}) is None
    assert ev.other_results(str(out), {"text": str(proj / "b.txt")}) is not None
    proj.rename(tmp_path / "moved")
    assert ev.other_results(str(out), {"text": str(tmp_path / "moved" / "a.txt")}) is None
    assert ev.other_results(str(out), {"text": str(tmp_path / "moved" / "b.txt")}) is not None
    (tmp_path / "proj").mkdir()  # the recorded text there again, another file: another evaluation
    (tmp_path / "proj" / "a.txt").write_text("the text\n")
    assert ev.other_results(str(out), {"text": str(tmp_path / "moved" / "a.txt")}) is not None
    args = argparse.Namespace(text=None, num_fewshot=5, limit=None)
    path.write_text(json.dumps({"results": {}, "evaluation": ev.evaluation(args, ["hellaswag", "arc_easy"])}))
    assert ev.other_results(str(out), ev.evaluation(args, ["hellaswag", "arc_easy", "hellaswag"])) is None
    assert "(tasks arc_easy,hellaswag (5-shot, no --limit))" in ev.other_results(str(out), {"text": "a.txt"})
    for hand in ({"tasks": [1, 2]}, {"tasks": ["arc_easy"]}, "hellaswag", {"text": None}):
        path.write_text(json.dumps({"results": {}, "evaluation": hand}))
        assert ev.other_results(str(out), ev.evaluation(args, ["hellaswag"])).startswith(f"--out {out} holds")
    path.write_text(json.dumps({"results": {"arc_easy": {}}, "config": {}}))  # an older harness result
    assert "another evaluation (lm_eval tasks)" in ev.other_results(str(out), {"text": "a.txt"})
