-- settle: records an attempt and moves the delivery on, only if the lease is still current.
-- ARGV: [2] delivery id, [3] lease id, [4] next status, [5] next due time ('' when terminal),
--       [6] attempt start, [7] attempt JSON, [8] retention (ms).
-- Returns 1, or 0 (lease lost: nothing changed).
local id, lease, status = ARGV[2], ARGV[3], ARGV[4]
if lease == '' then
  return 0
end
local dk = Q .. 'dlv:' .. id
local d = redis.call('HMGET', dk, 'status', 'lease', 'endpoint', 'okey')
if d[1] ~= 'pending' or d[2] ~= lease then
  return 0
end
release(id, d[3])
redis.call('HINCRBY', dk, 'attempts', 1)
redis.call('HSET', dk, 'status', status, 'next_at', ARGV[5], 'last_at', ARGV[6], 'lease', '',
  'due_at', '', 'trigger', 'scheduled')
if status == 'pending' then
  place(id, d[3], d[4], ARGV[5])
else
  finish(id, d[3], d[4])
end
local ak = Q .. 'att:' .. id
redis.call('RPUSH', ak, ARGV[7])
redis.call('PEXPIRE', ak, ARGV[8])
return 1
