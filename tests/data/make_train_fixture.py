"""Writes tests/data/train/: the independent reference for the first 3 optimizer
steps of `weft train`, computed with transformers + PEFT + torch.

What it writes (all under tests/data/train/):

    base/                    tiny GQA LLaMA checkpoint (LlamaForCausalLM.save_pretrained, f32)
    data.safetensors         input_ids, int64 [16, 32], uniform in [0, 64)
    init-adapter/            PEFT LoRA adapter (r=4, alpha=8, q/k/v/o) with random nonzero A and B
    cases/<name>/case.json   weft long flags -> values for that case
    cases/<name>/expected.safetensors
        loss       f32 [3]  loss of steps 1..3, computed before each step's update
        grad_norm  f32 [3]  global gradient L2 norm of each step, before clipping
        <tensor>   every trained tensor after step 3, under the name weft writes it
                   (PEFT adapter key names for lora/lora+, Hugging Face names for full)

The training loop is plain torch: real `torch.optim.AdamW`, real
`transformers.get_constant_schedule_with_warmup`, `torch.nn.utils.clip_grad_norm_`,
gradient accumulation as the mean of the micro-batch losses, no shuffle. It runs
in float64 (`model.double()` after loading the f32 checkpoint); the expected
tensors are stored as float32. transformers' LLaMA code rounds some things to
float32 even in a float64 model (RMSNorm, RoPE cos/sin, eager softmax, the
built-in causal-LM loss), so those four are replaced with the same formulas
computed in the input dtype; the script checks that in float32 the replacement
agrees with stock eager attention. S2-Attn is LongLoRA's `forward_noflashattn`
(llama_attn_replace.py) core: after RoPE and repeat_kv, heads [H/2, H) are rolled
by -G/2 along the sequence, the sequence is cut into T/G groups of G = T/4,
causal attention inside each group, the shifted heads' outputs are rolled back
by +G/2. It is cross-checked against tests/data/s2attn-roll-*.safetensors.

Run from the repository root:

    python3 -m venv /work/venv
    /work/venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu   # or plain `pip install torch`
    /work/venv/bin/pip install "transformers>=5,<6" "peft==0.21.*" safetensors numpy
    /work/venv/bin/python tests/data/make_train_fixture.py [--interop-out DIR]

`--interop-out DIR` also writes, outside the fixture, the trained lora-plus-causal
adapter (PEFT save_pretrained), its merged model, an input and the reference
logits, to exercise tests/data/check_peft_interop.py.

Written with torch 2.15.0, transformers 5.25.0, peft 0.21.2, safetensors 0.8.0.
"""

import argparse
import json
import math
import pathlib
import shutil

import torch
import torch.nn.functional as F
import transformers
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM, get_constant_schedule_with_warmup
from transformers.models.llama import modeling_llama

DATA = pathlib.Path(__file__).resolve().parent
OUT = DATA / "train"
BASE, ADAPTER, DATA_FILE, CASES = OUT / "base", OUT / "init-adapter", OUT / "data.safetensors", OUT / "cases"

S, T, VOCAB = 16, 32, 64
COMMON = {
    "seq-len": T, "batch-size": 2, "steps": 3, "lr": 1e-3, "warmup-steps": 2,
    "adam-beta1": 0.9, "adam-beta2": 0.95, "adam-eps": 1e-6, "weight-decay": 0.01,
    "max-grad-norm": 0.5, "lora-r": 4, "lora-alpha": 8,
}
CASE_LIST = [  # name, mode, pattern, grad-accum
    ("lora-plus-causal", "lora+", None, 1),
    ("lora-plus-s2", "lora+", "s2", 2),
    ("lora-causal", "lora", None, 1),
    ("full-causal", "full", None, 1),
    ("full-s2", "full", "s2", 1),
]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
LORA_PLUS_SAVE = ["embed_tokens", "norm"]  # PEFT matches by suffix: "norm" also wraps *_layernorm


# ---------------------------------------------------------------------------------------------
# The float64-faithful forward: RMSNorm, RoPE and attention in the input dtype.

def rms_norm_forward(self, x):
    variance = x.pow(2).mean(-1, keepdim=True)
    return self.weight * (x * torch.rsqrt(variance + self.variance_epsilon))


def rotary_forward(self, x, position_ids):
    assert self.rope_type == "default"
    theta = self.config.rope_parameters["rope_theta"]
    dim = self.config.head_dim
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    freqs = position_ids[..., None].to(torch.float64) * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


def causal_attention(q, k, v, scale):
    """Softmax attention with a causal mask over the last-but-one axis; any leading axes."""
    n = q.shape[-2]
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    causal = torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
    scores = scores.masked_fill(~causal, float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def s2_attention(q, k, v, group, scale):
    """LongLoRA's shifted sparse attention on [B, H, N, D] (q, k, v already repeat_kv'ed)."""
    b, h, n, d = q.shape
    assert n % group == 0
    half = h // 2

    def shift(x):
        x = torch.cat([x[:, :half], torch.roll(x[:, half:], -group // 2, dims=2)], dim=1)
        return x.reshape(b, h, n // group, group, d)

    o = causal_attention(shift(q), shift(k), shift(v), scale).reshape(b, h, n, d)
    return torch.cat([o[:, :half], torch.roll(o[:, half:], group // 2, dims=2)], dim=1)


ATTN_CALLS = [0]


def attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Replaces modeling_llama.eager_attention_forward. Ignores the (causal, unpadded) mask and
    builds it itself; `module.weft_s2_group` selects S2-Attn."""
    ATTN_CALLS[0] += 1
    assert dropout == 0.0
    key = modeling_llama.repeat_kv(key, module.num_key_value_groups)
    value = modeling_llama.repeat_kv(value, module.num_key_value_groups)
    group = getattr(module, "weft_s2_group", None)
    if group is None:
        out = causal_attention(query, key, value, scaling)
    else:
        out = s2_attention(query, key, value, group, scaling)
    return out.transpose(1, 2).contiguous(), None


def install_patches():
    modeling_llama.LlamaRMSNorm.forward = rms_norm_forward
    modeling_llama.LlamaRotaryEmbedding.forward = rotary_forward
    modeling_llama.eager_attention_forward = attention_forward


def set_pattern(model, pattern):
    group = T // 4 if pattern == "s2" else None
    n = 0
    for module in model.modules():
        if isinstance(module, modeling_llama.LlamaAttention):
            module.weft_s2_group = group
            n += 1
    assert n == 2


def next_token_loss(logits, ids):
    """Mean cross-entropy of position t predicting token t+1, over all B*(T-1) predictions."""
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


# ---------------------------------------------------------------------------------------------
# Fixture inputs

def make_base():
    torch.manual_seed(20261204)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
        rms_norm_eps=1e-6, tie_word_embeddings=False, hidden_act="silu",
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )
    model = LlamaForCausalLM(config)  # transformers' default init: normal(0, initializer_range)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
    # transformers 5 always writes safetensors (the `safe_serialization` argument is gone).
    model.save_pretrained(BASE)


def make_data():
    gen = torch.Generator().manual_seed(20261205)
    ids = torch.randint(0, VOCAB, (S, T), generator=gen, dtype=torch.int64)
    save_file({"input_ids": ids}, DATA_FILE)


def lora_config(modules_to_save=None):
    return LoraConfig(r=COMMON["lora-r"], lora_alpha=COMMON["lora-alpha"], lora_dropout=0.0,
                      target_modules=TARGETS, task_type="CAUSAL_LM", modules_to_save=modules_to_save)


def load_base():
    model = LlamaForCausalLM.from_pretrained(BASE, attn_implementation="eager", dtype=torch.float32)
    model.name_or_path = "tests/data/train/base"  # what PEFT writes as base_model_name_or_path
    return model


def make_init_adapter():
    model = get_peft_model(load_base(), lora_config())
    gen = torch.Generator().manual_seed(20261206)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_A." in name or ".lora_B." in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    model.save_pretrained(ADAPTER)
    (ADAPTER / "README.md").unlink()  # PEFT's boilerplate model card
    # PEFT keeps target_modules as a set, so its order in the JSON follows the string hash seed;
    # sort it (written the way PEFT writes it) so the committed file does not change run to run.
    path = ADAPTER / "adapter_config.json"
    config = json.loads(path.read_text())
    config["target_modules"] = sorted(config["target_modules"])
    path.write_text(json.dumps(config, indent=2, sort_keys=True))


# ---------------------------------------------------------------------------------------------
# Reference training

def expected_names(mode):
    names = []
    for i in range(2):
        for proj in ["q", "k", "v", "o"]:
            for ab in "AB":
                names.append(f"base_model.model.model.layers.{i}.self_attn.{proj}_proj.lora_{ab}.weight")
    if mode == "lora+":
        names.append("base_model.model.model.embed_tokens.weight")
        for i in range(2):
            for norm in ["input_layernorm", "post_attention_layernorm"]:
                names.append(f"base_model.model.model.layers.{i}.{norm}.weight")
        names.append("base_model.model.model.norm.weight")
    return sorted(names)


def build_model(mode, pattern):
    model = load_base()
    if mode == "full":
        model.double()
        for p in model.parameters():
            p.requires_grad_(True)
        trainable = list(model.named_parameters())
        assert len(trainable) == 2 + 2 * 9 + 1
    else:
        model = get_peft_model(model, lora_config(LORA_PLUS_SAVE if mode == "lora+" else None))
        init = load_file(ADAPTER / "adapter_model.safetensors")
        # lora+: the modules_to_save copies start from the base weights (PEFT made them so);
        # set_peft_model_state_dict wants them in the dict too.
        state = get_peft_model_state_dict(model)
        assert set(init) <= set(state), sorted(set(init) - set(state))
        state.update(init)
        result = set_peft_model_state_dict(model, state)
        assert not result.unexpected_keys, result.unexpected_keys
        missing_lora = [k for k in result.missing_keys if ".lora_" in k]
        assert not missing_lora, missing_lora
        model.double()
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        # Exactly the LoRA factors (+ embed_tokens and every RMSNorm weight for lora+), nothing else.
        got = sorted(n.replace(".default", "").replace(".modules_to_save", "") for n, _ in trainable)
        assert got == expected_names(mode), got
        with torch.no_grad():
            for n, p in model.named_parameters():
                if ".lora_" in n:
                    key = n.replace(".default", "")
                    assert torch.equal(p, init[key].double()), n
    set_pattern(model, pattern)
    model.train()
    return model, trainable


def grad_stats(grads, eps):
    g = torch.cat([x.reshape(-1).abs() for x in grads])
    nz = g[g > 0]
    return {
        "n": g.numel(), "zero": int((g == 0).sum()), "tiny": int(((g > 0) & (g < 100 * eps)).sum()),
        "min_nonzero": float(nz.min()),
    }


def run_case(name, mode, pattern, accum, ids):
    B, steps = COMMON["batch-size"], COMMON["steps"]
    eps, wd, lr = COMMON["adam-eps"], COMMON["weight-decay"], COMMON["lr"]
    model, trainable = build_model(mode, pattern)
    params = [p for _, p in trainable]
    opt = torch.optim.AdamW(params, lr=lr, betas=(COMMON["adam-beta1"], COMMON["adam-beta2"]),
                            eps=eps, weight_decay=wd)
    sched = get_constant_schedule_with_warmup(opt, num_warmup_steps=COMMON["warmup-steps"])
    embed = next((p for n, p in trainable if "embed_tokens" in n), None)
    ever_seen = torch.zeros(VOCAB, dtype=torch.bool)
    losses, norms, lines = [], [], []
    for s in range(steps):
        opt.zero_grad(set_to_none=True)
        step_loss = 0.0
        step_rows = ids[s * B * accum:(s + 1) * B * accum]
        for j in range(accum):
            mb = ids[s * B * accum + j * B:s * B * accum + (j + 1) * B]
            loss = next_token_loss(model(input_ids=mb, use_cache=False).logits, mb) / accum
            loss.backward()
            step_loss += loss.item()
        total = torch.nn.utils.clip_grad_norm_(params, COMMON["max-grad-norm"])
        losses.append(step_loss)
        norms.append(float(total))
        clip = min(1.0, COMMON["max-grad-norm"] / (float(total) + 1e-6))
        stats = grad_stats([p.grad for p in params], eps)
        lr_now = opt.param_groups[0]["lr"]
        check = ""
        if embed is not None:
            ever_seen |= torch.bincount(step_rows.reshape(-1), minlength=VOCAB) > 0
            absent_now = torch.bincount(step_rows.reshape(-1), minlength=VOCAB) == 0
            assert torch.all(embed.grad[absent_now] == 0)  # absent ids get exactly zero gradient
            never = ~ever_seen
            before = embed.detach().clone()
        opt.step()
        sched.step()
        if embed is not None:
            after = embed.detach()
            want = before[never] * (1 - lr_now * wd)
            ok = torch.allclose(after[never], want, rtol=0, atol=1e-15)
            if s == 0:
                ok = ok and torch.equal(after[never], before[never]) and lr_now == 0.0
            assert ok, f"{name}: never-seen embedding rows changed by more than weight decay"
            check = f" embed: {int(never.sum())} rows never seen so far changed only by decay x{1 - lr_now * wd:.8f}"
        # Adam's denominator sqrt(v_hat) + eps for the update just taken
        vh = torch.cat([(opt.state[p]["exp_avg_sq"] / (1 - COMMON["adam-beta2"] ** (s + 1))).sqrt().reshape(-1)
                        for p in params])
        small_v = int(((vh > 0) & (vh < 100 * eps)).sum())
        lines.append(
            f"  step {s + 1}: lr {lr_now:.1e} loss {step_loss:.6f} grad_norm {float(total):.6f} "
            f"clip x{clip:.4f}{' (CLIPPED)' if clip < 1 else ''} | elements {stats['n']}: |g|==0 {stats['zero']}"
            f", 0<|g|<100eps {stats['tiny']} ({100 * stats['tiny'] / stats['n']:.2f}%), "
            f"min nonzero |g| {stats['min_nonzero']:.2e} ({stats['min_nonzero'] / eps:.2f} eps), "
            f"0<sqrt(vhat)<100eps {small_v} ({100 * small_v / stats['n']:.2f}%)" + check)
    assert len(set(round(x, 12) for x in losses)) == steps, f"{name}: loss did not change"
    if mode == "full":
        tensors = {n: p.detach().float().contiguous() for n, p in trainable}
    else:
        sd = get_peft_model_state_dict(model)
        assert sorted(sd) == expected_names(mode), sorted(sd)
        tensors = {n: t.detach().float().contiguous() for n, t in sd.items()}
    tensors["loss"] = torch.tensor(losses, dtype=torch.float32)
    tensors["grad_norm"] = torch.tensor(norms, dtype=torch.float32)
    print(f"{name} ({mode}, {pattern or 'causal'}, accum {accum}): {len(trainable)} trained tensors")
    print("\n".join(lines))
    return model, tensors


# ---------------------------------------------------------------------------------------------
# Self-checks of the patched forward

def check_against_stock(ids):
    """Before patching: stock eager f32 logits. After: patched f32 and f64 logits must agree."""
    model = load_base()
    with torch.no_grad():
        stock = model(input_ids=ids[:2], use_cache=False).logits
    install_patches()
    calls = ATTN_CALLS[0]
    set_pattern(model, None)
    with torch.no_grad():
        ours32 = model(input_ids=ids[:2], use_cache=False).logits
        ours64 = model.double()(input_ids=ids[:2], use_cache=False).logits
    assert ATTN_CALLS[0] == calls + 4, "patched attention was not used"
    assert ours64.dtype == torch.float64
    d32 = float((ours32 - stock).abs().max())
    d64 = float((ours64 - stock.double()).abs().max())
    scale = float(stock.abs().max())
    print(f"self-check: patched vs stock eager logits, max|diff| f32 {d32:.2e}, f64 {d64:.2e} (max|logit| {scale:.3f})")
    assert d32 < 1e-5 * scale and d64 < 1e-5 * scale


def check_s2_against_attn_fixture():
    """S2-Attn core vs the numpy reference of tests/data/make_attn_fixture.py (G = N/4, fwd + bwd)."""
    inp = load_file(DATA / "s2attn-roll-input.safetensors")
    exp = load_file(DATA / "s2attn-roll-expected.safetensors")
    q, k, v = (inp[n].double().requires_grad_(True) for n in ("q", "k", "v"))
    n, d = q.shape[2], q.shape[3]
    o = s2_attention(q, k, v, n // 4, 1 / math.sqrt(d))
    o.backward(inp["do"].double())
    diffs = [float((x.detach().float() - exp[nm]).abs().max()) for nm, x in [("o", o), ("dq", q.grad), ("dk", k.grad), ("dv", v.grad)]]
    print(f"self-check: S2-Attn vs tests/data/s2attn-roll-expected, max|diff| o/dq/dk/dv {max(diffs):.2e}")
    assert max(diffs) < 1e-5


def check_s2_against_longlora_layout():
    """Literal transcription of LongLoRA forward_noflashattn's shift / reshape / roll-back."""
    gen = torch.Generator().manual_seed(1)
    b, h, n, d, G = 2, 4, 32, 8, 8
    q, k, v = (torch.randn(b, h, n, d, generator=gen, dtype=torch.float64) for _ in range(3))

    def shift(qkv):
        qkv = qkv.clone()
        qkv[:, h // 2:] = qkv[:, h // 2:].roll(-G // 2, dims=2)
        return qkv.transpose(1, 2).reshape(b * (n // G), G, h, d).transpose(1, 2)

    qs, ks, vs = shift(q), shift(k), shift(v)
    w = torch.matmul(qs, ks.transpose(2, 3)) / math.sqrt(d)
    mask = torch.full((G, G), float("-inf"), dtype=torch.float64).triu(1)
    o = torch.matmul(torch.softmax(w + mask, dim=-1), vs).transpose(1, 2).contiguous().reshape(b, n, h, d)
    o[:, :, h // 2:] = o[:, :, h // 2:].roll(G // 2, dims=1)
    ours = s2_attention(q, k, v, G, 1 / math.sqrt(d)).transpose(1, 2)
    diff = float((ours - o).abs().max())
    print(f"self-check: S2-Attn vs LongLoRA layout transcription, max|diff| {diff:.2e}")
    assert diff < 1e-12


def write_interop(out, model, ids):
    """The trained lora-plus-causal adapter, its merged model, an input and reference logits."""
    out = pathlib.Path(out)
    if out.exists():
        shutil.rmtree(out)
    set_pattern(model, None)
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids[:2], use_cache=False).logits.float()
    model.float()
    model.save_pretrained(out / "adapter")
    save_file({"input_ids": ids[:2].contiguous()}, out / "input.safetensors")
    save_file({"logits": logits.contiguous()}, out / "logits.safetensors")
    merged = model.merge_and_unload()
    merged.save_pretrained(out / "merged")
    print(f"interop: wrote {out}/adapter, merged/, input.safetensors, logits.safetensors")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--interop-out", help="also write the trained lora-plus-causal adapter etc. here")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    make_base()
    make_data()
    make_init_adapter()
    ids = load_file(DATA_FILE)["input_ids"]
    check_against_stock(ids)
    check_s2_against_attn_fixture()
    check_s2_against_longlora_layout()
    for name, mode, pattern, accum in CASE_LIST:
        torch.manual_seed(0)  # nothing random should be drawn, but keep it fixed anyway
        model, tensors = run_case(name, mode, pattern, accum, ids)
        case_dir = CASES / name
        case_dir.mkdir(parents=True)
        flags = {"mode": mode, "pattern": pattern, **COMMON, "grad-accum": accum}
        if mode != "full":
            flags["init-adapter"] = "tests/data/train/init-adapter"
        (case_dir / "case.json").write_text(json.dumps(flags, indent=2) + "\n")
        save_file(tensors, case_dir / "expected.safetensors", metadata={"format": "pt"})
        if name == "lora-plus-causal" and args.interop_out:
            write_interop(args.interop_out, model, ids)
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT.relative_to(DATA.parent.parent)}: {total} bytes")


if __name__ == "__main__":
    main()
