-- doc_put: creates or replaces a catalog record (account, site, event type) and its list entry.
-- KEYS: [1] record hash, [2] list index (same hash tag). ARGV: [1] 'create' | 'update',
-- [2] index member, [3] JSON. Returns 1, or 0 (create: taken; update: missing).
local old = redis.call('HGET', KEYS[1], 'm')
if ARGV[1] == 'create' then
  if old then
    return 0
  end
elseif not old then
  return 0
else
  redis.call('ZREM', KEYS[2], old)
end
redis.call('HSET', KEYS[1], 'm', ARGV[2], 'j', ARGV[3])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
return 1
