"""
The files every script shares, each opened with its checks and written atomically:

  load_checkpoint(path)          a train.py checkpoint (ckpt.pt or its out_dir), its weights checked against
                                 its model_args before anything uses them
  save_checkpoint(ckpt, path)    torch.save through atomic_write
  open_data(data_dir, ...)       meta.json and the two bins of a prepared data directory, checked against each other
                                 (a study passes its name: its fixes then prepare byte-level data)
  atomic_write(path, ...)        every file a script writes: a temporary file beside it, fsync, then os.replace, so
                                 a kill or a full disk leaves the old file whole, never a torn one
  json_text(obj)                 strict JSON, inf and NaN as null (json.dumps writes Infinity, which is no JSON)
  save_figure(fig, path, ...)    a matplotlib figure as a PNG, drawn in memory first, then written by atomic_write
  writable_dir(folder, fix)      an output folder checked before the work, not found unwritable after it
  space_fix(e)                   the fix for a refused write: free space, or the limit that refused it (ulimit -f, -n;
                                 configurator's, whose compile_failure gives it too, taken here for the scripts)
  hold_lock(folder, busy)        one process at a time writing into a folder (prepare's out_dir, a study's runs);
                                 lock_held(e) tells another holder from a file system without locks (noted, unlocked)
  hold_out(folder, busy)         hold_lock on a command's --out, except assets/ (the full scaling study's lock)
  being_written(folder)          whether another process holds that lock now (a data_dir prepared as train.py starts)
  train_first(root, command)     a study's report with no finished run: train them, or wait for the study training them
  guard_assets(path, ...)        only a study's full default run writes into assets/ (compared by real path)
  check_study_run(ckpt, ...)     a study's run folder holds the run the study trains there, not a foreign one, nor
                                 one trained before its data_dir was prepared again (other_data, as train.py checks)
  new_dirs(folder, ...)          the output folders a run made are removed again if it fails before writing there
  read_log(out_dir)              a finished run's log.jsonl, every line checked: the studies read their curves there
  read_table(path, ...)          a CSV a study wrote, every row checked, before its report or figure is redrawn

Every problem is one sentence naming the file and the fix, raised as SystemExit: the scripts end on it without a
traceback, and tests catch it.
"""

import bisect
import contextlib
import csv
import difflib
import errno
import hashlib
import io
import itertools
import json
import math
import os
import re
import reprlib
import shlex
import signal
import stat
import sys
import tempfile
import threading
from dataclasses import asdict

import numpy as np
import torch

from configurator import as_text, closed_stream, configure, lift_limit, memory_limit, run_file, space_fix, stop_signals
from model import GPT, GPTConfig

PREFIXES = ("_orig_mod.", "module.")  # torch.compile's and DDP's wrappers: harmless, stripped on load
ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
MAX_SCAN = 1 << 27  # tokens: a bin with no recorded largest id is read for it up to 256 MB (0.05 s when cached)
# the data of the studies in the cpu_lm setting (config/cpu_lm.py: vocab_size 256), as their docstrings prepare it
BYTES_DATA = "python prepare_slimpajama.py --input=FILE --tokenizer=bytes --val_fraction=0.1 --out_dir={}"
STUDY_DATA = "data/cpu_lm_bytes"  # where the studies look for them by default
# train and val bytes of tiny Shakespeare (1,115,394 bytes) prepared as above: the data of the tracked tables
SHAKESPEARE = {"train_tokens": 1_003_857, "val_tokens": 111_539}
# and the sha256 of its train.bin and val.bin: another text of the same length (Shakespeare lowercased with `tr`, a
# typo fixed) has its counts, and a full study on it wrote over the tracked tables as Shakespeare's
SHAKESPEARE_BINS = {"train.bin": "ad28cd41a9faba835a3e7720e9979eb4d4e5a138f07c2a16b4b340eb489010b3",
                    "val.bin": "545570ad11100f23e847d10c6d8cc183893c40156ffada7c3a48fa0d3034b35d"}


# What each config file of the cpu_lm studies set when their tracked tables in assets/ were made, as a digest of
# its values (comments and layout are free; a variant's, of what it sets over config/cpu_lm.py, which it executes):
# a study run after one was edited in place (max_iters = 4 in config/cpu_lm.py) wrote its report over the tracked
# one. tests/test_bad_files.py asserts today's files match: to change a study's settings, edit the file and this
# digest together, and run the study again.
STUDY_CONFIGS = {"config/cpu_lm.py": "a2f552d6ef93", "config/cpu_lm_q_k_v.py": "a3d91414af26",
                 "config/cpu_lm_q_kv.py": "8faa3a8eb16d", "config/cpu_lm_qk_v.py": "0bb221c57333",
                 "config/cpu_lm_qk_v_linear.py": "b0114046d4d9", "config/cpu_lm_qk_v_mqa.py": "6711c72a7724",
                 "config/cpu_lm_qkv_mqa.py": "51c3c6df1b4c"}


def config_values(name):
    """{setting: value} config file name (from the repository's folder) sets; None where it is not there."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
    if not os.path.isfile(path):
        return None
    scope = run_file(path, {})
    return {k: scope[k] for k in scope.assigned if not k.startswith("_")
            and isinstance(scope[k], (bool, int, float, str, tuple, list, type(None)))}  # not the modules it imports


def config_digest(values, base=None):
    """A digest of values (config_values'), of those that differ from base where given; None for None."""
    if values is None:
        return None
    own = {k: v for k, v in values.items() if not base or k not in base or base[k] != v}
    return hashlib.sha256(json.dumps(own, sort_keys=True, default=repr).encode()).hexdigest()[:12]


def edited_configs():
    """The config/cpu_lm*.py files whose values are not those the tracked tables in assets/ were made with."""
    values = {name: config_values(name) for name in STUDY_CONFIGS}  # each file run once, the base included
    return [name for name, digest in STUDY_CONFIGS.items() if config_digest(
        values[name], None if name == "config/cpu_lm.py" else values["config/cpu_lm.py"]) != digest]


def other_text(data_dir):
    """data_dir's token counts where its meta.json records counts other than tiny Shakespeare's, the text of the
    tracked tables (data/cpu_lm_bytes prepared from the user's own text, as experiments/README.md allows), or its
    counts with other bytes; else None (Shakespeare's, or nothing readable there yet: a fresh clone's --report)."""
    if not data_dir:  # analyze's run of no recorded data
        return None
    try:
        meta = load_json(os.path.join(data_dir, "meta.json"))  # as open_data reads it: a byte order mark too
        counts = {k: meta[k] for k in SHAKESPEARE}
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not all(type(n) is int for n in counts.values()):
        return None
    return counts if counts != SHAKESPEARE or not shakespeare_bins(data_dir) else None


def shakespeare_bins(data_dir):
    """False where data_dir's train.bin or val.bin holds other bytes than tiny Shakespeare's prepared as the
    docstrings say (True where they are, or are not there to read: a --report needs none)."""
    for name, digest in SHAKESPEARE_BINS.items():
        h = hashlib.sha256()
        try:
            with open(os.path.join(data_dir, name), "rb") as f:
                while chunk := f.read(1 << 22):
                    h.update(chunk)
        except OSError:
            continue
        if h.hexdigest() != digest:
            return False
    return True


def study_assets(assets, beside=None, data_dir=STUDY_DATA):
    """Where a study's complete report goes: assets (its tracked table), or beside (its runs' folder) where a config
    file it trains with was edited, or its data is of other text, said once, before the runs: that report is not the
    tracked one. Without beside (analyze's --out=assets, named by the user) that is refused."""
    if not in_assets(assets):
        return assets
    why = []
    if edited := edited_configs():
        why.append(f"{' and '.join(edited)} set{'s' if len(edited) == 1 else ''} other values than the tracked tables "
                   f"in assets/ were made with (restore {'it' if len(edited) == 1 else 'them'}: `git checkout -- "
                   f"{' '.join(edited)}`)")
    if counts := other_text(data_dir):
        why.append(f"{data_dir} holds other text than the tracked tables' ("
                   + ("tiny Shakespeare's token counts, other bytes" if counts == SHAKESPEARE else
                      f"{counts['train_tokens']:,} train and {counts['val_tokens']:,} validation tokens, where tiny "
                      f"Shakespeare's are {SHAKESPEARE['train_tokens']:,} and {SHAKESPEARE['val_tokens']:,}") + ")")
    if not why:
        return assets
    if beside is None:
        raise SystemExit(f"{'; '.join(why)}: --out={assets} writes into assets/, which holds only those; give another "
                         f"--out.")
    print(f"{'; '.join(why)}: this study's report goes to {beside}.*, not {assets}.*.", file=sys.stderr)
    return beside


def in_assets(path):
    """True when path, existing or not, lies in this repository's assets/ (compared by real path: an absolute
    path, ./assets/../assets or a link to it is the same folder)."""
    real, assets = os.path.realpath(path), os.path.realpath(ASSETS)
    return real == assets or real.startswith(assets + os.sep)


def in_project(data_dir, files=("train.bin", "val.bin", "meta.json")):
    """data_dir in this repository's folder when it is relative, not there from the current folder, and holds files
    there (a prepared dataset's three): config/cpu_tiny.py's data/shakespeare_bytes, its commands run from another
    folder, was told to be prepared again there; else None."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), data_dir)
    if os.path.isabs(data_dir) or os.path.exists(data_dir):
        return None
    return path if all(os.path.isfile(os.path.join(path, f)) for f in files) else None


def redraw_missing(table, run):
    """The refusal of a study's --redraw whose table (a path from the current folder) is not there: run, the study's
    command, writes it; run from another folder, the repository's tracked table is named instead (the advice was to
    train the study again, for an hour and more)."""
    if there := in_project(os.path.dirname(table), (os.path.basename(table),)):
        return (f"--redraw draws from {table}, which is read from this folder ({os.getcwd()}) and is not there; the "
                f"project's is {os.path.join(there, os.path.basename(table))}: run from "
                f"{os.path.dirname(os.path.abspath(__file__))} to redraw it.")
    return f"--redraw draws from {table}, which does not exist; run {run} first."


DATA_FILES = ("train.bin", "val.bin", "meta.json", "progress.json")  # what prepare_slimpajama.py writes in its out_dir


def delete_what(folder, own=DATA_FILES):
    """What advice tells the user to delete so that folder can be made again: folder itself, or where it holds other
    files (the text prepared into its own folder, nanoGPT's data/x/input.txt; a run trained into its data folder),
    only its own files: "delete data/x and prepare it again" removed the text to prepare, or the run."""
    try:
        names = set(os.listdir(folder))
    except OSError:
        return folder
    others = sorted(n for n in names - set(own) if not n.endswith(".tmp"))
    if not others:
        return folder
    mine = [os.path.join(folder, n) for n in own if n in names] or [os.path.join(folder, own[0])]
    files = mine[0] if len(mine) == 1 else f"{', '.join(mine[:-1])} and {mine[-1]}"
    return f"{files} (not {folder}: it holds {others[0]}{' and more' if len(others) > 1 else ''} too)"


def run_files(folder):
    """What "delete out_dir" advice names: out_dir, or where it holds more than the run and what was made of it
    (its lock, logs, eval/ and projections.*), only the run's checkpoint and log; deleting the folder removed the
    prepared data (out_dir = data_dir), or another command's results there (bench's tables), with the run (train.py's
    refusals, and a damaged log's: "delete out_dir and train the run again")."""
    try:
        names = set(os.listdir(folder))
    except OSError:
        return folder
    own = {"ckpt.pt", "log.jsonl", "train.lock", "eval", "projections.md", "projections.csv", "projections.png"}
    # log.N.jsonl and eval.N: older runs' logs and evaluations train.py kept aside (open_log)
    others = sorted(n for n in names - own if not n.endswith(".tmp")
                    and not re.fullmatch(r"log\.\d+\.jsonl|eval\.\d+", n))
    if not others:
        return folder
    run = [p for n in ("ckpt.pt", "log.jsonl") if os.path.exists(p := os.path.join(folder, n))]
    run = " and ".join(run or [os.path.join(folder, "ckpt.pt"), os.path.join(folder, "log.jsonl")])
    held = "the prepared data" if set(others) & {"train.bin", "val.bin", "meta.json"} else \
        f"{others[0]}{' and more' if len(others) > 1 else ''}"
    return f"{run} (not {folder}: it holds {held} too)"


def default_data(data_dir):
    """Whether data_dir is the studies' default data, the data of their tracked tables (by real path: an absolute
    path or a link to it is the same folder). A study run on other data writes its tables beside its runs: it was
    reported from (scaling) or written into (rope) assets/ as the tracked study's."""
    return os.path.realpath(data_dir) == os.path.realpath(STUDY_DATA)


def data_name(counts, data_dir):
    """How a study's header names its data: "Byte-level Shakespeare" where the counts it records (a run's checkpoint
    meta, data_counts, or data_dir's meta.json) are tiny Shakespeare's as the docstrings prepare it, else the folder.
    The headers named Shakespeare whatever text data/cpu_lm_bytes was prepared from."""
    if isinstance(counts, dict) and all(counts.get(k) == n for k, n in SHAKESPEARE.items()):
        return "Byte-level Shakespeare"
    return f"Byte-level data of {data_dir}" if data_dir else "Byte-level data"


def guard_assets(path, full_run, command):
    """Tracked results are written only by a study's full default run (command; None: a script no run of which
    writes there): SystemExit for any other run aimed there."""
    if in_assets(path) and not full_run:
        who = f"only the full default run (`{command}`) writes" if command else "holds the studies' tracked results"
        raise SystemExit(f"{path} is in assets/, which {who}; write this run elsewhere.")


def partial_prefix(prefix, complete):
    """Where a study's partial report goes: prefix, or prefix_partial where the complete one is there already (a quick
    study's reports share its --root): one run's folder deleted, `--quick --report` replaced the complete quick report
    with a partial one. A partial report there is replaced: the second `--report` before the first run finished went
    to prefix_partial, and the older one stayed as the quick report, with fewer runs than the newer beside it."""
    same = os.path.abspath(prefix) == os.path.abspath(complete)
    return prefix + "_partial" if same and os.path.exists(complete + ".md") and not partial_md(complete) else prefix


def partial_md(prefix):
    """Whether prefix.md is a partial report, as partial_report heads one (its first word PARTIAL:)."""
    try:
        with open(prefix + ".md", encoding="utf-8", errors="replace") as f:
            return f.read(8) == "PARTIAL:"
    except OSError:
        return False


def drop_partial(complete, beside=None):
    """Once complete.* is written, remove the partial report partial_prefix put beside an earlier complete one: the
    stale complete_partial.* stayed there, reporting fewer runs than the report beside it. beside: where the study's
    partial report goes when it is not beside the complete one (out-cpu_lm/cpu_lm.* for assets/cpu_lm.*), which
    stayed there, headed PARTIAL, after the complete report was written."""
    for stale in dict.fromkeys([complete + "_partial", beside or complete]):
        if os.path.abspath(stale) == os.path.abspath(complete) or not partial_md(stale):
            continue  # only what a partial report wrote: the user's own notes of that name are kept, and not said
        for ext in (".md", ".csv", ".png"):  # removed as they were
            if os.path.isfile(stale + ext):
                os.remove(stale + ext)
        print(f"removed {stale}.*, a partial report: {complete}.* now reports every run", file=sys.stderr)


def partial_report(missing, total, prefix, complete):
    """Say that a study's report leaves out its unfinished runs (missing, of total) and goes to prefix.*, not to
    complete.*, where the report of every run goes (a quick run's are one place)."""
    # run from another folder (PYTHONPATH set) there is no complete one yet: "holds" named a file not there
    held = "holds the complete one" if os.path.exists(complete + ".md") else "gets the complete one, once every run " \
        "has finished"
    where = f"{prefix}.*" + (f" ({complete}.* {held})" if complete != prefix else "")
    print(f"{len(missing)} of {total} runs not finished, left out of the report, which goes to {where}: "
          f"{', '.join(missing)}", file=sys.stderr)


def same_folder(a, b):
    """Whether two paths name one folder however spelled (data/x/, ./data/x, its absolute path) and under any locale:
    a path saved under a UTF-8 locale ('dé') does not encode under an ASCII one (PYTHONUTF8=0 LC_ALL=C), which gives
    the same folder typed as 'd\\udcc3\\udca9': realpath's UnicodeEncodeError, or two spellings of one folder."""
    try:  # as bytes, as train.py's same() compares them
        a, b = (os.fsencode(saved_path(p)) for p in (a, b))  # this locale's bytes (Latin-1's too)
    except UnicodeError:
        return False
    return os.path.realpath(a) == os.path.realpath(b)


def check_study_run(ckpt, out_dir, args, command):
    """That the checkpoint in a study's run folder is the run the study trains there: every setting its train.py
    arguments (args: config files, then --key=value) give is the one the checkpoint was trained with. A finished run
    is not trained again, so a run trained into that folder by hand, or by another study, would otherwise be
    reported as this one (a complete set of them into assets/)."""
    saved = ckpt.get("config", {})
    fix = "run the study with the options and config files that trained it, or move that folder out of the way (the " \
          "study then trains its own run there)"
    try:
        values, given = configure(saved, list(args))
    except SystemExit as e:  # a setting the checkpoint does not hold at all: another program's or version's run
        raise SystemExit(f"{out_dir} holds a run this study cannot check against its settings ({e}); {fix}.") \
            from None

    def same(k):  # data/x/ and its absolute path are one folder
        if k == "data_dir" and isinstance(saved[k], str):
            return isinstance(values[k], str) and same_folder(values[k], saved[k])
        return values[k] == saved[k]
    bad = next((k for k in sorted(given) if k not in ("out_dir", "init_from") and not same(k)), None)
    if bad:
        raise SystemExit(f"{out_dir} holds a run with {bad} = {saved[bad]!r}, where `{command}` trains it with "
                         f"{values[bad]!r}: a run of other settings; {fix}.")
    check_study_data(ckpt, out_dir, values["data_dir"])


def check_study_data(ckpt, out_dir, data_dir):
    """That data_dir was not prepared again (other text) since the study's run in out_dir trained on it: a finished
    run is not trained again, so a study went on with the rest on the new data and reported both as one."""
    try:
        now = load_json(os.path.join(data_dir, "meta.json"))
    except (OSError, ValueError, TypeError, KeyError):  # no data here (a --report needs none): nothing to compare
        now = None
    if moved := other_data(ckpt.get("meta"), now):
        raise SystemExit(f"{out_dir} holds a run trained on {data_dir} before it was prepared again "
                         f"({'; '.join(moved)}); move that folder out of the way (the study then trains its own run "
                         f"there, on the data as it is), or prepare the data as it was.")


def received_as(was):
    """The longest tail of the absolute path was (data/sb of /home/alice/proj/data/sb) that names a prepared folder
    under this one, or None: a run, config or data copied here from the folder or machine they were made in."""
    parts = [p for p in os.path.normpath(was).split(os.sep) if p]
    for i in range(1, len(parts)):
        tail = os.path.join(*parts[i:])
        if os.path.isfile(os.path.join(tail, "meta.json")):
            return tail
    return None


def other_data(was, meta):
    """'key value (checkpoint: value)' for each token count data_dir's meta.json records other than the checkpoint's
    meta (was), and a line for other input files (prepare's fingerprint of their names, sizes and times): the same
    data_dir prepared again since the checkpoint, from other text or more shards, also of the same length."""
    if not (isinstance(was, dict) and isinstance(meta, dict)):
        return []
    # a count that is no int ("20" by hand) says nothing of the text: "prepared again ... prepare the data as it
    # was" was the advice for a hand-edited meta.json
    moved = [f"{k} {meta.get(k)!r} (checkpoint: {was[k]!r})" for k in ("train_tokens", "val_tokens")
             if k in was and meta.get(k) != was[k] and (k not in meta or type(meta[k]) is int)]
    inputs = [m["settings"].get("shards_sha1") if isinstance(m.get("settings"), dict) else None for m in (was, meta)]
    # prepared again from a copy of the same files (cp -r: new times), its contents say so where both record them
    copied = was.get("inputs_sha256") is not None and was.get("inputs_sha256") == meta.get("inputs_sha256")
    if not moved and None not in inputs and inputs[0] != inputs[1] and inputs[0] != sizes_only(meta) and not copied:
        # other contents where both record them for files of the same names (other text of the same size): not
        # "perhaps" other data. inputs_sha256 holds the names too: the same text copied as in.txt is "perhaps"
        known = None not in (was.get("inputs_sha256"), meta.get("inputs_sha256")) and shard_names(was) is not None \
            and shard_names(was) == shard_names(meta)
        moved.append(OTHER_TEXT if known else OTHER_INPUTS)
    return moved


def shard_names(meta):
    """The names (not folders) of meta's input files, train's then val's, as inputs_sha256 hashes them, or None."""
    try:
        return [os.path.basename(f) for k in ("train_shards", "val_shards") for f in meta[k]]
    except (KeyError, TypeError):
        return None


OTHER_INPUTS = "input files of other names, sizes or modification times than the checkpoint's"
OTHER_TEXT = "input files of other contents (inputs_sha256) than the checkpoint's"


def inputs_only(moved):
    """Whether other_data found only other input files (names, sizes or times) and the same token counts."""
    return moved == [OTHER_INPUTS]


def not_its_data(moved):
    """What sample.py and analyze.py say of val.bin where other_data found moved: the same token counts from inputs
    of another name (a copy of the same text, in.txt for input.txt) may be the very same tokens, which were called
    "not the data the checkpoint was trained on"."""
    return ("perhaps not" if inputs_only(moved) else "not") + \
        f" the data the checkpoint was trained on: {', '.join(moved)}"


def inputs_sha1(fingerprint, as_given=False):
    """The hex digest meta.json records as shards_sha1 for prepare_slimpajama.py's list of inputs (as JSON), each name
    as the text it is (as_text): prepare under LC_ALL=C PYTHONUTF8=0 hashed 'pr\\udcc3\\udca9.txt', so the same command
    under a UTF-8 locale was told "the input files changed ... delete out_dir to start over". as_given: the names as
    this process got them, as the versions before hashed them (their meta.json records that digest)."""
    return hashlib.sha1(json.dumps(fingerprint if as_given else strict(fingerprint)).encode()).hexdigest()


def earlier_sha1s(fingerprint):
    """The digests versions before 247ba46 recorded for these inputs (inputs_sha1 as_given), made under a UTF-8
    locale or under LC_ALL=C PYTHONUTF8=0, which gave each non-ASCII byte of a name as a surrogate: a dataset made
    there from préface.txt, asked again under a UTF-8 locale, was "the input files changed ... delete it"."""
    c_locale = [(os.fsencode(f[0]).decode("ascii", "surrogateescape"), *f[1:]) for f in fingerprint]
    return tuple(inputs_sha1(f, as_given=True) for f in (fingerprint, c_locale))


def sizes_only(meta):
    """The fingerprint of meta's local input files as prepare_slimpajama.py wrote it before ea7da02 (names, splits
    and sizes, no modification times), or None: a checkpoint of that time, its data prepared again from the same
    files since, was said to be trained on 'input files of other names, sizes or modification times'."""
    try:
        if meta["source"] != "local files":
            return None  # the hub's fingerprint, its shards' names, is the same in both versions
        train, val = meta["train_shards"], meta["val_shards"]
        shards = [(f, "mixed") for f in train] if meta["val_fraction"] else \
            [(f, "val") for f in val] + [(f, "train") for f in train]
        return inputs_sha1([(f, s, os.path.getsize(f)) for f, s in shards], as_given=True)
    except (KeyError, TypeError, ValueError, OSError):  # an older meta.json, or an input since moved away
        return None


def dir_steps(folder):
    """(the path as written, its absolute real path) of folder and each parent, the deepest first, as os.makedirs
    walks them: n/../m makes n too, which the normal form never names (a refused run left n behind). The '.' and
    '..' steps, in which makedirs makes nothing, are left out, and each folder is named once."""
    d, seen = os.path.join(os.getcwd(), folder), set()  # an absolute folder stays itself
    while d != os.path.dirname(d):
        # realpath: '..' after a link (link/../m) is the link target's parent, where makedirs makes m; the normal
        # form named ./m, and a refused run removed the user's empty ./m there, leaving the one it made
        if os.path.basename(d) not in ("", ".", "..") and (norm := os.path.realpath(d)) not in seen:
            seen.add(norm)
            yield d, norm
        d = os.path.dirname(d)


def missing_dirs(folder):
    """folder and those of its parents that do not exist yet, as absolute paths, the deepest first: the folders that
    making folder makes, and that a command refused or stopped before writing there removes again."""
    return [norm for _, norm in itertools.takewhile(lambda step: not os.path.exists(step[0]), dir_steps(folder))]


def remove_empty(folders):
    """Removes folders in order (the deepest first); one that holds anything stays, and so do those above it."""
    for d in folders:
        with contextlib.suppress(OSError):
            os.rmdir(d)


@contextlib.contextmanager
def new_dirs(*folders):
    """Around the work that fills folders: those of them (and their parents) that did not exist before are removed
    again if the work stops (an error, Ctrl-C) with nothing written in them, so a failed run leaves no empty
    folder behind."""
    new = {d for folder in folders for d in missing_dirs(folder)}
    try:
        yield
    except BaseException as e:
        # a folder another process holds (Busy) stays: made by it since this one looked, perhaps, and still empty
        # while it works; removed, its results had nowhere to go
        held = os.path.realpath(e.folder) if isinstance(e, Busy) else None
        remove_empty(sorted(new - {held}, key=len, reverse=True))
        raise


_together = None  # [(temporary, path)] while together() holds the files of one result back
_wrote = []  # the `wrote PATH` lines of the files together() holds back, printed once they are in place
_held = {}  # {temporary file: a descriptor holding its lock} while atomic_write's files wait for their rename


@contextlib.contextmanager
def together():
    """The files atomic_write writes inside this block replace theirs all at its end, or none of them do: written one
    by one, a stop (Ctrl-C, SIGTERM, a full disk) between two files of one result (eval's results.json and .md, a
    bench section's CSV and PNG, a study's table and figure) left the new one beside the old other, or the first
    alone in a new folder. The renames at the end take microseconds, the signals held off while they run."""
    global _together
    if _together is not None:  # nested: the outer block replaces them
        yield
        return
    _together = pending = []
    try:
        yield
        with signals_held():
            while pending:
                os.replace(*pending[0])
                release(pending.pop(0)[0])
        for line in _wrote:
            print(line)
    finally:
        _together = None
        _wrote.clear()
        for tmp, _ in pending:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            release(tmp)


def say_wrote(path):
    """Prints `wrote PATH`, inside a together() block once the block's files are in place: printed as each file was
    written, a result whose later file the disk refused (bench's figure past `ulimit -f`) claimed its CSV, left as
    it was."""
    (_wrote.append if _together is not None else print)(f"wrote {path}")


@contextlib.contextmanager
def signals_held():
    """Ctrl-C, SIGTERM and SIGHUP arriving inside the block act at its end. Their Python handlers are swapped for one
    that notes them, then each noted signal is raised again: blocking them (pthread_sigmask) held them off the main
    thread only, and torch's threads took a `kill PID`, whose handler then ran between two renames in the main thread
    (eval's results.json written, its results.md not). Outside the main thread, where handlers cannot be set, as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted = []
    old = {sig: signal.signal(sig, lambda signum, frame: noted.append(signum)) for sig in stop_signals()}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for sig in noted:
            signal.raise_signal(sig)


def umask():
    """The process's umask: os.umask only reads it by setting it, so it is set back at once."""
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def plain_file(path):
    """Whether path is a regular file itself (no link, folder or FIFO): the only thing a killed save leaves."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def remove_leftovers(folder, pattern):
    """Removes the files in folder whose names fullmatch pattern, the temporary files of saves killed before their
    rename, by a writer that holds folder's lock. A folder or FIFO of such a name is no save's: os.remove was an
    IsADirectoryError traceback (train.lock left in a fresh out_dir). One this user cannot remove (another user's, in
    a folder with the sticky bit; an immutable file) is no save of this writer's either, and stays: os.remove was a
    PermissionError traceback before the run began. A folder this user may write in but not list (mode 300) shows
    none: os.listdir was a PermissionError traceback there too, and its leftovers stay."""
    try:
        names = os.listdir(folder)
    except PermissionError:
        return
    for name in names:
        if re.fullmatch(pattern, name) and plain_file(os.path.join(folder, name)):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, name))


def own_temporary(folder, name):
    """(fd, path) of a new name.XXXXXXXX.tmp in folder, locked (flock) by this process until it ends or the file is
    renamed, once any such file whose writer died before its rename is removed: a SIGKILL (the OOM killer, kill -9)
    in a write left it beside the result for good (in assets/ too), as no later run knew it for a leftover. A file
    nobody holds a lock on is one; where flock is missing or the file system keeps no locks, nothing is removed."""
    try:
        import fcntl
    except ImportError:  # Windows
        return tempfile.mkstemp(dir=folder, prefix=name + ".", suffix=".tmp")
    leftover = re.compile(re.escape(name) + r"\.[a-z0-9_]{8}\.tmp")
    with contextlib.suppress(OSError):
        for other in os.listdir(folder):
            if leftover.fullmatch(other) and plain_file(os.path.join(folder, other)):  # a FIFO: open() waited
                with contextlib.suppress(OSError), open(os.path.join(folder, other), "rb") as f:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by a live writer: OSError, kept
                    os.remove(os.path.join(folder, other))
    while True:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=name + ".", suffix=".tmp")
        with contextlib.suppress(OSError):  # no locks here: written unlocked, as before
            fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:  # not taken for a leftover by another writer between mkstemp and flock
            _held[tmp] = os.dup(fd)  # the lock outlives the file's closing, until its rename (release)
            return fd, tmp
        os.close(fd)


def release(tmp):
    """Drops the lock own_temporary took on tmp, now renamed into place or removed."""
    if (fd := _held.pop(tmp, None)) is not None:
        os.close(fd)


def atomic_write(path, data):
    """Write data (str or bytes), or call data(f) on the open binary file, then rename over path (at the end of a
    together() block, if in one). A write the disk refuses (full, over quota, read-only) is one sentence, the old file
    left whole."""
    folder, tmp = os.path.dirname(os.path.abspath(path)), None
    try:
        fd, tmp = own_temporary(folder, os.path.basename(path))
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:  # a path or name from the command line outside UTF-8 mode (PYTHONUTF8=0 LC_ALL=C) holds its
                # bytes as surrogates: written back as those bytes (a UnicodeEncodeError left results.md unwritten)
                f.write(data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp's 0600 made ordinary, as open() makes it: a fixed 0644 made
        # every result readable by all where the user's umask (077) keeps files private
        if _together is None:
            os.replace(tmp, path)
        elif os.path.isdir(path):  # os.replace would fail at the block's end, past the sentence below
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        else:
            _together.append((tmp, path))
            tmp = None
    except Exception as e:
        cause = e  # torch.save reports a full disk as the RuntimeError of closing its file, raised as the OSError unwound
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__context__
        if cause is None:
            raise
        if os.path.isdir(path):  # a folder of that name (os.replace's IsADirectoryError): no free space helps
            raise SystemExit(f"could not write {path}: a folder has that name; move it out of the way, or write "
                             f"elsewhere.") from None
        if not os.path.isdir(folder):  # removed while the work ran (a study's folder deleted by hand), or a library
            # caller that made none: no free space helps
            raise SystemExit(f"could not write {path}: its folder {folder} does not exist (never made, or removed "
                             f"while this ran) or is a file; make it or run again, or write elsewhere.") from None
        # a folder this user may not write (its modes, a read-only mount) was told to free space on its disk
        fix = (f"make {folder} writable for this user" if cause.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
               else "choose a shorter name" if cause.errno == errno.ENAMETOOLONG else space_fix(cause))
        raise SystemExit(f"could not write {path} ({cause.strerror or cause}); "
                         + ("the file there is unchanged" if os.path.exists(path) else "nothing was written")
                         + f": {fix}, or write elsewhere.") from None
    finally:
        if tmp and os.path.exists(tmp):
            os.remove(tmp)
        if tmp:
            release(tmp)


def saved_path(path):
    """A path a checkpoint saved, as this locale names the same folder: a data_dir saved under a UTF-8 locale
    ('data/日本') does not encode under a Latin-1 one (or 'dé' under PYTHONUTF8=0 LC_ALL=C), and sample.py's
    calibration was a UnicodeEncodeError traceback; its UTF-8 bytes are the folder's name, decoded as this locale
    does. One that encodes stays as saved (a Latin-1 run read under Latin-1)."""
    if not isinstance(path, str):
        return path
    try:
        os.fsencode(path)
        return path
    except UnicodeEncodeError:
        try:
            return os.fsdecode(as_text(path).encode("utf-8", "surrogateescape"))
        except UnicodeError:  # a lone surrogate of another kind: no bytes stand behind it
            return path


def strict(obj):
    """obj with every float that is not finite (inf, NaN) as None, and every string as the text it is, through dicts,
    lists and tuples. Outside UTF-8 mode (PYTHONUTF8=0 LC_ALL=C) a path from the command line holds its bytes as
    surrogates: results.json named --text=préface.txt "pr\\udcc3\\udca9face.txt", two lone surrogates to every other
    reader (JavaScript's "pr��face.txt"). Bytes that are no UTF-8 stay surrogates, which Python reads back as they
    were (train.py compares its log's first line with the command line's init_from)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, str):
        return as_text(obj)
    if isinstance(obj, dict):
        return {strict(k): strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    return obj


def json_text(obj, **dumps_args):
    """obj as JSON that every reader takes, for the files users hand to other tools (log.jsonl, results.json): an inf
    or NaN is null, as JavaScript writes them. json.dumps writes the bare words Infinity and NaN (a perplexity past a
    float's range), which are no JSON: JSON.parse and other strict readers refused the file, jq 1.6 read 1.8e308."""
    return json.dumps(strict(obj), allow_nan=False, **dumps_args)


def utf16(data, whole=True):
    """': it is UTF-16 (...); convert it' where data (a file's first bytes) starts with a UTF-16 byte order mark, else
    '': Windows' PowerShell 5 writes `>` so, and "not UTF-8 ... give a text file" said nothing of what it is.
    whole=False: data is a file's first bytes only (prepare's not_text), whose cut may split a last pair too."""
    head = data[:1 << 20]  # the check of a large file's first MiB: its cut may split a last pair, nothing more
    # UTF-32's mark begins as UTF-16's does (PowerShell 5's -Encoding UTF32): "iconv -f UTF-16" made of it text with
    # a NUL after each character
    if data[:4] in (b"\xff\xfe\0\0", b"\0\0\xfe\xff") and not len(data) % 4:
        try:
            head[:len(head) - len(head) % 4].decode("utf-32")
            return "; it is UTF-32 (it starts with UTF-32's byte order mark): convert it, e.g. iconv -f UTF-32 -t UTF-8"
        except UnicodeDecodeError:
            pass
    if data[:2] not in (b"\xff\xfe", b"\xfe\xff") or len(data) % 2:  # UTF-16 is whole 2-byte units
        return ""
    try:
        text = head.decode("utf-16")
    except UnicodeDecodeError as e:  # binary bytes after a BOM-like start (b"\xff\xfe\x00..."): not UTF-16 either
        if whole and len(head) == len(data) or e.start < len(head) - 4:
            return ""
        text = head[:e.start].decode("utf-16")
    # FF FE glued before UTF-8 text pairs its bytes into CJK characters, which iconv would make of it: text in
    # UTF-16 holds some ASCII (a newline at least: PowerShell's `>` ends each line with CRLF), or bytes after its
    # mark that are no UTF-8 (Chinese saved by Notepad as "Unicode", without a newline, was "not text ... as in
    # UTF-16 text without a byte-order mark")
    if not re.search("[\0-\x7f]", text) and not _utf8_error(head[2:], whole and len(head) == len(data)):
        return ""
    return "; it is UTF-16 (it starts with UTF-16's byte order mark): convert it, e.g. iconv -f UTF-16 -t UTF-8"


def free_name(stem, ext=".jsonl"):
    """stem + ext, or stem_2 + ext and on where that is taken: advice writes a file there, and a name of the user's
    (a .jsonl beside its .json) would be written over by the command as given."""
    name, n = stem + ext, 1
    while os.path.lexists(name):
        n += 1
        name = f"{stem}_{n}{ext}"
    return name


def iconv_command(hint, path, new, then=""):
    """hint, a sentence ending in "convert it, e.g. iconv ...", with its command reading path and writing new, then
    `then`: "iconv -f X -t UTF-8" named no file, and `iconv ... f > f`, the likely guess, empties f. A .zst is
    decompressed first (iconv of the compressed bytes converts nothing). A hint without iconv is as it is."""
    arg = shell_arg(path)
    zst = f"zstd -dc {arg} | " if path.endswith(".zst") else ""
    src = "" if zst else " " + arg
    return re.sub(r"(iconv [^;)]*?)$", lambda m: f"{zst}{m.group(1)}{src} > {shlex.quote(new)}{then}", hint)


def json_lines(text):
    """Whether text's first line is a JSON document as prepare's .jsonl holds them ({"text": "..."}): eval's --text
    and prepare's .txt inputs refuse such lines, whose JSON syntax was scored or trained on as text, exit 0."""
    # not text.lstrip(): a copy of a 200 MB text; a BOM (Notepad's .jsonl saved as .txt) before it is no text
    # nor its first line unless a "{" begins it: text8 is one line of 100 MB
    first = re.match(r"[\s\ufeff]*(\{[^\n]*)?", text)[1] or ""
    try:
        return first.startswith("{") and isinstance(json.loads(first).get("text"), str)
    except ValueError:
        return False


def jq_command(path):
    """The command that writes the text of prepare's JSON documents at path (one a line) to a free .txt name beside
    it, and that name: "(jq -r .text)" named no file, jq read a .jsonl.zst's compressed bytes as a parse error, and
    `jq -r .text docs.txt > docs.txt`, the likely guess for such lines saved as .txt, empties the file."""
    stem = re.sub(r"(\.jsonl)?(\.zst)?$|\.txt$", "", path, count=1, flags=re.IGNORECASE)
    new = free_name(stem, ".txt")
    zst = path.lower().endswith(".zst")
    read = f"zstd -dc {shell_arg(path)} | jq -r .text" if zst else f"jq -r .text {shell_arg(path)}"
    return f"{read} > {shell_arg(new)}", new


def shell_arg(path):
    """path as one argument of a printed command, ./ before a leading dash: -notes.txt was "iconv: invalid option --
    'n'", and mv -run/log_2.jsonl -run/log.jsonl "mv: invalid option -- 'r'", its converted copy left behind."""
    return shlex.quote("./" + path if path.startswith("-") else path)


def iconv_in_place(hint, path):
    """hint's iconv command with the file it converts, through a free name moved back over it: a file a script
    reads by its name (log.jsonl, meta.json), where "iconv -f UTF-16 -t UTF-8" named none and iconv f > f empties f."""
    stem, ext = os.path.splitext(path)
    new = free_name(stem, ext)
    return iconv_command(hint, path, new, f" && mv {shell_arg(new)} {shell_arg(path)}")


def eight_bit(data, start):
    """'; it reads as Windows-1252 ...: convert it' where data (a text file's bytes, no UTF-8 from byte start on)
    reads as Windows-1252, Latin-1's superset (older Windows and Gutenberg texts: é, smart quotes), else ''. "not
    UTF-8 (invalid start byte); give a text file" said nothing of what it was, to a user who had given one."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16's byte order mark, damaged or glued before text: no text
        return ""
    # UTF-8 beyond ASCII before it (café ... na\xefve): a stray byte in UTF-8 text, where iconv from Windows-1252,
    # as advised, made every é before it Ã© (prepare said so of a .jsonl's earlier lines only)
    if not data[:start].removeprefix(b"\xef\xbb\xbf").isascii():  # a mark alone is no UTF-8 text to keep
        return "; the text before it is UTF-8 beyond ASCII: fix that byte, not the file's encoding"
    piece = data[max(0, start - 4096):start + 4096]
    try:
        text = piece.decode("cp1252")  # its five undefined bytes raise: those files are something else
    except UnicodeDecodeError:
        return ""
    if sum(c < " " and c not in "\t\n\r\f" for c in text) * 100 > len(text):  # control characters: binary
        return ""
    return "; it reads as Windows-1252 or Latin-1 text: convert it, e.g. iconv -f WINDOWS-1252 -t UTF-8"


def _utf8_error(data, whole):
    """Whether data is no UTF-8; where it is a file's first bytes only (whole False), a character cut at its end is."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        return whole or e.start < len(data) - 3
    return False


def save_figure(fig, path, **savefig_args):
    """fig as a PNG at path, drawn in memory before atomic_write opens its temporary file: drawn into that file, a
    kill (SIGTERM, a closed terminal) while matplotlib drew, a second or so, left path.XXXX.tmp beside the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **savefig_args)
    atomic_write(path, buf.getvalue())


def unwritable(folder):
    """Why folder cannot take the results, or None: it is made if needed and a file is created in it, so that a bad
    folder fails before the work (minutes or hours of it), not after."""
    if os.path.islink(folder) and not os.path.exists(folder):  # makedirs' "File exists" said nothing of the link
        return f"a link to {os.readlink(folder)!r}, " + ("which leads into a loop of links"
                                                        if "loop of links" in (closed_stream(folder) or "") else
                                                        "which does not exist")
    made = missing_dirs(folder)  # the folders made below, removed if they take no file
    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except (OSError, RecursionError) as e:  # os.makedirs recurses once per folder to make: a thousand is too many
        created = bool(made) and os.path.isdir(made[-1])  # not where a folder above refused the first of them
        remove_empty(made)
        if created and isinstance(e, PermissionError):
            masked(folder)
        return e.strerror if isinstance(e, OSError) else "nested too deep to create"
    return None


def masked_file(path):
    """SystemExit where path is this user's own file, read-only to its owner while the umask (277) makes every file
    written so: "make it writable" fixed one file, and the next run refused the next (lock, checkpoint, log)."""
    try:
        st = os.stat(path)
    except OSError:
        return
    if st.st_uid == os.getuid() and not st.st_mode & 0o200 and (mask := umask()) & 0o200:
        folder = os.path.dirname(path) or "."
        raise SystemExit(f"{path} is read-only to its owner, as every file written under umask {mask:04o} is, and "
                         f"this run would write it; run `umask 022` and `chmod u+w {shell_arg(folder)}/*` first, "
                         f"then run again.")  # quoted: `chmod u+w my runs/*` changed nothing of 'my runs'


def masked(folder):
    """SystemExit where folder, made by this process, took no file because the umask (277, 377) removed its owner's
    write or search permission: every other folder would fail alike, so "choose another folder" did not help."""
    if (mask := umask()) & 0o300:
        raise SystemExit(f"{folder} takes no file once made under umask {mask:04o}, which removes the owner's write "
                         f"or search permission from every new folder; run `umask 022` first, then run again.")


def writable_dir(folder, fix, named=False):
    """SystemExit naming folder and fix where it cannot take the results (unwritable). named: an option chose
    folder, so a file of that name is a wrong name (`--out=out/ckpt.pt`, `--out_dir=input.txt`), never a file to
    move away: fix ("choose another --out") is the advice there too."""
    # "(File exists); make it writable" did not help; and a file's name with a slash after it ("ckpt.pt/") does
    # not exist to os.path.exists: it was called "not a writable directory (File exists)"
    bare = folder.rstrip(os.sep) or folder
    if os.path.exists(bare) and not os.path.isdir(bare):
        raise SystemExit(f"{folder} is a file, not a directory; {fix}." if named else
                         f"{folder} is not a writable directory (a file has that name); move that file out of the way "
                         f"and run again.")
    if why := unwritable(folder):
        raise SystemExit(f"{folder or repr(folder)} is not a writable directory ({why}); {fix}.")


def outputs_free(*paths):
    """SystemExit where a file a command writes at its end is a folder: atomic_write refused it only then, after
    the work (an evaluation of an hour: eval.py's results.json), or between two of its files (analyze)."""
    if p := next((p for p in paths if os.path.isdir(p)), None):
        raise SystemExit(f"{p} is a folder, where this command writes its results; move it out of the way, or write "
                         f"elsewhere.")


def reports_free(*prefixes):
    """outputs_free for a study's report, prefix.md, .csv and .png, at each place it can go (beside the runs when
    partial, assets/ when complete): checked before the training, not after it."""
    outputs_free(*(p + ext for p in prefixes for ext in (".md", ".csv", ".png")))


class Busy(SystemExit):
    """hold_lock's refusal: folder is another process's, which new_dirs leaves as it is."""
    def __init__(self, busy, folder):
        super().__init__(busy)
        self.folder = folder


@contextlib.contextmanager
def hold_lock(folder, busy):
    """An flock on folder itself while this process writes there, or busy (the sentence to say) when another process
    holds it. On the folder, not a file in it, so a refused run leaves nothing behind; the kernel drops the lock when
    the process ends, however it ends. fcntl is imported here: the other helpers work where it does not exist."""
    try:
        import fcntl
    except ImportError:  # Windows has no flock: there, one run per folder is left to the user
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if lock_held(e):
                raise Busy(busy, folder) from None
            unlocked(folder, e)
        yield
    finally:
        os.close(fd)


def lock_held(e):
    """Whether flock's OSError e says another process holds the lock (EWOULDBLOCK), not that the file system keeps
    no locks (Lustre mounted without flock: ENOSYS; some FUSE and SMB mounts: EOPNOTSUPP, ENOLCK), where every run
    was told another held its folder: "wait for it to end", for a run that does not exist."""
    return e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


def unlocked(folder, e):
    """A note that folder's file system keeps no locks (flock's OSError e), so this command runs without one."""
    print(f"note: {folder} is on a file system without locks (flock: {e.strerror}), so a second command writing "
          f"there at the same time is not refused; run one at a time.", file=sys.stderr)


def hold_out(folder, busy):
    """hold_lock on a command's --out (bench.py, synthetic: two runs at once mixed their files there), but not on
    assets/: its lock is the full scaling study's (its table), which would then be told this command holds it."""
    return contextlib.nullcontext() if in_assets(folder) else hold_lock(folder, busy)


def being_written(folder):
    """Whether another process holds hold_lock on folder now (prepare_slimpajama.py filling a data_dir): what it has
    half written is work under way, not a stopped run to finish."""
    try:
        import fcntl
        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # let go at once, below: a probe, never a wait
        return False
    except OSError as e:
        return lock_held(e)
    finally:
        os.close(fd)


def train_first(root, command):
    """The fix for a study's report that found no finished run under root: train them with command, or, where that
    command trains them now (it holds root's lock), wait: run again, it would be refused by that lock."""
    if being_written(root):
        return f"`{command}` is training them now: wait for its first run to finish, then run this again"
    return f"train them first with `{command}`"


def save_checkpoint(ckpt, path):
    atomic_write(path, lambda f: torch.save(ckpt, f))


def checkpoint_path(path):
    """A ckpt.pt, or the out_dir holding one."""
    path = os.fsdecode(path)  # a str, also from bytes: b"run/ckpt.pt" failed in endswith
    return path if path.endswith(".pt") or os.path.isfile(path) else os.path.join(path, "ckpt.pt")


# what train.py stores beside the weights, checked on load (a traceback deep in a script otherwise)
FIELDS = {
    "iter_num": (lambda v: type(v) is int and v >= 0, "iteration count"),
    # finite and not negative, as every cross-entropy: NaN or a value below all losses is never improved on, so a run
    # resumed with always_save_checkpoint=False never saved again
    "best_val_loss": (lambda v: type(v) in (int, float) and 0 <= v < math.inf, "loss"),
    "config": (lambda v: isinstance(v, dict), "dict of settings"),
    "meta": (lambda v: isinstance(v, dict), "dict (its data's meta.json)"),
    "rng": (lambda v: isinstance(v, list) and len(v) > 0 and all(  # empty: every rank would resume unseeded
        isinstance(s, dict) and isinstance(s.get("cpu"), torch.Tensor) and s["cpu"].dtype == torch.uint8
        and s["cpu"].shape == torch.get_rng_state().shape for s in v), "list of the processes' random states"),
}
# what train.py's ckpt.pt holds: load_checkpoint's keys name some of them
SAVED_KEYS = ("model", "optimizer", "model_args", "iter_num", "best_val_loss", "config", "rng", "meta")
VOCABS = {"r50k_base": 50257, "bytes": 256}  # the tokenizers prepare_slimpajama.py writes, and their vocabularies


def dangling(path):
    """One sentence for a symbolic link whose target is gone (a disk not mounted, a run moved away), or None: it
    reads as no file at all, and the advice was then to train or prepare anew, which would replace the link."""
    if os.path.islink(path) and not os.path.exists(path):
        return closed_stream(path) or (f"{path} is a link to {os.readlink(path)!r}, which does not exist (a disk not "
                                       f"mounted, a folder moved?); restore what it points to, or remove the link.")
    return None


R50K_URL = "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken"  # where tiktoken fetches it
R50K_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"  # tiktoken's check of its content


def r50k(prefix="", fix=""):
    """tiktoken's r50k_base, or SystemExit with one sentence: offline without its cached file (tiktoken raises from
    deep inside requests), or a cache this user cannot read, where "set TIKTOKEN_CACHE_DIR to a directory that
    holds its cached file" was the advice (it did). prefix and fix: the calling script's own words."""
    import tiktoken
    folder = os.environ.get("TIKTOKEN_CACHE_DIR")
    cached = os.path.join(folder or "FOLDER", hashlib.sha1(R50K_URL.encode()).hexdigest())
    had = bool(folder) and os.path.isfile(cached)  # tiktoken removes a cached file whose content is not r50k_base's
    try:
        return tiktoken.get_encoding("r50k_base")
    except Exception as e:
        denied = e if isinstance(e, PermissionError) else None
        try:  # a folder it cannot list looks empty to tiktoken, which then went to the network
            denied or not folder or os.listdir(folder)
        except PermissionError as d:
            denied = d
        except OSError:  # no such folder, or a file: a traceback here; tiktoken found nothing there, said below
            pass
        if denied:
            raise SystemExit(f"{prefix}could not load tiktoken's r50k_base: {denied.filename} cannot be read "
                             f"({denied.strerror}); make it readable to this user, or point TIKTOKEN_CACHE_DIR at a "
                             f"readable copy{fix}.") from None
        # tiktoken's cache names the file by the sha1 of its URL: "a directory that holds its cached file" was the
        # advice, and the file downloaded by hand under its own name, put there, was the same error again
        if had and not os.path.exists(cached):  # an error page or a download cut short, saved by hand: "a folder
            # that holds it saved as X" was the advice, where it had been, and tiktoken had just removed it
            raise SystemExit(f"{prefix}could not load tiktoken's r50k_base ({type(e).__name__}): {cached} was not "
                             f"{R50K_URL} (its sha256 is not r50k_base's; an error page or a download cut short), "
                             f"and tiktoken removed it; download it again to that name{fix}.") from None
        hand = os.path.join(folder or "", "r50k_base.tiktoken")
        if folder and os.path.isfile(hand) and not os.path.exists(cached) and not unreadable(hand):
            with open(hand, "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() != R50K_SHA256:
                    raise SystemExit(f"{prefix}could not load tiktoken's r50k_base ({type(e).__name__}): {hand} is "
                                     f"not {R50K_URL} (its sha256 is not r50k_base's; an error page or a download "
                                     f"cut short); download it again, saved as {cached}{fix}.") from None
        if folder and os.path.isfile(folder):  # the cached file itself named, not its folder
            where = os.path.dirname(os.path.abspath(folder))
            raise SystemExit(f"{prefix}could not load tiktoken's r50k_base ({type(e).__name__}): TIKTOKEN_CACHE_DIR "
                             f"names the file {folder}, and tiktoken takes the folder its cached file is in; set "
                             f"TIKTOKEN_CACHE_DIR={where}, with the file saved there as "
                             f"{os.path.basename(cached)}{fix}.") from None
        if folder and os.path.isfile(hand) and not os.path.exists(cached):
            raise SystemExit(f"{prefix}could not load tiktoken's r50k_base ({type(e).__name__}): tiktoken reads its "
                             f"cache by the sha1 of the file's URL, not as r50k_base.tiktoken; rename {hand} to "
                             f"{cached}{fix}.") from None
        raise SystemExit(f"{prefix}could not load tiktoken's r50k_base ({type(e).__name__}); offline, set "
                         f"TIKTOKEN_CACHE_DIR to a folder that holds {R50K_URL} saved as {cached}{fix}.") from None


def file_above(path):
    """The nearest existing path above path when it is a file, not a folder, so that nothing can be made under it
    ('input.txt/x'); else None."""
    up = os.path.dirname(path)
    while up and not os.path.exists(up) and os.path.dirname(up) != up:
        up = os.path.dirname(up)
    return up if up and os.path.exists(up) and not os.path.isdir(up) else None


def unreadable(path):
    """Why path cannot be read by this user (a folder on the way not searchable, the file not readable), or None:
    os.path.exists answers False for a file it cannot see, and the advice was then to make what is there."""
    try:
        os.stat(path)
        if os.path.isfile(path):
            open(path, "rb").close()
    except PermissionError as e:
        return e.strerror
    except OSError:
        return None
    return None


def present(path, fix=""):
    """Whether the file at path is there to read (False: nothing there); one sentence where it is a link whose
    target is gone, or where this user cannot read it. os.path.exists answers False for both: a study's table or
    cache read as none was written anew over the link, and an unreadable log or table was told to be restored or
    trained again. fix: what else to do, for the sentence (", or set --data_dir")."""
    if why := dangling(path):
        raise SystemExit(why)
    if why := unreadable(path):
        raise SystemExit(f"cannot read {path} ({why}); make {to_open(path)} for this user{fix}.")
    return os.path.exists(path)


def to_open(path):
    """What to make where this user cannot read path: it readable, or the folders on its path searchable. One that
    cannot be searched (mode 000 or 400) hides a readable file: "make it readable" could not be done through it, and
    "make the folders readable" (chmod +r, mode 400) did not open it either: a folder opens by its x bit."""
    try:
        os.stat(path)
        return "it readable"
    except OSError:
        return "the folders on its path searchable (chmod +x)"


META_FORM = ", 'meta': json.load(open('data/x/meta.json'))"  # the part of a checkpoint that names its tokenizer


def training(folder):
    """Whether folder/train.lock names a process that is running here (the pid train.py writes in it)."""
    try:
        with open(os.path.join(folder, "train.lock")) as f:
            pid = int(f.read().split()[0])
        os.kill(pid, 0) if pid > 0 else None
    except PermissionError:  # another user's process
        return True
    except (OSError, ValueError, IndexError, UnicodeDecodeError):  # none, unreadable, or no such process
        return False
    return pid > 0


def renamed(path, field="--out_dir"):
    """'FOLDER holds NAME: if that is the checkpoint, rename it (`mv ...`)' where path (out_dir/ckpt.pt) is missing and
    its folder holds a .pt file under another name, or None: a checkpoint received by a browser or a second copy
    saved under another name ("ckpt (1).pt"), or renamed by hand to keep it (model.pt, ckpt_600.pt: "has saved
    none", of a run that had). None while a run trains there: a ckpt_old.pt kept there, renamed ckpt.pt as told,
    was replaced by that run's first save. field: the setting that named the folder, in the run-inside hint."""
    folder = os.path.dirname(path) or "."
    if training(folder):
        return None
    try:
        named = sorted(f for f in os.listdir(folder) if f.endswith((".pt", ".pth"))
                       and os.path.isfile(os.path.join(folder, f)))
    except OSError:
        return None
    if not named:
        return run_inside(folder, field)
    if len(named) > 1:  # which is the run's is not guessed: each is named, the rename left to the user
        return f"{folder} holds {', '.join(named)}: rename the one that is the checkpoint to use to ckpt.pt"
    return f"{folder} holds {named[0]}: if that is the checkpoint, rename it " \
        f"(`mv {shlex.quote(os.path.join(folder, named[0]))} {shlex.quote(path)}`)"


def run_inside(folder, field="--out_dir"):
    """'FOLDER holds the run folder NAME: point field at it' where folder holds no checkpoint but a folder just
    inside it does, or None: a run copied with `cp -r run out` into an existing out lands in out/run, and a resume
    of out was told "use --init_from=scratch"; a parent of several runs (--out_dir=runs) names them."""
    try:
        runs = sorted(d for d in os.listdir(folder) if os.path.isfile(os.path.join(folder, d, "ckpt.pt")))
    except OSError:
        return None
    if not runs:
        return None
    if len(runs) == 1:
        return f"{folder} holds the run folder {runs[0]} (copied into it with cp -r?): point {field} at " \
            f"{shlex.quote(os.path.join(folder, runs[0]))}"
    more = f" and {len(runs) - 3} more" if len(runs) > 3 else ""
    return f"{folder} holds the run folders {', '.join(runs[:3])}{more}: point {field} at the one to use"


def logged_eval(folder):
    """The last iteration after 0 at which folder/log.jsonl records a validation loss (train.py saves its checkpoint
    there), or None: no log, none after 0, or a log that cannot be read (the plain "has saved none" then)."""
    try:
        text = log_text(os.path.join(folder, "log.jsonl"))
    except (OSError, SystemExit):
        return None
    last = None
    for line in log_lines(text):  # a log saved back pretty-printed (jq .) is its entries again, as a resume reads it
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if isinstance(e, dict) and "val_loss" in e and type(e.get("iter")) is int and e["iter"] > 0:
            last = e["iter"]
    return last


def load_checkpoint(path, keys=("model", "model_args"), mmap=False, again=None):
    """-> the checkpoint dict at path (ckpt.pt or its out_dir) with the keys asked for, its model weights renamed
    without wrapper prefixes and checked, name by name and shape by shape, against a model built from its
    model_args (on the meta device: no memory, no init). again: what to do instead of restoring a damaged file
    (None: train again, or point to another); train.py, whose new run would meet the same file, says to move it."""
    path = checkpoint_path(path)
    keys = (keys,) if isinstance(keys, str) else keys  # "model" was the keys m, o, d, e, l
    # None, from Python, was read inside the load's guard: "ckpt.pt is corrupt", of a sound checkpoint
    if not (isinstance(keys, (tuple, list, set)) and all(isinstance(k, str) for k in keys)):
        raise ValueError(f"keys must be the names the checkpoint must hold, a string or a tuple of them (default "
                         f"('model', 'model_args')); got {keys!r}.")
    point = f"restore it or {again}" if again else "point to an out_dir/ckpt.pt that train.py saved"
    again = again or "train again"
    present(path, ", or point to another out_dir")
    if why := dangling(os.path.dirname(path) or "."):
        raise SystemExit(why)
    if os.path.isdir(path):  # "train one" there was refused by train.py, which writes that file
        raise SystemExit(f"{path} is a folder, not a checkpoint; move it out of the way, or point to another out_dir.")
    if os.path.exists(path) and not os.path.isfile(path):  # "train one" met it again: train.py loads what is there
        raise SystemExit(f"{path} is {special(path)}, not a checkpoint; move it out of the way, or point to another "
                         f"out_dir.")
    if not os.path.isfile(path):
        # a run received with its checkpoint renamed ("ckpt (1).pt"), its log beside it: not "has saved none"
        if hint := renamed(path):
            raise SystemExit(f"no checkpoint at {path}, but {hint}.")
        # a finished or stopped run whose ckpt.pt was moved or removed by hand: "has saved none; wait for it" of a
        # run that had saved, and whose log says so
        if not training(folder := os.path.dirname(path) or ".") and (n := logged_eval(folder)):
            raise SystemExit(f"no checkpoint at {path}: the run in {os.path.dirname(path)} logged a validation at "
                             f"iteration {n} (log.jsonl), where train.py saves ckpt.pt by default, so it was moved or "
                             f"removed since; restore it, or point to another out_dir.")
        # "train one" there meets the run's lock; its log comes only after its first evaluation, its lock at once
        if any(os.path.isfile(os.path.join(os.path.dirname(path), f)) for f in ("log.jsonl", "train.lock")):
            raise SystemExit(f"no checkpoint at {path}: the run in {os.path.dirname(path)} has saved none (train.py "
                             f"saves at every eval_interval after 0); wait for it if it is still training, or point "
                             f"to another out_dir.")
        raise SystemExit(f"no checkpoint at {path}: train one with train.py, or point to the out_dir that holds it.")
    try:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        # torch's older format (_use_new_zipfile_serialization=False) cannot be mapped, nor can a path holding bytes
        # as surrogates (outside UTF-8 mode, PYTHONUTF8=0 LC_ALL=C: runé/ckpt.pt was called corrupt): read it
        except (RuntimeError, UnicodeEncodeError):
            if not mmap:
                raise
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        missing_keys = [k for k in dict.fromkeys(("model", "model_args", *keys)) if k not in ckpt]
    except Exception as e:  # truncated, empty, not a torch file: the user cannot act on the traceback
        # whole and torch's, only holding a pickled class (torch.save(model), model_args as a GPTConfig or with
        # numpy numbers), which weights_only refuses: it was called corrupt
        if obj := re.search(r"Unsupported global: GLOBAL (\S+)", str(e)):
            raise SystemExit(f"{path} holds a Python object ({obj[1]}) that a weights-only load refuses: a checkpoint "
                             f"holds tensors and plain values, {{'model': model.state_dict(), 'model_args': "
                             f"dataclasses.asdict(config){META_FORM if 'meta' in keys else ''}}}; save it so, or "
                             f"{again}.") from None
        if not path.endswith(".pt"):  # a run's log.jsonl, a data file: sound, only no checkpoint: nothing to restore
            raise SystemExit(f"{path} is not a checkpoint ({type(e).__name__}); point to the out_dir that holds "
                             f"train.py's ckpt.pt, or to the ckpt.pt itself.") from None
        raise SystemExit(f"{path} is corrupt or not a checkpoint written by train.py ({type(e).__name__}); restore "
                         f"it or {again}.") from None
    # torch.save(model.state_dict(), ...), a notebook's usual save, was "not a checkpoint written by train.py" alone
    if missing_keys and isinstance(ckpt, dict) and ckpt and all(torch.is_tensor(t) for t in ckpt.values()):
        raise SystemExit(f"{path} holds the weights alone (torch.save(model.state_dict())), without the model_args "
                         f"to build their model from: save {{'model': model.state_dict(), 'model_args': "
                         f"dataclasses.asdict(config){META_FORM if 'meta' in keys else ''}}}, or {point}.")
    # a notebook's own {'model', 'model_args'}, as the message above advises, lacks only the meta sample.py reads
    if missing_keys == ["meta"]:
        raise SystemExit(f"{path} has no meta, which names the tokenizer of the data it was trained on: add it to the "
                         f"checkpoint ({{..., {META_FORM[2:]}}}, the data's meta.json), or {point}.")
    # analyze's read of a notebook's {'model', 'model_args'} (no config: train.py's files lost iter_num to damage)
    if missing_keys == ["iter_num"] and "config" not in ckpt:
        raise SystemExit(f"{path} has no iter_num, the iterations its model trained: add it to the checkpoint "
                         f"({{..., 'iter_num': N}}), or {point}.")
    # keys=("model", "modelargs") from Python: train.py's own sound file was "not a checkpoint written by train.py"
    typo = next((k for k in missing_keys if k not in SAVED_KEYS), None)
    if typo is not None and isinstance(ckpt, dict) and "model_args" in ckpt:
        near = difflib.get_close_matches(typo, SAVED_KEYS, n=1)
        raise ValueError(f"keys names {typo!r}, which no checkpoint of train.py holds" + (
            f" (did you mean {near[0]!r}?)" if near else "") + f"; they hold {', '.join(SAVED_KEYS)}.")
    if missing_keys:
        raise SystemExit(f"{path} has no {', '.join(missing_keys)}: it is not a checkpoint written by train.py; "
                         f"{point}.")
    if not (isinstance(ckpt["model"], dict) and all(isinstance(t, torch.Tensor) for t in ckpt["model"].values())):
        raise SystemExit(f"{path} holds a 'model' that is no dict of tensors: it is not a checkpoint written by "
                         f"train.py; {point}.")
    asked = {*keys, "config", "meta"}  # config and meta whenever present: sample.py and analyze read them unasked
    bad = next((k for k, (ok, _) in FIELDS.items() if k in ckpt and k in asked and not ok(ckpt[k])), None)
    if bad:
        raise SystemExit(f"{path} holds {bad} = {reprlib.repr(ckpt[bad])}, which is no {FIELDS[bad][1]}: the file is "
                         f"damaged or not written by train.py; restore it or {again}.")
    if ckpt.get("config", {}).get("init_from") == "resume":  # a resume before 0f1ca57 saved that, not the start
        ckpt["config"].update(started(os.path.dirname(path)))
    data_dir = ckpt.get("config", {}).get("data_dir")
    if data_dir is not None and not isinstance(data_dir, str):  # sample.py and analyze read their calibration there
        raise SystemExit(f"{path} holds config data_dir = {reprlib.repr(data_dir)}, which is no path: the file is "
                         f"damaged or not written by train.py; restore it or {again}.")
    # of its field's type (an int for a float too), as train.py writes them, before GPTConfig refuses another type
    # as code that is not this one's would: n_layer=2.0 or a numpy int in a file is damage
    default, args = asdict(GPTConfig()), ckpt["model_args"]
    bad = isinstance(args, dict) and next((k for k, v in args.items() if k in default and type(v) is not type(
        default[k]) and not (type(default[k]) is float and type(v) is int)), None)
    if bad:
        raise SystemExit(f"{path} holds model_args {bad} = {reprlib.repr(args[bad])}, which is no "
                         f"{type(default[bad]).__name__}: the file is damaged or not written by train.py; restore it "
                         f"or {again}.")
    # (X)+ before pos_conv_basis existed (commit 137d68d) was [f(i), f(j)] at frequencies 10000^(-k/K), which no
    # basis here builds: filled in with today's default, the file loaded as another model without a word, and its
    # optimizer state (the conv weights then decayed) stopped a resume with a torch traceback
    if isinstance(args, dict) and args.get("pos_conv") and "pos_conv_basis" not in args:
        raise SystemExit(f"{path} holds an (X)+ model (pos_conv={args['pos_conv']!r}) written before pos_conv_basis "
                         f"existed (commit 137d68d), whose (X)+ features this code no longer builds: read it with "
                         f"the commit that trained it (git worktree add ../old 137d68d~1), or {again}.")
    try:
        cfg = GPTConfig(**args)
    except (TypeError, ValueError) as e:
        raise SystemExit(f"{path} holds model_args this code cannot build ({e}); it was written by another "
                         f"version or program; restore it or {again}.") from None
    edited_args(ckpt, args, default, path, again)
    tokenizer = ckpt.get("meta", {}).get("tokenizer")
    if tokenizer is not None and not isinstance(tokenizer, str):  # a list or dict: VOCABS.get's TypeError traceback
        raise SystemExit(f"{path} holds meta tokenizer = {reprlib.repr(tokenizer)}, which is no tokenizer name: its "
                         f"meta is damaged; restore the file or {again}.")
    if VOCABS.get(tokenizer, 0) > cfg.vocab_size:  # train.py's open_data refuses such data: the meta is not its own
        raise SystemExit(f"{path} names tokenizer {tokenizer!r} ({VOCABS[tokenizer]} tokens) for a model of vocab_size "
                         f"{cfg.vocab_size}: its meta is not that of the data it was trained on; restore the file or "
                         f"{again}.")
    eot = ckpt.get("meta", {}).get("eot_token")
    if eot is not None and not (type(eot) is int and 0 <= eot < cfg.vocab_size):  # sample.py and eval.py feed it in
        raise SystemExit(f"{path} holds meta eot_token = {reprlib.repr(eot)}, which is no token of a model of "
                         f"vocab_size {cfg.vocab_size}: its meta is not that of the data it was trained on; restore "
                         f"the file or {again}.")
    state = {bare(name): t for name, t in ckpt["model"].items()}
    ckpt["model"] = state
    # a notebook's file (no train.py config) with model_args other than its model's: "restore the file" restored nothing
    # model.built, not model.config: one changed after the build (block_size = 64, to try) saved the same file again
    check_weights(state, cfg, path, again, None if "config" in ckpt else
                  "save it again with the model_args of the model these weights are from (dataclasses.asdict("
                  "model.built), the config its layers were built with)")
    if "optimizer" in keys:
        opt = ckpt["optimizer"]
        fix = (f"it cannot resume exactly: restore the file, or start from its weights with "
               f"--init_from={shlex.quote(os.path.dirname(path) or '.')} in a new out_dir.")  # the weights are sound
        if not (isinstance(opt, dict) and opt.get("param_groups") and isinstance(opt.get("state", {}), dict)
                and (opt.get("state") or not ckpt.get("iter_num"))):
            raise SystemExit(f"{path} has an empty or malformed optimizer state at iteration "
                             f"{ckpt.get('iter_num')}; {fix}")
        # a group's settings are numbers, flags or pairs of numbers (betas), as AdamW writes them: betas = "x" was a
        # KeyError traceback inside set_optimizer_state_dict (train.py then sets them to this run's anyway)
        odd = next(((i, k, v) for i, g in enumerate(opt["param_groups"]) for k, v in
                    (g.items() if isinstance(g, dict) else [("group", g)]) if k != "params" and not setting(v)), None)
        if odd:
            raise SystemExit(f"{path} holds optimizer setting {odd[1]} = {reprlib.repr(odd[2])} in group {odd[0]}, "
                             f"which is no AdamW setting; {fix}")
        moments, names = by_name(opt, cfg, path, fix)
        # moments must have their weight's shape: AdamW's first step fails on them otherwise, after the data is
        # opened and the model built
        shapes = {name: tuple(t.shape) for name, t in state.items()}
        bad = next((n for n, s in moments.items() if isinstance(n, str) for m in ("exp_avg", "exp_avg_sq")
                    if not (isinstance(s, dict) and isinstance(s.get(m), torch.Tensor)
                            and tuple(s[m].shape) == shapes.get(bare(n)))), None)
        if bad:
            raise SystemExit(f"{path} holds an optimizer state for {bad} that does not fit that weight; {fix}")
        # and its step count: AdamW's bias correction starts over without it, and the resume differs without a word
        bad = next((n for n, s in opt.get("state", {}).items() if isinstance(s, dict) and not (
            type(s.get("step")) in (int, float) or isinstance(s.get("step"), torch.Tensor) and s["step"].numel() == 1)),
            None)
        if bad:
            raise SystemExit(f"{path} holds an optimizer state for {bad} without its step count; {fix}")
        # every weight the model trains in a group, with its moments once training has begun: one left out was a
        # RuntimeError traceback in set_optimizer_state_dict (no state), or resumed without a word (no group)
        if all(isinstance(n, str) for n in names):
            with torch.device("meta"):
                trained = [n for n, _ in GPT(cfg).named_parameters()]
            grouped, held = {bare(n) for n in names}, {bare(n) for n in moments if isinstance(n, str)}
            lost = next((n for n in trained if n not in grouped or ckpt.get("iter_num") and n not in held), None)
            if lost:
                raise SystemExit(f"{path} holds no optimizer state for {lost}; {fix}")
    return ckpt


def by_name(opt, cfg, path, fix):
    """-> (the optimizer state's moments, the weights its groups list), keyed by weight name. Files written before
    the names (issue 16) key both by position, which torch's load_state_dict pairs with this model's groups in
    order: named here from those groups, so that the checks by name read them too, and refused where the groups
    differ (an (X)+ conv once decayed, in the first group): a ValueError traceback in torch's load_state_dict."""
    groups = [g.get("params", ()) for g in opt["param_groups"] if isinstance(g, dict)]
    flat = [n for g in groups for n in g]
    if not (flat and all(type(n) is int for n in flat)):
        return opt.get("state", {}), flat
    with torch.device("meta"):
        model = GPT(cfg)
    own = {id(p): n for n, p in model.named_parameters()}
    layout = [[own[id(p)] for p in g["params"]] for g in model.configure_optimizers(0.0, 0.0, (0.9, 0.95),
                                                                                        "cpu").param_groups]
    if [len(g) for g in groups] != [len(g) for g in layout] or len(set(flat)) != len(flat):
        raise SystemExit(f"{path} keys its optimizer state by position (the older format), in groups of "
                         f"{' and '.join(str(len(g)) for g in groups)} weights, and this model's AdamW groups hold "
                         f"{' and '.join(str(len(g)) for g in layout)}; {fix}")
    names = dict(zip(flat, (n for g in layout for n in g)))
    return {names.get(k, k): s for k, s in opt.get("state", {}).items()}, list(names.values())


def edited_args(ckpt, args, default, path, again):
    """train.py saves the model's fields in config too, alike (config.update(model_args)), since its first commit:
    model_args edited by hand to n_head=4 over weights of n_head=2 (the same shapes) sampled another model with exit
    0, and a resume advised the edited value as "the run's own"."""
    conf = ckpt.get("config", {})
    odd = next((k for k in default if k in args and k in conf and type(conf[k]) in (int, float, bool, str)
                and conf[k] != args[k]), None)
    if odd:
        raise SystemExit(f"{path} holds model_args {odd} = {args[odd]!r} and config {odd} = {conf[odd]!r}, which "
                         f"train.py saves alike: one of them was edited; restore the file or {again}.")


def special(path):
    """What path is where no regular file or folder is: a named pipe, a device (a link to /dev/null), a socket."""
    mode = os.stat(path).st_mode
    what = ("a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else
            "a device file" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "no regular file")
    return f"a link to {os.readlink(path)!r}, {what}" if os.path.islink(path) else what


def log_text(path):
    """The text of a JSON-lines file (log.jsonl, a study's times.jsonl): UTF-8 with or without a BOM, bytes that are
    no UTF-8 (a disk error) replaced, each line then judged by its reader. One sentence where it was saved again as
    UTF-16 (PowerShell 5): every line was no JSON, and a resume dropped them all without a word."""
    with open(path, "rb") as f:
        data = f.read()
    if hint := utf16(data):
        raise SystemExit(f"{path} is not UTF-8{iconv_in_place(hint, path)}.")
    return data.decode("utf-8-sig", errors="replace")


def log_lines(text, numbered=False):
    """log.jsonl's text as its lines, one entry a line as train.py writes them. A log pretty-printed and saved back
    (`jq . log.jsonl`) spreads each entry over lines, none of them JSON alone: a resume dropped every one without a
    word (the curve before its checkpoint and the conversion's line lost for good), read_log told the studies to
    delete line 1. Such a text, JSON values from end to end (or one array of them, `jq -s .`), is its entries again,
    each on its line. numbered: (the file's line each begins on, the line) pairs, for advice that names a line: an
    entry's place among them is no line of a reassembled file, and the user was told to delete a good one."""
    # \r alone ends a line as open() read it (an old Mac editor): a resume kept none of such a log's lines, whole
    # ones end with \n, and dropped every one without a word
    lines = io.StringIO(text, newline=None).readlines()
    # blank lines are no entries, as between the values below: "delete line 2" named a blank line, the bad one kept
    kept = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    as_read = kept if numbered else [line for _, line in kept]
    # train.py's own lines, its first one whole: checking every line here, then decoding the whole text as values
    # where the last was cut by a kill (the crash a resume is for), took a million-line log 10 s and 1.5 GB
    if not kept or _json_line(kept[0][1]):
        return as_read
    text = "".join(lines)
    breaks = [m.start() for m in re.finditer("\n", text)]
    decoder = json.JSONDecoder()

    def values_from(i, between="", last=None):
        """(line, value, offset) of each JSON value from offset i on, with white space and `between` around them,
        up to the character `last` or the end."""
        values = []
        while i < len(text) and text[i] != last:
            if text[i].isspace() or text[i] in between:
                i += 1
                continue
            value, end = decoder.raw_decode(text, i)
            values.append((bisect.bisect_left(breaks, i) + 1, value, i))
            i = end
        return values
    try:
        values = values_from(0)
    except ValueError:  # a line cut by a kill or edited: the lines as they are, each judged by its reader
        return as_read
    if len(values) == 1 and isinstance(values[0][1], list):  # slurped into one array (`jq -s .`): its entries
        values = values_from(values[0][2] + 1, ",", "]")  # valid JSON: its elements, commas between, up to its end
    entries = [(n, json_text(v) + "\n") for n, v, _ in values]
    return entries if numbered else [line for _, line in entries]


def _json_line(line):
    """Whether line is one JSON object, as each of a log's is (an array on one line: `jq -cs .`)."""
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def first_entry(out_dir):
    """The first entry of out_dir/log.jsonl, where the run's start is (its conversion, if any), or None: no log, an
    empty one, one that cannot be read, or a first line that is no JSON object."""
    try:
        first = json.loads((log_lines(log_text(os.path.join(out_dir, "log.jsonl"))) or [""])[0])
    except (OSError, ValueError, SystemExit):  # SystemExit: UTF-16, which the resume itself refuses
        return None
    return first if isinstance(first, dict) else None


def started(out_dir):
    """How the run in out_dir started, from the first line of its log.jsonl: init_from and, for a conversion that
    tied V to K, convert_method ({} where the log cannot say). A resume before 0f1ca57 saved init_from 'resume' in
    place of the run's start, and the resume command's convert_method: a scratch command then matched a converted
    run ("nothing to do"), and the conversion's own command was told the checkpoint had another convert_method."""
    first = first_entry(out_dir)
    if first is None or first.get("iter") != 0:  # a log begun by a resume, or not train.py's
        return {}
    conversion = first.get("conversion")
    if conversion is None:  # every conversion writes its line first: this run started from scratch
        return {"init_from": "scratch"}
    if not (isinstance(conversion, dict) and isinstance(conversion.get("from"), str) and conversion["from"]):
        return {}
    method = conversion.get("method")  # None for an untie or pooling, where no method is read
    return {"init_from": conversion["from"], **({"convert_method": method} if isinstance(method, str) else {})}


def setting(v):
    """An optimizer group's setting as torch writes one: a number, a flag, None, a one-number tensor or a pair."""
    if isinstance(v, (tuple, list)):
        return all(type(x) in (int, float) for x in v)
    return v is None or type(v) in (int, float, bool) or isinstance(v, torch.Tensor) and v.numel() == 1


def bare(name):
    """A weight's name without the wrappers' prefixes (torch.compile's, DDP's)."""
    for p in PREFIXES:
        name = name.removeprefix(p)
    return name


def check_weights(state, cfg, path, again="train again", fix=None):
    """Every weight the model needs, of the shape it needs, and nothing else (fix: what to do instead of restoring
    the file or training again)."""
    with torch.device("meta"):
        want = {k: t.shape for k, t in GPT(cfg).state_dict().items()}
    missing = [k for k in want if k not in state]
    extra = [k for k in state if k not in want]
    bad = [k for k in want if k in state and tuple(state[k].shape) != tuple(want[k])]
    if missing or extra or bad:
        k = (missing or extra or bad)[0]
        what = (f"lacks {k}" if missing else f"holds {k}, which model_args do not make" if extra else
                f"holds {k} of shape {tuple(state[k].shape)}, and its model_args make {tuple(want[k])}")
        n = len(missing) + len(extra) + len(bad)
        raise SystemExit(f"{path} {what}{f' (and {n - 1} more weights disagree)' if n > 1 else ''}: its weights do "
                         f"not match its own model_args; {fix or f'restore the file or {again}'}.")
    bad = next((k for k, t in state.items() if t.is_meta), None)
    if bad:  # a model built under torch.device("meta") and saved: its NaN check below was a torch traceback
        raise SystemExit(f"{path} holds {bad} on the meta device, a shape without values (a model built under "
                         f"torch.device('meta')); save a model with its weights, or {again}.")
    bad = next((k for k, t in state.items() if not t.is_floating_point()), None)
    if bad:  # copied into the model's float weights, integers would load without a word
        raise SystemExit(f"{path} holds {bad} as {state[bad].dtype}, and the model's weights are floating point: the "
                         f"file is damaged or not written by train.py; restore it or {again}.")
    # train.py stops before saving a non-finite loss, so NaN or inf in a weight is damage (sampling would fail on it)
    bad = next((k for k, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()), None)
    if bad:
        raise SystemExit(f"{path} holds NaN or inf in {bad}: the file is damaged; restore it or {again}.")
    # tied, the two names are one tensor (torch.save keeps one copy): loaded in turn, lm_head's values replaced the
    # embedding's without a word, a model neither of the two
    wte, head = state["transformer.wte.weight"], state["lm_head.weight"]
    if cfg.tie_embeddings and not (wte.untyped_storage().data_ptr() == head.untyped_storage().data_ptr()
                                   and wte.storage_offset() == head.storage_offset() or torch.equal(wte, head)):
        raise SystemExit(f"{path} holds lm_head.weight unlike transformer.wte.weight, where its model_args tie them "
                         f"(tie_embeddings=True): the file is damaged or another model's; restore it or {again}.")


def load_json(path):
    """The JSON in the file at path, read as UTF-8 whatever the locale, with or without the byte order mark that
    Windows editors (Notepad, PowerShell 5) put first: a BOM was "not a JSON object: delete it and prepare again", and
    the locale's codec (ASCII under LC_ALL=C PYTHONUTF8=0) failed on a meta.json that jq had reformatted (it writes é
    where json.dumps wrote \\u00e9), which train.py then read as no meta.json, skipping its check for data prepared
    again."""
    with open(path, encoding="utf-8-sig") as f:
        return json.load(f)


def read_json(path, what):
    """A JSON object from path, or one sentence that says what the file should be (or that it is a link whose
    target is gone, or that this user cannot read it: "delete it and prepare again" fixed neither)."""
    present(path)
    try:
        obj = load_json(path)
        if not isinstance(obj, dict):
            raise ValueError("not an object")
        return obj
    except (OSError, ValueError) as e:
        # saved again by PowerShell 5 (Out-File, Set-Content -Encoding Unicode): UTF-16, told "delete it and prepare
        # again", hours of preparing for a file iconv converts back
        if isinstance(e, UnicodeDecodeError) and (hint := utf16(e.object)):
            raise SystemExit(f"{path} is not UTF-8{iconv_in_place(hint, path)}.") from None
        raise SystemExit(f"{path} is unreadable or not a JSON object ({type(e).__name__}); {what}.") from None


def read_log(out_dir, last=None):
    """The entries of out_dir/log.jsonl, each a JSON object with an int "iter" and, where present, a finite float
    "val_loss"; at least one of them has a validation loss, and with last (a finished run's iteration, where
    train.py always evaluates) the last of them is there. A line cut by a kill or edited is one sentence here, not
    a decoding traceback or a wrong curve in a study's table."""
    path = os.path.join(out_dir, "log.jsonl")
    present(path)
    try:
        lines = log_lines(log_text(path), numbered=True)  # its first line "no log entry" after a BOM, UTF-16
    except OSError as e:
        raise SystemExit(f"{path} cannot be read ({e.strerror}); it holds the run's validation curve: restore it, or "
                         f"delete {run_files(out_dir)} and train that run again.") from None
    entries = []
    for n, line in lines:
        try:
            e = json.loads(line)
        except ValueError:
            e = None
        val = e.get("val_loss", 0.0) if isinstance(e, dict) else None
        if not isinstance(e, dict) or type(e.get("iter")) is not int or type(val) not in (int, float) or \
                not np.isfinite(val):
            raise SystemExit(f"{path}, line {n}, is not a log entry of train.py (cut by a kill, or edited): delete "
                             f"that line, or {run_files(out_dir)} to train the run again.")
        entries.append(e)
    if not any("val_loss" in e for e in entries):
        raise SystemExit(f"{path} holds no validation loss: the run was never evaluated; delete "
                         f"{run_files(out_dir)} and train it again.")
    end = [e["iter"] for e in entries if "val_loss" in e][-1]
    if last is not None and end != last:  # its last lines lost: an earlier loss was read as the final one
        raise SystemExit(f"{path} ends its validation curve at iteration {end}, and the run's checkpoint is at {last} "
                         f"(lines lost or edited); delete {run_files(out_dir)} and train the run again.")
    return entries


def read_table(path, columns, text=(), ints=(),
               fix="restore it (`git checkout -- FILE` where it is tracked) and run again"):
    """The rows of a CSV a study wrote, [] when there is no file: every row holds a value in each of columns, a
    finite number in each but those named in text, a whole number >= 0 in those named in ints (seeds, steps,
    lengths). A damaged or foreign table is one sentence here, not a traceback in the report, nor an empty figure
    drawn over a tracked one."""
    if not present(path):
        return []
    fix = fix.replace("FILE", path)
    try:
        # a spreadsheet's "CSV UTF-8" begins with a byte order mark: read as part of the first column's name, it made
        # a table the study wrote, opened and saved, "not a table this study wrote"
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows, header = list(reader), reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        # saved again as UTF-16 (a spreadsheet's "Unicode text", PowerShell 5): iconv mends it, as meta.json is told;
        # e.object is the text's first chunk (8 KiB), whose cut may split a pair
        if isinstance(e, UnicodeDecodeError) and (hint := utf16(e.object, whole=len(e.object) < 8192)):
            raise SystemExit(f"{path} is not UTF-8{iconv_in_place(hint, path)}.") from None
        raise SystemExit(f"{path} cannot be read as a CSV ({type(e).__name__}); {fix}.") from None
    absent = [c for c in columns if c not in header]
    if absent or not rows:
        what = f"has no column {absent[0]}" if absent else "holds no rows"
        raise SystemExit(f"{path} {what}, so it is not a table this study wrote; {fix}.")
    for n, row in enumerate(rows, 2):
        for c in columns:
            value = row.get(c)  # None in a short row
            try:
                ok = bool(value) and (c in text or math.isfinite(float(value)))
                ok = ok and (c not in ints or value.isdigit())  # '1.5' or '-5' as a seed would be int()'s traceback
            except ValueError:
                ok = False
            if not ok:
                raise SystemExit(f"{path}, line {n}, holds {value!r} as {c}; {fix}.")
    return rows


def repo_path(name):
    """A file of this repository (train.py, config/cpu_lm.py) as a command starts it: name from the repository's
    folder, else its whole path. A study run from another folder (PYTHONPATH set) started ./train.py there: "can't
    open file 'train.py'", then "train.py stopped; fix that" for every run."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
    return name if os.path.isfile(name) and os.path.samefile(name, path) else path


def script(name):
    """A script of this repository as advice names it: its bare name from the repository's folder, else its path from
    the current one (train.py run from elsewhere was told `python prepare_slimpajama.py`, which is not there)."""
    if (path := repo_path(name)) == name:
        return name
    rel = os.path.relpath(path)
    return shlex.quote(path if rel.startswith("..") else rel)


def prepared_below(data_dir, vocab_size=None):
    """The folders just inside data_dir that prepare_slimpajama.py wrote (its three files), sorted: --data_dir=data,
    the parent of data/shakespeare_bytes, was told to prepare data into data/ itself. A folder it stopped writing
    (meta.json alone) is not one: named, it was refused in turn as holding only meta.json; nor one whose vocabulary
    a model of vocab_size cannot read (GPT-2 BPE data named to a byte-level study, refused once set)."""
    try:
        names = sorted(os.listdir(data_dir)) if os.path.isdir(data_dir) else []
    except OSError:
        return []
    found = [os.path.join(data_dir, n) for n in names
             if all(os.path.isfile(os.path.join(data_dir, n, f)) for f in ("train.bin", "val.bin", "meta.json"))]
    return [path for path in found if vocab_size is None or fits(path, vocab_size)]


def raw_texts(data_dir):
    """The text files prepare_slimpajama.py reads (.txt, .jsonl, .jsonl.zst) just inside data_dir, said as "a.txt"
    or "N files such as a.txt", else '': a corpus given as data_dir was told to prepare "it" into itself."""
    try:
        names = sorted(n for n in os.listdir(data_dir) if n.endswith((".txt", ".jsonl", ".jsonl.zst")))
    except OSError:
        return ""
    return "" if not names else names[0] if len(names) == 1 else f"{len(names)} files such as {names[0]}"


def misspelt(data_dir, vocab_size=None):
    """The prepared folder beside a missing data_dir whose name is a near spelling of its name (a typo, a letter's
    case, a trailing space), or None: --data_dir=data/shakespeare_byte was told to prepare the data again there."""
    parent, name = os.path.split(os.path.normpath(data_dir))
    beside = {os.path.basename(p): p for p in prepared_below(parent or os.curdir, vocab_size)}
    near = difflib.get_close_matches(name, beside, n=1, cutoff=0.8)
    if not near:  # a letter's case counts as one letter: Shakespeare_bytes, DATA_DIR
        near = [n for n in beside if n.casefold() == name.strip().casefold()][:1]
    return beside[near[0]] if near else None


def prepare_command(meta, data_dir):
    """The prepare_slimpajama.py command that makes data_dir again from the local files a checkpoint's meta records
    (its inputs and settings), or None for the hub's set or a meta without them: a resume whose own data was deleted
    was told `prepare_slimpajama.py --out_dir=...`, which downloads SlimPajama in place of the run's own text."""
    st = meta.get("settings") if isinstance(meta, dict) else None
    train, val = (meta.get(f"{s}_shards") for s in ("train", "val")) if isinstance(meta, dict) else (None, None)
    if not (isinstance(st, dict) and st.get("source") == "local files" and isinstance(train, list) and train
            and isinstance(val, list) and all(isinstance(p, str) for p in train + val)):
        return None
    args = ["--input", *train] + (["--val_input", *val] if val and val != train else [])
    args += [f"--tokenizer={st.get('tokenizer')}"]
    defaults = {"train_tokens": 10_000_000_000, "val_tokens": 10_000_000}  # prepare's, left out as its docs do
    args += [f"--{k}={st[k]}" for k in ("val_fraction", "train_tokens", "val_tokens")
             if st.get(k) is not None and st[k] != defaults.get(k)]
    return " ".join([f"python {script('prepare_slimpajama.py')}", *map(shlex.quote, args),
                     f"--out_dir={shlex.quote(data_dir)}"])


def same_data_beside(data_dir, meta):
    """The one prepared folder beside a missing data_dir that holds the data a checkpoint's meta records (the same
    inputs' hash, or tokenizer and token counts; the first by name of several with the same hash), or None:
    data/shakespeare_bytes renamed data/sb by hand was told "run from the folder the run was trained in" from that
    very folder."""
    # the same inputs prepared with the other tokenizer (or another --val_fraction) are other data: two folders
    # matched by inputs_sha256 alone named neither, and the advice was to run from the folder it was run from
    keys = ("tokenizer", "train_tokens", "val_tokens") + \
        (("inputs_sha256",) if isinstance(meta, dict) and meta.get("inputs_sha256") else ())
    if not isinstance(meta, dict) or any(meta.get(k) is None for k in keys):
        return None
    same = []
    for path in prepared_below(os.path.dirname(os.path.normpath(data_dir)) or os.curdir):
        try:
            theirs = load_json(os.path.join(path, "meta.json"))
        except (OSError, ValueError):
            continue
        if isinstance(theirs, dict) and all(theirs.get(k) == meta[k] for k in keys):
            same.append(path)
    # a copy kept beside the renamed folder (cp -r data/sb data/sb_backup) is the same data, the same inputs' hash
    # among its keys: naming neither, the advice was "run from the folder the run was trained in" from that folder
    return same[0] if len(same) == 1 or same and "inputs_sha256" in keys else None


def fits(path, vocab_size):
    """Whether the data prepared in path records a vocabulary within vocab_size (one that cannot be read: named)."""
    try:
        recorded = load_json(os.path.join(path, "meta.json")).get("vocab_size")
    except (OSError, ValueError, AttributeError):
        return True
    return not isinstance(recorded, int) or recorded <= vocab_size


def open_data(data_dir, block_size, vocab_size, resuming=False, study=None):
    """meta.json of data_dir after checking the two bins against it: uint16 (the dtype it records), the token counts
    it records, long enough for a block_size window, no token id at or above its vocabulary (the largest one as
    prepare_slimpajama.py recorded it); and that vocabulary within a model of vocab_size; -> meta. Data prepared
    before the largest id was recorded opens too: its bins are read for it when small (MAX_SCAN). A study (study:
    its name, e.g. experiments.rope) checks its byte-level data before its first run: it has no --vocab_size or
    --block_size to set, so the fix it is given is the command that prepares such data; nor has a run resumed or
    converted from a checkpoint (resuming), whose vocab_size and block_size are that checkpoint's (or the hub's
    model's: resuming is then its name)."""
    data_dir = os.fspath(data_dir)  # a notebook's pathlib.Path was shlex.quote's TypeError below
    # a model too small for r50k's vocabulary reads byte-level data: the hub's default set would not fit it
    command = BYTES_DATA if study or vocab_size < VOCABS["r50k_base"] else "python prepare_slimpajama.py --out_dir={}"
    command = command.replace("prepare_slimpajama.py", script("prepare_slimpajama.py"), 1)
    prepare = f"prepare it with `{command.format(shlex.quote(data_dir))}`" + ("" if study else " or set --data_dir")
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise SystemExit(f"data_dir {data_dir!r} is a file, not a directory; set --data_dir to the folder "
                         f"prepare_slimpajama.py wrote.")
    if (above := file_above(data_dir)) is not None:  # prepare could not make it there either
        raise SystemExit(f"data_dir {data_dir!r} lies under {above!r}, which is a file; set --data_dir to the "
                         f"folder prepare_slimpajama.py wrote.")
    for name in ("train.bin", "val.bin", "meta.json"):
        present(os.path.join(data_dir, name), ", or set --data_dir")  # "delete and prepare" is no fix for either
        if why := dangling(data_dir):
            raise SystemExit(why)
        # a preparation stopped midway (Ctrl-C, kill): only the command that began it knows its inputs
        if not os.path.exists(os.path.join(data_dir, name)) and os.path.exists(os.path.join(data_dir, "progress.json")):
            if being_written(data_dir):  # "run the command again" met its lock: being written now, not stopped
                raise SystemExit(f"data_dir {data_dir!r} is being prepared by a prepare_slimpajama.py run now "
                                 f"(progress.json, no meta.json yet): wait for it to end, then run this again.")
            raise SystemExit(f"data_dir {data_dir!r} is partly prepared (progress.json, no meta.json yet): run the "
                             f"prepare_slimpajama.py command that began it again to finish it.")
        if not os.path.exists(os.path.join(data_dir, name)):
            # prepare_slimpajama.py writes no folder that holds some of them ("not overwriting"): delete it first
            held = [n for n in ("train.bin", "val.bin", "meta.json") if os.path.exists(os.path.join(data_dir, n))]
            # --data_dir=data for data/x, train.py's or rope's and scaling's (cpu_lm and retrofit take no --data_dir:
            # theirs is STUDY_DATA)
            settable = not study or os.path.abspath(data_dir) != os.path.abspath(STUDY_DATA)
            if not held and settable and (inside := prepared_below(data_dir, vocab_size)):
                # at most three named; five said as three were taken for all of them
                which = inside[0] if len(inside) == 1 else f"{', '.join(inside[:-1])} and {inside[-1]}" \
                    if len(inside) <= 3 else f"{', '.join(inside[:3])} and {len(inside) - 3} more"
                raise SystemExit(f"data_dir {data_dir!r} has no {name}, but {which} "
                                 f"{'holds' if len(inside) == 1 else 'hold'} prepared data; set --data_dir to "
                                 f"{'it' if len(inside) == 1 else 'one of them'}, or "
                                 f"{prepare.removesuffix(' or set --data_dir')}.")
            if not held and settable and os.path.isabs(data_dir) and not os.path.exists(data_dir) and \
                    (tail := received_as(data_dir)):  # a config file received with its data from another machine
                raise SystemExit(f"data_dir {data_dir!r} does not exist (a path of another machine or folder?), but "
                                 f"{tail} here holds prepared data; set --data_dir={shlex.quote(tail)} if it is that "
                                 f"data, or {prepare.removesuffix(' or set --data_dir')}.")
            if not held and settable and not os.path.exists(data_dir) and (near := misspelt(data_dir, vocab_size)):
                raise SystemExit(f"data_dir {data_dir!r} does not exist, but {near!r} beside it holds prepared data; "
                                 f"set --data_dir={shlex.quote(near)} if you meant it, or "
                                 f"{prepare.removesuffix(' or set --data_dir')}.")
            run = [n for n in ("ckpt.pt", "log.jsonl") if os.path.isfile(os.path.join(data_dir, n))]
            if not held and settable and run:  # an out_dir: its log.jsonl was "text" to prepare, which prepare refuses
                raise SystemExit(f"data_dir {data_dir!r} is a training run's out_dir (it holds {run[0]}), not data "
                                 f"prepare_slimpajama.py wrote; set --data_dir to the folder prepare wrote.")
            if not held and settable and (texts := raw_texts(data_dir)):  # the corpus itself, not prepared from it
                out = os.path.join("data", os.path.basename(os.path.normpath(data_dir)))
                if os.path.exists(out):  # data/corp given, or taken: "prepare into corp" wrote beside the corpus
                    out = os.path.normpath(data_dir) + "_prepared"
                given = command.split(" --", 1)[0] + f" --input={shlex.quote(data_dir)}" + \
                    " --tokenizer=bytes --val_fraction=0.1" * ("bytes" in command) + f" --out_dir={shlex.quote(out)}"
                raise SystemExit(f"data_dir {data_dir!r} holds text ({texts}), not the data prepare_slimpajama.py "
                                 f"writes from it; prepare it into a folder of its own with `{given}` and set "
                                 f"--data_dir={shlex.quote(out)}.")
            if not held and (there := in_project(data_dir)):  # the quickstart's data, its command run from elsewhere
                raise SystemExit(f"data_dir {data_dir!r} is a relative path, read from this folder ({os.getcwd()}), "
                                 f"and has no {name} here; the project's folder holds it prepared: run from "
                                 f"{os.path.dirname(os.path.abspath(__file__))}"
                                 + (f" or set --data_dir={shlex.quote(there)}." if settable else "."))
            raise SystemExit(f"data_dir {data_dir!r} has no {name}" + (
                f", only {' and '.join(held)}; delete {delete_what(data_dir)} and {prepare}." if held else
                f"; {prepare}."))
        if not os.path.isfile(os.path.join(data_dir, name)):
            raise SystemExit(f"{os.path.join(data_dir, name)} is not a file; delete {delete_what(data_dir)} and "
                             f"prepare it again with prepare_slimpajama.py.")
    path = os.path.join(data_dir, "meta.json")
    # prepare_slimpajama.py never overwrites, and says "nothing to do" where meta.json still matches the bins'
    # sizes: the same command into the same folder would not repair a recorded maximum or a token edited in place
    again = f"delete {delete_what(data_dir)} and prepare it again with prepare_slimpajama.py"
    meta = read_json(path, again)
    if not isinstance(meta.get("vocab_size"), int):
        raise SystemExit(f"{path} has no vocab_size; {again}.")
    if meta.get("dtype", "uint16") != "uint16":
        raise SystemExit(f"{path} records dtype {meta['dtype']!r}, and train.py reads uint16 tokens; {again}.")
    # the checkpoint keeps this meta, and load_checkpoint refuses one that disagrees with the model: refused here,
    # before the run, not after it in every script that reads its checkpoint
    tokenizer, eot = meta.get("tokenizer"), meta.get("eot_token")
    if tokenizer is not None and not isinstance(tokenizer, str):  # a list or dict: VOCABS.get's TypeError traceback
        raise SystemExit(f"{path} records tokenizer {reprlib.repr(tokenizer)}, which is no tokenizer name: the file "
                         f"is edited or foreign; {again}.")
    if meta["vocab_size"] > 1 << 16:  # "set --vocab_size=<that>" was the advice, which no uint16 bin can need
        raise SystemExit(f"{path} records vocab_size {meta['vocab_size']:,}, more ids than uint16 tokens hold "
                         f"(65,536): the file is edited or foreign; {again}.")
    if VOCABS.get(tokenizer, 0) > meta["vocab_size"]:
        raise SystemExit(f"{path} names tokenizer {tokenizer!r} ({VOCABS[tokenizer]} tokens) with vocab_size "
                         f"{meta['vocab_size']}: the file is edited or foreign; {again}.")
    if eot is not None and not (type(eot) is int and 0 <= eot < meta["vocab_size"]):
        raise SystemExit(f"{path} holds eot_token = {reprlib.repr(eot)}, which is no token id below its vocab_size "
                         f"{meta['vocab_size']}: the file is edited or foreign; {again}.")
    if meta["vocab_size"] > vocab_size and study:  # its models are byte-level whatever the data: no setting helps
        # before the lengths: GPT-2 data too short for rope was told to prepare more of it, then that it needs bytes
        # a --data_dir elsewhere is left out; the study's own folder must be emptied: prepare refuses other settings
        then = " and leave --data_dir out" if os.path.abspath(data_dir) != os.path.abspath(STUDY_DATA) \
            else " after moving these away"
        raise SystemExit(f"{study} needs byte-level data (vocab_size {vocab_size}) and {path} records tokenizer "
                         f"{meta.get('tokenizer')!r} (vocab_size {meta['vocab_size']}); prepare byte-level data "
                         f"with `{command.format(STUDY_DATA)}`{then}.")  # the script's path from here
    for split in ("train", "val"):
        bin_path, recorded = os.path.join(data_dir, f"{split}.bin"), meta.get(f"{split}_tokens")
        size = os.path.getsize(bin_path)
        if size % 2:
            raise SystemExit(f"{bin_path} holds {size:,} bytes, an odd number, so it is no file of uint16 tokens "
                             f"(cut short, or written by another program); {again}.")
        if isinstance(recorded, int) and size != 2 * recorded:
            what = "cut short" if size < 2 * recorded else "extended, or written with a wider dtype"
            raise SystemExit(f"{bin_path} holds {size // 2:,} uint16 tokens and {path} records {recorded:,} ({what}); "
                             f"{again}.")
        if size // 2 < 2:  # no block_size helps: not even one (input, target) pair
            asked = meta.get("settings") if isinstance(meta.get("settings"), dict) else {}  # prepare's arguments
            if split == "val" and asked.get("val_tokens") == 0:  # a split there, but none of it asked for
                raise SystemExit(f"{bin_path} holds no tokens: {data_dir} was prepared with --val_tokens=0; "
                                 f"delete {delete_what(data_dir)} and prepare it again with --val_tokens above 0.")
            # prepare refuses a folder holding a dataset of other settings: the delete is part of the fix
            raise SystemExit(f"{bin_path} holds {size // 2} tokens; delete {delete_what(data_dir)} and prepare it "
                             f"again with more text" + (" and a validation split (--val_fraction above 0, or "
                                                        "--val_input)." if split == "val" else "."))
        if size // 2 <= block_size:
            # a hub model's (resuming: its name, gpt2) block_size is its own, and it has no data here to point at
            fix = ("." if study else f" ({resuming}'s block_size, which no setting changes)." if type(resuming) is str
                   else ", or point --data_dir at the data the checkpoint was trained on." if resuming
                   else " or set a smaller --block_size.")
            raise SystemExit(f"{bin_path} holds {size // 2} tokens, fewer than block_size + 1 ({block_size + 1}); "
                             f"prepare more data{fix}")
    if meta["vocab_size"] > vocab_size:
        if resuming:  # the vocabulary is the checkpoint's: no setting can change it now
            raise SystemExit(f"the checkpoint's vocab_size {vocab_size} < tokenizer vocab {meta['vocab_size']} in "
                             f"{path}: this is not the data the run was trained on; point --data_dir at that data.")
        padded = -(-meta["vocab_size"] // 64) * 64
        raise SystemExit(f"vocab_size {vocab_size} < tokenizer vocab {meta['vocab_size']} in {path}; "
                         f"set --vocab_size={padded}.")
    for split in ("train", "val"):
        top = meta.get(f"{split}_max_token")
        if not isinstance(top, int) and os.path.getsize(os.path.join(data_dir, f"{split}.bin")) <= 2 * MAX_SCAN:
            top = largest_token(os.path.join(data_dir, f"{split}.bin"))
        if isinstance(top, int) and top >= meta["vocab_size"]:  # the model's vocab_size is at least this
            raise SystemExit(f"{data_dir}/{split}.bin holds token id {top}, at or above vocab_size "
                             f"{meta['vocab_size']} of its tokenizer {meta.get('tokenizer')!r} in {path}: the bins "
                             f"are not that tokenizer's ids (the model would fail on them); {again}.")
    return meta


def largest_token(path):
    """The largest token id of a uint16 bin (None when it is empty), read in pieces of a few MB: read, not mapped, as
    train.py reads its windows (a mapping past an address-space cap, ulimit -v, was an ENOMEM traceback)."""
    top = None
    with open(path, "rb") as f:
        while len(piece := f.read(1 << 23)) >= 2:
            top = max(-1 if top is None else top, int(np.frombuffer(piece, np.uint16, len(piece) // 2).max()))
    return top


def perplexity(nll):
    """exp(nll), inf beyond a float's range rather than an error: a text of few words and many tokens each in eval.py,
    a diverging run's validation loss above 709.78 in train.py (an OverflowError traceback mid-run)."""
    return math.exp(nll) if nll < math.log(sys.float_info.max) else math.inf


def eval_batches(val_tokens, block_size, batch_size, eval_tokens, world_size=1):
    """train.py's evaluation, for each process: (rows, batches, capped). About eval_tokens in batches of rows
    consecutive windows, rows = batch_size or fewer where val.bin holds less than one batch; no more batches than
    val.bin holds whole (capped: fewer than eval_tokens asked), never wrapped round its end, which scored some of its
    tokens several times. The studies that score or report train.py's evaluation use it too (scored_tokens)."""
    windows = (val_tokens - 1) // block_size
    rows = min(batch_size, windows // world_size)
    if rows == 0:  # fewer windows than processes (train.py refuses such a run; a resume asks how its checkpoint's
        return 0, 0, True  # more processes scored a val.bin since cut): none scored, not a ZeroDivisionError
    asked = max(1, eval_tokens // (rows * block_size * world_size))
    whole = windows // (rows * world_size)
    return rows, min(asked, whole), asked > whole


def iteration_tokens(config):
    """Tokens per iteration of a run's settings (batch_size x block_size x gradient_accumulation_steps), or None
    where one of them is not a positive int (a hand-edited checkpoint): train.py's total_tokens counts in them."""
    sizes = [config.get(k) for k in ("batch_size", "block_size", "gradient_accumulation_steps")]
    return math.prod(sizes) if all(type(n) is int and n > 0 for n in sizes) else None


def run_length(config):
    """The max_iters a run of these settings trains to, or None: total_tokens > 0 sets it from the tokens per
    iteration, and the config keeps the max_iters it left unread (analyze called a finished --total_tokens run
    'iteration 40 of 600000: not finished'; a resume's cosine note read the same)."""
    total, per_iteration = config.get("total_tokens"), iteration_tokens(config)
    if type(total) is int and total > 0:
        return total // per_iteration if per_iteration else None
    return config.get("max_iters")


def unfinished(where, ckpt):
    """'where holds iteration N of its run's M: not finished (still training, or stopped)' where checkpoint ckpt is a
    save from before its run's end, else None: sample.py's samples, eval.py's numbers and train.py's conversion of
    such a save said nothing of it (results.json alone named the iteration)."""
    n, m = ckpt.get("iter_num"), run_length(ckpt.get("config") or {})
    if type(n) is not int or type(m) is not int or n >= m:
        return None
    return f"{where} holds iteration {n:,} of its run's {m:,}: not finished (still training, or stopped)"


def scored_tokens(val_tokens, block_size, batch_size, eval_tokens, world_size=1):
    """The validation tokens train.py's evaluation scores over its world_size processes (eval_batches): what a study's
    report names, not eval_tokens, which a smaller val.bin cuts to its whole batches (cpu_lm, retrofit and scaling said
    eval_tokens' 106,496 over a validation set of 50,000), and what a resume compares with its checkpoint's."""
    rows, batches, _ = eval_batches(val_tokens, block_size, batch_size, eval_tokens, world_size)
    return rows * batches * block_size * world_size


def data_counts(ckpt, out_dir):
    """{"train_tokens", "val_tokens"} of the data a study's run trained on, as its checkpoint's meta records them (the
    report's header names them); one sentence where they are no counts (edited, or another program's)."""
    counts = {k: ckpt["meta"].get(k) for k in ("train_tokens", "val_tokens")}
    if not all(type(n) is int and n >= 0 for n in counts.values()):
        raise SystemExit(f"{out_dir}/ckpt.pt holds meta {counts}, no token counts of its data (edited, or another "
                         f"program's); restore it, or delete {run_files(out_dir)} and train the run again.")
    return counts


def tokens(data_dir, split):
    """The split's tokens as a read-only uint16 memmap (reopened per use: a memmap kept open leaks memory)."""
    path = os.path.join(data_dir, f"{split}.bin")
    if os.path.isfile(path) and os.path.getsize(path) == 0:  # numpy cannot map an empty file: a ValueError traceback
        return np.zeros(0, dtype=np.uint16)  # in experiments.analyze, which refuses too few tokens in one sentence
    try:
        return np.memmap(path, dtype=np.uint16, mode="r")
    except PermissionError as e:  # sample.py and analyze read a checkpoint's val.bin without open_data's checks
        raise SystemExit(f"cannot read {path} ({e.strerror}); make it readable for this user.") from None
    except OSError as e:  # a bin larger than an address-space cap (ulimit -v, as some clusters set): a traceback
        if e.errno != errno.ENOMEM:
            raise
        fix = lift_limit("raise it") if memory_limit() else "free some memory"
        raise SystemExit(f"cannot map {path} ({os.path.getsize(path):,} bytes) into memory{memory_limit()}; "
                         f"{fix}, and run again.") from None


def token_count(data_dir, split):
    """The tokens of the split's bin, from its size: train.py reads its windows with pread, so a train.bin larger
    than an address-space cap (ulimit -v) trains; mapping it whole only to count them was a traceback there."""
    return os.path.getsize(os.path.join(data_dir, f"{split}.bin")) // 2
