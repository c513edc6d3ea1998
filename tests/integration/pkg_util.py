"""Helpers for test_packaging.py: reading the shipped files, installing a
build into a staging tree, and running what was installed."""
import grp
import json
import os
import re
import shutil
import subprocess
import time

EXAMPLE = "packaging/kmsd.conf.example"
UNITS = ("kmsd.service", "kmsd-encrypt.socket", "kmsd-decrypt.socket")
SOCKET_UNITS = ("kmsd-encrypt.socket", "kmsd-decrypt.socket")
MAN_PAGES = ("kmsd.8", "kmsd.conf.5", "kmsctl.1", "libkmsclient.3")
# What the shipped example uses that a test machine may lack.
EXAMPLE_GROUPS = ("kmsd-encrypt", "kmsd-decrypt")
# The paths the shipped example and units use on a real system.
SYSTEM_DIRS = {"/var/lib/kmsd": "state", "/run/kmsd": "run",
               "/var/log/kmsd": "log"}


def run(cmd, timeout=120, check_rc=0, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout, **kw)
    if check_rc is not None and p.returncode != check_rc:
        raise AssertionError(f"{' '.join(map(str, cmd))}: exit "
                             f"{p.returncode}\nstdout: {p.stdout}\n"
                             f"stderr: {p.stderr}")
    return p


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# --- INI-ish files --------------------------------------------------------

SECTION = re.compile(r"^;?\[([a-z]+)(?: ([^\]]+))?\]\s*$")


def example_sections(text):
    """{(kind, name): [lines]} of the example, commented sections
    (";[aws]") included: kind is kmsd, key, socket, aws, ..."""
    out, cur = {}, None
    for line in text.splitlines():
        m = SECTION.match(line)
        if m:
            cur = (m.group(1), m.group(2))
            out.setdefault(cur, [])
        elif cur is not None:
            out[cur].append(line)
    return out


def example_active(text):
    """{(kind, name): {option: value}} of the example's active lines."""
    out, cur = {}, None
    for line in text.splitlines():
        if line.startswith(";") or not line.strip():
            continue
        m = SECTION.match(line)
        if m:
            cur = (m.group(1), m.group(2))
            out[cur] = {}
            continue
        k, v = line.split("=", 1)
        out[cur][k.strip()] = v.split(" ;")[0].strip()
    return out


def unit_settings(path):
    """{key: [values]} of a unit file (all sections; comments dropped)."""
    out = {}
    for line in read(path).splitlines():
        line = line.strip()
        if not line or line[0] in "#;[":
            continue
        k, v = line.split("=", 1)
        out.setdefault(k.strip(), []).append(v.strip())
    return out


# --- the example as a test can run it -------------------------------------

def localized_example(src, keep_paths=False):
    """The shipped example as text a test can use on this machine: the
    socket groups the package creates (kmsd-encrypt, kmsd-decrypt) become
    this process's primary group (always, so the result does not depend on
    whether the packages happen to be installed), and unless keep_paths,
    /var/lib/kmsd, /run/kmsd and /var/log/kmsd become "{dir}/state",
    "{dir}/run" and "{dir}/log" for harness.Kmsd."""
    text = read(os.path.join(src, EXAMPLE))
    if not keep_paths:
        text = text.replace("{", "{{").replace("}", "}}")
        for path, sub in SYSTEM_DIRS.items():
            text = text.replace(path + "/", "{dir}/" + sub + "/")
            text = re.sub(re.escape(path) + r"$", "{dir}/" + sub, text,
                          flags=re.M)
    mine = grp.getgrgid(os.getgid()).gr_name
    for g in EXAMPLE_GROUPS:
        text, n = re.subn(r"^group = %s$" % re.escape(g), "group = " + mine,
                          text, flags=re.M)
        if n != 1:
            raise AssertionError(f"the example no longer uses group {g}")
    return text


def make_dirs(base):
    for sub in SYSTEM_DIRS.values():
        os.makedirs(os.path.join(base, sub), mode=0o700, exist_ok=True)


# --- meson install --------------------------------------------------------

def meson_dirs(build):
    """prefix and the install dirs of the build, as absolute paths."""
    opts = json.loads(run(["meson", "introspect", "--buildoptions",
                           build]).stdout)
    v = {o["name"]: o["value"] for o in opts}
    prefix = v["prefix"]
    out = {"prefix": prefix}
    for d in ("bindir", "sbindir", "libdir", "includedir", "mandir",
              "sysconfdir", "datadir"):
        out[d] = os.path.join(prefix, v[d])
    return out


def systemd_dir(var):
    return run(["pkg-config", "--variable=" + var, "systemd"]).stdout.strip()


def meson_install(build, destdir):
    return run(["meson", "install", "-C", build, "--no-rebuild",
                "--destdir", destdir], timeout=300)


def staged(destdir, path):
    return os.path.join(destdir, path.lstrip("/"))


def verify_root(destdir, root):
    """A throwaway root for `systemd-analyze verify --root`: the host's
    units (the installed ones depend on sysinit.target and friends), the
    commands the units run, and the staged install."""
    unitdir = systemd_dir("systemdsystemunitdir")
    shutil.copytree(unitdir, staged(root, unitdir), symlinks=True)
    os.makedirs(os.path.join(root, "bin"), exist_ok=True)
    shutil.copy2(os.path.realpath("/bin/kill"), os.path.join(root, "bin/kill"))
    shutil.copytree(destdir, root, symlinks=True, dirs_exist_ok=True)


def exposure(unit, root=None):
    """The overall exposure systemd-analyze gives a unit file."""
    cmd = ["systemd-analyze", "security", "--offline=true"]
    if root:
        cmd.append("--root=" + root)
    p = run(cmd + [unit], check_rc=None)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout)
    if m is None:
        raise AssertionError(f"no exposure figure: {p.stdout}{p.stderr}")
    return float(m.group(1))


def wait_for(cond, what, timeout=10):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)
