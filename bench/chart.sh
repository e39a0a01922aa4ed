#!/usr/bin/env bash
# Draws PNG charts of execs_per_s and p50_ms against concurrency, one line per
# peer, from the results.jsonl that run-all.sh writes. Repeated cells (same
# peer and concurrency) are reduced to their median.
#
# Usage: bench/chart.sh RESULTS.jsonl [OUT_DIR]
#   OUT_DIR defaults to the folder of RESULTS.jsonl. Writes
#   OUT_DIR/execs_per_s.png, OUT_DIR/p50_ms.png and OUT_DIR/medians.tsv.
# Needs jq and gnuplot (Debian: apt-get install jq gnuplot-nox).
set -euo pipefail

die()
{
  echo "chart.sh: $*" >&2
  exit 1
}

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: chart.sh RESULTS.jsonl [OUT_DIR]"
results=$1
[ -r "$results" ] || die "cannot read $results"
out_dir=${2:-$(dirname "$results")}
mkdir -p "$out_dir"
command -v jq >/dev/null || die "jq not found: apt-get install jq"
command -v gnuplot >/dev/null ||
  die "gnuplot not found: apt-get install gnuplot-nox"

# One row per peer and concurrency: peer, concurrency, median execs_per_s,
# median p50_ms, number of runs. A run without a value (null) is left out of
# that value's median; "NaN" marks a cell with no value at all.
medians=$out_dir/medians.tsv
jq -rs '
  def median:
    map(select(. != null)) | sort |
    if length == 0 then "NaN"
    elif length % 2 == 1 then .[length / 2 | floor]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  map(select(.peer != null and .concurrency != null))
  | group_by([.peer, .concurrency])[]
  | [.[0].peer, .[0].concurrency, (map(.execs_per_s) | median),
     (map(.p50_ms) | median), length]
  | @tsv' "$results" > "$medians"
[ -s "$medians" ] || die "no result with a peer and a concurrency in $results"

# One data file per peer, sorted by concurrency, for gnuplot's lines.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tab=$(printf '\t')
mapfile -t peers < <(cut -f1 "$medians" | sort -u)
for i in "${!peers[@]}"; do
  awk -F "$tab" -v peer="${peers[$i]}" '$1 == peer' "$medians" |
    sort -t "$tab" -k2,2n > "$work/peer$i.tsv"
done
levels=$(cut -f2 "$medians" | sort -nu | paste -sd, -)

if gnuplot -e 'set terminal' 2>&1 | grep -qw pngcairo; then
  terminal="pngcairo size 900,560 font 'sans,11'"
else
  terminal="png size 900,560"
fi

# Writes one chart: $1 = column of medians.tsv, $2 = y label, $3 = file.
draw()
{
  local column=$1 label=$2 file=$3 plot="" i title

  for i in "${!peers[@]}"; do
    title=${peers[$i]//\'/}
    [ -n "$plot" ] && plot+=", "
    plot+="'$work/peer$i.tsv' using 2:$column with linespoints lw 2 pt 7"
    plot+=" title '$title'"
  done
  gnuplot <<EOF
set terminal $terminal
set output '$file'
set datafile separator "\t"
set datafile missing "NaN"
set logscale x 2
set xtics ($levels)
set xlabel "concurrency (executions at once)"
set ylabel "$label"
set yrange [0:*]
set grid
set key outside right top
set title "$label by concurrency (median of runs)"
plot $plot
EOF
}

draw 3 "executions per second" "$out_dir/execs_per_s.png"
draw 4 "p50 latency (ms)" "$out_dir/p50_ms.png"
echo "wrote $out_dir/execs_per_s.png, $out_dir/p50_ms.png and $medians"
