#!/usr/bin/env python3
# Rewrite the Nix 2.8 `nix show-derivation` vectors (nix-store/json) into the
# other JSON forms nib reads, for the tests: each must give back Nix's .drv.
#   forms/v3/    version 3: base names, inputDrvs {outputs, dynamicOutputs},
#                "method" + "hashAlgo", hex hash
#   forms/v4/    version 4: inputs {srcs, drvs}, SRI hash, "name" member
#   forms/bare/  unversioned bare object (what `nix derivation add` took in
#                Nix 2.15-2.31) with every input-addressed or fixed output
#                path left out and the env vars of outputs removed
import base64, json, os, sys

here = os.path.dirname(os.path.abspath(__file__))
src = os.path.join(here, "nix-store", "json")
methods = {"r:": "nar", "text:": "text", "git:": "git"}

def split_algo(a):
    for p, m in methods.items():
        if a.startswith(p):
            return m, a[len(p):]
    return "flat", a

def base(p):
    return p.rsplit("/", 1)[1]

for f in sorted(os.listdir(src)):
    (path, d), = json.load(open(os.path.join(src, f))).items()
    name = base(path)[33:-4]
    v3 = {"name": name, "version": 3, "outputs": {}, "inputSrcs": [base(p) for p in d["inputSrcs"]],
          "inputDrvs": {base(p): {"outputs": o, "dynamicOutputs": {}} for p, o in d["inputDrvs"].items()},
          "system": d["system"], "builder": d["builder"], "args": d["args"], "env": d["env"]}
    v4 = dict(v3, version=4)
    del v4["inputSrcs"], v4["inputDrvs"]
    v4["inputs"] = {"srcs": v3["inputSrcs"], "drvs": v3["inputDrvs"]}
    v4["outputs"] = {}
    bare = {k: v for k, v in d.items() if k != "outputs"}
    bare["name"] = name
    bare["outputs"] = {}
    bare["env"] = dict(d["env"])
    for o, spec in d["outputs"].items():
        s3, s4, sb = {}, {}, {}
        if "path" in spec:
            s3["path"] = s4["path"] = base(spec["path"])
            bare["env"].pop(o, None)
        if "hashAlgo" in spec:
            m, a = split_algo(spec["hashAlgo"])
            s3["method"] = s4["method"] = m
            s3["hashAlgo"] = a
            sb["hashAlgo"] = spec["hashAlgo"]
            if "hash" in spec:
                s3["hash"] = spec["hash"]
                s4["hash"] = a + "-" + base64.b64encode(bytes.fromhex(spec["hash"])).decode()
                sb["hash"] = spec["hash"]
            else:
                s4["hashAlgo"] = a
            if spec.get("impure"):
                s3["impure"] = s4["impure"] = sb["impure"] = True
        v3["outputs"][o] = s3
        v4["outputs"][o] = s4
        bare["outputs"][o] = sb
    for form, obj in (("v3", v3), ("v4", v4), ("bare", bare)):
        os.makedirs(os.path.join(here, "forms", form), exist_ok=True)
        with open(os.path.join(here, "forms", form, f), "w") as out:
            json.dump(obj, out, indent=2, sort_keys=True, ensure_ascii=False)
            out.write("\n")
