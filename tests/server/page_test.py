"""End-to-end test of the page of `leandiff serve` in headless Chromium,
driven through the DevTools protocol over --remote-debugging-pipe (python3
stdlib only): on a phone-sized screen it types a prompt, sets size, steps and
seed, taps Generate, sees the progress bar take values between 0 and 1, sees
the image appear with its parameters and in the gallery, and saves
screenshots (phone and desktop) under the build directory. With --api-key,
the page asks for the key and then works.

Run by tests/test_server_page.sh; exit 77 when /usr/bin/chromium or the
model is missing.
"""
import fcntl
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Server, check, env_paths, png_decode, skip, testdata_dir  # noqa: E402

CHROMIUM = os.environ.get("LEANDIFF_CHROMIUM", "/usr/bin/chromium")
BIN, SRC, BUILD = env_paths()
if not os.path.exists(CHROMIUM):
    skip(CHROMIUM + " not found (apt-get install chromium)")
MODEL = os.path.join(testdata_dir(SRC), "models", "koala-700m-tiny")
if not os.path.isdir(MODEL):
    skip("model not found: " + MODEL)

PROMPT = "a koala reading a newspaper"
SIZE, STEPS, SEED = 64, 6, 1234


class Browser:
    """Chromium with the DevTools protocol on fds 3 (commands) and 4 (answers), NUL-separated JSON."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="ld-chromium-")
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        # Move Chromium's ends above 4 so the redirections below cannot clobber them.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome_r, from_chrome_w)]
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        to_chrome_r, from_chrome_w = high
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-proxy-server", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
                 "--user-data-dir=" + self.profile, "--remote-debugging-pipe", "about:blank"]
        # bash puts the two pipe ends on fds 3 and 4, where Chromium expects them.
        shell = 'exec "$0" "$@" 3<&%d 4>&%d %d<&- %d>&-' % (to_chrome_r, from_chrome_w, to_chrome_r, from_chrome_w)
        self.proc = subprocess.Popen(["bash", "-c", shell, CHROMIUM] + flags, pass_fds=(to_chrome_r, from_chrome_w),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.next_id = 0
        self.answers = {}
        self.events = queue.Queue()
        self.cv = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.session = None

    def _read(self):
        buf = b""
        while True:
            try:
                data = os.read(self.from_chrome, 65536)
            except OSError:
                data = b""
            if not data:
                with self.cv:
                    self.answers[-1] = None
                    self.cv.notify_all()
                return
            buf += data
            while b"\0" in buf:
                msg, buf = buf.split(b"\0", 1)
                m = json.loads(msg)
                if "id" in m:
                    with self.cv:
                        self.answers[m["id"]] = m
                        self.cv.notify_all()
                else:
                    self.events.put(m)

    def send(self, method, params=None, session=True, timeout=60):
        self.next_id += 1
        i = self.next_id
        m = {"id": i, "method": method, "params": params or {}}
        if session and self.session:
            m["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(m).encode() + b"\0")
        end = time.time() + timeout
        with self.cv:
            while i not in self.answers:
                if -1 in self.answers:
                    raise RuntimeError("chromium exited")
                left = end - time.time()
                check(left > 0, "no answer to " + method)
                self.cv.wait(left)
            a = self.answers.pop(i)
        if "error" in a:
            raise RuntimeError("%s: %s" % (method, a["error"]))
        return a.get("result", {})

    def wait_event(self, name, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            try:
                e = self.events.get(timeout=max(0.01, end - time.time()))
            except queue.Empty:
                break
            if e.get("method") == name:
                return e
        raise AssertionError("no %s event" % name)

    def eval(self, expr):
        r = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError("JS error in %r: %s" % (expr, r["exceptionDetails"]))
        return r["result"].get("value")

    def open_page(self, url):
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.phone()
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def phone(self):
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
        self.send("Emulation.setTouchEmulationEnabled", {"enabled": True})

    def desktop(self):
        self.send("Emulation.setTouchEmulationEnabled", {"enabled": False})
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})

    def type_into(self, element_id, text):
        self.eval("(() => { const e = document.getElementById(%s); e.focus(); e.select && e.select(); })()"
                  % json.dumps(element_id))
        self.send("Input.insertText", {"text": text})

    def tap(self, element_id):
        r = self.eval("(() => { const e = document.getElementById(%s); e.scrollIntoView({block: 'center'}); "
                      "const b = e.getBoundingClientRect(); return [b.left + b.width / 2, b.top + b.height / 2]; })()"
                      % json.dumps(element_id))
        x, y = r
        self.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
        self.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    def screenshot(self, path):
        import base64
        data = base64.b64decode(self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"])
        with open(path, "wb") as f:
            f.write(data)
        return data

    def close(self):
        try:
            self.send("Browser.close", session=False, timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.to_chrome)
        shutil.rmtree(self.profile, ignore_errors=True)


def wait_js(b, expr, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        v = b.eval(expr)
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def main():
    srv = Server(["-m", MODEL, "--threads", "2"])
    srv.start()
    b = None
    try:
        b = Browser()
        b.open_page("http://127.0.0.1:%d/" % srv.port)
        wait_js(b, "document.getElementById('model').textContent.length > 0", 30, "the model name")
        # Every value the progress bar takes, recorded as it happens (several
        # changes may reach one observer call: their old values fill the gaps).
        b.eval("window.__bar = []; const bar = document.getElementById('bar');"
               "new MutationObserver((rs) => { for (const r of rs) window.__bar.push(parseFloat(r.oldValue));"
               " window.__bar.push(bar.value); })"
               ".observe(bar, {attributes: true, attributeFilter: ['value'], attributeOldValue: true}); true")
        b.type_into("prompt", PROMPT)
        b.type_into("width", str(SIZE))
        b.type_into("height", str(SIZE))
        b.type_into("steps", str(STEPS))
        b.type_into("seed", str(SEED))
        wait_js(b, "document.querySelectorAll('#sampler option').length >= 12", 30, "the sampler list")
        b.eval("(() => { const s = document.getElementById('sampler'); s.value = 'DPM++ 2M Karras'; return s.value; })()")
        check(b.eval("document.getElementById('prompt').value") == PROMPT, "prompt typed")
        b.tap("generate")
        wait_js(b, "document.getElementById('image').naturalWidth > 0", 600, "the image")
        status = b.eval("document.getElementById('status').textContent")
        params = b.eval("document.getElementById('params').textContent")
        bar = b.eval("window.__bar")
        check(status.startswith("Done"), "status: %r" % status)
        check(PROMPT in params and "Seed: %d" % SEED in params and "Steps: %d" % STEPS in params
              and "Sampler: DPM++ 2M Karras" in params, "parameters shown: %r" % params)
        check(b.eval("document.getElementById('image').naturalWidth") == SIZE, "image width")
        between = [v for v in bar if 0 < v < 1]
        check(len(between) >= 2 and bar[-1] == 1, "progress bar moved: %s" % bar)
        check(all(x <= y for x, y in zip(between, between[1:])), "progress only grows: %s" % bar)
        check(b.eval("document.querySelectorAll('#gallery img').length") >= 1, "gallery shows the image")
        # The page's image is the job's image with the requested values.
        jid = b.eval("document.getElementById('image').dataset.job")
        job = srv.json("GET", "/api/v1/jobs/" + jid)
        check(job["state"] == "done" and job["images"][0]["seed"] == SEED and job["images"][0]["steps"] == STEPS,
              "job behind the page: %s" % job)
        out_phone = os.path.join(BUILD, "server_page_phone.png")
        w, h, _, _, _ = png_decode(b.screenshot(out_phone))
        check(w == 780 and h >= 844 * 2 - 2, "phone screenshot %dx%d" % (w, h))
        b.desktop()
        out_desktop = os.path.join(BUILD, "server_page_desktop.png")
        b.screenshot(out_desktop)
        # A fresh load lists the image in the gallery ("made so far in this server's life").
        b.send("Page.reload")
        b.wait_event("Page.loadEventFired")
        wait_js(b, "document.querySelectorAll('#gallery img').length >= 1", 30, "gallery after reload")
        print("page: prompt typed, Generate tapped, progress bar went through %s then %s, "
              "image %dx%d shown; screenshots %s, %s" % (sorted(set(between)), bar[-1], SIZE, SIZE,
                                                         out_phone, out_desktop))
    finally:
        if b:
            b.close()
        rc = srv.stop()
    check(rc == 0, "server exit status %s\n%s" % (rc, srv.stderr()))
    test_api_key()
    print("page test passed")


def test_api_key():
    """With --api-key the page asks for the key, then works with it."""
    key = "page-test-key-0123456789"
    srv = Server(["-m", MODEL, "--threads", "2"], env={"LEANDIFF_API_KEY": key})
    srv.start()
    b = None
    try:
        b = Browser()
        b.open_page("http://127.0.0.1:%d/" % srv.port)
        wait_js(b, "document.getElementById('keydlg').open", 30, "the key dialog")
        check(b.eval("document.getElementById('model').textContent") == "", "nothing loaded without the key")
        b.type_into("key", key)
        b.eval("document.querySelector('#keydlg button').click(); true")
        wait_js(b, "document.getElementById('model').textContent.length > 0", 30, "the model name after the key")
        check(b.eval("localStorage.getItem('leandiff-key')") == key, "key kept in localStorage")
        check(not b.eval("document.getElementById('keydlg').open"), "dialog closed")
        print("page: asked for the API key, then loaded with it")
    finally:
        if b:
            b.close()
        rc = srv.stop()
    check(rc == 0, "server exit status %s\n%s" % (rc, srv.stderr()))


if __name__ == "__main__":
    main()
