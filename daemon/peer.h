/*
 * peer.h - who is on the other end of a daemon connection, and what they
 * may do (allowed-users, trusted-users, build-users-group).
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

struct settings;

struct peer_cred {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	char *user;  /* user name, or the decimal uid when unknown; owned */
	char *group; /* primary group name, or the decimal gid; owned; NULL = not looked up */
};
void peer_cred_release(struct peer_cred *p);

/*
 * SO_PEERCRED of a connected Unix socket, the user name looked up (the
 * group name is left NULL: peer_authorise() looks it up when it needs it).
 */
int peer_get_cred(int fd, struct peer_cred *ret, struct nib_error **err);

/* The credentials of this process (for --stdio), like peer_get_cred(). */
void peer_self_cred(struct peer_cred *ret);

/*
 * Look up this process's user and group once, so that the name service's
 * set-up (nsswitch.conf read, nscd looked for) is done, and inherited by
 * the processes forked afterwards instead of redone in each.
 */
void peer_nss_prepare(void);

/*
 * Does the list (names, "@group" with supplementary membership, "*")
 * match the peer?
 */
bool peer_matches(const struct peer_cred *p, char *const *list);

/*
 * Decide whether the peer may connect: 0 and *ret_trusted, or -1 with an
 * error (NIB_E_DENIED) whose message tells the client why.  root is always
 * allowed and trusted.
 */
int peer_authorise(const struct peer_cred *p, const struct settings *s, bool *ret_trusted,
		   struct nib_error **err);
