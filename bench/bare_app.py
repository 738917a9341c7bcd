"""The ceiling: a bare FastAPI endpoint doing one pipelined Redis HMGET per request, nothing else.

Run by bench/serving.py with uvicorn (2 workers); BENCH_REDIS_URL and BENCH_KEY select the hash.
"""

from __future__ import annotations

import os

import redis
from fastapi import FastAPI

app = FastAPI()
client = redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
key = bytes.fromhex(os.environ.get("BENCH_KEY", ""))
fields = [bytes.fromhex(f) for f in os.environ.get("BENCH_FIELDS", "").split(",") if f]


@app.post("/get-online-features")
def get_online_features() -> dict[str, list[str | None]]:
    pipe = client.pipeline(transaction=False)
    pipe.hmget(key, fields)
    (values,) = pipe.execute()
    return {"values": [v.hex() if v else None for v in values]}
