#!/usr/bin/env python3
"""Print a markdown table of median figures per (client, concurrency).

Reads the results.jsonl that bench/compare.sh assembles from repeated
run-all.sh rounds, and adds ringbox's ratios to the best other client at
each concurrency.
"""
import json
import statistics
import sys
from collections import defaultdict

FIELDS = ("execs_per_s", "p50_ms", "p99_ms", "cpu_ms_per_exec", "rss_mib",
          "host_cpu_ms_per_exec")


def cell_values(row):
    ok = row.get("ok") or 0
    values = {
        "execs_per_s": row.get("execs_per_s"),
        "p50_ms": row.get("p50_ms"),
        "p99_ms": row.get("p99_ms"),
        "cpu_ms_per_exec": (row["client_cpu_s"] * 1000 / ok
                            if ok and row.get("client_cpu_s") is not None
                            else None),
        "rss_mib": (row["client_peak_rss_kb"] / 1024
                    if row.get("client_peak_rss_kb") is not None else None),
        "host_cpu_ms_per_exec": (row["host_busy_cpu_s"] * 1000 / ok
                                 if ok and row.get("host_busy_cpu_s")
                                 is not None else None),
    }
    return values, row.get("errors") or 0, ok


def main(path):
    cells = defaultdict(lambda: defaultdict(list))
    errors = defaultdict(int)
    runs = defaultdict(int)
    with open(path) as results:
        for line in results:
            line = line.strip()
            if not line.startswith("{"):
                continue
            row = json.loads(line)
            key = (row["peer"], row["concurrency"])
            values, errs, _ = cell_values(row)
            runs[key] += 1
            errors[key] += errs
            for field, value in values.items():
                if value is not None:
                    cells[key][field].append(value)

    medians = {key: {f: statistics.median(v) for f, v in fields.items()}
               for key, fields in cells.items()}
    print("Medians over repeated runs of each cell.")
    print()
    print("| client | C | runs | errors | execs/s | p50 ms | p99 ms | "
          "client CPU ms/exec | client peak RSS MiB | host CPU ms/exec |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key in sorted(medians, key=lambda k: (k[1], k[0])):
        m = medians[key]

        def fmt(field, digits=1):
            value = m.get(field)
            return "-" if value is None else f"{value:.{digits}f}"

        print(f"| {key[0]} | {key[1]} | {runs[key]} | {errors[key]} | "
              f"{fmt('execs_per_s', 2)} | {fmt('p50_ms')} | {fmt('p99_ms')} | "
              f"{fmt('cpu_ms_per_exec', 2)} | {fmt('rss_mib')} | "
              f"{fmt('host_cpu_ms_per_exec', 0)} |")

    print()
    print("ringbox against the best other client at the same concurrency "
          "(throughput: higher is better; the rest: lower is better).")
    print()
    print("| C | throughput ratio | p50 ratio | client CPU ratio | "
          "client RSS ratio |")
    print("|---:|---:|---:|---:|---:|")
    levels = sorted({c for _, c in medians})
    for level in levels:
        ours = medians.get(("ringbox", level))
        others = [m for (peer, c), m in medians.items()
                  if c == level and peer != "ringbox"]
        if not ours or not others:
            continue

        def ratio(field, best):
            values = [o[field] for o in others if o.get(field)]
            if not values or ours.get(field) is None:
                return "-"
            return f"{ours[field] / best(values):.2f}"

        print(f"| {level} | {ratio('execs_per_s', max)} | "
              f"{ratio('p50_ms', min)} | {ratio('cpu_ms_per_exec', min)} | "
              f"{ratio('rss_mib', min)} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: medians.py RESULTS.jsonl")
    main(sys.argv[1])
