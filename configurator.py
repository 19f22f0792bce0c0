"""
Overrides train.py's settings, as nanoGPT's configurator does:

    python train.py config/qk_v_300m.py --batch_size=4 --compile=False

Positional arguments are config files, plain Python executed in order; each sees the values set so far and
`__file__` (its own path), so a run file can execute a base file beside it. `--key=value` arguments are parsed
with ast.literal_eval, and a value that is no Python literal stays a string (--out_dir=out-x). Unlike nanoGPT,
an unknown key or a value of the wrong type is an error: one line naming the key and the fix, exit status 1.
"""

import argparse
import ast
import difflib
import math
import os
import re
import types


def check(key, value, defaults, where):
    """The value to store for key, or SystemExit when the key is unknown or the type differs from the default's."""
    if key not in defaults:
        near = difflib.get_close_matches(key, defaults, n=3, cutoff=0.0)
        raise SystemExit(f"unknown config key {key!r} in {where}; nearest valid keys: {', '.join(near)}.")
    want = type(defaults[key])
    if want is float and type(value) is int:  # --learning_rate=1 means 1.0
        return float(value)
    if type(value) is not want:  # strict: True is no int, 1 is no bool
        raise SystemExit(f"{key} must be of type {want.__name__} (like {defaults[key]!r}); {where} gives "
                         f"{value!r} of type {type(value).__name__}.")
    return value


def configure(defaults, args):
    """defaults: {key: value}, the settings a script exposes; args: sys.argv[1:]. Returns the updated dict."""
    values = dict(defaults)
    for arg in args:
        if arg.startswith("--"):
            key, eq, text = arg[2:].partition("=")
            if not eq:
                raise SystemExit(f"argument {arg!r} has no value; write --{key}=VALUE.")
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = text
            values[key] = check(key, value, defaults, arg)
        else:
            if not os.path.isfile(arg):
                raise SystemExit(f"config file {arg!r} not found; positional arguments are config files "
                                 f"(overrides are written --key=value).")
            scope = dict(values, __file__=arg)
            with open(arg) as f:
                exec(compile(f.read(), arg, "exec"), scope)
            for key, value in scope.items():
                if not key.startswith("_") and not isinstance(value, types.ModuleType):
                    values[key] = check(key, value, defaults, arg)
    return values


# ---------------------------------------------------------------------------------------------------------------
# Ranges, declared as plain data beside each setting and checked by one function. A rule is a short string:
# ">= 1", "> 0", "[0, 1)", "(0, 1]", "[1, 65535]"; numbers must also be finite. train.py keeps a dict
# {setting: rule} beside its settings block; the argparse scripts declare type=number(int, ">= 1").

RULE = re.compile(r"^(?:(>=|>|<=|<) *(\S+)|([\[(]) *(\S+?) *, *(\S+?) *([\])]))$")


def in_range(value, rule):
    """True when value is a finite number that satisfies rule."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    m = RULE.match(rule)
    if m is None:
        raise ValueError(f"not a range rule: {rule!r}")
    op, bound, left, lo, hi, right = m.groups()
    if op:
        b = float(bound)
        return {">=": value >= b, ">": value > b, "<=": value <= b, "<": value < b}[op]
    lo, hi = float(lo), float(hi)
    return (value >= lo if left == "[" else value > lo) and (value <= hi if right == "]" else value < hi)


def range_error(name, value, kind, rule):
    """One sentence for a value that is not a finite kind within rule, or None when it is."""
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if (kind is int and (isinstance(value, bool) or not isinstance(value, int))) or not in_range(value, rule):
        what = "an integer" if kind is int else "a finite number"
        return f"{name} must be {what} {rule}; got {value!r}."
    return None


def number(kind, rule):
    """An argparse type: the text parsed as kind, then checked against rule (carried as .kind and .rule, so tests
    can generate bad values from the parser itself)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'} {rule}; "
                                             f"got {text!r}.") from None
        error = range_error("value", value, kind, rule)
        if error:
            raise argparse.ArgumentTypeError(error.removeprefix("value "))
        return value
    parse.kind, parse.rule, parse.__name__ = kind, rule, kind.__name__
    return parse
