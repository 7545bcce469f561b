"""Writes copy.jsonl: 4000 documents, each a line of random lowercase words
(2-6 letters, 8-30 of them) and the same line again. The second line is
predictable only by copying from the first (an induction head), so the
training loss shows when a model learns to copy: about 3.0 nats per byte
without copying, about half that with it.

    python3 make_copy_data.py > copy.jsonl     (standard library only)
"""
import json
import random

rng = random.Random(1)
for _ in range(4000):
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 6)))
        for _ in range(rng.randint(8, 30))
    ]
    line = " ".join(words)
    print(json.dumps({"text": line + "\n" + line}))
