-- ARGV[4] ring ms (timeout + margin), ARGV[5] retry ms, ARGV[6] offering instance.
-- Returns {call JSON, extension} of the offer made, or false.
housekeep()
return offer_one(tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6])
