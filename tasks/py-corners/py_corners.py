"""``py-corners``: TEST ONLY. The interpreter's randomness inside the sandbox: answers
``random.random()`` twice and ``hash("abc")``, so the client's ``python_random`` test can check
that ``random`` follows the unit (seeded per run from WASI randomness) while the hash seed is the
one frozen into the module at build time (decision 0006).
"""

import random

from musketeer_task import WitWorld, task_json

__all__ = ["WitWorld", "run"]


@task_json
def run(_request: object) -> object:
    return {"random": [random.random(), random.random()], "hash": hash("abc")}
