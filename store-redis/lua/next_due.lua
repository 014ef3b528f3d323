-- next_due: the earliest due time of a claimable delivery (leased ones count at lease end).
-- Entries of finished deliveries are dropped and those of disabled endpoints parked on the way.
-- The end of the earliest endpoint hold counts too (its parked deliveries are due then).
-- Returns the time as a string, or nil when nothing is pending.
local hold = redis.call('ZRANGE', Q .. 'holds', 0, 0, 'WITHSCORES')[2]
-- So does the earliest set-aside entry (another process may take it).
local aside = redis.call('ZRANGE', Q .. 'sides', 0, 0, 'WITHSCORES')[2]
if aside and (not hold or tonumber(aside) < tonumber(hold)) then
  hold = aside
end
for _ = 1, 1000 do
  local first = redis.call('ZRANGE', DUE, 0, 0, 'WITHSCORES')
  if #first == 0 then
    return hold or false
  end
  local id, score = first[1], first[2]
  local d = redis.call('HMGET', Q .. 'dlv:' .. id, 'status', 'endpoint')
  if d[1] ~= 'pending' then
    redis.call('ZREM', DUE, id)
  elseif redis.call('HGET', Q .. 'ep:' .. d[2], 'enabled') ~= '1' then
    redis.call('ZREM', DUE, id)
    redis.call('ZADD', Q .. 'park:' .. d[2], score, id)
  else
    if hold and tonumber(hold) < tonumber(score) then
      return hold
    end
    return score
  end
end
local first = redis.call('ZRANGE', DUE, 0, 0, 'WITHSCORES')
return first[2] or hold or false
