-- doc_delete: removes a catalog record and its list entry.
-- KEYS: [1] record hash, [2] list index. Returns 1, or 0 when it did not exist.
local old = redis.call('HGET', KEYS[1], 'm')
if not old then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], old)
return 1
