# QKV with GQA-4: 4 key/value heads for 16 query heads; 300M.
import os

exec(open(os.path.join(os.path.dirname(__file__), "base_300m.py")).read())
out_dir = "out-qkv_gqa4_300m"
n_kv_head = 4
