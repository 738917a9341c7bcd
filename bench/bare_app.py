"""The ceiling: a bare FastAPI endpoint doing one pipelined Redis HMGET per request, nothing else.

Async (redis.asyncio on uvicorn's loop), as the fastest bare FastAPI endpoint is; run by
bench/serving.py with uvicorn (2 workers); BENCH_REDIS_URL and BENCH_KEY select the hash.
"""

from __future__ import annotations

import os

import redis.asyncio
from fastapi import FastAPI

app = FastAPI()
client = redis.asyncio.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
key = bytes.fromhex(os.environ.get("BENCH_KEY", ""))
fields = [bytes.fromhex(f) for f in os.environ.get("BENCH_FIELDS", "").split(",") if f]


@app.post("/get-online-features")
async def get_online_features() -> dict[str, list[str | None]]:
    pipe = client.pipeline(transaction=False)
    pipe.hmget(key, fields)
    (values,) = await pipe.execute()
    return {"values": [v.hex() if v else None for v in values]}
