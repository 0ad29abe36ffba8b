-- Record an outcome. ACT[1]: the ticket's generation ('' = untagged: the current one),
-- ACT[2]: its state, ACT[3]: 'success', 'failure' or 'ignored'.
local generation, state, outcome = s.generation, s.state, ACT[3]
if ACT[1] ~= '' then generation, state = tonumber(ACT[1]), ACT[2] end
if outcome == 'success' then
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
elseif outcome == 'failure' then
  if state == 'half_open' then refresh() end
  if generation == s.generation then
    if state == 'closed' then
      local calls, failures = window_totals(window_add(true))
      if failures >= FAILURES or (calls >= MINIMUM_CALLS and failures / calls >= RATE) then enter('open', false) end
    elseif state == 'half_open' then
      enter('open', false)
    end
  end
elseif outcome == 'ignored' then
  if state == 'half_open' and generation == s.generation and s.in_flight > 0 then
    s.in_flight, dirty = s.in_flight - 1, true
  end
else
  return redis.error_reply('unknown outcome ' .. tostring(outcome))
end
return reply({})
