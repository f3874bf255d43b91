"""Helpers for the `leandiff serve` tests: start the server on a free
loopback port, talk to it with http.client (never through a proxy), decode
PNGs with zlib alone, and skip (exit 77) when something the test needs is
missing.

    with Server(["-m", model_dir]) as srv:
        status, headers, body = srv.request("GET", "/v1/models")
"""
import base64
import http.client
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib

SKIP = 77


def skip(msg):
    print("SKIP: " + msg)
    sys.exit(SKIP)


def env_paths():
    binary = os.environ.get("LEANDIFF_BIN")
    src = os.environ.get("LEANDIFF_SOURCE_DIR")
    build = os.environ.get("LEANDIFF_BUILD_DIR")
    if not binary or not src or not build:
        skip("LEANDIFF_BIN / LEANDIFF_SOURCE_DIR / LEANDIFF_BUILD_DIR not set (run through ctest)")
    return binary, src, build


def testdata_dir(src):
    """The one way the tests find the shared test data (README, Testing):
    $LEANDIFF_TESTDATA when set (a set but missing folder is an error, never a
    silent fallback), else <source>/../shared/testdata; skip when absent."""
    env = os.environ.get("LEANDIFF_TESTDATA")
    if env is not None:
        if not os.path.isdir(env):
            print("FAIL: LEANDIFF_TESTDATA=%r is not a folder (unset it to use ../shared/testdata)" % env)
            sys.exit(1)
        return env
    d = os.path.normpath(os.path.join(src, "..", "shared", "testdata"))
    if not os.path.isdir(d):
        skip("test data not found at " + d)
    return d


class Server:
    """A `leandiff serve` process on 127.0.0.1 and a port it picked itself."""

    def __init__(self, args, binary=None, env=None, startup_timeout=300):
        self.binary = binary or env_paths()[0]
        self.args = args
        self.env = dict(os.environ, **(env or {}))
        self.startup_timeout = startup_timeout
        self.proc = None
        self.port = None
        self.stderr_lines = []

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        cmd = [self.binary, "serve", "--host", "127.0.0.1", "--port", "0"] + self.args
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env, text=True)
        self._err_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._err_thread.start()
        line_holder = []
        t = threading.Thread(target=lambda: line_holder.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(self.startup_timeout)
        line = line_holder[0] if line_holder else ""
        if "listening on http://" not in line:
            self.proc.kill()
            self.proc.wait()
            self._err_thread.join(5)
            if "is not supported" in self.stderr():
                skip("the library cannot run this model yet: " + self.stderr().strip())
            raise RuntimeError("server did not start: %r\nstderr:\n%s" % (line, "".join(self.stderr_lines)))
        self.port = int(line.split("http://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def stop(self, timeout=120):
        """SIGTERM, then the exit status (0 expected: clean shutdown, no ASan report)."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("server did not stop within %d s" % timeout)
        self._err_thread.join(10)
        return self.proc.returncode

    def stderr(self):
        return "".join(self.stderr_lines)

    def conn(self, timeout=600):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=600):
        """One request on a fresh connection: (status, headers dict lower-case, body bytes)."""
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        c = self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def json(self, method, path, body=None, headers=None, expect=200, timeout=600):
        status, hdrs, data = self.request(method, path, body, headers, timeout)
        if status != expect:
            raise AssertionError("%s %s: expected %d, got %d: %s" % (method, path, expect, status, data[:500]))
        return json.loads(data)


def read_events(srv, path, on_event=None, timeout=600):
    """Reads an SSE stream to its end: list of (event, data dict)."""
    c = srv.conn(timeout)
    c.request("GET", path)
    r = c.getresponse()
    check(r.status == 200, "events: status %d" % r.status)
    check(r.getheader("Content-Type", "").startswith("text/event-stream"), "events: content type")
    events, ev, data = [], None, []
    while True:
        line = r.readline()
        if not line:
            break
        line = line.decode().rstrip("\n")
        if line.startswith(":"):
            continue
        if line.startswith("event: "):
            ev = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and ev:
            d = json.loads("\n".join(data))
            events.append((ev, d))
            if on_event:
                on_event(ev, d)
            ev, data = None, []
    c.close()
    return events


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


# ---- PNG decoding (8-bit RGB / RGBA, non-interlaced), stdlib only --------------------


def png_decode(data):
    """Returns (width, height, channels, pixel bytes, text chunks dict)."""
    check(data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG")
    pos, idat, texts = 8, b"", {}
    w = h = ctype = None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        check(zlib.crc32(kind + chunk) == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0], "bad CRC")
        pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            check(depth == 8 and ctype in (2, 6) and interlace == 0, "unsupported PNG format")
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"tEXt":
            k, v = chunk.split(b"\0", 1)
            texts[k.decode("latin-1")] = v.decode("latin-1")
        elif kind == b"iTXt":
            k, rest = chunk.split(b"\0", 1)
            # compression flag, method, language\0, translated keyword\0, text
            flag = rest[0]
            rest = rest[2:]
            _, rest = rest.split(b"\0", 1)
            _, text = rest.split(b"\0", 1)
            texts[k.decode("latin-1")] = (zlib.decompress(text) if flag else text).decode("utf-8")
        elif kind == b"zTXt":
            k, rest = chunk.split(b"\0", 1)
            texts[k.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        elif kind == b"IEND":
            break
    ch = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * ch
    out = bytearray(h * stride)
    prev = bytearray(stride)
    p = 0
    for y in range(h):
        f = raw[p]
        line = bytearray(raw[p + 1:p + 1 + stride])
        p += 1 + stride
        for x in range(stride):
            a = line[x - ch] if x >= ch else 0
            b = prev[x]
            c = prev[x - ch] if x >= ch else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + ((a + b) >> 1)) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pr) & 255
        out[y * stride:(y + 1) * stride] = line
        prev = line
    return w, h, ch, bytes(out), texts


def b64png(s):
    return png_decode(base64.b64decode(s))


def wait_until(fn, timeout, interval=0.05):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    return None
