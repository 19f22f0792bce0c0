"""
Sample text from a trained model with the KV cache, and show what the cache costs: after each sample, the bytes
its buffers really hold (next to the same model with V tied or untied) and the decode speed.
$ python sample.py --out_dir=out-cpu-tiny --start="ROMEO:" --num_samples=3 --max_new_tokens=100
GPT-2 from the hub, converted to Q-K=V first (lstsq fits on the calibration text; see convert.convert_state_dict):
$ python sample.py --init_from=gpt2 --proj=qk_v --convert_method=lstsq --calib=FILE:input.txt --start="Hello,"
A checkpoint of ours converts without --calib: lstsq fits on the validation tokens of the data it was trained on
(its data_dir), when they are still there. Untying (qk_v -> qkv) is exact and fits nothing.
The tokenizer is the one the checkpoint's data used (meta.json): r50k_base (GPT-2 BPE) or bytes; GPT-2's is
r50k_base. For both, "<|endoftext|>" in the prompt and in the output is the document separator (eot_token).
--compile=True runs the one-token decode steps through torch.compile (generate(compile=True)).
"""
import argparse
import numbers
import os
import shlex
import sys
import time
from contextlib import nullcontext
from dataclasses import replace

if getattr(sys.flags, "safe_path", False):  # PYTHONSAFEPATH=1 or -P leaves this folder off sys.path: the next
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # import was a ModuleNotFoundError traceback
from configurator import quiet_start  # standard library only

if __name__ == "__main__":  # a Ctrl-C (SIGTERM, SIGHUP) while torch imports: one line, not its traceback
    quiet_start()

import torch

from checkpoint import (dangling, eight_bit, free_name, iconv_command, jq_command, json_lines, load_checkpoint,
                        not_its_data, other_data, r50k, read_json, saved_path, to_open, token_count, tokens, unfinished,
                        unreadable, utf16)
from configurator import Parser, boolean, cli, compile_failure, home, missing_device, number, shell_vars
from convert import (GPT2_SIZES, HEAD_SHARING, TIE_METHODS, check_conversion, conversion_note, convert_state_dict,
                     exact_fit, gpt2_config, load_gpt2, ties_v)
from model import GPT, SOURCES, GPTConfig, cache_length

EOT = "<|endoftext|>"
CALIB_TOKENS = 8192  # --calib_tokens by default: a few blocks of the usual contexts
GPT2_META = {"tokenizer": "r50k_base", "vocab_size": 50257, "eot_token": 50256}
V_TWIN = {"qkv": "qk_v", "qk_v": "qkv", "q_kv": "q_k_v", "q_k_v": "q_kv"}  # the same projections with V = K toggled
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Below this temperature sampling is greedy in all but name (a logit gap of 0.1 weighs e^10 to 1), and logits /
# temperature can overflow (float16's 65504 is passed at 1e-3 by a logit of 66; GPT-2's logits reach -100 and below;
# 1e-45 overflows float32): such temperatures decode greedily.
MIN_TEMPERATURE = 0.01


def prompt(s):
    # bytes that are not UTF-8 on the command line reach Python as lone surrogates, which no tokenizer encodes (a
    # FILE: path may hold them: it only names a file); outside UTF-8 mode (PYTHONUTF8=0 LC_ALL=C) UTF-8 text
    # reaches it so too, decoded as ASCII: its own bytes are the text
    try:
        s.startswith("FILE:") or s.encode("utf-8")
    except UnicodeEncodeError:
        try:
            s = os.fsencode(s).decode("utf-8")
        except UnicodeError:
            raise argparse.ArgumentTypeError('holds bytes that are not UTF-8 text; give UTF-8 text, or "FILE:path" '
                                             'to read it from a file') from None
    if os.path.isfile(s):  # meant as the file: taken as text, lstsq fitted on the path's own 30-odd bytes, exit 0
        raise argparse.ArgumentTypeError(f'names a file, and without "FILE:" the value is the text itself; write '
                                         f'"FILE:{s}" to read the file')
    # "file:prompt.txt" (or File:) was the prompt itself, exit 0: only "FILE:" reads a file, and here one is named
    if s[:5].upper() == "FILE:" and not s.startswith("FILE:") and os.path.isfile(s[5:]):
        raise argparse.ArgumentTypeError(f'begins with "{s[:5]}", and only "FILE:" (upper case) reads a file: the '
                                         f'value is the text itself; write "FILE:{s[5:]}" to read the file')
    return s


def text(s):
    if not s:
        raise argparse.ArgumentTypeError('is empty; give the text, or "FILE:path" to read it from a file')
    return prompt(s)


def init_source(s):
    """--init_from's value; a run's folder or ckpt.pt there (train.py's --init_from=<checkpoint>) was argparse's
    "invalid choice" alone: a checkpoint is read from --out_dir."""
    if s not in ("resume", *GPT2_SIZES) and os.path.exists(home(s)):
        # a checkpoint under another name (model.pt) is loaded by its path: its folder would be read for ckpt.pt
        own = os.path.isfile(home(s)) and s.endswith((".pt", ".pth")) and os.path.basename(s) != "ckpt.pt"
        folder = s if own else os.path.dirname(s) if os.path.isfile(home(s)) else s
        raise argparse.ArgumentTypeError(f"is resume (the default: out_dir's checkpoint) or a GPT-2 size; to load "
                                         f"{s}, write --out_dir={shlex.quote(folder or '.')}")
    return s


def add_model_args(p):
    """Where the model comes from, and the conversion applied first: shared by sample.py and eval.py."""
    p.add_argument("--init_from", type=init_source, default="resume", choices=["resume", *GPT2_SIZES],
                   help="resume: out_dir's checkpoint; gpt2...: the Hugging Face hub's weights")
    p.add_argument("--proj", default=None, choices=list(SOURCES), help="convert the weights to this variant first")
    p.add_argument("--n_kv_head", type=number(int, ">= 0"), default=None,
                   help="convert to this many key/value heads (GQA/MQA; 0 = n_head), a divisor of n_head; None: keep")
    p.add_argument("--convert_method", default=None, choices=TIE_METHODS,
                   help="how V is tied to K, with --proj; None: lstsq (untying is exact whatever the method)")
    p.add_argument("--calib", type=text, default=None,
                   help='text that lstsq and split fit on, or "FILE:path"; None: the checkpoint\'s own validation '
                        'tokens when its data_dir still holds them')
    p.add_argument("--calib_tokens", type=number(int, ">= 1"), default=None,
                   help=f"calibration tokens, at least one block (block_size); None: {CALIB_TOKENS}")


# other tools' names for the model to load, whose nearest spellings here are unrelated (or none)
CHECKPOINT_HINTS = dict.fromkeys(("checkpoint", "ckpt", "ckpt_path", "model", "model_args"), "--out_dir names the "
                                 "folder that holds ckpt.pt (--init_from=gpt2... loads the hub's weights instead)")
# the paper's words for what a conversion on load does, which no option here spells: argparse said nothing more
CONVERT_HINTS = {**dict.fromkeys(HEAD_SHARING, "head sharing is "
                                 "--n_kv_head (g for GQA-g, 1 for MQA), converted on load"),
                 **dict.fromkeys(("tie_kv", "share_kv", "tied_kv", "shared_kv"), "tying V to K is --proj=qk_v, "
                                 "converted on load (--convert_method says how)")}

# the context length under other tools' names, which eval.py pointed at its nearest spellings (--block_size at
# --batch_size, --context_length at --convert_method): the model's block_size, which no command can change
CONTEXT_HINTS = dict.fromkeys(("block_size", "context_length", "context_len", "max_length", "max_seq_len", "seq_len",
                               "n_ctx", "ctx_len"), "the context is the checkpoint's block_size, fixed by its training")


# other tools' sampling and output options, whose nearest spellings here do something else (--top_p: --top_k,
# --greedy: --seed), or that argparse took as the start of one (--out=samples.txt: --out_dir)
SAMPLING_HINTS = {**dict.fromkeys(("top_p", "nucleus"), "there is no nucleus (top-p) sampling here: --top_k keeps "
                                  "the k likeliest tokens"),
                  **dict.fromkeys(("greedy", "do_sample"), "--temperature=0 decodes greedily"),
                  **dict.fromkeys(("out", "output", "output_file"), "the samples go to the standard output: redirect "
                                  "them (> samples.txt); --out_dir is the folder of ckpt.pt")}


def get_parser():
    p = Parser(description="Sample from out_dir/ckpt.pt with the KV cache.",
               formatter_class=argparse.ArgumentDefaultsHelpFormatter, hints={
                   "prompt": "the prompt is --start (the text, or FILE:path)", **CHECKPOINT_HINTS, **CONVERT_HINTS,
                   **SAMPLING_HINTS,
                   **{k: f"{v}; --max_new_tokens is a sample's length" for k, v in CONTEXT_HINTS.items()}})
    p.add_argument("--out_dir", default="out", help="directory holding ckpt.pt")
    p.add_argument("--start", type=prompt, default="\n", help='prompt text, or "FILE:path" to read it from a file; '
                   'an empty prompt starts a new document (default: %(default)r)')
    p.add_argument("--num_samples", type=number(int, ">= 1"), default=3, help="samples drawn, one after another")
    p.add_argument("--max_new_tokens", type=number(int, ">= 1"), default=None,
                   help="None: fill the model's context (block_size - prompt + 1: the last token is never fed back)")
    p.add_argument("--temperature", type=number(float, ">= 0"), default=0.8,
                   help=f"0 is greedy, and so is anything below {MIN_TEMPERATURE}")
    p.add_argument("--top_k", type=number(int, ">= 1"), default=200, help="sample among the k likeliest tokens")
    p.add_argument("--seed", type=number(int, "[0, 4294967295]"), default=1337, help="torch.manual_seed")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", choices=DTYPES, default=None, help="None: bfloat16 on CUDA, float32 on CPU")
    p.add_argument("--use_cache", type=boolean, default=True, help="False: every step runs the whole context again")
    add_model_args(p)
    p.add_argument("--compile", type=boolean, default=False,
                   help="torch.compile the one-token decode step (the first sample then includes compiling)")
    return p


def check_device(p, name):
    """parser.error unless name is a device this machine has."""
    try:
        device = torch.device(name)
    except RuntimeError:
        p.error(f"--device must be cpu, cuda, cuda:N or mps; got {name!r}.")
    if device.type not in ("cpu", "cuda", "mps"):
        p.error(f"--device must be cpu, cuda, cuda:N or mps; got {name!r}.")
    if why := missing_device(name, "use --device=cpu"):
        p.error(f"--device={name}, but {why}.")


# options a mode of sample.py reads nothing of (configurator.Parser.unread)
UNREAD = [("out_dir", lambda a: a.init_from != "resume", "--init_from=gpt2... loads the hub's weights, not "
           "out_dir's checkpoint; drop --out_dir, or drop --init_from to sample the checkpoint")]


def parse_args(argv=None):
    p = get_parser()
    args = p.parse_args(argv)
    p.unread(args, UNREAD)
    check_device(p, args.device)
    check_conversion_args(p, args)
    return args


def check_conversion_args(p, args):
    """How to convert means nothing without a conversion: refused, not ignored; then the defaults filled in."""
    given = [f"--{k}" for k in ("convert_method", "calib", "calib_tokens") if getattr(args, k) is not None]
    args.how_given = given  # load_model says which of them a conversion did not use
    if args.proj is None and args.n_kv_head is None:
        if given:
            one = len(given) == 1
            p.error(f"{' and '.join(given)} {'says' if one else 'say'} how weights are converted, and nothing is "
                    f"converted without --proj or --n_kv_head; add one of those, or drop {'it' if one else 'them'}.")
    args.convert_method = args.convert_method or "lstsq"
    args.calib_tokens = args.calib_tokens or CALIB_TOKENS


JSONL = (".jsonl", ".jsonl.zst")  # prepare's document files: JSON, one document a line


def read_text(arg, flag, what="text"):
    """arg, or the text of the file FILE:<path> names; what: the one plain text flag takes ("text", "prompt"), for
    the refusal of prepare's JSON documents, whose syntax was fitted on or prompted with, {"text": ... and all."""
    def documents(by_name, path):
        command, new = jq_command(path)
        return (f"{flag}={arg}: this file holds JSON documents, one a line (prepare's .jsonl), and {flag} is one plain "
                f"{what}; write their text to a .txt file ({command}) and give {flag}=FILE:{new}.")
    return read_text_file(arg[5:], f"{flag}={arg}", "give the text or FILE:<a text file>", documents) \
        if arg.startswith("FILE:") else arg


def utf16_without_bom(text):
    """'UTF-16LE' or 'UTF-16BE' where text (a file read as UTF-8) is ASCII text saved as UTF-16 without its byte
    order mark, a NUL beside each character, else ''. A byte-level token file reads so too, but ends with its
    separator, byte 0 as a whole NUL unit (the whole text is looked at for it)."""
    if not text or len(text) % 2:  # whole 2-byte units only
        return ""
    for codec, nul, chars in (("UTF-16LE", text[1::2], text[0::2]), ("UTF-16BE", text[0::2], text[1::2])):
        if set(nul) == {"\0"} and "\0" not in chars and any(c.isspace() for c in chars[:4096]):
            return codec
    return ""


def no_bom(data):
    """The hint for bytes not UTF-8 that are UTF-16 without its mark, else '': a text of ASCII so saved was named,
    one with an accent (café: E9 00) was 'invalid continuation byte' alone."""
    half = utf16_without_bom(data.decode("latin-1"))  # each byte one character: the NUL halves are looked at
    return f"; it is UTF-16 without a byte-order mark (every other byte NUL): convert it, e.g. iconv -f {half} " \
        f"-t UTF-8" if half else ""


def converted(path, hint):
    """hint's iconv command with the file it reads and a new one it writes, as prepare's: "iconv -f X -t UTF-8"
    named neither, and `iconv ... f > f` empties f."""
    stem, ext = os.path.splitext(path)
    new = free_name(stem, ext or ".txt")
    return iconv_command(hint, path, new, f", and give {new} in its place")


def read_text_file(path, given, fix, documents=None):
    """The text of the file at path (given: the flag and value that named it, for the message; fix: what to give
    instead of a file that holds no text). documents(by_name, path): the refusal of prepare's JSON documents, one a
    line, where one plain text is asked for (eval's --text, --calib): a .jsonl by its name (by_name), or their lines
    saved under another; read as text, their JSON syntax was scored or fitted on with the documents, exit 0."""
    # FILE:~/x or FILE:$HOME/x (quoted, as a prompt is): no shell expands that ~ or $, and the file was not found
    asked, path = path, shell_vars("text", home(path), given.partition("=")[0])
    if path != asked:  # "FILE:$SCR/x: No such file", where $SCR/x did not say which file was looked for
        given = f"{given} ({path})"
    if documents and os.path.realpath(path).lower().endswith(JSONL):  # by its name: a .jsonl.zst is not read
        raise SystemExit(documents(True, path))
    if why := dangling(path):  # "No such file or directory", where ls shows it
        raise SystemExit(f"{given}: {why}")
    real = os.path.realpath(path)  # a link named calib.txt may lead there too
    if real.endswith(".bin") and os.path.isfile(os.path.join(os.path.dirname(real), "meta.json")):
        # prepare's uint16 token ids: a byte-level bin decodes as UTF-8, a NUL (the separator) after every byte
        raise SystemExit(f"{given}: {os.path.basename(real)} holds the token ids prepare_slimpajama.py wrote (its "
                         f"meta.json is beside it), not text; give the text file it was prepared from.")
    try:  # newline="": the file's own bytes, "\r\n" kept as train.py's data keeps it (prepare reads bytes)
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:  # missing, a folder, unreadable, or not text
        why = e.reason + converted(path, utf16(e.object) or no_bom(e.object) or eight_bit(e.object, e.start)) \
            if isinstance(e, UnicodeDecodeError) else e.strerror
        if isinstance(e, FileNotFoundError) and path.strip() != path and os.path.isfile(path.strip()):
            # "FILE: prompt.txt" looked for " prompt.txt": the space was no part of the name, and unseen in the message
            fix = f"the path has a space before or after it; write {given.partition('=')[0]}=FILE:{path.strip()}"
        raise SystemExit(f"{given}: cannot read it as UTF-8 text ({why}); {fix}.")
    if "\0" in text:  # a byte-level token file copied or renamed (a NUL after every byte) decodes as UTF-8 too,
        # and the bytes tokenizer reads a NUL as the document separator (prepare drops them): no text holds one
        if half := utf16_without_bom(text):  # told "a file of token ids" of a text saved as UTF-16
            raise SystemExit(f"{given}: it is UTF-16 without a byte-order mark (every other byte NUL), not UTF-8; "
                             f"{converted(path, f'convert it, e.g. iconv -f {half} -t UTF-8')}.")
        raise SystemExit(f"{given}: holds NUL bytes, as a file of token ids (prepare_slimpajama.py's .bin, copied "
                         f"or renamed) does, not text; {fix}.")
    if documents and json_lines(text):  # the same documents saved as docs.txt or docs.json
        raise SystemExit(documents(False, path))
    # a UTF-8 byte order mark (Notepad's "UTF-8 with BOM") marks the file, it is not text: it began the prompt (or
    # the text scored, the calibration) with 3 byte tokens prepare drops from the training data
    return text.removeprefix("\ufeff")


def own_val_tokens(data_dir, meta, n, vocab_size):
    """The first n validation tokens of the data a checkpoint was trained on (its config's data_dir), or None when
    that directory no longer holds them: gone, of another tokenizer, or damaged (no whole uint16 token, ids past the
    model's vocabulary). -> (ids, how the data there now differs from the checkpoint's: checkpoint.other_data)."""
    if not data_dir or not all(os.path.isfile(os.path.join(data_dir, f)) for f in ("val.bin", "meta.json")):
        return None
    try:
        theirs = read_json(os.path.join(data_dir, "meta.json"), "")
    except SystemExit:
        return None
    if any(theirs.get(k) != meta.get(k) for k in ("tokenizer", "vocab_size")):
        return None
    size, recorded = os.path.getsize(os.path.join(data_dir, "val.bin")), theirs.get("val_tokens")
    if size == 0 or size % 2:  # empty, or cut inside a token: the memmap refuses both
        return None
    if isinstance(recorded, int) and size != 2 * recorded:  # another val.bin copied in beside this meta.json (as
        return None  # open_data refuses it): its tokens were called "the checkpoint's own"
    ids = tokens(data_dir, "val")[:n]
    return (ids.tolist(), other_data(meta, theirs)) if int(ids.max()) < vocab_size else None


def longer_calib(calib):
    """The advice for a --calib text too short: --calib is the text itself, so a path given there (a data folder, a
    file) was read as its few characters and the user was told to give a longer text, not that it was no file."""
    if not calib.startswith("FILE:") and os.path.exists(calib):
        return (f"--calib is the text itself, and {calib!r} was read as those {len(calib)} characters, not the "
                f"{'folder' if os.path.isdir(calib) else 'file'} it names: give a text file as --calib=FILE:path")
    return "give a longer --calib text"


def calibration(args, cfg, meta, data_dir):
    """Token ids [B, block_size] that lstsq and split fit on: --calib's text, else the checkpoint's own validation
    tokens. -> (ids, where they come from)."""
    bs, n = cfg.block_size, args.calib_tokens
    if args.calib is not None:
        every = get_tokenizer(meta)[0](read_text(args.calib, "--calib", "text"))
        ids, where, held = every[:n], "--calib", len(every)
    else:
        own = own_val_tokens(data_dir, meta, n, cfg.vocab_size)
        if own is None:
            # a relative data_dir is the training's working folder's: from another folder it looks gone
            # (lexists: a file or a dangling link of that name here is no folder elsewhere, but damage here)
            moved = data_dir and not os.path.isabs(data_dir) and not os.path.lexists(data_dir)
            locked = data_dir and next((p for p in (os.path.join(data_dir, f) for f in ("meta.json", "val.bin"))
                                        if unreadable(p)), None)  # a folder not searchable: its files say so
            why = (f"{args.init_from} comes with no validation data" if args.init_from != "resume" else
                   f"{args.out_dir} names no data_dir" if not data_dir else
                   f"this user cannot read {locked} (make {to_open(locked)})" if locked else
                   f"its data_dir {data_dir!r} is a relative path, missing from this folder ({os.getcwd()})"
                   if moved else
                   f"its data_dir {data_dir!r} no longer holds the val.bin and meta.json it was trained on (gone, "
                   f"damaged, or another tokenizer's)")
            elsewhere = "run from the folder it was trained in, or " if moved and not locked else ""
            raise SystemExit(f"--convert_method={args.convert_method} fits V on calibration tokens and {why}; "
                             f"{elsewhere}pass --calib=FILE:path (or the text itself), or --convert_method=k.")
        # a relative data_dir read from another folder, or the same one prepared again since: the tokens there are
        # a calibration text as good as any, but not the checkpoint's own, as this line said
        ids, moved = own
        held = token_count(data_dir, "val")
        where = f"{os.path.join(data_dir, 'val.bin')} (" + (f"{not_its_data(moved)})" if moved else
                                                            "the checkpoint's own)")
    # held: the tokens the text (or val.bin) has, which --calib_tokens only cuts: raising it past them gave the same
    # tokens, and then "give a longer --calib text"
    if len(ids) < bs:
        fix = (f"raise --calib_tokens to {bs} or more" if n < bs <= held else longer_calib(args.calib)
               if args.calib else "pass a longer text as --calib=FILE:path, or --convert_method=k")
        raise SystemExit(f"calibration from {where} gives {len(ids)} tokens, fewer than one block (block_size {bs}); "
                         f"{fix}.")
    ids = ids[:len(ids) // bs * bs]
    if too_few := exact_fit(cfg, len(ids)):
        unknowns, why = too_few
        need = (unknowns // bs + 1) * bs
        fix = (f"raise --calib_tokens to {need} or more" if n < need <= held else longer_calib(args.calib) if args.calib
               else "pass a longer text as --calib=FILE:path, or --convert_method=k")
        raise SystemExit(f"calibration from {where} gives {len(ids)} tokens, and --convert_method="
                         f"{args.convert_method} {why}; {fix}.")
    return torch.tensor(ids).view(-1, bs), f"{len(ids)} tokens of {where}"


def load_model(args, device):
    """-> (model in eval mode on device, meta dict of its tokenizer): the checkpoint or GPT-2, converted to
    --proj / --n_kv_head when they are given. Every setting is checked before GPT-2 is downloaded or converted."""
    if args.init_from == "resume":
        ckpt = load_checkpoint(args.out_dir, ("model", "model_args", "meta"))
        cfg, state, meta = GPTConfig(**ckpt["model_args"]), ckpt["model"], ckpt["meta"]
        data_dir = saved_path(ckpt.get("config", {}).get("data_dir"))
        args.iter_num = ckpt.get("iter_num")  # eval.py records it: a live run's ckpt.pt moves on past its results
        args.unfinished = unfinished(args.out_dir, ckpt)  # a midway save: main and eval.py say so
    else:
        cfg, state, meta, data_dir = gpt2_config(args.init_from), None, GPT2_META, None
        args.unfinished = None
    same_heads = args.n_kv_head is None or (args.n_kv_head or cfg.n_head) == (cfg.n_kv_head or cfg.n_head)
    try:
        dst = replace(cfg, proj=args.proj or cfg.proj, n_kv_head=cfg.n_kv_head if same_heads else args.n_kv_head)
    except ValueError as e:  # e.g. n_kv_head must divide n_head
        raise SystemExit(f"cannot convert {args.out_dir if args.init_from == 'resume' else args.init_from}: {e}")
    if not dst.causal:  # trained seeing the future: its next-token guesses are meaningless, and cached decoding fails
        raise SystemExit(f"{args.out_dir} holds a bidirectional model (causal=False), which cannot generate or score "
                         f"text left to right; use a causal checkpoint.")
    if dst != cfg:
        ties = ties_v(cfg, dst)
        if not ties:  # untying and pooling use no method: none is reported (eval.py records it with its results)
            args.convert_method = None
        calib, source = (calibration(args, cfg, meta, data_dir) if ties and args.convert_method in ("lstsq", "split")
                         else (None, None))
        try:
            check_conversion(cfg, dst, args.convert_method, calib)
        except ValueError as e:
            raise SystemExit(str(e))
    if state is None:
        try:
            state = load_gpt2(args.init_from)[1]
        except ValueError as e:
            raise SystemExit(str(e))
    if dst != cfg:
        state, fits = convert_state_dict(state, cfg, dst, args.convert_method, calib)
        fitted = ties and args.convert_method in ("lstsq", "split")
        unused = [k for k in getattr(args, "how_given", ()) if k != "--convert_method" and not fitted
                  or k == "--convert_method" and not ties]  # read by nothing: say so, not ignore them
        # eval.py records the line: which calibration and how well it fitted, where two --calib texts (or the
        # checkpoint's own tokens and a --calib) gave results.json files that told their numbers apart by nothing
        args.conversion = conversion_note(cfg, dst, args.convert_method, fits, source) + (
            f" ({' and '.join(unused)} unused: "
            f"{f'{args.convert_method} fits nothing' if ties else 'V is not newly tied to K'})" if unused else "")
        print(args.conversion)
    elif args.proj or args.n_kv_head is not None:  # asked for, and already so: say it, so --calib unused is seen
        print(f"nothing to convert: {args.out_dir if args.init_from == 'resume' else args.init_from} is already "
              f"proj={cfg.proj}, n_kv_head={cfg.n_kv_head or cfg.n_head}")
    if dst == cfg:  # nothing converted, no method used (a conversion that ties nothing cleared it above)
        args.convert_method = None
    # eval.py records it: results of a conversion are not those of a model trained so
    args.converted_from = {k: getattr(cfg, k) for k in ("proj", "n_kv_head") if getattr(cfg, k) != getattr(dst, k)}
    model = GPT(dst)
    model.load_state_dict(state)
    return model.eval().to(device), meta


def beyond(decode, n):
    """decode, with ids at or above the tokenizer's n shown as U+FFFD: a vocab_size padded past it (50304 for r50k's
    50257) gives the model ids that are no token, and it may sample them."""
    def run(ids):
        ids = ids.tolist() if torch.is_tensor(ids) else list(ids)
        # a whole batch (y.tolist(), not y[0].tolist()) was a TypeError comparing a list with an int, a target's -1
        # (not scored) Python's "bytes must be in range(0, 256)"
        bad = [t for t in ids if not (isinstance(t, numbers.Integral) and not isinstance(t, bool) and t >= 0)]
        if bad:
            raise ValueError(f"decode takes one sequence of token ids >= 0, e.g. y[0].tolist(); got {bad[0]!r} in it.")
        ids = [int(t) for t in ids]  # numpy's too
        out, part = [], []
        for t in ids:
            if t < n:
                part.append(t)
            else:
                out += [decode(part), "\ufffd"]
                part = []
        return "".join(out + [decode(part)])
    return run


def text_in(encode):
    """encode, refusing what is not a str in one sentence: bytes were "a bytes-like object is required, not 'str'"
    (the bytes tokenizer) or tiktoken's TypeError."""
    def run(s):
        if not isinstance(s, str):
            fix = " (decode it first: .decode('utf-8'))" if isinstance(s, bytes) else ""
            raise ValueError(f"encode takes a str; got {type(s).__name__}{fix}.")
        return encode(s)
    return run


def get_tokenizer(meta, special=True):
    """-> (encode: str -> ids, decode: ids -> str), both mapping EOT to and from meta's eot_token; special=False:
    encode reads EOT as ordinary text, as prepare_slimpajama does inside a document."""
    name, eot = meta.get("tokenizer"), meta.get("eot_token")
    if name in ("r50k_base", "bytes") and eot is None:  # prompts and scoring start documents with it
        raise SystemExit(f"the checkpoint's meta names tokenizer {name!r} but no eot_token (its document separator): "
                         f"the file is damaged or not written by train.py; restore it or train again.")
    if name == "r50k_base":
        enc = r50k()
        allowed = {EOT} if special else set()
        return text_in(lambda s: enc.encode(s, allowed_special=allowed, disallowed_special=())), \
            beyond(enc.decode, enc.n_vocab)
    if name == "bytes":
        def encode(s):
            ids = []
            for i, part in enumerate(s.split(EOT) if special else [s]):
                ids += ([eot] if i else []) + list(part.encode("utf-8"))
            return ids

        def decode(ids):
            parts, cur = [], []
            for t in ids:
                if t == eot:
                    parts.append(cur)
                    cur = []
                else:
                    cur.append(t)
            return EOT.join(bytes(p).decode("utf-8", errors="replace") for p in parts + [cur])
        return text_in(encode), beyond(decode, 256)
    raise SystemExit(f"unknown tokenizer {name!r} in the checkpoint's meta; sample.py knows 'r50k_base' and 'bytes'.")


def fmt_bytes(n):
    if n < 1024:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}"


def fmt_rate(rate):
    """Tokens/s to print: whole numbers, but two significant digits below 10, so a slow sample (the first one under
    --compile=True includes compiling: 10 tokens in 30 s) reads 0.33, not 0 tokens/s."""
    return f"{rate:.0f}" if rate >= 9.5 else f"{rate:.2g}"


def cache_report(model, n_tokens, dtype):
    """The cache generate builds for this run (batch 1, prompt + new tokens, the dtype attention computes in),
    built again on the meta device so its exact nbytes cost no memory, next to its twin with V = K toggled."""
    cfg = model.config
    nbytes = model.new_cache(1, n_tokens, dtype, "meta").nbytes
    # half float32's bytes, said: bfloat16 is the default on CUDA, and the bytes read as README's float32 ones halved
    of = "" if dtype == torch.float32 else f" ({str(dtype).removeprefix('torch.')})"
    if cfg.attn == "linear":
        return f"recurrent state: {fmt_bytes(nbytes)}{of} allocated, fixed whatever the length (linear attention)"
    with torch.device("meta"):
        twin = GPT(replace(cfg, proj=V_TWIN[cfg.proj]))
    twin_bytes = twin.new_cache(1, n_tokens, dtype, "meta").nbytes
    head = f"kv cache: {fmt_bytes(nbytes)}{of} allocated for 1 x {n_tokens} tokens"
    if SOURCES[cfg.proj][1] == SOURCES[cfg.proj][2]:
        return f"{head} (K only, V = K); with separate K and V: {fmt_bytes(twin_bytes)}"
    return f"{head} (K and V); with V = K: {fmt_bytes(twin_bytes)}"


def new_tokens(args, n_prompt, bs):
    """The tokens each sample adds to a prompt of n_prompt tokens, refused where the cache cannot hold them."""
    if args.use_cache and n_prompt > bs:
        raise SystemExit(f"the prompt is {n_prompt} tokens, longer than the model's context (block_size {bs}); "
                         f"shorten --start, or pass --use_cache=False and --max_new_tokens=N to continue it from "
                         f"its last {bs} tokens (by default, with the context full, N is 1).")
    room = bs - n_prompt + 1  # new tokens that fill the context: the last one is never fed back
    n_new = max(room, 1) if args.max_new_tokens is None else args.max_new_tokens
    if args.use_cache and n_new > room:
        raise SystemExit(f"prompt ({n_prompt} tokens) + --max_new_tokens ({n_new}) - 1 exceeds the model's context "
                         f"(block_size {bs}); lower --max_new_tokens to {room} or pass --use_cache=False "
                         f"to crop the context.")
    return n_new


COMPILE_NEEDS = ("--compile=True compiles the cached one-token step: it needs --use_cache=True and a checkpoint "
                 "without pos_conv.")


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype or ("bfloat16" if device.type == "cuda" else "float32")]
    # both before the model: a mistyped FILE: prompt, or --compile without the cache, was found only after a
    # conversion, or GPT-2 downloaded (gpt2-xl: 6 GB)
    start = read_text(args.start, "--start", "prompt")
    if args.compile and not args.use_cache:
        raise SystemExit(COMPILE_NEEDS)
    if args.init_from != "resume":  # GPT-2's context and tokenizer are known before its download
        new_tokens(args, len(get_tokenizer(GPT2_META)[0](start)) or 1, gpt2_config(args.init_from).block_size)
    torch.manual_seed(args.seed)
    model, meta = load_model(args, device)
    if args.unfinished:
        print(f"{args.unfinished}, so these are that iteration's samples.", file=sys.stderr)
    # again: building the model drew its random init, as many numbers as its shape has, so an exact conversion
    # (untied, heads repeated) sampled other text than its checkpoint under one --seed
    torch.manual_seed(args.seed)
    encode, decode = get_tokenizer(meta)
    ids = encode(start) or [meta["eot_token"]]
    n_new = new_tokens(args, len(ids), model.config.block_size)
    if args.compile and model.config.pos_conv:
        raise SystemExit(COMPILE_NEEDS)
    # generate builds its cache in the autocast dtype, or the weights' dtype (float32) without autocast
    ctx = nullcontext() if dtype == torch.float32 else torch.autocast(device.type, dtype=dtype)
    temperature = args.temperature if args.temperature >= MIN_TEMPERATURE else 0
    report = cache_report(model, cache_length(len(ids), n_new), dtype) if args.use_cache else \
        "no kv cache (--use_cache=False): every step runs the whole context again"
    x = torch.tensor(ids, dtype=torch.long, device=device)[None, :]  # [1, T]
    with ctx:
        for _ in range(args.num_samples):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            try:
                y = model.generate(x, n_new, temperature=temperature, top_k=args.top_k, use_cache=args.use_cache,
                                   compile=args.compile)
            except Exception as e:
                if not (args.compile and (why := compile_failure(e))):
                    raise
                raise SystemExit(why) from None
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            print(decode(y[0].tolist()))
            print(f"{report} | {fmt_rate(n_new / dt)} tokens/s")
            print("---------------")


OOM = "pass --dtype=bfloat16 (half of float32's memory), or sample on a machine with more"  # cli's advice

if __name__ == "__main__":
    cli(main, "nothing was written.", oom=OOM)
