/*
 * kms_curl.c: the ceiling of the KMS path. libcurl multi calling the
 * loopback HTTPS fake directly with KMS Decrypt requests, keeping
 * --concurrency C requests in flight, connections kept alive and reused
 * (one easy handle per slot, re-added when it completes), the CA path
 * cleared so curl's CA cache works, the fake's certificate as CA file.
 *
 *   kms_curl --url https://127.0.0.1:PORT/ --ca FILE [--concurrency C]
 *            [--warmup S] [--duration S] [--cpu N]
 *
 * It sends what kmsd's AWS provider sends (JSON 1.1 Decrypt body, the
 * X-Amz-Target, X-Amz-Date and an Authorization header of SigV4's size)
 * but does not compute a signature: this is the transport's ceiling.
 * Prints one JSON object: ops/s, latency percentiles, connections opened.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "benchutil.h"

#define KC_MAX_CONC 4096
/* Response bodies are small; anything larger is an error. */
#define KC_BODY_CAP 4096
/* Longest extra warm-up waiting for every connection to open. */
#define KC_WARM_CAP_S 30

struct kc_slot {
	CURL *e;
	uint64_t t0;
	int warm;			/* completed once: connection open */
	char body[KC_BODY_CAP];
	size_t blen;
	int overflow;
};

static size_t
kc_write(char *p, size_t sz, size_t n, void *arg)
{
	struct kc_slot *s = arg;

	if (s->blen + sz * n > KC_BODY_CAP) {
		s->overflow = 1;
		return sz * n;
	}
	memcpy(s->body + s->blen, p, sz * n);
	s->blen += sz * n;
	return sz * n;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "ca", required_argument, NULL, 'a' },
		{ "concurrency", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "duration", required_argument, NULL, 'D' },
		{ "cpu", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	static const char body[] =
	    "{\"CiphertextBlob\":\"AQIDAHhQ3oVtbDtEGPxxEjGg4xXz3PBcpE+Yqln2Cu"
	    "jgDWiD3QFkqo5Jm7qXRF6gbFPtxxjIAAAAfjB8BgkqhkiG9w0BBwagbzBtAgEAMG"
	    "gGCSqGSIb3DQEHATAeBglghkgBZQMEAS4wEQQMjJQ0+5AhvG0/4iAKAgEQgDukfQ"
	    "yZKmh1bnK8zrpSRHpdYmtpNGzs2pTRGqOyD2bHeCUyNSoaFKZpSEBYoMhnZ6JNzO"
	    "O7Z3K4WnDy1w==\",\"EncryptionContext\":{\"model_id\":\"1\","
	    "\"model_name\":\"User\"}}";
	struct curl_slist *hdrs = NULL;
	struct kc_slot *slots;
	struct bench_lat lat;
	const char *url = NULL, *ca = NULL;
	double warmup = 0.5, duration = 2;
	uint64_t t_measure, t_stop, t_end, ops = 0, errors = 0, now, t_cap;
	long connects = 0, n;
	int conc = 1, cpu = -1, opt, phase = 0, running = 0, left, cold;
	CURLM *m;
	CURLMsg *msg;

	signal(SIGPIPE, SIG_IGN);
	while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (opt) {
		case 'u': url = optarg; break;
		case 'a': ca = optarg; break;
		case 'n': conc = atoi(optarg); break;
		case 'w': warmup = atof(optarg); break;
		case 'D': duration = atof(optarg); break;
		case 'c': cpu = atoi(optarg); break;
		default: return 2;
		}
	}
	if (url == NULL || conc < 1 || conc > KC_MAX_CONC) {
		fprintf(stderr, "usage: kms_curl --url URL [--ca FILE] "
		    "[--concurrency C] [--warmup S] [--duration S]\n");
		return 2;
	}
	bench_pin(cpu);
	bench_nofile(conc * 2L + 64);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	hdrs = curl_slist_append(hdrs,
	    "Content-Type: application/x-amz-json-1.1");
	hdrs = curl_slist_append(hdrs, "X-Amz-Target: TrentService.Decrypt");
	hdrs = curl_slist_append(hdrs, "X-Amz-Date: 20250101T000000Z");
	hdrs = curl_slist_append(hdrs, "Authorization: AWS4-HMAC-SHA256 "
	    "Credential=AKIAIOSFODNN7EXAMPLE/20250101/us-east-1/kms/aws4_request"
	    ", SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
	    "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924"
	    "a6f2b5d7");
	hdrs = curl_slist_append(hdrs, "Expect:");
	m = curl_multi_init();
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)conc);
	slots = calloc((size_t)conc, sizeof(*slots));
	bench_lat_init(&lat, 8u << 20);
	for (int i = 0; i < conc; i++) {
		CURL *e = curl_easy_init();

		slots[i].e = e;
		curl_easy_setopt(e, CURLOPT_URL, url);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
		if (ca != NULL)
			curl_easy_setopt(e, CURLOPT_CAINFO, ca);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, kc_write);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &slots[i]);
		curl_easy_setopt(e, CURLOPT_PRIVATE, &slots[i]);
		curl_easy_setopt(e, CURLOPT_USERAGENT, "kms_curl");
		slots[i].t0 = bench_now_ns();
		curl_multi_add_handle(m, e);
	}
	/* Warm-up lasts --warmup and until every slot has completed once (its
	 * connection and TLS session exist), at most KC_WARM_CAP_S more. */
	cold = conc;
	t_measure = bench_now_ns() + (uint64_t)(warmup * 1e9);
	t_cap = t_measure + (uint64_t)KC_WARM_CAP_S * 1000000000u;
	t_stop = 0;
	for (;;) {
		curl_multi_perform(m, &running);
		now = bench_now_ns();
		if (phase == 0 && now >= t_measure && (cold == 0 || now >= t_cap)) {
			phase = 1;
			t_measure = now;
			t_stop = now + (uint64_t)(duration * 1e9);
		}
		if (phase == 1 && now >= t_stop)
			phase = 2;
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			struct kc_slot *s;
			long status = 0;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
			    (char **)&s);
			curl_easy_getinfo(s->e, CURLINFO_RESPONSE_CODE, &status);
			if (curl_easy_getinfo(s->e, CURLINFO_NUM_CONNECTS, &n) ==
			    CURLE_OK)
				connects += n;
			if (!s->warm) {
				s->warm = 1;
				cold--;
			}
			if (phase == 1) {
				ops++;
				if (msg->data.result != CURLE_OK ||
				    status != 200 || s->overflow ||
				    memmem(s->body, s->blen, "\"Plaintext\"",
				    11) == NULL) {
					if (errors++ == 0)
						fprintf(stderr, "kms_curl: "
						    "failed: %s status %ld\n",
						    curl_easy_strerror(
						    msg->data.result), status);
				}
				bench_lat_add(&lat, now - s->t0);
			}
			curl_multi_remove_handle(m, s->e);
			if (phase == 2)
				continue;
			s->blen = 0;
			s->overflow = 0;
			s->t0 = bench_now_ns();
			curl_multi_add_handle(m, s->e);
		}
		if (phase == 2)
			break;
		curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	t_end = bench_now_ns();
	(void)t_end;
	bench_lat_sort(&lat);
	printf("{\"kind\": \"curl-direct\", \"concurrency\": %d, \"ops\": "
	    "%llu, \"errors\": %llu, \"secs\": %.4f, \"ops_per_s\": %.1f, "
	    "\"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, "
	    "\"p999_us\": %.1f, \"connects\": %ld}\n", conc,
	    (unsigned long long)ops, (unsigned long long)errors, duration,
	    ops / duration, bench_lat_pct(&lat, 0.5), bench_lat_pct(&lat, 0.9),
	    bench_lat_pct(&lat, 0.99), bench_lat_pct(&lat, 0.999), connects);
	return errors > 0 ? 1 : 0;
}
