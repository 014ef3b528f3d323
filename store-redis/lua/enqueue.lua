-- enqueue: stores an event and one pending delivery per target, atomically.
-- ARGV: [2] event id, [3] account, [4] idempotency key ('' = none), [5] event JSON,
--       [6] event index member, [7] now, [8] retention (ms), [9] queue id ('' = none),
--       then per delivery: delivery id, endpoint id, delivery index member.
-- A new event with deliveries is announced on the work channel (see `work_signal`) from here, so
-- no separate PUBLISH round trip is needed.
-- Returns {'new' | 'dup', event id, {delivery ids}}.
local ev_id, acct, idem = ARGV[2], ARGV[3], ARGV[4]
local now, ttl, queue = ARGV[7], ARGV[8], ARGV[9]

local function receipt(id)
  return {'dup', id, redis.call('LRANGE', Q .. 'evd:' .. id, 0, -1)}
end

if redis.call('EXISTS', Q .. 'ev:' .. ev_id) == 1 then
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

local ek = Q .. 'ev:' .. ev_id
redis.call('HSET', ek, 'a', acct, 'k', idem, 'j', ARGV[5])
redis.call('PEXPIRE', ek, ttl)
redis.call('ZADD', Q .. 'evs:' .. acct, 0, ARGV[6])
redis.call('ZADD', Q .. 'evall', 0, ARGV[6])

local ids = {}
for i = 10, #ARGV, 3 do
  local id, ep, m = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local okey = ''
  if queue ~= '' and redis.call('HGET', Q .. 'ep:' .. ep, 'ordered') == '1' then
    okey = queue
  end
  local dk = Q .. 'dlv:' .. id
  redis.call('HSET', dk, 'account', acct, 'event', ev_id, 'endpoint', ep, 'status', 'pending',
    'attempts', 0, 'next_at', now, 'last_at', '', 'created', now, 'lease', '', 'due_at', '',
    'trigger', 'scheduled', 'okey', okey)
  redis.call('PEXPIRE', dk, ttl)
  redis.call('ZADD', Q .. 'dlvs:' .. acct, 0, m)
  redis.call('ZADD', Q .. 'epd:' .. ep, 0, m)
  redis.call('RPUSH', Q .. 'evd:' .. ev_id, id)
  place(id, ep, okey, now)
  ids[#ids + 1] = id
end
if #ids > 0 then
  redis.call('PEXPIRE', Q .. 'evd:' .. ev_id, ttl)
  redis.call('PUBLISH', Q .. 'work', '')
end
trim(Q .. 'evs:' .. acct, 'ev:')
trim(Q .. 'evall', 'ev:')
trim(Q .. 'dlvs:' .. acct, 'dlv:')
return {'new', ev_id, ids}
