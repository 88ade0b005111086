-- mailtrail.lua: reports mailbox events to mailtrail through Dovecot's own
-- log. Loaded by the push_notification Lua driver of Dovecot 2.3:
--
--   mail_plugins = $mail_plugins notify push_notification mail_lua push_notification_lua
--   plugin {
--     push_notification_driver = lua:file=/usr/share/mailtrail/dovecot/mailtrail.lua
--   }
--
-- Each event becomes one Info line in Dovecot's log, read back by
-- mailbox/dovecot.c (mt_dove_parse):
--
--   mailtrail: v=1 ev=read service=imap user=alice@example.org
--     session=dsgIbadhIKXLAHEF rip=203.0.113.5 uidvalidity=1796221576 uid=1
--     box=INBOX                                   (one line in the log)
--
-- The fields come in this fixed order, box last. Every value is
-- percent-encoded: only [A-Za-z0-9._@+/:-] stays, every other byte becomes
-- %XX (upper-case hex), so no value holds a space, '=' or control byte and
-- none can end its field early or add one, whatever a user names a
-- mailbox. rip and session are "-" when Dovecot has none.
--
-- Never raises an error into Dovecot and never writes a partial line: an
-- event without the user, service, mailbox, UIDVALIDITY or UID it needs is
-- not reported. Keeps no state between transactions.

local VERSION = "1"

-- mt_dove_parse's buffers (MT_DOVE_*_MAX less the NUL). A longer user name
-- could only be reported cut, that is as somebody else, so such an event is
-- not reported; the service and the mailbox name are for display and are
-- cut instead. BOX_MAX leaves room for the "..." that marks a cut name.
local USER_MAX = 255
local SESSION_MAX = 63
local SERVICE_MAX = 15
local RIP_MAX = 63
local BOX_MAX = 508
local U32_MAX = 4294967295

-- Bytes that stay as they are. Ranges are spelled out instead of %w, which
-- follows the C locale and could let bytes >= 0x80 through.
local UNSAFE = "[^A-Za-z0-9._@+/:%-]"

local function percent(c)
	return string.format("%%%02X", string.byte(c))
end

local function encode(s)
	return (string.gsub(s, UNSAFE, percent))
end

-- A non-empty string, or nil.
local function text(v)
	if type(v) ~= "string" or v == "" then
		return nil
	end
	return v
end

-- UIDs and UIDVALIDITY arrive as Lua numbers (floats): "%d" of a number in
-- 1..2^32-1 with no fraction, or nil.
local function u32(v)
	if type(v) ~= "number" or v ~= v or v % 1 ~= 0 or v < 1 or
	    v > U32_MAX then
		return nil
	end
	if math.tointeger then
		v = math.tointeger(v)
	end
	return string.format("%d", v)
end

-- At most max bytes, never splitting a UTF-8 sequence; "..." marks a cut.
local function cut_utf8(s, max)
	if #s <= max then
		return s
	end
	local n = max
	local b = string.byte(s, n + 1)
	while n > 0 and b >= 0x80 and b < 0xC0 do
		n = n - 1
		b = string.byte(s, n + 1)
	end
	return string.sub(s, 1, n) .. "..."
end

-- The fields that are the same for every event of a transaction:
-- " service=.. user=.. session=.. rip=..", or nil when the user or the
-- service is missing. Nil as well for dsync (replication, doveadm
-- sync/backup): it replays changes made elsewhere, which the script of the
-- server where they were made has reported already.
local function session_fields(user)
	if type(user) ~= "table" or user.dsyncing == true then
		return nil
	end
	local service, name = text(user.service), text(user.username)
	if service == nil or name == nil or #name > USER_MAX then
		return nil
	end
	local session = text(user.session_id)
	if session == nil or #session > SESSION_MAX then
		session = "-"
	else
		session = encode(session)
	end
	-- %{rip} is "" for a local client (LDA, doveadm, LMTP over a socket)
	local ok, rip = pcall(function()
		return user:var_expand("%{rip}")
	end)
	if not ok or text(rip) == nil or #rip > RIP_MAX then
		rip = "-"
	else
		rip = encode(rip)
	end
	return " service=" .. encode(string.sub(service, 1, SERVICE_MAX)) ..
	    " user=" .. encode(name) .. " session=" .. session ..
	    " rip=" .. rip
end

local function report(ctx, ev, event)
	if type(ctx) ~= "table" or type(event) ~= "table" then
		return
	end
	if ctx.fields == nil then
		ctx.fields = session_fields(ctx.user) or false
	end
	local uidvalidity, uid = u32(event.uid_validity), u32(event.uid)
	local box = text(event.mailbox)
	if not ctx.fields or uidvalidity == nil or uid == nil or box == nil then
		return
	end
	dovecot.i_info("mailtrail: v=" .. VERSION .. " ev=" .. ev ..
	    ctx.fields .. " uidvalidity=" .. uidvalidity .. " uid=" .. uid ..
	    " box=" .. encode(cut_utf8(box, BOX_MAX)))
end

-- A handler that never lets an error reach Dovecot (which would log it
-- and go on, but every line it logs is one mailtrail must not misread).
local function handler(ev)
	return function(ctx, event)
		local ok, err = pcall(report, ctx, ev, event)
		if not ok then
			pcall(function()
				dovecot.i_warning("mailtrail: " .. ev ..
				    " not reported: " .. encode(tostring(err)))
			end)
		end
	end
end

-- One context per mailbox transaction: the user, and the session fields
-- once the first event has needed them. Dropped by Dovecot at its end.
function dovecot_lua_notify_begin_txn(user)
	return { user = user }
end

-- MessageNew: delivered by LMTP or LDA (Sieve fileinto included).
dovecot_lua_notify_event_message_new = handler("deliver")
-- MessageAppend: IMAP APPEND, and the destination side of COPY and MOVE.
dovecot_lua_notify_event_message_append = handler("append")
-- MessageRead: \Seen was set (FETCH BODY[], STORE +FLAGS \Seen, POP3 RETR
-- at the end of the session).
dovecot_lua_notify_event_message_read = handler("read")
-- MessageTrash: \Deleted was set; the message is still there.
dovecot_lua_notify_event_message_trash = handler("trash")
-- MessageExpunge: gone from this mailbox (EXPUNGE, POP3 DELE + QUIT, the
-- source side of MOVE).
dovecot_lua_notify_event_message_expunge = handler("expunge")

function dovecot_lua_notify_end_txn(ctx, success)
end
