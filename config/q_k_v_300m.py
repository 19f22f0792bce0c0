# Q=K=V: one projection for all three; 300M.
import os

with open(os.path.join(os.path.dirname(__file__), "base_300m.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
out_dir = "out-q_k_v_300m"
proj = "q_k_v"
