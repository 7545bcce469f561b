"""Writes tests/data/llama-2layer/: a 2-layer LLaMA checkpoint directory laid
out as transformers' `save_pretrained` lays it out, for the CLI tests of
`weft compile` and `weft inspect kernels` on a model directory.

config.json and generation_config.json come from transformers itself
(`LlamaConfig.save_pretrained`, `GenerationConfig.save_pretrained`), so their
keys are exactly what a user's checkpoint holds. The weights are random
(seeded) f32 tensors under LlamaForCausalLM's names, written with safetensors:
transformers would need torch to instantiate the model, and the CLI tests only
need the names and shapes.

    python -m venv env && env/bin/pip install transformers safetensors numpy
    env/bin/python tests/data/make_llama_checkpoint.py
"""

import pathlib

import numpy as np
import transformers
from safetensors.numpy import save_file

OUT = pathlib.Path(__file__).parent / "llama-2layer"

config = transformers.LlamaConfig(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=176,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
)
config.architectures = ["LlamaForCausalLM"]
config.save_pretrained(OUT)
transformers.GenerationConfig(bos_token_id=1, eos_token_id=2).save_pretrained(OUT)

rng = np.random.default_rng(0)
h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size
d = h // config.num_attention_heads
kv = config.num_key_value_heads * d


def normal(*shape):
    return (rng.standard_normal(shape) * config.initializer_range).astype(np.float32)


tensors = {"model.embed_tokens.weight": normal(v, h), "model.norm.weight": np.ones(h, np.float32)}
for layer in range(config.num_hidden_layers):
    p = f"model.layers.{layer}."
    tensors |= {
        p + "input_layernorm.weight": np.ones(h, np.float32),
        p + "post_attention_layernorm.weight": np.ones(h, np.float32),
        p + "self_attn.q_proj.weight": normal(h, h),
        p + "self_attn.k_proj.weight": normal(kv, h),
        p + "self_attn.v_proj.weight": normal(kv, h),
        p + "self_attn.o_proj.weight": normal(h, h),
        p + "mlp.gate_proj.weight": normal(i, h),
        p + "mlp.up_proj.weight": normal(i, h),
        p + "mlp.down_proj.weight": normal(h, i),
    }
tensors["lm_head.weight"] = normal(v, h)
save_file(tensors, OUT / "model.safetensors", metadata={"format": "pt"})
print(f"wrote {OUT} (transformers {transformers.__version__})")
