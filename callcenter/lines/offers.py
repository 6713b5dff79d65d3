"""Pool-full callback offer slots in Redis: a few answered calls per tenant, apart from the lines.

When every line is taken and the shift offers a callback (``Shift.callback_when_full``), the
call is answered to hear "press 1 to be called back" (calls/full_offer.py). Those calls hold no
line of the paid pool, so they are capped here instead: at most ``slots`` per tenant across all
instances. Key (one Redis for all instances and nodes):
  hotline:offers:{tenant}   sorted set  call_id -> expiry (ms, Redis clock)
The offer lasts seconds (prompt, key, confirmation); an entry expires after ``ttl_ms`` whatever
happens, so a crashed instance's slots free themselves without a heartbeat.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from callcenter.redis_scripts import lua_script

HOLD = lua_script("callcenter.lines", "offer_hold")
# Longer than any offer: prompt (~6 s) + key (calls.FULL_OFFER_KEY_S) + confirmation (~5 s).
OFFER_TTL_MS = 90_000


def offers_key(tenant_id: str) -> str:
    return f"hotline:offers:{tenant_id}"


class OfferSlots:
    """Atomic offer-slot accounting per tenant, shared by all app instances."""

    def __init__(self, redis: aioredis.Redis, ttl_ms: int = OFFER_TTL_MS):
        self.redis = redis
        self.ttl_ms = ttl_ms
        self._hold = redis.register_script(HOLD)

    async def hold(self, tenant_id: str, call_id: str, slots: int) -> bool:
        """Take a slot if fewer than ``slots`` are held; idempotent per call."""
        ok = await self._hold(keys=[offers_key(tenant_id)], args=[call_id, slots, self.ttl_ms])
        return bool(ok)

    async def release(self, tenant_id: str, call_id: str) -> bool:
        """Give the call's slot back; False if it held none."""
        return bool(await self.redis.zrem(offers_key(tenant_id), call_id))

    async def held(self, tenant_id: str) -> int:
        """Slots held now (expired entries not counted)."""
        t = await self.redis.time()
        now_ms = int(t[0]) * 1000 + int(t[1]) // 1000
        return int(await self.redis.zcount(offers_key(tenant_id), f"({now_ms}", "+inf"))
