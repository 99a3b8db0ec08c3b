"""Real-client check with simple-salesforce over the emulator's HTTPS, as shipped: no URL
rewriting, certificate verification on (the root comes from REQUESTS_CA_BUNDLE). Follows
every page of a query through one requests session. Prints one JSON line."""
import json
import sys

import requests
from simple_salesforce import Salesforce

url, token = sys.argv[1:3]
session = requests.Session()
pages = 0
original_request = session.request


def counting_request(method, u, *args, **kwargs):
    global pages
    if "/query" in u:
        pages += 1
    return original_request(method, u, *args, **kwargs)


session.request = counting_request
sf = Salesforce(instance_url=url, session_id=token, version="62.0", session=session)
res = sf.query_all("SELECT Id, Subject FROM Case WHERE IsDeleted = false ORDER BY SystemModstamp, Id")
ids = [r["Id"] for r in res["records"]]
print(json.dumps({"total": res["totalSize"], "ids": ids, "pages": pages}))
