# Q=K=V: one projection for all three; the cache holds K only.
import os

with open(os.path.join(os.path.dirname(__file__), "cpu_lm.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
out_dir = "out-cpu_lm/q_k_v"
proj = "q_k_v"
