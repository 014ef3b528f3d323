-- Shared prelude of every pipeline script (prepended at compile time by `scripts.rs`).
--
-- KEYS[1] is the due index `<prefix>{q}:due`; ARGV[1] is the pipeline key base `<prefix>{q}:`.
-- Every key a pipeline script touches starts with that base, so all of them hash to the slot of
-- the `{q}` tag: the scripts are valid on Redis Cluster. Times are milliseconds passed in by the
-- caller (never Redis TIME). Empty strings stand for "none" in delivery hashes.
local Q = ARGV[1]
local DUE = KEYS[1]

-- The id part of an index member `<16 hex digits of time>:<id>`.
local function member_id(m)
  return string.sub(m, 18)
end

-- Sets due entry `id` of endpoint `ep` (due at `score`) aside: out of the due index, in
-- `side:<ep>`, with the endpoint in `sides` (scored by its earliest set-aside entry). The next
-- claim that may take the endpoint's deliveries puts them back.
local function set_aside(id, ep, score)
  redis.call('ZREM', DUE, id)
  redis.call('ZADD', Q .. 'side:' .. ep, score, id)
  redis.call('ZADD', Q .. 'sides', 'LT', score, ep)
end

-- Puts the earliest `k` set-aside entries of endpoint `ep` back into the due index (all of them
-- when `k` is negative).
local function unside(ep, k)
  local side = Q .. 'side:' .. ep
  local last = -1
  if k >= 0 then
    last = k - 1
  end
  local entries = redis.call('ZRANGE', side, 0, last, 'WITHSCORES')
  for i = 1, #entries, 2 do
    redis.call('ZADD', DUE, entries[i + 1], entries[i])
    redis.call('ZREM', side, entries[i])
  end
  local first = redis.call('ZRANGE', side, 0, 0, 'WITHSCORES')
  if #first == 0 then
    redis.call('ZREM', Q .. 'sides', ep)
  else
    redis.call('ZADD', Q .. 'sides', first[2], ep)
  end
end

-- A pending delivery's entry is in at most one of the due index, `side:<endpoint>` and
-- `park:<endpoint>` (every move between them removes it from where it was), so once it is found
-- in (or newly added to) the due index, the other two need no look.

-- Makes delivery `id` (of endpoint `ep`) due at `at`: in the due index when the endpoint is
-- enabled, else parked under the endpoint until it is enabled again.
local function schedule(id, ep, at)
  if redis.call('HGET', Q .. 'ep:' .. ep, 'enabled') == '1' then
    if redis.call('ZADD', DUE, at, id) == 1 then
      redis.call('ZREM', Q .. 'side:' .. ep, id)
      redis.call('ZREM', Q .. 'park:' .. ep, id)
    end
  else
    if redis.call('ZREM', DUE, id) == 0 then
      redis.call('ZREM', Q .. 'side:' .. ep, id)
    end
    redis.call('ZADD', Q .. 'park:' .. ep, at, id)
  end
end

-- Moves the parked deliveries of endpoint `ep` back into the due index.
local function unpark(ep)
  local park = Q .. 'park:' .. ep
  local parked = redis.call('ZRANGE', park, 0, -1, 'WITHSCORES')
  for i = 1, #parked, 2 do
    redis.call('ZADD', DUE, parked[i + 1], parked[i])
  end
  redis.call('DEL', park)
end

-- Ends the endpoint holds that are over at `now` (see hold.lua): the deliveries they parked are
-- due again, unless the endpoint is disabled.
local function release_holds(now)
  local holds = Q .. 'holds'
  for _, ep in ipairs(redis.call('ZRANGEBYSCORE', holds, '-inf', now)) do
    redis.call('ZREM', holds, ep)
    local epk = Q .. 'ep:' .. ep
    redis.call('HDEL', epk, 'hold')
    if redis.call('HGET', epk, 'enabled') == '1' then
      unpark(ep)
    end
  end
end

-- Takes delivery `id` out of the due index, its endpoint's parking lot and set-aside entries.
local function unschedule(id, ep)
  if redis.call('ZREM', DUE, id) == 0 then
    redis.call('ZREM', Q .. 'side:' .. ep, id)
    redis.call('ZREM', Q .. 'park:' .. ep, id)
  end
end

-- Ordered endpoints: the pending deliveries of one endpoint that share a queue id wait in
-- `oq:<endpoint>:<queue id>` (sorted by delivery id), and only the head of that queue is ever
-- scheduled. `okey` is the delivery's queue id when its endpoint was ordered at enqueue, else ''.
local function oq_key(ep, okey)
  return Q .. 'oq:' .. ep .. ':' .. okey
end

-- Schedules pending delivery `id` at `at`, unless an older pending delivery of its ordering
-- queue comes first (then it waits unscheduled until that one finishes).
local function place(id, ep, okey, at)
  redis.call('SADD', Q .. 'pending', id)
  if okey and okey ~= '' then
    local oq = oq_key(ep, okey)
    redis.call('ZADD', oq, 0, id)
    local head = redis.call('ZRANGE', oq, 0, 1)
    if head[1] ~= id then
      unschedule(id, ep)
      return
    end
    if head[2] then
      -- A former head that now waits behind `id` (a retried older delivery).
      unschedule(head[2], ep)
    end
  end
  schedule(id, ep, at)
end

-- Delivery `id` is no longer pending: unschedule it and let the next of its queue go.
local function finish(id, ep, okey)
  redis.call('SREM', Q .. 'pending', id)
  unschedule(id, ep)
  if okey and okey ~= '' then
    local oq = oq_key(ep, okey)
    redis.call('ZREM', oq, id)
    local head = redis.call('ZRANGE', oq, 0, 0)[1]
    if head then
      local at = redis.call('HGET', Q .. 'dlv:' .. head, 'next_at')
      if at and at ~= '' then
        schedule(head, ep, at)
      else
        redis.call('ZREM', oq, head)
      end
    end
  end
end

-- Delivery `id` of endpoint `ep` is no longer leased: it stops counting against the endpoint's
-- `maxConcurrency`. `lz` is the delivery's `lz` field: '0' when its claim did not count it
-- (the endpoint had no limits), else '1' or absent (unknown).
local function release(id, ep, lz)
  if lz ~= '0' then
    redis.call('ZREM', Q .. 'lz:' .. ep, id)
  end
end

-- Makes a delivery pending and due at `now` with a manual trigger; any lease is broken.
local function requeue(id, ep, now)
  release(id, ep)
  local dk = Q .. 'dlv:' .. id
  redis.call('HSET', dk, 'status', 'pending', 'next_at', now, 'lease', '', 'due_at', '',
    'trigger', 'manual')
  place(id, ep, redis.call('HGET', dk, 'okey'), now)
end

-- Drops up to `n` of the oldest members of a list index whose record has expired, oldest first,
-- stopping at the first whose record is still there (records expire in about the order the
-- index sorts them).
local function trim(index, kind, n)
  while n > 0 do
    local k = math.min(n, 8)
    local ms = redis.call('ZRANGE', index, 0, k - 1)
    for _, m in ipairs(ms) do
      if redis.call('EXISTS', Q .. kind .. member_id(m)) == 1 then
        return
      end
      redis.call('ZREM', index, m)
    end
    if #ms < k then
      return
    end
    n = n - k
  end
end

-- Runs `cmd key args...` for a long list of arguments, `step` at a time (Lua's `unpack` has a
-- limit); `step` must keep pairs together for commands that take pairs.
local function call_chunked(cmd, key, args, step)
  for i = 1, #args, step do
    redis.call(cmd, key, unpack(args, i, math.min(i + step - 1, #args)))
  end
end

-- The message of an error caught with `pcall` (`redis.call` raises a table with `err`).
local function error_text(e)
  if type(e) == 'table' then
    return tostring(e.err)
  end
  return tostring(e)
end
