/*
 * test-peer.c - the daemon's peer authorisation (daemon/peer.c):
 * allowed-users / trusted-users matching by name, @group (primary and
 * supplementary) and "*", root always trusted, build users refused.
 */
#include "config.h"

#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cunit-run.h"
#include "cleanup.h"
#include "peer.h"
#include "settings.h"
#include "util.h"

static struct peer_cred cred(uid_t uid, gid_t gid, const char *user, const char *group)
{
	struct peer_cred p = { .pid = 1, .uid = uid, .gid = gid };

	p.user = xstrdup(user);
	p.group = xstrdup(group);
	return p;
}

static char **list(const char *a, const char *b)
{
	char **v = xcalloc(3, sizeof(char *));

	v[0] = a ? xstrdup(a) : NULL;
	v[1] = a && b ? xstrdup(b) : NULL;
	return v;
}

static void test_matches(void)
{
	struct peer_cred p = cred(1234, 0, "alice", "root");
	cleanup_strv char **star = list("*", NULL);
	cleanup_strv char **names = list("bob", "alice");
	cleanup_strv char **others = list("bob", "carol");
	cleanup_strv char **rootgrp = list("@root", NULL);
	cleanup_strv char **nogrp = list("@no-such-group-nib", NULL);
	cleanup_strv char **empty = list(NULL, NULL);

	CU_ASSERT(peer_matches(&p, star));
	CU_ASSERT(peer_matches(&p, names));
	CU_ASSERT(!peer_matches(&p, others));
	CU_ASSERT(peer_matches(&p, rootgrp)); /* primary group gid 0 */
	CU_ASSERT(!peer_matches(&p, nogrp));
	CU_ASSERT(!peer_matches(&p, empty));
	peer_cred_release(&p);
}

static void test_authorise(void)
{
	cleanup_settings struct settings *s = settings_new();
	cleanup_error struct nib_error *e = NULL;
	struct peer_cred root = cred(0, 0, "root", "root");
	struct peer_cred alice = cred(1234, 1234, "alice", "alice");
	struct peer_cred builder = cred(30001, 30000, "nixbld1", "nixbld");
	bool trusted = true;

	CU_ASSERT_EQUAL(peer_authorise(&root, s, &trusted, &e), 0);
	CU_ASSERT(trusted);
	CU_ASSERT_EQUAL(peer_authorise(&alice, s, &trusted, &e), 0); /* allowed-users = * */
	CU_ASSERT(!trusted);
	CU_ASSERT_EQUAL(settings_set(s, "trusted-users", "root alice", ORIGIN_CMDLINE, NULL, &e),
			0);
	CU_ASSERT_EQUAL(peer_authorise(&alice, s, &trusted, &e), 0);
	CU_ASSERT(trusted);
	CU_ASSERT_EQUAL(settings_set(s, "trusted-users", "root", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT_EQUAL(settings_set(s, "allowed-users", "bob", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT_EQUAL(peer_authorise(&alice, s, &trusted, &e), -1);
	CU_ASSERT(e != NULL && e->code == NIB_E_DENIED && strstr(e->msg, "'alice'") != NULL);
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(settings_set(s, "allowed-users", "*", ORIGIN_CMDLINE, NULL, &e), 0);
	CU_ASSERT_EQUAL(settings_set(s, "build-users-group", "nixbld", ORIGIN_CMDLINE, NULL, &e),
			0);
	CU_ASSERT_EQUAL(peer_authorise(&builder, s, &trusted, &e), -1);
	CU_ASSERT(e != NULL && strstr(e->msg, "build user") != NULL);
	nib_error_clear(&e);
	/* As peer_get_cred() leaves it: the group name is looked up from the gid. */
	CU_ASSERT_EQUAL(settings_set(s, "build-users-group", "root", ORIGIN_CMDLINE, NULL, &e), 0);
	free(alice.group);
	alice.group = NULL;
	CU_ASSERT_EQUAL(peer_authorise(&alice, s, &trusted, &e), 0); /* gid 1234 */
	alice.gid = 0;
	CU_ASSERT_EQUAL(peer_authorise(&alice, s, &trusted, &e), -1);
	CU_ASSERT(e != NULL && strstr(e->msg, "build user ('root' group)") != NULL);
	nib_error_clear(&e);
	peer_cred_release(&root);
	peer_cred_release(&alice);
	peer_cred_release(&builder);
}

static void test_self(void)
{
	struct peer_cred p;

	peer_self_cred(&p);
	CU_ASSERT_EQUAL(p.uid, getuid());
	CU_ASSERT_PTR_NOT_NULL(p.user);
	CU_ASSERT_PTR_NULL(p.group);
	peer_cred_release(&p);
	peer_nss_prepare();
}

static CU_TestInfo tests[] = {
	{ "peer_matches: names, @group, *", test_matches },
	{ "peer_authorise: trust, allowed, build users", test_authorise },
	{ "peer_self_cred", test_self },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "peer", NULL, NULL, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_run(suites);
}
