#!/usr/bin/env python3
"""Cut golden files for protocol 1.34 out of recorded Nix 2.8 sessions.

usage: make-golden.py RECORDINGS_DIR OUT_DIR

RECORDINGS_DIR holds one directory per recorded command (record-proxy.py
output, conn-1.*).  Each golden file is one message, cut with dissect.py:
  handshake-client.bin / handshake-server.bin   the greeting, both directions
  req-<Op>[-variant].bin    op code + arguments (+ the framed data that follows)
  reply-<Op>[-variant].bin  what follows STDERR_LAST
  stderr-<what>.bin         log frames up to and including LAST / ERROR
"""
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OPS = {"IsValidPath": 1, "QueryReferrers": 6, "AddToStore": 7, "BuildPaths": 9, "EnsurePath": 10,
       "AddTempRoot": 11, "AddIndirectRoot": 12, "FindRoots": 14, "SetOptions": 19,
       "CollectGarbage": 20, "QueryPathInfo": 26, "QueryValidPaths": 31, "VerifyStore": 35,
       "BuildDerivation": 36, "NarFromPath": 38, "AddToStoreNar": 39, "QueryMissing": 40,
       "QueryDerivationOutputMap": 41, "AddMultipleToStore": 44, "BuildPathsWithResults": 46}

# (golden name, session, message file in the cut session)
PICKS = [
    ("handshake-client.bin", "q-hash", "000-handshake.c2s"),
    ("handshake-server.bin", "q-hash", "000-handshake.s2c"),
    ("req-SetOptions.bin", "q-hash", "001-SetOptions.request"),
    ("req-SetOptions-builders.bin", "build-remote-ok", "001-SetOptions.request"),
    ("req-SetOptions-hook.bin", "builder-ok", "001-SetOptions.request"),
    ("req-IsValidPath.bin", "check-validity", "002-IsValidPath.request"),
    ("reply-IsValidPath.bin", "check-validity", "002-IsValidPath.reply"),
    ("req-QueryPathInfo.bin", "q-references", "002-QueryPathInfo.request"),
    ("reply-QueryPathInfo.bin", "q-references", "002-QueryPathInfo.reply"),
    ("reply-QueryPathInfo-ca.bin", "nar-from-path", "002-QueryPathInfo.reply"),
    ("reply-QueryPathInfo-invalid.bin", "q-invalid", "002-QueryPathInfo.reply"),
    ("req-QueryReferrers.bin", "q-referrers", "002-QueryReferrers.request"),
    ("reply-QueryReferrers.bin", "q-referrers", "002-QueryReferrers.reply"),
    ("req-AddToStore.bin", "add-recursive", "002-AddToStore.request"),
    ("reply-AddToStore.bin", "add-recursive", "002-AddToStore.reply"),
    ("req-AddToStore-text.bin", "instantiate-hello", "002-AddToStore.request"),
    ("reply-AddToStore-text.bin", "instantiate-hello", "002-AddToStore.reply"),
    ("req-AddToStoreNar.bin", "add-fixed-flat", "003-AddToStoreNar.request"),
    ("req-AddToStoreNar-import.bin", "import", "002-AddToStoreNar.request"),
    ("req-AddMultipleToStore.bin", "copy-from-other", "003-AddMultipleToStore.request"),
    ("req-QueryValidPaths.bin", "copy-from-other", "002-QueryValidPaths.request"),
    ("reply-QueryValidPaths.bin", "copy-from-other", "002-QueryValidPaths.reply"),
    ("req-QueryMissing.bin", "build-remote-ok", "002-QueryMissing.request"),
    ("reply-QueryMissing.bin", "build-remote-ok", "002-QueryMissing.reply"),
    ("req-BuildPaths.bin", "realise-hello", "005-BuildPaths.request"),
    ("reply-BuildPaths.bin", "realise-hello", "005-BuildPaths.reply"),
    ("stderr-BuildPaths.bin", "realise-hello", "005-BuildPaths.stderr"),
    ("stderr-BuildPaths-error.bin", "realise-fail", "004-BuildPaths.stderr"),
    ("req-BuildPathsWithResults.bin", "build-hello", "003-BuildPathsWithResults.request"),
    ("reply-BuildPathsWithResults.bin", "build-hello", "003-BuildPathsWithResults.reply"),
    ("reply-BuildPathsWithResults-failure.bin", "build-hello-mkdir-fail",
     "003-BuildPathsWithResults.reply"),
    ("req-BuildDerivation.bin", "builder-ok", "004-BuildDerivation.request"),
    ("reply-BuildDerivation.bin", "builder-ok", "004-BuildDerivation.reply"),
    ("reply-BuildDerivation-failure.bin", "builder-mismatch", "004-BuildDerivation.reply"),
    ("req-QueryDerivationOutputMap.bin", "realise-hello", "006-QueryDerivationOutputMap.request"),
    ("reply-QueryDerivationOutputMap.bin", "realise-hello", "006-QueryDerivationOutputMap.reply"),
    ("req-EnsurePath.bin", "realise-hello", "007-EnsurePath.request"),
    ("reply-EnsurePath.bin", "realise-hello", "007-EnsurePath.reply"),
    ("req-AddTempRoot.bin", "add-root-indirect", "007-AddTempRoot.request"),
    ("req-AddIndirectRoot.bin", "add-root-indirect", "008-AddIndirectRoot.request"),
    ("req-FindRoots.bin", "gc-print-roots", "002-FindRoots.request"),
    ("reply-FindRoots.bin", "gc-print-roots", "002-FindRoots.reply"),
    ("req-CollectGarbage.bin", "delete-hello", "002-CollectGarbage.request"),
    ("reply-CollectGarbage.bin", "delete-hello", "002-CollectGarbage.reply"),
    ("stderr-CollectGarbage.bin", "delete-hello", "002-CollectGarbage.stderr"),
    ("req-CollectGarbage-max-freed.bin", "gc-max-freed", "002-CollectGarbage.request"),
    ("reply-CollectGarbage-max-freed.bin", "gc-max-freed", "002-CollectGarbage.reply"),
    ("req-VerifyStore.bin", "verify", "002-VerifyStore.request"),
    ("reply-VerifyStore.bin", "verify", "002-VerifyStore.reply"),
    ("req-NarFromPath.bin", "nar-from-path", "003-NarFromPath.request"),
    ("reply-NarFromPath.bin", "nar-from-path", "003-NarFromPath.reply"),
]


def main():
    rec, out = sys.argv[1:3]
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, session, msg in PICKS:
            cut = os.path.join(tmp, session)
            if not os.path.isdir(cut):
                subprocess.run([sys.executable, os.path.join(HERE, "dissect.py"),
                                os.path.join(rec, session, "conn-1"), cut],
                               check=True, stdout=subprocess.DEVNULL)
            data = open(os.path.join(cut, msg), "rb").read()
            if name.startswith("req-"):
                op = name[4:-4].split("-")[0]
                data = struct.pack("<Q", OPS[op]) + data
            with open(os.path.join(out, name), "wb") as f:
                f.write(data)
            print("%-42s %6d bytes  (%s/%s)" % (name, len(data), session, msg))


if __name__ == "__main__":
    main()
