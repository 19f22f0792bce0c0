# QKV: three projections, the GPT-2 baseline; 300M.
import os

with open(os.path.join(os.path.dirname(__file__), "base_300m.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
out_dir = "out-qkv_300m"
