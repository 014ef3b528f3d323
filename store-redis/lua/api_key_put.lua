-- api_key_put: stores an API key by hash, once (idempotent on the hash).
-- KEYS: [1] key hash record, [2] the set it joins (admin keys, or the account's keys).
-- ARGV: [1] hash, [2] display prefix, [3] account ('' for admin), [4] created, [5] name,
--       [6] read-only ('1'/'0'), [7] bootstrap ('1'/'0'), [8] expires ('' = never),
--       [9] last used ('' = never).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'prefix', ARGV[2], 'account', ARGV[3], 'created', ARGV[4],
  'name', ARGV[5], 'ro', ARGV[6], 'boot', ARGV[7], 'exp', ARGV[8], 'used', ARGV[9])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
