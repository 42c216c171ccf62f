import pytest

from tests.support.harness import Server, auth
from tests.support.schemas import fields

pytestmark = pytest.mark.fast


def _actions(server: Server, token: str, **params: object) -> list[dict]:  # type: ignore[type-arg]
    r = server.http.get("/api/v1/audit", headers=auth(token), params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def test_logins_and_command_state_changes_are_audited(server: Server) -> None:
    failed = server.http.post(
        "/api/v1/auth/login", json={"username": "engineer", "password": "wrong-password"}
    )
    assert failed.status_code == 401
    token = server.token()
    cid = server.submit(token, server.vehicle(token)["vehicle_id"])["command_id"]
    server.wait_status(token, cid)
    admin = server.admin_token()
    logins_failed = _actions(server, admin, action="auth.login_failed")
    assert len(logins_failed) == 1
    assert logins_failed[0]["username"] == "engineer"
    assert logins_failed[0]["client_address"] == "127.0.0.1"
    trail = [e["action"] for e in _actions(server, admin) if e["entity_id"] == cid]
    assert trail == ["command.finish", "command.start", "command.submit"]  # newest first
    submit = next(e for e in _actions(server, admin, action="command.submit"))
    assert submit["details"]["command_name"] == "ReadDTC"
    assert set(submit) == fields(server, "AuditEntry")
    assert len(_actions(server, admin, action="auth.login")) == 2


def test_vehicle_changes_are_audited_with_what_changed(server: Server) -> None:
    admin = server.admin_token()
    vehicle = server.vehicle(admin)
    server.http.patch(
        f"/api/v1/vehicles/{vehicle['vehicle_id']}",
        headers=auth(admin),
        json={"connection_status": "disconnected"},
    )
    entry = _actions(server, admin, action="vehicle.update")[0]
    assert entry["details"] == {"connection_status": {"from": "connected", "to": "disconnected"}}
    me = server.http.get("/api/v1/auth/me", headers=auth(admin)).json()
    assert [e["action"] for e in _actions(server, admin, user_id=me["user_id"], limit=1)] == [
        "vehicle.update"
    ]


def test_audit_is_admin_only_and_validates_queries(server: Server) -> None:
    assert server.http.get("/api/v1/audit", headers=auth(server.token())).status_code == 403
    admin = server.admin_token()
    for bad in ({"limit": "0"}, {"user_id": "x"}, {"action": "DROP TABLE"}):
        assert server.http.get("/api/v1/audit", headers=auth(admin), params=bad).status_code == 400
