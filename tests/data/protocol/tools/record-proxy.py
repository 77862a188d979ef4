#!/usr/bin/env python3
"""Recording proxy for the Nix worker protocol (used to make nib's golden files).

usage: record-proxy.py LISTEN_SOCKET UPSTREAM_SOCKET OUTDIR

Accepts connections on LISTEN_SOCKET, connects each one to UPSTREAM_SOCKET
and relays bytes both ways unchanged.  For connection N it writes
OUTDIR/conn-N.c2s (everything the client sent), OUTDIR/conn-N.s2c
(everything the daemon sent) and OUTDIR/conn-N.chunks, one line per relayed
read: "<direction> <offset> <length>", in arrival order.  Runs until killed.
"""
import os
import select
import socket
import sys
import threading


def relay(n, client, outdir, upstream_path):
    up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    up.connect(upstream_path)
    base = os.path.join(outdir, "conn-%d" % n)
    files = {"c2s": open(base + ".c2s", "wb"), "s2c": open(base + ".s2c", "wb")}
    offsets = {"c2s": 0, "s2c": 0}
    chunks = open(base + ".chunks", "w")
    peers = {client: ("c2s", up), up: ("s2c", client)}
    open_ends = {client, up}
    while open_ends:
        ready, _, _ = select.select(list(open_ends), [], [])
        for s in ready:
            direction, other = peers[s]
            data = s.recv(65536)
            if not data:
                open_ends.discard(s)
                try:
                    other.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                continue
            files[direction].write(data)
            files[direction].flush()
            chunks.write("%s %d %d\n" % (direction, offsets[direction], len(data)))
            chunks.flush()
            offsets[direction] += len(data)
            other.sendall(data)
    for f in files.values():
        f.close()
    chunks.close()
    client.close()
    up.close()


def main():
    listen_path, upstream_path, outdir = sys.argv[1:4]
    os.makedirs(outdir, exist_ok=True)
    if os.path.exists(listen_path):
        os.unlink(listen_path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(listen_path)
    os.chmod(listen_path, 0o666)
    srv.listen(16)
    n = 0
    while True:
        c, _ = srv.accept()
        n += 1
        threading.Thread(target=relay, args=(n, c, outdir, upstream_path), daemon=True).start()


if __name__ == "__main__":
    main()
