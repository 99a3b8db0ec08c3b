"""Real-client check with simple-salesforce: query_all over several pages, then the
error it raises on an expired session. Prints one JSON line."""
import json
import sys
import urllib.request

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession

url, token, control_key = sys.argv[1:4]
origin = url.replace("http://", "")


class LoopbackSession(requests.Session):
    """simple-salesforce always builds https:// URLs; the emulator serves plain HTTP."""

    def request(self, method, u, *args, **kwargs):
        return super().request(method, u.replace("https://" + origin, url), *args, **kwargs)


sf = Salesforce(instance_url=url, session_id=token, version="62.0", session=LoopbackSession())
res = sf.query_all("SELECT Id, Subject FROM Case WHERE IsDeleted = false ORDER BY SystemModstamp, Id")
ids = [r["Id"] for r in res["records"]]
req = urllib.request.Request(url + "/__emulator/tokens/expire", method="POST", headers={"X-Emulator-Key": control_key})
urllib.request.urlopen(req).read()
error = None
try:
    sf.query("SELECT Id FROM Case LIMIT 1")
except SalesforceExpiredSession as e:
    error = {"type": type(e).__name__, "status": e.status, "content": e.content}
print(json.dumps({"total": res["totalSize"], "ids": ids, "error": error}))
