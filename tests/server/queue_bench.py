"""Throughput of the Redis queue: jobs per minute with 1, 2, ... `leandiff
worker`s (-t 1 each) on the tiny KOALA model of ../shared/testdata, and the
CPU time each job costs a worker (user + system, from /proc/PID/stat), so a
noisy shared machine can be told from a queue bottleneck. Not a test: run by
hand (docs/scale-out.md has the numbers).

    LEANDIFF_BIN=build/leandiff LEANDIFF_SOURCE_DIR=. LEANDIFF_BUILD_DIR=build \\
        python3 tests/server/queue_bench.py [--jobs 200] [--workers 1,2] [--steps 4] [--size 64]

Each round: a fresh redis-server on a free loopback port, the workers started
and ready, then all jobs XADDed at once; the clock runs from the first XADD
to the last stored result.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import env_paths, wait_until  # noqa: E402
from queue_util import RedisServer, Worker, queue_model, skip_without_queue  # noqa: E402
from resp import Resp  # noqa: E402

BIN, SRC, BUILD = env_paths()
skip_without_queue(BIN, "worker")
MODEL, _, STREAM = queue_model(SRC)
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def round_(n_workers, jobs, steps, size):
    tmp = tempfile.mkdtemp(prefix="leandiff-queue-bench-")
    redis = RedisServer(tmp)
    workers = []
    try:
        redis.start()
        r = Resp(redis.port)
        workers = [Worker(BIN, "b%d" % i, MODEL, redis.port) for i in range(n_workers)]
        wait_until(lambda: all(r.cmd("EXISTS", "leandiff:worker:" + w.name) for w in workers), 300)
        cpu0 = sum(cpu_seconds(w.proc.pid) for w in workers)
        t0 = time.monotonic()
        for i in range(jobs):
            params = {"prompt": "a koala number %d" % i, "width": size, "height": size, "steps": steps, "seed": i}
            r.cmd("XADD", STREAM, "*", "id", "bench%d" % i, "params", json.dumps(params))
        keys = ["leandiff:result:bench%d" % i for i in range(jobs)]
        wait_until(lambda: r.cmd("EXISTS", *keys) == jobs, 3600, interval=0.05)
        wall = time.monotonic() - t0
        cpu = sum(cpu_seconds(w.proc.pid) for w in workers) - cpu0
        job_ms = [int(r.cmd("HGET", k, "seconds")) for k in keys]
        r.close()
        return wall, cpu, sum(job_ms) / len(job_ms) / 1000
    finally:
        for w in workers:
            w.kill()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--size", type=int, default=64)
    a = ap.parse_args()
    print("CPU: %s, %d cores online; tiny KOALA, %dx%d, %d steps, %d jobs per round"
          % (cpu_model(), os.cpu_count(), a.size, a.size, a.steps, a.jobs))
    print("| workers | wall s | jobs/min | CPU s per job | job time in the worker s | workers busy |")
    print("|---|---|---|---|---|---|")
    for n in [int(x) for x in a.workers.split(",")]:
        wall, cpu, job_s = round_(n, a.jobs, a.steps, a.size)
        busy = job_s * a.jobs / (wall * n)  # the share of the wall time the workers spent in jobs
        print("| %d | %.1f | %.0f | %.3f | %.3f | %.0f %% |" % (n, wall, a.jobs / wall * 60, cpu / a.jobs, job_s,
                                                             100 * busy), flush=True)


if __name__ == "__main__":
    main()
