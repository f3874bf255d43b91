"""Cancel inside a step through the server (issue 16, point 2): on a random
tiny KOALA model (init-random), a one-step 2048x2048 job whose single U-Net
call takes many seconds is stopped by DELETE /api/v1/jobs/{id}, and another
by POST /sdapi/v1/interrupt, within seconds (under 10 even on a loaded
machine), not at the end of the step (~50 s);
the jobs end "cancelled" with no image, and the server then runs a normal job.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Server, check, env_paths, wait_until  # noqa: E402

BIN, SRC, BUILD = env_paths()
TMP = os.path.join(BUILD, "test-tmp", "server_cancel")
MODEL = os.path.join(TMP, "tiny")
BIG = {"prompt": "a koala", "steps": 1, "width": 2048, "height": 2048}


def log(msg):
    print(msg, flush=True)


def running(srv, jid):
    j = srv.json("GET", "/api/v1/jobs/" + jid)
    return j if j["state"] == "running" else None


def stop_and_time(srv, how):
    jid = srv.json("POST", "/api/v1/jobs", BIG, expect=202)["id"]
    check(wait_until(lambda: running(srv, jid), 60), "the job did not start")
    time.sleep(1.0)  # inside the first (and only) U-Net call by now
    t0 = time.time()
    if how == "DELETE":
        srv.json("DELETE", "/api/v1/jobs/" + jid)
    else:
        check(srv.json("POST", "/sdapi/v1/interrupt", {})["interrupted"] is True, "interrupt answered false")
    j = wait_until(lambda: (lambda x: x if x["state"] != "running" else None)(
        srv.json("GET", "/api/v1/jobs/" + jid)), 60)
    secs = time.time() - t0
    check(j and j["state"] == "cancelled", "%s: job state %s" % (how, j and j["state"]))
    check(secs < 10, "%s: the job stopped %.1f s after the request (the step takes ~50 s)" % (how, secs))
    check(srv.request("GET", "/api/v1/jobs/%s/image" % jid)[0] == 409, "%s: a cancelled job has no image" % how)
    log("%s: running job stopped %.2f s after the request (%s)" % (how, secs, j["error"]))


def main():
    os.makedirs(TMP, exist_ok=True)
    subprocess.run(["rm", "-rf", MODEL], check=True)
    subprocess.run([BIN, "init-random", "--pipeline", "tiny", "--out", MODEL], check=True, stdout=subprocess.DEVNULL)
    with Server(["-m", MODEL, "--max-size", "2048"]) as srv:
        stop_and_time(srv, "DELETE")
        stop_and_time(srv, "interrupt")
        j = srv.json("POST", "/api/v1/jobs", {"prompt": "after", "steps": 2, "width": 64, "height": 64}, expect=202)
        done = wait_until(lambda: (lambda x: x if x["state"] in ("done", "failed", "cancelled") else None)(
            srv.json("GET", "/api/v1/jobs/" + j["id"])), 120)
        check(done and done["state"] == "done", "a normal job after the cancels: %s" % (done and done["state"]))
        log("a normal job after the cancels: done")
    log("ok")


if __name__ == "__main__":
    main()
