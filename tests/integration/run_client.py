#!/usr/bin/python3
"""Run the libkmsclient integration suite (a Check binary printing TAP)
against a real kmsd started here, and pass its TAP through."""
import os
import subprocess
import sys

from harness import Kmsd


def main(binary):
    k = Kmsd().start()
    rc = 1
    try:
        env = dict(os.environ,
                   KMSD_TEST_ENCRYPT_SOCKET=k.path("encrypt.sock"),
                   KMSD_TEST_DECRYPT_SOCKET=k.path("decrypt.sock"),
                   CK_DEFAULT_TIMEOUT="60")
        p = subprocess.run([binary], env=env, timeout=300)
        rc = p.returncode
        k.stop()
    finally:
        k.cleanup()
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
