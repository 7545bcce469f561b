"""The copy probe in PyTorch + transformers, as copy.toml sets it up in weft:
the same LLaMA sizes, byte-level ids (EOS 256 between documents), sequences
of 256, batches of 8 drawn at random, AdamW (0.9, 0.95), constant lr after
50 warm-up updates, gradient norm clipped to 1. Prints the loss every 25
updates.

    python3 torch_copy.py copy.jsonl STEPS LR      (pip install torch transformers)
"""
import sys
import time

import json
import torch
from transformers import LlamaConfig, LlamaForCausalLM

path, steps, peak = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
torch.manual_seed(0)
torch.set_num_threads(1)
ids = []
for line in open(path):
    ids += list(json.loads(line)["text"].encode()) + [256]
T, B = 256, 8
rows = len(ids) // T
data = torch.tensor(ids[: rows * T]).view(rows, T)
config = LlamaConfig(
    hidden_size=256, intermediate_size=688, num_hidden_layers=3, num_attention_heads=4,
    num_key_value_heads=4, vocab_size=258, max_position_embeddings=512, rope_theta=10000.0,
    tie_word_embeddings=False, rms_norm_eps=1e-6, initializer_range=0.02,
)
model = LlamaForCausalLM(config)
optimizer = torch.optim.AdamW(model.parameters(), lr=peak, betas=(0.9, 0.95), weight_decay=0.0)
draw = torch.Generator().manual_seed(0)
start = time.time()
for step in range(1, steps + 1):
    for group in optimizer.param_groups:
        group["lr"] = peak * min(1.0, step / 50)
    batch = data[torch.randint(0, rows, (B,), generator=draw)]
    loss = model(input_ids=batch, labels=batch).loss
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    if step % 25 == 0:
        print(step, round(loss.item(), 3), round(time.time() - start, 1), flush=True)
