# Q-K=V: V is K, the cache holds K only (half of qkv's).
import os

exec(open(os.path.join(os.path.dirname(__file__), "cpu_lm.py")).read())
out_dir = "out-cpu_lm/qk_v"
proj = "qk_v"
