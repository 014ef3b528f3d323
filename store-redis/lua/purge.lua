-- purge: deletes up to `max` of the oldest events that fired before a time, with their
-- deliveries, attempts and idempotency keys.
-- ARGV: [2] exclusive upper lex bound of the event index ('(<time>:'), [3] max.
-- Returns how many events were taken off the index.
local members = redis.call('ZRANGEBYLEX', Q .. 'evall', '-', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(members) do
  local ev_id = member_id(m)
  local ek = Q .. 'ev:' .. ev_id
  local e = redis.call('HMGET', ek, 'a', 'k')
  for _, id in ipairs(redis.call('LRANGE', Q .. 'evd:' .. ev_id, 0, -1)) do
    local dk = Q .. 'dlv:' .. id
    local d = redis.call('HMGET', dk, 'status', 'endpoint', 'okey')
    if d[1] == 'pending' then
      finish(id, d[2], d[3])
    end
    redis.call('DEL', dk, Q .. 'att:' .. id)
  end
  if e[1] then
    redis.call('ZREM', Q .. 'evs:' .. e[1], m)
    if e[2] and e[2] ~= '' then
      redis.call('DEL', Q .. 'idem:' .. e[1] .. ':' .. e[2])
    end
  end
  redis.call('DEL', ek, Q .. 'evd:' .. ev_id)
  redis.call('ZREM', Q .. 'evall', m)
end
return #members
