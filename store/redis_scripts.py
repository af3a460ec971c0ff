"""Lua scripts of the Redis adapter: each one is a step that must be atomic.

Every script takes the key prefix as ARGV[1] and builds its key names from it, so one script
body serves every prefix (keys are undeclared: the adapter targets a single Redis, not a
cluster). Numbers cross the boundary as strings: Lua numbers are doubles, and their default
formatting would turn large integers into exponent notation.
"""

from __future__ import annotations

# ARGV: prefix, number, serial, account, data json, version, program, phone ("" = none), unique phone ("1" | "")
# -> {"created", tag} | {"exists", number} | {"phone", number of the card holding the phone} | {"conflict"}
# pcards:<program> (all scores 0) lists the program's card numbers in byte order (cards_page).
# phones:<program>: hash phone -> number of the first card of the program created with it.
# A voucher's serial (vserial:<serial>) is taken for cards too: PassKit knows one pass per serial.
CREATE_CARD = """
local p = ARGV[1]
local existing = redis.call('GET', p .. 'account:' .. ARGV[4])
if existing then return {'exists', existing} end
local phone = ARGV[8] or ''
local phones = p .. 'phones:' .. ARGV[7]
if phone ~= '' and ARGV[9] == '1' then
  local holder = redis.call('HGET', phones, phone)
  if holder then return {'phone', holder} end
end
if redis.call('EXISTS', p .. 'card:' .. ARGV[2], p .. 'serial:' .. ARGV[3], p .. 'vserial:' .. ARGV[3]) > 0 then
  return {'conflict'}
end
local tag = redis.call('INCR', p .. 'tag')
local stag = string.format('%d', tag)
redis.call('HSET', p .. 'card:' .. ARGV[2], 'data', ARGV[5], 'version', ARGV[6], 'tag', stag)
redis.call('SET', p .. 'serial:' .. ARGV[3], ARGV[2])
redis.call('SET', p .. 'account:' .. ARGV[4], ARGV[2])
redis.call('HSET', p .. 'serialtag', ARGV[3], stag)
redis.call('ZADD', p .. 'pcards:' .. ARGV[7], 0, ARGV[2])
if phone ~= '' then redis.call('HSETNX', phones, phone, ARGV[2]) end
return {'created', stag}
"""

# ARGV: prefix, items json [[number, serial, account, data json, version, program, phone or ""], ...]
# -> per item {"created", tag} | {"exists", number} (the account's card, stored or created earlier in
# the batch); or, writing nothing, {"conflict", number} (number or serial taken) | {"program", account}
# (the account has a card in another program). Everything is checked before the first write: a
# script's writes are not rolled back. Then one INCRBY hands out the batch's tags in order.
CREATE_CARDS = """
local p = ARGV[1]
local items = cjson.decode(ARGV[2])
local out, new = {}, {}
local accounts, numbers, serials = {}, {}, {}
for i, it in ipairs(items) do
  local number, serial, account, program = it[1], it[2], it[3], it[6]
  local prior = accounts[account]
  if prior then
    if prior[2] ~= program then return {{'program', account}} end
    out[i] = {'exists', prior[1]}
  else
    local existing = redis.call('GET', p .. 'account:' .. account)
    if existing then
      if not redis.call('ZSCORE', p .. 'pcards:' .. program, existing) then return {{'program', account}} end
      accounts[account] = {existing, program}
      out[i] = {'exists', existing}
    else
      if numbers[number] or serials[serial]
        or redis.call('EXISTS', p .. 'card:' .. number, p .. 'serial:' .. serial, p .. 'vserial:' .. serial) > 0 then
        return {{'conflict', number}}
      end
      numbers[number], serials[serial] = true, true
      accounts[account] = {number, program}
      new[#new + 1] = i
      out[i] = 0
    end
  end
end
if #new > 0 then
  local first = redis.call('INCRBY', p .. 'tag', #new) - #new
  local serialtag = p .. 'serialtag'
  for k, i in ipairs(new) do
    local it = items[i]
    local stag = string.format('%d', first + k)
    redis.call('HSET', p .. 'card:' .. it[1], 'data', it[4], 'version', it[5], 'tag', stag)
    redis.call('SET', p .. 'serial:' .. it[2], it[1])
    redis.call('SET', p .. 'account:' .. it[3], it[1])
    redis.call('HSET', serialtag, it[2], stag)
    redis.call('ZADD', p .. 'pcards:' .. it[6], 0, it[1])
    if it[7] ~= '' then redis.call('HSETNX', p .. 'phones:' .. it[6], it[7], it[1]) end
    out[i] = {'created', stag}
  end
end
return out
"""

# Adds one outbox entry: e = [kind, coalesce key or "", [field name, value, ...]]. With a key,
# nothing is added while an entry under that key waits unclaimed (its pending marker holds the
# entry id); returns the id added or found. Stream fields: kind, attempts, enqueued_at, ck
# (the key), and the entry's own fields as "f:<name>".
_ADD_ENTRY = """
local function add_entry(p, stream, now, e)
  local marker = nil
  if e[2] ~= '' then
    marker = p .. 'pending:' .. e[2]
    local waiting = redis.call('GET', marker)
    if waiting then return waiting end
  end
  local args = {'XADD', stream, '*', 'kind', e[1], 'attempts', '0', 'enqueued_at', now}
  if marker then
    args[#args + 1] = 'ck'
    args[#args + 1] = e[2]
  end
  local fields = e[3]
  for k = 1, #fields, 2 do
    args[#args + 1] = 'f:' .. fields[k]
    args[#args + 1] = fields[k + 1]
  end
  local id = redis.call(unpack(args))
  if marker then redis.call('SET', marker, id) end
  redis.call('ZADD', p .. 'outbox:ages', now, 's:' .. id)
  return id
end
"""

# Report facts: facts:<family>:<day>, hash dims JSON -> count; factdays, a zset (all scores 0) of
# "<day>:<family>" for every group that has counts, so groups are ranged by day without a scan
# (days are YYYY-MM-DD: byte order is day order). The caller passes the day (store.port.fact_day).
# A registration's remove fact re-encodes its stored program, client and tier here (cjson may
# escape differently from Python: the adapter sums equal dims when it reads).
_ADD_FACT = """
local function add_fact(p, family, day, dims, n)
  redis.call('HINCRBY', p .. 'facts:' .. family .. ':' .. day, dims, n or 1)
  redis.call('ZADD', p .. 'factdays', 0, day .. ':' .. family)
end
local function text_or(value, default)
  if type(value) == 'string' then return value end
  return default
end
-- store.port.FACT_INSTALLS; a record without a client is an Apple one (store.port.DEFAULT_CLIENT)
local function count_removal(p, day, value)
  local reg = cjson.decode(value)
  add_fact(p, 'installs', day, cjson.encode({text_or(reg.program, ''), text_or(reg.client, 'apple'),
    text_or(reg.tier, ''), 'remove'}))
end
"""

# The geo generation (key geo, absent = 0) is still `expected`; "" expects nothing.
_GEO_CHECK = """
local function geo_unchanged(p, expected)
  if expected == '' then return true end
  return (redis.call('GET', p .. 'geo') or '0') == expected
end
"""

# ARGV: prefix, now, entries json [e, ...] (as add_entry) -> {id, ...}
ENQUEUE = (
    _ADD_ENTRY
    + """
local p, now = ARGV[1], ARGV[2]
local out = {}
for i, e in ipairs(cjson.decode(ARGV[3])) do out[i] = add_entry(p, p .. 'outbox', now, e) end
return out
"""
)

# ARGV: prefix, now, groups json: [{n: number, s: serial, b: base version, v: version, d: data json, ids: [...],
#   e: [entry, ...]}], expected geo generation ("" for no check)
# Accepted ids are ledger:accepted, a zset id -> acceptance time (`now`).
# -> per group, the card's new tag, or 0 when the card or an id changed since the plan was
# made (compare-and-set: the caller re-reads and re-plans that card's events). A committed
# group's entries are added as add_entry does. -1 (not a list): the geo generation moved,
# nothing written.
APPLY_LEDGER = (
    _ADD_ENTRY
    + _GEO_CHECK
    + """
local p = ARGV[1]
local now = ARGV[2]
if not geo_unchanged(p, ARGV[4]) then return -1 end
local groups = cjson.decode(ARGV[3])
local stream = p .. 'outbox'
local ids_key = p .. 'ledger:accepted'
local results = {}
for i, g in ipairs(groups) do
  local card_key = p .. 'card:' .. g.n
  local ok = redis.call('HGET', card_key, 'version') == g.b
  if ok then
    for _, id in ipairs(g.ids) do
      if redis.call('ZSCORE', ids_key, id) then ok = false break end
    end
  end
  if not ok then
    results[i] = 0
  else
    local tag = redis.call('INCRBY', p .. 'tag', #g.ids)
    local stag = string.format('%d', tag)
    redis.call('HSET', card_key, 'data', g.d, 'version', g.v, 'tag', stag)
    redis.call('HSET', p .. 'serialtag', g.s, stag)
    -- each id with its acceptance time (forget_event_ids drops the oldest first), in chunks:
    -- unpack() of a long list would overflow Lua's C stack
    for start = 1, #g.ids, 500 do
      local scored = {}
      for k = start, math.min(start + 499, #g.ids) do
        scored[#scored + 1] = now
        scored[#scored + 1] = g.ids[k]
      end
      redis.call('ZADD', ids_key, unpack(scored))
    end
    for _, e in ipairs(g.e) do add_entry(p, stream, now, e) end
    results[i] = tag
  end
end
return results
"""
)

# ARGV: prefix, group, consumer, limit, min idle ms (the lease), now
# -> {{id, {field, value, ...}}, ...}
#
# 1. delayed retries that are due go back into the stream;
# 2. entries leased to a consumer that went quiet for longer than a lease are taken over;
# 3. new entries are read; taking one ends its coalescing (its pending marker goes).
CLAIM_OUTBOX = """
local p = ARGV[1]
local group, consumer = ARGV[2], ARGV[3]
local limit = tonumber(ARGV[4])
local stream = p .. 'outbox'
local delayed = p .. 'outbox:delayed'
local ages = p .. 'outbox:ages'
local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', ARGV[6], 'LIMIT', 0, 1000)
for _, member in ipairs(due) do
  local e = cjson.decode(member)
  local args = {'XADD', stream, '*', 'kind', e.kind, 'attempts', e.attempts, 'enqueued_at', e.enqueued_at}
  for k = 1, #e.fields, 2 do
    args[#args + 1] = 'f:' .. e.fields[k]
    args[#args + 1] = e.fields[k + 1]
  end
  local id = redis.call(unpack(args))
  redis.call('ZREM', delayed, member)
  redis.call('ZREM', ages, 'd:' .. member)
  redis.call('ZADD', ages, e.enqueued_at, 's:' .. id)
end
local out = {}
local cursor = '0-0'
repeat
  local r = redis.call('XAUTOCLAIM', stream, group, consumer, ARGV[5], cursor, 'COUNT', limit - #out)
  cursor = r[1]
  for _, e in ipairs(r[2]) do
    if e then out[#out + 1] = {e[1], e[2]} end
  end
until cursor == '0-0' or #out >= limit
if #out < limit then
  local r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', limit - #out, 'STREAMS', stream, '>')
  if r then
    for _, e in ipairs(r[1][2]) do
      local fields = e[2]
      for k = 1, #fields, 2 do
        if fields[k] == 'ck' then
          local marker = p .. 'pending:' .. fields[k + 1]
          if redis.call('GET', marker) == e[1] then redis.call('DEL', marker) end
        end
      end
      out[#out + 1] = {e[1], fields}
    end
  end
end
return out
"""

# ARGV: prefix, group, entry id, delayed member json, due at, enqueued_at -> 1 when moved
RETRY_OUTBOX = """
local stream = ARGV[1] .. 'outbox'
if redis.call('XDEL', stream, ARGV[3]) == 0 then return 0 end
redis.call('XACK', stream, ARGV[2], ARGV[3])
redis.call('ZADD', ARGV[1] .. 'outbox:delayed', ARGV[5], ARGV[4])
local ages = ARGV[1] .. 'outbox:ages'
redis.call('ZREM', ages, 's:' .. ARGV[3])
redis.call('ZADD', ages, ARGV[6], 'd:' .. ARGV[4])
return 1
"""

# Dead letters: deadletters, a stream (its ids are the dead letters' ids, oldest first), each
# entry {kind, record: JSON {entry: {id, kind, fields, attempts, enqueued_at}, error, failed_at}}.
# ARGV: prefix, group, entry id, kind, record json, keep -> {moved 0|1, {{dropped id, kind}, ...}}
# Beyond `keep` the oldest are dropped in the same step; the adapter logs each one it is told of.
DEAD_LETTER = """
local p = ARGV[1]
local stream = p .. 'outbox'
if redis.call('XDEL', stream, ARGV[3]) == 0 then return {0, {}} end
redis.call('XACK', stream, ARGV[2], ARGV[3])
redis.call('ZREM', p .. 'outbox:ages', 's:' .. ARGV[3])
local dead = p .. 'deadletters'
redis.call('XADD', dead, '*', 'kind', ARGV[4], 'record', ARGV[5])
local keep = math.max(tonumber(ARGV[6]), 0)
local excess = redis.call('XLEN', dead) - keep
local dropped = {}
if excess > 0 then
  -- the oldest `excess` (one per call once the list is full): read for the log, then deleted
  for _, e in ipairs(redis.call('XRANGE', dead, '-', '+', 'COUNT', excess)) do
    local kind = ''
    for k = 1, #e[2], 2 do
      if e[2][k] == 'kind' then kind = e[2][k + 1] end
    end
    dropped[#dropped + 1] = {e[1], kind}
    redis.call('XDEL', dead, e[1])
  end
end
return {1, dropped}
"""

# ARGV: prefix, now, ids json [id, ...] (oldest first) or "" for the oldest, limit
# -> {dead letter id moved, ...} oldest first. Each one goes back into the outbox as a new entry
# (its kind and fields, attempts 0, enqueued now, no coalescing key) and leaves deadletters in the
# same step.
REQUEUE_DEAD_LETTERS = """
local p, now = ARGV[1], ARGV[2]
local dead, stream, ages = p .. 'deadletters', p .. 'outbox', p .. 'outbox:ages'
local found = {}
if ARGV[3] == '' then
  found = redis.call('XRANGE', dead, '-', '+', 'COUNT', tonumber(ARGV[4]))
else
  for _, id in ipairs(cjson.decode(ARGV[3])) do
    local e = redis.call('XRANGE', dead, id, id)
    if e[1] then found[#found + 1] = e[1] end
  end
end
local moved = {}
for _, e in ipairs(found) do
  local record = nil
  for k = 1, #e[2], 2 do
    if e[2][k] == 'record' then record = cjson.decode(e[2][k + 1]) end
  end
  if record then
    local args = {'XADD', stream, '*', 'kind', record.entry.kind, 'attempts', '0', 'enqueued_at', now}
    if type(record.entry.fields) == 'table' then
      for name, value in pairs(record.entry.fields) do
        args[#args + 1] = 'f:' .. name
        args[#args + 1] = value
      end
    end
    local id = redis.call(unpack(args))
    redis.call('ZADD', ages, now, 's:' .. id)
  end
  redis.call('XDEL', dead, e[1])
  moved[#moved + 1] = e[1]
end
return moved
"""

# Schema 4 -> 5: the dead list (LPUSH, newest first) into the deadletters stream, oldest first, in
# batches: each batch is moved and trimmed in one step, so a crash or a second migrating process
# neither loses nor duplicates one. ARGV: prefix, batch -> how many are left in the list
MIGRATE_DEAD_LETTERS = """
local p = ARGV[1]
local list, dead = p .. 'dead', p .. 'deadletters'
local n = tonumber(ARGV[2])
local batch = redis.call('LRANGE', list, -n, -1)
for i = #batch, 1, -1 do
  local ok, record = pcall(cjson.decode, batch[i])
  local kind = ''
  if ok and type(record) == 'table' and type(record.entry) == 'table' and type(record.entry.kind) == 'string' then
    kind = record.entry.kind
  end
  redis.call('XADD', dead, '*', 'kind', kind, 'record', batch[i])
end
if #batch > 0 then redis.call('LTRIM', list, 0, -#batch - 1) end
return redis.call('LLEN', list)
"""

# ARGV: prefix -> the lowest enqueued_at (a string) of the entries waiting, or false when none.
# outbox:ages holds every stream entry ('s:' .. id) and delayed retry ('d:' .. member) with its
# enqueued_at; a member whose entry is gone (removed by a path that did not know the index, such
# as an older process) is dropped here, a bounded number per call.
OUTBOX_OLDEST = """
local p = ARGV[1]
local ages = p .. 'outbox:ages'
for _ = 1, 100 do
  local first = redis.call('ZRANGE', ages, 0, 0, 'WITHSCORES')
  if #first == 0 then return false end
  local member = first[1]
  local kind, rest = string.sub(member, 1, 2), string.sub(member, 3)
  local alive
  if kind == 's:' then
    alive = #redis.call('XRANGE', p .. 'outbox', rest, rest) > 0
  else
    alive = redis.call('ZSCORE', p .. 'outbox:delayed', rest) ~= false
  end
  if alive then return first[2] end
  redis.call('ZREM', ages, member)
end
local first = redis.call('ZRANGE', ages, 0, 0, 'WITHSCORES')
return first[2] or false
"""

# ARGV: prefix, before, limit -> how many accepted ledger ids (accepted before `before`) were forgotten
FORGET_EVENT_IDS = """
local key = ARGV[1] .. 'ledger:accepted'
local ids = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for i = 1, #ids, 500 do
  redis.call('ZREM', key, unpack(ids, i, math.min(i + 499, #ids)))
end
return #ids
"""

# ARGV: prefix, day, family, counts json [[dims json, n], ...]
ADD_FACTS = (
    _ADD_FACT
    + """
for _, c in ipairs(cjson.decode(ARGV[4])) do add_fact(ARGV[1], ARGV[3], ARGV[2], c[1], c[2]) end
return 1
"""
)

# ARGV: prefix, before day, limit -> how many (family, day) groups were dropped, oldest day first
FORGET_FACTS = """
local p = ARGV[1]
local groups = redis.call('ZRANGEBYLEX', p .. 'factdays', '-', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, g in ipairs(groups) do
  -- "<day>:<family>", the day being 10 bytes
  redis.call('DEL', p .. 'facts:' .. string.sub(g, 12) .. ':' .. string.sub(g, 1, 10))
  redis.call('ZREM', p .. 'factdays', g)
end
return #groups
"""

# ARGV: prefix, serial, registration field, value json without its closing brace, max devices (0: no
# cap), program, tier, client, day -> 1 when new
# The record gets "program" and "tier": the stored ones for an existing registration (absent in
# records from before schema 5: ""), else the given ones. They are spliced in as text so the rest
# of the record stays as the adapter wrote it (cjson would round updated_at to 14 digits).
# A new registration counts an install fact; one beyond the cap evicts the least recently updated
# others of the serial, each counting a remove fact.
REGISTER_DEVICE = (
    _ADD_FACT
    + """
local p, serial, field = ARGV[1], ARGV[2], ARGV[3]
local regs = p .. 'regs:' .. serial
local day = ARGV[9]
local program, tier = ARGV[6], ARGV[7]
local old = redis.call('HGET', regs, field)
if old then
  local reg = cjson.decode(old)
  program, tier = text_or(reg.program, ''), text_or(reg.tier, '')
end
local value = ARGV[4] .. ',"program":' .. cjson.encode(program) .. ',"tier":' .. cjson.encode(tier) .. '}'
local added = redis.call('HSET', regs, field, value)
redis.call('SADD', p .. 'devregs:' .. field, serial)
if added == 1 then
  add_fact(p, 'installs', day, cjson.encode({program, ARGV[8], tier, 'install'}))
end
local cap = tonumber(ARGV[5])
if added == 1 and cap > 0 and redis.call('HLEN', regs) > cap then
  local all = redis.call('HGETALL', regs)
  local others = {}
  for i = 1, #all, 2 do
    if all[i] ~= field then
      others[#others + 1] = {all[i], cjson.decode(all[i + 1]).updated_at}
    end
  end
  -- newest first, ties by field (as SQLite orders by device id): keep cap - 1 besides the new one
  table.sort(others, function(a, b)
    if a[2] ~= b[2] then return a[2] > b[2] end
    return a[1] > b[1]
  end)
  for i = cap, #others do
    count_removal(p, day, redis.call('HGET', regs, others[i][1]))
    redis.call('HDEL', regs, others[i][1])
    redis.call('SREM', p .. 'devregs:' .. others[i][1], serial)
  end
end
return added
"""
)

# ARGV: prefix, registration field, serial, push token, before, day -> 1 when removed (a remove fact)
REMOVE_STALE_REGISTRATION = (
    _ADD_FACT
    + """
local regs = ARGV[1] .. 'regs:' .. ARGV[3]
local value = redis.call('HGET', regs, ARGV[2])
if not value then return 0 end
local reg = cjson.decode(value)
if reg.push_token ~= ARGV[4] or reg.updated_at >= tonumber(ARGV[5]) then return 0 end
redis.call('HDEL', regs, ARGV[2])
redis.call('SREM', ARGV[1] .. 'devregs:' .. ARGV[2], ARGV[3])
count_removal(ARGV[1], ARGV[6], value)
return 1
"""
)

# ARGV: prefix, registration field, serial, day -> 1 when removed
# With the registration go the device's pushed tag for the pass (registering again must get the
# pass again) and a remove fact.
UNREGISTER_DEVICE = (
    _ADD_FACT
    + """
local p, field, serial = ARGV[1], ARGV[2], ARGV[3]
local regs = p .. 'regs:' .. serial
local value = redis.call('HGET', regs, field)
redis.call('HDEL', p .. 'pushed:' .. serial, field)
if not value then return 0 end
redis.call('HDEL', regs, field)
redis.call('SREM', p .. 'devregs:' .. field, serial)
count_removal(p, ARGV[4], value)
return 1
"""
)

# ARGV: prefix, registration field -> {{serial, tag or false}, ...}
SERIALS_WITH_TAGS = """
local serials = redis.call('SMEMBERS', ARGV[1] .. 'devregs:' .. ARGV[2])
if #serials == 0 then return {} end
local tags = redis.call('HMGET', ARGV[1] .. 'serialtag', unpack(serials))
local out = {}
for i, s in ipairs(serials) do out[i] = {s, tags[i]} end
return out
"""

# ARGV: prefix, token, card, value json
ADD_APP_TOKEN = """
local tokens = ARGV[1] .. 'apptok'
local old = redis.call('HGET', tokens, ARGV[2])
if old then
  local previous = cjson.decode(old).card
  if previous ~= ARGV[3] then redis.call('SREM', ARGV[1] .. 'cardtoks:' .. previous, ARGV[2]) end
end
redis.call('HSET', tokens, ARGV[2], ARGV[4])
redis.call('SADD', ARGV[1] .. 'cardtoks:' .. ARGV[3], ARGV[2])
return 1
"""

# ARGV: prefix, token
DELETE_APP_TOKEN = """
local tokens = ARGV[1] .. 'apptok'
local old = redis.call('HGET', tokens, ARGV[2])
if not old then return 0 end
redis.call('SREM', ARGV[1] .. 'cardtoks:' .. cjson.decode(old).card, ARGV[2])
redis.call('HDEL', tokens, ARGV[2])
return 1
"""

# ARGV: prefix, card -> {{token, value json}, ...}
APP_TOKENS = """
local tokens = redis.call('SMEMBERS', ARGV[1] .. 'cardtoks:' .. ARGV[2])
if #tokens == 0 then return {} end
local values = redis.call('HMGET', ARGV[1] .. 'apptok', unpack(tokens))
local out = {}
for i, token in ipairs(tokens) do
  if values[i] then out[#out + 1] = {token, values[i]} end
end
return out
"""

# ARGV: prefix, serial, registration field, tag: keep the highest tag pushed
MARK_PUSHED = """
local key = ARGV[1] .. 'pushed:' .. ARGV[2]
local current = redis.call('HGET', key, ARGV[3])
if current == false or tonumber(ARGV[4]) > tonumber(current) then redis.call('HSET', key, ARGV[3], ARGV[4]) end
return 1
"""

# ARGV: prefix, group, keep, marks json [[serial, field, tag], ...], entry ids json, journal json [record json, ...],
# day, push fact counts json [[dims json, n], ...]
# One worker batch: tags marked pushed (kept at the maximum, as MARK_PUSHED), entries acked
# and deleted (as ack_outbox), journal records pushed newest first and the list trimmed once,
# and the records' push facts counted.
COMPLETE_PUSHES = (
    _ADD_FACT
    + """
local p = ARGV[1]
local keep = tonumber(ARGV[3])
for _, mark in ipairs(cjson.decode(ARGV[4])) do
  local pushed = p .. 'pushed:' .. mark[1]
  local current = redis.call('HGET', pushed, mark[2])
  if current == false or tonumber(mark[3]) > tonumber(current) then redis.call('HSET', pushed, mark[2], mark[3]) end
end
local stream = p .. 'outbox'
local ids = cjson.decode(ARGV[5])
-- in chunks: unpack() of a long list would overflow Lua's C stack
for i = 1, #ids, 500 do
  local chunk = {unpack(ids, i, math.min(i + 499, #ids))}
  redis.call('XACK', stream, ARGV[2], unpack(chunk))
  redis.call('XDEL', stream, unpack(chunk))
  for k = 1, #chunk do chunk[k] = 's:' .. chunk[k] end
  redis.call('ZREM', p .. 'outbox:ages', unpack(chunk))
end
local records = cjson.decode(ARGV[6])
if #records > 0 then
  local journal = p .. 'pushes'
  for i = 1, #records, 500 do
    redis.call('LPUSH', journal, unpack(records, i, math.min(i + 499, #records)))
  end
  if keep > 0 then redis.call('LTRIM', journal, 0, keep - 1) else redis.call('DEL', journal) end
end
for _, c in ipairs(cjson.decode(ARGV[8])) do add_fact(p, 'pushes', ARGV[7], c[1], c[2]) end
return 1
"""
)

# ARGV: prefix, nonce, object id, record json [event, at], keep, day, install fact dims json ("" = none),
# at -> 1 new | 0 nonce seen before
# A verified Google Wallet callback, once per nonce: the nonce marker (SET NX) and its entry in
# gnonces (by `at`, for forget_google_callbacks), the object's bounded list of records, newest
# first, and its install fact, in one step.
RECORD_GOOGLE_CALLBACK = (
    _ADD_FACT
    + """
local p = ARGV[1]
if not redis.call('SET', p .. 'gnonce:' .. ARGV[2], ARGV[3], 'NX') then return 0 end
redis.call('ZADD', p .. 'gnonces', ARGV[8], ARGV[2])
local list = p .. 'ginstalls:' .. ARGV[3]
redis.call('LPUSH', list, ARGV[4])
redis.call('LTRIM', list, 0, tonumber(ARGV[5]) - 1)
if ARGV[7] ~= '' then add_fact(p, 'installs', ARGV[6], ARGV[7]) end
return 1
"""
)

# ARGV: prefix, before, limit -> how many callbacks were forgotten
# The oldest `limit` nonces of gnonces received before `before` go with their markers; for each, the
# oldest record of its object's list goes too while it was received before `before` (the list holds
# the object's records newest first, so its tail is the oldest; one trimmed away already by the
# list's bound leaves a newer one, itself due to be forgotten, or nothing before `before`).
FORGET_GOOGLE_CALLBACKS = """
local p, before = ARGV[1], tonumber(ARGV[2])
local index = p .. 'gnonces'
local nonces = redis.call('ZRANGEBYSCORE', index, '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, nonce in ipairs(nonces) do
  local marker = p .. 'gnonce:' .. nonce
  local object = redis.call('GET', marker)
  if object then
    redis.call('DEL', marker)
    local list = p .. 'ginstalls:' .. object
    local oldest = redis.call('LINDEX', list, -1)
    if oldest then
      local ok, record = pcall(cjson.decode, oldest)
      if ok and type(record) == 'table' and tonumber(record[2]) and tonumber(record[2]) < before then
        redis.call('RPOP', list)
      end
    end
  end
end
for i = 1, #nonces, 500 do
  redis.call('ZREM', index, unpack(nonces, i, math.min(i + 499, #nonces)))
end
return #nonces
"""

# ARGV: prefix, serial, version, state json -> 1 written | 0 a higher version is stored
# Google Wallet sync bookkeeping, put-if-newer: hash gstate:<serial> {version, data}.
PUT_GOOGLE_STATE = """
local key = ARGV[1] .. 'gstate:' .. ARGV[2]
local stored = redis.call('HGET', key, 'version')
if stored and tonumber(stored) > tonumber(ARGV[3]) then return 0 end
redis.call('HSET', key, 'version', ARGV[3], 'data', ARGV[4])
return 1
"""

# Geo jobs: geojob:<id> hash {program, kind, payload (JSON as given), cursor, created_at, done
# ("0"/"1"), owner ("" = no lease), until}; geojobs, a zset of the ids of jobs not done, scored
# by created_at (Redis orders equal scores by member bytes: created_at, then id, as SQLite does);
# geojobs:all, the same for every job, done or not (list_geo_jobs, newest first); a job that is done
# and not a program's "campaigns" job also goes into jobs:finished as "g:<id>" (_JOB_FINISHED).
# A restart keeps the lease: its holder's next step fails on the generation and it re-reads.
_RESTART_JOB = """
local function restart_job(p, program, now)
  local id = 'campaigns:' .. program
  local key = p .. 'geojob:' .. id
  local created = redis.call('HGET', key, 'created_at')
  if created then
    redis.call('HSET', key, 'cursor', '', 'done', '0')
  else
    created = now
    redis.call('HSET', key, 'program', program, 'kind', 'campaigns', 'payload', '{}', 'cursor', '',
      'created_at', now, 'done', '0', 'owner', '', 'until', '0')
  end
  redis.call('ZADD', p .. 'geojobs', created, id)
  redis.call('ZADD', p .. 'geojobs:all', created, id)
end
"""

# jobs:finished: a zset by created_at of the finished jobs, "g:<id>" geo jobs done (never a program's
# "campaigns" job: it is restarted, not finished) and "i:<id>" import jobs done or failed, which
# forget_finished_jobs forgets oldest first (ties: geo jobs first, then by id, as SQLite merges).
_JOB_FINISHED = """
local function geo_job_finished(p, id)
  local key = p .. 'geojob:' .. id
  local job = redis.call('HMGET', key, 'kind', 'created_at')
  if job[1] and job[1] ~= 'campaigns' and string.sub(id, 1, 10) ~= 'campaigns:' then
    redis.call('ZADD', p .. 'jobs:finished', job[2], 'g:' .. id)
  end
end
local function import_job_finished(p, id, created)
  redis.call('ZADD', p .. 'jobs:finished', created, 'i:' .. id)
end
"""

# Every geo write: the generation (key geo) advances and the programs' jobs restart.
_GEO_CHANGED = (
    _RESTART_JOB
    + """
local function geo_changed(p, programs, now)
  redis.call('INCR', p .. 'geo')
  local done = {}
  for _, program in ipairs(programs) do
    if not done[program] then
      done[program] = true
      restart_job(p, program, now)
    end
  end
end
"""
)

# Store locations (geo/): storeloc hash id -> location JSON; storegeo, a GEO set of every
# location; storegeo:<program>, one per program.
# ARGV: prefix, items json [[id, program, lon, lat, location json], ...], now -> how many ids were new.
# The coordinates are checked first (the adapter checked them already: a GEOADD failing half
# way would leave the import half written, as a script's writes are not rolled back).
PUT_STORE_LOCATIONS = (
    _GEO_CHANGED
    + """
local p = ARGV[1]
local items = cjson.decode(ARGV[2])
local programs = {}
local hash, all = p .. 'storeloc', p .. 'storegeo'
for _, it in ipairs(items) do
  local lon, lat = tonumber(it[3]), tonumber(it[4])
  if not lon or not lat or lat < -85.05112878 or lat > 85.05112878 or lon < -180 or lon > 180 then
    return redis.error_reply('invalid store location coordinates')
  end
end
local new = 0
for _, it in ipairs(items) do
  local old = redis.call('HGET', hash, it[1])
  if old then
    local before = cjson.decode(old)['program']
    if before ~= it[2] then redis.call('ZREM', p .. 'storegeo:' .. before, it[1]) end
    programs[#programs + 1] = before
  else
    new = new + 1
  end
  redis.call('GEOADD', all, it[3], it[4], it[1])
  redis.call('GEOADD', p .. 'storegeo:' .. it[2], it[3], it[4], it[1])
  redis.call('HSET', hash, it[1], it[5])
  programs[#programs + 1] = it[2]
end
geo_changed(p, programs, ARGV[3])
return new
"""
)

# ARGV: prefix, id, now -> 1 removed | 0 absent
DELETE_STORE_LOCATION = (
    _GEO_CHANGED
    + """
local p = ARGV[1]
local hash = p .. 'storeloc'
local old = redis.call('HGET', hash, ARGV[2])
if not old then return 0 end
local program = cjson.decode(old)['program']
redis.call('ZREM', p .. 'storegeo', ARGV[2])
redis.call('ZREM', p .. 'storegeo:' .. program, ARGV[2])
redis.call('HDEL', hash, ARGV[2])
geo_changed(p, {program}, ARGV[3])
return 1
"""
)

# ARGV: prefix, program -> {location json, ...} of that program's locations (any order)
PROGRAM_STORE_LOCATIONS = """
local p = ARGV[1]
local ids = redis.call('ZRANGE', p .. 'storegeo:' .. ARGV[2], 0, -1)
local out = {}
for start = 1, #ids, 1000 do  -- unpack() has a stack limit: HMGET in chunks
  local values = redis.call('HMGET', p .. 'storeloc', unpack(ids, start, math.min(start + 999, #ids)))
  for k = 1, #values do out[#out + 1] = values[k] end
end
return out
"""

# ARGV: prefix, geo key suffix ("" for every program, ":<program>"), lon, lat, radius in m, count
# -> {{id, Redis' distance in m, location json}, ...}, nearest first by Redis' distance
STORES_NEAR = """
local p = ARGV[1]
local hits = redis.call('GEOSEARCH', p .. 'storegeo' .. ARGV[2], 'FROMLONLAT', ARGV[3], ARGV[4],
  'BYRADIUS', ARGV[5], 'm', 'ASC', 'COUNT', ARGV[6], 'WITHDIST')
local out = {}
for i, hit in ipairs(hits) do
  out[i] = {hit[1], hit[2], redis.call('HGET', p .. 'storeloc', hit[1]) or ''}
end
return out
"""

# Campaigns: campaigns hash id -> JSON (as the adapter wrote it); pcampaigns:<program>, the set of
# a program's campaign ids.
# ARGV: prefix, id, program, campaign json, now -> 1 new | 0 replaced
PUT_CAMPAIGN = (
    _GEO_CHANGED
    + """
local p, id, program = ARGV[1], ARGV[2], ARGV[3]
local hash = p .. 'campaigns'
local old = redis.call('HGET', hash, id)
local programs = {program}
if old then
  local before = tostring(cjson.decode(old)['program'])
  if before ~= program then
    redis.call('SREM', p .. 'pcampaigns:' .. before, id)
    programs[2] = before
  end
end
redis.call('HSET', hash, id, ARGV[4])
redis.call('SADD', p .. 'pcampaigns:' .. program, id)
geo_changed(p, programs, ARGV[5])
if old then return 0 end
return 1
"""
)

# ARGV: prefix, id, now -> 1 removed | 0 absent
DELETE_CAMPAIGN = (
    _GEO_CHANGED
    + """
local p, id = ARGV[1], ARGV[2]
local hash = p .. 'campaigns'
local old = redis.call('HGET', hash, id)
if not old then return 0 end
local program = tostring(cjson.decode(old)['program'])
redis.call('SREM', p .. 'pcampaigns:' .. program, id)
redis.call('HDEL', hash, id)
geo_changed(p, {program}, ARGV[3])
return 1
"""
)

# ARGV: prefix, program -> {campaign json, ...} (any order)
PROGRAM_CAMPAIGNS = """
local p = ARGV[1]
local ids = redis.call('SMEMBERS', p .. 'pcampaigns:' .. ARGV[2])
local out = {}
for start = 1, #ids, 1000 do  -- unpack() has a stack limit: HMGET in chunks
  local values = redis.call('HMGET', p .. 'campaigns', unpack(ids, start, math.min(start + 999, #ids)))
  for k = 1, #values do out[#out + 1] = values[k] end
end
return out
"""

# ARGV: prefix, program, now
RESTART_CAMPAIGNS_JOB = (
    _GEO_CHANGED
    + """
geo_changed(ARGV[1], {ARGV[2]}, ARGV[3])
return 1
"""
)

# ARGV: prefix, id, program, kind, payload json, now -> 1 added | 0 the id exists
ADD_GEO_JOB = """
local p, id = ARGV[1], ARGV[2]
local key = p .. 'geojob:' .. id
if redis.call('EXISTS', key) == 1 then return 0 end
redis.call('HSET', key, 'program', ARGV[3], 'kind', ARGV[4], 'payload', ARGV[5], 'cursor', '',
  'created_at', ARGV[6], 'done', '0', 'owner', '', 'until', '0')
redis.call('ZADD', p .. 'geojobs', ARGV[6], id)
redis.call('ZADD', p .. 'geojobs:all', ARGV[6], id)
return 1
"""

# ARGV: prefix, owner, until, now -> {id, program, kind, payload, cursor, created_at, done} | false
# The first open job (created_at, id) whose lease is free, expired, or already the owner's.
CLAIM_GEO_JOB = """
local p, owner, now = ARGV[1], ARGV[2], tonumber(ARGV[4])
local ids = redis.call('ZRANGE', p .. 'geojobs', 0, -1)
for _, id in ipairs(ids) do
  local key = p .. 'geojob:' .. id
  local lease = redis.call('HMGET', key, 'owner', 'until')
  if lease[1] == false then
    redis.call('ZREM', p .. 'geojobs', id)  -- an index entry without its job
  elseif lease[1] == '' or lease[1] == owner or tonumber(lease[2]) <= now then
    redis.call('HSET', key, 'owner', owner, 'until', ARGV[3])
    local job = redis.call('HMGET', key, 'program', 'kind', 'payload', 'cursor', 'created_at', 'done')
    return {id, job[1], job[2], job[3], job[4], job[5], job[6]}
  end
end
return false
"""

# ARGV: prefix, program, after ("" = from the first), limit -> {number, data, version, tag, ...}
CARDS_PAGE = """
local p = ARGV[1]
local min = '-'
if ARGV[3] ~= '' then min = '(' .. ARGV[3] end
local numbers = redis.call('ZRANGEBYLEX', p .. 'pcards:' .. ARGV[2], min, '+', 'LIMIT', 0, tonumber(ARGV[4]))
local out = {}
for _, number in ipairs(numbers) do
  local values = redis.call('HMGET', p .. 'card:' .. number, 'data', 'version', 'tag')
  if values[1] then
    out[#out + 1] = values[1]
    out[#out + 1] = values[2]
    out[#out + 1] = values[3]
  end
end
return out
"""

# ARGV: prefix, now, updates json [{n: number, s: serial, t: expected tag, b: 1 bump | 0, d: data json,
#   e: [entry, ...]}], expected geo generation ("" for no check), step json ({j: job id, o: owner,
#   c: cursor, f: done 0|1}) or ""
# -> -1 (not a list) when the geo generation moved, nothing written; else {advanced 0|1, {per update:
# the tag it has now as a string, or "" when its tag had moved (nothing written for it)}}.
# A bump takes a new tag from the store counter, sets serialtag (serials_updated_since) as a
# ledger commit does, and adds its entries as add_entry does; without, only `data` is replaced.
UPDATE_CARDS = (
    _ADD_ENTRY
    + _GEO_CHECK
    + _JOB_FINISHED
    + """
local p, now = ARGV[1], ARGV[2]
if not geo_unchanged(p, ARGV[4]) then return -1 end
local stream = p .. 'outbox'
local results = {}
local all = true
for i, u in ipairs(cjson.decode(ARGV[3])) do
  local card_key = p .. 'card:' .. u.n
  local tag = redis.call('HGET', card_key, 'tag')
  if tag ~= u.t then
    results[i] = ''
    all = false
  elseif u.b == 1 then
    local stag = string.format('%d', redis.call('INCR', p .. 'tag'))
    redis.call('HSET', card_key, 'data', u.d, 'tag', stag)
    redis.call('HSET', p .. 'serialtag', u.s, stag)
    for _, e in ipairs(u.e) do add_entry(p, stream, now, e) end
    results[i] = stag
  else
    redis.call('HSET', card_key, 'data', u.d)
    results[i] = tag
  end
end
local advanced = 0
if all and ARGV[5] ~= '' then
  local step = cjson.decode(ARGV[5])
  local key = p .. 'geojob:' .. step.j
  local lease = redis.call('HMGET', key, 'owner', 'until')
  if lease[1] == step.o and tonumber(lease[2]) > tonumber(now) then
    redis.call('HSET', key, 'cursor', step.c, 'done', tostring(step.f))
    if step.f == 1 then
      redis.call('ZREM', p .. 'geojobs', step.j)
      geo_job_finished(p, step.j)
    end
    advanced = 1
  end
end
return {advanced, results}
"""
)

# ARGV: prefix, program filter ("1" | ""), program, kind filter ("1" | ""), kind, limit
# -> {{id, program, kind, payload, cursor, created_at, done}, ...}, newest created first (ties: id
# descending, as SQLite orders), walking geojobs:all in pages until `limit` match.
LIST_GEO_JOBS = """
local p = ARGV[1]
local limit = tonumber(ARGV[6])
local all = p .. 'geojobs:all'
local out = {}
local start = 0
while #out < limit do
  local ids = redis.call('ZREVRANGE', all, start, start + 199)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local job = redis.call('HMGET', p .. 'geojob:' .. id, 'program', 'kind', 'payload', 'cursor', 'created_at', 'done')
    if job[1] and (ARGV[2] == '' or job[1] == ARGV[3]) and (ARGV[4] == '' or job[2] == ARGV[5]) then
      out[#out + 1] = {id, job[1], job[2], job[3], job[4], job[5], job[6]}
      if #out >= limit then break end
    end
  end
  start = start + 200
end
return out
"""

# Vouchers: voucher:<key> hash {data (voucher JSON), tag}, the key being the JSON [kind, id];
# vserial:<serial> -> that key; cvouchers:<card>, a list of a card's voucher keys, oldest first.
# A voucher's serial is in serialtag like a card's: serials_updated_since and pass_targets see it.
# ARGV: prefix, key, serial, card ("" = none), data json, now, entries json [e, ...] (as add_entry)
# -> {"exists", data, tag} | {"created", tag} | {"conflict"} (the serial is a card's or another voucher's)
CREATE_VOUCHER = (
    _ADD_ENTRY
    + """
local p, vkey, serial = ARGV[1], ARGV[2], ARGV[3]
local key = p .. 'voucher:' .. vkey
local stored = redis.call('HMGET', key, 'data', 'tag')
if stored[1] then return {'exists', stored[1], stored[2]} end
if redis.call('EXISTS', p .. 'vserial:' .. serial, p .. 'serial:' .. serial) > 0 then return {'conflict'} end
local stag = string.format('%d', redis.call('INCR', p .. 'tag'))
redis.call('HSET', key, 'data', ARGV[5], 'tag', stag)
redis.call('SET', p .. 'vserial:' .. serial, vkey)
redis.call('HSET', p .. 'serialtag', serial, stag)
if ARGV[4] ~= '' then redis.call('RPUSH', p .. 'cvouchers:' .. ARGV[4], vkey) end
for _, e in ipairs(cjson.decode(ARGV[7])) do add_entry(p, p .. 'outbox', ARGV[6], e) end
return {'created', stag}
"""
)

# ARGV: prefix, key, serial, expected tag, data json, now, entries json -> the new tag, or "" when the
# stored tag is not the expected one (or the voucher is gone): nothing written.
UPDATE_VOUCHER = (
    _ADD_ENTRY
    + """
local p = ARGV[1]
local key = p .. 'voucher:' .. ARGV[2]
if redis.call('HGET', key, 'tag') ~= ARGV[4] then return '' end
local stag = string.format('%d', redis.call('INCR', p .. 'tag'))
redis.call('HSET', key, 'data', ARGV[5], 'tag', stag)
redis.call('HSET', p .. 'serialtag', ARGV[3], stag)
for _, e in ipairs(cjson.decode(ARGV[7])) do add_entry(p, p .. 'outbox', ARGV[6], e) end
return stag
"""
)

# ARGV: prefix, key -> {{data, tag}, ...} of the keys listed in cvouchers:<card> (ARGV[2] = card)
CARD_VOUCHERS = """
local p = ARGV[1]
local keys = redis.call('LRANGE', p .. 'cvouchers:' .. ARGV[2], 0, -1)
local out = {}
for _, vkey in ipairs(keys) do
  local v = redis.call('HMGET', p .. 'voucher:' .. vkey, 'data', 'tag')
  if v[1] then out[#out + 1] = {v[1], v[2]} end
end
return out
"""

# Bulk import jobs: importjob:<id> hash {program, state, rows, done, created_at, updated_at, meta};
# importerrs:<id>, a list of error JSON; importrows:<id>, hash chunk index -> JSON array of its rows;
# importres:<id>, a list of result JSON [account, number] in row order; importacc:<id>, hash of the
# accounts with a result (one result per account); importjobs:open, a zset by created_at of the ids
# of jobs not done or failed (erase_member edits their rows).
# ARGV: prefix, id, program, state, rows, done, created_at, updated_at, meta json, errors json [error
# json, ...], then the chunks' JSON in order -> 1 created | 0 the id exists
# A job done or failed is in jobs:finished as "i:<id>" (_JOB_FINISHED).
CREATE_IMPORT_JOB = (
    _JOB_FINISHED
    + """
local p, id = ARGV[1], ARGV[2]
local key = p .. 'importjob:' .. id
if redis.call('EXISTS', key) == 1 then return 0 end
redis.call('HSET', key, 'program', ARGV[3], 'state', ARGV[4], 'rows', ARGV[5], 'done', ARGV[6],
  'created_at', ARGV[7], 'updated_at', ARGV[8], 'meta', ARGV[9])
local errors = cjson.decode(ARGV[10])
for i = 1, #errors, 500 do
  redis.call('RPUSH', p .. 'importerrs:' .. id, unpack(errors, i, math.min(i + 499, #errors)))
end
local rows = p .. 'importrows:' .. id
for i = 11, #ARGV do redis.call('HSET', rows, tostring(i - 11), ARGV[i]) end
if ARGV[4] ~= 'done' and ARGV[4] ~= 'failed' then
  redis.call('ZADD', p .. 'importjobs:open', ARGV[7], id)
else
  import_job_finished(p, id, ARGV[7])
end
return 1
"""
)

# ARGV: prefix, id, done, now, state ("" = unchanged), results json [[account, result json], ...],
# errors json [error json, ...] -> 1 | 0 (no such job: nothing written)
# A job done or failed loses its rows (personal data), leaves importjobs:open and enters jobs:finished.
ADVANCE_IMPORT_JOB = (
    _JOB_FINISHED
    + """
local p, id = ARGV[1], ARGV[2]
local key = p .. 'importjob:' .. id
if redis.call('EXISTS', key) == 0 then return 0 end
if ARGV[5] ~= '' then
  redis.call('HSET', key, 'done', ARGV[3], 'updated_at', ARGV[4], 'state', ARGV[5])
else
  redis.call('HSET', key, 'done', ARGV[3], 'updated_at', ARGV[4])
end
local seen, results = p .. 'importacc:' .. id, p .. 'importres:' .. id
for _, r in ipairs(cjson.decode(ARGV[6])) do
  if redis.call('HSETNX', seen, r[1], '1') == 1 then redis.call('RPUSH', results, r[2]) end
end
local errors = cjson.decode(ARGV[7])
for i = 1, #errors, 500 do
  redis.call('RPUSH', p .. 'importerrs:' .. id, unpack(errors, i, math.min(i + 499, #errors)))
end
if ARGV[5] == 'done' or ARGV[5] == 'failed' then
  redis.call('DEL', p .. 'importrows:' .. id)
  redis.call('ZREM', p .. 'importjobs:open', id)
  import_job_finished(p, id, redis.call('HGET', key, 'created_at'))
end
return 1
"""
)

# ARGV: prefix, before, limit -> how many jobs were forgotten
# The oldest `limit` entries of jobs:finished created before `before`: each job still finished goes
# with every key and index entry of it (an entry whose job is gone, or no longer finished, only
# leaves the index). UNLINK: a big import job's results are freed off the main thread.
FORGET_FINISHED_JOBS = """
local p = ARGV[1]
local index = p .. 'jobs:finished'
local members = redis.call('ZRANGEBYSCORE', index, '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local forgotten = 0
for _, member in ipairs(members) do
  redis.call('ZREM', index, member)
  local kind, id = string.sub(member, 1, 2), string.sub(member, 3)
  if kind == 'g:' then
    local key = p .. 'geojob:' .. id
    local job = redis.call('HMGET', key, 'kind', 'done')
    if job[2] == '1' and job[1] ~= 'campaigns' and string.sub(id, 1, 10) ~= 'campaigns:' then
      redis.call('DEL', key)
      redis.call('ZREM', p .. 'geojobs', id)
      redis.call('ZREM', p .. 'geojobs:all', id)
      forgotten = forgotten + 1
    end
  elseif kind == 'i:' then
    local key = p .. 'importjob:' .. id
    local state = redis.call('HGET', key, 'state')
    if state == 'done' or state == 'failed' then
      redis.call('UNLINK', key, p .. 'importerrs:' .. id, p .. 'importrows:' .. id, p .. 'importres:' .. id,
        p .. 'importacc:' .. id)
      redis.call('ZREM', p .. 'importjobs:open', id)
      forgotten = forgotten + 1
    end
  end
end
return forgotten
"""

# ARGV: prefix, number, expected tag, data json (the erased card), serial, program, phone ("" = none),
# now, entries json [e, ...] (as add_entry), enroll webhook coalescing key, open import job ids json
# (importjobs:open as read, in its order), row edits json [[job id, chunk index, sha1 of the chunk
# read, chunk json without the personal data], ...]
# -> the card's new tag, or "" when the card's tag, the open jobs or an edited chunk changed since
# the adapter read them (nothing written: it reads again). One step erases the member: the card,
# its consents, alerts, app tokens and phone-index entry, its enroll webhook waiting unclaimed, the
# personal data of its rows in open import jobs; then its fanout is added.
ERASE_MEMBER = (
    _ADD_ENTRY
    + """
local p, number = ARGV[1], ARGV[2]
local card_key = p .. 'card:' .. number
if redis.call('HGET', card_key, 'tag') ~= ARGV[3] then return '' end
local open = redis.call('ZRANGE', p .. 'importjobs:open', 0, -1)
local read = cjson.decode(ARGV[11])
if #open ~= #read then return '' end
for i, id in ipairs(open) do
  if read[i] ~= id then return '' end
end
local edits = cjson.decode(ARGV[12])
for _, edit in ipairs(edits) do
  local chunk = redis.call('HGET', p .. 'importrows:' .. edit[1], edit[2])
  if not chunk or redis.sha1hex(chunk) ~= edit[3] then return '' end
end
local stag = string.format('%d', redis.call('INCR', p .. 'tag'))
redis.call('HSET', card_key, 'data', ARGV[4], 'tag', stag)
redis.call('HSET', p .. 'serialtag', ARGV[5], stag)
redis.call('DEL', p .. 'consents:' .. number, p .. 'alerts:' .. number)
if ARGV[7] ~= '' then
  local phones = p .. 'phones:' .. ARGV[6]
  if redis.call('HGET', phones, ARGV[7]) == number then redis.call('HDEL', phones, ARGV[7]) end
end
local tokens = p .. 'apptok'
for _, token in ipairs(redis.call('SMEMBERS', p .. 'cardtoks:' .. number)) do
  local value = redis.call('HGET', tokens, token)
  if value and cjson.decode(value).card == number then redis.call('HDEL', tokens, token) end
end
redis.call('DEL', p .. 'cardtoks:' .. number)
local marker = p .. 'pending:' .. ARGV[10]
local waiting = redis.call('GET', marker)
if waiting then
  -- unclaimed (claiming deletes the marker): in no consumer's pending list, so XDEL is enough
  redis.call('XDEL', p .. 'outbox', waiting)
  redis.call('ZREM', p .. 'outbox:ages', 's:' .. waiting)
  redis.call('DEL', marker)
end
for _, edit in ipairs(edits) do redis.call('HSET', p .. 'importrows:' .. edit[1], edit[2], edit[4]) end
for _, e in ipairs(cjson.decode(ARGV[9])) do add_entry(p, p .. 'outbox', ARGV[8], e) end
return stag
"""
)
