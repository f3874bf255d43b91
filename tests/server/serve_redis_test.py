"""`leandiff serve --redis` (a front-end with no model) with three `leandiff
worker`s on the tiny KOALA model of ../shared/testdata and a real
redis-server (started here on a free loopback port with its own data
directory, append-only file on), trying to lose work:

- jobs go in through all three APIs at once (A1111 txt2img and img2img with
  a mask, OpenAI, native jobs; samplers, a Karras schedule, n = 2), while
- the worker running the long job is killed with SIGKILL in the middle of
  it (another worker reclaims it), and
- Redis is restarted once (SIGTERM, then started again on its data
  directory); the front-end and the workers must say they lost the
  connection and that they reconnected.

Then every job is done, each was stored exactly once (one "stored" line over
all workers), each image equals `leandiff generate` with the same parameters
pixel for pixel, nothing is left pending or in the stream, the event stream
relayed the workers' progress, /api/v1/status listed the workers, and the
front-end exits 0 on SIGTERM. Also: a model no worker serves is a 503 naming
it, a malformed --redis URL is exit 2.

The number of parameter sets (each sent through all three APIs) is
LEANDIFF_FAULT_SETS (default 20: 62 jobs, 45-70 s on 2 busy cores).
Run by tests/test_serve_redis.sh (ctest); exit 77 when redis-server, hiredis
or the model is missing.
"""
import base64
import concurrent.futures
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Server, b64png, check, env_paths, png_decode, wait_until  # noqa: E402
from queue_util import RedisServer, Worker, generate_ref, queue_model, skip_without_queue  # noqa: E402
from resp import Resp  # noqa: E402

BIN, SRC, BUILD = env_paths()
skip_without_queue(BIN, "worker")
MODEL, NAME, STREAM = queue_model(SRC)
GROUP = "leandiff-workers"
SETS = int(os.environ.get("LEANDIFF_FAULT_SETS", "20"))
LONG_STEPS = 400


def log(msg):
    print(msg, flush=True)


def png_encode(w, h, rgb):
    """8-bit RGB PNG, stdlib only (the mask)."""
    raw = b"".join(b"\0" + rgb[y * w * 3:(y + 1) * w * 3] for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def param_sets():
    """Parameter sets in `leandiff generate` terms; each goes through the three APIs."""
    out = []
    for i in range(SETS):
        p = {"prompt": "a koala number %d" % i, "width": 64, "height": 64, "steps": 2 + i % 3, "seed": 1000 + i}
        if i % 4 == 1:
            p["negative_prompt"] = "blurry"
        if i % 4 == 2:
            p["cfg_scale"] = 3.0
        if i % 6 == 3:
            p["sampler"] = "euler_a"
        if i % 6 == 5:
            p["sampler"], p["schedule"] = "dpm++2m", "karras"
        if i == 0:
            p["n"] = 2
        out.append(p)
    return out


def a1111_body(p):
    b = {k: p[k] for k in ("prompt", "negative_prompt", "width", "height", "steps", "cfg_scale", "seed") if k in p}
    if "sampler" in p:
        b["sampler_name"] = p["sampler"]
    if "schedule" in p:
        b["scheduler"] = "Karras"
    b["batch_size"] = p.get("n", 1)
    return b


def native_body(p):
    b = {k: p[k] for k in ("prompt", "negative_prompt", "width", "height", "steps", "cfg_scale", "seed", "sampler",
                           "n") if k in p}
    if "schedule" in p:
        b["scheduler"] = "Karras"
    return b


def openai_body(p):
    b = {k: p[k] for k in ("prompt", "negative_prompt", "steps", "cfg_scale", "seed", "n", "sampler") if k in p}
    if "schedule" in p:
        b["scheduler"] = "Karras"
    b["size"] = "%dx%d" % (p["width"], p["height"])
    return b


class Events(threading.Thread):
    """Reads a job's event stream to its end: the (event, data) pairs."""

    def __init__(self, srv, job_id):
        super().__init__(daemon=True)
        self.srv, self.id, self.events = srv, job_id, []

    def run(self):
        c = self.srv.conn(timeout=600)
        c.request("GET", "/api/v1/jobs/%s/events" % self.id)
        r = c.getresponse()
        ev = None
        for raw in r:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                ev = line[7:]
            elif line.startswith("data: "):
                self.events.append((ev, json.loads(line[6:])))
        c.close()


def test_usage(url):
    p = subprocess.run([BIN, "serve", "--redis", "http://x"], capture_output=True, text=True, timeout=60)
    check(p.returncode == 2 and "redis://" in p.stderr, "bad URL: %d %s" % (p.returncode, p.stderr))
    with Server(["--redis", url, "--redis-model", "no-such-model"]) as srv:
        status, hdrs, body = srv.request("POST", "/sdapi/v1/txt2img", {"prompt": "x"})
        check(status == 503 and b"no-such-model" in body and "retry-after" in hdrs, "no worker: %d %s" % (status, body))
        status, _, body = srv.request("POST", "/api/v1/jobs", {"prompt": "x"})
        check(status == 503 and b"no worker is serving model no-such-model" in body, "native: %s" % body)
        check(srv.stop() == 0, "front-end exit status")
    log("ok: a model no worker serves is a 503 naming it; a bad URL is exit 2")


def test_local_worker(url, port, tmp):
    """serve --redis -m DIR: the front-end is also a worker (no other worker runs yet); --max-queue and
    cancelling a running job and a job queued in Redis."""
    p = {"prompt": "a local koala", "width": 64, "height": 64, "steps": 3, "seed": 31}
    with Server(["--redis", url, "-m", MODEL, "-t", "1", "--max-queue", "1", "--max-steps", "1000"]) as srv:
        st = wait_until(lambda: (lambda o: o if o["workers"] else None)(srv.json("GET", "/api/v1/status")), 60)
        check(st and st["workers"][0]["model"] == NAME, "the local worker is not listed: %r" % st)
        long_body = {"prompt": "long", "width": 64, "height": 64, "steps": 1000}
        running = srv.json("POST", "/api/v1/jobs", long_body, expect=202)["id"]
        check(wait_until(lambda: srv.json("GET", "/api/v1/jobs/" + running)["state"] == "running", 60), "not running")
        queued = srv.json("POST", "/api/v1/jobs", long_body, expect=202)["id"]
        status, hdrs, body = srv.request("POST", "/api/v1/jobs", long_body)
        check(status == 503 and "retry-after" in hdrs and b"queue is full" in body, "--max-queue 1: %d %s"
              % (status, body))
        check(srv.json("GET", "/api/v1/jobs/" + queued)["state"] == "queued", "the second job must wait")
        r = Resp(port)
        check(wait_until(lambda: r.cmd("EXISTS", "leandiff:job:" + queued), 60), "the second job is not in Redis")
        r.close()
        for jid in (queued, running):
            srv.json("DELETE", "/api/v1/jobs/" + jid)
        for jid in (queued, running):
            check(wait_until(lambda: srv.json("GET", "/api/v1/jobs/" + jid)["state"] == "cancelled", 60),
                  "job %s not cancelled: %r" % (jid, srv.json("GET", "/api/v1/jobs/" + jid)))
        check(wait_until(lambda: ("job %s: cancelled before it started" % queued) in srv.stderr()
                         and ("job %s: cancelled at step" % running) in srv.stderr(), 60),
              "the worker did not stop / skip the cancelled jobs:\n" + srv.stderr())
        o = srv.json("POST", "/sdapi/v1/txt2img", a1111_body(p))
        ref = generate_ref(BIN, MODEL, p, 31, os.path.join(tmp, "ref-local.png"))
        check(b64png(o["images"][0])[:4] == ref[:4], "the local worker's image differs from leandiff generate")
        check(srv.stop() == 0, "front-end with a local worker: exit status\n" + srv.stderr())
    log("ok: serve --redis -m DIR runs the jobs on its own worker too; --max-queue gives 503; a running job and "
        "one queued in Redis are cancelled on the worker")


def main():
    tmp = tempfile.mkdtemp(prefix="leandiff-serve-redis-test-")
    redis = RedisServer(tmp)
    workers, srv = [], None
    try:
        redis.start()
        url = redis.url()
        test_usage(url)
        test_local_worker(url, redis.port, tmp)
        workers = [Worker(BIN, "w%d" % i, MODEL, redis.port, ["--claim-after", "5", "--max-steps", "1000"])
                   for i in range(3)]
        r = Resp(redis.port)
        check(wait_until(lambda: all(r.cmd("EXISTS", "leandiff:worker:" + w.name) for w in workers), 300),
              "the workers did not start")
        srv = Server(["--redis", url, "--max-queue", "1000", "--max-steps", "1000", "-v"])
        srv.start()
        st = wait_until(lambda: (lambda o: o if len(o["workers"]) == 3 else None)(srv.json("GET", "/api/v1/status")),
                        60)
        check(st, "the front-end does not see the workers")
        check(st["model"] == NAME and st["family"] == "sdxl" and st["executor"] == "redis", "status %r" % st)
        check(sorted(w["name"] for w in st["workers"]) == ["w0", "w1", "w2"], "workers in status: %r" % st["workers"])
        log("ok: the front-end serves %s and lists the workers" % NAME)

        sets = param_sets()
        # img2img with a mask through A1111: the init image is set 1's reference image
        refs = {}
        ref_path = os.path.join(tmp, "init.png")
        refs[(1, 0)] = generate_ref(BIN, MODEL, sets[1], sets[1]["seed"], ref_path)
        with open(ref_path, "rb") as f:
            init_png = f.read()
        mask = bytes(255 if x >= 32 else 0 for y in range(64) for x in range(64) for c in range(3))
        mask_path = os.path.join(tmp, "mask.png")
        with open(mask_path, "wb") as f:
            f.write(png_encode(64, 64, mask))
        img2img = {"prompt": "a koala, repainted", "width": 64, "height": 64, "steps": 4, "seed": 77,
                   "init_image": ref_path, "mask": mask_path, "strength": 0.6}

        # the long job first: the worker that takes it is killed half-way
        long_params = {"prompt": "a long job", "width": 64, "height": 64, "steps": LONG_STEPS, "seed": 9}
        long_id = srv.json("POST", "/api/v1/jobs", native_body(long_params), expect=202)["id"]
        events = Events(srv, long_id)
        events.start()

        results = {}  # (set index or name, api) -> list of PNG bytes

        def sync(key, path, body, pick):
            status, _, data = srv.request("POST", path, body, timeout=900)
            check(status == 200, "%s %s: %d %s" % (key, path, status, data[:300]))
            results[key] = pick(json.loads(data))

        pool = concurrent.futures.ThreadPoolExecutor(8)
        futs = []
        native_ids = {}
        for i, p in enumerate(sets):
            futs.append(pool.submit(sync, (i, "a1111"), "/sdapi/v1/txt2img", a1111_body(p),
                                    lambda o: [base64.b64decode(s) for s in o["images"]]))
            futs.append(pool.submit(sync, (i, "openai"), "/v1/images/generations", openai_body(p),
                                    lambda o: [base64.b64decode(d["b64_json"]) for d in o["data"]]))
            native_ids[i] = srv.json("POST", "/api/v1/jobs", native_body(p), expect=202)["id"]
        body = {"prompt": img2img["prompt"], "steps": 4, "seed": 77, "denoising_strength": 0.6,
                "init_images": [base64.b64encode(init_png).decode()],
                "mask": "data:image/png;base64," + base64.b64encode(png_encode(64, 64, mask)).decode()}
        futs.append(pool.submit(sync, ("img2img", "a1111"), "/sdapi/v1/img2img", body,
                                lambda o: [base64.b64decode(s) for s in o["images"]]))
        n_jobs = 3 * len(sets) + 2

        # SIGKILL the worker running the long job once it made some steps
        def long_owner():
            for w in srv.json("GET", "/api/v1/status")["workers"]:
                if w.get("job") == long_id:
                    return w["name"]
            return None
        owner = wait_until(long_owner, 300)
        check(owner, "no worker took the long job")
        victim = next(w for w in workers if w.name == owner)
        check(wait_until(lambda: srv.json("GET", "/api/v1/jobs/" + long_id)["step"] >= 20, 120), "no progress")
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        log("killed %s in the middle of the long job (step %d of %d)"
            % (owner, srv.json("GET", "/api/v1/jobs/" + long_id)["step"], LONG_STEPS))

        # restart Redis (its append-only file brings back the stream, the pending list and the results)
        time.sleep(0.5)
        redis.stop()
        time.sleep(1.0)
        redis.start()
        r.close()
        r = Resp(redis.port)
        log("restarted Redis on port %d" % redis.port)

        for f in futs:
            f.result(timeout=900)
        pool.shutdown()
        for i, jid in list(native_ids.items()) + [("long", long_id)]:
            check(wait_until(lambda: srv.json("GET", "/api/v1/jobs/" + jid)["state"] not in ("queued", "running"),
                             900, interval=0.2), "native job %s did not finish" % jid)
            j = srv.json("GET", "/api/v1/jobs/" + jid)
            check(j["state"] == "done", "native job %s: %s %s" % (jid, j["state"], j["error"]))
            results[(i, "native")] = [srv.request("GET", "/api/v1/jobs/%s/image?index=%d" % (jid, k))[2]
                                      for k in range(len(j["images"]))]
        events.join(120)
        log("ok: all %d jobs answered" % n_jobs)

        # exactly once: the front-end's jobs, each stored by one worker, nothing left over
        jobs = srv.json("GET", "/api/v1/jobs")
        check(len(jobs) == n_jobs and all(j["state"] == "done" for j in jobs), "jobs: %r"
              % [(j["id"], j["state"]) for j in jobs])
        # a worker logs "stored" just after the store the front-end saw: give its line time to arrive
        wait_until(lambda: "".join(w.text() for w in workers).count(" stored (") >= n_jobs, 30, interval=0.2)
        logs = "".join(w.text() for w in workers)
        for j in jobs:
            n = logs.count("job %s stored (" % j["id"])
            check(n == 1, "job %s stored %d times" % (j["id"], n))
            check(r.cmd("HGET", "leandiff:result:" + j["id"], "status") == b"done", "result of " + j["id"])
        check(logs.count(" stored (") == n_jobs, "stored lines: %d for %d jobs" % (logs.count(" stored ("), n_jobs))
        survivors = [w for w in workers if w is not victim]
        check(any("reclaimed" in w.text() for w in survivors), "no reclaim logged")
        check(r.cmd("XPENDING", STREAM, GROUP)[0] == 0 and r.cmd("XLEN", STREAM) == 0, "left in the stream")
        fe = srv.stderr()
        check("lost the connection to Redis" in fe and "reconnected to Redis" in fe, "front-end log:\n" + fe)
        for w in survivors:
            check("lost the connection to Redis" in w.text() and "reconnected to Redis" in w.text(),
                  "worker %s log:\n%s" % (w.name, w.text()))
        log("ok: every job stored exactly once, the long one reclaimed, nothing pending; both sides reconnected")

        kinds = [e for e, _ in events.events]
        steps = [d["step"] for e, d in events.events if e == "progress" and d["stage"] == "unet"]
        check(kinds and kinds[-1] == "done" and len(steps) >= 3, "events: %r" % kinds[:20])
        log("ok: the event stream relayed %d progress events of the long job, then done" % len(steps))

        # every image equals leandiff generate with the same parameters
        compared = 0
        for i, p in enumerate(sets):
            for k in range(p.get("n", 1)):
                if (i, k) not in refs:
                    refs[(i, k)] = generate_ref(BIN, MODEL, p, p["seed"] + k, os.path.join(tmp, "ref-%d-%d.png" % (i, k)))
                for api in ("a1111", "openai", "native"):
                    got = results[(i, api)]
                    check(len(got) == p.get("n", 1), "set %d %s: %d images" % (i, api, len(got)))
                    check(png_decode(got[k])[:4] == refs[(i, k)][:4], "set %d image %d via %s differs" % (i, k, api))
                    compared += 1
        ref = generate_ref(BIN, MODEL, img2img, 77, os.path.join(tmp, "ref-img2img.png"))
        check(png_decode(results[("img2img", "a1111")][0])[:4] == ref[:4], "img2img differs from leandiff generate")
        ref = generate_ref(BIN, MODEL, long_params, 9, os.path.join(tmp, "ref-long.png"))
        check(png_decode(results[("long", "native")][0])[:4] == ref[:4], "the long job differs")
        log("ok: %d images equal leandiff generate pixel for pixel" % (compared + 2))

        check(srv.stop() == 0, "front-end exit status on SIGTERM:\n" + srv.stderr())
        srv = None
        for w in survivors:
            w.proc.send_signal(signal.SIGTERM)
            check(w.proc.wait(120) == 0, "worker exit status")
        r.close()
        log("ok: the front-end and the workers stop cleanly")
    finally:
        if srv:
            srv.proc.kill()
        for w in workers:
            w.kill()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
