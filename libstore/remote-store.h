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

/*
 * Tell the daemon the client's settings (SetOptions): verbosity (Nix's
 * level, see proto_verbosity_of) and, as overrides, every setting the user
 * chose for this invocation (--option, dedicated flags, $NIB_CONFIG), apart
 * from those that choose the store and the daemon (store-dir, store-root,
 * state-dir, log-dir, daemon-socket).  The fixed fields carry the built-in
 * defaults, which nib-daemon does not apply.  Nothing is sent when there is
 * nothing to say (default verbosity, no overrides).  The daemon's warnings
 * (a restricted setting from an untrusted user) go to the log handlers.
 */
int remote_store_set_options(struct store *store, const struct settings *settings,
			     uint64_t verbosity, struct nib_error **err);

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
struct build_options;

/*
 * build_derivations() through the daemon (BuildPathsWithResults with
 * "drv!*"): the daemon's log lines, messages and progress reach cb as they
 * arrive, each derivation's result once the reply is in (fewer details than
 * locally: no log tail, slot or memory figures).  Of opts (may be NULL)
 * keep_going is sent with SetOptions first, check becomes the build mode
 * (bmCheck); max_jobs is the daemon's
 * business (send it as the setting max-jobs) and cancel_fd is not used: a
 * client that goes away cancels its builds in the daemon.  Returns 0 when
 * everything is valid, -1 with NIB_E_BUILD_FAILED otherwise.
 */
int remote_store_build(struct store *store, char *const *drv_paths, size_t n,
		       const struct build_options *opts, const struct build_callbacks *cb,
		       struct nib_error **err);

struct derivation;

/*
 * BuildDerivation: have the daemon build drv, given inline (its input
 * derivations must be resolved into input sources already; drv_path is
 * the path it is known by).  mode is enum proto_build_mode.  Returns 0
 * with *ret (release with proto_build_result_release), whatever the build's
 * outcome; -1 when the daemon refused the request (NIB_E_DENIED for an
 * untrusted client's input-addressed derivation) or on I/O errors.
 */
int remote_store_build_derivation(struct store *store, const char *drv_path,
				  const struct derivation *drv, uint64_t mode,
				  struct proto_build_result *ret, struct nib_error **err);
