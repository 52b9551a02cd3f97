"""pytest plugin of both runs of the mysql-connector suite: its external server.

mysql-connector's tests expect its own runner (``unittests.py --use-external-server``)
to have described the server in the ``tests`` package before any test module is
imported. This does the same from the environment (``MYSQL_HOST``, ``MYSQL_PORT``,
``MYSQL_USER``, ``MYSQL_PASSWORD``, as the runner reads them, and ``MYSQL_DATABASE``),
without creating or dropping any database.
"""

from __future__ import annotations

import os
import re

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    from mysql.connector.connection import MySQLConnection

    import tests
    from tests import mysqld

    client = {
        "host": os.environ.get("MYSQL_HOST", "127.0.0.1"),
        "port": int(os.environ.get("MYSQL_PORT", "3306")),
        "user": os.environ.get("MYSQL_USER", "root"),
        "password": os.environ.get("MYSQL_PASSWORD", ""),
        "database": os.environ.get("MYSQL_DATABASE", "test"),
        "connection_timeout": 60,
        "unix_socket": None,
    }
    server = mysqld.MySQLExternalServer("", "server1")
    server.client_config = client
    server.xplugin_config = {
        "host": client["host"],
        "port": 33060,
        "user": client["user"],
        "password": client["password"],
        "schema": client["database"],
        "socket": None,
    }
    # The class itself, not mysql.connector.connect: the set-up is not traced.
    with MySQLConnection(**client) as cnx, cnx.cursor() as cur:
        cur.execute("SELECT VERSION()")
        match = re.match(r"(\d+)\.(\d+)\.(\d+)", str(cur.fetchone()[0]))
        server.version = tuple(int(part) for part in match.groups()) if match else (0, 0, 0)
        cur.execute("SHOW VARIABLES LIKE 'license'")
        row = cur.fetchone()
        server.license = row[1] if row else ""
        cur.execute("SHOW VARIABLES LIKE 'socket'")
        row = cur.fetchone()
        server.unix_socket = row[1] if row else None
    tests.OPTIONS_INIT = True
    tests.MYSQL_SERVERS.append(server)
    tests.MYSQL_EXTERNAL_SERVER = True
    tests.MYSQL_VERSION = server.version
    tests.MYSQL_LICENSE = server.license
    tests.MYSQL_VERSION_TXT = ".".join(map(str, server.version))
