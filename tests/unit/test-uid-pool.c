#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cunit-run.h"
#include "cleanup.h"
#include "settings.h"
#include "strbuf.h"
#include "uid-pool.h"
#include "uid-pool-internal.h"
#include "util.h"

/*
 * The test pool: 8 slots of 1024 IDs from 2999999488 (a multiple of 1024),
 * i.e. 2999999488 .. 3000007679, checked against fake account databases.
 */
#define T_START 2999999488LL
#define T_PER 1024LL
#define T_COUNT 8192LL
#define T_END (T_START + T_COUNT - 1)

static char *tmp;
static char *state_dir;
static char *build_dir;
static struct uid_pool_db db;
static char *db_paths[4];

static const char base_passwd[] = "root:x:0:0:root:/root:/bin/sh\n"
				  "daemon:x:1:1::/:/usr/sbin/nologin\n"
				  "nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n";
static const char base_group[] = "root:x:0:\n"
				 "nogroup:x:65534:\n";

static char *tpath(const char *name)
{
	return path_join(tmp, name);
}

static void write_db(int which, const char *content)
{
	CU_ASSERT_EQUAL(test_write_file(db_paths[which], content), 0);
}

static void setup(void)
{
	static const char *names[] = { "passwd", "group", "subuid", "subgid" };

	tmp = test_mkdtemp();
	state_dir = tpath("state");
	build_dir = path_join(state_dir, "builds");
	for (int i = 0; i < 4; i++) {
		free(db_paths[i]);
		db_paths[i] = tpath(names[i]);
	}
	db.passwd = db_paths[0];
	db.group = db_paths[1];
	db.subuid = db_paths[2];
	db.subgid = db_paths[3];
	write_db(0, base_passwd);
	write_db(1, base_group);
	/* subuid/subgid stay missing unless a test writes them. */
}

static void teardown(void)
{
	test_rmtree(tmp);
	free(tmp);
	free(state_dir);
	free(build_dir);
	tmp = state_dir = build_dir = NULL;
}

static struct settings *mk_settings(bool auto_mode)
{
	struct settings *s = settings_new();
	struct nib_error *e = NULL;

	settings_set(s, "state-dir", state_dir, ORIGIN_CMDLINE, NULL, &e);
	settings_set(s, "ids-per-build", "1024", ORIGIN_CMDLINE, NULL, &e);
	settings_set(s, "start-id", "2999999488", ORIGIN_CMDLINE, NULL, &e);
	settings_set(s, "id-count", "8192", ORIGIN_CMDLINE, NULL, &e);
	settings_set(s, "auto-allocate-uids", auto_mode ? "true" : "false", ORIGIN_CMDLINE, NULL,
		     &e);
	CU_ASSERT_PTR_NULL(e);
	nib_error_free(e);
	return s;
}

static struct uid_pool *open_pool(const struct settings *s)
{
	cleanup_error struct nib_error *e = NULL;
	struct uid_pool *p = uid_pool_open(s, &db, &e);

	CU_ASSERT_PTR_NOT_NULL(p);
	if (e != NULL)
		fprintf(stderr, "uid_pool_open: %s\n", e->msg);
	return p;
}

/* Validation must fail with a NIB_E_CONFIG message containing every part. */
static void expect_invalid(const struct settings *s, const char *part1, const char *part2)
{
	cleanup_error struct nib_error *e = NULL;

	CU_ASSERT_EQUAL(uid_pool_validate(s, &db, &e), -1);
	CU_ASSERT_PTR_NOT_NULL(e);
	if (e == NULL)
		return;
	CU_ASSERT_EQUAL(e->code, NIB_E_CONFIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(e->msg, part1));
	if (part2 != NULL)
		CU_ASSERT_PTR_NOT_NULL(strstr(e->msg, part2));
	if (strstr(e->msg, part1) == NULL || (part2 && strstr(e->msg, part2) == NULL))
		fprintf(stderr, "unexpected message: %s\n", e->msg);
}

static void expect_valid(const struct settings *s)
{
	cleanup_error struct nib_error *e = NULL;

	CU_ASSERT_EQUAL(uid_pool_validate(s, &db, &e), 0);
	if (e != NULL)
		fprintf(stderr, "unexpected error: %s\n", e->msg);
}

/* ---- validation ---- */

static void test_validate_ok(void)
{
	cleanup_settings struct settings *s = mk_settings(true);

	expect_valid(s);
	/* Defaults are valid against these databases too. */
	{
		cleanup_settings struct settings *d = settings_new();
		expect_valid(d);
	}
}

static void test_validate_numbers(void)
{
	cleanup_settings struct settings *s = mk_settings(true);

	s->start_id = 0;
	expect_invalid(s, "setting 'start-id' (0) must be greater than 0", NULL);
	s->start_id = -1024;
	expect_invalid(s, "setting 'start-id' (-1024) must be greater than 0", NULL);
	s->start_id = T_START + 1;
	expect_invalid(
		s, "setting 'start-id' (2999999489) must be a multiple of 'ids-per-build' (1024)",
		NULL);
	s->start_id = T_START;
	s->id_count = 8000;
	expect_invalid(s, "setting 'id-count' (8000) must be a multiple of 'ids-per-build' (1024)",
		       NULL);
	/* 4294966272 + 1024 - 1 = 4294967295 is (uid_t)-1, not a valid UID. */
	s->start_id = 4294966272LL;
	s->id_count = 1024;
	expect_invalid(s, "settings 'start-id' (4294966272) + 'id-count' (1024) end at 4294967295",
		       "past the largest valid UID 4294967294");
	s->start_id = 4294965248LL;
	expect_valid(s);
	s->ids_per_build = 1;
	s->start_id = 100000;
	s->id_count = 65537;
	expect_invalid(s, "settings 'id-count' = 65537 and 'ids-per-build' = 1 make 65537 slots",
		       "at most 65536");
	s->id_count = 65536;
	expect_valid(s);
}

static void test_validate_passwd(void)
{
	cleanup_settings struct settings *s = mk_settings(true);
	cleanup_strbuf struct strbuf sb = STRBUF_INIT;
	cleanup_free char *want = NULL;

	/* Right next to the range on both sides: fine. */
	strbuf_addf(&sb, "%sbelow:x:%lld:100::/:/bin/false\nabove:x:%lld:100::/:/bin/false\n",
		    base_passwd, T_START - 1, T_END + 1);
	write_db(0, sb.buf);
	expect_valid(s);

	/* A UID in the middle of the range, not the first one of a slot. */
	strbuf_addf(&sb, "intruder:x:%lld:100::/:/bin/false\n", T_START + 3000);
	write_db(0, sb.buf);
	want = xasprintf("UID/GID pool %lld-%lld (settings 'start-id' = %lld, 'id-count' = %lld) "
			 "contains UID %lld of user 'intruder' (%s)",
			 T_START, T_END, T_START, T_COUNT, T_START + 3000, db.passwd);
	expect_invalid(s, want, NULL);

	/* The very last ID. */
	strbuf_reset(&sb);
	strbuf_addf(&sb, "%slast:x:%lld:100::/:/bin/false\n", base_passwd, T_END);
	write_db(0, sb.buf);
	expect_invalid(s, "contains UID 3000007679 of user 'last'", NULL);

	/* A primary GID inside the range. */
	strbuf_reset(&sb);
	strbuf_addf(&sb, "pgid:x:5000:%lld::/:/bin/false\n", T_START);
	write_db(0, sb.buf);
	expect_invalid(s, "contains GID 2999999488, the primary group of user 'pgid'", NULL);
}

static void test_validate_group(void)
{
	cleanup_settings struct settings *s = mk_settings(true);
	cleanup_strbuf struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, "%sok:x:%lld:\n", base_group, T_START - 1);
	write_db(1, sb.buf);
	expect_valid(s);
	strbuf_addf(&sb, "late:x:%lld:someone\n", T_END);
	write_db(1, sb.buf);
	expect_invalid(s, "contains GID 3000007679 of group 'late'", db.group);
	expect_invalid(s, "'start-id' = 2999999488", "'id-count' = 8192");
}

static void test_validate_subid(void)
{
	cleanup_settings struct settings *s = mk_settings(true);
	cleanup_free char *want = NULL;

	/* Ends exactly one below the pool; malformed and comment lines are skipped. */
	write_db(2, "# comment\nbob:2999989488:10000\nbroken line\nx:y:z\nzero:2999999488:0\n");
	expect_valid(s);
	write_db(2, "bob:2999989488:10000\nalice:2999990000:10000\n");
	want = xasprintf("overlaps the subordinate UID range 2999990000-2999999999 of 'alice' "
			 "('%s' line 2)",
			 db.subuid);
	expect_invalid(s, want, "'start-id' = 2999999488");
	write_db(2, "");
	/* Wholly containing the pool counts too. */
	write_db(3, "1000:100000:4294000000\n");
	expect_invalid(s, "overlaps the subordinate GID range 100000-4294099999 of '1000'", NULL);
	write_db(3, "carol:3000007680:65536\n");
	expect_valid(s);
}

static void test_validate_missing_db(void)
{
	cleanup_settings struct settings *s = mk_settings(true);
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *gone = tpath("no-such-passwd");
	const char *saved = db.passwd;

	db.passwd = gone;
	CU_ASSERT_EQUAL(uid_pool_validate(s, &db, &e), -1);
	CU_ASSERT(e != NULL && e->code == NIB_E_SYS &&
		  strstr(e->msg, "cannot open passwd database"));
	db.passwd = saved;
}

static char *read_text(const char *path);

static ino_t inode_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_ino : 0;
}

/*
 * With the system databases a success is remembered in userpool/validated,
 * reused while the key holds and the file is young, and only in a private
 * userpool directory.  Whether it was reused shows in the file's inode: a
 * fresh verdict is written to a new file and renamed over the old one.
 */
static void test_validate_cache(void)
{
	cleanup_settings struct settings *s = mk_settings(true);
	cleanup_settings struct settings *other = mk_settings(true);
	cleanup_error struct nib_error *e = NULL;
	cleanup_free char *dir = path_join(state_dir, "userpool");
	cleanup_free char *file = path_join(dir, "validated");
	cleanup_free char *text = NULL;
	struct timespec old[2] = { { 0, UTIME_OMIT }, { time(NULL) - 3600, 0 } };
	ino_t ino;

	if (uid_pool_validate(s, NULL, &e) < 0) {
		fprintf(stderr, "skipped: the test range is not free on this system: %s\n", e->msg);
		return;
	}
	/* No userpool directory: nothing is remembered. */
	CU_ASSERT_EQUAL(inode_of(file), 0);
	CU_ASSERT_EQUAL(mkdir(state_dir, 0755), 0);
	CU_ASSERT_EQUAL(mkdir(dir, 0700), 0);
	CU_ASSERT_EQUAL(uid_pool_validate(s, NULL, &e), 0);
	ino = inode_of(file);
	CU_ASSERT_NOT_EQUAL(ino, 0);
	text = read_text(file);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "start-id=2999999488 id-count=8192"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "/etc/passwd "));

	/* Reused. */
	CU_ASSERT_EQUAL(uid_pool_validate(s, NULL, &e), 0);
	CU_ASSERT_EQUAL(inode_of(file), ino);
	/* Other settings: checked again. */
	settings_set(other, "id-count", "4096", ORIGIN_CMDLINE, NULL, &e);
	CU_ASSERT_EQUAL(uid_pool_validate(other, NULL, &e), 0);
	CU_ASSERT_NOT_EQUAL(inode_of(file), ino);
	ino = inode_of(file);
	CU_ASSERT_EQUAL(uid_pool_validate(other, NULL, &e), 0);
	CU_ASSERT_EQUAL(inode_of(file), ino);
	/* Too old: checked again. */
	CU_ASSERT_EQUAL(utimensat(AT_FDCWD, file, old, 0), 0);
	CU_ASSERT_EQUAL(uid_pool_validate(other, NULL, &e), 0);
	CU_ASSERT_NOT_EQUAL(inode_of(file), ino);
	ino = inode_of(file);
	/* A directory others may write is neither trusted nor written. */
	CU_ASSERT_EQUAL(chmod(dir, 0770), 0);
	CU_ASSERT_EQUAL(uid_pool_validate(other, NULL, &e), 0);
	CU_ASSERT_EQUAL(utimensat(AT_FDCWD, file, old, 0), 0);
	CU_ASSERT_EQUAL(uid_pool_validate(other, NULL, &e), 0);
	CU_ASSERT_EQUAL(inode_of(file), ino);
	CU_ASSERT_EQUAL(chmod(dir, 0700), 0);
	/* Fake account databases are never cached. */
	CU_ASSERT_EQUAL(utimensat(AT_FDCWD, file, old, 0), 0);
	expect_valid(other);
	CU_ASSERT_EQUAL(inode_of(file), ino);
	CU_ASSERT_PTR_NULL(e);
}

static void test_validate_classic(void)
{
	cleanup_settings struct settings *s = mk_settings(false);
	cleanup_strbuf struct strbuf pw = STRBUF_INIT;

	free(s->build_users_group);
	s->build_users_group = xstrdup("");
	expect_invalid(s, "setting 'build-users-group' is empty, but 'auto-allocate-uids' is false",
		       NULL);
	free(s->build_users_group);
	s->build_users_group = xstrdup("nixbld");
	expect_invalid(s, "group 'nixbld' (setting 'build-users-group') does not exist", NULL);
	write_db(1, "nixbld:x:30000:\n");
	expect_invalid(s, "group 'nixbld' (setting 'build-users-group') has no members", NULL);
	write_db(1, "nixbld:x:30000:nixbld1,ghost\n");
	strbuf_addf(&pw, "%snixbld1:x:30001:30000::/:/bin/false\n", base_passwd);
	write_db(0, pw.buf);
	expect_invalid(s,
		       "user 'ghost', a member of group 'nixbld' (setting 'build-users-group'), "
		       "does not exist",
		       NULL);
	write_db(1, "nixbld:x:30000:nixbld1,root\n");
	expect_invalid(s,
		       "build user 'root' of group 'nixbld' (setting 'build-users-group') is root",
		       NULL);
	if (geteuid() != 0) {
		strbuf_addf(&pw, "me:x:%lu:30000::/:/bin/false\n", (unsigned long)geteuid());
		write_db(0, pw.buf);
		write_db(1, "nixbld:x:30000:nixbld1,me\n");
		expect_invalid(s, "build user 'me' of group 'nixbld'", "the daemon's own");
	}
	strbuf_addf(&pw, "twin:x:30001:30000::/:/bin/false\n");
	write_db(0, pw.buf);
	write_db(1, "nixbld:x:30000:nixbld1,twin\n");
	expect_invalid(s, "build users 'nixbld1' and 'twin'", "share UID 30001");
	write_db(1, "nixbld:x:30000:nixbld1\n");
	expect_valid(s);
}

/* ---- /proc scanning ---- */

static void fake_proc(const char *root, int pid, const char *state, int threads, const char *uids,
		      const char *gids)
{
	cleanup_free char *dir = xasprintf("%s/%d", root, pid);
	cleanup_free char *file = xasprintf("%s/status", dir);
	cleanup_free char *text =
		xasprintf("Name:\tfake\nUmask:\t0022\nState:\t%s\nTgid:\t%d\nPid:\t%d\n"
			  "PPid:\t1\nUid:\t%s\nGid:\t%s\nFDSize:\t64\nGroups:\t\n"
			  "Threads:\t%d\n",
			  state, pid, pid, uids, gids, threads);

	CU_ASSERT_EQUAL(mkdir(dir, 0755), 0);
	CU_ASSERT_EQUAL(test_write_file(file, text), 0);
}

static void test_parse_status(void)
{
	struct uid_pool_proc pr;

	CU_ASSERT(uid_pool_parse_status("Name:\tx\nState:\tZ (zombie)\nUid:\t1\t2\t3\t4\n"
					"Gid:\t5\t6\t7\t8\nThreads:\t3\n",
					&pr));
	CU_ASSERT_EQUAL(pr.state, 'Z');
	CU_ASSERT_EQUAL(pr.threads, 3);
	for (int i = 0; i < 8; i++)
		CU_ASSERT_EQUAL(pr.ids[i], (uint64_t)i + 1);
	CU_ASSERT(!uid_pool_parse_status("Name:\tx\nUid:\t1\t2\t3\t4\n", &pr));
	CU_ASSERT(!uid_pool_parse_status("Uid:\t1\t2\t3\nGid:\t5\t6\t7\t8\n", &pr));
}

static void test_scan_fake_proc(void)
{
	cleanup_free char *root = tpath("proc");
	cleanup_free char *junk = tpath("proc/self");
	cleanup_free char *nostatus = tpath("proc/107");
	cleanup_free struct uid_pool_proc *v = NULL;
	cleanup_error struct nib_error *e = NULL;
	cleanup_close int fd = -1;
	size_t n = 0;
	bool seen[8] = { false };

	CU_ASSERT_EQUAL(mkdir(root, 0755), 0);
	/* 2999999488 + 2048 is inside slot 2; each process has it in one field only. */
	fake_proc(root, 100, "S (sleeping)", 1, "3000001536\t0\t0\t0", "0\t0\t0\t0");
	fake_proc(root, 101, "S (sleeping)", 1, "0\t0\t3000001536\t0", "0\t0\t0\t0");
	fake_proc(root, 102, "R (running)", 1, "0\t0\t0\t3000001536", "0\t0\t0\t0");
	fake_proc(root, 103, "D (disk sleep)", 1, "0\t0\t0\t0", "0\t3000001536\t0\t0");
	fake_proc(root, 104, "Z (zombie)", 1, "3000001536\t3000001536\t3000001536\t3000001536",
		  "0\t0\t0\t0");
	fake_proc(root, 105, "Z (zombie)", 3, "3000001536\t3000001536\t3000001536\t3000001536",
		  "0\t0\t0\t0");
	fake_proc(root, 106, "S (sleeping)", 1, "1000\t1000\t1000\t1000",
		  "3000001535\t3000002560\t100\t100");
	CU_ASSERT_EQUAL(mkdir(junk, 0755), 0);
	CU_ASSERT_EQUAL(mkdir(nostatus, 0755), 0);

	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CU_ASSERT_EQUAL(uid_pool_scan_procs(fd, 3000001536ULL, 1024, &v, &n, &e), 0);
	CU_ASSERT_PTR_NULL(e);
	CU_ASSERT_EQUAL(n, 5);
	for (size_t i = 0; i < n; i++)
		if (v[i].pid >= 100 && v[i].pid < 108)
			seen[v[i].pid - 100] = true;
	CU_ASSERT(seen[0] && seen[1] && seen[2] && seen[3] && seen[5]);
	CU_ASSERT(!seen[4] && !seen[6] && !seen[7]);
}

/* ---- the pool ---- */

static unsigned wait_calls;

static void on_wait(void *ud, unsigned n, unsigned busy, unsigned held)
{
	(void)ud;
	wait_calls++;
	CU_ASSERT_EQUAL(n, 8);
	CU_ASSERT_EQUAL(busy + held, 8);
}

static char *slot_file(const char *name)
{
	cleanup_free char *dir = path_join(state_dir, "userpool");
	return path_join(dir, name);
}

static char *read_text(const char *path)
{
	char *buf = NULL;
	cleanup_error struct nib_error *e = NULL;

	if (read_file_at(AT_FDCWD, path, 1 << 20, &buf, NULL, &e) < 0)
		return xstrdup("");
	return buf;
}

static void test_acquire_basics(void)
{
	cleanup_settings struct settings *s = mk_settings(true);
	cleanup_uid_pool struct uid_pool *p = open_pool(s);
	cleanup_error struct nib_error *e = NULL;
	struct uid_pool_acquire_opts o = { .derivation = "/nib/store/abc-hello.drv" };
	struct uid_pool_slot *slot = NULL;
	struct uid_pool_entry *ents = NULL;
	cleanup_free char *file = NULL, *text = NULL, *want = NULL;
	size_t n = 0;
	struct stat st;

	if (p == NULL)
		return;
	CU_ASSERT(uid_pool_is_auto(p));
	CU_ASSERT_EQUAL(uid_pool_size(p), 8);
	CU_ASSERT_EQUAL(uid_pool_acquire(p, &o, &slot, &e), 0);
	if (slot == NULL)
		return;
	CU_ASSERT(slot->index < 8);
	CU_ASSERT_EQUAL(slot->first_uid, (uid_t)(T_START + slot->index * T_PER));
	CU_ASSERT_EQUAL(slot->first_gid, slot->first_uid);
	CU_ASSERT_EQUAL(slot->nr_ids, 1024);
	CU_ASSERT_EQUAL(slot->n_groups, 0);
	CU_ASSERT_PTR_NULL(slot->user);
	file = slot_file(slot->name);
	text = read_text(file);
	want = xasprintf("pid=%ld\nderivation=/nib/store/abc-hello.drv\nsince=", (long)getpid());
	CU_ASSERT(STARTS_WITH(text, want));
	CU_ASSERT_EQUAL(stat(file, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
	{
		cleanup_free char *dir = path_join(state_dir, "userpool");
		CU_ASSERT_EQUAL(stat(dir, &st), 0);
		CU_ASSERT_EQUAL(st.st_mode & 07777, 0700);
	}
	CU_ASSERT_STRING_EQUAL(uid_pool_slot_get_info(slot, "derivation"),
			       "/nib/store/abc-hello.drv");

	CU_ASSERT_EQUAL(uid_pool_list(p, &ents, &n, &e), 0);
	CU_ASSERT_EQUAL(n, 8);
	for (size_t i = 0; ents && i < n; i++) {
		if (i == slot->index) {
			CU_ASSERT_EQUAL(ents[i].state, UID_POOL_BUSY);
			CU_ASSERT_EQUAL(ents[i].pid, getpid());
			CU_ASSERT_STRING_EQUAL(ents[i].derivation, "/nib/store/abc-hello.drv");
			CU_ASSERT(ents[i].since > 1600000000);
		} else {
			CU_ASSERT_EQUAL(ents[i].state, UID_POOL_FREE);
		}
		CU_ASSERT_EQUAL(ents[i].first_uid, (uint64_t)(T_START + i * T_PER));
	}
	uid_pool_entries_free(ents, n);

	CU_ASSERT_EQUAL(uid_pool_release(slot, NULL, &e), 0);
	CU_ASSERT_PTR_NULL(e);
	free(text);
	text = read_text(file);
	CU_ASSERT_STRING_EQUAL(text, "");
}

static void test_set_info(void)
{
	cleanup_settings struct settings *s = mk_settings(true);
	cleanup_uid_pool struct uid_pool *p = open_pool(s);
	struct nib_error *e = NULL;
	struct uid_pool_slot *slot = NULL;
	cleanup_free char *file = NULL, *text = NULL;

	if (p == NULL || uid_pool_acquire(p, NULL, &slot, &e) < 0)
		return;
	CU_ASSERT_EQUAL(uid_pool_slot_set_info(slot, "build-dir", "/x/y", &e), 0);
	CU_ASSERT_EQUAL(uid_pool_slot_set_info(slot, "cgroup", "/sys/fs/cgroup/nib/b1", &e), 0);
	CU_ASSERT_EQUAL(uid_pool_slot_set_info(slot, "build-dir", "/x/z", &e), 0);
	CU_ASSERT_EQUAL(uid_pool_slot_set_info(slot, "cgroup", NULL, &e), 0);
	CU_ASSERT_PTR_NULL(e);
	file = slot_file(slot->name);
	text = read_text(file);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nbuild-dir=/x/z\n"));
	CU_ASSERT_PTR_NULL(strstr(text, "cgroup"));
	CU_ASSERT_STRING_EQUAL(uid_pool_slot_get_info(slot, "build-dir"), "/x/z");

	CU_ASSERT_EQUAL(uid_pool_slot_set_info(slot, "pid", "1", &e), -1);
	CU_ASSERT(e && strstr(e->msg, "invalid slot record key 'pid'"));
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(uid_pool_slot_set_info(slot, "Bad Key", "1", &e), -1);
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(uid_pool_slot_set_info(slot, "build-dir", "a\nb", &e), -1);
	CU_ASSERT(e && strstr(e->msg, "newline"));
	nib_error_clear(&e);
	{
		const char *keys[] = { "output-dir", "cgroup", "since" };
		const char *values[] = { "/o", "nib-build-1", "1" };

		/* One bad entry: none is set. */
		CU_ASSERT_EQUAL(uid_pool_slot_set_infos(slot, keys, values, 3, &e), -1);
		nib_error_clear(&e);
		CU_ASSERT_PTR_NULL(uid_pool_slot_get_info(slot, "output-dir"));
		CU_ASSERT_EQUAL(uid_pool_slot_set_infos(slot, keys, values, 2, &e), 0);
		free(text);
		text = read_text(file);
		CU_ASSERT_PTR_NOT_NULL(strstr(text, "\noutput-dir=/o\n"));
		CU_ASSERT_PTR_NOT_NULL(strstr(text, "\ncgroup=nib-build-1\n"));
		CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nbuild-dir=/x/z\n"));
		/* Shorter again: the file is cut to the new record. */
		CU_ASSERT_EQUAL(
			uid_pool_slot_set_infos(slot, keys, (const char *[]){ NULL, NULL }, 2, &e),
			0);
		free(text);
		text = read_text(file);
		CU_ASSERT_PTR_NULL(strstr(text, "output-dir"));
		CU_ASSERT_PTR_NULL(strstr(text, "cgroup"));
		CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nbuild-dir=/x/z\n"));
	}
	/* The build dir /x/z does not exist: cleanup has nothing to remove. */
	CU_ASSERT_EQUAL(uid_pool_release(slot, NULL, &e), 0);
	nib_error_free(e);
}

static void test_exhaust_busy_timeout(void)
{
	cleanup_settings struct settings *s = mk_settings(true);
	cleanup_uid_pool struct uid_pool *p = open_pool(s);
	struct uid_pool_slot *slots[8] = { NULL };
	struct uid_pool_slot *extra = NULL;
	struct uid_pool_acquire_opts o = { 0 };
	struct nib_error *e = NULL;
	bool seen[8] = { false };
	uint64_t t0;

	if (p == NULL)
		return;
	for (int i = 0; i < 8; i++) {
		CU_ASSERT_EQUAL(uid_pool_acquire(p, NULL, &slots[i], &e), 0);
		if (slots[i] != NULL) {
			CU_ASSERT(!seen[slots[i]->index]);
			seen[slots[i]->index] = true;
		}
	}
	o.no_wait = true;
	CU_ASSERT_EQUAL(uid_pool_acquire(p, &o, &extra, &e), -1);
	CU_ASSERT(e && e->code == NIB_E_BUSY &&
		  strstr(e->msg, "no free UID slot: 8 busy, 0 held, of 8"));
	nib_error_clear(&e);

	o.no_wait = false;
	o.timeout_usec = 300000;
	o.on_wait = on_wait;
	wait_calls = 0;
	t0 = now_monotonic_usec();
	CU_ASSERT_EQUAL(uid_pool_acquire(p, &o, &extra, &e), -1);
	CU_ASSERT(now_monotonic_usec() - t0 >= 300000);
	CU_ASSERT(now_monotonic_usec() - t0 < 5000000);
	CU_ASSERT(e && e->code == NIB_E_TIMEOUT && strstr(e->msg, "within 0.3 s"));
	CU_ASSERT_EQUAL(wait_calls, 1);
	CU_ASSERT_PTR_NULL(extra);
	nib_error_clear(&e);
	for (int i = 0; i < 8; i++)
		CU_ASSERT_EQUAL(uid_pool_release(slots[i], NULL, &e), 0);
	nib_error_free(e);
}

static void test_rotation(void)
{
	cleanup_settings struct settings *s = mk_settings(true);
	cleanup_uid_pool struct uid_pool *p = open_pool(s);
	struct nib_error *e = NULL;
	bool seen[8] = { false };
	unsigned distinct = 0;

	if (p == NULL)
		return;
	/* Acquire-release in a row walks the pool instead of reusing one slot. */
	for (int i = 0; i < 8; i++) {
		struct uid_pool_slot *slot = NULL;
		if (uid_pool_acquire(p, NULL, &slot, &e) < 0)
			break;
		if (!seen[slot->index])
			distinct++;
		seen[slot->index] = true;
		CU_ASSERT_EQUAL(uid_pool_release(slot, NULL, &e), 0);
	}
	CU_ASSERT_EQUAL(distinct, 8);
	nib_error_free(e);
}

/* Fork a child that takes every slot, reports on fd, then runs `then`. */
enum child_then {
	THEN_RELEASE_ONE,
	THEN_SLEEP
};

static pid_t spawn_hog(const struct settings *s, enum child_then then, int *ret_rfd)
{
	int pfd[2];
	pid_t pid;

	CU_ASSERT_EQUAL(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	if (pid == 0) {
		struct uid_pool *p;
		struct uid_pool_slot *slots[8];
		struct nib_error *e = NULL;
		close(pfd[0]);
		p = uid_pool_open(s, &db, &e);
		if (p == NULL)
			_exit(2);
		for (int i = 0; i < 8; i++)
			if (uid_pool_acquire(p, NULL, &slots[i], &e) < 0)
				_exit(3);
		if (write(pfd[1], "R", 1) != 1)
			_exit(4);
		if (then == THEN_RELEASE_ONE) {
			usleep(300000);
			if (uid_pool_release(slots[3], NULL, &e) < 0)
				_exit(5);
			usleep(2000000);
			_exit(0);
		}
		pause();
		_exit(0);
	}
	close(pfd[1]);
	*ret_rfd = pfd[0];
	return pid;
}

static void wait_ready(int fd)
{
	char c = 0;

	CU_ASSERT_EQUAL(read(fd, &c, 1), 1);
	CU_ASSERT_EQUAL(c, 'R');
	close(fd);
}

static void test_wait_wakes_on_release(void)
{
	cleanup_settings struct settings *s = mk_settings(true);
	cleanup_uid_pool struct uid_pool *p = open_pool(s);
	struct uid_pool_acquire_opts o = { .timeout_usec = 20000000, .on_wait = on_wait };
	struct uid_pool_slot *slot = NULL;
	struct nib_error *e = NULL;
	int fd, status;
	uint64_t t0, dt;
	pid_t pid;

	if (p == NULL)
		return;
	pid = spawn_hog(s, THEN_RELEASE_ONE, &fd);
	wait_ready(fd);
	wait_calls = 0;
	t0 = now_monotonic_usec();
	CU_ASSERT_EQUAL(uid_pool_acquire(p, &o, &slot, &e), 0);
	dt = now_monotonic_usec() - t0;
	/* Woken by the release, well before the 10 s safety rescan. */
	CU_ASSERT(dt >= 200000 && dt < 3000000);
	CU_ASSERT_EQUAL(wait_calls, 1);
	CU_ASSERT_PTR_NOT_NULL(slot);
	CU_ASSERT_EQUAL(uid_pool_release(slot, NULL, &e), 0);
	waitpid(pid, &status, 0);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	nib_error_free(e);
}

static void test_wait_wakes_on_crash(void)
{
	cleanup_settings struct settings *s = mk_settings(true);
	cleanup_uid_pool struct uid_pool *p = open_pool(s);
	struct uid_pool_acquire_opts o = { .timeout_usec = 20000000 };
	struct uid_pool_slot *slot = NULL;
	struct nib_error *e = NULL;
	int fd, status;
	uint64_t t0, dt;
	pid_t pid, killer;

	if (p == NULL)
		return;
	pid = spawn_hog(s, THEN_SLEEP, &fd);
	wait_ready(fd);
	killer = fork();
	if (killer == 0) {
		usleep(300000);
		kill(pid, SIGKILL);
		_exit(0);
	}
	t0 = now_monotonic_usec();
	CU_ASSERT_EQUAL(uid_pool_acquire(p, &o, &slot, &e), 0);
	dt = now_monotonic_usec() - t0;
	CU_ASSERT(dt >= 200000 && dt < 3000000);
	if (e)
		fprintf(stderr, "%s\n", e->msg);
	/* The dead holder's record was stale; the slot was cleaned before reuse. */
	CU_ASSERT(slot != NULL);
	CU_ASSERT_EQUAL(uid_pool_release(slot, NULL, &e), 0);
	waitpid(killer, &status, 0);
	waitpid(pid, &status, 0);
	CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	nib_error_free(e);
}

static int hook_calls;
static bool hook_fails;

static int hook(const struct uid_pool_slot *slot, void *ud, struct nib_error **err)
{
	(void)ud;
	hook_calls++;
	CU_ASSERT_PTR_NOT_NULL(slot->name);
	if (hook_fails)
		return nib_error_set(err, NIB_E_SYS, EBUSY, "cannot remove cgroup '%s'",
				     uid_pool_slot_get_info(slot, "cgroup") ?: "?");
	return 0;
}

static void test_held_slot(void)
{
	cleanup_settings struct settings *s = mk_settings(true);
	cleanup_uid_pool struct uid_pool *p = open_pool(s);
	struct uid_pool_cleanup c = { .fn = hook };
	struct uid_pool_slot *slot = NULL, *others[8] = { NULL };
	struct uid_pool_acquire_opts nw = { .no_wait = true };
	struct uid_pool_entry *ents = NULL;
	struct nib_error *e = NULL;
	cleanup_free char *heldfile = NULL, *text = NULL;
	unsigned idx;
	size_t n = 0;
	int got = 0;

	if (p == NULL || uid_pool_acquire(p, NULL, &slot, &e) < 0)
		return;
	idx = slot->index;
	CU_ASSERT_EQUAL(uid_pool_slot_set_info(slot, "cgroup", "/cg/nib-1", &e), 0);
	hook_fails = true;
	hook_calls = 0;
	CU_ASSERT_EQUAL(uid_pool_release(slot, &c, &e), -1);
	CU_ASSERT_EQUAL(hook_calls, 1);
	CU_ASSERT(e && strstr(e->msg, "is now held: cannot remove cgroup '/cg/nib-1': Device or "
				      "resource busy"));
	nib_error_clear(&e);
	{
		cleanup_free char *name = xasprintf("held/slot-%u", idx);
		heldfile = slot_file(name);
	}
	text = read_text(heldfile);
	CU_ASSERT(STARTS_WITH(text, "reason=cannot remove cgroup '/cg/nib-1'"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nsince="));

	/* Acquisition skips it: only 7 slots can be had. */
	for (int i = 0; i < 8; i++)
		if (uid_pool_acquire(p, &nw, &others[i], &e) == 0) {
			got++;
			CU_ASSERT_NOT_EQUAL(others[i]->index, idx);
		}
	CU_ASSERT_EQUAL(got, 7);
	CU_ASSERT(e && strstr(e->msg, "7 busy, 1 held, of 8"));
	nib_error_clear(&e);

	CU_ASSERT_EQUAL(uid_pool_list(p, &ents, &n, &e), 0);
	if (ents != NULL) {
		CU_ASSERT_EQUAL(ents[idx].state, UID_POOL_HELD);
		CU_ASSERT(!ents[idx].locked);
		CU_ASSERT(ents[idx].reason && strstr(ents[idx].reason, "cannot remove cgroup"));
		CU_ASSERT(ents[idx].held_since > 0);
		CU_ASSERT_EQUAL(ents[idx].pid, getpid());
		CU_ASSERT_STRING_EQUAL(ents[idx].cgroup, "/cg/nib-1");
	}
	uid_pool_entries_free(ents, n);

	/* Release of a slot that is not held, of a slot that does not exist. */
	CU_ASSERT_EQUAL(uid_pool_release_held(p, 99, &c, &e), -1);
	CU_ASSERT(e && e->code == NIB_E_NOT_FOUND);
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(uid_pool_release_held(p, (idx + 1) % 8, &c, &e), -1);
	CU_ASSERT(e && e->code == NIB_E_NOT_FOUND && strstr(e->msg, "is not held"));
	nib_error_clear(&e);

	/* Cause still there: stays held. */
	CU_ASSERT_EQUAL(uid_pool_release_held(p, idx, &c, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "stays held"));
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(access(heldfile, F_OK), 0);
	/* Cause gone: freed, and acquirable again. */
	hook_fails = false;
	CU_ASSERT_EQUAL(uid_pool_release_held(p, idx, &c, &e), 0);
	CU_ASSERT_NOT_EQUAL(access(heldfile, F_OK), 0);
	CU_ASSERT_EQUAL(uid_pool_acquire(p, &nw, &slot, &e), 0);
	CU_ASSERT(slot && slot->index == idx);
	CU_ASSERT_EQUAL(uid_pool_release(slot, NULL, &e), 0);
	for (int i = 0; i < 8; i++)
		if (others[i])
			CU_ASSERT_EQUAL(uid_pool_release(others[i], NULL, &e), 0);
	nib_error_free(e);
}

static void make_tree(const char *dir)
{
	cleanup_free char *sub = path_join(dir, "sub");
	cleanup_free char *f = path_join(sub, "file");

	CU_ASSERT_EQUAL(mkdir_p(sub, 0755, NULL), 0);
	CU_ASSERT_EQUAL(test_write_file(f, "x"), 0);
	chmod(sub, 0500); /* read-only: removal must cope */
}

/* A child acquires, records a build directory, and dies without releasing. */
static unsigned crash_holder(const struct settings *s, const char *bdir)
{
	int pfd[2];
	unsigned idx = 99;
	pid_t pid;
	int status;

	CU_ASSERT_EQUAL(pipe2(pfd, O_CLOEXEC), 0);
	pid = fork();
	if (pid == 0) {
		struct nib_error *e = NULL;
		struct uid_pool *p = uid_pool_open(s, &db, &e);
		struct uid_pool_slot *slot = NULL;
		struct uid_pool_acquire_opts o = { .derivation = "/nib/store/x-crash.drv" };
		if (p == NULL || uid_pool_acquire(p, &o, &slot, &e) < 0 ||
		    uid_pool_slot_set_info(slot, "build-dir", bdir, &e) < 0)
			_exit(2);
		make_tree(bdir);
		if (write(pfd[1], &slot->index, sizeof(slot->index)) < 0)
			_exit(3);
		raise(SIGKILL);
	}
	close(pfd[1]);
	CU_ASSERT_EQUAL(read(pfd[0], &idx, sizeof(idx)), (ssize_t)sizeof(idx));
	close(pfd[0]);
	waitpid(pid, &status, 0);
	CU_ASSERT(WIFSIGNALED(status));
	return idx;
}

static enum uid_pool_reclaim_outcome last_outcome;
static char last_detail[512];
static unsigned reclaim_calls;

static void on_reclaim(void *ud, const struct uid_pool_slot *slot,
		       enum uid_pool_reclaim_outcome outcome, const char *detail)
{
	(void)ud;
	(void)slot;
	reclaim_calls++;
	last_outcome = outcome;
	snprintf(last_detail, sizeof(last_detail), "%s", detail);
}

static void test_stale_and_reclaim(void)
{
	cleanup_settings struct settings *s = mk_settings(true);
	cleanup_uid_pool struct uid_pool *p = open_pool(s);
	cleanup_free char *bdir = path_join(build_dir, "nib-build-1");
	struct uid_pool_reclaim_result res;
	struct uid_pool_entry *ents = NULL;
	struct nib_error *e = NULL;
	struct stat st;
	unsigned idx;
	size_t n = 0;

	if (p == NULL)
		return;
	idx = crash_holder(s, bdir);
	CU_ASSERT(idx < 8);
	CU_ASSERT_EQUAL(stat(bdir, &st), 0);
	CU_ASSERT_EQUAL(uid_pool_list(p, &ents, &n, &e), 0);
	if (ents != NULL && idx < 8) {
		CU_ASSERT_EQUAL(ents[idx].state, UID_POOL_STALE);
		CU_ASSERT(!ents[idx].locked);
		CU_ASSERT_STRING_EQUAL(ents[idx].build_dir, bdir);
		CU_ASSERT_STRING_EQUAL(ents[idx].derivation, "/nib/store/x-crash.drv");
	}
	uid_pool_entries_free(ents, n);

	reclaim_calls = 0;
	CU_ASSERT_EQUAL(uid_pool_reclaim(p, NULL, on_reclaim, NULL, &res, &e), 0);
	CU_ASSERT_EQUAL(res.n_cleaned, 1);
	CU_ASSERT_EQUAL(res.n_held, 0);
	CU_ASSERT_EQUAL(reclaim_calls, 1);
	CU_ASSERT_EQUAL(last_outcome, UID_POOL_RECLAIM_CLEANED);
	CU_ASSERT_PTR_NOT_NULL(strstr(last_detail, "removed build directory"));
	CU_ASSERT_NOT_EQUAL(stat(bdir, &st), 0);
	CU_ASSERT_EQUAL(uid_pool_list(p, &ents, &n, &e), 0);
	if (ents != NULL && idx < 8)
		CU_ASSERT_EQUAL(ents[idx].state, UID_POOL_FREE);
	uid_pool_entries_free(ents, n);
	/* Nothing left to do the second time. */
	reclaim_calls = 0;
	CU_ASSERT_EQUAL(uid_pool_reclaim(p, NULL, on_reclaim, NULL, &res, &e), 0);
	CU_ASSERT_EQUAL(res.n_cleaned, 0);
	CU_ASSERT_EQUAL(reclaim_calls, 0);
	nib_error_free(e);
}

static void test_stale_cleaned_on_acquire(void)
{
	cleanup_settings struct settings *s = mk_settings(true);
	cleanup_uid_pool struct uid_pool *p = NULL;
	cleanup_free char *bdir = path_join(build_dir, "nib-build-2");
	struct uid_pool_slot *slot = NULL;
	struct nib_error *e = NULL;
	struct stat st;

	s->id_count = 1024; /* a single slot */
	p = open_pool(s);
	if (p == NULL)
		return;
	CU_ASSERT_EQUAL(crash_holder(s, bdir), 0);
	CU_ASSERT_EQUAL(stat(bdir, &st), 0);
	CU_ASSERT_EQUAL(uid_pool_acquire(p, NULL, &slot, &e), 0);
	CU_ASSERT_NOT_EQUAL(stat(bdir, &st), 0);
	CU_ASSERT(slot != NULL && uid_pool_slot_get_info(slot, "build-dir") == NULL);
	CU_ASSERT_EQUAL(uid_pool_release(slot, NULL, &e), 0);
	nib_error_free(e);
}

static void test_build_dir_outside(void)
{
	cleanup_settings struct settings *s = mk_settings(true);
	cleanup_uid_pool struct uid_pool *p = open_pool(s);
	cleanup_free char *outside = path_join(state_dir, "outside");
	cleanup_free char *sneaky = xasprintf("%s/../outside", build_dir);
	struct uid_pool_slot *slot = NULL;
	struct nib_error *e = NULL;
	struct stat st;
	unsigned idx;

	if (p == NULL || uid_pool_acquire(p, NULL, &slot, &e) < 0)
		return;
	idx = slot->index;
	make_tree(outside);
	CU_ASSERT_EQUAL(mkdir_p(build_dir, 0755, NULL), 0);
	CU_ASSERT_EQUAL(uid_pool_slot_set_info(slot, "build-dir", sneaky, &e), 0);
	CU_ASSERT_EQUAL(uid_pool_release(slot, NULL, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "is not inside build-dir") && strstr(e->msg, "now held"));
	nib_error_clear(&e);
	CU_ASSERT_EQUAL(stat(outside, &st), 0);
	/* Refused while it exists; once removed by hand the slot can be freed. */
	CU_ASSERT_EQUAL(uid_pool_release_held(p, idx, NULL, &e), -1);
	nib_error_clear(&e);
	test_rmtree(outside);
	CU_ASSERT_EQUAL(uid_pool_release_held(p, idx, NULL, &e), 0);
	nib_error_free(e);
}

static void test_build_dir_symlink(void)
{
	cleanup_settings struct settings *s = mk_settings(true);
	cleanup_uid_pool struct uid_pool *p = open_pool(s);
	cleanup_free char *victim = tpath("victim");
	cleanup_free char *victim_file = tpath("victim/precious");
	cleanup_free char *link = path_join(build_dir, "link");
	cleanup_free char *rec = path_join(build_dir, "link/precious");
	struct uid_pool_slot *slot = NULL;
	struct nib_error *e = NULL;
	struct stat st;

	if (p == NULL || uid_pool_acquire(p, NULL, &slot, &e) < 0)
		return;
	CU_ASSERT_EQUAL(mkdir_p(victim, 0755, NULL), 0);
	CU_ASSERT_EQUAL(test_write_file(victim_file, "keep me"), 0);
	CU_ASSERT_EQUAL(mkdir_p(build_dir, 0755, NULL), 0);
	CU_ASSERT_EQUAL(symlink(victim, link), 0);
	CU_ASSERT_EQUAL(uid_pool_slot_set_info(slot, "build-dir", rec, &e), 0);
	CU_ASSERT_EQUAL(uid_pool_release(slot, NULL, &e), -1);
	CU_ASSERT(e && strstr(e->msg, "without following links"));
	CU_ASSERT_EQUAL(stat(victim_file, &st), 0);
	nib_error_free(e);
}

static void test_fork_safety(void)
{
	cleanup_settings struct settings *s = mk_settings(true);
	cleanup_uid_pool struct uid_pool *p = open_pool(s);
	struct uid_pool_slot *slot = NULL;
	struct uid_pool_entry *ents = NULL;
	struct nib_error *e = NULL;
	size_t n = 0;
	unsigned idx;
	int status;
	pid_t pid;

	if (p == NULL || uid_pool_acquire(p, NULL, &slot, &e) < 0)
		return;
	idx = slot->index;
	pid = fork();
	if (pid == 0) {
		struct nib_error *ce = NULL;
		struct uid_pool_slot *mine = NULL;
		/* Refused (the lock is the parent's), and the object is gone. */
		if (uid_pool_release(slot, NULL, &ce) != -1 || ce->code != NIB_E_INVALID)
			_exit(1);
		nib_error_clear(&ce);
		/* The child holds nothing, and cannot get the parent's slot. */
		for (int i = 0; i < 7; i++) {
			if (uid_pool_acquire(p, &(struct uid_pool_acquire_opts){ .no_wait = true },
					     &mine, &ce) < 0) {
				fprintf(stderr, "%s\n", ce->msg);
				_exit(2);
			}
			if (mine->index == idx)
				_exit(3);
		}
		_exit(0);
	}
	waitpid(pid, &status, 0);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fprintf(stderr, "child status %#x\n", status);
	CU_ASSERT_EQUAL(uid_pool_list(p, &ents, &n, &e), 0);
	if (ents != NULL)
		CU_ASSERT_EQUAL(ents[slot->index].state, UID_POOL_BUSY);
	uid_pool_entries_free(ents, n);
	CU_ASSERT_EQUAL(uid_pool_release(slot, NULL, &e), 0);
	nib_error_free(e);
}

static void test_classic(void)
{
	cleanup_settings struct settings *s = mk_settings(false);
	cleanup_uid_pool struct uid_pool *p = NULL;
	cleanup_strbuf struct strbuf pw = STRBUF_INIT;
	struct uid_pool_acquire_opts nw = { .no_wait = true };
	struct uid_pool_slot *a = NULL, *b = NULL, *c = NULL;
	struct nib_error *e = NULL;

	strbuf_addf(&pw,
		    "%snixbld1:x:30001:30000::/:/bin/false\n"
		    "nixbld2:x:30002:30000::/:/bin/false\n",
		    base_passwd);
	write_db(0, pw.buf);
	write_db(1, "root:x:0:\nnixbld:x:30000:nixbld1,nixbld2\nkvm:x:78:nixbld2,other\n");
	free(s->build_users_group);
	s->build_users_group = xstrdup("nixbld");
	p = open_pool(s);
	if (p == NULL)
		return;
	CU_ASSERT(!uid_pool_is_auto(p));
	CU_ASSERT_EQUAL(uid_pool_size(p), 2);
	CU_ASSERT_EQUAL(uid_pool_acquire(p, &nw, &a, &e), 0);
	CU_ASSERT_EQUAL(uid_pool_acquire(p, &nw, &b, &e), 0);
	CU_ASSERT_EQUAL(uid_pool_acquire(p, &nw, &c, &e), -1);
	CU_ASSERT(e && e->code == NIB_E_BUSY);
	nib_error_clear(&e);
	if (a == NULL || b == NULL)
		return;
	if (a->first_uid > b->first_uid) {
		struct uid_pool_slot *t = a;
		a = b;
		b = t;
	}
	CU_ASSERT_EQUAL(a->first_uid, 30001);
	CU_ASSERT_STRING_EQUAL(a->user, "nixbld1");
	CU_ASSERT_STRING_EQUAL(a->name, "classic-30001");
	CU_ASSERT_EQUAL(a->first_gid, 30000);
	CU_ASSERT_EQUAL(a->nr_ids, 1);
	CU_ASSERT_EQUAL(a->n_groups, 1);
	CU_ASSERT(a->n_groups == 1 && a->groups[0] == 30000);
	CU_ASSERT_EQUAL(b->first_uid, 30002);
	CU_ASSERT(b->n_groups == 2 && b->groups[0] == 30000 && b->groups[1] == 78);

	if (geteuid() == 0) {
		/* The identity a build process gets, supplementary groups included. */
		pid_t pid = fork();
		int status;
		if (pid == 0) {
			struct nib_error *ce = NULL;
			gid_t gl[8];
			uid_t ru, eu, su;
			int ng;
			if (uid_pool_slot_drop_privileges(b, &ce) < 0) {
				fprintf(stderr, "%s\n", ce->msg);
				_exit(1);
			}
			ng = getgroups(8, gl);
			getresuid(&ru, &eu, &su);
			/* The kernel keeps the list sorted. */
			if (ru != 30002 || eu != 30002 || su != 30002 || getgid() != 30000 ||
			    ng != 2 || gl[0] != 78 || gl[1] != 30000)
				_exit(2);
			_exit(0);
		}
		waitpid(pid, &status, 0);
		CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fprintf(stderr, "child status %#x\n", status);
	}
	CU_ASSERT_EQUAL(uid_pool_release(a, NULL, &e), 0);
	CU_ASSERT_EQUAL(uid_pool_release(b, NULL, &e), 0);
	nib_error_free(e);
}

/* waitpid() for at most 10 s; then SIGKILL the child (the test has failed). */
static pid_t wait_bounded(pid_t pid, int *status)
{
	for (int i = 0; i < 1000; i++) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r != 0)
			return r;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, status, 0);
	return 0;
}

/* Root only: processes running as a slot's UIDs are killed before release. */
static void test_kill_on_release(void)
{
	cleanup_settings struct settings *s = mk_settings(true);
	cleanup_uid_pool struct uid_pool *p = NULL;
	struct uid_pool_slot *slot = NULL;
	struct nib_error *e = NULL;
	pid_t kids[2];
	int status;

	if (geteuid() != 0) {
		fprintf(stderr, "(skipped: needs root) ");
		return;
	}
	p = open_pool(s);
	if (p == NULL || uid_pool_acquire(p, NULL, &slot, &e) < 0)
		return;
	for (int k = 0; k < 2; k++) {
		kids[k] = fork();
		if (kids[k] == 0) {
			/* One with the first UID, one with only its saved UID in the range. */
			uid_t u = slot->first_uid + 700;
			if (k == 0 &&
			    setresuid(slot->first_uid, slot->first_uid, slot->first_uid) < 0)
				_exit(1);
			if (k == 1 && setresuid(65534, 65534, u) < 0)
				_exit(1);
			for (;;)
				pause();
		}
	}
	usleep(100000);
	CU_ASSERT_EQUAL(uid_pool_release(slot, NULL, &e), 0);
	if (e)
		fprintf(stderr, "%s\n", e->msg);
	for (int k = 0; k < 2; k++) {
		CU_ASSERT_EQUAL(wait_bounded(kids[k], &status), kids[k]);
		CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	}
	nib_error_free(e);
}

/* Root only: a SIGKILLed holder leaves a process in its range; reclaim kills it. */
static void test_reclaim_kills(void)
{
	cleanup_settings struct settings *s = mk_settings(true);
	cleanup_uid_pool struct uid_pool *p = NULL;
	struct uid_pool_reclaim_result res;
	struct nib_error *e = NULL;
	int pfd[2], status;
	pid_t holder, orphan = 0;

	if (geteuid() != 0) {
		fprintf(stderr, "(skipped: needs root) ");
		return;
	}
	p = open_pool(s);
	if (p == NULL)
		return;
	/* Orphans come back to us, so that we can reap and check them. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	CU_ASSERT_EQUAL(pipe2(pfd, O_CLOEXEC), 0);
	holder = fork();
	if (holder == 0) {
		struct uid_pool_slot *slot = NULL;
		struct nib_error *ce = NULL;
		struct uid_pool *hp = uid_pool_open(s, &db, &ce);
		pid_t kid;
		if (hp == NULL || uid_pool_acquire(hp, NULL, &slot, &ce) < 0)
			_exit(2);
		kid = fork();
		if (kid == 0) {
			/* Like a builder: new identity, then exec (which closes the slot's fds). */
			if (uid_pool_slot_drop_privileges(slot, &ce) < 0)
				_exit(3);
			execl("/bin/sleep", "sleep", "1000", (char *)NULL);
			_exit(4);
		}
		if (write(pfd[1], &kid, sizeof(kid)) < 0)
			_exit(4);
		for (;;)
			pause();
	}
	close(pfd[1]);
	CU_ASSERT_EQUAL(read(pfd[0], &orphan, sizeof(orphan)), (ssize_t)sizeof(orphan));
	close(pfd[0]);
	usleep(100000);
	kill(holder, SIGKILL);
	waitpid(holder, &status, 0);
	CU_ASSERT_EQUAL(kill(orphan, 0), 0); /* still running */
	CU_ASSERT_EQUAL(uid_pool_reclaim(p, NULL, on_reclaim, NULL, &res, &e), 0);
	CU_ASSERT_EQUAL(res.n_cleaned, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(last_detail, "killed 1 process(es)"));
	CU_ASSERT_EQUAL(wait_bounded(orphan, &status), orphan);
	CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	nib_error_free(e);
}

/* ---- contention: 32 processes x 50 cycles over 8 slots ---- */

#define C_PROCS 32
#define C_CYCLES 50

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

struct ev {
	unsigned slot;
	long pid;
	uint64_t t;
	char kind; /* 'A' after acquiring, 'R' before releasing */
};

static int ev_cmp(const void *a, const void *b)
{
	const struct ev *x = a, *y = b;

	if (x->slot != y->slot)
		return x->slot < y->slot ? -1 : 1;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return x->kind == 'R' ? -1 : 1;
}

static void contender(const struct settings *s, const char *log, int *occupancy, int *violations,
		      unsigned seed)
{
	struct uid_pool *p;
	struct nib_error *e = NULL;
	int fd = open(log, O_WRONLY | O_APPEND | O_CLOEXEC);
	struct uid_pool_acquire_opts o = { .timeout_usec = 120000000 };

	p = uid_pool_open(s, &db, &e);
	if (p == NULL || fd < 0)
		_exit(2);
	for (int c = 0; c < C_CYCLES; c++) {
		struct uid_pool_slot *slot = NULL;
		char line[96];
		int len;
		if (uid_pool_acquire(p, &o, &slot, &e) < 0)
			_exit(3);
		if (__atomic_fetch_add(&occupancy[slot->index], 1, __ATOMIC_SEQ_CST) != 0)
			__atomic_fetch_add(violations, 1, __ATOMIC_SEQ_CST);
		len = snprintf(line, sizeof(line), "A %u %ld %llu\n", slot->index, (long)getpid(),
			       (unsigned long long)now_ns());
		if (write(fd, line, (size_t)len) != len)
			_exit(4);
		seed = seed * 1103515245 + 12345;
		usleep((seed >> 16) % 300);
		len = snprintf(line, sizeof(line), "R %u %ld %llu\n", slot->index, (long)getpid(),
			       (unsigned long long)now_ns());
		if (write(fd, line, (size_t)len) != len)
			_exit(4);
		__atomic_fetch_sub(&occupancy[slot->index], 1, __ATOMIC_SEQ_CST);
		if (uid_pool_release(slot, NULL, &e) < 0)
			_exit(5);
	}
	_exit(0);
}

static void test_contention(void)
{
	cleanup_settings struct settings *s = mk_settings(true);
	cleanup_free char *log = tpath("contention.log");
	cleanup_free char *text = NULL;
	cleanup_free struct ev *evs = NULL;
	cleanup_error struct nib_error *e = NULL;
	int *shared;
	pid_t kids[C_PROCS];
	size_t n = 0, alloc = 0, overlaps = 0, bad_pairs = 0;
	unsigned per_slot[8] = { 0 };
	bool all_ok = true;
	char *line, *save = NULL;

	CU_ASSERT_EQUAL(test_write_file(log, ""), 0);
	shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED)
		return;
	memset(shared, 0, 4096);
	{
		/* Create the directories once, before the crowd arrives. */
		cleanup_uid_pool __attribute__((unused)) struct uid_pool *p = open_pool(s);
	}
	for (int i = 0; i < C_PROCS; i++) {
		kids[i] = fork();
		if (kids[i] == 0)
			contender(s, log, shared, &shared[100], (unsigned)i * 7919u + 1);
	}
	for (int i = 0; i < C_PROCS; i++) {
		int status = 0;
		waitpid(kids[i], &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			all_ok = false;
			fprintf(stderr, "contender %d: status %#x\n", i, status);
		}
	}
	CU_ASSERT(all_ok);
	CU_ASSERT_EQUAL(shared[100], 0);

	CU_ASSERT_EQUAL(read_file_at(AT_FDCWD, log, 64 << 20, &text, NULL, &e), 0);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char kind;
		unsigned slot;
		long pid;
		unsigned long long t;
		if (sscanf(line, "%c %u %ld %llu", &kind, &slot, &pid, &t) != 4 || slot >= 8) {
			CU_FAIL("malformed log line");
			continue;
		}
		ALLOC_GROW(evs, n + 1, alloc);
		evs[n++] = (struct ev){ .slot = slot, .pid = pid, .t = t, .kind = kind };
	}
	CU_ASSERT_EQUAL(n, 2 * C_PROCS * C_CYCLES);
	sort_array(evs, n, sizeof(*evs), ev_cmp);
	/* Per slot, in time order: A R A R ..., each R by the holder of the A before it. */
	for (size_t i = 0; i < n; i++) {
		bool first_of_slot = i == 0 || evs[i - 1].slot != evs[i].slot;
		if (evs[i].kind == 'A') {
			per_slot[evs[i].slot]++;
			if (!first_of_slot && evs[i - 1].kind != 'R')
				overlaps++;
		} else if (first_of_slot || evs[i - 1].kind != 'A' ||
			   evs[i - 1].pid != evs[i].pid) {
			bad_pairs++;
		}
	}
	CU_ASSERT_EQUAL(overlaps, 0);
	CU_ASSERT_EQUAL(bad_pairs, 0);
	for (int i = 0; i < 8; i++)
		CU_ASSERT(per_slot[i] > 0);
	fprintf(stderr, "(%zu events, per slot:", n);
	for (int i = 0; i < 8; i++)
		fprintf(stderr, " %u", per_slot[i]);
	fprintf(stderr, ") ");
	munmap(shared, 4096);
}

static CU_TestInfo validate_tests[] = {
	{ "valid settings", test_validate_ok },
	{ "numeric rules", test_validate_numbers },
	{ "passwd conflicts", test_validate_passwd },
	{ "group conflicts", test_validate_group },
	{ "subuid/subgid overlaps", test_validate_subid },
	{ "missing database", test_validate_missing_db },
	{ "remembered verdict", test_validate_cache },
	{ "classic mode", test_validate_classic },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo proc_tests[] = {
	{ "parse status", test_parse_status },
	{ "scan a fake /proc", test_scan_fake_proc },
	CU_TEST_INFO_NULL,
};

/* ---- the host-wide registry of ranges ---- */

/* A pool of the test's settings for state directory dir, registering in reg. */
static struct uid_pool *range_pool(const char *dir, const char *start, const char *reg)
{
	cleanup_settings struct settings *s = mk_settings(true);
	struct nib_error *e = NULL;
	struct uid_pool *p;

	settings_set(s, "state-dir", dir, ORIGIN_CMDLINE, NULL, &e);
	settings_set(s, "start-id", start, ORIGIN_CMDLINE, NULL, &e);
	CU_ASSERT_PTR_NULL(e);
	nib_error_free(e);
	p = open_pool(s);
	if (p != NULL)
		uid_pool_set_range_registry(p, reg);
	return p;
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/*
 * Root only (others register nothing): two stores whose ranges overlap
 * cannot both be in use; the same store twice, disjoint ranges and a
 * leftover registration are fine; the last holder removes its file; a
 * forked child neither registers again nor removes its parent's.
 */
static void test_range_registry(void)
{
	cleanup_free char *reg = tpath("ranges"), *other = tpath("other");
	cleanup_free char *leftover = NULL, *content = NULL;
	cleanup_uid_pool struct uid_pool *a = NULL, *a2 = NULL, *b = NULL, *c = NULL;
	cleanup_error struct nib_error *e = NULL;
	int status;
	pid_t kid;

	if (geteuid() != 0) {
		a = range_pool(state_dir, "2999999488", reg);
		CU_ASSERT_EQUAL(uid_pool_claim(a, &e), 0);
		CU_ASSERT_EQUAL(count_entries(reg), 0);
		fprintf(stderr, "(not root: nothing registered) ");
		return;
	}
	a = range_pool(state_dir, "2999999488", reg);
	a2 = range_pool(state_dir, "2999999488", reg);
	b = range_pool(other, "3000003584", reg); /* overlaps a's last 4096 IDs */
	c = range_pool(other, "3000007680", reg); /* right after a's range */
	if (a == NULL || a2 == NULL || b == NULL || c == NULL)
		return;
	CU_ASSERT_EQUAL(uid_pool_claim(a, &e), 0);
	CU_ASSERT_EQUAL(uid_pool_claim(a2, &e), 0);
	CU_ASSERT_EQUAL(count_entries(reg), 1);
	{
		cleanup_free char *f = NULL;
		DIR *d = opendir(reg);
		struct dirent *de;
		while (d != NULL && (de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				f = path_join(reg, de->d_name);
		if (d != NULL)
			closedir(d);
		CU_ASSERT_EQUAL(
			f != NULL ? read_file_at(AT_FDCWD, f, 4096, &content, NULL, &e) : -1, 0);
		CU_ASSERT(content != NULL && STARTS_WITH(content, state_dir));
	}

	/* Another store, overlapping: refused, naming the store in use. */
	CU_ASSERT_EQUAL(uid_pool_claim(b, &e), -1);
	CU_ASSERT(e != NULL && e->code == NIB_E_CONFIG && strstr(e->msg, "overlap") != NULL &&
		  strstr(e->msg, state_dir) != NULL && strstr(e->msg, other) != NULL);
	if (e != NULL && strstr(e->msg, "overlap") == NULL)
		fprintf(stderr, "unexpected: %s\n", e->msg);
	nib_error_clear(&e);
	/* And so is acquiring a slot from it. */
	{
		struct uid_pool_slot *slot = NULL;
		CU_ASSERT_EQUAL(uid_pool_acquire(b, NULL, &slot, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, "overlap") != NULL);
		nib_error_clear(&e);
		uid_pool_release(slot, NULL, &e);
	}
	/* Another store, disjoint: fine. */
	CU_ASSERT_EQUAL(uid_pool_claim(c, &e), 0);
	CU_ASSERT_EQUAL(count_entries(reg), 2);
	/* What `nib slots` shows: b's conflict is a's store; c has none. */
	{
		struct uid_pool_conflict *cv = NULL;
		size_t ncv = 0;
		CU_ASSERT_EQUAL(uid_pool_conflicts(b, &cv, &ncv, &e), 0);
		CU_ASSERT_EQUAL(ncv, 1);
		CU_ASSERT(ncv == 1 && STREQ(cv[0].state_dir, state_dir) &&
			  cv[0].first == 2999999488ULL && cv[0].last == 3000007679ULL);
		uid_pool_conflicts_free(cv, ncv);
		CU_ASSERT_EQUAL(uid_pool_conflicts(c, &cv, &ncv, &e), 0);
		CU_ASSERT_EQUAL(ncv, 0);
		uid_pool_conflicts_free(cv, ncv);
	}

	/* A child shares the registration; its exit removes nothing. */
	kid = fork();
	if (kid == 0) {
		struct nib_error *ke = NULL;
		int r = uid_pool_claim(a, &ke);
		uid_pool_close(a);
		_exit(r == 0 && ke == NULL ? 0 : 1);
	}
	CU_ASSERT_EQUAL(waitpid(kid, &status, 0), kid);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CU_ASSERT_EQUAL(count_entries(reg), 2);

	/* While a2 holds it, closing a leaves the file; closing a2 removes it. */
	uid_pool_close(TAKE_PTR(a));
	CU_ASSERT_EQUAL(count_entries(reg), 2);
	CU_ASSERT_EQUAL(uid_pool_claim(b, &e), -1);
	nib_error_clear(&e);
	uid_pool_close(TAKE_PTR(a2));
	CU_ASSERT_EQUAL(count_entries(reg), 1);
	CU_ASSERT_EQUAL(uid_pool_claim(b, &e), 0);
	CU_ASSERT_PTR_NULL(e);

	/*
	 * Registrations nobody holds (their stores died), overlapping or not,
	 * are removed by the next claim; files not named like one are left.
	 */
	uid_pool_close(TAKE_PTR(b));
	uid_pool_close(TAKE_PTR(c));
	CU_ASSERT_EQUAL(count_entries(reg), 0);
	leftover = path_join(reg, "2999999488-3000000511-1-2");
	CU_ASSERT_EQUAL(test_write_file(leftover, "/gone\n"), 0);
	free(content);
	content = path_join(reg, "10-20-1-3");
	CU_ASSERT_EQUAL(test_write_file(content, "/gone too\n"), 0);
	free(content);
	content = path_join(reg, "notes.txt");
	CU_ASSERT_EQUAL(test_write_file(content, "not a registration\n"), 0);
	a = range_pool(state_dir, "2999999488", reg);
	/* Looking changes nothing, and a leftover is no conflict. */
	{
		struct uid_pool_conflict *cv = NULL;
		size_t ncv = 0;
		CU_ASSERT_EQUAL(a != NULL ? uid_pool_conflicts(a, &cv, &ncv, &e) : -1, 0);
		CU_ASSERT_EQUAL(ncv, 0);
		uid_pool_conflicts_free(cv, ncv);
		CU_ASSERT_EQUAL(access(leftover, F_OK), 0);
	}
	CU_ASSERT_EQUAL(a != NULL ? uid_pool_claim(a, &e) : -1, 0);
	CU_ASSERT_EQUAL(access(leftover, F_OK), -1);
	CU_ASSERT_EQUAL(count_entries(reg), 2); /* ours and notes.txt */

	/*
	 * A registry that cannot be made (here: below a regular file) is an
	 * error, for the claim and so for acquiring a slot, and for looking.
	 */
	{
		cleanup_free char *file = tpath("not-a-dir");
		cleanup_free char *bad = tpath("not-a-dir/ranges");
		cleanup_uid_pool struct uid_pool *x = range_pool(other, "3000007680", bad);
		struct uid_pool_conflict *cv = NULL;
		struct uid_pool_slot *slot = NULL;
		size_t ncv = 0;

		CU_ASSERT_EQUAL(test_write_file(file, "x"), 0);
		if (x == NULL)
			return;
		CU_ASSERT_EQUAL(uid_pool_claim(x, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, "registering the UID range") != NULL);
		nib_error_clear(&e);
		CU_ASSERT_EQUAL(uid_pool_acquire(x, NULL, &slot, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, "acquiring a UID slot") != NULL);
		nib_error_clear(&e);
		CU_ASSERT_EQUAL(uid_pool_conflicts(x, &cv, &ncv, &e), -1);
		CU_ASSERT(e != NULL && strstr(e->msg, bad) != NULL);
		nib_error_clear(&e);
		uid_pool_conflicts_free(cv, ncv);
	}
}

static CU_TestInfo pool_tests[] = {
	{ "acquire, record, list, release", test_acquire_basics },
	{ "set_info", test_set_info },
	{ "exhaustion, no_wait, timeout", test_exhaust_busy_timeout },
	{ "search rotates", test_rotation },
	{ "waiter wakes on release", test_wait_wakes_on_release },
	{ "waiter wakes when a holder dies", test_wait_wakes_on_crash },
	{ "failed cleanup holds the slot", test_held_slot },
	{ "stale slot and reclaim", test_stale_and_reclaim },
	{ "stale slot cleaned on acquire", test_stale_cleaned_on_acquire },
	{ "build dir outside build-dir", test_build_dir_outside },
	{ "build dir through a symlink", test_build_dir_symlink },
	{ "fork safety", test_fork_safety },
	{ "classic mode", test_classic },
	{ "release kills the range (root)", test_kill_on_release },
	{ "reclaim kills orphans (root)", test_reclaim_kills },
	{ "one range per store on a host (root)", test_range_registry },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo contention_tests[] = {
	{ "32 processes x 50 cycles over 8 slots", test_contention },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "uid-pool validate", NULL, NULL, setup, teardown, validate_tests },
	{ "uid-pool procs", NULL, NULL, setup, teardown, proc_tests },
	{ "uid-pool", NULL, NULL, setup, teardown, pool_tests },
	{ "uid-pool contention", NULL, NULL, setup, teardown, contention_tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	int r;

	alarm(900); /* a hung wait fails the run instead of blocking it */
	r = cunit_run(suites);

	for (int i = 0; i < 4; i++)
		free(db_paths[i]);
	return r;
}
