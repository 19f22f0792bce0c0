# Q-K=V: V is K, the KV cache holds K only; 300M.
import os

with open(os.path.join(os.path.dirname(__file__), "base_300m.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
out_dir = "out-qk_v_300m"
proj = "qk_v"
