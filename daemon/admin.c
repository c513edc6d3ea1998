/*
 * admin.c: the admin socket's ops: status, disable_decrypt,
 * enable_decrypt, reload.
 *
 * Only a socket whose policy is the admin one reaches here (the gate in
 * ops_dispatch). The kill switch is made durable before the answer goes
 * out; every admin op is audited like a key operation, and its answer is
 * the status document afterwards.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "audit.h"
#include "err.h"
#include "log.h"
#include "server.h"

/* Room for the status document. */
#define ADMIN_STATUS_MAX (60 * 1024)

static int
admin_dump_cb(const char *p, size_t n, void *arg)
{
	return buf_append(arg, p, n) == 0 ? 0 : -1;
}

int
admin_status_json(struct server *s, struct buf *out)
{
	const struct config *cfg = s->cfg;
	json_t *doc, *keys, *socks;
	int r = -1;

	doc = json_object();
	keys = json_array();
	socks = json_array();
	if (doc == NULL || keys == NULL || socks == NULL)
		goto out;
	json_object_set_new(doc, "version", json_string(KMSD_VERSION));
	json_object_set_new(doc, "uptime_s",
	    json_integer(ops_now_s() - s->started_s));
	json_object_set_new(doc, "decrypt_disabled",
	    json_boolean(s->decrypt_disabled));
	json_object_set_new(doc, "disabled_reason", s->decrypt_disabled ?
	    json_string(s->disabled_reason) : json_null());
	json_object_set_new(doc, "audit_log", cfg->audit_log != NULL ?
	    json_string(cfg->audit_log) : json_null());
	json_object_set_new(doc, "decrypt_limit_per_min",
	    json_integer(cfg->decrypt_limit));
	for (size_t i = 0; i < s->kr->n; i++) {
		const struct key *k = &s->kr->keys[i];
		json_t *kj = json_object(), *vs = json_array();

		for (size_t j = 0; j < k->n; j++) {
			json_t *vj = json_object();

			json_object_set_new(vj, "version",
			    json_integer(k->v[j].version));
			json_object_set_new(vj, "provider",
			    json_string(k->v[j].prov->name));
			json_object_set_new(vj, "key_id",
			    json_string(k->v[j].key_id));
			json_array_append_new(vs, vj);
		}
		json_object_set_new(kj, "name", json_string(k->name));
		json_object_set_new(kj, "current", json_integer(k->current));
		json_object_set_new(kj, "versions", vs);
		json_array_append_new(keys, kj);
	}
	for (size_t i = 0; i < s->n_lst; i++) {
		const struct cfg_socket *cs = s->lst[i]->cfg;
		json_t *sj = json_object(), *allow = json_array();

		for (int op = 0; op < OP__COUNT; op++)
			if ((cs->policy.admin && op_is_admin(op)) ||
			    (cs->policy.allow & POLICY_BIT(op)))
				json_array_append_new(allow,
				    json_string(op_name(op)));
		json_object_set_new(sj, "name", json_string(cs->name));
		json_object_set_new(sj, "path", json_string(cs->path));
		json_object_set_new(sj, "allow", allow);
		json_array_append_new(socks, sj);
	}
	json_object_set_new(doc, "keys", keys);
	json_object_set_new(doc, "sockets", socks);
	keys = socks = NULL;
	json_object_set_new(doc, "connections", json_integer(s->nconns));
	r = json_dump_callback(doc, admin_dump_cb, out,
	    JSON_COMPACT | JSON_SORT_KEYS) == 0 ? 0 : -1;
out:
	json_decref(keys);
	json_decref(socks);
	json_decref(doc);
	return r;
}

void
admin_dispatch(struct conn *c, const struct request *r, uint64_t t0_us)
{
	struct server *s = c->srv;
	char err[512], reason[STATE_MAX_REASON];
	struct response rs;
	struct buf out;
	int rc = 0;
	const char *detail = NULL;

	err[0] = '\0';
	switch (r->op) {
	case OP_STATUS:
		break;
	case OP_DISABLE_DECRYPT:
		snprintf(reason, sizeof(reason), "admin (uid %u): %.*s",
		    (unsigned)c->peer.uid,
		    r->reason.p != NULL ? (int)r->reason.len : 10,
		    r->reason.p != NULL ? r->reason.p : "no reason");
		for (char *p = reason; *p != '\0'; p++)
			if ((unsigned char)*p < 0x20)
				*p = ' ';
		detail = reason;
		if (ops_disable_decrypt(s, reason) != 0) {
			rc = ERR_INTERNAL;
			snprintf(err, sizeof(err), "decryption is disabled "
			    "now, but the switch could not be written to %s: "
			    "it will not survive a restart",
			    s->cfg->state_dir);
		}
		break;
	case OP_ENABLE_DECRYPT:
		if (ops_enable_decrypt(s) != 0) {
			rc = ERR_INTERNAL;
			snprintf(err, sizeof(err), "could not clear the switch "
			    "in %s", s->cfg->state_dir);
		}
		break;
	case OP_RELOAD:
		if (s->reload == NULL || s->reload(s, err, sizeof(err)) != 0) {
			rc = ERR_INTERNAL;
			if (err[0] == '\0')
				snprintf(err, sizeof(err), "reload failed");
		}
		break;
	default:
		rc = ERR_UNKNOWN_OP;
		snprintf(err, sizeof(err), "not an admin op");
		break;
	}
	/* c->lst may have been replaced by a reload; it is still valid
	 * (kept listeners keep their address, removed ones are parked). */
	if (ops_record(c, r->op, STR_NULL, 0, 0, NULL, 0, rc, t0_us,
	    rc != 0 ? err : detail, 0) != 0) {
		rc = ERR_AUDIT_UNAVAILABLE;
		snprintf(err, sizeof(err), "audit log unavailable");
	}
	msg_response_init(&rs);
	rs.id = r->id;
	buf_init(&out, ADMIN_STATUS_MAX);
	if (rc == 0 && admin_status_json(s, &out) != 0) {
		rc = ERR_INTERNAL;
		snprintf(err, sizeof(err), "cannot build the status");
	}
	if (rc != 0) {
		rs.error = rc;
		rs.message.p = err;
		rs.message.len = strlen(err);
	} else {
		rs.body.p = (const char *)out.data;
		rs.body.len = out.len;
	}
	conn_respond(c, &rs);
	buf_done(&out);
}
