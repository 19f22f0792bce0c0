# QKV with GQA-4: 4 key/value heads for 16 query heads; 300M.
import os

with open(os.path.join(os.path.dirname(__file__), "base_300m.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
out_dir = "out-qkv_gqa4_300m"
n_kv_head = 4
