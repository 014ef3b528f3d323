-- recover: re-queues (as retry does) every failed delivery of an endpoint created at or after
-- a time. ARGV: [2] account, [3] endpoint id, [4] lower lex bound of the endpoint's delivery
-- index ('[<time>:'), [5] now. Returns how many.
local n = 0
for _, m in ipairs(redis.call('ZRANGEBYLEX', Q .. 'epd:' .. ARGV[3], ARGV[4], '+')) do
  local id = member_id(m)
  local d = redis.call('HMGET', Q .. 'dlv:' .. id, 'account', 'status')
  if d[1] == ARGV[2] and d[2] == 'failed' then
    requeue(id, ARGV[3], ARGV[5])
    n = n + 1
  end
end
return n
