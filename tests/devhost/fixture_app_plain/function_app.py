"""A second app for the local host's tests: plain-text queue messages, empty route prefix.

Its slow queue function (batchSize 1, newBatchThreshold 1 in host.json) lets a test stop
the host mid-invocation while a second message waits, received but not started.
"""

import json
import os
import time
from pathlib import Path

import azure.functions as func

STORAGE = "AzureWebJobsStorage"
RECORD_DIR = Path(os.environ["DEVHOST_RECORD_DIR"])

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def record(kind: str, entry: dict) -> None:
    with open(RECORD_DIR / f"{kind}.jsonl", "a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")


@app.route(route="health", methods=["GET"])
def health(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")


@app.queue_trigger(arg_name="msg", queue_name="%DEVHOST_NS%-slow", connection=STORAGE)
@app.queue_output(arg_name="done", queue_name="%DEVHOST_NS%-slow-done", connection=STORAGE)
def slow(msg: func.QueueMessage, done: func.Out[str]) -> None:
    body = msg.get_body().decode("utf-8")
    record("slow", {"event": "start", "body": body})
    time.sleep(float(os.environ.get("DEVHOST_SLOW_SECONDS", "3")))
    record("slow", {"event": "end", "body": body})
    done.set(body)
