"""Every endpoint of `leandiff serve`, through a real HTTP client, against the
tiny KOALA model of ../shared/testdata: A1111, OpenAI and native APIs give
the same pixels for the same parameters and seed, and the same pixels as
`leandiff generate`; progress, events, cancel and interrupt work; bad input
gets the documented status with the field named; limits, queue, API key,
Origin checks, saved outputs and client disconnects behave; the server stops
cleanly on SIGTERM (exit 0, so no ASan report).

Run by tests/test_server_api.sh (ctest), exit 77 when the model is missing.
"""
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (Server, b64png, check, env_paths, png_decode, read_events, skip, testdata_dir,  # noqa: E402
                    wait_until)

# a PNG signature and a valid 64x64 IHDR, then nothing: a truncated upload
_IHDR = b"IHDR" + (64).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
PNG_HEADER_ONLY = (b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + _IHDR
                   + (zlib.crc32(_IHDR) & 0xffffffff).to_bytes(4, "big"))

BIN, SRC, BUILD = env_paths()
MODEL = os.path.join(testdata_dir(SRC), "models", "koala-700m-tiny")
MODEL_NAME = "koala-700m-tiny"
if not os.path.isdir(MODEL):
    skip("model not found: " + MODEL)

SIZE = 64   # the tiny model's smallest comfortable size: keeps the test fast under ASan
STEPS = 2
LONG = 1000  # steps of a job meant to be cancelled while it runs
PARAMS = {"prompt": "a koala reading a newspaper", "negative_prompt": "blurry", "width": SIZE, "height": SIZE,
          "steps": STEPS, "cfg_scale": 5.0, "seed": 1234, "sampler_name": "Euler"}


def log(msg):
    print(msg, flush=True)


def main_server(outputs, lora_dir):
    return Server(["-m", MODEL, "--threads", "2", "--max-queue", "2", "--max-steps", str(LONG),
                   "--max-size", "256", "--max-batch", "4", "--max-body", "65536", "--outputs", outputs,
                   "--lora-dir", lora_dir])


def write_lora(path):
    """A kohya-layout LoRA on the first self-attention query projection of the model's U-Net."""
    import struct
    with open(os.path.join(MODEL, "unet", "diffusion_pytorch_model.safetensors"), "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    name = sorted(k for k in header if k.endswith("attn1.to_q.weight"))[0]
    out, inp = header[name]["shape"]
    module = "lora_unet_" + name[:-len(".weight")].replace(".", "_")
    rank = 2
    tensors = {module + ".lora_down.weight": ([rank, inp], [0.5] * (rank * inp)),
               module + ".lora_up.weight": ([out, rank], [0.5] * (out * rank)),
               module + ".alpha": ([], [2.0])}
    hdr, data = {}, b""
    for k, (shape, vals) in tensors.items():
        b = struct.pack("<%df" % len(vals), *vals)
        hdr[k] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    h = json.dumps(hdr).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def test_a1111_lora(srv, ref):
    """<lora:NAME:SCALE> in the prompt merges --lora-dir/NAME.safetensors for that request only."""
    out = srv.json("POST", "/sdapi/v1/txt2img", dict(PARAMS, prompt=PARAMS["prompt"] + " <lora:toy:1.5>"))
    check(b64png(out["images"][0])[3] != ref[3], "a LoRA tag changes the image")
    again = srv.json("POST", "/sdapi/v1/txt2img", dict(PARAMS))
    check(b64png(again["images"][0])[3] == ref[3], "the next request without the tag is the base model again")
    status, _, body = srv.request("POST", "/sdapi/v1/txt2img", dict(PARAMS, prompt="x <lora:absent:1>"))
    check(status >= 400 and b"absent.safetensors" in body, "a tag naming no file: %s %r" % (status, body[:200]))
    log("a1111 LoRA tags: ok")


def wait_running(srv, job_id, timeout=600):
    def f():
        j = srv.json("GET", "/api/v1/jobs/" + job_id)
        return j if j["state"] == "running" and j["step"] >= 1 and j["stage"] not in ("", "text") else None
    j = wait_until(f, timeout)
    check(j is not None, "job %s did not start running" % job_id)
    return j


def wait_finished(srv, job_id, timeout=600):
    j = wait_until(lambda: (lambda x: x if x["state"] in ("done", "failed", "cancelled") else None)(
        srv.json("GET", "/api/v1/jobs/" + job_id)), timeout, 0.05)
    check(j is not None, "job %s did not finish" % job_id)
    return j


def pixels(png_bytes):
    w, h, ch, px, texts = png_decode(png_bytes)
    return (w, h, ch, px), texts


# ---- the tests -----------------------------------------------------------------------------


def test_page(srv):
    status, h, body = srv.request("GET", "/")
    check(status == 200 and h["content-type"].startswith("text/html"), "GET /: %d %s" % (status, h))
    check(b"Generate" in body and b"/api/v1/jobs" in body, "page content")
    check("default-src 'none'" in h.get("content-security-policy", ""), "page CSP")
    check(h.get("x-content-type-options") == "nosniff", "nosniff")
    status, _, _ = srv.request("HEAD", "/index.html")
    check(status == 200, "HEAD /index.html")
    status, _, _ = srv.request("POST", "/", body="x")
    check(status == 405, "POST / must be 405")
    log("page: ok")


def test_discovery(srv):
    models = srv.json("GET", "/sdapi/v1/sd-models")
    check(models[0]["model_name"] == MODEL_NAME, "sd-models: %s" % models)
    samplers = [x["name"] for x in srv.json("GET", "/sdapi/v1/samplers")]
    check(samplers[:2] == ["Euler", "Euler Karras"] and "DPM++ 2M Karras" in samplers and "LCM" in samplers
          and "DPM++ 2M SDE Karras" in samplers and len(samplers) == len(set(samplers)), "samplers: %s" % samplers)
    scheds = [x["name"] for x in srv.json("GET", "/sdapi/v1/schedulers")]
    check(scheds == ["automatic", "karras"], "schedulers: %s" % scheds)
    opts = srv.json("GET", "/sdapi/v1/options")
    check(opts["sd_model_checkpoint"] == MODEL_NAME, "options")
    m = srv.json("GET", "/v1/models")
    check(m["object"] == "list" and m["data"][0]["id"] == MODEL_NAME, "v1/models: %s" % m)
    st = srv.json("GET", "/api/v1/status")
    check(st["family"] == "sdxl" and st["limits"]["max_size"] == 256 and st["limits"]["max_steps"] == LONG, "status")
    p = srv.json("GET", "/sdapi/v1/progress")
    check(p["progress"] == 0 and p["state"]["job_count"] == 0, "idle progress: %s" % p)
    log("discovery: ok")


def test_a1111_img2img(srv):
    """img2img: a txt2img result as the init image (base64, also as a data: URL), with and without a mask."""
    first = srv.json("POST", "/sdapi/v1/txt2img", dict(PARAMS, width=64, height=64))["images"][0]
    for body in (dict(PARAMS, init_images=[first], denoising_strength=0.5, width=None, height=None),
                 dict(PARAMS, init_images=["data:image/png;base64," + first], mask=first, denoising_strength=1.0,
                      mask_blur=4, inpainting_fill=1, width=None, height=None)):
        out = srv.json("POST", "/sdapi/v1/img2img", body)
        info = json.loads(out["info"])
        w, h = png_decode(base64.b64decode(out["images"][0]))[:2]
        check(w == 64 and h == 64, "img2img size %dx%d" % (w, h))
        check("Denoising strength: %g" % body["denoising_strength"] in info["infotexts"][0],
              "strength in the infotext: %r" % info["infotexts"][0])
    log("a1111 img2img: ok")
    return first


def test_a1111_samplers(srv):
    """sampler_name + scheduler pick a sampler of the scheduler interface; the answer and the infotext name it."""
    for body, label in ((dict(PARAMS, sampler_name="DPM++ 2M", scheduler="Karras"), "DPM++ 2M Karras"),
                        (dict(PARAMS, sampler_name="DPM++ 2M SDE Karras"), "DPM++ 2M SDE Karras"),
                        (dict(PARAMS, sampler_name="LCM", scheduler="Automatic"), "LCM")):
        out = srv.json("POST", "/sdapi/v1/txt2img", body)
        info = json.loads(out["info"])
        check(info["sampler_name"] == label and "Sampler: %s," % label in info["infotexts"][0],
              "sampler %s: %s / %r" % (label, info["sampler_name"], info["infotexts"][0]))
    log("a1111 samplers: ok")


def test_a1111(srv):
    out = srv.json("POST", "/sdapi/v1/txt2img", dict(PARAMS, batch_size=2, some_unknown_field=[1, 2]))
    check(len(out["images"]) == 2, "two images")
    check(out["parameters"]["prompt"] == PARAMS["prompt"] and out["parameters"]["some_unknown_field"] == [1, 2],
          "parameters echo")
    info = json.loads(out["info"])
    check(info["seed"] == 1234 and info["all_seeds"] == [1234, 1235], "seeds: %s" % info)
    check(info["width"] == SIZE and info["height"] == SIZE and info["steps"] == STEPS, "size/steps in info")
    check(info["cfg_scale"] == 5.0 and info["sampler_name"] == "Euler", "cfg/sampler in info: %s" % info)
    check(info["negative_prompt"] == "blurry" and info["prompt"] == PARAMS["prompt"], "prompts in info")
    check(info["sd_model_name"] == MODEL_NAME, "model in info")
    imgs = [pixels(base64.b64decode(s)) for s in out["images"]]
    for i, (px, texts) in enumerate(imgs):
        check(px[0] == SIZE and px[1] == SIZE and px[2] == 3, "image size")
        check(texts.get("parameters") == info["infotexts"][i], "PNG parameters == infotexts[%d]" % i)
        check("Seed: %d" % (1234 + i) in info["infotexts"][i], "infotext seed")
        check("Steps: %d" % STEPS in info["infotexts"][i] and "Negative prompt: blurry" in info["infotexts"][i],
              "infotext content: %r" % info["infotexts"][i])
    check(imgs[0][0][3] != imgs[1][0][3], "two seeds, two different images")
    # The second image of the batch is what seed+1 alone gives.
    single = srv.json("POST", "/sdapi/v1/txt2img", dict(PARAMS, seed=1235))
    check(b64png(single["images"][0])[3] == imgs[1][0][3], "batch image 2 == seed 1235 alone")
    rnd = json.loads(srv.json("POST", "/sdapi/v1/txt2img", dict(PARAMS, seed=-1))["info"])
    check(0 <= rnd["seed"] < 2 ** 32 and rnd["all_seeds"] == [rnd["seed"]], "random seed resolved: %s" % rnd["seed"])
    log("a1111 txt2img: ok (seeds %s, random seed %d)" % (info["all_seeds"], rnd["seed"]))
    return imgs[0][0]


def test_openai(srv, ref):
    body = {"prompt": PARAMS["prompt"], "negative_prompt": "blurry", "size": "%dx%d" % (SIZE, SIZE), "n": 1,
            "response_format": "b64_json", "steps": STEPS, "cfg_scale": 5.0, "seed": 1234, "sampler": "euler",
            "model": "whatever", "quality": "hd"}
    out = srv.json("POST", "/v1/images/generations", body)
    check(isinstance(out["created"], int) and len(out["data"]) == 1, "openai answer shape")
    w, h, ch, px, _ = b64png(out["data"][0]["b64_json"])
    check((w, h, ch, px) == ref, "openai image == a1111 image for the same parameters")
    log("openai generations: ok (same pixels as A1111)")


def test_native(srv, ref):
    body = dict(PARAMS)
    body["sampler"] = body.pop("sampler_name")
    status, h, data = srv.request("POST", "/api/v1/jobs", body)
    check(status == 202, "POST /api/v1/jobs: %d %s" % (status, data))
    job = json.loads(data)
    jid = job["id"]
    check(len(jid) == 32 and h.get("location") == "/api/v1/jobs/" + jid, "id and Location")
    events = read_events(srv, job["events"])
    kinds = [e for e, _ in events]
    check(kinds[-1] == "done" and all(k in ("progress", "preview") for k in kinds[:-1]), "event kinds: %s" % kinds)
    events = [(e, d) for e, d in events if e != "preview"]  # previews: tests/server/edit_test.py
    fractions = [d["progress"] for _, d in events]
    check(all(a <= b for a, b in zip(fractions, fractions[1:])) and fractions[-1] == 1.0, "progress monotonic")
    final = events[-1][1]
    check(final["state"] == "done" and final["images"][0]["seed"] == 1234, "final event")
    check(final["images"][0]["steps"] == STEPS and final["images"][0]["width"] == SIZE, "final values")
    j = srv.json("GET", "/api/v1/jobs/" + jid)
    check(j["state"] == "done" and j["step"] == j["total"] and j["eta"] == 0, "job JSON: %s" % j)
    status, h, png = srv.request("GET", job["image"])
    check(status == 200 and h["content-type"] == "image/png", "image")
    px, texts = pixels(png)
    check(px == ref, "native image == a1111 image")
    check(texts["parameters"] == final["images"][0]["infotext"], "native infotext")
    f = final["images"][0]["file"]
    check(f and f.startswith("leandiff-") and f.endswith("-0.png") and "/" not in f, "saved file name %r" % f)
    status, _, _ = srv.request("GET", job["image"] + "?index=1")
    check(status == 400, "index out of range -> 400")
    status, _, data = srv.request("DELETE", "/api/v1/jobs/" + jid)
    check(status == 409, "DELETE finished job -> 409")
    lst = srv.json("GET", "/api/v1/jobs")
    check(any(x["id"] == jid for x in lst), "job listed")
    check(srv.request("GET", "/api/v1/jobs/" + "0" * 32)[0] == 404, "unknown job -> 404")
    check(srv.request("GET", "/api/v1/jobs/../../etc/passwd")[0] == 404, "bad id -> 404")
    log("native jobs + events: ok (%d events, progress %s..%s)" % (len(events), fractions[0], fractions[-1]))
    return png


def test_cancel(srv):
    long_body = {"prompt": "long", "steps": LONG, "width": SIZE, "height": SIZE}
    a = srv.json("POST", "/api/v1/jobs", long_body, expect=202)["id"]
    b = srv.json("POST", "/api/v1/jobs", long_body, expect=202)["id"]
    running = wait_running(srv, a)
    check(srv.json("GET", "/api/v1/jobs/" + b)["state"] == "queued", "second job queued")
    check(srv.json("GET", "/api/v1/jobs/" + b)["queue_position"] == 0, "queue position")
    p = srv.json("GET", "/sdapi/v1/progress")
    check(0 <= p["progress"] < 1 and p["state"]["sampling_steps"] == LONG and p["state"]["job_count"] == 2,
          "progress while running: %s" % p)
    check(p["state"]["sampling_step"] >= 1, "sampling_step")
    # Events of a running job: read two progress events, then cancel from another connection.
    seen = []

    def on_event(ev, d):
        seen.append((ev, d["step"]))
        if len(seen) == 2:
            srv.json("DELETE", "/api/v1/jobs/" + a)
    events = read_events(srv, "/api/v1/jobs/%s/events" % a, on_event)
    check(events[-1][0] == "cancelled", "event stream ends with cancelled: %s" % [e for e, _ in events])
    ja = srv.json("GET", "/api/v1/jobs/" + a)
    check(ja["state"] == "cancelled" and ja["step"] < LONG, "cancelled at step %d" % ja["step"])
    check(srv.request("GET", "/api/v1/jobs/%s/image" % a)[0] == 409, "no image for a cancelled job")
    # The queued one is cancelled without running.
    jb = srv.json("DELETE", "/api/v1/jobs/" + b)
    check(jb["state"] in ("cancelled", "running"), "queued job cancel")
    jb = wait_finished(srv, b)
    check(jb["state"] == "cancelled", "second job cancelled")
    log("cancel: ok (running job stopped at step %d of %d, started at %d)" % (ja["step"], LONG, running["step"]))


def test_interrupt(srv):
    result = {}

    def run():
        result["r"] = srv.request("POST", "/sdapi/v1/txt2img", {"prompt": "x", "steps": LONG, "width": SIZE,
                                                                 "height": SIZE})
    t = threading.Thread(target=run)
    t.start()
    p = wait_until(lambda: (lambda x: x if x["state"]["sampling_step"] >= 1 else None)(
        srv.json("GET", "/sdapi/v1/progress")), 600)
    check(p is not None, "sync job started")
    check(srv.json("POST", "/sdapi/v1/interrupt")["interrupted"] is True, "interrupt")
    t.join(600)
    status, _, data = result["r"]
    check(status == 409 and b"cancel" in data, "interrupted txt2img -> 409: %d %s" % (status, data))
    check(srv.json("POST", "/sdapi/v1/interrupt")["interrupted"] is False, "nothing to interrupt")
    log("interrupt: ok")


def test_validation(srv):
    def err(method, path, body, status, field=None, text=None, headers=None):
        s, h, data = srv.request(method, path, body, headers)
        check(s == status, "%s %s %r: expected %d, got %d %s" % (method, path, body, status, s, data))
        if status >= 400 and data:
            e = json.loads(data)
            if path.startswith("/v1/"):
                msg, fld = e["error"]["message"], e["error"]["param"]
            else:
                msg, fld = e["error"], e.get("field")
            if field:
                check(fld == field, "field %r expected, got %r (%s)" % (field, fld, msg))
            if text:
                check(text in msg, "%r not in %r" % (text, msg))
        return h
    t2i, jobs, oai = "/sdapi/v1/txt2img", "/api/v1/jobs", "/v1/images/generations"
    err("POST", t2i, '{"prompt": "x",', 400, text="invalid JSON")
    err("POST", t2i, "[1,2]", 400, text="JSON object")
    err("POST", t2i, "", 400, text="empty")
    err("POST", t2i, '{"prompt": "x", "prompt": "y"}', 400, text="duplicate")
    err("POST", t2i, {"prompt": "x", "width": "512"}, 400, "width", "must be an integer")
    err("POST", t2i, {"prompt": "x", "width": 4096}, 400, "width", "between 8 and 256 (this server's limit)")
    err("POST", t2i, {"prompt": "x", "height": 100}, 400, "height", "multiple of 8")
    err("POST", t2i, {"prompt": "x", "steps": 0}, 400, "steps", "between 1 and 1000")
    err("POST", t2i, {"prompt": "x", "steps": 5000}, 400, "steps", "this server's limit")
    err("POST", t2i, {"prompt": "x", "cfg_scale": "high"}, 400, "cfg_scale", "must be a number")
    err("POST", t2i, {"prompt": "x", "seed": -5}, 400, "seed")
    err("POST", t2i, {"prompt": "x", "seed": 1.5}, 400, "seed", "integer")
    err("POST", t2i, {"prompt": "x", "batch_size": 3, "n_iter": 2}, 400, "batch_size", "at most 4")
    err("POST", t2i, {"prompt": "x", "batch_size": 9}, 400, "batch_size", "this server's limit")
    err("POST", t2i, {"prompt": 5}, 400, "prompt", "must be a string")
    err("POST", t2i, {"prompt": "x" * 20000}, 400, "prompt", "longer than")
    err("POST", t2i, {"prompt": "x", "sampler_name": "DPM++ 3M"}, 400, "sampler_name", "unknown sampler")
    i2i = "/sdapi/v1/img2img"
    err("POST", i2i, {"prompt": "x"}, 400, "init_images", "init_images")
    err("POST", i2i, {"prompt": "x", "init_images": ["%%%"]}, 400, "init_images", "not base64")
    err("POST", i2i, {"prompt": "x", "init_images": [base64.b64encode(b"GIF89a...").decode()]}, 400, "init_images",
        "not a PNG")
    err("POST", i2i, {"prompt": "x", "init_images": [base64.b64encode(PNG_HEADER_ONLY).decode()]}, 400,
        "init_images", "broken PNG")
    err("POST", t2i, {"prompt": "x", "sampler_name": "DPM++ 2M", "scheduler": "Exponential"}, 400, "scheduler",
        "unknown schedule")
    err("POST", jobs, {"prompt": "x", "widht": 64}, 400, "widht", "unknown field")
    err("POST", jobs, {"steps": 4}, 400, "prompt", "required")
    err("POST", jobs, {"prompt": "x", "n": 0}, 400, "n")
    err("POST", oai, {"prompt": "x", "response_format": "url"}, 400, "response_format", "b64_json")
    err("POST", oai, {"prompt": "x", "size": "big"}, 400, "size", "512x512")
    err("POST", oai, {"prompt": "x", "size": "1024x1024"}, 400, "size", "this server's limit")
    err("POST", oai, {"prompt": "x", "n": 10}, 400, "n", "this server's limit")
    err("POST", oai, {"n": 1}, 400, "prompt", "required")
    h = err("GET", t2i, None, 405)
    check(h.get("allow") == "POST", "Allow header")
    err("DELETE", "/v1/models", None, 405)
    err("PUT", jobs, "{}", 405)
    err("POST", "/sdapi/v1/progress", "{}", 405)
    err("GET", "/nope", None, 404)
    err("GET", "/sdapi/v1/nope", None, 404)
    err("GET", "/../../etc/passwd", None, 404)
    # Bodies over --max-body (64 KiB): declared length, and chunked without a length.
    err("POST", t2i, '{"prompt": "%s"}' % ("x" * 70000), 413, text="too large")
    c = srv.conn()
    c.putrequest("POST", t2i)
    c.putheader("Transfer-Encoding", "chunked")
    c.putheader("Content-Type", "application/json")
    c.endheaders()
    chunk = b"x" * 8192
    try:
        for _ in range(10):
            c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        c.send(b"0\r\n\r\n")
    except OSError:
        pass
    r = c.getresponse()
    check(r.status == 413, "chunked oversize -> 413, got %d" % r.status)
    c.close()
    # Requests from other web sites are refused.
    err("GET", "/v1/models", None, 403, headers={"Origin": "http://evil.example"})
    err("GET", "/v1/models", None, 403, headers={"Host": "evil.example:%d" % srv.port})
    ok = srv.request("GET", "/v1/models", headers={"Origin": "http://127.0.0.1:%d" % srv.port})[0]
    check(ok == 200, "same-origin request allowed")
    ok = srv.request("GET", "/v1/models", headers={"Origin": "https://127.0.0.1:%d" % srv.port})[0]
    check(ok == 200, "same-origin request through a TLS proxy allowed")
    err("GET", "/v1/models", None, 403, headers={"Origin": "http://127.0.0.1:1"})
    log("validation, limits, methods, paths, origin: ok")


def test_queue_full(srv):
    long_body = {"prompt": "long", "steps": LONG, "width": SIZE, "height": SIZE}
    ids = [srv.json("POST", "/api/v1/jobs", long_body, expect=202)["id"]]
    wait_running(srv, ids[0])
    ids += [srv.json("POST", "/api/v1/jobs", long_body, expect=202)["id"] for _ in range(2)]  # --max-queue 2
    for path, body in (("/api/v1/jobs", long_body), ("/sdapi/v1/txt2img", PARAMS),
                       ("/v1/images/generations", {"prompt": "x"})):
        s, h, data = srv.request("POST", path, body)
        check(s == 503 and int(h.get("retry-after", "0")) >= 1, "queue full -> 503 + Retry-After: %d %s" % (s, h))
    for i in ids:
        srv.request("DELETE", "/api/v1/jobs/" + i)
    for i in ids:
        check(wait_finished(srv, i)["state"] == "cancelled", "cancelled")
    log("queue full: ok (503 with Retry-After)")


def test_disconnect(srv):
    """A synchronous client that goes away: its job is cancelled, the next job is unaffected."""
    body = json.dumps({"prompt": "gone", "steps": LONG, "width": SIZE, "height": SIZE}).encode()
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    p = wait_until(lambda: (lambda x: x if x["state"]["sampling_step"] >= 1 else None)(
        srv.json("GET", "/sdapi/v1/progress")), 600)
    check(p is not None, "job started")
    jid = p["state"]["job"]
    s.close()
    j = wait_finished(srv, jid, 60)
    check(j["state"] == "cancelled", "job of a departed client cancelled: %s" % j["state"])
    out = srv.json("POST", "/sdapi/v1/txt2img", PARAMS)
    check(len(out["images"]) == 1, "next job fine")
    log("disconnect: ok (job cancelled at step %d)" % j["step"])


def test_auth():
    key = "test-key-0123456789"
    with Server(["-m", MODEL, "--threads", "2"], env={"LEANDIFF_API_KEY": key}) as srv:
        check(srv.request("GET", "/")[0] == 200, "page needs no key")
        for path in ("/v1/models", "/sdapi/v1/progress", "/api/v1/jobs", "/api/v1/status", "/api/v1/nope"):
            s, h, _ = srv.request("GET", path)
            check(s == 401 and h.get("www-authenticate", "").startswith("Bearer"), "no key -> 401 on " + path)
            s, _, _ = srv.request("GET", path, headers={"Authorization": "Bearer wrong-key-0123456789"})
            check(s == 401, "wrong key -> 401")
            s, _, _ = srv.request("GET", path, headers={"Authorization": "Bearer " + key[:-1]})
            check(s == 401, "prefix of the key -> 401")
        s, _, _ = srv.request("POST", "/sdapi/v1/txt2img", '{"prompt": "x"', headers={})
        check(s == 401, "401 before the body is looked at")
        s, _, _ = srv.request("GET", "/v1/models", headers={"Authorization": "Bearer " + key})
        check(s == 200, "right key -> 200")
        check(srv.stop() == 0, "auth server exit status")
    log("api key: ok")


def test_generate_equal(srv_png):
    """The server's image equals `leandiff generate` with the same parameters and seed."""
    out = os.path.join(tempfile.mkdtemp(prefix="ld-gen-"), "gen.png")
    cmd = [BIN, "generate", "-m", MODEL, "-p", PARAMS["prompt"], "-n", PARAMS["negative_prompt"],
           "-W", str(SIZE), "-H", str(SIZE), "--steps", str(STEPS), "--cfg-scale", "5", "--seed", "1234",
           "--sampler", "euler", "--threads", "2", "-q", "-o", out]
    r = subprocess.run(cmd, capture_output=True, text=True)
    check(r.returncode == 0, "generate failed: %s\n%s" % (" ".join(cmd), r.stderr))
    with open(out, "rb") as f:
        cli = pixels(f.read())[0]
    check(cli == pixels(srv_png)[0], "server image == `leandiff generate` image")
    log("equal to leandiff generate: ok (%dx%d, %d bytes of pixels identical)" % (cli[0], cli[1], len(cli[3])))


def main():
    outputs = tempfile.mkdtemp(prefix="ld-outputs-")
    lora_dir = tempfile.mkdtemp(prefix="ld-loras-")
    write_lora(os.path.join(lora_dir, "toy.safetensors"))
    srv = main_server(outputs, lora_dir)
    try:
        srv.start()
        test_page(srv)
        test_discovery(srv)
        ref = test_a1111(srv)
        test_a1111_lora(srv, ref)
        test_a1111_samplers(srv)
        init_b64 = test_a1111_img2img(srv)
        test_openai(srv, ref)
        png = test_native(srv, ref)
        test_cancel(srv)
        test_interrupt(srv)
        test_validation(srv)
        test_queue_full(srv)
        test_disconnect(srv)
        files = sorted(os.listdir(outputs))
        check(files and all(f.startswith("leandiff-") and f.endswith(".png") for f in files), "outputs: %s" % files)
        rc = srv.stop()
        check(rc == 0, "server exit status %s\n%s" % (rc, srv.stderr()))
    finally:
        srv.stop()
    test_auth()
    test_generate_equal(png)
    print("all server API tests passed")


if __name__ == "__main__":
    main()
