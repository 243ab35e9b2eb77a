import psycopg


def test_postgres_create_database_and_restart(postgres_server):
    url = postgres_server.create_database()
    with psycopg.connect(url, connect_timeout=3) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    postgres_server.stop()
    assert not postgres_server.running
    postgres_server.start()
    with psycopg.connect(url, connect_timeout=3) as conn:
        assert conn.execute("select current_user").fetchone()[0] in url


def test_postgres_refuses_wrong_password(postgres_server):
    url = postgres_server.create_database()
    bad = url.replace("@", "x@", 1)
    try:
        psycopg.connect(bad, connect_timeout=3)
    except psycopg.OperationalError as exc:
        assert "password authentication failed" in str(exc)
    else:
        raise AssertionError("wrong password accepted")


def test_redis_requires_password(redis_server):
    import redis
    assert redis.Redis.from_url(redis_server.url).ping() is True
    try:
        redis.Redis(host=redis_server.host, port=redis_server.port).ping()
    except redis.AuthenticationError:
        pass
    else:
        raise AssertionError("redis answered without a password")
    redis_server.stop()
    redis_server.start()
    assert redis_server.cli("PING") == "PONG"
