# The CPU language-model experiment (cpu_lm.py): the qkv baseline, and the settings every config/cpu_lm_*.py variant
# shares by executing this file. Byte-level Shakespeare, 0.86M parameters, the paper's architecture at toy scale.
# Data: python prepare_slimpajama.py --input=input.txt --tokenizer=bytes \
#           --val_fraction=0.1 --out_dir=data/cpu_lm_bytes
out_dir = "out-cpu_lm/qkv"
data_dir = "data/cpu_lm_bytes"
device = "cpu"
dtype = "float32"
eval_interval = 50
eval_tokens = 106496  # 26 batches of 16 x 256: the whole validation split (111,539 bytes) but its last 5k
log_interval = 10

block_size = 256
vocab_size = 256
n_layer = 4
n_head = 4
n_embd = 128
n_inner = 0
n_kv_head = 0
proj = "qkv"
attn = "softmax"
causal = True
pos_conv = 0
dropout = 0.1
bias = True
tie_embeddings = True

batch_size = 16
gradient_accumulation_steps = 1
max_iters = 600
learning_rate = 2e-3
min_lr = 2e-4
warmup_iters = 50
