#!/usr/bin/env bash
# The passkey probe "longer pretraining" (EXPERIMENTS.md): run.sh's base
# model trained on past its 4000 updates, in chunks, with passkey retrieval
# checked at C = 512 after each chunk. It asks whether retrieval forms at
# all with more tokens, and when.
#
#   bash experiments/longlora-small/longer-pretraining.sh OUT [UPDATES] [CHUNK]
#
# OUT is a finished (or at least pretrained) run.sh output directory. Its
# base is copied once to OUT/base-long, which this script then trains, so
# the arms' base stays as run.sh made it. UPDATES (default 20000) is where
# to stop; CHUNK (default 500) the updates between checks. Each chunk
# resumes the last one bit for bit (the learning rate is constant after
# warm-up, the data order per epoch does not depend on --steps), so the
# chunks are one longer run. Interrupted, it resumes; the rows already
# written stay. Every check appends a row to OUT/base-long/passkey.tsv:
# updates, held-out perplexity, passkey accuracy, and the answer's mean
# negative log-likelihood (nats; the key's entropy is ln 50000 = 10.8).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$(cd "${1:?give the output directory of run.sh}" && pwd)
updates=${2:-20000}
chunk=${3:-500}
[[ $updates =~ ^[0-9]+$ && $chunk =~ ^[1-9][0-9]*$ ]] || {
  echo "UPDATES ($updates) and CHUNK ($chunk) must be whole numbers, CHUNK above 0" >&2
  exit 1
}
if [[ -z ${WEFT:-} ]]; then
  cargo build --release --quiet --manifest-path "$root/Cargo.toml"
fi
weft=${WEFT:-$root/target/release/weft}
long=$out/base-long
table=$long/passkey.tsv

[[ -d $out/base/model ]] || { echo "no pretrained base in $out/base (run run.sh first)" >&2; exit 1; }
if [[ ! -d $long ]]; then
  cp -r "$out/base" "$long.partial"
  mv "$long.partial" "$long"
fi
[[ -f $table ]] || printf 'updates\tperplexity\tpasskey\tanswer_nll\n' >"$table"

# The updates the newest checkpoint holds.
done_updates() {
  local newest
  newest=$(compgen -G "$long/checkpoint-*" | sed 's/.*checkpoint-//' | sort -n | tail -1)
  echo "${newest:-0}"
}

while :; do
  at=$(done_updates)
  (( at < updates )) || break
  next=$(( (at / chunk + 1) * chunk ))
  (( next <= updates )) || next=$updates
  echo "[$(date -u +%H:%M:%S)] updates $at -> $next"
  "$weft" train --config "$here/pretrain.toml" --data "$out/corpus/train.jsonl" --out "$long" \
    --resume --steps "$next" --save-every "$chunk" >>"$long/train.log" 2>&1
  json=$long/eval-$next.json
  "$weft" eval "$long/model" --data "$out/corpus/heldout.jsonl" --seq-len 512 --passkey 50 \
    --json "$json" >>"$long/eval.log" 2>&1
  row=$(sed -E 's/.*"perplexity": \{"512": ([^}]*)\}, "passkey": \{"512": ([^}]*)\}, "passkey_answer_nll": \{"512": ([^}]*)\}.*/\1\t\2\t\3/' "$json")
  printf '%s\t%s\n' "$next" "$row" | tee -a "$table"
done
