-- account_delete: removes an account record, its list entry and its API keys.
-- KEYS: [1] account record, [2] account index, [3] the account's key set.
-- ARGV: [1] key record base (`<prefix>{c}:key:`). Returns 1, or 0 when it did not exist.
for _, h in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  redis.call('DEL', ARGV[1] .. h)
end
redis.call('DEL', KEYS[3])
local old = redis.call('HGET', KEYS[1], 'm')
if not old then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], old)
return 1
