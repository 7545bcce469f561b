"""Writes the safetensors fixtures for `weft attn`'s end-to-end test.

A file made by another tool: numpy + the safetensors package, and a reference
computed the way LongLoRA's PyTorch path computes S2-Attn (roll the second half
of the heads by -G/2, reshape into groups of G, causal softmax attention inside
each group, reshape back, roll back), forward and backward, in float64.

Run: pip install numpy safetensors && python3 tests/data/make_attn_fixture.py
"""
import numpy as np
from safetensors.numpy import save_file

B, H, N, D = 2, 4, 64, 16
G = N // 4
rng = np.random.default_rng(20261121)
q, k, v, do = (rng.standard_normal((B, H, N, D)).astype(np.float32) for _ in range(4))


def grouped_causal_attention(q, k, v, do):
    """Causal attention inside groups of G along the sequence; returns o, dq, dk, dv."""
    scale = 1.0 / np.sqrt(D)
    shape = q.shape
    qg, kg, vg, dog = (x.reshape(shape[0], shape[1], N // G, G, D).astype(np.float64) for x in (q, k, v, do))
    s = np.einsum("bhgid,bhgjd->bhgij", qg, kg) * scale
    causal = np.tril(np.ones((G, G), dtype=bool))
    s = np.where(causal, s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    o = np.einsum("bhgij,bhgjd->bhgid", p, vg)
    dv = np.einsum("bhgij,bhgid->bhgjd", p, dog)
    dp = np.einsum("bhgid,bhgjd->bhgij", dog, vg)
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    dq = np.einsum("bhgij,bhgjd->bhgid", ds, kg) * scale
    dk = np.einsum("bhgij,bhgid->bhgjd", ds, qg) * scale
    return [x.reshape(shape) for x in (o, dq, dk, dv)]


def s2_attention(q, k, v, do):
    shifted = slice(H // 2, H)
    rolled = []
    for x in (q, k, v, do):
        x = x.copy()
        x[:, shifted] = np.roll(x[:, shifted], -G // 2, axis=2)
        rolled.append(x)
    outs = grouped_causal_attention(*rolled)
    for x in outs:
        x[:, shifted] = np.roll(x[:, shifted], G // 2, axis=2)
    return outs


o, dq, dk, dv = s2_attention(q, k, v, do)
save_file({"q": q, "k": k, "v": v, "do": do}, "tests/data/s2attn-roll-input.safetensors")
# The reference is computed in float64 and stored as float32, the dtype weft exchanges.
save_file({name: x.astype(np.float32) for name, x in [("o", o), ("dq", dq), ("dk", dk), ("dv", dv)]},
          "tests/data/s2attn-roll-expected.safetensors")
print("wrote tests/data/s2attn-roll-{input,expected}.safetensors")
