# QKV with MQA: one key/value head; 1.2B.
import os

with open(os.path.join(os.path.dirname(__file__), "base_1b2.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
out_dir = "out-qkv_mqa_1b2"
n_kv_head = 1
