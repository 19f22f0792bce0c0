# Q-K=V with GQA-8: 8 cached key heads, V is K; 5.72B.
import os

with open(os.path.join(os.path.dirname(__file__), "base_7b.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
out_dir = "out-qk_v_gqa8_7b"
proj = "qk_v"
n_kv_head = 8
