/*
 * Key names and Lua scripts of layout 2. The scripts are the only place
 * that knows the status order and the dedupe rule; each touches the keys
 * of one slot only.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "schema.h"
#include "../common/config.h"

int
mt_schema_init(struct mt_schema *s, const struct mt_config *cfg)
{
	memset(s, 0, sizeof(*s));
	s->ttl = cfg->retention_days * 86400;
	s->maxlen = cfg->events_maxlen;
	if (strlen(cfg->redis_prefix) >= sizeof(s->prefix))
		return -1;
	snprintf(s->prefix, sizeof(s->prefix), "%s", cfg->redis_prefix);
	return 0;
}

char *
mt_key(const struct mt_schema *s, enum mt_key_kind kind, const char *arg,
    size_t arglen)
{
	static const char *const fmt[] = {
		[MT_KEY_RECORD] = "%s{%.*s}",
		[MT_KEY_EVENTS] = "%s{%.*s}:ev",
		[MT_KEY_QID] = "%sqid:%.*s",
		[MT_KEY_MSGID] = "%smsgid:%.*s",
		[MT_KEY_FROM] = "%sfrom:%.*s",
		[MT_KEY_TO] = "%sto:%.*s",
		[MT_KEY_SCHED] = "%ssched%.*s",
		[MT_KEY_STREAM] = "%sevents%.*s",
		[MT_KEY_ROUTE] = "%sroute:%.*s",
		[MT_KEY_MBOX] = "%smbox:%.*s",
	};
	char *k;

	if (kind == MT_KEY_SCHED || kind == MT_KEY_STREAM || arg == NULL)
		arglen = 0;
	if (arglen > 65536 || asprintf(&k, fmt[kind], s->prefix, (int)arglen,
	    arg ? arg : "") < 0)
		return NULL;
	return k;
}

char *
mt_key_route_day(const struct mt_schema *s, const char *name, const char *day)
{
	char *k;

	if (asprintf(&k, "%sroute:%s:%s", s->prefix, name, day) < 0)
		return NULL;
	return k;
}

void
mt_schema_fingerprint(const void *data, size_t len, char out[MT_FP_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) ||
	    n < MT_FP_LEN / 2) {
		memset(out, '0', MT_FP_LEN);
		out[MT_FP_LEN] = '\0';
		return;
	}
	for (unsigned i = 0; i < MT_FP_LEN / 2; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ---- scripts ---------------------------------------------------------- */

/*
 * Was an event with this fingerprint recorded? Events carry it as "fp";
 * a message has a few events per recipient, so a scan is cheap and
 * needs no key of its own.
 */
#define SEEN_LUA \
"local function seen(list, fp)\n" \
"  local pat = '\"fp\":\"' .. fp .. '\"'\n" \
"  for _, e in ipairs(redis.call('LRANGE', list, 0, -1)) do\n" \
"    if string.find(e, pat, 1, true) then return true end\n" \
"  end\n" \
"  return false\n" \
"end\n"

/*
 * A new record is one HSET. A later MTA of the site keeps the origin's
 * fields and statuses (HSETNX) but writes its hop count; its RECEIVE
 * carries its own hop path. ARGV: ttl, kept, fp, RECEIVE, SCHEDULE or ''
 * (then every recipient starts scheduled), SPOOL or '', field count,
 * fields, recipients.
 */
static const char record_lua[] = SEEN_LUA
"local rec, ev, ttl = KEYS[1], KEYS[2], ARGV[1]\n"
"if seen(ev, ARGV[3]) then return 'dup' end\n"
"local nf, a = tonumber(ARGV[7]), 8\n"
"local first = (ARGV[5] ~= '') and 'scheduled' or 'queued'\n"
"if ARGV[2] == '1' then\n"
"  for i = 1, nf do\n"
"    local f = ARGV[a]\n"
"    redis.call((f == 'hops') and 'HSET' or 'HSETNX', rec, f, ARGV[a + 1])\n"
"    a = a + 2\n"
"  end\n"
"  for k = a, #ARGV do redis.call('HSETNX', rec, 'r:' .. ARGV[k], first) end\n"
"else\n"
"  local set = {}\n"
"  local function put(f, v)\n"
"    set[#set + 1] = f\n"
"    set[#set + 1] = v\n"
"    if #set >= 2000 then\n"	/* unpack() has a limit: in chunks */
"      redis.call('HSET', rec, unpack(set))\n"
"      set = {}\n"
"    end\n"
"  end\n"
"  for i = a, a + 2 * nf - 1, 2 do put(ARGV[i], ARGV[i + 1]) end\n"
"  for k = a + 2 * nf, #ARGV do put('r:' .. ARGV[k], first) end\n"
"  if #set > 0 then redis.call('HSET', rec, unpack(set)) end\n"
"end\n"
"redis.call('RPUSH', ev, ARGV[4])\n"
"for i = 5, 6 do\n"
"  if ARGV[i] ~= '' then redis.call('RPUSH', ev, ARGV[i]) end\n"
"end\n"
"redis.call('EXPIRE', rec, ttl)\n"
"redis.call('EXPIRE', ev, ttl)\n"
"return 'ok'\n";

/*
 * Status order: queued = scheduled < deferred < sent = bounced <
 * delivered < read = deleted = cancelled. deferred may repeat, and a
 * released message goes from scheduled to queued. An event that would
 * move a status back is still recorded.
 */
static const char event_lua[] = SEEN_LUA
"local rec, ev, ttl = KEYS[1], KEYS[2], ARGV[1]\n"
"if redis.call('EXISTS', rec) == 0 then return 'norecord' end\n"
"local who, new = ARGV[3], ARGV[5]\n"
"if who ~= '' and redis.call('HEXISTS', rec, 'r:' .. who) == 0 then\n"
"  if ARGV[4] ~= '' and redis.call('HEXISTS', rec, 'r:' .. ARGV[4]) == 1 then\n"
"    who = ARGV[4]\n"
"  elseif ARGV[7] == '1' then return 'notrcpt' end\n"
"end\n"
"if ARGV[2] ~= '' and seen(ev, ARGV[2]) then return 'dup' end\n"
"local rank = {queued = 0, scheduled = 0, deferred = 1, sent = 2,\n"
"  bounced = 2, delivered = 3, read = 4, deleted = 4, cancelled = 4}\n"
"local function forward(cur, n)\n"
"  local cr = rank[cur] or -1\n"
"  return rank[n] > cr or (n == 'deferred' and cur == 'deferred') or\n"
"    (n == 'queued' and cur == 'scheduled')\n"
"end\n"
"local res = 'event'\n"
"if new ~= '' and rank[new] ~= nil then\n"
"  if who == '' then\n"
"    local all = redis.call('HGETALL', rec)\n"
"    for i = 1, #all, 2 do\n"
"      local v = all[i + 1]\n"
"      if string.sub(all[i], 1, 2) == 'r:' and (v == 'queued' or\n"
"          v == 'deferred' or v == 'scheduled') and forward(v, new) then\n"
"        redis.call('HSET', rec, all[i], new)\n"
"        res = 'ok'\n"
"      end\n"
"    end\n"
"  elseif forward(redis.call('HGET', rec, 'r:' .. who), new) then\n"
"    redis.call('HSET', rec, 'r:' .. who, new)\n"
"    res = 'ok'\n"
"  end\n"
"end\n"
"redis.call('RPUSH', ev, ARGV[6])\n"
"redis.call('EXPIRE', rec, ttl)\n"
"redis.call('EXPIRE', ev, ttl)\n"
"return res\n";

static const char route_take_lua[] =
"local n = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
"if n >= tonumber(ARGV[1]) then return 0 end\n"
"n = redis.call('INCR', KEYS[1])\n"
"if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end\n"
"return 1\n";

static struct mt_redis_script scripts[MT_SCRIPT_COUNT];
static int scripts_ok;
static pthread_once_t scripts_once = PTHREAD_ONCE_INIT;

static void
scripts_init(void)
{
	static const char *const text[MT_SCRIPT_COUNT] = {
		[MT_SCRIPT_RECORD] = record_lua,
		[MT_SCRIPT_EVENT] = event_lua,
		[MT_SCRIPT_ROUTE_TAKE] = route_take_lua,
	};

	scripts_ok = 1;
	for (int i = 0; i < MT_SCRIPT_COUNT; i++)
		if (mt_redis_script_init(&scripts[i], text[i]) != 0)
			scripts_ok = 0;
}

const struct mt_redis_script *
mt_schema_script(enum mt_script_kind k)
{
	pthread_once(&scripts_once, scripts_init);
	if (!scripts_ok || k < 0 || k >= MT_SCRIPT_COUNT)
		return NULL;
	return &scripts[k];
}
