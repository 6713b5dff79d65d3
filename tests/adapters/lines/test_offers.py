"""Pool-full callback offer slots against a real redis-server: a per-tenant cap across
instances, idempotent per call, released, and freed by themselves when an instance dies."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from callcenter.lines.offers import OfferSlots, offers_key


async def test_given_two_instances_when_a_flood_asks_then_never_more_than_the_cap(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    a, b = OfferSlots(two_clients[0]), OfferSlots(two_clients[1])
    results = await asyncio.gather(*[(a if i % 2 else b).hold("dongnai", f"c{i}", 4)
                                     for i in range(100)])
    assert sum(results) == 4
    assert await a.held("dongnai") == 4
    assert await a.hold("thanhhoa", "t1", 4)  # per tenant: another tenant has its own
    assert await a.held("thanhhoa") == 1


async def test_given_held_slot_when_same_call_asks_again_then_one_slot(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    slots = OfferSlots(two_clients[0])
    assert await slots.hold("dongnai", "c1", 1)
    assert await slots.hold("dongnai", "c1", 1)
    assert not await slots.hold("dongnai", "c2", 1)
    assert await slots.held("dongnai") == 1


async def test_given_held_slot_when_released_then_free_and_second_release_is_noop(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    slots = OfferSlots(two_clients[0])
    assert await slots.hold("dongnai", "c1", 1)
    assert await slots.release("dongnai", "c1")
    assert not await slots.release("dongnai", "c1")
    assert await slots.hold("dongnai", "c2", 1)


async def test_given_instance_died_holding_slots_when_they_expire_then_free_again(
        two_clients: tuple[aioredis.Redis, aioredis.Redis]) -> None:
    dead = OfferSlots(two_clients[0], ttl_ms=200)  # never releases: its process is gone
    assert await dead.hold("dongnai", "c1", 1)
    alive = OfferSlots(two_clients[1])
    assert not await alive.hold("dongnai", "c2", 1)
    await asyncio.sleep(0.3)
    assert await alive.held("dongnai") == 0
    assert await alive.hold("dongnai", "c2", 1)
    assert await two_clients[0].pttl(offers_key("dongnai")) > 0  # the key never lingers
