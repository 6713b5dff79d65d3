"""The call back manager after a reconnect: its legs are never taken for citizens' calls, legs
of a previous process are hung up, call backs whose legs vanished end (fake ARI client)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from callcenter.ari_app.dialback import DialbackManager


class Ari:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        async def record(*args: Any, **kw: Any) -> dict[str, Any]:
            self.calls.append((name, *args))
            return {}
        return record


class Store:
    def __init__(self) -> None:
        self.written: list[tuple[Any, ...]] = []

    def done(self, *args: Any, **kw: Any) -> None:
        self.written.append(("done", *args))

    def attempt(self, *args: Any, **kw: Any) -> None:
        self.written.append(("attempt", *args))


async def test_given_reconnect_then_own_legs_kept_stale_hung_up_vanished_ended() -> None:
    ari, store = Ari(), Store()
    m = DialbackManager(ari)  # type: ignore[arg-type]
    live = await m.start(SimpleNamespace(id=1, tenant="dongnai", caller="0912345678"),
                         user="101", extension="101", caller_id=None, store=store)
    gone = await m.start(SimpleNamespace(id=2, tenant="dongnai", caller="0900000002"),
                         user="102", extension="102", caller_id=None, store=store)
    channels = {live.operator_leg: {}, "cb9-abcdef-op": {}, "1763800000.1": {}}

    ours = await m.reconcile(channels)

    assert ours == {live.operator_leg, "cb9-abcdef-op"}  # the citizen's call is not ours
    hung = [c[1] for c in ari.calls if c[0] == "hangup"]
    assert "cb9-abcdef-op" in hung and gone.operator_leg in hung
    assert live.operator_leg not in hung
    assert list(m.dialbacks) == [live.id]
    assert store.written == []  # a call back that never reached anyone writes nothing
