#!/usr/bin/env bash
# Measures ringbox beside the docker CLI, docker-py and dockerode on the same
# daemon: runs the peer harness (run-all.sh) ROUNDS times, the clients in
# forward order in odd rounds and reverse order in even ones, then prints the
# median of each (client, concurrency) cell and draws the charts.
#
# Usage: bench/compare.sh [--rounds 3] [--n 200] [--levels "1 8 32 128"]
#                         [--peers-dir DIR] [--out DIR] [--build DIR]
#   --peers-dir is the folder with run-all.sh and the peer scripts
#   (default ../shared/peers next to the repository).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
rounds=3
n=200
levels="1 8 32 128"
peers_dir=$(cd "$root/.." && pwd)/shared/peers
out=/tmp/ringbox-compare-$(date +%Y%m%d-%H%M%S)
image=sbx-busybox:latest
build=$root/build

while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --n) n=$2; shift 2 ;;
    --levels) levels=$2; shift 2 ;;
    --peers-dir) peers_dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

[ -x "$peers_dir/run-all.sh" ] ||
  { echo "compare.sh: no run-all.sh in $peers_dir; pass --peers-dir" >&2; exit 2; }
[ -x "$build/bench/ringbox-bench" ] ||
  { echo "compare.sh: $build/bench/ringbox-bench is missing: run scripts/setup" >&2; exit 2; }
mkdir -p "$out"

# Every client goes in as an --extra, so the order can change per round.
declare -A command=(
  [docker-cli]="$peers_dir/docker_cli.sh --image $image"
  [docker-py]="/usr/bin/python3 $peers_dir/docker_py.py --image $image"
  [dockerode]="node $peers_dir/dockerode.js --image $image"
  [ringbox]="$build/bench/ringbox-bench --image $image"
)
order=(docker-cli docker-py dockerode ringbox)

: > "$out/results.jsonl"
for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) -eq 0 ]; then
    names=(ringbox dockerode docker-py docker-cli)
  else
    names=("${order[@]}")
  fi
  extras=()
  for name in "${names[@]}"; do
    extras+=(--extra "$name=${command[$name]}")
  done
  echo "== round $round of $rounds: ${names[*]}"
  "$peers_dir/run-all.sh" --n "$n" --levels "$levels" --peers "" \
    --out "$out/round-$round" "${extras[@]}"
  sed "s/}\$/,\"round\":$round}/" "$out/round-$round/results.jsonl" \
    >> "$out/results.jsonl"
done
cp "$out/round-1/versions.txt" "$out/versions.txt"

python3 "$root/bench/medians.py" "$out/results.jsonl" > "$out/medians.md"
"$root/bench/chart.sh" "$out/results.jsonl" "$out" || true
cat "$out/medians.md"
echo "results: $out"
