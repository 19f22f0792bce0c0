# Q-K=V: V is K, the KV cache holds K only; 6.12B.
import os

with open(os.path.join(os.path.dirname(__file__), "base_7b.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
out_dir = "out-qk_v_7b"
proj = "qk_v"
