"""Helpers for the tests of the Redis queue (`leandiff worker`, `leandiff
batch`): a redis-server on a free loopback port with its own data directory,
worker processes, and reference images from `leandiff generate`.

    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(tmp); redis.start()
        w = Worker(BIN, "w1", model, redis.port)
        ...
        redis.stop()
"""
import os
import shutil
import socket
import subprocess
import threading

from common import png_decode, skip, testdata_dir, wait_until
from resp import Resp, RespError

REDIS = shutil.which("redis-server")


def skip_without_queue(binary, command):
    """Exit 77 when redis-server is missing or leandiff was built without hiredis."""
    if not REDIS:
        skip("redis-server not installed (Debian package redis-server): the Redis queue is not tested")
    probe = subprocess.run([binary, command, "--help"], capture_output=True, text=True)
    if probe.returncode != 0 and "without hiredis" in probe.stderr:
        skip("leandiff was built without hiredis: " + probe.stderr.strip())


def queue_model(src):
    """The tiny KOALA model the queue tests run: its folder, its name and the
    jobs stream of that name (exit 77 when the test data is missing)."""
    model = os.path.join(testdata_dir(src), "models", "koala-700m-tiny")
    if not os.path.isdir(model):
        skip("model not found: " + model)
    name = os.path.basename(model)
    return model, name, "leandiff:jobs:" + name


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class RedisServer:
    def __init__(self, datadir):
        self.datadir = datadir
        self.proc = None
        self.port = None

    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self):
        for _ in range(5):  # the port may be taken between free_port() and the bind
            self.port = self.port or free_port()
            self.proc = subprocess.Popen([REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.datadir,
                                          "--save", "", "--appendonly", "yes", "--logfile", "redis.log"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            def up():
                try:
                    r = Resp(self.port)
                    ok = r.cmd("PING") == "PONG"
                    r.close()
                    return ok
                except (OSError, RespError):  # RespError: LOADING the append-only file
                    return False
            try:
                wait_until(lambda: up() or self.proc.poll() is not None, 20)
            except Exception:
                pass
            if self.proc.poll() is None and up():
                return
            self.proc.kill()
            self.proc.wait()
            self.port = None
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


class Worker:
    """`leandiff worker -t 1 --claim-after 2 --max-steps 1000` with its stderr collected."""

    def __init__(self, binary, name, model, port, extra=()):
        self.name = name
        self.lines = []
        self.proc = subprocess.Popen([binary, "worker", "-m", model, "--redis", "redis://127.0.0.1:%d/0" % port,
                                      "--name", name, "-t", "1", "--claim-after", "2", "--max-steps", "1000"]
                                     + list(extra), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def text(self):
        return "".join(self.lines)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class ReplyDropper:
    """A TCP proxy in front of Redis that loses one reply: the first command
    whose bytes contain `marker` reaches Redis and runs, then the connection
    is closed before its answer gets back, as when Redis goes away between
    running a command and answering it. Everything else passes through."""

    def __init__(self, port, marker):
        self.upstream, self.marker = port, marker
        self.fired = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            armed = threading.Event()
            threading.Thread(target=self._pump, args=(client, server, armed, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, armed, False), daemon=True).start()

    def _pump(self, src, dst, armed, to_redis):
        """Copies src to dst: toward Redis it arms the connection when the marked command passes (before Redis
        can answer it); back from Redis, once armed, it drops the answer and closes both sides."""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if to_redis and not self.fired.is_set() and self.marker in data:
                    armed.set()
                elif not to_redis and armed.is_set() and not self.fired.is_set():
                    self.fired.set()  # the command ran: its answer is lost
                    break
                dst.sendall(data)
        except OSError:
            pass
        self._close(src, dst)

    @staticmethod
    def _close(*socks):
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.listener.close()


def generate_ref(binary, model, params, seed, out):
    """The image `leandiff generate` makes with a job's parameters: png_decode's tuple."""
    cmd = [binary, "generate", "-m", model, "-p", params["prompt"], "-W", str(params["width"]), "-H",
           str(params["height"]), "--steps", str(params["steps"]), "-s", str(seed), "-t", "1", "-q", "-o", out]
    if "negative_prompt" in params:
        cmd += ["-n", params["negative_prompt"]]
    if "cfg_scale" in params:
        cmd += ["--cfg-scale", str(params["cfg_scale"])]
    if "sampler" in params:
        cmd += ["--sampler", params["sampler"]]
    if "schedule" in params:
        cmd += ["--schedule", params["schedule"]]
    if "init_image" in params:  # a file name
        cmd += ["--init-image", params["init_image"], "--strength", str(params.get("strength", 0.75))]
    if "mask" in params:
        cmd += ["--mask", params["mask"]]
    subprocess.run(cmd, check=True, capture_output=True, timeout=900)
    with open(out, "rb") as f:
        return png_decode(f.read())
