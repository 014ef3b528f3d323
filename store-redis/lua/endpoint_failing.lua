-- endpoint_failing: starts an endpoint's failure clock at ARGV[3] unless it runs already.
-- ARGV: [2] endpoint id, [3] failure time (ms). Returns the clock's start, or false when the
-- endpoint does not exist.
local k = Q .. 'ep:' .. ARGV[2]
if redis.call('EXISTS', k) == 0 then
  return false
end
redis.call('HSETNX', k, 'fs', ARGV[3])
return redis.call('HGET', k, 'fs')
