-- claim: leases up to `max` pending deliveries due at `now`, oldest due first (ties on id),
-- leaving those of the endpoints in ARGV[7..] (the caller's skip list) due.
-- ARGV: [2] now, [3] max, [4] lease end (> now), [5] lease id base (random per call),
--       [6] rate horizon (ms), [7..] endpoint ids to skip.
-- Entries of skipped endpoints (and of endpoints out of room) are set aside, not walked again by
-- later claims; each claim first puts back the set-aside entries it may take.
-- Endpoint limits hold across every process because this script is atomic: an endpoint with
-- `mc` (maxConcurrency) never gets more leases than `mc` minus its live ones (`lz:<endpoint>`,
-- scored by lease end); one with `rl` (rateLimit) gets send times 1/rl s apart from its `pace`
-- (µs), none beyond now + horizon. An endpoint out of room is passed over like a skipped one.
-- A claim moves the delivery's due time to the lease end with a fresh lease id, so an expired
-- lease is simply due again. Deliveries of disabled (or removed) endpoints are parked on the way;
-- entries whose delivery finished or expired are dropped. Only heads of ordering queues are ever
-- in the due index, so ordered endpoints need no check here.
-- Returns {claimed deliveries, their endpoints} (see below).
local now, max, lease_end, base = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local now_us = tonumber(now) * 1000
local horizon_us = now_us + tonumber(ARGV[6]) * 1000
local skip = {}
for i = 7, #ARGV do
  skip[ARGV[i]] = true
end
release_holds(now)
-- Per endpoint seen: whether it is enabled, and its limits: 'held' (a hold lasts: park what we
-- meet), false (no limits) or {room, rate step, next send time (µs)}. Nothing in a claim changes
-- an endpoint's flags, so one read per endpoint and claim is enough.
local endpoints = {}
local function endpoint_of(ep)
  local e = endpoints[ep]
  if e then
    return e
  end
  local epk = Q .. 'ep:' .. ep
  local f = redis.call('HMGET', epk, 'mc', 'rl', 'pace', 'hold', 'enabled')
  e = {key = epk, enabled = f[5] == '1'}
  endpoints[ep] = e
  if f[4] and f[4] ~= '' and tonumber(f[4]) > tonumber(now) then
    e.lim = 'held'
    return e
  end
  if (not f[1] or f[1] == '') and (not f[2] or f[2] == '') then
    e.lim = false
    return e
  end
  local l = {room = max}
  if f[1] and f[1] ~= '' then
    local lz = Q .. 'lz:' .. ep
    redis.call('ZREMRANGEBYSCORE', lz, '-inf', now)
    l.room = tonumber(f[1]) - redis.call('ZCARD', lz)
  end
  if f[2] and f[2] ~= '' then
    local r = tonumber(f[2])
    l.step = math.floor((1000000 + r - 1) / r)
    l.next = math.max(tonumber(f[3]) or now_us, now_us)
  end
  e.lim = l
  return e
end
local function limit_of(ep)
  return endpoint_of(ep).lim
end
local function no_room(lim)
  return lim and lim ~= 'held' and (lim.room <= 0 or (lim.step and lim.next > horizon_us))
end
-- Endpoints passed over by earlier claims (skipped by their caller, or out of room) have their
-- due entries set aside in `side:<endpoint>`, so that claims do not walk their backlog again and
-- again. Whatever this claim may take is due again now.
for _, ep in ipairs(redis.call('ZRANGE', Q .. 'sides', 0, -1)) do
  local lim = limit_of(ep)
  if not skip[ep] and lim ~= 'held' and not no_room(lim) then
    -- Only what this claim could take goes back: at most `max`, and for a limited endpoint
    -- what it has room for. The rest stays aside (and in `sides`, for `next_due`).
    local k = max
    if lim then
      k = math.min(k, lim.room)
      if lim.step then
        k = math.min(k, math.floor((horizon_us - lim.next) / lim.step) + 1)
      end
    end
    unside(ep, k)
  end
end
-- Per claimed delivery, 12 values: delivery id, account, event id, endpoint id, attempts,
-- last attempt, created, lease id, trigger, send time ('' = now), and the numbers of its event in
-- `evs` and of its endpoint in `eps`.
local out = {}
-- Per event claimed, its JSON (once, however many of its deliveries are claimed).
local evs = {}
local ev_numbers = {}
-- Per endpoint claimed, 3 values: endpoint id, endpoint JSON, failure clock ('' = none).
local eps = {}
local claimed = 0
-- Every entry looked at leaves the range [-inf, now]: claimed, parked, set aside or dropped.
local budget = 2000
while claimed < max and budget > 0 do
  local batch = redis.call('ZRANGEBYSCORE', DUE, '-inf', now, 'WITHSCORES', 'LIMIT', 0, 64)
  if #batch == 0 then
    break
  end
  -- The batch's leased entries, due again at the lease end: moved in one ZADD after the batch
  -- (before the next one is read).
  local leased = {}
  for i = 1, #batch, 2 do
    if claimed >= max then
      break
    end
    budget = budget - 1
    local id, score = batch[i], batch[i + 1]
    local dk = Q .. 'dlv:' .. id
    local d = redis.call('HMGET', dk, 'status', 'endpoint', 'event', 'okey', 'account', 'attempts',
      'last_at', 'created', 'trigger')
    local ep = d[2]
    if d[1] ~= 'pending' then
      redis.call('ZREM', DUE, id)
      if not d[1] then
        -- The delivery expired with its event (retention): it is pending no longer.
        redis.call('SREM', Q .. 'pending', id)
      end
    elseif skip[ep] then
      set_aside(id, ep, score)
    else
      local e = endpoint_of(ep)
      local lim = e.lim
      if lim == 'held' then
        redis.call('ZREM', DUE, id)
        redis.call('ZADD', Q .. 'park:' .. ep, score, id)
      elseif no_room(lim) then
        skip[ep] = true
        set_aside(id, ep, score)
      elseif not e.enabled then
        redis.call('ZREM', DUE, id)
        redis.call('ZADD', Q .. 'park:' .. ep, score, id)
      else
        local ev = ev_numbers[d[3]]
        if not ev then
          local j = redis.call('HGET', Q .. 'ev:' .. d[3], 'j')
          if j then
            evs[#evs + 1] = j
            ev = #evs
            ev_numbers[d[3]] = ev
          end
        end
        if not ev then
          -- The event is past retention: there is nothing left to send.
          redis.call('HSET', dk, 'status', 'cancelled', 'next_at', '', 'lease', '', 'due_at', '')
          finish(id, ep, d[4])
        else
          claimed = claimed + 1
          local lease = base .. '.' .. claimed
          -- `lz`: whether the lease counts against the endpoint's limits (see `release`).
          local counted = '0'
          if lim then
            counted = '1'
          end
          redis.call('HSET', dk, 'lease', lease, 'due_at', score, 'next_at', lease_end, 'lz', counted)
          leased[#leased + 1] = lease_end
          leased[#leased + 1] = id
          local not_before = ''
          if lim then
            lim.room = lim.room - 1
            redis.call('ZADD', Q .. 'lz:' .. ep, lease_end, id)
            if lim.step then
              -- Rounded up to the millisecond: never earlier than the reserved time.
              not_before = string.format('%.0f', math.ceil(lim.next / 1000))
              lim.next = lim.next + lim.step
              redis.call('HSET', e.key, 'pace', string.format('%.0f', lim.next))
            end
          end
          if not e.out then
            local f = redis.call('HMGET', e.key, 'j', 'fs')
            eps[#eps + 1] = ep
            eps[#eps + 1] = f[1] or ''
            eps[#eps + 1] = f[2] or ''
            e.out = #eps / 3
          end
          local n = #out
          out[n + 1] = id
          out[n + 2] = d[5] or ''
          out[n + 3] = d[3]
          out[n + 4] = ep
          out[n + 5] = d[6] or ''
          out[n + 6] = d[7] or ''
          out[n + 7] = d[8] or ''
          out[n + 8] = lease
          out[n + 9] = d[9] or ''
          out[n + 10] = not_before
          out[n + 11] = tostring(ev)
          out[n + 12] = tostring(e.out)
        end
      end
    end
  end
  if #leased > 0 then
    redis.call('ZADD', DUE, unpack(leased))
  end
end
return {out, evs, eps}
