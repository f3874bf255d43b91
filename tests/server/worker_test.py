"""`leandiff worker` on a real Redis (redis-server started here on a free
loopback port with its own data directory): two workers on a random-weight
tiny KOALA pipeline, one killed with SIGKILL in the middle of a job. Every
job must be stored exactly once (a long job of a live worker is not taken
over), each image must equal `leandiff generate`
with the same parameters pixel for pixel, and nothing may stay pending.
Malformed --redis URLs get clear errors.

Run by tests/test_worker_redis.sh (ctest); exit 77 when redis-server is absent
or leandiff was built without hiredis.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import check, env_paths, png_decode, wait_until  # noqa: E402
from queue_util import RedisServer, ReplyDropper, Worker, generate_ref, skip_without_queue  # noqa: E402
from resp import Resp, RespError  # noqa: E402

BIN, SRC, BUILD = env_paths()
skip_without_queue(BIN, "worker")

STREAM = "leandiff:jobs:tiny"
GROUP = "leandiff-workers"


def log(msg):
    print(msg, flush=True)


def test_bad_urls(model):
    cases = [("http://127.0.0.1:6379", "must start with redis://"), ("redis://", "no host"),
             ("redis://127.0.0.1:0", "port"), ("redis://127.0.0.1:99999", "port"), ("redis://127.0.0.1:x", "port"),
             ("redis://127.0.0.1/abc", "database"), ("redis://u%zz:p@127.0.0.1", "%-escape"),
             ("redis://127.0.0.1?x=1", "unknown option 'x'"), ("redis://[::1", "IPv6"), ("redis://ho st", "space"),
             ("redis://a b@h", "space"), ("redis://user:@h", "empty password"),
             ("redis://h?cacert=/ca.pem", "use rediss://"), ("rediss://h?key=/k.pem", "go together"),
             ("rediss://h?cacert=", "empty"), ("rediss://h?cacert", "needs a value")]
    for url, want in cases:
        p = subprocess.run([BIN, "worker", "-m", model, "--redis", url], capture_output=True, text=True, timeout=60)
        check(p.returncode == 2 and want in p.stderr, "URL %r: expected exit 2 with %r, got %d: %s"
              % (url, want, p.returncode, p.stderr))
    log("ok: malformed URLs refused with clear messages (rediss:// itself: tls_test.py)")


def seconds_per_step(model):
    """What one step of a 64x64 job on `-t 1` takes on this build and machine, from two timed `leandiff generate`
    runs. The timed jobs below get their step counts from it: fixed counts finished within half a second of the
    timing checks on a fast idle core, and ran minutes under the sanitizers."""
    def run(steps):
        t0 = time.time()
        subprocess.run([BIN, "generate", "-m", model, "-p", "timing", "-W", "64", "-H", "64", "--steps", str(steps),
                        "-t", "1", "-q", "-o", os.path.join(os.path.dirname(model), "timing.png")], check=True,
                       capture_output=True, timeout=600)
        return time.time() - t0
    return max((run(120) - run(20)) / 100.0, 1e-4)


def steps_lasting(per_step, seconds, least):
    """Steps that take about `seconds`, between `least` and 1000 (the most a job may ask for)."""
    return max(least, min(1000, int(seconds / per_step) + 1))


def main():
    tmp = tempfile.mkdtemp(prefix="leandiff-worker-test-")
    redis = RedisServer(tmp)
    workers = []
    try:
        model = os.path.join(tmp, "tiny")
        subprocess.run([BIN, "init-random", "--pipeline", "tiny", "--out", model], check=True, capture_output=True)
        test_bad_urls(model)
        # the long job is killed about 1 s after it starts; the slow one (two images) must outlast twice --claim-after
        per_step = seconds_per_step(model)
        long_steps, slow_steps = steps_lasting(per_step, 5.0, 300), steps_lasting(per_step, 4.0, 400)
        log("timing: %d steps for the long job, 2 x %d for the slow one" % (long_steps, slow_steps))
        redis.start()
        r = Resp(redis.port)
        jobs = {}
        for i in range(8):
            jobs["short%d" % i] = {"prompt": "a koala number %d" % i, "width": 64, "height": 64, "steps": 2 + i % 3,
                                   "seed": 100 + i}
        jobs["short2"]["negative_prompt"] = "blurry"
        jobs["short3"]["sampler"] = "euler_a"
        jobs["short4"]["cfg_scale"] = 3.0
        jobs["batch"] = {"prompt": "two koalas", "width": 64, "height": 64, "steps": 2, "seed": 5, "n": 2}
        jobs["long"] = {"prompt": "a long job", "width": 64, "height": 64, "steps": long_steps, "seed": 9}
        entries = {}
        for jid in ["long"] + [j for j in jobs if j != "long"]:
            entries[jid] = r.cmd("XADD", STREAM, "*", "id", jid, "params", json.dumps(jobs[jid])).decode()
        r.cmd("XADD", STREAM, "*", "id", "bad", "params", '{"prompt": "x", "steps": "many"}')
        r.cmd("XADD", STREAM, "*", "params", "{}")  # no id: acknowledged and dropped
        workers = [Worker(BIN, "wA", model, redis.port), Worker(BIN, "wB", model, redis.port)]

        # The worker that took the long job is killed once it has made a few steps.
        def long_owner():
            try:
                p = r.cmd("XPENDING", STREAM, GROUP, "-", "+", "10")
            except RespError:  # the group does not exist until a worker made it
                return None
            for e in p or []:
                if e[0].decode() == entries["long"]:
                    return e[1].decode()
            return None
        check(wait_until(lambda: long_owner() is not None, 300), "no worker took the long job")
        victim = next(w for w in workers if w.name == long_owner())
        wait_until(lambda: b'"job":"long"' in (r.cmd("GET", "leandiff:worker:" + victim.name) or b""), 60)
        time.sleep(1.0)
        check(r.cmd("EXISTS", "leandiff:result:long") == 0, "the long job finished before the kill: make it longer")
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        log("killed %s in the middle of the long job" % victim.name)
        survivor = next(w for w in workers if w is not victim)

        def all_done():
            return all(r.cmd("EXISTS", "leandiff:result:" + j) == 1 for j in list(jobs) + ["bad"])
        wait_until(all_done, 900, interval=0.2)
        wait_until(lambda: r.cmd("XPENDING", STREAM, GROUP)[0] == 0, 60)
        log("ok: every job has a result, nothing pending")

        # exactly once: one "stored" line per job over both workers, and the reclaim is logged
        logs = victim.text() + survivor.text()
        for j in jobs:
            n = logs.count("job %s stored" % j)
            check(n == 1, "job %s stored %d times:\n%s" % (j, n, logs))
        check("reclaimed " + entries["long"] in survivor.text(), "no reclaim logged:\n" + survivor.text())
        bad = r.hgetall("leandiff:result:bad")
        check(bad["status"] == b"error" and b"steps" in bad["error"], "bad job: %r" % bad)
        check(r.cmd("TTL", "leandiff:result:short0") > 0, "results must expire")

        for j, params in jobs.items():
            res = r.hgetall("leandiff:result:" + j)
            check(res["status"] == b"done", "job %s: %r" % (j, res.get("error")))
            for i in range(params.get("n", 1)):
                used = json.loads(res["params:%d" % i])
                check(used["seed"] == params["seed"] + i and used["steps"] == params["steps"], "params %r" % used)
                got = png_decode(res["png:%d" % i])
                check(got[4].get("parameters") == res["infotext:%d" % i].decode(), "infotext chunk of " + j)
                ref = generate_ref(BIN, model, params, params["seed"] + i, os.path.join(tmp, "%s-%d.png" % (j, i)))
                check(got[:4] == ref[:4], "job %s image %d differs from leandiff generate" % (j, i))
        log("ok: %d jobs, every image equals leandiff generate pixel for pixel" % len(jobs))

        # A live worker keeps its claim: a job running far longer than --claim-after is not taken over
        # by an idle worker polling for abandoned jobs (XAUTOCLAIM) all along.
        idle = Worker(BIN, "wC", model, redis.port)
        workers.append(idle)
        wait_until(lambda: r.cmd("EXISTS", "leandiff:worker:wC") == 1, 300)
        slow = {"prompt": "a job longer than --claim-after", "width": 64, "height": 64, "steps": slow_steps,
                "seed": 11, "n": 2}
        t0 = time.time()
        slow_entry = r.cmd("XADD", STREAM, "*", "id", "slow", "params", json.dumps(slow)).decode()
        wait_until(lambda: r.cmd("EXISTS", "leandiff:result:slow") == 1, 900, interval=0.2)
        took = time.time() - t0
        check(r.cmd("HGET", "leandiff:result:slow", "status") == b"done", "slow job: %r" % r.hgetall("leandiff:result:slow"))
        check(took > 4, "the slow job took %.1f s, not twice --claim-after: make it longer" % took)
        logs = survivor.text() + idle.text()
        check(logs.count("job slow stored") == 1 and "reclaimed " + slow_entry not in logs
              and "stored by another worker" not in logs, "a running job was taken over:\n" + logs)
        log("ok: a job running %.1f s (--claim-after 2) stays with its worker" % took)

        survivor.proc.send_signal(signal.SIGTERM)
        check(survivor.proc.wait(120) == 0, "worker exit status on SIGTERM:\n" + survivor.text())
        check(r.cmd("EXISTS", "leandiff:worker:" + survivor.name) == 0, "a stopped worker removes its heartbeat")
        r.close()
        log("ok: SIGTERM stops the worker cleanly")

        # The reply to the store is lost (Redis ran it, the connection dropped before the answer): the worker
        # reconnects and sends it again, finds its own result, and counts it as its store, once.
        idle.proc.send_signal(signal.SIGTERM)
        check(idle.proc.wait(120) == 0, "worker exit status on SIGTERM:\n" + idle.text())
        proxy = ReplyDropper(redis.port, b"redis.call('HSET', KEYS[1]")
        lossy = Worker(BIN, "wD", model, proxy.port)
        workers.append(lossy)
        r = Resp(redis.port)
        r.cmd("XADD", STREAM, "*", "id", "lostreply", "params",
              json.dumps({"prompt": "a lost reply", "width": 64, "height": 64, "steps": 2, "seed": 3}))
        wait_until(lambda: "job lostreply" in lossy.text(), 300, interval=0.2)
        wait_until(lambda: r.cmd("XPENDING", STREAM, GROUP)[0] == 0, 60)
        check(proxy.fired.is_set(), "the store's reply was not dropped:\n" + lossy.text())
        check("lost the connection to Redis" in lossy.text() and lossy.text().count("job lostreply stored (") == 1
              and "stored by another worker" not in lossy.text(), "lost reply:\n" + lossy.text())
        check(r.cmd("HGET", "leandiff:result:lostreply", "worker") == b"wD"
              and r.cmd("HGET", "leandiff:result:lostreply", "status") == b"done", "result of the lost reply")
        lossy.proc.send_signal(signal.SIGTERM)
        check(lossy.proc.wait(120) == 0, "worker exit status on SIGTERM:\n" + lossy.text())
        proxy.close()
        r.close()
        log("ok: a store whose reply was lost is sent again and counted once")
    finally:
        for w in workers:
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
