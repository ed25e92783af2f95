def test_flow(client, user, moderator, banned_user):
    r = client.post_message(user.identity, user.token, "main")
    print(r)
    p = client.compact_poll([{"room_id": "main", "auth_token": user.token}])
    print(p)
    assert p["results"][0]["status_code"] == 200
    r = client.request("GET", "member_count", room="main", token=user.token)
    assert r["member_count"] >= 2, r
    r = client.request("GET", "messages", room="main", token=banned_user.token)
    assert r["status_code"] == 403
