"""The IVR's live parts in the app: the FAQ in force per tenant and the prompts it needs.

A call takes a snapshot (``context``) when it arrives: the tenant's tree from the config in
force and the FAQ catalogue loaded last. Catalogues reload when ``callcenter faq import`` or
``rollback`` publishes on ``hotline:faq``, and every ``POLL_S`` seconds by a cheap generation
check (in case the message was missed). New prompts are synthesised in the background as soon
as a catalogue or the config changes, so callers do not wait for them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import redis.asyncio as aioredis

from callcenter import calls as cm
from callcenter.config.model import DEFAULT_PROMPTS, HotlineConfig, Tenant
from callcenter.faq.rules import FAQ_CHANNEL
from callcenter.ivr import menu as mn
from callcenter.ivr import status as ivr_status
from callcenter.ivr.prompt_library import PromptLibrary
from callcenter.ivr.tree import FaqNode, Prompt, StatusNode
from callcenter.tickets.config import policy_of
from callcenter.transfers import rules as xf

log = logging.getLogger("callcenter.ivr")

POLL_S = 30.0


class CatalogueStore(Protocol):
    """What the runtime needs of the FAQ store (blocking; called in a thread)."""

    def catalogue(self, tenant: str) -> Any: ...
    def generation(self, tenant: str) -> Any: ...


def greeting_of(tenant: Tenant) -> Prompt:
    """The tenant's greeting as an IVR prompt (recorded ``greeting.wav`` overrides it)."""
    return Prompt("greeting", (tenant.prompts or DEFAULT_PROMPTS).greeting)


def tenant_prompts(tenant: Tenant, faq: mn.FaqSource) -> list[Prompt]:
    """Every prompt a caller of this tenant's menus can hear, FAQ answers and lists included."""
    policy = policy_of(tenant)
    # Warm transfers: what a unit answering a consultation hears of the call's ticket.
    warm = (xf.warm_fragments(policy.fields) if xf.targets(policy.units) else [])
    tree = tenant.ivr
    if tree is None:
        return warm
    out = [greeting_of(tenant), *tree.prompts(), *warm]
    if any(isinstance(n, StatusNode) for n in tree.nodes):
        # Status by phone speaks in fragments, all made ahead (callcenter.ivr.status).
        units = [(u.id, u.name) for u in policy.units]
        out += ivr_status.fragments(units)
    for node in tree.nodes:
        if not isinstance(node, FaqNode):
            continue
        if node.item is not None:
            item = faq.find(node.item)
            if item is not None:
                out += mn.answer_prompts(item)
        elif node.field is not None:
            items = faq.for_field(node.field)
            out += mn.list_pages(tree, node, items)
            for item in items:
                out += mn.answer_prompts(item)
    return out


class IvrRuntime:
    """Catalogues per tenant, their reloads, and ahead-of-time prompt building."""

    def __init__(self, store: CatalogueStore, prompts: PromptLibrary,
                 config: Callable[[], HotlineConfig]):
        self.store = store
        self.prompts = prompts
        self.config = config
        self.catalogues: dict[str, mn.FaqSource] = {}
        self._generations: dict[str, Any] = {}
        self._build_wanted = asyncio.Event()

    def context(self, tenant: Tenant) -> cm.IvrContext | None:
        """The snapshot a new call keeps: tree, FAQ and greeting as they are now."""
        if tenant.ivr is None:
            return None
        faq = self.catalogues.get(tenant.id, mn.NoFaq())
        return cm.IvrContext(tenant.ivr, faq, greeting_of(tenant))

    async def load(self, tenants: Iterable[str], why: str) -> None:
        """(Re)load the catalogues of these tenants whose generation changed."""
        changed = False
        for tenant in tenants:
            try:
                gen = await asyncio.to_thread(self.store.generation, tenant)
                if tenant in self.catalogues and gen == self._generations.get(tenant):
                    continue
                catalogue = await asyncio.to_thread(self.store.catalogue, tenant)
            except Exception as e:  # database away: keep serving the FAQ we have
                log.warning("FAQ of %s not reloaded (%s): %s", tenant, why, e)
                continue
            self.catalogues[tenant] = catalogue
            self._generations[tenant] = gen
            changed = True
            log.info("FAQ of %s loaded (%s): generation %s", tenant, why, gen)
        if changed:
            self.want_build()

    def want_build(self) -> None:
        """Ask the builder task to make any prompt not cached yet."""
        self._build_wanted.set()

    def all_prompts(self) -> list[tuple[str, Prompt]]:
        """(tenant, prompt) for every prompt of every tenant's menus."""
        out: list[tuple[str, Prompt]] = []
        for t in self.config().tenants:
            faq = self.catalogues.get(t.id, mn.NoFaq())
            out += [(t.id, p) for p in tenant_prompts(t, faq)]
        return out

    async def builder(self) -> None:
        """Owned task: build prompts whenever asked (start-up, config or FAQ change)."""
        while True:
            await self._build_wanted.wait()
            self._build_wanted.clear()
            try:
                tenants = [t.id for t in self.config().tenants]
                await asyncio.to_thread(self.prompts.scan_recorded, tenants)
                made, there = await asyncio.to_thread(self.prompts.build, self.all_prompts())
                if made:
                    log.info("IVR prompts: %d made, %d already there", made, there)
            except Exception:
                log.exception("IVR prompts could not be built; they are made on first use")
                await asyncio.sleep(5)

    async def watch(self, redis: aioredis.Redis) -> None:
        """Owned task: reload catalogues on a ``hotline:faq`` message or every POLL_S."""
        await self.load([t.id for t in self.config().tenants], "start")
        while True:
            try:
                async with redis.pubsub() as pubsub:
                    await pubsub.subscribe(FAQ_CHANNEL)
                    while True:
                        msg = await pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=POLL_S)
                        tenants = [t.id for t in self.config().tenants]
                        if msg is not None:
                            wanted = _tenant_of(msg.get("data"))
                            if wanted in tenants:
                                tenants = [wanted]
                            await self.load(tenants, "FAQ changed")
                        else:
                            await self.load(tenants, "poll")
            except asyncio.CancelledError:
                raise
            except Exception as e:  # Redis away: poll the database meanwhile
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # redis-py turns a cancelled read into ConnectionError: we are stopping.
                    raise asyncio.CancelledError from e
                log.warning("FAQ change notices unavailable (%s); polling", e)
                await asyncio.sleep(POLL_S)
                await self.load([t.id for t in self.config().tenants], "poll")


def _tenant_of(data: object) -> str | None:
    try:
        text = data.decode() if isinstance(data, bytes) else str(data)
        value = json.loads(text).get("tenant")
        return str(value) if value else None
    except (ValueError, AttributeError):
        return None
