# The README quickstart: a small Q-K=V model on Shakespeare's bytes, a few minutes on 2 CPU cores.
# Data: python prepare_slimpajama.py --input input.txt --tokenizer=bytes \
#           --val_fraction=0.1 --out_dir=data/shakespeare_bytes
out_dir = "out-cpu-tiny"
data_dir = "data/shakespeare_bytes"
device = "cpu"
eval_interval = 200
eval_tokens = 32768  # 16 batches of 16 x 128
log_interval = 50

block_size = 128
vocab_size = 256
n_layer = 4
n_head = 4
n_embd = 128
n_inner = 0
n_kv_head = 0
proj = "qk_v"
attn = "softmax"
causal = True
pos_conv = 0
dropout = 0.0
bias = True
tie_embeddings = True

batch_size = 16
gradient_accumulation_steps = 1
max_iters = 600
learning_rate = 3e-3
min_lr = 3e-4
warmup_iters = 50
beta2 = 0.99  # 2k tokens per step: a longer second-moment average than the paper's 0.95
