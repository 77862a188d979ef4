#!/usr/bin/env python3
"""Seed the fuzz-protocol corpus from the recorded sessions and golden files.

usage: make-fuzz-corpus.py PROTOCOL_DATA_DIR CORPUS_DIR

See tests/fuzz/fuzz-protocol.c for the meaning of the first byte(s).
"""
import glob
import hashlib
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dissect  # noqa: E402


def ops_of(c2s):
    """The op codes of a recorded client stream, in order (using the dissector)."""
    c = dissect.Stream(c2s)
    assert c.u64() == 0x6e697863
    ver = min(c.u64(), 0x125)
    if dissect.minor(ver) >= 14 and c.u64():
        c.u64()
    if dissect.minor(ver) >= 11:
        c.u64()
    ops = []
    while c.pos < len(c.d):
        op = c.u64()
        dissect.request(op, c, ver)
        ops.append(op)
    return ops


def main():
    data, out = sys.argv[1:3]
    os.makedirs(out, exist_ok=True)
    seeds = []
    for c2s in sorted(glob.glob(os.path.join(data, "sessions", "*.c2s"))):
        cbytes = open(c2s, "rb").read()
        sbytes = open(c2s[:-4] + ".s2c", "rb").read()
        seeds.append(b"\x00" + cbytes)
        ops = ops_of(cbytes)[:255]
        seeds.append(b"\x01" + bytes([len(ops)]) + bytes(o & 0xff for o in ops) + sbytes)
    for path in sorted(glob.glob(os.path.join(data, "1.*", "*.bin"))):
        ver = int(os.path.basename(os.path.dirname(path)).split(".")[1])
        vb = bytes([ver - 10])
        body = open(path, "rb").read()
        name = os.path.basename(path)[:-4]
        kind = name.split("-")[0]
        if kind == "req":
            seeds.append(b"\x02" + vb + body)
        elif kind == "reply":
            op = [k for k, v in dissect.OPS.items() if v == name.split("-")[1]][0]
            seeds.append(b"\x03" + vb + bytes([op]) + body)
        elif kind == "stderr":
            seeds.append(b"\x04" + vb + body)
    for s in ["/nix/store/56ng11iqlr2zybc3322kigysp7mychza-hello.drv!doc,out",
              "/nix/store/56ng11iqlr2zybc3322kigysp7mychza-hello.drv!*",
              "/nix/store/56ng11iqlr2zybc3322kigysp7mychza-hello.drv"]:
        seeds.append(b"\x05" + bytes([24]) + s.encode())
        seeds.append(b"\x05" + bytes([11]) + s.encode())
    for s in seeds:
        name = hashlib.sha1(s).hexdigest()
        with open(os.path.join(out, name), "wb") as f:
            f.write(s)
    print("%d seeds" % len(seeds))


if __name__ == "__main__":
    main()
