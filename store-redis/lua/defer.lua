-- defer: gives a claimed delivery back without an attempt, due at `until`, its attempt count
-- and trigger unchanged; only if the lease is still current.
-- ARGV: [2] delivery id, [3] lease id, [4] until. Returns 1, or 0 (lease lost).
local id, lease = ARGV[2], ARGV[3]
if lease == '' then
  return 0
end
local dk = Q .. 'dlv:' .. id
local d = redis.call('HMGET', dk, 'status', 'lease', 'endpoint', 'okey', 'lz')
if d[1] ~= 'pending' or d[2] ~= lease then
  return 0
end
release(id, d[3], d[5])
redis.call('HSET', dk, 'next_at', ARGV[4], 'lease', '', 'due_at', '')
place(id, d[3], d[4], ARGV[4])
return 1
