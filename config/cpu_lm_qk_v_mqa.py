# Q-K=V with MQA: one key head, V is K (1/8 of qkv's cache).
import os

with open(os.path.join(os.path.dirname(__file__), "cpu_lm.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
out_dir = "out-cpu_lm/qk_v_mqa"
proj = "qk_v"
n_kv_head = 1
