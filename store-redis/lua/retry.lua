-- retry: makes one delivery of an account pending and due at `now` with a manual trigger,
-- whatever its state (a live lease is broken).
-- ARGV: [2] account, [3] delivery id, [4] now.
-- Returns the delivery hash (field, value, ...), or nil when it is not the account's.
local dk = Q .. 'dlv:' .. ARGV[3]
local d = redis.call('HMGET', dk, 'account', 'endpoint')
if d[1] ~= ARGV[2] then
  return false
end
requeue(ARGV[3], d[2], ARGV[4])
return redis.call('HGETALL', dk)
