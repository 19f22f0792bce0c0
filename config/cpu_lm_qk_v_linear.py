# Q-K=V with linear attention: a fixed recurrent state instead of a growing cache.
import os

with open(os.path.join(os.path.dirname(__file__), "cpu_lm.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
out_dir = "out-cpu_lm/qk_v_linear"
proj = "qk_v"
attn = "linear"
