# Q=K-V: K is Q, symmetric scores; the cache still holds K and V.
import os

exec(open(os.path.join(os.path.dirname(__file__), "cpu_lm.py")).read())
out_dir = "out-cpu_lm/q_kv"
proj = "q_kv"
