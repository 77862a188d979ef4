/*
 * nib-container - start a small container inside a uid-range build.
 *
 *   nib-container [OPTIONS] [--] COMMAND [ARG...]
 *
 * The command runs as PID 1 of new user, mount, PID, network, UTS and IPC
 * namespaces.  The user namespace maps a sub-range of the build's IDs
 * (default "0 65536 65536": root inside is ID 65536 of the build), so several
 * containers of one build are as separate from each other as from the build.
 * Networking is one veth pair: "eth0" inside, the other end on a bridge of the
 * build's network namespace (created on first use), which gives the
 * containers of one build a private LAN:
 *
 *   nib-container --name server --net br0 --addr 10.0.0.1/24 --proc -- ./serve &
 *   nib-container --name client --net br0 --addr 10.0.0.2/24 --proc -- ./probe 10.0.0.1
 *
 * It is built statically so that a build can use it from a sandbox path
 * without any library.  It needs to run as root of a user namespace holding
 * the mapped IDs (a uid-range build); the exit status is the command's, or
 * 128+N when it was killed by signal N, or 125 when setup failed.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#include "banned.h"

#define EXIT_SETUP 125
#define MAX_MOUNTS 32

static const char usage[] =
	"Usage: nib-container [OPTIONS] [--] COMMAND [ARG...]\n"
	"  --name NAME          hostname, and names the veth end outside (default: ctr<pid>)\n"
	"  --map IN:OUT:COUNT   ID map for UIDs and GIDs (default 0:65536:65536)\n"
	"  --net BRIDGE         veth pair: eth0 inside, the other end on BRIDGE (created if "
	"needed)\n"
	"  --addr CIDR          IPv4 address of eth0, e.g. 10.0.0.2/24\n"
	"  --bridge-addr CIDR   IPv4 address of BRIDGE itself (in the caller's namespace)\n"
	"  --proc               mount a fresh /proc\n"
	"  --tmpfs DIR          mount a tmpfs on DIR (repeatable)\n"
	"  --overlay LOWER:UPPER:WORK:DIR   mount an overlay on DIR (repeatable)\n"
	"  --chdir DIR          working directory of the command\n";

struct mount_req {
	bool overlay;
	char *spec; /* DIR, or LOWER:UPPER:WORK:DIR */
};

struct opts {
	const char *name;
	unsigned long map_in, map_out, map_count;
	const char *bridge;
	const char *addr;
	const char *bridge_addr;
	bool proc;
	struct mount_req mounts[MAX_MOUNTS];
	size_t n_mounts;
	const char *chdir;
	char **argv;
};

static __attribute__((format(printf, 1, 2))) void warnx_(const char *fmt, ...)
{
	va_list ap;

	fputs("nib-container: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

#define fail(...)                    \
	do {                         \
		warnx_(__VA_ARGS__); \
		return -1;           \
	} while (0)

/* ---- netlink ---------------------------------------------------------------- */

struct nl_req {
	struct nlmsghdr h;
	char buf[1024];
};

static struct rtattr *nl_add(struct nl_req *r, unsigned short type, const void *data, size_t len)
{
	struct rtattr *a = (struct rtattr *)((char *)&r->h + NLMSG_ALIGN(r->h.nlmsg_len));
	size_t total = RTA_LENGTH(len);

	if (NLMSG_ALIGN(r->h.nlmsg_len) + RTA_ALIGN(total) > sizeof(*r))
		abort(); /* requests here have a fixed, small size */
	a->rta_type = type;
	a->rta_len = (unsigned short)total;
	if (len)
		memcpy(RTA_DATA(a), data, len);
	r->h.nlmsg_len = (uint32_t)(NLMSG_ALIGN(r->h.nlmsg_len) + RTA_ALIGN(total));
	return a;
}

static struct rtattr *nl_nest(struct nl_req *r, unsigned short type)
{
	return nl_add(r, type, NULL, 0);
}

static void nl_end(struct nl_req *r, struct rtattr *nest)
{
	nest->rta_len = (unsigned short)((char *)&r->h + r->h.nlmsg_len - (char *)nest);
}

static void nl_init(struct nl_req *r, unsigned short type, unsigned short flags)
{
	memset(r, 0, sizeof(*r));
	r->h.nlmsg_len = NLMSG_LENGTH(0);
	r->h.nlmsg_type = type;
	r->h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
}

static void nl_add_raw(struct nl_req *r, const void *data, size_t len)
{
	memcpy((char *)&r->h + NLMSG_ALIGN(r->h.nlmsg_len), data, len);
	r->h.nlmsg_len = (uint32_t)(NLMSG_ALIGN(r->h.nlmsg_len) + NLMSG_ALIGN(len));
}

/* Send one request and wait for its acknowledgement; returns 0 or -errno. */
static int nl_talk(struct nl_req *r)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	char reply[4096];
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	int ret = -EIO;
	ssize_t n;

	if (fd < 0)
		return -errno;
	r->h.nlmsg_seq = 1;
	if (sendto(fd, r, r->h.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	n = recv(fd, reply, sizeof(reply), 0);
	if (n < 0)
		ret = -errno;
	else if ((size_t)n >= sizeof(struct nlmsghdr)) {
		struct nlmsghdr *h = (struct nlmsghdr *)reply;
		if (h->nlmsg_type == NLMSG_ERROR &&
		    h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct nlmsgerr)))
			ret = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
	}
	close(fd);
	return ret;
}

static int link_up(const char *ifname)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		fail("socket: %s", strerror(errno));
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		close(s);
		fail("cannot find interface '%s': %s", ifname, strerror(errno));
	}
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
		close(s);
		fail("cannot bring up '%s': %s", ifname, strerror(errno));
	}
	close(s);
	return 0;
}

static int add_address(const char *ifname, const char *cidr)
{
	struct nl_req r;
	struct ifaddrmsg ifa = { .ifa_family = AF_INET };
	char ip[INET_ADDRSTRLEN];
	const char *slash = strchr(cidr, '/');
	struct in_addr a;
	unsigned long prefix;
	char *end = NULL;
	int e;

	if (slash == NULL || (size_t)(slash - cidr) >= sizeof(ip))
		fail("invalid address '%s': want A.B.C.D/N", cidr);
	memcpy(ip, cidr, (size_t)(slash - cidr));
	ip[slash - cidr] = '\0';
	prefix = strtoul(slash + 1, &end, 10);
	if (inet_pton(AF_INET, ip, &a) != 1 || *end != '\0' || end == slash + 1 || prefix > 32)
		fail("invalid address '%s': want A.B.C.D/N", cidr);
	ifa.ifa_prefixlen = (unsigned char)prefix;
	ifa.ifa_index = if_nametoindex(ifname);
	if (ifa.ifa_index == 0)
		fail("cannot find interface '%s': %s", ifname, strerror(errno));
	nl_init(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE);
	nl_add_raw(&r, &ifa, sizeof(ifa));
	nl_add(&r, IFA_LOCAL, &a, sizeof(a));
	nl_add(&r, IFA_ADDRESS, &a, sizeof(a));
	e = nl_talk(&r);
	if (e < 0)
		fail("cannot add address '%s' to '%s': %s", cidr, ifname, strerror(-e));
	return 0;
}

/* Create the bridge if missing; returns 1 when this call created it. */
static int ensure_bridge(const char *br)
{
	struct nl_req r;
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct rtattr *info;
	int e;

	nl_init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	nl_add_raw(&r, &ifi, sizeof(ifi));
	nl_add(&r, IFLA_IFNAME, br, strlen(br) + 1);
	info = nl_nest(&r, IFLA_LINKINFO);
	nl_add(&r, IFLA_INFO_KIND, "bridge", 6);
	nl_end(&r, info);
	e = nl_talk(&r);
	if (e == -EEXIST)
		return 0;
	if (e < 0)
		fail("cannot create bridge '%s': %s", br, strerror(-e));
	return link_up(br) < 0 ? -1 : 1;
}

/* veth pair: `host` here, "eth0" in the network namespace of `pid`. */
static int create_veth(const char *host, pid_t pid)
{
	struct nl_req r;
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct rtattr *info, *data, *peer;
	uint32_t nspid = (uint32_t)pid;
	int e;

	nl_init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	nl_add_raw(&r, &ifi, sizeof(ifi));
	nl_add(&r, IFLA_IFNAME, host, strlen(host) + 1);
	info = nl_nest(&r, IFLA_LINKINFO);
	nl_add(&r, IFLA_INFO_KIND, "veth", 4);
	data = nl_nest(&r, IFLA_INFO_DATA);
	peer = nl_nest(&r, VETH_INFO_PEER);
	nl_add_raw(&r, &ifi, sizeof(ifi));
	nl_add(&r, IFLA_IFNAME, "eth0", 5);
	nl_add(&r, IFLA_NET_NS_PID, &nspid, sizeof(nspid));
	nl_end(&r, peer);
	nl_end(&r, data);
	nl_end(&r, info);
	e = nl_talk(&r);
	if (e < 0)
		fail("cannot create veth pair '%s'/eth0: %s", host, strerror(-e));
	return 0;
}

static int set_master(const char *ifname, const char *br)
{
	struct nl_req r;
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	uint32_t master = if_nametoindex(br);
	int e;

	ifi.ifi_index = (int)if_nametoindex(ifname);
	if (ifi.ifi_index == 0 || master == 0)
		fail("cannot find '%s' or '%s'", ifname, br);
	nl_init(&r, RTM_NEWLINK, 0);
	nl_add_raw(&r, &ifi, sizeof(ifi));
	nl_add(&r, IFLA_MASTER, &master, sizeof(master));
	e = nl_talk(&r);
	if (e < 0)
		fail("cannot attach '%s' to bridge '%s': %s", ifname, br, strerror(-e));
	return 0;
}

/* ---- setup ------------------------------------------------------------------ */

static int write_proc(pid_t pid, const char *file, const char *data)
{
	char path[64];
	size_t len = strlen(data);
	int fd;
	ssize_t w;

	snprintf(path, sizeof(path), "/proc/%ld/%s", (long)pid, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		fail("cannot open '%s': %s", path, strerror(errno));
	w = write(fd, data, len);
	if (w < 0 || (size_t)w != len) {
		int e = w < 0 ? errno : EIO;
		close(fd);
		fail("cannot write '%s' to '%s': %s", data, path, strerror(e));
	}
	close(fd);
	return 0;
}

static int parent_setup(const struct opts *o, pid_t pid, const char *host_if)
{
	char map[96];

	snprintf(map, sizeof(map), "%lu %lu %lu\n", o->map_in, o->map_out, o->map_count);
	if (write_proc(pid, "uid_map", map) < 0 || write_proc(pid, "gid_map", map) < 0)
		return -1;
	if (o->bridge != NULL) {
		int created = ensure_bridge(o->bridge);
		if (created < 0)
			return -1;
		if (o->bridge_addr != NULL && add_address(o->bridge, o->bridge_addr) < 0)
			return -1;
		if (create_veth(host_if, pid) < 0 || set_master(host_if, o->bridge) < 0 ||
		    link_up(host_if) < 0)
			return -1;
	}
	return 0;
}

static int child_setup(const struct opts *o)
{
	if (setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
		fail("cannot become root of the container: %s", strerror(errno));
	if (sethostname(o->name, strlen(o->name)) < 0)
		fail("cannot set the hostname: %s", strerror(errno));
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		fail("cannot make / private: %s", strerror(errno));
	if (link_up("lo") < 0)
		return -1;
	if (o->bridge != NULL) {
		if (o->addr != NULL && add_address("eth0", o->addr) < 0)
			return -1;
		if (link_up("eth0") < 0)
			return -1;
	}
	if (o->proc && mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		fail("cannot mount /proc: %s", strerror(errno));
	for (size_t i = 0; i < o->n_mounts; i++) {
		const struct mount_req *m = &o->mounts[i];
		if (!m->overlay) {
			if (mount("tmpfs", m->spec, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
				fail("cannot mount a tmpfs on '%s': %s", m->spec, strerror(errno));
		} else {
			char copy[3 * 1024], data[4 * 1024];
			char *lower = copy, *upper, *work, *dir;
			if (strlen(m->spec) >= sizeof(copy))
				fail("overlay specification too long");
			memcpy(copy, m->spec, strlen(m->spec) + 1);
			upper = strchr(lower, ':');
			work = upper ? strchr(upper + 1, ':') : NULL;
			dir = work ? strchr(work + 1, ':') : NULL;
			if (dir == NULL)
				fail("invalid overlay '%s': want LOWER:UPPER:WORK:DIR", m->spec);
			*upper++ = '\0';
			*work++ = '\0';
			*dir++ = '\0';
			snprintf(data, sizeof(data), "lowerdir=%s,upperdir=%s,workdir=%s", lower,
				 upper, work);
			if (mount("overlay", dir, "overlay", 0, data) < 0)
				fail("cannot mount an overlay on '%s': %s", dir, strerror(errno));
		}
	}
	if (o->chdir != NULL && chdir(o->chdir) < 0)
		fail("cannot change to '%s': %s", o->chdir, strerror(errno));
	return 0;
}

static int parse_map(const char *s, struct opts *o)
{
	char *end = NULL;

	o->map_in = strtoul(s, &end, 10);
	if (*end != ':')
		return -1;
	o->map_out = strtoul(end + 1, &end, 10);
	if (*end != ':')
		return -1;
	o->map_count = strtoul(end + 1, &end, 10);
	return (*end == '\0' && o->map_count > 0) ? 0 : -1;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "map", required_argument, NULL, 'm' },
		{ "net", required_argument, NULL, 'N' },
		{ "addr", required_argument, NULL, 'a' },
		{ "bridge-addr", required_argument, NULL, 'b' },
		{ "proc", no_argument, NULL, 'p' },
		{ "tmpfs", required_argument, NULL, 't' },
		{ "overlay", required_argument, NULL, 'o' },
		{ "chdir", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->map_in = 0;
	o->map_out = 65536;
	o->map_count = 65536;
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			o->name = optarg;
			break;
		case 'm':
			if (parse_map(optarg, o) < 0)
				fail("invalid map '%s': want IN:OUT:COUNT", optarg);
			break;
		case 'N':
			o->bridge = optarg;
			break;
		case 'a':
			o->addr = optarg;
			break;
		case 'b':
			o->bridge_addr = optarg;
			break;
		case 'p':
			o->proc = true;
			break;
		case 't':
		case 'o':
			if (o->n_mounts >= MAX_MOUNTS)
				fail("too many mounts");
			o->mounts[o->n_mounts].overlay = c == 'o';
			o->mounts[o->n_mounts++].spec = optarg;
			break;
		case 'C':
			o->chdir = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		default:
			fputs(usage, stderr);
			return -1;
		}
	}
	if (optind >= argc) {
		fputs(usage, stderr);
		return -1;
	}
	if (o->name != NULL &&
	    (strlen(o->name) == 0 || strlen(o->name) > 12 ||
	     strspn(o->name, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(o->name)))
		fail("invalid name '%s': 1-12 of [a-z0-9-]", o->name);
	if (o->bridge != NULL && (strlen(o->bridge) == 0 || strlen(o->bridge) >= IFNAMSIZ))
		fail("invalid bridge name '%s'", o->bridge);
	if (o->addr != NULL && o->bridge == NULL)
		fail("--addr needs --net");
	o->argv = argv + optind;
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	char name_buf[16], host_if[IFNAMSIZ];
	int sync_pipe[2], status;
	pid_t pid;
	char byte = 0;

	memset(&o, 0, sizeof(o));
	if (parse_args(argc, argv, &o) < 0)
		return 2;
	if (o.name == NULL) {
		snprintf(name_buf, sizeof(name_buf), "ctr%ld", (long)getpid() % 100000000L);
		o.name = name_buf;
	}
	snprintf(host_if, sizeof(host_if), "vh-%s", o.name);
	if (pipe2(sync_pipe, O_CLOEXEC) < 0) {
		warnx_("pipe: %s", strerror(errno));
		return EXIT_SETUP;
	}
	fflush(NULL);
	pid = (pid_t)syscall(SYS_clone,
			     CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |
				     CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD,
			     NULL, NULL, NULL, NULL);
	if (pid < 0) {
		warnx_("cannot create the container's namespaces: %s", strerror(errno));
		return EXIT_SETUP;
	}
	if (pid == 0) {
		ssize_t n;
		close(sync_pipe[1]);
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		do
			n = read(sync_pipe[0], &byte, 1);
		while (n < 0 && errno == EINTR);
		if (n != 1)
			_exit(EXIT_SETUP);
		close(sync_pipe[0]);
		if (child_setup(&o) < 0)
			_exit(EXIT_SETUP);
		execvp(o.argv[0], o.argv);
		warnx_("cannot execute '%s': %s", o.argv[0], strerror(errno));
		_exit(127);
	}
	close(sync_pipe[0]);
	if (parent_setup(&o, pid, host_if) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return EXIT_SETUP;
	}
	if (write(sync_pipe[1], "1", 1) != 1) {
		warnx_("cannot release the container: %s", strerror(errno));
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return EXIT_SETUP;
	}
	close(sync_pipe[1]);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			warnx_("waitpid: %s", strerror(errno));
			return EXIT_SETUP;
		}
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}
