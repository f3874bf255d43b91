"""End-to-end test of the page of `leandiff serve` in headless Chromium,
driven through the DevTools protocol over --remote-debugging-pipe (python3
stdlib only): the fields hold the model's real defaults (from
/api/v1/status), the prompt's placeholder is plainly not a prompt and
Generate with an empty prompt is refused in the page; on a phone-sized
screen it types a prompt, sets size, steps, seed, sampler and a batch of two,
taps Generate, sees the progress bar take values between 0 and 1 and preview
pictures from the event stream, sees the image appear with its parameters and
in the gallery, downloads it and reuses its parameters; on a desktop screen
it chooses an init image, paints a mask on the canvas, sets the strength and
gets the same pixels as the job API with that image and mask. Screenshots
(phone, desktop, image-to-image) are saved under the build directory. A
Wuerstchen server's page shows the prior steps and guidance with their
defaults. With --api-key, the page asks for the key and then works.

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

    def set_files(self, element_id, paths):
        r = self.send("Runtime.evaluate", {"expression": "document.getElementById(%s)" % json.dumps(element_id)})
        self.send("DOM.setFileInputFiles", {"files": paths, "objectId": r["result"]["objectId"]})

    def drag_mouse(self, points):
        """A left-button stroke through the page points [(x, y), ...] (pointer events on the page)."""
        x, y = points[0]
        self.send("Input.dispatchMouseEvent", {"type": "mousePressed", "x": x, "y": y, "button": "left",
                                               "buttons": 1, "clickCount": 1})
        for x, y in points[1:]:
            self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y, "button": "left", "buttons": 1})
        self.send("Input.dispatchMouseEvent", {"type": "mouseReleased", "x": x, "y": y, "button": "left",
                                               "buttons": 0, "clickCount": 1})

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
    srv = Server(["-m", MODEL, "--threads", "2", "--max-steps", "1000"])
    srv.start()
    b = None
    try:
        b = Browser()
        b.open_page("http://127.0.0.1:%d/" % srv.port)
        wait_js(b, "document.getElementById('model').textContent.length > 0", 30, "the model name")
        test_defaults_and_empty_prompt(b, srv)
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
        b.type_into("n", "2")
        # every picture the result shows while the job runs: previews come as data: URLs
        b.eval("window.__previews = []; const im = document.getElementById('image');"
               "new MutationObserver(() => { if (im.src.startsWith('data:image/png')) window.__previews.push(im.src); })"
               ".observe(im, {attributes: true, attributeFilter: ['src']}); true")
        wait_js(b, "document.querySelectorAll('#sampler option').length >= 12", 30, "the sampler list")
        b.eval("(() => { const s = document.getElementById('sampler'); s.value = 'DPM++ 2M Karras'; return s.value; })()")
        check(b.eval("document.getElementById('prompt').value") == PROMPT, "prompt typed")
        # a long job keeps the worker busy until the page follows its own queued job's events,
        # so none of them (previews included) is over before the page listens
        blocker = srv.json("POST", "/api/v1/jobs", {"prompt": "blocker", "width": SIZE, "height": SIZE,
                                                    "steps": 1000}, expect=202)["id"]
        b.tap("generate")
        wait_js(b, "document.getElementById('status').textContent.startsWith('Queued')", 60, "the queued job")
        srv.request("DELETE", "/api/v1/jobs/" + blocker)
        wait_js(b, "document.getElementById('status').textContent.startsWith('Done') && "
                   "document.getElementById('image').src.startsWith('blob:') && "
                   "document.getElementById('image').naturalWidth > 0", 600, "the image")
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
        wait_js(b, "document.querySelectorAll('#gallery img').length >= 2", 30, "the gallery showing the two images")
        previews = b.eval("window.__previews")
        check(len(previews) >= 1, "the page showed previews while the image formed: %d" % len(previews))
        import base64
        pw = png_decode(base64.b64decode(previews[-1].split(",", 1)[1]))[0]
        check(pw == SIZE // 8, "preview width %d" % pw)
        # The page's image is the job's image with the requested values.
        jid = b.eval("document.getElementById('image').dataset.job")
        job = srv.json("GET", "/api/v1/jobs/" + jid)
        check(job["state"] == "done" and job["images"][0]["seed"] == SEED and job["images"][0]["steps"] == STEPS
              and len(job["images"]) == 2 and job["images"][1]["seed"] == SEED + 1, "job behind the page: %s" % job)
        test_download_and_reuse(b, srv, jid)
        out_phone = os.path.join(BUILD, "server_page_phone.png")
        w, h, _, _, _ = png_decode(b.screenshot(out_phone))
        check(w == 780 and h >= 844 * 2 - 2, "phone screenshot %dx%d" % (w, h))
        b.desktop()
        out_desktop = os.path.join(BUILD, "server_page_desktop.png")
        b.screenshot(out_desktop)
        # A fresh load lists the image in the gallery ("made so far in this server's life").
        b.send("Page.reload")
        b.wait_event("Page.loadEventFired")
        wait_js(b, "document.querySelectorAll('#gallery img').length >= 2", 30, "gallery after reload")
        wait_js(b, "document.getElementById('width').value !== ''", 30, "the defaults after reload")
        out_i2i = test_img2img(b, srv)
        print("page: prompt typed, Generate tapped, progress bar went through %s then %s, %d previews, "
              "image %dx%d shown; screenshots %s, %s, %s" % (sorted(set(between)), bar[-1], len(previews), SIZE, SIZE,
                                                             out_phone, out_desktop, out_i2i))
    finally:
        if b:
            b.close()
        rc = srv.stop()
    check(rc == 0, "server exit status %s\n%s" % (rc, srv.stderr()))
    test_two_stage_fields()
    test_api_key()
    print("page test passed")


def field(b, element_id):
    return b.eval("document.getElementById(%s).value" % json.dumps(element_id))


def test_defaults_and_empty_prompt(b, srv):
    d = srv.json("GET", "/api/v1/status")["defaults"]
    wait_js(b, "document.getElementById('sampler').value !== ''", 30, "the sampler default")
    shown = {k: field(b, k) for k in ("width", "height", "steps", "cfg_scale", "sampler")}
    check(shown == {"width": str(d["width"]), "height": str(d["height"]), "steps": str(d["steps"]),
                    "cfg_scale": shown["cfg_scale"], "sampler": d["sampler"]} and float(shown["cfg_scale"]) == d["cfg_scale"],
          "the fields hold the model's defaults: %s vs %s" % (shown, d))
    check(field(b, "n") == "1", "one image by default")
    check(not b.eval("[...document.querySelectorAll('input')].some((e) => e.placeholder === 'default')"),
          "no field says 'default'")
    ph = b.eval("document.getElementById('prompt').placeholder")
    style = b.eval("getComputedStyle(document.getElementById('prompt'), '::placeholder').fontStyle")
    check(field(b, "prompt") == "" and ph.startswith("Describe") and "(required)" in ph and style == "italic",
          "the prompt placeholder reads as an instruction: %r (%s)" % (ph, style))
    b.tap("generate")
    wait_js(b, "document.getElementById('status').className === 'error'", 10, "the empty-prompt refusal")
    check("Write a prompt" in b.eval("document.getElementById('status').textContent")
          and b.eval("document.getElementById('prompt').classList.contains('invalid')"), "empty prompt refused")
    time.sleep(0.5)
    check(srv.json("GET", "/api/v1/jobs") == [], "no job was sent for an empty prompt")
    print("page: real defaults %s in the fields; empty prompt refused without a request" % shown)


def test_download_and_reuse(b, srv, jid):
    href = b.eval("document.getElementById('download').href")
    name = b.eval("document.getElementById('download').download")
    check(href.startswith("blob:") and name == "leandiff-%d.png" % SEED, "download link %s %s" % (href, name))
    # a real download: Chromium saves the file, which must be the job's PNG
    ddir = tempfile.mkdtemp(prefix="ld-download-")
    b.send("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": ddir}, session=False)
    b.eval("document.getElementById('download').click(); true")
    target = os.path.join(ddir, name)
    end = time.time() + 30
    while time.time() < end and not os.path.exists(target):
        time.sleep(0.1)
    check(os.path.exists(target), "download saved as %s: %s" % (name, os.listdir(ddir)))
    time.sleep(0.3)
    with open(target, "rb") as f:
        saved = f.read()
    shutil.rmtree(ddir, ignore_errors=True)
    status, _, png = srv.request("GET", "/api/v1/jobs/%s/image" % jid)
    size = len(saved)
    check(status == 200 and saved == png, "download is the job's PNG (%d vs %d bytes)" % (size, len(png)))
    b.type_into("prompt", "something else")
    b.type_into("seed", "-1")
    b.type_into("steps", "40")
    b.eval("document.getElementById('sampler').value = 'Euler'; true")
    b.tap("reuse")
    got = {k: field(b, k) for k in ("prompt", "seed", "steps", "sampler", "width", "n")}
    check(got == {"prompt": PROMPT, "seed": str(SEED), "steps": str(STEPS), "sampler": "DPM++ 2M Karras",
                  "width": str(SIZE), "n": "1"}, "reuse these parameters: %s" % got)
    print("page: download gives the job's PNG (%d bytes); reuse put back %s" % (size, got))


def gradient_png(w, h):
    import struct
    import zlib
    raw = b"".join(b"\0" + bytes(v for x in range(w) for v in ((x * 4) & 255, (y * 4) & 255, 128)) for y in range(h))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_img2img(b, srv):
    """Desktop: choose an init image, paint a mask stroke, set the strength; the job gets them, and its
    pixels equal the job API's with the same image and the mask the page made."""
    import base64
    init = gradient_png(SIZE, SIZE)
    path = os.path.join(BUILD, "server_page_init.png")
    with open(path, "wb") as f:
        f.write(init)
    b.set_files("init_file", [path])
    wait_js(b, "!document.getElementById('initbox').classList.contains('hidden') && "
               "document.getElementById('initimg').naturalWidth > 0", 30, "the init image")
    check(field(b, "width") == str(SIZE) and field(b, "height") == str(SIZE), "size follows the init image")
    r = b.eval("(() => { const c = document.getElementById('maskcanvas'); c.scrollIntoView({block: 'center'});"
               " const b = c.getBoundingClientRect(); return [b.left, b.top, b.width, b.height]; })()")
    x0, y0, w, h = r
    b.drag_mouse([(x0 + w * f, y0 + h / 2) for f in (0.2, 0.4, 0.6, 0.8)])
    mask = png_decode(base64.b64decode(b.eval("maskDataURL()").split(",", 1)[1]))
    mw, mh, ch, px = mask[:4]
    at = lambda x, y: px[(y * mw + x) * ch]  # noqa: E731
    check((mw, mh) == (SIZE, SIZE) and at(SIZE // 2, SIZE // 2) == 255 and at(2, 2) == 0 and at(SIZE - 3, SIZE - 3) == 0,
          "the painted stroke is white in the mask, the corners black")
    b.eval("(() => { const s = document.getElementById('strength'); s.value = '0.6';"
           " s.dispatchEvent(new Event('input')); })()")
    check(b.eval("document.getElementById('strength_out').textContent") == "0.60", "strength shown")
    b.type_into("prompt", PROMPT)
    b.type_into("seed", str(SEED))
    b.type_into("steps", str(STEPS))
    before = b.eval("document.getElementById('image').dataset.job")
    b.eval("document.getElementById('generate').click(); true")
    wait_js(b, "(document.getElementById('image').dataset.job || %s) !== %s && "
               "document.getElementById('status').textContent.startsWith('Done')"
            % (json.dumps(before), json.dumps(before)), 600,
            "the image-to-image result")
    jid = b.eval("document.getElementById('image').dataset.job")
    job = srv.json("GET", "/api/v1/jobs/" + jid)
    p = job["params"]
    check(p["denoising_strength"] == 0.6 and p["mask"] is True and job["images"][0]["width"] == SIZE,
          "the page sent init image, mask and strength: %s" % p)
    api = srv.json("POST", "/api/v1/jobs", {"prompt": PROMPT, "width": SIZE, "height": SIZE, "steps": STEPS,
                                            "seed": SEED, "sampler": field(b, "sampler"),
                                            "cfg_scale": float(field(b, "cfg_scale")),
                                            "init_images": [base64.b64encode(init).decode()],
                                            "mask": b.eval("maskDataURL()"), "denoising_strength": 0.6,
                                            "mask_blur": 0}, expect=202)
    wait_js(b, "fetch('/api/v1/jobs/%s').then((r) => r.json()).then((j) => j.state === 'done')" % api["id"], 300,
            "the API job")
    _, _, a = srv.request("GET", "/api/v1/jobs/%s/image" % api["id"])
    _, _, pg = srv.request("GET", "/api/v1/jobs/%s/image" % jid)
    check(png_decode(a)[3] == png_decode(pg)[3], "page img2img == job API img2img with the page's mask: %s vs %s"
          % (p, srv.json("GET", "/api/v1/jobs/" + api["id"])["params"]))
    out = os.path.join(BUILD, "server_page_img2img.png")
    b.screenshot(out)
    # an uploaded mask (white left half) replaces the strokes
    half = bytes(v for y in range(SIZE) for x in range(SIZE) for v in ([255] * 3 if x < SIZE // 2 else [0] * 3))
    import struct
    import zlib
    raw = b"".join(b"\0" + half[y * SIZE * 3:(y + 1) * SIZE * 3] for y in range(SIZE))
    chunk = lambda k, d: struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d) & 0xffffffff)  # noqa
    mpath = os.path.join(BUILD, "server_page_mask.png")
    with open(mpath, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", SIZE, SIZE, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    b.set_files("mask_file", [mpath])
    wait_js(b, "document.getElementById('status').textContent.startsWith('Mask loaded')", 30, "the uploaded mask")
    mask = png_decode(base64.b64decode(b.eval("maskDataURL()").split(",", 1)[1]))
    ch, px = mask[2], mask[3]
    check(px[(SIZE // 2 * SIZE + 3) * ch] == 255 and px[(SIZE // 2 * SIZE + SIZE - 3) * ch] == 0,
          "uploaded mask: left half repaints, right half kept (the stroke is gone)")
    # dropping a picture on the box makes it the init image (here the job's result), with a fresh mask
    b.eval("fetch('/api/v1/jobs/%s/image').then((r) => r.blob()).then((blob) => {"
           " const dt = new DataTransfer(); dt.items.add(new File([blob], 'result.png', {type: 'image/png'}));"
           " document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true,"
           " cancelable: true})); return true; })" % jid)
    wait_js(b, "document.getElementById('initimg').src !== '' && "
               "document.getElementById('status').textContent.startsWith('Init image %d')" % SIZE, 30,
            "the dropped init image")
    check(b.eval("maskPainted") is False, "a new init image starts with an empty mask")
    b.eval("document.getElementById('removeinit').click(); true")
    check(b.eval("document.getElementById('initbox').classList.contains('hidden')"), "image removed")
    print("page: init image chosen, mask stroke painted, strength 0.6: same pixels as the job API; "
          "mask upload and drop work")
    return out


def test_two_stage_fields():
    """A Wuerstchen server's page: prior steps and guidance shown with the model's defaults, no img2img."""
    models = os.path.join(testdata_dir(SRC), "models")
    srv = Server(["-m", os.path.join(models, "wuerstchen-prior-tiny"), "--decoder",
                  os.path.join(models, "wuerstchen-tiny"), "--threads", "2"])
    srv.start()
    b = None
    try:
        d = srv.json("GET", "/api/v1/status")["defaults"]
        b = Browser()
        b.open_page("http://127.0.0.1:%d/" % srv.port)
        wait_js(b, "document.getElementById('prior_steps').value !== ''", 30, "the prior defaults")
        check(b.eval("!document.getElementById('prior_steps_label').classList.contains('hidden')")
              and field(b, "prior_steps") == str(d["prior_steps"])
              and float(field(b, "prior_cfg_scale")) == d["prior_cfg_scale"]
              and float(field(b, "cfg_scale")) == d["cfg_scale"] and field(b, "sampler") == "DDPM"
              and b.eval("document.getElementById('img2img').classList.contains('hidden')"),
              "two-stage fields: %s" % d)
        print("page: Wuerstchen prior steps %s and guidance %s shown" % (d["prior_steps"], d["prior_cfg_scale"]))
    finally:
        if b:
            b.close()
        rc = srv.stop()
    check(rc == 0, "server exit status %s" % rc)


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
