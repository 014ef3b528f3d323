-- enqueue: for each event, stores it and one pending delivery per target, atomically.
-- Concurrent enqueues share one call (see `group.rs`); the events are stored one after the
-- other, exactly as if each were a call of its own (so a second event with the id or the
-- idempotency key of an earlier one of the same call is answered with the earlier's receipt).
-- ARGV: [2] retention (ms), [3] mode: 'each' (the events of concurrent enqueues, each stored
--       or refused on its own) or 'all' (one batch: stored all or nothing), then per event: event id, account, idempotency key ('' = none),
--       event JSON, event index member, now, queue id ('' = none), first attempt's trigger
--       ('scheduled' | 'manual'), number of deliveries n, then
--       n times: delivery id, endpoint id, delivery index member.
-- The index entries of all the call's events are added per index at the end, and the new
-- deliveries are scheduled after that, only for the events whose entries were all added; an event
-- whose commands fail gets an error answer and no scheduled delivery.
-- A call that stored deliveries announces them once on the work channel (see `work_signal`),
-- so no separate PUBLISH round trip is needed.
-- Returns per event {'new' | 'dup', event id, {delivery ids}}, {'unknown', event id, {}} (a target
-- is not an endpoint of the event's account: nothing of it was written), or '!<error>' (that event
-- failed). In mode 'all' every event is checked before any is written, exactly as storing them
-- in turn would answer it (a duplicate of a stored or of an earlier event needs no known
-- targets): if one would be 'unknown', nothing is written and every event answers 'unknown'.
local ttl = ARGV[2]

local function receipt(id)
  return {'dup', id, redis.call('LRANGE', Q .. 'evd:' .. id, 0, -1)}
end

-- The endpoints met ({account, enabled, ordered}; account false: no such endpoint); enqueue
-- never changes them.
local endpoints = {}
local function endpoint(ep)
  local e = endpoints[ep]
  if not e then
    local f = redis.call('HMGET', Q .. 'ep:' .. ep, 'account', 'enabled', 'ordered')
    e = {account = f[1], enabled = f[2] == '1', ordered = f[3] == '1'}
    endpoints[ep] = e
  end
  return e
end

-- Stores the event at ARGV[a ..] and its deliveries; returns its answer, the index entries it
-- needs ({key, member, ...}) and its deliveries to schedule ({id, endpoint, queue key, due}, ...).
local function store(a)
  local ev_id, acct, idem, json, m = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local now, queue, trigger, n = ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], tonumber(ARGV[a + 8])
  local ek = Q .. 'ev:' .. ev_id
  if redis.call('EXISTS', ek) == 1 then
    return receipt(ev_id)
  end
  local ik = Q .. 'idem:' .. acct .. ':' .. idem
  if idem ~= '' then
    local orig = redis.call('GET', ik)
    -- A key that outlived its event (an interrupted purge) is free again.
    if orig and redis.call('EXISTS', Q .. 'ev:' .. orig) == 1 then
      return receipt(orig)
    end
  end
  -- Every target must be an endpoint of the event's account; otherwise nothing is written.
  for i = a + 9, a + 6 + 3 * n, 3 do
    if endpoint(ARGV[i + 1]).account ~= acct then
      return {'unknown', ev_id, {}}
    end
  end
  if idem ~= '' then
    redis.call('SET', ik, ev_id, 'PX', ttl)
  end

  redis.call('HSET', ek, 'a', acct, 'k', idem, 'j', json)
  redis.call('PEXPIRE', ek, ttl)
  local entries = {Q .. 'evs:' .. acct, m, Q .. 'evall', m}
  local ids, placements = {}, {}
  for i = a + 9, a + 6 + 3 * n, 3 do
    local id, ep, dm = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local okey = ''
    if queue ~= '' and endpoint(ep).ordered then
      okey = queue
    end
    local dk = Q .. 'dlv:' .. id
    redis.call('HSET', dk, 'account', acct, 'event', ev_id, 'endpoint', ep, 'status', 'pending',
      'attempts', 0, 'next_at', now, 'last_at', '', 'created', now, 'lease', '', 'due_at', '',
      'trigger', trigger, 'okey', okey)
    redis.call('PEXPIRE', dk, ttl)
    local e = #entries
    entries[e + 1] = Q .. 'dlvs:' .. acct
    entries[e + 2] = dm
    entries[e + 3] = Q .. 'epd:' .. ep
    entries[e + 4] = dm
    ids[#ids + 1] = id
    placements[#placements + 1] = {id, ep, okey, now}
  end
  if n > 0 then
    local evd = Q .. 'evd:' .. ev_id
    call_chunked('RPUSH', evd, ids, 512)
    redis.call('PEXPIRE', evd, ttl)
  end
  return {'new', ev_id, ids}, entries, placements
end

-- Mode 'all': the check before any write.
if ARGV[3] == 'all' then
  local ids, keys, unknown = {}, {}, false
  local a = 4
  while a <= #ARGV do
    local ev_id, acct, idem, n = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 8])
    local dup = ids[ev_id] or redis.call('EXISTS', Q .. 'ev:' .. ev_id) == 1
    if not dup and idem ~= '' then
      local ik = acct .. ':' .. idem
      local orig = redis.call('GET', Q .. 'idem:' .. ik)
      dup = keys[ik] or (orig and redis.call('EXISTS', Q .. 'ev:' .. orig) == 1)
    end
    if not dup then
      for i = a + 9, a + 6 + 3 * n, 3 do
        if endpoint(ARGV[i + 1]).account ~= acct then
          unknown = true
        end
      end
      ids[ev_id] = true
      if idem ~= '' then
        keys[acct .. ':' .. idem] = true
      end
    end
    a = a + 9 + 3 * n
  end
  if unknown then
    local out = {}
    a = 4
    while a <= #ARGV do
      out[#out + 1] = {'unknown', ARGV[a], {}}
      a = a + 9 + 3 * tonumber(ARGV[a + 8])
    end
    return out
  end
end

local out = {}
-- Per event answered: its index entries and deliveries to schedule (new events only).
local pending = {}
-- Index key → {members = {0, member, ...}, events = {numbers of the events in `out`}}, and the
-- keys in the order met.
local indexes, index_order = {}, {}
-- Events per account, for trimming its indexes.
local accounts = {}
local events = 0
local a = 4
while a <= #ARGV do
  local ok, r, entries, placements = pcall(store, a)
  local k = #out + 1
  if ok then
    out[k] = r
    if entries then
      pending[k] = placements
      for i = 1, #entries, 2 do
        local key = entries[i]
        local ix = indexes[key]
        if not ix then
          ix = {members = {}, events = {}}
          indexes[key] = ix
          index_order[#index_order + 1] = key
        end
        ix.members[#ix.members + 1] = 0
        ix.members[#ix.members + 1] = entries[i + 1]
        if ix.events[#ix.events] ~= k then
          ix.events[#ix.events + 1] = k
        end
      end
    end
  else
    out[k] = '!' .. error_text(r)
  end
  local acct = ARGV[a + 1]
  accounts[acct] = (accounts[acct] or 0) + 1
  events = events + 1
  a = a + 9 + 3 * tonumber(ARGV[a + 8])
end

-- One ZADD per index; an index that cannot be written fails the events that needed it.
for _, key in ipairs(index_order) do
  local ix = indexes[key]
  local ok, err = pcall(call_chunked, 'ZADD', key, ix.members, 512)
  if not ok then
    for _, k in ipairs(ix.events) do
      pending[k] = nil
      out[k] = '!' .. error_text(err)
    end
  end
end

-- A new delivery is in no index yet: `place` without the removals. Only the head of an ordering
-- queue is scheduled.
local due = {}
local ids = {}
local created = false
for k = 1, #out do
  for _, p in ipairs(pending[k] or {}) do
    created = true
    local id, ep, okey, at = p[1], p[2], p[3], p[4]
    ids[#ids + 1] = id
    local head = true
    if okey ~= '' then
      local oq = oq_key(ep, okey)
      redis.call('ZADD', oq, 0, id)
      local first = redis.call('ZRANGE', oq, 0, 1)
      if first[1] ~= id then
        head = false
      elseif first[2] then
        -- A former head that now waits behind `id`.
        unschedule(first[2], ep)
      end
      if head and endpoint(ep).enabled then
        -- Scheduled now: a later event's delivery may take its place as head.
        redis.call('ZADD', DUE, at, id)
        head = false
      end
    end
    if head then
      if endpoint(ep).enabled then
        due[#due + 1] = at
        due[#due + 1] = id
      else
        redis.call('ZADD', Q .. 'park:' .. ep, at, id)
      end
    end
  end
end
call_chunked('ZADD', DUE, due, 512)
call_chunked('SADD', Q .. 'pending', ids, 512)
if created then
  redis.call('PUBLISH', Q .. 'work', '')
end
-- Trimming is housekeeping: an index it cannot read fails no event.
for acct, k in pairs(accounts) do
  pcall(trim, Q .. 'evs:' .. acct, 'ev:', 2 * k)
  pcall(trim, Q .. 'dlvs:' .. acct, 'dlv:', 2 * k)
end
pcall(trim, Q .. 'evall', 'ev:', 2 * events)
return out
