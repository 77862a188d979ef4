/*
 * nib-daemon - the multi-user build daemon.
 *
 * Listens on the daemon socket (or a socket passed by systemd); every
 * connection is served by its own process (its own session, its own store
 * handle), which authenticates the peer (peer.h) and serves the worker
 * protocol (serve.h), then exits.  The parent only accepts, counts, hands
 * connections over and reaps.  --stdio serves one connection on
 * stdin/stdout.
 *
 * Spare processes: forking and opening the store cost more than serving a
 * short query, so the parent keeps spare-connection-processes of them forked
 * in advance.  A spare gets the store ready, then waits on its own channel
 * (a socketpair with the parent) for exactly one connection: the parent
 * accepts, numbers and counts it, and passes the socket over (SCM_RIGHTS)
 * with the connection number.  The spare then serves it as if it had been
 * forked for it and exits; nothing is carried from one peer to the next.
 * With no spare left the parent forks one for the connection at once.
 *
 * The store handle of a connection process is the parent's, inherited over
 * fork (see parent_store below): opening SQLite and reading its schema was
 * the largest part of a connection's cost.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "build.h"
#include "cleanup.h"
#include "local-store.h"
#include "log.h"
#include "peer.h"
#include "protocol.h"
#include "serve.h"
#include "settings.h"
#include "store.h"
#include "strbuf.h"
#include "uid-pool.h"
#include "util.h"
#include "banned.h"

/* Seconds connection processes get after SIGTERM before SIGKILL. */
#define DAEMON_GRACE_SEC 10

enum child_role {
	CHILD_SPARE,	/* waiting for a connection; chan is its channel */
	CHILD_SERVING,	/* serving a connection (counted against max-connections) */
	CHILD_REFUSING, /* telling a client past max-connections to come back later */
	CHILD_GONE,	/* lost its channel before getting a connection; not reaped yet */
};

struct child {
	pid_t pid;
	enum child_role role;
	int chan;     /* CHILD_SPARE: the parent's end of its channel; else -1 */
	uint64_t seq; /* fork order: the oldest spare is the likeliest to be ready */
	uint64_t conn_no;
	uid_t uid;
	int64_t since; /* seconds since the epoch */
};

static struct child *children;
static size_t n_children, cap_children;
static size_t n_served, n_refusing, n_spare;
static uint64_t n_forked;
static pid_t daemon_pid;

/*
 * The parent's store handle, opened at start and then never used by the
 * parent again: each connection process uses its own copy of it, which
 * fork() made, instead of opening the store itself (the SQLite open and
 * the parsing of the schema, a third of a connection's CPU time).
 *
 * SQLite does not support using a connection in a child that a parent
 * opened (its locks are POSIX locks, which a child does not inherit, while
 * the connection's memory says they are held).  Here that is sound because
 * the parent never uses the handle after the fork: it holds no transaction
 * and no lock but the two every connection at rest holds in WAL mode - a
 * shared lock on the database file and one on the shared-memory file -
 * and it holds them until every connection process has exited
 * (terminate_children; should the parent die, PR_SET_PDEATHSIG stops the
 * children); a child's transactions take their own locks.  A
 * connection opened in the child would not be different: SQLite shares
 * the per-file lock state of one process among its connections, so it too
 * would count on the parent's two locks (the daemon has always worked so).
 * The child checks that the handle still fits the store before using it
 * (local_store_check_reuse), and never closes it (_exit).
 */
static struct store *parent_store;

/* What the parent sends a spare with the connection's socket. */
struct handoff {
	uint64_t conn_no;
	uint32_t refuse_busy; /* past max-connections: refuse politely, then exit */
	uint32_t reserved;
};

static void role_count(enum child_role role, int delta)
{
	size_t *n = role == CHILD_SPARE	     ? &n_spare
		    : role == CHILD_SERVING  ? &n_served
		    : role == CHILD_REFUSING ? &n_refusing
					     : NULL;
	if (n != NULL)
		*n += (size_t)delta;
}

static void child_set_role(struct child *c, enum child_role role)
{
	role_count(c->role, -1);
	c->role = role;
	role_count(role, 1);
}

/* In a connection process: the client socket, for the SIGTERM handler. */
static int conn_fd_for_signal = -1;
static volatile sig_atomic_t conn_term;

/*
 * SIGTERM in a connection process (the daemon stopping, or dying: see
 * PR_SET_PDEATHSIG): shut the socket's reading side.  The build scheduler
 * watches the socket as its cancel signal, so running builds are killed
 * and cleaned up and their slots released; then the request loop sees the
 * end of input and the process exits normally.  A spare has no socket yet:
 * it sees conn_term when its wait is interrupted and exits.
 */
static void on_conn_term(int sig)
{
	(void)sig;
	conn_term = 1;
	if (conn_fd_for_signal >= 0)
		shutdown(conn_fd_for_signal, SHUT_RD);
}

/*
 * The status file <state-dir>/daemon/status.json (see README.md, "Status"),
 * rewritten atomically whenever a connection starts or ends; `nib daemon
 * status` reads it together with the UID pool.
 */
static char *status_path;
static int status_fd = -1;
static size_t status_len = SIZE_MAX; /* bytes in the file; SIZE_MAX = unknown */
static int64_t started_at;
static uint64_t total_conns;

static void write_status(const struct settings *s, const char *socket_path)
{
	cleanup_strbuf struct strbuf sb = STRBUF_INIT;

	if (status_path == NULL)
		return;
	strbuf_addf(&sb,
		    "{\"pid\":%d,\"started\":%lld,\"socket\":\"%s\",\"maxJobs\":%lld,"
		    "\"maxConnections\":%lld,\"totalConnections\":%llu,\"connections\":[",
		    (int)getpid(), (long long)started_at, socket_path, (long long)s->max_jobs,
		    (long long)s->max_connections, (unsigned long long)total_conns);
	for (size_t i = 0, k = 0; i < n_children; i++) {
		if (children[i].role != CHILD_SERVING)
			continue;
		strbuf_addf(&sb, "%s{\"id\":%llu,\"pid\":%d,\"uid\":%u,\"since\":%lld}",
			    k++ ? "," : "", (unsigned long long)children[i].conn_no,
			    (int)children[i].pid, (unsigned)children[i].uid,
			    (long long)children[i].since);
	}
	strbuf_addstr(&sb, "]}");
	/*
	 * Rewritten in place (no new inode per connection: creating and
	 * renaming a file each time halved the connection rate); a reader
	 * that catches it half-written retries.  A shorter text is padded
	 * with blanks (JSON allows them) rather than the file truncated each
	 * time, unless that would leave more than a page of them.
	 */
	if (sb.len + 1 < status_len && status_len - sb.len <= 4096) {
		while (sb.len + 1 < status_len)
			strbuf_addch(&sb, ' ');
	}
	strbuf_addch(&sb, '\n');
	if (status_fd < 0)
		status_fd = open(status_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (status_fd < 0 || pwrite(status_fd, sb.buf, sb.len, 0) != (ssize_t)sb.len ||
	    (sb.len < status_len && ftruncate(status_fd, (off_t)sb.len) < 0)) {
		log_debug("cannot write the status file '%s': %s", status_path, strerror(errno));
		status_len = SIZE_MAX; /* unknown: truncate next time */
		return;
	}
	status_len = sb.len;
}

/*
 * Reap exited connection processes; returns how many spares exited without
 * having been given a connection (a sign of trouble unless the daemon is
 * stopping).
 */
static size_t reap(void)
{
	size_t lost_spares = 0;

	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		enum child_role role = CHILD_GONE;

		if (pid <= 0)
			return lost_spares;
		for (size_t i = 0; i < n_children; i++) {
			if (children[i].pid != pid)
				continue;
			role = children[i].role;
			if (children[i].chan >= 0)
				close(children[i].chan);
			role_count(role, -1);
			children[i] = children[--n_children];
			break;
		}
		if (role == CHILD_SPARE || role == CHILD_GONE)
			lost_spares++;
		if (WIFSIGNALED(status))
			log_warning("connection process %d killed by signal %d", (int)pid,
				    WTERMSIG(status));
	}
}

/*
 * Serve one connection: authenticate, then serve with the store the process
 * opened in advance (store, or open_err saying why it could not), or, when
 * both are NULL, with one opened now.  mine is the connection's own copy of
 * the settings.  Takes conn.  hello_err: the connection's greeting
 * (proto_server_hello) was done already and failed, so nothing more can be
 * sent; NULL when it succeeded or is left to serve_connection().
 */
static int serve_child(struct settings *mine, struct store *store, const struct nib_error *open_err,
		       struct proto_conn *conn_, const struct nib_error *hello_err,
		       const struct peer_cred *cred, uint64_t conn_no, bool refuse_busy)
{
	cleanup_error struct nib_error *err = NULL;
	cleanup_proto_conn struct proto_conn *conn = conn_;
	cleanup_store struct store *opened = NULL;
	cleanup_free char *tag =
		xasprintf("conn %llu uid=%u", (unsigned long long)conn_no, (unsigned)cred->uid);
	struct serve_peer peer = {
		.pid = cred->pid, .uid = cred->uid, .gid = cred->gid, .tag = tag
	};

	if (refuse_busy) {
		log_warning("%s: refused: too many connections", tag);
		if (hello_err == NULL)
			serve_refuse(conn, PROTO_TRUST_UNKNOWN,
				     "the nib daemon has too many connections (max-connections); "
				     "try again later",
				     NULL);
		return 1;
	}
	if (peer_authorise(cred, mine, &peer.trusted, &err) < 0) {
		log_warning("%s: refused: %s", tag, err->msg);
		if (hello_err == NULL)
			serve_refuse(conn, PROTO_TRUST_NOT_TRUSTED, err->msg, NULL);
		return 1;
	}
	log_info("%s: connected (user %s, pid %d, %s)", tag, cred->user, (int)cred->pid,
		 peer.trusted ? "trusted" : "untrusted");
	if (hello_err != NULL) {
		log_info("%s: closed: %s", tag, hello_err->msg);
		return 1;
	}
	if (store == NULL && open_err == NULL) {
		if (local_store_open(mine, 0, &opened, &err) < 0)
			open_err = err;
		store = opened;
	}
	if (store == NULL) {
		log_error("%s: %s", tag, open_err->msg);
		serve_refuse(conn, peer.trusted ? PROTO_TRUST_TRUSTED : PROTO_TRUST_NOT_TRUSTED,
			     open_err->msg, NULL);
		return 1;
	}
	if (serve_connection(store, mine, conn, &peer, &err) < 0) {
		log_info("%s: closed: %s", tag, err->msg);
		return 1;
	}
	log_debug("%s: closed", tag);
	return 0;
}

/* A listening socket at path: directory 0755, socket 0666, stale socket removed. */
static int listen_unix(const char *path, struct nib_error **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cleanup_free char *dir = xstrdup(path);
	cleanup_close int fd = -1;
	char *slash = strrchr(dir, '/');

	if (strlen(path) >= sizeof(sa.sun_path))
		return nib_error_set(err, NIB_E_INVALID, 0, "socket path '%s' is too long", path);
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir_p(dir, 0755, err) < 0)
			return -1;
		if (chmod(dir, 0755) < 0)
			return nib_error_errno(err, "cannot chmod '%s'", dir);
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return nib_error_errno(err, "cannot create a socket");
	if (unlink(path) < 0 && errno != ENOENT)
		return nib_error_errno(err, "cannot remove the stale socket '%s'", path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return nib_error_errno(err, "cannot bind to '%s'", path);
	if (chmod(path, 0666) < 0)
		return nib_error_errno(err, "cannot chmod '%s'", path);
	if (listen(fd, 128) < 0)
		return nib_error_errno(err, "cannot listen on '%s'", path);
	return TAKE_FD(fd);
}

/* The socket systemd passed (LISTEN_FDS=1, LISTEN_PID=us), or -1 when none. */
static int systemd_socket(struct nib_error **err)
{
	const char *fds = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");
	uint64_t n, p;

	if (fds == NULL || pid == NULL)
		return -1;
	if (parse_u64(pid, &p) < 0 || p != (uint64_t)getpid())
		return -1;
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");
	if (parse_u64(fds, &n) < 0 || n != 1)
		return nib_error_set(err, NIB_E_CONFIG, 0,
				     "expected one socket from systemd (LISTEN_FDS=%s)", fds),
		       -2;
	if (fd_set_cloexec(3, true) < 0)
		return nib_error_errno(err, "fd 3 from systemd"), -2;
	return 3;
}

static void log_reclaim(void *ud, const struct uid_pool_slot *slot,
			enum uid_pool_reclaim_outcome outcome, const char *detail)
{
	(void)ud;
	if (outcome == UID_POOL_RECLAIM_CLEANED)
		log_notice("UID slot %u left by a previous holder: %s", slot->index, detail);
	else if (outcome == UID_POOL_RECLAIM_HELD)
		log_warning("UID slot %u cannot be cleaned and is now held: %s", slot->index,
			    detail);
	else
		log_warning("UID slot %u is held (free it with 'nib slots release %u'): %s",
			    slot->index, slot->index, detail);
}

/*
 * Root daemons build with the UID pool: check it against the account
 * databases now (a bad range is an error at start, not at the first build)
 * and clean what a previous daemon killed mid-build left behind.
 */
static struct uid_pool *open_uid_pool(const struct settings *settings, struct nib_error **err)
{
	struct uid_pool_reclaim_result res;
	struct uid_pool *pool;

	if (geteuid() != 0)
		return NULL;
	pool = uid_pool_open(settings, NULL, err);
	if (pool == NULL)
		return NULL;
	/* Another store using these IDs: reclaim would kill its builders. */
	if (uid_pool_claim(pool, err) < 0) {
		uid_pool_close(pool);
		return NULL;
	}
	if (uid_pool_reclaim(pool, NULL, log_reclaim, NULL, &res, err) < 0) {
		log_warning("%s, continuing", (*err)->msg);
		nib_error_clear(err);
	} else if (res.n_cleaned > 0 || res.n_held > 0) {
		log_notice("UID slots reclaimed: %u cleaned, %u held", res.n_cleaned, res.n_held);
	}
	return pool;
}

/*
 * A spare waits for its connection: the socket and the handoff, or -1 when
 * the parent closed the channel (stopping, or gone) or a signal asked it to
 * stop.  Stopping signals are blocked until now and taken only while
 * waiting, so a SIGTERM that arrived during the set-up is not lost.
 */
static int spare_wait(int chan, const sigset_t *stop_mask, struct handoff *ret)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { ret, sizeof(*ret) };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	struct pollfd pfd = { chan, POLLIN, 0 };
	sigset_t waiting;
	ssize_t n;
	int fd = -1;

	sigprocmask(SIG_SETMASK, NULL, &waiting);
	for (int sig = 1; sig < NSIG; sig++)
		if (sigismember(stop_mask, sig) == 1)
			sigdelset(&waiting, sig);
	while (ppoll(&pfd, 1, NULL, &waiting) < 0)
		if (errno != EINTR || conn_term)
			return -1;
	n = recvmsg(chan, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0)
		return -1;
	c = CMSG_FIRSTHDR(&mh);
	if (c != NULL && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
	    c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (n != (ssize_t)sizeof(*ret) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/*
 * A connection process: set up (its own session, the store opened), wait
 * for one connection, serve it, exit.  Runs in the child right after fork;
 * signals are still blocked as in the parent.  settings is the process's
 * own (fork copied it): the connection's SetOptions change it.
 */
static _Noreturn void spare_main(struct settings *mine, int chan, const sigset_t *mask)
{
	cleanup_error struct nib_error *err = NULL, *hello_err = NULL;
	struct store *store = NULL;
	struct nib_error *open_err = NULL;
	struct proto_conn *conn;
	struct peer_cred cred;
	struct handoff h;
	int cfd, r;

	/* SIGPIPE stays ignored: a vanished client is an EPIPE. */
	{
		struct sigaction sa = { .sa_handler = on_conn_term };
		sigemptyset(&sa.sa_mask);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != daemon_pid)
			_exit(1);
	}
	setsid();
	if (parent_store != NULL && local_store_check_reuse(parent_store, &open_err) == 0) {
		store = parent_store;
	} else {
		if (open_err != NULL)
			log_debug("opening the store again: %s", open_err->msg);
		nib_error_clear(&open_err);
		(void)local_store_open(mine, 0, &store, &open_err);
	}

	cfd = spare_wait(chan, mask, &h);
	if (cfd < 0)
		_exit(0);
	close(chan);
	/* A SIGTERM from now on shuts the connection (on_conn_term). */
	conn_fd_for_signal = cfd;
	sigprocmask(SIG_UNBLOCK, mask, NULL);
	if (h.refuse_busy)
		alarm(10);
	/*
	 * The daemon's greeting depends on nothing about the peer: answer the
	 * client's at once, and find out who the peer is while the client
	 * reads ours.
	 */
	conn = proto_conn_new_fd(cfd, cfd, true);
	(void)proto_server_hello(conn, &hello_err);
	/* The store may have become available since: try again before failing. */
	if (store == NULL && !h.refuse_busy) {
		nib_error_clear(&open_err);
		(void)local_store_open(mine, 0, &store, &open_err);
	}
	if (peer_get_cred(cfd, &cred, &err) < 0) {
		log_error("conn %llu: %s", (unsigned long long)h.conn_no, err->msg);
		_exit(1);
	}
	r = serve_child(mine, store, open_err, conn, hello_err, &cred, h.conn_no,
			h.refuse_busy != 0);
	local_store_close_for_exit(store);
	_exit(r);
}

/*
 * Fork a connection process (spare_main); NULL when that failed (logged).
 * The child closes the parent's descriptors, and extra_fd unless it is -1.
 * The returned entry is valid until the next change of the table.
 */
static struct child *spawn_spare(struct settings *settings, int lfd, int sfd, int extra_fd,
				 const sigset_t *mask)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return log_errno(LOG_ERR, errno, "cannot create a socket pair"), NULL;
	daemon_pid = getpid();
	pid = fork();
	if (pid < 0) {
		log_errno(LOG_ERR, errno, "fork failed");
		close(sv[0]);
		close(sv[1]);
		return NULL;
	}
	if (pid == 0) {
		/* Nothing of the parent's but the settings and the store's own files. */
		close(sv[0]);
		close(lfd);
		close(sfd);
		if (extra_fd >= 0)
			close(extra_fd);
		if (status_fd >= 0)
			close(status_fd);
		for (size_t i = 0; i < n_children; i++)
			if (children[i].chan >= 0)
				close(children[i].chan);
		spare_main(settings, sv[1], mask);
	}
	close(sv[1]);
	if (n_children == cap_children) {
		cap_children = cap_children ? cap_children * 2 : 16;
		children = xreallocarray(children, cap_children, sizeof(*children));
	}
	children[n_children] = (struct child){
		.pid = pid, .role = CHILD_SPARE, .chan = sv[0], .seq = ++n_forked, .uid = (uid_t)-1
	};
	n_spare++;
	return &children[n_children++];
}

/* The spare forked first, or NULL. */
static struct child *oldest_spare(void)
{
	struct child *best = NULL;

	for (size_t i = 0; i < n_children; i++)
		if (children[i].role == CHILD_SPARE &&
		    (best == NULL || children[i].seq < best->seq))
			best = &children[i];
	return best;
}

static int send_conn(int chan, int cfd, const struct handoff *h)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { (void *)h, sizeof(*h) };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;

	memset(&u, 0, sizeof(u));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &cfd, sizeof(int));
	return sendmsg(chan, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)sizeof(*h) ? 0 : -1;
}

/*
 * Give an accepted connection to a connection process: the oldest spare,
 * or one forked for it.  A spare that died before it could take it is
 * passed over (reap() collects it).  Closes cfd; false when no process
 * could take it (the client sees the connection closed).
 */
static bool hand_over(struct settings *settings, int lfd, int sfd, const sigset_t *mask, int cfd,
		      const struct handoff *h, uid_t uid)
{
	/* Fork at most twice for it: a process that dies at once would die again. */
	for (int forked = 0; forked < 2;) {
		struct child *c = oldest_spare();

		if (c == NULL) {
			c = spawn_spare(settings, lfd, sfd, cfd, mask);
			forked++;
		}
		if (c == NULL)
			break;
		if (send_conn(c->chan, cfd, h) < 0) {
			log_errno(LOG_WARNING, errno,
				  "connection process %d cannot take a connection", (int)c->pid);
			close(c->chan);
			c->chan = -1;
			child_set_role(c, CHILD_GONE);
			continue;
		}
		close(c->chan);
		c->chan = -1;
		c->conn_no = h->conn_no;
		c->uid = uid;
		c->since = (int64_t)(now_realtime_usec() / 1000000);
		child_set_role(c, h->refuse_busy ? CHILD_REFUSING : CHILD_SERVING);
		close(cfd);
		return true;
	}
	close(cfd);
	return false;
}

static void terminate_children(void)
{
	uint64_t deadline = now_monotonic_usec() + DAEMON_GRACE_SEC * 1000000ULL;

	/* Spares see their channel closed and exit; the others cancel their builds. */
	for (size_t i = 0; i < n_children; i++) {
		if (children[i].chan >= 0)
			close(children[i].chan);
		children[i].chan = -1;
		kill(children[i].pid, SIGTERM);
	}
	while (n_children > 0 && now_monotonic_usec() < deadline) {
		struct timespec ts = { 0, 20 * 1000000L };
		reap();
		nanosleep(&ts, NULL);
	}
	for (size_t i = 0; i < n_children; i++) {
		kill(-children[i].pid, SIGKILL);
		kill(children[i].pid, SIGKILL);
	}
	while (n_children > 0) {
		struct timespec ts = { 0, 10 * 1000000L };
		reap();
		if (n_children > 0)
			nanosleep(&ts, NULL);
	}
}

/*
 * libc calls its own realloc() through its PLT (so that it can be
 * replaced), bound at the first call, which walks the symbol tables of
 * every loaded library: a dozen page faults in each connection process
 * that makes the first such call, unless this process made one before it
 * forked them.  vasprintf() shrinks its buffer with realloc() when the
 * text turns out a little shorter than the buffer (glibc 2.36: 100 bytes
 * for a short format); nib formats text that way everywhere.
 */
static void bind_libc_realloc(void)
{
	free(xasprintf("%s", "bind realloc: a text of a bit more than fifty bytes"));
}

static void usage(FILE *out)
{
	fprintf(out, "Usage: nib-daemon [OPTIONS]\n\n"
		     "Serve the nib store to local users over a Unix socket.\n\n"
		     "Options:\n"
		     "  -h, --help              show this help\n"
		     "      --version           print the version\n"
		     "      --option NAME VALUE set a setting\n"
		     "      --store-dir DIR, --store-root DIR, --state-dir DIR\n"
		     "      --no-config         do not read the settings file\n"
		     "      --ready-fd N        write \"READY=1\\n\" to fd N once serving\n"
		     "      --stdio             serve one connection on stdin/stdout\n"
		     "  -v, --verbose           log more (repeatable)\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "option", required_argument, NULL, 'o' },
		{ "store-dir", required_argument, NULL, 's' },
		{ "store-root", required_argument, NULL, 'r' },
		{ "state-dir", required_argument, NULL, 't' },
		{ "no-config", no_argument, NULL, 'n' },
		{ "ready-fd", required_argument, NULL, 'R' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "stdio", no_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	cleanup_settings struct settings *settings = settings_new();
	cleanup_error struct nib_error *err = NULL;
	cleanup_strv char **names = xcalloc(1, sizeof(char *));
	cleanup_strv char **values = xcalloc(1, sizeof(char *));
	cleanup_close int sfd = -1;
	cleanup_uid_pool struct uid_pool *pool = NULL;
	cleanup_store struct store *keep_store = NULL;
	struct settings_load_opts lo = { .check_owner = -1 };
	int verbose = 0, ready_fd = -1, c;
	bool stdio = false;
	cleanup_close int lfd = -1;
	cleanup_free char *sock_path = NULL;
	uint64_t conn_no = 0, spares_after = 0;
	sigset_t mask;

	/*
	 * Connection processes live briefly: let the heap grow in larger
	 * steps (pages not touched cost nothing) and give less of it back, so
	 * that each of them makes fewer brk() calls.  Inherited over fork.
	 */
	mallopt(M_TOP_PAD, 1 << 20);
	mallopt(M_TRIM_THRESHOLD, 4 << 20);
	log_set_ident("nib-daemon");
	if (getenv("JOURNAL_STREAM") != NULL)
		log_set_level_prefix(1);

	while ((c = getopt_long(argc, argv, "hv", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("nib-daemon %s\n", PACKAGE_VERSION);
			return 0;
		case 'o':
			if (optind >= argc) {
				fprintf(stderr, "nib-daemon: '--option' needs NAME and VALUE\n");
				return 2;
			}
			strv_push(&names, optarg);
			strv_push(&values, argv[optind++]);
			break;
		case 's':
		case 'r':
		case 't':
			strv_push(&names, c == 's'   ? "store-dir"
					  : c == 'r' ? "store-root"
						     : "state-dir");
			strv_push(&values, optarg);
			break;
		case 'n':
			lo.no_file = true;
			break;
		case 'R': {
			uint64_t v;
			if (parse_u64(optarg, &v) < 0 || v > 65535) {
				fprintf(stderr, "nib-daemon: invalid --ready-fd '%s'\n", optarg);
				return 2;
			}
			ready_fd = (int)v;
			break;
		}
		case 'v':
			verbose++;
			break;
		case 'S':
			stdio = true;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "nib-daemon: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	log_set_max_level(LOG_INFO + verbose);

	lo.option_names = names;
	lo.option_values = values;
	if (settings_load(settings, &lo, &err) < 0) {
		log_error("%s", err->msg);
		return 1;
	}

	if (!stdio) {
		pool = open_uid_pool(settings, &err);
		if (err != NULL) {
			log_error("%s", err->msg);
			return 1;
		}
		/* Kept open (and validated) for the daemon's lifetime. */
		log_debug("UID pool %s", pool != NULL ? "checked" : "not used (not root)");
	}

	if (stdio) {
		cleanup_settings struct settings *mine = settings_copy(settings);
		struct peer_cred cred;
		int r;

		peer_self_cred(&cred);
		r = serve_child(mine, NULL, NULL,
				proto_conn_new_fd(STDIN_FILENO, STDOUT_FILENO, true), NULL, &cred,
				0, false);
		peer_cred_release(&cred);
		return r;
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return log_errno(LOG_ERR, errno, "sigprocmask failed"), 1;
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		return log_errno(LOG_ERR, errno, "signalfd failed"), 1;
	signal(SIGPIPE, SIG_IGN);

	lfd = systemd_socket(&err);
	if (lfd == -2)
		return log_error("%s", err->msg), 1;
	if (lfd < 0) {
		sock_path = settings_daemon_socket_path(settings);
		lfd = listen_unix(sock_path, &err);
		if (lfd < 0)
			return log_error("%s", err->msg), 1;
	}

	/*
	 * Keep a store handle open for the daemon's lifetime: the schema is
	 * created or migrated now rather than by the first client, and the
	 * database's WAL stays in place instead of being checkpointed and
	 * removed each time the last connection process closes it.  This
	 * process never uses it again; connection processes serve with their
	 * copies of it (parent_store).
	 */
	if (local_store_open(settings, 0, &keep_store, &err) < 0) {
		log_error("%s", err->msg);
		return 1;
	}
	/* Prepared once here rather than in every connection process. */
	if (local_store_prepare(keep_store, &err) < 0) {
		log_error("%s", err->msg);
		return 1;
	}
	parent_store = keep_store;
	peer_nss_prepare();
	/*
	 * The syscall filter and the cgroup hierarchy, made once here: every
	 * connection process that builds inherits them rather than spending
	 * a few hundred microseconds of its own on them.  When they cannot be
	 * made, the builds that need them say why.
	 */
	if (build_prepare_now(settings, &err) < 0) {
		log_debug("not prepared for builds now: %s", err->msg);
		nib_error_clear(&err);
	}
	bind_libc_realloc();
	started_at = (int64_t)(now_realtime_usec() / 1000000);
	{
		cleanup_free char *sdir = path_join(settings->state_dir, "daemon");
		if (mkdir_p(sdir, 0755, &err) < 0) {
			log_warning("%s: no status file", err->msg);
			nib_error_clear(&err);
		} else {
			status_path = path_join(sdir, "status.json");
		}
	}
	write_status(settings, sock_path != NULL ? sock_path : "(systemd)");
	log_info("starting: socket %s, store %s, state %s, max-jobs %lld, max-connections %lld",
		 sock_path != NULL ? sock_path : "(from systemd)", settings->store_dir,
		 settings->state_dir, (long long)settings->max_jobs,
		 (long long)settings->max_connections);
	if (ready_fd >= 0) {
		static const char ready[] = "READY=1\n";
		if (write_full(ready_fd, ready, sizeof(ready) - 1, &err) < 0) {
			log_warning("cannot write to --ready-fd %d: %s, continuing", ready_fd,
				    err->msg);
			nib_error_clear(&err);
		}
		close(ready_fd);
	}

	for (;;) {
		struct pollfd pfd[2] = { { sfd, POLLIN, 0 }, { lfd, POLLIN, 0 } };
		struct signalfd_siginfo si;
		size_t want_spares = (size_t)settings->spare_connection_processes;
		uint64_t now = now_monotonic_usec();
		bool stop = false, status_dirty = false;
		int timeout = -1;

		/* Keep the spares topped up (but not after they kept dying: see below). */
		while (n_spare < want_spares && now >= spares_after) {
			if (spawn_spare(settings, lfd, sfd, -1, &mask) == NULL)
				spares_after = now + 1000000;
		}
		if (n_spare < want_spares)
			timeout = (int)((spares_after - now) / 1000) + 1;
		if (poll(pfd, 2, timeout) < 0) {
			if (errno == EINTR)
				continue;
			return log_errno(LOG_ERR, errno, "poll failed"), 1;
		}
		while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			if (si.ssi_signo == SIGCHLD)
				continue;
			if (si.ssi_signo == SIGHUP) {
				log_info("SIGHUP: settings are read at start; restart to apply "
					 "changes");
				continue;
			}
			log_info("received %s, stopping", strsignal((int)si.ssi_signo));
			stop = true;
		}
		{
			size_t before = n_children, lost = reap();

			status_dirty = n_children != before;
			/*
			 * Spares only exit on their own when something is wrong
			 * (killed, or crashing while opening the store): fork no
			 * more for a second rather than in a loop.  Connections are
			 * still served meanwhile, by processes forked for them.
			 */
			if (lost > 0 && !stop) {
				log_warning("%zu spare connection process%s exited without a "
					    "connection; forking spares again in 1 s",
					    lost, lost > 1 ? "es" : "");
				spares_after = now_monotonic_usec() + 1000000;
			}
		}
		if (stop)
			break;
		if (pfd[1].revents & POLLIN) {
			int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			struct handoff h = { 0 };
			uid_t peer_uid;

			if (cfd >= 0) {
				h.refuse_busy = n_served >= (size_t)settings->max_connections;
				if (h.refuse_busy &&
				    n_served + n_refusing >=
					    2 * (size_t)settings->max_connections) {
					close(cfd); /* not even room to refuse politely */
					cfd = -1;
				}
			} else if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
				log_errno(LOG_WARNING, errno, "accept failed");
			}
			if (cfd >= 0) {
				struct ucred uc = { .uid = (uid_t)-1 };
				socklen_t ulen = sizeof(uc);
				if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &uc, &ulen) < 0)
					uc.uid = (uid_t)-1;
				peer_uid = uc.uid;
				h.conn_no = ++conn_no;
				total_conns++;
				hand_over(settings, lfd, sfd, &mask, cfd, &h, peer_uid);
				status_dirty = true;
			}
		}
		if (status_dirty)
			write_status(settings, sock_path != NULL ? sock_path : "(systemd)");
	}
	close(TAKE_FD(lfd));
	if (sock_path != NULL)
		unlink(sock_path);
	terminate_children();
	if (status_path != NULL)
		unlink(status_path);
	free(status_path);
	log_info("stopped");
	return 0;
}
