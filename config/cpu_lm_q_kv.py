# Q=K-V: K is Q, symmetric scores; the cache still holds K and V.
import os

with open(os.path.join(os.path.dirname(__file__), "cpu_lm.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
out_dir = "out-cpu_lm/q_kv"
proj = "q_kv"
