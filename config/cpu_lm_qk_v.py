# Q-K=V: V is K, the cache holds K only (half of qkv's).
import os

with open(os.path.join(os.path.dirname(__file__), "cpu_lm.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
out_dir = "out-cpu_lm/qk_v"
proj = "qk_v"
