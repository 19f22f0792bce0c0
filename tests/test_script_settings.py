"""Bad settings generated from every argparse script's own declarations. Each numeric setting is declared with
configurator.number(kind, rule), which carries .kind and .rule: from those, 0, -1, NaN, inf and a non-number are tried
wherever they are out of range, and each must be one line naming the option, at parse time (in-process: fast). A
numeric setting declared without a range fails here, so a new one is covered the day it is added. A few cases per
script run as subprocesses to prove the command line: exit non-zero, one line, no traceback, nothing written."""

import argparse
import glob
import importlib
import os
import re
import shlex
import subprocess
import sys
from unittest import mock

import pytest

from checkpoint import BYTES_DATA
import configurator
from configurator import Parser, in_range
from test_bad_inputs import tree_digest
from test_sample import BYTES_META, make_ckpt
from test_train import ROOT, make_data


def find_scripts():
    """Every file of the repository that runs as a command (it has a __main__ block), as a module name. train.py has
    none: it is a plain script, its settings a dict checked by configurator.py and tested with train.py. convert.py's
    and kernel.py's blocks only say they are libraries (tested below), so they have no settings."""
    found = []
    for pattern in ("*.py", "experiments/*.py"):
        for path in sorted(glob.glob(os.path.join(ROOT, pattern))):
            with open(path, encoding="utf-8") as f:
                library = path.endswith((f"{os.sep}convert.py", f"{os.sep}kernel.py"))
                if '__name__ == "__main__"' in f.read() and not library:
                    found.append(os.path.relpath(path, ROOT)[:-3].replace(os.sep, "."))
    return found


SCRIPTS = find_scripts()
BAD = ["0", "-1", "nan", "inf", "abc", "1" + "0" * 400]  # the last: no float or int64 holds it


class Caught(Exception):
    pass


def parser_of(script):
    """The script's ArgumentParser: from its get_parser(), or caught as its main() starts parsing (nothing after
    that runs)."""
    mod = importlib.import_module(script)
    if hasattr(mod, "get_parser"):
        return mod.get_parser()
    if not hasattr(mod, "main"):
        pytest.fail(f"{script} has neither get_parser() nor main(): tests cannot reach its settings")

    def catch(parser, *args, **kwargs):
        raise Caught(parser)
    with mock.patch.object(argparse.ArgumentParser, "parse_args", catch), \
            mock.patch.object(Parser, "parse_args", catch), mock.patch.object(sys, "argv", [script]):
        try:
            mod.main()
        except Caught as c:
            return c.args[0]
    pytest.fail(f"{script}.main() parses no arguments")


def settings(parser):
    """[(option, action)] of every setting that takes a value (help, flags and store_true left out)."""
    return [(max(a.option_strings, key=len), a) for a in parser._actions if a.option_strings and a.nargs != 0]


def flags(parser):
    """[(option, action)] of every on/off option (store_true)."""
    return [(max(a.option_strings, key=len), a) for a in parser._actions if a.option_strings and a.nargs == 0
            and a.dest != "help"]


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def test_every_script_is_found():
    assert set(SCRIPTS) >= {"sample", "eval", "bench", "prepare_slimpajama", "experiments.analyze",
                            "experiments.synthetic", "experiments.rope", "experiments.cpu_lm", "experiments.retrofit",
                            "experiments.scaling"}


@pytest.mark.parametrize("script", SCRIPTS + ["train"])
def test_every_command_stops_quietly_while_torch_imports(script):
    # a Ctrl-C in the seconds torch (or numpy, matplotlib) takes to import was a page of import frames ending in
    # KeyboardInterrupt, and SIGTERM or SIGHUP ended the command with no word: every command but train.py set its
    # handlers only in cli, after those imports. configurator.quiet_start must come before them.
    with open(os.path.join(ROOT, script.replace(".", os.sep) + ".py"), encoding="utf-8") as f:
        text = f.read()
    heavy = re.search(r"^(import|from) (torch|numpy|matplotlib|zstandard)\b", text, re.M)
    assert heavy and 0 <= text.find("quiet_start(") < heavy.start(), script


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_option_says_in_help_what_it_is(script):
    # bench.py --help listed "--device" with neither a line nor its default
    parser = parser_of(script)
    assert [opt for opt, a in settings(parser) + flags(parser) if not (a.help or "").strip()] == []


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_written_with_one_dash_names_help(script, capsys):
    # `sample.py -help` was argparse's "argument -h/--help: ignored explicit argument 'elp'"
    with pytest.raises(SystemExit):
        parser_of(script).parse_args(["-help"])
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        "error: -help is -h with 'elp' after it; write --help (or -h) to list the options")


@pytest.mark.parametrize("script", ["experiments.cpu_lm", "experiments.retrofit", "experiments.rope",
                                    "experiments.scaling"])
def test_every_study_on_prepared_data_says_in_help_how_to_prepare_it(script):
    # rope's and scaling's --help said "--data_dir: byte-level data, as this file's docstring makes" (or "see the
    # docstring") and showed no docstring; cpu_lm's and retrofit's joined the command's continuation lines
    text = parser_of(script).format_help()
    assert "python prepare_slimpajama.py --input=input.txt --tokenizer=bytes --val_fraction=0.1" in text, text
    assert "--out_dir=data/cpu_lm_bytes" in text and "docstring" not in text and "0.1         --out_dir" not in text


@pytest.mark.parametrize("script", SCRIPTS)
def test_numeric_settings_are_declared_with_ranges_and_refuse_generated_bad_values(script, capsys):
    parser, undeclared, wrong = parser_of(script), [], []
    for opt, a in settings(parser):
        rule = getattr(a.type, "rule", None)
        default = a.default if isinstance(a.default, (list, tuple)) else [a.default]
        if rule is None:
            if a.type in (int, float) or any(is_number(v) for v in default):
                undeclared.append(opt)
            continue
        if a.default is not None and not all(in_range(v, rule) for v in default):
            wrong.append(f"{opt}: its default {a.default!r} is not {rule}")
        for value in BAD:
            if value in ("0", "-1") and in_range(int(value), rule):
                continue
            try:
                parser.parse_args([f"{opt}={value}"])
                wrong.append(f"{opt}={value} accepted")
                continue
            except SystemExit as e:
                code = e.code
            lines = [line for line in capsys.readouterr().err.splitlines()
                     if line.strip() and not line.startswith(("usage:", " "))]
            if code == 0 or len(lines) != 1 or f"argument {opt}" not in lines[0] or rule not in lines[0]:
                wrong.append(f"{opt}={value}: exit {code}, {lines}")
    assert undeclared == [], f"{script}: numeric settings without configurator.number(kind, rule): {undeclared}"
    assert wrong == []


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_text_setting_with_a_default_given_empty_is_one_line_naming_the_default(script, capsys):
    # sample.py --out_dir= said "no checkpoint at ckpt.pt: train one"; --out_dir= meant the current folder elsewhere
    parser, wrong = parser_of(script), []
    required = [f"{max(a.option_strings, key=len)}=x" for a in parser._actions if a.required and a.option_strings]
    for opt, a in settings(parser):
        if a.type is not None or a.choices or not isinstance(a.default, str) or not a.default or a.required:
            continue  # a required option has no default to leave it out for: the test below
        for value, what in (("", "empty"), (" ", "only spaces (' ')")):  # " ": a folder named ' '
            with pytest.raises(SystemExit) as e:
                parser.parse_args([*required, f"{opt}={value}"])
            lines = [line for line in capsys.readouterr().err.splitlines() if line.strip() and not line.startswith(
                ("usage:", " "))]
            if e.value.code != 2 or len(lines) != 1 or not lines[0].endswith(
                    f"error: {opt} is {what}; give it a value, or leave it out for the default {a.default!r}"):
                wrong.append((opt, value, e.value.code, lines))
    assert wrong == []


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_text_setting_without_a_default_given_spaces_is_one_line(script, capsys):
    # eval.py --out=" " and analyze --out=" " wrote their results into a folder named ' ', scaling --root=" " trained
    # there; prepare's --input "" was "--input  does not exist"; analyze's required --out_dir= was told to "leave it
    # out for the default '==SUPPRESS=='"
    parser, wrong, tried = parser_of(script), [], 0
    required = {max(a.option_strings, key=len) for a in parser._actions if a.required and a.option_strings}
    for opt, a in settings(parser):
        if a.type is not None or a.choices or not (a.default is None or isinstance(a.default, list) or
                                                   opt in required):
            continue
        for value, what in (("", "empty"), (" ", "only spaces (' ')")):
            if value == "" and a.default is None:  # the default (eval's --out), or none (analyze's --out='')
                continue
            tried += 1
            args = [f"{o}=x" for o in required - {opt}] + ([opt, value] if a.nargs == "+" else [f"{opt}={value}"])
            with pytest.raises(SystemExit) as e:
                parser.parse_args(args)
            lines = [line for line in capsys.readouterr().err.splitlines() if line.strip() and not line.startswith(
                ("usage:", " "))]
            fix = ", or leave it out" if a.default is None else ""
            if e.value.code != 2 or len(lines) != 1 or not lines[0].endswith(
                    f"error: {opt} is {what}; give it a value{fix}"):
                wrong.append((opt, value, e.value.code, lines))
    assert wrong == []
    assert tried or script not in ("eval", "prepare_slimpajama", "experiments.analyze", "experiments.scaling")


def text_refusals(parser, capsys, value, message):
    """[(option, exit code, stderr lines)] of each plain text option of parser given value (after a space for a list
    option, '=' for the rest) that does not exit 2 with one line ending in 'error: ' + message(option)."""
    wrong = []
    required = {max(a.option_strings, key=len) for a in parser._actions if a.required and a.option_strings}
    for opt, a in settings(parser):
        if a.type is not None or a.choices:
            continue
        args = [f"{o}=x" for o in required - {opt}] + ([opt, value] if a.nargs == "+" else [f"{opt}={value}"])
        with pytest.raises(SystemExit) as e:
            parser.parse_args(args)
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip() and not line.startswith(
            ("usage:", " "))]
        if e.value.code != 2 or len(lines) != 1 or not lines[0].endswith(f"error: {message(opt)}"):
            wrong.append((opt, e.value.code, lines))
    return wrong


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_text_setting_holding_a_control_character_is_one_line(script, capsys):
    # sample.py --out_dir=$'out\n' looked for 'out\n/ckpt.pt'; train.py --out_dir=$'x\n' trained into such a folder
    assert text_refusals(parser_of(script), capsys, "x\ty", lambda opt: (
        f"{opt} holds the control character '\\t' ('x\\ty'), which no name or path means; give it without control "
        f"characters")) == []


def test_a_utf8_name_read_under_a_latin1_locale_holds_no_control_character(monkeypatch):
    # a UTF-8 terminal's runs/日本 under a Latin-1 locale is 'runs/æ\x97¥æ\x9c¬' to Python: bytes 0x97 and 0x9c
    # were C1 control characters, and every command refused a folder that exists
    monkeypatch.setattr(sys, "getfilesystemencoding", lambda: "iso8859-1")
    typed = "runs/\u65e5\u672c".encode("utf-8").decode("latin-1")
    assert configurator.control_error("--out_dir", typed) is None
    assert configurator.control_error("--out_dir", "x\u0085".encode("utf-8").decode("latin-1"))  # NEL typed: refused
    assert configurator.control_error("--out_dir", "x\n")


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_text_setting_holding_another_option_quoted_in_is_one_line(script, capsys):
    # "$ARGS" quoted in a script: bench.py '--out=x --quick' ran the full benchmark (10 minutes) into 'x --quick',
    # eval.py '--out=r --text=t.txt' the default tasks into 'r --text=t.txt' (train.py refused it: configure)
    parser = parser_of(script)
    other = (flags(parser) + settings(parser))[0][0]  # one of this parser's own options, a flag where it has one
    for inner in (other, "--max_iters=1"):  # its own option, a flag at the end too; any --word=
        assert text_refusals(parser, capsys, f"x {inner}", lambda opt: (
            f"{opt}='x {inner}' holds another setting, {inner}: quotes around several settings pass them as one "
            f"argument; give each --key=value as its own argument")) == [], inner
    names = [opt for opt, a in settings(parser) if a.type is None and not a.choices and a.nargs is None]
    parser.parse_known_args([f"{opt}=my run --b" for opt in names[:1]])  # a name stays a name: no SystemExit


@pytest.mark.parametrize("script", ["experiments.rope", "experiments.retrofit"])
def test_report_and_redraw_together_are_refused(script, capsys):
    # each is "only" one part: --report --redraw drew the figure alone and printed no report, exit 0
    with pytest.raises(SystemExit) as e:
        parser_of(script).parse_args(["--report", "--redraw"])
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith("error: argument --redraw: not allowed with argument "
                                                             "--report")


# Options a mode reads nothing of: each script's UNREAD table (configurator.Parser.unread), tried row by row. Each
# row gives the option in the mode that leaves it unread (refused: it ran as though it were not there, exit 0), and
# the same command without it, or in a mode that reads it, runs as before. A row added to a table needs its
# command here, or the first test fails.
UNREAD_CASES = {  # (script, option): (arguments in the mode that does not read it, arguments in one that does)
    ("sample", "out_dir"): (["--init_from=gpt2", "--out_dir=out-x"], ["--out_dir=out-x"]),
    ("eval", "out_dir"): (["--init_from=gpt2", "--out=res", "--out_dir=out-x"], ["--init_from=gpt2", "--out_dir=x"]),
    ("prepare_slimpajama", "out_dir"): (["--input=a.txt", "--benchmark", "--out_dir=d"],
                                        ["--input=a.txt", "--out_dir=d"]),
    ("prepare_slimpajama", "val_fraction"): (["--input=a.txt", "--benchmark", "--val_fraction=0.1"],
                                             ["--input=a.txt", "--val_fraction=0.1"]),
    ("prepare_slimpajama", "val_tokens"): (["--input=a.txt", "--val_fraction=0", "--val_tokens=500"],
                                           ["--input=a.txt", "--val_fraction=0.1", "--val_tokens=500"]),
    ("prepare_slimpajama", "train_tokens"): (["--input=a.txt", "--benchmark", "--train_tokens=1000"],
                                             ["--input=a.txt", "--train_tokens=1000"]),
    ("prepare_slimpajama", "val_tokens#2"): (["--input=a.txt", "--val_input=b.txt", "--benchmark", "--val_tokens=9"],
                                             ["--input=a.txt", "--val_input=b.txt", "--val_tokens=9"]),
    ("experiments.synthetic", "pos_conv"): (["--models=qkv,qk_v", "--pos_conv=8"], ["--models=qkv+", "--pos_conv=8"]),
    ("experiments.synthetic", "periodic"): (["--models=q_kv", "--periodic"], ["--models=q_kv,q_kv+", "--periodic"]),
    ("experiments.scaling", "jobs"): (["--report", "--jobs=4"], ["--jobs=4"]),
}


def unread_tables():
    # an option unread in two modes has two rows: the second is keyed NAME#2
    rows = {}
    for script in SCRIPTS:
        for name, *rule in getattr(importlib.import_module(script), "UNREAD", []):
            key = (script, name)
            rows[key if key not in rows else (script, f"{name}#2")] = rule
    return rows


def test_every_unread_row_has_a_case():
    assert sorted(unread_tables()) == sorted(UNREAD_CASES)


@pytest.mark.parametrize("script, name", sorted(UNREAD_CASES), ids=[f"{s} --{n}" for s, n in sorted(UNREAD_CASES)])
def test_an_option_its_mode_does_not_read_is_refused(script, name, capsys, tmp_path, monkeypatch):
    mode, why = unread_tables()[script, name]
    unread, read = UNREAD_CASES[script, name]
    name = name.split("#")[0]
    parser = parser_of(script)
    assert f"--{name}" in unread[-1] and mode(parser.parse_args(unread))  # the row's mode, the option given
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:  # the command itself, before any work
        importlib.import_module(script).main(unread)
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"error: --{name} is read by nothing here: {why}.")
    assert os.listdir(tmp_path) == []
    # without the option the mode runs as before; and in a mode that reads it, it is taken
    parser.unread(parser.parse_args(unread[:-1]), importlib.import_module(script).UNREAD)
    parser.unread(parser.parse_args(read), importlib.import_module(script).UNREAD)


@pytest.mark.parametrize("script", ["sample", "eval"])
def test_a_run_given_as_init_from_names_out_dir(script, capsys, tmp_path, monkeypatch):
    # train.py's --init_from=<checkpoint>: sample.py and eval.py said only "invalid choice", with no word of --out_dir
    monkeypatch.chdir(tmp_path)
    os.makedirs("my run")
    open("my run/ckpt.pt", "w").close()
    for given in ("my run", "my run/ckpt.pt"):
        with pytest.raises(SystemExit):
            parser_of(script).parse_args([f"--init_from={given}"])
        assert capsys.readouterr().err.splitlines()[-1].endswith(
            f"--init_from: is resume (the default: out_dir's checkpoint) or a GPT-2 size; to load {given}, write "
            f"--out_dir='my run'")
    # a checkpoint saved under another name: "--out_dir=." read ./ckpt.pt, which is not there
    open("model.pt", "w").close()
    with pytest.raises(SystemExit):
        parser_of(script).parse_args(["--init_from=model.pt"])
    assert capsys.readouterr().err.splitlines()[-1].endswith("to load model.pt, write --out_dir=model.pt")
    assert parser_of(script).parse_args(["--init_from=gpt2"]).init_from == "gpt2"


def test_parser_knows_which_options_the_command_line_gave():
    # argparse fills every default in, so an option given at its default looked the same as none given
    p = Parser()
    p.add_argument("--out_dir", default="out")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--n", type=int, default=1)
    p.parse_args(["--out_dir=out", "--n", "2"])
    assert p.given == {"out_dir", "n"}
    p.parse_args([])
    assert p.given == set()


# ---------------------------------------------------------------------------------------------------------------
# The command line of the scripts whose settings are checked here, as a user runs them.

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny checkpoint (4 heads, block_size 64, head_dim 8) and its data."""
    w = tmp_path_factory.mktemp("settings")
    make_data(w / "data")
    make_ckpt(w / "run", BYTES_META, config={"data_dir": str(w / "data")})
    make_data(w / "r50k", tokenizer="r50k_base", vocab_size=50257)
    (w / "binary.txt").write_bytes(b"\xff\xff not UTF-8")
    return w


CLI = [
    (["sample.py", "--out_dir={w}/run", "--n_kv_head=3"],
     "cannot convert {w}/run: n_kv_head must divide n_head=4 (0 = n_head, 1 = MQA, g = GQA-g); got 3."),
    (["sample.py", "--out_dir={w}/run", "--proj=qk_v", "--calib="], "argument --calib: is empty"),
    (["eval.py", "--out_dir={w}/run", "--limit=nan"], "argument --limit: must be a finite number > 0; got nan."),
    (["experiments.analyze", "--out_dir={w}/run", "--tokens=63"],
     "--tokens must be at least one block of {w}/run (block_size 64); got 63."),
    (["experiments.analyze", "--out_dir={w}/run", "--rank=9"], "--rank must be at most the head_dim of {w}/run (8)"),
    # found by the second hostile pass: tracebacks, a silent skip, wrong advice, a silent exit 0
    (["sample.py", "--out_dir={w}/run", "--start=FILE:{w}/binary.txt"],
     "--start=FILE:{w}/binary.txt: cannot read it as UTF-8 text (invalid start byte; it reads as Windows-1252"),
    (["sample.py", "--out_dir={w}/run", "--start=FILE:{w}/data"], "cannot read it as UTF-8 text (Is a directory)"),
    # found by the sixth: bytes that are not UTF-8 on the command line (--start=$'\xff') were a UnicodeEncodeError
    (["sample.py", "--out_dir={w}/run", "--start=\udcffab"], "argument --start: holds bytes that are not UTF-8 text"),
    (["sample.py", "--out_dir={w}/run", "--proj=qk_v", "--calib=ab\udcfe"],
     "argument --calib: holds bytes that are not UTF-8 text"),
    (["bench.py", "--quick", "--what=cache", "--device=foo", "--out={w}/bench"],
     "--device must be cpu, cuda, cuda:N or mps; got 'foo'."),
    (["experiments.scaling", "--quick", "--data_dir={w}/data", "--root={w}/binary.txt"],
     "{w}/binary.txt is a file, not a directory; choose another --root."),
    (["experiments.analyze", "--out_dir={w}/run", "--data_dir={w}/nowhere", "--out={w}/an"],
     "--data_dir '{w}/nowhere' has no val.bin"),
    (["eval.py", "--out_dir={w}/run", "--tasks=foo", "--include_path={w}/nowhere"],
     "--include_path '{w}/nowhere' is not a directory"),
    (["convert.py", "--out_dir={w}/run", "--proj=qk_v"], "convert.py is a library, not a command"),
    (["kernel.py"], "kernel.py is a library, not a command"),  # exit 0, having run nothing
    # GPT-2 BPE data for a byte-level study: the fix is byte-level data, not the --vocab_size the studies lack
    (["experiments.rope", "--quick", "--data_dir={w}/r50k"],
     ("experiments.rope needs byte-level data (vocab_size 256) and {w}/r50k/meta.json records tokenizer 'r50k_base' "
      "(vocab_size 50257); prepare byte-level data with `") + BYTES_DATA.format("data/cpu_lm_bytes") +
     "` and leave --data_dir out."),  # it said only to prepare data/cpu_lm_bytes, which --data_dir overrode
    (["experiments.scaling", "--quick", "--data_dir={w}/r50k", "--root={w}/sc"],
     "experiments.scaling needs byte-level data (vocab_size 256) and {w}/r50k/meta.json records tokenizer 'r50k_base'"),
]


@pytest.mark.parametrize("argv, want", CLI, ids=[" ".join(a[:1] + a[2:]) for a, _ in CLI])
def test_command_line_is_one_line_and_writes_nothing(world, argv, want):
    w = world
    argv = [a.format(w=w) for a in argv]
    if argv[0].startswith("experiments."):
        argv.insert(0, "-m")
    before = tree_digest(w, os.path.join(ROOT, "assets"))
    r = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode != 0 and r.stdout == "", r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip() and not line.startswith(("usage:", " "))]
    assert len(lines) == 1 and want.format(w=w) in lines[0], r.stderr
    assert tree_digest(w, os.path.join(ROOT, "assets")) == before
    assert sorted(os.listdir(w / "run")) == ["ckpt.pt"]  # no eval/, no projections.png


@pytest.mark.parametrize("study", [["experiments.cpu_lm"], ["experiments.retrofit", "--quick"]])
def test_a_study_without_data_dir_on_gpt2_data_names_byte_level_data(tmp_path, study):
    # these read config/cpu_lm.py's data/cpu_lm_bytes where they run: here a copy of GPT-2 BPE data; the command
    # names the repository's prepare_slimpajama.py (`python prepare_slimpajama.py` is not there)
    make_data(tmp_path / "data" / "cpu_lm_bytes", tokenizer="r50k_base", vocab_size=50257)
    r = subprocess.run([sys.executable, "-m", *study], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT))
    script = shlex.quote(os.path.join(ROOT, "prepare_slimpajama.py"))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == (f"{study[0]} needs byte-level data (vocab_size 256) and data/cpu_lm_bytes/meta.json records "
                        f"tokenizer 'r50k_base' (vocab_size 50257); prepare byte-level data with "
                        f"`{BYTES_DATA.format('data/cpu_lm_bytes').replace('prepare_slimpajama.py', script, 1)}` "
                        f"after moving these away.\n")
    assert os.listdir(tmp_path) == ["data"]  # no run or report folder before the data is right


def test_a_study_given_short_gpt2_data_is_told_it_needs_bytes_not_more(tmp_path):
    # rope's --data_dir of GPT-2 BPE data with a short val.bin was told to prepare more data, then, more prepared,
    # that it needs byte-level data (the 23rd pass, second round)
    from checkpoint import open_data
    make_data(tmp_path / "gpt2", tokenizer="r50k_base", vocab_size=50257)  # 4,000 val tokens
    with pytest.raises(SystemExit) as e:
        open_data(str(tmp_path / "gpt2"), 8192, 256, study="experiments.rope")
    assert str(e.value).startswith("experiments.rope needs byte-level data (vocab_size 256)"), e.value


def test_a_misspelt_data_dir_names_the_prepared_folder_beside_it(tmp_path, monkeypatch):
    # --data_dir=data/shakespeare_byte (a letter short, another case, a trailing space) was told to prepare the data
    # again into the misspelt folder (the 28th pass); a name not near any is still told to prepare it
    from checkpoint import open_data
    make_data(tmp_path / "data" / "shakespeare_bytes")
    monkeypatch.chdir(tmp_path)
    typos = ("data/shakespeare_byte", "data/Shakespeare_bytes", "data/shakespeare_bytes ", "./data/shakespeare_bytz")
    for typo in typos:
        with pytest.raises(SystemExit) as e:
            open_data(typo, 1024, 256)
        assert str(e.value).startswith(f"data_dir {typo!r} does not exist, but 'data/shakespeare_bytes' beside it "
                                       f"holds prepared data; set --data_dir=data/shakespeare_bytes if you meant "
                                       f"it, or prepare it with"), e.value
    with pytest.raises(SystemExit) as e:
        open_data("data/poems", 1024, 256)
    assert str(e.value).startswith("data_dir 'data/poems' has no train.bin; prepare it with"), e.value


def test_a_folder_of_raw_text_given_as_data_dir_is_told_where_to_prepare_it(tmp_path, monkeypatch):
    # --data_dir=corp, the corpus itself, was told to prepare "it" with --out_dir=corp: into the corpus folder, and
    # for a GPT-2 model the SlimPajama download there
    from checkpoint import open_data, script
    monkeypatch.chdir(tmp_path)
    prepare = script("prepare_slimpajama.py")  # a path where the project is not the current folder
    for name in ("corp/a.txt", "corp/b.jsonl", "data/c2/a.txt"):
        os.makedirs(os.path.dirname(name), exist_ok=True)
        open(name, "w").write("text\n")
    with pytest.raises(SystemExit) as e:
        open_data("corp", 1024, 50304)
    assert str(e.value) == ("data_dir 'corp' holds text (2 files such as a.txt), not the data prepare_slimpajama.py "
                            f"writes from it; prepare it into a folder of its own with `python {prepare} "
                            "--input=corp --out_dir=data/corp` and set --data_dir=data/corp."), e.value
    with pytest.raises(SystemExit) as e:  # already under data/: beside it, not into it
        open_data("data/c2", 1024, 256)
    assert "holds text (a.txt)" in str(e.value) and (f"`python {prepare} --input=data/c2 --tokenizer=bytes "
                                                     "--val_fraction=0.1 --out_dir=data/c2_prepared`") in str(e.value)


def test_a_run_out_dir_given_as_data_dir_is_not_told_to_prepare_its_log(tmp_path, monkeypatch):
    # --data_dir=out-mine (the run's out_dir, not the data): its log.jsonl was "text" to prepare with
    # --input=out-mine, which prepare then refused line 1 of (no 'text' field), leaving a partial dataset
    from checkpoint import open_data
    monkeypatch.chdir(tmp_path)
    os.makedirs("out-mine")
    for name in ("ckpt.pt", "log.jsonl"):
        open(os.path.join("out-mine", name), "w").write("{}\n")
    with pytest.raises(SystemExit) as e:
        open_data("out-mine", 32, 256)
    assert str(e.value) == ("data_dir 'out-mine' is a training run's out_dir (it holds ckpt.pt), not data "
                            "prepare_slimpajama.py wrote; set --data_dir to the folder prepare wrote."), e.value


def test_a_study_given_the_folder_above_its_data_names_it(tmp_path, monkeypatch):
    # rope and scaling --data_dir=data for data/x were told to prepare data into data/ itself, as train.py was
    # before a3a2953 (the 23rd pass, second round); cpu_lm's own data/cpu_lm_bytes takes no --data_dir
    from checkpoint import open_data
    make_data(tmp_path / "data" / "x")
    make_data(tmp_path / "data" / "cpu_lm_bytes" / "x")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        open_data("data", 1024, 256, study="experiments.rope")
    assert str(e.value).startswith("data_dir 'data' has no train.bin, but data/x holds prepared data; set --data_dir "
                                   "to it, or prepare it with"), e.value
    make_data(tmp_path / "data" / "gpt2", tokenizer="r50k_base", vocab_size=50257)  # a byte-level study cannot
    with pytest.raises(SystemExit, match="but data/x holds prepared data"):  # read it: not named (third round)
        open_data("data", 1024, 256, study="experiments.rope")
    with pytest.raises(SystemExit) as e:
        open_data("data/cpu_lm_bytes", 1024, 256, study="experiments.cpu_lm")
    assert str(e.value).startswith("data_dir 'data/cpu_lm_bytes' has no train.bin; prepare it with"), e.value
