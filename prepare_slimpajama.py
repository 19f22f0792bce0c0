r"""
Tokenize SlimPajama (or local .jsonl / .jsonl.zst / .txt files) into the data directory train.py reads:
out_dir/train.bin and out_dir/val.bin (np.uint16, every document followed by the end-of-text token) and
out_dir/meta.json (tokenizer, vocab_size, eot_token, dtype, tokens, documents, shards and the largest token id per
split, source), which train.py checks the bins against.

$ python prepare_slimpajama.py                                    # the paper's set: 10B train + 10M val tokens
$ python prepare_slimpajama.py --train_tokens=20_000_000 --out_dir=data/slimpajama_20m
$ python prepare_slimpajama.py --input=input.txt --tokenizer=bytes --val_fraction=0.1 \
    --out_dir=data/shakespeare_bytes

The hub source reads cerebras/SlimPajama-627B shard by shard in a fixed (natural) order, validation shards for
val.bin first, then training shards for train.bin; each split stops at the first document boundary at or after
its token target. Local inputs go through the same shard reader. Progress is committed every --commit_seconds to
out_dir/progress.json together with the bin lengths, so a run killed at any moment and restarted with the same
command truncates the bins to the committed lengths, continues, and ends byte-identical to an uninterrupted run.
"""

import argparse
import errno
import functools
import glob
import hashlib
import itertools
import json
import os
import queue
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

if getattr(sys.flags, "safe_path", False):  # PYTHONSAFEPATH=1 or -P leaves this folder off sys.path: the next
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # import was a ModuleNotFoundError traceback
from configurator import quiet_start  # standard library only

if __name__ == "__main__":  # a Ctrl-C (SIGTERM, SIGHUP) while torch imports: one line, not its traceback
    quiet_start()

import numpy as np
import zstandard

from checkpoint import (atomic_write, dangling, delete_what, dir_steps, earlier_sha1s, eight_bit, free_name,
                        guard_assets, hold_lock, iconv_command, iconv_in_place, inputs_sha1, json_lines, largest_token,
                        load_json, missing_dirs, r50k, remove_empty, remove_leftovers, shell_arg, space_fix, unreadable,
                        utf16, writable_dir)
from configurator import Parser, boolean, cli, number
from convert import hub_problem

HUB_REPO = "cerebras/SlimPajama-627B"
HUB_SHARDS = {"val": r"validation/chunk\d+/example_holdout_\d+\.jsonl\.zst",
              "train": r"train/chunk\d+/example_train_\d+\.jsonl\.zst"}
EXTENSIONS = (".jsonl.zst", ".jsonl", ".txt")
BATCH_CHARS = 1 << 20   # text per batch: the unit of writing and committing
CHUNK_CHARS = 1 << 16   # text per encoding task: many tasks per batch keep every thread busy to the end
PRINT_SECONDS = 5
LINE_END = re.compile(r"\r\n?|\n")
SNIFF = 1 << 16  # bytes of a .txt input that tell text from binary (not_text)
# the controls of no text; text has tabs, line and page breaks, ESC (ANSI colours) and backspace (nroff's overstruck
# bold and underline: a formatted man page, a third of it backspaces, was "not text ... as in a binary file")
CONTROLS = bytes(set(range(32)) - set(b"\b\t\n\v\f\r\x1b"))


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help: the docstring as written, and each setting's default."""


def get_parser():
    p = Parser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--input", nargs="+", default=[],
                   help="local files, folders or globs of .jsonl, .jsonl.zst (one JSON object with a 'text' field per "
                        "line) or .txt (one document per file); default: the Hugging Face hub")
    p.add_argument("--val_input", nargs="+", default=[],
                   help="local validation files, folders or globs: they fill val.bin, --input fills train.bin")
    p.add_argument("--val_fraction", type=number(float, "[0, 1)"), default=None,
                   help="--input without --val_input only: every document j of a .jsonl shard with "
                        "floor((j+1)f) > floor(jf) goes to val.bin; a .txt file, being one document, gives its last "
                        "fraction f, cut at a line start, to val.bin as a document of its own (default %(default)s, "
                        "which is 0.01 for --input alone)")
    p.add_argument("--out_dir", default="data/slimpajama", help="where train.bin, val.bin and meta.json go")
    p.add_argument("--tokenizer", default="r50k_base", choices=("r50k_base", "bytes"),
                   help="r50k_base: GPT-2 BPE, end-of-text 50256 after each document; bytes: UTF-8 bytes (vocab 256), "
                        "byte 0 after each document, NUL bytes inside documents dropped and counted")
    p.add_argument("--train_tokens", type=number(int, ">= 1"), default=10_000_000_000,
                   help="train.bin ends at the first document boundary at or past this many tokens (the paper's 10B)")
    p.add_argument("--val_tokens", type=number(int, ">= 0"), default=10_000_000, help="the same for val.bin")
    p.add_argument("--skip_bad", type=boolean, nargs="?", const=True, default=False,
                   help="skip (and count in meta.json) non-JSON lines and corrupt .zst shards instead of stopping")
    p.add_argument("--threads", type=number(int, ">= 1"), default=os.cpu_count(),
                   help="encoding threads (default: every core, %(default)s here)")
    p.add_argument("--commit_seconds", type=number(float, ">= 0"), default=10.0,
                   help="seconds between progress commits: the most work a killed run loses (0: every batch)")
    p.add_argument("--benchmark", type=boolean, nargs="?", const=True, default=False,
                   help="with --input: end-to-end tokens/s of this script next to tiktoken alone on the same text")
    return p


# options a mode of this script reads nothing of (configurator.Parser.unread): --benchmark times every document
# into a temporary folder, keeps nothing and splits nothing off
UNREAD = [("out_dir", lambda a: a.benchmark, "--benchmark prepares into a temporary folder and keeps nothing; "
           "drop --out_dir, or drop --benchmark to prepare the data there"),
          ("val_fraction", lambda a: a.benchmark, "--benchmark times every document, with no validation split; "
           "drop --val_fraction"),
          # without --val_input, val.bin is what --val_fraction holds out (--val_tokens=0 beside 0 agrees with it)
          ("val_tokens", lambda a: a.val_tokens and a.input and not a.val_input and a.val_fraction == 0,
           "--val_fraction=0 holds out no document and there is no --val_input, so val.bin stays empty; drop "
           "--val_tokens, or set --val_fraction above 0"),
          # a limit stopped the timed run early while the reference encoded every document: a ratio of 0.00x
          ("train_tokens", lambda a: a.benchmark, "--benchmark times every document, to the end of the inputs; "
           "drop --train_tokens"),
          ("val_tokens", lambda a: a.benchmark, "--benchmark times every document, to the end of the inputs; "
           "drop --val_tokens")]


def parse_args(argv):
    """The settings, each checked by its type in get_parser, then the checks across settings."""
    p = get_parser()
    args = p.parse_args(argv)
    p.unread(args, UNREAD)
    if args.val_input and not args.input:
        p.error("--val_input needs --input for the training files")
    if args.val_fraction is not None and (args.val_input or not args.input):
        p.error("--val_fraction splits --input alone; drop it, the validation shards already fill val.bin")
    if args.val_fraction is None and args.input and not args.val_input:
        args.val_fraction = 0.01
    # val.bin full from the start: the documents routed to it were dropped, text train.bin never got, exit 0
    if args.val_tokens == 0 and (args.val_input or args.val_fraction):
        p.error("--val_tokens=0 keeps no validation tokens, so " + (
            "--val_input would be read for nothing; drop it" if args.val_input else
            f"--val_fraction {args.val_fraction} would hold out documents only to drop them; for no validation "
            f"split, set --val_fraction=0"))
    if args.benchmark and not args.input:
        p.error("--benchmark measures local files: give them with --input")
    return args


# ----------------------------------------------------------------------------------------------------------------
# tokenizers

def clean(text):
    # JSON may hold lone UTF-16 surrogates, which have no UTF-8 form: replace them as tiktoken itself does
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class Tokenizer:
    def __init__(self, name):
        self.name = name
        if name == "r50k_base":
            self.enc = r50k("error: ", ", or use --tokenizer=bytes")
            self.vocab_size, self.eot = self.enc.n_vocab, self.enc.eot_token
            self.separator = (f"each document is followed by <|endoftext|> ({self.eot}); the text '<|endoftext|>' "
                              "inside a document is encoded as ordinary text")
        elif name == "bytes":
            self.vocab_size, self.eot = 256, 0
            self.separator = ("each document is its UTF-8 bytes followed by byte 0 (NUL); NUL bytes inside a "
                              "document are dropped and counted in nul_bytes_dropped")
        else:  # any other name was the bytes tokenizer's vocabulary, then an AttributeError in the first encode
            raise ValueError(f"tokenizer must be 'r50k_base' or 'bytes'; got {name!r}.")

    def ids(self, text):
        """Token ids of one document without the separator, and the NUL bytes dropped."""
        if self.name == "bytes":
            try:
                b = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
            except UnicodeEncodeError:
                b = np.frombuffer(clean(text).encode("utf-8"), dtype=np.uint8)
            keep = b != 0
            return b[keep], len(b) - int(keep.sum())
        try:
            # encode_to_numpy skips the Python list encode_ordinary builds; with nothing allowed or
            # disallowed as special it gives the same ids
            return self.enc.encode_to_numpy(text, disallowed_special=()), 0
        except UnicodeEncodeError:
            return self.enc.encode_to_numpy(clean(text), disallowed_special=()), 0

    def encode(self, texts):
        """Per document: uint16 ids followed by the separator, and the NUL bytes dropped. Runs in a worker thread."""
        out = []
        for text in texts:
            ids, nul = self.ids(text)
            a = np.empty(len(ids) + 1, dtype=np.uint16)
            a[:-1] = ids
            a[-1] = self.eot
            out.append((a, nul))
        return out

    def raw(self, texts, threads):
        """Token count of tiktoken (or the UTF-8 codec) alone on texts in memory: the benchmark's reference."""
        if self.name == "bytes":
            return sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
        return sum(len(ids) for ids in self.enc.encode_ordinary_batch(texts, num_threads=threads))


# ----------------------------------------------------------------------------------------------------------------
# shards: the hub and local files, then one reader for both

def natural(name):
    # example_train_2 before example_train_10
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", name)]


def hub_error():
    """Why the hub cannot be reached, as an error sentence, or None: offline, huggingface_hub retries for 25 s and
    prints every retry before its error; convert.hub_problem asks once, in a few seconds at most."""
    from huggingface_hub import constants
    instead = "or give local files with --input"
    if constants.HF_HUB_OFFLINE:  # the hub's own reading of HF_HUB_OFFLINE (and TRANSFORMERS_OFFLINE)
        return f"error: HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, so the hub is not asked; unset it, {instead}"
    url = urllib.parse.urlsplit(constants.ENDPOINT)
    try:
        url.port  # a port that is no number raises here
    except ValueError:
        url = None
    if not (url and url.hostname):
        return f"error: HF_ENDPOINT {constants.ENDPOINT!r} is no URL (like https://huggingface.co); fix it, {instead}"
    why = hub_problem()
    if why:
        return (f"error: cannot reach the Hugging Face hub at {constants.ENDPOINT} ({why}); check the network (or "
                f"HF_ENDPOINT), {instead}")
    return None


def hub_shards():
    """[(name, split)] of the SlimPajama repo in a fixed order, and the function that downloads one shard."""
    problem = hub_error()
    if problem:
        sys.exit(problem)
    from huggingface_hub import hf_hub_download, list_repo_files
    from huggingface_hub.utils import disable_progress_bars
    disable_progress_bars()  # the progress line replaces a bar per shard
    try:
        files = list_repo_files(HUB_REPO, repo_type="dataset")
    except Exception as e:
        sys.exit(f"error: could not list {HUB_REPO} on the Hugging Face hub ({type(e).__name__}); check the "
                 f"network, or give local files with --input")
    shards = [(f, split) for split in ("val", "train")
              for f in sorted((f for f in files if re.fullmatch(HUB_SHARDS[split], f)), key=natural)]
    if not shards:
        sys.exit(f"error: {HUB_REPO} lists no shards matching {list(HUB_SHARDS.values())}")
    pool, downloads = ThreadPoolExecutor(1), {}

    def fetch(i):
        # start the next shard's download now, so that it arrives while this one is being encoded
        for k in (i, i + 1):
            if k < len(shards) and k not in downloads:
                downloads[k] = pool.submit(hf_hub_download, HUB_REPO, shards[k][0], repo_type="dataset")
        return downloads.pop(i).result()

    return shards, fetch


def walk(folder):
    """The files under folder, through linked subfolders too (as a ** glob goes), each real folder once: a link
    back to a parent is not a loop."""
    seen, found = set(), []
    for d, subs, names in os.walk(folder, followlinks=True):
        if os.path.realpath(d) in seen:
            subs.clear()
            continue
        seen.add(os.path.realpath(d))
        found += [os.path.join(d, f) for f in names]
    return found


def head(path):
    with open(path, "rb") as f:
        return f.read(SNIFF)


def cannot_read(path, why):
    """An input this user cannot read: one sentence, before out_dir is begun."""
    sys.exit(f"error: cannot read {path} ({why}); make it readable for this user, or leave it out")


def upper_fix(name):
    """The fix for a name whose extension is one of EXTENSIONS in upper case (NOTES.TXT, from Windows), else ''."""
    ext = next((e for e in EXTENSIONS if name.lower().endswith(e)), None)
    return f"the extension is read in lower case: rename it to {ext}" if ext else ""


def write_beside(path, read, hint=None, suffix="_lines"):
    """The command that writes path's documents, converted, to a new file beside it, and that the new file takes its
    place: "iconv -f X -t UTF-8" named no file (iconv f > f empties f), and with a folder or glob given as --input
    the original, still there, was read again beside its copy (the same error, and a new name for the copy each time).
    hint: a sentence ending in "convert it, e.g. iconv ...", whose command gets read's input and the new name."""
    ext = ".txt" if path.endswith(".txt") else ".jsonl"
    new = free_name(re.sub(r"([.]jsonl([.]zst)?|[.]txt)$", "", path) + (suffix if hint is None else ""), ext)
    then = f", and give {new} in its place (out of a folder or glob given as input, move {path} away)"
    return f"{read} > {shell_arg(new)}{then}" if hint is None else iconv_command(hint, path, new, then)


def json_fix(path, read=()):
    """The fix for a .json file of documents, else '': JSON Lines saved as .json (as many datasets name them) is to be
    renamed, an array of objects to be split into lines; "convert it" said neither. read: the input's files, where a
    .jsonl of its name beside it (made by the advice) is read: the note told to convert it again, to NAME_2.jsonl."""
    if not path.lower().endswith(".json"):
        return ""
    if (done := path[:-5] + ".jsonl") in read:
        return f"{done} beside it is read: nothing more to do where it holds the same documents (as advised)"
    try:
        start = head(path).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError:  # unreadable: said where it is read
        return ""
    if start.startswith(b"["):
        new = shell_arg(free_name(path[:-5]))
        return f"an array of documents goes one a line into a .jsonl: jq -c '.[]' {shell_arg(path)} > {new}"
    if start.startswith(b"{") and b"\n{" in start.replace(b"\r", b""):
        return f"one JSON object a line is JSON Lines: rename it to {free_name(path[:-5])}"
    return ""


def prepared_fix(path):
    """The fix for a folder prepare_slimpajama.py wrote, or one of its files, given as input, else '': its bins hold
    token ids, not text, and "convert it" (or "convert any that hold documents") sent a user who had confused
    --input with train.py's --data_dir to convert them."""
    folder = path if os.path.isdir(path) else os.path.dirname(path) or "."
    if not os.path.isfile(os.path.join(folder, "train.bin")) or not any(
            os.path.isfile(os.path.join(folder, f)) for f in ("meta.json", "progress.json")):
        return ""
    return f"{shell_arg(folder)} holds a dataset prepare_slimpajama.py wrote (token ids, not text): give the text " \
           f"it was prepared from, or train on it with train.py --data_dir={shell_arg(folder)}"


def left_out(pattern, option, names, log, out_dir):
    """Says which files of a folder or glob are not read: a corpus's .jsonl.gz or .json beside its .txt files was
    left out without a word, the dataset made of the rest (hidden files, .DS_Store and the like, go unnamed)."""
    # an out_dir in the input's folder: its bins and JSON files are no input left out
    mine = os.path.join(os.path.realpath(out_dir), "") if out_dir else "\0"
    hidden = re.compile(r"(^|[/\\])\.[^/\\]")  # .DS_Store, a corpus's .git/ and all in it
    other = sorted((f for f in names if not f.endswith(EXTENSIONS) and os.path.isfile(f)
                    and not hidden.search(os.path.relpath(f, pattern) if os.path.isdir(pattern) else f)
                    and not os.path.realpath(f).startswith(mine)), key=natural)
    if other:
        name = (lambda f: os.path.relpath(f, pattern)) if os.path.isdir(pattern) else (lambda f: f)
        shown = ", ".join(name(f) for f in other[:3])
        more = f" and {len(other) - 3} more" if len(other) > 3 else ""
        # the first of each kind with a fix, named: "rename it to .txt" beside three files named no one of them, and a
        # .json of documents in a folder was told only to convert it
        # (the first .json only is read: a folder of many other JSON files is not read through for a note)
        upper = next((f for f in other if upper_fix(f)), None)
        first_json = next((f for f in other if f.lower().endswith(".json") and not prepared_fix(f)), None)
        first_bin = next((f for f in other if prepared_fix(f)), None)  # a dataset's train.bin is no document
        read = set(names)
        fixes = [f"{name(f)}: {fix(f)}" for f, fix in ((upper, upper_fix), (first_json, lambda f: json_fix(f, read)),
                                                        (first_bin, prepared_fix)) if f and fix(f)]
        log(f"note: {option} {pattern}: {len(other)} file(s) not {', '.join(EXTENSIONS)} left out ({shown}{more}); "
            f"convert any that hold documents{''.join('; ' + fix for fix in fixes if fix)}")


def local_files(patterns, option, log=print, out_dir=None):
    files = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            # a file only, as a glob takes: a broken link among the names cannot be read (nor sized for the resume)
            names = walk(pattern)
            found = [f for f in names if f.endswith(EXTENSIONS) and os.path.isfile(f)]
            left_out(pattern, option, names, log, out_dir)
        elif any(c in pattern for c in "*?[") and not os.path.exists(pattern):
            # a name that exists is that file: data[1].txt as a glob is data1.txt, another file or none
            names = glob.glob(pattern, recursive=True)
            # a folder it matches is read as a folder, as the shell passes it: "data/*" quoted read data/a.txt and
            # left data/sub/ out without a word, where data/* unquoted read both (and "data/*" of folders alone was
            # told it "holds no file")
            names = list(dict.fromkeys(f for n in names for f in (walk(n) if os.path.isdir(n) else [n])))
            found = [f for f in names if f.endswith(EXTENSIONS) and os.path.isfile(f)]
            left_out(pattern, option, names, log, out_dir)
        elif why := dangling(pattern):  # "does not exist", where ls shows it
            sys.exit(f"error: {option} {why}")
        elif not os.path.exists(pattern) and (why := unreadable(pattern)):  # in a folder this user cannot search
            cannot_read(pattern, why)
        elif not os.path.exists(pattern):
            # "a.txt,b.txt" or "a.txt b.txt" quoted as one: each of them is there, given as one name
            parts = re.split(r"[,\s]+", pattern.strip(", "))
            fix = f"each of {', '.join(parts)} does: give them apart, {option} {' '.join(parts)}" \
                if len(parts) > 1 and all(os.path.exists(p) for p in parts) else "give existing files, folders or globs"
            if len(parts) == 1 and os.path.exists(parts[0]):  # "small.txt " quoted: the space went unseen
                fix = f"{parts[0]} does: the name has a space or comma before or after it; give {option} {parts[0]}"
            sys.exit(f"error: {option} {pattern} does not exist; {fix}")
        elif not pattern.endswith(EXTENSIONS):
            fix = upper_fix(pattern) or prepared_fix(pattern) or json_fix(pattern) or "convert it or leave it out"
            sys.exit(f"error: {option} {pattern} is not {', '.join(EXTENSIONS)}; {fix}")
        else:
            found = [pattern]
        if not found:
            # 'g[1]/*.txt' looks in g1/: the folder g[1] itself needs its bracket escaped, as in a shell
            literal = "; in a glob [...] matches one of its characters, so write [[] for a literal [" \
                if "[" in pattern and not os.path.exists(pattern) else ""
            there = f"; {fix}" if os.path.isdir(pattern) and (fix := prepared_fix(pattern)) else ""
            sys.exit(f"error: {option} {pattern} holds no {', '.join(EXTENSIONS)} file{literal}{there}")
        # named by real path; a file given twice, or as train and val, through a link or ../ is still one file
        files += [os.path.realpath(f) for f in sorted(found, key=natural)]
    first = {}
    for f in files:
        first.setdefault(same_file(f), f)
    return list(first.values())


def same_file(path):
    """What one file is however it is named: a hard link has a real path of its own (and was read twice, or as
    both training and validation text)."""
    st = os.stat(path)
    return st.st_dev, st.st_ino


def local_shards(args, log=print):
    """[(path, split)] of the local inputs (split "mixed" when --val_fraction splits them), and the function that
    gives shard i's path, as hub_shards does after downloading it."""
    train = local_files(args.input, "--input", log, args.out_dir)
    val = local_files(args.val_input, "--val_input", log, args.out_dir) if args.val_input else []
    held = {same_file(f) for f in val}
    both = [f for f in train if same_file(f) in held]
    if both:
        sys.exit(f"error: {both[0]} is in both --input and --val_input; give it to one of them")
    # zstd keeps the file it compresses: a folder holding docs.jsonl beside docs.jsonl.zst prepared every document
    # twice (or, split between --input and --val_input, validated on training text), exit 0
    given = {f: option for option, fs in (("--input", train), ("--val_input", val)) for f in fs}
    for f, option in given.items():
        if f.endswith(".jsonl.zst") and f[:-4] in given:
            sys.exit(f"error: {f[:-4]} ({given[f[:-4]]}) and {f} ({option}) are one file and its zstd copy (zstd keeps "
                     f"the file it compresses), so each document would be read twice; move one of them out of the "
                     f"input")
    shards = [(f, "val") for f in val] + [(f, "train" if val else "mixed") for f in train]
    return shards, lambda i: shards[i][0]


class BadInput(Exception):
    def __init__(self, message, whole_shard=False):
        super().__init__(message)
        self.whole_shard = whole_shard  # a corrupt .zst: the rest of the shard cannot be read


class Unreadable(Exception):
    """A shard that could not be downloaded or read: what came before it is committed, the same command resumes."""


def zst_chunks(f, path):
    """Decompressed bytes of a .zst file, frame after frame; a file cut short is an error, not a short shard."""
    d, fed = zstandard.ZstdDecompressor().decompressobj(), False
    while data := f.read(1 << 20):
        while data:
            yield d.decompress(data)
            fed = True
            data = b""
            if d.eof:
                data, d, fed = d.unused_data, zstandard.ZstdDecompressor().decompressobj(), False
    if fed:
        raise zstandard.ZstdError(f"{path} ends in the middle of a zstd frame")


def lines(chunks):
    rest = b""
    for chunk in chunks:
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest


@functools.cache
def exact(val_fraction):
    """--val_fraction as the decimal typed, a ratio of integers: in floats 90 x 0.7 is 62.99999999999999."""
    return Fraction(repr(val_fraction)).as_integer_ratio()


def route(split, j, val_fraction, floats=False):
    if split != "mixed":
        return split
    if floats:  # a run cut short by a version before a7bf8ea resumes by its rule, as by_line below
        return "val" if int((j + 1) * val_fraction) > int(j * val_fraction) else "train"
    # floor((j+1)f) > floor(jf) in integers: in floats document 89 of --val_fraction=0.7 went to train.bin, and a
    # shard of 90 held out 62 documents where docs/data.md says floor(90 x 0.7) = 63
    p, q = exact(val_fraction)
    return "val" if (j + 1) * p // q > j * p // q else "train"


def line_start(text, i):
    """The first line start at or after i: after LF, CRLF or a lone CR (a classic Mac file has no LF at all, and was
    refused as one long line), or len(text) when none follows."""
    if i == 0 or text[i - 1] == "\n" or (text[i - 1] == "\r" and text[i:i + 1] != "\n"):
        return i
    end = LINE_END.search(text, i)
    return end.end() if end else len(text)


def not_text(data):
    """Why a .txt input's bytes are no text, judged on its first SNIFF bytes, else None: more than a tenth of them
    control characters (NUL and the like; not tab, line and page breaks, ESC or backspace) is a binary file, or UTF-16
    text without a byte-order mark (every other byte NUL), which decode as UTF-8 and were prepared as control
    characters.
    Only NUL bytes are left to "no text", said when the run ends."""
    head = data[:SNIFF]
    # UTF-16 with its byte order mark is no UTF-8, said naming it (utf16)
    if not head.strip(b"\0") or utf16(head, whole=len(data) < SNIFF):
        return None
    controls = len(head) - len(head.translate(None, CONTROLS))
    if controls * 10 <= len(head):
        return None
    return (f"not text: {controls / len(head):.0%} of its first {len(head):,} bytes are control characters (NUL and "
            f"the like), as in a binary file or UTF-16 text without a byte-order mark")


# the signatures compressors begin their files with, and the command that writes the file's bytes back out
COMPRESSED = ((b"\x1f\x8b", "gzip", "gunzip -c"), (b"\x28\xb5\x2f\xfd", "zstd", "zstd -dc"),
              (b"\xfd7zXZ\x00", "xz", "xz -dc"), (b"BZh", "bzip2", "bzip2 -dc"), (b"PK\x03\x04", "zip", "unzip -p"))


def compressed(path):
    """Why a .txt or .jsonl input is a compressed file, with the command that decompresses it, else None: a gzip
    file named .txt was "not UTF-8 (invalid start byte)" once out_dir held empty bins, its cause unsaid."""
    start = head(path)[:16]
    for magic, name, read in COMPRESSED:
        if start.startswith(magic) and (name != "bzip2" or re.match(rb"BZh[1-9]1AY&SY", start)):
            if name == "zstd" and path.endswith(".jsonl"):  # prepare reads it as it is, under its own name
                new = free_name(path.removesuffix(".jsonl"), ".jsonl.zst")
                return f"zstd-compressed; rename it, e.g. mv {shell_arg(path)} {shell_arg(new)}"
            command = write_beside(path, f"{read} {shell_arg(path)}", suffix="")
            return f"{name}-compressed; decompress it first, e.g. {command}"
    return None


def json_documents(path):
    """Whether a .txt input's first line is a JSON document as a .jsonl holds them ({"text": ...}): a .txt is one
    plain text, so such lines (a .jsonl saved or renamed as .txt) were trained on JSON syntax and all, exit 0, where
    eval.py --text refuses the same file."""
    with open(path, "rb") as f:
        start = f.read(SNIFF)
        if not start.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
            return False
        start += f.readline()  # the whole first line: one document of SlimPajama runs past SNIFF bytes
    return json_lines(start.decode("utf-8", "replace"))


def nul_half(data):
    """'UTF-16LE' or 'UTF-16BE' where data (a .jsonl's first bytes) is UTF-16 without a byte order mark (Python's
    encoding='utf-16-le'), every other byte NUL; else None. json.loads takes its first line, read as a document, and
    line 2 (split after its newline's first byte) was blamed with a decoding error."""
    head = data[:4096 - 4096 % 2]
    if len(head) < 2:
        return None
    even, odd = head[0::2].count(0) / len(head[0::2]), head[1::2].count(0) / len(head[1::2])
    return "UTF-16LE" if odd > 0.9 and even < 0.1 else "UTF-16BE" if even > 0.9 and odd < 0.1 else None


def documents(path, split, val_fraction, start, by_line=False, floats=False):
    """Yield (unit, split, text) for each unit of a shard from unit `start` on: a line of a .jsonl file (units are
    the positions a resume starts from), or the train and val pieces of a .txt file. A bad unit comes as a
    BadInput in place of its text, naming the file and line."""
    if path.endswith(".txt"):
        with open(path, "rb") as f:
            data = f.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            hint = write_beside(path, None, utf16(data) or eight_bit(data, e.start))
            yield 0, split, BadInput(f"{path}:{line}: not UTF-8 ({e.reason}{hint})", whole_shard=True)
            return
        if why := not_text(data):  # refused before out_dir begins (write_dataset); skipped here with --skip_bad
            yield 0, split, BadInput(f"{path}: {why}", whole_shard=True)
            return
        # a UTF-8 byte order mark (Notepad's "UTF-8 with BOM") marks the file, it is not text: it was the first
        # character of the document (3 bytes), where a .jsonl's, read by json, never was
        text = text.removeprefix("\ufeff")
        cut = len(text)
        if split == "mixed" and val_fraction:
            # val starts at the first line start at or after the fraction mark (no line starts there: no val)
            cut = line_start(text, int(len(text) * (1 - val_fraction)))
        pieces = [(0, "train" if split == "mixed" else split, text[:cut]), (1, "val", text[cut:])]
        for unit, s, piece in pieces[start:]:
            if piece:
                yield unit, s, piece
        return
    j = k = -1  # k: the shard's non-blank lines, by which --val_fraction picks documents
    with open(path, "rb") as f:
        try:
            chunks = zst_chunks(f, path) if path.endswith(".zst") else iter(lambda: f.read(1 << 20), b"")
            first = next(chunks, b"")
            # json.loads takes a line of UTF-16 too: its first document was read, then line 2 "not a JSON object"
            if start == 0 and (hint := utf16(first[:len(first) - len(first) % 2], whole=False)):
                # iconv of the compressed file converts nothing: a .zst is decompressed first
                hint = write_beside(path, None, hint)
                yield 0, split, BadInput(f"{path}:1: not UTF-8{hint}", whole_shard=True)
                return
            if start == 0 and (half := nul_half(first)):
                fix = write_beside(path, None, f"convert it, e.g. iconv -f {half} -t UTF-8")
                yield 0, split, BadInput(f"{path}:1: not UTF-8; it is UTF-16 without a byte-order mark (every other "
                                         f"byte NUL): {fix}", whole_shard=True)
                return
            chunks = itertools.chain([first], chunks)
            utf8_seen = False  # a line before, from where this run reads, that is UTF-8 beyond ASCII
            for j, line in enumerate(lines(chunks)):
                if not line.strip():
                    continue
                # a blank line after each document put every 100th line, held out, on a blank: no val.bin
                k += 1
                if j < start:
                    continue
                if k == 0 and line.lstrip(b"\xef\xbb\xbf \t\r").startswith(b"["):  # json.dump(docs) saved as .jsonl
                    read = f"zstd -dc {shell_arg(path)} | jq -c '.[]'" if path.endswith(".zst") else \
                        f"jq -c '.[]' {shell_arg(path)}"
                    yield j, split, BadInput(f"{path}:{j + 1}: the file is one JSON array, not one object a line; "
                                             f"split it into lines, e.g. {write_beside(path, read)}", whole_shard=True)
                    return
                try:
                    obj = json.loads(line)
                    if isinstance(obj, dict) and "text" not in obj:
                        yield j, split, BadInput(f"{path}:{j + 1}: {no_text_field(obj, path, mixed=k > 0)}")
                        continue
                    text = obj["text"]
                    if not isinstance(text, str):
                        raise TypeError(f"'text' is {type(text).__name__}, not a string")
                except UnicodeDecodeError as e:  # named as a .txt's is; a line, as one stray byte in a shard is too
                    # after a line of UTF-8 beyond ASCII (café), the file is UTF-8 with a stray byte: iconv from
                    # Windows-1252, as advised, made every é of the rest Ã©
                    hint = "; the lines before it are UTF-8 beyond ASCII: fix this line, not the file's encoding" \
                        if utf8_seen else write_beside(path, None, eight_bit(e.object, e.start))
                    yield j, split, BadInput(f"{path}:{j + 1}: not UTF-8 ({e.reason}{hint})")
                    continue
                except (ValueError, KeyError, TypeError) as e:
                    fix = not_json_lines(line, path) if k == 0 else ""
                    yield j, split, BadInput(f"{path}:{j + 1}: not a JSON object with a 'text' string ({e!r:.80}){fix}")
                    continue
                utf8_seen = utf8_seen or not line.isascii()
                if text:
                    # by_line: a run cut short by a version before 23aa8b8, which held out by line number, resumes
                    # by its rule (the new one from where it stopped was neither version's split, exit 0)
                    yield j, route(split, j if by_line else k, val_fraction, floats), text
        except zstandard.ZstdError as e:
            yield j + 1, split, BadInput(f"{path}: corrupt zstd data after line {j + 1} ({e})", whole_shard=True)


def not_json_lines(line, path):
    """'; ...' with the fix for a file whose first document line shows the whole file to be no JSON Lines, else '':
    plain text a line, JSON strings, or Python's str() of dicts (single quotes). "fix it, or --skip_bad" said
    neither how, and --skip_bad skipped every line ("the input holds no text")."""
    line = line.decode("utf-8", errors="replace").lstrip("\ufeff \t").rstrip()
    zst = f"zstd -dc {shell_arg(path)} | " if path.endswith(".zst") else ""
    arg = "" if zst else " " + shell_arg(path)
    if line.startswith("{'"):
        return "; it is Python's str() of a dict, not JSON: write each line with json.dumps(...)"
    try:
        obj = json.loads(line)
    except ValueError:
        obj = None
    if isinstance(obj, str):
        read, what = f"{zst}jq -c '{{text: .}}'{arg}", "each line is a JSON string, not an object"
    elif obj is None and not line.startswith(("{", "[")):
        read, what = f"{zst}jq -R -c '{{text: .}}'{arg}", "the lines are plain text, not JSON"
    else:
        return ""
    return f"; {what}: make each one a document, e.g. {write_beside(path, read, suffix='_text')}"


def no_text_field(obj, path, mixed=False):
    """A .jsonl line's object without a 'text' field: its fields, and the jq command that renames the one holding the
    text (another corpus's 'content', or 'text' one level down). "--skip_bad" alone skipped every line. mixed: lines
    before it had 'text' (two corpora concatenated), which '{text: .content}' alone made null."""
    fields = ", ".join(repr(k) for k in list(obj)[:8])
    name = next((f".{k}" for k, v in obj.items() if isinstance(v, str) and re.fullmatch(r"\w+", k)), None) or \
        next((f".{k}.text" for k, v in obj.items() if isinstance(v, dict) and isinstance(v.get("text"), str)
              and re.fullmatch(r"\w+", k)), None)
    jq = f"jq -c '{{text: (.text // {name})}}'" if mixed else f"jq -c '{{text: {name}}}'"
    # beside the file, in a free name: "> text.jsonl" for each of a corpus's shards wrote each over the one before
    read = f"zstd -dc {shell_arg(path)} | {jq}" if path.endswith(".zst") else f"{jq} {shell_arg(path)}"
    fix = f", e.g. {write_beside(path, read, suffix='_text')}" if name else ""
    return f"no 'text' field (its fields: {fields or 'none'}); prepare reads each line's 'text' string: rename the " \
           f"field holding the document{fix}"


# ----------------------------------------------------------------------------------------------------------------
# the pipeline: a reader thread submits encoding tasks in document order, the main thread writes their results

class Batch:
    def __init__(self, end):
        self.docs = []          # (shard index, split) per document
        self.futures = []       # encoding tasks, in document order
        self.texts = []         # documents not yet submitted
        self.chunk_chars = 0    # characters in texts
        self.chars = 0
        self.end = end          # (shard, unit) of the first unit after this batch: where a resume starts
        self.skipped = 0        # bad lines
        self.bad_shards = []    # corrupt .zst shards, their rest skipped


def read_batches(shards, fetch, start, args, tok, pool, q, full, stop, by_line=False, floats=False):
    def submit():
        if b.texts:
            b.futures.append(pool.submit(tok.encode, b.texts))
            b.texts, b.chunk_chars = [], 0

    def put(item):
        while not stop.is_set():
            try:
                return q.put(item, timeout=0.1)
            except queue.Full:
                pass

    b = Batch(start)
    try:
        for i in range(start[0], len(shards)):
            name, split = shards[i]
            if ({"train", "val"} if split == "mixed" else {split}) <= full:
                b.end = (i + 1, 0)
                continue  # every split this shard feeds is full: don't even download it
            path = fetch(i)
            for unit, s, text in documents(path, split, args.val_fraction, start[1] if i == start[0] else 0,
                                           by_line, floats):
                if isinstance(text, BadInput) and not args.skip_bad:
                    b.end = (i, unit)  # a rerun starts at the bad unit: it fails again, or counts it with --skip_bad
                    submit()
                    put(b)  # what came before the bad unit is written and committed first
                    # a repaired file no longer matches the committed progress, so a fix means starting over
                    # --benchmark's out_dir is its own temporary folder, gone by the time this is read
                    over = "" if getattr(args, "benchmark", False) else \
                        f" and delete {delete_what(args.out_dir)} to start over"
                    put(BadInput(f"{text}; fix it{over}, or rerun the same command with --skip_bad to skip and count "
                                 f"such input"))
                    return
                if isinstance(text, BadInput) and text.whole_shard:
                    b.bad_shards.append(name)
                elif isinstance(text, BadInput):
                    b.skipped += 1
                else:
                    b.docs.append((i, s))
                    b.texts.append(text)
                    b.chunk_chars += len(text)
                    b.chars += len(text)
                    if b.chunk_chars >= CHUNK_CHARS:
                        submit()
                b.end = (i, unit + 1)
                if b.chars >= BATCH_CHARS:
                    submit()
                    put(b)
                    b = Batch(b.end)
                if stop.is_set():
                    return
            b.end = (i + 1, 0)
        submit()
        put(b)
        put(None)
    except OSError as e:  # downloading or reading a shard (the network, a file): not the writer's failed write
        verb = "read" if args.input else "download"
        submit()
        put(b)  # what came before is written and committed: the rerun starts at b.end, this shard or within it
        put(Unreadable(f"could not {verb} {shards[i][0]} ({e.strerror or type(e).__name__}); check the "
                       f"{'file' if args.input else 'network'}, then rerun the same command to resume from the last "
                       f"commit"))
    except BaseException as e:
        put(e)


def progress(st, shards, target, made, chars, dt, local=False):
    """The progress line: split, shards done/total, documents and tokens per split, tokens/s, MB/s, ETA.
    local: the input is the user's files, which may end long before the token target (10B by default): a 2.6M-token
    file read "ETA 11:41:54" and ended in 20 s, so the ETA says what it counts to."""
    rate = made / max(dt, 1e-9)
    left = sum(target[s] - st["tokens"][s] for s in target if st["tokens"][s] < target[s])
    i = min(st["next"][0], len(shards) - 1)
    split = "train+val" if shards[i][1] == "mixed" else shards[i][1]
    parts = [f"{split:9s} shards {st['next'][0]}/{len(shards)}"]
    for s in ("train", "val"):
        parts.append(f"{s} {human(st['tokens'][s])}/{human(target[s])} tokens {human(st['documents'][s])} docs")
    if st["next"][0] >= len(shards):
        eta = "00:00:00 (all input read)"
    else:
        eta = clock(left / rate) if rate > 0 and left / rate < 86400 * 365 else "-"
        eta += " to the token target, sooner if the input ends first" if local and eta != "-" else ""
    parts += [f"{human(rate)} tokens/s", f"{chars / max(dt, 1e-9) / 1e6:.1f} MB/s text", f"ETA {eta}"]
    return " | ".join(parts)


def clock(seconds):
    """seconds as H:MM:SS, hours past 24 counted on (strftime's %H on gmtime wrapped: 30 hours left read 06:00:00)."""
    s = int(seconds)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def human(n):
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def write_json(path, obj):
    atomic_write(path, json.dumps(obj, indent=1))  # a kill leaves the old file or the new one, never half of one


def open_bins(out_dir, st):
    """The bins, opened for appending at the committed lengths (anything after them was never committed)."""
    files = {}
    for s in ("train", "val"):
        path = os.path.join(out_dir, f"{s}.bin")
        exists = os.path.exists(path)
        if (os.path.getsize(path) if exists else 0) < 2 * st["tokens"][s]:
            sys.exit(f"error: {path} is shorter than {out_dir}/progress.json records; delete {delete_what(out_dir)} "
                     f"and start over")
        try:
            files[s] = open(path, "r+b" if exists else "wb")
        except PermissionError as e:  # read-only or unreadable for this user: a traceback at the resume
            sys.exit(f"error: cannot open {path} to append to it ({e.strerror}); make it readable and writable for "
                     f"this user, or use another --out_dir")
        files[s].truncate(2 * st["tokens"][s])
        files[s].seek(0, os.SEEK_END)
    return files


def count(v):
    return type(v) is int and v >= 0


def per_split(v, ok=count):
    return isinstance(v, dict) and all(ok(v.get(s)) for s in ("train", "val"))


def is_progress(st):
    """progress.json as this script writes it: every field a resume reads, of its type (a hand edit was a
    KeyError or TypeError traceback, or, with "next" at -1, the input read twice into the bins without a word)."""
    pair, shards = st.get("next"), st["settings"].get("shards")
    return (isinstance(pair, list) and len(pair) == 2 and all(count(x) for x in pair) and count(shards)
            and pair[0] <= shards and per_split(st.get("tokens")) and per_split(st.get("documents"))
            and count(st.get("skipped")) and count(st.get("nul_bytes_dropped"))
            and per_split(st.get("shards"), lambda v: isinstance(v, list))
            and isinstance(st.get("skipped_shards"), list))


def is_meta(meta):
    """meta.json as this script writes it: the token counts a rerun checks the bins against."""
    return count(meta.get("train_tokens")) and count(meta.get("val_tokens"))


def read_json(path, ok=lambda obj: True):
    """A JSON file this script wrote, checked by ok, or one sentence on what to do when it is not readable."""
    if why := dangling(path):  # restored, it is whole: "delete out_dir and start over" lost the work
        sys.exit(f"error: {why}")
    if why := unreadable(path):
        sys.exit(f"error: cannot read {path} ({why}); make it readable for this user, or use another --out_dir")
    try:
        obj = load_json(path)  # UTF-8, a BOM or not, as train.py reads it
        if not (isinstance(obj.get("settings"), dict) and ok(obj)):
            raise ValueError("fields missing or of the wrong type")
        return obj
    except (OSError, ValueError, AttributeError, TypeError) as e:
        if isinstance(e, UnicodeDecodeError) and (hint := utf16(e.object)):  # saved again by PowerShell 5
            sys.exit(f"error: {path} is not UTF-8{iconv_in_place(hint, path)}")
        sys.exit(f"error: {path} is unreadable or not written by this script ({type(e).__name__}); delete "
                 f"{delete_what(os.path.dirname(path))} and start over, or use another --out_dir")


def contents_sha256(shards):
    """sha256 of the local inputs' names (not their folders), splits, sizes and bytes, in order: what a dataset is
    made of, which meta.json records as inputs_sha256. The fingerprint also holds real paths and modification
    times, which a project copied with `cp -r` or tar changes: "the input files changed ... delete it" then cost a
    rerun of prepare from the same text."""
    h = hashlib.sha256()
    for name, split in shards:
        h.update(json.dumps([os.path.basename(name), split, os.path.getsize(name)]).encode())
        with open(name, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()


def same_inputs(meta_path, shards, fingerprint):
    """(meta.json's shards_sha1,) when out_dir's dataset was made from these inputs where the fingerprint no longer
    says so, or (). A dataset that records inputs_sha256 is matched by contents; an older one by its files' names,
    order, sizes and modification times (the project's folder moved with mv: its real paths changed)."""
    try:
        old = load_json(meta_path)  # a damaged one is named by start_state's read
        was, digest = old["settings"]["shards_sha1"], old.get("inputs_sha256")
        if was == inputs_sha1(fingerprint):
            return ()  # nothing moved: no need to read the inputs again
        if digest is not None:
            return (was,) if digest == contents_sha256(shards) else ()
        mixed = all(split == "mixed" for _, split in shards)
        names = old["train_shards"] if mixed else old["val_shards"] + old["train_shards"]
        if len(names) != len(fingerprint) or any(not isinstance(a, str) or os.path.basename(a) !=
                                                 os.path.basename(f[0]) for a, f in zip(names, fingerprint)):
            return ()
        return (was,) if inputs_sha1([(a, *f[1:]) for a, f in zip(names, fingerprint)]) == was else ()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # no dataset there, or one start_state names
        return ()


def start_state(out_dir, settings, older=(), typed=()):
    """The committed progress to continue from, a fresh one, or None when out_dir already holds this dataset.
    older: the fingerprints of the same inputs as versions before ea7da02 wrote them (names and sizes only); typed:
    as versions before inputs_sha1 read names as text wrote them (checkpoint.earlier_sha1s, under either locale)."""
    meta_path, state_path = os.path.join(out_dir, "meta.json"), os.path.join(out_dir, "progress.json")
    for path in (meta_path, state_path):
        if os.path.exists(path):
            old = read_json(path, is_meta if path == meta_path else is_progress)
            diff = [k for k, v in settings.items() if old["settings"].get(k) != v
                    and not (k == "shards_sha1" and old["settings"].get(k) in typed)]
            if diff == ["shards_sha1"] and old["settings"]["shards_sha1"] in older:
                # made by an older version from files of these names and sizes: "the input files changed" was
                # untrue, and its fix (the same files) met the same refusal; a finished dataset is this one, as that
                # version would say, but a cut run must not resume into bins of a file edited to the same size
                if path == meta_path:
                    return None
                sys.exit(f"error: {out_dir} is a run of this command cut short by an older version of this script, "
                         f"which did not record the files' modification times; delete {delete_what(out_dir)} and run "
                         f"this command again to start over")
            # a file added to or removed from the input folder: "made with other settings (shards: 2, not 3;
            # shards_sha1: '6853...', not 'b7fb...')", two digests for one added file
            if "shards_sha1" in diff and set(diff) <= {"shards", "shards_sha1"}:
                # the fingerprint is the ordered list: the same files in another order are another dataset
                # a cut run's progress.json records no names: moved with the project's folder, it cannot be matched
                # "delete it" after the files named read as the folder, which may hold the user's text
                moved = "" if path == meta_path else " (a run cut short resumes from its files where they were: " \
                                                     "moved since, start over as said)"
                n, was = settings["shards"], old["settings"].get("shards")  # "1 files, not 12" read as a typo
                count = f"{n} file{'' if n == 1 else 's'}, not {was}; " if "shards" in diff else ""
                sys.exit(f"error: the input files changed since {out_dir} was made from them ({count}another list or "
                         f"order of files, or a file's size or modification time); give the same files in the same "
                         f"order, or delete {delete_what(out_dir)} to start over from the new ones{moved}")
            if diff:
                given = "; ".join(f"{k}: {old['settings'].get(k)!r}, not {settings[k]!r}" for k in diff)
                sys.exit(f"error: {out_dir} already holds a dataset made with other settings ({given}); "
                         f"use another --out_dir or delete {delete_what(out_dir)}")
            return None if path == meta_path else old
    # both bins named: "delete it" of train.bin alone, followed, met the same refusal of val.bin
    if bins := [f"{s}.bin" for s in ("train", "val") if os.path.exists(os.path.join(out_dir, f"{s}.bin"))]:
        sys.exit(f"error: {out_dir}/{' and '.join(bins)} {'exist' if len(bins) > 1 else 'exists'} without "
                 f"progress.json or meta.json; not overwriting {'them' if len(bins) > 1 else 'it'}: use another "
                 f"--out_dir or delete {delete_what(out_dir)}")
    return {"settings": settings, "next": [0, 0], "tokens": {"train": 0, "val": 0},
            "documents": {"train": 0, "val": 0}, "shards": {"train": [], "val": []},
            "skipped": 0, "skipped_shards": [], "nul_bytes_dropped": 0, "val_by": "document",
            # in integers (a7bf8ea): a run cut short before, whose shards so far split in floats, resumes in floats
            # (the new rule from where it stopped gave a split neither version gives, exit 0)
            "val_split": "exact"}


def check_bins(out_dir, meta, tok):
    """A finished dataset is only done while its bins hold what meta.json records (a deleted or cut train.bin is
    not), and meta.json records the tokenizer this command writes (train.py reads the vocabulary there)."""
    for s in ("train", "val"):
        path, n = os.path.join(out_dir, f"{s}.bin"), meta[f"{s}_tokens"]
        if not os.path.exists(path) or os.path.getsize(path) != 2 * n:
            held = f"holds {os.path.getsize(path):,} bytes" if os.path.exists(path) else "is missing"
            sys.exit(f"error: {path} {held}, and {out_dir}/meta.json records {n:,} tokens ({2 * n:,} bytes); "
                     f"delete {delete_what(out_dir)} and run this command again to rebuild it")
    want = {"tokenizer": tok.name, "vocab_size": tok.vocab_size, "eot_token": tok.eot, "dtype": "uint16"}
    meta = {"dtype": "uint16", **meta}  # older files have no dtype: uint16, as train.py reads them
    bad = next((k for k, v in want.items() if meta.get(k) != v), None)
    if bad:
        sys.exit(f"error: {out_dir}/meta.json records {bad} {meta.get(bad)!r}, and this command writes {want[bad]!r} "
                 f"(edited by hand?); delete {delete_what(out_dir)} and run this command again to rebuild it")


def prepare(args, log=print):
    """Make args.out_dir; returns its meta.json contents."""
    tok = Tokenizer(args.tokenizer)
    if args.input:
        (shards, fetch), source = local_shards(args, log), "local files"
        # size and modification time: an edit that keeps the size must not resume into the old bins
        fingerprint = [(name, split, os.path.getsize(name), os.stat(name).st_mtime_ns) for name, split in shards]
        older = earlier_sha1s([f[:3] for f in fingerprint])  # before ea7da02: no modification times
    else:
        (shards, fetch), source = hub_shards(), f"hf://datasets/{HUB_REPO}"
        fingerprint, older = shards, ()
    settings = {"source": source, "tokenizer": args.tokenizer, "train_tokens": args.train_tokens,
                "val_tokens": args.val_tokens, "val_fraction": args.val_fraction, "shards": len(shards),
                "shards_sha1": inputs_sha1(fingerprint)}
    typed = earlier_sha1s(fingerprint)  # as versions before recorded it: their dataset made under a UTF-8 locale, or
    # LC_ALL=C from préface.txt is this one, asked again there
    if args.input:  # the same files in a folder moved, renamed or copied since (the project's, input.txt in it)
        typed += same_inputs(os.path.join(args.out_dir, "meta.json"), shards, fingerprint)
    if os.path.isfile(os.path.join(args.out_dir, "meta.json")) and not os.access(args.out_dir, os.W_OK) and \
            start_state(args.out_dir, settings, older, typed) is None:
        # a finished dataset on a read-only place (a shared mount): the same command again, the quickstart rerun,
        # was told to choose another --out_dir, where it has nothing to write
        return finished(args.out_dir, tok, log)
    made = len(missing_dirs(args.out_dir))  # --out_dir=a/b/c with no a: 3, all removed by a run that leaves nothing
    writable_dir(args.out_dir, "choose another --out_dir", named=True)
    for name in ("train.bin", "val.bin", "meta.json", "progress.json"):  # else taken for no file: a traceback later
        if why := dangling(os.path.join(args.out_dir, name)):
            raise SystemExit(why)
    # two runs appending to the same bins would interleave their tokens
    with hold_lock(args.out_dir, f"error: {args.out_dir} is being written by another prepare_slimpajama.py run; wait "
                                 f"for it to end or use another --out_dir"):
        try:
            return write_dataset(args, settings, tok, shards, fetch, source, log, older, new_dir=made, typed=typed)
        except BaseException:  # under the lock: a run refused by it never removes the folder another is filling
            remove_levels(args.out_dir, made)  # refused or stopped before writing: no folder left
            raise


def remove_levels(folder, levels):
    """Removes folder and its parents, up to levels of them, while each is empty (a file put there since stays)."""
    # the steps missing_dirs counted (n/../m: m and n); rmdir alone: listing them needs a file, none left at the
    # open-file limit (ulimit -n)
    remove_empty([norm for _, norm in itertools.islice(dir_steps(folder), levels)])


def finished(out_dir, tok, log):
    """meta.json of out_dir, which start_state found holds this dataset, once its bins are checked against it."""
    meta = read_json(os.path.join(out_dir, "meta.json"), is_meta)
    check_bins(out_dir, meta, tok)
    log(f"{os.path.join(out_dir, 'meta.json')} already holds this dataset; nothing to do")
    return meta


def write_dataset(args, settings, tok, shards, fetch, source, log, older=(), new_dir=False, typed=()):
    """The bins and meta.json of args.out_dir, resumed from its progress.json when a run was cut short. new_dir:
    how many levels of out_dir (it, its parents) this call made, recorded with a fresh start (a resumed run that
    finds no text removes the folders it began)."""
    st = start_state(args.out_dir, settings, older, typed)
    meta_path, state_path = os.path.join(args.out_dir, "meta.json"), os.path.join(args.out_dir, "progress.json")
    # a kill in the middle of a write_json: its temporary file, left over (NAME.tmp: the one name before 46d06a2)
    remove_leftovers(args.out_dir, r"(progress|meta)\.json\.([a-z0-9_]{8}\.)?tmp")
    if st is None:
        if os.path.exists(state_path):  # a kill between writing meta.json and removing progress.json
            os.remove(state_path)
        return finished(args.out_dir, tok, log)
    # an input this user cannot read, named before progress.json and the bins begin out_dir: "could not read ...
    # rerun the same command to resume" left them, and other inputs given next were "changed since d was made"
    if source == "local files" and (unread := next(((f, why) for f, _ in shards if (why := unreadable(f))), None)):
        cannot_read(*unread)
    # JSON documents in a .txt, a compressed file: no bad input to skip (--skip_bad or not), but a file to rename
    for f, _ in shards if source == "local files" else ():
        if not f.endswith(".zst") and (why := compressed(f)):
            sys.exit(f"error: {f} is {why}")
        # plain JSON Lines under a .zst name was "corrupt zstd data after line 0", which no repair of the file fixes
        if f.endswith(".jsonl.zst") and head(f).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
            sys.exit(f"error: {f} is not zstd-compressed: it is plain JSON Lines; rename it, e.g. "
                     f"mv {shell_arg(f)} {shell_arg(free_name(f.removesuffix('.jsonl.zst')))}")
        if f.endswith(".txt") and json_documents(f):
            sys.exit(f"error: {f}: its lines are JSON documents ({{\"text\": ...}}), as a .jsonl holds them, and a "
                     f".txt is read as one plain text, JSON syntax and all; rename it to .jsonl, e.g. "
                     f"mv {shell_arg(f)} {shell_arg(free_name(f[:-4]))}")
    # a binary .txt refused here, before out_dir begins: nothing in it is text to resume from (--skip_bad skips it)
    for f, _ in shards if source == "local files" and not args.skip_bad else ():
        if f.endswith(".txt") and (why := not_text(head(f))):
            if half := nul_half(head(f)):  # Python's encoding='utf-16-le': named with its command, as in a .jsonl
                sys.exit(f"error: {f}: not UTF-8; it is UTF-16 without a byte-order mark (every other byte NUL): "
                         f"{write_beside(f, None, f'convert it, e.g. iconv -f {half} -t UTF-8')}; or rerun with "
                         f"--skip_bad to skip and count such input")
            sys.exit(f"error: {f}: {why}; give it as UTF-8 text, or rerun with --skip_bad to skip and count such "
                     f"input")
        # UTF-16 with its byte order mark (Notepad's "Unicode", PowerShell 5's >): named before out_dir begins too,
        # not after the files before it (the advice to delete out_dir, to start over from the converted file)
        if not f.endswith(".zst") and (hint := utf16(head(f), whole=False)):
            sys.exit(f"error: {f} is not UTF-8{write_beside(f, None, hint)}; or rerun with --skip_bad to skip and "
                     f"count such input")
    if st["next"] != [0, 0]:
        log(f"resuming at shard {st['next'][0]}/{len(shards)}, {st['tokens']['train']:,} train and "
            f"{st['tokens']['val']:,} val tokens committed")
    target = {"train": args.train_tokens, "val": args.val_tokens}
    full = {s for s in target if st["tokens"][s] >= target[s]}
    if not os.path.exists(state_path):
        st["made_dir"] = new_dir
        write_json(state_path, st)  # before the bins exist: a kill from here on leaves a run to resume
    files = open_bins(args.out_dir, st)

    def commit():
        for f in files.values():
            f.flush()
            os.fsync(f.fileno())
        write_json(state_path, st)

    need, free = 2 * sum(max(target[s] - st["tokens"][s], 0) for s in target), shutil.disk_usage(args.out_dir).free
    if not args.input and need > free:  # local inputs usually end long before the default targets
        log(f"warning: the token targets need up to {need / 1e9:.1f} GB; {args.out_dir} has {free / 1e9:.1f} GB free")
    pool = ThreadPoolExecutor(args.threads)
    # batches of 16 encoding tasks: queue enough of them to keep every thread busy
    q, stop = queue.Queue(maxsize=4 + args.threads // 8), threading.Event()
    reader = threading.Thread(target=read_batches,
                              args=(shards, fetch, tuple(st["next"]), args, tok, pool, q, full, stop,
                                    "val_by" not in st, "val_split" not in st), daemon=True)
    made, chars = 0, 0
    t0 = last_commit = last_print = time.time()
    reader.start()
    try:
        while full != set(target) and (b := q.get()) is not None:
            if isinstance(b, BaseException):
                commit()
                raise b
            for (i, s), (a, nul) in zip(b.docs, (r for f in b.futures for r in f.result())):
                if s in full:
                    continue  # this split reached its target: later documents of it are dropped
                files[s].write(a)
                st["tokens"][s] += len(a)
                made += len(a)
                st["documents"][s] += 1
                st["nul_bytes_dropped"] += nul
                if st["shards"][s][-1:] != [shards[i][0]]:
                    st["shards"][s].append(shards[i][0])
                if st["tokens"][s] >= target[s]:
                    full.add(s)
            st["skipped"] += b.skipped
            st["skipped_shards"] += b.bad_shards
            st["next"] = list(b.end)
            chars += b.chars
            if time.time() - last_commit >= args.commit_seconds:
                commit()
                last_commit = time.time()
            if time.time() - last_print >= PRINT_SECONDS:
                log(progress(st, shards, target, made, chars, time.time() - t0, bool(args.input)))
                last_print = time.time()
    except (BadInput, Unreadable) as e:
        sys.exit(f"error: {e}")
    except OSError as e:  # e.g. the disk filled up: the last commit is intact, so the same command resumes
        if isinstance(e, BrokenPipeError):  # the progress line's reader went away (`| head`), never a bin's write
            raise
        fix = space_fix(e) if e.errno == errno.EFBIG else "free space or fix the folder"
        sys.exit(f"error: writing {args.out_dir} failed ({e.strerror}); {fix}, then rerun the same command to resume "
                 f"from the last commit")
    finally:
        stop.set()
        pool.shutdown(cancel_futures=True)
        reader.join()
    commit()
    log(progress(st, shards, target, made, chars, time.time() - t0, bool(args.input)))
    for f in files.values():
        f.close()
    # each document is at least its separator, so no more tokens than documents is no text (NUL bytes only, say):
    # train.py cannot open such a dataset, so leave none behind that looks made (--val_fraction=0 asks for no val)
    empty = [s for s in target if target[s] and st["tokens"][s] <= st["documents"][s]
             and (s == "train" or args.val_fraction != 0)]
    if empty:
        for name in ("train.bin", "val.bin", "progress.json"):
            os.remove(os.path.join(args.out_dir, name))
        # a run refused on a Latin-1 file left its folder to resume; its advised --skip_bad rerun found no text
        # and left that folder empty (one this call made, prepare() removes)
        if not new_dir and type(levels := st.get("made_dir")) is int:  # none recorded (older runs): kept
            remove_levels(args.out_dir, levels)
    if "train" in empty:
        read = f"{shards[0][0]} read" if len(shards) == 1 else f"{len(shards)} files read"  # the one file: named
        sys.exit(f"error: the input holds no text for train.bin ({read}, {st['skipped']} bad line(s) and "
                 f"{len(st['skipped_shards'])} bad file(s) skipped); give files that hold documents")
    if empty:
        why = (f"--val_fraction {args.val_fraction} splits off nothing: a .txt file at the first line start past "
               f"that mark, a .jsonl file one document in every {1 / args.val_fraction:g}" if args.val_fraction
               else "the validation input holds none")
        sys.exit(f"error: the input holds no text for val.bin ({why}); give more text or lines, or validation "
                 f"files with --val_input")
    meta = {"tokenizer": tok.name, "vocab_size": tok.vocab_size, "eot_token": tok.eot, "dtype": "uint16",
            "separator": tok.separator, "source": source,
            **{f"{s}_{k}": st[k][s] for s in ("train", "val") for k in ("tokens", "documents", "shards")},
            # read back from the bins as written: open_data checks them against the vocabulary with it
            **{f"{s}_max_token": largest_token(os.path.join(args.out_dir, f"{s}.bin")) for s in ("train", "val")},
            "val_fraction": args.val_fraction, "skipped": st["skipped"], "skipped_shards": st["skipped_shards"],
            "settings": settings}
    if tok.name == "bytes":
        meta["nul_bytes_dropped"] = st["nul_bytes_dropped"]
    if source == "local files":
        meta["inputs_sha256"] = contents_sha256(shards)
    write_json(meta_path, meta)
    os.remove(state_path)
    # --skip_bad's count said only in meta.json: a whole file of another field name was skipped line by line, exit 0
    skipped = f"; skipped {meta['skipped']:,} bad line(s) and {len(meta['skipped_shards'])} bad file(s) (meta.json: " \
              f"skipped, skipped_shards)" if meta["skipped"] or meta["skipped_shards"] else ""
    docs = {k: f"{meta[k]:,} document{'' if meta[k] == 1 else 's'}" for k in ("train_documents", "val_documents")}
    log(f"wrote {args.out_dir}: {meta['train_tokens']:,} train tokens ({docs['train_documents']}), "
        f"{meta['val_tokens']:,} val tokens ({docs['val_documents']}){skipped}")
    # a split ends at a document boundary, and a .txt file is one document: --train_tokens=100_000 on a 1 MB text
    # wrote all of it, exit 0 with the number asked for read by nothing
    for s in target:
        if meta[f"{s}_tokens"] >= 2 * target[s] > 0:
            log(f"note: {s}.bin holds {meta[f'{s}_tokens']:,} tokens, past --{s}_tokens={target[s]:,}: a split ends "
                f"at a document boundary and its last document ran past (a .txt file is one document); for fewer "
                f"tokens, give a shorter text")
    return meta


def benchmark(args, repeats=3):
    """End-to-end tokens/s of prepare() on the local inputs against the tokenizer alone on the same text in memory,
    best of `repeats` each. Both also per CPU second (all threads): the cost of the work, which other jobs on a
    shared machine do not change the way they change the wall clock."""
    tok = Tokenizer(args.tokenizer)
    # val_fraction 0, as the timed prepare() below: a .txt file is one document there, and was cut in two here
    # ("2 documents" for one file, the tokenizer alone timed on other pieces of text)
    texts = [t for name, split in local_shards(args)[0] for _, _, t in documents(name, split, 0, 0)
             if isinstance(t, str)]
    raw, e2e = [0.0, 0.0], [0.0, 0.0]  # tokens per wall second, per CPU second
    for _ in range(repeats):
        t0, c0 = time.time(), time.process_time()
        n = tok.raw(texts, args.threads)
        raw = [max(raw[0], n / (time.time() - t0)), max(raw[1], n / (time.process_time() - c0))]
        with tempfile.TemporaryDirectory() as tmp:
            t0, c0 = time.time(), time.process_time()
            # the throughput of every document, whatever the split: a text too small to hold out a validation
            # document was refused, the benchmark lost with advice on --val_input (no validation split is asked)
            split = {"val_fraction": 0} if args.val_fraction else {}
            # every document, as the reference: the default limits (10B, and 10M of a --val_input) would stop it
            every = {"train_tokens": 1 << 62, "val_tokens": 1 << 62}
            meta = prepare(argparse.Namespace(**{**vars(args), "out_dir": tmp, **split, **every}), log=lambda s: None)
            dt, dc = time.time() - t0, time.process_time() - c0
        # the separators are not text: count the same tokens as the reference
        n = meta["train_tokens"] + meta["val_tokens"] - meta["train_documents"] - meta["val_documents"]
        e2e = [max(e2e[0], n / dt), max(e2e[1], n / dc)]
    print(f"{len(texts):,} documents, {sum(map(len, texts)) / 1e6:.1f} M characters, {args.threads} threads, "
          f"best of {repeats}")
    print(f"tokenizer alone ({args.tokenizer}, text in memory): {raw[0] / 1e6:.2f} M tokens/s, "
          f"{raw[1] / 1e6:.2f} M tokens per CPU second")
    print(f"end to end (read, decompress, parse, encode, write): {e2e[0] / 1e6:.2f} M tokens/s "
          f"({e2e[0] / raw[0]:.2f}x), {e2e[1] / 1e6:.2f} M tokens per CPU second ({e2e[1] / raw[1]:.2f}x)")


def main(argv=None):
    args = parse_args(argv)
    guard_assets(args.out_dir, False, None)  # data never goes among the tracked results (a link or ../ too)
    if args.benchmark:
        benchmark(args)
    else:
        prepare(args)


if __name__ == "__main__":
    cli(main, "what was committed stays: run the same command to resume.")
