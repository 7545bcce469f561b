"""Writes tests/data/generate/: transformers' greedy `generate` on tiny LLaMA
checkpoints transformers itself writes, the reference for `weft generate`.

Two checkpoints, both with grouped-query attention (4 query heads on 2 KV
heads) and linear RoPE scaling (factor 2): `untied` (an lm_head of its own)
and `tied` (lm_head is the embedding; save_pretrained leaves it out). Each
directory holds what `save_pretrained` wrote (config.json,
generation_config.json, model.safetensors) and:

    input.safetensors      input_ids  int64 [2, 7], uniform in [3, 96)
    expected.safetensors   output_ids int64 [2, 7 + 12]: generate(do_sample=False,
                           max_new_tokens=12), with an explicit attention mask of
                           ones (by default transformers masks every prompt token
                           equal to the pad id, which is the EOS id here)
                           logits     f32 [2, 12, 96]: each new token's logits
                           (output_scores; greedy applies no processor)

A third checkpoint, `llama3`, is `untied` with Llama 3.1's RoPE
(`rope_type: "llama3"`: factor 8, low_freq_factor 1, high_freq_factor 2,
original_max_position_embeddings 16), sized so that its 8 frequency pairs
fall in all three of the bands (one left as is, one smoothed, six divided
by the factor).

EOS is id 2 and also the pad id, so a row that ends early is padded with 2,
as `weft generate --out` pads it. The weights are transformers' own random
initialization with initializer_range 0.3 (not 0.02), so that the greedy
choices are not near ties: the script checks that every step's top two
logits differ by more than 1e-3, far above float32 rounding.

    python -m venv env && env/bin/pip install torch transformers safetensors numpy
    env/bin/python tests/data/make_generate_fixture.py [CASE...]

With case names, only those are written (the others' files stay as they are).
"""

import pathlib
import sys

import numpy as np
import torch
import transformers
from safetensors.numpy import save_file

OUT = pathlib.Path(__file__).parent / "generate"
NEW_TOKENS = 12

# As Llama-2 and Llama 3 checkpoints spell them: `rope_theta` and `rope_scaling`.
LINEAR = {"type": "linear", "factor": 2.0}
LLAMA3 = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 2.0,
    "original_max_position_embeddings": 16,
}
CASES = [("untied", False, 0, LINEAR), ("tied", True, 1, LINEAR), ("llama3", False, 2, LLAMA3)]
wanted = set(sys.argv[1:]) or {name for name, *_ in CASES}

for name, tied, seed, rope in CASES:
    if name not in wanted:
        continue
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=96,
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
        rope_theta=500.0,
        rope_scaling=rope,
        rms_norm_eps=1e-5,
        initializer_range=0.3,
        tie_word_embeddings=tied,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    config.architectures = ["LlamaForCausalLM"]
    model = transformers.LlamaForCausalLM(config).eval()
    directory = OUT / name
    model.save_pretrained(directory, safe_serialization=True)

    ids = torch.randint(3, 96, (2, 7), generator=torch.Generator().manual_seed(100 + seed))
    with torch.no_grad():
        result = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=NEW_TOKENS,
            output_scores=True,
            return_dict_in_generate=True,
        )
    output = result.sequences
    scores = torch.stack(result.scores, dim=1).float()  # [2, steps, 96]
    steps = scores.shape[1]
    # Rows that stopped at EOS before the longest: pad to NEW_TOKENS (ids with 2, logits with 0).
    if output.shape[1] < 7 + NEW_TOKENS:
        pad = torch.full((2, 7 + NEW_TOKENS - output.shape[1]), 2, dtype=output.dtype)
        output = torch.cat([output, pad], dim=1)
    logits = torch.zeros(2, NEW_TOKENS, 96)
    logits[:, :steps] = scores
    for row in range(2):
        for step in range(steps):
            if step > 0 and output[row, 7 + step - 1] == 2:
                break  # the row had ended; its scores no longer decide anything
            top = torch.topk(scores[row, step], 2).values
            assert top[0] - top[1] > 1e-3, f"{name}: near tie at row {row}, step {step}: {top}"
    save_file({"input_ids": ids.numpy().astype(np.int64)}, directory / "input.safetensors")
    save_file(
        {"output_ids": output.numpy().astype(np.int64), "logits": logits.numpy().astype(np.float32)},
        directory / "expected.safetensors",
    )
    print(name, output.tolist())
