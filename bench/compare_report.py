#!/usr/bin/env python3
"""Summarizes the runs of bench/compare.sh: the median over rounds of ops/s and p99 for each
case and system, the ratios memdex/Redis and memdex/Tarantool, printed as a table and written
between the results markers of docs/benchmarks-net.md (the rest of that file is kept)."""
import argparse
import glob
import json
import os
import statistics
import sys

SYSTEMS = ["memdex", "redis", "tarantool"]
BEGIN = "<!-- results:begin (written by bench/compare.sh; edits inside are overwritten) -->"
END = "<!-- results:end -->"


def load(results, case, system):
    runs = []
    paths = glob.glob(os.path.join(results, f"{case}.{system}.*.json"))
    for path in sorted(paths, key=lambda p: int(p.rsplit(".", 2)[-2])):
        try:
            with open(path) as f:
                runs.append(json.load(f))
        except (OSError, ValueError):
            pass
    return runs


def fmt_ops(v):
    return "-" if v is None else f"{v:,.0f}"


def fmt_us(v):
    return "-" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--cases", required=True)
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--meta", action="append", default=[])
    ap.add_argument("--doc")
    a = ap.parse_args()
    meta = dict(m.split("=", 1) for m in a.meta)

    rows = []
    failures = []
    for case in ["load"] + a.cases.split():
        med = {}
        for s in SYSTEMS:
            runs = load(a.results, case, s)
            for r in runs:
                if r.get("failed"):
                    failures.append(f"{case} {s}: {r['failed']} operations failed")
            if not runs:
                med[s] = (None, None, 0)
                continue
            med[s] = (statistics.median(r["ops_per_sec"] for r in runs),
                      statistics.median(r["p99_us"] for r in runs), len(runs))
        rows.append((case, med))

    head = ("| case | memdex ops/s | Redis ops/s | Tarantool ops/s | memdex p99 us | Redis p99 us "
            "| Tarantool p99 us | ops/s memdex/Redis | ops/s memdex/Tarantool | p99 memdex/Redis "
            "| p99 memdex/Tarantool |")
    lines = [head, "|" + "---|" * 11]
    for case, m in rows:
        (mo, mp, _), (ro, rp, _), (to, tp, _) = m["memdex"], m["redis"], m["tarantool"]
        lines.append(f"| {case} | {fmt_ops(mo)} | {fmt_ops(ro)} | {fmt_ops(to)} | {fmt_us(mp)} | "
                     f"{fmt_us(rp)} | {fmt_us(tp)} | {ratio(mo, ro)} | {ratio(mo, to)} | "
                     f"{ratio(mp, rp)} | {ratio(mp, tp)} |")
    table = "\n".join(lines)
    print(table)

    # Every round, so the spread behind each median is on record.
    per = ["| case | system | ops/s per round | p99 us per round |", "|---|---|---|---|"]
    for case in ["load"] + a.cases.split():
        for s in SYSTEMS:
            runs = load(a.results, case, s)
            if runs:
                per.append(f"| {case} | {s} | " +
                           " / ".join(fmt_ops(r["ops_per_sec"]) for r in runs) + " | " +
                           " / ".join(fmt_us(r["p99_us"]) for r in runs) + " |")
    rounds_table = "\n".join(per)
    for f in failures:
        print("FAILED:", f, file=sys.stderr)

    if not a.doc:
        return
    section = [BEGIN, "", "## Results", ""]
    section += [f"- Command: `{meta.get('command', '?')}`",
                f"- Commit: {meta.get('commit', '?')}; run {meta.get('date', '?')}",
                f"- Machine: {meta.get('cpu', '?')}, {meta.get('cores', '?')} cores; "
                f"{meta.get('pinning', '')}",
                f"- Servers: memdexd ({meta.get('memdexd_opts', '')}), Redis "
                f"{meta.get('redis', '?')}, {meta.get('tarantool', '?')}",
                f"- Setup: {meta.get('setup', '')}",
                "- Each number is the median over the rounds (load: one run). Ratios of ops/s "
                "above 1 and ratios of p99 below 1 favour memdex.", ""]
    section += [table, "", "<details><summary>Every round</summary>", "", rounds_table, "",
                "</details>", ""]
    if failures:
        section += ["Failed operations: " + "; ".join(failures), ""]
    section.append(END)
    text = "\n".join(section)
    old = ""
    if os.path.exists(a.doc):
        with open(a.doc) as f:
            old = f.read()
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + text + old[old.index(END) + len(END):]
    else:
        new = (old or "# memdex, Redis and Tarantool over the network\n\n") + "\n" + text + "\n"
    with open(a.doc, "w") as f:
        f.write(new)
    print(f"compare: wrote {a.doc}", file=sys.stderr)


if __name__ == "__main__":
    main()
