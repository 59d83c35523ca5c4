"""The embedded Finery simulator's house maker, acting inside the simulator (no sockets)."""

from __future__ import annotations

import trio

from qfexbot.sim.finery import FinerySimulator
from qfexbot.sim.finery.embedded import embedded_config
from qfexbot.sim.finery.house import HouseMaker


async def test_house_maker_quotes_every_instrument_before_it_reports_started() -> None:
    config, house = embedded_config("7", ["7"], "key", "secret")
    sim = FinerySimulator(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(HouseMaker(sim, house, interval=3600).run)
        for inst in config.instruments:
            bids, asks = sim.engine.levels(inst.name)
            assert len(bids) == len(asks) == 5
            assert max(p for p, _ in bids) < min(p for p, _ in asks)
        nursery.cancel_scope.cancel()


async def test_a_replaced_quote_keeps_its_price_and_the_old_order_leaves() -> None:
    config, house = embedded_config("7", ["7"], "key", "secret")
    sim = FinerySimulator(config)
    maker = HouseMaker(sim, house, interval=0.01, seed=3)
    async with trio.open_nursery() as nursery:
        await nursery.start(maker.run)
        prices = {inst.name: sim.engine.levels(inst.name) for inst in config.instruments}
        before = len(sim.engine.orders)
        await trio.sleep(0.1)
        assert len(sim.engine.orders) == before
        for name, (bids, asks) in prices.items():
            now_bids, now_asks = sim.engine.levels(name)
            assert [p for p, _ in now_bids] == [p for p, _ in bids]
            assert [p for p, _ in now_asks] == [p for p, _ in asks]
        nursery.cancel_scope.cancel()
