"""Load test of `leandiff serve`: 32 concurrent clients for 60 seconds
(LEANDIFF_LOAD_SECONDS to change) against loopback, mixing valid requests
(A1111, OpenAI, native jobs, progress, job status, event streams) with
malformed JSON, out-of-limit values, oversized bodies, wrong methods,
unknown paths and clients that disconnect mid-request or mid-stream.

Passes when every answer is the documented one, every valid job is either
done or refused with 503 (with Retry-After), the server still answers at the
end, and it exits 0 on SIGTERM (under ASan a leak makes that nonzero).

With LEANDIFF_LOAD_REDIS=1 the server is a front-end (`serve --redis`) of
one `leandiff worker` on a redis-server started here (tests/test_serve_redis_load.sh):
the same answers are expected.

Run by tests/test_server_load.sh; exit 77 when the model is missing.
"""
import collections
import http.client
import json
import os
import random
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Server, check, env_paths, skip, testdata_dir, wait_until  # noqa: E402

BIN, SRC, BUILD = env_paths()
MODEL = os.path.join(testdata_dir(SRC), "models", "koala-700m-tiny")
if not os.path.isdir(MODEL):
    skip("model not found: " + MODEL)

CLIENTS = 32
SECONDS = float(os.environ.get("LEANDIFF_LOAD_SECONDS", "60"))
MAX_BODY = 16384
VALID = {"prompt": "a koala", "width": 64, "height": 64, "steps": 2, "cfg_scale": 1.0}  # small: many jobs run

lock = threading.Lock()
counts = collections.Counter()
failures = []
native_jobs = []


def note(kind):
    with lock:
        counts[kind] += 1


def fail(msg):
    with lock:
        failures.append(msg)


def request(port, method, path, body=None, headers=None, timeout=600):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def expect(kind, got, allowed):
    status, headers, body = got
    if status not in allowed:
        fail("%s: status %d not in %s: %s" % (kind, status, allowed, body[:200]))
        return False
    if status == 503 and int(headers.get("retry-after", "0")) < 1:
        fail("%s: 503 without Retry-After" % kind)
    note("%s %d" % (kind, status))
    return True


def a1111(port, rnd):
    got = request(port, "POST", "/sdapi/v1/txt2img", dict(VALID, seed=rnd.randrange(1000)))
    if expect("a1111", got, (200, 503)) and got[0] == 200:
        out = json.loads(got[2])
        if len(out["images"]) != 1 or json.loads(out["info"])["steps"] != 2:
            fail("a1111: bad answer")


def openai(port, rnd):
    got = request(port, "POST", "/v1/images/generations", {"prompt": "x", "size": "64x64", "steps": 2, "cfg_scale": 1.0, "n": 1})
    if expect("openai", got, (200, 503)) and got[0] == 200 and len(json.loads(got[2])["data"]) != 1:
        fail("openai: bad answer")


def native(port, rnd):
    got = request(port, "POST", "/api/v1/jobs", dict(VALID, seed=rnd.randrange(1000)))
    if expect("native", got, (202, 503)) and got[0] == 202:
        with lock:
            native_jobs.append(json.loads(got[2])["id"])


def status(port, rnd):
    with lock:
        jid = rnd.choice(native_jobs) if native_jobs else None
    if jid:
        expect("job status", request(port, "GET", "/api/v1/jobs/" + jid), (200,))
    expect("progress", request(port, "GET", "/sdapi/v1/progress"), (200,))


def events_then_leave(port, rnd):
    """Reads a little of a job's event stream, then hangs up."""
    with lock:
        jid = rnd.choice(native_jobs) if native_jobs else None
    if not jid:
        return
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("GET", "/api/v1/jobs/%s/events" % jid)
    r = c.getresponse()
    if r.status != 200:
        fail("events: %d" % r.status)
    r.readline()
    c.close()
    note("events left early")


def malformed(port, rnd):
    body = rnd.choice(['{"prompt": "x",', "[]", "nope", '{"prompt": "x", "width": "wide"}',
                       '{"prompt": "x", "steps": 100000}', '{"prompt": "x", "width": 4096}', '{"prompt": 3}'])
    path = rnd.choice(["/sdapi/v1/txt2img", "/api/v1/jobs", "/v1/images/generations"])
    got = request(port, "POST", path, body, {"Content-Type": "application/json"})
    expect("malformed", got, (400,))


def oversized(port, rnd):
    try:
        got = request(port, "POST", "/sdapi/v1/txt2img", '{"prompt": "%s"}' % ("x" * (MAX_BODY * 4)),
                      {"Content-Type": "application/json"})
        expect("oversized", got, (413,))
    except (ConnectionError, BrokenPipeError):
        note("oversized reset")  # the server answered 413 and closed while we were still sending


def wrong_method(port, rnd):
    method, path = rnd.choice([("GET", "/sdapi/v1/txt2img"), ("PUT", "/api/v1/jobs"), ("DELETE", "/v1/models"),
                               ("POST", "/sdapi/v1/progress"), ("PATCH", "/")])
    expect("wrong method", request(port, method, path, "{}" if method != "GET" else None), (405,))


def unknown_path(port, rnd):
    path = rnd.choice(["/nope", "/sdapi/v1/nope", "/api/v1/jobs/xyz", "/v1/chat/completions", "/..%2f..%2fetc"])
    expect("unknown path", request(port, "GET", path), (404,))


def disconnect(port, rnd):
    """Half a request, or a whole synchronous one, then gone."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    body = json.dumps(dict(VALID, steps=3)).encode()
    if rnd.random() < 0.5:
        s.sendall(b"POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(body), body[:len(body) // 2]))
    else:
        s.sendall(b"POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        time.sleep(rnd.random() * 0.5)
    s.close()
    note("disconnect")


ACTIONS = [(a1111, 3), (openai, 1), (native, 3), (status, 3), (events_then_leave, 1), (malformed, 3),
           (oversized, 1), (wrong_method, 2), (unknown_path, 2), (disconnect, 2)]


def client(port, seed, end):
    rnd = random.Random(seed)
    funcs = [f for f, w in ACTIONS for _ in range(w)]
    while time.time() < end:
        f = rnd.choice(funcs)
        try:
            f(port, rnd)
        except Exception as e:  # noqa: BLE001 - any other error is a failure of the server
            fail("%s: %s: %s" % (f.__name__, type(e).__name__, e))


def main():
    # Hundreds of connections a second open and close here; libmicrohttpd
    # frees a closed connection's slot a little later, so the limit is set
    # well above the 32 clients to keep refusals-by-limit out of the count.
    args = ["--max-queue", "4", "--max-body", str(MAX_BODY), "--history", "100000", "--max-connections", "1024"]
    redis, worker, tmp = None, None, None
    if os.environ.get("LEANDIFF_LOAD_REDIS") == "1":
        from queue_util import RedisServer, Worker, skip_without_queue
        skip_without_queue(BIN, "worker")
        tmp = tempfile.mkdtemp(prefix="leandiff-load-redis-")
        redis = RedisServer(tmp)
        redis.start()
        worker = Worker(BIN, "load", MODEL, redis.port, ["-t", "2"])
        args = ["--redis", redis.url(), "--redis-model", "koala-700m-tiny"] + args
        srv = Server(args)
        srv.start()
        check(wait_until(lambda: json.loads(request(srv.port, "GET", "/api/v1/status")[2]).get("serving"), 120),
              "the front-end does not see the worker")
    else:
        srv = Server(["-m", MODEL, "--threads", "2"] + args)
        srv.start()
    try:
        end = time.time() + SECONDS
        threads = [threading.Thread(target=client, args=(srv.port, i, end)) for i in range(CLIENTS)]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.time() - t0
        # Every accepted native job runs to the end.
        states = collections.Counter()
        for jid in native_jobs:
            j = wait_until(lambda: (lambda s, h, b: json.loads(b) if s == 200 and json.loads(b)["state"] in (
                "done", "failed", "cancelled") else None)(*request(srv.port, "GET", "/api/v1/jobs/" + jid)), 600, 0.1)
            states[j["state"] if j else "unfinished"] += 1
        check(set(states) <= {"done"}, "native jobs: %s" % dict(states))
        check(request(srv.port, "GET", "/v1/models")[0] == 200, "server still answers")
        # (with Redis a job whose client left ends when its worker has seen the cancel key)
        drained = wait_until(lambda: json.loads(request(srv.port, "GET", "/sdapi/v1/progress")[2])["state"][
            "job_count"] == 0, 120)
        check(drained, "queue drained: %s" % request(srv.port, "GET", "/sdapi/v1/progress")[2])
    finally:
        rc = srv.stop()
        if worker:
            worker.kill()
            redis.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    for k in sorted(counts):
        print("  %-24s %d" % (k, counts[k]))
    print("native jobs: %s; %d requests in %.0f s from %d clients" % (dict(states), sum(counts.values()), elapsed,
                                                                       CLIENTS))
    if failures:
        print("%d failures:" % len(failures))
        for f, n in collections.Counter(f[:120] for f in failures).most_common(20):
            print("  %5d  %s" % (n, f))
        print("server log (end):\n" + srv.stderr()[-3000:])
    check(not failures, "unexpected answers")
    check(counts["a1111 200"] + counts["native 202"] > 0, "some valid jobs were accepted")
    check(rc == 0, "server exit status %s (ASan report?)\n%s" % (rc, srv.stderr()[-4000:]))
    print("load test passed")


if __name__ == "__main__":
    main()
