-- api_key_touch: sets an API key's last use, if the key still exists (never recreates it).
-- KEYS: [1] key hash record. ARGV: [1] time.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'used', ARGV[1])
return 1
