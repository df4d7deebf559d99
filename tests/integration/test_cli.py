"""The `demix` command line against the test stack's database: migrations
(ordering, recording, statement splitting) and tokens."""

import hashlib
import subprocess

import pytest

from conftest import ROOT


def _root_sql(stack, query, db=""):
    args = ["mariadb", "--no-defaults", "--protocol=socket", "--socket", str(stack.run_dir / "mariadb.sock"),
            "-uroot", "-N", "-B"] + ([db] if db else []) + ["-e", query]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def test_db_status_lists_every_file_applied(stack):
    out = stack.demix("db", "status").stdout
    files = sorted(p.name for p in (ROOT / "schema").glob("[0-9]*_*.sql"))
    for f in files:
        assert f"applied  {f}" in out
    assert "0 pending" in out
    assert "up to date" in stack.demix("db", "migrate").stdout
    rows = stack.sql("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [r[1] for r in rows] == files


@pytest.fixture
def scratch_db(stack):
    name = "demix_migtest"
    user = stack.config("db_user", "demix")
    _root_sql(stack, f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name};"
                     f" GRANT ALL ON {name}.* TO '{user}'@'localhost'")
    yield name
    _root_sql(stack, f"DROP DATABASE IF EXISTS {name}")


def test_migrate_splits_and_orders(stack, scratch_db, tmp_path):
    (tmp_path / "10_second.sql").write_text(
        "-- runs after 2_first although it sorts before it as text\n"
        "INSERT INTO t VALUES ('after; first', 2);\n")
    (tmp_path / "2_first.sql").write_text(
        "# a comment; with a semicolon\n"
        "CREATE TABLE t (a VARCHAR(64), n INT); /* block; comment */\n"
        "INSERT INTO t VALUES ('it''s; \"quoted\" \\'', 1), (\"dq;\", 1);\n"
        "/* multi\n line; */\n"
        "INSERT INTO t VALUES ('--not a comment', 1)\n")
    (tmp_path / "11_trigger.sql").write_text(
        "DELIMITER $$\n"
        "CREATE TRIGGER t_bi BEFORE INSERT ON t FOR EACH ROW\nBEGIN\n  SET NEW.n = NEW.n * 10;\nEND$$\n"
        "DELIMITER ;\n"
        "INSERT INTO t VALUES ('trig', 3);\n")
    (tmp_path / "README.txt").write_text("not a migration")
    env = dict(stack.env, DEMIX_DB_NAME=scratch_db, DEMIX_SCHEMA_DIR=str(tmp_path))
    run = lambda *a: subprocess.run([str(stack.build / "demix"), *a], env=env, capture_output=True, text=True)
    st = run("db", "status")
    assert st.returncode == 0 and "3 pending" in st.stdout
    out = run("db", "migrate")
    assert out.returncode == 0, out.stderr
    assert out.stdout.index("2_first.sql") < out.stdout.index("10_second.sql") < out.stdout.index("11_trigger.sql")
    rows = _root_sql(stack, "SELECT a, n FROM t ORDER BY n, a", scratch_db).splitlines()
    assert rows == ["--not a comment\t1", "dq;\t1", "it's; \"quoted\" '\t1", "after; first\t2", "trig\t30"]
    assert "up to date" in run("db", "migrate").stdout
    # A failing migration stops there and is not recorded.
    (tmp_path / "12_bad.sql").write_text("INSERT INTO t VALUES ('x', 4);\nINSERT INTO no_such_table VALUES (1);\n")
    bad = run("db", "migrate")
    assert bad.returncode != 0 and "12_bad.sql:2" in bad.stderr
    assert "pending  12_bad.sql" in run("db", "status").stdout
    # Two files with one version number are refused.
    (tmp_path / "012_dup.sql").write_text("SELECT 1;\n")
    dup = run("db", "migrate")
    assert dup.returncode != 0 and "two migrations with version 12" in dup.stderr


def test_token_create_and_user_list(stack):
    out = stack.demix("token", "create", "--user", "cli-person", "--role", "admin", "--name", "laptop")
    tok = out.stdout.strip()
    assert tok.startswith("dx_") and len(tok) == 43 and all(c in "0123456789abcdef" for c in tok[3:])
    row = stack.sql(f"SELECT u.name, u.role, t.name, t.prefix FROM api_tokens t JOIN users u ON u.id = t.user_id"
                    f" WHERE t.token_hash = '{hashlib.sha256(tok.encode()).hexdigest()}'")
    assert row == [("cli-person", "admin", "laptop", tok[:8])]
    users = stack.demix("user", "list").stdout
    assert any(line.split()[:2] == ["cli-person", "admin"] for line in users.splitlines())
    assert stack.get("/api/tracks", token=tok).status_code == 200
    # A second token for the same user; revoking by prefix takes only that one.
    tok2 = stack.demix("token", "create", "--user", "cli-person").stdout.strip()
    assert stack.demix("token", "revoke", tok2[:8]).returncode == 0
    assert stack.get("/api/tracks", token=tok2).status_code == 401
    assert stack.get("/api/tracks", token=tok).status_code == 200
    again = stack.demix("token", "revoke", tok2[:8], check=False)
    assert again.returncode == 1


@pytest.mark.parametrize("args", [
    ["token", "create"],
    ["token", "create", "--user", "x", "--role", "root"],
    ["token", "create", "--user", "bad name"],
    ["token"],
    ["db"],
    ["nonsense"],
])
def test_cli_usage_errors(stack, args):
    out = stack.demix(*args, check=False)
    assert out.returncode == 2 and out.stdout == "" and out.stderr
