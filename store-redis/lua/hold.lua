-- hold: makes an endpoint's due deliveries wait until ARGV[3] (while it is failing). Claims park
-- the entries of a held endpoint they meet, so they stop passing over its backlog, and the
-- first claim after the hold ends makes them due again.
-- ARGV: [2] endpoint id, [3] until (ms). Returns 1, or 0 when the endpoint does not exist.
local id, untl = ARGV[2], ARGV[3]
local k = Q .. 'ep:' .. id
if redis.call('EXISTS', k) == 0 then
  return 0
end
local cur = tonumber(redis.call('HGET', k, 'hold') or '') or 0
if tonumber(untl) > cur then
  redis.call('HSET', k, 'hold', untl)
  redis.call('ZADD', Q .. 'holds', untl, id)
end
return 1
