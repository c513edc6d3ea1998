/*
 * aws_creds.h: the AWS credential chain of the KMS provider.
 *
 * The source is chosen once, when the chain is made (at start and on
 * reload), in the SDKs' order (PROVIDERS.md A6):
 *   1. environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY
 *      [+ AWS_SESSION_TOKEN]; skipped when [aws] profile names a profile
 *      explicitly (as botocore skips it for a profile passed in code);
 *   2. web identity: the profile's role_arn + web_identity_token_file, else
 *      AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE [+ AWS_ROLE_SESSION_NAME]
 *      -> STS AssumeRoleWithWebIdentity (unsigned);
 *   3. the profile's static keys from AWS_CONFIG_FILE (~/.aws/config) and
 *      AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials), profile from
 *      [aws] profile, else AWS_PROFILE, else "default";
 *   4. container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or
 *      _FULL_URI, with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN;
 *   5. EC2 IMDSv2 (token PUT, role name, role credentials), unless
 *      AWS_EC2_METADATA_DISABLED=true.
 * Files named by the configuration are read when the chain is made, which
 * is not on any request's path. The web identity token file and the
 * container token file are re-read at each refresh (they rotate), a small
 * local read once per credential lifetime.
 *
 * Fetched credentials are cached and refreshed before they expire: in the
 * background once less than AWS_CREDS_REFRESH_S is left (requests keep
 * using the old ones), and with requests waiting once less than
 * AWS_CREDS_MUST_S is left; both windows shrink for short-lived
 * credentials. A service's ExpiredToken error marks them stale
 * (aws_chain_expired). Only one fetch runs at a time; everything that
 * needs credentials meanwhile waits behind it. Nothing blocks the loop:
 * fetches go through http.c on their own client.
 *
 * Secrets (keys, tokens, the IMDS session token) live only in wipe-on-free
 * buffers and never reach a log line or a message.
 */
#ifndef KMSD_AWS_CREDS_H
#define KMSD_AWS_CREDS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include "aws_parse.h"

struct event_base;
struct http;
struct aws_chain;

/* Start a background refresh this long before the credentials expire
 * (the Ruby SDK's sync window; botocore's advisory one is 15 min). */
#define AWS_CREDS_REFRESH_S 300
/* Past this point requests wait for fresh credentials instead of signing
 * with ones that may expire in flight (clock skew, long retries). */
#define AWS_CREDS_MUST_S 60

struct aws_chain_conf {
	const char *profile;		/* [aws] profile, or NULL */
	const char *region;		/* resolved default region, or NULL */
	const char *sts_endpoint;	/* [aws] sts_endpoint, or NULL */
	const char *imds_endpoint;	/* [aws] imds_endpoint, or NULL */
	const char *ca_file;		/* NULL: system bundle */
	unsigned timeout_ms;		/* deadline of one fetch step */
	unsigned max_waiters;		/* requests that may wait; more: busy */
};

/* A request waiting for credentials. ready() runs once, from the loop,
 * with err 0 (call aws_chain_current) or an ERR_* and a message. */
struct aws_chain_waiter {
	void (*ready)(struct aws_chain_waiter *w, int err, const char *msg);
	void *arg;
	/* private to aws_creds.c */
	TAILQ_ENTRY(aws_chain_waiter) link;
	uint64_t seq;			/* the fetch it waits for */
	int queued;
};

/*
 * Pick the source as described above and read what it needs now. 0, or an
 * ERR_* with a reason in err (never a secret): no source at all, an
 * unreadable or malformed file, an explicitly named profile that does not
 * exist. conf strings are copied.
 */
int aws_chain_new(const struct aws_chain_conf *conf, struct event_base *base,
    struct http *http, struct aws_chain **ret, char *err, size_t errlen);
/* Cancels a fetch in flight. Waiters still queued get no callback: the
 * owner frees the chain only once nothing waits on it. Safe from inside a
 * waiter's ready(); safe on NULL. */
void aws_chain_free(struct aws_chain *ch);

/* Where credentials come from, for log lines ("environment",
 * "profile dev", "web identity", "container", "IMDS"). */
const char *aws_chain_source(const struct aws_chain *ch);
/* The profile's region from the config file, or NULL. */
const char *aws_chain_profile_region(const struct aws_chain *ch);

/*
 * Usable credentials now? 0: yes (aws_chain_current gives them). 1: w is
 * queued and its ready() runs when a fetch ends. ERR_*: failing now, with
 * a message in msg (the last fetch failed moments ago, the queue is full,
 * or a fetch could not start).
 */
int aws_chain_get(struct aws_chain *ch, struct aws_chain_waiter *w,
    char *msg, size_t msglen);
/* Take w out of the queue without a callback; no-op when not queued. */
void aws_chain_cancel(struct aws_chain *ch, struct aws_chain_waiter *w);

/* The credentials to sign with now (NULL before the first fetch) and
 * their generation. The pointer is valid until control returns to the
 * loop: sign at once, keep nothing. */
const struct aws_creds *aws_chain_current(const struct aws_chain *ch,
    uint64_t *ret_gen);

/* A service refused credentials of generation gen as expired. Returns 1
 * when the chain can fetch new ones (they are marked stale, so the next
 * aws_chain_get waits for a fetch), 0 for static credentials. */
int aws_chain_expired(struct aws_chain *ch, uint64_t gen);

/* When to refresh credentials fetched at now that expire at exp: in the
 * background from *ret_refresh, waiting from *ret_must. Both 0 for
 * credentials that never expire. Pure; exposed for the unit tests. */
void aws_chain_schedule(time_t now, time_t exp, time_t *ret_refresh,
    time_t *ret_must);

#endif
