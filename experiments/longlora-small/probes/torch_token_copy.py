"""The textbook induction-head task in PyTorch + transformers: sequences of
random ids from a 2048-id vocabulary, each segment (16-63 ids) followed by
itself and a separator, so half of every sequence is predictable by copying
alone and a one-token match finds the place to copy from. The base model's
sizes otherwise (3 layers, hidden 256, 4 heads), batches of 8 x 256 ids.
Without copying the loss stays at ln(2046) = 7.62 nats; with it, it halves.

    python3 torch_token_copy.py STEPS LR      (pip install torch transformers)
"""
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

VOCAB, T, B = 2048, 256, 8
steps, peak = int(sys.argv[1]), float(sys.argv[2])
torch.manual_seed(0)
torch.set_num_threads(1)
draw = torch.Generator().manual_seed(1)


def batch():
    rows = []
    for _ in range(B):
        row = []
        while len(row) < T:
            length = int(torch.randint(16, 64, (1,), generator=draw))
            segment = torch.randint(2, VOCAB, (length,), generator=draw).tolist()
            row += segment + segment + [0]
        rows.append(row[:T])
    return torch.tensor(rows)


config = LlamaConfig(
    hidden_size=256, intermediate_size=688, num_hidden_layers=3, num_attention_heads=4,
    num_key_value_heads=4, vocab_size=VOCAB, max_position_embeddings=512, rope_theta=10000.0,
    tie_word_embeddings=False, rms_norm_eps=1e-6, initializer_range=0.02,
)
model = LlamaForCausalLM(config)
optimizer = torch.optim.AdamW(model.parameters(), lr=peak, betas=(0.9, 0.95), weight_decay=0.0)
start = time.time()
for step in range(1, steps + 1):
    for group in optimizer.param_groups:
        group["lr"] = peak * min(1.0, step / 50)
    ids = batch()
    loss = model(input_ids=ids, labels=ids).loss
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    if step % 25 == 0:
        print(step, round(loss.item(), 3), round(time.time() - start, 1), flush=True)
