/*
 * `mailtrail status ID|QUEUEID|MESSAGE-ID`: the record as a two-column table
 * and each recipient's status with its latest event, or one JSON object.
 * Also the record/recipient helpers that trace and search reuse.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

/* Field order of PRODUCT.md; fields Redis has beyond these follow them. */
static const char *const known_fields[] = {
	"id", "qid", "msgid", "sender", "subject", "nrcpt", "dir", "client_ip",
	"client_name", "helo", "auth", "lat", "lon", "cc", "city", "hops",
	"size", "received", "by", "send_at", NULL
};
static const char *const int_fields[] = {
	"nrcpt", "hops", "size", "received", "send_at", NULL
};
static const char *const real_fields[] = { "lat", "lon", NULL };

static int
in_list(const char *const *list, const char *s, size_t len)
{
	for (; *list != NULL; list++)
		if (strlen(*list) == len && memcmp(*list, s, len) == 0)
			return 1;
	return 0;
}

int
cli_load_arg(struct cli *c, int argc, char **argv, int with_events,
    struct cli_msg *m)
{
	const struct cli_command *cmd = cli_find_command(argv[0]);
	char id[CLI_ID_MAX + 1];
	int i = 1, rc;

	if (i < argc && strcmp(argv[i], "--") == 0)
		i++;
	else if (i < argc && argv[i][0] == '-' && argv[i][1] != '\0')
		return cli_usage_error(cmd, "%s: unknown option", argv[i]);
	if (argc - i != 1)
		return cli_usage_error(cmd, "expects one ID, queue ID or "
		    "Message-ID");
	if (cli_connect(c) != 0)
		return cli_fail(c);
	rc = cli_resolve(c, argv[i], id);
	if (rc > 0)
		rc = cli_msg_load(c, id, with_events, m);
	if (rc < 0)
		return cli_fail(c);
	if (rc == 0) {
		fputs("mailtrail: no message matches '", stderr);
		cli_print_escaped(stderr, argv[i], strlen(argv[i]));
		fputs("'", stderr);
		if (c->err[0] != '\0')
			fprintf(stderr, " (%s)", c->err);
		fputc('\n', stderr);
		return CLI_NOT_FOUND;
	}
	return CLI_FOUND;
}

const char *
cli_rcpt_latest(const struct cli_msg *m, const char *addr, size_t len,
    int64_t *t_ms)
{
	const char *ev = NULL, *r;
	json_t *t;
	size_t i;

	*t_ms = -1;
	for (i = 0; i < m->nev; i++) {
		r = json_string_value(json_object_get(m->ev[i], "rcpt"));
		if (r == NULL || strlen(r) != len || strncasecmp(r, addr, len))
			continue;
		/* The list is oldest first, so the last match is the latest. */
		ev = json_string_value(json_object_get(m->ev[i], "ev"));
		t = json_object_get(m->ev[i], "t");
		*t_ms = json_is_integer(t) ? (int64_t)json_integer_value(t) : -1;
	}
	return ev;
}

json_t *
cli_recipients_json(const redisReply *rcpt)
{
	json_t *o = json_object(), *v;
	char *k;
	size_t i;

	for (i = 0; i + 1 < rcpt->elements; i += 2) {
		k = cli_xstrndup(rcpt->element[i]->str, rcpt->element[i]->len);
		v = cli_json_string(rcpt->element[i + 1]->str,
		    rcpt->element[i + 1]->len);
		/* An address that is not UTF-8 cannot be a key: skip it. */
		if (json_object_set_new(o, k, v) != 0)
			json_object_set_new(o, "(unprintable)", json_null());
		free(k);
	}
	return o;
}

/* A record field for programs: numbers as numbers, path as JSON. */
static json_t *
field_json(const char *name, size_t nlen, const char *s, size_t len)
{
	int64_t i;
	double d;
	json_t *v;

	if (in_list(int_fields, name, nlen) && cli_parse_i64(s, len, &i) == 0)
		return json_integer((json_int_t)i);
	if (in_list(real_fields, name, nlen) &&
	    cli_parse_double(s, len, &d) == 0)
		return json_real(d);
	if (nlen == 4 && memcmp(name, "path", 4) == 0) {
		v = json_loadb(s, len, JSON_REJECT_DUPLICATES, NULL);
		if (json_is_array(v))
			return v;
		json_decref(v);
	}
	return cli_json_string(s, len);
}

/* Contract fields in PRODUCT.md order, then any others Redis holds. */
/* r:ADDRESS: a recipient's status, shown with the recipients. */
static int
is_rcpt_field(const redisReply *k)
{
	return k->len > 2 && memcmp(k->str, MT_RCPT_FIELD, 2) == 0;
}

json_t *
cli_record_json(const struct cli_msg *m)
{
	json_t *o = json_object();
	const redisReply *k, *v;
	const char *s;
	char *name;
	size_t i, len;

	json_object_set_new(o, "id", json_string(m->id));
	for (i = 1; known_fields[i] != NULL; i++) {
		s = cli_msg_field(m, known_fields[i], &len);
		if (s != NULL)
			json_object_set_new(o, known_fields[i], field_json(
			    known_fields[i], strlen(known_fields[i]), s, len));
	}
	for (i = 0; i + 1 < m->rec->elements; i += 2) {
		k = m->rec->element[i];
		v = m->rec->element[i + 1];
		name = cli_xstrndup(k->str, k->len);
		/* jansson keys are C strings: a key with NUL is left out. */
		if (strlen(name) == k->len && !is_rcpt_field(k) &&
		    !in_list(known_fields, k->str, k->len))
			json_object_set_new(o, name,
			    field_json(k->str, k->len, v->str, v->len));
		free(name);
	}
	return o;
}

static void
record_row(struct cli_table *t, const char *name, size_t nlen,
    const char *v, size_t vlen)
{
	char when[40];
	int64_t ms;

	cli_table_text(t, name, nlen);
	if (((nlen == 8 && memcmp(name, "received", 8) == 0) ||
	    (nlen == 7 && memcmp(name, "send_at", 7) == 0)) &&
	    cli_parse_i64(v, vlen, &ms) == 0) {
		cli_time_ms(when, ms);
		cli_table_safe(t, when);
	} else {
		cli_table_text(t, v, vlen);
	}
}

static void
print_record(const struct cli_msg *m)
{
	struct cli_table t;
	const char *v;
	size_t i, len;

	cli_table_init(&t, 2);
	for (i = 0; known_fields[i] != NULL; i++) {
		v = cli_msg_field(m, known_fields[i], &len);
		if (v != NULL)
			record_row(&t, known_fields[i], strlen(known_fields[i]),
			    v, len);
	}
	for (i = 0; i + 1 < m->rec->elements; i += 2) {
		const redisReply *k = m->rec->element[i];

		/* The hop path is trace's business; here it would be noise. */
		if (in_list(known_fields, k->str, k->len) || is_rcpt_field(k) ||
		    (k->len == 4 && memcmp(k->str, "path", 4) == 0))
			continue;
		record_row(&t, k->str, k->len, m->rec->element[i + 1]->str,
		    m->rec->element[i + 1]->len);
	}
	cli_table_print(&t, stdout, "");
	cli_table_free(&t);
}

struct rcpt_pair {
	const redisReply *addr, *status;
};

static int
cmp_rcpt(const void *a, const void *b)
{
	const redisReply *x = ((const struct rcpt_pair *)a)->addr;
	const redisReply *y = ((const struct rcpt_pair *)b)->addr;
	size_t n = x->len < y->len ? x->len : y->len;
	int d = memcmp(x->str, y->str, n);

	return d ? d : (x->len > y->len) - (x->len < y->len);
}

/* "2024-05-01T12:00:03.210Z SEND" for the recipient's latest event. */
static void
latest_cell(struct cli_table *t, const struct cli_msg *m,
    const redisReply *addr)
{
	struct cli_buf b = { 0 };
	const char *ev;
	char when[40];
	int64_t ms;

	ev = cli_rcpt_latest(m, addr->str, addr->len, &ms);
	if (ev == NULL) {
		cli_table_safe(t, "-");
		return;
	}
	cli_time_ms(when, ms);
	cli_buf_addf(&b, "%s ", when);
	cli_buf_escape(&b, ev, strlen(ev));
	cli_table_safe(t, b.s);
	cli_buf_free(&b);
}

static void
print_recipients(const struct cli_msg *m)
{
	struct cli_table t;
	struct rcpt_pair *p;
	size_t i, n = m->rcpt->elements / 2;

	/* Sorted by address: Redis hash order is not stable. */
	p = cli_xmalloc(n * sizeof(*p));
	for (i = 0; i < n; i++) {
		p[i].addr = m->rcpt->element[2 * i];
		p[i].status = m->rcpt->element[2 * i + 1];
	}
	qsort(p, n, sizeof(*p), cmp_rcpt);
	cli_table_init(&t, 3);
	cli_table_safe(&t, "RECIPIENT");
	cli_table_safe(&t, "STATUS");
	cli_table_safe(&t, "LAST EVENT");
	for (i = 0; i < n; i++) {
		cli_table_text(&t, p[i].addr->str, p[i].addr->len);
		cli_table_text(&t, p[i].status->str, p[i].status->len);
		latest_cell(&t, m, p[i].addr);
	}
	putchar('\n');
	cli_table_print(&t, stdout, "");
	cli_table_free(&t);
	free(p);
}

/* A reused Message-ID: the original is shown, the later ones named. */
static void
print_same_msgid(const struct cli *c)
{
	if (c->n_msgid_ids < 2)
		return;
	printf("\nThis Message-ID was carried by %zu messages, the first "
	    "shown above:\n", c->n_msgid_ids);
	for (size_t i = 0; i < c->n_msgid_ids; i++)
		printf("  %s\n", c->msgid_ids[i]);
}

static json_t *
same_msgid_json(const struct cli *c)
{
	json_t *a = json_array();

	for (size_t i = 0; i < c->n_msgid_ids; i++)
		json_array_append_new(a, json_string(c->msgid_ids[i]));
	return a;
}

int
cmd_status(struct cli *c, int argc, char **argv)
{
	struct cli_msg m;
	json_t *o;
	int rc;

	rc = cli_load_arg(c, argc, argv, 1, &m);
	if (rc != CLI_FOUND)
		return rc;
	if (c->json) {
		o = cli_record_json(&m);
		json_object_set_new(o, "recipients",
		    cli_recipients_json(m.rcpt));
		if (c->n_msgid_ids > 1)
			json_object_set_new(o, "same_msgid", same_msgid_json(c));
		cli_json_print(o);
	} else {
		print_record(&m);
		print_recipients(&m);
		print_same_msgid(c);
	}
	cli_msg_free(&m);
	return CLI_FOUND;
}
