#!/usr/bin/env python3
"""Turn a bench/run.sh results directory into PERFORMANCE.md and a plot.

    bench/report.py RESULTS_DIR [--docs DOCS_DIR]

Reads RESULTS_DIR/host.txt, RESULTS_DIR/vm/bench/{raw.csv,meta.txt} and
RESULTS_DIR/criterion/**/new/{benchmark,estimates}.json; writes
RESULTS_DIR/PERFORMANCE.md and RESULTS_DIR/perf-pps-vs-flows.png, and with
--docs the same two files into DOCS_DIR. Medians over the measured rounds
(warm-up rounds excluded), spread as min-max, ratios of medians. Nothing here
judges a figure: the targets are shown next to what was measured.
"""

import csv
import json
import os
import re
import subprocess
import shutil
import statistics
import sys
from collections import defaultdict

# The set-ups of the plot and of the main comparisons; RULE_SETUPS (1000
# rules, udp1k only) are added to the tables.
SETUPS = ["B0", "B1", "P1", "P2", "R0", "R", "R2"]
RULE_SETUPS = ["P1r1000", "R1000"]
TABLE_SETUPS = SETUPS + RULE_SETUPS
SETUP_DOC = {
    "B0": "drop at the router's ingress (blackhole route; counted at the router's rx)",
    "B1": "plain forwarding, no netfilter module loaded",
    "P1": "nftables: `ct state established,related accept` + masquerade (nf_conntrack, nf_nat)",
    "P2": "P1 + software flowtable (`flow add @ft`)",
    "R0": "rfw.ko loaded, no ruleset: its hooks + connection tracking only (no filtering, no NAT)",
    "R": "rfw.ko with P1's ruleset (`fwctl restore`: FORWARD policy DROP, `--ct-state established,related "
         "--accept`, `-i r0 -o r1 --accept`; nat `-o r1 --masquerade --to-ports 1024-65535`: free source ports kept, "
         "as nft's masquerade keeps them; rfw's default would move ports below `ip_local_port_range`)",
    "R2": "R + rfw's fast path (`-A FORWARD --ct-state established --offload` before the stateful accept): "
          "at each device's netdev ingress rfw forwards an offloaded flow's packets itself (NAT, TTL, counters, "
          "`neigh_xmit` on the cached route)",
    "P1r1000": "P1 with 1000 non-matching rules ahead of the stateful accept",
    "R1000": "R with the same 1000 non-matching rules (`-p udp --dport N --drop`)",
}
# Performance targets (shown, not asserted). "With the fast path" is R2.
TARGET_SLOW_P1 = 1.0  # established forwarding without a fast path (R) >= 1.0x P1 (issue 18)
TARGET_FWD_P1 = 1.25  # established forwarding with the fast path >= 1.25x P1 (also issue 19's R2/P1)
TARGET_FWD_B1 = 0.85  # ... and within 15 % of B1
TARGET_OFFLOAD_P2 = 1.0  # issue 19: established forwarding with the fast path >= 1.0x P2 (nft's flowtable)
TARGET_OFFLOAD_B1 = 0.95  # ... and >= 0.95x B1
TARGET_OFFLOAD_TCP_P2 = 1.0  # ... TCP bulk with the fast path >= 1.0x P2
TARGET_NEW_P1 = 1.5  # new connections/s >= 1.5x P1
TARGET_MEM_P1 = 0.33  # bytes per connection <= 0.33x P1 (about 128 B)
WORKLOADS = [
    ("udp1k", "pps", "established UDP, 64 B, 1000 flows", "packets/s"),
    ("udp64k", "pps", "established UDP, 64 B, 64511 flows", "packets/s"),
    ("newconn", "pps", "new tuple per packet (UDP, 64 B)", "packets/s"),
    ("newconn", "ct_new_per_s", "new conntrack entries per second", "entries/s"),
    ("tcp", "bps", "TCP bulk (iperf3, 1 stream)", "Mbit/s"),
]
FLOWS = {"udp1k": 1000, "udp64k": 64511}


def read_kv(path):
    kv = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if "=" in line and not line.startswith(" "):
                    k, v = line.split("=", 1)
                    kv[k] = v
    return kv


def read_meta(path):
    kv = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition(" ")
                kv[k] = v
    return kv


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if unit == "Mbit/s":
        return f"{v:,.0f}"
    if abs(v) >= 100 or float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:.2f}"


def quartiles(xs):
    xs = sorted(xs)
    if len(xs) < 4:
        return None
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def load(results):
    raw = os.path.join(results, "vm", "bench", "raw.csv")
    data = defaultdict(list)  # (setup, workload, metric) -> [values]
    notes = {}  # (setup, workload) -> why n/a
    extra = defaultdict(list)
    rounds = set()
    if not os.path.exists(raw):
        return data, notes, extra, rounds
    with open(raw) as f:
        for row in csv.DictReader(f):
            key = (row["setup"], row["workload"], row["metric"])
            if row["warmup"] == "1":
                continue
            v = num(row["value"])
            if v is None:
                if row["value"] == "n/a":
                    notes[(row["setup"], row["workload"])] = row["unit"]
                extra[key].append(row["value"])
                continue
            if row["workload"] != "mem" and row["round"].isdigit():
                rounds.add(int(row["round"]))
            data[key].append(v)
    return data, notes, extra, rounds


def stats(xs):
    if not xs:
        return None
    return {
        "median": statistics.median(xs),
        "min": min(xs),
        "max": max(xs),
        "iqr": quartiles(xs),
        "n": len(xs),
    }


def micro(results):
    rows = []
    root = os.path.join(results, "criterion")
    for dirpath, _, files in os.walk(root):
        if not dirpath.endswith(os.sep + "new") or "estimates.json" not in files:
            continue
        try:
            with open(os.path.join(dirpath, "benchmark.json")) as f:
                b = json.load(f)
            with open(os.path.join(dirpath, "estimates.json")) as f:
                e = json.load(f)
        except (OSError, ValueError):
            continue
        med = e["median"]["point_estimate"]
        lo = e["median"]["confidence_interval"]["lower_bound"]
        hi = e["median"]["confidence_interval"]["upper_bound"]
        elems = (b.get("throughput") or {}).get("Elements")
        rows.append((b.get("group_id", ""), b.get("function_id") or "", b.get("value_str") or "", med, lo, hi, elems))
    rows.sort()
    return rows


def plot(results, st, accel):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    markers = {"B0": "v", "B1": "o", "P1": "s", "P2": "D", "R0": "^", "R": "*", "R2": "X"}
    any_line = False
    for s in SETUPS:
        xs, ys, lo, hi = [], [], [], []
        for wl, n in FLOWS.items():
            x = st.get((s, wl, "pps"))
            if x:
                xs.append(n)
                ys.append(x["median"])
                lo.append(x["median"] - x["min"])
                hi.append(x["max"] - x["median"])
        if xs:
            any_line = True
            ax.errorbar(xs, ys, yerr=[lo, hi], marker=markers.get(s, "o"), capsize=3, label=f"{s}")
    if not any_line:
        plt.close(fig)
        return None
    ax.set_xscale("log")
    ax.set_xlim(500, 130000)
    ax.set_xticks(list(FLOWS.values()))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticklabels([f"{n:,}" for n in FLOWS.values()])
    ax.set_xlabel("established UDP flows (64-byte packets)")
    ax.set_ylabel("packets/s at the sink (median, min-max bars)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"rfw bench: forwarding rate against flow count ({accel})", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, title="set-up (B0: at the router)", title_fontsize=8)
    fig.tight_layout()
    path = os.path.join(results, "perf-pps-vs-flows.png")
    fig.savefig(path)
    plt.close(fig)
    return path


PROFILE_TOP = 18
PROFILE_OBJECTS = ("[pktgen]", "[kernel.vmlinux]", "[rfw]", "[nf_conntrack]", "[nf_nat]", "[nf_tables]")


def demangle(names):
    """Rust v0 symbols (the kernel's) made readable with c++filt, hashes dropped."""
    try:
        out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True,
                             text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return names
    if len(out) != len(names):
        return names
    return [re.sub(r"\[[0-9a-f]{16}\]", "", n) for n in out]


def profiles(results):
    """(setup, workload) -> {"syms": [(percent, dso, symbol)], "dso": {dso: percent} or None}.

    From files/profile-SETUP-WORKLOAD.txt (perf report --sort dso,sym, symbols
    above 0.3 %) and files/profile-dso-SETUP-WORKLOAD.txt (perf report --sort
    dso, every sample); an older run's files/profile-SETUP.txt is udp1k's."""
    d = os.path.join(results, "vm", "bench", "files")
    res = {}
    if not os.path.isdir(d):
        return res
    for fn in sorted(os.listdir(d)):
        if fn.startswith("profile-dso-"):
            continue
        m = re.fullmatch(r"profile-([^-]+)(?:-(udp1k|newconn|tcp))?\.txt", fn)
        if not m:
            continue
        setup, wl = m.group(1), m.group(2) or "udp1k"
        rows = []
        with open(os.path.join(d, fn)) as f:
            for line in f:
                r = re.match(r"\s*([0-9.]+)%\s+(\S+)\s+\[[.kuHg]\]\s+(.+?)\s*$", line)
                if r:
                    rows.append((float(r.group(1)), r.group(2), r.group(3)))
        syms = demangle([r[2] for r in rows])
        dso = None
        fd = os.path.join(d, f"profile-dso-{setup}-{wl}.txt")
        if os.path.exists(fd):
            dso = defaultdict(float)
            with open(fd) as f:
                for line in f:
                    r = re.fullmatch(r"\s*([0-9.]+)%\s+(\S+)\s*", line)
                    if r:
                        dso[r.group(2)] += float(r.group(1))
        res[(setup, wl)] = {"syms": [(p, o, sym) for (p, o, _), sym in zip(rows, syms)], "dso": dso}
    return res


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    results = os.path.abspath(args[0])
    docs = None
    if "--docs" in args:
        docs = args[args.index("--docs") + 1]
    host = read_kv(os.path.join(results, "host.txt"))
    meta = read_meta(os.path.join(results, "vm", "bench", "meta.txt"))
    data, notes, extra, rounds = load(results)
    st = {k: stats(v) for k, v in data.items()}
    accel = host.get("accel", "")
    accel_txt = {"tcg": "emulated (QEMU TCG)", "kvm": "KVM"}.get(accel, "no VM run")
    vm_ran = bool(data) or bool(notes)
    png = None

    def med(s, wl, m):
        x = st.get((s, wl, m))
        return x["median"] if x else None

    def ran(s):
        return any(k[0] == s for k in data) or any(k[0] == s for k in notes) or any(k[0] == s for k in extra)

    def scale(wl, m, v):
        if v is None:
            return None
        return v / 1e6 if m == "bps" else v

    def ratio(a, b):
        return f"{a / b:.2f}x" if a is not None and b not in (None, 0) else "n/a"

    L = []
    L.append("# rfw performance")
    L.append("")
    L.append("Generated by `bench/report.py` from one run of the benchmark. Reproduce with:")
    L.append("")
    L.append("```sh")
    L.append(host.get("command", "bench/run.sh"))
    L.append("```")
    L.append("")
    L.append("| | |")
    L.append("|---|---|")
    L.append(f"| date | {host.get('date', '?')} |")
    L.append(f"| commit | {host.get('commit', '?')} |")
    L.append(f"| machine | {host.get('host', '?')} |")
    if vm_ran:
        L.append(f"| **execution** | **{accel_txt}** |")
        L.append(f"| guest kernel | {meta.get('kernel', '?')}, {host.get('kernel', 'perf')}: no lockdep/KASAN/debug objects (`bench/config.perf`) |")
        L.append(f"| guest | {meta.get('cpus', '?')} vCPUs, {int(num(meta.get('mem_kb')) or 0) // 1024} MiB |")
        L.append(f"| settings | {meta.get('settings', host.get('settings', '?'))} |")
        L.append(f"| rounds | {len(rounds)} measured (ABAB... over the set-ups, warm-up excluded) |")
        L.append(f"| run | {meta.get('started', '?')} to {meta.get('finished', 'unfinished')} |")
    if host.get("vm_exit"):
        L.append(f"| VM exit | {host['vm_exit']} (partial results) |")
    L.append("")
    if vm_ran and accel == "tcg":
        L.append("Everything in the VM is emulated by QEMU's TCG on this machine (no working KVM): absolute")
        L.append("rates are one to two orders of magnitude below real hardware. Compare set-ups by their ratios;")
        L.append("all set-ups ran in the same boot, interleaved round by round, so drift hits them alike.")
        L.append("")

    if vm_ran:
        L.append("## Set-ups")
        L.append("")
        L.append("Topology: sender namespace `snd` (s0) -- veth -- router `rtr` (r0, r1) -- veth -- sink `snk` (k0).")
        L.append("Traffic is generated by pktgen in `snd` (`flag !SHARED`, 60-byte frames + FCS = 64 B) and counted")
        L.append("by the sink's own UDP counters (`/proc/net/snmp` InDatagrams+NoPorts+InErrors); B0 drops")
        L.append("everything, so it is counted at the router's r0 rx. TCP: iperf3's receiver figure.")
        L.append("")
        L.append("| set-up | what |")
        L.append("|---|---|")
        for s in TABLE_SETUPS:
            L.append(f"| {s} | {SETUP_DOC[s]}{'' if ran(s) else ' (not in this run)'} |")
        L.append("")
        L.append("How each figure is taken (`bench/guest-bench.sh`):")
        L.append("")
        L.append("- Every round builds each set-up from scratch and tears it down again (nft ruleset flushed,")
        L.append("  netfilter modules and rfw.ko unloaded: B1 checks with `lsmod` that none is left), in the order")
        L.append(f"  {meta.get('setups', '?')}; the first rounds are a warm-up and are not counted.")
        L.append("  P1r1000 and R1000 run the 1000-flow workload only.")
        L.append("- Established UDP: pktgen sends one packet per flow, the sink one reply per flow (to the")
        L.append("  masqueraded address where there is NAT), then the measurement runs: pktgen at full speed")
        L.append("  for RAMP + DUR seconds, the sink's counters read at both ends of the DUR window.")
        L.append("  Flows differ by source port (1024 up). Witnesses below: the router's connection entries")
        L.append("  after the measurement (= flows), how many of them never saw a reply (should be 0: the flows")
        L.append("  were established), and, for P2 and R2, how many were offloaded (`[OFFLOAD]` in `conntrack -L`,")
        L.append("  `fwctl ct list`).")
        L.append("- New connections: random source address in 10.1.0.0/16, random source and destination port;")
        L.append("  packets/s at the sink, and new entries/s in the router's table (`nf_conntrack_count`, or")
        L.append("  `fwctl ct count` for rfw, each read with its own clock).")
        L.append("- P1/P2: nf_conntrack `hashsize=131072`, `nf_conntrack_max=524288`, UDP timeouts 300 s.")
        L.append("  R0/R/R2/R1000: `modprobe rfw hashsize=131072 max=524288`, `fwctl ct timeout udp_unreplied 300")
        L.append("  udp_replied 300`.")
        L.append("- Both engines track only in the router's namespace: nf_conntrack where a rule needs it, rfw")
        L.append("  where a ruleset is loaded (`fwctl ct tracking auto`, the default; R0 has no ruleset and")
        L.append("  sets `fwctl ct tracking on` in the router). The sink's rfw entry count is a witness (0).")
        L.append("- TCP: one iperf3 stream, snd to snk, DUR seconds after RAMP seconds omitted.")
        L.append("- The whole chain (pktgen, router, sink) runs in softirq on the sending vCPU: a packets/s")
        L.append("  figure is the cost of sender + router + sink per packet, so differences between set-ups")
        L.append("  (all in the router) are diluted, not exaggerated.")
        L.append("- The host is shared (2 cores): other jobs may have run VMs at the same time. Interleaving")
        L.append("  spreads such noise over all set-ups; the spread columns show how much there was.")
        L.append("")

        L.append(f"## Results ({accel_txt})")
        L.append("")
        L.append("Median over the measured rounds; spread = min-max (IQR where there are 4 or more rounds);")
        L.append("ratios are of medians.")
        L.append("")
        L.append("| workload | set-up | median | spread (min-max) | IQR | n | / B1 | / P1 |")
        L.append("|---|---|---:|---:|---:|---:|---:|---:|")
        for wl, m, title, unit in WORKLOADS:
            b1 = scale(wl, m, med("B1", wl, m))
            p1 = scale(wl, m, med("P1", wl, m))
            for s in TABLE_SETUPS:
                x = st.get((s, wl, m))
                if x is None:
                    why = notes.get((s, wl))
                    if why is None and (s, wl, m) not in extra:
                        # R always has its rows, R2 where it ran; others only with a figure
                        if s != "R" and not (s == "R2" and ran(s)):
                            continue
                        why = "not recorded" if ran(s) else "not run"
                    if why is None:
                        why = "; ".join(sorted(set(extra[(s, wl, m)])))
                    if len(why) > 100:
                        why = why[:100] + "... (see raw.csv)"
                    L.append(f"| {title} ({unit}) | {s} | n/a | {why} | | | | |")
                    continue
                md = scale(wl, m, x["median"])
                iqr = x["iqr"]
                iqr_s = f"{fmt(scale(wl, m, iqr[0]), unit)}-{fmt(scale(wl, m, iqr[1]), unit)}" if iqr else ""
                L.append(
                    f"| {title} ({unit}) | {s} | {fmt(md, unit)} | "
                    f"{fmt(scale(wl, m, x['min']), unit)}-{fmt(scale(wl, m, x['max']), unit)} | {iqr_s} | {x['n']} | "
                    f"{ratio(md, b1) if m != 'ct_new_per_s' else ''} | {ratio(md, p1)} |"
                )
        L.append("")

        # rule evaluation
        L.append("## Rule evaluation (established UDP, 1000 flows)")
        L.append("")
        L.append("The same ruleset with 0 and with 1000 non-matching rules ahead of the stateful accept")
        L.append("(nft `udp dport N drop`, rfw `-p udp --dport N --drop`, N = 20000...20999).")
        L.append("")
        L.append("| engine | rules ahead of the stateful accept | set-up | median packets/s | spread | n | / 0 rules | / P1 same rules |")
        L.append("|---|---|---|---:|---:|---:|---:|---:|")
        per_rule = {}
        for eng, s0, s1k in (("nf_tables", "P1", "P1r1000"), ("rfw", "R", "R1000")):
            x0 = st.get((s0, "udp1k", "pps"))
            x1k = st.get((s1k, "udp1k", "pps"))
            for label, s, x, ref in (("0", s0, x0, "P1"), ("1000 non-matching", s1k, x1k, "P1r1000")):
                refx = st.get((ref, "udp1k", "pps"))
                if x:
                    L.append(f"| {eng} | {label} | {s} | {fmt(x['median'])} | {fmt(x['min'])}-{fmt(x['max'])} | {x['n']} | "
                             f"{ratio(x['median'], x0['median'] if x0 else None)} | "
                             f"{ratio(x['median'], refx['median'] if refx else None)} |")
                else:
                    why = notes.get((s, "udp1k"), "not run")
                    L.append(f"| {eng} | {label} | {s} | n/a | {why[:100]} | | | |")
            if x0 and x1k and x0["median"] and x1k["median"]:
                per_rule[eng] = (1 / x1k["median"] - 1 / x0["median"]) * 1e9 / 1000
        if per_rule:
            L.append("")
            L.append("Added time per packet per rule, from the medians (" + accel_txt + "): " +
                     ", ".join(f"{e} {v:.1f} ns" for e, v in per_rule.items()) +
                     (f"; rfw / nf_tables {per_rule['rfw'] / per_rule['nf_tables']:.2f}x"
                      if "rfw" in per_rule and per_rule.get("nf_tables") else "") + ".")
        L.append("")

        # work per new connection, counted by rfw
        work = {s: (st.get((s, "newconn", "hashes_per_new")), st.get((s, "newconn", "allocs_per_new")))
                for s in ("R0", "R", "R2", "R1000")}
        if any(h or a for h, a in work.values()):
            L.append("## Work per new connection (rfw's own counts)")
            L.append("")
            L.append("Over the new-connection window, from the router's `fwctl ct stats`: table hashes")
            L.append("(`hashes`: lookups, NAT's in-use checks, confirmations) and table objects allocated")
            L.append("(`allocations`) per new entry (`new`). For reference, nf_conntrack hashes its table 4 times")
            L.append("per masqueraded connection and allocates one conntrack (plus its extensions).")
            L.append("")
            L.append("| set-up | hashes / new connection | allocations / new connection | n |")
            L.append("|---|---:|---:|---:|")
            for s, (h, a) in work.items():
                if h or a:
                    L.append(f"| {s} | {h['median']:.2f} | {a['median']:.2f} | {(h or a)['n']} |")
            L.append("")

        # memory
        L.append("## Bytes per tracked connection")
        L.append("")
        mem_metrics = ("entries", "entries_all_ns", "ct_slab_bytes_per_conn", "all_slab_bytes_per_conn",
                       "hash_bytes_per_conn", "nf_conntrack_objsize", "hash_buckets", "entry_bytes")
        mems = {s: {m: st.get((s, "mem", m)) for m in mem_metrics} for s in ("P1", "R")}
        L.append("The router's table filled by new UDP connections (random source address and ports) up to the")
        L.append("target, slab deltas over the fill: `/proc/slabinfo` (the engine's own cache, `nf_conntrack` or")
        L.append("`rfw_conn`: slabs x pages) and `/proc/meminfo` Slab (everything, including the conntrack")
        L.append("extensions' kmalloc), divided by the new entries of all namespaces (only the router's has any, for both")
        L.append("engines). Hash table: buckets x 8 bytes over the router's entries.")
        L.append("")
        L.append("| set-up | entries | object | cache slab / conn | all slab / conn | hash table / conn | n |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for s, cache in (("P1", "nf_conntrack"), ("R", "rfw_conn")):
            me = mems[s]
            if me["ct_slab_bytes_per_conn"] and me["all_slab_bytes_per_conn"]:
                ent = fmt(me["entries"]["median"]) if me["entries"] else "n/a"
                if s == "R" and me["entries_all_ns"]:
                    ent += f" ({fmt(me['entries_all_ns']['median'])} in all namespaces)"
                obj = f"{fmt(me['nf_conntrack_objsize']['median'])} B ({cache})" if me["nf_conntrack_objsize"] else "n/a"
                hb = (f"{me['hash_bytes_per_conn']['median']:.1f} B ({fmt(me['hash_buckets']['median'])} buckets)"
                      if me["hash_bytes_per_conn"] and me["hash_buckets"] else "n/a")
                L.append(
                    f"| {s} | {ent} | {obj} | "
                    f"{me['ct_slab_bytes_per_conn']['median']:.0f} B | {me['all_slab_bytes_per_conn']['median']:.0f} B "
                    f"({me['all_slab_bytes_per_conn']['min']:.0f}-{me['all_slab_bytes_per_conn']['max']:.0f}) | "
                    f"{hb} | {me['ct_slab_bytes_per_conn']['n']} |"
                )
            else:
                why = notes.get((s, "mem")) or ("not recorded" if any(me.values()) else "not run")
                L.append(f"| {s} | n/a | {why} | | | | |")
        L.append("")

        def mem_total(s, with_hash):
            a = mems[s]["all_slab_bytes_per_conn"]
            h = mems[s]["hash_bytes_per_conn"]
            if not a or (with_hash and not h):
                return None
            return a["median"] + (h["median"] if with_hash else 0)

        if mem_total("P1", False) and mem_total("R", False):
            rc, pc = mems["R"]["ct_slab_bytes_per_conn"], mems["P1"]["ct_slab_bytes_per_conn"]
            L.append(f"R / P1: all slab per connection {ratio(mem_total('R', False), mem_total('P1', False))}, "
                     f"with the hash table {ratio(mem_total('R', True), mem_total('P1', True))}, "
                     f"the engine's cache alone {ratio(rc['median'] if rc else None, pc['median'] if pc else None)}.")
            L.append("")
        target = None
        for kv in meta.get("settings", "").split():
            if kv.startswith("MEM_ENTRIES="):
                target = num(kv.split("=", 1)[1])
        for s in ("P1", "R"):
            e = mems[s]["entries"]
            if target and e and e["median"] < 0.95 * target:
                L.append(f"{s}: the fill stopped at {e['median']:,.0f} entries, short of the {target:,.0f} asked for.")
                L.append("")

        # targets
        def status(vals, thr, above=True):
            got = [v for v in vals if v is not None]
            if not got:
                return "n/a"
            ok = all((v >= thr) if above else (v <= thr) for v in got)
            st_ = "**met**" if ok else "**not met**"
            return st_ if len(got) == len(vals) else st_ + " (partial: some figures missing)"

        def q(a, b):
            x, y = med(*a), med(*b)
            return x / y if x is not None and y not in (None, 0) else None

        def xs(v):
            return f"{v:.2f}x" if v is not None else "n/a"

        L.append("## Performance targets (shown, not asserted)")
        L.append("")
        L.append("From the medians above. R is rfw with P1's ruleset; R2 is R with rfw's fast path (`--offload`),")
        L.append("as P2 is P1 with nftables' flowtable: the targets with the fast path compare R2.")
        L.append("")
        L.append("| target | measured | status | for reference |")
        L.append("|---|---|---|---|")

        def pair(a, b, m="pps"):  # a/b at 1k and 64k flows
            return q((a, "udp1k", m), (b, "udp1k", m)), q((a, "udp64k", m), (b, "udp64k", m))

        def both(a, b):
            r1, r64 = pair(a, b)
            return f"udp1k {xs(r1)}, udp64k {xs(r64)}"

        f1, f64 = pair("R", "P1")
        L.append(
            f"| established forwarding, no fast path, >= {TARGET_SLOW_P1}x P1 | R/P1: udp1k {xs(f1)}, udp64k {xs(f64)} | "
            f"{status([f1, f64], TARGET_SLOW_P1)} | R0/P1: {both('R0', 'P1')} |")
        o1, o64 = pair("R2", "P1")
        L.append(
            f"| established forwarding with the fast path >= {TARGET_FWD_P1}x P1 | R2/P1: udp1k {xs(o1)}, udp64k {xs(o64)} | "
            f"{status([o1, o64], TARGET_FWD_P1)} | P2/P1: {both('P2', 'P1')} |")
        b1, b64 = pair("R2", "B1")
        L.append(
            f"| established forwarding with the fast path within 15 % of B1 (>= {TARGET_FWD_B1}x) | "
            f"R2/B1: udp1k {xs(b1)}, udp64k {xs(b64)} | "
            f"{status([b1, b64], TARGET_FWD_B1)} | P1/B1: {both('P1', 'B1')}; "
            f"R (no fast path)/B1: {both('R', 'B1')}; R0 (tracking, no rules)/B1: {both('R0', 'B1')} |")
        L.append(
            f"| established forwarding with the fast path >= {TARGET_OFFLOAD_B1}x B1 | "
            f"R2/B1: udp1k {xs(b1)}, udp64k {xs(b64)} | "
            f"{status([b1, b64], TARGET_OFFLOAD_B1)} | P2/B1: {both('P2', 'B1')} |")
        p1, p64 = pair("R2", "P2")
        offl = ", ".join(f"{wl} {fmt(med('R2', wl, 'ct_offloaded'))} of {n:,}" for wl, n in FLOWS.items()
                         if med("R2", wl, "ct_offloaded") is not None) or "n/a"
        L.append(
            f"| established forwarding with the fast path >= {TARGET_OFFLOAD_P2}x P2 | R2/P2: udp1k {xs(p1)}, udp64k {xs(p64)} | "
            f"{status([p1, p64], TARGET_OFFLOAD_P2)} | R2's offloaded entries: {offl} |")
        tcp = q(("R2", "tcp", "bps"), ("P2", "tcp", "bps"))
        L.append(
            f"| TCP bulk with the fast path >= {TARGET_OFFLOAD_TCP_P2}x P2 | R2/P2: {xs(tcp)} | "
            f"{status([tcp], TARGET_OFFLOAD_TCP_P2)} | R/P1 {xs(q(('R', 'tcp', 'bps'), ('P1', 'tcp', 'bps')))}, "
            f"P2/P1 {xs(q(('P2', 'tcp', 'bps'), ('P1', 'tcp', 'bps')))} |")
        npps = q(("R", "newconn", "pps"), ("P1", "newconn", "pps"))
        nct = q(("R", "newconn", "ct_new_per_s"), ("P1", "newconn", "ct_new_per_s"))
        L.append(
            f"| new connections/s >= {TARGET_NEW_P1}x P1 | R/P1: packets/s {xs(npps)}, new entries/s {xs(nct)} | "
            f"{status([npps, nct], TARGET_NEW_P1)} | P1/B1 {xs(q(('P1', 'newconn', 'pps'), ('B1', 'newconn', 'pps')))}, "
            f"R0/B1 {xs(q(('R0', 'newconn', 'pps'), ('B1', 'newconn', 'pps')))} |")
        pm, rm = mem_total("P1", False), mem_total("R", False)
        pmh, rmh = mem_total("P1", True), mem_total("R", True)
        mr = rm / pm if rm is not None and pm else None
        mrh = rmh / pmh if rmh is not None and pmh else None
        ref = f"P1: {pm:.0f} B/conn (all slab)" + (f" + {pmh - pm:.1f} B hash" if pmh is not None else "") if pm is not None else "P1: n/a"
        L.append(
            f"| bytes per connection <= {TARGET_MEM_P1}x P1 | R/P1: all slab {xs(mr)} "
            f"({f'{rm:.0f} B' if rm is not None else 'n/a'}); with the hash table {xs(mrh)} | "
            f"{status([mr], TARGET_MEM_P1, above=False)} (slab); with the hash table: {status([mrh], TARGET_MEM_P1, above=False)} | {ref} |")
        L.append("")
        L.append("### Where rfw's per-packet cost lies (from the code, for reading the figures)")
        L.append("")
        L.append("- Per forwarded packet of an established connection R parses the headers once, where they lie")
        L.append("  in the skb (copied only from paged data), at PRE_ROUTING; FORWARD (filter) and POST_ROUTING (masquerade)")
        L.append("  take the parsed headers and the entry from a per-CPU slot, re-finding the entry by one")
        L.append("  address-only chain walk each. nf_conntrack's later hooks read `skb->_nfct`; rfw cannot")
        L.append("  attach state to the skb (`_nfct` is nf_conntrack's, modules cannot add skb extensions;")
        L.append("  docs/DESIGN.md).")
        L.append("- R2's offloaded flows skip all of that: while the ruleset has an `--offload` rule rfw hooks")
        L.append("  netdev ingress on each device, as nftables' flowtable does, and there forwards an offloaded")
        L.append("  flow's packet itself (NAT, TTL, counters, `neigh_xmit` on the route cached in the entry):")
        L.append("  no `ip_rcv`, routing, PRE_ROUTING, FORWARD or POST_ROUTING. P2's flowtable does the same")
        L.append("  for nftables (docs/RULESET.md, Offload).")
        L.append("- The tracker refreshes a UDP, ICMP or other connection without a lock, as nf_conntrack does")
        L.append("  (an atomic store of the deadline, atomic counters, an atomic OR for SEEN_REPLY/ASSURED);")
        L.append("  only TCP's window tracking takes the entry's state lock. The NAT hooks read the binding")
        L.append("  from a confirmed entry's key without a lock.")
        L.append("- rfw registers its hooks in a namespace only where it tracks or counts (`fwctl stats counting`,")
        L.append("  off by default), as nf_conntrack registers its hooks only where rules need them: the sink has")
        L.append("  none, the router PRE_ROUTING and LOCAL_OUT, FORWARD with a filter table, and the confirmation")
        L.append("  hooks at LOCAL_IN and POST_ROUTING.")
        L.append("- The NAT rewrite makes the skb writable and updates checksums per packet, as nf_nat does.")
        L.append("- A new connection is linked by its original tuple at the first hook; NAT writes its reply")
        L.append("  tuple in place and the reply direction is linked at confirmation, as nf_conntrack does")
        L.append("  (`nf_conntrack_alter_reply`, `__nf_conntrack_confirm`): one allocation per connection (a TCP")
        L.append("  connection's window state is a second), and the hashes counted in the table above. An IPv4")
        L.append("  entry is 96 bytes: tuples at their family's size, IPv4 and IPv6 in caches of their own.")
        L.append("- R0 (tracking without rules) against B1 isolates the tracking cost; R against R0 the cost of")
        L.append("  the filter and NAT steps; R2 against R what the fast path saves. The profiles below show")
        L.append("  where the time goes, function by function.")
        L.append("")
        png = plot(results, st, accel_txt)
        if png:
            L.append("## Packets per second against flow count")
            L.append("")
            L.append("![pps against flow count](perf-pps-vs-flows.png)")
            L.append("")

        prof = profiles(results)
        for wl in ("udp1k", "newconn", "tcp"):
            runs = [(setup, v) for (setup, w), v in prof.items() if w == wl]
            if not runs:
                continue
            L.append(f"## Where the time goes: profiles during {wl}")
            L.append("")
            if wl == "tcp":
                L.append("After the rounds, tcp once more per set-up under `perf record -a -e cpu-clock` (iperf3's")
                L.append("sender and receiver and the softirqs that forward its segments share both CPUs). Share of")
                L.append("all samples per object, then by symbol (self time), the top")
            else:
                L.append(f"After the rounds, {wl} once more per set-up under `perf record -C 0 -e cpu-clock` (CPU 0")
                L.append("runs pktgen's thread and the softirq that forwards its packets through the router and into")
                L.append("the sink). Share of CPU 0's samples per object, then by symbol (self time), the top")
            L.append(f"{PROFILE_TOP} of each; `[rfw]` is rfw.ko. A profile, not a figure of the tables above.")
            L.append("")
            L.append("| set-up | " + " | ".join(PROFILE_OBJECTS) + " |")
            L.append("|---|" + "---:|" * len(PROFILE_OBJECTS))
            partial = False
            for setup, v in runs:
                share = v["dso"]
                if share is None:
                    partial = True
                    share = defaultdict(float)
                    for p, dso, _ in v["syms"]:
                        share[dso] += p
                L.append(f"| {setup} | " + " | ".join(f"{share[o]:.1f} %" if share.get(o) else "" for o in PROFILE_OBJECTS) + " |")
            L.append("")
            if partial:
                L.append("(Per object: the sum of its symbols above 0.3 % of the samples: this run kept no per-object")
                L.append("totals, so objects whose time is spread over many small symbols are undercounted.)")
            else:
                L.append("(Per object: every sample of the object, `perf report --sort dso`.)")
            L.append("")
            for setup, v in runs:
                L.append(f"**{setup}, {wl}**")
                L.append("")
                L.append("| self | object | symbol |")
                L.append("|---:|---|---|")
                for p, dso, sym in v["syms"][:PROFILE_TOP]:
                    L.append(f"| {p:.1f} % | {dso} | `{sym[:110]}` |")
                L.append("")

        # witnesses
        L.append("## Witnesses")
        L.append("")
        L.append("Other counters of the same measurements (medians), to check the main figures against:")
        L.append("")
        L.append("| workload | set-up | sink UDP pps | sink k0 rx pps | router r0 rx pps | router entries after | of which unreplied | of which offloaded | sink ns entries (rfw) |")
        L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")

        def opt(s, wl, m):
            v = med(s, wl, m)
            return fmt(v) if v is not None else ""

        for wl in ("udp1k", "udp64k", "newconn"):
            for s in TABLE_SETUPS:
                if not st.get((s, wl, "sink_udp_pps")):
                    continue
                L.append(f"| {wl} | {s} | {fmt(med(s, wl, 'sink_udp_pps'))} | {fmt(med(s, wl, 'sink_dev_pps'))} | "
                         f"{fmt(med(s, wl, 'router_rx_pps'))} | {opt(s, wl, 'ct_entries')} | {opt(s, wl, 'ct_unreplied')} | "
                         f"{opt(s, wl, 'ct_offloaded')} | {opt(s, wl, 'sink_ct_entries')} |")
        mods = {s: "; ".join(sorted(set(extra.get((s, "-", "nf_modules"), [])))) for s in TABLE_SETUPS}
        L.append("")
        L.append("Netfilter-related modules loaded during each set-up (`lsmod`): " +
                 ", ".join(f"{s}: `{m.strip() or 'none'}`" for s, m in mods.items() if (s, "-", "nf_modules") in extra) + ".")
        L.append("")

    # microbenchmarks
    rows = micro(results)
    L.append("## Host microbenchmarks of the engine crates (criterion)")
    L.append("")
    if rows:
        L.append("`cargo bench -p conntrack` and `cargo bench -p nat` on the host (not emulated), same run.")
        L.append("Median time per iteration with criterion's 95 % confidence interval.")
        L.append("")
        L.append("| group | benchmark | median | 95 % CI | per element |")
        L.append("|---|---|---:|---:|---:|")
        for g, fn, val, m, lo, hi, el in rows:
            name = " / ".join(x for x in (fn, val) if x)
            per = f"{m / el:.1f} ns" if el and el > 1 else ""
            L.append(f"| {g} | {name} | {m:,.1f} ns | {lo:,.1f}-{hi:,.1f} | {per} |")
    else:
        L.append("Not run in this run (`--no-micro`) or no criterion results found.")
    L.append("")
    L.append("## Not measured")
    L.append("")
    L.append("- B0 as an nft `netdev` ingress or tc drop: the test kernel has neither `NF_TABLES_NETDEV` nor")
    L.append("  `NET_CLS_ACT`; B0 drops at the router's first routing decision instead (no netfilter).")
    L.append("")

    text = "\n".join(L)
    with open(os.path.join(results, "PERFORMANCE.md"), "w") as f:
        f.write(text)
    print(text)
    if docs:
        shutil.copy(os.path.join(results, "PERFORMANCE.md"), os.path.join(docs, "PERFORMANCE.md"))
        if png:
            shutil.copy(png, os.path.join(docs, "perf-pps-vs-flows.png"))
        print(f"bench: wrote {docs}/PERFORMANCE.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
