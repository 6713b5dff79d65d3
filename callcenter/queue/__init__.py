"""The operators' queue (ACD): rules, operators' states and controls, and the Redis sharing them.

Pure: ``rules`` (which waiting call rings which operator), ``agent`` (one operator's state
machine), ``policy`` (a tenant's operators and queue settings), ``texts`` (what an operator hears
or reads). Adapters: ``redis`` (the same rules atomic in Lua, ``lua/``), ``driver`` (rings
operators for queued calls), ``control`` + ``features`` + ``cli`` + ``http`` (log in, pause,
ready ... from the phone, the command line and the API).
"""
