"""
Overrides train.py's settings, as nanoGPT's configurator does:

    python train.py config/qk_v_300m.py --batch_size=4 --compile=False

Positional arguments are config files, plain Python executed in order; each sees the values the files before it set
and `__file__` (its own path), so a run file can execute a base file beside it. Then every `--key=value`
overrides, wherever it stands (`--max_iters=6 config/x.py` trains 6 iterations). `--key=value` arguments are parsed
with ast.literal_eval, and a value that is no Python literal stays a string (--out_dir=out-x), as does any value of
a string setting (--out_dir=123). Unlike nanoGPT, an unknown key, a value of the wrong type or a config file that
does not run is an error: one line naming the key (or the file and line) and the fix, exit status 1. `--help`
lists every setting with its default.
"""

import argparse
import ast
import difflib
import errno
import itertools
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import traceback
import types
import unicodedata
import warnings

try:
    import resource  # Unix only
except ImportError:
    resource = None


REPO = os.path.dirname(os.path.abspath(__file__))  # where config/ is, whatever the current folder
STUDY_PID = "STUDY_PID"  # set by a study for the train.py it starts (child_env)


def closed_stream(path):
    """One sentence where path is a link to one of this process's file descriptors that is closed (/dev/stdin under
    `<&-`, /dev/fd/N), or into a loop of links, or None: told "a disk not mounted? restore what it points
    to, or remove the link", a user could remove /dev/stdin itself, or look for a target that is there."""
    try:
        os.stat(path)
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            # "leads back to itself" was false for a link to a loop (x -> loop1 -> loop2 -> loop1)
            return f"{path} is a link that leads into a loop of links (through {os.readlink(path)!r}), which reaches " \
                   f"no file; point it elsewhere, or give another path."
    try:
        fd = re.fullmatch(r"/proc/(?:self|\d+)/fd/(\d+)", os.readlink(path))
    except OSError:
        return None
    if fd is None:
        return None
    name = {"0": "standard input", "1": "standard output", "2": "standard error"}.get(fd[1], f"descriptor {fd[1]}")
    return f"{path} is this process's {name}, which is closed (as `<&-` leaves it); give the command that input, or " \
           f"a file."


def check(key, value, defaults, where, hints=None, unset=None):
    """The value to store for key, or SystemExit when the key is unknown or the type differs from the default's.
    hints: {unknown key: what it is instead}, for names a user brings from elsewhere (a launcher's options), whose
    nearest spellings would point at an unrelated setting. unset: {key: refusal} where a path whose $NAME cannot be
    expanded (not set) is kept as written, to be refused only if no later config file or --key=value replaces it."""
    if key not in defaults:
        if hints and key in hints:
            raise SystemExit(f"unknown config key {key!r} in {where}; {hints[key]}.")
        # only names that look alike: with any cutoff lower, --epochs was pointed at pos_emb, pos_conv and proj
        near = difflib.get_close_matches(key, defaults, n=3, cutoff=0.5)
        helper = "" if where.startswith("--") else " (a config file's own helper names start with _)"
        near = f"nearest valid keys: {', '.join(near)}" if near else \
            f"no setting has a name like it{'' if helper else ' (--help lists them)'}"
        raise SystemExit(f"unknown config key {key!r} in {where}; {near}{helper}.")
    want = type(defaults[key])
    if want is float and type(value) is int:  # --learning_rate=1 means 1.0
        return float(value) if abs(value) < 2**63 else value  # too large for a float: the range check says so
    if type(value) is not want:  # strict: True is no int, 1 is no bool
        # --max_iters=1,000: a thousands separator makes a tuple, (1, 0), which names no number the user meant
        typed = where.split("=", 1)[1] if where.startswith("--") and "=" in where else ""
        fix = f"; drop the thousands separator: {where.split('=')[0]}={typed.replace(',', '')}" \
            if want in (int, float) and re.fullmatch(r"\d{1,3}(,\d{3})+", typed) else ""
        # --max_iters=1e4, --total_tokens=10e9: Python reads a number with an exponent as a float, whole or not
        if want is int and type(value) is float and value.is_integer() and abs(value) < 2**63:
            fix = "; write it without the exponent or decimal point: " + \
                (f"--{key}={int(value)}" if where.startswith("--") else f"{key} = {int(value)}")
        raise SystemExit(f"{key} must be of type {want.__name__} (like {defaults[key]!r}); {where} gives "
                         f"{value!r} of type {type(value).__name__}{fix}.")
    # the argument itself only where it prints on one line: --out_dir=$'x\n' is named by its value's repr
    if error := blank_error(key, value, defaults[key], f" in {where}") or \
            control_error(key, value, f" in {where}" if where.isprintable() else "") or unnameable(key, value, where):
        raise SystemExit(error + ".")
    try:  # one set is expanded here, as a later config file reads it (data_dir = out_dir.replace(...))
        return shell_vars(key, home(value))
    except SystemExit as e:
        if unset is None:
            raise
        unset[key] = e
        return value


def unnameable(key, value, where):
    """One sentence (without its period) for a path setting this locale's file names cannot hold, else None: a
    config file is UTF-8 Python, so out_dir = "runs/日本" under a Latin-1 locale (or "runs/é" under LC_ALL=C with
    PYTHONUTF8=0) was a UnicodeEncodeError traceback at the first path call. The command line's own bytes always
    fit: only a config file's text can hold such a name."""
    if key not in PATHS or not isinstance(value, str):
        return None
    encoding = sys.getfilesystemencoding()
    try:
        value.encode(encoding, sys.getfilesystemencodeerrors())
        return None
    except UnicodeEncodeError as e:
        return (f"{key} {value!r} in {where} holds {value[e.start]!r}, which a file name cannot hold in this locale's "
                f"encoding ({encoding}); run it under a UTF-8 locale (LC_ALL=C.UTF-8) or give the path without it")


# the settings that name files and folders (train.py's and sample.py's keys, the commands' options): only their
# values can mean an environment variable; a prompt or a task name keeps its $
PATHS = {"out_dir", "data_dir", "init_from", "out", "input", "val_input", "text", "include_path", "cache", "root"}


def existing_part(path):
    """The longest leading part of path that exists: a folder named cost$5 or $old that is there is the user's, and
    so is a new run inside it (runs$old/x was "$old is not set")."""
    while path and not os.path.lexists(path):
        path = path.rpartition("/")[0]
    return path


def shell_vars(key, value, name=None):
    """A path setting's $NAME and ${NAME} as the shell gives them: '--out_dir=$SCRATCH/x' in single quotes, or
    out_dir = "$SCRATCH/x" in a config file, made a folder named $SCRATCH in the current one, exit 0 (and `rm -rf
    $SCRATCH` to clean it up removes the real one). One that is not set is refused (name: the option as typed,
    --out); the part of a path that exists as written (a folder named $x) is the user's, and so is a folder that
    exists once the set variables before it are expanded ($SCR/runs$old)."""
    if key not in PATHS or not isinstance(value, str) or "$" not in value:
        return value
    # only past the part that exists: runs$old/$SCR made a folder named $SCR in runs$old, exit 0
    head = done if "$" in (done := existing_part(value)) else ""
    whole, value = value, value[len(head):]
    if "$" not in value:
        return whole
    # the shell's other forms (${X:-default}, $(cmd)) are no variable's value alone: ./${X:-runs} was made, exit 0
    if other := re.search(r"\$\{(?![A-Za-z_]\w*\})[^}]*\}?|\$\(", value):
        raise SystemExit(f"{name or key} {whole!r} holds {other.group()!r}, the shell's syntax, which no shell "
                         f"expanded (quoted, or in a config file); write the path out.")
    # a name starts with a letter or _: $5 (cost$5, the shell's fifth argument) is no environment variable to set
    names = [n.strip("{}") for n in re.findall(r"\$([A-Za-z_]\w*|\{[A-Za-z_]\w*\})", value)]
    # one set but empty that starts the path made it the root's: out_dir = "$SCR/x" with SCR= trained into /x, exit 0
    if not head and (lead := re.match(r"\$\{?([A-Za-z_]\w*)\}?/", value)) and os.environ.get(lead.group(1)) == "":
        raise SystemExit(f"{name or key} {whole!r} starts with ${lead.group(1)}, which is set but empty, so the path "
                         f"would start at the root folder /; set it, or write the path out.")
    path = head + os.path.expandvars(value)
    # $SCR/runs$old/x: the unset $old is in a folder that exists once $SCR is expanded, as written; the one named is
    # past that folder ('$SCR/runs$old/$nope' said "$old is not set", and setting it named another folder)
    tail = path[len(existing_part(path)):]
    if unset := [n for n in names if n not in os.environ and re.search(rf"\$(\{{{n}\}}|{n}(?!\w))", tail)]:
        raise SystemExit(f"{name or key} {whole!r} names ${unset[0]}, which is not set in the environment (no shell "
                         f"expanded it: quoted, or in a config file); set it, or write the path out.")
    return path


def home(value):
    """A path given as ~/x is the home folder's x: the shell leaves the ~ of `--out_dir=~/x` as it is, and a folder
    named ~ was made in the current one (which `rm -rf ~` would then clean up with the whole home)."""
    return os.path.expanduser(value) if isinstance(value, str) and re.match(r"~[\w.-]*(/|$)", value) else value


def blank_error(name, value, default, where=""):
    """One sentence (without its period) for a text setting given as spaces, or given empty where its default is a
    name or path, else None: --out_dir= meant the current folder, or a makedirs('') error later; " " a folder named
    ' ' (also where the default is None: eval's --out=" " wrote its results there). Empty where the default is None
    is left to the option: the default, or analyze's --out='' for no figure."""
    if type(value) is str and not value.strip() and (default or value):
        # a required option's default is argparse's SUPPRESS: "leave it out" would be refused next
        fix = f", or leave it out for the default {default!r}" if isinstance(default, str) and default and \
            default != argparse.SUPPRESS else ", or leave it out" if default is None else ""
        return f"{name} is {'empty' if not value else f'only spaces ({value!r})'}{where}; give it a value{fix}"
    return None


DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"  # hyphen, en and em dash, minus, full-width...
QUOTES = "\u201c\u201d\u2018\u2019\u201e\u00ab\u00bb"  # curly double and single quotes, low quote, guillemets


def pasted_dash(arg):
    """One sentence (without its period) for an argument that starts with a typographic dash where '--' goes, as a
    formatted page (a document, a chat) renders `--max_iters=3`: —max_iters=3 was 'config file not found' or
    'unrecognized arguments'; else None."""
    if not arg or arg[0] not in DASHES:  # "" is in every string: an empty argument was an IndexError below
        return None
    return (f"argument {arg!r} starts with {arg[0]!r} (U+{ord(arg[0]):04X}), a typographic dash pasted from a "
            f"formatted page, not '--'; write --{arg.lstrip(DASHES + '-')}")


def blank_argument(arg):
    """One sentence (without its period) for an argument that is empty or blank, as a quoted shell variable that is
    unset gives ("$EXTRA"): argparse said "unrecognized arguments: " naming nothing, train.py "config file ''
    not found"; else None."""
    if arg.strip():
        return None
    what = "is empty (as a quoted shell variable that is unset or empty gives)" if not arg else \
        "is only blanks (as a quoted shell variable holding only blanks gives)"  # " " was called empty
    return f"argument {arg!r} {what}; leave it out"


def pasted_quotes(name, value):
    """One sentence (without its period) for a name or path given between typographic quotes, which the shell keeps
    (only ASCII quotes are removed): --out_dir=“out-x” trained into a folder named '“out-x”'; else None."""
    if not (isinstance(value, str) and value and (value[0] in QUOTES or value[-1] in QUOTES)):
        return None
    return (f"{name} is given between typographic quotes ({value!r}), which the shell keeps in the value; retype them "
            f"as ASCII quotes, or leave them out: {name}={value.strip(QUOTES)}")


def pasted_minus(text):
    """One phrase for a number whose minus (or exponent's) is a typographic dash, as a paper or page prints 6e−4:
    the message showed '6e−4 of type str', which reads like the 6e-4 the user meant; else None."""
    dash = next((c for c in text if c in DASHES), None)
    if dash is None:
        return None
    fixed = "".join("-" if c in DASHES else c for c in text)
    return f"holds {dash!r} (U+{ord(dash):04X}), a typographic minus pasted from a formatted page; write {fixed}"


def boolean(text):
    """An on/off setting's text, as every command takes it: True or False in any case, or 1 or 0 (an argparse type,
    and train.py's --key=value: --compile=true was refused there and taken by sample.py)."""
    if text.strip().lower() not in ("true", "false", "1", "0"):
        raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")
    return text.strip().lower() in ("true", "1")


def control_error(name, value, where=""):
    """One sentence (without its period) for a name or path holding a control character (a newline, a tab, an
    escape), else None: --out_dir=$'x\\n' trained into a folder whose name ends in an invisible newline."""
    if not isinstance(value, str):
        return None
    bad = next((c for c in as_typed(value) if unicodedata.category(c) == "Cc"), None)
    if bad is None:
        return None
    return (f"{name} holds the control character {bad!r}{where} ({value!r}), which no name or path means; give it "
            f"without {'newlines' if bad in chr(10) + chr(13) else 'control characters'}")


def as_typed(value):
    """value as the text its bytes spell in UTF-8, where this locale's encoding is another: a UTF-8 terminal's
    'runs/日本' reaches Python under a Latin-1 locale as 'runs/æ\x97¥æ\x9c¬', whose bytes 0x97 and 0x9c are C1
    control characters there, and a folder that exists was refused as holding the control character '\x97'."""
    encoding = sys.getfilesystemencoding()
    if encoding.replace("-", "").lower() == "utf8":
        return value
    try:
        return value.encode(encoding, "surrogateescape").decode("utf-8")
    except UnicodeError:  # not UTF-8 bytes: the locale's own text, as it reads
        return value


def literal(text, number):
    """--key=text as a Python literal, else a string; for a number setting nan and inf are floats, so that the
    range check refuses them with its rule instead of the type check, and an integer Python's syntax refuses but
    int() reads (03, full-width ３, Arabic-Indic ٣, as the argparse scripts take them) is the int, not "3.0 of type
    float"."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    for kind in (int, float) if number else ():
        try:
            return kind(text)
        except ValueError:
            pass
    return text


class Namespace(dict):
    """A config file's globals, recording the names it assigns (also those of a base file it executes)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.assigned = set()

    def __setitem__(self, key, value):
        self.assigned.add(key)
        super().__setitem__(key, value)

    def update(self, *args, **kwargs):
        # globals().update(...) in a config file (dict's own update bypasses __setitem__): an architecture field set
        # so was not compared on resume, and the checkpoint's went on without a word
        for key, value in dict(*args, **kwargs).items():
            self[key] = value


def run_file(path, values):
    """-> the namespace after executing config file path over values; a file that cannot be read, decoded or run
    is one line naming the file and the line."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise SystemExit(f"config file {path!r} cannot be read ({e.strerror}).") from None
    # a checkpoint, a .bin or an archive given where a config file goes (train.py out/ckpt.pt): "save the file as
    # UTF-8" or "SyntaxError ... null bytes (line None of None); fix the file" fixed nothing; UTF-16 text (NULs too)
    # is told below to be saved as UTF-8
    if b"\0" in data and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SystemExit(f"config file {path!r} is binary (it holds NUL bytes), not Python text; give a file of "
                         f"settings like config/cpu_tiny.py (a checkpoint is named by --init_from=PATH, or resumed "
                         f"with --out_dir=ITS_FOLDER --init_from=resume).")
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark, as some Windows editors save, is valid Python
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise SystemExit(f"config file {path!r}, line {line}: byte {data[e.start]:#04x} is not UTF-8; save the "
                         f"file as UTF-8.") from None
    # __file__ is the file itself: through a link to a run file (ln -s repo/config/qk_v_300m.py .) its base file
    # beside it was looked for beside the link, and the refusal said to fix a file with nothing wrong in it
    scope = Namespace(values, __file__=os.path.realpath(path))
    try:
        # nanoGPT's configs include a base file with exec(open(...).read()), whose file the collector closes: a
        # ResourceWarning, and under PYTHONWARNINGS=error an "Exception ignored" traceback before the run
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            exec(compile(text, path, "exec"), scope)
    except SystemExit as e:  # sys.exit(3) or exit() in a file: the command ended with its status, not a word
        ours = [f.lineno for f in traceback.extract_tb(e.__traceback__) if f.filename == path]
        raise SystemExit(f"config file {path!r}, line {ours[-1] if ours else '?'}: it calls sys.exit({e.code!r}), "
                         f"which ends the command before it starts; a config file only sets values: remove the "
                         f"call.") from None
    except Exception as e:
        # the line of this file where the syntax breaks or the error is raised; for an error in a file it executes
        # or a module it imports, the line that led there, and where it happened
        frames = traceback.extract_tb(e.__traceback__)
        syntax = isinstance(e, SyntaxError)
        where, inner = (e.filename, e.lineno) if syntax else (frames[-1].filename, frames[-1].lineno)
        ours = [f.lineno for f in frames if f.filename == path]
        line = inner if where == path else ours[-1] if ours else "?"
        detail = e.msg if syntax else (str(e).strip().splitlines() or [""])[0]
        if where != path:
            detail += f" (line {inner} of {'the code it executes' if where == '<string>' else where})"
        # config/qk_v_300m.py copied to edit: it executes base_300m.py beside itself, which stayed in config/, and
        # "fix the file" did not say that the file is fine and its base is missing
        base = os.path.join(REPO, "config", os.path.basename(e.filename)) if isinstance(e, FileNotFoundError) \
            and isinstance(e.filename, str) else None
        if base and os.path.isfile(base) and not os.path.samefile(os.path.dirname(base), os.path.dirname(
                os.path.realpath(path))):
            raise SystemExit(f"config file {path!r}, line {line}: it reads {e.filename}, which is not there; the "
                             f"project's is {base}: copy it there (and any file it executes in turn).") from None
        raise SystemExit(f"config file {path!r}, line {line}: {type(e).__name__}: {detail}; fix the file.") from None
    return scope


def configure(defaults, args, usage=None, hints=None):
    """defaults: {key: value}, the settings a script exposes; args: sys.argv[1:]; usage: () -> the text that
    --help (or -h) prints before exit status 0; hints: see check(). Returns (the updated dict, the set of keys that
    a config file assigned or a --key=value gave, whatever their value): a resumed run compares those with its
    checkpoint."""
    if usage and ("-h" in args or "--help" in args):  # wherever it stands, before any file runs
        try:
            print(usage(), flush=True)
        except BrokenPipeError:  # `--help | head`: the reader took what it wanted; no traceback, no error at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        except OSError as e:  # `--help > /dev/full`, a full disk: the help is lost, say so (no flush error at exit)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            raise SystemExit(f"could not print the help ({e.strerror}).") from None
        raise SystemExit(0)
    overrides = {}  # checked first (a typo is found before any file runs), applied last
    for arg in args:
        if error := pasted_dash(arg) or blank_argument(arg):
            raise SystemExit(error + ".")
        if arg.startswith("--"):
            key, eq, text = arg[2:].partition("=")
            if not key:  # `--` as other commands take it, or `--=1`: no setting to give "--=VALUE" as the fix
                raise SystemExit(f"argument {arg!r} names no setting; write --key=value (--help lists them).")
            if key not in defaults:  # with or without a value (--standalone, a launcher's flag): no VALUE helps
                check(key, None, defaults, arg, hints)  # raises, naming what it is or the keys that look alike
            on_off = type(defaults[key]) is bool
            if not eq:
                raise SystemExit(f"argument {arg!r} has no value; write --{key}=" + ("True (or False)." if on_off
                                                                                     else "VALUE."))
            number = type(defaults.get(key)) in (int, float)
            try:
                value = boolean(text) if on_off else literal(text, number)
            except argparse.ArgumentTypeError:  # --compile=yes: the type check below names the setting
                value = text
            if type(defaults.get(key)) is str and type(value) is not str:  # --out_dir=123 or =None: a name, as typed
                value = text
            if error := pasted_quotes(f"--{key}", value):  # every text setting here is a name, a path or a choice
                raise SystemExit(error + ".")
            if error := held_setting(f"--{key}", value, defaults):
                raise SystemExit(error + ".")
            if number and type(value) is str and (error := pasted_minus(text)):
                raise SystemExit(f"--{key}={text} {error.replace('write ', f'write --{key}=')}.")
            overrides[key] = check(key, value, defaults, arg, hints)
    values, given, unset = dict(defaults), set(), {}
    for arg in args:
        if not arg.startswith("--"):
            if os.path.isdir(arg):  # `config/`, as a shell completes it: found, but no file
                raise SystemExit(f"config file {arg!r} is a folder; give a file in it, like config/cpu_tiny.py.")
            if os.path.islink(arg) and not os.path.exists(arg):  # "not found" where ls shows it
                raise SystemExit(f"config file {why}" if (why := closed_stream(arg)) else
                                 f"config file {arg!r} is a link to {os.readlink(arg)!r}, which does not exist; "
                                 f"restore what it points to, or give another file.")
            if not os.path.exists(arg):  # a pipe is read as a file: <(make_config) or /dev/stdin
                if error := held_setting("config file", arg, defaults):
                    # "$ARGS" quoted: 'config/x.py --max_iters=5' was told "overrides are written --key=value"
                    raise SystemExit(f"{error}.")
                if len(parts := arg.split()) > 1 and (any(map(os.path.isfile, parts))
                                                      or all(p.endswith(".py") for p in parts)):
                    # "$CONFIGS" quoted: 'config/a.py config/b.py' was "did you mean config/b.py?", a without a
                    # word, and so was 'config/a.py config/b-typo.py' (one not there): the first is named, not dropped
                    raise SystemExit(f"config file {arg!r} is {len(parts)} " + (
                        "files" if all(map(os.path.isfile, parts)) else "names") + ": quotes around several pass "
                        "them as one argument; give each as its own argument.")
                # `config/cpu_tiny`, `cpu_tiny.py`, or config/x.py run from another folder: the file meant is there
                name = os.path.basename(arg.replace("\\", "/"))  # config\cpu_tiny.py, typed as on Windows
                near = [p for p in (arg + ".py", os.path.join("config", name), os.path.join("config", name + ".py"),
                                    os.path.join(REPO, "config", name), os.path.join(REPO, "config", name + ".py"))
                        if os.path.isfile(p)]
                if not near:  # config/cpu-tiny.py or qk_v_300M.py: one slip from a config file of the project
                    for folder in ("config", os.path.join(REPO, "config")):  # here first, as above
                        files = sorted(f for f in os.listdir(folder) if f.endswith(".py")) \
                            if os.path.isdir(folder) else []
                        near += [os.path.join(folder, f) for f in files if slipped_config(name, f)][:1]
                helping = arg.lstrip("-").lower() in ("help", "h", "?")  # `-help`, `help`: --help was meant
                raise SystemExit(f"config file {arg!r} not found; " + (
                    f"did you mean {shlex.quote(near[0])}?" if near else "did you mean --help (the settings)?"
                    if helping else "positional arguments are config files (overrides are written --key=value)."))
            scope = run_file(arg, values)
            for key, value in scope.items():
                if not key.startswith("_") and not isinstance(value, types.ModuleType):
                    unset.pop(key, None)
                    values[key] = check(key, value, defaults, arg, hints, unset)
            given |= scope.assigned & set(defaults)
    # a file's $NAME path that a --key=value or a later file replaces is never used: out_dir = "$SCRATCH/x" with
    # SCRATCH unset was refused under --out_dir=runs/x, or a run file's out_dir = "runs/x" after its base file's
    if refused := [e for key, e in unset.items() if key not in overrides]:
        raise refused[0]
    # the overrides after every file, wherever they stand: a file after one (`--max_iters=6 config/x.py`) set its
    # own value over the one typed, without a word
    filed = {k: values[k] for k in given}
    values.update(overrides)
    return values, Given(given | set(overrides), filed)


class Given(set):
    """configure's keys given, with .filed: {key: value} of those a config file assigned, before any --key=value.
    A --key=value typed over a file's value leaves the file's when dropped: "drop --proj" was advice that the next
    run refused again for the file's."""

    def __init__(self, keys, filed):
        super().__init__(keys)
        self.filed = filed


def describe(script, defaults, rules, sources):
    """The text of --help: every setting with its default, the comment beside its first assignment in sources (a
    script's settings block, a dataclass's fields) and its rule from rules (a range string or the values it
    takes)."""
    notes = {}
    for path in sources:
        with open(path, encoding="utf-8") as f:
            for line in f:
                m = re.match(r"\s*(\w+)\s*(?::[^=#]*)?=[^#]*#\s*(.*)", line)
                if m and m.group(1) in defaults:
                    notes.setdefault(m.group(1), m.group(2).strip())
    out = [f"usage: python {script} [CONFIG_FILE.py ...] [--key=value ...]",
           "Config files (plain Python) run in order, then each --key=value overrides. Settings, with defaults:"]
    width = max(len(f"--{k}={v}") for k, v in defaults.items()) + 2
    for key, value in defaults.items():
        rule = rules.get(key)
        if isinstance(rule, tuple):
            rule = "one of " + ", ".join(rule)
        elif rule:
            rule = spoken(rule)
        out.append(f"  {f'--{key}={value}':<{width}}" + "; ".join(x for x in (notes.get(key), rule) if x))
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------------------
# Ranges, declared as plain data beside each setting and checked by one function. A rule is a short string:
# ">= 1", "> 0", "[0, 1)", "(0, 1]", "[1, 65535]"; numbers must also be finite. train.py keeps a dict
# {setting: rule} beside its settings block; the argparse scripts declare type=number(int, ">= 1").

RULE = re.compile(r"^(?:(>=|>|<=|<) *(\S+)|([\[(]) *(\S+?) *, *(\S+?) *([\])]))$")


def in_range(value, rule):
    """True when value is a finite number that satisfies rule."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, float) and not math.isfinite(value) or isinstance(value, int) and abs(value) >= 2**63:
        return False  # numpy and torch hold 64-bit integers; a larger int would fail (or overflow) in the work
    m = RULE.match(rule)
    if m is None:
        raise ValueError(f"not a range rule: {rule!r}")
    op, bound, left, lo, hi, right = m.groups()
    if op:
        b = float(bound)
        return {">=": value >= b, ">": value > b, "<=": value <= b, "<": value < b}[op]
    lo, hi = float(lo), float(hi)
    return (value >= lo if left == "[" else value > lo) and (value <= hi if right == "]" else value < hi)


def spoken(rule):
    """A rule as it reads after 'must be an integer': '>= 1' as it is, an interval '[0, 1)' as 'in [0, 1)'."""
    return "in " + rule if rule[0] in "[(" else rule


def range_error(name, value, kind, rule):
    """One sentence for a value that is not a finite kind within rule, or None when it is."""
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if (kind is int and (isinstance(value, bool) or not isinstance(value, int))) or not in_range(value, rule):
        what = "an integer" if kind is int else "a finite number"
        got = f"an integer of {len(str(abs(value)))} digits, beyond 64 bits" if type(value) is int and abs(value) >= 2**63 else repr(value)
        return f"{name} must be {what} {spoken(rule)}; got {got}."
    return None


def number(kind, rule):
    """An argparse type: the text parsed as kind, then checked against rule (carried as .kind and .rule, so tests
    can generate bad values from the parser itself)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} {pasted_minus(text)}." if pasted_minus(text) else
                                             f"must be {'an integer' if kind is int else 'a number'} {spoken(rule)}; "
                                             f"got {text!r}.") from None
        error = range_error("value", value, kind, rule)
        if error:
            raise argparse.ArgumentTypeError(error.removeprefix("value "))
        return value
    parse.kind, parse.rule, parse.__name__ = kind, rule, kind.__name__
    return parse


def numbers(kind, rule):
    """As number(), for a comma-separated list: every item parsed as kind and checked against rule."""
    one = number(kind, rule)

    def parse(text):
        return once([one(item) for item in text.split(",")])
    parse.kind, parse.rule, parse.__name__ = kind, rule, f"{kind.__name__} list"
    return parse


def once(items):
    """items, each given once: a repeated seed or name would be run twice and counted as two (a std of 0)."""
    twice = next((x for i, x in enumerate(items) if x in items[:i]), None)
    if twice is not None:
        raise argparse.ArgumentTypeError(f"{twice} is listed twice; give each once.")
    return items


_UNSET = object()  # Parser.given's marker of an option the command line did not give


def argv_of(args):
    """The command line's arguments, or the list given; one string (main("--out_dir=x") from Python) was read by
    argparse as one argument per character."""
    if isinstance(args, str):
        raise ValueError(f"argv must be a list of arguments, e.g. shlex.split({args!r}); got one string.")
    return sys.argv[1:] if args is None else list(args)


def slipped_config(typed, name):
    """Whether config file `name` is what `typed` meant: the same but for case, '-' for '_', the suffix, or one slip
    in a word (cpu_tin). Not one in a code: q_kv for qkv, 3b for 7b, mqa for gqa name another model, not this one."""
    def words(n):
        return os.path.splitext(n)[0].lower().replace("-", "_").split("_")
    a, b = words(typed), words(name)
    diff = [(x, y) for x, y in zip(a, b) if x != y]
    if len(a) != len(b) or len(diff) > 1:
        return False
    return not diff or (diff[0][0].isalpha() and diff[0][1].isalpha() and len(diff[0][1]) >= 4
                        and difflib.SequenceMatcher(None, *diff[0]).ratio() >= 0.75)


def held_setting(name, value, known):
    """'NAME=VALUE holds another setting ...' when a text value holds one, or None. "$ARGS" quoted in a script:
    --out_dir='x --max_iters=1' trained the config's whole run into a folder named by both settings (and eval.py
    '--out=r --text=t.txt' evaluated the default tasks into it); every text setting is a name, a path or a choice,
    none holds " --key=". " --word=" is a setting whatever the word (a mistyped or capitalised key too); "--b 1" is
    one only where b is a setting of known (--max-iters 1: given apart it is refused, quoted it was a folder), and so
    is a flag at the end (bench.py '--out=x --quick' ran the full benchmark, 10 minutes, into "x --quick")."""
    # each one, not the first: 'x --slow --quick' (an unknown flag, then --quick) ran the full benchmark into it
    # (in a lookahead, so that one's value, "--foo --quick", does not hide the next); $: a flag at the end, --quick
    # a file or folder that is there is the user's, named so (data --compile), as a config file is in configure
    inners = re.finditer(r"(?=(\s--([\w-]+)(=|\s+|$)\S*))", value) \
        if type(value) is str and not os.path.exists(value) else ()
    if inner := next((i for i in inners if i[3] == "=" or i[2].replace("-", "_").lower() in known), None):
        given = f"{name}={value!r}" if name.startswith("-") else f"{name} {value!r}"  # --out_dir=..., config file ...
        return (f"{given} holds another setting, {inner[1].strip()}: quotes around several settings pass "
                f"them as one argument; give each --key=value as its own argument")
    return None


class Parser(argparse.ArgumentParser):
    """argparse for the commands but train.py, except that --help or a usage error whose text cannot be written
    (`> /dev/full`) raises, and cli() says so, where argparse drops the error and exits 0 with the text lost."""

    def __init__(self, *args, hints=None, **kwargs):
        """hints: {unknown option name: what it is instead}, for names whose nearest spellings here are unrelated
        (sample.py --prompt: --proj)."""
        super().__init__(*args, **kwargs)
        self.hints = hints or {}

    def _print_message(self, message, file=None):
        if message:
            (file or sys.stderr).write(message)

    def error(self, message):
        """argparse's, and `--out_dir -run` (a value that starts with '-', which argparse takes for an option) named
        with the spelling it takes, where argparse said only "expected one argument"."""
        if m := re.fullmatch(r"argument (?:\S+/)?(\S+): expected one argument", message):
            argv = getattr(self, "argv", [])
            # the option's use followed by a value that starts with '-' (`--out_dir a --out_dir -run` too), quoted
            # as the shell needs: `--start '-a|b'` was told --start=-a|b, which pipes into a command b
            value = next((v for o, v in zip(argv, argv[1:]) if o == m[1] and v.startswith("-")
                          and v.split("=")[0] not in self._option_string_actions), None)
            if value:
                message += f"; a value that starts with '-' goes after '=': {shlex.quote(f'{m[1]}={value}')}"
        elif r := re.fullmatch(r"the following arguments are required: (.*)", message):
            # `analyze --out-dir=X`: told only that --out_dir is required, and the option typed went unnamed
            typed = [a.split("=")[0] for a in getattr(self, "argv", []) if a.startswith("--")
                     and a.split("=")[0] not in self._option_string_actions]
            near = [(t, n[0]) for t in typed if (n := difflib.get_close_matches(t, r[1].split(", "), 1, 0.6))]
            message += "".join(f"; {t} is no option here, write {o}" for t, o in near)
        elif h := re.fullmatch(r"argument -h/--help: ignored explicit argument '(.*)'", message):  # `-help`
            message = f"-h{h[1]} is -h with {h[1]!r} after it; write --help (or -h) to list the options"
        super().error(message)

    def parse_known_args(self, args=None, namespace=None):
        """As argparse, and a plain text option given only spaces, or empty where its default is a name or path
        (--out_dir=), is refused: it meant the current folder, or a path '' that failed later with advice such as "no
        checkpoint at ckpt.pt", or a folder named ' '. Options with their own type (--start, --calib) say themselves
        what an empty value means."""
        # read once: an iterator (iter(argv)) was used up here, and argparse's own reads below saw no arguments
        args = self.argv = argv_of(args)  # for error()
        self.hinted_prefix(args)
        ns, rest = super().parse_known_args(args, namespace)
        # the options the command line gave (set only by argparse's defaults, a value is not the user's): each one
        # parsed again into a namespace of markers, which argparse leaves where it gives no value
        probe = argparse.Namespace(**{a.dest: _UNSET for a in self._actions if a.dest != "help"})
        super().parse_known_args(args, probe)
        self.given = {a.dest for a in self._actions if getattr(probe, a.dest, _UNSET) is not _UNSET}
        self.dests = {a.dest for a in self._actions}
        for a in self._actions:  # --out=~/x, --input ~/a.txt: home's (an option of its own type reads its own text)
            if a.option_strings and a.type is None and a.dest != "help" and hasattr(ns, a.dest):
                value = getattr(ns, a.dest)
                name = max(a.option_strings, key=len)
                setattr(ns, a.dest, [shell_vars(a.dest, home(v), name) for v in value] if isinstance(value, list)
                        else shell_vars(a.dest, home(value), name))
        for a in self._actions:
            if not (a.option_strings and a.type is None and a.dest != "help"):
                continue
            value, name = getattr(ns, a.dest, None), max(a.option_strings, key=len)
            # --input A "": each name checked, an empty one too (no default stands for it)
            many = isinstance(value, list)
            for v in value if many else [value]:
                # `--input a.txt ""` is one value too many, not "--input is empty; give it a value"
                if error := (many and len(value) > 1 and blank_argument(v)) or \
                        blank_error(name, v, argparse.SUPPRESS if many else a.default) or \
                        pasted_quotes(name, v) or control_error(name, v) or held_setting(name, v, self.dests):
                    self.error(error)
        return ns, rest

    def parse_args(self, args=None, namespace=None):
        """argparse's, but an option of several values given one with '=' (`--input=data/*.txt`, which the shell
        expands to `--input=data/a.txt data/b.txt`) is named with the way to give them all, where argparse said only
        'unrecognized arguments: data/b.txt'."""
        argv = argv_of(args)
        ns, extra = self.parse_known_args(argv, namespace)
        self.repeated_lists(argv)
        for arg in extra:  # only what no option took: `--start "— and so"` is a prompt
            if error := pasted_dash(arg) or blank_argument(arg):
                self.error(error)
        if extra:
            stray = next((i for i, a in enumerate(argv) if a in extra and not a.startswith("-")), None)
            last = next((a for a in reversed(argv[:stray or 0]) if a.startswith("-")), "")  # the option before it
            name = last.split("=")[0]
            action = self._option_string_actions.get(name)
            many = "=" in last and getattr(action, "nargs", None) in ("+", "*")
            # `--seeds 0 1`, `--tasks hellaswag arc_easy`: a list option takes one value, its items joined by commas
            # but never a config file: `bench.py --what memory config/x.py` was told --what=memory,config/x.py
            commas = stray is not None and "comma-separated" in (getattr(action, "help", None) or "") and \
                not any(a.endswith(".py") for a in extra)
            if commas:
                at = stray - 1 - argv[stray - 1::-1].index(last)  # the option's own place
                given = [last.partition("=")[2]] if "=" in last else argv[at + 1:at + 2]
                given += itertools.takewhile(lambda a: not a.startswith("-"), argv[at + 2 - ("=" in last):])
                items = [i.strip(",") for i in given if i.strip(",")]  # `--what cache, decode`: one comma each
            self.error(f"unrecognized arguments: {' '.join(extra)}" + (
                f"; {name}=VALUE takes one value: to give several, write {name} A B (a space, no '=')" if many else
                f"; {name} takes one value, its items separated by commas: {name}={','.join(items)}" if commas else
                # nanoGPT's sample.py reads config files as train.py does: `sample.py config/cpu_tiny.py` named the
                # file and no way on
                f"; {self.prog} reads no config file (train.py does): give its settings as --key=value "
                f"({self.prog} --help lists them)" if any(a.endswith(".py") and not a.startswith("-") for a in extra)
                else self.nearest(next((a for a in extra if a.startswith("--") and len(a) > 2), None))))
        return ns

    def repeated_lists(self, argv):
        """Refuses an option of several values given twice: argparse keeps the last one's values only, so
        `--input a.txt --input b.txt` prepared b.txt alone, exit 0."""
        lists = {o: a for a in self._actions if a.nargs in ("+", "*") for o in a.option_strings}
        seen = {}
        for i, arg in enumerate(itertools.takewhile(lambda a: a != "--", argv)):
            name = arg.split("=")[0] if arg.startswith("--") else None
            if name in self._option_string_actions and name not in lists:  # another option's own name
                continue
            # argparse's abbreviations too: --inp is --input where no other option starts so
            found = [o for o in lists if o == name] or [o for o in lists if name and o.startswith(name)]
            action = lists[found[0]] if len({lists[o].dest for o in found}) == 1 else None
            if action and seen.setdefault(action.dest, i) != i:
                opt = max(action.option_strings, key=len)
                self.error(f"{opt} is given twice, and the second replaces the first (its values would be dropped); "
                           f"give all of them after one {opt}: {opt} A B C")

    def hinted_prefix(self, argv):
        """Refuses, with its hint, a name in hints that argparse would take as the start of an option: sample.py
        `--out=samples.txt` (bench's and eval's output option) was read as --out_dir, "no checkpoint at samples.txt"
        or, before a later --out_dir, dropped (no file, exit 0)."""
        for arg in itertools.takewhile(lambda a: a != "--", argv):
            key = arg.split("=")[0][2:] if arg.startswith("--") else ""
            if key and key not in self.hints:
                key = key.replace("-", "_").lower()
            if key in self.hints and f"--{key}" not in self._option_string_actions:
                self.error(f"unrecognized arguments: {arg}; {self.hints[key]}")

    def unread(self, args, rules):
        """Refuses an option the command line gave that this run, in its mode, reads nothing of: it ran as though
        the option were not there, exit 0. rules: [(option, mode(args): True where the option goes unread, why)]:
        the table beside each script's options, which tests/test_script_settings.py tries row by row."""
        for name, mode, why in rules:
            if name in self.given and mode(args):
                self.error(f"--{name} is read by nothing here: {why}.")

    def nearest(self, arg):
        """'; ' and what the unknown option arg is instead, or the options spelled like it (--max-new-tokens,
        --Seed, --n_samples, as train.py names its nearest keys); '' when none or no arg."""
        if arg is None:
            return ""
        key = arg.split("=")[0][2:]
        norm = key.replace("-", "_").lower()  # --max-length, as Hugging Face's tools spell it, is --max_length
        if hint := self.hints.get(key) or self.hints.get(norm):
            return f"; {hint}"
        names = [o[2:] for a in self._actions for o in a.option_strings if o.startswith("--")]
        near = [n for n in names if n.lower() == norm] or difflib.get_close_matches(norm, names, n=3, cutoff=0.6)
        return f"; nearest options: {', '.join('--' + n for n in near)}" if near else ""


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, a scheduler's time limit) or SIGHUP (the terminal closed), raised as Ctrl-C is, so the command
    stops the same way: one line, no half-written file, nothing left of a run that saved nothing. A KeyboardInterrupt,
    so every `except KeyboardInterrupt` that cleans up takes it too. Its argument: the signal's name."""


def stop_on_sigterm():
    """From now on SIGTERM and SIGHUP raise Terminated in the main thread (the default ends the process with no word,
    leaving what a clean stop removes: a closed terminal left a run's lock and log, or a temporary file). A SIGHUP
    already ignored (nohup) stays ignored."""
    def raise_terminated(signum, frame):
        raise Terminated(signal.Signals(signum).name)
    signal.signal(signal.SIGTERM, raise_terminated)
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) == signal.SIG_DFL:  # POSIX only
        signal.signal(signal.SIGHUP, raise_terminated)


def interrupted_at_start(kind, e, tb):
    """sys.excepthook while a command starts: Ctrl-C (or SIGTERM, SIGHUP) while torch loads or the run is set up
    (seconds on a busy machine) is one line and its status, not a page of import frames; cli (or train.py's own
    handler) takes over before the first write."""
    if not issubclass(kind, KeyboardInterrupt):
        if said := start_failure(e):
            print(said, file=sys.stderr, flush=True)
            os._exit(1)
        return sys.__excepthook__(kind, e, tb)
    what, status = stopped_by(e)
    try:
        print(f"stopped by {what} while starting, before anything was written.", file=sys.stderr, flush=True)
    except (OSError, AttributeError):  # a closed terminal (SIGHUP) takes no more text; stderr closed (2>&-) is None
        pass
    os._exit(status)


REQUIRED = ("torch", "numpy", "tiktoken", "matplotlib", "huggingface_hub", "zstandard")  # requirements.txt


def start_failure(e):
    """One sentence for a library that could not be imported as a command started, or None: a Python without the
    requirements (another interpreter, a venv not activated), or a memory limit (ulimit -v) below what torch needs
    to map, each a page of import frames ending in ModuleNotFoundError, MemoryError or "failed to map segment"."""
    if isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] in REQUIRED:
        return (f"{e.name.split('.')[0]} is not installed for this Python ({sys.executable}); install the "
                f"requirements into it ({install_command()}), or run the Python that has them.")
    if isinstance(e, MemoryError) or isinstance(e, OSError | ImportError) and re.search(
            r"failed to map segment|cannot allocate memory", str(e), re.I):
        return (f"out of memory while loading the libraries{memory_limit()}; "
                + (f"{lift_limit('raise the limit')}, or run where it is higher." if memory_limit() else
                   "free memory, or run on a machine with more."))
    return None


def install_command():
    """The pip command that installs requirements.txt into this Python from the current folder: "pip install -r
    requirements.txt" found no file outside the repository, and the pip on PATH may be another Python's."""
    req = os.path.join(REPO, "requirements.txt")
    try:
        rel = os.path.relpath(req)
    except (OSError, ValueError):  # no current folder; another drive (Windows)
        rel = req
    return f"{shlex.quote(sys.executable)} -m pip install -r {shlex.quote(req if rel.startswith('..') else rel)}"


def lift_limit(say):
    """How to lift the address-space limit: say (ulimit -v unlimited); or a new terminal where bash's `ulimit -v N`
    set the hard limit too, which only root raises ("cannot modify limit: Operation not permitted")."""
    import resource
    if resource.getrlimit(resource.RLIMIT_AS)[1] == resource.RLIM_INFINITY or not os.geteuid():
        return f"{say} (ulimit -v unlimited)"
    return "run it from a new terminal (this limit is also this shell's hard limit, which only root raises)"


def memory_limit():
    """' (this shell's limit, ulimit -v, is N KiB)' where the process's address space is capped, else '': under a
    cap, "out of memory" is the cap's, which no smaller dtype or bigger machine lifts."""
    try:
        import resource
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    except (ImportError, OSError):  # Windows has no resource module
        return ""
    return "" if limit == resource.RLIM_INFINITY else f" (this shell's limit, ulimit -v, is {limit // 1024:,} KiB)"


def quiet_start(sigterm=True):
    """Called by every command before it imports torch: until then a Ctrl-C gave Python's traceback of the import
    (sample.py, eval.py, bench.py, prepare and the studies; train.py had its own), and SIGTERM or SIGHUP ended the
    process with no word. sigterm=False leaves SIGTERM and SIGHUP as they are (train.py under torchrun)."""
    sys.excepthook = interrupted_at_start
    if sigterm:
        stop_on_sigterm()
    die_with_parent()  # after the handler: a study's death stops this run as SIGTERM does
    closed_as_devnull()
    try:
        os.getcwd()
    except FileNotFoundError:  # torch's MKL then failed to load ("Intel oneMKL FATAL ERROR: Cannot load
        # libtorch_cpu.so"), exit 2, as if the install were broken
        raise SystemExit("the current folder no longer exists (removed after this shell entered it), so no relative "
                         "path means anything and torch cannot load; cd to a folder that exists, then run again.")
    # numpy imported here, not by torch: torch's C start imports it and takes any error in that for "no numpy", a
    # Ctrl-C or SIGTERM too: the stop was lost, numpy left half imported, and the command ran on to an exit 0 or an
    # odd failure ("cannot build task alphabet (RecursionError ...)"). Here the stop is this hook's one line
    try:
        import numpy  # noqa: F401
    except ImportError:  # not installed: the command's own import names it (start_failure)
        pass


def closed_as_devnull():
    """stdout or stderr closed at the start (`>&-`, `2>&-`, or a study's train.py, which inherits them so) is
    /dev/null on its own descriptor: Python gave None, so train.py's stop, flushing both, failed in its excepthook
    ('NoneType' object has no attribute 'flush', exit 1 for 143), and the next file opened (train.bin, a lock) took
    descriptor 1 or 2, where C code's messages go."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is None:
            null = os.open(os.devnull, os.O_WRONLY)
            if null != fd and not is_open(fd):  # stdin closed too took the lowest: put it where it belongs
                os.dup2(null, fd)
                os.close(null)
                null = fd
            setattr(sys, name, open(null, "w"))


def is_open(fd):
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def quiet_exit():
    """From here the process only exits: a Ctrl-C, SIGTERM or SIGHUP now ends it at once, as the signal's default
    does (its status, no word: the work is done or its stop reported). Raised as KeyboardInterrupt inside torch's
    atexit finalizers, it was Python's "Exception ignored in atexit callback" traceback, after a finished run with
    exit 0. A signal ignored (nohup) stays ignored."""
    for sig in stop_signals():
        signal.signal(sig, signal.SIG_DFL)


def stop_signals():
    """Ctrl-C, SIGTERM and SIGHUP, those of them this platform has and this process does not ignore (nohup) or hold
    outside Python (None)."""
    sigs = (getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
    return [sig for sig in sigs if signal.getsignal(sig) not in (signal.SIG_IGN, None)]


def stopped_by(e):
    """'SIGTERM', 'SIGHUP' or 'Ctrl-C', and the exit status a shell gives for it: 143, 129 or 130."""
    if not isinstance(e, Terminated):
        return "Ctrl-C", 130
    name = e.args[0] if e.args else "SIGTERM"
    return name, 128 + getattr(signal, name, signal.SIGTERM)


def stop_children(procs, e, grace=5.0):
    """A study stopped by e (Ctrl-C, SIGTERM, SIGHUP, or an error such as its output pipe closed) stops the train.py
    processes it started, and waits for them: each stops as on its own Ctrl-C (its checkpoint whole, nothing left of
    a run that saved nothing). A SIGTERM sent to the study alone (`kill`, `timeout`), or an error, is passed on at
    once: they were left training on their own, or subprocess.run killed them mid-save with no word, leaving a run's
    lock and log. Ctrl-C at a terminal and the SIGHUP of a closed one reach them with the study: they get grace
    seconds to stop, then SIGTERM. Another Ctrl-C while they stop kills them."""
    procs = [p for p in procs if p.poll() is None]
    try:
        if isinstance(e, KeyboardInterrupt) and stopped_by(e)[0] != "SIGTERM":
            end = time.time() + grace
            for p in procs:
                try:
                    p.wait(max(0.0, end - time.time()))
                except subprocess.TimeoutExpired:
                    pass
        for p in procs:
            if p.poll() is None:
                p.terminate()
                if hasattr(signal, "SIGCONT"):  # one stopped (SIGSTOP, Ctrl-Z) takes it only when continued: a hang
                    p.send_signal(signal.SIGCONT)
        for p in procs:
            p.wait()
    except KeyboardInterrupt:
        for p in procs:
            p.kill()
            p.wait()


def child_env(env=None):
    """env (None: this process's) for a study's train.py, naming this process: the child ends with it
    (die_with_parent), even when a SIGKILL gives it no time to stop its children."""
    return {**(os.environ if env is None else env), STUDY_PID: str(os.getpid())}


STARTED_BY = {}  # "study": the pid of the study that started this process (die_with_parent), when one did


def study_child():
    """Whether a study started this process (its parent set STUDY_PID, child_env): the command its user typed is
    the study's, which resumes its runs by itself, so a line saying "add --init_from=resume" does not apply."""
    return "study" in STARTED_BY


def die_with_parent():
    """In a study's train.py (child_env): SIGTERM when the study dies, on Linux (prctl's PR_SET_PDEATHSIG). A study
    killed with SIGKILL (the OOM killer, kill -9) left its runs training with nobody to read them; SIGTERM stops a
    run as Ctrl-C does, its last checkpoint kept. Elsewhere, or without the variable, nothing changes."""
    parent = os.environ.pop(STUDY_PID, None)  # not handed on: what this run starts (compile workers) is its own
    if parent and str(os.getppid()) == parent:  # not a variable of that name the user set or another program handed on
        STARTED_BY["study"] = parent
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no prctl to call: as before
        return
    if str(os.getppid()) == parent:
        return
    try:  # the study died before the call, and this run was handed to another parent
        os.kill(int(parent), 0)
    except (ValueError, OverflowError):  # no pid: a variable of the same name set by the user, not a study's
        pass
    except ProcessLookupError:
        os.kill(os.getpid(), signal.SIGTERM)
        return
    except OSError:  # alive, another user's
        pass
    # alive and not this run's parent: the variable was set by hand or handed on by another program (a train.py
    # started so stopped at once, 'stopped by SIGTERM while starting', with no word why); no study to follow
    ctypes.CDLL(None, use_errno=True).prctl(1, 0)


def run_child(cmd, **popen_args):
    """subprocess.run(cmd, **popen_args).returncode, its process stopped with the caller's (stop_children), and
    ending with it however it dies (child_env)."""
    p = subprocess.Popen(cmd, **{**popen_args, "env": child_env(popen_args.get("env"))})
    try:
        return p.wait()
    except KeyboardInterrupt as e:
        stop_children([p], e)
        raise


def cli(main, after, oom="choose smaller settings (model, batch, lengths), or run on a machine with more"):
    """Run main() as a command: Ctrl-C (or SIGTERM) stops it with one line saying what is left (after), and exit
    status 130 (143) as a shell gives, instead of a traceback; so does an output that takes no more text
    (`sample.py | head` closes the pipe, `> /dev/full` has no room), exit status 1; so does out of memory, naming
    oom. Every file the scripts write is written whole (checkpoint.atomic_write), so what a stopped run leaves is
    what finished before it."""
    closed_as_devnull()  # done by quiet_start too, before the imports; here for a main run without it
    tolerant_output()
    stop_on_sigterm()
    try:
        run_main(main, after, oom)
    finally:
        if getattr(main, "__module__", None) == "__main__":  # the command itself, not a test calling it
            quiet_exit()


def run_main(main, after, oom):
    """cli's body: main(), and one line for each way it can stop."""
    try:
        try:
            main()
        except RuntimeError as e:  # a Ctrl-C inside `with torch.device("meta")` (bench's memory section) cut
            # torch's mode stack, whose exit raised "trying to pop from empty mode stack" over the interrupt
            if (stop := interrupt_behind(e)) is None:
                raise
            raise stop from None
        finally:  # what is still buffered fails here, where it is reported, not at exit (argparse's --help: exit 0)
            sys.stdout.flush()
    except KeyboardInterrupt as e:
        what, status = stopped_by(e)
        try:
            sys.stdout.flush()
            print(f"stopped by {what}; {after}", file=sys.stderr)
        except OSError:  # a closed terminal (SIGHUP) takes no more text: the status says it; nothing to flush at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(status) from None
    except (RuntimeError, MemoryError) as e:  # a traceback from deep in torch says nothing about what to change
        if not (why := out_of_memory(e, oom)):
            raise
        print(f"stopped: {why}; {after}", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as e:
        if fix := open_files_fix(e):
            raise SystemExit(f"stopped: too many files open ({e.strerror}); {fix}; {after}") from None
        if why := cache_failure(e):
            raise SystemExit(why) from None
        if not stdout_refuses(e):
            raise
        why = "the reader of its output went away (a closed pipe)" if isinstance(e, BrokenPipeError) else \
            f"its output could not be written ({e.strerror})"
        # the interpreter flushes stdout again on exit: point it at nothing, or that flush fails once more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        try:
            print(f"stopped: {why}; {after}", file=sys.stderr)
        except OSError:  # stderr went too
            pass
        raise SystemExit(1) from None


def interrupt_behind(e):
    """The Ctrl-C (SIGTERM, SIGHUP) an error was raised while handling, or None: torch's cleanup that failed during
    the stop (a context manager's exit) is the stop, not a traceback."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return e
        seen.add(id(e))
        e = e.__context__
    return None


def open_files_fix(e):
    """The fix for an OSError of too many files open (EMFILE, ENFILE), None for any other. Wherever it struck (a
    memmap of the data, a folder listed, a module imported) it was a traceback, or advice to free space."""
    if getattr(e, "errno", None) not in (errno.EMFILE, errno.ENFILE) or resource is None:
        return None
    if e.errno == errno.ENFILE:  # the whole system's table, which no shell's limit raises
        return "close other programs: the system's open-file table is full (ENFILE; fs.file-max, which root raises)"
    limit, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # imported at the top: importing it now needs a file
    return (f"raise this shell's open-file limit (ulimit -n, now {limit})" if limit != hard or not os.geteuid() else
            f"run it from a new terminal ({stuck('open-file limit (ulimit -n)', limit)})")


def stuck(what, now):
    """Why a limit is not raised in this shell: bash's `ulimit -f N` sets the hard limit too, which only root raises
    again, so "ulimit -f unlimited" was refused ("cannot modify limit: Operation not permitted")."""
    return f"this shell's {what} is {now}, also its hard limit, which only root raises"


def space_fix(e):
    """The fix for a write the disk refused: free space, except for a file too large (EFBIG), which no free space
    lets through: the shell's file size limit (ulimit -f) or a file system that stops at 4 GiB (FAT32); or too many
    files open (ulimit -n)."""
    if fix := open_files_fix(e):  # no disk space helps either: the open-file limit
        return fix
    if getattr(e, "errno", None) != errno.EFBIG:
        return "free space on its disk"
    import resource
    limit, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    if limit != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or not os.geteuid()):
        return f"raise this shell's file size limit (ulimit -f, now {limit // 1024:,} KiB: ulimit -f unlimited)"
    if limit != resource.RLIM_INFINITY:
        return f"run it from a new terminal ({stuck('file size limit (ulimit -f)', f'{limit // 1024:,} KiB')})"
    return "write to a file system that takes larger files (FAT32 stops at 4 GiB)"


def missing_device(name, fix):
    """Why the device name is not one PyTorch sees here, and what to do (fix for a machine without it), in words;
    "" when it is there. A CUDA index past the GPUs was torch's 'invalid device ordinal' traceback at the first
    tensor, and GPUs that CUDA_VISIBLE_DEVICES hides were called a machine without CUDA, the variable unnamed."""
    import torch
    device = torch.device(name)
    if device.type == "mps" and not torch.backends.mps.is_available():
        return f"this PyTorch build or machine has no MPS device; {fix}"
    if device.type != "cuda":
        return ""
    shown = os.environ.get("CUDA_VISIBLE_DEVICES")
    setting = f"CUDA_VISIBLE_DEVICES={shlex.quote(shown)}" if shown is not None else ""
    if not torch.cuda.is_available():
        if shown is None or torch.version.cuda is None:  # not set, or a CPU build: no variable shows it a GPU
            return f"this PyTorch build or machine has no CUDA device; {fix}"
        return (f"PyTorch sees no CUDA device under {setting}, which hides every GPU it does not name; name one there "
                f"(nvidia-smi lists them) or unset it, or {fix}")
    if device.index is not None and device.index >= (count := torch.cuda.device_count()):
        which = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        numbered = f", the GPUs {setting} names numbered from 0" if setting else ""
        return f"PyTorch sees {count} CUDA device{'s' if count > 1 else ''} ({which}{numbered}); give one of them"
    return ""


def out_of_memory(e, fix):
    """One sentence for an allocation that failed (a model or batch too large for this machine: a CUDA or MPS
    OutOfMemoryError, the CPU allocator's RuntimeError, Python's MemoryError), naming fix; None for other errors."""
    text = str(e)
    if not (type(e).__name__ == "OutOfMemoryError" or isinstance(e, MemoryError)
            or isinstance(e, RuntimeError) and "can't allocate memory" in text):
        return None
    asked = re.search(r"allocate (\d+) bytes|allocate ([\d.]+ ?[KMGT]i?B)", text, re.I)
    size = (f"{int(asked.group(1)):,} bytes" if asked.group(1) else asked.group(2)) if asked else None
    ram = physical_memory()
    if memory_limit() and asked and asked.group(1) and ram and int(asked.group(1)) > ram:  # the CPU allocator's:
        # beyond the machine, which no lifted ulimit -v serves (--vocab_size=1e12 was told "raise it (ulimit -v
        # unlimited)")
        return f"out of memory (asking for {size} more, beyond this machine's {ram:,} bytes of memory); {fix}"
    if memory_limit():
        fix = f"{lift_limit('raise it')}, or {fix}"
    return f"out of memory{f' (asking for {size} more)' if size else ''}{memory_limit()}; {fix}"


def physical_memory():
    """This machine's memory in bytes, or None where the platform does not say (Windows)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def as_text(value):
    """A text setting as the text it is, to compare: outside UTF-8 mode (PYTHONUTF8=0 LC_ALL=C) Python gives the
    command line's non-ASCII bytes as surrogates ('donn\\udcc3\\udca9es'), which a checkpoint keeps; the same path
    typed under a UTF-8 locale is 'données', and a resume or the same command was told its data_dir had changed."""
    if not isinstance(value, str):
        return value
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
    except UnicodeError:  # a lone surrogate of another kind: no bytes stand behind it
        return value


def cache_failure(e):
    """One sentence for torch failing to make its compile cache folder, or None: torch._dynamo makes it when first
    imported, which building any model does (through nn.init), so a TORCHINDUCTOR_CACHE_DIR it cannot make was a
    traceback from every command that builds one, compiling or not."""
    if not isinstance(e, OSError) or not any(f.f_globals.get("__name__") == "torch._inductor.runtime.cache_dir_utils"
                                             for f, _ in traceback.walk_tb(e.__traceback__)):
        return None
    return (f"torch could not make its cache folder {e.filename} ({e.strerror}); set TORCHINDUCTOR_CACHE_DIR to a "
            f"folder it can make and write.")


def compile_failure(e, what="--compile=True", off="pass --compile=False"):
    """One sentence for an error torch.compile raised (dynamo or inductor; a missing C++ compiler for inductor's CPU
    code is the usual one: 40 lines of traceback from deep inside torch), or None for any other error. what: the
    setting or section that compiles; off: how to run without it."""
    inside = [f.f_globals.get("__name__", "") for f, _ in traceback.walk_tb(e.__traceback__)]
    why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    # under an ASCII locale in Python's non-UTF-8 mode (PYTHONUTF8=0 LC_ALL=C) inductor reads its own templates as
    # ASCII: a plain UnicodeDecodeError raised inside it, and no compiler would help
    if isinstance(e, UnicodeError) and any(m.startswith(("torch._dynamo", "torch._inductor")) for m in inside):
        return (f"{what}: torch.compile failed reading its own files in a non-UTF-8 locale ({why}); run "
                f"Python in UTF-8 mode (PYTHONUTF8=1, or a UTF-8 locale such as LC_ALL=C.UTF-8), or {off}.")
    if not type(e).__module__.startswith(("torch._dynamo", "torch._inductor")):
        return None
    # the compiler stopped by the file size limit (ulimit -f) or a full disk: "install a C++ compiler" was the advice
    # (g++ killed by SIGXFSZ, or inductor's own write refused, wrapped)
    said = {errno.EFBIG: ("File size limit exceeded", os.strerror(errno.EFBIG)), errno.ENOSPC: (os.strerror(
        errno.ENOSPC),)}
    refused = next((n for n, words in said.items() if any(w in str(e) for w in words)), None)
    if refused:
        return (f"{what}: torch.compile's C++ compiler could not write its files ({os.strerror(refused)}); "
                f"{space_fix(OSError(refused, os.strerror(refused)))}, or {off}.")
    return (f"{what}: torch.compile failed ({why}); it needs a working C++ compiler on CPU (Triton on a "
            f"GPU): install one, or {off}.")


def tolerant_output():
    """A character the terminal's encoding has no code for (a sample's byte decoded to U+FFFD, an accented path,
    under an ASCII or cp1252 console) is printed escaped, as \\xe9, instead of failing the run mid-line. And stdout
    goes out line by line into a file or pipe too, as at a terminal: Python holds 8 KiB there, so `prepare ... >
    prep.log &` showed `tail -f prep.log` nothing for minutes (a progress line every 5 s), and a kill lost them."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):  # a TextIOWrapper; a test's capture object may not be
            stream.reconfigure(errors="backslashreplace", line_buffering=True)


def stdout_refuses(e):
    """Whether the OSError e is stdout refusing text. A closed pipe is always the output's (no script writes other
    pipes); any other error is stdout's only if stdout refuses one more byte too, not another file's."""
    if isinstance(e, BrokenPipeError):
        return True
    try:
        os.write(sys.stdout.fileno(), b"\n")
    except OSError:
        return True
    return False
