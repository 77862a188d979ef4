#!/usr/bin/env python3
"""Dissect a recorded Nix worker-protocol session (see record-proxy.py).

usage: dissect.py CONN_PREFIX [OUTDIR]
       dissect.py --message GOLDEN_FILE...

CONN_PREFIX is a recording without its extension (".../conn-1").  Prints the
handshake, every operation with its arguments, the log frames and the reply.
With OUTDIR, also writes every message as a separate file:
  000-handshake.c2s / 000-handshake.s2c, then for operation i
  NNN-<Op>.request (arguments, without the op code), NNN-<Op>.stderr (log
  frames up to and including STDERR_LAST / STDERR_ERROR) and NNN-<Op>.reply.
With --message, checks that each golden file (tests/data/protocol/<version>/
<kind>-<Op>[-variant].bin) parses completely at its directory's version.
This is a second, independent reading of the protocol (Python, written from
the same facts as libstore/protocol.c); the golden files are cut with it.
"""
import os
import struct
import sys

OPS = {1: "IsValidPath", 6: "QueryReferrers", 7: "AddToStore", 8: "AddTextToStore",
       9: "BuildPaths", 10: "EnsurePath", 11: "AddTempRoot", 12: "AddIndirectRoot",
       13: "SyncWithGC", 14: "FindRoots", 19: "SetOptions", 20: "CollectGarbage",
       23: "QueryAllValidPaths", 26: "QueryPathInfo", 29: "QueryPathFromHashPart",
       30: "QuerySubstitutablePathInfos", 31: "QueryValidPaths", 32: "QuerySubstitutablePaths",
       33: "QueryValidDerivers", 34: "OptimiseStore", 35: "VerifyStore", 36: "BuildDerivation",
       37: "AddSignatures", 38: "NarFromPath", 39: "AddToStoreNar", 40: "QueryMissing",
       41: "QueryDerivationOutputMap", 44: "AddMultipleToStore", 45: "AddBuildLog",
       46: "BuildPathsWithResults"}
STDERR = {0x6f6c6d67: "NEXT", 0x64617461: "READ", 0x64617416: "WRITE", 0x616c7473: "LAST",
          0x63787470: "ERROR", 0x53545254: "START_ACTIVITY", 0x53544f50: "STOP_ACTIVITY",
          0x52534c54: "RESULT"}


class Stream:
    def __init__(self, data):
        self.d = data
        self.pos = 0

    def u64(self):
        if self.pos + 8 > len(self.d):
            raise EOFError("truncated at %d" % self.pos)
        v = struct.unpack_from("<Q", self.d, self.pos)[0]
        self.pos += 8
        return v

    def raw(self, n):
        if self.pos + n > len(self.d):
            raise EOFError("truncated at %d" % self.pos)
        b = self.d[self.pos:self.pos + n]
        self.pos += n
        return b

    def str(self):
        n = self.u64()
        b = self.raw(n)
        pad = (8 - n % 8) % 8
        if any(self.raw(pad)):
            raise ValueError("non-zero padding")
        return b.decode("utf-8", "replace")

    def strs(self):
        return [self.str() for _ in range(self.u64())]

    def framed(self):
        total = 0
        while True:
            n = self.u64()
            if n == 0:
                return total
            self.raw(n)
            total += n


class NarReader:
    def __init__(self, s):
        self.s = s

    def expect(self, tok):
        t = self.s.str()
        if t != tok:
            raise ValueError("NAR: expected %r got %r" % (tok, t))

    def node(self):
        self.expect("(")
        self.expect("type")
        t = self.s.str()
        if t == "regular":
            k = self.s.str()
            if k == "executable":
                self.s.str()
                k = self.s.str()
            assert k == "contents"
            self.s.str()
            self.expect(")")
        elif t == "symlink":
            self.expect("target")
            self.s.str()
            self.expect(")")
        elif t == "directory":
            while True:
                k = self.s.str()
                if k == ")":
                    break
                assert k == "entry"
                self.expect("(")
                self.expect("name")
                self.s.str()
                self.expect("node")
                self.node()
                self.expect(")")
        else:
            raise ValueError("NAR type %r" % t)

    def nar(self):
        self.expect("nix-archive-1")
        self.node()


def minor(v):
    return v & 0xff


def fields(s):
    out = []
    for _ in range(s.u64()):
        t = s.u64()
        out.append(s.u64() if t == 0 else s.str())
    return out


def stderr_frames(s, c, ver, log):
    while True:
        code = s.u64()
        name = STDERR.get(code, hex(code))
        if name == "NEXT":
            log("  < NEXT %r" % s.str())
        elif name == "START_ACTIVITY":
            act, lvl, typ, text = s.u64(), s.u64(), s.u64(), s.str()
            f = fields(s)
            parent = s.u64()
            log("  < START_ACTIVITY id=%d lvl=%d type=%d %r fields=%r parent=%d" % (act, lvl, typ, text, f, parent))
        elif name == "STOP_ACTIVITY":
            log("  < STOP_ACTIVITY id=%d" % s.u64())
        elif name == "RESULT":
            act, typ = s.u64(), s.u64()
            log("  < RESULT id=%d type=%d fields=%r" % (act, typ, fields(s)))
        elif name == "READ":
            n = s.u64()
            data = c.str()
            log("  < READ %d -> client sent %d bytes" % (n, len(data)))
        elif name == "WRITE":
            log("  < WRITE %d bytes" % len(s.str()))
        elif name == "LAST":
            log("  < LAST")
            return True
        elif name == "ERROR":
            if minor(ver) >= 26:
                typ, lvl, nm, msg = s.str(), s.u64(), s.str(), s.str()
                havepos = s.u64()
                traces = []
                for _ in range(s.u64()):
                    s.u64()
                    traces.append(s.str())
                log("  < ERROR type=%r level=%d name=%r msg=%r havePos=%d traces=%r" % (typ, lvl, nm, msg, havepos, traces))
            else:
                log("  < ERROR %r status=%d" % (s.str(), s.u64()))
            return False
        else:
            raise ValueError("unknown stderr code %s at %d" % (name, s.pos))


def path_info(s, ver, keyed):
    d = {}
    if keyed:
        d["path"] = s.str()
    d["deriver"] = s.str()
    d["narHash"] = s.str()
    d["references"] = s.strs()
    d["registrationTime"] = s.u64()
    d["narSize"] = s.u64()
    if minor(ver) >= 16:
        d["ultimate"] = s.u64()
        d["sigs"] = s.strs()
        d["ca"] = s.str()
    return d


def build_result(s, ver):
    d = {"status": s.u64(), "errorMsg": s.str()}
    if minor(ver) >= 29:
        d["timesBuilt"], d["isNonDeterministic"], d["startTime"], d["stopTime"] = s.u64(), s.u64(), s.u64(), s.u64()
    if minor(ver) >= 37:
        for k in ("cpuUser", "cpuSystem"):
            d[k] = s.u64() and s.u64()
    if minor(ver) >= 28:
        d["builtOutputs"] = {s.str(): s.str() for _ in range(s.u64())}
    return d


def basic_derivation(s):
    outs = []
    for _ in range(s.u64()):
        outs.append((s.str(), s.str(), s.str(), s.str()))
    d = {"outputs": outs, "inputSrcs": s.strs(), "platform": s.str(), "builder": s.str(), "args": s.strs()}
    d["env"] = [(s.str(), s.str()) for _ in range(s.u64())]
    return d


def request(op, c, ver):
    m = minor(ver)
    if op in (1, 6, 10, 11, 12, 26, 29, 33, 38, 41):
        return {"arg": c.str()}
    if op in (13, 14, 23, 34):
        return {}
    if op == 7:
        if m < 25:
            d = {"name": c.str(), "fixed": c.u64(), "recursive": c.u64(), "hashAlgo": c.str()}
            NarReader(c).nar()
            return d
        d = {"name": c.str(), "cam": c.str(), "refs": c.strs(), "repair": c.u64()}
        d["framedBytes"] = c.framed()
        return d
    if op == 8:
        return {"name": c.str(), "text": c.str(), "refs": c.strs()}
    if op in (9, 46):
        d = {"paths": c.strs()}
        if op == 46 or m >= 15:
            d["mode"] = c.u64()
        return d
    if op == 19:
        names = ["keepFailed", "keepGoing", "tryFallback", "verbosity", "maxBuildJobs", "maxSilentTime",
                 "useBuildHook", "verboseBuild", "logType", "printBuildTrace", "buildCores", "useSubstitutes"]
        d = {n: c.u64() for n in names}
        if m >= 12:
            d["overrides"] = [(c.str(), c.str()) for _ in range(c.u64())]
        return d
    if op == 20:
        return {"action": c.u64(), "paths": c.strs(), "ignoreLiveness": c.u64(), "maxFreed": c.u64(),
                "obsolete": [c.u64(), c.u64(), c.u64()]}
    if op == 31:
        d = {"paths": c.strs()}
        if m >= 27:
            d["substitute"] = c.u64()
        return d
    if op == 32:
        return {"paths": c.strs()}
    if op == 30:
        if m >= 22:
            return {"paths": [(c.str(), c.str()) for _ in range(c.u64())]}
        return {"paths": c.strs()}
    if op == 35:
        return {"checkContents": c.u64(), "repair": c.u64()}
    if op == 36:
        return {"drvPath": c.str(), "drv": basic_derivation(c), "mode": c.u64()}
    if op == 37:
        return {"path": c.str(), "sigs": c.strs()}
    if op == 39:
        d = path_info(c, ver | 0xff, True)
        d["repair"], d["dontCheckSigs"] = c.u64(), c.u64()
        d["framedBytes"] = c.framed()
        return d
    if op == 40:
        return {"targets": c.strs()}
    if op == 44:
        d = {"repair": c.u64(), "dontCheckSigs": c.u64()}
        start = c.pos
        d["framedBytes"] = c.framed()
        return d
    raise ValueError("no request parser for op %d" % op)


def reply(op, s, ver):
    m = minor(ver)
    if op in (1, 9, 10, 11, 12, 13, 34, 35, 37):
        return s.u64()
    if op in (6, 23, 31, 32, 33):
        return s.strs()
    if op in (8, 29):
        return s.str()
    if op == 7:
        return path_info(s, ver, True)
    if op == 14:
        return [(s.str(), s.str()) for _ in range(s.u64())]
    if op == 19 or op == 39 or op == 44:
        return None
    if op == 20:
        return {"paths": s.strs(), "bytesFreed": s.u64(), "obsolete": s.u64()}
    if op == 26:
        if m >= 17:
            if not s.u64():
                return None
        return path_info(s, ver, False)
    if op == 30:
        return [(s.str(), s.str(), s.strs(), s.u64(), s.u64()) for _ in range(s.u64())]
    if op == 36:
        return build_result(s, ver)
    if op == 38:
        NarReader(s).nar()
        return "NAR"
    if op == 40:
        return {"willBuild": s.strs(), "willSubstitute": s.strs(), "unknown": s.strs(),
                "downloadSize": s.u64(), "narSize": s.u64()}
    if op == 41:
        return [(s.str(), s.str()) for _ in range(s.u64())]
    if op == 46:
        return [(s.str(), build_result(s, ver)) for _ in range(s.u64())]
    raise ValueError("no reply parser for op %d" % op)


def message(kind, path):
    """Check one golden file: tests/data/protocol/<version>/<kind>-<Op>[-variant].bin"""
    ver_s = os.path.basename(os.path.dirname(os.path.abspath(path)))
    major, mnr = ver_s.split(".")
    ver = int(major) << 8 | int(mnr)
    s = Stream(open(path, "rb").read())
    name = os.path.basename(path)[:-4]
    if kind == "req":
        op = s.u64()
        r = request(op, s, ver)
    elif kind == "reply":
        opname = name.split("-")[1]
        op = [k for k, v in OPS.items() if v == opname][0]
        r = reply(op, s, ver)
    elif kind == "stderr":
        r = stderr_frames(s, Stream(b""), ver, lambda x: None)
    elif kind == "handshake":
        if name.endswith("client"):
            assert s.u64() == 0x6e697863
            v = s.u64()
            if minor(v) >= 14 and s.u64():
                s.u64()
            if minor(v) >= 11:
                s.u64()
            r = "client %x" % v
        else:
            assert s.u64() == 0x6478696f
            s.u64()
            if minor(ver) >= 33:
                s.str()
            if minor(ver) >= 35:
                s.u64()
            r = stderr_frames(s, Stream(b""), ver, lambda x: None)
    if s.pos != len(s.d):
        raise ValueError("%s: %d bytes left over" % (path, len(s.d) - s.pos))
    return r


def main():
    if sys.argv[1] == "--message":
        for path in sys.argv[2:]:
            kind = os.path.basename(path).split("-")[0]
            message(kind, path)
            print("ok %s" % path)
        return
    prefix = sys.argv[1]
    outdir = sys.argv[2] if len(sys.argv) > 2 else None
    c = Stream(open(prefix + ".c2s", "rb").read())
    s = Stream(open(prefix + ".s2c", "rb").read())
    if outdir:
        os.makedirs(outdir, exist_ok=True)

    def save(name, stream, start):
        if outdir:
            with open(os.path.join(outdir, name), "wb") as f:
                f.write(stream.d[start:stream.pos])

    print("== handshake")
    assert c.u64() == 0x6e697863
    cver = c.u64()
    assert s.u64() == 0x6478696f
    sver = s.u64()
    ver = min(cver, sver)
    print("  client %d.%d daemon %d.%d -> %d.%d" % (cver >> 8, cver & 0xff, sver >> 8, sver & 0xff, ver >> 8, ver & 0xff))
    if minor(ver) >= 14:
        aff = c.u64()
        if aff:
            c.u64()
    if minor(ver) >= 11:
        c.u64()
    if minor(ver) >= 33:
        print("  daemon nix version %r" % s.str())
    if minor(ver) >= 35:
        print("  trusted %d" % s.u64())
    stderr_frames(s, c, ver, print)
    save("000-handshake.c2s", c, 0)
    save("000-handshake.s2c", s, 0)
    i = 0
    while c.pos < len(c.d):
        i += 1
        op = c.u64()
        name = OPS.get(op, "op%d" % op)
        cstart = c.pos
        req = request(op, c, ver)
        print("== %03d %s %r" % (i, name, req))
        save("%03d-%s.request" % (i, name), c, cstart)
        sstart = s.pos
        ok = stderr_frames(s, c, ver, print)
        save("%03d-%s.stderr" % (i, name), s, sstart)
        if ok:
            rstart = s.pos
            r = reply(op, s, ver)
            print("  reply %r" % (r,))
            save("%03d-%s.reply" % (i, name), s, rstart)
        else:
            break
    print("== end: client %d/%d bytes, daemon %d/%d bytes" % (c.pos, len(c.d), s.pos, len(s.d)))
    if c.pos != len(c.d) or s.pos != len(s.d):
        sys.exit(1)


if __name__ == "__main__":
    main()
