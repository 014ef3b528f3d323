-- claim: leases up to `max` pending deliveries due at `now`, oldest due first (ties on id),
-- leaving those of the endpoints in ARGV[6..] (the caller's skip list) due.
-- ARGV: [2] now, [3] max, [4] lease end (> now), [5] lease id base (random per call),
--       [6..] endpoint ids to skip.
-- A claim moves the delivery's due time to the lease end with a fresh lease id, so an expired
-- lease is simply due again. Deliveries of disabled (or removed) endpoints are parked on the way;
-- entries whose delivery finished or expired are dropped. Only heads of ordering queues are ever
-- in the due index, so ordered endpoints need no check here.
-- Returns {{delivery id, {delivery hash as field, value, ...}, event JSON, endpoint JSON}, ...}.
local now, max, lease_end, base = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local skip = {}
for i = 6, #ARGV do
  skip[ARGV[i]] = true
end
local out = {}
local n = 0
-- Entries looked at leave the range [-inf, now] (claimed, parked or dropped) except skipped
-- ones, which therefore are the first `skipped` entries of the range.
local skipped = 0
local budget = 2000
while #out < max and budget > 0 do
  local batch = redis.call('ZRANGEBYSCORE', DUE, '-inf', now, 'WITHSCORES', 'LIMIT', skipped, 64)
  if #batch == 0 then
    break
  end
  for i = 1, #batch, 2 do
    if #out >= max then
      break
    end
    budget = budget - 1
    local id, score = batch[i], batch[i + 1]
    local dk = Q .. 'dlv:' .. id
    local d = redis.call('HMGET', dk, 'status', 'endpoint', 'event', 'okey')
    if d[1] ~= 'pending' then
      redis.call('ZREM', DUE, id)
    elseif skip[d[2]] then
      skipped = skipped + 1
    else
      local epk = Q .. 'ep:' .. d[2]
      if redis.call('HGET', epk, 'enabled') ~= '1' then
        redis.call('ZREM', DUE, id)
        redis.call('ZADD', Q .. 'park:' .. d[2], score, id)
      else
        local ev = redis.call('HGET', Q .. 'ev:' .. d[3], 'j')
        if not ev then
          -- The event is past retention: there is nothing left to send.
          redis.call('HSET', dk, 'status', 'cancelled', 'next_at', '', 'lease', '', 'due_at', '')
          finish(id, d[2], d[4])
        else
          n = n + 1
          redis.call('HSET', dk, 'lease', base .. '.' .. n, 'due_at', score, 'next_at', lease_end)
          redis.call('ZADD', DUE, lease_end, id)
          out[#out + 1] = {id, redis.call('HGETALL', dk), ev, redis.call('HGET', epk, 'j')}
        end
      end
    end
  end
end
return out
