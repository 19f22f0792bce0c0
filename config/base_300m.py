# Shared by the 300M runs; each run file executes this, then sets its variant and out_dir.
# 8 GPUs: 6 sequences x 2048 tokens x 192 micro-steps (24 per GPU) = 2.36M tokens per iteration.
import os

with open(os.path.join(os.path.dirname(__file__), "base_paper.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
n_layer = 20
n_head = 16
n_embd = 1024
n_inner = 4096
batch_size = 6
gradient_accumulation_steps = 192
learning_rate = 2e-4
min_lr = 2e-5
warmup_iters = 500
eval_interval = 200
