"""The anchor of issue 15: a notification receiver as Nokia's Network as Code documentation shows
one, in FastAPI. It parses the CloudEvent JSON body and checks the bearer token, and does nothing
else: no Kubernetes write, no dedupe, no lookup. qod-bench's `webhook-vs-fastapi` sends it the
same load as the operator's webhook.

The token is the operator's (lowercase hex of HMAC-SHA256(key, uid), key from QOD_ANCHOR_KEY_FILE
without trailing whitespace), so one load generator serves both and the check costs the same
kind of work on either side.
"""

import hashlib
import hmac
import os
from typing import Optional

from fastapi import FastAPI, Header, HTTPException, Response
from pydantic import BaseModel

with open(os.environ["QOD_ANCHOR_KEY_FILE"], "rb") as key_file:
    KEY = key_file.read().rstrip()


class QosStatusData(BaseModel):
    sessionId: str
    qosStatus: str
    statusInfo: Optional[str] = None


class CloudEvent(BaseModel):
    id: str
    source: str
    type: str
    specversion: str
    datacontenttype: Optional[str] = None
    time: str
    data: QosStatusData


app = FastAPI()


@app.post("/notifications/{uid}", status_code=204)
async def receive_notification(
    uid: str, event: CloudEvent, authorization: str = Header(default="")
) -> Response:
    expected = hmac.new(KEY, uid.encode(), hashlib.sha256).hexdigest()
    presented = authorization.removeprefix("Bearer ")
    if not hmac.compare_digest(expected, presented):
        raise HTTPException(status_code=401)
    return Response(status_code=204)
