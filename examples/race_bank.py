"""A real race, invisible in FIFO order, found by seeded schedules.

The bank creates an account the first time money arrives for a customer:
``ensure_account`` checks whether the name is in the dict and, if not,
inserts it into the database and *then* stores a zero balance. The check and
the act are separated by an ``await`` -- the classic check-then-act race:
if a deposit lands between them, the zero balance overwrites it.

A deposit and a sign-up bonus arrive together for a new customer. Each
database round trip takes 10 ms. In FIFO order the deposit's account
creation always finishes first, so the test passes every time -- but in the
moment both requests wake up together (two timers due at t = 20 ms), either
may go first. ``explore`` runs the scenario under seeded schedules, which
shuffle tasks that are ready together, finds an order that loses the
deposit, and names the seed; the seed replays the failure every time::

    $ python examples/race_bank.py
    FIFO order: balance 105 (looks fine)
    explore found it: seed 2 fails (found on run 3): AssertionError: alice lost money: ...
    replaying seed 2: AssertionError: alice lost money: balance 5, expected 105
    with the fix, 500 seeds pass
"""

from __future__ import annotations

import yieldio
from yieldio.testing import ExploreFailure, VirtualClock, explore

DB_LATENCY = 0.010


class Bank:
    """Balances in a dict; "the database" is a 10 ms await."""

    def __init__(self, *, fixed: bool = False) -> None:
        self.accounts: dict[str, int] = {}
        self.fixed = fixed
        self.lock = yieldio.Lock()

    async def db(self) -> None:
        await yieldio.sleep(DB_LATENCY)  # a round trip to the database

    async def ensure_account(self, name: str) -> None:
        if self.fixed:
            # The fix: make check-and-create atomic (a lock around the await).
            async with self.lock:
                if name not in self.accounts:
                    await self.db()
                    self.accounts[name] = 0
            return
        if name not in self.accounts:     # check ...
            await self.db()               # ... across an await ...
            self.accounts[name] = 0       # ... act: may overwrite a fresh deposit!

    async def deposit(self, name: str, amount: int) -> None:
        await self.db()                   # fraud check
        await self.ensure_account(name)
        self.accounts[name] += amount

    async def grant_bonus(self, name: str, amount: int) -> None:
        await self.db()                   # fraud check
        await self.db()                   # load the promotion
        await self.ensure_account(name)
        self.accounts[name] += amount


async def scenario(fixed: bool = False) -> int:
    """A deposit of 100 and a bonus of 5 for a new customer, concurrently."""
    bank = Bank(fixed=fixed)   # fresh state for every run: explore reuses nothing
    async with yieldio.TaskGroup() as tg:
        tg.spawn(bank.deposit, "alice", 100)
        tg.spawn(bank.grant_bonus, "alice", 5)
    balance = bank.accounts["alice"]
    assert balance == 105, f"alice lost money: balance {balance}, expected 105"
    return balance


async def fixed_scenario() -> int:
    return await scenario(fixed=True)


def main() -> None:
    clock = VirtualClock(autojump=True)
    print(f"FIFO order: balance {yieldio.run(scenario, clock=clock)} (looks fine)")
    try:
        explore(scenario, seeds=range(100))
    except ExploreFailure as failure:
        print("explore found it:", str(failure).splitlines()[0])
        try:
            yieldio.run(scenario, seed=failure.seed, clock=VirtualClock(autojump=True))
        except AssertionError as again:
            print(f"replaying seed {failure.seed}: AssertionError: {again}")
    else:
        print("explore found nothing (unexpected)")
    explore(fixed_scenario, seeds=range(500))
    print("with the fix, 500 seeds pass")


if __name__ == "__main__":
    main()
