/*
 * serve.h - the daemon's connection loop: one worker-protocol client served
 * against a store, as a library function (nib-daemon forks one process per
 * connection and calls it; tests call it over a socketpair()).
 *
 * Trust: a trusted peer may do everything the store allows.  An untrusted
 * peer may only change the client-safe settings through SetOptions (the
 * others are ignored with a warning frame; max-jobs and max-build-log-size
 * can only be lowered), may not repair (VerifyStore, AddToStore,
 * BuildPaths, BuildDerivation), may not build derivations given inline
 * (BuildDerivation) unless they are fixed-output, may not add NARs
 * (AddToStoreNar, AddMultipleToStore: nib has no signatures, so a NAR from
 * an untrusted peer would be an unsigned path), and may not make the
 * collector ignore liveness.  Repairing builds is not implemented (an error
 * for trusted peers too); checking them (bmCheck) is open to everyone.
 *
 * Logging: serve.c logs through log.h (one line per failed operation and
 * per build request at LOG_INFO, each request at LOG_DEBUG) prefixed with
 * peer->tag.  While builds run, what the process logs also reaches the
 * client as far as the verbosity it sent with SetOptions asks.  Nothing is
 * sent to the client while it uploads data (AddToStore, AddToStoreNar,
 * AddMultipleToStore), so that a client that writes all its data before
 * reading cannot deadlock.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "protocol.h"

struct store;
struct settings;

struct serve_peer {
	pid_t pid; /* 0 = unknown */
	uid_t uid;
	gid_t gid;
	bool trusted;
	const char *tag; /* log prefix, e.g. "conn 3 uid=1000"; NULL = none */
	bool no_builds;	 /* tests and fuzzing: refuse to run builders */
};

/* The Nix version string nib's daemon announces in the handshake (>= 1.33). */
#define SERVE_NIX_VERSION "2.8.0-nib"

/*
 * Serve one connection: the server handshake, then requests until the
 * client hangs up.  settings is the connection's own copy (SetOptions
 * changes it).  Returns 0 when the client hung up cleanly, -1 with err on a
 * handshake failure, a request that could not be decoded (an error frame
 * was sent before giving up) or an I/O error.  Failures of single
 * operations are reported to the client and do not end the loop.
 */
int serve_connection(struct store *store, struct settings *settings, struct proto_conn *conn,
		     const struct serve_peer *peer, struct nib_error **err);

/*
 * Refuse a connection: handshake, then STDERR_ERROR with msg instead of
 * STDERR_LAST (the client prints msg).  Returns 0, or -1 with err when the
 * handshake itself failed.
 */
int serve_refuse(struct proto_conn *conn, enum proto_trust trust, const char *msg,
		 struct nib_error **err);
