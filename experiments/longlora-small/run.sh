#!/usr/bin/env bash
# LongLoRA's ablations at small scale, on this machine, with nothing to
# download: pretrain a small LLaMA at C = 512, extend it to 4C = 2048 in five
# arms, evaluate every arm and the base model, and compare them.
#
#   bash experiments/longlora-small/run.sh [OUT]   (default OUT: experiments/longlora-small/out)
#
# About two hours on a 2-core machine with a software GPU (EXPERIMENTS.md).
#
# Interrupted, it resumes where it stopped: finished stages are skipped, a
# training run continues from its newest checkpoint. The table, results.json
# and the plots land in OUT/report and experiments/longlora-small/results
# (EXPERIMENTS.md quotes them).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$here/out}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# WEFT names a weft binary to use instead of building this checkout's.
if [[ -z ${WEFT:-} ]]; then
  cargo build --release --quiet --manifest-path "$root/Cargo.toml"
fi
weft=${WEFT:-$root/target/release/weft}
# A relative path must survive the `cd` of step 5 (a bare name is looked up in PATH).
[[ $weft == */* && $weft != /* ]] && weft=$PWD/$weft
log="$out/run.log"
lengths=512,1024,2048
passkey_trials=50

say() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$log"; }

# Seconds a stage took, kept in OUT/times.tsv for the report.
timed() {
  local name=$1
  shift
  local start=$SECONDS
  "$@"
  printf '%s\t%s\n' "$name" $((SECONDS - start)) >>"$out/times.tsv"
}

# A training run: skipped when its final adapter or model is there, resumed
# from its newest checkpoint, else started.
train() {
  local dir=$1
  shift
  if [[ -d $dir/adapter || -d $dir/model ]]; then
    say "$(basename "$dir"): trained already"
    return
  fi
  local resume=()
  if compgen -G "$dir/checkpoint-*" >/dev/null; then
    resume=(--resume)
    say "$(basename "$dir"): resuming"
  else
    resume=(--overwrite)
    say "$(basename "$dir"): training"
  fi
  timed "train $(basename "$dir")" "$weft" train --out "$dir" "${resume[@]}" "$@" 2>&1 | tee -a "$log" || true
  [[ -d $dir/adapter || -d $dir/model ]] || { say "$(basename "$dir"): training failed (see $log)"; exit 1; }
}

# An evaluation: skipped when its JSON is there.
evaluate() {
  local json=$1
  shift
  if [[ -f $json ]]; then
    say "$(basename "$(dirname "$json")"): evaluated already"
    return
  fi
  say "evaluating $(dirname "$json")"
  timed "eval $(basename "$(dirname "$json")")" "$weft" eval "$@" --data "$out/corpus/heldout.jsonl" \
    --seq-len "$lengths" --passkey "$passkey_trials" --json "$json" 2>&1 | tee -a "$log"
  [[ -f $json ]] || { say "evaluation failed (see $log)"; exit 1; }
}

say "$("$weft" --version), $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"

# 1. The corpus: Rust sources from Cargo's registry (8 MB to train on, 200 kB held out).
if [[ ! -f $out/corpus/heldout.jsonl ]]; then
  "$weft" corpus --out "$out/corpus" --train-mb 8 --heldout-kb 200 | tee -a "$log"
fi

# 2. The base model, at C = 512.
train "$out/base" --config "$here/pretrain.toml" --data "$out/corpus/train.jsonl"
base="$out/base/model"

# 3. The arms, C -> 4C = 2048: (name, pattern, mode).
arms=(
  "full-lora+ causal lora+"
  "s2-lora+ s2attn lora+"
  "s2-lora s2attn lora"
  "s2-full s2attn full"
  "longgen-lora+ $here/longgen-hybrid.toml lora+"
)
for arm in "${arms[@]}"; do
  read -r name pattern mode <<<"$arm"
  train "$out/arms/$name" --config "$here/extend.toml" --model "$base" --data "$out/corpus/train.jsonl" \
    --pattern "$pattern" --mode "$mode"
done

# 4. Evaluation at C, 2C and 4C: held-out perplexity and passkey retrieval.
#    Every arm is evaluated with full attention (as LongLoRA evaluates
#    S2-Attn models) except LongGen's, which keeps its hybrid pattern.
mkdir -p "$out/arms/base"
evaluate "$out/arms/base/eval.json" "$base"
for arm in "${arms[@]}"; do
  read -r name pattern mode <<<"$arm"
  dir="$out/arms/$name"
  eval_pattern=()
  [[ $name == longgen-* ]] && eval_pattern=(--pattern "$pattern")
  if [[ -d $dir/adapter ]]; then
    evaluate "$dir/eval.json" "$base" --adapter "$dir/adapter" "${eval_pattern[@]}"
  else
    evaluate "$dir/eval.json" "$dir/model" "${eval_pattern[@]}"
  fi
done

# 5. The report. Run paths are given relative to OUT, so that results.json
#    is the same wherever OUT is.
runs=()
for arm in "${arms[@]}"; do
  read -r name _ _ <<<"$arm"
  runs+=("$name=arms/$name")
done
runs+=("base=arms/base/eval.json")
(cd "$out" && "$weft" compare --out report "${runs[@]}") | tee -a "$log"
cp "$out/times.tsv" "$out/report/times.tsv"
# The committed copy EXPERIMENTS.md shows (git diff tells a re-run's changes).
mkdir -p "$here/results"
cp "$out/report/"* "$here/results/"
say "done: $out/report, copied to $here/results"
