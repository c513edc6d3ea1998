#!/usr/bin/python3
"""Count test cases across meson's test log and print the closing line.

Every test executable prints TAP (Check suites through srunner_set_tap,
integration scripts through tests/integration/tap.py). A case is one
"ok"/"not ok" line. An executable that failed without a failing case (a
crash, a leak report, a timeout) counts as one more failure, so nothing
can pass by dying quietly.
"""
import json
import re
import sys

TAP = re.compile(r"^(not ok|ok)\b(.*)$")


def main(path):
    passed = failed = 0
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError as e:
        print(f"cannot read {path}: {e}")
        print("0 passed, 1 failed")
        return 1
    for line in lines:
        t = json.loads(line)
        name, result = t.get("name", "?"), t.get("result", "?")
        ok = bad = 0
        for out in (t.get("stdout") or "").splitlines():
            m = TAP.match(out)
            if not m:
                continue
            if m.group(1) == "ok" and "# SKIP" not in m.group(2):
                ok += 1
            elif m.group(1) == "not ok":
                bad += 1
                print(f"FAIL {name}: {out}")
            else:
                # a skipped case is neither passed nor hidden
                bad += 1
                print(f"SKIPPED (counted as failed) {name}: {out}")
        if ok == 0 and bad == 0:
            # not a TAP test (a compile or export check): one case
            if result == "OK":
                ok = 1
            else:
                bad = 1
                print(f"FAIL {name}: {result}")
        elif result not in ("OK", "EXPECTEDFAIL") and bad == 0:
            bad = 1
            print(f"FAIL {name}: {result} without a failing case (crash, leak or timeout)")
        passed += ok
        failed += bad
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
