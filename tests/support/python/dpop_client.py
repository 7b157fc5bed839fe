"""A second, independent DPoP client for the integration tests: proofs made with `joserfc`
(Python), with key pairs it generates itself.

    python dpop_client.py
        reads one JSON request per line on stdin and answers one line on stdout:
        {"key": NAME, "htm": METHOD, "htu": URL, "token": ACCESS_TOKEN?, "skew": SECS?}
        -> {"proof": JWS}
        NAME picks a key pair (ES256), made on first use; `token` adds `ath`; `skew` makes the
        proof at a clock that many seconds off.
"""

import base64
import hashlib
import json
import sys
import time
import uuid

from joserfc import jwt
from joserfc.jwk import ECKey

keys = {}


def proof(request):
    key = keys.setdefault(request["key"], ECKey.generate_key("P-256"))
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    claims = {
        "jti": str(uuid.uuid4()),
        "htm": request["htm"],
        "htu": request["htu"],
        "iat": int(time.time()) + int(request.get("skew", 0)),
    }
    if request.get("token"):
        digest = hashlib.sha256(request["token"].encode("ascii")).digest()
        claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return jwt.encode(header, claims, key, algorithms=["ES256"])


for line in sys.stdin:
    try:
        answer = {"proof": proof(json.loads(line))}
    except Exception as err:  # noqa: BLE001 - reported to the test
        answer = {"error": repr(err)}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
