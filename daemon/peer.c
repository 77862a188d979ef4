/* peer.c - peer credentials and authorisation (see peer.h). */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "peer.h"
#include "settings.h"
#include "util.h"
#include "banned.h"

void peer_cred_release(struct peer_cred *p)
{
	free(p->user);
	free(p->group);
	p->user = p->group = NULL;
}

static void fill_user(struct peer_cred *p)
{
	struct passwd pw, *pwp = NULL;
	cleanup_free char *buf = xmalloc(16384);

	if (getpwuid_r(p->uid, &pw, buf, 16384, &pwp) == 0 && pwp != NULL)
		p->user = xstrdup(pw.pw_name);
	else
		p->user = xasprintf("%u", (unsigned)p->uid);
}

static char *group_name(gid_t gid)
{
	struct group gr, *grp = NULL;
	cleanup_free char *buf = xmalloc(16384);

	if (getgrgid_r(gid, &gr, buf, 16384, &grp) == 0 && grp != NULL)
		return xstrdup(gr.gr_name);
	return xasprintf("%u", (unsigned)gid);
}

int peer_get_cred(int fd, struct peer_cred *ret, struct nib_error **err)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return nib_error_errno(err, "cannot get the peer's credentials");
	memset(ret, 0, sizeof(*ret));
	ret->pid = uc.pid;
	ret->uid = uc.uid;
	ret->gid = uc.gid;
	fill_user(ret);
	return 0;
}

void peer_self_cred(struct peer_cred *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->pid = getpid();
	ret->uid = getuid();
	ret->gid = getgid();
	fill_user(ret);
}

void peer_nss_prepare(void)
{
	struct peer_cred self;

	peer_self_cred(&self);
	self.group = group_name(self.gid);
	peer_cred_release(&self);
}

/* Is the peer a member of group (by name), primary or supplementary? */
static bool in_group(const struct peer_cred *p, const char *group)
{
	struct group gr, *grp = NULL;
	cleanup_free char *buf = xmalloc(65536);
	cleanup_free gid_t *gids = NULL;
	int n = 64;
	gid_t want;

	if (getgrnam_r(group, &gr, buf, 65536, &grp) != 0 || grp == NULL)
		return false;
	want = gr.gr_gid;
	if (want == p->gid)
		return true;
	if (strchr(p->user, '/') != NULL)
		return false;
	for (int tries = 0; tries < 4; tries++) {
		int got = n;
		free(gids);
		gids = xcalloc((size_t)n, sizeof(gid_t));
		if (getgrouplist(p->user, p->gid, gids, &got) >= 0) {
			for (int i = 0; i < got; i++)
				if (gids[i] == want)
					return true;
			return false;
		}
		n = got > n ? got : n * 2;
	}
	return false;
}

bool peer_matches(const struct peer_cred *p, char *const *list)
{
	for (size_t i = 0; list != NULL && list[i] != NULL; i++) {
		const char *e = list[i];
		if (STREQ(e, "*") || STREQ(e, p->user))
			return true;
		if (e[0] == '@' && in_group(p, e + 1))
			return true;
	}
	return false;
}

int peer_authorise(const struct peer_cred *p, const struct settings *s, bool *ret_trusted,
		   struct nib_error **err)
{
	cleanup_free char *group = NULL;
	bool trusted;

	if (p->uid == 0) {
		*ret_trusted = true;
		return 0;
	}
	if (s->build_users_group != NULL && s->build_users_group[0] != '\0' &&
	    STREQ(p->group != NULL ? p->group : (group = group_name(p->gid)), s->build_users_group))
		return nib_error_set(err, NIB_E_DENIED, 0,
				     "user '%s' is a build user ('%s' group) and may not use the "
				     "daemon",
				     p->user, s->build_users_group);
	trusted = peer_matches(p, s->trusted_users);
	if (!trusted && !peer_matches(p, s->allowed_users))
		return nib_error_set(err, NIB_E_DENIED, 0,
				     "user '%s' is not allowed to connect to the nib daemon",
				     p->user);
	*ret_trusted = trusted;
	return 0;
}
