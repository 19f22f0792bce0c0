# Shared by every paper run, executed by base_300m.py and base_1b2.py: data, model family, AdamW, budget.
data_dir = "data/slimpajama"  # r50k_base tokens from prepare_slimpajama.py
compile = True
log_interval = 10
eval_tokens = 10_000_000
total_tokens = 10_000_000_000  # sets max_iters, and with it the cosine decay's end

block_size = 2048
vocab_size = 50304  # r50k_base's 50257 padded to a multiple of 64
n_kv_head = 0
proj = "qkv"
attn = "softmax"
causal = True
pos_conv = 0
dropout = 0.1
bias = True
tie_embeddings = True

weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
