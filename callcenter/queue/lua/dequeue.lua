-- ARGV[4] call_id, ARGV[5] reason. Returns the call JSON, or false when it was not queued.
local c = get_call(ARGV[4])
if not c then return false end
drop_call(c, ARGV[5])
return cjson.encode(c)
