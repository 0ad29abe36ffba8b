-- The namespace clock, run first by every script. KEYS[1]: the clock hash; ARGV[1]: the caller's
-- estimate of namespace time from its own monotonic clock (microseconds; -1: it has none yet);
-- ARGV[2]: the tolerance (microseconds); ARGV[3]: a time to use instead of the server's TIME
-- (tests; -1: read TIME). Namespace time is the server's clock minus a stored offset. When it
-- disagrees with the caller's estimate by more than the tolerance, the server's clock was stepped
-- (or the caller's estimate is stale): the offset is moved so that namespace time continues from
-- the caller's monotonic clock. It never goes backwards. The rest of the script sees NOW (and
-- STEPPED), its own keys in KEY and its own arguments in ARGS.
local function namespace_time()
  local raw = tonumber(ARGV[3]) or -1
  if raw < 0 then
    local t = redis.call('TIME')
    raw = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  local est, tol = tonumber(ARGV[1]) or -1, tonumber(ARGV[2]) or 0
  local held = redis.call('HMGET', KEYS[1], 'offset', 'last')
  local function finite(x)  -- a stored number, or 0 for garbage (not a number, NaN, infinite, absurd)
    local n = tonumber(x)
    if n == nil or n ~= n or n > 4e18 or n < -4e18 then return 0 end
    return n
  end
  local offset, last = finite(held[1]), finite(held[2])
  local now, stepped = raw - offset, 0
  if est >= 0 and math.abs(now - est) > tol then
    offset, now, stepped = raw - est, est, 1
  end
  -- A stored "last" ahead of what this caller can vouch for is not taken up (garbage, or another
  -- caller's step): time still never goes backwards for this caller, whose estimate bounds it.
  if now < last and (est < 0 or last <= est + tol) then now = last end
  redis.call('HSET', KEYS[1], 'offset', string.format('%d', offset), 'last', string.format('%d', now))
  return now, stepped
end

local NOW, STEPPED = namespace_time()
local KEY, ARGS = {}, {}
for i = 2, #KEYS do KEY[i - 1] = KEYS[i] end
for i = 4, #ARGV do ARGS[i - 3] = ARGV[i] end
