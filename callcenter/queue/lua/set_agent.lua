-- ARGV[4] extension, ARGV[5] expected version, ARGV[6] new agent JSON, ARGV[7] cause.
-- Compare-and-set of one agent (events decided by agents.step in Python). Returns 1 or 0.
local cur = get_agent(ARGV[4])
if not cur or tostring(cur.v or 0) ~= ARGV[5] then return 0 end
local a = cjson.decode(ARGV[6])
a.v = cur.v or 0
put_agent(a, ARGV[7])
return 1
