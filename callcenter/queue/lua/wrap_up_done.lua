-- ARGV[4] extension. Returns 1 (wrap-up ended), 0 (not in wrap-up: a late timer), -1 unknown.
local a = get_agent(ARGV[4])
if not a then return -1 end
if a.status ~= 'wrap_up' then return 0 end
after_call(a, true, false)
put_agent(a, 'wrap_up_done')
return 1
