-- endpoint_put: creates or updates an endpoint.
-- ARGV: [2] 'create' | 'update', [3] endpoint id, [4] account, [5] enabled ('1' | '0'),
--       [6] index member, [7] endpoint JSON, [8] ordered ('1' | '0'),
--       [9] maxConcurrency ('' when none), [10] rateLimit ('' when none).
-- Returns 1, or 0 (create: the id is taken; update: not this account's endpoint).
-- Enabling an endpoint moves its parked deliveries back into the due index; disabling parks
-- them lazily (claims and next_due park what they meet).
local mode, id, acct, enabled = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local k = Q .. 'ep:' .. id
local index = Q .. 'eps:' .. acct
local cur = redis.call('HMGET', k, 'account', 'enabled', 'm')
if mode == 'create' then
  if cur[1] then
    return 0
  end
elseif cur[1] ~= acct then
  return 0
else
  redis.call('ZREM', index, cur[3])
end
redis.call('HSET', k, 'account', acct, 'enabled', enabled, 'm', ARGV[6], 'j', ARGV[7],
  'ordered', ARGV[8], 'mc', ARGV[9], 'rl', ARGV[10])
redis.call('ZADD', index, 0, ARGV[6])
if enabled == '1' and cur[2] ~= '1' then
  unpark(id)
end
return 1
