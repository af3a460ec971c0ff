"""Does a Redis server keep what it acknowledged? The check `WALLET_ENV=prod` runs at start.

A 202 from ledger intake promises that the events survive. On Redis that holds when the
server writes every command to its append-only file before answering (`appendonly yes` with
`appendfsync always`), or when each promised write waits for replicas (`?wait_replicas=N` in
the URL, N replicas connected). Anything less loses the last second or more of acknowledged
writes when the server dies; `?durability=relaxed` says the operator accepts that.
"""

from __future__ import annotations

import redis
from redis.exceptions import RedisError, ResponseError

from store.factory import split_options, wait_replicas


def persistence_problems(url: str) -> tuple[list[str], list[str]]:
    """(problems that must stop a prod start, warnings to print) for the Redis at `url`."""
    base, options = split_options(url)
    relaxed = options.get("durability") == "relaxed"
    replicas = wait_replicas(options)
    client = redis.Redis.from_url(base, socket_timeout=5, socket_connect_timeout=5, decode_responses=True)
    try:
        persistence = client.info("persistence")
        replication = client.info("replication")
        try:
            fsync = str(client.config_get("appendfsync").get("appendfsync", "?"))
        except ResponseError:  # CONFIG disabled (managed Redis): cannot see it
            fsync = "unknown"
    except (RedisError, OSError) as exc:
        return [f"WALLET_DATABASE_URL: the Redis server did not answer ({type(exc).__name__})"], []
    finally:
        client.close()
    aof = int(persistence.get("aof_enabled", 0)) == 1
    connected = int(replication.get("connected_slaves", 0))
    if aof and fsync == "always":
        return [], []
    if replicas and connected >= replicas:
        return [], []
    what = (
        f"Redis may lose acknowledged ledger events: appendonly is {'yes' if aof else 'no'}, appendfsync is "
        f"{fsync}, {connected} replica(s) connected"
        + (f" of the {replicas} that ?wait_replicas asks for" if replicas else "")
        + "; set appendonly yes and appendfsync always, or add ?wait_replicas=N to WALLET_DATABASE_URL with N"
        " replicas connected, or accept the risk with ?durability=relaxed"
    )
    return ([], [what]) if relaxed else ([what], [])
