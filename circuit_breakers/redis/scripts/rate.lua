-- Exact sliding windows (after clock.lua). KEY[1]: one sorted set of permits (score: namespace time
-- in microseconds), kept for the longest period. ARGS[1]: '1' to record a permit if every window
-- has room, '0' to look only; ARGS[2]: the member to record; ARGS[3]: the longest period; then
-- max_calls and period (microseconds) per limit. A permit at t counts in a window of length p
-- while t > NOW - p. Returns {NOW, STEPPED, admitted, wait, count per limit...}; a refused permit
-- returns {NOW, STEPPED, 0} at once (the wait is worked out only when looking).
local key, record, longest = KEY[1], ARGS[1] == '1', tonumber(ARGS[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', NOW - longest))
local wait, counts = 0, {}
for i = 1, (#ARGS - 3) / 2 do
  local max_calls, period = tonumber(ARGS[2 + 2 * i]), tonumber(ARGS[3 + 2 * i])
  local since = string.format('(%d', NOW - period)
  local count
  if period == longest then count = redis.call('ZCARD', key) else count = redis.call('ZCOUNT', key, since, '+inf') end
  if count >= max_calls then
    if record then return {NOW, STEPPED, 0} end
    -- free again when the permit that would be one too many expires
    local entry = redis.call('ZRANGEBYSCORE', key, since, '+inf', 'WITHSCORES', 'LIMIT', count - max_calls, 1)
    wait = math.max(wait, tonumber(entry[2]) + period - NOW)
  end
  counts[i] = count
end
if wait > 0 or not record then
  return {NOW, STEPPED, 0, wait, unpack(counts)}
end
redis.call('ZADD', key, NOW, ARGS[2])
-- Expiry only collects what is no longer used; it runs on the server's own clock, so it waits
-- twice the longest period and an hour more: a stepped server clock cannot drop live permits.
redis.call('PEXPIRE', key, math.ceil(2 * longest / 1000) + 3600000)
for i = 1, #counts do counts[i] = counts[i] + 1 end
return {NOW, STEPPED, 1, 0, unpack(counts)}
