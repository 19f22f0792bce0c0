# QKV: the GPT-2 baseline; 6.66B.
import os

exec(open(os.path.join(os.path.dirname(__file__), "base_7b.py")).read())
out_dir = "out-qkv_7b"
proj = "qkv"
