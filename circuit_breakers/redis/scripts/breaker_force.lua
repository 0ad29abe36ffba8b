-- ACT[1]: 'open' (forced), 'close' or 'reset'. No refresh first, as in breaker.py's _move.
local action = ACT[1]
if action == 'open' then
  if s.state ~= 'open' or s.forced ~= 1 then enter('open', true) end
elseif action == 'close' or action == 'reset' then
  if s.state ~= 'closed' or s.forced ~= 0 then enter('closed', false) end
  if action == 'reset' then
    redis.call('DEL', W)
    s.generation, s.state, dirty = math.max(s.generation + 1, now), 'closed', true
    s.opened_at, s.open_for, s.consecutive_trips, s.forced, s.in_flight = 0, 0, 0, 0, 0
    s.successes, s.trial_started, s.trips, s.recovered_at = 0, 0, 0, 0
  end
else
  return redis.error_reply('unknown action ' .. tostring(action))
end
return reply({})
