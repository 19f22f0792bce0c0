# QKV: three projections, the GPT-2 baseline; 300M.
import os

exec(open(os.path.join(os.path.dirname(__file__), "base_300m.py")).read())
out_dir = "out-qkv_300m"
