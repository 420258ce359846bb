"""Create the plain test users and API tokens of a CKAN instance; write its ckan.env (mode 600).

Called by catalog/ckan-up.sh with the CKAN venv's Python (standard library only):
    ckan_users.py URL NAME INI SOLR_URL ENVFILE
The sysadmin token comes in PREAU_ADMIN_TOKEN, the users' password in PREAU_USER_PASS.
Tokens are written to ENVFILE only, never printed.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request


def call(url, action, token, **data):
    req = urllib.request.Request(
        f"{url}/api/3/action/{action}", data=json.dumps(data).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": token})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.load(resp)["result"]
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        body = err.read().decode("utf-8", "replace")[:300]
        raise SystemExit(f"ckan_users: {action} failed (HTTP {err.code}): {body}") from None


def main():
    url, name, ini, solr_url, envfile = sys.argv[1:6]
    admin_token = os.environ.get("PREAU_ADMIN_TOKEN", "")
    if len(admin_token) < 40:
        raise SystemExit("ckan_users: no sysadmin API token could be created")
    tokens = {}
    for user in ("preau_user", "preau_user2"):
        if call(url, "user_show", admin_token, id=user) is None:
            call(url, "user_create", admin_token, name=user, email=f"{user}@{name}.preau.invalid",
                 password=os.environ["PREAU_USER_PASS"])
        tokens[user] = call(url, "api_token_create", admin_token, user=user,
                            name=f"preau-{int(time.time())}")["token"]
    text = (
        "# Written by catalog/ckan-up.sh - secrets: never print or commit.\n"
        f"PREAU_CKAN_NAME={name}\nPREAU_CKAN_URL={url}\nPREAU_CKAN_TOKEN={admin_token}\n"
        "PREAU_CKAN_ADMIN=preau_admin\n"
        f"PREAU_CKAN_USER=preau_user\nPREAU_CKAN_USER_TOKEN={tokens['preau_user']}\n"
        f"PREAU_CKAN_USER2=preau_user2\nPREAU_CKAN_USER2_TOKEN={tokens['preau_user2']}\n"
        f"PREAU_CKAN_INI={ini}\nPREAU_SOLR_URL={solr_url}\n")
    tmp = envfile + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, envfile)


if __name__ == "__main__":
    main()
