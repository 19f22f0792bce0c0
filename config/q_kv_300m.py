# Q=K-V: K is Q, symmetric scores, no cache saving; 300M.
import os

with open(os.path.join(os.path.dirname(__file__), "base_300m.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
out_dir = "out-q_kv_300m"
proj = "q_kv"
