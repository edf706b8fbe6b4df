#!/usr/bin/env python3
"""Dry-run stand-in for fwctl -- NOT rfw. The issue-6 CLI contract
(`fwctl filter|nat|mangle add|insert|delete|list|flush|policy|chain`,
`save`, `restore [--check]`, `ct list|flush|stats|count`) mapped onto the
host kernel's nftables and conntrack-tools in the caller's network
namespace, so that a selftest's plumbing and expectations can be checked
against Linux in seconds, on the host, before a VM run. See run.sh.

Known gaps: --ttl-inc/--ttl-dec (nftables cannot express them), counters
reset whenever a table changes, `restore --check` only catches what
`nft -c` catches (not DNAT in POSTROUTING), `ct stats` has only `invalid`,
and the kernel's nf_conntrack only tracks a namespace once a rule there
needs it (rfw tracks every namespace from modprobe on)."""
import json, os, re, shlex, subprocess, sys

BUILTIN = {"filter": ["INPUT", "FORWARD", "OUTPUT"],
           "nat": ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
           "mangle": ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]}
HOOK = {("filter", "INPUT"): ("filter", "input", 0), ("filter", "FORWARD"): ("filter", "forward", 0),
        ("filter", "OUTPUT"): ("filter", "output", 0),
        ("nat", "PREROUTING"): ("nat", "prerouting", -100), ("nat", "INPUT"): ("nat", "input", 100),
        ("nat", "OUTPUT"): ("nat", "output", -100), ("nat", "POSTROUTING"): ("nat", "postrouting", 100),
        ("mangle", "PREROUTING"): ("filter", "prerouting", -150), ("mangle", "INPUT"): ("filter", "input", -150),
        ("mangle", "FORWARD"): ("filter", "forward", -150), ("mangle", "OUTPUT"): ("route", "output", -150),
        ("mangle", "POSTROUTING"): ("filter", "postrouting", -150)}

class Err(Exception):
    pass

def die(msg, code=1):
    print("fwctl: " + msg, file=sys.stderr)
    sys.exit(code)

def nsid():
    return str(os.stat("/proc/self/ns/net").st_ino)

SP = os.path.join(os.environ.get("FWCTL_NFT_STATE", "/tmp/fwctl-nft"), nsid() + ".json")

def load():
    try:
        return json.load(open(SP))
    except (OSError, ValueError):
        return {}

def store(st):
    json.dump(st, open(SP, "w"))

def empty_table(t):
    return {"chains": [{"name": c, "policy": "ACCEPT", "rules": []} for c in BUILTIN[t]], "next": 1}

def fam_of(addr):
    return "ip6" if ":" in addr else "ip"

def nat_fam(r):
    if r.startswith(":"):
        return ""
    if r.startswith("[") or r.count(":") > 1:
        return "ip6 "
    return "ip "

def translate(args, table, chains):
    m, fam, proto, tgt = [], None, None, None
    flags, to_ports, logp, rejw = [], None, None, None
    i = 0
    def val():
        nonlocal i
        i += 1
        if i >= len(args):
            raise Err("%s needs a value" % args[i - 1])
        v, inv = args[i], False
        if v == "!":
            i += 1
            v, inv = args[i], True
        elif v.startswith("!") and len(v) > 1:
            v, inv = v[1:], True
        return inv, v
    while i < len(args):
        a = args[i]
        if a in ("-4", "-6"):
            fam = a
            m.append("meta nfproto " + ("ipv4" if a == "-4" else "ipv6"))
        elif a == "-p":
            inv, v = val()
            proto = {"icmpv6": "ipv6-icmp", "icmp6": "ipv6-icmp"}.get(v, v)
            m.append("meta l4proto %s%s" % ("!= " if inv else "", proto))
        elif a in ("-s", "-d"):
            inv, v = val()
            m.append("%s %s %s%s" % (fam_of(v), "saddr" if a == "-s" else "daddr", "!= " if inv else "", v))
        elif a in ("--sport", "--dport"):
            inv, v = val()
            if proto is None:
                raise Err("%s needs -p" % a)
            m.append("th %s %s%s" % (a[2:], "!= " if inv else "", v.replace(":", "-")))
        elif a in ("-i", "-o"):
            inv, v = val()
            m.append('%s %s"%s"' % ("iifname" if a == "-i" else "oifname", "!= " if inv else "", v.replace("+", "*")))
        elif a in ("--ct-state", "--state"):
            inv, v = val()
            m.append("ct state %s%s" % ("!= " if inv else "", v.lower()))
        elif a == "--mark":
            inv, v = val()
            if "/" in v:
                x, mk = v.split("/")
                m.append("meta mark & %s %s %s" % (mk, "!=" if inv else "==", x))
            else:
                m.append("meta mark %s%s" % ("!= " if inv else "", v))
        elif a in ("--icmp-type",):
            inv, v = val()
            kw = "icmpv6" if proto == "ipv6-icmp" else "icmp"
            m.append("%s type %s%s" % (kw, "!= " if inv else "", v))
        elif a in ("--accept", "--drop", "--return"):
            tgt = a[2:]
        elif a == "--reject":
            tgt = "REJECT"
        elif a == "--reject-with":
            i += 1
            rejw = args[i]
        elif a in ("--jump", "--goto"):
            i += 1
            if args[i] not in chains:
                raise Err("no chain %r (declare it first)" % args[i])
            tgt = "%s u_%s" % (a[2:], args[i])
        elif a == "--queue":
            i += 1
            tgt = "queue num " + args[i]
        elif a == "--log":
            tgt = "LOG"
        elif a == "--log-prefix":
            i += 1
            logp = args[i]
        elif a in ("--to-destination", "--to-source"):
            i += 1
            if table != "nat":
                raise Err("NAT only in the nat table")
            tgt = "%s %sto %s" % ("dnat" if a == "--to-destination" else "snat", nat_fam(args[i]), args[i])
        elif a in ("--masquerade", "--redirect"):
            if table != "nat":
                raise Err("NAT only in the nat table")
            tgt = a[2:]
        elif a == "--to-ports":
            i += 1
            to_ports = args[i]
        elif a in ("--random", "--fully-random", "--persistent"):
            flags.append(a[2:])
        elif a == "--set-mark":
            i += 1
            v = args[i]
            if "/" in v:
                x, mk = v.split("/")
                tgt = "meta mark set meta mark and 0x%x or %s" % (~int(mk, 0) & 0xffffffff, x)
            else:
                tgt = "meta mark set " + v
        elif a == "--set-tos":
            i += 1
            d = int(args[i].split("/")[0], 0) >> 2
            tgt = ("FAM", "ip dscp set %d" % d, "ip6 dscp set %d" % d)
        elif a in ("--ttl-set",):
            i += 1
            tgt = ("FAM", "ip ttl set " + args[i], "ip6 hoplimit set " + args[i])
        elif a in ("--ttl-inc", "--ttl-dec"):
            raise Err("shim: %s not expressible in nftables" % a)
        else:
            raise Err("unknown option %r" % a)
        i += 1
    if tgt == "REJECT":
        tgt = "reject with tcp reset" if rejw == "tcp-reset" else "reject"
    if tgt == "LOG":
        tgt = "limit rate 5/second burst 10 packets log prefix %s" % json.dumps(logp or "")
    if tgt in ("masquerade", "redirect"):
        if to_ports:
            tgt += " to :" + to_ports
    if isinstance(tgt, str) and re.match(r"^(masquerade|redirect|dnat|snat)", tgt) and flags:
        tgt += " " + " ".join(flags)
    if isinstance(tgt, tuple):
        if fam == "-4":
            return [" ".join(m + ["counter", tgt[1]])]
        if fam == "-6":
            return [" ".join(m + ["counter", tgt[2]])]
        return [" ".join(["meta nfproto ipv4"] + m + ["counter", tgt[1]]),
                " ".join(["meta nfproto ipv6"] + m + ["counter", tgt[2]])]
    return [" ".join(m + ["counter"] + ([tgt] if tgt else []))]


def nft_table(t, tab):
    chains = [c["name"] for c in tab["chains"]]
    out = ["table inet rfw_%s" % t, "delete table inet rfw_%s" % t, "table inet rfw_%s {" % t]
    for c in tab["chains"]:
        nm = ("b_" if c["policy"] != "-" else "u_") + c["name"]
        out.append("\tchain %s {" % nm)
        if c["policy"] != "-":
            ty, hk, pr = HOOK[(t, c["name"])]
            out.append("\t\ttype %s hook %s priority %d; policy %s;" % (ty, hk, pr, c["policy"].lower()))
        for r in c["rules"]:
            for line in translate(r["args"], t, chains):
                out.append('\t\t%s comment "h=%d"' % (line, r["h"]))
        out.append("\t}")
    out.append("}")
    return "\n".join(out) + "\n"

def nft_apply(text, check=False):
    p = subprocess.run(["nft"] + (["-c"] if check else []) + ["-f", "-"], input=text, text=True,
                       capture_output=True)
    if p.returncode != 0:
        first = [l for l in p.stderr.splitlines() if "Error" in l]
        raise Err("kernel refused: " + (first[0] if first else p.stderr.strip().splitlines()[0]))

def ensure_ct():
    subprocess.run(["nft", "-f", "-"], input="table inet rfw_ct {\n chain pre { type filter hook prerouting priority -300; policy accept; ct state invalid counter; }\n chain out { type filter hook output priority -300; policy accept; ct state invalid counter; }\n}\n", text=True, capture_output=True)

def commit(st, tables):
    text = "".join(nft_table(t, st[t]) for t in tables)
    nft_apply(text)
    store(st)

def chain_of(tab, name):
    for c in tab["chains"]:
        if c["name"] == name:
            return c
    raise Err("no chain %r" % name)

def counters(t):
    p = subprocess.run(["nft", "-j", "list", "table", "inet", "rfw_" + t], capture_output=True, text=True)
    res = {}
    pol = {}
    if p.returncode:
        return res, pol
    for x in json.loads(p.stdout)["nftables"]:
        r = x.get("rule")
        if not r:
            continue
        mm = re.match(r"h=(\d+)", r.get("comment", ""))
        if not mm:
            continue
        for e in r["expr"]:
            if "counter" in e:
                h = int(mm.group(1))
                a = res.setdefault(h, [0, 0])
                a[0] += e["counter"]["packets"]
                a[1] += e["counter"]["bytes"]
    return res, pol

def opt(args, name):
    if name in args:
        i = args.index(name)
        v = args[i + 1]
        del args[i:i + 2]
        return v
    return None

def table_cmd(t, args):
    st = load()
    tab = st.get(t) or empty_table(t)
    st[t] = tab
    chains = [c["name"] for c in tab["chains"]]
    cmd = args.pop(0)
    if cmd in ("add", "insert"):
        ch = opt(args, "--chain")
        if ch is None:
            if t != "nat":
                raise Err("--chain needed")
            ch = "PREROUTING" if ("--to-destination" in args or "--redirect" in args) else "POSTROUTING"
        c = chain_of(tab, ch)
        translate(args, t, chains)
        r = {"h": tab["next"], "args": args}
        tab["next"] += 1
        if cmd == "add":
            c["rules"].append(r)
        else:
            c["rules"].insert(0, r)
        commit(st, [t])
    elif cmd == "delete":
        ch = opt(args, "--chain")
        h = int(opt(args, "--handle"))
        c = chain_of(tab, ch)
        n = len(c["rules"])
        c["rules"] = [r for r in c["rules"] if r["h"] != h]
        if len(c["rules"]) == n:
            raise Err("no rule with handle %d in %s" % (h, ch))
        commit(st, [t])
    elif cmd == "flush":
        ch = opt(args, "--chain")
        for c in tab["chains"]:
            if ch is None or c["name"] == ch:
                c["rules"] = []
        commit(st, [t])
    elif cmd == "policy":
        c = chain_of(tab, args[0])
        c["policy"] = args[1].upper()
        commit(st, [t])
    elif cmd == "chain":
        sub, name = args[0], args[1]
        if sub == "add":
            tab["chains"].append({"name": name, "policy": "-", "rules": []})
        else:
            for c in tab["chains"]:
                for r in c["rules"]:
                    if name in r["args"] and ("--jump" in r["args"] or "--goto" in r["args"]):
                        raise Err("chain %s is in use" % name)
            tab["chains"] = [c for c in tab["chains"] if c["name"] != name]
        commit(st, [t])
    elif cmd == "list":
        js = opt(args, "-o") == "json"
        ch = opt(args, "--chain")
        cnt, _ = counters(t)
        out = {"table": t, "chains": []}
        for c in tab["chains"]:
            if ch and c["name"] != ch:
                continue
            out["chains"].append({"name": c["name"], "policy": c["policy"], "rules": [
                {"handle": r["h"], "rule": " ".join(r["args"]), "packets": cnt.get(r["h"], [0, 0])[0],
                 "bytes": cnt.get(r["h"], [0, 0])[1]} for r in c["rules"]]})
        if js:
            print(json.dumps(out))
        else:
            for c in out["chains"]:
                print("chain %s (policy %s)" % (c["name"], c["policy"]))
                for r in c["rules"]:
                    print("  %d  %s  [%d:%d]" % (r["handle"], r["rule"], r["packets"], r["bytes"]))
    else:
        raise Err("unknown command " + cmd)

def save_text(st):
    out = []
    for t in ("filter", "nat", "mangle"):
        if t not in st:
            continue
        out.append("*" + t)
        for c in st[t]["chains"]:
            out.append(":%s %s [0:0]" % (c["name"], c["policy"]))
        for c in st[t]["chains"]:
            for r in c["rules"]:
                out.append("-A %s %s" % (c["name"], " ".join(shlex.quote(a) if " " in a else a for a in r["args"])))
        out.append("COMMIT")
    return "\n".join(out) + ("\n" if out else "")

def restore(args):
    check = "--check" in args
    args = [a for a in args if a != "--check"]
    text = open(args[0]).read() if args else sys.stdin.read()
    new, cur = {}, None
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#")[0].strip() if not line.strip().startswith("-A") else line.strip()
        if not line:
            continue
        try:
            if line.startswith("*"):
                cur = line[1:]
                if cur not in BUILTIN:
                    raise Err("unknown table")
                new[cur] = empty_table(cur)
            elif line == "COMMIT":
                cur = None
            elif line.startswith(":"):
                name, pol = line[1:].split()[:2]
                if name in BUILTIN[cur]:
                    chain_of(new[cur], name)["policy"] = pol
                else:
                    new[cur]["chains"].append({"name": name, "policy": "-", "rules": []})
            elif line.startswith("[") or line.startswith("-A"):
                w = shlex.split(line)
                if w[0].startswith("["):
                    w = w[1:]
                c = chain_of(new[cur], w[1])
                translate(w[2:], cur, [x["name"] for x in new[cur]["chains"]])
                c["rules"].append({"h": new[cur]["next"], "args": w[2:]})
                new[cur]["next"] += 1
            else:
                raise Err("bad line")
        except Err as e:
            raise Err("line %d: %s" % (n, e))
    textn = "".join(nft_table(t, new[t]) for t in new)
    nft_apply(textn, check=True)
    if check:
        return
    st = load()
    st.update(new)
    nft_apply(textn)
    store(st)

def ct(args):
    cmd = args.pop(0)
    if cmd == "list":
        a = []
        while args:
            x = args.pop(0)
            if x == "-p":
                a += ["-p", args.pop(0)]
            elif x == "-s":
                a += ["--orig-src", args.pop(0)]
            elif x == "-d":
                a += ["--orig-dst", args.pop(0)]
            elif x == "--state":
                a += ["--state", args.pop(0)]
        fam = []
        p = subprocess.run(["conntrack", "-L"] + a, capture_output=True, text=True)
        sys.stdout.write(p.stdout)
        print("fwctl: flow entries have been shown.", file=sys.stderr)
    elif cmd == "flush":
        subprocess.run(["conntrack", "-F"], capture_output=True)
        subprocess.run(["conntrack", "-F", "-f", "ipv6"], capture_output=True)
        print("0 connections deleted")
    elif cmd == "stats":
        p = subprocess.run(["conntrack", "-S"], capture_output=True, text=True)
        inv = sum(int(x) for x in re.findall(r"invalid=(\d+)", p.stdout))
        print("invalid %d\nrelated 0\ndrop 0" % inv)
    elif cmd == "count":
        p = subprocess.run(["conntrack", "-C"], capture_output=True, text=True)
        print(p.stdout.strip())

def main():
    args = sys.argv[1:]
    if args[:2] == ["-o", "json"]:
        args = args[2:] + ["-o", "json"]
    ensure_ct()
    try:
        if args[0] in BUILTIN:
            table_cmd(args[0], args[1:])
        elif args[0] == "save":
            sys.stdout.write(save_text(load()))
        elif args[0] == "restore":
            restore(args[1:])
        elif args[0] == "ct":
            ct(args[1:])
        elif args[0] == "stats":
            print("family hook packets bytes")
        else:
            raise Err("unknown command")
    except Err as e:
        die(str(e))
    except (IndexError, ValueError) as e:
        die("bad arguments: %s" % e, 2)

main()
