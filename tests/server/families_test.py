"""`leandiff serve` with the two-stage families (Wuerstchen v2, Stable Cascade):
the A1111 and native job APIs return the same pixels as `leandiff generate` with
the same parameters and seed, and `info` reports the prior settings used."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Server, b64png, check, env_paths, png_decode, testdata_dir, wait_until  # noqa: E402


def main():
    binary, src, build = env_paths()
    models = os.path.join(testdata_dir(src), "models")
    out_dir = os.path.join(build, "test-tmp", "server_families")
    os.makedirs(out_dir, exist_ok=True)
    checks = 0
    for prior, decoder in (("wuerstchen-prior-tiny", "wuerstchen-tiny"),
                           ("stable-cascade-prior-tiny", "stable-cascade-tiny")):
        pdir, ddir = os.path.join(models, prior), os.path.join(models, decoder)
        ref_png = os.path.join(out_dir, prior + ".png")
        subprocess.run([binary, "generate", "-m", pdir, "--decoder", ddir, "-p", "a koala", "-W", "256", "-H", "256",
                        "--prior-steps", "2", "--steps", "2", "-s", "5", "-q", "-o", ref_png], check=True,
                       stdout=subprocess.DEVNULL)
        with open(ref_png, "rb") as f:
            ref = png_decode(f.read())
        with Server(["-m", pdir, "--decoder", ddir, "-t", "2"], binary=binary) as srv:
            r = srv.json("POST", "/sdapi/v1/txt2img", {"prompt": "a koala", "width": 256, "height": 256, "steps": 2,
                                                       "prior_steps": 2, "seed": 5})
            img = b64png(r["images"][0])
            check(img[:4] == ref[:4], "%s: A1111 image differs from `leandiff generate`" % prior)
            info = json.loads(r["info"])
            check(info["seed"] == 5 and info["width"] == 256 and info["steps"] == 2, "%s: info %r" % (prior, info))
            check("Prior steps: 2" in info["infotexts"][0], "%s: infotext %r" % (prior, info["infotexts"][0]))
            job = srv.json("POST", "/api/v1/jobs", {"prompt": "a koala", "width": 256, "height": 256, "steps": 2,
                                                    "prior_steps": 2, "seed": 5}, expect=202)
            state = wait_until(lambda: srv.json("GET", "/api/v1/jobs/" + job["id"])["state"] in
                               ("done", "failed", "cancelled"), 300)
            check(state, "%s: job did not finish" % prior)
            status, _, data = srv.request("GET", "/api/v1/jobs/%s/image" % job["id"])
            check(status == 200 and png_decode(data)[:4] == ref[:4],
                  "%s: job API image differs from `leandiff generate`" % prior)
            # the defaults the page shows: what a job leaving the fields out gets
            d = srv.json("GET", "/api/v1/status")["defaults"]
            job = srv.json("POST", "/api/v1/jobs", {"prompt": "a koala", "width": 256, "height": 256, "steps": 2,
                                                    "seed": 5}, expect=202)
            j = wait_until(lambda: (lambda x: x if x["state"] in ("done", "failed", "cancelled") else None)(
                srv.json("GET", "/api/v1/jobs/" + job["id"])), 300)
            im = j["images"][0]
            check(d["prior_steps"] == im["prior_steps"] and d["prior_cfg_scale"] == im["prior_cfg_scale"]
                  and d["cfg_scale"] == im["cfg_scale"] and d["sampler"] == im["sampler_name"] == "DDPM"
                  and d["width"] == d["height"] == 1024 and d["steps"] > 0,
                  "%s: status defaults %s, job image %s" % (prior, d, im))
            checks += 4
            print("ok   %s: A1111 and job API images equal `leandiff generate` (256x256, 2+2 steps, seed 5)" % prior)
        check(srv.proc.returncode == 0, "%s: server exit status %s" % (prior, srv.proc.returncode))
    print("%d passed, 0 failed" % checks)


if __name__ == "__main__":
    main()
