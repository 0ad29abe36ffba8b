-- Observe the state; ARGS[12] 'full' adds the window totals.
refresh()
if ARGS[12] == 'full' then
  local calls, failures = window_totals(window_read())
  return reply({num(calls), num(failures)})
end
return reply({})
