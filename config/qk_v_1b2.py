# Q-K=V: V is K, the KV cache holds K only; 1.2B.
import os

with open(os.path.join(os.path.dirname(__file__), "base_1b2.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
out_dir = "out-qk_v_1b2"
proj = "qk_v"
