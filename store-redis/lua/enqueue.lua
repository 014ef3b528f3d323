-- enqueue: for each event, stores it and one pending delivery per target, atomically.
-- Concurrent enqueues share one call (see `group.rs`); the events are stored one after the
-- other, exactly as if each were a call of its own (so a second event with the id or the
-- idempotency key of an earlier one of the same call is answered with the earlier's receipt).
-- ARGV: [2] retention (ms), then per event: event id, account, idempotency key ('' = none),
--       event JSON, event index member, now, queue id ('' = none), number of deliveries n, then
--       n times: delivery id, endpoint id, delivery index member.
-- A call that created deliveries announces them once on the work channel (see `work_signal`),
-- so no separate PUBLISH round trip is needed.
-- Returns per event {'new' | 'dup', event id, {delivery ids}}, or '!<error>' (that event failed).
local ttl = ARGV[2]

local function receipt(id)
  return {'dup', id, redis.call('LRANGE', Q .. 'evd:' .. id, 0, -1)}
end

-- The flags of the endpoints met ({enabled, ordered}); enqueue never changes them.
local endpoints = {}
local function endpoint(ep)
  local e = endpoints[ep]
  if not e then
    local f = redis.call('HMGET', Q .. 'ep:' .. ep, 'enabled', 'ordered')
    e = {enabled = f[1] == '1', ordered = f[2] == '1'}
    endpoints[ep] = e
  end
  return e
end

local created = false

-- ARGV[a .. a + 7 + 3n] is one event.
local function enqueue(a)
  local ev_id, acct, idem, json, m = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local now, queue, n = ARGV[a + 5], ARGV[a + 6], tonumber(ARGV[a + 7])
  local ek = Q .. 'ev:' .. ev_id
  if redis.call('EXISTS', ek) == 1 then
    return receipt(ev_id)
  end
  if idem ~= '' then
    local ik = Q .. 'idem:' .. acct .. ':' .. idem
    if not redis.call('SET', ik, ev_id, 'NX', 'PX', ttl) then
      local orig = redis.call('GET', ik)
      if orig and redis.call('EXISTS', Q .. 'ev:' .. orig) == 1 then
        return receipt(orig)
      end
      -- The key outlived its event (an interrupted purge): it is free again.
      redis.call('SET', ik, ev_id, 'PX', ttl)
    end
  end

  redis.call('HSET', ek, 'a', acct, 'k', idem, 'j', json)
  redis.call('PEXPIRE', ek, ttl)
  redis.call('ZADD', Q .. 'evs:' .. acct, 0, m)
  redis.call('ZADD', Q .. 'evall', 0, m)
  if n == 0 then
    return {'new', ev_id, {}}
  end

  local ids, members, due = {}, {}, {}
  for i = a + 8, a + 5 + 3 * n, 3 do
    local id, ep, dm = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local e = endpoint(ep)
    local okey = ''
    if queue ~= '' and e.ordered then
      okey = queue
    end
    local dk = Q .. 'dlv:' .. id
    redis.call('HSET', dk, 'account', acct, 'event', ev_id, 'endpoint', ep, 'status', 'pending',
      'attempts', 0, 'next_at', now, 'last_at', '', 'created', now, 'lease', '', 'due_at', '',
      'trigger', 'scheduled', 'okey', okey)
    redis.call('PEXPIRE', dk, ttl)
    redis.call('ZADD', Q .. 'epd:' .. ep, 0, dm)
    ids[#ids + 1] = id
    members[#members + 1] = 0
    members[#members + 1] = dm
    -- A new delivery is in no index yet: `place` without the removals. Only the head of an
    -- ordering queue is scheduled.
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
    end
    if head then
      if e.enabled then
        due[#due + 1] = now
        due[#due + 1] = id
      else
        redis.call('ZADD', Q .. 'park:' .. ep, now, id)
      end
    end
  end
  call_chunked('ZADD', Q .. 'dlvs:' .. acct, members, 512)
  call_chunked('ZADD', DUE, due, 512)
  local evd = Q .. 'evd:' .. ev_id
  call_chunked('RPUSH', evd, ids, 512)
  redis.call('PEXPIRE', evd, ttl)
  created = true
  return {'new', ev_id, ids}
end

local out = {}
-- Events per account, for trimming its indexes.
local accounts = {}
local events = 0
local a = 3
while a <= #ARGV do
  local ok, r = pcall(enqueue, a)
  if ok then
    out[#out + 1] = r
  else
    out[#out + 1] = '!' .. error_text(r)
  end
  local acct = ARGV[a + 1]
  accounts[acct] = (accounts[acct] or 0) + 1
  events = events + 1
  a = a + 8 + 3 * tonumber(ARGV[a + 7])
end
if created then
  redis.call('PUBLISH', Q .. 'work', '')
end
for acct, k in pairs(accounts) do
  trim(Q .. 'evs:' .. acct, 'ev:', 2 * k)
  trim(Q .. 'dlvs:' .. acct, 'dlv:', 2 * k)
end
trim(Q .. 'evall', 'ev:', 2 * events)
return out
