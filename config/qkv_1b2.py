# QKV: three projections, the GPT-2 baseline; 1.2B.
import os

with open(os.path.join(os.path.dirname(__file__), "base_1b2.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
out_dir = "out-qkv_1b2"
