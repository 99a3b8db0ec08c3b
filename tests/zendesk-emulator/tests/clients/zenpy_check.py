"""Reads the emulator with zenpy, a widely used Zendesk client, and prints what it got.

Arguments: the emulator's URL, the admin's email, its API token and an OAuth access token.
zenpy builds https://{subdomain}.zendesk.com URLs; its ZENPY_FORCE_SCHEME and
ZENPY_FORCE_NETLOC switches point it at the emulator instead.
"""

import json
import os
import sys
from urllib.parse import urlsplit

url, email, api_token, oauth_token = sys.argv[1:5]
parts = urlsplit(url)
os.environ["ZENPY_FORCE_SCHEME"] = parts.scheme
os.environ["ZENPY_FORCE_NETLOC"] = parts.netloc

from zenpy import Zenpy  # noqa: E402  (reads the environment at call time, import after it)

with_token = Zenpy(subdomain="emulator", email=email, token=api_token)
with_oauth = Zenpy(subdomain="emulator", oauth_token=oauth_token)

exported = [
    {"id": t.id, "status": t.status}
    for t in with_token.tickets.incremental(start_time=0, per_page=50)
]
listed = [t.id for t in with_token.tickets()]
comments = [c.id for c in with_token.tickets.comments(ticket=listed[0])]
users = [u.id for u in with_oauth.users.incremental(start_time=0)]
me = with_oauth.users.me().email

print(
    json.dumps(
        {
            "exported": exported,
            "listed": listed,
            "first_ticket": listed[0],
            "comments": comments,
            "users": users,
            "me": me,
        }
    )
)
