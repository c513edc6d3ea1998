"""The configuration options kmsd's parser knows, asked of kmsd itself.

The man page and the example config must document every option, including
those of provider sections that land later. Reading the option names out of
the C sources with a fixed pattern would break the day someone writes a
check differently (config.c compares `name`, the AWS provider keeps a
`known[]` table, GCP calls config_opt(), Vault compares `o->name`). So the
names are found the way an administrator would find them: every string
literal in the parser's sources that looks like an option name is tried,
alone, in its section with `kmsd --check-config`. An unknown option is
refused with "unknown option 'NAME'"; anything else (accepted, or refused
for its value "x") means the parser knows NAME. A made-up name is tried
first in each section, so a section that does not refuse unknown options
(a provider not wired in yet) fails loudly instead of making every word
look like an option.

Where the literals come from: daemon/config.c for [kmsd], [key NAME] and
[socket NAME]; for a provider section [P] (the list is CONFIG_PROVIDER_SECTIONS
in daemon/config.h), daemon/providers/P*.c and *.h plus any provider file
that declares `.section = "P"`. A prefix option such as key_id.N shows up as
its literal prefix "key_id.".
"""
import concurrent.futures
import glob
import os
import re
import subprocess
import tempfile

# Option-shaped literals: lower case, digits, '_', possibly ending in '.'
# (a prefix like "key_id."), 3 to 40 characters: shorter or longer ones
# ("s", "ms", "re" for fopen) are never option names, and each probe is a
# process start.
OPTION_SHAPE = re.compile(r"^[a-z][a-z0-9_]{2,39}\.?$")
C_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
NONSENSE = "no_such_option_zz"

BASE = """[kmsd]
state_dir = {dir}/state
{kmsd}
[key default]
key_id = insecure-test-key
{key}
[socket s]
path = {dir}/s.sock
allow = encrypt
{socket}
{extra}
"""


def literals(paths):
    out = set()
    for p in paths:
        with open(p, encoding="utf-8", errors="replace") as f:
            for m in C_STRING.finditer(f.read()):
                if OPTION_SHAPE.match(m.group(1)):
                    out.add(m.group(1))
    return out


def provider_sections(src):
    with open(os.path.join(src, "daemon/config.h")) as f:
        m = re.search(r"#define CONFIG_PROVIDER_SECTIONS\s*\{([^}]*)\}",
                      f.read())
    if m is None:
        raise AssertionError("CONFIG_PROVIDER_SECTIONS not found in "
                             "daemon/config.h")
    return re.findall(r'"([a-z0-9_]+)"', m.group(1))


def provider_files(src, name):
    files = set(glob.glob(os.path.join(src, "daemon/providers",
                                       name + "*.[ch]")))
    for p in glob.glob(os.path.join(src, "daemon/providers/*.c")):
        with open(p, encoding="utf-8", errors="replace") as f:
            if re.search(r'\.section\s*=\s*"%s"' % re.escape(name), f.read()):
                files.add(p)
    return sorted(files)


class Prober:
    def __init__(self, kmsd):
        self.kmsd = kmsd
        self.dir = tempfile.mkdtemp(prefix="kmsd-opts-")

    def knows(self, section, name):
        """True when kmsd's parser accepts NAME in SECTION as an option."""
        return f"unknown option '{name}'" not in self.check(section, name,
                                                           "x")

    def takes_credential(self, section, name):
        """True when option NAME resolves a credential:NAME value: with no
        $CREDENTIALS_DIRECTORY, such an option says it needs one."""
        return "CREDENTIALS_DIRECTORY" in self.check(section, name,
                                                      "credential:probe")

    def check(self, section, name, value):
        """kmsd --check-config's stderr for NAME = VALUE alone in
        SECTION."""
        slots = {"kmsd": "", "key": "", "socket": "", "extra": ""}
        line = f"{name} = {value}"
        if section in ("kmsd", "key", "socket"):
            slots[section] = line
        else:
            slots["extra"] = f"[{section}]\n{line}"
        fd, path = tempfile.mkstemp(dir=self.dir, suffix=".conf")
        with os.fdopen(fd, "w") as f:
            f.write(BASE.format(dir=self.dir, **slots))
        env = {k: v for k, v in os.environ.items()
               if k != "CREDENTIALS_DIRECTORY"}
        try:
            p = subprocess.run([self.kmsd, "--check-config", "--config", path],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, timeout=30, env=env)
        finally:
            os.unlink(path)
        return p.stderr

    def close(self):
        try:
            os.rmdir(self.dir)
        except OSError:
            pass


def credential_options(kmsd, options):
    """The subset of options ({section: names}) whose value may be
    credential:NAME (a systemd credential, config_file_path in config.c)."""
    prober = Prober(kmsd)
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futs = {(s, n): pool.submit(prober.takes_credential, s, n)
                    for s, names in options.items() for n in names}
            out = {s: set() for s in options}
            for (s, n), fut in futs.items():
                if fut.result():
                    out[s].add(n)
    finally:
        prober.close()
    return out


def parser_options(kmsd, src):
    """{section: set of option names} for kmsd, key, socket and each
    provider section."""
    config_c = [os.path.join(src, "daemon/config.c")]
    plan = {"kmsd": literals(config_c), "key": literals(config_c),
            "socket": literals(config_c)}
    for name in provider_sections(src):
        files = provider_files(src, name)
        if not files:
            raise AssertionError(f"[{name}]: no provider source in "
                                 "daemon/providers")
        plan[name] = literals(files)
    prober = Prober(kmsd)
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            controls = {s: pool.submit(prober.knows, s, NONSENSE)
                        for s in plan}
            for s, fut in controls.items():
                if fut.result():
                    raise AssertionError(
                        f"[{s}] accepts the made-up option {NONSENSE!r}: "
                        "its options cannot be discovered (is the provider "
                        "registered in daemon/provider.c?)")
            futs = {(s, n): pool.submit(prober.knows, s, n)
                    for s, names in plan.items() for n in names}
            found = {s: set() for s in plan}
            for (s, n), fut in futs.items():
                if fut.result():
                    found[s].add(n)
    finally:
        prober.close()
    return found
