-- Observe the state; ACT[1] 'full' adds the window totals.
refresh()
if ACT[1] == 'full' then
  local calls, failures = window_totals(window_read())
  return reply({num(calls), num(failures)})
end
return reply({})
