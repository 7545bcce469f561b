"""Manual (not CI) check that an adapter written by `weft train` loads in PEFT and
computes what weft computes.

    python3 -m venv /work/venv
    /work/venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu   # or plain `pip install torch`
    /work/venv/bin/pip install "transformers>=5,<6" "peft==0.21.*" safetensors numpy
    /work/venv/bin/python tests/data/check_peft_interop.py --base BASE_DIR --adapter ADAPTER_DIR \
        --input IN.safetensors --logits WEFT_LOGITS.safetensors [--merged MERGED_DIR]

1. Loads PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(BASE), ADAPTER) in
   float32 with eager attention. Any missing or unexpected adapter key is a failure:
   PEFT itself only warns about missing LoRA keys and says nothing of unexpected ones,
   so the script also loads the adapter a second time with `load_adapter` and checks
   the returned _IncompatibleKeys, and compares the file's key set with the keys PEFT
   saves for that adapter config (get_peft_model_state_dict), and that every tensor in
   the file is the one now in the model.
2. Runs the model on `input_ids` from IN.safetensors and compares with the tensor
   `logits` in WEFT_LOGITS.safetensors: prints max|diff| and fails if it is above
   1e-4 * max|logits|.
3. With --merged: loads LlamaForCausalLM.from_pretrained(MERGED_DIR), prints its rope
   parameters, and compares its logits with the PEFT model's the same way.

--rope-linear-factor F loads the base with linear RoPE scaling F (as LongLoRA trains
for context extension), for adapters trained that way.

Exit status 0 when every check passes, 1 otherwise.
"""

import argparse
import sys
import warnings

import torch
from peft import PeftModel, get_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoConfig, LlamaForCausalLM

TOL = 1e-4


def load_llama(path, rope_factor=None):
    kwargs = {}
    if rope_factor is not None:
        config = AutoConfig.from_pretrained(path)
        theta = config.rope_parameters["rope_theta"]
        config.rope_parameters = {"rope_type": "linear", "factor": rope_factor, "rope_theta": theta}
        kwargs["config"] = config
    model = LlamaForCausalLM.from_pretrained(path, attn_implementation="eager", dtype=torch.float32, **kwargs)
    return model.eval()


def compare(what, got, ref):
    """Prints max|got - ref| and returns whether it is within TOL * max|ref|."""
    if got.shape != ref.shape:
        print(f"FAIL {what}: shape {tuple(got.shape)} vs {tuple(ref.shape)}")
        return False
    diff = float((got.float() - ref.float()).abs().max())
    scale = float(ref.float().abs().max())
    ok = diff <= TOL * scale and scale > 0 and diff == diff
    relative = diff / scale if scale > 0 else float("inf")
    print(f"{'ok  ' if ok else 'FAIL'} {what}: max|diff| {diff:.3e}, max|logits| {scale:.3e}, "
          f"relative {relative:.3e} (limit {TOL:.0e})")
    return ok


def load_peft(base, adapter, rope_factor):
    ok = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = PeftModel.from_pretrained(load_llama(base, rope_factor), adapter)
        except Exception as e:  # e.g. KeyError when a modules_to_save tensor is absent
            print(f"FAIL PeftModel.from_pretrained raised {type(e).__name__}: {e}")
            return None, False
    for w in caught:
        msg = str(w.message)
        if "missing adapter keys" in msg or "unexpected" in msg.lower():
            print(f"FAIL PeftModel.from_pretrained: {msg}")
            ok = False
    model.eval()

    # A second load of the same adapter, for the _IncompatibleKeys that from_pretrained drops.
    # (Neither reports a base-model key such as lm_head.weight in the file: load_state_dict
    # takes it silently into the base model. The key-set comparison below catches that.)
    result = model.load_adapter(adapter, adapter_name="interop_check")
    model.delete_adapter("interop_check")
    model.set_adapter("default")
    if result.missing_keys or result.unexpected_keys:
        print(f"FAIL load_adapter: missing {result.missing_keys}, unexpected {result.unexpected_keys}")
        ok = False

    # The file must hold exactly the keys PEFT writes for this config, and they must be in the model.
    with safe_open(f"{adapter}/adapter_model.safetensors", "pt") as f:
        file_keys = set(f.keys())
    saved = get_peft_model_state_dict(model)
    missing, unexpected = sorted(set(saved) - file_keys), sorted(file_keys - set(saved))
    if missing or unexpected:
        print(f"FAIL adapter keys vs what PEFT saves: missing {missing}, unexpected {unexpected}")
        ok = False
    weights = load_file(f"{adapter}/adapter_model.safetensors")
    for key in sorted(file_keys & set(saved)):
        if not torch.equal(saved[key].float(), weights[key].float()):
            print(f"FAIL {key}: the model does not hold the file's tensor")
            ok = False
    if ok:
        print(f"ok   adapter: {len(file_keys)} keys, none missing or unexpected, all loaded")
    return model, ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True, help="base checkpoint directory (transformers layout)")
    ap.add_argument("--adapter", required=True, help="PEFT adapter directory written by weft")
    ap.add_argument("--input", required=True, help="safetensors file with input_ids [B, T]")
    ap.add_argument("--logits", required=True, help="safetensors file with weft's `logits` [B, T, V]")
    ap.add_argument("--merged", help="merged checkpoint directory written by weft")
    ap.add_argument("--rope-linear-factor", type=float, help="load the base with linear RoPE scaling")
    args = ap.parse_args()
    torch.manual_seed(0)

    ids = load_file(args.input)["input_ids"].long()
    weft_logits = load_file(args.logits)["logits"]
    model, ok = load_peft(args.base, args.adapter, args.rope_linear_factor)
    if model is None:
        print("FAILED")
        return 1
    print(f"     base rope_parameters: {model.config.rope_parameters}")
    with torch.no_grad():
        peft_logits = model(input_ids=ids, use_cache=False).logits
    ok &= compare("PEFT vs weft logits", weft_logits, peft_logits)

    if args.merged:
        merged = load_llama(args.merged)
        cfg = merged.config
        print(f"     merged rope_parameters: {cfg.rope_parameters}")
        print(f"     merged rope_scaling: {getattr(cfg, 'rope_scaling', None)}")
        if cfg.rope_parameters != model.config.rope_parameters:
            print("     note: merged and base+adapter rope parameters differ (see --rope-linear-factor)")
        with torch.no_grad():
            merged_logits = merged(input_ids=ids, use_cache=False).logits
        ok &= compare("merged vs PEFT logits", merged_logits, peft_logits)

    print("PASS" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
