"""A small app for the local host's end-to-end tests (base64 queue messages).

Every storage name starts with the app setting DEVHOST_NS, so each host process under
test has its own queues and containers. Functions record what they saw in files under
DEVHOST_RECORD_DIR (one JSON line per call) or through output bindings.
"""

import json
import os
from pathlib import Path

import azure.functions as func
from azure.storage.blob import BlobClient

STORAGE = "AzureWebJobsStorage"
RECORD_DIR = Path(os.environ["DEVHOST_RECORD_DIR"])

bp = func.Blueprint()


def record(kind: str, entry: dict) -> None:
    """Append one JSON line to DEVHOST_RECORD_DIR/<kind>.jsonl."""
    with open(RECORD_DIR / f"{kind}.jsonl", "a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")


@bp.route(route="items/{id:int}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def item(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    body = {
        "id": req.route_params["id"],
        "q": req.params.get("q"),
        "fn": context.function_name,
        "url": req.url,
    }
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@bp.route(route="items/latest", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def latest_item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("latest")


@bp.route(route="secure", methods=["GET"])  # the app's default auth level: FUNCTION
def secure(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("secret", headers={"X-Seen": "yes"})


@bp.route(route="admin-only", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin")


@bp.route(route="echo", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def echo(req: func.HttpRequest) -> func.HttpResponse:
    body = req.get_body()
    return func.HttpResponse(json.dumps({"length": len(body)}), mimetype="application/json")


@bp.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("boom on purpose")


@bp.queue_trigger(arg_name="msg", queue_name="%DEVHOST_NS%-jobs", connection=STORAGE)
@bp.queue_output(arg_name="out", queue_name="%DEVHOST_NS%-results", connection=STORAGE)
def job(msg: func.QueueMessage, out: func.Out[str]) -> None:
    out.set(
        json.dumps(
            {
                "body": msg.get_body().decode("utf-8"),
                "dequeue_count": msg.dequeue_count,
                "id": msg.id,
                "has_times": msg.insertion_time is not None and msg.expiration_time is not None,
            }
        )
    )


@bp.queue_trigger(arg_name="text", queue_name="%DEVHOST_NS%-shout", connection=STORAGE)
@bp.queue_output(arg_name="$return", queue_name="%DEVHOST_NS%-shouted", connection=STORAGE)
async def shout(text: str) -> list[str]:
    return [text.upper(), text.upper() + "!"]


@bp.queue_trigger(arg_name="msg", queue_name="%DEVHOST_NS%-failing", connection=STORAGE)
def failing(msg: func.QueueMessage) -> None:
    record("failing", {"body": msg.get_body().decode("utf-8"), "dequeue_count": msg.dequeue_count})
    raise RuntimeError("this function always fails")


@bp.blob_trigger(
    arg_name="blob",
    path="%DEVHOST_NS%-uploads/{name}.txt",
    connection=STORAGE,
    source=func.BlobSource.EVENT_GRID,
)
@bp.blob_output(arg_name="copy", path="%DEVHOST_NS%-copies/{name}.copy", connection=STORAGE)
def upload(blob: func.InputStream, copy: func.Out[bytes]) -> None:
    data = blob.read()
    record(
        "upload",
        {"stream_name": blob.name, "length": blob.length, "content": data.decode("utf-8")},
    )
    copy.set(data)


@bp.blob_trigger(arg_name="client", path="%DEVHOST_NS%-models/{name}", connection=STORAGE)
@bp.queue_output(arg_name="$return", queue_name="%DEVHOST_NS%-model-events", connection=STORAGE)
def model(client: BlobClient) -> str:
    size = sum(len(chunk) for chunk in client.download_blob().chunks())
    return json.dumps({"type": type(client).__name__, "blob": client.blob_name, "size": size})


app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(bp)
