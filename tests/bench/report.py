#!/usr/bin/env python3
"""tests/bench/report.py: results.json -> report.md + plot.png (gnuplot).

Imported by run.py; also runs alone to redo a report from a results folder:
    report.py results/<timestamp>

Every figure is the median over the repetitions, with min..max. A ratio
between two targets is taken per repetition (the two runs of one
repetition are seconds apart, so they share the machine's load at that
moment) and the median of those ratios is the one judged.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys

# The provider's in-flight limit when the run could not read it
# (http.h HTTP_DEFAULT_MAX_INFLIGHT).
DEFAULT_MAX_INFLIGHT = 64
FAKE_LATENCY_S = 0.020

LABEL = {"echo": "bare echo (floor)", "ssh": "ssh-agent",
         "kmsd": "kmsd", "kmsd-audit": "kmsd + audit log"}
SHAPE_LABEL = {"pp": "ping-pong (1 client)", "c8": "8 clients",
               "c64": "64 clients", "d16": "1 client, pipelined 16",
               "d64": "1 client, pipelined 64"}


def runs_by_id(res):
    out = {}
    for r in res.get("runs", []):
        out.setdefault(r["id"], {})[r["rep"]] = r["r"]
    return out


def agg(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"med": statistics.median(vals), "min": min(vals),
            "max": max(vals), "n": len(vals)}


def field(by, rid, f):
    return agg([r.get(f) if r else None for r in by.get(rid, {}).values()])


def ratio(by, a, b, f):
    """Per-repetition ratio a/b of field f, aggregated."""
    ra, rb = by.get(a, {}), by.get(b, {})
    vals = []
    for rep in ra:
        x, y = ra[rep], rb.get(rep)
        if x and y and x.get(f) and y.get(f):
            vals.append(x[f] / y[f])
    return agg(vals)


def fmt(a, digits=1, unit=""):
    if a is None:
        return "n/a"
    if a["n"] == 1:
        return f"{a['med']:.{digits}f}{unit}"
    return (f"{a['med']:.{digits}f}{unit} "
            f"({a['min']:.{digits}f}–{a['max']:.{digits}f})")


def fmt_k(a):
    """ops/s in thousands."""
    if a is None:
        return "n/a"
    if a["n"] == 1:
        return f"{a['med'] / 1000:.1f}k"
    return (f"{a['med'] / 1000:.1f}k ({a['min'] / 1000:.1f}–"
            f"{a['max'] / 1000:.1f}k)")


# A row shown beside a target without being one.
SHOWN = "shown"


def verdict(ok):
    if ok == SHOWN:
        return "shown, not a target"
    return "n/a" if ok is None else ("**PASS**" if ok else "**FAIL**")


def fake_latency(by):
    """The slow fake's real latency in seconds: direct libcurl's p50 at
    one request in flight (20 ms of echo_sleep plus nginx's timer slop and
    the loopback TLS round trip), else the nominal 20 ms."""
    a = field(by, "kms-slow/curl/1", "p50_us")
    return a["med"] / 1e6 if a else FAKE_LATENCY_S


def split_place(res):
    return (f"server pinned to CPU {res.get('pin_cpu', 0)}, client to CPU "
            f"{res.get('client_cpu', 1)}")


def targets(res, by):
    """(target, measured, limit, placement, PASS/FAIL/None) rows."""
    rows = []
    pin = f"client and server pinned to CPU {res.get('pin_cpu', 0)}"

    def add(name, a, limit, placement, ok_fn, digits=2, unit="x"):
        if ok_fn is None:
            ok = SHOWN
        else:
            ok = None if a is None else ok_fn(a["med"])
        rows.append((name, fmt(a, digits, unit), limit, placement, ok))

    add("wrap ping-pong p50 / bare echo p50",
        ratio(by, "kmsd/wrap/pp", "echo/pp", "p50_us"), "≤ 1.5x", pin,
        lambda v: v <= 1.5)
    add("unwrap ping-pong p50 / bare echo p50",
        ratio(by, "kmsd/unwrap/pp", "echo/pp", "p50_us"), "≤ 1.5x", pin,
        lambda v: v <= 1.5)
    add("hello ping-pong p50 / bare echo p50",
        ratio(by, "kmsd/hello/pp", "echo/pp", "p50_us"), "≤ 1.3x", pin,
        lambda v: v <= 1.3)
    for kind in ("wrap", "unwrap", "hello"):
        add(f"{kind} ping-pong p50 / ssh-agent p50",
            ratio(by, f"kmsd/{kind}/pp", "ssh/pp", "p50_us"), "≤ 1.0x", pin,
            lambda v: v <= 1.0)
    # Throughput is judged with client and server on one core: stable
    # from run to run, and it charges kmsd for every microsecond of CPU.
    # The split placement (tables below) varies by 2-5x between
    # repetitions on this VM (cross-core wake-ups), so it is shown, not
    # judged.
    # The issue sets the 70% at 8 clients; 64 clients is shown beside it
    # (see "Where kmsd is below 70% of the floor").
    pre, tplace = "", pin
    for kind in ("wrap", "unwrap", "hello"):
        for sh in ("c8", "c64"):
            add(f"{kind} {SHAPE_LABEL[sh]} throughput / bare echo",
                ratio(by, f"{pre}kmsd/{kind}/{sh}", f"{pre}echo/{sh}",
                      "ops_per_s"),
                "≥ 0.70x" if sh == "c8" else "(0.70x at 8 clients)",
                tplace + "; one client thread (epoll)",
                (lambda v: v >= 0.70) if sh == "c8" else None)
    for kind in ("wrap", "unwrap", "hello"):
        for sh in ("d16", "d64"):
            add(f"{kind} {SHAPE_LABEL[sh]} throughput / bare echo",
                ratio(by, f"{pre}kmsd/{kind}/{sh}", f"{pre}echo/{sh}",
                      "ops_per_s"),
                "≥ 0.50x", tplace, lambda v: v >= 0.50)
    # Syscalls are judged on the shared core too. Split, a wake-up finds
    # however many requests the other core has sent since the last one,
    # which the cross-core wake-ups of this VM set: the bare echo's own
    # count there moves from run to run (2.15 to 2.80 per request at 8
    # clients), so those rows are shown beside it.
    floor_split = {s["shape"]: s["per_request"] for s in
                   res.get("syscalls", []) if s["target"] == "echo" and
                   s.get("placement") == "split"}
    for s in res.get("syscalls", []):
        if s["target"].startswith("kmsd") and s["shape"] in ("c8", "c64") \
                and s["per_request"] is not None:
            a = {"med": s["per_request"], "min": s["per_request"],
                 "max": s["per_request"], "n": 1}
            split = s.get("placement") == "split"
            fl = floor_split.get(s["shape"])
            add(f"syscalls per request, {s['target']} {s['kind']} "
                f"{SHAPE_LABEL[s['shape']]}", a,
                ("(≤ 2.5 on the shared core; bare echo here: "
                 f"{fl:.2f}" if fl is not None else "not run") + ")" if split
                else "≤ 2.5",
                (split_place(res) if split else pin) + f" ({s['tool']})",
                None if split else (lambda v: v <= 2.5), 2, "")
    # KMS path.
    kplace = "unpinned (client, kmsd, nginx share both CPUs)"
    add("KMS path, 64 concurrent: kmsd / direct libcurl multi",
        ratio(by, "kms/kmsd/64", "kms/curl/64", "ops_per_s"), "≥ 0.70x",
        kplace, lambda v: v >= 0.70)
    fk = (res.get("fake") or {}).get("kmsd")
    if fk and fk.get("requests"):
        limit = res.get("aws_max_inflight", DEFAULT_MAX_INFLIGHT)
        # Pooled: never more connections than the provider's in-flight
        # limit, i.e. no handshake per request.
        ok = fk["connections"] <= limit and \
            fk["connections"] < fk["requests"] / 100
        rows.append(("TLS handshakes: kmsd, one per pooled connection",
                     f"{fk['connections']} handshakes ({fk['handshakes_full']}"
                     f" full) for {fk['requests']} requests = "
                     f"{fk['handshakes_per_10k']} per 10,000",
                     f"≤ pool size ({limit}), never per request", kplace, ok))
    limit = res.get("aws_max_inflight", DEFAULT_MAX_INFLIGHT)
    lat = fake_latency(by)
    for conc in (1, 8, 64, 512):
        a = field(by, f"kms-slow/kmsd/{conc}", "ops_per_s")
        ideal = min(conc, limit) / lat
        if a is not None:
            a = {k: (v / ideal if k != "n" else v) for k, v in a.items()}
        add(f"20 ms fake, {conc} concurrent: kmsd / (min(C, {limit}) / "
            f"{lat * 1000:.1f} ms)", a, "≥ 0.90x", kplace,
            lambda v: v >= 0.90)
    m = res.get("memory")
    if m:
        for key, what in (("hello", "after one request each"),
                          ("connect", "connected only")):
            v = m.get(f"per_conn_{key}_bytes")
            if v is not None:
                rows.append((f"RSS per idle connection ({what}, "
                             f"{m['idle_connections']} connections)",
                             f"{v / 1024:.2f} KiB", "≤ 8 KiB", pin,
                             v <= 8192))
        rows.append((f"RSS after {m['requests_total']:,} requests vs after "
                     "the first 10,000",
                     f"{m['growth_pct']:+.2f}% ({m['rss_after_10k_kb']} → "
                     f"{m['rss_after_total_kb']} kB)", "within 5%", pin,
                     abs(m["growth_pct"]) <= 5))
    return rows


def gap_analysis(res, by):
    """For every shape below its target ratio (64 clients included,
    against the 8-client ratio): the floor's time per request, kmsd's,
    and what the ratio allows kmsd."""
    out = []
    prof = res.get("profile") or {}
    for kind in ("hello", "wrap", "unwrap"):
        for sh, r in (("c8", 0.70), ("c64", 0.70), ("d16", 0.50),
                      ("d64", 0.50)):
            a = ratio(by, f"kmsd/{kind}/{sh}", f"echo/{sh}", "ops_per_s")
            fe = field(by, f"echo/{sh}", "ops_per_s")
            fk = field(by, f"kmsd/{kind}/{sh}", "ops_per_s")
            if a is None or fe is None or fk is None or a["med"] >= r:
                continue
            floor_us = 1e6 / fe["med"]
            # From the judged ratio (a median of per-repetition ratios),
            # so the row agrees with the verdict.
            kmsd_us = floor_us / a["med"]
            # Two parts of a wrap measured apart, each as a ratio to the
            # floor: kmsd's framing and dispatch with a larger answer
            # (hello) and the cryptography (the sealing echo; an unwrap's
            # open costs about what a seal does). Their times added give
            # 1 / (1/hello + 1/seal - 1).
            rh = ratio(by, f"kmsd/hello/{sh}", f"echo/{sh}", "ops_per_s")
            rs = ratio(by, f"echo-seal/{sh}", f"echo/{sh}", "ops_per_s")
            bound = None
            if kind != "hello" and rh and rs:
                bound = 1 / (1 / rh["med"] + 1 / rs["med"] - 1)
            out.append({"shape": sh, "kind": kind, "floor_us": floor_us,
                        "kmsd_us": kmsd_us, "own_us": kmsd_us - floor_us,
                        "allowed_us": floor_us * (1 / r - 1),
                        "instr": (prof.get(kind) or {}).get(
                            "instr_per_request"),
                        "target": r,
                        "hello": rh["med"] if rh and kind != "hello"
                        else None,
                        "seal": rs["med"] if rs and kind != "hello"
                        else None, "bound": bound})
    return out


def write_plot(outdir, res, by):
    gp = shutil.which("gnuplot")
    if gp is None:
        return "gnuplot not installed: no plot"
    d = os.path.join(outdir, "plot-data")
    os.makedirs(d, exist_ok=True)
    # Panel 1: ping-pong p50.
    with open(os.path.join(d, "pp.dat"), "w") as f:
        for rid, label in (("echo/pp", "echo (floor)"),
                           ("ssh/pp", "ssh-agent"),
                           ("kmsd/hello/pp", "kmsd hello"),
                           ("kmsd/wrap/pp", "kmsd wrap"),
                           ("kmsd/unwrap/pp", "kmsd unwrap"),
                           ("kmsd-audit/wrap/pp", "wrap+audit"),
                           ("kmsd-audit/unwrap/pp", "unwrap+audit")):
            a = field(by, rid, "p50_us")
            if a:
                f.write(f'"{label}" {a["med"]:.2f} {a["min"]:.2f} '
                        f'{a["max"]:.2f}\n')
    # Panel 2: throughput relative to the floor, per shape.
    with open(os.path.join(d, "tput.dat"), "w") as f:
        f.write("# shape hello wrap unwrap\n")
        for pre, tag in (("split/", "split"), ("", "shared")):
            for sh in ("c8", "c64", "d16", "d64"):
                vals = []
                for kind in ("hello", "wrap", "unwrap"):
                    a = ratio(by, f"{pre}kmsd/{kind}/{sh}",
                              f"{pre}echo/{sh}", "ops_per_s")
                    vals.append(f"{100 * a['med']:.1f}" if a else "0")
                f.write(f'"{sh} {tag}" {" ".join(vals)}\n')
    # Panels 3, 4: KMS path throughput vs concurrency.
    limit = res.get("aws_max_inflight", DEFAULT_MAX_INFLIGHT)
    with open(os.path.join(d, "kms.dat"), "w") as f:
        f.write("# conc curl kmsd curl20 kmsd20 ideal20\n")
        for conc in (1, 8, 64, 512):
            row = [str(conc)]
            for rid in (f"kms/curl/{conc}", f"kms/kmsd/{conc}",
                        f"kms-slow/curl/{conc}", f"kms-slow/kmsd/{conc}"):
                a = field(by, rid, "ops_per_s")
                row.append(f"{a['med']:.1f}" if a else "NaN")
            row.append(f"{min(conc, limit) / fake_latency(by):.1f}")
            f.write(" ".join(row) + "\n")
    with open(os.path.join(d, "boto3.dat"), "w") as f:
        f.write("# procs ops\n")
        for procs in (1, 8):
            a = field(by, f"boto3/{procs}", "ops_per_s")
            if a:
                f.write(f"{procs} {a['med']:.1f}\n")
    kms_ran = any(field(by, f"{sec}/{who}/{c}", "ops_per_s")
                  for sec in ("kms", "kms-slow") for who in ("curl", "kmsd")
                  for c in (1, 8, 64, 512))
    kms_panels = f"""set title "KMS path: Decrypt/s vs concurrent requests (loopback HTTPS fake)"
set style data linespoints
set logscale xy
set xrange [0.8:700]
set yrange [*:*]
set xlabel "concurrent requests"
set key top left
plot "{d}/kms.dat" using 1:2 title "direct libcurl multi (ceiling)" lw 2, \\
     "" using 1:3 title "kmsd (AWS provider)" lw 2, \\
     "{d}/boto3.dat" using 1:2 title "boto3 (processes)" with points pt 7 ps 1.5
set title "KMS path with 20 ms added latency: Decrypt/s"
plot "{d}/kms.dat" using 1:4 title "direct libcurl multi" lw 2, \\
     "" using 1:5 title "kmsd" lw 2, \\
     "" using 1:6 title "min(C, in-flight limit) / latency" dt 2 lw 2
""" if kms_ran else """unset border
unset tics
unset key
set label 1 "KMS path not run (--only)" at graph 0.5, 0.5 center
set title "KMS path"
plot [0:1] [0:1] -1 notitle
set title "KMS path with 20 ms added latency"
plot [0:1] [0:1] -1 notitle
"""
    script = f"""
set terminal pngcairo size 1400,1000 font "sans,10"
set output "{os.path.join(outdir, 'plot.png')}"
set multiplot layout 2,2 title "kmsd benchmark {res.get('started', '')}"
set style fill solid 0.6 border -1
set grid ytics
set title "ping-pong p50 latency, µs (bar: median; whiskers: min..max)"
set boxwidth 0.6
set xtics rotate by -30 nomirror
set yrange [0:*]
set xrange [-0.6:*]
plot "{d}/pp.dat" using 0:2:xtic(1) with boxes notitle lc rgb "#4477aa", \\
     "" using 0:2:3:4 with yerrorbars notitle lc rgb "black" pt 0
set title "kmsd throughput as % of the bare echo server (same shape and placement)"
set style data histograms
set style histogram clustered gap 1
set xtics norotate
set xrange [-0.6:7.6]
set yrange [0:*]
set key top right
plot "{d}/tput.dat" using 2:xtic(1) title "hello", "" using 3 title "wrap", \\
     "" using 4 title "unwrap"
{kms_panels}unset multiplot
"""
    with open(os.path.join(d, "plot.gp"), "w") as f:
        f.write(script)
    p = subprocess.run([gp, os.path.join(d, "plot.gp")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if p.returncode != 0 or not os.path.exists(
            os.path.join(outdir, "plot.png")):
        return "gnuplot failed: " + p.stderr[-300:]
    return None


def write(outdir, res):
    by = runs_by_id(res)
    L = []
    w = L.append
    m = res.get("machine", {})
    w(f"# kmsd benchmark, {res.get('started', '?')}")
    w("")
    w(f"`./dev bench{' --quick' if res.get('quick') else ''}`: "
      f"{res.get('reps')} interleaved repetitions of every configuration "
      f"({res.get('warmup_s')} s warm-up, {res.get('duration_s')} s measured "
      f"each on the Unix socket). Figures: median (min–max) over the "
      f"repetitions; ratios are taken per repetition, then the median. "
      f"Total run time {res.get('total_secs')} s"
      + (" (" + ", ".join(f"{k} {v} s" for k, v in
                          res["section_secs"].items()) + ")."
         if res.get("section_secs") else "."))
    w("")
    w("## Machine")
    w("")
    w(f"- {m.get('cpu')}, {m.get('cpus')} CPUs, {m.get('mem_gib')} GiB, "
      f"virtualisation: {m.get('virt')}, clocksource {m.get('clocksource')}")
    w(f"- {m.get('os')}, Linux {m.get('kernel')}, {m.get('cc')}")
    w(f"- {m.get('openssl')}; libcurl {m.get('curl')}; libevent "
      f"{m.get('libevent')}; nginx {m.get('nginx')}; {m.get('ssh')}")
    w(f"- kmsd {m.get('git')}, release build (-O3, link-time optimisation)")
    lb, la = res.get("load_before", {}), res.get("load_after", {})
    w(f"- Load: before the run load average {lb.get('loadavg')} with the "
      f"CPUs {lb.get('cpu_busy_pct')}% busy; after, {la.get('loadavg')}, "
      f"{la.get('cpu_busy_pct')}% busy. Other work on the machine shows as "
      f"spread; the ratios are what is judged.")
    w(f"- Placement (sched_setaffinity): every server on the Unix socket "
      f"is pinned to CPU {res.get('pin_cpu')}. Ping-pong: the client on the "
      f"same core (on this VM a wake-up across cores costs tens of µs and "
      f"would measure the hypervisor). Several clients and pipelining: "
      f"measured twice, with the client on CPU {res.get('client_cpu', 1)} "
      f"(\"split\": the server has a core of its own, as a daemon does) "
      f"and on the server's core (\"shared\": client and server compete "
      f"for one core, so the figure is the CPU a request costs both; "
      f"these are judged: on this VM split runs vary by 2-5x between "
      f"repetitions, cross-core wake-ups being slow and erratic). KMS "
      f"path: unpinned.")
    w("")
    w("## Targets (issue 8, item 2)")
    w("")
    w("| target | measured | limit | placement | result |")
    w("| --- | --- | --- | --- | --- |")
    rows = targets(res, by)
    for name, meas, limit, place, ok in rows:
        w(f"| {name} | {meas} | {limit} | {place} | {verdict(ok)} |")
    npass = sum(1 for r in rows if r[4] is True)
    nfail = sum(1 for r in rows if r[4] is False)
    w("")
    w(f"{npass} PASS, {nfail} FAIL.")
    w("")
    w("## (a)–(c) Unix socket: floor, ssh-agent, kmsd (local provider)")
    w("")
    fs = res.get("frame_sizes", {})
    w(f"Request/response bodies: wrap {fs.get('wrap_req')}/"
      f"{fs.get('wrap_resp')} bytes; the echo server is sent "
      f"{fs.get('wrap_req')}-byte bodies and answers {fs.get('wrap_resp')}"
      f"-byte ones. ssh-agent holds one ed25519 identity (REQUEST_IDENTITIES"
      f" answer ~100 bytes). Clients: one thread (blocking read/write for "
      f"ping-pong, epoll otherwise), same framing.")
    w("")
    w("| target | op | shape | p50 µs | p99 µs | ops/s | vs floor (ops/s) |")
    w("| --- | --- | --- | --- | --- | --- | --- |")
    order = []
    for pre in ("split/", ""):
        for sh in ("pp", "c8", "c64", "d16", "d64"):
            order.append((f"{pre}echo/{sh}", "echo", "-", sh, pre))
            if sh in ("pp", "c8"):
                order.append((f"{pre}ssh/{sh}", "ssh", "identities", sh,
                              pre))
            for kind in ("hello", "wrap", "unwrap"):
                order.append((f"{pre}kmsd/{kind}/{sh}", "kmsd", kind, sh,
                              pre))
            for kind in ("wrap", "unwrap"):
                order.append((f"{pre}kmsd-audit/{kind}/{sh}", "kmsd-audit",
                              kind, sh, pre))
    for rid, tgt, kind, sh, pre in order:
        if rid not in by:
            continue
        rel = ratio(by, rid, f"{pre}echo/{sh}", "ops_per_s") \
            if tgt != "echo" else None
        where = "split" if pre else ("shared" if sh != "pp" else "same core")
        w(f"| {LABEL[tgt]} | {kind} | {SHAPE_LABEL[sh]}, {where} | "
          f"{fmt(field(by, rid, 'p50_us'))} | "
          f"{fmt(field(by, rid, 'p99_us'))} | "
          f"{fmt_k(field(by, rid, 'ops_per_s'))} | "
          f"{fmt(rel, 2, 'x') if rel else '—'} |")
    if res.get("syscalls"):
        w("")
        w("### Syscalls per request")
        w("")
        w("Counted on the server process during a separate run of a fixed "
          "number of requests (perf tracepoints raw_syscalls:sys_enter and "
          "syscalls:sys_enter_*, or strace -c).")
        w("")
        w("| server | op | shape | syscalls/request | by call |")
        w("| --- | --- | --- | --- | --- |")
        for s in res["syscalls"]:
            calls = ", ".join(f"{k} {v}" for k, v in
                              list(s["by_call"].items())[:7])
            w(f"| {LABEL.get(s['target'], s['target'])} | {s['kind']} | "
              f"{SHAPE_LABEL[s['shape']]}, {s.get('placement', 'shared')} | "
              f"{s['per_request']} | {calls} |")
    if res.get("alloc"):
        w("")
        w("### Heap allocations per request (kmsd, LD_PRELOAD counter, "
          "8 clients)")
        w("")
        w("| op | audit log | allocations | frees | bytes requested |")
        w("| --- | --- | --- | --- | --- |")
        for a in res["alloc"]:
            w(f"| {a['kind']} | {'on' if a['audit'] else 'off'} | "
              f"{a['allocs_per_request']} | {a['frees_per_request']} | "
              f"{a['bytes_per_request']} |")
    w("")
    w("## (d), (e) KMS path: kmsd's AWS provider vs libcurl multi vs boto3")
    w("")
    if not res.get("kms_available"):
        w("kmsd with the AWS provider could not be measured in this run "
          "(see notes); the direct figures stand alone.")
        w("")
    w("Loopback nginx (1 worker) with a self-signed certificate answering "
      "canned KMS JSON (TLS, HTTP/1.1 keep-alive); one server block per "
      "client so connections and handshakes are counted per client. kmsd is "
      "driven through its Unix socket by bench_client (decrypt, "
      "min(C, 64) connections × C/min(C, 64) pipelined).")
    w("")
    w("| concurrent | direct libcurl multi ops/s | kmsd ops/s | kmsd / direct "
      "| direct p50 µs | kmsd p50 µs |")
    w("| --- | --- | --- | --- | --- | --- |")
    for conc in (1, 8, 64, 512):
        rel = ratio(by, f"kms/kmsd/{conc}", f"kms/curl/{conc}", "ops_per_s")
        w(f"| {conc} | {fmt_k(field(by, f'kms/curl/{conc}', 'ops_per_s'))} | "
          f"{fmt_k(field(by, f'kms/kmsd/{conc}', 'ops_per_s'))} | "
          f"{fmt(rel, 2, 'x')} | "
          f"{fmt(field(by, f'kms/curl/{conc}', 'p50_us'), 0)} | "
          f"{fmt(field(by, f'kms/kmsd/{conc}', 'p50_us'), 0)} |")
    w("")
    limit = res.get("aws_max_inflight", DEFAULT_MAX_INFLIGHT)
    lat = fake_latency(by)
    w(f"With 20 ms added by the fake (echo_sleep; measured one-request "
      f"latency L = {lat * 1000:.2f} ms, direct libcurl p50 at C = 1); "
      f"expected = min(C, {limit}) / L for kmsd ({limit}: the provider's "
      f"in-flight limit):")
    w("")
    w("| concurrent | expected kmsd | kmsd ops/s | kmsd / expected | direct "
      "ops/s | kmsd p50 ms |")
    w("| --- | --- | --- | --- | --- | --- |")
    for conc in (1, 8, 64, 512):
        a = field(by, f"kms-slow/kmsd/{conc}", "ops_per_s")
        ideal = min(conc, limit) / lat
        p50 = field(by, f"kms-slow/kmsd/{conc}", "p50_us")
        direct = fmt_k(field(by, f"kms-slow/curl/{conc}", "ops_per_s"))
        rel = f"{a['med'] / ideal:.2f}x" if a else "n/a"
        p50s = f"{p50['med'] / 1000:.1f}" if p50 else "n/a"
        w(f"| {conc} | {ideal:.0f} | {fmt_k(a)} | {rel} | {direct} | "
          f"{p50s} |")
    w("")
    if any(f"kms-cache/kmsd/{c}" in by for c in (1, 8, 64, 512)):
        w("The same 20 ms fake with the data-key cache on (`cache_ttl = "
          "60s`; every client decrypts one stored value, so after the first "
          "answer each decrypt is a cache hit, still audited and counted):")
        w("")
        w("| concurrent | kmsd ops/s, cache | kmsd ops/s, no cache | "
          "cache / no cache | p50 µs, cache |")
        w("| --- | --- | --- | --- | --- |")
        for conc in (1, 8, 64, 512):
            a = field(by, f"kms-cache/kmsd/{conc}", "ops_per_s")
            b = field(by, f"kms-slow/kmsd/{conc}", "ops_per_s")
            p50 = field(by, f"kms-cache/kmsd/{conc}", "p50_us")
            rel = ratio(by, f"kms-cache/kmsd/{conc}", f"kms-slow/kmsd/{conc}",
                        "ops_per_s")
            w(f"| {conc} | {fmt_k(a)} | {fmt_k(b)} | "
              f"{fmt(rel, 0, 'x') if rel else 'n/a'} | {fmt(p50)} |")
        w("")
    b1, b8 = field(by, "boto3/1", "ops_per_s"), field(by, "boto3/8",
                                                       "ops_per_s")
    if b1 or b8:
        w(f"boto3 ({res.get('boto3_python', '?')}), sequential Decrypt calls "
          f"per process, same fake:")
        w("")
        w("| boto3 processes | ops/s | p50 µs | kmsd at the same concurrency "
          "| kmsd / boto3 |")
        w("| --- | --- | --- | --- | --- |")
        for procs in (1, 8):
            k = field(by, f"kms/kmsd/{procs}", "ops_per_s")
            b = field(by, f"boto3/{procs}", "ops_per_s")
            rel = f"{k['med'] / b['med']:.1f}x" if k and b else "n/a"
            w(f"| {procs} | {fmt_k(b)} | "
              f"{fmt(field(by, f'boto3/{procs}', 'p50_us'), 0)} | "
              f"{fmt_k(k)} | {rel} |")
        w("")
    fake = res.get("fake") or {}
    if fake:
        w("Connections and TLS handshakes the fake saw, whole run (warm-ups "
          "included):")
        w("")
        w("| client | requests | TCP connections = TLS handshakes (full / "
          "resumed) | per 10,000 requests |")
        w("| --- | --- | --- | --- |")
        for name, s in fake.items():
            if s and s["requests"]:
                w(f"| {name} | {s['requests']} | {s['connections']} "
                  f"({s['handshakes_full']} / {s['handshakes_resumed']}) | "
                  f"{s['handshakes_per_10k']} |")
        w("")
    mem = res.get("memory")
    if mem:
        w("## (f) Memory (kmsd, audit log off)")
        w("")
        w(f"- RSS base (after 1,000 requests): {mem['rss_base_kb']} kB")
        w(f"- {mem['connected_connect']} idle connections, connected only: "
          f"{mem['rss_idle_connect_kb']} kB → "
          f"{mem['per_conn_connect_bytes']} bytes per connection; after they "
          f"close: {mem['rss_after_connect_closed_kb']} kB")
        w(f"- {mem['connected_hello']} idle connections after one hello "
          f"each: {mem['rss_idle_hello_kb']} kB → "
          f"{mem['per_conn_hello_bytes']} bytes per connection; after they "
          f"close: {mem['rss_after_hello_closed_kb']} kB")
        w(f"- Fresh kmsd, RSS after the first 10,000 wraps: "
          f"{mem['rss_after_10k_kb']} kB; after {mem['requests_total']:,} "
          f"requests (half wrap, half unwrap, 8 clients, "
          f"{mem['long_run_secs']} s): {mem['rss_after_total_kb']} kB "
          f"({mem['growth_pct']:+.2f}%)")
        w("")
    rd = res.get("ready")
    if rd:
        w("## (g) Start to READY")
        w("")
        w(f"fork+exec of kmsd (audit log on, local key) to the READY=1 "
          f"datagram on a NOTIFY_SOCKET the bench owns, {rd['runs']} runs: "
          f"median {rd['median_ms']:.1f} ms (min {rd['min_ms']:.1f}, max "
          f"{rd['max_ms']:.1f}).")
        w("")
    gap = gap_analysis(res, by)
    if gap:
        w("## Where kmsd is below the target ratio")
        w("")
        w("Every shared-core shape below its ratio (70% of the floor for "
          "several clients, which the issue sets at 8 and this table also "
          "applies to 64; 50% pipelined). "
          "Client and server share one core, so a shape's time per request "
          "(1 / ops/s) is the CPU both spend on it. The floor's time is the "
          "bare minimum (framing, read, send, the client's own work); a "
          "target ratio r leaves kmsd floor × (1/r − 1) µs of its own per "
          "request. Instructions: callgrind, kmsd's whole process "
          "(--profile; 8 clients).")
        w("")
        w("| shape | op | floor µs/request | kmsd µs/request (floor / "
          "ratio) | kmsd's own µs | allowed µs | instructions/request | "
          "hello / floor | sealing echo / floor | the two together |")
        w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")

        def times(v):
            return f"{v:.2f}x" if v is not None else "n/a"
        for g in gap:
            w(f"| {SHAPE_LABEL[g['shape']]} | {g['kind']} | "
              f"{g['floor_us']:.2f} | {g['kmsd_us']:.2f} | "
              f"{g['own_us']:.2f} | {g['allowed_us']:.2f} | "
              f"{g['instr'] if g['instr'] else 'n/a'} | {times(g['hello'])} | "
              f"{times(g['seal'])} | {times(g['bound'])} |")
        w("")
        w("The last three columns put two parts of a wrap, measured "
          "apart in the same run, next to it, each as a ratio to the "
          "floor: a hello (kmsd's framing, decoding, dispatch and an "
          "answer, with no key, no cryptography and no stack wipe; its "
          "answer, with the version, socket, allowed operations and keys, "
          "is larger than a wrap's), and the cryptography of a wrap alone "
          "(`echo_server --seal`: the floor plus a nonce from a pooled "
          "RAND_bytes and a pre-keyed AES-256-GCM seal of a 32-byte key "
          "with its AAD, what kmsd's local provider computes). If their "
          "times per request simply added, the two would allow 1 / "
          "(1/hello + 1/seal − 1) of the floor. A wrap at or above that "
          "figure costs no more than a hello plus the cryptography: "
          "policy, context bytes, counters and the stack wipe do not show "
          "beside them.")
        w("")
    busy = res.get("busy_ns")
    cal = []
    for sh in ("c8", "c64"):
        a = ratio(by, f"echo-busy/{sh}", f"echo/{sh}", "ops_per_s")
        if busy and a:
            cal.append(f"{SHAPE_LABEL[sh]} {fmt(a, 2, 'x')}")
    seal = []
    for sh in ("c8", "c64", "d16", "d64"):
        a = ratio(by, f"echo-seal/{sh}", f"echo/{sh}", "ops_per_s")
        if a:
            seal.append(f"{SHAPE_LABEL[sh]} {fmt(a, 2, 'x')}")
    if seal:
        w("The sealing echo (the floor plus a wrap's cryptography, "
          "nothing else) reaches " + ", ".join(seal) + " of the bare echo.")
        w("")
    if cal:
        w(f"Calibration: the same echo server spinning {busy / 1000:g} µs "
          f"on every request (`echo_server --busy-ns {busy}`, same core, "
          f"same client) reaches " + ", ".join(cal) + " of the bare echo. "
          "On a core shared with the client, a server's own time per "
          "request costs more than itself: the one that uses more of the "
          "core is preempted by the other at most of its answers, and each "
          "switch is a few µs on this VM.")
        w("")
    prof = res.get("profile")
    if prof:
        w("## Profile (callgrind, instructions per request)")
        w("")
        for name, p in prof.items():
            w(f"- {name}: {p['instr_per_request']} instructions/request "
              f"({p['requests']} requests, 8 clients); top self cost: "
              + ", ".join(f"{fn} {ir}" for fn, ir, _ in p["top_self"][:8]))
        w("")
        w("Full listings: callgrind-*.txt beside this report.")
        w("")
    err = write_plot(outdir, res, by)
    w("## Plot")
    w("")
    w("![plot](plot.png)" if err is None else f"({err})")
    w("")
    if res.get("notes"):
        w("## Notes")
        w("")
        for n in res["notes"]:
            w(f"- {n}")
        w("")
    w("## Reproduce")
    w("")
    w("`./dev bench` (about 14 minutes; `./dev bench --quick` about 3), "
      "from a clean checkout on Debian 12: it installs its packages, builds "
      "`build-bench` with `--buildtype=release -Db_lto=true` and writes "
      "`results/<timestamp>/`. Raw figures: `results.json`.")
    with open(os.path.join(outdir, "report.md"), "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    d = sys.argv[1]
    with open(os.path.join(d, "results.json")) as f:
        write(d, json.load(f))
    print(os.path.join(d, "report.md"))
