-- account_purge: removes every endpoint, event, delivery, attempt and idempotency key of an
-- account from the pipeline. ARGV: [2] account. Returns nothing useful.
local acct = ARGV[2]
for _, m in ipairs(redis.call('ZRANGE', Q .. 'eps:' .. acct, 0, -1)) do
  local ep = member_id(m)
  redis.call('DEL', Q .. 'ep:' .. ep, Q .. 'park:' .. ep, Q .. 'epd:' .. ep, Q .. 'lz:' .. ep,
    Q .. 'side:' .. ep)
  redis.call('ZREM', Q .. 'sides', ep)
  redis.call('ZREM', Q .. 'holds', ep)
end
for _, m in ipairs(redis.call('ZRANGE', Q .. 'dlvs:' .. acct, 0, -1)) do
  local id = member_id(m)
  local d = redis.call('HMGET', Q .. 'dlv:' .. id, 'endpoint', 'okey')
  redis.call('ZREM', DUE, id)
  redis.call('SREM', Q .. 'pending', id)
  if d[1] then
    redis.call('ZREM', Q .. 'park:' .. d[1], id)
    if d[2] and d[2] ~= '' then
      redis.call('ZREM', oq_key(d[1], d[2]), id)
    end
  end
  redis.call('DEL', Q .. 'dlv:' .. id, Q .. 'att:' .. id)
end
for _, m in ipairs(redis.call('ZRANGE', Q .. 'evs:' .. acct, 0, -1)) do
  local id = member_id(m)
  local key = redis.call('HGET', Q .. 'ev:' .. id, 'k')
  if key and key ~= '' then
    redis.call('DEL', Q .. 'idem:' .. acct .. ':' .. key)
  end
  redis.call('DEL', Q .. 'ev:' .. id, Q .. 'evd:' .. id)
  redis.call('ZREM', Q .. 'evall', m)
end
redis.call('DEL', Q .. 'eps:' .. acct, Q .. 'dlvs:' .. acct, Q .. 'evs:' .. acct)
return 1
