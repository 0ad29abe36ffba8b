-- The breaker's state and rules (after clock.lua). The spec is the state x event table in the
-- docstring of circuit_breakers/breaker.py; each function below is the twin of the CircuitBreaker
-- method of the same name there (enter: _enter, refresh: _refresh, retry_after: _retry_after,
-- admit: _admit_locked, succeeded: _succeeded_locked, failed: _failed, release: _release,
-- move: _move, observe: _observe) or of BucketedWindow's (window_add: add, window_totals: totals,
-- window_clear: clear), and cites the rows it implements. The generation plays the part of the
-- period: an admission is tagged with it, and an outcome moves the breaker only while it is current.
-- KEY[1]: the state hash, KEY[2]: the failure window hash. ARGS[1..8]: the config (times in
-- microseconds; ARGS[5] the open-timeout policy, see backoff); ARGS[9..] are the action's own, as
-- ACT[1..]. Each action (breaker_<action>.lua) follows this and calls the functions below.
local K, W = KEY[1], KEY[2]
local now = NOW
local FAILURES, RATE, SUCCESSES = tonumber(ARGS[1]), tonumber(ARGS[2]), tonumber(ARGS[3])
local WINDOW, HALF_OPEN_TIMEOUT = tonumber(ARGS[4]), tonumber(ARGS[6])
local MINIMUM_CALLS, HALF_OPEN_MAX = tonumber(ARGS[7]), tonumber(ARGS[8])
local POLICY, TIMEOUTS = string.sub(ARGS[5], 1, 1), {}
for timeout in string.gmatch(string.sub(ARGS[5], 3), '[^,]+') do TIMEOUTS[#TIMEOUTS + 1] = tonumber(timeout) end
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
-- permits in flight of a HALF_OPEN breaker, which are all taken (no trial until the half-open
-- timeout re-opens it).
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
if s.in_flight == nil then  -- permits are only held while HALF_OPEN (as a new period starts with none)
  s.in_flight, garbage = 0, true
  if s.state == 'half_open' then s.in_flight = HALF_OPEN_MAX end
end
if garbage then dirty = true end

local function num(x) return string.format('%.17g', x) end

-- backoff(k): the open timeout of the k-th trip in a row, in microseconds, as the breaker's Backoff
-- policy answers it (circuit_breakers/redis/reply.py, policy_argument). 'x': ExponentialBackoff's
-- min(initial * multiplier ^ (k - 1), maximum), with the same float operations as Python (an
-- overflowing power is the maximum, as there); 'l': the policy's answers for trips 1, 2, ...
local function backoff(k)
  if POLICY == 'x' then
    local power = TIMEOUTS[2] ^ (k - 1)
    local seconds = TIMEOUTS[3]
    if power ~= math.huge then seconds = math.min(TIMEOUTS[1] * power, TIMEOUTS[3]) end
    return math.min(seconds * 1e6, 1e300)
  end
  return TIMEOUTS[math.min(math.max(k, 1), #TIMEOUTS)]
end

if s.open_for == nil then  -- unreadable: an open breaker stays open for its full timeout from now
  s.open_for = 0
  if s.state == 'open' then s.open_for, s.opened_at, dirty = backoff(math.max(s.consecutive_trips, 1)), now, true end
end

-- The failure window: 60 ring buckets in the hash W (fields i<slot>: the bucket's index, c<slot>
-- and f<slot>: its calls and failures, head: the newest index).

-- window_clear: BucketedWindow.clear.
local function window_clear()
  redis.call('DEL', W)
end

-- window_read: the buckets as numbers and now's bucket index (what BucketedWindow._advance keeps).
-- Namespace time never goes backwards, so the newest bucket is now's; a stored "head" ahead of it
-- is garbage and is ignored (a bucket held for another index is reused from zero).
local function window_read()
  local flat = redis.call('HGETALL', W)
  local w = {}
  for i = 1, #flat, 2 do w[flat[i]] = valid(flat[i + 1]) end
  return w, math.floor(now / WIDTH)
end

local function window_sum(w, index)
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

-- window_totals: BucketedWindow.totals: calls and failures in the window ending now.
local function window_totals()
  return window_sum(window_read())
end

-- window_add: BucketedWindow.add: one call now (a failure if failed); returns the new totals.
-- Rows S1, F1, F2.
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
  return window_sum(w, index)
end

-- enter: _enter. Rows E1-E3: a new period (generation) in state. opened_at doubles as the start of
-- an OPEN period: a timed OPEN is only ever entered from CLOSED or HALF_OPEN, which sets it.
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
  window_clear()
  s.state, s.generation, s.forced = state, math.max(s.generation + 1, now), forced and 1 or 0
  s.in_flight, s.successes, s.trial_started = 0, 0, 0  -- trial_started 0: no trial yet (namespace time is never 0)
  if old ~= state then events[#events + 1] = old .. '>' .. state end
  dirty = true
end

-- refresh: _refresh. Rows T1, T2: the transitions time alone causes.
local function refresh()
  if s.state == 'open' then
    if s.forced == 0 and now - s.opened_at >= s.open_for then enter('half_open', false) end
  elseif s.state == 'half_open' then
    if s.trial_started > 0 and now - s.trial_started >= HALF_OPEN_TIMEOUT then enter('open', false) end
  end
end

-- retry_after: _retry_after. Rows A2, A4 (microseconds; -1 for None).
local function retry_after()
  if s.state == 'open' then
    if s.forced == 1 then return -1 end
    return math.max(s.opened_at + s.open_for - now, 0)
  end
  if s.state == 'half_open' then return 0 end
  return -1
end

-- admit: _admit_locked. Rows A1-A4 (after T1, T2); 1 if admitted, 0 if refused.
local function admit()
  refresh()
  if s.state == 'closed' then return 1 end
  if s.state == 'half_open' and s.in_flight < HALF_OPEN_MAX then
    s.in_flight = s.in_flight + 1
    if s.trial_started == 0 then s.trial_started = now end
    dirty = true
    return 1
  end
  return 0
end

-- succeeded: _succeeded_locked. Rows S1-S3, L1, R1, for a call admitted in (generation, state).
local function succeeded(generation, state)
  if state == 'closed' then
    if generation == s.generation then window_add(false) end
  elseif state == 'half_open' then
    refresh()
    -- in_flight == 0: an untagged success for a call admitted before this period
    if generation == s.generation and s.in_flight > 0 then
      s.in_flight, s.successes, dirty = s.in_flight - 1, s.successes + 1, true
      if s.successes >= SUCCESSES then enter('closed', false) end
    end
  end
end

-- failed: _failed. Rows F1-F3, L1, R2.
local function failed(generation, state)
  if state == 'half_open' then refresh() end
  if generation == s.generation then
    if state == 'closed' then
      local calls, failures = window_add(true)
      if failures >= FAILURES or (calls >= MINIMUM_CALLS and failures / calls >= RATE) then enter('open', false) end
    elseif state == 'half_open' then
      enter('open', false)
    end
  end
end

-- release: _release. Row N1: a half-open trial that ended as neither gives its permit back.
local function release(generation, state)
  if state == 'half_open' and generation == s.generation and s.in_flight > 0 then
    s.in_flight, dirty = s.in_flight - 1, true
  end
end

-- move: _move. Rows M1-M3; no refresh first, as there. zero: a new CLOSED period with everything zero.
local function move(state, forced, zero)
  if s.state ~= state or s.forced ~= (forced and 1 or 0) then enter(state, forced) end
  if zero then
    window_clear()
    s.generation, s.state, dirty = math.max(s.generation + 1, now), 'closed', true
    s.opened_at, s.open_for, s.consecutive_trips, s.forced, s.in_flight = 0, 0, 0, 0, 0
    s.successes, s.trial_started, s.trips, s.recovered_at = 0, 0, 0, 0
  end
end

-- observe: _observe (and get_status when full). T1, T2 on a status read; full adds the window's totals.
local function observe(full)
  refresh()
  if full then
    local calls, failures = window_totals()
    return {num(calls), num(failures)}
  end
  return {}
end

local function reply(extra)
  if dirty then
    redis.call('HSET', K, 'state', s.state, 'generation', num(s.generation), 'opened_at', num(s.opened_at),
      'open_for', num(s.open_for), 'consecutive_trips', num(s.consecutive_trips), 'forced', num(s.forced),
      'in_flight', num(s.in_flight), 'successes', num(s.successes), 'trial_started', num(s.trial_started),
      'trips', num(s.trips), 'recovered_at', num(s.recovered_at))
  end
  local out = {num(NOW), STEPPED, num(s.generation), s.state, num(retry_after()), events, num(s.consecutive_trips),
               num(s.trips), num(s.forced), num(s.in_flight), num(s.opened_at), num(s.recovered_at)}
  for _, value in ipairs(extra) do out[#out + 1] = value end
  return out
end
