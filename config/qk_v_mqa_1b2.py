# Q-K=V with MQA: one cached key head, V is K; 1.2B.
import os

with open(os.path.join(os.path.dirname(__file__), "base_1b2.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
out_dir = "out-qk_v_mqa_1b2"
proj = "qk_v"
n_kv_head = 1
