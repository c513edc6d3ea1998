#!/usr/bin/python3
"""What an administrator or a C developer gets from kmsd's packaging.

usage: test_packaging.py SOURCE_ROOT BUILD_ROOT [deb]

Without "deb": the man pages and the example config document everything
the code knows; `meson install --destdir` gives the expected layout; a tiny
C program built only from `pkg-config --cflags --libs kmsclient` against
the staged install talks to a live kmsd (the staged one, running the
shipped example); the shipped example passes `kmsd --check-config`; the
units pass `systemd-analyze verify` and score <= 2.0 in `systemd-analyze
security`; sysusers.d and tmpfiles.d work in a throwaway root.

With "deb" (a separate, serial meson test: it takes a minute or two and
installs packages on this machine): `./dev package` builds the .debs with
dpkg-buildpackage, they are installed with dpkg -i (root only, as in CI),
the installed kmsd checks and runs the installed /etc/kmsd/kmsd.conf as the
kmsd user, an edited conffile survives a reinstall, and everything is
purged again.

CI has no systemd as PID 1, so units are never started here: they are
verified and scored, and what they would do (user, directories, socket
names) is exercised directly.
"""
import fcntl
import grp
import json
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

import harness
from harness import Kmsd, case, check, eq, kmsctl, run_cases
import pkg_options
from pkg_util import (EXAMPLE, MAN_PAGES, SOCKET_UNITS, UNITS, example_active,
                      example_sections, exposure, localized_example,
                      make_dirs, meson_dirs, meson_install, read, run, staged,
                      systemd_dir, unit_settings, verify_root, wait_for)

SRC, BUILD = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
DEB = len(sys.argv) > 3 and sys.argv[3] == "deb"
MAN = os.path.join(SRC, "packaging/man")
# ./dev package measured 70-100 s on a 2-core machine; far past that
# something is wrong, and the whole suite should stay within minutes.
DEB_BUILD_BUDGET_S = 300


def src(path):
    return os.path.join(SRC, path)


def man_source(page):
    return read(os.path.join(MAN, page + ".scd"))


def man_blocks(text, level="# "):
    """{heading: body} of an scdoc page at one heading level."""
    out, cur = {}, None
    for line in text.splitlines():
        if line.startswith(level):
            cur = line[len(level):].strip()
            out[cur] = ""
        elif cur is not None:
            out[cur] += line + "\n"
    return out


def option_paragraphs(text):
    """{(section, option): its paragraph} of kmsd.conf(5): a line starting
    with *name* (or naming several: "*a* = ..., *b* = ...") and the
    tab-indented lines after it, under "# [kmsd]", "# [key NAME]",
    "# [socket NAME]" or "## [provider]"."""
    out, section, names = {}, None, []
    for line in text.splitlines():
        m = re.match(r"^#+ \[([a-z]+)", line)
        if m:
            section, names = m.group(1), []
            continue
        if line.startswith("#"):
            section, names = None, []
            continue
        if section is None:
            continue
        if line.startswith("*"):
            names = re.findall(r"\*([a-z_.]+)\*(?:_N_)? =", line)
            for n in names:
                out[(section, n)] = line + "\n"
        elif line.startswith("\t"):
            for n in names:
                out[(section, n)] += line + "\n"
        else:
            names = []
    return out


def rendered_ok(path):
    """man renders the page without a groff warning."""
    p = run(["man", "--warnings", "-l", path],
            env=dict(os.environ, MANWIDTH="80"), check_rc=None)
    eq(p.returncode, 0, f"man -l {path}:")
    eq(p.stderr.strip(), "", f"man -l {path} warnings:")


# ==========================================================================
# Documentation against the code
# ==========================================================================

def documented_options():
    """Every option the parser knows, by section (kmsd, key, socket and
    each provider's): see pkg_options for how they are found."""
    return pkg_options.parser_options(harness.KMSD, SRC)


def fast_cases():
    @case
    def man_page_documents_every_config_option(ctx):
        opts = ctx["options"]
        blocks = man_blocks(man_source("kmsd.conf.5"))
        sub = man_blocks(blocks["PROVIDER SECTIONS"], "## ")
        where = {"kmsd": blocks["[kmsd]"], "key": blocks["[key NAME]"],
                 "socket": blocks["[socket NAME]"]}
        missing = []
        for section, names in opts.items():
            body = where.get(section) or sub.get(f"[{section}]")
            if body is None:
                missing.append(f"[{section}] (no section in the page)")
                continue
            missing += [f"[{section}] {n}" for n in sorted(names)
                        if f"*{n}*" not in body]
        eq(missing, [], "kmsd.conf.5 lacks:")
        # and the discovery itself found what config.c certainly has
        check({"state_dir", "audit_log"} <= opts["kmsd"], opts["kmsd"])
        check({"key_id", "key_id."} <= opts["key"], opts["key"])
        check({"path", "allow", "peer_units"} <= opts["socket"])

    @case
    def man_page_says_which_options_take_credentials(ctx):
        # An option's paragraph mentions credential:NAME exactly when the
        # option resolves it (asked of kmsd, see pkg_options).
        takes = pkg_options.credential_options(harness.KMSD, ctx["options"])
        check(any(takes.values()), "no option takes credential:NAME?")
        paragraphs = option_paragraphs(man_source("kmsd.conf.5"))
        wrong = []
        for section, names in ctx["options"].items():
            for n in sorted(names):
                text = paragraphs.get((section, n), "")
                if (n in takes[section]) != ("credential:" in text):
                    wrong.append(f"[{section}] {n}: "
                                 f"{'takes' if n in takes[section] else 'does not take'}"
                                 " credential:NAME")
        eq(wrong, [], "kmsd.conf.5 is wrong about:")

    @case
    def example_config_documents_every_option(ctx):
        secs = example_sections(read(src(EXAMPLE)))
        missing = []
        for section, names in ctx["options"].items():
            lines = [l for (kind, _), body in secs.items() if kind == section
                     for l in body]
            if not lines:
                missing.append(f"[{section}] (no section)")
                continue
            for n in sorted(names):
                pat = re.compile(r"^;?%s\d*\s*=" % re.escape(n))
                if not any(pat.match(l) for l in lines):
                    missing.append(f"[{section}] {n}")
        eq(missing, [], "kmsd.conf.example lacks:")

    @case
    def kmsctl_page_documents_every_command_and_option(ctx):
        code = read(src("client/kmsctl.c"))
        page = man_source("kmsctl.1")
        table = code[code.index("commands[] = {"):]
        table = table[:table.index("};")]
        cmds = re.findall(r'\{\s*"([a-z-]+)",\s*cmd_', table)
        check(len(cmds) >= 10, f"command table not found: {cmds}")
        subs = set(re.findall(r'strcmp\((?:sub|args\[0\]), "([a-z-]+)"\)',
                              code))
        check({"status", "reload"} <= subs, subs)
        opts = re.findall(r'\{\s*"([a-z-]+)",\s*\w+_argument,\s*NULL,'
                          r"\s*('.'|\w+)\s*\}", code)
        check(len(opts) >= 10, f"long_opts not found: {opts}")
        missing = [c for c in cmds if f"*{c}*" not in page and
                   f"*{c} " not in page]
        missing += [f"admin {s}" for s in sorted(subs)
                    if f"*admin {s}*" not in page]
        if re.search(r'strcmp\(argv\[0\], "verify"\)', code) and \
                "*audit verify*" not in page:
            missing.append("audit verify")
        for name, val in opts:
            if f"*--{name}*" not in page:
                missing.append("--" + name)
            if val.startswith("'") and f"*-{val[1]}*" not in page:
                missing.append("-" + val[1])
        eq(missing, [], "kmsctl.1 lacks:")

    @case
    def kmsd_page_documents_every_option(ctx):
        code = read(src("daemon/main.c"))
        page = man_source("kmsd.8")
        opts = re.findall(r'\{\s*"([a-z-]+)",\s*\w+_argument,\s*NULL,'
                          r"\s*'(.)'\s*\}", code)
        check(len(opts) >= 4, opts)
        missing = [f"--{n}" for n, _ in opts if f"*--{n}*" not in page]
        missing += [f"-{c}" for _, c in opts if f"*-{c}*" not in page]
        eq(missing, [], "kmsd.8 lacks:")

    @case
    def libkmsclient_page_has_every_function(ctx):
        header = read(src("client/kmsclient.h"))
        page = man_source("libkmsclient.3")
        funcs = re.findall(r"KMS_EXPORT\s[^;]*?\b(kms_\w+)\s*\(", header)
        check(len(funcs) >= 30, f"{len(funcs)} functions found")
        prototypes = set(re.findall(r"\b(kms_\w+)\(", page))
        eq(sorted(set(funcs) - prototypes), [], "libkmsclient.3 lacks:")
        # and documents nothing the header does not have
        eq(sorted(prototypes - set(funcs)), [], "libkmsclient.3 invents:")

    @case
    def libkmsclient_page_example_compiles_and_runs(ctx):
        # The EXAMPLE section is code people copy: build it against the
        # staged install and run it against the live kmsd.
        block = man_blocks(man_source("libkmsclient.3"))["EXAMPLE"]
        code = block.split("```")[1]
        code = re.sub(r"\\(.)", r"\1", code)   # scdoc escapes
        d = ctx["work"]
        with open(os.path.join(d, "example.c"), "w") as f:
            f.write(code)
        exe = os.path.join(d, "example")
        run(["sh", "-c", 'cc -std=c11 -D_DEFAULT_SOURCE -Wall -Werror '
             '-o "$1" "$2" $(pkg-config --cflags --libs kmsclient)', "sh",
             exe, os.path.join(d, "example.c")], env=ctx["pc_env"])
        p = run([exe], env=dict(ctx["run_env"],
                KMSD_SOCKET=ctx["kmsd"].path("run/encrypt.sock")))
        check(re.match(r"^version 1: v1:\S+\n$", p.stdout), p.stdout)

    @case
    def man_pages_render_without_warnings(ctx):
        for page in MAN_PAGES:
            rendered_ok(os.path.join(BUILD, "packaging", page))

    # ----------------------------------------------------------------------
    # meson install
    # ----------------------------------------------------------------------

    @case
    def install_layout(ctx):
        d, dirs = ctx["destdir"], ctx["dirs"]

        def st(path):
            return staged(d, path)

        for exe in (dirs["sbindir"] + "/kmsd", dirs["bindir"] + "/kmsctl"):
            check(os.access(st(exe), os.X_OK), exe + " not installed")
        lib = dirs["libdir"]
        # libkmsclient.so -> .so.0 (the soname) -> .so.0.MINOR.PATCH
        target = os.readlink(st(f"{lib}/libkmsclient.so.0"))
        check(re.match(r"^libkmsclient\.so\.0\.\d+\.\d+$", target), target)
        real = f"{lib}/{target}"
        check(os.path.isfile(st(real)) and not os.path.islink(st(real)), real)
        eq(os.readlink(st(f"{lib}/libkmsclient.so")), "libkmsclient.so.0",
           "dev link:")
        dyn = run(["readelf", "-d", st(real)]).stdout
        check("Library soname: [libkmsclient.so.0]" in dyn, dyn)
        syms = run(["nm", "--defined-only", st(f"{lib}/libkmsclient.a")])
        check(" T kms_connect" in syms.stdout, "static library lacks kms_*")
        eq(read(st(dirs["includedir"] + "/kmsclient.h")),
           read(src("client/kmsclient.h")), "installed header:")
        pc = read(st(f"{lib}/pkgconfig/kmsclient.pc"))
        project = json.loads(run(["meson", "introspect", "--projectinfo",
                                  BUILD]).stdout)["version"]
        check(f"Version: {project}" in pc and "-lkmsclient" in pc, pc)
        unitdir = systemd_dir("systemdsystemunitdir")
        for u in UNITS:
            check(os.path.isfile(st(f"{unitdir}/{u}")), f"{unitdir}/{u}")
        for var in ("sysusersdir", "tmpfilesdir"):
            p = systemd_dir(var) + "/kmsd.conf"
            check(os.path.isfile(st(p)), p)
        for page in MAN_PAGES:
            p = f"{dirs['mandir']}/man{page.rsplit('.', 1)[1]}/{page}"
            check(os.path.isfile(st(p)), p)
        conf = dirs["sysconfdir"] + "/kmsd/kmsd.conf"
        eq(read(st(conf)), read(src(EXAMPLE)), conf + ":")
        check(os.path.isfile(st(dirs["datadir"] +
                                "/doc/kmsd/kmsd.conf.example")))
        # the installed service runs the installed kmsd on the installed file
        svc = unit_settings(st(f"{unitdir}/kmsd.service"))
        eq(svc["ExecStart"], [f"{dirs['sbindir']}/kmsd --config {conf}"])

    @case
    def debian_version_is_the_project_version(ctx):
        # a native package: debian/changelog's top entry is the release
        project = json.loads(run(["meson", "introspect", "--projectinfo",
                                  BUILD]).stdout)["version"]
        deb = re.match(r"^kmsd \(([^)]+)\)", read(src("debian/changelog")))
        eq(deb.group(1) if deb else None, project, "debian/changelog:")

    @case
    def meson_install_keeps_an_edited_config(ctx):
        conf = staged(ctx["destdir"], ctx["dirs"]["sysconfdir"] +
                      "/kmsd/kmsd.conf")
        with open(conf, "a") as f:
            f.write("; edited by the administrator\n")
        edited = read(conf)
        meson_install(BUILD, ctx["destdir"])
        eq(read(conf), edited, "config after reinstall:")

    @case
    def client_links_through_pkg_config_and_talks_to_kmsd(ctx):
        d, lib = ctx["work"], staged(ctx["destdir"], ctx["dirs"]["libdir"])
        c = src("tests/integration/pkg_client.c")
        shared, static = os.path.join(d, "shared"), os.path.join(d, "static")
        run(["sh", "-c", 'cc -std=c11 -D_DEFAULT_SOURCE -Wall -Werror -o "$1" '
             '"$2" $(pkg-config --cflags --libs kmsclient)', "sh", shared, c],
            env=ctx["pc_env"])
        # the static archive, with what --static says it needs
        run(["sh", "-c", 'cc -std=c11 -D_DEFAULT_SOURCE -Wall -Werror -o "$1" '
             '"$2" $(pkg-config --cflags --static --libs kmsclient | '
             'sed "s/-lkmsclient/-l:libkmsclient.a/")', "sh", static, c],
            env=ctx["pc_env"])
        needed = run(["readelf", "-d", shared]).stdout
        check("[libkmsclient.so.0]" in needed, needed)
        check("libkmsclient" not in run(["readelf", "-d", static]).stdout)
        ldd = run(["ldd", shared], env=ctx["run_env"]).stdout
        check(f"libkmsclient.so.0 => {lib}/libkmsclient.so.0" in ldd, ldd)
        k = ctx["kmsd"]
        for exe in (shared, static):
            p = run([exe, k.path("run/encrypt.sock"),
                     k.path("run/decrypt.sock")], env=ctx["run_env"])
            eq(p.stdout, "ok\n", exe)

    # ----------------------------------------------------------------------
    # the example config and the units
    # ----------------------------------------------------------------------

    @case
    def shipped_example_passes_check_config(ctx):
        # As shipped: its paths are only checked for form here, so they
        # stay /var/lib/kmsd etc. Only the groups the package creates are
        # swapped for this process's group (the deb test checks the file
        # untouched, once dpkg has made the groups).
        conf = os.path.join(ctx["work"], "kmsd.conf")
        with open(conf, "w") as f:
            f.write(localized_example(SRC, keep_paths=True))
        for kmsd in (harness.KMSD, ctx["kmsd_bin"]):
            p = run([kmsd, "--check-config", "--config", conf])
            check(p.stdout.startswith(f"{conf}: ok (1 keys, 3 sockets)"),
                  p.stdout)

    @case
    def shipped_example_serves_as_documented(ctx):
        # the live kmsd of setup(): the example with its paths in a temp dir
        k = ctx["kmsd"]
        enc, dec = k.path("run/encrypt.sock"), k.path("run/decrypt.sock")
        for path in (enc, dec):
            eq(stat.S_IMODE(os.stat(path).st_mode), 0o660, path)
        ct = kmsctl(enc, "encrypt", "default", "-c", "a=1", input=b"secret",
                    check_rc=0).stdout.decode().strip()
        p = kmsctl(enc, "decrypt", "default", "-c", "a=1", ct, check_rc=1)
        check(b"permission_denied" in p.stderr, p.stderr)
        eq(kmsctl(dec, "decrypt", "default", "-c", "a=1", ct,
                  check_rc=0).stdout, b"secret")
        p = kmsctl(k.path("run/admin.sock"), "admin", "status", check_rc=0)
        check(b'"decrypt_disabled":false' in p.stdout.replace(b" ", b""),
              p.stdout)
        check(os.path.isfile(k.path("state/local-main.key")))
        audit = read(k.path("log/audit.log"))
        check('"op":"decrypt"' in audit, audit)

    @case
    def socket_units_match_the_example(ctx):
        active = example_active(read(src(EXAMPLE)))
        names = []
        for u in SOCKET_UNITS:
            s = unit_settings(src("packaging/systemd/" + u))
            name = s["FileDescriptorName"][0]
            names.append(name)
            sec = active.get(("socket", name))
            check(sec is not None, f"{u}: no [socket {name}] in the example")
            eq(s["ListenStream"], [sec["path"]], f"{u} ListenStream:")
            eq(s["SocketGroup"], [sec["group"]], f"{u} SocketGroup:")
            eq(s["SocketMode"], [sec["mode"]], f"{u} SocketMode:")
            eq(s["Service"], ["kmsd.service"], f"{u} Service:")
        eq(sorted(names), ["decrypt", "encrypt"])

    @case
    def socket_units_activate_the_example(ctx):
        # What systemd does with the two socket units, done by
        # systemd-socket-activate: the names come from the shipped units,
        # the daemon and config from the staged install.
        k = Kmsd(config=localized_example(SRC))
        try:
            make_dirs(k.dir)
            listen, names = [], []
            for u in SOCKET_UNITS:
                s = unit_settings(src("packaging/systemd/" + u))
                listen += ["-l", s["ListenStream"][0].replace(
                    "/run/kmsd/", k.dir + "/run/")]
                names.append(s["FileDescriptorName"][0])
            k.proc = subprocess.Popen(
                ["systemd-socket-activate", *listen,
                 "--fdname=" + ":".join(names), ctx["kmsd_bin"],
                 "--config", k.conf], stdout=k.log, stderr=k.log)
            enc, dec = k.path("run/encrypt.sock"), k.path("run/decrypt.sock")
            wait_for(lambda: os.path.exists(enc) and os.path.exists(dec),
                     "the activator's sockets")
            for path, name in ((enc, "encrypt"), (dec, "decrypt")):
                p = kmsctl(path, "--json", "hello", check_rc=0)
                check(f'"socket":"{name}"' in p.stdout.decode(), p.stdout)
            k.proc.send_signal(signal.SIGTERM)
            eq(k.proc.wait(15), 0, "kmsd exit:")
            k.proc = None
        finally:
            k.cleanup()

    @case
    def units_verify_clean(ctx):
        # systemd-analyze verify needs the command a unit runs to exist and
        # the units it depends on: a throwaway root with the host's units,
        # /bin/kill and the staged install. The man pages of
        # Documentation= are looked up in the staged install too.
        root = os.path.join(ctx["work"], "vroot")
        verify_root(ctx["destdir"], root)
        unitdir = systemd_dir("systemdsystemunitdir")
        units = [staged(root, f"{unitdir}/{u}") for u in UNITS]
        p = run(["systemd-analyze", "verify", "--root=" + root, *units],
                env=dict(os.environ, MANPATH=staged(ctx["destdir"],
                         ctx["dirs"]["mandir"])), check_rc=None)
        eq((p.returncode, p.stdout + p.stderr), (0, ""), "verify:")

    @case
    def service_exposure_at_most_2(ctx):
        unit = src("packaging/systemd/kmsd.service")
        score = exposure(unit)
        print(f"# systemd-analyze security --offline=true: {score}")
        check(score <= 2.0, f"exposure {score} > 2.0")
        # the installed copy differs only in paths
        eq(exposure(staged(ctx["destdir"], systemd_dir(
            "systemdsystemunitdir") + "/kmsd.service")), score)
        # the figure the unit's own comment states is the real one
        m = re.search(r"rates it ([0-9.]+)", read(unit))
        check(m is not None, "kmsd.service does not state its exposure")
        eq(float(m.group(1)), score, "figure in kmsd.service:")

    @case
    def sysusers_and_tmpfiles_in_a_throwaway_root(ctx):
        root = os.path.join(ctx["work"], "sroot")
        os.makedirs(os.path.join(root, "etc"))
        sysusers = staged(ctx["destdir"], systemd_dir("sysusersdir") +
                          "/kmsd.conf")
        tmpfiles = staged(ctx["destdir"], systemd_dir("tmpfilesdir") +
                          "/kmsd.conf")
        run(["systemd-sysusers", "--root=" + root, sysusers])
        passwd = read(os.path.join(root, "etc/passwd"))
        m = re.search(r"^kmsd:x:(\d+):(\d+):[^:]*:/var/lib/kmsd:"
                      r"(/usr/sbin/nologin)$", passwd, re.M)
        check(m is not None, passwd)
        uid, gid = int(m.group(1)), int(m.group(2))
        check(uid < 1000, "kmsd must be a system user")
        groups = read(os.path.join(root, "etc/group"))
        for g in ("kmsd-encrypt", "kmsd-decrypt"):
            check(re.search(r"^%s:x:\d+:kmsd$" % g, groups, re.M), groups)
        run(["systemd-tmpfiles", "--root=" + root, "--create", tmpfiles])
        for path, mode in (("run/kmsd", 0o755), ("var/lib/kmsd", 0o700),
                           ("var/log/kmsd", 0o750)):
            s = os.stat(os.path.join(root, path))
            eq((s.st_uid, s.st_gid, stat.S_IMODE(s.st_mode)),
               (uid, gid, mode), path)


def fast_setup():
    work = tempfile.mkdtemp(prefix="kmsd-pkg-")
    destdir = os.path.join(work, "dest")
    meson_install(BUILD, destdir)
    dirs = meson_dirs(BUILD)
    # The .pc file names where the files will be (prefix=/usr/local or
    # /usr), not the staging tree they are in now: pkg-config's sysroot
    # support, made for exactly this, puts the tree in front of its paths.
    pc_env = dict(os.environ, PKG_CONFIG_SYSROOT_DIR=destdir,
                  PKG_CONFIG_PATH=staged(destdir, dirs["libdir"] +
                                         "/pkgconfig"))
    run_env = dict(os.environ,
                   LD_LIBRARY_PATH=staged(destdir, dirs["libdir"]))
    kmsd_bin = staged(destdir, dirs["sbindir"] + "/kmsd")
    ctx = {"work": work, "destdir": destdir, "dirs": dirs, "pc_env": pc_env,
           "run_env": run_env, "kmsd_bin": kmsd_bin,
           "options": documented_options()}
    # One live kmsd for the cases that need one: the staged binary on the
    # shipped example, its /var/lib, /run and /var/log paths moved into a
    # temp dir.
    harness_kmsd = harness.KMSD
    harness.KMSD = kmsd_bin
    try:
        k = Kmsd(config=localized_example(SRC))
        make_dirs(k.dir)
        ctx["kmsd"] = k.start()
    finally:
        harness.KMSD = harness_kmsd
    return ctx


def fast_teardown(ctx):
    try:
        ctx["kmsd"].stop()
    finally:
        ctx["kmsd"].cleanup()
        shutil.rmtree(ctx["work"], ignore_errors=True)


# ==========================================================================
# The Debian packages
# ==========================================================================

PACKAGES = ("kmsd", "kmsctl", "libkmsclient0", "libkmsclient-dev")
# Two runs of this test on one machine (two checkouts' ./dev test) would
# install and purge the same packages and user under each other: the
# install-to-purge part (half a minute) holds this lock, so they take turns.
INSTALL_LOCK = "/run/lock/kmsd-packaging-test.lock"
INSTALL_LOCK_WAIT_S = 180


def take_install_lock(ctx):
    f = open(INSTALL_LOCK, "w")
    deadline = time.time() + INSTALL_LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            ctx["lock"] = f
            return
        except BlockingIOError:
            if time.time() > deadline:
                f.close()
                raise AssertionError("another run holds " + INSTALL_LOCK)
            time.sleep(1)


def dpkg(*args, timeout=300):
    """dpkg, waiting out another dpkg or apt holding the lock."""
    deadline = time.time() + 120
    while True:
        p = run(["dpkg", *args], timeout=timeout, check_rc=None,
                env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if p.returncode == 0:
            return p
        if "lock" not in p.stderr or time.time() > deadline:
            raise AssertionError(f"dpkg {' '.join(args)}: exit "
                                 f"{p.returncode}\n{p.stdout}{p.stderr}")
        time.sleep(2)


def installed(pkg):
    p = run(["dpkg-query", "-W", "-f=${Status}", pkg], check_rc=None)
    return "install ok installed" in p.stdout


def deb_cases():
    @case
    def dev_package_builds_the_debs(ctx):
        t0 = time.time()
        p = run([src("dev"), "package", ctx["out"]],
                timeout=DEB_BUILD_BUDGET_S, check_rc=None)
        took = time.time() - t0
        print(f"# ./dev package took {took:.0f} s")
        eq(p.returncode, 0, f"./dev package: {p.stderr[-3000:]}")
        eq(p.stdout.strip(), ctx["out"], "folder printed:")
        for pkg in PACKAGES:
            debs = [f for f in os.listdir(ctx["out"])
                    if f.startswith(pkg + "_") and f.endswith(".deb")]
            eq(len(debs), 1, f"{pkg}: {debs}")
            ctx["debs"][pkg] = os.path.join(ctx["out"], debs[0])

    @case
    def packages_split_as_documented(ctx):
        def files(pkg):
            return run(["dpkg-deb", "-c", ctx["debs"][pkg]]).stdout

        def field(pkg, name):
            return run(["dpkg-deb", "-f", ctx["debs"][pkg], name]).stdout

        k = files("kmsd")
        for f in ("./usr/sbin/kmsd", "./etc/kmsd/kmsd.conf",
                  "/kmsd.service", "/kmsd-encrypt.socket",
                  "/kmsd-decrypt.socket", "./usr/lib/sysusers.d/kmsd.conf",
                  "./usr/lib/tmpfiles.d/kmsd.conf", "/man8/kmsd.8.gz",
                  "/man5/kmsd.conf.5.gz"):
            check(f in k, f"kmsd lacks {f}")
        check("./usr/bin/kmsctl" in files("kmsctl"))
        check(re.search(r"libkmsclient\.so\.0 -> ", files("libkmsclient0")))
        dev = files("libkmsclient-dev")
        for f in ("kmsclient.h", "libkmsclient.a", "libkmsclient.so ->",
                  "pkgconfig/kmsclient.pc", "man3/libkmsclient.3.gz"):
            check(f in dev, f"libkmsclient-dev lacks {f}")
        check("libkmsclient0" in field("kmsctl", "Depends"))
        check("systemd" in field("kmsd", "Depends"), "sysusers dependency")
        d = os.path.join(ctx["out"], "ctrl")
        run(["dpkg-deb", "-e", ctx["debs"]["kmsd"], d])
        eq(read(os.path.join(d, "conffiles")).split(),
           ["/etc/kmsd/kmsd.conf"], "conffiles:")
        postinst = read(os.path.join(d, "postinst"))
        check(postinst.index("systemd-sysusers") <
              postinst.index("systemd-tmpfiles"), "user before its dirs")
        # nothing is started; a unit is enabled again only if the
        # administrator had it enabled before (an upgrade)
        lines = [l.strip() for l in postinst.splitlines()
                 if l.strip() and not l.strip().startswith("#")]
        for i, line in enumerate(lines):
            check(not re.search(r"deb-systemd-invoke|systemctl (start|"
                                r"enable|restart)", line), line)
            if line.startswith("deb-systemd-helper enable"):
                check("was-enabled" in lines[i - 1], lines[i - 1])

    @case
    def dpkg_install_creates_user_and_enables_nothing(ctx):
        check(os.geteuid() == 0, "installing the .debs needs root (CI runs "
              "as root); run `./dev package` and install them by hand")
        take_install_lock(ctx)
        already = [p for p in PACKAGES if installed(p)]
        check(not already, f"{already} already installed here: not "
              "replacing them")
        for name in ("kmsd", "kmsd-encrypt", "kmsd-decrypt"):
            try:
                grp.getgrnam(name)
            except KeyError:
                ctx["made_groups"].append(name)
        try:
            pwd.getpwnam("kmsd")
        except KeyError:
            ctx["made_user"] = True
        ctx["made_dirs"] = [d for d in ("/var/lib/kmsd", "/var/log/kmsd",
                                        "/run/kmsd", "/etc/kmsd")
                            if not os.path.exists(d)]
        ctx["installing"] = True
        dpkg("-i", *(ctx["debs"][p] for p in PACKAGES))
        u = pwd.getpwnam("kmsd")
        eq(u.pw_shell, "/usr/sbin/nologin")
        for g in ("kmsd-encrypt", "kmsd-decrypt"):
            check("kmsd" in grp.getgrnam(g).gr_mem, g)
        for path, mode in (("/run/kmsd", 0o755), ("/var/lib/kmsd", 0o700),
                           ("/var/log/kmsd", 0o750)):
            s = os.stat(path)
            eq((s.st_uid, stat.S_IMODE(s.st_mode)), (u.pw_uid, mode), path)
        links = [os.path.join(r, f) for r, _, fs in os.walk("/etc/systemd")
                 for f in fs if f.startswith("kmsd")]
        eq(links, [], "enabled by the install:")

    @case
    def installed_config_checks_as_shipped(ctx):
        eq(read("/etc/kmsd/kmsd.conf"), read(src(EXAMPLE)))
        p = run(["/usr/sbin/kmsd", "--check-config", "--config",
                 "/etc/kmsd/kmsd.conf"])
        eq(p.stdout, "/etc/kmsd/kmsd.conf: ok (1 keys, 3 sockets)\n")
        # the service's user can read it too
        run(["runuser", "-u", "kmsd", "--", "/usr/sbin/kmsd",
             "--check-config", "--config", "/etc/kmsd/kmsd.conf"])

    @case
    def installed_kmsd_runs_as_the_service_would(ctx):
        # kmsd.service's User=kmsd and paths, without systemd: the kmsd
        # user (with the supplementary groups sysusers gave it) runs the
        # installed binary on the installed config. setpriv execs kmsd
        # itself, so its exit status and signals are kmsd's.
        ctx["made_files"] = [p for p in ("/var/lib/kmsd/local-main.key",
                                         "/var/log/kmsd/audit.log")
                             if not os.path.exists(p)]
        log = open(os.path.join(ctx["out"], "kmsd-run.log"), "w+")
        proc = subprocess.Popen(["setpriv", "--reuid=kmsd", "--regid=kmsd",
                                 "--init-groups", "/usr/sbin/kmsd",
                                 "--config", "/etc/kmsd/kmsd.conf"],
                                stdout=log, stderr=subprocess.STDOUT)
        socks = ("/run/kmsd/encrypt.sock", "/run/kmsd/decrypt.sock",
                 "/run/kmsd/admin.sock")
        try:
            wait_for(lambda: all(os.path.exists(s) for s in socks) or
                     proc.poll() is not None, "the sockets")
            check(proc.poll() is None, read(log.name))
            for s, group in zip(socks[:2], ("kmsd-encrypt", "kmsd-decrypt")):
                st = os.stat(s)
                eq((grp.getgrgid(st.st_gid).gr_name,
                    stat.S_IMODE(st.st_mode)), (group, 0o660), s)
            ct = kmsctl(socks[0], "encrypt", "default", input=b"hi",
                        check_rc=0).stdout.decode().strip()
            eq(kmsctl(socks[1], "decrypt", "default", ct,
                      check_rc=0).stdout, b"hi")
            # kmsctl's admin default is the shipped admin socket
            p = subprocess.run(["/usr/bin/kmsctl", "admin", "status"],
                               stdout=subprocess.PIPE, timeout=30)
            eq(p.returncode, 0, "kmsctl admin status:")
            # the application side: the installed -dev package
            exe = os.path.join(ctx["out"], "pkg_client")
            run(["sh", "-c", 'cc -o "$1" "$2" $(pkg-config --cflags --libs '
                 'kmsclient)', "sh", exe,
                 src("tests/integration/pkg_client.c")])
            eq(run([exe, socks[0], socks[1]]).stdout, "ok\n")
            key = os.stat("/var/lib/kmsd/local-main.key")
            eq((pwd.getpwuid(key.st_uid).pw_name, stat.S_IMODE(key.st_mode)),
               ("kmsd", 0o600), "master key:")
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            rc = proc.wait(15)
            log.close()
        eq(rc, 0, "kmsd exit:")
        check(not any(os.path.exists(s) for s in socks), "sockets left")

    @case
    def installed_units_verify_and_score(ctx):
        units = [os.path.join(systemd_dir("systemdsystemunitdir"), u)
                 for u in UNITS]
        p = run(["systemd-analyze", "verify", *units], check_rc=None)
        eq((p.returncode, p.stdout + p.stderr), (0, ""), "verify:")
        check(exposure(units[0]) <= 2.0)

    @case
    def edited_conffile_survives_reinstall_and_purge_removes_it(ctx):
        with open("/etc/kmsd/kmsd.conf", "a") as f:
            f.write("; local edit\n")
        edited = read("/etc/kmsd/kmsd.conf")
        dpkg("-i", ctx["debs"]["kmsd"])
        eq(read("/etc/kmsd/kmsd.conf"), edited, "after reinstall:")
        dpkg("--purge", *reversed(PACKAGES))
        ctx["installing"] = False
        check(not os.path.exists("/etc/kmsd/kmsd.conf"), "purge kept config")
        check(not os.path.exists("/usr/sbin/kmsd"))


def deb_setup():
    # Everything below runs what dpkg installed: not the build tree's
    # kmsctl, and not the build tree's libkmsclient that meson's
    # LD_LIBRARY_PATH would slip under the installed programs.
    os.environ.pop("LD_LIBRARY_PATH", None)
    harness.KMSCTL = "/usr/bin/kmsctl"
    return {"out": tempfile.mkdtemp(prefix="kmsd-deb-"), "debs": {},
            "made_groups": [], "made_user": False, "made_dirs": [],
            "made_files": [], "installing": False}


def deb_teardown(ctx):
    """Leave the machine as it was: the packages, and the user, groups,
    directories and files this test made (Debian keeps users and state on
    purge, which is right for a real system and wrong for a test)."""
    try:
        if ctx["installing"]:
            dpkg("--purge", *reversed(PACKAGES))
        for f in ctx["made_files"]:
            if os.path.exists(f):
                os.unlink(f)
        if ctx["made_user"]:
            run(["userdel", "kmsd"], check_rc=None)
        for g in ctx["made_groups"]:
            run(["groupdel", g], check_rc=None)
        for d in ctx["made_dirs"]:
            shutil.rmtree(d, ignore_errors=True)
    finally:
        if ctx.get("lock") is not None:
            ctx["lock"].close()
        shutil.rmtree(ctx["out"], ignore_errors=True)


if __name__ == "__main__":
    if DEB:
        deb_cases()
        run_cases(deb_setup, deb_teardown)
    else:
        fast_cases()
        run_cases(fast_setup, fast_teardown)
