"""The seed's way: KMS Decrypt called directly with boto3 (what an
application using kms_encrypted-style code does without kmsd).

Run by a python that has boto3 (run.py picks it):
    boto3_bench.py --url URL --ca CERT --arn ARN --procs N
                   [--warmup S] [--duration S]
Each process builds its own client (as separate application processes
would), makes sequential Decrypt calls, and reports its latencies; the
parent prints one JSON object: ops/s over all processes, percentiles.
Credentials and region come from the environment.
"""
import argparse
import json
import multiprocessing as mp
import time

import boto3

BLOB = bytes([1, 2, 3, 0]) + bytes((i * 7) & 0xff for i in range(180))
CONTEXT = {"model_id": "1", "model_name": "User"}


def worker(args, barrier, q):
    kms = boto3.client("kms", endpoint_url=args.url, verify=args.ca)
    kms.decrypt(CiphertextBlob=BLOB, EncryptionContext=CONTEXT)
    barrier.wait()
    start = time.monotonic() + args.warmup
    stop = start + args.duration
    lat, errors = [], 0
    while True:
        t0 = time.monotonic()
        if t0 >= stop:
            break
        try:
            r = kms.decrypt(CiphertextBlob=BLOB, EncryptionContext=CONTEXT)
            ok = len(r["Plaintext"]) == 32
        except Exception:
            ok = False
        t1 = time.monotonic()
        if t0 >= start:
            lat.append(t1 - t0)
            errors += not ok
    q.put((lat, errors))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--arn", required=True)
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--duration", type=float, default=3)
    args = ap.parse_args()
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(args.procs)
    q = ctx.Queue()
    ps = [ctx.Process(target=worker, args=(args, barrier, q))
          for _ in range(args.procs)]
    for p in ps:
        p.start()
    lat, errors = [], 0
    for _ in ps:
        lt, e = q.get()
        lat += lt
        errors += e
    for p in ps:
        p.join()
    lat.sort()

    def pct(q_):
        return round(lat[int(q_ * (len(lat) - 1) + 0.5)] * 1e6, 1) \
            if lat else 0
    print(json.dumps({"kind": "boto3", "procs": args.procs, "ops": len(lat),
                      "errors": errors, "secs": args.duration,
                      "ops_per_s": round(len(lat) / args.duration, 1),
                      "p50_us": pct(0.5), "p90_us": pct(0.9),
                      "p99_us": pct(0.99)}))


if __name__ == "__main__":
    main()
