"""The operator commands, run as an operator would: `python -m service …`."""

from __future__ import annotations

import json

import yarl
from cli_runner import run_cli
from helpers import assert_kazoo_error, call, unique_realm
from service_process import ServiceProcess


async def test_create_account_and_rotate_key_against_a_couch_url(api, couch_url):
    env = {"CONNECTIVITY_COUCH_URL": couch_url}
    child_realm = unique_realm("cli-child")
    code, out, _ = await run_cli("create-account", "--name", "Cli Master", env=env)
    assert code == 0
    created = json.loads(out)
    assert len(created["account_id"]) == 32
    assert len(created["api_key"]) == 64
    code, out, _ = await run_cli(
        "create-account",
        "--name",
        "Cli Child",
        "--parent",
        created["account_id"],
        "--realm",
        child_realm,
        env=env,
    )
    child = json.loads(out)
    assert child["realm"] == child_realm
    code, _, err = await run_cli("create-account", "--name", "Dup", "--realm", child_realm, env=env)
    assert code == 1
    assert "already in use" in err
    login = await call(api, "PUT", "/v2/api_auth", data={"api_key": child["api_key"]})
    token = login.body["auth_token"]
    code, out, _ = await run_cli("rotate-api-key", "--account", child["account_id"], env=env)
    assert code == 0
    assert json.loads(out)["api_key"] != child["api_key"]
    revoked = await call(
        api, "GET", f"/v2/accounts/{child['account_id']}/connectivity", token=token
    )
    assert_kazoo_error(revoked, 401, "invalid_credentials")


async def test_create_account_on_the_embedded_server_without_serve(tmp_path):
    env = {"CONNECTIVITY_DATA_DIR": str(tmp_path), "CONNECTIVITY_COUCH_URL": ""}
    code, out, err = await run_cli("create-account", "--name", "Embedded", env=env)
    assert code == 0, err
    first = json.loads(out)
    # The data outlives the command: a second run sees the first account's realm.
    code, _, err = await run_cli(
        "create-account", "--name", "Again", "--realm", first["realm"], env=env
    )
    assert code == 1
    assert "already in use" in err
    assert oct((tmp_path / "couch-admin.json").stat().st_mode & 0o777) == "0o600"


async def test_invalid_settings_fail_with_a_clear_message():
    code, _, err = await run_cli("couch-url", env={"CONNECTIVITY_PORT": "eighty"})
    assert code == 2
    assert "CONNECTIVITY_PORT must be an integer" in err
    code, _, err = await run_cli(
        "couch-url", env={"CONNECTIVITY_COUCH_URL": "ftp://admin:hunter2@host"}
    )
    assert code == 2
    assert "CONNECTIVITY_COUCH_URL" in err
    assert "hunter2" not in err


async def test_couch_url_prints_the_configured_url(couch_url):
    code, out, _ = await run_cli("couch-url", env={"CONNECTIVITY_COUCH_URL": couch_url})
    assert code == 0
    assert out.strip() == couch_url


async def test_commands_share_the_embedded_server_of_a_running_serve(tmp_path):
    import aiohttp

    service = ServiceProcess(tmp_path)
    try:
        await service.start()
        code, out, err = await run_cli("couch-url", env=service.env)
        assert code == 0, err
        url = yarl.URL(out.strip())
        assert url.host == "127.0.0.1" and url.password
        async with aiohttp.ClientSession() as session:
            async with session.get(str(url.with_user(None) / "_all_dbs")) as resp:
                assert resp.status == 401  # admins only
            async with session.get(str(url / "_all_dbs")) as resp:
                assert resp.status == 200  # the URL printed carries the admin's credentials
            code, out, err = await run_cli(
                "create-account", "--name", "While Serving", env=service.env
            )
            assert code == 0, err
            api_key = json.loads(out)["api_key"]
            async with session.put(
                f"{service.url}/v2/api_auth", json={"data": {"api_key": api_key}}
            ) as resp:
                assert resp.status == 201
        assert await service.terminate(20) == 0
    finally:
        await service.kill()


async def test_create_user_then_log_in_as_monster_ui_does(api, couch, couch_url, make_account):
    import hashlib
    import secrets

    env = {"CONNECTIVITY_COUCH_URL": couch_url}
    account = await make_account(f"Cli Users {secrets.token_hex(3)}")
    username, password = f"Ops.{secrets.token_hex(3)}", "cli-pass-9"
    args = ("create-user", "--account", account.id, "--username", username)
    code, out, err = await run_cli(*args, "--password", password, env=env)
    assert code == 0, err
    created = json.loads(out)
    assert created["username"] == username.lower()
    assert created["priv_level"] == "admin"
    assert password not in out
    stored = await couch.get_doc(account.db, created["user_id"])
    assert stored["pvt_md5_auth"] not in out
    creds = hashlib.md5(f"{username.lower()}:{password}".encode()).hexdigest()
    login = await call(
        api, "PUT", "/v2/user_auth", data={"credentials": creds, "account_name": account.name}
    )
    assert login.status == 201, login.text
    assert login.data["owner_id"] == created["user_id"]
    again = await run_cli(*args, "--password", "x", env=env)
    assert again.code == 1 and "unique" in again.err
    missing = await run_cli(
        "create-user", "--account", "0" * 32, "--username", "a", "--password", "b", env=env
    )
    assert missing.code == 1 and "no account" in missing.err
