"""`leandiff serve` meets its clients and survives slow ones (issue #16, point 6;
issue #17, the 413): POST /sdapi/v1/options, the loras / upscalers / sd-vae
lists, enable_hr refused, sd-models without the path on disk, --cors-origin
(preflight and headers; other origins still refused), the access log (one line
per request, never the key or the body), a 64 MiB body from urllib reads the
413 instead of a reset, and a normal request is served within a few seconds
while 300 idle sockets are open (the per-address limit and the header timeout)."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from common import Server, check, env_paths, testdata_dir  # noqa: E402

BIN, SRC, BUILD = env_paths()
MODEL = os.path.join(testdata_dir(SRC), "models", "koala-700m-tiny")
KEY = "secret-key-123"
AUTH = {"Authorization": "Bearer " + KEY}


def a1111_routes(srv, lora_dir):
    d = srv.json("POST", "/sdapi/v1/options", {"sd_model_checkpoint": "koala-700m-tiny", "CLIP_stop_at_last_layers": 2},
                 headers=AUTH)
    check(d == {"applied": ["sd_model_checkpoint"], "ignored": ["CLIP_stop_at_last_layers"]}, "options: %s" % d)
    st, _, body = srv.request("POST", "/sdapi/v1/options", {"sd_model_checkpoint": "sdxl-base"}, headers=AUTH)
    check(st == 400 and b"one model" in body, "another checkpoint refused: %d %s" % (st, body))
    st, _, body = srv.request("POST", "/sdapi/v1/options", "[1]", headers=dict(AUTH, **{"Content-Type": "application/json"}))
    check(st == 400, "options must be an object: %d" % st)
    loras = srv.json("GET", "/sdapi/v1/loras", headers=AUTH)
    check([x["name"] for x in loras] == ["style"] and loras[0]["path"] == "style.safetensors",
          "loras of --lora-dir by name: %s" % loras)
    check(srv.json("GET", "/sdapi/v1/upscalers", headers=AUTH) == [], "upscalers: empty list")
    check(srv.json("GET", "/sdapi/v1/sd-vae", headers=AUTH) == [], "sd-vae: empty list")
    models = srv.json("GET", "/sdapi/v1/sd-models", headers=AUTH)
    check(models[0]["filename"] == "koala-700m-tiny" and "/" not in json.dumps(models[0]["filename"]),
          "sd-models without the path on disk: %s" % models)
    st, _, body = srv.request("POST", "/sdapi/v1/txt2img", {"prompt": "a koala", "enable_hr": True, "steps": 1},
                              headers=AUTH)
    check(st == 400 and json.loads(body).get("field") == "enable_hr", "enable_hr refused: %d %s" % (st, body))
    print("ok   options, loras, upscalers, sd-vae, sd-models, enable_hr")


def cors(srv):
    origin = "https://app.example.com"
    st, h, _ = srv.request("OPTIONS", "/sdapi/v1/txt2img",
                           headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                    "Access-Control-Request-Headers": "authorization, content-type"})
    check(st == 204 and h.get("access-control-allow-origin") == origin
          and "POST" in h.get("access-control-allow-methods", "")
          and "authorization" in h.get("access-control-allow-headers", "").lower(),
          "preflight from an allowed origin: %d %s" % (st, h))
    st, h, _ = srv.request("GET", "/sdapi/v1/samplers", headers=dict(AUTH, Origin=origin))
    check(st == 200 and h.get("access-control-allow-origin") == origin, "CORS header on answers: %d %s" % (st, h))
    st, h, _ = srv.request("GET", "/sdapi/v1/samplers", headers=dict(AUTH, Origin="https://evil.example"))
    check(st == 403 and "access-control-allow-origin" not in h, "other origins refused: %d %s" % (st, h))
    st, h, _ = srv.request("GET", "/sdapi/v1/samplers", headers=dict(Origin=origin))
    check(st == 401, "the key is still needed from an allowed origin: %d" % st)
    print("ok   --cors-origin: preflight 204, headers, other origins 403, key still required")


def big_body(srv):
    """64 MiB from urllib (no Expect: 100-continue): the 413 is read, not a reset."""
    data = b"x" * (64 << 20)
    req = urllib.request.Request("http://127.0.0.1:%d/sdapi/v1/txt2img" % srv.port, data=data,
                                 headers=dict(AUTH, **{"Content-Type": "application/json"}), method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    t0 = time.time()
    try:
        opener.open(req, timeout=120)
        check(False, "a 64 MiB body was accepted")
    except urllib.error.HTTPError as e:
        body = e.read()
        check(e.code == 413 and b"too large" in body, "413 read by urllib: %d %s" % (e.code, body[:200]))
    except (ConnectionError, OSError) as e:
        check(False, "the client saw %r instead of the 413" % e)
    print("ok   a 64 MiB body from urllib reads the 413 (%.1f s)" % (time.time() - t0))
    # the server still works
    check(srv.request("GET", "/sdapi/v1/samplers", headers=AUTH)[0] == 200, "served after the big body")


def idle_sockets(srv, n=300):
    """n idle sockets from 127.0.0.1 (no request sent); a client of another
    address (127.0.0.2) is served within a few seconds."""
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", srv.port))
        except OSError:
            s.close()
            continue
        socks.append(s)
    time.sleep(0.5)
    t0 = time.time()
    c = socket.create_connection(("127.0.0.1", srv.port), timeout=10, source_address=("127.0.0.2", 0))
    c.sendall(("GET /sdapi/v1/samplers HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
               "Connection: close\r\n\r\n" % KEY).encode())
    reply = b""
    try:
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            reply += chunk
    except (socket.timeout, ConnectionError):
        pass
    c.close()
    dt = time.time() - t0
    check(reply.startswith(b"HTTP/1.1 200") and dt < 5,
          "served within a few seconds beside %d idle sockets: %.2f s, %r" % (len(socks), dt, reply[:60]))
    # the idle ones are closed by the header timeout (2 s here) or refused over the per-address limit
    time.sleep(3.5)
    closed = 0
    for s in socks:
        try:
            s.settimeout(0.2)
            closed += s.recv(1) == b""
        except (socket.timeout, BlockingIOError):
            pass
        except OSError:
            closed += 1
        s.close()
    check(closed == len(socks), "every idle socket closed after the header timeout: %d of %d" % (closed, len(socks)))
    print("ok   %d idle sockets: another address served in %.2f s; all closed after the header timeout" %
          (len(socks), dt))


def access_log(srv):
    c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    c.sendall(b"GET /nothing%0aFORGED%1b HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    try:
        while c.recv(65536):
            pass
    except (socket.timeout, ConnectionError):
        pass
    c.close()
    time.sleep(0.3)
    err = srv.stderr()
    lines = [l for l in err.splitlines() if '"GET /sdapi/v1/samplers"' in l or '"POST /sdapi/v1/options"' in l]
    check(any(" 200 " in l and l.endswith(" ms") for l in lines), "access log lines: %s" % lines[:3])
    check(any('"POST /sdapi/v1/txt2img" 413' in l for l in err.splitlines()), "the 413 is logged")
    check(KEY not in err and "xxxxxxxx" not in err and "a koala" not in err,
          "the key, bodies and prompts are not logged")
    check('"GET /nothing?FORGED?" 404' in err and "\nFORGED" not in err,
          "a path cannot forge a log line: %s" % [l for l in err.splitlines() if "FORGED" in l])
    print("ok   access log: method, path, status, bytes, ms; no key, no body")


def bad_flags():
    """A --cors-origin that is not an origin as browsers send it is refused up front."""
    for bad in ["app.example.com", "https://app.example.com/", "https://a b"]:
        p = subprocess.run([BIN, "serve", "-m", MODEL, "--port", "0", "--cors-origin", bad], capture_output=True,
                           text=True, timeout=60)
        check(p.returncode == 2 and "--cors-origin" in p.stderr and "scheme://host" in p.stderr,
              "--cors-origin %r refused: %d %s" % (bad, p.returncode, p.stderr.strip()))
    print("ok   malformed --cors-origin refused")


def main():
    bad_flags()
    with tempfile.TemporaryDirectory() as tmp:
        lora_dir = os.path.join(tmp, "loras")
        os.mkdir(lora_dir)
        open(os.path.join(lora_dir, "style.safetensors"), "wb").close()
        open(os.path.join(lora_dir, "notes.txt"), "w").close()
        args = ["-m", MODEL, "--api-key", KEY, "--lora-dir", lora_dir, "--cors-origin", "https://app.example.com",
                "--header-timeout", "2", "--per-ip-limit", "32"]
        with Server(args) as srv:
            a1111_routes(srv, lora_dir)
            cors(srv)
            big_body(srv)
            idle_sockets(srv)
            access_log(srv)
            check(srv.stop() == 0, "clean shutdown")
        # --quiet: no access log
        with Server(["-m", MODEL, "--quiet"]) as srv:
            srv.request("GET", "/sdapi/v1/samplers")
            check(srv.stop() == 0 and '"GET /sdapi/v1/samplers"' not in srv.stderr(), "--quiet silences the log")
    print("ok   --quiet")


if __name__ == "__main__":
    main()
