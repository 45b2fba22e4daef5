"""Settings of the built-in servers: the Qdrant URL check and MongoDB settings with a credential."""

import importlib

import pytest
from conftest import load_services


@pytest.fixture(scope="module")
def config():
    load_services("mcp_connectors")
    return importlib.import_module("mcp_connectors_services.builtin_config")


@pytest.mark.parametrize(
    "url", ["http://qdrant:6333", "https://q.example.com", "http://[::1]:6333"]
)
def test_qdrant_urls_accepted(config, url):
    assert config.check_qdrant_url(url) == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "http"),
        ("qdrant:6333", "http"),
        ("ftp://qdrant", "http"),
        ("http://", "http"),
        ("http://qdrant:99999", "not a valid URL"),
        ("http://admin:pw@qdrant:6333", "credentials"),
        ("http://key@qdrant:6333", "credentials"),
    ],
)
def test_qdrant_urls_refused(config, url, message):
    with pytest.raises(ValueError, match=message):
        config.check_qdrant_url(url)


def test_mongo_settings_join_the_credential(config):
    settings = config.mongo_settings(
        "mongodb://bot@db1:27017,db2:27017/?authSource=admin", "suite", 2.5, password="p@ss:w/rd"
    )
    assert settings.uri == "mongodb://bot:p%40ss%3Aw%2Frd@db1:27017,db2:27017/?authSource=admin"
    assert settings.database == "suite" and settings.timeout_ms == 2500
    assert "p%40ss" not in repr(settings) and "p@ss" not in repr(settings)
    basic = config.mongo_settings("mongodb+srv://cluster.example.com", "x", 1, "ana", "pw")
    assert basic.uri == "mongodb+srv://ana:pw@cluster.example.com"
    replaced = config.mongo_settings("mongodb://old@h", "x", 1, username="new", password="pw")
    assert replaced.uri == "mongodb://new:pw@h"
    plain = config.mongo_settings("mongodb://h:27017", "x", 0.2)
    assert plain.uri == "mongodb://h:27017" and plain.timeout_ms == 200


@pytest.mark.parametrize(
    ("uri", "kwargs", "message"),
    [
        ("mongodb://bot:pw-s3cr3t@h", {}, "must not hold a password"),
        ("mongodb://h/?authMechanismProperties=AWS_SESSION_TOKEN:x", {}, "must not hold"),
        ("mongodb://h", {"password": "pw"}, "needs a user name"),
        ("http://h", {}, "must start with mongodb"),
        ("mongodb://h", {"database": "bad name"}, "database name"),
        (None, {}, "must start with mongodb"),
        (42, {}, "must not hold"),
    ],
)
def test_mongo_settings_refused(config, uri, kwargs, message):
    mongo = importlib.import_module("mcp_connectors_services.mongo_tools")
    database = kwargs.pop("database", "suite")
    with pytest.raises(mongo.MongoConfigError, match=message) as error:
        config.mongo_settings(uri, database, 2, **kwargs)
    assert "s3cr3t" not in str(error.value)
