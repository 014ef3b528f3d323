-- event_data: replaces the JSON of an event of an account (its data stored in another form).
-- KEYS: [1] the event hash. ARGV: [1] account, [2] event JSON.
-- Returns 1, or 0 when there is no such event of this account.
if redis.call('HGET', KEYS[1], 'a') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'j', ARGV[2])
return 1
