-- settle: for each item, records an attempt and moves the delivery on, only if the lease is still
-- current. Concurrent settles share one call (see `group.rs`); the items are settled one after
-- the other, exactly as if each were a call of its own.
-- ARGV: [2] retention (ms), then per item: delivery id, lease id, next status, next due time
--       ('' when terminal), attempt start, attempt JSON.
-- Returns per item '1', '0' (lease lost: nothing changed) or '!<error>' (that item failed).
local ttl = ARGV[2]

local function settle(id, lease, status, next_at, started, attempt)
  if lease == '' then
    return '0'
  end
  local dk = Q .. 'dlv:' .. id
  local d = redis.call('HMGET', dk, 'status', 'lease', 'endpoint', 'okey', 'attempts', 'lz')
  if d[1] ~= 'pending' or d[2] ~= lease then
    return '0'
  end
  release(id, d[3], d[6])
  redis.call('HSET', dk, 'status', status, 'attempts', (tonumber(d[5]) or 0) + 1,
    'next_at', next_at, 'last_at', started, 'lease', '', 'due_at', '', 'trigger', 'scheduled')
  if status == 'pending' then
    place(id, d[3], d[4], next_at)
  else
    finish(id, d[3], d[4])
  end
  local ak = Q .. 'att:' .. id
  redis.call('RPUSH', ak, attempt)
  redis.call('PEXPIRE', ak, ttl)
  return '1'
end

local out = {}
for i = 3, #ARGV, 6 do
  local ok, r = pcall(settle, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4],
    ARGV[i + 5])
  if ok then
    out[#out + 1] = r
  else
    out[#out + 1] = '!' .. error_text(r)
  end
end
return out
