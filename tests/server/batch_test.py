"""`leandiff batch` on a real Redis (redis-server started here on a free
loopback port with its own data directory) with one worker on the tiny
KOALA model of ../shared/testdata:

- a file of prompt lines and JSONL lines (per-job seeds and fields) gives one
  PNG per line, each equal to `leandiff generate` with the same parameters
  pixel for pixel;
- a rerun submits nothing; a deleted image is written again from the stored
  result;
- a batch killed with SIGKILL half-way and run again submits no job twice
  (the stream's entries-added counter) and ends with every image;
- bad lines (broken JSON, unknown field, absurd size) are named by line and
  nothing is submitted (or the others are, with --skip-bad); a job the worker
  refuses makes the exit status 1; SIGINT stops a batch whose model has no
  worker, leaving its jobs queued.

Run by tests/test_batch_redis.sh (ctest); exit 77 when redis-server, hiredis
or the model is missing.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import check, env_paths, png_decode, wait_until  # noqa: E402
from queue_util import RedisServer, Worker, generate_ref, queue_model, skip_without_queue  # noqa: E402
from resp import Resp, RespError  # noqa: E402

BIN, SRC, BUILD = env_paths()
skip_without_queue(BIN, "batch")
MODEL, NAME, STREAM = queue_model(SRC)
DEFAULTS = ["-W", "64", "-H", "64", "--steps", "2", "--seed", "7"]
MAX_SIZE = 128  # the worker's --max-size; the batch checks against 1024, so a 256 px line fails in the worker


def log(msg):
    print(msg, flush=True)


def entries_added(r, stream=STREAM):
    """XADDs ever made to the stream (the worker deletes finished entries, so XLEN would not tell)."""
    try:
        info = r.cmd("XINFO", "STREAM", stream)
    except RespError:
        return 0  # no stream yet
    return dict(zip(info[0::2], info[1::2]))[b"entries-added"]


def write_lines(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


class Batch:
    def __init__(self, url, args):
        self.cmd = [BIN, "batch"] + args + ["--redis", url]

    def run(self, timeout=900):
        p = subprocess.run(self.cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr


def expected_files(lines):
    """{line number: job params with the defaults} for the job lines of a batch file."""
    jobs, n = {}, 0
    for text in lines:
        n += 1
        s = text.strip()
        if not s or s.startswith("#"):
            continue
        p = json.loads(s) if s.startswith("{") else {"prompt": s}
        for k, v in (("width", 64), ("height", 64), ("steps", 2), ("seed", 7)):
            p.setdefault(k, v)
        jobs[n] = p
    return jobs


def image_names(out, line, count):
    return [os.path.join(out, "%05d.png" % line if i == 0 else "%05d-%d.png" % (line, i)) for i in range(count)]


def test_images(tmp, url, r):
    lines = ["# koalas for the batch test", "a koala reading a newspaper", "", "a koala on a bicycle",
             "  a koala in the snow  ", "a koala astronaut",
             json.dumps({"prompt": "a koala chef", "seed": 11, "negative_prompt": "blurry", "steps": 3}),
             json.dumps({"prompt": "a koala painter", "seed": 12, "sampler": "euler_a", "cfg_scale": 4.0, "n": 2})]
    path = os.path.join(tmp, "mixed.txt")
    write_lines(path, lines)
    out = os.path.join(tmp, "out1")
    jobs = expected_files(lines)
    before = entries_added(r)
    b = Batch(url, [path, "-o", out] + DEFAULTS)  # no --model: the one model the running worker serves
    rc, stdout, stderr = b.run()
    check(rc == 0, "batch exit %d:\n%s" % (rc, stderr))
    check(entries_added(r) - before == len(jobs), "expected %d submissions:\n%s" % (len(jobs), stderr))
    check("batch %d/%d done" % (len(jobs), len(jobs)) in stderr, "no final progress line:\n" + stderr)
    for line, params in jobs.items():
        for i, name in enumerate(image_names(out, line, params.get("n", 1))):
            check("%s: line %d, seed %d" % (name, line, params["seed"] + i) in stdout, "stdout lacks %s:\n%s"
                  % (name, stdout))
            with open(name, "rb") as f:
                got = png_decode(f.read())
            ref = generate_ref(BIN, MODEL, params, params["seed"] + i, os.path.join(tmp, "ref.png"))
            check(got[:4] == ref[:4], "%s differs from leandiff generate with %r" % (name, params))
    n_files = len(os.listdir(out))
    check(n_files == 7, "expected 7 images in %s, found %d" % (out, n_files))
    log("ok: %d lines (prompts and JSONL), every image equals leandiff generate pixel for pixel" % len(jobs))

    # rerun: nothing submitted, nothing written
    added = entries_added(r)
    rc, stdout, stderr = b.run()
    check(rc == 0 and stdout == "" and entries_added(r) == added, "rerun: exit %d, stdout %r\n%s" % (rc, stdout, stderr))
    check("%d with their images" % len(jobs) in stderr, "rerun should skip every line:\n" + stderr)
    # a deleted image comes back from the stored result, without running the job again
    victim = image_names(out, 4, 1)[0]
    with open(victim, "rb") as f:
        old = f.read()
    os.unlink(victim)
    rc, stdout, stderr = b.run()
    check(rc == 0 and entries_added(r) == added and "1 already stored" in stderr, "image rewrite:\n" + stderr)
    with open(victim, "rb") as f:
        check(f.read() == old, "the rewritten image differs")
    log("ok: a rerun submits nothing; a deleted image is written again from the stored result")


def test_interrupted(tmp, url, r):
    lines = ["a slow koala number %d" % i for i in range(6)]
    path = os.path.join(tmp, "slow.txt")
    write_lines(path, lines)
    out = os.path.join(tmp, "out2")
    args = [path, "-o", out, "-m", NAME, "-W", "64", "-H", "64", "--steps", "150", "--seed", "3"]
    b = Batch(url, args)
    before = entries_added(r)
    proc = subprocess.Popen(b.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    names = [os.path.join(out, "%05d.png" % (i + 1)) for i in range(len(lines))]
    check(wait_until(lambda: any(os.path.exists(n) for n in names) or proc.poll() is not None, 600),
          "no image within 600 s")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    have = sum(os.path.exists(n) for n in names)
    check(0 < have < len(lines), "kill half-way: %d of %d images already there (make the jobs longer)"
          % (have, len(lines)))
    log("killed the batch with %d of %d images written" % (have, len(lines)))
    rc, stdout, stderr = b.run()
    check(rc == 0, "rerun after the kill: exit %d:\n%s" % (rc, stderr))
    check(" 0 submitted" in stderr, "the rerun submitted jobs again:\n" + stderr)
    check(entries_added(r) - before == len(lines), "%d submissions for %d lines"
          % (entries_added(r) - before, len(lines)))
    check(all(os.path.exists(n) for n in names), "images missing after the rerun")
    log("ok: a batch killed half-way and run again submits nothing twice and ends with every image")


def test_bad_lines(tmp, url, r):
    lines = [json.dumps({"prompt": "a good koala", "seed": 21}),
             '{"prompt": "a broken koala", "seed": ',
             json.dumps({"prompt": "a koala", "colour": "grey"}),
             json.dumps({"prompt": "a huge koala", "width": 100000}),
             "a plain koala"]
    path = os.path.join(tmp, "bad.jsonl")
    write_lines(path, lines)
    out = os.path.join(tmp, "out3")
    before = entries_added(r)
    rc, stdout, stderr = Batch(url, [path, "-o", out] + DEFAULTS).run()
    check(rc == 1, "bad lines: exit %d:\n%s" % (rc, stderr))
    for n, want in ((2, "invalid JSON"), (3, "unknown field 'colour'"), (4, "width must be between 8 and 1024")):
        check("bad.jsonl:%d: %s" % (n, want) in stderr, "line %d not reported as %r:\n%s" % (n, want, stderr))
    check("nothing submitted" in stderr and entries_added(r) == before and not os.path.exists(out),
          "bad lines must stop the whole batch:\n" + stderr)
    rc, stdout, stderr = Batch(url, [path, "-o", out, "--skip-bad"] + DEFAULTS).run()
    check(rc == 1 and "3 bad lines skipped" in stderr, "--skip-bad: exit %d:\n%s" % (rc, stderr))
    check(sorted(os.listdir(out)) == ["00001.png", "00005.png"], "--skip-bad images: %r" % os.listdir(out))
    check(entries_added(r) - before == 2, "--skip-bad must submit the 2 good lines")
    log("ok: bad lines are named by line; nothing is submitted, or only the good lines with --skip-bad")

    # a line the batch accepts but the worker refuses (its --max-size is smaller): exit 1, the others written
    path = os.path.join(tmp, "refused.txt")
    write_lines(path, ["a small koala", json.dumps({"prompt": "a big koala", "width": 256, "height": 256})])
    out = os.path.join(tmp, "out4")
    rc, stdout, stderr = Batch(url, [path, "-o", out] + DEFAULTS).run()
    check(rc == 1 and "refused.txt:2: job batch-2-" in stderr and "failed: width must be between 8 and %d" % MAX_SIZE
          in stderr, "refused job: exit %d:\n%s" % (rc, stderr))
    check(os.listdir(out) == ["00001.png"], "refused job images: %r" % os.listdir(out))
    log("ok: a job the worker refuses is reported with its line and the exit status is 1")


def test_usage_and_no_worker(tmp, url, r):
    path = os.path.join(tmp, "few.txt")
    write_lines(path, ["a waiting koala", "another waiting koala"])
    p = subprocess.run([BIN, "batch", path], capture_output=True, text=True)
    check(p.returncode == 2 and "--redis" in p.stderr, "missing --redis: %d %s" % (p.returncode, p.stderr))
    p = subprocess.run([BIN, "batch", path, "--redis", url, "-W", "100"], capture_output=True, text=True)
    check(p.returncode == 2 and "width must be a multiple of 8" in p.stderr, "bad default: %s" % p.stderr)
    # a model no worker serves: its jobs wait; SIGINT stops the batch and leaves them queued
    other = os.path.join(tmp, "models", "other-model")  # a path: its last component names the stream
    proc = subprocess.Popen([BIN, "batch", path, "--redis", url, "-m", other, "-o", os.path.join(tmp, "out5")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = []
    t = threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True)
    t.start()
    check(wait_until(lambda: any(" submitted" in l for l in err), 120), "no submission line:\n" + "".join(err))
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(60)
    t.join(10)
    text = "".join(err)
    check(rc == 1 and "no worker is serving other-model" in text and "interrupted; 2 jobs" in text,
          "SIGINT: exit %d:\n%s" % (rc, text))
    check(r.cmd("XLEN", "leandiff:jobs:other-model") == 2, "the jobs must stay queued")
    log("ok: usage errors; a model without a worker warns, SIGINT leaves its jobs queued")


def main():
    tmp = tempfile.mkdtemp(prefix="leandiff-batch-test-")
    redis = RedisServer(tmp)
    worker = None
    try:
        redis.start()
        r = Resp(redis.port)
        url = redis.url()
        # no worker yet: the model cannot be guessed
        write_lines(os.path.join(tmp, "one.txt"), ["a koala"])
        rc, _, stderr = Batch(url, [os.path.join(tmp, "one.txt")]).run()
        check(rc == 1 and "no worker is running" in stderr, "no worker, no --model: %d %s" % (rc, stderr))

        worker = Worker(BIN, "w1", MODEL, redis.port, ["--max-size", str(MAX_SIZE)])
        check(wait_until(lambda: r.cmd("EXISTS", "leandiff:worker:w1") == 1 or worker.proc.poll() is not None, 300)
              and worker.proc.poll() is None, "the worker did not start:\n" + worker.text())
        beat = json.loads(r.cmd("GET", "leandiff:worker:w1"))
        check(beat["model"] == NAME and beat["family"] == "sdxl", "heartbeat %r" % beat)

        test_images(tmp, url, r)
        test_interrupted(tmp, url, r)
        test_bad_lines(tmp, url, r)
        test_usage_and_no_worker(tmp, url, r)

        # every job the worker took was stored once
        stored = [l.split()[4] for l in worker.lines if " stored (" in l]
        check(len(stored) == len(set(stored)), "a job was stored twice:\n" + worker.text())
        worker.proc.send_signal(signal.SIGTERM)
        check(worker.proc.wait(120) == 0, "worker exit status on SIGTERM:\n" + worker.text())
        r.close()
    finally:
        if worker:
            worker.kill()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
