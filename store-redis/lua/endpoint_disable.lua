-- endpoint_disable: disables an enabled endpoint, if its record is still the one the caller read
-- (a compare-and-set, so a change made meanwhile through the API is never overwritten).
-- ARGV: [2] endpoint id, [3] the record as read, [4] the record disabled.
-- Returns 1 (disabled), 0 (already disabled, or gone) or -1 (changed since it was read).
-- Disabling parks the endpoint's deliveries lazily (claims and next_due park what they meet).
local k = Q .. 'ep:' .. ARGV[2]
local cur = redis.call('HMGET', k, 'enabled', 'j')
if cur[1] ~= '1' then
  return 0
end
if cur[2] ~= ARGV[3] then
  return -1
end
redis.call('HSET', k, 'enabled', '0', 'j', ARGV[4])
return 1
