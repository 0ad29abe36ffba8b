-- Record an outcome. ACT[1]: the ticket's generation ('' = untagged: the current period's, as
-- record_success() and record_failure() report), ACT[2]: its state, ACT[3]: 'success', 'failure'
-- or 'release' (a call that was neither gives its half-open permit back).
local generation, state, outcome = s.generation, s.state, ACT[3]
if ACT[1] ~= '' then generation, state = tonumber(ACT[1]), ACT[2] end
if outcome == 'success' then
  succeeded(generation, state)
elseif outcome == 'failure' then
  failed(generation, state)
elseif outcome == 'release' then
  release(generation, state)
else
  return redis.error_reply('unknown outcome ' .. tostring(outcome))
end
return reply({})
