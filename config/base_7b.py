# Shared by the 7B runs (issue 16; the paper stops at 1.2B): the GPT-2 block at 32 x 4096 (LLaMA-7B's depth and
# width, n_inner 4 x width), the paper's recipe otherwise. Each run file executes this, then sets its variant.
# 8 GPUs: 1 sequence x 2048 tokens x 1024 micro-steps (128 per GPU; 16 on 64 GPUs) = 2.10M tokens per iteration.
import os

with open(os.path.join(os.path.dirname(__file__), "base_paper.py")) as _base:  # closed, not left to the collector
    exec(_base.read())
n_layer = 32
n_head = 32
n_embd = 4096
n_inner = 16384
batch_size = 1
gradient_accumulation_steps = 1024
total_tokens = 133_000_000_000  # Chinchilla's 20 tokens per parameter of qkv_7b (6.66B), the same for every variant
# The paper's two points (2e-4 at 305M, 6e-5 at 1.2B) fit lr ~ params^-0.87; extrapolated to 6.66B: 1.4e-5
learning_rate = 1.4e-5
min_lr = 1.4e-6
warmup_iters = 563  # 1.18B tokens: the paper's warmup in tokens at both of its scales
eval_interval = 250  # about every 0.5B tokens, as at 1.2B
parallel = "fsdp"
grad_ckpt = False  # fits in 80 GB on 8 GPUs without it (bench.py --what=memory); True for 40 GB GPUs or batch_size 2+
compile = False  # torch.compile with FSDP2 was not tried here (no GPU was lent)
