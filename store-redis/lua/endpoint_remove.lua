-- endpoint_remove: removes an endpoint of an account and cancels its pending deliveries
-- (leased ones too: their lease is cleared, so a late settle is lease-lost).
-- ARGV: [2] endpoint id, [3] account. Returns 1, or 0 when it is not the account's.
local id, acct = ARGV[2], ARGV[3]
local k = Q .. 'ep:' .. id
local cur = redis.call('HMGET', k, 'account', 'm')
if cur[1] ~= acct then
  return 0
end
redis.call('DEL', k, Q .. 'park:' .. id, Q .. 'lz:' .. id, Q .. 'side:' .. id)
redis.call('ZREM', Q .. 'sides', id)
redis.call('ZREM', Q .. 'holds', id)
redis.call('ZREM', Q .. 'eps:' .. acct, cur[2])
for _, m in ipairs(redis.call('ZRANGE', Q .. 'epd:' .. id, 0, -1)) do
  local did = member_id(m)
  local dk = Q .. 'dlv:' .. did
  local d = redis.call('HMGET', dk, 'status', 'okey')
  if d[1] == 'pending' then
    redis.call('HSET', dk, 'status', 'cancelled', 'next_at', '', 'lease', '', 'due_at', '')
    redis.call('ZREM', DUE, did)
    redis.call('SREM', Q .. 'pending', did)
    if d[2] and d[2] ~= '' then
      redis.call('ZREM', oq_key(id, d[2]), did)
    end
  end
end
return 1
