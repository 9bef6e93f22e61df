"""Expected outputs, computed independently of the tasks."""

from __future__ import annotations


def primes(low: int, high: int) -> dict[str, int | None]:
    """The `primes` task's answer for ``{"from": low, "to": high}``, by trial division."""

    def is_prime(n: int) -> bool:
        return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))

    found = [n for n in range(low, high + 1) if is_prime(n)]
    return {"count": len(found), "last": found[-1] if found else None}
