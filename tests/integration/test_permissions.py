#!/usr/bin/python3
"""Who may do what: peer users, groups and units, context_require, and
the socket file's mode and group. kmsctl runs as test users (created here:
the tests run as root) through runuser, and inside a cgroup named like a
systemd unit for peer_units."""
import grp
import os
import pwd
import stat
import subprocess

from harness import KMSCTL, Kmsd, Raw, case, check, eq, run_cases

WEB, WORKER, OTHER, GROUP = ("kmsdtest-web", "kmsdtest-worker",
                             "kmsdtest-other", "kmsdtest-app")

CONFIG = """
[kmsd]
state_dir = {dir}/state

[key default]
key_id = local/dev

[socket web]
path = {dir}/web.sock
mode = 0666
allow = generate, encrypt
peer_users = kmsdtest-web

[socket worker]
path = {dir}/worker.sock
mode = 0660
group = kmsdtest-app
allow = generate, encrypt, decrypt
peer_groups = kmsdtest-app

[socket billing]
path = {dir}/billing.sock
mode = 0666
allow = generate, encrypt, decrypt
peer_units = billing-worker.service

[socket tenant]
path = {dir}/tenant.sock
mode = 0666
allow = generate, encrypt, decrypt, rewrap
context_require = service=billing
"""


def ensure_users():
    try:
        grp.getgrnam(GROUP)
    except KeyError:
        subprocess.run(["groupadd", "-r", GROUP], check=True)
    for user, extra in ((WEB, []), (WORKER, ["-G", GROUP]), (OTHER, [])):
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(["useradd", "-r", "-M", "-s", "/usr/sbin/nologin",
                            *extra, user], check=True)


def as_user(user, sock, *args, input=b""):
    return subprocess.run(["runuser", "-u", user, "--", KMSCTL, "-s", sock,
                           *args], input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=30)


CGROUP_ROOTS = ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")


def unit_cgroup(unit):
    """A cgroup v2 directory named like a systemd unit, so that
    sd_pid_get_unit() reports that unit for processes moved into it."""
    for root in CGROUP_ROOTS:
        if os.path.exists(os.path.join(root, "cgroup.procs")) and \
                os.access(root, os.W_OK):
            path = os.path.join(root, unit)
            os.makedirs(path, exist_ok=True)
            return path
    raise RuntimeError("no writable cgroup v2 hierarchy")


def in_unit(unit, sock, *args):
    cg = unit_cgroup(unit)
    script = 'echo $$ > "$0"/cgroup.procs && exec "$@"'
    return subprocess.run(["sh", "-c", script, cg, KMSCTL, "-s", sock,
                           *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=30)


def setup():
    ensure_users()
    return Kmsd(config=CONFIG).start()


def teardown(k):
    try:
        k.stop()
    finally:
        k.cleanup()


def denied(p):
    eq(p.returncode, 1, p.stderr)
    check(p.stderr.startswith(b"kmsctl: permission_denied: "), p.stderr)


@case
def listed_user_allowed(k):
    p = as_user(WEB, k.path("web.sock"), "generate", "default")
    eq(p.returncode, 0, p.stderr)
    check(p.stdout.startswith(b"v1:"))


@case
def unlisted_users_denied_every_request(k):
    for user in (WORKER, OTHER):
        denied(as_user(user, k.path("web.sock"), "generate", "default"))
        denied(as_user(user, k.path("web.sock"), "hello"))
    # root is not listed either
    r = Raw(k.path("web.sock"))
    eq(r.call({"id": 1, "op": "hello"})["error"]["code"],
       "permission_denied")
    r.close()
    check("peer user and groups not allowed" in k.logtext(),
          "reason missing from the daemon's log")


@case
def supplementary_group_allowed(k):
    p = as_user(WORKER, k.path("worker.sock"), "generate", "default")
    eq(p.returncode, 0, p.stderr)
    ct, key = p.stdout.decode().split("\n")[:2]
    d = as_user(WORKER, k.path("worker.sock"), "decrypt", "default", ct)
    eq(d.returncode, 0, d.stderr)
    import base64
    eq(d.stdout, base64.b64decode(key))


@case
def socket_file_mode_and_group(k):
    st = os.stat(k.path("worker.sock"))
    eq(stat.S_IMODE(st.st_mode), 0o660)
    eq(st.st_gid, grp.getgrnam(GROUP).gr_gid)
    # a user outside the group cannot even connect
    p = as_user(OTHER, k.path("worker.sock"), "hello")
    eq(p.returncode, 1)
    check(b"connection_failed" in p.stderr, p.stderr)


@case
def peer_units(k):
    p = in_unit("billing-worker.service", k.path("billing.sock"), "generate",
                "default")
    eq(p.returncode, 0, p.stderr)
    denied(in_unit("other-worker.service", k.path("billing.sock"),
                   "generate", "default"))
    # the test process itself runs in no such unit
    r = Raw(k.path("billing.sock"))
    eq(r.call({"id": 1, "op": "generate", "key": "default"})["error"]["code"],
       "permission_denied")
    r.close()


@case
def context_require(k):
    r = Raw(k.path("tenant.sock"))
    ok = r.call({"id": 1, "op": "generate", "key": "default",
                 "context": {"service": "billing", "id": "7"}})
    check("ciphertext" in ok, ok)
    for ctx in (None, {}, {"service": "shipping", "id": "7"}, {"id": "7"}):
        req = {"id": 2, "op": "decrypt", "key": "default",
               "ciphertext": ok["ciphertext"]}
        if ctx is not None:
            req["context"] = ctx
        eq(r.call(req)["error"]["code"], "permission_denied", str(ctx))
    back = r.call({"id": 3, "op": "decrypt", "key": "default",
                   "ciphertext": ok["ciphertext"],
                   "context": {"service": "billing", "id": "7"}})
    eq(back["plaintext"], ok["plaintext"])
    # rewrap may not move a record out of the required context
    rw = r.call({"id": 4, "op": "rewrap", "key": "default",
                 "ciphertext": ok["ciphertext"],
                 "context": {"service": "billing", "id": "7"},
                 "new_context": {"service": "shipping", "id": "7"}})
    eq(rw["error"]["code"], "permission_denied")
    r.close()


@case
def allowed_user_served_after_denials(k):
    for _ in range(10):
        denied(as_user(OTHER, k.path("web.sock"), "generate", "default"))
    p = as_user(WEB, k.path("web.sock"), "generate", "default")
    eq(p.returncode, 0, p.stderr)


if __name__ == "__main__":
    run_cases(setup, teardown)
