"""
Downstream evaluation of a checkpoint through EleutherAI's lm-evaluation-harness (an optional dependency:
pip install -r requirements-eval.txt). The paper's table, 5-shot:
$ python eval.py --out_dir=out-qk_v_1b2
$ python eval.py --out_dir=out-cpu-tiny --tasks=my_task --include_path=my_tasks/ --limit=100
Without the network or the harness: word and byte perplexity over a local text file (see text_perplexity):
$ python eval.py --out_dir=out-cpu-tiny --text=input.txt
The checkpoint becomes an lm_eval model (CheckpointLM): log-likelihoods of continuations, rolling log-likelihoods
for perplexity tasks and greedy generation through the KV cache, in the tokenizer of the checkpoint's data. Writes
the harness' results JSON and a markdown table to --out (default out_dir/eval/).
"""
import argparse
import contextlib
import difflib
import errno
import glob
import hashlib
import json
import math
import numbers
import os
import shlex
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict

if getattr(sys.flags, "safe_path", False):  # PYTHONSAFEPATH=1 or -P leaves this folder off sys.path: the next
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # import was a ModuleNotFoundError traceback
from configurator import quiet_start  # standard library only

if __name__ == "__main__":  # a Ctrl-C (SIGTERM, SIGHUP) while torch imports: one line, not its traceback
    quiet_start()

import torch
import torch.nn.functional as F

from checkpoint import (VOCABS, atomic_write, checkpoint_path, guard_assets, hold_lock, jq_command, json_text,
                        load_json, new_dirs, outputs_free, perplexity, present, saved_path, shell_arg, together,
                        unwritable)
from configurator import Parser, as_typed, cli, number
from convert import gpt2_missing, hub_reachable
from model import GPTConfig
from sample import (CHECKPOINT_HINTS, CONTEXT_HINTS, CONVERT_HINTS, DTYPES, EOT, add_model_args,
                    check_conversion_args, check_device, get_tokenizer, load_model, read_text_file as read_file)

try:
    from lm_eval import simple_evaluate
    from lm_eval.api.model import LM
    from lm_eval.tasks import TaskManager
except ImportError:
    simple_evaluate, LM = None, object  # main() says what to install; the class below stays importable

PAPER_TASKS = "hellaswag,piqa,arc_easy,arc_challenge,winogrande"
NUM_FEWSHOT = 5  # the paper's table is 5-shot
SEGMENT = 4096  # windows of --text scored at a time: its memory, whatever the text's length
INSTALL = "eval.py needs lm-evaluation-harness, an optional dependency: pip install -r requirements-eval.txt"


@contextlib.contextmanager
def evaluating(model):
    """The model in eval mode for the block, then in the mode it was in. At every call: a notebook that trained the
    model on (model.train()) after making the LM scored the next evaluation under dropout, another number each call;
    and back: one that scored mid-training (model.eval() at every score) trained on after it without dropout."""
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


class CheckpointLM(LM):
    """A trained GPT as an lm_eval model. Text in, summed log-probabilities or greedy text out."""

    def __init__(self, model, meta, batch_size=16, dtype=torch.float32):
        super().__init__()
        # as a library: batch_size=-1 scored nothing (every perplexity 1.0), int64 ran float32 under a warning, a
        # bidirectional model saw the tokens it scores, and a model left in training mode scored under dropout
        # a state dict (ckpt['model']) was an AttributeError on .config; a compiled GPT passes (it forwards .config)
        if not isinstance(getattr(model, "config", None), GPTConfig):
            raise ValueError(f"model must be a GPT (model = GPT(GPTConfig(**ckpt['model_args'])), then "
                             f"model.load_state_dict(ckpt['model'])); got {type(model).__name__}.")
        if not (isinstance(batch_size, numbers.Integral) and not isinstance(batch_size, bool) and batch_size >= 1):
            raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}.")
        if dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"dtype must be torch.float32, torch.bfloat16 or torch.float16; got {dtype!r}.")
        if not model.config.causal:
            raise ValueError("the model must be causal (causal=True): a bidirectional one sees the tokens it scores.")
        # meta None was get_tokenizer's AttributeError; another checkpoint's r50k meta for a byte-level model failed
        # in the forward as "idx must hold token ids 0 .. 255", which named neither meta nor the mismatch
        # the whole checkpoint as meta was "unknown tokenizer None in the checkpoint's meta"; a list as its tokenizer
        # was VOCABS' "unhashable type"
        if not isinstance(meta, dict) or "model" in meta or not isinstance(meta.get("tokenizer", ""), str):
            got = ("the whole checkpoint; pass ckpt['meta']" if isinstance(meta, dict) and "model" in meta else
                   f"tokenizer {meta['tokenizer']!r}" if isinstance(meta, dict) else type(meta).__name__)
            raise ValueError(f"meta must be the checkpoint's meta dict (ckpt['meta']: its tokenizer and eot_token); "
                             f"got {got}.")
        if VOCABS.get(meta.get("tokenizer"), 0) > model.config.vocab_size:
            raise ValueError(f"meta names tokenizer {meta['tokenizer']!r} ({VOCABS[meta['tokenizer']]} tokens) for a "
                             f"model of vocab_size {model.config.vocab_size}; pass the meta of the checkpoint the "
                             f"model was loaded from.")
        self.encode, self.decode = get_tokenizer(meta)  # first: it checks meta's eot_token
        self.encode_text = get_tokenizer(meta, special=False)[0]  # --text's: "<|endoftext|>" in it is text
        self.model, self.batch_size, self.eot = model, batch_size, meta["eot_token"]
        self.dtype, self.n_requests = dtype, 0
        self.place()

    def place(self):
        """The model's device and autocast, read at every call: a notebook that moved the model after making the LM
        (model.to('cuda')) was sent its inputs on the old device, told to move idx, which the LM makes."""
        self._device = self.model.lm_head.weight.device
        self.ctx = nullcontext() if self.dtype == torch.float32 else torch.autocast(self._device.type, dtype=self.dtype)

    def windows(self, tokens, first):
        """Model calls that predict tokens[first:], each token once: [(input ids, target ids)], each input at most
        block_size long, its targets the next tokens of its last positions. Windows are cut back from the end, so
        each one is fed the block_size tokens before its last target: a context is cropped from the left and a
        continuation longer than block_size is still scored whole."""
        bs, out, end = self.model.config.block_size, [], len(tokens)
        while end > first:
            start = max(first, end - bs)
            out.append((tokens[max(0, end - 1 - bs):end - 1], tokens[start:end]))
            end = start
        return out[::-1]

    def score(self, requests):
        """[(tokens, first)] -> [(log p(tokens[first:] | what precedes them), whether greedy decoding gives them)].
        first >= 1: the first token is only ever context."""
        # first 0 asked for a prediction of the first token from nothing: a RuntimeError in gather
        bad = [f for _, f in requests if not (isinstance(f, numbers.Integral) and f >= 1)]
        if bad:
            raise ValueError(f"score's requests are (tokens, first) with first >= 1, the first token scored (the one "
                             f"before it is only context); got first = {bad[0]!r}.")
        self.place()
        rows = [(r, inp, tgt) for r, (tokens, first) in enumerate(requests) for inp, tgt in self.windows(tokens, first)]
        rows.sort(key=lambda row: -len(row[1]))  # batches of similar lengths pad little
        logp, greedy = [0.0] * len(requests), [True] * len(requests)
        for i in range(0, len(rows), self.batch_size):
            batch = rows[i:i + self.batch_size]
            T = len(batch[0][1])
            # right padding: causal attention never lets a real position see the padding after it
            x = torch.tensor([inp + [0] * (T - len(inp)) for _, inp, _ in batch], device=self._device)  # [B, T]
            with torch.no_grad(), self.ctx, evaluating(self.model):
                logits, _ = self.model(x)  # [B, T, vocab]: the uncached forward scores every position
            lp = F.log_softmax(logits.float(), dim=-1)
            for j, (r, inp, tgt) in enumerate(batch):
                t = torch.tensor(tgt, device=self._device)
                lpj = lp[j, len(inp) - len(tgt):len(inp)]  # [n, vocab]: the positions that predict tgt
                logp[r] += lpj.gather(1, t[:, None]).sum().item()
                greedy[r] = greedy[r] and bool((lpj.argmax(-1) == t).all())
        self.n_requests += len(requests)
        return list(zip(logp, greedy))

    def pair(self, context, continuation):
        # a word's leading space belongs to the continuation, as BPE tokenizes it: " world" is one r50k token
        n = len(context) - len(context.rstrip())
        context, continuation = context[:len(context) - n], context[len(context) - n:] + continuation
        ctx = self.encode(context) or [self.eot]  # an empty context starts a new document
        return ctx + self.encode(continuation), len(ctx)

    def loglikelihood(self, requests):
        return self.score([self.pair(*r.args) for r in requests])

    def loglikelihood_rolling(self, requests):
        return [lp for lp, _ in self.score([([self.eot] + self.encode(r.args[0]), 1) for r in requests])]

    def generate_until(self, requests):
        """Greedy, one request at a time through model.generate's KV cache, cut at the first `until` string."""
        bs, out = self.model.config.block_size, []
        self.place()
        for r in requests:
            context, kw = r.args
            until = kw.get("until") or []
            until = ([until] if isinstance(until, str) else list(until)) + [EOT]
            n_new = min(kw.get("max_gen_toks", 256), bs)
            if n_new < 1:  # a task that asks for no tokens
                out.append("")
                continue
            # the prompt (its last token at least) and every new token but the last (never fed back) fit the cache
            ids = (self.encode(context) or [self.eot])[-(bs - n_new + 1):]
            with self.ctx, evaluating(self.model):  # as score: generate refuses a model in training mode, dropout > 0
                y = self.model.generate(torch.tensor([ids], device=self._device), n_new, temperature=0)
            text = self.decode(y[0, len(ids):].tolist())
            for s in until:
                text = text.split(s)[0]
            out.append(text)
        self.n_requests += len(requests)
        return out


def table(results):
    """The harness' results as markdown: one row per task and metric, then the mean acc over the tasks."""
    lines, accs = ["| task | metric | value | stderr |", "|---|---|---|---|"], []
    # a group's subtasks are in the group's own acc already: counted again, --tasks=mmlu,hellaswag gave hellaswag
    # 1/63 of the mean (mmlu, its 4 categories and 57 subjects); the mean is over the tasks asked for. A group
    # without an acc of its own (no aggregate_metric_list in its YAML) is counted through its subtasks
    has_acc = {g for g, m in results["results"].items() if any(k.partition(",")[0] == "acc" for k in m)}
    inside = {t for g, subtasks in results.get("group_subtasks", {}).items() if g in has_acc for t in subtasks}
    for task, metrics in results["results"].items():
        for key, v in metrics.items():
            name, _, filt = key.partition(",")  # "acc,none": metric, then the filter it went through
            if name not in results["higher_is_better"].get(task, {}):  # stderrs, sample_len, alias, ...
                continue
            se = metrics.get(f"{name}_stderr,{filt}")
            # a --text file named a|b.txt split its row into one cell too many; one with a line break, into two rows
            cell = task.replace("|", "\\|").replace("\r", "\\r").replace("\n", "\\n")
            lines.append(f"| {cell} | {name} | {v:.4f} | {se:.4f} |" if isinstance(se, float) else
                         f"| {cell} | {name} | {v:.4f} | n/a |")
            accs += [v] if name == "acc" and task not in inside else []
    if len(accs) > 1:
        lines.append(f"| mean of {len(accs)} tasks | acc | {sum(accs) / len(accs):.4f} | |")
    # a --limit run's table read as the tasks' result (the limit was in results.json alone): what it scored is said
    cut = [f"{t} {n['effective']:,} of {n['original']:,}" for t, n in results.get("n-samples", {}).items()
           if isinstance(n, dict) and n.get("effective", 0) < n.get("original", 0)]
    if cut:
        lines += ["", f"--limit: documents scored {', '.join(cut)} (a quick check, not a result)."]
    return "\n".join(lines) + "\n"


def text_perplexity(lm, path, text):
    """The harness' three perplexity metrics (as its wikitext task defines them) over one local text, read as one
    document after an end-of-text token and scored as its perplexity tasks are: each token once, in the windows of
    block_size tokens of windows(). Words are the text's whitespace-separated words, bytes its UTF-8 bytes:
    word_perplexity = exp(-log p / words), byte_perplexity = exp(-log p / bytes), bits_per_byte = -log2 p / bytes.
    -> results in the harness' layout, for table()."""
    ids = [lm.eot] + lm.encode_text(text)  # one document, as the docs say: its bytes all scored, none a separator
    # scored in pieces of SEGMENT windows, cut back from the end as windows() cuts them (the same windows, the same
    # contexts): all the windows of a 22 MB text at once took 1.2 GB beside its ids, a 200 MB text ran out of memory
    bs, logp = lm.model.config.block_size, 0.0
    length = SEGMENT * bs
    for end in range(len(ids), 1, -length):
        start = max(1, end - length)
        begin = max(0, start - bs - 1)  # the context the first window of the piece is fed
        (lp, _), = lm.score([(ids[begin:end], start - begin)])
        logp += lp
    words, nbytes = len(text.split()), len(text.encode("utf-8"))
    if not words:  # a ZeroDivisionError below; read_text_file refuses it for --text
        raise ValueError("text holds no words; give a text to measure perplexity on.")
    # the file name's own bytes as UTF-8: outside UTF-8 mode (PYTHONUTF8=0 LC_ALL=C) préface.txt reached Python
    # as 'pr\udcc3\udca9face.txt', which results.md could not encode (a traceback, results.json alone)
    name = os.fsencode(os.path.basename(path)).decode("utf-8", "backslashreplace")
    metrics = {"word_perplexity": perplexity(-logp / words), "byte_perplexity": perplexity(-logp / nbytes),
               "bits_per_byte": -logp / nbytes / math.log(2)}
    return {"results": {name: {f"{k},none": v for k, v in metrics.items()}},
            "higher_is_better": {name: {k: False for k in metrics}},
            "text": {"path": path, "tokens": len(ids) - 1, "words": words, "bytes": nbytes, "logprob": logp}}


def read_text_file(path):
    # every byte of the file is scored and counted, "\r\n" too; sample.py's prefix FILE: is no part of a path here
    fix = f"--text takes the path itself: --text={path[5:]}" if path.startswith("FILE:") and \
        os.path.exists(path[5:]) and not os.path.exists(path) else "give a text file"
    def jsonl(by_name, real):  # prepare's documents: their JSON syntax ({"text": ..., escapes) was scored, exit 0
        command, new = jq_command(real)
        return (f"--text={path}: {'a .jsonl file is' if by_name else 'this file is'} JSON, one document a line, and "
                f"--text scores a file as one plain text, JSON syntax and all; write its documents' text to a .txt "
                f"file ({command}) and give --text={new}.")
    text = read_file(path, f"--text={path}", fix, jsonl)
    if not text.split():
        raise SystemExit(f"--text={path} holds no words; give a text to measure perplexity on.")
    return text


def denied(e, tasks):
    """One sentence for a task that could not be built for want of a permission, or None: a read-only HOME (datasets
    makes its cache in ~/.cache) or a task file this user cannot read was a traceback from deep inside datasets."""
    if not (isinstance(e, PermissionError) or getattr(e, "errno", None) == errno.EROFS):
        return None
    import datasets
    cache, where = str(datasets.config.HF_DATASETS_CACHE), str(e.filename or "")
    if where and (cache.startswith(where) or where.startswith(cache)):  # the cache, or a folder on its way
        return (f"--tasks: the Hugging Face datasets cache {cache} cannot be made or written ({e.strerror}: {where}); "
                f"set HF_HOME (or HF_DATASETS_CACHE) to a writable folder.")
    return f"--tasks: lm_eval cannot build {', '.join(tasks)}: {where} ({e.strerror}); make it readable to this user."


def yaml_of(tm, task):
    """The YAML file lm_eval read task from, or None."""
    entry = getattr(tm, "task_index", {}).get(task)  # a dict in lm-eval 0.4.10, an Entry in 0.4.13
    yaml_path = entry.get("yaml_path") if isinstance(entry, dict) else getattr(entry, "yaml_path", None)
    return str(yaml_path) if yaml_path else None


def included(tm, task, include_path):
    """Whether task's YAML is under include_path (a local task, not one of lm_eval's own)."""
    yaml_path = yaml_of(tm, task) if include_path else None
    return bool(yaml_path) and os.path.realpath(yaml_path).startswith(os.path.realpath(include_path) + os.sep)


def task_data(yaml_path):
    """The local files a task's YAML names as its data (dataset_kwargs' data_files), [] where it names none or
    cannot be parsed here (lm_eval's own tags are read as nothing)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass
    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    try:
        with open(yaml_path, encoding="utf-8") as f:
            files = ((yaml.load(f, Loader) or {}).get("dataset_kwargs") or {}).get("data_files")
    except (OSError, ValueError, yaml.YAMLError, AttributeError):
        return []
    files = list(files.values()) if isinstance(files, dict) else files
    files = [files] if isinstance(files, str) else files if isinstance(files, list) else []
    flat = [f for x in files for f in (x if isinstance(x, list) else [x])]
    return [f for f in flat if isinstance(f, str) and "://" not in f]


def check_task_data(task, files):
    """A task's data file that is a link whose target is gone, unreadable or a folder, said so: lm_eval said
    "Unable to find" or "fix its YAML file" of a YAML with nothing wrong in it, or read a file it could not read
    as none."""
    for f in files:
        present(f)
        if os.path.isdir(f):
            raise SystemExit(f"--tasks: {f}, the data file of task {task}, is a folder; move it out of the way and "
                             f"put the task's data file there.")


def unread_yaml(include_path):
    """The YAML files of include_path lm_eval read no task from (it skips them without a word), each checked for a
    link whose target is gone or a file this user cannot read first."""
    from lm_eval.tasks import TaskManager as Manager
    found = sorted(glob.glob(os.path.join(include_path, "**", "*.yaml"), recursive=True))
    for path in found:
        present(path)
    tm = Manager(include_path=include_path, include_defaults=False)
    read = {os.path.realpath(p) for p in map(lambda t: yaml_of(tm, t), getattr(tm, "task_index", {})) if p}
    return [p for p in found if os.path.realpath(p) not in read]


def offline_switch():
    """True when the user's environment turns the hub off for datasets (HF_DATASETS_OFFLINE, else HF_HUB_OFFLINE or
    TRANSFORMERS_OFFLINE, read as the two libraries read them): "run where there is a network" would not help then.
    Read from the environment, not the libraries' flags, which load_tasks itself sets offline."""
    from huggingface_hub.constants import ENV_VARS_TRUE_VALUES
    own = os.environ.get("HF_DATASETS_OFFLINE")
    if own is None:
        own = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return (own or "").upper() in ENV_VARS_TRUE_VALUES


def load_tasks(args):
    """-> (TaskManager, task names) after checking the names, building those of --include_path and, offline, that
    the tasks' datasets are in the cache: when the hub does not answer, the datasets library is told to read its
    cache only (else each download retries for most of a minute, then ends in a traceback), and each task is built
    once before the model loads."""
    tm = TaskManager(include_path=args.include_path)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]  # "a,b," and "a, b" name two tasks
    if not tasks:
        raise SystemExit(f"--tasks={args.tasks!r} names no task; give comma-separated lm_eval task names, or "
                         f"--text=FILE for the perplexity of a local text.")
    unknown = [t for t in tasks if t not in tm.all_tasks]
    path = next((t for t in unknown if os.path.exists(t)), None)
    if path:  # a task's YAML, its folder or a text, given where names go: "add them through --include_path" missed it
        folder = os.path.dirname(path) or "."  # quoted: a path with a space, pasted, was two arguments
        fix = (f"pass the folder as {shlex.quote('--include_path=' + path)}" if os.path.isdir(path) else
               f"pass its folder as {shlex.quote('--include_path=' + folder)}" if path.endswith((".yaml", ".yml"))
               else f"for the perplexity of a text file, use {shlex.quote('--text=' + path)}")
        raise SystemExit(f"--tasks takes task names, and {path} is a {'folder' if os.path.isdir(path) else 'file'}; "
                         f"{fix}{'' if fix.startswith('for') else ' and the names its YAML files give as --tasks'}.")
    # a task's YAML emptied, cut short or another file, in --include_path: "add task YAML files through
    # --include_path" was the advice, where it was
    unread = unread_yaml(args.include_path) if unknown and args.include_path else []
    if unread:
        raise SystemExit(f"--tasks: lm_eval knows no task {', '.join(unknown)}, and reads no task from "
                         f"{', '.join(unread[:3])}{' ...' if len(unread) > 3 else ''} in --include_path (empty, cut "
                         f"short, a folder, or a template other files include); fix the one that defines it.")
    if unknown:
        # a mistyped local task (nextline for next_line) was told to list tasks without its --include_path, which
        # leaves it out, and to add the YAML files it had added: the nearest names, and the list that holds them
        # each name its own, best first: one list sorted for all (hellaswg,arc_eas) named arc_* alone
        def nearest(t):
            near = difflib.get_close_matches(t, tm.all_tasks, n=3, cutoff=0.75)
            return f"{t} (nearest: {', '.join(near)})" if near else t
        where = f" --include_path {shlex.quote(args.include_path)}" if args.include_path else ""
        raise SystemExit(f"--tasks: lm_eval knows no task {', '.join(nearest(t) for t in unknown)}"
                         + f"; list them with `lm_eval ls tasks{where}`"
                         + ("." if where else ", or add task YAML files through --include_path."))
    import datasets
    import huggingface_hub.constants
    switched_off = offline_switch()
    offline = switched_off or not hub_reachable()
    if offline:
        datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    # online, the tasks of --include_path are built here too (their YAML and data are the user's own, usually local):
    # built inside simple_evaluate, after the model, a missing or damaged data file was the harness' traceback
    build = tm.load if hasattr(tm, "load") else tm.load_task_or_group  # lm-eval 0.4.13, 0.4.10
    for t in tasks:
        mine = included(tm, t, args.include_path)
        if offline or mine:
            files = task_data(yaml_of(tm, t)) if mine else []
            check_task_data(t, files)
            try:
                build([t])
            except ConnectionError:  # what datasets raises for data that is neither cached nor reachable
                why = ("HF_HUB_OFFLINE (or HF_DATASETS_OFFLINE, TRANSFORMERS_OFFLINE) is set, so the hub is not asked; "
                       "unset it and run once where there is a network" if switched_off else
                       f"the hub ({huggingface_hub.constants.ENDPOINT}) does not answer; run once where there is a "
                       f"network")
                raise SystemExit(f"--tasks: the dataset of {t} is not in the Hugging Face cache and {why} (the cache "
                                 f"is reused), or measure perplexity on a local text with --text=FILE.") from None
            except PermissionError as e:
                raise SystemExit(denied(e, [t])) from None
            except Exception as e:  # a task's YAML naming a missing file or a wrong value, cut short (a string
                # where a mapping goes: AttributeError), or its data file empty (StopIteration), cut short
                # (DatasetGenerationError) or holding a label beyond its choices (IndexError): each was a traceback
                cause = e.__cause__ or e  # datasets wraps the parser's error in "An error occurred while ..."
                why = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
                # a data file that is there may be at fault (not JSON of the fields the YAML names: a ValueError,
                # where "fix its YAML file" was the advice); one that is not is named in the error
                data = [f for f in files if os.path.exists(f)]
                yaml_file = f" {yaml_of(tm, t)}" if mine else ""
                data = (f" or its data file {', '.join(data)}" if data else "" if mine or isinstance(e, (
                    FileNotFoundError, ValueError)) else " or the data it names")
                raise SystemExit(f"--tasks: lm_eval cannot build task {t} ({why}); fix its YAML file{yaml_file}"
                                 f"{data}.") from None
    return tm, tasks


def get_parser():
    # lm_eval's own names: its --output_path is the results folder, which --out_dir (the nearest) is not
    p = Parser(description="Evaluate out_dir/ckpt.pt with lm-evaluation-harness, or its perplexity "
                           "on a local text.", formatter_class=argparse.ArgumentDefaultsHelpFormatter, hints={
                               **CHECKPOINT_HINTS, **CONVERT_HINTS,
                               **{k: f"{v}: every context is cropped from the left to it" for k, v in
                                  CONTEXT_HINTS.items()},
                               **dict.fromkeys(("output_path", "output_dir", "output"), (
                                   "the results go to --out (default out_dir/eval); --out_dir is the folder of "
                                   "ckpt.pt"))})
    p.add_argument("--out_dir", default="out", help="directory holding ckpt.pt")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--tasks", default=PAPER_TASKS, help="comma-separated lm_eval task names")
    what.add_argument("--text", default=None, help="a local text file: word and byte perplexity over it instead of "
                                                   "the tasks (no network, no lm-eval; --num_fewshot, --limit and "
                                                   "--include_path are the tasks' and refused with it)")
    p.add_argument("--num_fewshot", type=number(int, ">= 0"), default=None,
                   help=f"examples before each question; None: {NUM_FEWSHOT}")
    p.add_argument("--batch_size", type=number(int, ">= 1"), default=16,
                   help="windows of at most block_size tokens per forward")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", choices=DTYPES, default=None, help="None: bfloat16 on CUDA, float32 on CPU")
    p.add_argument("--limit", type=number(float, "> 0"), default=None,
                   help="documents per task (a fraction if below 1), for quick checks; the harness marks such "
                        "results as not for reporting")
    p.add_argument("--include_path", default=None, help="a directory of extra task YAML files, e.g. local tasks")
    p.add_argument("--out", default=None, help="results directory; None: out_dir/eval")
    add_model_args(p)
    return p


# options a mode of eval.py reads nothing of (configurator.Parser.unread); out_dir without --out is the results'
# folder, which makes it read
UNREAD = [("out_dir", lambda a: a.init_from != "resume" and a.out is not None, "--init_from=gpt2... loads the hub's "
           "weights, not out_dir's checkpoint, and --out says where the results go; drop --out_dir, or drop "
           "--init_from to evaluate the checkpoint")]


def parse_args(argv=None):
    p = get_parser()
    args = p.parse_args(argv)
    p.unread(args, UNREAD)
    check_device(p, args.device)
    check_conversion_args(p, args)
    if args.text is not None:  # the tasks' settings mean nothing for one text: refused, not ignored
        given = [f"--{k}" for k in ("num_fewshot", "limit", "include_path") if getattr(args, k) is not None]
        if given:
            p.error(f"{' and '.join(given)} {'applies' if len(given) == 1 else 'apply'} to the lm_eval tasks, and "
                    f"--text measures the whole file without them; drop {'it' if len(given) == 1 else 'them'}, or "
                    f"evaluate tasks with --tasks instead of --text.")
    args.num_fewshot = NUM_FEWSHOT if args.num_fewshot is None else args.num_fewshot
    # the harness cuts 1.5 to 1, and its islice fails on a count past 64 bits (a traceback after the model loaded)
    if args.limit is not None and args.limit > 1 and (args.limit != int(args.limit) or args.limit >= 2**63):
        p.error(f"--limit above 1 is a number of documents, a whole one below 2**63 (below 1, a fraction); got "
                f"{args.limit}.")
    return args


def writable_out(out):
    if why := unwritable(out):
        raise SystemExit(f"--out {out!r} is not a writable directory ({why}); choose another --out.")
    outputs_free(*(os.path.join(out, f"results.{ext}") for ext in ("json", "md")))
    return out


def evaluation(args, tasks=None, text=None):
    """What an evaluation measures, recorded in results.json: the text (its path and the sha256 of the text read
    from it: input.txt replaced by another text is another evaluation), or the tasks, shots and limit."""
    if args.text is not None:
        return {"text": os.path.abspath(args.text),
                "sha256": hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()}
    return {"tasks": sorted(set(tasks)), "num_fewshot": args.num_fewshot, "limit": args.limit}  # a task named twice
    # is evaluated once


def same_text(old, new):
    """Whether the text results.json records (old) is the one given (new, absolute): the same file by another path
    (a symlink to it), or one of its name where the recorded one is gone (the project's folder moved or renamed)."""
    try:
        return os.path.samefile(old, new)
    except OSError:
        return not os.path.lexists(old) and os.path.basename(old) == os.path.basename(new)
    except (TypeError, ValueError):  # hand-edited: no path
        return False


def described(old):
    """The evaluation results.json records, in words."""
    try:
        if "text" in old:
            return f"the perplexity of {old['text']}"
        if "tasks" not in old:  # older harness results: no record of their tasks
            return "lm_eval tasks"
        limit = "no --limit" if old["limit"] is None else f"--limit={old['limit']}"
        return f"tasks {','.join(old['tasks'])} ({old['num_fewshot']}-shot, {limit})"
    except (KeyError, TypeError):  # hand-edited
        return f"recorded as {str(old)[:80]}"


def is_under(path, folder):
    """Whether path is folder or inside it, by absolute real paths."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def in_own_folder(out, run_dir):
    """Whether --out is in run_dir and no other run's folder (a ckpt.pt) in it: a run trained in runs/a/sub has its
    own eval/, whose results runs/a's evaluation with --out=runs/a/sub/eval replaced as its own without a word."""
    if not is_under(out, run_dir):
        return False
    path, top = os.path.realpath(out), os.path.realpath(run_dir)
    while path != top:
        if os.path.exists(os.path.join(path, "ckpt.pt")):
            return False
        path = os.path.dirname(path)
    return True


def ckpt_name(out_dir):
    """The file name of the checkpoint --out_dir names: its own, or ckpt.pt in a folder (links resolved)."""
    return os.path.basename(checkpoint_path(os.path.realpath(out_dir)))


def other_run(res, run, inside=False):
    """The run results.json records when it is not run, (out_dir, init_from) as given, else None: two runs
    evaluated on one text into one --out (qkv and qk_v side by side) kept the second's results without a word. The
    same folder by another path, or one of its name where the recorded one is gone (moved), is the same run; and in
    the run's own folder (inside) results filed in their run's own folder, or any recorded folder that is gone: this
    run, moved or copied."""
    try:
        was = res["checkpoint"]
        # two checkpoint files of one folder (cmp/qkv.pt, cmp/qk_v.pt) share its eval/: the second replaced the
        # first's results as the same run's, without a word. The run is its file; a folder's is its ckpt.pt
        rec = saved_path(was.get("path")) or saved_path(was["out_dir"])
        # (a checkpoint that is not there is load_model's to name: --out_dir=cmp without a ckpt.pt was "another run
        # ... remove results.json to replace them", advice that deleted the results of an evaluation that then failed)
        if "resume" == was["init_from"] == run[1] and ckpt_name(rec) != ckpt_name(run[0]) and \
                os.path.isfile(checkpoint_path(run[0])):
            # named by the file recorded: a link (best.pt) since pointed at another file was said to be "another
            # run (best.pt)", the name just given. A file gone from a folder still there was renamed or deleted
            # (which its name cannot tell apart); a folder gone too: the run moved, as below
            file = checkpoint_path(rec)
            if os.path.lexists(file):
                return file
            if os.path.isdir(os.path.dirname(os.path.abspath(file))):
                return f"{file}, not there now"
            if not os.path.isabs(file):  # older results: out_dir as given, from a folder they do not record
                return file
        if inside and was.get("filed_inside") is True:  # filed in its run's own folder, found in this one's: this run,
            # moved or copied (`mv a b` and a new run trained in a was "another run (a)")
            return None
        # written as UTF-8 under any locale: read back under one that cannot encode them ('runs/日本' under Latin-1,
        # LC_ALL=C) they were a UnicodeEncodeError here, "no run to compare", and another run's results replaced them
        old, new, path = (saved_path(was["out_dir"]), was["init_from"]), run, saved_path(was.get("path"))
        if isinstance(path, str) and os.path.realpath(old[0]) != path:
            # recorded from another folder, or through a link since pointed at another run: out_dir as given names
            # another folder from here
            old = (path, old[1])
        if "resume" not in (old[1], new[1]):  # the hub's model: its name is the run
            return None if old[1] == new[1] else old[1]
        if old[1] != new[1]:
            return old[0] if old[1] == "resume" else old[1]
        folder = [os.path.abspath(os.path.dirname(d) if os.path.isfile(d) or d.endswith('.pt') else d)
                  for d in (old[0], new[0])]
        if same_text(*folder):  # --out_dir may name the checkpoint file itself
            return None
        # gone: renamed, moved or deleted, which its name cannot tell apart; refused, as its results may be all left
        return old[0] if os.path.lexists(folder[0]) else None if inside else f"{old[0]}, not there now"
    except (KeyError, TypeError, ValueError, AttributeError):  # older or hand-edited results: no run to compare
        return None


def other_results(out, what, run=None, inside=False):
    """One sentence when --out holds the results of another evaluation, which this one would replace: a quick
    `--limit=10` or `--text` check into out_dir/eval wiped an hours-long 5-shot result without a word; or of another
    run (out_dir or hub model; run: this one's (out_dir, init_from)). The same evaluation of the same run again (a
    later checkpoint, another conversion or dtype) replaces its own results, as before; a results.json that cannot be
    read is replaced too."""
    path = os.path.join(out, "results.json")
    try:
        res = load_json(path)
        old = res.get("evaluation") or ({"text": res["text"]["path"]} if "text" in res else {})
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None
    if run is not None and (was := other_run(res, run, inside)) is not None:
        return (f"--out {out} holds the results of another run ({was}), which this evaluation would replace; give "
                f"another --out to keep both, or remove {shell_arg(path)} to replace them.")
    if isinstance(old, dict) and "sha256" in old and "sha256" in what:  # by contents: a copy or a move is the same,
        same = old["sha256"] == what["sha256"]  # the same file holding another text is not
    elif "evaluation" in res:
        same = old == what or ("text" in what and isinstance(old, dict) and set(old) == {"text"} and
                               same_text(old["text"], what["text"]))
    elif "text" in old:  # written before results.json recorded its evaluation: the path as given, from its folder
        same = "text" in what and os.path.basename(str(old["text"])) == os.path.basename(what["text"])
    else:  # older harness results, with no record of their tasks: taken as the same tasks
        same = "text" not in what
    if same:
        return None
    was = described(old)
    if isinstance(old, dict) and "sha256" in old and "text" in what and same_text(old.get("text"), what["text"]):
        # the path given is the one recorded: "another evaluation (the perplexity of part.txt)" read as a mistake
        was += ", a file whose text has changed since"
    return (f"--out {out} holds the results of another evaluation ({was}), which this one would replace; "
            f"give another --out to keep both, or remove {shell_arg(path)} to replace them.")


def replaced_run(out, config, args):
    """One sentence when --out holds this out_dir's results from when its checkpoint was another model (another proj,
    shape or head count, with either conversion undone): the run replaced in place (`rm -r a; cp -r b a`, or a new
    run trained in a) is another run, whose evaluation replaced the old one's results as the same run's (its path)."""
    path = os.path.join(out, "results.json")
    try:
        was = load_json(path)["checkpoint"]
        if args.init_from != "resume" or was["init_from"] != "resume":
            return None
        old = {**was["model_args"], **(was.get("converted_from") or {})}
        new = json.loads(json_text({**asdict(config), **(args.converted_from or {})}, default=str))
        diff = [k for k in sorted(set(old) & set(new)) if k != "dropout" and old[k] != new[k]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # older or hand-edited: nothing to compare
        return None
    if not diff:
        return None
    said = ", ".join(f"{k}={old[k]!r}, now {new[k]!r}" for k in diff[:3])
    return (f"--out {out} holds the results of {was.get('out_dir')} when its checkpoint was another model ({said}): "
            f"another run, which this evaluation would replace; give another --out to keep both, or remove "
            f"{shell_arg(path)} to replace them.")


def main(argv=None):
    args = parse_args(argv)
    if args.include_path and not os.path.isdir(args.include_path):  # else: "lm_eval knows no task", with no why
        raise SystemExit(f"--include_path {args.include_path!r} is not a directory; give the folder of task YAML "
                         f"files.")
    if args.text is None and simple_evaluate is None:
        raise SystemExit(INSTALL)
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype or ("bfloat16" if device.type == "cuda" else "float32")]
    text = tasks = None
    if args.text is not None:
        text = read_text_file(args.text)
    else:
        # GPT-2 missing offline is the first thing to say: the tasks' refusal (half a minute later) advised --text,
        # which then met this one
        if args.init_from != "resume" and (why := gpt2_missing(args.init_from)):
            raise SystemExit(why)
        tm, tasks = load_tasks(args)
    # --out_dir may name the checkpoint file itself (load_model takes either): the results go beside it
    run_dir = os.path.dirname(args.out_dir) if os.path.isfile(args.out_dir) else args.out_dir
    out = args.out or os.path.join(run_dir, "eval")
    guard_assets(out, False, None)
    what = evaluation(args, tasks, text)
    # before the model and the evaluation: hours of work for a refusal. A --out inside the run's folder (its eval/)
    # holds that run's results whatever the folder is called now (renamed with mv), unless they name another run that
    # is still where they say: `--out_dir=a --out=b/eval` filed a's results in b, and b's own evaluation replaced them
    inside = args.init_from == "resume" and in_own_folder(out, run_dir)
    if why := other_results(out, what, (args.out_dir, args.init_from), inside):
        raise SystemExit(why)
    # out_dir's checkpoint or GPT-2, converted if --proj/--n_kv_head say so; its notes ("converted to ...", "nothing
    # to convert") on stderr: stdout is the results table alone, as results.md (`eval.py ... > table.md` began with one)
    with contextlib.redirect_stdout(sys.stderr):
        model, meta = load_model(args, device)
    if why := replaced_run(out, model.config, args):  # known only from the checkpoint: before the evaluation
        raise SystemExit(why)
    lm = CheckpointLM(model, meta, args.batch_size, dtype)  # its tokenizer may be missing offline
    # made after the checkpoint and its tokenizer (either missing makes no folder), before the evaluation (hours),
    # and removed again if the evaluation stops before its results (an error, Ctrl-C); one evaluation per folder:
    # two would each write results.json and results.md, and the pair could then mix
    with new_dirs(out), hold_lock(writable_out(out), f"--out {out} is being written by another eval.py run; wait for "
                                                      f"it to end or choose another --out."):
        t0 = time.time()
        if args.text is not None:
            res = text_perplexity(lm, args.text, text)
        else:
            try:
                res = simple_evaluate(model=lm, tasks=tasks, num_fewshot=args.num_fewshot, limit=args.limit,
                                      task_manager=tm, log_samples=False)
            except OSError as e:  # online, the tasks are built here
                if not (why := denied(e, tasks)):
                    raise
                raise SystemExit(why) from None
            except ValueError as e:  # random.sample's, as the harness draws the examples while it builds the requests
                if "Sample larger than population" not in str(e):
                    raise
                raise SystemExit(f"--num_fewshot={args.num_fewshot} asks for more examples than a task has documents "
                                 f"to draw them from (its few-shot split, else its own); lower --num_fewshot.") \
                    from None
        dt = time.time() - t0
        res["evaluation"] = what  # what was measured, for the next evaluation into this --out (other_results)
        # the folder as the text its bytes spell: a UTF-8 name typed under Latin-1 was saved as mojibake, no folder to
        # the next evaluation under UTF-8 ("not there now")
        res["checkpoint"] = {"out_dir": as_typed(args.out_dir), "init_from": args.init_from,
                             # out_dir as given is from the folder it was run in, and a link (latest) may point on
                             "path": as_typed(os.path.realpath(args.out_dir)),
                             "iter_num": getattr(args, "iter_num", None),  # which save of out_dir/ckpt.pt
                             "filed_inside": inside,  # in the run's own folder (its eval/): other_run
                             "convert_method": args.convert_method,  # None where load_model tied no V to K
                             "converted_from": args.converted_from or None,  # the fields the conversion changed
                             "conversion": getattr(args, "conversion", None),  # how: method, calibration, fits
                             "calib": args.calib if args.convert_method in ("lstsq", "split") else None,
                             "dtype": str(dtype).removeprefix("torch."),  # float16 scores differ in the 4th digit
                             "model_args": asdict(model.config)}  # which model these are
        # the config holds a few objects, e.g. the model: default=str
        md = table(res) + (f"\n{args.unfinished}, so these are that iteration's numbers.\n" if args.unfinished
                           else "")
        # a conversion at load (--proj, --n_kv_head) put its numbers in the run's own eval/ under the run's name,
        # results.json alone saying so
        if conversion := getattr(args, "conversion", None):
            md += f"\nScored after a conversion at load, not the run as trained: {conversion}\n"
        # bfloat16 by default on CUDA: its numbers replace a float32 evaluation's in the same --out, and differ from
        # them in the last digits, results.json alone naming the dtype
        if dtype != torch.float32:
            md += f"\nScored in {res['checkpoint']['dtype']} (float32's numbers differ in the last digits).\n"
        with together():  # the pair, or neither: one stopped between them was a new results.json beside an old .md
            atomic_write(os.path.join(out, "results.json"), json_text(res, indent=2, default=str))
            atomic_write(os.path.join(out, "results.md"), md)
        done = (f"{res['text']['tokens']:,} tokens in {dt:.1f} s" if args.text is not None else
                f"{lm.n_requests} requests in {dt:.1f} s ({1000 * dt / max(lm.n_requests, 1):.1f} s per 1,000)")
        # said before the table: an stdout that takes no text (`> /dev/full`, a closed pipe) stops the command at the
        # table, and "results.json and results.md are written whole when the evaluation ends" alone read as lost
        print(f"{done}; wrote {out}/results.json and results.md", file=sys.stderr)
        print(md, end="")


OOM = "lower --batch_size, or pass --dtype=bfloat16 (half of float32's memory)"  # cli's advice

if __name__ == "__main__":
    cli(main, "results.json and results.md are written whole when the evaluation ends, not before.", oom=OOM)
