#!/usr/bin/env python3
"""tests/bench/run.py: the driver behind `./dev bench` (issue 8).

Starts every server itself (the bare echo server, ssh-agent, kmsd with the
local provider with the audit log off and on, an nginx HTTPS fake of AWS KMS
with and without 20 ms of added latency, kmsd with the AWS provider pointed
at it), drives them with the C client harness (bench_client, kms_curl) and
boto3, and writes results/<timestamp>/{results.json,report.md,plot.png}.

Repetitions are interleaved (rep 1 of every configuration, then rep 2, ...),
and within one the configurations a ratio compares run back to back (one
group per shape and placement), so that a load spike from other work on the
machine hits the floor and kmsd alike; every figure is the median over the
repetitions with min..max.

    run.py --build BUILD_DIR --results RESULTS_DIR [--quick] [--reps N]
           [--only local,syscalls,alloc,memory,ready,kms,boto3]
           [--profile] [--kmsd OTHER_KMSD_BINARY]

Everything runs as the invoking user in a private temporary directory;
every process started here is stopped here, by its pid.
"""
import argparse
import base64
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import report  # noqa: E402

# The core every server on the Unix-socket path is pinned to. Clients run
# in two placements: "shared", on the same core (ping-pong latency: on
# these VMs a wake-up on the other core costs ~80 us, which would measure
# the hypervisor; and for the other shapes, the CPU a request costs client
# and server together), and "split", on the other core (CLIENT_CPU: a
# server with a core of its own serving clients on another, the way a
# daemon is deployed; throughput is then the server's).
PIN_CPU = 0
CLIENT_CPU = 1
# Shapes also run split (ping-pong stays shared: it measures latency).
SPLIT_SHAPES = ("c8", "c64", "d16", "d64")
# Fake AWS key (the fake never checks it).
AWS_ARN = ("arn:aws:kms:us-east-1:111122223333:key/"
           "1234abcd-12ab-34cd-56ef-1234567890ab")
AWS_ENV = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
           "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
DATA_KEY = bytes(range(32))
# What a GenerateDataKey'd key's CiphertextBlob looks like (184 bytes).
AWS_BLOB = bytes([1, 2, 3, 0]) + bytes((i * 7) & 0xff for i in range(180))
# The calibration echo: the floor plus this much busy work per request,
# about what a wrap costs kmsd of its own where switches do not count
# (pipelined 64 deep, the report's gap table: 1.0 us), so its ratio shows
# what the shared-core shapes charge for that much work. A second one
# (echo_server --seal) does, per request, the cryptography of a wrap and
# nothing else of kmsd's: what the shapes charge for the part of a wrap
# no implementation can skip.
BUSY_NS = 1000
# Shapes on the Unix socket: name -> (clients, depth).
SHAPES = {"pp": (1, 1), "c8": (8, 1), "c64": (64, 1), "d16": (1, 16),
          "d64": (1, 64)}
KMS_CONC = [1, 8, 64, 512]


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def nfds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _child_setup(cpu=None, nofile=None):
    def fn():
        if nofile:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            except (ValueError, OSError):
                pass
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
    return fn


class Proc:
    """A server we started: stopped (SIGTERM, then SIGKILL) by its pid."""

    def __init__(self, name, argv, cwd, env=None, cpu=None, nofile=None,
                 stdout=None):
        self.name = name
        self.logpath = os.path.join(cwd, f"{name}.log")
        self.logf = open(self.logpath, "w")
        self.p = subprocess.Popen(argv, cwd=cwd, env=env,
                                  stdout=stdout or self.logf,
                                  stderr=self.logf, stdin=subprocess.DEVNULL,
                                  preexec_fn=_child_setup(cpu, nofile))
        self.pid = self.p.pid

    def logtext(self):
        self.logf.flush()
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.logf.close()


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.tools = os.path.join(self.build, "tests", "bench")
        self.kmsd_bin = os.path.abspath(args.kmsd) if args.kmsd else \
            os.path.join(self.build, "daemon", "kmsd")
        self.quick = args.quick
        self.reps = args.reps or (2 if self.quick else 5)
        self.warmup = 0.2 if self.quick else 0.3
        self.duration = 0.4 if self.quick else 1.5
        self.tmp = tempfile.mkdtemp(prefix="kmsd-bench-")
        os.chmod(self.tmp, 0o755)
        self.procs = []
        self.res = {"started": datetime.datetime.now().isoformat(
            timespec="seconds"), "quick": self.quick, "reps": self.reps,
            "warmup_s": self.warmup, "duration_s": self.duration,
            "pin_cpu": PIN_CPU, "client_cpu": CLIENT_CPU, "runs": [],
            "notes": []}
        self.sections = set((args.only or
                             "local,syscalls,alloc,memory,ready,kms,boto3"
                             ).split(","))
        if args.profile:
            self.sections.add("profile")

    # ---- infrastructure ------------------------------------------------

    def note(self, msg):
        log(msg)
        self.res["notes"].append(msg)

    def start(self, *a, **kw):
        p = Proc(*a, **kw)
        self.procs.append(p)
        return p

    def stop(self, p):
        p.stop()
        if p in self.procs:
            self.procs.remove(p)

    def cleanup(self):
        for p in list(self.procs):
            self.stop(p)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def tool(self, name):
        return os.path.join(self.tools, name)

    def client(self, *argv, timeout=600):
        """Run bench_client; its JSON line, or None (the failure noted)."""
        cmd = [self.tool("bench_client"), *map(str, argv)]
        p = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, text=True)
        try:
            out = json.loads(p.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            out = None
        if p.returncode != 0 or out is None:
            self.note(f"bench_client {' '.join(map(str, argv))} failed "
                      f"(exit {p.returncode}): {p.stderr.strip()[:300]}")
            return out if out is not None and out.get("ops") else None
        return out

    def machine(self):
        def cmd(*a):
            try:
                return subprocess.run(a, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True,
                                      timeout=10).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                return "?"
        model = "?"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem = f.readline().split()[1]
        osr = "?"
        if os.path.exists("/etc/os-release"):
            for line in open("/etc/os-release"):
                if line.startswith("PRETTY_NAME="):
                    osr = line.split("=", 1)[1].strip().strip('"')
        return {
            "cpu": model, "cpus": os.cpu_count(),
            "mem_gib": round(int(mem) / 1048576, 1),
            "kernel": platform.release(), "os": osr,
            "virt": cmd("systemd-detect-virt") or "?",
            "clocksource": open("/sys/devices/system/clocksource/"
                                "clocksource0/current_clocksource").read()
            .strip(),
            "git": cmd("git", "-C", ROOT, "describe", "--always", "--dirty"),
            "kmsd_binary": self.kmsd_bin,
            "openssl": cmd("openssl", "version"),
            "curl": cmd("curl-config", "--version"),
            "libevent": cmd("pkg-config", "--modversion", "libevent"),
            "nginx": cmd("nginx", "-v").replace("nginx version: ", ""),
            "ssh": cmd("ssh", "-V"),
            "cc": cmd("cc", "--version").splitlines()[0]
            if cmd("cc", "--version") else "?",
        }

    def load(self):
        la = os.getloadavg()
        busy = 0.0
        try:
            def stat():
                with open("/proc/stat") as f:
                    v = list(map(int, f.readline().split()[1:]))
                return sum(v), v[3] + v[4]
            t0, i0 = stat()
            time.sleep(0.5)
            t1, i1 = stat()
            busy = 100.0 * (1 - (i1 - i0) / max(1, t1 - t0))
        except OSError:
            pass
        return {"loadavg": [round(x, 2) for x in la],
                "cpu_busy_pct": round(busy, 1)}

    # ---- servers ---------------------------------------------------------

    def kmsd_conf(self, name, audit=False, extra_kmsd="", extra=""):
        d = os.path.join(self.tmp, name)
        os.makedirs(os.path.join(d, "state"), exist_ok=True)
        os.chmod(os.path.join(d, "state"), 0o700)
        conf = os.path.join(d, "kmsd.conf")
        with open(conf, "w") as f:
            f.write(f"""[kmsd]
state_dir = {d}/state
max_connections = 20000
decrypt_limit = 0
{f'audit_log = {d}/audit.log' if audit else ''}
{extra_kmsd}

[key default]
key_id = local/bench

[socket bench]
path = {d}/bench.sock
allow = generate, encrypt, decrypt, rewrap
{extra}
""")
        return d, conf

    def start_kmsd(self, name, audit=False, cpu=PIN_CPU, env=None,
                   extra_kmsd="", extra="", preload=None):
        d, conf = self.kmsd_conf(name, audit, extra_kmsd, extra)
        e = dict(os.environ)
        e.pop("NOTIFY_SOCKET", None)
        e.update(env or {})
        if preload:
            e["LD_PRELOAD"] = preload[0]
            e["MALLOC_COUNT_OUT"] = preload[1]
        p = self.start(name, [self.kmsd_bin, "--config", conf], d, env=e,
                       cpu=cpu, nofile=65536)
        sock = os.path.join(d, "bench.sock")
        deadline = time.time() + 15
        while time.time() < deadline:
            if not p.alive():
                raise RuntimeError(f"kmsd {name} exited: {p.logtext()}")
            if os.path.exists(sock) and "ready" in p.logtext():
                p.sock = sock
                p.dir = d
                return p
            time.sleep(0.02)
        raise RuntimeError(f"kmsd {name} not ready: {p.logtext()}")

    def start_echo(self, resp, name="echo", busy_ns=0, seal=False):
        d = os.path.join(self.tmp, name)
        os.makedirs(d, exist_ok=True)
        sock = os.path.join(d, "echo.sock")
        p = self.start(name, [self.tool("echo_server"), "--socket", sock,
                              "--resp", str(resp), "--busy-ns", str(busy_ns)]
                       + (["--seal"] if seal else []),
                       d, cpu=PIN_CPU, nofile=65536)
        self._wait_sock(p, sock)
        return p

    def start_ssh_agent(self):
        d = os.path.join(self.tmp, "ssh")
        os.makedirs(d, exist_ok=True)
        sock = os.path.join(d, "agent.sock")
        key = os.path.join(d, "id_ed25519")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                        "kmsd-bench", "-f", key], check=True,
                       stdout=subprocess.DEVNULL)
        p = self.start("ssh-agent", ["ssh-agent", "-D", "-a", sock], d,
                       cpu=PIN_CPU)
        self._wait_sock(p, sock)
        # One identity, so the answer (~100 bytes) is the size of kmsd's.
        subprocess.run(["ssh-add", "-q", key], check=True,
                       env=dict(os.environ, SSH_AUTH_SOCK=sock),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return p

    def _wait_sock(self, p, sock):
        deadline = time.time() + 10
        while time.time() < deadline:
            if not p.alive():
                raise RuntimeError(f"{p.name} exited: {p.logtext()}")
            if os.path.exists(sock):
                p.sock = sock
                time.sleep(0.05)
                return
            time.sleep(0.02)
        raise RuntimeError(f"{p.name}: no socket {sock}")

    # ---- (a)-(c): the Unix-socket path ---------------------------------

    def local_groups(self):
        """Lists of (id, target, kind, shape, client cpu), one per shape and
        placement: every configuration a ratio compares runs in the same
        group, seconds apart (see run_local). Split-placement ids start with
        "split/"."""
        groups = []
        split = (os.cpu_count() or 1) > CLIENT_CPU
        for sh in SHAPES:
            g = [(f"echo/{sh}", "echo", "echo", sh, PIN_CPU)]
            if sh in ("c8", "c64"):
                g.append((f"echo-busy/{sh}", "echo-busy", "echo", sh,
                          PIN_CPU))
            if sh != "pp":
                g.append((f"echo-seal/{sh}", "echo-seal", "echo", sh,
                          PIN_CPU))
            if sh in ("pp", "c8"):
                g.append((f"ssh/{sh}", "ssh", "ssh", sh, PIN_CPU))
            for kind in ("hello", "wrap", "unwrap"):
                g.append((f"kmsd/{kind}/{sh}", "kmsd", kind, sh, PIN_CPU))
            if sh in ("pp", "c8", "d16"):
                for kind in ("wrap", "unwrap"):
                    g.append((f"kmsd-audit/{kind}/{sh}", "kmsd-audit", kind,
                              sh, PIN_CPU))
            groups.append(g)
        if not split:
            return groups
        for sh in SPLIT_SHAPES:
            g = [(f"split/echo/{sh}", "echo", "echo", sh, CLIENT_CPU)]
            if sh == "c8":
                g.append(("split/ssh/c8", "ssh", "ssh", "c8", CLIENT_CPU))
            for kind in ("hello", "wrap", "unwrap"):
                g.append((f"split/kmsd/{kind}/{sh}", "kmsd", kind, sh,
                          CLIENT_CPU))
            if sh in ("c8", "c64", "d16"):
                for kind in ("wrap", "unwrap"):
                    g.append((f"split/kmsd-audit/{kind}/{sh}", "kmsd-audit",
                              kind, sh, CLIENT_CPU))
            groups.append(g)
        return groups

    def run_local(self):
        log("local: starting kmsd (audit off, audit on), ssh-agent, echo")
        k_off = self.start_kmsd("kmsd", audit=False)
        k_on = self.start_kmsd("kmsd-audit", audit=True)
        probe = self.client("--socket", k_off.sock, "--kind", "wrap",
                            "--count", 10, "--cpu", PIN_CPU)
        if probe is None:
            raise RuntimeError("kmsd wrap does not work: "
                               + k_off.logtext()[-2000:])
        req, resp = probe["req_body"], probe["resp_body"]
        self.res["frame_sizes"] = {"wrap_req": req, "wrap_resp": resp}
        echo = self.start_echo(resp)
        busy = self.start_echo(resp, "echo-busy", BUSY_NS)
        self.res["busy_ns"] = BUSY_NS
        seal = self.start_echo(resp, "echo-seal", seal=True)
        agent = self.start_ssh_agent()
        socks = {"echo": echo.sock, "echo-busy": busy.sock,
                 "echo-seal": seal.sock, "ssh": agent.sock,
                 "kmsd": k_off.sock, "kmsd-audit": k_on.sock}
        groups = self.local_groups()
        t0 = time.time()
        # A slow spell of the VM lasts tens of seconds: within a group the
        # runs it compares are seconds apart, and every other repetition
        # runs each group backwards, so neither side always goes first.
        for rep in range(self.reps):
            log(f"local: repetition {rep + 1}/{self.reps} "
                f"({sum(map(len, groups))} configurations)")
            order = [c for g in groups
                     for c in (g if rep % 2 == 0 else reversed(g))]
            for cid, target, kind, sh, ccpu in order:
                n, d = SHAPES[sh]
                argv = ["--socket", socks[target], "--kind", kind,
                        "--clients", n, "--depth", d, "--cpu", ccpu,
                        "--warmup", self.warmup, "--duration",
                        self.duration]
                if kind == "echo":
                    argv += ["--req-bytes", req]
                out = self.client(*argv)
                self.res["runs"].append({"id": cid, "rep": rep,
                                         "section": "local", "r": out})
        self.res["local_secs"] = round(time.time() - t0, 1)
        if os.path.exists(os.path.join(k_on.dir, "audit.log")):
            self.res["audit_log_bytes"] = os.path.getsize(
                os.path.join(k_on.dir, "audit.log"))
        self.servers = {"echo": echo, "ssh": agent, "kmsd": k_off,
                        "kmsd-audit": k_on}

    # ---- syscalls per request --------------------------------------------

    SYSCALLS = ["read", "write", "sendto", "recvfrom", "sendmsg", "recvmsg",
                "writev", "readv", "epoll_wait", "epoll_pwait", "epoll_ctl",
                "ioctl", "clock_gettime", "getpid", "futex", "pwrite64",
                "fdatasync", "fsync", "getrandom", "poll", "ppoll", "select",
                "pselect6", "accept4", "close"]

    def perf_count(self, pid, run):
        """Syscalls made by pid during run(): (total, {name: n}) via perf
        tracepoints, else strace -c. run() returns the requests served."""
        out = os.path.join(self.tmp, "perf.txt")
        events = ["raw_syscalls:sys_enter"] + [
            f"syscalls:sys_enter_{s}" for s in self.SYSCALLS]
        tool = "perf"
        cmd = ["perf", "stat", "-x", ",", "-o", out,
               "-e", ",".join(events), "-p", str(pid)]
        try:
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
        except OSError:
            p = None
        time.sleep(0.5)
        if p is None or p.poll() is not None:
            tool = "strace"
            out = os.path.join(self.tmp, "strace.txt")
            p = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p",
                                  str(pid)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        nreq = run()
        time.sleep(0.1)
        p.send_signal(signal.SIGINT)
        p.wait(30)
        total, per = 0, {}
        text = open(out).read() if os.path.exists(out) else ""
        if tool == "perf":
            for line in text.splitlines():
                f = line.split(",")
                if len(f) < 3 or not f[0].strip().isdigit():
                    continue
                ev = f[2]
                if ev == "raw_syscalls:sys_enter":
                    total = int(f[0])
                elif ev.startswith("syscalls:sys_enter_") and int(f[0]):
                    per[ev[len("syscalls:sys_enter_"):]] = int(f[0])
        else:
            for line in text.splitlines():
                f = line.split()
                if len(f) >= 5 and f[-1] != "total" and f[3].isdigit():
                    per[f[-1]] = int(f[3])
                elif len(f) >= 4 and f[-1] == "total":
                    total = int(f[2]) if f[2].isdigit() else sum(per.values())
        return tool, total, per, nreq

    def run_syscalls(self):
        s = getattr(self, "servers", None)
        if not s:
            return
        n = 20000 if self.quick else 100000
        out = []
        plan = [("echo", "echo", "c8"), ("echo", "echo", "pp"),
                ("echo", "echo", "d16"), ("ssh", "ssh", "c8"),
                ("kmsd", "hello", "c8"), ("kmsd", "wrap", "pp"),
                ("kmsd", "wrap", "c8"), ("kmsd", "wrap", "c64"),
                ("kmsd", "wrap", "d16"), ("kmsd", "unwrap", "c8"),
                ("kmsd-audit", "wrap", "c8"), ("kmsd-audit", "unwrap", "c8")]
        plan = [(t, k, sh, PIN_CPU) for t, k, sh in plan]
        if (os.cpu_count() or 1) > CLIENT_CPU:
            plan += [(t, k, sh, CLIENT_CPU) for t, k, sh in
                     (("echo", "echo", "c8"), ("echo", "echo", "c64"),
                      ("kmsd", "wrap", "c8"),
                      ("kmsd", "wrap", "c64"), ("kmsd-audit", "wrap", "c8"),
                      ("kmsd-audit", "wrap", "c64"))]
        for target, kind, sh, ccpu in plan:
            srv = s[target]
            clients, depth = SHAPES[sh]

            def run():
                argv = ["--socket", srv.sock, "--kind", kind, "--clients",
                        clients, "--depth", depth, "--cpu", ccpu,
                        "--count", n]
                if kind == "echo":
                    argv += ["--req-bytes", self.res["frame_sizes"]
                             ["wrap_req"]]
                r = self.client(*argv)
                return (r["ops"] + r["setup_requests"]) if r else 0
            tool, total, per, nreq = self.perf_count(srv.pid, run)
            out.append({"target": target, "kind": kind, "shape": sh,
                        "placement": "split" if ccpu != PIN_CPU else
                        "shared", "tool": tool, "requests": nreq, "syscalls": total,
                        "per_request": round(total / nreq, 3) if nreq else
                        None, "by_call": {k: round(v / nreq, 3) for k, v in
                                          sorted(per.items(),
                                                 key=lambda x: -x[1])}
                        if nreq else {}})
            log(f"syscalls: {target} {kind} {sh} {out[-1]['placement']}: "
                f"{out[-1]['per_request']}/request ({tool})")
        self.res["syscalls"] = out

    # ---- allocations per request ---------------------------------------

    def mc_snapshot(self, pid, path):
        before = len(open(path).read().splitlines()) \
            if os.path.exists(path) else 0
        os.kill(pid, signal.SIGUSR2)
        deadline = time.time() + 5
        while time.time() < deadline:
            lines = open(path).read().splitlines() \
                if os.path.exists(path) else []
            if len(lines) > before:
                f = lines[-1].split()
                return {f[i]: int(f[i + 1]) for i in range(0, len(f), 2)}
            time.sleep(0.02)
        return None

    def alloc_per_request(self, k, mcout, kind, n, sock=None, extra=()):
        a = self.mc_snapshot(k.pid, mcout)
        r = self.client("--socket", sock or k.sock, "--kind", kind,
                        "--clients", 8, "--cpu", PIN_CPU, "--count", n,
                        *extra)
        b = self.mc_snapshot(k.pid, mcout)
        if not r or not a or not b:
            return None
        nreq = r["ops"] + r["setup_requests"]
        allocs = sum(b[x] - a[x] for x in ("malloc", "calloc", "realloc",
                                             "memalign"))
        return {"kind": kind, "requests": nreq,
                "allocs_per_request": round(allocs / nreq, 2),
                "frees_per_request": round((b["free"] - a["free"]) / nreq, 2),
                "bytes_per_request": round((b["bytes"] - a["bytes"]) / nreq)}

    def run_alloc(self):
        so = self.tool("malloc_count.so")
        if not os.path.exists(so):
            self.note("malloc_count.so missing: allocations not counted")
            return
        mcout = os.path.join(self.tmp, "malloc-count.txt")
        out = []
        for audit in (False, True):
            k = self.start_kmsd("kmsd-mc" + ("-audit" if audit else ""),
                                audit=audit, preload=(so, mcout))
            for kind in ("hello", "wrap", "unwrap"):
                if audit and kind == "hello":
                    continue
                self.client("--socket", k.sock, "--kind", kind, "--count",
                            2000, "--clients", 8)
                r = self.alloc_per_request(k, mcout, kind, 20000)
                if r:
                    r["audit"] = audit
                    out.append(r)
                    log(f"allocations: {kind} audit={audit}: "
                        f"{r['allocs_per_request']}/request")
            self.stop(k)
        self.res["alloc"] = out

    # ---- (f) memory --------------------------------------------------

    def run_memory(self):
        n_idle = 2000 if self.quick else 10000
        n_total = 100000 if self.quick else 1000000
        k = self.start_kmsd("kmsd-mem", audit=False)
        m = {"idle_connections": n_idle}
        self.client("--socket", k.sock, "--kind", "wrap", "--clients", 8,
                    "--count", 1000, "--cpu", PIN_CPU)
        time.sleep(0.3)
        m["rss_base_kb"] = rss_kb(k.pid)
        base_fds = nfds(k.pid)
        for hello in (False, True):
            argv = [self.tool("bench_client"), "--socket", k.sock,
                    "--idle", str(n_idle)]
            if hello:
                argv.append("--idle-hello")
            p = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True,
                                 preexec_fn=_child_setup(None,
                                                         n_idle + 1024))
            line = p.stdout.readline()
            info = json.loads(line) if line.strip() else {}
            deadline = time.time() + 30
            while time.time() < deadline and \
                    nfds(k.pid) < base_fds + info.get("connected", 0):
                time.sleep(0.05)
            time.sleep(0.5)
            rss = rss_kb(k.pid)
            key = "hello" if hello else "connect"
            m[f"rss_idle_{key}_kb"] = rss
            m[f"connected_{key}"] = info.get("connected", 0)
            m[f"per_conn_{key}_bytes"] = round(
                (rss - m["rss_base_kb"]) * 1024 /
                max(1, info.get("connected", 0)))
            p.stdin.write("done\n")
            p.stdin.close()
            p.wait(60)
            deadline = time.time() + 30
            while time.time() < deadline and nfds(k.pid) > base_fds + 2:
                time.sleep(0.05)
            time.sleep(0.3)
            m[f"rss_after_{key}_closed_kb"] = rss_kb(k.pid)
            log(f"memory: {n_idle} idle ({key}): "
                f"{m[f'per_conn_{key}_bytes']} bytes/connection")
        # RSS after the first 10,000 requests, then after n_total.
        k2 = self.start_kmsd("kmsd-mem2", audit=False)
        r = self.client("--socket", k2.sock, "--kind", "wrap", "--clients",
                        8, "--count", 10000, "--cpu", PIN_CPU)
        time.sleep(0.2)
        m["rss_after_10k_kb"] = rss_kb(k2.pid)
        half = n_total // 2
        t0 = time.time()
        for kind in ("wrap", "unwrap"):
            r = self.client("--socket", k2.sock, "--kind", kind, "--clients",
                            8, "--count", half, "--cpu", PIN_CPU)
            if r is None:
                self.note(f"memory: {kind} run failed")
        m["long_run_secs"] = round(time.time() - t0, 1)
        time.sleep(0.2)
        m["requests_total"] = n_total + 10000
        m["rss_after_total_kb"] = rss_kb(k2.pid)
        m["growth_pct"] = round(100.0 * (m["rss_after_total_kb"] -
                                         m["rss_after_10k_kb"]) /
                                m["rss_after_10k_kb"], 2)
        log(f"memory: RSS {m['rss_after_10k_kb']} kB after 10k, "
            f"{m['rss_after_total_kb']} kB after {m['requests_total']}")
        self.stop(k)
        self.stop(k2)
        self.res["memory"] = m

    # ---- (g) start to READY --------------------------------------------

    def run_ready(self):
        runs = 5 if self.quick else 20
        d, conf = self.kmsd_conf("kmsd-ready", audit=True)
        logf = open(os.path.join(d, "ready.log"), "w")
        p = subprocess.run([self.tool("ready_time"), "--runs", str(runs),
                            "--", self.kmsd_bin, "--config", conf],
                           stdout=subprocess.PIPE, stderr=logf, text=True,
                           timeout=300)
        logf.close()
        try:
            self.res["ready"] = json.loads(p.stdout.strip().splitlines()[-1])
            log(f"ready: median {self.res['ready']['median_ms']} ms")
        except (IndexError, ValueError):
            self.note(f"ready_time failed: exit {p.returncode}")

    # ---- (d), (e): the KMS path ------------------------------------------

    def start_nginx(self):
        d = os.path.join(self.tmp, "nginx")
        os.makedirs(d, exist_ok=True)
        cert, keyf = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                        "subjectAltName=IP:127.0.0.1", "-keyout", keyf,
                        "-out", cert], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        b64 = base64.b64encode(DATA_KEY).decode()
        blob = base64.b64encode(AWS_BLOB).decode()
        bodies = {
            "TrentService.Decrypt": {"KeyId": AWS_ARN, "Plaintext": b64,
                                     "EncryptionAlgorithm":
                                     "SYMMETRIC_DEFAULT"},
            "TrentService.Encrypt": {"KeyId": AWS_ARN, "CiphertextBlob": blob,
                                     "EncryptionAlgorithm":
                                     "SYMMETRIC_DEFAULT"},
            "TrentService.GenerateDataKey": {"KeyId": AWS_ARN,
                                             "CiphertextBlob": blob,
                                             "Plaintext": b64},
            "TrentService.ReEncrypt": {"KeyId": AWS_ARN,
                                       "SourceKeyId": AWS_ARN,
                                       "CiphertextBlob": blob},
        }
        maps = "\n".join(f"    \"{k}\" '{json.dumps(v, separators=(',', ':'))}';"
                         for k, v in bodies.items())
        # One server block (port, access log) per client, so connections
        # and handshakes are counted per client without slicing logs.
        self.fake = {}
        servers = []
        for name, delay in (("curl", 0), ("kmsd", 0), ("boto3", 0),
                            ("curl-slow", 20), ("kmsd-slow", 20),
                            ("kmsd-alloc", 0), ("kmsd-profile", 0),
                            ("kmsd-cache", 20)):
            port = free_port()
            self.fake[name] = {"port": port, "delay_ms": delay,
                               "log": os.path.join(d, f"{name}.access")}
            body = (f"echo_sleep {delay / 1000:.3f};\n"
                    "            echo -n $kms_body;") if delay else \
                "return 200 $kms_body;"
            servers.append(f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {keyf};
        access_log {d}/{name}.access kms buffer=64k flush=1s;
        location / {{
            default_type application/x-amz-json-1.1;
            {body}
        }}
    }}""")
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
{user}
worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
http {{
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    log_format kms '$connection $connection_requests $ssl_session_reused';
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_buffer_size 16k;
    map $http_x_amz_target $kms_body {{
        default '{{"__type":"UnknownOperationException"}}';
{maps}
    }}
{''.join(servers)}
}}
""")
        p = self.start("nginx", ["nginx", "-c", conf, "-p", d], d,
                       nofile=65536)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(
                    ("127.0.0.1", self.fake["curl"]["port"]), 0.2).close()
                break
            except OSError:
                if not p.alive():
                    raise RuntimeError("nginx exited: " + p.logtext() +
                                       open(f"{d}/error.log").read())
                time.sleep(0.05)
        self.cert = cert
        return p

    def fake_url(self, name):
        return f"https://127.0.0.1:{self.fake[name]['port']}/"

    def fake_stats(self, name):
        """Requests, TCP connections and TLS handshakes (full/resumed) the
        fake saw from one client, from its access log."""
        conns, reqs, resumed = set(), 0, 0
        path = self.fake[name]["log"]
        if not os.path.exists(path):
            return None
        for line in open(path):
            f = line.split()
            if len(f) != 3:
                continue
            reqs += 1
            if f[1] == "1":
                conns.add(f[0])
                resumed += f[2] == "r"
        return {"requests": reqs, "connections": len(conns),
                "handshakes_full": len(conns) - resumed,
                "handshakes_resumed": resumed,
                "handshakes_per_10k": round(len(conns) * 10000 / reqs, 2)
                if reqs else None}

    def aws_kmsd(self, name, fake, key_extra=""):
        extra = f"""
[aws]
endpoint = {self.fake_url(fake)}
ca_file = {self.cert}

[key aws]
key_id = {AWS_ARN}
{key_extra}
"""
        try:
            return self.start_kmsd(name, audit=False, cpu=None, env=AWS_ENV,
                                   extra=extra)
        except RuntimeError as e:
            self.note(f"kmsd with the AWS provider did not start ({name}): "
                      f"{str(e)[-400:]}")
            return None

    def aws_ciphertext(self):
        return "v1:" + base64.b64encode(AWS_BLOB).decode()

    def kmsd_conc_argv(self, sock, conc):
        clients = min(conc, 64)
        return ["--socket", sock, "--kind", "unwrap", "--key", "aws",
                "--ciphertext", self.aws_ciphertext(), "--clients", clients,
                "--depth", conc // clients]

    def run_kms(self):
        ng = self.start_nginx()
        self.servers_kms = {"nginx": ng}
        k_fast = self.aws_kmsd("kmsd-aws", "kmsd")
        k_slow = self.aws_kmsd("kmsd-aws-slow", "kmsd-slow")
        self.res["kms_available"] = k_fast is not None
        self.servers_kms.update({"kmsd-aws": k_fast})
        if k_fast is not None:
            probe = self.client(*self.kmsd_conc_argv(k_fast.sock, 1),
                                "--count", 5)
            if probe is None:
                self.note("kmsd AWS unwrap against the fake fails: "
                          + k_fast.logtext()[-600:])
                k_fast = None
        warm = self.warmup + 0.3
        dur = self.duration + (0.5 if not self.quick else 0)
        kreps = 1 if self.quick else self.reps
        for rep in range(kreps):
            log(f"kms: repetition {rep + 1}/{kreps}")
            for conc in KMS_CONC:
                for who in ("curl", "kmsd"):
                    if who == "curl":
                        out = self.kms_curl(self.fake_url("curl"), conc,
                                            warm, dur)
                    elif k_fast is not None:
                        out = self.client(*self.kmsd_conc_argv(k_fast.sock,
                                                               conc),
                                          "--warmup", warm, "--duration",
                                          dur)
                    else:
                        continue
                    self.res["runs"].append({"id": f"kms/{who}/{conc}",
                                             "rep": rep, "section": "kms",
                                             "r": out})
        # 20 ms: fewer repetitions, longer runs (one request is 20 ms).
        sreps = 1 if self.quick else max(1, min(self.reps, 3))
        sdur = 1.0 if self.quick else 2.0
        for rep in range(sreps):
            log(f"kms 20 ms: repetition {rep + 1}/{sreps}")
            for conc in KMS_CONC:
                out = self.kms_curl(self.fake_url("curl-slow"), conc, 0.5,
                                    sdur)
                self.res["runs"].append({"id": f"kms-slow/curl/{conc}",
                                         "rep": rep, "section": "kms",
                                         "r": out})
                if k_slow is not None:
                    out = self.client(*self.kmsd_conc_argv(k_slow.sock, conc),
                                      "--warmup", 0.5, "--duration", sdur)
                    self.res["runs"].append({"id": f"kms-slow/kmsd/{conc}",
                                             "rep": rep, "section": "kms",
                                             "r": out})
        self.kms_slow_kmsd = k_slow
        # Item 4: the data-key cache against the 20 ms fake. Every client
        # decrypts the same stored value, so after the first answer each
        # decrypt is a hit (audited and counted as usual).
        k_cache = self.aws_kmsd("kmsd-aws-cache", "kmsd-cache",
                                key_extra="cache_ttl = 60s")
        if k_cache is not None:
            for rep in range(sreps):
                log(f"kms 20 ms, cache_ttl: repetition {rep + 1}/{sreps}")
                for conc in KMS_CONC:
                    out = self.client(*self.kmsd_conc_argv(k_cache.sock,
                                                           conc),
                                      "--warmup", 0.5, "--duration", sdur)
                    self.res["runs"].append({"id": f"kms-cache/kmsd/{conc}",
                                             "rep": rep, "section": "kms",
                                             "r": out})
            self.stop(k_cache)
        if k_fast is not None:
            self.run_alloc_aws()

    def run_alloc_aws(self):
        """Heap calls per AWS unwrap (kmsd under the malloc counter)."""
        so = self.tool("malloc_count.so")
        if not os.path.exists(so):
            return
        mcout = os.path.join(self.tmp, "malloc-count-aws.txt")
        extra = f"""
[aws]
endpoint = {self.fake_url('kmsd-alloc')}
ca_file = {self.cert}

[key aws]
key_id = {AWS_ARN}
"""
        try:
            k = self.start_kmsd("kmsd-aws-mc", audit=False, cpu=None,
                                env=AWS_ENV, extra=extra, preload=(so, mcout))
        except RuntimeError as e:
            self.note(f"allocations, AWS: {str(e)[-300:]}")
            return
        argv = ["--key", "aws", "--ciphertext", self.aws_ciphertext()]
        self.client("--socket", k.sock, "--kind", "unwrap", "--clients", 8,
                    "--count", 500, *argv)
        r = self.alloc_per_request(k, mcout, "unwrap", 5000, extra=argv)
        if r:
            r["audit"] = False
            r["kind"] = "unwrap (AWS)"
            self.res.setdefault("alloc", []).append(r)
            log(f"allocations: AWS unwrap: {r['allocs_per_request']}/request")
        self.stop(k)

    def kms_curl(self, url, conc, warm, dur):
        p = subprocess.run([self.tool("kms_curl"), "--url", url, "--ca",
                            self.cert, "--concurrency", str(conc),
                            "--warmup", str(warm), "--duration", str(dur)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=300,
                           preexec_fn=_child_setup(None, 65536))
        try:
            return json.loads(p.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            self.note(f"kms_curl {conc} failed: {p.stderr[-300:]}")
            return None

    def boto3_python(self):
        for py in (os.environ.get("BENCH_PYTHON"),
                   "/root/.pyenv/shims/python3", shutil.which("python3"),
                   "/usr/bin/python3"):
            if py and os.path.exists(py) and subprocess.run(
                    [py, "-c", "import boto3"], stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL).returncode == 0:
                return py
        return None

    def run_boto3(self):
        if not getattr(self, "fake", None):
            self.start_nginx()
        py = self.boto3_python()
        if py is None:
            self.note("no python with boto3 (BENCH_PYTHON, pyenv, "
                      "python3-boto3): boto3 not measured")
            return
        self.res["boto3_python"] = py
        reps = 1 if self.quick else max(1, min(self.reps, 3))
        for rep in range(reps):
            for procs in (1, 8):
                log(f"boto3: {procs} process(es), repetition {rep + 1}")
                p = subprocess.run(
                    [py, os.path.join(HERE, "boto3_bench.py"), "--url",
                     self.fake_url("boto3"), "--ca", self.cert, "--procs",
                     str(procs), "--warmup", "0.5" if self.quick else "1",
                     "--duration", "1.5" if self.quick else "3", "--arn",
                     AWS_ARN],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True, timeout=300, env=dict(os.environ, **AWS_ENV))
                try:
                    out = json.loads(p.stdout.strip().splitlines()[-1])
                except (IndexError, ValueError):
                    self.note(f"boto3 {procs} failed: {p.stderr[-400:]}")
                    out = None
                self.res["runs"].append({"id": f"boto3/{procs}", "rep": rep,
                                         "section": "kms", "r": out})

    def finish_kms(self):
        if not getattr(self, "fake", None):
            return
        time.sleep(1.2)		# nginx flushes its buffered logs each second
        self.res["fake"] = {name: self.fake_stats(name) for name in self.fake}
        if getattr(self, "kms_slow_kmsd", None) is not None:
            log_text = self.kms_slow_kmsd.logtext()
            m = re.findall(r"max_inflight\D+(\d+)", log_text)
            if m:
                self.res["aws_max_inflight"] = int(m[-1])

    # ---- item 3: profile -------------------------------------------------

    def run_profile(self):
        """callgrind over a fixed number of requests of each local op (and
        the AWS unwrap when available): instructions per request by
        function, written next to the report."""
        if shutil.which("valgrind") is None:
            self.note("valgrind missing: no profile")
            return
        outdir = self.args.results
        prof = {}
        plan = [("hello", None), ("wrap", None), ("unwrap", None),
                ("wrap", "audit")]
        if self.res.get("kms_available"):
            plan.append(("aws-unwrap", None))
        n = 2000 if self.quick else 10000
        for kind, variant in plan:
            name = f"{kind}{'-' + variant if variant else ''}"
            d, conf = self.kmsd_conf("prof-" + name, audit=variant == "audit",
                                     extra=(f"""
[aws]
endpoint = {self.fake_url('kmsd-profile')}
ca_file = {self.cert}
timeout = 30s

[key aws]
key_id = {AWS_ARN}
""" if kind == "aws-unwrap" else ""))
            cg = os.path.join(d, "callgrind.out")
            env = dict(os.environ, **AWS_ENV)
            p = self.start("prof-" + name,
                           ["valgrind", "--tool=callgrind",
                            "--instr-atstart=no", f"--callgrind-out-file={cg}",
                            self.kmsd_bin, "--config", conf], d, env=env,
                           nofile=4096)
            sock = os.path.join(d, "bench.sock")
            deadline = time.time() + 60
            while time.time() < deadline and not (
                    os.path.exists(sock) and "ready" in p.logtext()):
                time.sleep(0.1)
            argv = ["--socket", sock, "--clients", 8]
            if kind == "aws-unwrap":
                argv += ["--kind", "unwrap", "--key", "aws", "--ciphertext",
                         self.aws_ciphertext()]
            else:
                argv += ["--kind", kind]
            self.client(*argv, "--count", 200)
            subprocess.run(["callgrind_control", "-i", "on", str(p.pid)],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            r = self.client(*argv, "--count", n)
            subprocess.run(["callgrind_control", "-i", "off", str(p.pid)],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            self.stop(p)
            if os.path.exists(cg):
                shutil.copy(cg, os.path.join(outdir, f"callgrind.out.{name}"))
            nreq = (r["ops"] + r["setup_requests"]) if r else n
            ann = subprocess.run(["callgrind_annotate", "--inclusive=no",
                                  cg], stdout=subprocess.PIPE, text=True).stdout
            anni = subprocess.run(["callgrind_annotate", "--inclusive=yes",
                                   cg], stdout=subprocess.PIPE,
                                  text=True).stdout
            with open(os.path.join(outdir, f"callgrind-{name}.txt"), "w") as f:
                f.write(f"# {nreq} requests of {name}, 8 clients\n")
                f.write(ann)
                f.write("\n\n# inclusive\n")
                f.write(anni)
            total = 0
            m = re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", ann) or \
                re.search(r"([\d,]+)\s+PROGRAM TOTALS", ann)
            if m:
                total = int(m.group(1).replace(",", ""))
            top = []
            for line in ann.splitlines():
                mm = re.match(r"\s*([\d,]+) \(\s*([\d.]+)%\)\s+(\S+)", line)
                if mm and "PROGRAM TOTALS" not in line and len(top) < 15:
                    ir = int(mm.group(1).replace(",", ""))
                    top.append([mm.group(3), round(ir / nreq),
                                float(mm.group(2))])
            prof[name] = {"requests": nreq,
                          "instr_per_request": round(total / nreq) if nreq
                          else None, "top_self": top}
            log(f"profile {name}: {prof[name]['instr_per_request']} "
                f"instructions/request")
        self.res["profile"] = prof

    # ---- main ----------------------------------------------------------

    def run(self):
        os.makedirs(self.args.results, exist_ok=True)
        self.res["machine"] = self.machine()
        self.res["load_before"] = self.load()
        log(f"load before: {self.res['load_before']}")
        t0 = time.time()
        secs = self.res["section_secs"] = {}

        def step(name, fn):
            t = time.time()
            fn()
            secs[name] = round(time.time() - t, 1)
        try:
            for name, fn in (("local", self.run_local),
                             ("syscalls", self.run_syscalls)):
                if name in self.sections:
                    step(name, fn)
            for p in list(self.procs):
                self.stop(p)
            for name, fn in (("alloc", self.run_alloc),
                             ("memory", self.run_memory),
                             ("ready", self.run_ready),
                             ("kms", self.run_kms),
                             ("boto3", self.run_boto3)):
                if name in self.sections:
                    step(name, fn)
            self.finish_kms()
            if "profile" in self.sections:
                step("profile", self.run_profile)
        finally:
            self.res["load_after"] = self.load()
            self.res["total_secs"] = round(time.time() - t0, 1)
            self.cleanup()
            with open(os.path.join(self.args.results, "results.json"),
                      "w") as f:
                json.dump(self.res, f, indent=1)
        report.write(self.args.results, self.res)
        log(f"report: {os.path.join(self.args.results, 'report.md')} "
            f"({self.res['total_secs']} s)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--only")
    ap.add_argument("--profile", action="store_true")
    # A/B: measure another kmsd binary with this build's bench tools.
    ap.add_argument("--kmsd")
    args = ap.parse_args()
    Bench(args).run()


if __name__ == "__main__":
    main()
