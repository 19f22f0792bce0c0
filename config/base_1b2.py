# Shared by the 1.2B runs; each run file executes this, then sets its variant and out_dir.
# 8 GPUs: 2 sequences x 2048 tokens x 288 micro-steps (36 per GPU) = 1.18M tokens per iteration.
import os

with open(os.path.join(os.path.dirname(__file__), "base_paper.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
n_layer = 22
n_head = 32
n_embd = 2048
n_inner = 8192
batch_size = 2
gradient_accumulation_steps = 288
learning_rate = 6e-5
min_lr = 6e-6
warmup_iters = 1000
eval_interval = 500
