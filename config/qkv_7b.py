# QKV: the GPT-2 baseline; 6.66B.
import os

with open(os.path.join(os.path.dirname(__file__), "base_7b.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
out_dir = "out-qkv_7b"
proj = "qkv"
