# Q-K=V: V is K, the KV cache holds K only; 6.12B.
import os

exec(open(os.path.join(os.path.dirname(__file__), "base_7b.py")).read())
out_dir = "out-qk_v_7b"
proj = "qk_v"
