/*
 * nib-daemon - the multi-user build daemon.
 *
 * Process skeleton: settings, logging, readiness, signal handling through
 * signalfd.  Serving the worker protocol on a socket is not part of this
 * file yet.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "settings.h"
#include "uid-pool.h"
#include "util.h"
#include "banned.h"

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
	if (uid_pool_reclaim(pool, NULL, log_reclaim, NULL, &res, err) < 0) {
		log_warning("%s, continuing", (*err)->msg);
		nib_error_clear(err);
	} else if (res.n_cleaned > 0 || res.n_held > 0) {
		log_notice("UID slots reclaimed: %u cleaned, %u held", res.n_cleaned, res.n_held);
	}
	return pool;
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
		{ NULL, 0, NULL, 0 },
	};
	cleanup_settings struct settings *settings = settings_new();
	cleanup_error struct nib_error *err = NULL;
	cleanup_strv char **names = xcalloc(1, sizeof(char *));
	cleanup_strv char **values = xcalloc(1, sizeof(char *));
	cleanup_close int sfd = -1;
	cleanup_uid_pool struct uid_pool *pool = NULL;
	struct settings_load_opts lo = { .check_owner = -1 };
	int verbose = 0, ready_fd = -1, c;
	sigset_t mask;

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

	pool = open_uid_pool(settings, &err);
	if (err != NULL) {
		log_error("%s", err->msg);
		return 1;
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return log_errno(LOG_ERR, errno, "sigprocmask failed"), 1;
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0)
		return log_errno(LOG_ERR, errno, "signalfd failed"), 1;

	log_info("starting: store %s, state %s, max-jobs %lld, sandbox %s", settings->store_dir,
		 settings->state_dir, (long long)settings->max_jobs,
		 settings->sandbox ? "on" : "off");
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
		struct signalfd_siginfo si;
		ssize_t n = read(sfd, &si, sizeof(si));

		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(si))
			return log_errno(LOG_ERR, errno, "reading signalfd failed"), 1;
		if (si.ssi_signo == SIGHUP) {
			log_info("SIGHUP: settings are read at start; restart to apply changes");
			continue;
		}
		log_info("received %s, exiting", strsignal((int)si.ssi_signo));
		return 0;
	}
}
