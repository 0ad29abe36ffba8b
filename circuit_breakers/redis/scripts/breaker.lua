-- The breaker's state and rules (after clock.lua); the spec is circuit_breakers/breaker.py.
-- KEY[1]: the state hash, KEY[2]: the failure window hash. ARGS[1..11]: the config (times in
-- microseconds); ARGS[12..]: the action's own arguments. Each action script follows this one.
local K, W = KEY[1], KEY[2]
local now = NOW
local FAILURES, RATE, SUCCESSES = tonumber(ARGS[1]), tonumber(ARGS[2]), tonumber(ARGS[3])
local WINDOW, OPEN, HALF_OPEN_TIMEOUT = tonumber(ARGS[4]), tonumber(ARGS[5]), tonumber(ARGS[6])
local EXPONENTIAL, MAX_OPEN, MULTIPLIER = ARGS[7] == '1', tonumber(ARGS[8]), tonumber(ARGS[9])
local MINIMUM_CALLS, HALF_OPEN_MAX = tonumber(ARGS[10]), tonumber(ARGS[11])
local BUCKETS = 60
local WIDTH = WINDOW / BUCKETS
local NAMES = {'state', 'generation', 'opened_at', 'open_for', 'consecutive_trips', 'forced',
               'in_flight', 'successes', 'trial_started', 'trips', 'recovered_at'}
local s = {}
local stored = redis.call('HMGET', K, unpack(NAMES))
s.state = stored[1] or 'closed'
for i = 2, #NAMES do s[NAMES[i]] = tonumber(stored[i]) or 0 end
local dirty, events = false, {}

local function num(x) return string.format('%.17g', x) end

local function backoff(k)
  if not EXPONENTIAL then return OPEN end
  return math.min(OPEN * MULTIPLIER ^ (k - 1), MAX_OPEN)
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
  for i = 1, #flat, 2 do w[flat[i]] = tonumber(flat[i + 1]) end
  local index = math.floor(now / WIDTH)
  if w.head and w.head > index then index = w.head end  -- a server clock stepped back: newest bucket
  return w, index
end

local function window_add(failed)
  local w, index = window_read()
  local slot = index % BUCKETS
  local i, c, f = 'i' .. slot, 'c' .. slot, 'f' .. slot
  if w[i] ~= index then w[c], w[f] = 0, 0 end
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
