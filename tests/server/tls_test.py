"""rediss:// end to end: a redis-server speaking only TLS (its own CA, a
server certificate for IP 127.0.0.1, client certificates required, as Redis
does by default, and a password) on a free loopback port, one `leandiff worker` and a
`leandiff batch` connected with `rediss://:PASSWORD@...?cacert=&cert=&key=`
(AUTH inside the TLS connection):

- the batch's images equal `leandiff generate` pixel for pixel, so the jobs
  and results crossed the TLS relay intact;
- a server certificate from another CA, a host name the certificate does not
  name, a CA file that does not exist and a client key of another
  certificate are each refused at once with a message naming the problem;
- TLS options on a redis:// URL, or cert without key, are refused by the parser.

Run by tests/test_redis_tls.sh (ctest); exit 77 without redis-server,
hiredis, the openssl command or the test model.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import check, env_paths, png_decode, skip, wait_until  # noqa: E402
from queue_util import REDIS, free_port, generate_ref, queue_model, skip_without_queue  # noqa: E402

BIN, SRC, BUILD = env_paths()
skip_without_queue(BIN, "worker")
OPENSSL = shutil.which("openssl")
if not OPENSSL:
    skip("the openssl command is not installed (Debian package openssl): no certificates for the test")
MODEL, NAME, STREAM = queue_model(SRC)


def log(msg):
    print(msg, flush=True)


def ssl(*args, cwd):
    subprocess.run([OPENSSL] + list(args), cwd=cwd, check=True, capture_output=True, timeout=120)


def make_ca(d, name):
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".pem", "-days", "2",
        "-subj", "/CN=leandiff test " + name, cwd=d)


def make_cert(d, name, ca, san):
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr", "-subj",
        "/CN=" + name, cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("subjectAltName=%s\n" % san if san else "basicConstraints=CA:FALSE\n")
    ssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key", "-CAcreateserial", "-out",
        name + ".pem", "-days", "2", "-extfile", name + ".ext", cwd=d)


def tls_url(port, d, host="127.0.0.1", ca="ca", cert="client", key="client"):
    q = ["cacert=" + os.path.join(d, ca + ".pem")]
    if cert:
        q += ["cert=" + os.path.join(d, cert + ".pem"), "key=" + os.path.join(d, key + ".key")]
    return "rediss://:tls%%20secret@%s:%d/0?%s" % (host, port, "&".join(q))


def start_redis(d):
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen([REDIS, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--dir", d,
                                 "--save", "", "--appendonly", "no", "--logfile", "redis.log",
                                 "--requirepass", "tls secret",
                                 "--tls-cert-file", os.path.join(d, "server.pem"),
                                 "--tls-key-file", os.path.join(d, "server.key"),
                                 "--tls-ca-cert-file", os.path.join(d, "ca.pem"), "--tls-auth-clients", "yes"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def listening():
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                return True
            except OSError:
                return False
        wait_until(lambda: listening() or proc.poll() is not None, 20)
        if proc.poll() is None and listening():
            return proc, port
        proc.kill()
        proc.wait()
    with open(os.path.join(d, "redis.log")) as f:
        log(f.read()[-2000:])
    raise RuntimeError("redis-server with TLS did not start")


def refused(url, want, what):
    """`leandiff batch` with url stops at once (exit 1 or 2) with `want` in its message."""
    p = subprocess.run([BIN, "batch", os.devnull, "-o", os.devnull, "--redis", url], capture_output=True, text=True,
                       timeout=60)
    check(p.returncode in (1, 2) and want in p.stderr, "%s: expected a refusal with %r, got exit %d: %s"
          % (what, want, p.returncode, p.stderr))


def main():
    d = tempfile.mkdtemp(prefix="leandiff-tls-test-")
    redis = worker = None
    try:
        make_ca(d, "ca")
        make_ca(d, "other")
        make_cert(d, "server", "ca", "IP:127.0.0.1")
        make_cert(d, "client", "ca", None)
        make_cert(d, "stranger", "other", None)
        redis, port = start_redis(d)
        log("redis-server on TLS port %d (client certificates required)" % port)

        lines = []
        worker = subprocess.Popen([BIN, "worker", "-m", MODEL, "--redis", tls_url(port, d), "--name", "tls1", "-t", "1",
                                   "--claim-after", "2", "--max-steps", "400"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=lambda: lines.extend(worker.stderr), daemon=True).start()

        prompts = ["a koala behind glass", "a koala with a padlock", "a koala on a secure line"]
        path = os.path.join(d, "prompts.txt")
        with open(path, "w") as f:
            f.write("\n".join(prompts) + "\n")
        out = os.path.join(d, "out")
        p = subprocess.run([BIN, "batch", path, "-o", out, "-m", NAME, "-W", "64", "-H", "64", "--steps", "2",
                            "--seed", "7", "--redis", tls_url(port, d)], capture_output=True, text=True, timeout=900)
        check(p.returncode == 0, "batch over TLS: exit %d:\n%s\nworker:\n%s" % (p.returncode, p.stderr, "".join(lines)))
        for i, prompt in enumerate(prompts):
            with open(os.path.join(out, "%05d.png" % (i + 1)), "rb") as f:
                got = png_decode(f.read())
            params = {"prompt": prompt, "width": 64, "height": 64, "steps": 2}
            ref = generate_ref(BIN, MODEL, params, 7, os.path.join(d, "ref.png"))
            check(got[:4] == ref[:4], "image %d over TLS differs from leandiff generate" % (i + 1))
        log("ok: %d jobs through a worker and a batch on rediss://, images equal leandiff generate" % len(prompts))

        refused(tls_url(port, d, ca="other"), "certificate was refused", "server certificate of another CA")
        refused(tls_url(port, d, host="localhost"), "certificate was refused", "host name not in the certificate")
        refused(tls_url(port, d, ca="missing"), "cannot read the CA certificates", "missing CA file")
        refused(tls_url(port, d, key="stranger"), "cannot use the client key", "client key of another certificate")
        refused("redis://127.0.0.1:%d/0?cacert=%s" % (port, os.path.join(d, "ca.pem")), "use rediss://",
                "TLS option on redis://")
        refused("rediss://127.0.0.1:%d/0?cert=%s" % (port, os.path.join(d, "client.pem")), "go together",
                "cert without key")
        log("ok: wrong CA, wrong host name, missing CA file, mismatched key and misplaced options refused by name")
    finally:
        if worker and worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
        if redis and redis.poll() is None:
            redis.terminate()
            redis.wait(30)
        shutil.rmtree(d, ignore_errors=True)
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
