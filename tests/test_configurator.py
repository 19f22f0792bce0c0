import argparse
import importlib
import io
import math
import os
import signal
import subprocess
import sys
import time
import types

import pytest
import torch

from configurator import (Parser, boolean, cli, compile_failure, configure, describe, number, range_error,
                          Terminated, interrupted_at_start, stop_on_sigterm)
from test_bad_inputs import run_here

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULTS = {"learning_rate": 6e-4, "min_lr": 6e-5, "max_iters": 100, "compile": False, "out_dir": "out",
            "proj": "qkv"}


def test_a_closed_stdin_named_as_a_file_is_said_closed_not_a_link_to_restore_or_remove(tmp_path):
    # /dev/stdin under `<&-` is a link to /proc/self/fd/0, which is gone: every command told the user "a disk not
    # mounted? restore what it points to, or remove the link" (/dev/stdin itself)
    import checkpoint
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)  # a descriptor of this process now closed, as 0 is under `<&-`
    stdin = tmp_path / "stdin"
    stdin.symlink_to(f"/proc/self/fd/{fd}")
    said = f"{stdin} is this process's descriptor {fd}, which is closed (as `<&-` leaves it); give the command " \
           f"that input, or a file."
    assert checkpoint.dangling(str(stdin)) == said  # prepare's --input, eval's --text, sample's FILE:
    with pytest.raises(SystemExit) as e:
        configure(DEFAULTS, [str(stdin)])
    assert str(e.value) == "config file " + said


def test_a_loop_of_links_is_said_a_loop_not_a_link_to_something_missing(tmp_path):
    # loop1 -> loop2 -> loop1: "loop1 is a link to 'loop2', which does not exist (a disk not mounted?)", where ls shows
    # loop2 there
    import checkpoint
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    loop = str(tmp_path / "loop1")
    said = f"{loop} is a link that leads into a loop of links (through 'loop2'), which reaches no file; point it " \
           f"elsewhere, or give another path."
    assert checkpoint.dangling(loop) == said  # every file a command reads
    with pytest.raises(SystemExit) as e:
        configure(DEFAULTS, [loop])
    assert str(e.value) == "config file " + said
    assert checkpoint.unwritable(loop) == "a link to 'loop2', which leads into a loop of links"  # every output
    # a link to the loop is in none: "leads back to itself" was false of it
    (tmp_path / "x").symlink_to("loop1")
    assert checkpoint.dangling(str(tmp_path / "x")).startswith(f"{tmp_path / 'x'} is a link that leads into a loop "
                                                                f"of links (through 'loop1'), which reaches no file")


def test_overrides_are_parsed_as_literals_or_strings():
    got, given = configure(DEFAULTS, ["--learning_rate=1e-3", "--max_iters=7", "--compile=True", "--out_dir=out-x/y",
                                      "--proj='qk_v'"])
    assert got == dict(DEFAULTS, learning_rate=1e-3, max_iters=7, compile=True, out_dir="out-x/y", proj="qk_v")
    assert given == {"learning_rate", "max_iters", "compile", "out_dir", "proj"}


def test_a_string_setting_takes_the_text_as_typed():
    for text in ("123", "None", "1e3", "[1]"):  # each was 'out_dir must be of type str', with no way to say it
        assert configure(DEFAULTS, [f"--out_dir={text}"])[0]["out_dir"] == text
    assert configure(DEFAULTS, ["--out_dir='a b'"])[0]["out_dir"] == "a b"  # a quoted literal is still unquoted


def test_help_into_a_closed_pipe_is_quiet():
    read, write = os.pipe()  # `python train.py --help | head -1`: the reader gone before the rest is printed
    os.close(read)
    code = "import configurator; configurator.configure({}, ['--help'], lambda: 'x' * 100_000)"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, stdout=write, stderr=subprocess.PIPE, text=True)
    os.close(write)
    assert r.returncode == 0 and r.stderr == ""  # was a BrokenPipeError traceback


def test_help_into_a_full_disk_is_one_line():
    code = "import configurator; configurator.configure({}, ['--help'], lambda: 'x' * 100_000)"
    with open("/dev/full", "w") as full:  # every write fails as on a full disk
        r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True)
    assert r.returncode == 1 and r.stderr == "could not print the help (No space left on device).\n"  # was a traceback


def test_int_is_accepted_where_a_float_is_expected():
    got, _ = configure(DEFAULTS, ["--learning_rate=1"])
    assert got["learning_rate"] == 1.0 and type(got["learning_rate"]) is float


@pytest.mark.parametrize("text", ["03", "00003", "\uff13", "\u0663", " 3", "+3"])
def test_an_integer_in_any_spelling_int_reads_is_the_int_as_in_the_argparse_scripts(text):
    # --max_iters=03 and full-width or Arabic-Indic digits were "max_iters must be of type int; gives 3.0 of type
    # float", where sample.py --max_new_tokens=03 (argparse, int()) took 3
    assert number(int, ">= 1")(text) == 3
    got = configure(DEFAULTS, [f"--max_iters={text}", f"--learning_rate={text}"])[0]
    assert got["max_iters"] == 3 and type(got["max_iters"]) is int and got["learning_rate"] == 3.0


@pytest.mark.parametrize("arg, words", [
    ("--max_iters=1.5", ["max_iters", "int", "1.5"]),
    ("--compile=yes", ["compile", "bool"]),
    ("--max_iters=True", ["max_iters", "int", "True"]),
    ("--learning_rate=fast", ["learning_rate", "float", "'fast'"]),
])
def test_type_mismatch_names_the_expected_type(arg, words):
    with pytest.raises(SystemExit) as e:
        configure(DEFAULTS, [arg])
    assert all(w in str(e.value) for w in words), str(e.value)


def test_several_settings_quoted_as_one_argument_are_refused():
    # python train.py "$ARGS" with ARGS="--out_dir=x --max_iters=1": the config's whole run trained into a folder
    # named 'x --max_iters=1' (the 23rd pass); a space or a dash alone in a name is still a name
    with pytest.raises(SystemExit) as e:
        configure(DEFAULTS, ["--out_dir=my run --max_iters=1"])
    assert str(e.value) == ("--out_dir='my run --max_iters=1' holds another setting, --max_iters=1: quotes around "
                            "several settings pass them as one argument; give each --key=value as its own argument.")
    assert configure(DEFAULTS, ["--out_dir=my run --b"])[0]["out_dir"] == "my run --b"
    # dashed, or its value after a space: slipped past, and trained the config's whole run into that folder
    for value, inner in (("x --max-iters=1", "--max-iters=1"), ("x --max_iters 1", "--max_iters 1")):
        with pytest.raises(SystemExit, match=f"^--out_dir='{value}' holds another setting, {inner}: quotes"):
            configure(DEFAULTS, [f"--out_dir={value}"])
    assert configure(DEFAULTS, ["--out_dir=my run - v2 --b 1"])[0]["out_dir"] == "my run - v2 --b 1"
    # a mistyped or capitalized key quoted in: trained the config's run into 'x --lr=1e-3', the typo unreported
    # ... or a setting at the end, with no value after it (bench.py '--out=x --quick' ran the full benchmark)
    for value, inner in (("x --lr=1e-3", "--lr=1e-3"), ("x --Max_Iters 1", "--Max_Iters 1"),
                         ("x --compile", "--compile"), ("x --fast --max_iters=1", "--max_iters=1"),
                         ("x --v2 --compile", "--compile")):  # each one, not only the first (an unknown flag first)
        with pytest.raises(SystemExit, match=f"^--out_dir='{value}' holds another setting, {inner}: quotes"):
            configure(DEFAULTS, [f"--out_dir={value}"])
    # a config file quoted with its settings ("$ARGS" = "config/x.py --max_iters=5") was told "overrides are written
    # --key=value", as they were; a file's name with ' --' that holds no setting is still "not found"
    with pytest.raises(SystemExit, match=r"^config file 'config/x.py --max_iters=5' holds another setting, "
                                         r"--max_iters=5: quotes around"):
        configure(DEFAULTS, ["config/x.py --max_iters=5"])
    with pytest.raises(SystemExit, match=r"^config file 'my run --v2.py' not found"):
        configure(DEFAULTS, ["my run --v2.py"])


def test_a_folder_that_is_there_named_with_a_setting_in_it_is_the_users(tmp_path, monkeypatch):
    # a data folder 'data --compile' (train.py) or an out_dir 'runs --compile' (sample.py) that is there was told
    # to give each --key=value as its own argument, which no spelling of the folder could do
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data --compile").mkdir()
    assert configure(DEFAULTS, ["--out_dir=data --compile"])[0]["out_dir"] == "data --compile"
    with pytest.raises(SystemExit, match=r"^--out_dir='new --compile' holds another setting"):
        configure(DEFAULTS, ["--out_dir=new --compile"])


def test_an_on_off_setting_takes_the_words_every_command_takes():
    # train.py --compile=true (or 1, TRUE) was "compile must be of type bool", where sample.py --compile=true and
    # prepare's --skip_bad=1 were taken: one boolean() now reads them all; a bare --compile was told "--compile=VALUE"
    for text, want in (("true", True), ("TRUE", True), ("1", True), ("True", True), ("false", False), ("0", False)):
        assert configure(DEFAULTS, [f"--compile={text}"])[0]["compile"] is want
        assert boolean(text) is want
    with pytest.raises(SystemExit, match=r"^argument '--compile' has no value; write --compile=True \(or False\)\.$"):
        configure(DEFAULTS, ["--compile"])
    with pytest.raises(SystemExit, match=r"^compile must be of type bool \(like False\); --compile=on gives 'on' "):
        configure(DEFAULTS, ["--compile=on"])


@pytest.mark.parametrize("arg, what", [
    ("", "is empty (as a quoted shell variable that is unset or empty gives)"),
    (" ", "is only blanks (as a quoted shell variable holding only blanks gives)"),  # was called empty
])
def test_an_empty_argument_is_one_sentence_naming_it(capsys, arg, what):
    # `python sample.py ... "$EXTRA"` with EXTRA unset: an IndexError traceback in every command ("" is in every
    # string, so pasted_dash took it for a dash), and once past that "unrecognized arguments: " naming nothing
    said = f"argument {arg!r} {what}; leave it out"
    with pytest.raises(SystemExit) as e:
        configure(DEFAULTS, ["--max_iters=3", arg])
    assert str(e.value) == said + "."
    p = Parser(prog="x")
    p.add_argument("--start", default="\n", type=str)
    with pytest.raises(SystemExit):
        p.parse_args(["--start=a", arg])
    assert capsys.readouterr().err.splitlines()[-1] == f"x: error: {said}"
    assert p.parse_args(["--start", arg]).start == arg  # a value of an option is its own
    # one of several values ("$EXTRA" after --input's files): "--input is empty; give it a value", which it has
    p.add_argument("--input", nargs="+", default=[])
    with pytest.raises(SystemExit):
        p.parse_args(["--input", "a.txt", arg])
    assert capsys.readouterr().err.splitlines()[-1] == f"x: error: {said}"
    with pytest.raises(SystemExit):  # its only value: empty, as before
        p.parse_args(["--input", arg])
    assert "x: error: --input is " in capsys.readouterr().err


def test_an_argument_pasted_from_a_formatted_page_names_its_typographic_dash_or_quotes(capsys):
    # —max_iters=3 (an em dash where a page rendered --) was "config file not found" in train.py and "unrecognized
    # arguments" elsewhere; --out_dir=“out-x” trained into a folder named '“out-x”', eval --text=“a.txt” said no file
    for args, said in (
            (["—max_iters=3"], "argument '—max_iters=3' starts with '—' (U+2014), a typographic dash pasted from a "
                               "formatted page, not '--'; write --max_iters=3"),
            (["\u2212\u2212max_iters=3"], "argument '−−max_iters=3' starts with '−' (U+2212), a typographic dash "
                                          "pasted from a formatted page, not '--'; write --max_iters=3"),
            (["--out_dir=“out-x”"], "--out_dir is given between typographic quotes ('“out-x”'), which the shell keeps "
                                    "in the value; retype them as ASCII quotes, or leave them out: --out_dir=out-x")):
        with pytest.raises(SystemExit) as e:
            configure(DEFAULTS, args)
        assert str(e.value) == said + "."
        p = Parser(prog="x")
        p.add_argument("--out_dir", default="out")
        p.add_argument("--max_iters", type=number(int, ">= 0"), default=3)
        p.add_argument("--start", default="\n", type=str)  # text of its own type: a prompt may hold both
        with pytest.raises(SystemExit):
            p.parse_args(args)
        assert capsys.readouterr().err.splitlines()[-1] == f"x: error: {said}"
        assert p.parse_args(["--start", "— and “so”"]).start == "— and “so”"


def test_a_number_with_a_typographic_minus_names_it(capsys):
    # 6e−4 (U+2212, as a paper prints it) was "learning_rate must be of type float; gives '6e−4' of type str", and
    # "must be a number >= 0; got '−0.5'" in sample.py: both read as the value the user meant
    with pytest.raises(SystemExit) as e:
        configure(DEFAULTS, ["--learning_rate=6e\u22124"])
    assert str(e.value) == ("--learning_rate=6e−4 holds '−' (U+2212), a typographic minus pasted from a formatted "
                            "page; write --learning_rate=6e-4.")
    with pytest.raises(argparse.ArgumentTypeError) as e:
        number(float, ">= 0")("\u22120.5")
    assert str(e.value) == "'−0.5' holds '−' (U+2212), a typographic minus pasted from a formatted page; write -0.5."
    assert configure(DEFAULTS, ["--out_dir=a\u2212b"])[0]["out_dir"] == "a−b"  # a name may hold any character


def test_a_number_with_a_thousands_separator_is_told_to_drop_it():
    # --max_iters=1,000 was "gives (1, 0) of type tuple", which names no number the user meant
    with pytest.raises(SystemExit) as e:
        configure(DEFAULTS, ["--max_iters=1,000"])
    assert str(e.value) == ("max_iters must be of type int (like 100); --max_iters=1,000 gives (1, 0) of type "
                            "tuple; drop the thousands separator: --max_iters=1000.")


def test_a_whole_number_written_with_an_exponent_is_told_the_integer(tmp_path):
    # --max_iters=1e4 (or a config file's max_iters = 2e1) named the float, not the integer to write
    with pytest.raises(SystemExit) as e:
        configure(DEFAULTS, ["--max_iters=1e3"])
    assert str(e.value) == ("max_iters must be of type int (like 100); --max_iters=1e3 gives 1000.0 of type float; "
                            "write it without the exponent or decimal point: --max_iters=1000.")
    (cfg := tmp_path / "c.py").write_text("max_iters = 2e1\n")
    with pytest.raises(SystemExit) as e:
        configure(DEFAULTS, [str(cfg)])
    assert str(e.value).endswith("gives 20.0 of type float; write it without the exponent or decimal point: "
                                 "max_iters = 20.")
    with pytest.raises(SystemExit) as e:  # not a whole number: no integer to offer
        configure(DEFAULTS, ["--max_iters=1.5"])
    assert str(e.value).endswith("gives 1.5 of type float.")


@pytest.mark.parametrize("script, arg, said", [
    # "unrecognized arguments" alone, where train.py names its nearest keys: other tools spell options with dashes
    ("sample", "--max-new-tokens=5", "; nearest options: --max_new_tokens"),
    ("sample", "--Seed=3", "; nearest options: --seed"),
    ("sample", "--n_samples=2", "; nearest options: --num_samples"),
    ("bench", "--output=x", "; nearest options: --out"),
    # names whose nearest spelling is unrelated: --prompt was pointed at --proj, lm_eval's --output_path at --out_dir
    ("sample", "--prompt=hi", "; the prompt is --start (the text, or FILE:path)"),
    ("sample", "--checkpoint=x", "; --out_dir names the folder that holds ckpt.pt (--init_from=gpt2... loads the "
                                 "hub's weights instead)"),
    ("eval", "--output_path=x", "; the results go to --out (default out_dir/eval); --out_dir is the folder of ckpt.pt"),
    # the paper's words for a conversion on load were unrecognized with nothing more (or --kv_heads: one option)
    ("sample", "--mqa=True", "; head sharing is --n_kv_head (g for GQA-g, 1 for MQA), converted on load"),
    ("eval", "--gqa=4", "; head sharing is --n_kv_head (g for GQA-g, 1 for MQA), converted on load"),
    ("sample", "--grouped_query=4", "; head sharing is --n_kv_head (g for GQA-g, 1 for MQA), converted on load"),
    ("sample", "--tie_kv=True", "; tying V to K is --proj=qk_v, converted on load (--convert_method says how)"),
    # the context length: eval.py pointed --block_size at --batch_size, --context_length at --convert_method
    ("eval", "--block_size=64", "; the context is the checkpoint's block_size, fixed by its training: every context "
                                "is cropped from the left to it"),
    ("eval", "--context_length=64", "; the context is the checkpoint's block_size, fixed by its training: every "
                                    "context is cropped from the left to it"),
    ("sample", "--max_length=64", "; the context is the checkpoint's block_size, fixed by its training; "
                                  "--max_new_tokens is a sample's length"),
    ("sample", "--max-length=64", "; the context is the checkpoint's block_size, fixed by its training; "
                                  "--max_new_tokens is a sample's length"),  # dashes, as Hugging Face's tools write it
    ("eval", "--Block-Size=64", "; the context is the checkpoint's block_size, fixed by its training: every context "
                                "is cropped from the left to it"),
    # other tools' sampling options, pointed at --top_k and --seed; --out (bench's, eval's) taken as --out_dir
    ("sample", "--top_p=0.9", "; there is no nucleus (top-p) sampling here: --top_k keeps the k likeliest tokens"),
    ("sample", "--greedy", "; --temperature=0 decodes greedily"),
    ("sample", "--out=samples.txt", "; the samples go to the standard output: redirect them (> samples.txt); "
                                    "--out_dir is the folder of ckpt.pt"),
    ("sample", "--bogus", ""),
    # pass 30: a config file, as nanoGPT's sample.py reads one, was "unrecognized arguments" and no way on
    ("sample", "config/cpu_tiny.py", "; sample.py reads no config file (train.py does): give its settings as "
                                     "--key=value (sample.py --help lists them)"),
    ("eval", "config/qk_v_1b2.py", "; eval.py reads no config file (train.py does): give its settings as "
                                   "--key=value (eval.py --help lists them)"),
])
def test_an_unknown_option_of_an_argparse_script_names_what_it_is_or_the_nearest(script, arg, said, capsys):
    parser = __import__(script).get_parser()
    with pytest.raises(SystemExit):
        parser.parse_args([arg])
    assert capsys.readouterr().err.splitlines()[-1] == f"{script}.py: error: unrecognized arguments: {arg}{said}" \
        .replace(f"{script}.py", parser.prog)


def test_a_hinted_name_argparse_took_as_an_option_start_is_refused_before_a_later_out_dir(capsys):
    # sample.py --out=samples.txt --out_dir=r: argparse read --out as --out_dir, the later one won, no file, exit 0
    with pytest.raises(SystemExit):
        __import__("sample").parse_args(["--out=samples.txt", "--out_dir=r"])
    assert "unrecognized arguments: --out=samples.txt; the samples go to the standard output" in capsys.readouterr().err
    assert __import__("sample").parse_args(["--temp=0.5"]).temperature == 0.5  # an abbreviation not hinted: as before


@pytest.mark.parametrize("script, args, said", [
    # other tools take lists as separate words: argparse said only "unrecognized arguments: 1"
    ("experiments.synthetic", ["--seeds", "0", "1"], "1; --seeds takes one value, its items separated by commas: "
                                                     "--seeds=0,1"),
    ("experiments.synthetic", ["--seeds=0", "1", "2"], "1 2; --seeds takes one value, its items separated by commas: "
                                                       "--seeds=0,1,2"),
    ("eval", ["--tasks", "hellaswag", "arc_easy"], "arc_easy; --tasks takes one value, its items separated by "
                                                   "commas: --tasks=hellaswag,arc_easy"),
    ("bench", ["--what", "cache,", "decode"], "decode; --what takes one value, its items separated by commas: "
                                              "--what=cache,decode"),
    ("bench", ["--out", "x", "decode"], "decode"),  # not a list option: nothing to join
])
def test_a_list_option_given_as_separate_words_says_how_to_join_them(script, args, said, capsys):
    parser = importlib.import_module(script).get_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(args)
    assert capsys.readouterr().err.splitlines()[-1].endswith(f"error: unrecognized arguments: {said}")


def test_a_config_file_after_a_list_option_is_not_joined_to_it(capsys):
    # bench.py --what memory config/qk_v_300m.py was told --what=memory,config/qk_v_300m.py, refused in turn
    with pytest.raises(SystemExit):
        importlib.import_module("bench").get_parser().parse_args(["--what", "memory", "config/qk_v_300m.py"])
    err = capsys.readouterr().err
    assert "reads no config file (train.py does)" in err and "--what=memory," not in err


def test_unknown_key_lists_the_nearest_valid_keys():
    with pytest.raises(SystemExit) as e:
        configure(DEFAULTS, ["--lerning_rate=1e-3"])
    msg = str(e.value)
    assert "lerning_rate" in msg and "nearest valid keys: learning_rate" in msg and "helper" not in msg


def test_an_unknown_name_in_a_config_file_says_how_to_keep_a_helper(tmp_path):
    # a config file computing with a variable of its own was refused without saying that _name is how
    path = tmp_path / "run.py"
    path.write_text("steps = 100\nmax_iters = steps * 6\n")
    with pytest.raises(SystemExit, match=r"unknown config key 'steps' in .*run\.py; no setting has a name like it \(a "
                                         r"config file's own helper names start with _\)\.$"):
        configure(DEFAULTS, [str(path)])
    path.write_text("_steps = 100\nmax_iters = _steps * 6\n")
    assert configure(DEFAULTS, [str(path)])[0]["max_iters"] == 600


def test_missing_value_and_missing_file(monkeypatch, tmp_path):
    with pytest.raises(SystemExit, match="--max_iters=VALUE"):
        configure(DEFAULTS, ["--max_iters"])
    # an unknown key without a value was told to "write --max_iterz=VALUE", which is refused next
    with pytest.raises(SystemExit, match=r"^unknown config key 'max_iterz' in --max_iterz; nearest valid keys: "
                                         r"max_iters"):
        configure(DEFAULTS, ["--max_iterz"])
    with pytest.raises(SystemExit, match="config file 'config/nope.py' not found"):
        configure(DEFAULTS, ["config/nope.py"])
    # a folder was "not found", and a bare -- was told to "write --=VALUE"
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit, match=r"^config file 'config/' is a folder; give a file in it, like "
                                         r"config/cpu_tiny\.py\.$"):
        configure(DEFAULTS, ["config/"])
    (tmp_path / "run.py").symlink_to(tmp_path / "gone" / "qk_v_300m.py")  # was "not found", where ls shows it
    with pytest.raises(SystemExit) as e:
        configure(DEFAULTS, [str(tmp_path / "run.py")])
    assert str(e.value) == (f"config file {str(tmp_path / 'run.py')!r} is a link to "
                            f"{str(tmp_path / 'gone' / 'qk_v_300m.py')!r}, which does not exist; restore what it "
                            f"points to, or give another file.")
    for arg in ("--", "--=3"):
        with pytest.raises(SystemExit, match=rf"^argument '{arg}' names no setting; write --key=value \(--help lists "
                                             r"them\)\.$"):
            configure(DEFAULTS, [arg, "config/nope.py"])


def test_config_files_run_in_order_see_earlier_values_and_can_execute_a_base_beside_them(tmp_path):
    (tmp_path / "base.py").write_text("max_iters = 50\nlearning_rate = 2e-4\n")
    run = tmp_path / "run.py"
    run.write_text("import os\nexec(open(os.path.join(os.path.dirname(__file__), 'base.py')).read())\n"
                   "min_lr = learning_rate / 10\nout_dir = 'out-run'\n")
    got, given = configure(DEFAULTS, [str(run), "--max_iters=60"])
    assert got == dict(DEFAULTS, max_iters=60, learning_rate=2e-4, min_lr=2e-5, out_dir="out-run")
    assert given == {"max_iters", "learning_rate", "min_lr", "out_dir"}  # the base file's assignments count
    # through a link elsewhere, the base is still the one beside the file (it was looked for beside the link)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "run.py").symlink_to(run)
    assert configure(DEFAULTS, [str(tmp_path / "mine" / "run.py")])[0]["learning_rate"] == 2e-4


def test_an_override_wins_over_a_config_file_wherever_it_stands(tmp_path):
    # --help says "config files run in order, then each --key=value overrides"; a file after the override set its
    # own value over the one typed: `train.py --max_iters=6 config/x.py` trained x.py's 3 iterations without a word
    run = tmp_path / "run.py"
    run.write_text("max_iters = 3\nlearning_rate = 1e-3\n")
    for args in (["--max_iters=6", str(run)], [str(run), "--max_iters=6"],
                 ["--max_iters=5", str(run), "--max_iters=6"]):
        got, given = configure(DEFAULTS, args)
        assert got == dict(DEFAULTS, max_iters=6, learning_rate=1e-3) and given == {"max_iters", "learning_rate"}
    with pytest.raises(SystemExit, match="^unknown config key 'lerning_rate'"):  # still found before any file runs
        configure(DEFAULTS, [str(tmp_path / "nope.py"), "--lerning_rate=1"])


def test_a_config_file_can_be_a_pipe(tmp_path):
    # `train.py <(echo "max_iters = 3")` or `... | train.py /dev/stdin`: was "config file '/dev/fd/63' not found"
    r, w = os.pipe()
    os.write(w, b"max_iters = 3\n")
    os.close(w)
    try:
        assert configure(DEFAULTS, [f"/dev/fd/{r}"])[0]["max_iters"] == 3
    finally:
        os.close(r)


def test_a_setting_assigned_its_default_value_counts_as_given(tmp_path):
    # a resumed run compares every given architecture key with its checkpoint, also one set to the default
    run = tmp_path / "run.py"
    run.write_text("proj = 'qkv'\nx = 3 if True else 0\ndel x\n")
    got, given = configure(DEFAULTS, [str(run), "--max_iters=100"])
    assert got == DEFAULTS and given == {"proj", "max_iters"}


@pytest.mark.parametrize("code", ["globals().update(proj='q_kv')", "globals().update({'proj': 'q_kv'})",
                                  "vars().update([('proj', 'q_kv')])"])
def test_a_setting_assigned_through_globals_counts_as_given(tmp_path, code):
    # dict's update bypasses the recording __setitem__: on resume a proj set so went unchecked, and the
    # checkpoint's architecture went on without a word
    run = tmp_path / "run.py"
    run.write_text(code + "\n")
    got, given = configure(DEFAULTS, [str(run)])
    assert got["proj"] == "q_kv" and given == {"proj"}


def test_nan_and_inf_are_numbers_for_number_settings_and_text_elsewhere():
    got, _ = configure(DEFAULTS, ["--learning_rate=nan", "--min_lr=-inf", "--out_dir=inf"])
    assert math.isnan(got["learning_rate"]) and got["min_lr"] == -math.inf and got["out_dir"] == "inf"
    with pytest.raises(SystemExit, match="max_iters must be of type int"):
        configure(DEFAULTS, ["--max_iters=inf"])


@pytest.mark.parametrize("text, line, words", [
    (b"max_iters = 5\nlearning_rate = (\n", 2, "SyntaxError: '(' was never closed"),
    (b"import os\nmax_iters = 5 // 0\n", 2, "ZeroDivisionError: integer division or modulo by zero"),
    (b"max_iters = 5\n# caf\xe9\n", 2, "byte 0xe9 is not UTF-8"),
    (b"exec('a = 1\\nb = 1 / 0')\n", 1, "ZeroDivisionError: division by zero (line 2 of the code it executes)"),
])
def test_a_config_file_that_does_not_run_is_one_line_with_its_line(tmp_path, text, line, words):
    run = tmp_path / "run.py"
    run.write_bytes(text)
    with pytest.raises(SystemExit) as e:
        configure(DEFAULTS, [str(run)])
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"config file '{run}', line {line}: {words}"), msg


def test_a_binary_file_given_as_a_config_file_is_named_binary(tmp_path):
    # train.py out/ckpt.pt was "byte 0x80 is not UTF-8; save the file as UTF-8", and data/train.bin "line ?:
    # SyntaxError: source code string cannot contain null bytes (line None of None); fix the file"
    for name, data in (("ckpt.pt", b"\x80\x02PK\x00\x00"), ("train.bin", b"\x01\x00\x02\x00")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(SystemExit) as e:
            configure(DEFAULTS, [str(tmp_path / name)])
        assert str(e.value).startswith(f"config file {str(tmp_path / name)!r} is binary (it holds NUL bytes), not "
                                       f"Python text; give a file of settings like config/cpu_tiny.py (")
    (tmp_path / "u16.py").write_bytes("max_iters = 3\n".encode("utf-16"))  # text, of another encoding
    with pytest.raises(SystemExit, match=r"line 1: byte 0xff is not UTF-8; save the file as UTF-8\.$"):
        configure(DEFAULTS, [str(tmp_path / "u16.py")])


def test_help_lists_every_setting_with_its_default_comment_and_rule(tmp_path, capsys):
    script = tmp_path / "script.py"
    script.write_text("max_iters = 100  # iterations of the run\nproj = 'qkv'  # which projections are shared\n"
                      "later = 1\nmax_iters = 7  # a later assignment is not the setting's\n")
    usage = lambda: describe("script.py", DEFAULTS, {"max_iters": ">= 0", "learning_rate": "(0, 1]",
                                                     "proj": ("qkv", "qk_v")}, [script])
    for flag in ("--help", "-h"):  # before anything else: the unknown key and the missing file are not reached
        with pytest.raises(SystemExit) as e:
            configure(DEFAULTS, ["--max_iters=3", "--nope=1", "config/nope.py", flag], usage)
        assert e.value.code == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == "usage: python script.py [CONFIG_FILE.py ...] [--key=value ...]"
        rows = {line.split()[0]: " ".join(line.split()[1:]) for line in lines[2:]}
        assert rows == {"--learning_rate=0.0006": "in (0, 1]", "--min_lr=6e-05": "", "--max_iters=100":
                        "iterations of the run; >= 0", "--compile=False": "", "--out_dir=out": "",
                        "--proj=qkv": "which projections are shared; one of qkv, qk_v"}


def test_unknown_key_in_a_config_file_names_the_file(tmp_path):
    run = tmp_path / "run.py"
    run.write_text("n_layers = 4\n")
    with pytest.raises(SystemExit) as e:
        configure(DEFAULTS, [str(run)])
    assert "'n_layers'" in str(e.value) and str(run) in str(e.value)


@pytest.mark.parametrize("args, words", [
    (["--lerning_rate=1e-3"], ["lerning_rate", "learning_rate"]),
    (["--max_iters=ten"], ["max_iters", "int"]),
    (["config/does_not_exist.py"], ["config/does_not_exist.py", "not found"]),
])
def test_train_py_reports_bad_arguments_in_one_line(args, words, capfd):
    if args == ["--lerning_rate=1e-3"]:  # one as a user runs it; the others in this process, the same code
        r = subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    else:
        r = run_here(["train.py", *args], capfd)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and all(w in lines[0] for w in words), r.stderr


def test_a_config_file_saved_with_a_byte_order_mark_runs(tmp_path):
    # as some Windows editors save UTF-8; Python itself runs such a file
    run = tmp_path / "run.py"
    run.write_bytes(b"\xef\xbb\xbfmax_iters = 5\n")
    assert configure(DEFAULTS, [str(run)])[0]["max_iters"] == 5


@pytest.mark.parametrize("cwd, arg, meant", [(".", "config/cpu_tiny", "config/cpu_tiny.py"),
                                             (".", "cpu_tiny.py", "config/cpu_tiny.py"),
                                             ("elsewhere", "config/cpu_tiny.py", "{root}/config/cpu_tiny.py"),
                                             (".", "config\\cpu_tiny.py", "config/cpu_tiny.py"),
                                             (".", "config/cpu-tiny.py", "config/cpu_tiny.py"),
                                             (".", "qk_v_300M.py", "config/qk_v_300m.py"),
                                             ("elsewhere", "config/cpu-tiny.py", "{root}/config/cpu_tiny.py")])
def test_a_config_file_named_without_py_or_config_names_the_file_meant(cwd, arg, meant, tmp_path, monkeypatch):
    # was only "not found; positional arguments are config files", with the file one suffix away; and with a
    # Windows backslash or one slip in its name (cpu-tiny, 300M)
    monkeypatch.chdir(ROOT if cwd == "." else tmp_path)
    with pytest.raises(SystemExit) as e:
        configure(DEFAULTS, [arg])
    assert str(e.value) == f"config file {arg!r} not found; did you mean {meant.format(root=ROOT)}?"


def test_two_config_files_quoted_as_one_are_named_so(monkeypatch):
    # "$CONFIGS" quoted: was "did you mean config/cpu_lm.py?", the last one's name, the first dropped
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as e:
        configure(DEFAULTS, ["config/cpu_tiny.py config/cpu_lm.py"])
    assert str(e.value) == ("config file 'config/cpu_tiny.py config/cpu_lm.py' is 2 files: quotes around several "
                            "pass them as one argument; give each as its own argument.")
    for arg in ("config/cpu_tiny.py config/cpu-lm.py", "config/cpu-tiny.py config/cpu-lm.py"):
        # one or both mistyped: was "did you mean config/cpu_lm.py?", which drops the first file
        with pytest.raises(SystemExit) as e:
            configure(DEFAULTS, [arg])
        assert str(e.value) == (f"config file {arg!r} is 2 names: quotes around several pass them as one argument; "
                                f"give each as its own argument.")


@pytest.mark.parametrize("arg", ["config/q_kv_1b2.py", "config/q_k_v_1b2.py", "config/qkv_mqa_7b.py",
                                 "config/qk_v_gqa4_1b2.py", "config/cpu_lm_qkv.py", "config/base_3b.py"])
def test_a_config_file_not_there_is_not_told_another_models_file(arg, monkeypatch):
    # q_kv_1b2 was "did you mean config/qkv_1b2.py?" and base_3b base_7b's: one slip in a code is another model
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as e:
        configure(DEFAULTS, [arg])
    assert "did you mean" not in str(e.value) and "not found" in str(e.value)


@pytest.mark.parametrize("arg", ["-help", "help", "-?"])
def test_help_misspelled_names_help(arg, tmp_path, monkeypatch):
    # `train.py -help` said only "positional arguments are config files": --help, which lists the settings, unnamed
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        configure(DEFAULTS, [arg])
    assert str(e.value) == f"config file {arg!r} not found; did you mean --help (the settings)?"


def test_the_config_file_meant_is_named_as_the_shell_takes_it(tmp_path, monkeypatch):
    # a repository in "my repo" run from another folder: "did you mean /x/my repo/config/cpu_tiny.py?", pasted, gave
    # train.py two arguments
    repo = tmp_path / "my repo"
    (repo / "config").mkdir(parents=True)
    (repo / "config" / "cpu_tiny.py").write_text("max_iters = 5\n")
    import configurator
    monkeypatch.setattr(configurator, "REPO", str(repo))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        configure(DEFAULTS, ["config/cpu_tiny.py"])
    assert str(e.value) == f"config file 'config/cpu_tiny.py' not found; did you mean '{repo}/config/cpu_tiny.py'?"


def test_a_paths_environment_variable_is_its_value_not_a_folder_named_after_it(tmp_path, monkeypatch):
    # '--out_dir=$SCRATCH/x' in single quotes, or out_dir = "$SCRATCH/x" in a config file, made ./$SCRATCH/x, exit 0
    monkeypatch.setenv("SCR", str(tmp_path))
    monkeypatch.delenv("NOPE", raising=False)
    monkeypatch.delenv("NOPE2", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.py").write_text('data_dir = "${SCR}/data"\n')
    values = configure({**DEFAULTS, "data_dir": "data"}, ["run.py", "--out_dir=$SCR/runs/x"])[0]
    assert (values["out_dir"], values["data_dir"]) == (f"{tmp_path}/runs/x", f"{tmp_path}/data")
    with pytest.raises(SystemExit) as e:
        configure(DEFAULTS, ["--out_dir=$NOPE/x"])
    assert str(e.value) == ("out_dir '$NOPE/x' names $NOPE, which is not set in the environment (no shell expanded it: "
                            "quoted, or in a config file); set it, or write the path out.")
    # the shell's ${X:-default} is no variable alone: a folder named '${OUT:-runs}' was made, exit 0
    with pytest.raises(SystemExit) as e:
        configure(DEFAULTS, ["--out_dir=${NOPE:-runs}/x"])
    assert str(e.value) == ("out_dir '${NOPE:-runs}/x' holds '${NOPE:-runs}', the shell's syntax, which no shell "
                            "expanded (quoted, or in a config file); write the path out.")
    assert configure(DEFAULTS, ["--out_dir=cost$5"])[0]["out_dir"] == "cost$5"  # no variable: "set $5" was the advice
    (tmp_path / "$NOPE").mkdir()  # a folder of that name is the user's, as written
    assert configure(DEFAULTS, ["--out_dir=$NOPE"])[0]["out_dir"] == "$NOPE"
    assert configure(DEFAULTS, ["--out_dir=$NOPE/run2"])[0]["out_dir"] == "$NOPE/run2"  # a new run in that folder
    # a variable past that folder is expanded: $NOPE/$SCR made a folder named $SCR inside it, exit 0
    assert configure(DEFAULTS, ["--out_dir=$NOPE/$SCR/x"])[0]["out_dir"] == f"$NOPE/{tmp_path}/x"
    with pytest.raises(SystemExit, match=r"^out_dir '\$NOPE/\$NOPE2' names \$NOPE2, which is not set"):
        configure(DEFAULTS, ["--out_dir=$NOPE/$NOPE2"])
    # and a folder holding $ reached through a variable ($SCR/runs$old in a config file) was "$old is not set"
    (tmp_path / "runs$NOPE2").mkdir()
    assert configure(DEFAULTS, ["--out_dir=$SCR/runs$NOPE2/x"])[0]["out_dir"] == f"{tmp_path}/runs$NOPE2/x"
    # and the unset one named is past that folder: "$NOPE2 is not set" led to setting it, which named another folder
    with pytest.raises(SystemExit, match=r"^out_dir '\$SCR/runs\$NOPE2/\$NOPE' names \$NOPE, which is not set"):
        configure(DEFAULTS, ["--out_dir=$SCR/runs$NOPE2/$NOPE"])
    # one set but empty made the path the root's: out_dir = "$EMPTY/x" trained into /x, exit 0
    monkeypatch.setenv("EMPTY", "")
    with pytest.raises(SystemExit, match=r"^out_dir '\$\{EMPTY\}/x' starts with \$EMPTY, which is set but empty"):
        configure(DEFAULTS, ["--out_dir=${EMPTY}/x"])
    assert configure(DEFAULTS, ["--out_dir=runs$EMPTY/x"])[0]["out_dir"] == "runs/x"  # an empty suffix is the user's
    # a config file's path whose variable is not set, replaced on the command line, is never used: it was refused
    (tmp_path / "unset.py").write_text('out_dir = "$NOPE2/x"\n')
    assert configure(DEFAULTS, ["unset.py", "--out_dir=runs/y"])[0]["out_dir"] == "runs/y"
    with pytest.raises(SystemExit, match=r"^out_dir '\$NOPE2/x' names \$NOPE2, which is not set"):
        configure(DEFAULTS, ["unset.py"])
    # and so is one a later config file replaces (a base file's, under a run file's own out_dir); not one it reads
    (tmp_path / "own.py").write_text('out_dir = "runs/own"\n')
    assert configure(DEFAULTS, ["unset.py", "own.py"])[0]["out_dir"] == "runs/own"
    (tmp_path / "reads.py").write_text('max_iters = 7\n')
    with pytest.raises(SystemExit, match=r"^out_dir '\$NOPE2/x' names \$NOPE2, which is not set"):
        configure(DEFAULTS, ["unset.py", "reads.py"])
    # and one set is expanded still, for a later file that reads it: data_dir = out_dir.replace(...) saw "$RUNS/y"
    monkeypatch.setenv("RUNS", f"{tmp_path}/runs")
    (tmp_path / "set.py").write_text('out_dir = "$RUNS/y"\n')
    (tmp_path / "derive.py").write_text('data_dir = out_dir.replace("/runs/y", "/data")\n')
    assert configure({**DEFAULTS, "data_dir": "d"}, ["set.py", "derive.py", "--out_dir=runs/z"])[0]["data_dir"] == \
        f"{tmp_path}/data"
    p = Parser()
    p.add_argument("--out", default=None)
    p.add_argument("--input", nargs="+", default=None)
    p.add_argument("--tasks", default=None)  # no path: its $ is its own
    ns = p.parse_args(["--out=$SCR/o", "--input", "$SCR/a.txt", "b.txt", "--tasks=$x"])
    assert (ns.out, ns.input, ns.tasks) == (f"{tmp_path}/o", [f"{tmp_path}/a.txt", "b.txt"], "$x")
    with pytest.raises(SystemExit, match=r"^--out '\$NOPE2/o' names \$NOPE2, which is not set"):
        p.parse_args(["--out=$NOPE2/o"])


def test_a_path_given_from_home_is_home_s_not_a_folder_named_tilde(tmp_path, monkeypatch):
    # bash leaves the ~ of `--out_dir=~/runs/x`: train.py made ./~/runs/x (and `rm -rf ~` would clean it up with home)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "run.py").write_text('data_dir = "~/data/x"\n')
    values = configure({**DEFAULTS, "data_dir": "data"}, [str(tmp_path / "run.py"), "--out_dir=~/runs/x"])[0]
    assert (values["out_dir"], values["data_dir"]) == (f"{tmp_path}/runs/x", f"{tmp_path}/data/x")
    assert configure(DEFAULTS, ["--out_dir=a~b"])[0]["out_dir"] == "a~b"  # only a leading ~ is home
    p = Parser()
    p.add_argument("--out", default=None)
    p.add_argument("--input", nargs="+", default=None)
    p.add_argument("--start", type=str, default="\n")  # its own type reads its own text: a prompt may start with ~
    ns = p.parse_args(["--out=~", "--input", "~/a.txt", "b.txt", "--start=~/not a path"])
    assert (ns.out, ns.input, ns.start) == (str(tmp_path), [f"{tmp_path}/a.txt", "b.txt"], "~/not a path")


def test_ctrl_c_in_a_command_is_one_line_and_status_130(capsys):
    def main():
        print("working", end="")
        raise KeyboardInterrupt
    with pytest.raises(SystemExit) as e:
        cli(main, "nothing was written.")
    assert e.value.code == 130
    assert capsys.readouterr() == ("working", "stopped by Ctrl-C; nothing was written.\n")


@pytest.mark.parametrize("closed", ["1", "2"])
def test_a_closed_stdout_or_stderr_is_devnull_on_its_own_descriptor(tmp_path, closed):
    # train.py run with stdout closed (`>&-`, or by a study whose stdout was) and stopped: its stop flushed both
    # streams, and None's missing flush was "Error in sys.excepthook", exit 1 for 143; with stderr closed, the next
    # file opened (train.bin) took descriptor 2, where C code's messages go
    report = tmp_path / "report"
    code = ("import os, sys\nfrom configurator import quiet_start\nquiet_start()\n"
            "for s in (sys.stdout, sys.stderr):\n    s.write('x'); s.flush()\n"
            f"f = open({str(report)!r}, 'w')\n"
            "f.write(' '.join([str(sys.stdout.fileno()), str(sys.stderr.fileno()), os.readlink('/proc/self/fd/' + "
            f"{closed!r})]))\n")
    r = subprocess.run(["bash", "-c", f'exec "$0" -c "$1" {closed}>&-', sys.executable, code], cwd=ROOT)
    assert r.returncode == 0 and report.read_text() == "1 2 /dev/null"


def test_a_signal_while_a_command_exits_ends_it_without_a_traceback():
    # a Ctrl-C, SIGTERM or SIGHUP after the work (prepare's data written, a sample printed), while torch's atexit
    # finalizers ran, was "Exception ignored in atexit callback" and a traceback, with exit 0: cli leaves the signals
    # to their default once the command's main is done. Not for a test calling cli (its main is no __main__'s).
    def main():
        pass
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as at a terminal (a suite run with & ignores it)
        cli(main, "nothing was written.")
        assert signal.getsignal(signal.SIGINT) == signal.default_int_handler
        main.__module__ = "__main__"
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # nohup: stays ignored
        cli(main, "nothing was written.")
        assert [signal.getsignal(sig) for sig in before] == [signal.SIG_DFL, signal.SIG_DFL, signal.SIG_IGN]
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


@pytest.mark.parametrize("stop, line, status", [
    (KeyboardInterrupt(), "stopped by Ctrl-C while starting, before anything was written.\n", 130),
    (Terminated("SIGHUP"), "stopped by SIGHUP while starting, before anything was written.\n", 129),
    (Terminated("SIGTERM"), "", 143)])  # with stderr closed (2>&-): sys.stderr is None
def test_a_stop_while_a_command_imports_is_one_line(capsys, monkeypatch, stop, line, status):
    # before cli runs (torch's seconds of import) a Ctrl-C was Python's traceback of the import, in every command
    # but train.py; quiet_start's hook says one line and exits with the shell's status for the signal
    def exit_now(code):
        raise SystemExit(code)
    monkeypatch.setattr(os, "_exit", exit_now)
    if not line:
        monkeypatch.setattr(sys, "stderr", None)
    with pytest.raises(SystemExit) as e:
        interrupted_at_start(type(stop), stop, None)
    assert e.value.code == status and capsys.readouterr().err == line


@pytest.mark.parametrize("name, status", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_signal_in_a_command_is_one_line_and_its_status(capsys, name, status):
    # `kill` (a scheduler's time limit) ended sample.py, eval.py or prepare_slimpajama.py with no word, and a closed
    # terminal (SIGHUP) every command, leaving what a clean stop removes
    sig = getattr(signal, name)
    def main():
        print("working", end="")
        os.kill(os.getpid(), sig)
        time.sleep(10)  # the handler raises in this frame, at once
        pytest.fail(f"{name} went unhandled")
    before = signal.getsignal(signal.SIGHUP), signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(sig, signal.SIG_DFL)
        with pytest.raises(SystemExit) as e:
            cli(main, "nothing was written.")
        assert e.value.code == status
        assert capsys.readouterr() == ("working", f"stopped by {name}; nothing was written.\n")
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup starts it: the user asked to run on
        stop_on_sigterm()
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before[0])
        signal.signal(signal.SIGTERM, before[1])


def test_a_stopped_study_stops_a_child_that_was_itself_stopped(tmp_path):
    # a train.py paused with SIGSTOP (or Ctrl-Z) takes SIGTERM only when continued: the study waited for it forever
    import threading
    from configurator import Terminated, stop_children
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    p.send_signal(signal.SIGSTOP)
    rescue = threading.Timer(30, p.kill)  # the hang, ended for the test
    rescue.start()
    try:
        stop_children([p], Terminated("SIGTERM"))
    finally:
        rescue.cancel()
    assert p.returncode == -signal.SIGTERM


def test_an_allocation_the_machine_refuses_is_one_sentence(capsys):
    # synthetic --embd=400000 (a setting in range) was torch's allocator traceback, from its worker or in-process
    def main():
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 1920000000000 bytes. Error code 12 (Cannot allocate memory)")
    with pytest.raises(SystemExit) as e:
        cli(main, "nothing was written.")
    assert e.value.code == 1 and capsys.readouterr().err == (
        "stopped: out of memory (asking for 1,920,000,000,000 bytes more); choose smaller settings (model, batch, "
        "lengths), or run on a machine with more; nothing was written.\n")
    with pytest.raises(RuntimeError, match="^another error$"):  # any other RuntimeError stays as it was
        cli(lambda: (_ for _ in ()).throw(RuntimeError("another error")), "nothing was written.")


def test_an_error_of_another_file_is_not_taken_for_the_output(capsys):
    def main():
        raise OSError(28, "No space left on device")  # not stdout's: stdout still takes text
    with pytest.raises(OSError):
        cli(main, "nothing was written.")


@pytest.mark.parametrize("error", [RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                                                  "can't allocate memory: you tried to allocate 8388608 bytes."),
                                     torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0)")])
def test_out_of_memory_in_a_command_is_one_line_naming_the_fix(error, capsys):
    # sample.py or eval.py on a model too large for the machine was a traceback from deep inside torch
    def main():
        raise error
    with pytest.raises(SystemExit) as e:
        cli(main, "nothing was written.", oom="lower --batch_size")
    asked = "20.00 MiB" if isinstance(error, torch.OutOfMemoryError) else "8,388,608 bytes"
    assert e.value.code == 1
    assert capsys.readouterr().err == f"stopped: out of memory (asking for {asked} more); lower --batch_size; " \
                                      f"nothing was written.\n"
    with pytest.raises(RuntimeError, match="shapes"):  # any other error is not taken for one
        cli(lambda: (_ for _ in ()).throw(RuntimeError("shapes differ")), "nothing was written.")


def test_out_of_memory_beyond_the_machine_is_not_told_to_lift_an_address_space_cap(monkeypatch):
    # --vocab_size=1e12 under `ulimit -v`: "asking for 512,000,000,000,000 bytes more (this shell's limit ...); raise
    # it (ulimit -v unlimited), or ...", a lift that serves no allocation larger than the machine
    import configurator
    monkeypatch.setattr(configurator, "memory_limit", lambda: " (this shell's limit, ulimit -v, is 3,500,000 KiB)")
    ram = configurator.physical_memory()
    asked = 2 * ram + 1
    error = RuntimeError(f"DefaultCPUAllocator: can't allocate memory: you tried to allocate {asked} bytes.")
    assert configurator.out_of_memory(error, "train a smaller model") == \
        f"out of memory (asking for {asked:,} bytes more, beyond this machine's {ram:,} bytes of memory); train a " \
        f"smaller model"


@pytest.mark.parametrize("script, missing", [("train.py", "numpy"), ("sample.py", "torch"), ("bench.py", "torch")])
def test_a_python_without_the_requirements_is_one_line_naming_the_library(script, missing):
    # another interpreter or a venv not activated: a page of import frames ending in ModuleNotFoundError
    run = f"import sys, runpy; sys.modules[{missing!r}] = None; sys.argv = [{script!r}, '--help']; " \
          f"runpy.run_path({script!r}, run_name='__main__')"
    r = subprocess.run([sys.executable, "-c", run], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr == f"{missing} is not installed for this Python ({sys.executable}); install the requirements " \
                       f"into it ({sys.executable} -m pip install -r requirements.txt), or run the Python that has " \
                       f"them.\n"


def test_the_install_command_names_the_requirements_from_any_folder(tmp_path, monkeypatch):
    # run from another folder, "pip install -r requirements.txt" found no file (and pip on PATH may be another
    # Python's, the very case)
    import configurator
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "executable", "/opt/my python/bin/python3")
    assert configurator.install_command() == \
        f"'/opt/my python/bin/python3' -m pip install -r {os.path.join(ROOT, 'requirements.txt')}"


def test_a_current_folder_since_removed_is_one_line(tmp_path):
    # a shell in a folder removed since (rm -rf, a checkout): torch's MKL failed to load, "Intel oneMKL FATAL ERROR:
    # Cannot load libtorch_cpu.so", exit 2, as if torch were broken
    gone = tmp_path / "gone"
    gone.mkdir()
    script = os.path.join(ROOT, "sample.py")
    run = f"import os, sys, runpy; os.chdir({str(gone)!r}); os.rmdir({str(gone)!r}); sys.argv = ['sample.py']; " \
          f"sys.path.insert(0, {ROOT!r}); runpy.run_path({script!r}, run_name='__main__')"
    r = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr == "the current folder no longer exists (removed after this shell entered " \
        "it), so no relative path means anything and torch cannot load; cd to a folder that exists, then run again.\n"


def test_a_memory_limit_is_named_where_memory_runs_out(monkeypatch, capsys):
    # under `ulimit -v 300000` torch's import was a traceback ("failed to map segment", MemoryError), and sample.py
    # on a tiny model under 650 MB was told to use bfloat16 or a machine with more
    import configurator
    import resource
    monkeypatch.setattr(resource, "getrlimit", lambda what: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert configurator.start_failure(ImportError("libtorch_cpu.so: failed to map segment from shared object")) == \
        "out of memory while loading the libraries; free memory, or run on a machine with more."
    monkeypatch.setattr(resource, "getrlimit", lambda what: (300000 * 1024, resource.RLIM_INFINITY))
    limit = " (this shell's limit, ulimit -v, is 300,000 KiB)"
    assert configurator.start_failure(MemoryError()) == \
        f"out of memory while loading the libraries{limit}; raise the limit (ulimit -v unlimited), or run where it " \
        f"is higher."
    assert configurator.start_failure(ValueError("x")) is None
    with pytest.raises(SystemExit):
        cli(lambda: (_ for _ in ()).throw(MemoryError()), "nothing was written.", oom="pass --dtype=bfloat16")
    assert capsys.readouterr().err == f"stopped: out of memory{limit}; raise it (ulimit -v unlimited), or pass " \
                                      f"--dtype=bfloat16; nothing was written.\n"
    # bash's `ulimit -v N` sets the hard limit too: "ulimit -v unlimited" was then refused to this user
    monkeypatch.setattr(resource, "getrlimit", lambda what: (300000 * 1024, 300000 * 1024))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert configurator.start_failure(MemoryError()) == \
        f"out of memory while loading the libraries{limit}; run it from a new terminal (this limit is also this " \
        f"shell's hard limit, which only root raises), or run where it is higher."


def test_a_value_that_starts_with_a_dash_is_shown_its_spelling(capsys):
    # `sample.py --out_dir -run`: argparse took -run for an option, "expected one argument", and nothing more
    p = Parser(prog="x")
    p.add_argument("--out_dir", default="out")
    p.add_argument("--seed", type=int, default=0)
    with pytest.raises(SystemExit):
        p.parse_args(["--out_dir", "-run"])
    assert capsys.readouterr().err.endswith("x: error: argument --out_dir: expected one argument; a value that starts "
                                            "with '-' goes after '=': --out_dir=-run\n")
    # a value the shell reads (a pipe, a quote) quoted, and the use of the option that was refused named
    with pytest.raises(SystemExit):
        p.parse_args(["--out_dir=a", "--out_dir", "b", "--out_dir", "-it's|x"])
    assert capsys.readouterr().err.endswith("expected one argument; a value that starts with '-' goes after '=': "
                                            "'--out_dir=-it'\"'\"'s|x'\n")
    with pytest.raises(SystemExit):  # an option after it: argparse's words alone
        p.parse_args(["--out_dir", "--seed=3"])
    assert capsys.readouterr().err.endswith("x: error: argument --out_dir: expected one argument\n")


def test_an_interval_reads_as_one_in_every_message(capsys):
    # "seed must be an integer [0, 4294967295]" (train.py) and sample.py's "--seed: must be an integer [0, ...]"
    assert range_error("seed", -1, int, "[0, 9]") == "seed must be an integer in [0, 9]; got -1."
    assert range_error("dropout", 1.0, float, "[0, 1)") == "dropout must be a finite number in [0, 1); got 1.0."
    for text in ("-1", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"^must be an integer in \[0, 9\]; got "):
            number(int, "[0, 9]")(text)
    assert range_error("n", 0, int, ">= 1") == "n must be an integer >= 1; got 0."


SCRIPTS = ["sample.py", "eval.py", "bench.py", "prepare_slimpajama.py"] + \
    [f"experiments/{name}.py" for name in ("analyze", "synthetic", "cpu_lm", "rope", "retrofit", "scaling")]


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_command_but_train_runs_through_cli(script):
    # a Ctrl-C in sample.py or eval.py was a KeyboardInterrupt traceback (train.py has its own, which names the
    # checkpoint to resume from)
    with open(os.path.join(ROOT, script)) as f:
        text = f.read()
    tail = text.rstrip().splitlines()[-2:]
    assert tail[0] == 'if __name__ == "__main__":' and tail[1].startswith("    cli(main, ")
    assert "argparse.ArgumentParser(" not in text  # configurator.Parser: its --help reports a failed write


def test_help_into_a_full_disk_of_an_argparse_command_is_one_line_and_status_1():
    # `sample.py --help > /dev/full` exited 0 with the help lost: argparse drops the write's error
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "sample.py", "--help"], cwd=ROOT, stdout=full, stderr=subprocess.PIPE,
                           text=True)
    assert r.returncode == 1 and r.stderr == "stopped: its output could not be written (No space left on device); " \
                                             "nothing was written.\n"


@pytest.mark.parametrize("name", ["analyze", "synthetic", "cpu_lm", "rope", "retrofit", "scaling"])
def test_a_study_run_as_a_file_names_the_way_to_run_it(name):
    # `python experiments/NAME.py`, as train.py is run, was a ModuleNotFoundError traceback for checkpoint
    r = subprocess.run([sys.executable, f"experiments/{name}.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == f"run the studies from the repository root as modules: python -m experiments.{name}\n"
    # under PYTHONSAFEPATH=1 (or -P) that -m found no module named 'experiments': it is found on PYTHONPATH
    env = dict(os.environ, PYTHONSAFEPATH="1")
    r = subprocess.run([sys.executable, f"experiments/{name}.py"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.stderr == ("run the studies from the repository root as modules: PYTHONPATH=. python -m "
                        f"experiments.{name}\n")
    env["PYTHONPATH"] = "."
    r = subprocess.run([sys.executable, "-m", f"experiments.{name}", "--help"], cwd=ROOT, env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0 and r.stdout.startswith("usage:"), r.stderr[-2000:]


def test_output_into_a_file_is_there_line_by_line(tmp_path):
    # Python holds 8 KiB of stdout bound for a file or pipe: `prepare_slimpajama.py ... > prep.log &` showed
    # `tail -f prep.log` no progress line for minutes, and a kill (the OOM killer's, SIGKILL) lost them all
    code = "import os; from configurator import cli; cli(lambda: (print('progress'), os.kill(os.getpid(), 9)), '')"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as a user's shell has it
    with open(tmp_path / "log", "w") as f:
        r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, stdout=f, env=env)
    assert r.returncode == -9 and (tmp_path / "log").read_text() == "progress\n"


def test_text_the_console_cannot_encode_is_escaped_not_a_traceback(monkeypatch):
    # a byte-level sample (or an accented path) printed under an ASCII console (PYTHONIOENCODING=ascii, cp1252 on
    # Windows) was a UnicodeEncodeError traceback after the sample had been generated
    out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", out)
    cli(lambda: print("h\xe9llo \ufffd"), "nothing was written.")
    out.flush()
    assert out.buffer.getvalue() == b"h\\xe9llo \\ufffd\n"



def test_a_command_started_with_stdout_closed_runs_as_into_dev_null(monkeypatch, capsys):
    # `sample.py ... >&-` (and eval.py, bench.py: their files written) ended in an AttributeError traceback from
    # flushing sys.stdout, which Python sets to None for a closed descriptor; train.py ran on, printing nowhere
    monkeypatch.setattr(sys, "stdout", None)
    cli(lambda: print("a sample"), "nothing was written.")
    assert capsys.readouterr().err == ""


def test_a_help_that_could_not_be_written_is_one_line_and_status_1(monkeypatch, capsys):
    # argparse's --help into a full disk (`sample.py --help > /dev/full`) exited 0 with the help lost: argparse
    # swallows the error and the text still buffered failed, unreported, at exit
    def main():
        print("usage: sample.py [-h] ...")
        raise SystemExit(0)  # as argparse's --help ends
    with open("/dev/full", "w") as full:
        monkeypatch.setattr(sys, "stdout", full)
        with pytest.raises(SystemExit) as e:
            cli(main, "nothing was written.")
    assert e.value.code == 1
    assert capsys.readouterr().err == "stopped: its output could not be written (No space left on device); " \
                                      "nothing was written.\n"


def test_a_compile_that_fails_in_a_non_utf8_locale_says_so():
    # under PYTHONUTF8=0 LC_ALL=C inductor reads its own templates as ASCII: a plain UnicodeDecodeError from inside
    # torch._inductor, a traceback from sample.py, train.py and bench.py (--compile=True, the decode section)
    where = {"__name__": "torch._inductor.utils"}
    exec("def load_template():\n    return b'\\xe2'.decode('ascii')", where)
    with pytest.raises(UnicodeDecodeError) as e:
        where["load_template"]()
    assert compile_failure(e.value) == (
        "--compile=True: torch.compile failed reading its own files in a non-UTF-8 locale ('ascii' codec can't "
        "decode byte 0xe2 in position 0: ordinal not in range(128)); run Python in UTF-8 mode (PYTHONUTF8=1, or a "
        "UTF-8 locale such as LC_ALL=C.UTF-8), or pass --compile=False.")
    with pytest.raises(UnicodeDecodeError) as e:
        b"\xe2".decode("ascii")  # the same error outside torch.compile is not its failure
    assert compile_failure(e.value) is None


def test_a_compile_the_file_size_limit_stopped_names_the_limit(monkeypatch):
    # bench.py's decode section under `ulimit -f 25`: g++ was killed by SIGXFSZ ("File size limit exceeded"), and the
    # advice was to install a working C++ compiler
    import resource
    monkeypatch.setattr(resource, "getrlimit", lambda which: (25 * 1024, resource.RLIM_INFINITY))
    exc = types.new_class("CppCompileError", (RuntimeError,))
    exc.__module__ = "torch._inductor.exc"
    e = exc("C++ compile error\n\nOutput:\ng++: internal compiler error: File size limit exceeded signal terminated "
            "program cc1plus")
    assert compile_failure(e, "bench.py's decode section", "leave it out") == (
        "bench.py's decode section: torch.compile's C++ compiler could not write its files (File too large); raise "
        "this shell's file size limit (ulimit -f, now 25 KiB: ulimit -f unlimited), or leave it out.")
    assert compile_failure(exc("OSError: [Errno 28] No space left on device")).startswith(
        "--compile=True: torch.compile's C++ compiler could not write its files (No space left on device); free "
        "space on its disk, or pass --compile=False.")
    assert "install one" in compile_failure(exc("C++ compile error\n\nOutput:\ng++: not found"))


def test_a_torch_cache_folder_that_cannot_be_made_is_one_sentence():
    # TORCHINDUCTOR_CACHE_DIR=/proc/nope: torch._dynamo makes the folder when first imported, which building any model
    # does, so train, sample, eval and bench ended in a FileNotFoundError traceback from deep inside torch.nn.init
    where = {"__name__": "torch._inductor.runtime.cache_dir_utils"}
    exec("import os\ndef cache_dir():\n    os.makedirs('/proc/nope/x')", where)
    with pytest.raises(SystemExit) as e:
        cli(where["cache_dir"], "nothing was written.")
    assert str(e.value) == ("torch could not make its cache folder /proc/nope (No such file or directory); set "
                            "TORCHINDUCTOR_CACHE_DIR to a folder it can make and write.")
    with pytest.raises(FileNotFoundError):  # the same error elsewhere is not torch's cache
        cli(lambda: os.makedirs("/proc/nope/x"), "nothing was written.")


def test_argv_as_one_string_is_one_sentence():
    # sample.main("--out_dir=x") from Python: argparse read "-", "-", "o", ... as arguments ("unrecognized arguments")
    import sample
    with pytest.raises(ValueError, match=r"argv must be a list of arguments, e\.g\. shlex\.split\('--out_dir=x'\)"):
        sample.parse_args("--out_dir=x")


def test_a_signal_while_torch_imports_numpy_is_not_lost():
    # torch's C start imports numpy and takes any error in it for "no numpy": a SIGTERM (or Ctrl-C) that landed
    # there was lost, numpy left half imported, and eval.py ran on to an exit 0, or to "cannot build task alphabet
    # (RecursionError ...); fix its YAML file". quiet_start imports numpy first, where the stop is its one line
    code = ("import os, signal, sys\n"
            "class Stop:\n"
            "    sent = False\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'numpy._core.numeric' and name not in sys.modules and not Stop.sent:\n"
            "            Stop.sent = True  # once, as a user sends it\n"
            "            os.kill(os.getpid(), signal.SIGTERM)\n"
            "sys.meta_path.insert(0, Stop())\n"
            "from configurator import quiet_start\nquiet_start()\nimport torch\nprint('imported')\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout, r.stderr) == (143, "", "stopped by SIGTERM while starting, before anything was "
                                                             "written.\n")


def test_arguments_as_an_iterator_are_read_once():
    # parser.parse_known_args(iter(argv)) from Python: the first read used the iterator up, and argparse then parsed
    # no arguments at all, every option at its default without a word
    import sample
    ns, rest = sample.get_parser().parse_known_args(iter(["--out_dir=x", "--num_samples=2"]))
    assert (ns.out_dir, ns.num_samples, rest) == ("x", 2, [])


def test_ctrl_c_under_a_cleanup_that_fails_is_the_stop(capsys):
    # a Ctrl-C inside bench.py's `with torch.device("meta")` cut torch's mode stack, and the block's exit raised
    # "RuntimeError: trying to pop from empty mode stack" over it: a traceback for a Ctrl-C
    def main():
        try:
            raise KeyboardInterrupt
        finally:
            raise RuntimeError("trying to pop from empty mode stack")
    with pytest.raises(SystemExit) as e:
        cli(main, "each section that finished wrote its files.")
    assert e.value.code == 130
    assert capsys.readouterr().err == "stopped by Ctrl-C; each section that finished wrote its files.\n"

    def broken():
        raise RuntimeError("a bug")  # no stop behind it: as before
    with pytest.raises(RuntimeError, match="a bug"):
        cli(broken, "")


def test_a_required_option_misspelled_is_named(capsys):
    # `analyze --out-dir=X` was told only "the following arguments are required: --out_dir"
    p = Parser(prog="x")
    p.add_argument("--out_dir", required=True)
    with pytest.raises(SystemExit):
        p.parse_args(["--out-dir=run"])
    assert capsys.readouterr().err.splitlines()[-1] == ("x: error: the following arguments are required: --out_dir; "
                                                        "--out-dir is no option here, write --out_dir")
