/*
 * The milter protocol (version 6, as Postfix's milter8.c speaks it) served
 * on libevent loops, without libmilter: a few loop threads, each connection
 * pinned to one of them for its whole life, so that a connection's
 * callbacks never change thread and its state needs no locks. Blocking
 * work (Redis, fsync) goes to a small worker pool through mt_eng_defer and
 * comes back to the connection's loop to answer.
 *
 * The parser (mt_eng_feed) is independent of sockets: the loops feed it
 * what they read and write what it produced, and the fuzzer feeds it bytes.
 * Library code: it never exits; problems reach the program through the
 * report callback.
 */
#ifndef MT_ENGINE_H
#define MT_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Actions a filter may ask for (SMFIF_* in libmilter's mfapi.h). */
#define MT_ENG_F_ADDHDRS	0x00000001u
#define MT_ENG_F_CHGBODY	0x00000002u
#define MT_ENG_F_ADDRCPT	0x00000004u
#define MT_ENG_F_DELRCPT	0x00000008u
#define MT_ENG_F_CHGHDRS	0x00000010u
#define MT_ENG_F_QUARANTINE	0x00000020u
#define MT_ENG_F_CHGFROM	0x00000040u
#define MT_ENG_F_ADDRCPT_PAR	0x00000080u
#define MT_ENG_F_SETSYMLIST	0x00000100u

/* Protocol steps not to send (NO*) and not to answer (NR_*): SMFIP_*. */
#define MT_ENG_P_NOCONNECT	0x00000001u
#define MT_ENG_P_NOHELO		0x00000002u
#define MT_ENG_P_NOMAIL		0x00000004u
#define MT_ENG_P_NORCPT		0x00000008u
#define MT_ENG_P_NOBODY		0x00000010u
#define MT_ENG_P_NOHDRS		0x00000020u
#define MT_ENG_P_NOEOH		0x00000040u
#define MT_ENG_P_NR_HDR		0x00000080u
#define MT_ENG_P_NOUNKNOWN	0x00000100u
#define MT_ENG_P_NODATA		0x00000200u
#define MT_ENG_P_SKIP		0x00000400u
#define MT_ENG_P_RCPT_REJ	0x00000800u
#define MT_ENG_P_NR_CONN	0x00001000u
#define MT_ENG_P_NR_HELO	0x00002000u
#define MT_ENG_P_NR_MAIL	0x00004000u
#define MT_ENG_P_NR_RCPT	0x00008000u
#define MT_ENG_P_NR_DATA	0x00010000u
#define MT_ENG_P_NR_UNKN	0x00020000u
#define MT_ENG_P_NR_EOH		0x00040000u
#define MT_ENG_P_NR_BODY	0x00080000u
#define MT_ENG_P_HDR_LEADSPC	0x00100000u

/* Stages for symbol lists and macros (SMFIM_*). */
enum mt_eng_stage {
	MT_ENG_AT_CONNECT = 0, MT_ENG_AT_HELO = 1, MT_ENG_AT_MAIL = 2,
	MT_ENG_AT_RCPT = 3, MT_ENG_AT_DATA = 4, MT_ENG_AT_EOM = 5,
	MT_ENG_AT_EOH = 6, MT_ENG_STAGES = 7
};

/* What a callback answers (SMFIS_*). */
enum mt_eng_reply {
	MT_ENG_CONTINUE = 0,
	MT_ENG_REJECT,		/* 5xx, or the text of mt_eng_setreply */
	MT_ENG_DISCARD,
	MT_ENG_ACCEPT,
	MT_ENG_TEMPFAIL,	/* 4xx, or the text of mt_eng_setreply */
	MT_ENG_PENDING		/* eom only: mt_eng_defer was called */
};

/* The largest packet accepted; a longer length closes the connection. */
#define MT_ENG_PACKET_MAX (1024 * 1024 + 64)

struct mt_eng_ctx;		/* one milter connection */

/*
 * The filter. Every callback is optional and runs on the connection's loop
 * thread. Where the MTA agreed that a step needs no reply (NR_*), what the
 * callback returns is not sent. Strings are NUL-terminated and valid only
 * during the call.
 */
struct mt_eng_filter {
	uint32_t actions;	/* MT_ENG_F_* wanted; the MTA may offer less */
	uint32_t protocol;	/* MT_ENG_P_* wanted; the MTA may offer less */
	/* Macros wanted per stage ("j {daemon_addr}"), NULL: the MTA's list. */
	const char *symlist[MT_ENG_STAGES];

	/* sa is NULL when the MTA gave no address (Postfix's own pickup). */
	int (*connect)(struct mt_eng_ctx *, const char *host,
	    const struct sockaddr *sa);
	int (*helo)(struct mt_eng_ctx *, const char *helo);
	int (*envfrom)(struct mt_eng_ctx *, char **argv);
	int (*envrcpt)(struct mt_eng_ctx *, char **argv);
	int (*header)(struct mt_eng_ctx *, const char *name,
	    const char *value);
	int (*eoh)(struct mt_eng_ctx *);
	int (*body)(struct mt_eng_ctx *, const unsigned char *p, size_t n);
	/* Actions (mt_eng_insheader...) may be called here, or in finish. */
	int (*eom)(struct mt_eng_ctx *);
	/* The message was given up (ABORT, or the connection ended in it). */
	void (*abort)(struct mt_eng_ctx *);
	/* The connection ends, or QUIT_NC starts a new one: free priv. */
	void (*close)(struct mt_eng_ctx *);
};

/* prio is a syslog priority; msg a complete sentence without newline. */
typedef void mt_eng_report_fn(int prio, const char *msg);

/* Per-connection data of the filter. */
void mt_eng_setpriv(struct mt_eng_ctx *ctx, void *priv);
void *mt_eng_getpriv(struct mt_eng_ctx *ctx);

/* A macro's value ("i", "j", "{daemon_addr}"; braces optional), or NULL. */
const char *mt_eng_macro(struct mt_eng_ctx *ctx, const char *name);

/*
 * Actions, during eom or its finish. 0, or -1 when the MTA did not agree
 * to that action or memory ran out. Index 0 inserts at the top; chgheader
 * with value NULL deletes the index-th (from 1) header of that name.
 */
int mt_eng_addheader(struct mt_eng_ctx *ctx, const char *name,
    const char *value);
int mt_eng_insheader(struct mt_eng_ctx *ctx, int index, const char *name,
    const char *value);
int mt_eng_chgheader(struct mt_eng_ctx *ctx, const char *name, int index,
    const char *value);
int mt_eng_quarantine(struct mt_eng_ctx *ctx, const char *reason);
/* The reply text for REJECT or TEMPFAIL: "554", "5.6.0", text. */
int mt_eng_setreply(struct mt_eng_ctx *ctx, const char *rcode,
    const char *xcode, const char *text);

/*
 * From eom: runs work(ctx) on a worker thread (it may block; it must not
 * call actions or touch the engine), then finish(ctx) back on the
 * connection's loop thread, whose answer goes to the MTA. eom then returns
 * MT_ENG_PENDING. Until finish has run, no other callback of this
 * connection runs. 0, or -1 (no worker pool: the caller does it itself).
 */
int mt_eng_defer(struct mt_eng_ctx *ctx, void (*work)(struct mt_eng_ctx *),
    int (*finish)(struct mt_eng_ctx *));

/* ---- the server ------------------------------------------------------ */

struct mt_eng;

struct mt_eng_opts {
	int loops;		/* loop threads; 0: the number of cores */
	int workers;		/* worker threads for mt_eng_defer; 0: 4 */
	int timeout_s;		/* idle connection; 0: 7210 as libmilter */
	mt_eng_report_fn *report;
};

/*
 * Serves the listening socket fd (bound and listening, made non-blocking
 * here) with filter. Starts the threads; NULL with err on failure.
 */
struct mt_eng *mt_eng_start(int listen_fd, const struct mt_eng_filter *filter,
    const struct mt_eng_opts *opts, char *err, size_t errlen);
/* Stops accepting, ends every connection, joins the threads. */
void mt_eng_stop(struct mt_eng *eng);

/* ---- the parser, without sockets (the loops and the fuzzer) ---------- */

/*
 * One connection's protocol state. feed() takes bytes as they arrive and
 * appends what is to be sent to *out (an evbuffer, or for the fuzzer
 * anything with the same append call). Returns:
 *   1  more input welcome
 *   0  the MTA said QUIT: close after sending out
 *  -1  protocol error: close; why says what (one log line)
 *   2  a deferred eom is in flight: feed nothing until mt_eng_finished
 */
struct mt_eng_out {
	int (*append)(void *sink, const void *p, size_t n);
	void *sink;
};
struct mt_eng_ctx *mt_eng_ctx_new(const struct mt_eng_filter *filter,
    struct mt_eng_out out);
int mt_eng_feed(struct mt_eng_ctx *ctx, const unsigned char *p, size_t n,
    char *why, size_t whylen);
/*
 * Called on the loop thread when a deferred work has run: runs finish and
 * sends its answer. Same return values as feed (bytes fed meanwhile are
 * kept and parsed now).
 */
int mt_eng_finished(struct mt_eng_ctx *ctx, char *why, size_t whylen);
/* Bytes of a packet begun but not complete (the MTA closing in one). */
size_t mt_eng_partial(const struct mt_eng_ctx *ctx);
/* Ends the connection: abort and close callbacks where due, then frees. */
void mt_eng_ctx_free(struct mt_eng_ctx *ctx);

/*
 * How deferred work is run, set by the server (or by a test: NULL runs
 * work at once, on the calling thread, and leaves finish to the caller's
 * mt_eng_finished).
 */
typedef void mt_eng_dispatch_fn(struct mt_eng_ctx *ctx, void *arg);
void mt_eng_ctx_set_dispatch(struct mt_eng_ctx *ctx, mt_eng_dispatch_fn *fn,
    void *arg);
/* For the dispatcher: run the deferred work (on a worker thread). */
void mt_eng_run_work(struct mt_eng_ctx *ctx);

#endif
