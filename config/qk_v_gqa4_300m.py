# Q-K=V with GQA-4: 4 cached key heads, V is K; 300M.
import os

with open(os.path.join(os.path.dirname(__file__), "base_300m.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
out_dir = "out-qk_v_gqa4_300m"
proj = "qk_v"
n_kv_head = 4
