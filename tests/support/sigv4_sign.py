"""Signs a request for execute-api with botocore's SigV4 signer and prints what to send.

Usage: sigv4_sign.py METHOD URL BODY ACCESS_KEY SECRET [presign]
Prints {"headers": {...}} (header signing) or {"url": "..."} (a presigned URL).
"""

import json
import sys

from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def main() -> None:
    method, url, body, key, secret = sys.argv[1:6]
    presign = len(sys.argv) > 6 and sys.argv[6] == "presign"
    credentials = Credentials(key, secret)
    request = AWSRequest(method=method, url=url, data=body.encode())
    if presign:
        SigV4QueryAuth(credentials, "execute-api", "us-east-1", expires=300).add_auth(request)
        print(json.dumps({"url": request.url}))
    else:
        SigV4Auth(credentials, "execute-api", "us-east-1").add_auth(request)
        print(json.dumps({"headers": dict(request.headers.items())}))


if __name__ == "__main__":
    main()
