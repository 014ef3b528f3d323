-- api_key_delete: removes an API key of one scope and returns its record (empty if the scope
-- has no such key).
-- KEYS: [1] key hash record, [2] the scope's key set. ARGV: [1] hash.
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then
  return {}
end
local rec = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return rec
