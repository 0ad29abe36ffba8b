-- The breaker's state and rules (after clock.lua); the spec is circuit_breakers/breaker.py.
-- KEY[1]: the state hash, KEY[2]: the failure window hash. ARGS[1..8]: the config (times in
-- microseconds; ARGS[5] the open timeouts of trips 1, 2, ... in a row, comma-separated, from the
-- breaker's Backoff policy); ARGS[9..] are the action's own, as ACT[1..]. Each action follows this.
local K, W = KEY[1], KEY[2]
local now = NOW
local FAILURES, RATE, SUCCESSES = tonumber(ARGS[1]), tonumber(ARGS[2]), tonumber(ARGS[3])
local WINDOW, HALF_OPEN_TIMEOUT = tonumber(ARGS[4]), tonumber(ARGS[6])
local MINIMUM_CALLS, HALF_OPEN_MAX = tonumber(ARGS[7]), tonumber(ARGS[8])
local TIMEOUTS = {}
for timeout in string.gmatch(ARGS[5], '[^,]+') do TIMEOUTS[#TIMEOUTS + 1] = tonumber(timeout) end
local ACT = {}
for i = 9, #ARGS do ACT[i - 8] = ARGS[i] end
local BUCKETS = 60
local WIDTH = WINDOW / BUCKETS
local NAMES = {'state', 'generation', 'opened_at', 'open_for', 'consecutive_trips', 'forced',
               'in_flight', 'successes', 'trial_started', 'trips', 'recovered_at'}
local s = {}
local stored = redis.call('HMGET', K, unpack(NAMES))
local dirty, events = false, {}

-- A stored number, or nil for garbage: missing, not a number, NaN, infinite, negative or absurd.
local function valid(x)
  local n = tonumber(x)
  if n == nil or n ~= n or n < 0 or n > 4e18 then return nil end
  return n
end

s.state = stored[1] or 'closed'
for i = 2, #NAMES do s[NAMES[i]] = valid(stored[i]) end
-- Garbage never opens anything: an unknown state is OPEN from now; an OPEN or HALF_OPEN state with
-- unreadable timing starts its timeout again now; unreadable counts are zero, except the trial
-- permits in flight, which are all taken (no trial until the half-open timeout re-opens it).
local garbage = false
if s.state ~= 'closed' and s.state ~= 'open' and s.state ~= 'half_open' then
  s.state, s.opened_at, s.open_for, s.forced, garbage = 'open', now, nil, 0, true
end
if s.generation == nil then s.generation, garbage = now, true end
if s.state == 'open' and (s.opened_at == nil or s.opened_at > now) then s.opened_at, garbage = now, true end
if s.state == 'half_open' and s.trial_started ~= nil and s.trial_started > now then s.trial_started, garbage = now, true end
for _, name in ipairs({'consecutive_trips', 'forced', 'successes', 'trips', 'recovered_at', 'trial_started'}) do
  if s[name] == nil then s[name] = 0 end
end
if s.opened_at == nil then s.opened_at = 0 end
if s.in_flight == nil then s.in_flight, garbage = HALF_OPEN_MAX, true end
if garbage then dirty = true end

local function num(x) return string.format('%.17g', x) end

local function backoff(k)  -- the open timeout of the k-th trip in a row
  return TIMEOUTS[math.min(math.max(k, 1), #TIMEOUTS)]
end

if s.open_for == nil then  -- unreadable: an open breaker stays open for its full timeout from now
  s.open_for = 0
  if s.state == 'open' then s.open_for, s.opened_at, dirty = backoff(math.max(s.consecutive_trips, 1)), now, true end
end

local function enter(state, forced)
  local old = s.state
  s.open_for = 0
  if state == 'open' then
    if forced then
      s.open_for = backoff(math.max(s.consecutive_trips, 1))
    else
      s.consecutive_trips = s.consecutive_trips + 1
      s.open_for = backoff(s.consecutive_trips)
    end
    if old ~= 'open' then
      s.trips = s.trips + 1
      s.opened_at = now
      events[#events + 1] = 'trip'
    end
  elseif state == 'closed' then
    s.consecutive_trips = 0
    s.recovered_at = now
    events[#events + 1] = 'recovery'
  end
  redis.call('DEL', W)
  s.state, s.generation, s.forced = state, math.max(s.generation + 1, now), forced and 1 or 0
  s.in_flight, s.successes, s.trial_started = 0, 0, 0
  if old ~= state then events[#events + 1] = old .. '>' .. state end
  dirty = true
end

local function refresh()
  if s.state == 'open' then
    if s.forced == 0 and now - s.opened_at >= s.open_for then enter('half_open', false) end
  elseif s.state == 'half_open' then
    if s.trial_started > 0 and now - s.trial_started >= HALF_OPEN_TIMEOUT then enter('open', false) end
  end
end

local function window_read()
  local flat = redis.call('HGETALL', W)
  local w = {}
  for i = 1, #flat, 2 do w[flat[i]] = valid(flat[i + 1]) end
  -- Namespace time never goes backwards, so the newest bucket is now's; a stored "head" ahead of it
  -- is garbage and is ignored (a bucket held for another index is reused from zero).
  return w, math.floor(now / WIDTH)
end

local function window_add(failed)
  local w, index = window_read()
  local slot = index % BUCKETS
  local i, c, f = 'i' .. slot, 'c' .. slot, 'f' .. slot
  if w[i] ~= index or w[c] == nil or w[f] == nil then w[c], w[f] = 0, 0 end
  w[i], w.head, w[c] = index, index, w[c] + 1
  if failed then w[f] = w[f] + 1 end
  redis.call('HSET', W, 'head', num(index), i, num(index), c, num(w[c]), f, num(w[f]))
  -- expiry runs on the server's own clock: twice the window and an hour more, so a step cannot drop it
  redis.call('PEXPIRE', W, num(math.min(math.ceil(2 * WINDOW / 1000) + 3600000, 1e12)))
  return w, index
end

local function window_totals(w, index)
  local calls, failures = 0, 0
  for slot = 0, BUCKETS - 1 do
    local held = w['i' .. slot]
    if held and held > index - BUCKETS and held <= index then
      calls = calls + (w['c' .. slot] or 0)
      failures = failures + (w['f' .. slot] or 0)
    end
  end
  return calls, failures
end

local function retry_after()
  if s.state == 'open' then
    if s.forced == 1 then return -1 end
    return math.max(s.opened_at + s.open_for - now, 0)
  end
  if s.state == 'half_open' then return 0 end
  return -1
end

local function reply(extra)
  if dirty then
    redis.call('HSET', K, 'state', s.state, 'generation', num(s.generation), 'opened_at', num(s.opened_at),
      'open_for', num(s.open_for), 'consecutive_trips', num(s.consecutive_trips), 'forced', num(s.forced),
      'in_flight', num(s.in_flight), 'successes', num(s.successes), 'trial_started', num(s.trial_started),
      'trips', num(s.trips), 'recovered_at', num(s.recovered_at))
  end
  local out = {num(NOW), STEPPED, num(s.generation), s.state, num(retry_after()), events, num(s.consecutive_trips), num(s.trips),
               num(s.forced), num(s.in_flight), num(s.opened_at), num(s.recovered_at)}
  for _, value in ipairs(extra) do out[#out + 1] = value end
  return out
end
