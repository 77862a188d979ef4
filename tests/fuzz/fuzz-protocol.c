/*
 * fuzz-protocol.c - arbitrary bytes into the worker-protocol decoders.
 *
 * The first byte picks what the rest is:
 *   0  a client's whole stream: the daemon's handshake, then requests
 *      (with the framed data that follows some of them), as nib-daemon
 *      reads it;
 *   1  n, n op codes (one byte each), then a daemon's whole stream: the
 *      client's handshake, then for each op the log frames and the reply;
 *   2  version, then requests without a handshake;
 *   3  version, op, then one reply;
 *   4  version, then log frames;
 *   5  version, then a DerivedPath string.
 * Version bytes are minor versions, folded into 10..37.  Limits are small
 * so that fuzzing stays fast; bugs do not depend on the limits' size.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "protocol.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct proto_limits limits = {
	.max_string = 1 << 20,
	.max_list = 4096,
	.max_message = 8 << 20,
};

static unsigned version_of(uint8_t b)
{
	unsigned span = PROTO_MINOR(PROTO_VERSION_MAX) - PROTO_MINOR(PROTO_VERSION_MIN) + 1;

	return PROTO_VERSION(1, PROTO_MINOR(PROTO_VERSION_MIN) + b % span);
}

static struct proto_conn *conn_for(const uint8_t *data, size_t size, unsigned version)
{
	struct proto_conn *c = proto_conn_new_mem(data, size);

	proto_conn_set_limits(c, &limits);
	proto_conn_set_version(c, version);
	return c;
}

/* Read what follows a request, as the daemon would; false when it cannot go on. */
static bool consume_data(struct proto_conn *c, const struct proto_request *r)
{
	unsigned v = proto_conn_version(c);
	struct proto_framed_source src;
	struct nib_error *e = NULL;
	bool ok = true;

	switch (r->op) {
	case PROTO_OP_ADD_TO_STORE:
		if (v < PROTO_VERSION(1, 25))
			return false; /* an inline NAR: the NAR reader's job */
		break;
	case PROTO_OP_ADD_TO_STORE_NAR:
		if (v < PROTO_VERSION(1, 23))
			return false;
		break;
	case PROTO_OP_ADD_MULTIPLE_TO_STORE: {
		/* The first item's path info, read inside the frames. */
		struct proto_conn *in;
		struct proto_path_info info;
		uint64_t count;

		proto_framed_source_init(&src, c, 64 << 20);
		in = proto_conn_new_stream(proto_framed_read, &src, NULL, NULL);
		proto_conn_set_limits(in, &limits);
		proto_conn_set_version(in, PROTO_VERSION(1, 16));
		if (proto_read_u64(in, &count, &e) == 0 && count > 0 &&
		    proto_read_path_info(in, true, &info, &e) == 0)
			proto_path_info_release(&info);
		proto_conn_free(in);
		nib_error_free(e);
		e = NULL;
		ok = proto_framed_drain(&src, &e) == 0;
		nib_error_free(e);
		return ok;
	}
	case PROTO_OP_ADD_BUILD_LOG:
		break;
	case PROTO_OP_IMPORT_PATHS:
		return false;
	default:
		return true;
	}
	proto_framed_source_init(&src, c, 64 << 20);
	ok = proto_framed_drain(&src, &e) == 0;
	nib_error_free(e);
	return ok;
}

static void requests(struct proto_conn *c)
{
	for (int i = 0; i < 64; i++) {
		struct proto_request r;
		struct nib_error *e = NULL;
		int rc = proto_read_request(c, &r, &e);
		bool go_on;

		nib_error_free(e);
		if (rc <= 0)
			return;
		go_on = consume_data(c, &r);
		proto_request_release(&r);
		if (!go_on)
			return;
	}
}

static void server_stream(const uint8_t *data, size_t size)
{
	cleanup_proto_conn struct proto_conn *c = conn_for(data, size, 0);
	struct nib_error *e = NULL;

	if (proto_server_handshake(c, "fuzz", PROTO_TRUST_NOT_TRUSTED, &e) == 0) {
		proto_write_last(c);
		requests(c);
	}
	nib_error_free(e);
}

static void client_stream(const uint8_t *data, size_t size)
{
	cleanup_proto_conn struct proto_conn *c = NULL;
	struct nib_error *e = NULL;
	size_t n;

	if (size < 1)
		return;
	n = data[0];
	if (size < 1 + n)
		return;
	c = conn_for(data + 1 + n, size - 1 - n, 0);
	if (proto_client_handshake(c, PROTO_VERSION_MAX, NULL, NULL, &e) < 0) {
		nib_error_free(e);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct proto_error *remote = NULL;
		struct proto_reply r = { 0 };
		int rc = proto_read_stderr(c, NULL, &remote, &e);

		proto_error_free(remote);
		if (rc < 0)
			break;
		if (rc > 0)
			continue;
		if (proto_read_reply(c, data[1 + i], &r, &e) < 0)
			break;
		proto_reply_release(&r);
		if (proto_reply_kind(data[1 + i], proto_conn_version(c)) == PROTO_REPLY_STREAM)
			break; /* a NAR follows: the NAR reader's job */
	}
	nib_error_free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nib_error *e = NULL;

	if (size < 1)
		return 0;
	switch (data[0] % 6) {
	case 0:
		server_stream(data + 1, size - 1);
		break;
	case 1:
		client_stream(data + 1, size - 1);
		break;
	case 2:
		if (size >= 2) {
			cleanup_proto_conn struct proto_conn *c =
				conn_for(data + 2, size - 2, version_of(data[1]));
			requests(c);
		}
		break;
	case 3:
		if (size >= 3) {
			cleanup_proto_conn struct proto_conn *c =
				conn_for(data + 3, size - 3, version_of(data[1]));
			struct proto_reply r;
			if (proto_read_reply(c, data[2], &r, &e) == 0)
				proto_reply_release(&r);
		}
		break;
	case 4:
		if (size >= 2) {
			cleanup_proto_conn struct proto_conn *c =
				conn_for(data + 2, size - 2, version_of(data[1]));
			for (int i = 0; i < 256; i++) {
				struct proto_error *remote = NULL;
				int rc = proto_read_stderr(c, NULL, &remote, &e);
				proto_error_free(remote);
				if (rc < 0 || proto_conn_input_left(c) == 0)
					break;
			}
		}
		break;
	case 5:
		if (size >= 2) {
			char *s = malloc(size - 1);
			struct proto_derived_path p;
			if (s == NULL)
				return 0;
			memcpy(s, data + 2, size - 2);
			s[size - 2] = '\0';
			if (proto_derived_path_parse(s, version_of(data[1]), &p, &e) == 0) {
				char *back =
					proto_derived_path_to_string(&p, version_of(data[1]), &e);
				free(back);
				proto_derived_path_release(&p);
			}
			free(s);
		}
		break;
	}
	nib_error_free(e);
	return 0;
}
