"""Image editing through `leandiff serve` against the tiny KOALA model of
../shared/testdata, compared with `leandiff generate -i/--mask` (the same
pixels for the same parameters and seed):

* A1111 img2img with an init image of another size than the requested one
  (resized like `generate -i` does), mask_blur as `--mask-blur`, a mask with
  transparency, inpainting_fill validated, uploads over the limits refused;
* OpenAI POST /v1/images/edits (multipart/form-data, sent by curl -F):
  image, mask with OpenAI's transparent-repaints rule, n, size, and the 400s
  naming a bad upload or a broken form;
* the job API's event stream carries preview events with decodable PNGs.

Run by tests/test_server_edit.sh (ctest), exit 77 when the model is missing.
"""
import base64
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Server, check, env_paths, png_decode, read_events, skip, testdata_dir  # noqa: E402

BIN, SRC, BUILD = env_paths()
MODEL = os.path.join(testdata_dir(SRC), "models", "koala-700m-tiny")
if not os.path.isdir(MODEL):
    skip("model not found: " + MODEL)

PROMPT = "a koala reading a newspaper"
TMP = tempfile.mkdtemp(prefix="ld-edit-")


def log(msg):
    print(msg, flush=True)


def png_encode(w, h, ch, px):
    """8-bit RGB (ch 3) or RGBA (ch 4) PNG from raw rows, stdlib only."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    raw = b"".join(b"\0" + px[y * w * ch:(y + 1) * w * ch] for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2 if ch == 3 else 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def save(name, data):
    path = os.path.join(TMP, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def gradient(w, h):
    """A picture with detail everywhere, so a resize or a blur changes pixels."""
    return bytes(v for y in range(h) for x in range(w)
                 for v in ((x * 255) // w, (y * 255) // h, ((x * 7 + y * 13) * 5) & 255))


def square_mask(w, h, ch=3, alpha_inside=None):
    """White (repaint) square in the middle, black around; with alpha_inside,
    RGBA whose alpha is alpha_inside in the square and 255 - it outside."""
    out = bytearray()
    for y in range(h):
        for x in range(w):
            inside = w // 4 <= x < 3 * w // 4 and h // 4 <= y < 3 * h // 4
            if ch == 3:
                out += bytes([255 if inside else 0] * 3)
            else:
                a = alpha_inside if inside else 255 - alpha_inside
                out += bytes([40, 90, 200, a])
    return bytes(out)


def generate(args, seed=77):
    out = os.path.join(TMP, "cli.png")
    cmd = [BIN, "generate", "-m", MODEL, "-p", PROMPT, "--steps", "2", "--cfg-scale", "5", "--seed", str(seed),
           "--sampler", "euler", "--threads", "2", "-q", "-o", out] + args
    r = subprocess.run(cmd, capture_output=True, text=True)
    check(r.returncode == 0, "generate failed: %s\n%s" % (" ".join(cmd), r.stderr))
    with open(out, "rb") as f:
        return png_decode(f.read())


def img2img(srv, body, expect=200):
    base = {"prompt": PROMPT, "steps": 2, "cfg_scale": 5.0, "seed": 77, "sampler_name": "Euler"}
    return srv.json("POST", "/sdapi/v1/img2img", dict(base, **body), expect=expect)


def b64(data):
    return base64.b64encode(data).decode()


def test_img2img_resize(srv):
    """An init image of 72x56 asked at 64x64: resized as `generate -i` resizes it (same pixels)."""
    init = png_encode(72, 56, 3, gradient(72, 56))
    out = img2img(srv, {"init_images": [b64(init)], "width": 64, "height": 64, "denoising_strength": 0.6})
    got = png_decode(base64.b64decode(out["images"][0]))
    check(got[:2] == (64, 64), "img2img output %dx%d, asked 64x64" % got[:2])
    cli = generate(["-i", save("init72.png", init), "-W", "64", "-H", "64", "--strength", "0.6"])
    check(got[3] == cli[3], "server img2img with a resized init image == generate -i")
    # no width/height: the image's own size rounded down to a multiple of 8
    out = img2img(srv, {"init_images": [b64(init)], "denoising_strength": 0.6, "width": None, "height": None})
    check(png_decode(base64.b64decode(out["images"][0]))[:2] == (72, 56), "own size kept")
    log("a1111 img2img resize: ok (72x56 -> 64x64 equals generate -i)")
    return init


def test_img2img_mask_blur(srv, init):
    mask = png_encode(64, 64, 3, square_mask(64, 64))
    imgs = {}
    for blur in (0, 6):
        out = img2img(srv, {"init_images": [b64(init)], "mask": b64(mask), "mask_blur": blur, "width": 64,
                            "height": 64, "denoising_strength": 0.8, "inpainting_fill": 1})
        imgs[blur] = png_decode(base64.b64decode(out["images"][0]))
        info = json.loads(out["info"])["infotexts"][0]
        check(("Mask blur: 6" in info) == (blur == 6), "mask blur in the infotext: %r" % info)
    check(imgs[0][3] != imgs[6][3], "mask_blur changes the image")
    cli = generate(["-i", save("init72.png", init), "--mask", save("mask.png", mask), "--mask-blur", "6",
                    "-W", "64", "-H", "64", "--strength", "0.8"])
    check(imgs[6][3] == cli[3], "server mask_blur 6 == generate --mask-blur 6")
    cli0 = generate(["-i", save("init72.png", init), "--mask", save("mask.png", mask),
                     "-W", "64", "-H", "64", "--strength", "0.8"])
    check(imgs[0][3] == cli0[3], "server mask_blur 0 == generate --mask without blur")
    # A1111's default mask_blur is 4
    out = img2img(srv, {"init_images": [b64(init)], "mask": b64(mask), "width": 64, "height": 64,
                        "denoising_strength": 0.8})
    check("Mask blur: 4" in json.loads(out["info"])["infotexts"][0], "A1111's default mask_blur 4")
    # A mask with transparency, A1111's rule: opaque repaints (the square is opaque here)
    rgba = png_encode(64, 64, 4, square_mask(64, 64, 4, alpha_inside=255))
    out = img2img(srv, {"init_images": [b64(init)], "mask": b64(rgba), "mask_blur": 0, "width": 64,
                        "height": 64, "denoising_strength": 0.8})
    check(png_decode(base64.b64decode(out["images"][0]))[3] == imgs[0][3], "RGBA mask: opaque area repaints")
    log("a1111 img2img mask_blur: ok (equals generate --mask-blur; default 4; RGBA masks by alpha)")


def test_img2img_refusals(srv, init):
    def err(body, field, text):
        s, _, data = srv.request("POST", "/sdapi/v1/img2img", dict({"prompt": "x"}, **body))
        e = json.loads(data) if data else {}
        check(s == 400 and e.get("field") == field and text in e.get("error", ""),
              "%s: expected 400 on %s with %r, got %d %s" % (list(body), field, text, s, data[:300]))
    i = [b64(init)]
    err({"init_images": i, "inpainting_fill": 7}, "inpainting_fill", "between 0 and 3")
    err({"init_images": i, "mask_blur": -1}, "mask_blur", "between 0 and 64")
    err({"init_images": i, "width": 512}, "width", "this server's limit")
    big = png_encode(1, 1, 3, b"\0\0\0")
    big = big[:16] + struct.pack(">II", 9000, 9000) + big[24:]  # the IHDR says 9000x9000
    err({"init_images": [b64(big)]}, "init_images", "more than this server decodes")
    err({"init_images": i, "mask": b64(b"GIF89a" + b"\0" * 40)}, "mask", "not a PNG or JPEG")
    err({"init_images": [b64(b"\xff\xd8\xff\xe0\0\x10JFIF\0")]}, "init_images", "broken JPEG")
    pics = os.path.join(SRC, "tests", "data", "pictures")
    with open(os.path.join(pics, "lossy.webp"), "rb") as f:
        err({"init_images": [b64(f.read())]}, "init_images", "not a PNG or JPEG")
    # a JPEG init image decodes to the picture its PNG twin holds (tests/test_picture.c): the same result
    outs = []
    for name in ("cmyk.jpg", "cmyk_rgb.png"):
        with open(os.path.join(pics, name), "rb") as f:
            outs.append(img2img(srv, {"init_images": [b64(f.read())], "width": 64, "height": 64,
                                      "denoising_strength": 0.5})["images"][0])
    check(png_decode(base64.b64decode(outs[0]))[3] == png_decode(base64.b64decode(outs[1]))[3],
          "a JPEG init image gives what its PNG twin gives")
    log("a1111 img2img refusals: ok (and JPEG uploads accepted)")


def curl(srv, args):
    """POST /v1/images/edits with curl -F ...: (HTTP status, parsed JSON body)."""
    r = subprocess.run(["curl", "-s", "--noproxy", "*", "-o", "-", "-w", "\n%{http_code}",
                        "http://127.0.0.1:%d/v1/images/edits" % srv.port] + args, capture_output=True)
    check(r.returncode == 0, "curl failed: %s" % r.stderr)
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code), json.loads(body) if body else None


def test_openai_edits(srv, init):
    """curl -F image=@... -F mask=@...: OpenAI's transparent-repaints mask; equals generate --mask."""
    init_path = save("init72.png", init)
    white_square = save("mask.png", png_encode(64, 64, 3, square_mask(64, 64)))
    transparent_square = save("mask_rgba.png", png_encode(64, 64, 4, square_mask(64, 64, 4, alpha_inside=0)))
    form = ["-F", "prompt=" + PROMPT, "-F", "steps=2", "-F", "cfg_scale=5", "-F", "seed=77", "-F", "sampler=euler",
            "-F", "size=64x64", "-F", "response_format=b64_json"]
    code, out = curl(srv, ["-F", "image=@" + init_path, "-F", "mask=@" + transparent_square, "-F", "n=2"] + form)
    check(code == 200, "edits: %d %s" % (code, out))
    got = [png_decode(base64.b64decode(d["b64_json"])) for d in out["data"]]
    check(len(got) == 2 and all(g[:2] == (64, 64) for g in got), "edits: two 64x64 images")
    for i, g in enumerate(got):
        cli = generate(["-i", init_path, "--mask", white_square, "-W", "64", "-H", "64", "--strength", "1"], 77 + i)
        check(g[3] == cli[3], "edits image %d == generate --mask (transparent = repaint) --strength 1" % i)
    # no mask part: the image's own transparency is the mask
    rgba_init = bytearray()
    px = gradient(64, 64)
    for k in range(64 * 64):
        y, x = divmod(k, 64)
        inside = 16 <= x < 48 and 16 <= y < 48
        rgba_init += px[3 * k:3 * k + 3] + bytes([0 if inside else 255])
    code, out = curl(srv, ["-F", "image=@" + save("init_rgba.png", png_encode(64, 64, 4, bytes(rgba_init)))] + form)
    check(code == 200, "edits without a mask: %d %s" % (code, out))
    cli = generate(["-i", save("init64.png", png_encode(64, 64, 3, px)), "--mask", white_square, "--strength", "1",
                    "-W", "64", "-H", "64"])
    check(png_decode(base64.b64decode(out["data"][0]["b64_json"]))[3] == cli[3], "image alpha as the mask")
    log("openai edits: ok (curl -F; transparent mask areas repainted, equal to generate --mask)")

    def err(args, param, text, raw=None, ctype=None):
        if raw is not None:
            s, _, data = srv.request("POST", "/v1/images/edits", raw, {"Content-Type": ctype} if ctype else {})
            code, e = s, json.loads(data)
        else:
            code, e = curl(srv, args)
        msg = e["error"]["message"]
        check(code == 400 and text in msg and (param is None or e["error"]["param"] == param),
              "edits %s: expected 400 %r %r, got %d %s" % (args or raw[:60], param, text, code, e))
    err(["-F", "prompt=x"], "image", "image is required")
    err(["-F", "image=@" + save("x.gif", b"GIF89a" + b"\0" * 64), "-F", "prompt=x"], "image", "not a PNG or JPEG")
    err(["-F", "image=@" + init_path, "-F", "mask=@" + save("t.png", init[:40]), "-F", "prompt=x"], "mask", "broken PNG")
    err(["-F", "image=@" + init_path, "-F", "prompt=x", "-F", "n=lots"], "n", "must be an integer")
    err(["-F", "image=@" + init_path, "-F", "prompt=x", "-F", "size=64"], "size", "512x512")
    err(["-F", "image=@" + init_path], "prompt", "prompt is required")
    err(["-F", "image=@" + init_path, "-F", "prompt=x", "-F", "strength=2"], "strength", "(0, 1]")
    err(None, "prompt", "not UTF-8",
        raw=b'--XyZ\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n\xff\xfe\r\n--XyZ\r\n'
            b'Content-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n' + init + b'\r\n--XyZ--\r\n',
        ctype="multipart/form-data; boundary=XyZ")
    err(None, None, "multipart/form-data", raw='{"prompt": "x"}', ctype="application/json")
    err(None, None, "without a boundary", raw="--x\r\n", ctype="multipart/form-data")
    ct = "multipart/form-data; boundary=XyZ"
    err(None, None, "header line without ':'", raw="--XyZ\r\nbogus header\r\n\r\ndata\r\n--XyZ--\r\n", ctype=ct)
    err(None, None, "without a name", raw="--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--\r\n",
        ctype=ct)
    err(None, None, "truncated",
        raw='--XyZ\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx', ctype=ct)
    err(None, None, "does not contain the boundary", raw="hello", ctype=ct)
    log("openai edits refusals: ok")


class Blocker:
    """Keeps the worker busy with a long job, so the next job waits in the queue until release():
    an event stream opened meanwhile sees all of that job's events (a tiny job may otherwise be
    over before its stream connects)."""

    def __init__(self, srv):
        self.srv = srv
        self.id = srv.json("POST", "/api/v1/jobs", {"prompt": "blocker", "width": 64, "height": 64, "steps": 1000},
                           expect=202)["id"]

    def release(self):
        self.srv.request("DELETE", "/api/v1/jobs/" + self.id)


def read_events_after(srv, path, blocker):
    """read_events, with the blocker released once the stream is open."""
    import threading
    t = threading.Timer(0.5, blocker.release)
    t.start()
    try:
        return read_events(srv, path)
    finally:
        t.cancel()
        blocker.release()


def test_preview_events(srv):
    """The job API's event stream carries `preview` events: PNG data URLs of the image forming
    (the cheap latent-to-RGB map at 1/8 size), equal to `generate --preview` at the last step."""
    steps = 8
    blocker = Blocker(srv)
    job = srv.json("POST", "/api/v1/jobs", {"prompt": PROMPT, "width": 64, "height": 64, "steps": steps,
                                            "cfg_scale": 5, "seed": 77, "sampler": "euler"}, expect=202)
    events = read_events_after(srv, job["events"], blocker)
    check(events[-1][0] == "done", "job done: %s" % events[-1][0])
    previews = [d for e, d in events if e == "preview"]
    check(previews, "no preview event among %s" % sorted(set(e for e, _ in events)))
    last_step = 0
    for d in previews:
        check(d["url"].startswith("data:image/png;base64,"), "preview is a PNG data URL")
        w, h, _, px, _ = png_decode(base64.b64decode(d["url"].split(",", 1)[1]))
        check((w, h) == (8, 8) and len(set(px)) > 1, "preview %dx%d, not flat" % (w, h))
        check(d["total"] == steps and last_step < d["step"] <= steps and d["image"] == 0, "preview step %s" % d)
        last_step = d["step"]
    out = os.path.join(TMP, "preview.png")
    generate(["-W", "64", "-H", "64", "--steps", str(steps), "--preview", out], 77)  # the CLI rewrites it at every step, the last one stays
    with open(out, "rb") as f:
        cli = png_decode(f.read())
    final = [d for d in previews if d["step"] == steps]
    if final:
        check(png_decode(base64.b64decode(final[0]["url"].split(",", 1)[1]))[3] == cli[3],
              "last preview == generate --preview")
    # A1111 clients read the same preview as /sdapi/v1/progress's current_image
    long = srv.json("POST", "/api/v1/jobs", {"prompt": PROMPT, "width": 64, "height": 64, "steps": 1000},
                    expect=202)
    deadline, cur = time.time() + 120, None
    while time.time() < deadline and not cur:
        cur = srv.json("GET", "/sdapi/v1/progress")["current_image"]
        time.sleep(0.05)
    srv.request("DELETE", "/api/v1/jobs/" + long["id"])
    check(cur and png_decode(base64.b64decode(cur))[:2] == (8, 8), "A1111 progress current_image is the preview")
    log("preview events: ok (%d previews of %d steps%s; A1111 current_image)"
        % (len(previews), steps, ", the last equal to generate --preview" if final else ""))


def test_status_defaults(srv):
    """GET /api/v1/status reports the model's defaults (what the page puts in its fields): a job that
    leaves every field out gets exactly those."""
    d = srv.json("GET", "/api/v1/status")["defaults"]
    check(set(d) == {"width", "height", "steps", "cfg_scale", "sampler", "size_multiple"}, "sdxl defaults: %s" % d)
    job = srv.json("POST", "/api/v1/jobs", {"prompt": PROMPT}, expect=202)
    events = read_events(srv, job["events"])
    img = events[-1][1]["images"][0]
    got = {"width": img["width"], "height": img["height"], "steps": img["steps"], "cfg_scale": img["cfg_scale"],
           "sampler": img["sampler_name"]}
    check(d["width"] % d["size_multiple"] == 0, "the default size is a multiple of size_multiple: %s" % d)
    d = {k: v for k, v in d.items() if k != "size_multiple"}
    check(got == d, "status defaults %s, a job without fields used %s" % (d, got))
    log("status defaults: ok (%s)" % d)


def test_taesd_previews():
    """serve --taesd DIR: the previews are TAESD's full-size decodes, equal to generate --taesd --preview;
    a folder that is not an AutoencoderTiny stops the server at start, naming it."""
    taesd = os.path.join(TMP, "taesd")
    r = subprocess.run([BIN, "init-random", "--config", os.path.join(SRC, "tests", "data", "taesd", "config.json"),
                        "--out", taesd, "--dtype", "f32", "--seed", "20261204"], capture_output=True, text=True)
    check(r.returncode == 0, "init-random taesd: %s" % r.stderr)
    bad = subprocess.run([BIN, "serve", "-m", MODEL, "--port", "0", "--taesd", os.path.join(TMP, "nowhere")],
                         capture_output=True, text=True, timeout=300)
    check(bad.returncode == 1 and "--taesd" in bad.stderr and "nowhere" in bad.stderr,
          "a bad --taesd: %d %r" % (bad.returncode, bad.stderr))
    steps = 3
    with Server(["-m", MODEL, "--threads", "2", "--max-steps", "1000", "--taesd", taesd]) as srv:
        blocker = Blocker(srv)
        job = srv.json("POST", "/api/v1/jobs", {"prompt": PROMPT, "width": 64, "height": 64, "steps": steps,
                                                "cfg_scale": 5, "seed": 77, "sampler": "euler"}, expect=202)
        events = read_events_after(srv, job["events"], blocker)
        check(events[-1][0] == "done", "job done")
        previews = [d for e, d in events if e == "preview"]
        check(previews, "TAESD previews sent")
        pics = [png_decode(base64.b64decode(d["url"].split(",", 1)[1])) for d in previews]
        check(all(p[:2] == (64, 64) for p in pics), "TAESD previews at full size")
        out = os.path.join(TMP, "preview_taesd.png")
        generate(["-W", "64", "-H", "64", "--steps", str(steps), "--taesd", taesd, "--preview", out], 77)
        with open(out, "rb") as f:
            cli = png_decode(f.read())
        final = [p for d, p in zip(previews, pics) if d["step"] == steps]
        if final:
            check(final[0][3] == cli[3], "last TAESD preview == generate --taesd --preview")
        check(srv.stop() == 0, "taesd server exit status")
    log("TAESD previews: ok (%d previews at 64x64%s; a bad --taesd refused at start)"
        % (len(previews), ", the last equal to generate --taesd --preview" if final else ""))


def main():
    srv = Server(["-m", MODEL, "--threads", "2", "--max-size", "256", "--max-steps", "1000", "--max-body", str(8 << 20)])
    try:
        srv.start()
        init = test_img2img_resize(srv)
        test_img2img_mask_blur(srv, init)
        test_img2img_refusals(srv, init)
        test_openai_edits(srv, init)
        test_preview_events(srv)
        test_status_defaults(srv)
        rc = srv.stop()
        check(rc == 0, "server exit status %s\n%s" % (rc, srv.stderr()))
        test_taesd_previews()
    finally:
        srv.stop()
        shutil.rmtree(TMP, ignore_errors=True)
    print("all server editing tests passed")


if __name__ == "__main__":
    main()
