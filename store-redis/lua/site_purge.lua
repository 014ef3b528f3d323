-- site_purge: removes every site of an account.
-- KEYS: [1] the account's site index. ARGV: [1] site record base (`<prefix>{a:<account>}:site:`).
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  redis.call('DEL', ARGV[1] .. string.sub(m, 18))
end
redis.call('DEL', KEYS[1])
return 1
