/*
 * remote-store.h - the store interface over a nib-daemon (or nix-daemon)
 * socket, using the worker protocol's client side.
 *
 * Every store.h operation becomes one request.  Log lines the daemon sends
 * (STDERR_NEXT) go to log.h at LOG_NOTICE; activities and results go to the
 * optional progress callbacks.  A failure the daemon reports becomes an
 * error with its message (NIB_E_NOT_FOUND when it says a path is not
 * valid, NIB_E_DENIED when it says the caller is not allowed, else
 * NIB_E_INVALID); an I/O or protocol error makes the store unusable
 * (NIB_E_PROTOCOL / NIB_E_SYS on every later call).
 *
 * Uploads (add_path, add_text, add_nar) write all their data before
 * reading any log frame: nib-daemon sends nothing while a client uploads.
 */
#pragma once

#include "error.h"
#include "protocol.h"
#include "store.h"

struct settings;

/*
 * Connect to the daemon at socket_path (NULL: the settings' socket),
 * handshake, and return a store whose store_dir is settings->store_dir.
 */
int remote_store_open(const struct settings *settings, const char *socket_path, struct store **ret,
		      struct nib_error **err);

/*
 * The same over a connected fd pair (a socket twice, or the pipes of
 * `nib-daemon --stdio`); the fds belong to the store from the call on,
 * even when it fails.
 */
int remote_store_open_fd(const struct settings *settings, int in_fd, int out_fd, struct store **ret,
			 struct nib_error **err);

/* Is store a remote store? */
bool store_is_remote(const struct store *store);

/*
 * Progress callbacks for every later request (activities, results, log
 * lines); h is copied.  NULL restores the default (log lines to log.h).
 */
void remote_store_set_log_handlers(struct store *store, const struct proto_log_handlers *h);

/* The connection (for requests store.h has no function for, e.g. builds). */
struct proto_conn *remote_store_conn(struct store *store);

/*
 * Turn a daemon's reply to a request into the usual return: r is what
 * proto_client_call/finish returned; a daemon error (r == 1) becomes an
 * error in err; -1 marks the store unusable.  Returns 0 or -1.
 */
int remote_store_check(struct store *store, int r, struct proto_error *derr,
		       struct nib_error **err);

struct build_callbacks;

/*
 * build_derivations() through the daemon (BuildPathsWithResults with
 * "drv!*"): the daemon's log lines, messages and progress reach cb as they
 * arrive, each derivation's result once the reply is in (fewer details than
 * locally: no log tail, slot or memory figures).  Returns 0 when everything
 * is valid, -1 with NIB_E_BUILD_FAILED otherwise.  A client that goes away
 * cancels its builds in the daemon.
 */
int remote_store_build(struct store *store, char *const *drv_paths, size_t n,
		       const struct build_callbacks *cb, struct nib_error **err);
