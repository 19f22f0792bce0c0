# QKV with MQA: one key/value head; 300M.
import os

exec(open(os.path.join(os.path.dirname(__file__), "base_300m.py")).read())
out_dir = "out-qkv_mqa_300m"
n_kv_head = 1
