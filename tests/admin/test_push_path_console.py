"""The connection page's push-path action: queues the deploy job, shows its state, refuses what cannot work."""

from __future__ import annotations

from refstage.services import push_path
from tests.admin.conftest import post


def test_turn_on_push_path_queues_the_job_and_shows_the_state(admin_client, rt, world):
    page = admin_client.get("/admin/connections").get_data(as_text=True)
    assert "Turn on push path" in page and "off (periodic sync only)" in page
    # Without the connected user's username there is nothing to deploy as: the admin is told to reconnect.
    response = post(admin_client, f"/admin/connections/{world.connection.id}/push-path", follow_redirects=True)
    assert "reconnect it" in response.get_data(as_text=True)
    assert not [j for j in rt.jobs.jobs if j[0] == push_path.JOB_NAME]
    with rt.uow(world.tenant.id) as uow:
        conn = uow.connections.get(world.connection.id)
        conn.external_username = "ada@acme.example"
        uow.connections.save(conn)
        uow.commit()
    assert post(admin_client, f"/admin/connections/{world.connection.id}/push-path").status_code == 302
    assert (push_path.JOB_NAME, {"tenant_id": world.tenant.id, "connection_id": world.connection.id}) in rt.jobs.jobs
    page = admin_client.get("/admin/connections").get_data(as_text=True)
    assert "queued" in page and "Reinstall push path" in page
    again = post(admin_client, f"/admin/connections/{world.connection.id}/push-path", follow_redirects=True)
    assert "already being deployed" in again.get_data(as_text=True)
    assert len([j for j in rt.jobs.jobs if j[0] == push_path.JOB_NAME]) == 1


def test_another_tenants_connection_is_404(admin_client, rt):
    assert post(admin_client, "/admin/connections/00000000-0000-0000-0000-000000000000/push-path").status_code == 404
