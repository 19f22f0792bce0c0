# QKV with MQA: one key and one value head for the 4 query heads (1/4 of qkv's cache).
import os

with open(os.path.join(os.path.dirname(__file__), "cpu_lm.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
out_dir = "out-cpu_lm/qkv_mqa"
n_kv_head = 1
